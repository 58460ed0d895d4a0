//! The signed-in user's own account: who is asking (a live session its user still
//! accepts), the password change, the session listing and ending one session. The HTTP
//! surface over it is `api::account`.

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, stream};
use secrecy::SecretString;
use serde::Serialize;

use super::credentials::{PasswordCheck, check_password};
use crate::audit::{self, AuditEvent, RequestMeta};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::AuthError;
use crate::passkeys::Passkeys;
use crate::password::{check_size, hash_new_password};
use crate::password_policy::PasswordPolicy;
use crate::store::{FAN_OUT_DEADLINE, FactorStore, RevokeIf, SessionRecord, SessionStore, UserRecord, UserStore};
use crate::tokens::SessionId;

/// The most sessions one listing returns (newest first).
pub const MAX_LISTED_SESSIONS: usize = 100;
/// The revocation reason of a session its user ended by id.
pub const ENDED_BY_USER: &str = "ended_by_user";
/// The revocation reason of the other sessions a password change ends.
pub const ENDED_BY_PASSWORD_CHANGE: &str = "password_changed";
/// How many session items a listing reads at once (the `by_user_created` index holds keys only).
const READ_CONCURRENCY: usize = 8;

/// Who is asking: the verified token's session, found live, and its user, who still
/// accepts it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's session.
    pub session: SessionRecord,
    /// Its user, as read for this request.
    pub user: UserRecord,
}

/// One session as the listing shows it: when and from where, never a token or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SessionView {
    /// The session id (the `sid` of its access tokens; not a secret).
    pub session_id: String,
    /// Login time, epoch seconds.
    pub created_at: u64,
    /// Last refresh (login time if never refreshed), epoch seconds.
    pub last_used_at: u64,
    /// When it ends if not used again: the earlier of the idle and the absolute expiry.
    pub expires_at: u64,
    /// The user agent of the login.
    pub user_agent: Option<String>,
    /// The client address of the login.
    pub source_ip: Option<String>,
    /// Whether the caller's own token belongs to it.
    pub current: bool,
}

impl SessionView {
    fn of(session: &SessionRecord, caller: &SessionRecord) -> Self {
        Self {
            session_id: session.session_id.as_str().to_owned(),
            created_at: session.created_at,
            last_used_at: session.rotated_at,
            expires_at: session.expires_at.min(session.absolute_expires_at),
            user_agent: session.user_agent.clone(),
            source_ip: session.source_ip.clone(),
            current: session.session_id == caller.session_id,
        }
    }
}

/// The answer of `GET /auth/sessions`.
#[derive(Debug, Serialize)]
pub struct SessionList {
    /// The caller's live sessions, newest first, at most [`MAX_LISTED_SESSIONS`].
    pub sessions: Vec<SessionView>,
    /// Whether the user has older sessions than the newest [`MAX_LISTED_SESSIONS`] read
    /// (some of which may have ended): the listing reads no further.
    pub more: bool,
}

/// The account use cases over the two tables.
pub struct AccountService {
    pub(super) users: Arc<dyn UserStore>,
    pub(super) sessions: Arc<dyn SessionStore>,
    pub(super) factors: Arc<dyn FactorStore>,
    pub(super) clock: Arc<dyn Clock>,
    passwords: PasswordPolicy,
    pub(super) step_up_max_age: u64,
    pub(super) totp_issuer: String,
    pub(super) passkeys: Option<Arc<Passkeys>>,
    pub(super) identities: Option<Arc<dyn crate::store::IdentityStore>>,
    pub(super) federation: Option<Arc<super::federation::Federation>>,
}

