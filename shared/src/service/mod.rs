//! The use cases, one room each: [`login`](AuthService::login), [`refresh`](AuthService::refresh)
//! (rotation with reuse detection) and [`logout`](AuthService::logout) over `AuthService`,
//! the signed-in user's [`account`], the strict authorizer's [`revocation`] check, and the
//! throttled password check they share ([`credentials`]). Everything here talks to stores
//! and keys through traits, so it is tested with in-memory stores and a fixed clock; nothing
//! here knows an HTTP request or a Lambda event.

pub mod account;
pub mod credentials;
pub mod federation;
mod login;
mod logout;
pub mod mfa;
#[cfg(test)]
mod mfa_tests;
pub mod passkeys;
pub mod refresh;
pub mod register;
pub mod revocation;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::audit::{self, AuditEvent, RequestMeta};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::AuthError;
use crate::keys::{KeyCache, SigningKeys};
use crate::passkeys::Passkeys;
use crate::store::{FactorStore, SessionRecord, SessionStore, UserRecord, UserStore};

use crate::tokens::{AccessTokens, IssuedAccessToken, RefreshToken};
pub use login::{LoginOutcome, MAX_CHALLENGE_FAILURES, MFA_CHALLENGE_TTL, MfaChallenge};

/// What a successful login or refresh hands to the client. Its `Debug` shows no secret:
/// both tokens redact themselves.
#[derive(Debug)]
pub struct IssuedTokens {
    /// The new access token.
    pub access: IssuedAccessToken,
    /// The session's current refresh token.
    pub refresh: RefreshToken,
    /// Seconds the refresh token stays usable if idle (the cookie's `Max-Age`).
    pub refresh_max_age: u64,
}

/// The successor of a refresh token whose rotation is committed.
#[derive(Debug)]
pub struct Successor {
    /// The session's current refresh token.
    pub refresh: RefreshToken,
    /// Seconds it stays usable if idle.
    pub max_age: u64,
}

/// A refresh that failed. Once the rotation is committed, the presented token is
/// superseded: `successor` is then the token the client must use next, and goes back to
/// it with the error (a client that kept the old token would be taken for a thief on its
/// next try after the grace window).
#[derive(Debug)]
pub struct RefreshFailure {
    /// What went wrong.
    pub error: AuthError,
    /// The committed successor, when the failure came after the rotation.
    pub successor: Option<Successor>,
}

impl From<AuthError> for RefreshFailure {
    fn from(error: AuthError) -> Self {
        Self { error, successor: None }
    }
}

/// The authentication use cases over their stores, keys and clock.
pub struct AuthService {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    factors: Arc<dyn FactorStore>,
    passkeys: Option<Arc<Passkeys>>,
    federation: Option<Arc<federation::Federation>>,
    keys: Arc<KeyCache<SigningKeys>>,
    tokens: AccessTokens,
    clock: Arc<dyn Clock>,
    refresh_idle_ttl: u64,
    session_max_age: u64,
    refresh_reuse_grace: u64,
}

impl AuthService {
    /// Wires the use cases.
    pub fn new(
        config: &Config,
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        factors: Arc<dyn FactorStore>,
        keys: Arc<KeyCache<SigningKeys>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            users,
            sessions,
            factors,
            passkeys: None,
            federation: None,
            keys,
            tokens: AccessTokens::new(config),
            clock,
            refresh_idle_ttl: config.refresh_idle_ttl,
            session_max_age: config.session_max_age,
            refresh_reuse_grace: config.refresh_reuse_grace,
        }
    }

    /// Passkeys on (`WEBAUTHN_RP_ID` set): sign-in by passkey, and passkeys answering the
    /// login challenge. Login's only.
    pub fn with_passkeys(mut self, passkeys: Option<Passkeys>) -> Self {
        self.passkeys = passkeys.map(Arc::new);
        self
    }

    /// Cold-start work for login and refresh: fetches the key set in parallel with opening
    /// the DynamoDB connection, so the first request pays for neither. Failures are logged;
    /// the first request tries again and answers 503 while it cannot. Logout never reads
    /// keys.
    pub async fn warm_up(&self) {
        let (keys, ()) = tokio::join!(self.keys.current(), self.users.warm());
        if let Err(e) = keys {
            tracing::error!(cause = %e, "key set not available at cold start");
        }
    }

    /// Seconds the session's refresh token stays usable if idle.
    fn refresh_max_age(&self, session: &SessionRecord, now: u64) -> u64 {
        session.expires_at.min(session.absolute_expires_at).saturating_sub(now)
    }

    fn issue(&self, keys: &SigningKeys, user: &UserRecord, session: &SessionRecord, refresh: RefreshToken, now: u64) -> Result<IssuedTokens, AuthError> {
        let access = self
            .tokens
            .issue(keys, &user.user_id, session.session_id.as_str(), &user.roles, &session.auth, now)?;
        Ok(IssuedTokens {
            access,
            refresh,
            refresh_max_age: self.refresh_max_age(session, now),
        })
    }
}

/// One audit line about `session`.
fn audit_session(event: AuditEvent, meta: &RequestMeta, session: &SessionRecord, reason: Option<&str>) {
    audit::emit(event, meta, Some(&session.user_id), Some(session.session_id.as_str()), reason);
}
