//! Logout, and logout everywhere: a conditional revocation, then the epoch bump and the
//! fan-out.

use tokio::time::Instant;

use super::{AuthService, audit_session};
use crate::audit::{AuditEvent, RequestMeta};
use crate::error::AuthError;
use crate::store::{FAN_OUT_DEADLINE, Revocation, RevokeIf, SessionRecord};
use crate::tokens::RefreshToken;

/// The revocation reason of the session that asked for logout everywhere: a retry finds it
/// there, and only there.
pub(super) const LOGOUT_EVERYWHERE: &str = "logout_everywhere";
/// The revocation reason of the other sessions logout everywhere ends. Distinct, so their
/// tokens cannot pass for a retry of it (which would end sessions started since).
pub(super) const ENDED_BY_LOGOUT_EVERYWHERE: &str = "logout_everywhere_other";

impl AuthService {
    /// Ends the session of `presented`, when it is the session's current token or the one
    /// its last rotation replaced (a logout racing a refresh must not leave the session
    /// live), in one conditional write and without the refresh pepper. Idempotent: a
    /// missing, unknown, forged, older or already revoked token is not an error and ends
    /// nothing. With `everywhere`, ends every session of its user: see
    /// `end_every_session`.
    pub async fn logout(&self, presented: Option<&str>, everywhere: bool, meta: &RequestMeta) -> Result<(), AuthError> {
        self.logout_each(presented, everywhere, meta).await
    }

    /// [`Self::logout`] for each of several tokens (a request with several refresh
    /// cookies, one of them planted: each is authenticated on its own). Their fan-outs
    /// share one [`FAN_OUT_DEADLINE`], so many planted cookies cannot hold the request past
    /// the function's timeout.
    pub async fn logout_each<'a>(&self, presented: impl IntoIterator<Item = &'a str>, everywhere: bool, meta: &RequestMeta) -> Result<(), AuthError> {
        let deadline = Instant::now() + FAN_OUT_DEADLINE;
        for token in presented.into_iter().filter_map(|raw| RefreshToken::parse(raw).ok()) {
            self.logout_one(&token, everywhere, deadline, meta).await?;
        }
        Ok(())
    }

    /// One token's logout; a fan-out it starts stops at `deadline`.
    async fn logout_one(&self, token: &RefreshToken, everywhere: bool, deadline: Instant, meta: &RequestMeta) -> Result<(), AuthError> {
        let now = self.clock.now();
        let reason = if everywhere { LOGOUT_EVERYWHERE } else { "logout" };
        let hash = token.hash();
        let stored = match self.sessions.revoke(&token.session_id, RevokeIf::Holds(&hash), reason, now).await? {
            Revocation::Revoked(session) => {
                audit_session(AuditEvent::Logout, meta, &session, None);
                if everywhere {
                    self.end_every_session(&session, deadline, meta).await?;
                }
                return Ok(());
            }
            Revocation::Refused(None) => return Ok(()),
            Revocation::Refused(Some(stored)) => stored,
        };
        // A logout everywhere whose session was revoked but whose other steps did not
        // finish: the retry (with the same token) finishes them, from the session's epoch,
        // so it ends nothing created since.
        match stored.revoked_at {
            // SECURITY: only with the session's own current or previous token.
            Some(_) if everywhere && stored.revoke_reason.as_deref() == Some(LOGOUT_EVERYWHERE) && stored.is_retained(now) && stored.holds(&hash) => {
                self.end_every_session(&stored, deadline, meta).await
            }
            _ => {
                if stored.revoked_at.is_none() && !stored.holds(&hash) {
                    tracing::warn!(session_id = %stored.session_id, "logout with a forged or outdated token ignored");
                }
                Ok(())
            }
        }
    }

    /// Every session of `session`'s user created under its epoch or earlier ends: first the
    /// user's epoch is bumped from the session's (one conditional write, idempotent, which
    /// is what makes them all dead at their next use), then the session items are revoked
    /// best-effort, concurrently and until `deadline`, so listings show them ended; a
    /// failure or the deadline there loses nothing.
    async fn end_every_session(&self, session: &SessionRecord, deadline: Instant, meta: &RequestMeta) -> Result<(), AuthError> {
        self.users.bump_session_epoch(&session.username, session.epoch()).await?;
        let now = self.clock.now();
        let others = self
            .sessions
            .revoke_all_but(
                &session.user_id,
                &session.session_id,
                session.epoch() + 1,
                ENDED_BY_LOGOUT_EVERYWHERE,
                now,
                deadline.saturating_duration_since(Instant::now()),
            )
            .await;
        audit_session(AuditEvent::LogoutEverywhere, meta, session, Some(&format!("{} sessions", others + 1)));
        Ok(())
    }
}
