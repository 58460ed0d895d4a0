//! Persistence behind two traits, so the use cases never see an AWS type: the DynamoDB
//! implementation is in [`dynamodb`], an in-memory one in `testing`.

pub mod dynamodb;

use async_trait::async_trait;

use crate::error::AuthError;
use crate::tokens::{SessionId, TokenHash};

/// A user as the login and refresh use cases need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Trimmed, lowercased e-mail: the table key.
    pub username: String,
    /// Stable id that goes into tokens as `sub`.
    pub user_id: String,
    /// argon2id PHC string. Never logged.
    pub password_hash: String,
    /// Roles copied into access tokens.
    pub roles: Vec<String>,
    /// A disabled user cannot log in or refresh.
    pub disabled: bool,
    /// Sessions created before this instant are refused on refresh.
    pub password_changed_at: u64,
}

/// Failed-login bookkeeping for one username, kept whether or not the user exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Failures since the counter was last reset.
    pub failed_logins: u32,
    /// When the last failure happened (epoch seconds).
    pub last_failed_at: u64,
    /// No attempt is checked before this instant (epoch seconds); 0 when not throttled.
    pub throttled_until: u64,
}

/// Failures within this many seconds of each other count together.
pub const THROTTLE_WINDOW_SECS: u64 = 15 * 60;
/// The failure that starts throttling.
pub const THROTTLE_AFTER_FAILURES: u32 = 5;
/// The first throttle period; each further failure doubles it, up to the window.
pub const THROTTLE_BASE_SECS: u64 = 30;

impl LoginThrottle {
    /// Seconds until the next attempt is allowed, when throttled now.
    pub fn retry_after(&self, now: u64) -> Option<u64> {
        (self.throttled_until > now).then(|| self.throttled_until - now)
    }

    /// Whether the counter went quiet for a whole window, so the next failure starts over.
    pub fn is_stale(&self, now: u64) -> bool {
        self.failed_logins > 0 && now.saturating_sub(self.last_failed_at) > THROTTLE_WINDOW_SECS
    }

    /// How long `failed_logins` failures throttle: nothing before the fifth, then 30 s,
    /// doubling with each further failure up to the window.
    pub fn throttle_secs(failed_logins: u32) -> Option<u64> {
        let extra = failed_logins.checked_sub(THROTTLE_AFTER_FAILURES)?;
        Some((THROTTLE_BASE_SECS << extra.min(10)).min(THROTTLE_WINDOW_SECS))
    }
}

/// A session: one login on one device, and the hash of its current refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The key.
    pub session_id: SessionId,
    /// Owner (the `by_user` index key).
    pub user_id: String,
    /// Owner's username, to re-read the user on refresh.
    pub username: String,
    /// SHA-256 of the current refresh secret.
    pub token_hash: TokenHash,
    /// Rotations so far.
    pub generation: u64,
    /// When the last rotation happened (creation for generation 0).
    pub rotated_at: u64,
    /// When the session started.
    pub created_at: u64,
    /// Sliding idle expiry; the table's TTL attribute.
    pub expires_at: u64,
    /// Hard end of the session, whatever its activity.
    pub absolute_expires_at: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
    /// Why: `logout`, `logout_everywhere`, `reuse_detected`, `admin`, ...
    pub revoke_reason: Option<String>,
    /// Client's user agent, cut to 256 bytes.
    pub user_agent: Option<String>,
    /// Client's IP.
    pub source_ip: Option<String>,
}

impl SessionRecord {
    /// Not revoked and neither expiry passed. Checked in code on every read: DynamoDB's
    /// TTL deletes expired items up to days late, and the emulator never does.
    pub fn is_live(&self, now: u64) -> bool {
        self.revoked_at.is_none() && now < self.expires_at && now < self.absolute_expires_at
    }
}

/// One rotation: the single conditional write of a refresh.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// Which session.
    pub session_id: SessionId,
    /// Hash of the presented token; the write happens only if it is still the stored one.
    pub expected_hash: TokenHash,
    /// Generation of the presented token.
    pub expected_generation: u64,
    /// Hash of the successor.
    pub new_hash: TokenHash,
    /// The rotation instant.
    pub now: u64,
    /// The new sliding idle expiry.
    pub idle_expires_at: u64,
}

/// What a rotation attempt did.
#[derive(Debug)]
pub enum RotationOutcome {
    /// Written; the session as it is now.
    Rotated(SessionRecord),
    /// The condition failed; the session as it was (no second read), if it exists.
    Rejected(Option<SessionRecord>),
}

/// Sessions, keyed by session id, with an index by user.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session; fails rather than overwrite an existing id.
    async fn create(&self, session: &SessionRecord) -> Result<(), AuthError>;
    /// Rotates in one conditional write: hash and generation match, not revoked, not expired.
    async fn rotate(&self, rotation: &Rotation) -> Result<RotationOutcome, AuthError>;
    /// Revokes a live session, only if its current hash is `expected_hash` when one is
    /// given. Returns the session as it was when this call revoked it, `None` otherwise.
    async fn revoke(&self, session_id: &SessionId, expected_hash: Option<&TokenHash>, reason: &str, now: u64) -> Result<Option<SessionRecord>, AuthError>;
    /// Reads one session (operator tools; the hot paths never read before writing).
    async fn get(&self, session_id: &SessionId) -> Result<Option<SessionRecord>, AuthError>;
    /// The ids of every session of a user, through the `by_user` index.
    async fn list_for_user(&self, user_id: &str) -> Result<Vec<SessionId>, AuthError>;
}

/// Users and their login throttle state.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// The user (if any) and the throttle state of `username`, in one read.
    async fn login_state(&self, username: &str) -> Result<(Option<UserRecord>, LoginThrottle), AuthError>;
    /// One user.
    async fn get(&self, username: &str) -> Result<Option<UserRecord>, AuthError>;
    /// Counts one failed login atomically, so concurrent failures all count and none lifts
    /// a throttle another set, and starts the throttle the new count calls for. `seen` is
    /// the state read before the attempt: a counter quiet for a whole window starts over.
    /// Returns the state after this failure.
    async fn record_failure(&self, username: &str, seen: &LoginThrottle, now: u64) -> Result<LoginThrottle, AuthError>;
    /// Resets the throttle state after a successful login.
    async fn clear_failures(&self, username: &str) -> Result<(), AuthError>;
    /// Adds a user; `false` if the username is taken.
    async fn create(&self, user: &UserRecord) -> Result<bool, AuthError>;
    /// Enables or disables a user; `false` if there is no such user.
    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, AuthError>;
    /// Opens the connection during cold start; failures only cost the first request time.
    async fn warm(&self) {}
}

/// The table key of a username: trimmed and lowercased.
pub fn normalize_username(raw: &str) -> String {
    raw.trim().to_lowercase()
}
