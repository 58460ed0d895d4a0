//! Persistence behind two traits, so the use cases never see an AWS type: the DynamoDB
//! implementation is in [`dynamodb`], an in-memory one in `testing`.

pub mod dynamodb;

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, stream};

use crate::error::AuthError;
use crate::tokens::{SessionId, TokenHash};

/// A user as the login and refresh use cases need it.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Trimmed, lowercased e-mail: the table key.
    pub username: String,
    /// Stable id that goes into tokens as `sub`.
    pub user_id: String,
    /// argon2id PHC string. Never logged (redacted in `Debug`).
    pub password_hash: String,
    /// Roles copied into access tokens.
    pub roles: Vec<String>,
    /// A disabled user cannot log in or refresh.
    pub disabled: bool,
    /// When the password last changed (epoch seconds). A record for operators: no rule
    /// compares it with anything.
    pub password_changed_at: u64,
    /// The version of what the user's sessions depend on: each session stores the epoch it
    /// was created under and is accepted only while it is still the user's. Logout
    /// everywhere, a password change or reset and disabling bump it in one conditional
    /// write, so they end every older session whatever the clocks say. Absent reads as 0.
    pub session_epoch: u64,
}

impl UserRecord {
    /// Whether `session` may go on for this user: see [`UserStanding::accepts`].
    pub fn accepts(&self, session: &SessionRecord) -> bool {
        self.standing().accepts(&session.standing())
    }

    /// The part of the user that decides which sessions may go on.
    pub fn standing(&self) -> UserStanding {
        UserStanding {
            user_id: self.user_id.clone(),
            disabled: self.disabled,
            session_epoch: self.session_epoch,
        }
    }
}

/// What decides which of a user's sessions may go on: the user item without its password
/// hash or roles, as the strict authorizer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStanding {
    /// Stable id (`sub`).
    pub user_id: String,
    /// A disabled user's sessions are all dead.
    pub disabled: bool,
    /// The user's current session epoch: only sessions created under it are accepted.
    pub session_epoch: u64,
}

impl UserStanding {
    /// The one rule refresh, logout everywhere, the account endpoints and the strict
    /// authorizer apply: the user is enabled, owns the session, and the session was created
    /// under the user's current epoch. A version, not a time: a login after a bump carries
    /// the new epoch and lives, even in the same second; a login that read the user before
    /// the bump carries the old one and is dead, even if it finishes after.
    pub fn accepts(&self, session: &SessionStanding) -> bool {
        // SECURITY: equality, not "at least": an epoch the user never had is not trusted.
        !self.disabled && self.user_id == session.user_id && session.session_epoch == self.session_epoch
    }

    /// Whether no later state of this user can accept `session`: epochs only grow, so one
    /// behind the user's is dead for good. A disabled flag is not final on its own (an
    /// enable clears it) and neither is an epoch ahead of this read (the read is stale).
    pub fn refuses_for_good(&self, session: &SessionStanding) -> bool {
        self.user_id != session.user_id || session.session_epoch < self.session_epoch
    }
}

/// What decides whether a session is live: the session item without its token hashes, as
/// the strict authorizer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStanding {
    /// The key.
    pub session_id: SessionId,
    /// Owner.
    pub user_id: String,
    /// Owner's username: the key of the user item.
    pub username: String,
    /// When the session started.
    pub created_at: u64,
    /// Sliding idle expiry.
    pub expires_at: u64,
    /// Hard end.
    pub absolute_expires_at: u64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<u64>,
    /// The user's session epoch when the session was created.
    pub session_epoch: u64,
}

impl SessionStanding {
    /// Not revoked and neither expiry passed (see [`SessionRecord::is_live`]).
    pub fn is_live(&self, now: u64) -> bool {
        live_at(self.revoked_at, self.expires_at, self.absolute_expires_at, now)
    }
}

/// A session and its user's standing, read together by the strict authorizer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// The session.
    pub session: SessionStanding,
    /// Its user; `None` when the user item is gone (which ends the session).
    pub user: Option<UserStanding>,
}

