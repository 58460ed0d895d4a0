//! Persistence behind two traits, so the use cases never see an AWS type: the DynamoDB
//! implementation is in [`dynamodb`], an in-memory one in `testing`.

pub mod dynamodb;
mod records;
mod throttle;

pub use records::{SessionRecord, SessionStanding, Standing, UserRecord, UserStanding};
pub use throttle::{ATTEMPT_LEASE_SECS, AttemptReservation, LoginThrottle, THROTTLE_AFTER_FAILURES, THROTTLE_BASE_SECS, THROTTLE_WINDOW_SECS};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{StreamExt, stream};

use crate::claims::Authentication;
use crate::error::AuthError;
use crate::factors::{FactorUse, Factors, TotpSecret};
use crate::links::{IssuedLink, LinkPurpose};
use crate::passkeys::StoredPasskey;
use crate::tokens::{RefreshToken, SessionId, TokenHash};
use webauthn_rs::prelude::Uuid;

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

impl Rotation {
    /// The rotation of `presented` to `successor` at `now`, sliding the idle expiry to
    /// `idle_ttl` seconds from now: what refresh writes, and what the protocol model checks.
    pub fn of(presented: &RefreshToken, successor: &RefreshToken, now: u64, idle_ttl: u64) -> Self {
        Self {
            session_id: presented.session_id.clone(),
            expected_hash: presented.hash(),
            expected_generation: presented.generation,
            new_hash: successor.hash(),
            now,
            idle_expires_at: now + idle_ttl,
        }
    }

    /// The rotation's condition over the stored item: the presented token is the current
    /// one (hash and generation), and the session is neither revoked nor expired. The
    /// DynamoDB store writes exactly this as its `ConditionExpression`; the in-memory store
    /// and the protocol model (`shared/tests/session_model.rs`) evaluate it here.
    pub fn permits(&self, stored: &SessionRecord) -> bool {
        stored.token_hash == self.expected_hash && stored.generation == self.expected_generation && stored.is_live(self.now)
    }

