//! The use cases: login, refresh (rotation with reuse detection) and logout. Everything
//! here talks to stores and keys through traits, so it is tested with in-memory stores
//! and a fixed clock.

use std::sync::Arc;

use secrecy::SecretString;

use crate::audit::{self, AuditEvent, RequestMeta};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::AuthError;
use crate::keys::{KeyCache, KeySet};
use crate::password::verify_password;
use crate::store::{Rotation, RotationOutcome, SessionRecord, SessionStore, UserRecord, UserStore, normalize_username};
use crate::tokens::{AccessTokens, IssuedAccessToken, RefreshToken, SessionId};

/// What a successful login or refresh hands to the client.
#[derive(Debug)]
pub struct IssuedTokens {
    /// The new access token.
    pub access: IssuedAccessToken,
    /// The session's current refresh token.
    pub refresh: RefreshToken,
    /// Seconds the refresh token stays usable if idle (the cookie's `Max-Age`).
    pub refresh_max_age: u64,
}

/// The authentication use cases over their stores, keys and clock.
pub struct AuthService {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    keys: Arc<KeyCache>,
    tokens: AccessTokens,
    clock: Arc<dyn Clock>,
    refresh_idle_ttl: u64,
    session_max_age: u64,
    refresh_reuse_grace: u64,
}

impl AuthService {
    /// Wires the use cases.
    pub fn new(config: &Config, users: Arc<dyn UserStore>, sessions: Arc<dyn SessionStore>, keys: Arc<KeyCache>, clock: Arc<dyn Clock>) -> Self {
        Self {
            users,
            sessions,
            keys,
            tokens: AccessTokens::new(config),
            clock,
            refresh_idle_ttl: config.refresh_idle_ttl,
            session_max_age: config.session_max_age,
            refresh_reuse_grace: config.refresh_reuse_grace,
        }
    }

    /// Cold-start work for login and refresh: fetches the key set in parallel with opening
    /// the DynamoDB connection, so the first request pays for neither. Failures are logged;
    /// the first request tries again and answers 503 while it cannot. Logout skips this: it
    /// needs no keys and is not granted them.
    pub async fn warm_up(&self) {
        let (keys, ()) = tokio::join!(self.keys.current(), self.users.warm());
        if let Err(e) = keys {
            tracing::error!(cause = %e, "key set not available at cold start");
        }
    }

    /// Checks a password and starts a session. Unknown user, wrong password and disabled
    /// account take the same path (a full argon2id verification and a counted failure) and
    /// give the same error.
    pub async fn login(&self, username: &str, password: SecretString, meta: &RequestMeta) -> Result<IssuedTokens, AuthError> {
        let username = normalize_username(username);
        let now = self.clock.now();
        let (user, throttle) = self.users.login_state(&username).await?;
        if let Some(retry_after_secs) = throttle.retry_after(now) {
            audit::emit(AuditEvent::LoginThrottled, meta, user.as_ref().map(|u| u.user_id.as_str()), None, None);
            return Err(AuthError::TooManyAttempts { retry_after_secs });
        }
        // Fetch keys before checking the password: without them nothing can be issued.
        let keys = self.keys.current().await?;
        let verified = verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
        let user = match user {
            Some(user) if verified && !user.disabled => user,
            other => {
                let reason = match &other {
                    None => "unknown_user",
                    Some(u) if u.disabled => "disabled",
                    Some(_) => "wrong_password",
                };
                self.users.record_failure(&username, &throttle, now).await?;
                audit::emit(AuditEvent::LoginFailed, meta, other.as_ref().map(|u| u.user_id.as_str()), None, Some(reason));
                return Err(AuthError::InvalidCredentials);
            }
        };
        if throttle.failed_logins > 0 {
            self.users.clear_failures(&username).await?;
        }

        let session_id = SessionId::generate();
        let refresh = RefreshToken::start(session_id.clone());
        let session = SessionRecord {
            session_id,
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            token_hash: refresh.hash(),
            generation: 0,
            rotated_at: now,
            created_at: now,
            expires_at: now + self.refresh_idle_ttl,
            absolute_expires_at: now + self.session_max_age,
            revoked_at: None,
            revoke_reason: None,
            user_agent: meta.user_agent.clone(),
            source_ip: meta.source_ip.clone(),
        };
        self.sessions.create(&session).await?;
        let issued = self.issue(&keys, &user, &session, refresh, now)?;
        audit_session(AuditEvent::LoginSucceeded, meta, &session, None);
        Ok(issued)
    }