impl Standing {
    /// Whether the session is live and its user accepts it: the test refresh applies.
    pub fn is_live(&self, now: u64) -> bool {
        self.session.is_live(now) && self.user.as_ref().is_some_and(|user| user.accepts(&self.session))
    }

    /// Whether the session is dead whatever happens next: revoked, its user gone, or
    /// refused by its user for good (see [`UserStanding::refuses_for_good`]). An expiry is
    /// not final (a refresh since the read may have moved it), nor a refusal a later read of
    /// the user could undo.
    pub fn is_dead_for_good(&self) -> bool {
        self.session.revoked_at.is_some() || self.user.as_ref().is_none_or(|user| user.refuses_for_good(&self.session))
    }

    /// Whether the verdict rests on the user item: the session itself is not revoked, but
    /// its user is gone or refuses it. Such a verdict is read again, consistently, before
    /// anyone caches it (an eventually consistent read may show the user before an enable
    /// or an epoch bump that the session already carries).
    pub fn refused_by_user(&self) -> bool {
        self.session.revoked_at.is_none() && !self.user.as_ref().is_some_and(|user| user.accepts(&self.session))
    }
}

/// Not revoked and before both expiries.
fn live_at(revoked_at: Option<u64>, expires_at: u64, absolute_expires_at: u64, now: u64) -> bool {
    revoked_at.is_none() && now < expires_at && now < absolute_expires_at
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("username", &self.username)
            .field("user_id", &self.user_id)
            .field("password_hash", &"<redacted>")
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .field("password_changed_at", &self.password_changed_at)
            .field("session_epoch", &self.session_epoch)
            .finish()
    }
}

/// Login-attempt bookkeeping for one username, kept whether or not the user exists. An
/// attempt is reserved before the password is hashed, so parallel guesses cannot outrun it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Attempts reserved since the counter was last reset (finished or still in flight).
    pub attempts: u32,
    /// Attempts allowed before the next throttle period ends: [`THROTTLE_AFTER_FAILURES`]
    /// at first, then one more per throttle period (0 reads as the first).
    pub allowed: u32,
    /// When the last attempt was reserved (epoch seconds).
    pub last_attempt_at: u64,
    /// No attempt is reserved before this instant (epoch seconds); 0 when not throttled.
    pub throttled_until: u64,
}

/// Attempts within this many seconds of each other count together.
pub const THROTTLE_WINDOW_SECS: u64 = 15 * 60;
/// The failure that starts throttling: at most this many passwords are checked per window.
pub const THROTTLE_AFTER_FAILURES: u32 = 5;
/// The first throttle period; each further failure doubles it, up to the window.
pub const THROTTLE_BASE_SECS: u64 = 30;
/// A reserved attempt that never reported (the function crashed or timed out, or its
/// failure could not be recorded) stops blocking the next one after this long: far longer
/// than a password check, so it never lets a sixth guess beside five running ones.
pub const ATTEMPT_LEASE_SECS: u64 = 30;

/// The answer to a reservation of a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptReservation {
    /// The password may be checked; this is the `attempts`-th attempt of the window.
    Granted {
        /// The attempt's number, for [`UserStore::record_failure`].
        attempts: u32,
    },
    /// Throttled, or every allowed attempt is already taken: 429.
    Refused {
        /// Seconds until an attempt may be reserved again.
        retry_after_secs: u64,
    },
}

impl LoginThrottle {
    /// Seconds until the next attempt is allowed, when throttled now.
    pub fn retry_after(&self, now: u64) -> Option<u64> {
        (self.throttled_until > now).then(|| self.throttled_until - now)
    }

    /// Whether the counter went quiet for a whole window, so the next attempt starts over.
    pub fn is_stale(&self, now: u64) -> bool {
        now.saturating_sub(self.last_attempt_at) > THROTTLE_WINDOW_SECS
    }