    /// The rotation's update, applied where [`Self::permits`] held: the successor's hash
    /// becomes current, the presented one previous, the generation one up, the idle expiry
    /// slides.
    pub fn apply(&self, stored: &mut SessionRecord) {
        stored.previous_token_hash = Some(std::mem::replace(&mut stored.token_hash, self.new_hash.clone()));
        stored.generation += 1;
        stored.rotated_at = self.now;
        stored.expires_at = self.idle_expires_at;
    }
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
/// everywhere and to read it in the audit trail, short enough to leave the
/// `by_user_created` index soon.
pub const REVOKED_RETENTION_SECS: u64 = 3600;
/// How many of a user's sessions [`SessionStore::revoke_all_but`] revokes at once.
const FAN_OUT_CONCURRENCY: usize = 8;
/// How long the fan-out after an epoch bump may run: the bump already ended the sessions,
/// revoking their items is a courtesy (listings show them ended at once), and it must leave
/// the function's timeout room to answer (account: 5 s, logout: 10 s, with several tokens'
/// fan-outs sharing it). A user with thousands of sessions gets the newest of them revoked,
/// and the rest refused at their next use.
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

impl RevokeIf<'_> {
    /// The condition over the stored item at `now`: what the DynamoDB store writes as its
    /// `ConditionExpression`, evaluated here by the in-memory store and the protocol model.
    pub fn permits(&self, stored: &SessionRecord, now: u64) -> bool {
        match self {
            Self::Holds(hash) => stored.holds(hash) && stored.is_live(now),
            Self::NotRevoked => stored.revoked_at.is_none(),
            Self::EpochBelow(epoch) => stored.revoked_at.is_none() && stored.epoch() < *epoch,
            Self::LiveOwnedBy(user_id) => stored.user_id == *user_id && stored.is_live(now),
        }
    }
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
    /// Records that the session's user authenticated again (a step-up with a second
    /// factor), only while the session is live at `now` and `user_id`'s. `false` otherwise.
    async fn set_auth(&self, session_id: &SessionId, user_id: &str, auth: &Authentication, now: u64) -> Result<bool, AuthError>;
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
    /// a lagging read may show the user before an enable or an epoch bump a fresh login
    /// already carries, or the session before its own password change moved it to the new
    /// epoch, and the verdict may be cached for good; so both are read again, consistently,
    /// before it is given.
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
        let Some(session) = self.session(session_id, true).await? else {
            return Ok(None);
        };
        let user = self.user(&session.username, true).await?;
        Ok(Some(Standing { session, user }))
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

/// What the self-service flows (sign-up, e-mail verification, password reset) keep in the
/// users table: unverified users, one-time link tokens, and e-mail counters. One room of
/// its own beside [`UserStore`], implemented by the same stores.
#[async_trait]
pub trait LinkStore: Send + Sync {
    /// Creates `user` (unverified, with its expiry) where no user is, or where only an
    /// unverified one whose time ran out is. `false` when the address is taken.
    async fn create_unverified(&self, user: &UserRecord, now: u64) -> Result<bool, AuthError>;
    /// Stores `link` for `username` and makes it the user's only usable link of its
    /// purpose (any older one is superseded), in one transaction. `false` when there is no
    /// such user.
    async fn issue_link(&self, username: &str, link: &IssuedLink) -> Result<bool, AuthError>;
    /// The username a stored, unexpired link of `purpose` belongs to; `None` for anything
    /// else (unknown, used, expired, another purpose). Reads only: using it is another call.
    async fn link_owner(&self, hash: &TokenHash, purpose: LinkPurpose, now: u64) -> Result<Option<String>, AuthError>;
    /// Uses a verification link of `owner` (as [`Self::link_owner`] read it), in one
    /// transaction: the link is deleted, and the user is verified (its expiry removed), only
    /// while the link is still `owner`'s, unexpired, of this purpose, the user's current one,
    /// and the user's password hash is still `password_hash` (the one the verifier just
    /// proved to know). `false` when any of it failed: nothing was written.
    async fn verify_email(&self, hash: &TokenHash, owner: &str, password_hash: &str, now: u64) -> Result<bool, AuthError>;
    /// A repeated sign-up of an address whose account is still unverified: its pending
    /// password becomes `password_hash` (the latest sign-up's), only while the account is
    /// unverified and unexpired. `false` otherwise.
    async fn replace_unverified_password(&self, username: &str, password_hash: &str, now: u64) -> Result<bool, AuthError>;
    /// Uses a reset link of `owner`, in one transaction under the same link conditions: the
    /// new password hash, `password_changed_at = now`, the session epoch bumped (every
    /// session ends) and every reset link of the user superseded. `false` when a condition
    /// failed: nothing was written.
    async fn reset_password(&self, hash: &TokenHash, owner: &str, new_hash: &str, now: u64) -> Result<bool, AuthError>;
    /// Counts one e-mail (or request) against `key` in the current hour, in one conditional
    /// write: `false`, and nothing counted, once `limit` were counted this hour.
    async fn count_mail(&self, key: &str, limit: u64, now: u64) -> Result<bool, AuthError>;
}

/// The table key of a username: trimmed and lowercased.
pub fn normalize_username(raw: &str) -> String {
    raw.trim().to_lowercase()
}

/// A login half done: the password was right and the user has a second factor. Stored as a
/// one-time token (`link#<hash>`, purpose `mfa_login`) until the factor is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// SHA-256 of the `mfa_token` the client holds.
    pub hash: TokenHash,
    /// Whose password was checked.
    pub username: String,
    /// The user's session epoch at that check: a bump since (password change or reset,
    /// logout everywhere, disable) kills the challenge, as it would the session.
    pub session_epoch: u64,
    /// When the password was checked (the session's `auth_time` for `pwd`), or the
    /// provider's sign-in.
    pub password_at: u64,
    /// How the first factor was passed, as `amr`: `pwd` for a password, `fed` for a sign-in
    /// through another provider.
    pub first_amr: Vec<String>,
    /// Wrong answers so far.
    pub failures: u32,
    /// When it lapses.
    pub expires_at: u64,
    /// The passkey assertion ceremony offered with it (serialised state), when the user
    /// has passkeys.
    pub webauthn_state: Option<String>,
    /// That ceremony's request as the browser takes it (JSON): kept for a challenge whose
    /// token went into a cookie after a redirect, where no body carried the request
    /// (`POST /auth/login/mfa/options` gives it back).
    pub webauthn_options: Option<String>,
}