    /// Rotates a refresh token in one conditional write. See DESIGN.md: a stale token
    /// within the grace window gets the same successor, an older authentic one revokes the
    /// session, anything else is refused without a write.
    pub async fn refresh(&self, presented: Option<&str>, meta: &RequestMeta) -> Result<IssuedTokens, AuthError> {
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

        // Re-read the user: a disabled account or a changed password ends the session.
        let user = self.users.get(&session.username).await?;
        let user = match user {
            Some(user) if !user.disabled && user.user_id == session.user_id && user.password_changed_at <= session.created_at => user,
            _ => {
                if self.sessions.revoke(&session.session_id, None, "user_invalidated", now).await?.is_some() {
                    audit_session(AuditEvent::SessionRevoked, meta, &session, Some("user_invalidated"));
                }
                return Err(AuthError::InvalidToken);
            }
        };
        self.issue(&keys, &user, &session, current, now)
    }

    /// Decides what a failed rotation means, from the item the failed write returned.
    async fn classify_rejected(
        &self,
        presented: &RefreshToken,
        stored: Option<SessionRecord>,
        keys: &KeySet,
        now: u64,
        meta: &RequestMeta,
    ) -> Result<(SessionRecord, RefreshToken), AuthError> {
        let Some(session) = stored.filter(|s| s.is_live(now)) else {
            return Err(AuthError::InvalidToken);
        };
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
        self.sessions.revoke(&session.session_id, None, "reuse_detected", now).await?;
        audit_session(AuditEvent::RefreshReuseDetected, meta, &session, Some("old_generation"));
        Err(AuthError::TokenReused)
    }

    /// Ends the session of `presented` (idempotent: a missing, unknown or already revoked
    /// token is not an error). With `everywhere`, ends every session of its user.
    pub async fn logout(&self, presented: Option<&str>, everywhere: bool, meta: &RequestMeta) -> Result<(), AuthError> {
        let Some(token) = presented.and_then(|raw| RefreshToken::parse(raw).ok()) else {
            return Ok(());
        };
        let now = self.clock.now();
        let reason = if everywhere { "logout_everywhere" } else { "logout" };
        let Some(session) = self.sessions.revoke(&token.session_id, Some(&token.hash()), reason, now).await? else {
            return Ok(());
        };
        audit_session(AuditEvent::Logout, meta, &session, None);
        if everywhere {
            let mut revoked = 1;
            for session_id in self.sessions.list_for_user(&session.user_id).await? {
                if session_id != session.session_id && self.sessions.revoke(&session_id, None, reason, now).await?.is_some() {
                    revoked += 1;
                }
            }
            audit_session(AuditEvent::LogoutEverywhere, meta, &session, Some(&format!("{revoked} sessions")));
        }
        Ok(())
    }

    fn issue(&self, keys: &KeySet, user: &UserRecord, session: &SessionRecord, refresh: RefreshToken, now: u64) -> Result<IssuedTokens, AuthError> {
        let access = self.tokens.issue(keys, &user.user_id, session.session_id.as_str(), &user.roles, now)?;
        let refresh_max_age = session.expires_at.min(session.absolute_expires_at).saturating_sub(now);
        Ok(IssuedTokens {
            access,
            refresh,
            refresh_max_age,
        })
    }
}

