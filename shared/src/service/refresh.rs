//! Refresh: one conditional rotation, and the classification of a refused one (grace,
//! reuse, forgery) from the item the refused write returned.

use super::{AuthService, IssuedTokens, RefreshFailure, Successor, audit_session};
use crate::audit::{AuditEvent, RequestMeta};
use crate::error::AuthError;
use crate::keys::SigningKeys;
use crate::store::{Revocation, RevokeIf, Rotation, RotationOutcome, SessionRecord};
use crate::tokens::RefreshToken;

/// The revocation reason of a session whose refresh token was replayed.
pub(super) const REUSE_DETECTED: &str = "reuse_detected";

impl AuthService {
    /// Rotates a refresh token in one conditional write. See docs/design.md: a stale token
    /// within the grace window gets the same successor, an older authentic one revokes the
    /// session, anything else is refused without a write.
    pub async fn refresh(&self, presented: Option<&str>, meta: &RequestMeta) -> Result<IssuedTokens, RefreshFailure> {
        let presented = RefreshToken::parse(presented.ok_or(AuthError::InvalidToken)?)?;
        let keys = self.keys.current().await?;
        let now = self.clock.now();
        let successor = presented.successor(keys.refresh_pepper());
        let rotation = Rotation {
            session_id: presented.session_id.clone(),
            expected_hash: presented.hash(),
            expected_generation: presented.generation,
            new_hash: successor.hash(),
            now,
            idle_expires_at: now + self.refresh_idle_ttl,
        };
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
        if let Some(user) = user.as_ref().filter(|user| user.accepts(&session)) {
            return self.issue(&keys, user, &session, current.clone(), now).map_err(committed);
        }
        // Ended only while still behind the user's epoch. The refused write returns the item
        // as it is: a session the caller's own password change moved to the new epoch after
        // the rotation returned it is that change's survivor, and is answered.
        let condition = match &user {
            Some(user) if user.user_id == session.user_id && user.session_epoch > 0 => RevokeIf::EpochBelow(user.session_epoch),
            _ => RevokeIf::NotRevoked,
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

    /// Decides what a failed rotation means, from the item the failed write returned.
    async fn classify_rejected(
        &self,
        presented: &RefreshToken,
        stored: Option<SessionRecord>,
        keys: &SigningKeys,
        now: u64,
        meta: &RequestMeta,
    ) -> Result<(SessionRecord, RefreshToken), AuthError> {
        let Some(session) = stored.filter(|s| s.is_retained(now)) else {
            return Err(AuthError::InvalidToken);
        };
        if session.revoked_at.is_some() {
            return Err(Self::refusal_of_revoked(presented, &session, keys));
        }
        // SECURITY: only a token whose chain leads to the stored hash is authentic; anything
        // else (wrong secret, future generation) is a forgery and must cost the user nothing.
        let Some(current) = presented.descendant_matching(keys.refresh_pepper(), session.generation, &session.token_hash) else {
            tracing::warn!(session_id = %session.session_id, "refresh with a forged token refused");
            return Err(AuthError::InvalidToken);
        };
        // The immediate predecessor is answered with the same successor, writing nothing, when
        // the rotation is this very instant's (an SDK retry of our own write whose answer was
        // lost, even with the grace window off) or within the grace window (another tab).
        let predecessor = presented.generation + 1 == session.generation;
        let own_write = session.rotated_at >= now;
        let in_window = self.refresh_reuse_grace > 0 && now - session.rotated_at.min(now) <= self.refresh_reuse_grace;
        if predecessor && (own_write || in_window) {
            audit_session(AuditEvent::RefreshRotated, meta, &session, Some("grace"));
            return Ok((session, current));
        }
        self.sessions.revoke(&session.session_id, RevokeIf::NotRevoked, REUSE_DETECTED, now).await?;
        audit_session(AuditEvent::RefreshReuseDetected, meta, &session, Some("old_generation"));
        Err(AuthError::TokenReused)
    }

    /// The answer to an authentic token of a revoked session: `token_reused` when reuse
    /// ended it, so the victim's app (holding the current token) can say why it was signed
    /// out, as the thief's was; `invalid_token` for any other reason and for a forgery.
    fn refusal_of_revoked(presented: &RefreshToken, session: &SessionRecord, keys: &SigningKeys) -> AuthError {
        // SECURITY: only a token of the session's chain learns why it ended.
        let authentic = presented.hash().ct_eq(&session.token_hash)
            | presented
                .descendant_matching(keys.refresh_pepper(), session.generation, &session.token_hash)
                .is_some();
        if authentic && session.revoke_reason.as_deref() == Some(REUSE_DETECTED) {
            AuthError::TokenReused
        } else {
            AuthError::InvalidToken
        }
    }
}