/// What a passkey ceremony is for: part of its item and of the condition that ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// A signed-in user registering a passkey.
    Register,
    /// A sign-in by a discoverable passkey.
    SignIn,
    /// A signed-in user passing their passkey again (step-up).
    StepUp,
    /// A sign-in (or, with an owner, a link) through another identity provider, between
    /// the redirect to it and its callback.
    OAuth,
}

impl CeremonyPurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Register => "passkey_register",
            Self::SignIn => "passkey_login",
            Self::StepUp => "passkey_step_up",
            Self::OAuth => "oauth",
        }
    }
}

/// A passkey ceremony between its start and its finish (`link#<hash>` items, as the other
/// one-time tokens): single use, 5 minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceremony {
    /// SHA-256 of the `passkey_token` the client holds.
    pub hash: TokenHash,
    /// What it is for.
    pub purpose: CeremonyPurpose,
    /// The registering user; `None` for a sign-in (no one is known yet).
    pub owner: Option<String>,
    /// The crate's serialised state (challenge, user verification policy, ...).
    pub state: String,
    /// When it lapses.
    pub expires_at: u64,
}

/// A user's account at another identity provider, keyed by the provider's issuer and the
/// user's subject there (never by e-mail): `identity#<issuer>#<subject>` items in the users
/// table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The provider's issuer, exactly as its ID tokens name it.
    pub issuer: String,
    /// The user's `sub` at the provider.
    pub subject: String,
    /// Our id of the provider (`OAUTH_PROVIDERS`), for display.
    pub provider: String,
    /// The user it signs in (the users table key).
    pub owner: String,
    /// That user's id.
    pub user_id: String,
    /// The address the provider gave at linking, if any (display only; never a key).
    pub email: Option<String>,
    /// When it was linked.
    pub created_at: u64,
}

impl Identity {
    /// The identity given to `user` (its owner's key and id).
    pub fn owned_by(self, user: &UserRecord) -> Self {
        Self {
            owner: user.username.clone(),
            user_id: user.user_id.clone(),
            ..self
        }
    }
}

/// The identities of other providers and the users they sign in.
#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// The identity with this issuer and subject, read consistently.
    async fn identity(&self, issuer: &str, subject: &str) -> Result<Option<Identity>, AuthError>;
    /// Links a new identity to its owner, in one transaction: only while no identity has
    /// that key and the owner exists with a verified address. `false` otherwise.
    async fn link(&self, identity: &Identity) -> Result<bool, AuthError>;
    /// Creates a user and its first identity in one transaction, neither existing before.
    /// `false` when one does.
    async fn create_with_identity(&self, user: &UserRecord, identity: &Identity) -> Result<bool, AuthError>;
    /// The identities linked to `owner` (the users table key), read consistently.
    async fn identities_of(&self, owner: &str) -> Result<Vec<Identity>, AuthError>;
    /// Unlinks `owner`'s identity (issuer, subject) in one transaction, only while it is
    /// theirs and they keep another way to sign in (another identity, or a password).
    /// `false`, and nothing written, otherwise.
    async fn unlink(&self, owner: &str, issuer: &str, subject: &str) -> Result<bool, AuthError>;
}

