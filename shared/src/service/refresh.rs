//! Refresh: one conditional rotation, and the classification of a refused one (grace,
//! reuse, forgery) from the item the refused write returned.

use super::{AuthService, IssuedTokens, RefreshFailure, Successor, audit_session};
use crate::audit::{AuditEvent, RequestMeta};
use crate::error::AuthError;
use crate::keys::SigningKeys;
use crate::store::{Revocation, RevokeIf, Rotation, RotationOutcome, SessionRecord, UserRecord};
use crate::tokens::RefreshToken;
use aws_lc_rs::hmac;

/// The revocation reason of a session whose refresh token was replayed.
pub const REUSE_DETECTED: &str = "reuse_detected";

impl AuthService {
    /// Rotates a refresh token in one conditional write. See docs/design.md: a stale token
    /// within the grace window gets the same successor, an older authentic one revokes the
    /// session, anything else is refused without a write.
    pub async fn refresh(&self, presented: Option<&str>, meta: &RequestMeta) -> Result<IssuedTokens, RefreshFailure> {
        let presented = RefreshToken::parse(presented.ok_or(AuthError::InvalidToken)?)?;
        let keys = self.keys.current().await?;
        let now = self.clock.now();
        let successor = presented.successor(keys.refresh_pepper());
        let rotation = Rotation::of(&presented, &successor, now, self.refresh_idle_ttl);
        let (session, current) = match self.sessions.rotate(&rotation).await? {
            RotationOutcome::Rotated(session) => {
                audit_session(AuditEvent::RefreshRotated, meta, &session, None);
                (session, successor)
            }
            RotationOutcome::Rejected(stored) => self.classify_rejected(&presented, stored, &keys, now, meta).await?,
        };

        // The rotation is committed: from here on, a failure still hands back `current`.
        let max_age = self.refresh_max_age(&session, now);
        let committed = |error| RefreshFailure {
            error,
            successor: Some(Successor {
                refresh: current.clone(),
                max_age,
            }),
        };
        // Re-read the user: a disabled account, or an epoch bumped since the session began
        // (logout everywhere, a password change or reset), ends the session.
        let user = self.users.get(&session.username).await.map_err(committed)?;
        let condition = match judge_user(user.as_ref(), &session) {
            Ok(user) => return self.issue(&keys, user, &session, current.clone(), now).map_err(committed),
            Err(condition) => condition,
        };
        match self.sessions.revoke(&session.session_id, condition, "user_invalidated", now).await {
            Ok(Revocation::Revoked(_)) => {
                audit_session(AuditEvent::SessionRevoked, meta, &session, Some("user_invalidated"));
                Err(AuthError::InvalidToken.into())
            }
            Ok(Revocation::Refused(Some(moved))) => match &user {
                Some(user) if moved.is_live(now) && user.accepts(&moved) => self.issue(&keys, user, &moved, current.clone(), now).map_err(committed),
                _ => Err(AuthError::InvalidToken.into()),
            },
            Ok(Revocation::Refused(None)) => Err(AuthError::InvalidToken.into()),
            Err(e) => Err(committed(e)),
        }
    }

    /// Acts on what a refused rotation means ([`judge_refused`]): the grace answer, or the
    /// revocation of a reused session, or a refusal.
    async fn classify_rejected(
        &self,
        presented: &RefreshToken,
        stored: Option<SessionRecord>,
        keys: &SigningKeys,
        now: u64,
        meta: &RequestMeta,
    ) -> Result<(SessionRecord, RefreshToken), AuthError> {
        match judge_refused(presented, stored, keys.refresh_pepper(), now, self.refresh_reuse_grace) {
            Refused::Grace { session, current } => {
                audit_session(AuditEvent::RefreshRotated, meta, &session, Some("grace"));
                Ok((session, current))
            }
            Refused::Reuse(session) => {
                self.sessions.revoke(&session.session_id, RevokeIf::NotRevoked, REUSE_DETECTED, now).await?;
                audit_session(AuditEvent::RefreshReuseDetected, meta, &session, Some("old_generation"));
                Err(AuthError::TokenReused)
            }
            Refused::Forged(session) => {
                tracing::warn!(session_id = %session.session_id, "refresh with a forged token refused");
                Err(AuthError::InvalidToken)
            }
            Refused::Answer(error) => Err(error),
        }
    }
}

