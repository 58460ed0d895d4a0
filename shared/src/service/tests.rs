use std::sync::Arc;

use super::logout::LOGOUT_EVERYWHERE;
use super::*;
use crate::store::FAN_OUT_DEADLINE;
use crate::store::RevokeIf;
use crate::testing::{ALICE, TestBed, config};

fn meta() -> RequestMeta {
    RequestMeta::default()
}

async fn login(bed: &TestBed) -> IssuedTokens {
    bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap().signed().unwrap()
}

async fn refresh(bed: &TestBed, token: &RefreshToken) -> Result<IssuedTokens, AuthError> {
    bed.service.refresh(Some(&token.encode()), &meta()).await.map_err(|f| f.error)
}

#[tokio::test]
async fn login_stores_only_the_hash_of_the_refresh_token() {
    let bed = TestBed::new(config());
    let issued = bed
        .service
        .login("  Alice@Example.com ", ALICE.1.to_owned().into(), &meta())
        .await
        .unwrap()
        .signed()
        .unwrap();
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
        assert_eq!(bed.users.throttle(user).attempts, 1, "failures are counted for {user}");
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
    assert_eq!(bed.users.throttle(ALICE.0).attempts, 0, "success resets the counter");
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
    assert!(
        matches!(refresh(&bed, &second.refresh).await, Err(AuthError::TokenReused)),
        "the victim's current token is refused too, and says why"
    );
    let forged = format!("{}.1.{}", first.refresh.session_id.as_str(), "B".repeat(43));
    let err = bed.service.refresh(Some(&forged), &meta()).await.unwrap_err().error;
    assert!(matches!(err, AuthError::InvalidToken), "a forgery learns nothing: {err:?}");

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
        let err = bed.service.refresh(Some(&forged), &meta()).await.unwrap_err().error;
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

    // No clock moves in this test: the rule is a version, not a time.
    bed.users.set_disabled(ALICE.0, false).await.unwrap();
    let second = login(&bed).await;
    let second = refresh(&bed, &second.refresh)
        .await
        .expect("a session after re-enabling works, in the same second");
    assert!(
        matches!(refresh(&bed, &first.refresh).await, Err(AuthError::InvalidToken)),
        "enabling brings nothing back"
    );
    let hash = bed.users.get(ALICE.0).await.unwrap().unwrap().password_hash;
    bed.users.set_password(ALICE.0, &hash, bed.clock.now()).await.unwrap();
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
    let carol = bed
        .service
        .login("carol@example.com", ALICE.1.to_owned().into(), &meta())
        .await
        .unwrap()
        .signed()
        .unwrap();

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
    // Past the TTL and the whole stale period: the last good set no longer serves.
    bed.clock.advance(bed.config.key_cache_ttl + crate::keys::cache::MAX_STALE_SECS);
    let err = bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap_err();
    assert!(matches!(err, AuthError::Unavailable(_)));
    assert!(matches!(refresh(&bed, &first.refresh).await, Err(AuthError::Unavailable(_))));
    assert_eq!(bed.sessions.stored(&first.refresh.session_id).unwrap().generation, 0, "nothing rotated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_check_at_most_five_passwords() {
    let bed = Arc::new(TestBed::new(config()));
    let guesses = (0..30).map(|i| {
        let bed = bed.clone();
        tokio::spawn(async move { bed.service.login(ALICE.0, format!("wrong {i}").into(), &meta()).await.unwrap_err() })
    });
    let mut checked = 0;
    for guess in guesses {
        match guess.await.unwrap() {
            AuthError::InvalidCredentials => checked += 1,
            AuthError::TooManyAttempts { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(checked, 5, "only the reserved attempts reach the password check");
    let err = bed.service.login(ALICE.0, ALICE.1.to_owned().into(), &meta()).await.unwrap_err();
    assert!(matches!(err, AuthError::TooManyAttempts { .. }), "{err:?}");
}

#[tokio::test]
async fn a_login_in_the_same_second_as_a_logout_everywhere_or_a_password_change_lives() {
    let bed = TestBed::new(config());
    let old = login(&bed).await;
    bed.service.logout(Some(&old.refresh.encode()), true, &meta()).await.unwrap();
    let fresh = login(&bed).await;
    let fresh = refresh(&bed, &fresh.refresh)
        .await
        .expect("born after the logout everywhere, in its very second");

    let hash = bed.users.get(ALICE.0).await.unwrap().unwrap().password_hash;
    bed.users.set_password(ALICE.0, &hash, bed.clock.now()).await.unwrap();
    let after_change = login(&bed).await;
    assert!(refresh(&bed, &after_change.refresh).await.is_ok(), "born after the change, in its very second");
    assert!(matches!(refresh(&bed, &fresh.refresh).await, Err(AuthError::InvalidToken)), "born before it");
}

#[tokio::test]
async fn a_login_whose_password_check_read_the_user_before_a_password_change_is_dead_whenever_it_finishes() {
    let bed = TestBed::new(config());
    // The operator's change took its time a second before this login started, and its
    // write landed after the login read the user (and its old hash), while the password
    // was being checked.
    let mut changed = bed.users.get(ALICE.0).await.unwrap().unwrap();
    changed.session_epoch += 1;
    changed.password_changed_at = bed.clock.now() - 1;
    bed.users.on_reserve(move |users| users.put(changed.clone()));
    let raced = login(&bed).await;
    assert!(bed.sessions.stored(&raced.refresh.session_id).unwrap().created_at > bed.users.get(ALICE.0).await.unwrap().unwrap().password_changed_at);
    assert!(matches!(refresh(&bed, &raced.refresh).await, Err(AuthError::InvalidToken)));
    assert_eq!(
        bed.sessions.stored(&raced.refresh.session_id).unwrap().revoke_reason.as_deref(),
        Some("user_invalidated")
    );
}

#[tokio::test]
async fn a_refresh_racing_its_own_sessions_password_change_is_answered_and_the_session_survives() {
    let bed = TestBed::new(config());
    let caller = login(&bed).await;
    let keep = bed.sessions.stored(&caller.refresh.session_id).unwrap();
    // The password change's transaction commits after the rotation returned the session at
    // epoch 0 and before the refresh reads the user (at epoch 1).
    let done = std::sync::atomic::AtomicBool::new(false);
    bed.users.on_get(move |users| {
        if !done.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let hash = users.peek(ALICE.0).unwrap().password_hash;
            let change = users.change_password(ALICE.0, &hash, "$argon2id$new", &keep, 1_700_000_000);
            assert!(futures_util::FutureExt::now_or_never(change).unwrap().unwrap());
        }
    });
    let next = refresh(&bed, &caller.refresh).await.expect("the survivor of its own change is answered");
    let stored = bed.sessions.stored(&caller.refresh.session_id).unwrap();
    assert_eq!((stored.revoked_at, stored.session_epoch), (None, Some(1)));
    assert!(refresh(&bed, &next.refresh).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_fan_outs_of_several_refresh_cookies_share_one_deadline() {
    let bed = TestBed::new(config());
    // Two users, each with 1,000 other sessions: 16 ms a revocation, 8 at a time, is 2 s a
    // fan-out; the two would take 4 s if each had a deadline of its own.
    let mut carol = bed.users.get(ALICE.0).await.unwrap().unwrap();
    carol.username = "carol@example.com".into();
    carol.user_id = "user-carol".into();
    bed.users.put(carol);
    let mut cookies = Vec::new();
    for username in [ALICE.0, "carol@example.com"] {
        let issued = bed.service.login(username, ALICE.1.to_owned().into(), &meta()).await.unwrap().signed().unwrap();
        let template = bed.sessions.stored(&issued.refresh.session_id).unwrap();
        for _ in 0..1_000 {
            bed.sessions.put(SessionRecord {
                session_id: crate::tokens::SessionId::generate(),
                ..template.clone()
            });
        }
        cookies.push(issued.refresh.encode());
    }
    bed.sessions.set_revoke_delay_ms(16);
    let started = tokio::time::Instant::now();
    bed.service.logout_each(cookies.iter().map(String::as_str), true, &meta()).await.unwrap();
    let took = started.elapsed();
    assert!(
        took <= FAN_OUT_DEADLINE + std::time::Duration::from_millis(100),
        "{took:?} (tokio's paused clock)"
    );
    for user in [ALICE.0, "carol@example.com"] {
        assert_eq!(bed.users.get(user).await.unwrap().unwrap().session_epoch, 1, "{user}: both bumps landed");
    }
}

#[tokio::test]
async fn logout_everywhere_bumps_the_epoch_so_sessions_it_could_not_revoke_die_too() {
    let bed = TestBed::new(config());
    let (a, b) = (login(&bed).await, login(&bed).await);
    bed.service.logout(Some(&a.refresh.encode()), true, &meta()).await.unwrap();
    let user = bed.users.get(ALICE.0).await.unwrap().unwrap();
    assert_eq!(user.session_epoch, 1);
    // As if revoking b's item had failed: the epoch alone must end it.
    let mut unrevoked = bed.sessions.stored(&b.refresh.session_id).unwrap();
    assert_eq!(unrevoked.expires_at, bed.clock.now() + crate::store::REVOKED_RETENTION_SECS, "brought forward");
    unrevoked.revoked_at = None;
    unrevoked.expires_at = bed.clock.now() + 1000;
    bed.sessions.put(unrevoked);
    assert!(matches!(refresh(&bed, &b.refresh).await, Err(AuthError::InvalidToken)));
    let after = login(&bed).await;
    assert!(refresh(&bed, &after.refresh).await.is_ok(), "a later login is not affected");
}

#[tokio::test]
async fn a_retried_logout_everywhere_finishes_the_job_and_one_whose_answer_was_lost_ends_nothing_new() {
    let bed = TestBed::new(config());
    let (a, b) = (login(&bed).await, login(&bed).await);
    // The first attempt revoked its own session, then failed before the bump.
    let hash = a.refresh.hash();
    let revoked = bed
        .sessions
        .revoke(&a.refresh.session_id, RevokeIf::Holds(&hash), LOGOUT_EVERYWHERE, bed.clock.now());
    assert!(revoked.await.unwrap().revoked().is_some());
    bed.service.logout(Some(&a.refresh.encode()), true, &meta()).await.unwrap();
    assert_eq!(bed.users.get(ALICE.0).await.unwrap().unwrap().session_epoch, 1, "the retry bumped");
    assert!(
        bed.sessions.stored(&b.refresh.session_id).unwrap().revoked_at.is_some(),
        "the retry revoked the rest"
    );
    assert!(matches!(refresh(&bed, &b.refresh).await, Err(AuthError::InvalidToken)));
    // The job is done; its answer was lost and the client retries again: sessions
    // started since carry the new epoch and are not ended.
    let c = login(&bed).await;
    bed.service.logout(Some(&a.refresh.encode()), true, &meta()).await.unwrap();
    assert_eq!(bed.users.get(ALICE.0).await.unwrap().unwrap().session_epoch, 1, "no second bump");
    assert!(bed.sessions.stored(&c.refresh.session_id).unwrap().revoked_at.is_none());
    let c_now = refresh(&bed, &c.refresh).await.unwrap();
    // A token of a session the fan-out ended cannot pass for a retry either.
    bed.service.logout(Some(&b.refresh.encode()), true, &meta()).await.unwrap();
    assert!(refresh(&bed, &c_now.refresh).await.is_ok(), "c survives a fan-out token's replay");
    // A plain logout's revoked session does not let its token end the others later.
    let d = login(&bed).await;
    let e = login(&bed).await;
    bed.service.logout(Some(&d.refresh.encode()), false, &meta()).await.unwrap();
    bed.service.logout(Some(&d.refresh.encode()), true, &meta()).await.unwrap();
    assert!(bed.sessions.stored(&e.refresh.session_id).unwrap().revoked_at.is_none());
}

#[tokio::test]
async fn logout_with_the_token_the_last_refresh_replaced_ends_the_session_and_an_older_one_ends_nothing() {
    let bed = TestBed::new(config());
    let first = login(&bed).await;
    let second = refresh(&bed, &first.refresh).await.unwrap();
    let third = refresh(&bed, &second.refresh).await.unwrap();
    bed.service.logout(Some(&first.refresh.encode()), false, &meta()).await.unwrap();
    assert!(
        bed.sessions.stored(&first.refresh.session_id).unwrap().revoked_at.is_none(),
        "two generations back"
    );
    bed.service.logout(Some(&second.refresh.encode()), false, &meta()).await.unwrap();
    let stored = bed.sessions.stored(&first.refresh.session_id).unwrap();
    assert_eq!(stored.revoke_reason.as_deref(), Some("logout"));
    assert!(matches!(refresh(&bed, &third.refresh).await, Err(AuthError::InvalidToken)));
}

#[tokio::test]
async fn debug_output_never_shows_tokens_or_password_hashes() {
    let bed = TestBed::new(config());
    let issued = login(&bed).await;
    let printed = format!("{issued:?}");
    let refresh = issued.refresh.encode();
    assert!(!printed.contains(&issued.access.token), "{printed}");
    assert!(!printed.contains(issued.access.token.rsplit('.').next().unwrap()), "{printed}");
    assert!(!printed.contains(refresh.rsplit('.').next().unwrap()), "{printed}");
    let user = bed.users.get(ALICE.0).await.unwrap().unwrap();
    let printed = format!("{user:?}");
    assert!(printed.contains("alice@example.com"));
    assert!(!printed.contains(&user.password_hash), "{printed}");
    assert!(!printed.contains("$argon2id$"), "{printed}");
}