/// One audit line about `session`.
fn audit_session(event: AuditEvent, meta: &RequestMeta, session: &SessionRecord, reason: Option<&str>) {
    audit::emit(event, meta, Some(&session.user_id), Some(session.session_id.as_str()), reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ALICE, TestBed, config};

    fn meta() -> RequestMeta {
        RequestMeta::default()
    }

    async fn login(bed: &TestBed) -> IssuedTokens {
        bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap()
    }

    async fn refresh(bed: &TestBed, token: &RefreshToken) -> Result<IssuedTokens, AuthError> {
        bed.service.refresh(Some(&token.encode()), &meta()).await
    }

    #[tokio::test]
    async fn login_stores_only_the_hash_of_the_refresh_token() {
        let bed = TestBed::new(config());
        let issued = bed.service.login("  Alice@Example.com ", ALICE.1.to_owned().into(), &meta()).await.unwrap();
        let stored = bed.sessions.stored(&issued.refresh.session_id).unwrap();
        assert!(stored.token_hash.ct_eq(&issued.refresh.hash()));
        assert_eq!(stored.generation, 0);
        assert_eq!(stored.user_id, "user-alice");
        assert_eq!(issued.refresh_max_age, bed.config.refresh_idle_ttl);
        assert_eq!(issued.access.claims.sid, issued.refresh.session_id.as_str());
        assert_eq!(issued.access.claims.roles, vec!["user".to_string()]);
    }

    #[tokio::test]
    async fn unknown_user_wrong_password_and_disabled_user_fail_alike() {
        let bed = TestBed::new(config());
        let mut disabled = bed.users.get(ALICE.0).await.unwrap().unwrap();
        disabled.username = "bob@example.com".into();
        disabled.disabled = true;
        bed.users.put(disabled);
        for (user, password) in [("nobody@example.com", ALICE.1), (ALICE.0, "wrong password"), ("bob@example.com", ALICE.1)] {
            let err = bed.service.login(user, password.to_owned().into(), &meta()).await.unwrap_err();
            assert!(matches!(err, AuthError::InvalidCredentials), "{user}: {err:?}");
            assert_eq!(bed.users.throttle(user).failed_logins, 1, "failures are counted for {user}");
        }
        assert_eq!(bed.sessions.writes(), 0);
    }

    #[tokio::test]
    async fn throttling_refuses_even_the_right_password_and_only_for_that_username() {
        let bed = TestBed::new(config());
        for _ in 0..5 {
            let err = bed.service.login(ALICE.0, "wrong".to_owned().into(), &meta()).await.unwrap_err();
            assert!(matches!(err, AuthError::InvalidCredentials));
        }
        let err = bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap_err();
        assert!(matches!(err, AuthError::TooManyAttempts { retry_after_secs: 30 }), "{err:?}");
        let other = bed.service.login("someone@example.com", "x".to_owned().into(), &meta()).await.unwrap_err();
        assert!(matches!(other, AuthError::InvalidCredentials));
        bed.clock.advance(31);
        login(&bed).await;
        assert_eq!(bed.users.throttle(ALICE.0).failed_logins, 0, "success resets the counter");
    }

    #[tokio::test]
    async fn throttle_grows_with_each_failure_after_the_fifth() {
        let bed = TestBed::new(config());
        let mut retry = Vec::new();
        for _ in 0..7 {
            let _ = bed.service.login(ALICE.0, "wrong".to_owned().into(), &meta()).await;
            let t = bed.users.throttle(ALICE.0);
            retry.push(t.retry_after(bed.clock.now()).unwrap_or(0));
            bed.clock.advance(t.retry_after(bed.clock.now()).unwrap_or(0));
        }
        assert_eq!(retry, vec![0, 0, 0, 0, 30, 60, 120]);
    }

    #[tokio::test]
    async fn refresh_rotates_and_the_old_token_then_fails() {
        let bed = TestBed::new(config());
        let first = login(&bed).await;
        bed.clock.advance(60);
        let second = refresh(&bed, &first.refresh).await.unwrap();
        assert_eq!(second.refresh.generation, 1);
        let stored = bed.sessions.stored(&first.refresh.session_id).unwrap();
        assert_eq!(stored.generation, 1);
        assert!(stored.token_hash.ct_eq(&second.refresh.hash()));
        assert_eq!(stored.expires_at, bed.clock.now() + bed.config.refresh_idle_ttl);
        let third = refresh(&bed, &second.refresh).await.unwrap();
        assert_eq!(third.refresh.generation, 2);
        bed.clock.advance(11);
        assert!(matches!(refresh(&bed, &second.refresh).await, Err(AuthError::TokenReused)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_refreshes_get_one_identical_successor_with_one_write() {
        let bed = std::sync::Arc::new(TestBed::new(config()));
        let first = login(&bed).await;
        let writes_before = bed.sessions.writes();
        let wire = first.refresh.encode();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (bed, wire) = (bed.clone(), wire.clone());
                tokio::spawn(async move { bed.service.refresh(Some(&wire), &RequestMeta::default()).await.map(|t| t.refresh.encode()) })
            })
            .collect();
        let mut tokens = Vec::new();
        for task in tasks {
            tokens.push(task.await.unwrap().unwrap());
        }
        assert!(tokens.iter().all(|t| *t == tokens[0]), "all tabs got the same successor");
        assert_eq!(bed.sessions.writes() - writes_before, 1, "exactly one rotation");
        assert_eq!(bed.sessions.stored(&first.refresh.session_id).unwrap().generation, 1);
    }

    #[tokio::test]
    async fn reuse_after_the_grace_window_revokes_the_session_and_kills_the_successor() {
        let (_guard, logs) = crate::testing::capture_logs();
        let bed = TestBed::new(config());
        let first = login(&bed).await;
        let second = refresh(&bed, &first.refresh).await.unwrap();
        bed.clock.advance(bed.config.refresh_reuse_grace + 1);
        assert!(matches!(refresh(&bed, &first.refresh).await, Err(AuthError::TokenReused)));
        let stored = bed.sessions.stored(&first.refresh.session_id).unwrap();
        assert_eq!(stored.revoke_reason.as_deref(), Some("reuse_detected"));
        assert!(matches!(refresh(&bed, &second.refresh).await, Err(AuthError::InvalidToken)));

        let logs = logs.text();
        let reuse_line = logs
            .lines()
            .find(|l| l.contains(r#""event":"refresh_reuse_detected""#))
            .unwrap_or_else(|| panic!("audit event emitted: {logs}"));
        assert!(
            reuse_line.contains(first.refresh.session_id.as_str()) && reuse_line.contains(r#""user_id":"user-alice""#),
            "{reuse_line}"
        );
        for secret in [first.refresh.encode(), second.refresh.encode(), first.access.token.clone(), ALICE.1.to_owned()] {
            let secret_part = secret.rsplit('.').next().unwrap_or(&secret).to_owned();
            assert!(!logs.contains(&secret_part), "a secret reached the log");
        }
    }

    #[tokio::test]
    async fn replaying_an_older_ancestor_is_reuse_even_inside_the_grace_window() {
        let bed = TestBed::new(config());
        let first = login(&bed).await;
        let second = refresh(&bed, &first.refresh).await.unwrap();
        let _third = refresh(&bed, &second.refresh).await.unwrap();
        assert!(matches!(refresh(&bed, &first.refresh).await, Err(AuthError::TokenReused)));
        assert!(bed.sessions.stored(&first.refresh.session_id).unwrap().revoked_at.is_some());
    }

    #[tokio::test]
    async fn grace_window_hands_out_the_same_successor_without_a_write() {
        let bed = TestBed::new(config());
        let first = login(&bed).await;
        let second = refresh(&bed, &first.refresh).await.unwrap();
        let writes = bed.sessions.writes();
        bed.clock.advance(bed.config.refresh_reuse_grace);
        let again = refresh(&bed, &first.refresh).await.unwrap();
        assert_eq!(again.refresh.encode(), second.refresh.encode());
        assert_eq!(bed.sessions.writes(), writes);
    }

    #[tokio::test]
    async fn a_retried_rotation_whose_answer_was_lost_is_not_reuse_even_without_grace() {
        let bed = TestBed::new(crate::testing::config_with(&[("REFRESH_REUSE_GRACE", "0")]));
        let first = login(&bed).await;
        let second = refresh(&bed, &first.refresh).await.unwrap();
        // The SDK retries the same request in the same second: the write is already there.
        let retried = refresh(&bed, &first.refresh).await.unwrap();
        assert_eq!(retried.refresh.encode(), second.refresh.encode());
        bed.clock.advance(1);
        assert!(matches!(refresh(&bed, &first.refresh).await, Err(AuthError::TokenReused)), "no grace window");
    }

    #[tokio::test]
    async fn forged_tokens_with_a_real_session_id_are_refused_without_a_write() {
        let bed = TestBed::new(config());
        let first = login(&bed).await;
        let writes = bed.sessions.writes();
        let sid = first.refresh.session_id.as_str();
        let forged_secret = format!("{sid}.0.{}", "A".repeat(43));
        let other_session = RefreshToken::start(first.refresh.session_id.clone()).encode();
        let future_generation = format!("{sid}.5.{}", other_session.rsplit('.').next().unwrap());
        for forged in [forged_secret, future_generation, format!("{sid}.1.{}", "B".repeat(43))] {
            let err = bed.service.refresh(Some(&forged), &meta()).await.unwrap_err();
            assert!(matches!(err, AuthError::InvalidToken), "{err:?}");
        }
        assert_eq!(bed.sessions.writes(), writes, "a forgery writes nothing");
        assert!(refresh(&bed, &first.refresh).await.is_ok(), "the real token still works");
    }

    #[tokio::test]
    async fn sessions_past_idle_or_absolute_expiry_are_refused() {
        let bed = TestBed::new(config());
        let idle = login(&bed).await;
        let absolute = login(&bed).await;
        let mut stored = bed.sessions.stored(&absolute.refresh.session_id).unwrap();
        stored.absolute_expires_at = bed.clock.now() + 100;
        bed.sessions.put(stored);
        bed.clock.advance(100);
        assert!(matches!(refresh(&bed, &absolute.refresh).await, Err(AuthError::InvalidToken)));
        bed.clock.advance(bed.config.refresh_idle_ttl);
        assert!(matches!(refresh(&bed, &idle.refresh).await, Err(AuthError::InvalidToken)));
    }

    #[tokio::test]
    async fn disabled_user_or_changed_password_ends_the_session_on_refresh() {
        let bed = TestBed::new(config());
        let first = login(&bed).await;
        bed.users.set_disabled(ALICE.0, true).await.unwrap();
        assert!(matches!(refresh(&bed, &first.refresh).await, Err(AuthError::InvalidToken)));
        assert_eq!(
            bed.sessions.stored(&first.refresh.session_id).unwrap().revoke_reason.as_deref(),
            Some("user_invalidated")
        );

        bed.users.set_disabled(ALICE.0, false).await.unwrap();
        let second = login(&bed).await;
        let mut user = bed.users.get(ALICE.0).await.unwrap().unwrap();
        user.password_changed_at = bed.clock.now() + 1;
        bed.users.put(user);
        bed.clock.advance(1);
        assert!(matches!(refresh(&bed, &second.refresh).await, Err(AuthError::InvalidToken)));
    }

    #[tokio::test]
    async fn logout_revokes_and_is_idempotent_and_everywhere_spares_other_users() {
        let bed = TestBed::new(config());
        let a = login(&bed).await;
        let b = login(&bed).await;
        let c = login(&bed).await;
        let mut other = bed.users.get(ALICE.0).await.unwrap().unwrap();
        other.username = "carol@example.com".into();
        other.user_id = "user-carol".into();
        bed.users.put(other);
        let carol = bed.service.login("carol@example.com", ALICE.1.to_owned().into(), &meta()).await.unwrap();

        bed.service.logout(Some(&a.refresh.encode()), false, &meta()).await.unwrap();
        assert!(matches!(refresh(&bed, &a.refresh).await, Err(AuthError::InvalidToken)));
        bed.service.logout(Some(&a.refresh.encode()), false, &meta()).await.unwrap();
        bed.service.logout(None, false, &meta()).await.unwrap();
        bed.service.logout(Some("garbage"), true, &meta()).await.unwrap();

        bed.service.logout(Some(&b.refresh.encode()), true, &meta()).await.unwrap();
        assert!(bed.sessions.stored(&c.refresh.session_id).unwrap().revoked_at.is_some());
        assert!(bed.sessions.stored(&carol.refresh.session_id).unwrap().revoked_at.is_none());
        assert!(refresh(&bed, &carol.refresh).await.is_ok());
    }

    #[tokio::test]
    async fn logout_everywhere_with_an_expired_token_revokes_nothing() {
        let bed = TestBed::new(config());
        let old = login(&bed).await;
        let mut stored = bed.sessions.stored(&old.refresh.session_id).unwrap();
        stored.absolute_expires_at = bed.clock.now() + 10;
        bed.sessions.put(stored);
        bed.clock.advance(10);
        let live = login(&bed).await;
        bed.service.logout(Some(&old.refresh.encode()), true, &meta()).await.unwrap();
        assert!(bed.sessions.stored(&live.refresh.session_id).unwrap().revoked_at.is_none());
        assert!(refresh(&bed, &live.refresh).await.is_ok());
    }

    #[tokio::test]
    async fn logout_with_a_forged_token_revokes_nothing() {
        let bed = TestBed::new(config());
        let a = login(&bed).await;
        let forged = format!("{}.0.{}", a.refresh.session_id, "A".repeat(43));
        bed.service.logout(Some(&forged), true, &meta()).await.unwrap();
        assert!(bed.sessions.stored(&a.refresh.session_id).unwrap().revoked_at.is_none());
    }

    #[tokio::test]
    async fn no_token_is_issued_when_keys_cannot_be_fetched() {
        let bed = TestBed::new(config());
        let first = login(&bed).await;
        bed.keys.set_failing(true);
        bed.clock.advance(bed.config.key_cache_ttl);
        let err = bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap_err();
        assert!(matches!(err, AuthError::Unavailable(_)));
        assert!(matches!(refresh(&bed, &first.refresh).await, Err(AuthError::Unavailable(_))));
        assert_eq!(bed.sessions.stored(&first.refresh.session_id).unwrap().generation, 0, "nothing rotated");
    }
}
