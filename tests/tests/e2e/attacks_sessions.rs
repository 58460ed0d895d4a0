//! Attacks on refresh, login and logout through the real handlers: races, replays,
//! forgeries, enumeration by timing, CSRF.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::password::{MEMORY_KIB, hash_password};
use auth_core::store::dynamodb::DynamoUsers;
use auth_core::store::{UserRecord, UserStore};
use auth_core::tokens::{RefreshToken, SessionId};
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;

use crate::harness::*;

async fn concurrent_refreshes(app: &Arc<App>, cookies: Vec<String>) -> Vec<Answer> {
    let tasks: Vec<_> = cookies
        .into_iter()
        .map(|cookie| {
            let app = app.clone();
            tokio::spawn(async move { app.refresh(&cookie).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

#[tokio::test]
async fn parallel_refreshes_of_2_10_and_50_make_exactly_one_rotation() {
    let app = Arc::new(spawn_app().await);
    for n in [2, 10, 50] {
        let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
        let answers = concurrent_refreshes(&app, vec![cookie.clone(); n]).await;
        let tokens: Vec<String> = answers.iter().map(|a| a.refresh_token()).collect();
        assert!(
            answers.iter().all(|a| a.status == 200),
            "{n}: {:?}",
            answers.iter().map(|a| a.status).collect::<Vec<_>>()
        );
        assert!(tokens.iter().all(|t| *t == tokens[0]), "{n}: one successor for all");
        let sid = session_id_of(&tokens[0]);
        assert_eq!(app.session_number(&sid, "generation").await, Some(1), "{n}: exactly one rotation");
    }
}

#[tokio::test]
async fn concurrent_refreshes_with_a_revoked_token_never_get_a_successor() {
    let app = Arc::new(spawn_app().await);
    let live = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let revoked = app.login(ALICE, PASSWORD).await.refresh_cookie();
    assert_eq!(app.logout_call(Call::post("/auth/logout").cookie(&revoked)).await.status, 204);
    let cookies: Vec<String> = (0..20).map(|i| if i % 2 == 0 { live.clone() } else { revoked.clone() }).collect();
    let answers = concurrent_refreshes(&app, cookies).await;
    for (i, answer) in answers.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(answer.status, 200);
        } else {
            assert_eq!((answer.status, answer.error_code().as_str()), (401, "invalid_token"));
            assert!(!answer.body.contains("access_token"));
            assert!(answer.set_cookies().iter().all(|c| c.starts_with("refresh_token=;")), "only a cleared cookie");
        }
    }
}

#[tokio::test]
async fn a_random_well_formed_token_is_refused_and_creates_nothing() {
    let app = spawn_app().await;
    let random = RefreshToken::start(SessionId::generate()).encode();
    let answer = app.refresh(&format!("refresh_token={random}")).await;
    assert_eq!((answer.status, answer.error_code().as_str()), (401, "invalid_token"));
    assert!(app.session_item(&session_id_of(&random)).await.is_none());
}

#[tokio::test]
async fn a_token_beyond_the_chain_walk_bound_costs_no_more_than_the_bound() {
    let app = spawn_app().await;
    let token = app.login(ALICE, PASSWORD).await.refresh_token();
    let sid = session_id_of(&token);
    app.set_session_number(&sid, "generation", 1_000_000).await;
    let before = app.session_item(&sid).await.unwrap();
    let started = Instant::now();
    let answer = app.refresh(&format!("refresh_token={token}")).await;
    let elapsed = started.elapsed();
    assert_eq!(
        (answer.status, answer.error_code().as_str()),
        (401, "invalid_token"),
        "cannot be shown authentic, so no revocation"
    );
    assert_eq!(app.session_item(&sid).await.unwrap(), before, "no write");
    // Walking a million HMAC steps would take seconds; the bound refuses at once.
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

async fn set_user(app: &App, username: &str, update: &str, value: AttributeValue) {
    app.dynamodb
        .update_item()
        .table_name(&app.config.users_table)
        .key("username", AttributeValue::S(username.into()))
        .update_expression(format!("SET {update} = :v"))
        .expression_attribute_values(":v", value)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn refresh_fails_after_the_user_is_disabled_or_changes_password() {
    let app = spawn_app().await;
    let alice = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let bob = app.login(BOB, PASSWORD).await.refresh_cookie();
    set_user(&app, ALICE, "disabled", AttributeValue::Bool(true)).await;
    // As `authctl user passwd` leaves it: the epoch bumped with the hash.
    set_user(&app, BOB, "session_epoch", AttributeValue::N("1".into())).await;
    for cookie in [&alice, &bob] {
        let answer = app.refresh(cookie).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (401, "invalid_token"));
        let sid = session_of_cookie(cookie);
        assert_eq!(app.session_item(&sid).await.unwrap()["revoke_reason"].as_s().unwrap(), "user_invalidated");
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Benchmark-style, generous bound: the three failures cost the same order of time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_wrong_password_and_disabled_user_take_similar_time() {
    let app = spawn_app().await;
    let users = DynamoUsers::new(app.dynamodb.clone(), &app.config.users_table, &app.config.sessions_table);
    let hash = hash_password(&PASSWORD.to_owned().into()).unwrap();
    for i in 0..20 {
        for (prefix, disabled) in [("active", false), ("off", true)] {
            let user = UserRecord {
                disabled,
                ..UserRecord::new(format!("{prefix}{i}@example.com"), format!("{prefix}-{i}"), hash.clone(), vec![])
            };
            users.create(&user).await.unwrap();
        }
    }
    let mut timings = Vec::new();
    for (label, username, password) in [
        ("unknown", "ghost", PASSWORD),
        ("wrong password", "active", "not the password"),
        ("disabled", "off", PASSWORD),
    ] {
        let mut samples = Vec::new();
        let mut bodies = std::collections::BTreeSet::new();
        for i in 0..20 {
            let started = Instant::now();
            let answer = app.login(&format!("{username}{i}@example.com"), password).await;
            samples.push(started.elapsed());
            assert_eq!(answer.status, 401, "{label}");
            bodies.insert(answer.body);
        }
        assert_eq!(bodies.len(), 1);
        timings.push((label, median(samples)));
    }
    eprintln!("login failure medians: {timings:?}");
    let fastest = timings.iter().map(|(_, t)| *t).min().unwrap();
    let slowest = timings.iter().map(|(_, t)| *t).max().unwrap();
    assert!(slowest < fastest * 2, "medians differ by more than 2x: {timings:?}");
}

#[tokio::test]
async fn a_one_mebibyte_password_is_refused_without_hashing() {
    let app = spawn_app().await;
    let request = Call::post("/auth/login")
        .json(json!({"username": ALICE, "password": "x".repeat(1024 * 1024)}))
        .request();
    let started = Instant::now();
    let answer = Answer::from(login::handle(&app.api, request).await.unwrap());
    let elapsed = started.elapsed();
    assert_eq!((answer.status, answer.error_code().as_str()), (413, "payload_too_large"));
    assert!(elapsed < Duration::from_millis(50), "{elapsed:?}");
    // A password just under the body limit but over 1024 bytes is a 400, also unhashed.
    let long = app.login(ALICE, &"x".repeat(2000)).await;
    assert_eq!((long.status, long.error_code().as_str()), (400, "invalid_request"));
}

#[tokio::test]
async fn stored_password_hashes_are_argon2id_with_owasp_parameters() {
    let app = spawn_app().await;
    let item = app
        .dynamodb
        .get_item()
        .table_name(&app.config.users_table)
        .key("username", AttributeValue::S(ALICE.into()))
        .send()
        .await
        .unwrap();
    let phc = item.item().unwrap()["password_hash"].as_s().unwrap().clone();
    assert!(phc.starts_with(&format!("$argon2id$v=19$m={MEMORY_KIB},t=2,p=1$")), "{phc:.40}");
}

#[tokio::test]
async fn cross_site_requests_cannot_refresh_or_log_out() {
    let app = spawn_app().await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    for (name, call) in [
        (
            "refresh, foreign origin",
            Call::post("/auth/refresh").cookie(&cookie).header("origin", "https://evil.test"),
        ),
        (
            "refresh, cross-site fetch",
            Call::post("/auth/refresh").cookie(&cookie).header("sec-fetch-site", "cross-site"),
        ),
    ] {
        let answer = app.refresh_call(call).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (403, "forbidden_origin"), "{name}");
        assert!(answer.header("access-control-allow-origin").is_none());
    }
    for (name, call) in [
        (
            "logout, foreign origin",
            Call::post("/auth/logout").cookie(&cookie).header("origin", "https://evil.test"),
        ),
        (
            "logout, cross-site fetch",
            Call::post("/auth/logout").cookie(&cookie).header("sec-fetch-site", "cross-site"),
        ),
    ] {
        let answer = app.logout_call(call).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (403, "forbidden_origin"), "{name}");
    }
    let sid = session_of_cookie(&cookie);
    assert_eq!(app.session_number(&sid, "generation").await, Some(0), "nothing rotated");
    assert!(!app.session_item(&sid).await.unwrap().contains_key("revoked_at"), "nothing revoked");
    let form = app
        .login_call(
            Call::post("/auth/login")
                .header("content-type", "multipart/form-data; boundary=x")
                .body("--x--"),
        )
        .await;
    assert_eq!(form.status, 415);
    for endpoint in ["/auth/login", "/auth/refresh", "/auth/logout"] {
        let preflight = app
            .login_call(Call::post(endpoint).method("OPTIONS").header("origin", "https://evil.test"))
            .await;
        assert!(preflight.header("access-control-allow-origin").is_none(), "{endpoint}");
        assert!(preflight.header("access-control-allow-credentials").is_none(), "{endpoint}");
    }
}

#[tokio::test]
async fn a_second_refresh_cookie_is_refused_so_a_planted_one_cannot_fix_the_session() {
    let app = spawn_app().await;
    let victim = app.login(ALICE, PASSWORD).await.refresh_cookie();
    // A sibling subdomain planted its own session's cookie with Domain=<parent>.
    let planted = app.login(BOB, PASSWORD).await.refresh_cookie();
    let sessions = [&victim, &planted].map(|c| session_of_cookie(c));
    for (name, cookies) in [
        ("planted first", vec![planted.clone(), victim.clone()]),
        ("victim first", vec![victim.clone(), planted.clone()]),
        ("empty first", vec!["refresh_token=".to_owned(), victim.clone()]),
    ] {
        let call = cookies.iter().fold(Call::post("/auth/refresh"), |call, c| call.cookie(c));
        let answer = app.refresh_call(call).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (401, "invalid_token"), "{name}");
        // Clearing would delete only the victim's host cookie and leave the planted one.
        assert!(answer.set_cookies().is_empty(), "{name}: {:?}", answer.set_cookies());
    }
    for sid in &sessions {
        assert_eq!(app.session_number(sid, "generation").await, Some(0), "nothing rotated");
        assert!(!app.session_item(sid).await.unwrap().contains_key("revoked_at"), "nothing revoked");
    }
    // Logging out with both ends both sessions: the planted cookie, left alone once the
    // victim's is cleared, refreshes nothing.
    let call = Call::post("/auth/logout").cookie(&planted).cookie(&victim);
    assert_eq!(app.logout_call(call).await.status, 204);
    for sid in &sessions {
        assert!(app.session_item(sid).await.unwrap().contains_key("revoked_at"), "{sid}");
    }
    assert_eq!(app.refresh(&planted).await.error_code(), "invalid_token");
}

#[tokio::test]
async fn disabling_bumps_the_epoch_so_enabling_again_brings_no_session_back() {
    let app = spawn_app().await;
    let before = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let users = auth_core::store::dynamodb::DynamoUsers::new(app.dynamodb.clone(), &app.config.users_table, &app.config.sessions_table);
    assert!(auth_core::store::UserStore::set_disabled(&users, ALICE, true).await.unwrap());
    let item = app.user_item(ALICE).await;
    assert_eq!(item["disabled"].as_bool().ok(), Some(&true));
    assert_eq!(item["session_epoch"].as_n().unwrap(), "1");
    assert!(auth_core::store::UserStore::set_disabled(&users, ALICE, false).await.unwrap());
    assert_eq!(app.user_item(ALICE).await["session_epoch"].as_n().unwrap(), "1", "enabling bumps nothing");
    assert_eq!(app.refresh(&before).await.error_code(), "invalid_token", "the old session stays dead");
    let after = app.login(ALICE, PASSWORD).await.refresh_cookie();
    assert_eq!(app.refresh(&after).await.status, 200, "a login right after enabling works");
    assert!(!auth_core::store::UserStore::set_disabled(&users, "nobody@example.com", true).await.unwrap());
}

/// Makes a session item look as the version before epochs wrote it: no `session_epoch`.
async fn as_before_epochs(app: &App, cookie: &str, created_at: u64) {
    let sid = session_of_cookie(cookie);
    app.dynamodb
        .update_item()
        .table_name(&app.config.sessions_table)
        .key("session_id", AttributeValue::S(sid.clone()))
        .update_expression("REMOVE session_epoch")
        .send()
        .await
        .unwrap();
    app.set_session_number(&sid, "created_at", created_at).await;
}

#[tokio::test]
async fn an_upgrade_brings_back_no_session_the_old_clock_rule_had_ended_and_keeps_the_others() {
    let app = spawn_app().await;
    let (ended, kept, bobs) = (
        app.login(ALICE, PASSWORD).await.refresh_cookie(),
        app.login(ALICE, PASSWORD).await.refresh_cookie(),
        app.login(BOB, PASSWORD).await.refresh_cookie(),
    );
    // As the old version left them: `authctl user passwd` (or a disable) at `point` moved
    // only the user's point, and revoked no session item.
    let point = now() - 100;
    for (cookie, created_at) in [(&ended, point - 10), (&kept, point + 10), (&bobs, point - 10)] {
        as_before_epochs(&app, cookie, created_at).await;
    }
    app.dynamodb
        .update_item()
        .table_name(&app.config.users_table)
        .key("username", AttributeValue::S(ALICE.into()))
        .update_expression("SET sessions_valid_after = :point REMOVE session_epoch")
        .expression_attribute_values(":point", AttributeValue::N(point.to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        app.refresh(&ended).await.error_code(),
        "invalid_token",
        "ended before the upgrade, ended after it"
    );
    let kept = app.refresh(&kept).await;
    assert_eq!(kept.status, 200, "a session the old point spared lives on: {}", kept.body);
    assert_eq!(app.refresh(&bobs).await.status, 200, "a user with no point: nothing ends");
    // The first bump (here a logout everywhere from a new session) ends every session from
    // before epochs, and the new rule takes over.
    let fresh = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let everywhere = Call::post("/auth/logout").cookie(&fresh).json(json!({"everywhere": true}));
    assert_eq!(app.logout_call(everywhere).await.status, 204);
    assert_eq!(app.refresh(&kept.refresh_cookie()).await.error_code(), "invalid_token");
    assert_eq!(app.refresh(&app.login(ALICE, PASSWORD).await.refresh_cookie()).await.status, 200);
}
