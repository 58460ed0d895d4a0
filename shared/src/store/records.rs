//! The records the stores hold and the use cases read: users, sessions, and the standings
//! (the parts of both that decide whether a session may go on) with the one rule over them.

use std::fmt;

use crate::claims::Authentication;
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
    /// The clock rule's revocation point from items written before epochs existed (the
    /// later of `sessions_valid_after` and `password_changed_at`; 0 when neither): what
    /// still decides for sessions written before epochs, until the user's first bump.
    pub legacy_sessions_valid_after: u64,
    /// Whether the address is proven to be the user's. A self-service sign-up starts
    /// unverified and cannot log in until it is; users an operator created, and items
    /// without the flag, are verified.
    pub email_verified: bool,
    /// When an account that was never verified disappears (the users table's TTL
    /// attribute), freeing the address; `None` for every other account.
    pub expires_at: Option<u64>,
}

impl UserRecord {
    /// A new user as an operator creates one: enabled, verified, at epoch 0, its password
    /// never changed, never expiring. A self-service sign-up starts from it, unverified.
    pub fn new(username: impl Into<String>, user_id: impl Into<String>, password_hash: impl Into<String>, roles: Vec<String>) -> Self {
        Self {
            username: username.into(),
            user_id: user_id.into(),
            password_hash: password_hash.into(),
            roles,
            disabled: false,
            password_changed_at: 0,
            session_epoch: 0,
            legacy_sessions_valid_after: 0,
            email_verified: true,
            expires_at: None,
        }
    }

    /// Whether the item still stands for a user at `now`: an unverified sign-up past its
    /// time is treated as absent, though DynamoDB deletes it late.
    pub fn is_present(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|at| now < at)
    }

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
            legacy_sessions_valid_after: self.legacy_sessions_valid_after,
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
    /// See [`UserRecord::legacy_sessions_valid_after`].
    pub legacy_sessions_valid_after: u64,
}

impl UserStanding {
    /// The one rule refresh, logout everywhere, the account endpoints and the strict
    /// authorizer apply: the user is enabled, owns the session, and the session was created
    /// under the user's current epoch. A version, not a time: a login after a bump carries
    /// the new epoch and lives, even in the same second; a login that read the user before
    /// the bump carries the old one and is dead, even if it finishes after.
    ///
    /// A session written before epochs existed (none stored) keeps the rule it was created
    /// under: it lives only while the user was never bumped and it is younger than the
    /// user's old revocation point, so an upgrade brings back no session an earlier logout
    /// everywhere, password change or disable had ended.
    pub fn accepts(&self, session: &SessionStanding) -> bool {
        let current = match session.session_epoch {
            // SECURITY: equality, not "at least": an epoch the user never had is not trusted.
            Some(epoch) => epoch == self.session_epoch,
            None => self.session_epoch == 0 && session.created_at > self.legacy_sessions_valid_after,
        };
        !self.disabled && self.user_id == session.user_id && current
    }

    /// Whether no later state of this user can accept `session`: epochs only grow, so one
    /// behind the user's is dead for good, and so is a session from before epochs once the
    /// user was bumped or its old point passed it (nothing moves that point any more). A
    /// disabled flag is not final on its own (an enable clears it) and neither is an epoch
    /// ahead of this read (the read is stale).
    pub fn refuses_for_good(&self, session: &SessionStanding) -> bool {
        let behind = match session.session_epoch {
            Some(epoch) => epoch < self.session_epoch,
            None => self.session_epoch > 0 || session.created_at <= self.legacy_sessions_valid_after,
        };
        self.user_id != session.user_id || behind
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
    /// The user's session epoch when the session was created; `None` for an item written
    /// before epochs existed.
    pub session_epoch: Option<u64>,
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
    /// The user's session epoch at login: the session lives while it is the user's. `None`
    /// for an item written before epochs existed (see [`UserStanding::accepts`]).
    pub session_epoch: Option<u64>,
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
    /// How the user authenticated for it (`amr` and `auth_time` of its access tokens): set
    /// at login, raised by a step-up, kept by every refresh.
    pub auth: Authentication,
}

impl SessionRecord {
    /// The epoch the session counts under for writes conditioned on it: an item from before
    /// epochs is at 0, as its user item is until its first bump.
    pub fn epoch(&self) -> u64 {
        self.session_epoch.unwrap_or(0)
    }

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

    /// A revocation's update: revoked at `now` for `reason`, and kept only
    /// [`super::REVOKED_RETENTION_SECS`] from now (its TTL brought forward).
    pub fn revoke(&mut self, reason: &str, now: u64) {
        self.revoked_at = Some(now);
        self.revoke_reason = Some(reason.to_owned());
        self.expires_at = now + super::REVOKED_RETENTION_SECS;
    }

    /// Neither expiry passed, revoked or not (a revoked item's expiry is brought forward to
    /// [`super::REVOKED_RETENTION_SECS`] after its revocation).
    pub fn is_retained(&self, now: u64) -> bool {
        now < self.expires_at && now < self.absolute_expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(epoch: u64, legacy_point: u64) -> UserStanding {
        UserStanding {
            user_id: "u".into(),
            disabled: false,
            session_epoch: epoch,
            legacy_sessions_valid_after: legacy_point,
        }
    }

    fn session(epoch: Option<u64>, created_at: u64) -> SessionStanding {
        SessionStanding {
            session_id: SessionId::generate(),
            user_id: "u".into(),
            username: "u@example.com".into(),
            created_at,
            expires_at: u64::MAX,
            absolute_expires_at: u64::MAX,
            revoked_at: None,
            session_epoch: epoch,
        }
    }

    #[test]
    fn a_session_written_before_epochs_keeps_its_clock_rule_until_the_users_first_bump() {
        // An earlier logout everywhere or password change at 100 ended the older sessions.
        let before_upgrade = user(0, 100);
        assert!(!before_upgrade.accepts(&session(None, 100)), "ended by the old point: stays ended");
        assert!(before_upgrade.refuses_for_good(&session(None, 100)));
        assert!(before_upgrade.accepts(&session(None, 101)), "a later one lives on through the upgrade");
        assert!(!before_upgrade.refuses_for_good(&session(None, 101)));
        // The first bump ends every session from before epochs, however young.
        let bumped = user(1, 100);
        assert!(!bumped.accepts(&session(None, 500)));
        assert!(bumped.refuses_for_good(&session(None, 500)));
        // Sessions with an epoch never look at the old point.
        assert!(before_upgrade.accepts(&session(Some(0), 50)));
        assert!(!bumped.accepts(&session(Some(0), 500)) && bumped.accepts(&session(Some(1), 50)));
        assert!(!bumped.refuses_for_good(&session(Some(2), 50)), "ahead of a stale user read: not final");
    }
}