/// A user's second factors (`mfa#<username>` items) and login challenges, in the users
/// table. Every use of a factor is one conditional write, so a TOTP step or a recovery code
/// passes once however many requests race with it.
#[async_trait]
pub trait FactorStore: Send + Sync {
    /// The user's factors, read consistently; `None` when there are none.
    async fn factors(&self, username: &str) -> Result<Option<Factors>, AuthError>;
    /// Stores an enrolment waiting for its first code, replacing any earlier one, only
    /// while no TOTP is confirmed. `false` when one is.
    async fn start_totp(&self, username: &str, secret: &TotpSecret, until: u64) -> Result<bool, AuthError>;
    /// Confirms the pending enrolment `secret` with its first `step`, and stores the
    /// recovery codes, in one write: only while that enrolment is still pending and
    /// unlapsed at `now`, and no TOTP is confirmed. `false` otherwise.
    async fn confirm_totp(&self, username: &str, secret: &TotpSecret, step: u64, recovery_codes: &[TokenHash], now: u64) -> Result<bool, AuthError>;
    /// Removes the user's factors item (an operator's reset, after its passkeys).
    async fn remove_factors(&self, username: &str) -> Result<(), AuthError>;
    /// Turns TOTP off: the secret, its last step, a pending enrolment and the recovery
    /// codes go; passkeys stay.
    async fn remove_totp(&self, username: &str) -> Result<(), AuthError>;
    /// Replaces the recovery codes, while TOTP is on. `false` when it is not.
    async fn replace_recovery_codes(&self, username: &str, recovery_codes: &[TokenHash]) -> Result<bool, AuthError>;
    /// Uses a factor in one conditional write (a TOTP step later than the last one, or a
    /// recovery code still stored), and with `challenge`, in one transaction with consuming
    /// that challenge (it must still be `username`'s and unexpired at `now`). `false` when
    /// any condition failed: nothing was written.
    async fn use_factor(&self, username: &str, used: &FactorUse, challenge: Option<&TokenHash>, now: u64) -> Result<bool, AuthError>;
    /// Stores a new login challenge.
    async fn issue_challenge(&self, challenge: &Challenge) -> Result<(), AuthError>;
    /// The unexpired login challenge with this hash; `None` for anything else.
    async fn challenge(&self, hash: &TokenHash, now: u64) -> Result<Option<Challenge>, AuthError>;
    /// Counts one wrong answer to the challenge; the one that reaches `max_failures`
    /// deletes it.
    async fn fail_challenge(&self, hash: &TokenHash, max_failures: u32) -> Result<(), AuthError>;
    /// Adds a passkey to `username` with its user `handle`, and the pointer from its
    /// credential id to its owner, in one transaction: only while no account has that
    /// credential and the user's handle is `handle` or unset. `false` otherwise.
    async fn add_passkey(&self, username: &str, handle: &Uuid, passkey: &StoredPasskey) -> Result<bool, AuthError>;
    /// Removes a passkey of `username` and its pointer; `false` when it is not theirs.
    async fn remove_passkey(&self, username: &str, id: &str) -> Result<bool, AuthError>;
    /// The owner and user handle of a credential id, read consistently.
    async fn passkey_owner(&self, id: &str) -> Result<Option<(String, Uuid)>, AuthError>;
    /// Stores a ceremony.
    async fn issue_ceremony(&self, ceremony: &Ceremony) -> Result<(), AuthError>;
    /// Ends a ceremony in one conditional delete and returns it: only while it is of
    /// `purpose`, `owner`'s (when given) and unexpired at `now`. Single use: a second take,
    /// or one racing it, gets `None`.
    async fn take_ceremony(&self, hash: &TokenHash, purpose: CeremonyPurpose, owner: Option<&str>, now: u64) -> Result<Option<Ceremony>, AuthError>;
}
