//! Login: a throttled password check, then a new session under the user's epoch.

use secrecy::SecretString;

use super::credentials::{PasswordCheck, check_password};
use super::{AuthService, IssuedTokens, audit_session};
use crate::audit::{self, AuditEvent, RequestMeta};
use crate::error::AuthError;
use crate::store::{SessionRecord, normalize_username};
use crate::tokens::{RefreshToken, SessionId};

impl AuthService {
    /// Checks a password and starts a session. The attempt is reserved before the password
    /// is hashed, so parallel guesses cannot outrun the throttle. Unknown user, wrong
    /// password and disabled account take the same path (a full argon2id verification and
    /// a counted attempt) and give the same error.
    pub async fn login(&self, username: &str, password: SecretString, meta: &RequestMeta) -> Result<IssuedTokens, AuthError> {
        let username = normalize_username(username);
        let now = self.clock.now();
        // Keys first: without them nothing can be issued, and no attempt should be spent.
        let keys = self.keys.current().await?;
        let user = match check_password(&*self.users, &username, &password, now).await? {
            // The password is right: only now may the answer say the address is unverified.
            PasswordCheck::Passed(user) if !user.email_verified => {
                // The password was right: its reserved attempt must not count toward a throttle.
                if let Err(e) = self.users.clear_attempts(&username).await {
                    tracing::warn!(cause = %e, "clearing the attempt counter of an unverified login failed");
                }
                audit::emit(AuditEvent::LoginFailed, meta, Some(&user.user_id), None, Some("email_not_verified"));
                return Err(AuthError::EmailNotVerified);
            }
            PasswordCheck::Passed(user) => user,
            PasswordCheck::Throttled { user_id, retry_after_secs } => {
                audit::emit(AuditEvent::LoginThrottled, meta, user_id.as_deref(), None, None);
                return Err(AuthError::TooManyAttempts { retry_after_secs });
            }
            PasswordCheck::Failed { user_id, reason } => {
                audit::emit(AuditEvent::LoginFailed, meta, user_id.as_deref(), None, Some(reason));
                return Err(AuthError::InvalidCredentials);
            }
        };

        let session_id = SessionId::generate();
        let refresh = RefreshToken::start(session_id.clone());
        let session = SessionRecord {
            session_id,
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            token_hash: refresh.hash(),
            previous_token_hash: None,
            generation: 0,
            rotated_at: now,
            created_at: now,
            // SECURITY: the epoch of the user item the password was checked against, not a
            // fresh read: a bump since (a password change, logout everywhere, disable)
            // leaves this session dead, however soon after it lands.
            session_epoch: Some(user.session_epoch),
            expires_at: now + self.refresh_idle_ttl,
            absolute_expires_at: now + self.session_max_age,
            revoked_at: None,
            revoke_reason: None,
            user_agent: meta.user_agent.clone(),
            source_ip: meta.source_ip.clone(),
        };
        tokio::try_join!(self.sessions.create(&session), self.users.clear_attempts(&username))?;
        let issued = self.issue(&keys, &user, &session, refresh, now)?;
        audit_session(AuditEvent::LoginSucceeded, meta, &session, None);
        Ok(issued)
    }
}