/// What a refused rotation means, decided from the item the refused write returned and
/// nothing else: no read, no write, no clock. The refresh function acts on it, and the
/// protocol model (`shared/tests/session_model.rs`) checks its decisions exhaustively.
#[derive(Debug)]
pub enum Refused {
    /// The immediate predecessor, answered with the same successor and no write: the
    /// rotation is this very instant's (an SDK retry of our own write whose answer was lost,
    /// even with the grace window off) or within `REFRESH_REUSE_GRACE` (another tab).
    Grace {
        /// The session as stored.
        session: SessionRecord,
        /// Its current token, the successor the first answer carried.
        current: RefreshToken,
    },
    /// An authentic older token: the session is to be revoked as reused.
    Reuse(SessionRecord),
    /// A token whose chain does not lead to the stored hash (wrong secret, future
    /// generation): refused, at no cost to the user.
    Forged(SessionRecord),
    /// Refused with this answer, nothing to do: no such session (or past its retention), or
    /// a revoked one.
    Answer(AuthError),
}

/// Decides what a refused rotation of `presented` means, given the session item the refused
/// write returned (see [`Refused`]).
pub fn judge_refused(presented: &RefreshToken, stored: Option<SessionRecord>, pepper: &hmac::Key, now: u64, grace: u64) -> Refused {
    let Some(session) = stored.filter(|s| s.is_retained(now)) else {
        return Refused::Answer(AuthError::InvalidToken);
    };
    if session.revoked_at.is_some() {
        return Refused::Answer(refusal_of_revoked(presented, &session, pepper));
    }
    // SECURITY: only a token whose chain leads to the stored hash is authentic; anything
    // else (wrong secret, future generation) is a forgery and must cost the user nothing.
    let Some(current) = presented.descendant_matching(pepper, session.generation, &session.token_hash) else {
        return Refused::Forged(session);
    };
    let predecessor = presented.generation + 1 == session.generation;
    let own_write = session.rotated_at >= now;
    let in_window = grace > 0 && now - session.rotated_at.min(now) <= grace;
    if predecessor && (own_write || in_window) {
        Refused::Grace { session, current }
    } else {
        Refused::Reuse(session)
    }
}

/// Whether the user read after a rotation lets the session go on: `Ok` with the user to
/// issue for, or `Err` with the condition to end the session under. Ended only while still
/// behind the user's epoch: the refused write returns the item as it is, and a session the
/// caller's own password change moved to the new epoch after the rotation returned it is
/// that change's survivor, and is answered.
pub fn judge_user<'u>(user: Option<&'u UserRecord>, session: &SessionRecord) -> Result<&'u UserRecord, RevokeIf<'static>> {
    match user {
        Some(user) if user.accepts(session) => Ok(user),
        Some(user) if user.user_id == session.user_id && user.session_epoch > 0 => Err(RevokeIf::EpochBelow(user.session_epoch)),
        _ => Err(RevokeIf::NotRevoked),
    }
}

/// The answer to an authentic token of a revoked session: `token_reused` when reuse ended
/// it, so the victim's app (holding the current token) can say why it was signed out, as
/// the thief's was; `invalid_token` for any other reason and for a forgery.
fn refusal_of_revoked(presented: &RefreshToken, session: &SessionRecord, pepper: &hmac::Key) -> AuthError {
    // SECURITY: only a token of the session's chain learns why it ended.
    let authentic = presented.hash().ct_eq(&session.token_hash) | presented.descendant_matching(pepper, session.generation, &session.token_hash).is_some();
    if authentic && session.revoke_reason.as_deref() == Some(REUSE_DETECTED) {
        AuthError::TokenReused
    } else {
        AuthError::InvalidToken
    }
}