    /// Attempts allowed in all before the current throttle period ends.
    pub fn allowed(&self) -> u32 {
        self.allowed.max(THROTTLE_AFTER_FAILURES)
    }

    /// Reserves one attempt: refused while throttled or while every allowed attempt is
    /// taken (checks still in flight count). The stores apply exactly this rule atomically.
    pub fn reserve(&mut self, now: u64) -> AttemptReservation {
        if self.is_stale(now) {
            *self = Self::default();
        }
        if let Some(retry_after_secs) = self.refusal(now) {
            return AttemptReservation::Refused { retry_after_secs };
        }
        self.attempts += 1;
        self.last_attempt_at = now;
        AttemptReservation::Granted { attempts: self.attempts }
    }

    /// Seconds until an attempt may be reserved, when none may be now: while throttled, or
    /// while every allowed attempt is taken and the last one's lease runs.
    pub fn refusal(&self, now: u64) -> Option<u64> {
        if let Some(secs) = self.retry_after(now) {
            return Some(secs);
        }
        // The allowed attempts are being checked right now; their answers decide.
        let lease_ends = self.last_attempt_at + ATTEMPT_LEASE_SECS;
        (self.attempts >= self.allowed() && now < lease_ends).then(|| lease_ends - now)
    }

    /// The throttle that the failure of attempt number `attempts` calls for: it starts at
    /// the fifth and grows, and allows one more attempt once it ends. Never shortens a
    /// longer throttle that a concurrent failure set, and does nothing once a success has
    /// reset the counter below this attempt.
    pub fn record_failure(&mut self, attempts: u32, now: u64) {
        if let Some(secs) = Self::throttle_secs(attempts)
            && self.attempts >= attempts
            && self.throttled_until < now + secs
        {
            self.throttled_until = now + secs;
            self.allowed = attempts + 1;
        }
    }

    /// How long the failure of attempt `attempts` throttles: nothing before the fifth,
    /// then 30 s, doubling with each further failure up to the window.
    pub fn throttle_secs(attempts: u32) -> Option<u64> {
        let extra = attempts.checked_sub(THROTTLE_AFTER_FAILURES)?;
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
    /// SHA-256 of the secret the last rotation replaced, so logout recognises a token that
    /// a refresh superseded moments ago without holding the refresh pepper.
    pub previous_token_hash: Option<TokenHash>,
    /// Rotations so far.
    pub generation: u64,
    /// When the last rotation happened (creation for generation 0).
    pub rotated_at: u64,
    /// When the session started.
    pub created_at: u64,
    /// The user's session epoch at login: the session lives while it is the user's.
    pub session_epoch: u64,
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
        live_at(self.revoked_at, self.expires_at, self.absolute_expires_at, now)
    }

    /// The part of the session that decides whether it may go on.
    pub fn standing(&self) -> SessionStanding {
        SessionStanding {
            session_id: self.session_id.clone(),
            user_id: self.user_id.clone(),
            username: self.username.clone(),
            created_at: self.created_at,
            expires_at: self.expires_at,
            absolute_expires_at: self.absolute_expires_at,
            revoked_at: self.revoked_at,
            session_epoch: self.session_epoch,
        }
    }

    /// Whether `hash` is the current token's or the one the last rotation replaced
    /// (constant-time).
    pub fn holds(&self, hash: &TokenHash) -> bool {
        let previous = self.previous_token_hash.as_ref().is_some_and(|previous| previous.ct_eq(hash));
        self.token_hash.ct_eq(hash) | previous
    }

