//! The one error type of the service and the one table that turns it into HTTP answers.

use std::fmt;

/// Every way a request can fail. Internal causes travel in `Unavailable` for the log only;
/// clients see the fixed code and message from [`AuthError::outward`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The request is malformed; the text is safe to show to the client.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// Login failed. Unknown user, wrong password and disabled account are all this one.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// A refresh token that is missing, malformed, unknown, expired, revoked or forged; at
    /// the account endpoints, a bearer access token that is, or whose session is not live.
    #[error("invalid token")]
    InvalidToken,
    /// An authentic but superseded refresh token was replayed; the session is now revoked.
    #[error("refresh token reused")]
    TokenReused,
    /// The browser request comes from an origin that is not allowed.
    #[error("forbidden origin")]
    ForbiddenOrigin,
    /// A method the endpoint does not answer (the auth endpoints take POST and OPTIONS,
    /// discovery GET and HEAD); the answer's `Allow` header lists those it does.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A path the function does not serve (a function URL reaches it with any path).
    #[error("not found")]
    NotFound,
    /// The body is over the 8 KiB limit.
    #[error("payload too large")]
    PayloadTooLarge,
    /// A JSON body (login, password change) sent as another media type.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// A new password the policy refuses; the text names the rule (never the password).
    #[error("weak password: {0}")]
    WeakPassword(String),
    /// An e-mailed link's token (verification, reset) that is unknown, used, superseded,
    /// expired or of another purpose: one answer for all of them.
    #[error("invalid link token")]
    InvalidLink,
    /// `POST /auth/signup` while `SIGNUP=closed`.
    #[error("sign-up closed")]
    SignupClosed,
    /// A correct password for an account whose address is not verified yet (told only to
    /// someone who knows the password).
    #[error("e-mail not verified")]
    EmailNotVerified,
    /// A TOTP or recovery code that is wrong, already used, or not the user's.
    #[error("invalid code")]
    InvalidCode,
    /// A passkey ceremony that failed: wrong origin or RP id, a challenge not ours or used,
    /// a credential not the user's, a bad signature or counter. One answer for all.
    #[error("passkey refused")]
    InvalidPasskey,
    /// A sensitive account action without a recent second factor on this session.
    #[error("step-up required")]
    StepUpRequired,
    /// Adding a first second factor from a session whose sign-in is not recent.
    #[error("reauthentication required")]
    ReauthenticationRequired,
    /// TOTP enrolment while TOTP is already on.
    #[error("mfa already enabled")]
    MfaAlreadyEnabled,
    /// Unlinking the identity that is the user's last way to sign in (no other identity,
    /// no password).
    #[error("last sign-in method")]
    LastSignInMethod,
    /// The account is throttled after repeated failures.
    #[error("too many attempts, retry after {retry_after_secs} s")]
    TooManyAttempts {
        /// Seconds until the next attempt is accepted.
        retry_after_secs: u64,
    },
    /// DynamoDB or Secrets Manager failed after retries, or the key set is unusable.
    /// The cause is for the log (it never holds a secret) and is never sent to the client.
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
}

/// What the client is told about an [`AuthError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outward<'a> {
    /// HTTP status code.
    pub status: u16,
    /// Stable machine-readable code, the `error` field of the JSON body.
    pub code: &'static str,
    /// Human-readable text, the `message` field.
    pub message: &'a str,
    /// Seconds for a `Retry-After` header, when the client should come back later.
    pub retry_after_secs: Option<u64>,
}

/// Seconds a client is asked to wait after a dependency failure.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

impl AuthError {
    /// The error table of the HTTP contract: the only place a status or code is chosen.
    pub fn outward(&self) -> Outward<'_> {
        let (status, code, message, retry_after_secs) = match self {
            Self::InvalidRequest(detail) => (400, "invalid_request", *detail, None),
            Self::InvalidCredentials => (401, "invalid_credentials", "Invalid username or password.", None),
            Self::InvalidToken => (401, "invalid_token", "The token is missing, invalid or expired.", None),
            Self::TokenReused => (401, "token_reused", "The refresh token was already used; the session has been revoked.", None),
            Self::ForbiddenOrigin => (403, "forbidden_origin", "Cross-site requests are not allowed.", None),
            Self::MethodNotAllowed => (405, "method_not_allowed", "This method is not allowed here; see the Allow header.", None),
            Self::NotFound => (404, "not_found", "Not found.", None),
            Self::PayloadTooLarge => (413, "payload_too_large", "The request body is larger than 8 KiB.", None),
            Self::UnsupportedMediaType => (415, "unsupported_media_type", "Send the body as application/json.", None),
            Self::WeakPassword(rule) => (400, "weak_password", rule.as_str(), None),
            Self::InvalidLink => (400, "invalid_token", "The link is invalid, already used or expired; ask for a new one.", None),
            Self::SignupClosed => (403, "signup_closed", "Sign-up is closed; ask the operator for an account.", None),
            Self::EmailNotVerified => (403, "email_not_verified", "Verify your e-mail address first; the link is in your inbox.", None),
            Self::InvalidCode => (401, "invalid_code", "The code is wrong or was already used.", None),
            Self::InvalidPasskey => (401, "invalid_passkey", "The passkey was refused; try again.", None),
            Self::StepUpRequired => (403, "step_up_required", "Confirm with your second factor first (POST /auth/mfa/step-up).", None),
            Self::ReauthenticationRequired => (403, "reauthentication_required", "Sign in again to add a second factor.", None),
            Self::MfaAlreadyEnabled => (409, "mfa_already_enabled", "TOTP is already on; turn it off first to enrol a new device.", None),
            Self::LastSignInMethod => (
                409,
                "last_sign_in_method",
                "This is the account's only way to sign in; link another provider or set a password first.",
                None,
            ),
            Self::TooManyAttempts { retry_after_secs } => (429, "too_many_attempts", "Too many failed attempts; try again later.", Some(*retry_after_secs)),
            Self::Unavailable(_) => (
                503,
                "unavailable",
                "The service is temporarily unavailable; try again.",
                Some(UNAVAILABLE_RETRY_AFTER_SECS),
            ),
        };
        Outward {
            status,
            code,
            message,
            retry_after_secs,
        }
    }

    /// Wraps a dependency failure; `what` names the operation for the log.
    pub fn unavailable(what: &str, cause: impl fmt::Display) -> Self {
        Self::Unavailable(format!("{what}: {cause}"))
    }
}

/// A failed SDK call (either service) as a 503. The cause goes to the log only, and the
/// SDK's error text carries service messages, never the request's values.
pub(crate) fn sdk_error<E, R>(operation: &str, e: aws_smithy_runtime_api::client::result::SdkError<E, R>) -> AuthError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    AuthError::unavailable(operation, aws_smithy_types::error::display::DisplayErrorContext(e))
}

/// A configuration variable that is missing or has a bad value; fails the cold start.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {name}: {problem}")]
pub struct ConfigError {
    /// The environment variable.
    pub name: &'static str,
    /// What is wrong with it.
    pub problem: String,
}
