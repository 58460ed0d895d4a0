//! Structured audit events: one JSON log line per authentication event. Fields are typed
//! so a token, secret, password or hash cannot be passed by accident.

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEvent {
    /// A login issued a session.
    LoginSucceeded,
    /// A login was refused.
    LoginFailed,
    /// A login was refused because the account is throttled.
    LoginThrottled,
    /// A refresh token was rotated (or the grace-window successor handed out again).
    RefreshRotated,
    /// An old refresh token was replayed; the session was revoked.
    RefreshReuseDetected,
    /// A session was revoked for a reason other than logout.
    SessionRevoked,
    /// A session ended by logout.
    Logout,
    /// Every session of a user ended by logout.
    LogoutEverywhere,
    /// The authorizer refused a request.
    AuthorizerDenied,
    /// A user changed their password through the account endpoint.
    PasswordChanged,
    /// A password change was refused: wrong current password, throttled, or a lost race.
    PasswordChangeFailed,
    /// A sign-up created an unverified account (`reason`: what was sent).
    SignedUp,
    /// A verification link was used: the address is the user's.
    EmailVerified,
    /// A reset link was used: new password, every session ended.
    PasswordReset,
    /// A link e-mail was asked for and not sent (`reason`: `limited` or `send_failed`).
    EmailNotSent,
    /// A right password for a user with a second factor: a challenge was issued.
    MfaChallenged,
    /// A second-factor answer was refused (`reason`: `wrong_code`, `replayed`, ...).
    MfaFailed,
    /// A signed-in user passed a second factor again (step-up).
    MfaSteppedUp,
    /// TOTP was turned on (enrolment confirmed).
    MfaEnabled,
    /// The user turned TOTP off (an operator's `authctl user mfa reset` ends every session
    /// instead, which its own output records).
    MfaDisabled,
    /// New recovery codes replaced the old ones.
    RecoveryCodesRegenerated,
    /// A passkey was registered.
    PasskeyAdded,
    /// A passkey was removed.
    PasskeyRemoved,
    /// The user unlinked an identity at another provider.
    IdentityUnlinked,
}

impl AuditEvent {
    /// The `event` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MfaChallenged => "mfa_challenged",
            Self::PasskeyAdded => "passkey_added",
            Self::PasskeyRemoved => "passkey_removed",
            Self::IdentityUnlinked => "identity_unlinked",
            Self::MfaFailed => "mfa_failed",
            Self::MfaSteppedUp => "mfa_stepped_up",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::RefreshRotated => "refresh_rotated",
            Self::RefreshReuseDetected => "refresh_reuse_detected",
            Self::SessionRevoked => "session_revoked",
            Self::Logout => "logout",
            Self::LogoutEverywhere => "logout_everywhere",
            Self::AuthorizerDenied => "authorizer_denied",
            Self::PasswordChanged => "password_changed",
            Self::PasswordChangeFailed => "password_change_failed",
            Self::SignedUp => "signed_up",
            Self::EmailVerified => "email_verified",
            Self::PasswordReset => "password_reset",
            Self::EmailNotSent => "email_not_sent",
        }
    }
}

/// Who sent the request, as far as the gateway tells us.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    /// The gateway's or Lambda's request id.
    pub request_id: Option<String>,
    /// Client IP.
    pub source_ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
}

/// Writes one audit line. `user_id` and `session_id` are identifiers, never secrets.
pub fn emit(event: AuditEvent, meta: &RequestMeta, user_id: Option<&str>, session_id: Option<&str>, reason: Option<&str>) {
    tracing::info!(
        target: "audit",
        event = event.as_str(),
        user_id,
        session_id,
        reason,
        source_ip = meta.source_ip.as_deref(),
        user_agent = meta.user_agent.as_deref(),
        request_id = meta.request_id.as_deref(),
    );
}