    /// Neither expiry passed, revoked or not (a revoked item's expiry is brought forward to
    /// [`REVOKED_RETENTION_SECS`] after its revocation).
    pub fn is_retained(&self, now: u64) -> bool {
        now < self.expires_at && now < self.absolute_expires_at
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

/// A revoked session item is kept this long after its revocation (its `expires_at`, the
/// TTL attribute, is brought forward to it): long enough to finish a retried logout
/// everywhere and to read it in the audit trail, short enough to leave the `by_user`
/// index soon.
pub const REVOKED_RETENTION_SECS: u64 = 3600;
/// How many of a user's sessions [`SessionStore::revoke_all_but`] revokes at once.
const FAN_OUT_CONCURRENCY: usize = 8;
/// How long the fan-out after an epoch bump may run: the bump already ended the sessions,
/// revoking their items is a courtesy (listings show them ended at once), and it must leave
/// the function's timeout room to answer (logout and account: 5 s). A user with thousands of
/// sessions gets the newest of them revoked, and the rest refused at their next use.
pub const FAN_OUT_DEADLINE: Duration = Duration::from_millis(2500);

/// The condition of a revocation.
#[derive(Debug, Clone, Copy)]
pub enum RevokeIf<'a> {
    /// The session is live and this is the hash of its current token or of the one the last
    /// rotation replaced: only the holder of one of them ends it (a session id alone, which
    /// every access token carries, does not).
    Holds(&'a TokenHash),
    /// The session exists and is not revoked yet (operator, reuse, user invalidated).
    NotRevoked,
    /// The session is not revoked yet and was created under an epoch below this one: the
    /// fan-out after an epoch bump, which ends exactly the sessions the bump ended.
    EpochBelow(u64),
    /// The session is live (not revoked, neither expiry passed) and belongs to this user:
    /// a user ending one of their own sessions by id. The owner is part of the condition,
    /// not read first, so no interleaving lets one user end another's session.
    LiveOwnedBy(&'a str),
}

/// What a revocation did.
#[derive(Debug)]
pub enum Revocation {
    /// Revoked by this call; the session as it was before.
    Revoked(SessionRecord),
    /// The condition failed; the session as it is (returned by the same call), if it exists.
    Refused(Option<SessionRecord>),
}

impl Revocation {
    /// The session, when this call revoked it.
    pub fn revoked(self) -> Option<SessionRecord> {
        match self {
            Self::Revoked(session) => Some(session),
            Self::Refused(_) => None,
        }
    }
}

/// Sessions, keyed by session id, with an index by user.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session; fails rather than overwrite an existing id.
    async fn create(&self, session: &SessionRecord) -> Result<(), AuthError>;
    /// Rotates in one conditional write: hash and generation match, not revoked, not expired.
    async fn rotate(&self, rotation: &Rotation) -> Result<RotationOutcome, AuthError>;
    /// Revokes a session under `condition`, in one conditional write that also brings its
    /// expiry forward to [`REVOKED_RETENTION_SECS`] from `now`.
    async fn revoke(&self, session_id: &SessionId, condition: RevokeIf<'_>, reason: &str, now: u64) -> Result<Revocation, AuthError>;
    /// Reads one session (operator tools; the hot paths never read before writing).
    async fn get(&self, session_id: &SessionId) -> Result<Option<SessionRecord>, AuthError>;
    /// The ids of a user's sessions, newest first (through the `by_user_created` index),
    /// at most `limit` of them: the read is bounded by the request, not by the user's luck.
    async fn list_for_user(&self, user_id: &str, limit: usize) -> Result<Vec<SessionId>, AuthError>;
}

impl dyn SessionStore {
    /// Revokes the sessions of `user_id` created under an epoch below `epoch`, all but
    /// `keep`, newest first, concurrently and best-effort, for at most `deadline`: the caller
    /// has already bumped the user's epoch, which is what kills them at their next use; this
    /// makes listings and the account endpoints show them ended at once. A failure, or the
    /// deadline, loses nothing and is logged with how far it got. Returns how many this call
    /// revoked.
    pub async fn revoke_all_but(&self, user_id: &str, keep: &SessionId, epoch: u64, reason: &str, now: u64, deadline: Duration) -> usize {
        let revoked = AtomicUsize::new(0);
        let seen = AtomicUsize::new(0);
        let fan_out = async {
            let others: Vec<SessionId> = match self.list_for_user(user_id, usize::MAX).await {
                Ok(ids) => ids.into_iter().filter(|id| id != keep).collect(),
                Err(e) => {
                    tracing::warn!(cause = %e, "listing a user's sessions to revoke them failed; the epoch bump holds");
                    return;
                }
            };
            seen.store(others.len(), Ordering::Relaxed);
            stream::iter(others)
                .map(|id| async move { self.revoke(&id, RevokeIf::EpochBelow(epoch), reason, now).await })
                .buffer_unordered(FAN_OUT_CONCURRENCY)
                .for_each(|result| {
                    match result {
                        Ok(Revocation::Revoked(_)) => {
                            revoked.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Revocation::Refused(_)) => {}
                        Err(e) => tracing::warn!(cause = %e, "revoking one session failed; the epoch bump holds"),
                    }
                    std::future::ready(())
                })
                .await;
        };
        if tokio::time::timeout(deadline, fan_out).await.is_err() {
            tracing::warn!(
                revoked = revoked.load(Ordering::Relaxed),
                listed = seen.load(Ordering::Relaxed),
                "revoking a user's sessions stopped at its deadline; the epoch bump holds for the rest"
            );
        }
        revoked.load(Ordering::Relaxed)
    }
}

/// The strict authorizer's reads: a session's and its user's standing, projected to the
/// attributes that decide it (no hash of any kind). [`dyn StandingStore::standing`] puts
/// them together.
#[async_trait]
pub trait StandingStore: Send + Sync {
    /// One session, eventually consistent or, with `consistent`, not.
    async fn session(&self, session_id: &SessionId, consistent: bool) -> Result<Option<SessionStanding>, AuthError>;
    /// One user, eventually consistent or, with `consistent`, not.
    async fn user(&self, username: &str, consistent: bool) -> Result<Option<UserStanding>, AuthError>;
    /// Both in one request, eventually consistent.
    async fn both(&self, session_id: &SessionId, username: &str) -> Result<(Option<SessionStanding>, Option<UserStanding>), AuthError>;
    /// Opens the connection during cold start; failures only cost the first request time.
    async fn warm(&self) {}
}

impl dyn StandingStore {
    /// The standing of `session_id` and its user; `None` when the session does not exist.
    /// With the session's `username` already known (it never changes), one request for
    /// both; without, the session first (it names the user item: the token does not), then
    /// the user. A session an eventually consistent read misses may have been created a
    /// moment ago (a token used right after its login): it is asked for once more,
    /// consistently, before it is called unknown. Likewise a user that refuses the session:
    /// a lagging read may show it before the enable or the epoch bump the session was
    /// created after, and the verdict may be cached for good, so it is read again
    /// consistently first.
    pub async fn standing(&self, session_id: &SessionId, username: Option<&str>) -> Result<Option<Standing>, AuthError> {
        let (session, user) = match username {
            Some(username) => self.both(session_id, username).await?,
            None => (self.session(session_id, false).await?, None),
        };
        let session = match session {
            Some(session) => session,
            None => match self.session(session_id, true).await? {
                Some(session) => session,
                None => return Ok(None),
            },
        };
        let user = match username {
            Some(_) => user,
            None => self.user(&session.username, false).await?,
        };
        let standing = Standing { session, user };
        if !standing.refused_by_user() {
            return Ok(Some(standing));
        }
        let user = self.user(&standing.session.username, true).await?;
        Ok(Some(Standing { user, ..standing }))
    }
}

/// Users and their login throttle state.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// One user.
    async fn get(&self, username: &str) -> Result<Option<UserRecord>, AuthError>;
    /// Reserves one login attempt for `username` in one atomic write, by the rule of
    /// [`LoginThrottle::reserve`], before any password is checked.
    async fn reserve_attempt(&self, username: &str, now: u64) -> Result<AttemptReservation, AuthError>;
    /// Records that attempt number `attempts` failed, by the rule of
    /// [`LoginThrottle::record_failure`]; writes only when a throttle starts or grows.
    async fn record_failure(&self, username: &str, attempts: u32, now: u64) -> Result<(), AuthError>;
    /// Resets the attempt counter after a successful login.
    async fn clear_attempts(&self, username: &str) -> Result<(), AuthError>;
    /// Adds a user; `false` if the username is taken.
    async fn create(&self, user: &UserRecord) -> Result<bool, AuthError>;
    /// Enables or disables a user; disabling also bumps the session epoch in the same
    /// write, so every existing session is dead and enabling the account again does not
    /// bring them back. `false` if there is no such user.
    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, AuthError>;
    /// Replaces the user's password hash, sets `password_changed_at` to `now` and bumps the
    /// session epoch, in one write: every session is dead from its next use on (an
    /// operator's change or a reset). `false` if there is no such user.
    async fn set_password(&self, username: &str, password_hash: &str, now: u64) -> Result<bool, AuthError>;
    /// The user's own password change, in one transaction over the user and the caller's
    /// session: the new hash, `password_changed_at = now` and the epoch bumped from
    /// `keep.session_epoch`, and `keep` moved to the new epoch, so it is the one session that
    /// survives. Only while the stored hash is still `verified_hash` (the one the current
    /// password was just checked against: of two racing changes one fails), the epoch is
    /// still the caller's, and `keep` is live and the user's. `false` when a condition
    /// failed; nothing is written then.
    async fn change_password(&self, username: &str, verified_hash: &str, new_hash: &str, keep: &SessionRecord, now: u64) -> Result<bool, AuthError>;
    /// Replaces the user's roles; tokens carry them from the session's next refresh on.
    /// `false` if there is no such user.
    async fn set_roles(&self, username: &str, roles: &[String]) -> Result<bool, AuthError>;
    /// Bumps the user's session epoch from `epoch` to `epoch + 1` in one conditional write:
    /// every session created under `epoch` or earlier is dead from its next use on. Only
    /// from `epoch`, so a retry (which sees it bumped) does nothing and cannot end sessions
    /// created since, and a session already behind ends nothing. `false` when the epoch was
    /// not `epoch` (or the user is gone).
    async fn bump_session_epoch(&self, username: &str, epoch: u64) -> Result<bool, AuthError>;
    /// Opens the connection during cold start; failures only cost the first request time.
    async fn warm(&self) {}
}

/// The table key of a username: trimmed and lowercased.
pub fn normalize_username(raw: &str) -> String {
    raw.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_attempt_that_never_reports_stops_blocking_after_its_lease() {
        let mut throttle = LoginThrottle::default();
        for _ in 0..THROTTLE_AFTER_FAILURES {
            assert!(matches!(throttle.reserve(1_000), AttemptReservation::Granted { .. }));
        }
        // Four failures recorded, the fifth check crashed: nothing throttles, yet all are taken.
        for attempt in 1..THROTTLE_AFTER_FAILURES {
            throttle.record_failure(attempt, 1_000);
        }
        assert_eq!(throttle.reserve(1_010), AttemptReservation::Refused { retry_after_secs: 20 });
        assert_eq!(throttle.reserve(1_000 + ATTEMPT_LEASE_SECS), AttemptReservation::Granted { attempts: 6 });
    }

    #[test]
    fn a_failure_recorded_after_a_reset_changes_nothing() {
        let mut throttle = LoginThrottle::default();
        for _ in 0..THROTTLE_AFTER_FAILURES {
            throttle.reserve(1_000);
        }
        // A success reset the counter while the fifth guess was still being checked.
        let mut reset = LoginThrottle::default();
        reset.record_failure(THROTTLE_AFTER_FAILURES, 1_001);
        assert_eq!(reset, LoginThrottle::default());
        throttle.record_failure(THROTTLE_AFTER_FAILURES, 1_001);
        assert_eq!(throttle.retry_after(1_001), Some(THROTTLE_BASE_SECS));
    }
}