impl AccountService {
    /// The use cases for `config` (its password policy) over the stores.
    pub fn new(config: &Config, users: Arc<dyn UserStore>, sessions: Arc<dyn SessionStore>, factors: Arc<dyn FactorStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            users,
            sessions,
            factors,
            clock,
            passwords: PasswordPolicy::from_config(config),
            step_up_max_age: config.step_up_max_age,
            totp_issuer: config.totp_issuer.clone(),
            passkeys: None,
            identities: None,
            federation: None,
        }
    }

    /// Passkeys on (`WEBAUTHN_RP_ID` set): registering, listing and removing them.
    pub fn with_passkeys(mut self, passkeys: Option<Passkeys>) -> Self {
        self.passkeys = passkeys.map(Arc::new);
        self
    }

    /// The caller behind a verified access token of `sub` for session `sid`: the session
    /// exists, is live, is the token's user's and is accepted by that user (the rule of
    /// refresh and of the strict authorizer, read consistently, with no cache). Every
    /// refusal is the same 401 `invalid_token`; only a dependency failure is a 503.
    pub async fn caller(&self, sub: &str, sid: &str) -> Result<Caller, AuthError> {
        let now = self.clock.now();
        let session_id = SessionId::parse(sid).ok_or(AuthError::InvalidToken)?;
        let session = self.sessions.get(&session_id).await?.ok_or(AuthError::InvalidToken)?;
        // SECURITY: a signed token outlives its session by up to its lifetime; the session
        // item decides, so a logged-out or revoked session's token is refused at once.
        if !session.is_live(now) || session.user_id != sub {
            return Err(AuthError::InvalidToken);
        }
        // ... and so does its user, as at refresh: disabled, or an epoch bumped since the
        // session began (whose fan-out may not have reached this item).
        match self.users.get(&session.username).await? {
            Some(user) if user.accepts(&session) => Ok(Caller { session, user }),
            _ => Err(AuthError::InvalidToken),
        }
    }

    /// The caller's password change. The new password is checked against the policy first
    /// (a refusal spends no attempt), then the current one exactly as login checks it
    /// (throttled, argon2id), then one transaction stores the new hash while the old one is
    /// still there, bumps the user's epoch and moves the caller's session to it, so that
    /// session is the one that survives. The user's other sessions are dead from that write
    /// on (at their next use) and are then revoked best-effort, within a deadline, so
    /// listings show them ended at once.
    pub async fn change_password(&self, caller: &Caller, current: &SecretString, new: &SecretString, meta: &RequestMeta) -> Result<(), AuthError> {
        check_size(current, "current_password must be 1 to 1024 bytes.")?;
        let new = self
            .passwords
            .check(new, &caller.session.username)
            .map_err(|weak| AuthError::WeakPassword(weak.0))?;
        // With a second factor on, a stolen access token and password are not enough.
        self.require_step_up_if_enrolled(caller).await?;
        let now = self.clock.now();
        let failed = |user_id: Option<&str>, reason: &str| {
            audit::emit(
                AuditEvent::PasswordChangeFailed,
                meta,
                user_id,
                Some(caller.session.session_id.as_str()),
                Some(reason),
            )
        };
        let user = match check_password(&*self.users, &caller.session.username, current, now).await? {
            PasswordCheck::Passed(user) => user,
            PasswordCheck::Throttled { user_id, retry_after_secs } => {
                failed(user_id.as_deref(), "throttled");
                return Err(AuthError::TooManyAttempts { retry_after_secs });
            }
            PasswordCheck::Failed { user_id, reason } => {
                failed(user_id.as_deref(), reason);
                return Err(AuthError::InvalidCredentials);
            }
        };
        // SECURITY: the session must be one this user still accepts (the username may
        // since belong to someone else; an epoch bump may have passed it).
        if !user.accepts(&caller.session) {
            failed(Some(&user.user_id), "session_not_accepted");
            return Err(AuthError::InvalidToken);
        }
        let new_hash = hash_new_password(new).await?;
        let changed_at = self.clock.now();
        // SECURITY: the epoch moves in the same transaction as the hash: a login that read
        // the old hash carries the old epoch and is dead, whenever it finishes.
        if !self
            .users
            .change_password(&user.username, &user.password_hash, &new_hash, &caller.session, changed_at)
            .await?
        {
            // The password (or the epoch) changed between the check and the write: the one
            // given is no longer the current one, or the caller's session no longer counts.
            failed(Some(&user.user_id), "changed_concurrently");
            return Err(AuthError::InvalidCredentials);
        }
        if let Err(e) = self.users.clear_attempts(&user.username).await {
            tracing::warn!(cause = %e, "clearing the attempt counter after a password change failed");
        }
        let ended = self
            .sessions
            .revoke_all_but(
                &user.user_id,
                &caller.session.session_id,
                caller.session.epoch() + 1,
                ENDED_BY_PASSWORD_CHANGE,
                changed_at,
                FAN_OUT_DEADLINE,
            )
            .await;
        audit::emit(
            AuditEvent::PasswordChanged,
            meta,
            Some(&user.user_id),
            Some(caller.session.session_id.as_str()),
            Some(&format!("{ended} other sessions ended")),
        );
        Ok(())
    }

    /// The caller's live sessions, newest first, at most [`MAX_LISTED_SESSIONS`]: the ids of
    /// the newest [`MAX_LISTED_SESSIONS`] + 1 through the `by_user_created` index (no scan,
    /// and no more read however many sessions the user has), then each item read (the
    /// index holds keys only) and checked live in code, as TTL deletes late.
    pub async fn sessions_of(&self, caller: &Caller) -> Result<SessionList, AuthError> {
        let mut ids = self.sessions.list_for_user(&caller.session.user_id, MAX_LISTED_SESSIONS + 1).await?;
        let more = ids.len() > MAX_LISTED_SESSIONS;
        ids.truncate(MAX_LISTED_SESSIONS);
        let records: Vec<Option<SessionRecord>> = stream::iter(ids)
            .map(|id| async move { self.sessions.get(&id).await })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let now = self.clock.now();
        let sessions = records
            .iter()
            .flatten()
            // The index is eventually consistent: the item itself says whose it is.
            .filter(|s| s.user_id == caller.session.user_id && s.is_live(now) && caller.user.accepts(s))
            .map(|s| SessionView::of(s, &caller.session))
            .collect();
        Ok(SessionList { sessions, more })
    }

    /// Ends one of the caller's live sessions by id. `false` when there is no such session
    /// of the caller's (another user's, unknown, malformed, already ended): one answer, so
    /// the endpoint tells nothing about other users' sessions.
    pub async fn end_session(&self, caller: &Caller, id: &str, meta: &audit::RequestMeta) -> Result<bool, AuthError> {
        let Some(session_id) = SessionId::parse(id) else {
            return Ok(false);
        };
        let now = self.clock.now();
        // SECURITY: ownership is the write's condition, not a read before it.
        let revocation = self
            .sessions
            .revoke(&session_id, RevokeIf::LiveOwnedBy(&caller.session.user_id), ENDED_BY_USER, now)
            .await?;
        // A refused revocation returns the item as it is, possibly another user's: dropped.
        let Some(ended) = revocation.revoked() else {
            return Ok(false);
        };
        audit::emit(
            AuditEvent::SessionRevoked,
            meta,
            Some(&ended.user_id),
            Some(ended.session_id.as_str()),
            Some(ENDED_BY_USER),
        );
        Ok(true)
    }
}
