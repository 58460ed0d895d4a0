//! Dependency failures: nothing issued, nothing authorized, nothing lost or half-done.

use std::time::{Duration, Instant};

use auth_core::api::session::AuthApi;
use auth_core::aws::{auth_service_with, authorizer_with, load_sdk_config};
use auth_core::keys::secrets_manager::write_secret;
use serde_json::json;

use crate::fault_server::{Fault, start};
use crate::harness::*;

/// SDK clients whose DynamoDB and Secrets Manager endpoints are `dynamodb` / `secrets`
/// (or the emulator when `None`).
pub async fn clients(dynamodb: Option<&str>, secrets: Option<&str>) -> (aws_sdk_dynamodb::Client, aws_sdk_secretsmanager::Client) {
    let sdk = load_sdk_config().await;
    let mut d = aws_sdk_dynamodb::config::Builder::from(&sdk);
    if let Some(url) = dynamodb {
        d = d.endpoint_url(url);
    }
    let mut s = aws_sdk_secretsmanager::config::Builder::from(&sdk);
    if let Some(url) = secrets {
        s = s.endpoint_url(url);
    }
    (
        aws_sdk_dynamodb::Client::from_conf(d.build()),
        aws_sdk_secretsmanager::Client::from_conf(s.build()),
    )
}

pub async fn api_with(app: &App, dynamodb: Option<&str>, secrets: Option<&str>) -> AuthApi {
    let (d, s) = clients(dynamodb, secrets).await;
    AuthApi::new(auth_service_with(&app.config, d, s), &app.config)
}

fn login_request() -> lambda_http::Request {
    Call::post("/auth/login").json(json!({"username": ALICE, "password": PASSWORD})).request()
}

/// Alice's login, through `api`.
async fn login_via(api: &AuthApi) -> Answer {
    Answer::from(login::handle(api, login_request()).await.unwrap())
}

/// A refresh with `cookie`, through `api`.
pub async fn refresh_via(api: &AuthApi, cookie: &str) -> Answer {
    Answer::from(refresh::handle(api, Call::post("/auth/refresh").cookie(cookie).request()).await.unwrap())
}

fn assert_unavailable(answer: &Answer) {
    assert_eq!((answer.status, answer.error_code().as_str()), (503, "unavailable"), "{}", answer.body);
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert!(answer.set_cookies().iter().all(|c| c.contains("Max-Age=0")), "no refresh token");
    assert!(!answer.body.contains("access_token"));
}

#[tokio::test]
async fn secrets_manager_unreachable_means_login_503_without_token_and_authorizer_deny() {
    let app = spawn_app().await;
    let token = app.login(ALICE, PASSWORD).await.access_token();
    let broken = api_with(&app, None, Some("http://127.0.0.1:9")).await;
    assert_unavailable(&login_via(&broken).await);

    let authorizer = authorizer_with(&app.config, clients(None, Some("http://127.0.0.1:9")).await.1).unwrap();
    let denied = ask(&authorizer, &http_api_authorizer_event(Some(&format!("Bearer {token}")), "GET /pets")).await;
    assert_eq!(denied.ok(), Some(json!({"isAuthorized": false})));
    assert!(ask(&authorizer, &rest_token_event(&format!("Bearer {token}"))).await.is_err());
}

#[tokio::test]
async fn secrets_manager_denied_throttled_or_malformed_fails_closed() {
    let app = spawn_app().await;
    let login = app.login(ALICE, PASSWORD).await;
    let bearer = format!("Bearer {}", login.access_token());
    for fault in ["AccessDeniedException", "ThrottlingException"] {
        let server = start(Fault::Error(fault)).await;
        let broken = api_with(&app, None, Some(&server.endpoint)).await;
        assert_unavailable(&login_via(&broken).await);
        assert_unavailable(&refresh_via(&broken, &login.refresh_cookie()).await);
        let authorizer = authorizer_with(&app.config, clients(None, Some(&server.endpoint)).await.1).unwrap();
        assert_eq!(
            ask(&authorizer, &http_api_authorizer_event(Some(&bearer), "GET /pets")).await.ok(),
            Some(json!({"isAuthorized": false})),
            "{fault}"
        );
    }
    // Malformed key sets in the secrets themselves: functions that never had a good set
    // fail closed on login, refresh and the authorizer.
    write_secret(&app.secrets, &app.config.signing_secret_id, r#"{"keys":[],"refresh_pepper":"x"}"#)
        .await
        .unwrap();
    write_secret(&app.secrets, &app.config.public_keys_secret_id, r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#)
        .await
        .unwrap();
    let fresh = api_with(&app, None, None).await;
    assert_unavailable(&login_via(&fresh).await);
    assert_unavailable(&refresh_via(&fresh, &login.refresh_cookie()).await);
    let authorizer = authorizer_with(&app.config, app.secrets.clone()).unwrap();
    assert_eq!(
        ask(&authorizer, &http_api_authorizer_event(Some(&bearer), "GET /pets")).await.ok(),
        Some(json!({"isAuthorized": false}))
    );
    let sid = session_id_of(&login.refresh_token());
    assert_eq!(app.session_number(&sid, "generation").await, Some(0), "no failure consumed the token");

    // With the keys back, a new function instance works and the same token still refreshes.
    write_secret(&app.secrets, &app.config.signing_secret_id, auth_core::testing::SIGNING_KEYS_JSON)
        .await
        .unwrap();
    let restored = api_with(&app, None, None).await;
    let answer = refresh_via(&restored, &login.refresh_cookie()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[tokio::test]
async fn a_key_store_outage_serves_the_last_good_keys_and_backs_off() {
    let app = spawn_app_with(&[("KEY_CACHE_TTL", "1")]).await;
    let server = start(Fault::internal_error("secretsmanager.getsecretvalue", 1, usize::MAX)).await;
    let api = api_with(&app, None, Some(&server.endpoint)).await;
    assert_eq!(login_via(&api).await.status, 200);
    assert_eq!(server.requests(), 1, "one fetch at the first login");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The cached set is past its TTL and the key store fails: the last good set serves.
    let answer = login_via(&api).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let after_failed_fetch = server.requests();
    assert!(after_failed_fetch > 1, "the fetch was tried");
    // Further requests within the back-off neither fetch nor wait.
    let started = Instant::now();
    for _ in 0..3 {
        let cookie = login_via(&api).await.refresh_cookie();
        let refreshed = refresh_via(&api, &cookie).await;
        assert_eq!(refreshed.status, 200);
    }
    assert_eq!(server.requests(), after_failed_fetch, "no fetch during the back-off");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_key_store_that_refuses_after_a_good_fetch_fails_closed_at_once() {
    let app = spawn_app_with(&[("KEY_CACHE_TTL", "1")]).await;
    // Access revoked on the secret (an IAM or KMS kill switch): a decision, not an outage.
    let server = start(Fault::FailMatching {
        error: "AccessDeniedException",
        needle: "secretsmanager.getsecretvalue",
        skip: 1,
        n: usize::MAX,
    })
    .await;
    let api = api_with(&app, None, Some(&server.endpoint)).await;
    assert_eq!(login_via(&api).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_unavailable(&login_via(&api).await);

    // A malformed key set written into the secret takes effect the same way.
    let api = api_with(&app, None, None).await;
    let cookie = login_via(&api).await.refresh_cookie();
    write_secret(&app.secrets, &app.config.signing_secret_id, r#"{"keys":[],"refresh_pepper":"x"}"#)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_unavailable(&refresh_via(&api, &cookie).await);
}

#[tokio::test]
async fn a_user_read_failing_after_a_committed_rotation_still_hands_the_successor_back() {
    let app = spawn_app().await;
    // The rotation reaches the table; the user read after it fails on every attempt.
    let server = start(Fault::internal_error("x-amz-target: dynamodb_20120810.getitem", 0, 3)).await;
    let flaky = api_with(&app, Some(&server.endpoint), None).await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let failed = refresh_via(&flaky, &cookie).await;
    assert_eq!((failed.status, failed.error_code().as_str()), (503, "unavailable"), "{}", failed.body);
    assert!(!failed.body.contains("access_token"));
    let successor = failed.refresh_cookie();
    assert_eq!(
        generation_of(successor.trim_start_matches("refresh_token=")),
        1,
        "the committed successor is sent"
    );
    // The client's next try comes after the grace window: with the successor it succeeds
    // (with the superseded token it would have been taken for reuse).
    let sid = session_id_of(&failed.refresh_token());
    app.set_session_number(&sid, "rotated_at", now() - 15).await;
    let next = app.refresh(&successor).await;
    assert_eq!(next.status, 200, "{}", next.body);
    assert_eq!(generation_of(&next.refresh_token()), 2);
}

#[tokio::test]
async fn a_logout_everywhere_cut_short_is_finished_by_its_retry() {
    let app = spawn_app().await;
    let cookies = app.sessions(ALICE, 3).await;
    // The epoch bump fails on every attempt, after the session's own revoke.
    let server = start(Fault::internal_error("set session_epoch = :next", 0, 3)).await;
    let flaky = api_with(&app, Some(&server.endpoint), None).await;
    let everywhere = || Call::post("/auth/logout").cookie(&cookies[0]).json(json!({"everywhere": true})).request();
    assert_unavailable(&Answer::from(logout::handle(&flaky, everywhere()).await.unwrap()));
    let others: Vec<String> = cookies[1..].iter().map(|c| session_of_cookie(c)).collect();
    for sid in &others {
        assert!(!app.session_item(sid).await.unwrap().contains_key("revoked_at"), "half done");
    }
    // The client retries: the job is finished, not answered 204 early.
    assert_eq!(Answer::from(logout::handle(&app.api, everywhere()).await.unwrap()).status, 204);
    for cookie in &cookies {
        assert_eq!(app.refresh(cookie).await.error_code(), "invalid_token", "{cookie}");
    }
}

#[tokio::test]
async fn logout_everywhere_holds_when_revoking_the_other_sessions_fails() {
    let app = spawn_app().await;
    let cookies = app.sessions(ALICE, 3).await;
    // Listing the user's sessions fails: only the epoch bump can end the others.
    let server = start(Fault::internal_error("x-amz-target: dynamodb_20120810.query", 0, usize::MAX)).await;
    let flaky = api_with(&app, Some(&server.endpoint), None).await;
    let call = Call::post("/auth/logout").cookie(&cookies[0]).json(json!({"everywhere": true}));
    assert_eq!(Answer::from(logout::handle(&flaky, call.request()).await.unwrap()).status, 204);
    let sid = session_of_cookie(&cookies[1]);
    assert!(!app.session_item(&sid).await.unwrap().contains_key("revoked_at"), "the fan-out failed");
    for cookie in &cookies {
        assert_eq!(app.refresh(cookie).await.error_code(), "invalid_token", "{cookie}");
    }
}

#[tokio::test]
async fn a_missing_key_secret_fails_closed_too() {
    let app = spawn_app().await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let mut config = app.config.clone();
    config.signing_secret_id = "does-not-exist".into();
    let broken = AuthApi::new(auth_service_with(&config, app.dynamodb.clone(), app.secrets.clone()), &config);
    let answer = refresh_via(&broken, &cookie).await;
    assert_eq!(answer.status, 503);
    assert_eq!(app.refresh(&cookie).await.status, 200, "the token was not consumed by the failed refresh");
}

#[tokio::test]
async fn dynamodb_throttling_is_retried_a_bounded_number_of_times_then_503() {
    let app = spawn_app().await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let server = start(Fault::Error("ProvisionedThroughputExceededException")).await;
    let broken = api_with(&app, Some(&server.endpoint), None).await;
    let started = Instant::now();
    // Refresh makes one DynamoDB call before it can answer: the rotation.
    let answer = refresh_via(&broken, &cookie).await;
    assert_unavailable(&answer);
    assert_eq!(server.requests(), 3, "standard retry mode: three attempts, then give up");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_hanging_dynamodb_times_out_into_503() {
    let app = spawn_app().await;
    let server = start(Fault::Hang).await;
    let broken = api_with(&app, Some(&server.endpoint), None).await;
    let started = Instant::now();
    assert_unavailable(&login_via(&broken).await);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(6),
        "operation timeout bounds the wait: {elapsed:?}"
    );
}

#[tokio::test]
async fn a_rotation_whose_answer_is_lost_still_leaves_the_client_a_working_token() {
    let app = spawn_app().await;
    // One lost answer: the SDK retries, finds its own write, and the client gets the successor.
    let server = start(Fault::DropAnswers { operation: "UpdateItem", n: 1 }).await;
    let flaky = api_with(&app, Some(&server.endpoint), None).await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let answer = refresh_via(&flaky, &cookie).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(generation_of(&answer.refresh_token()), 1);
    assert_eq!(app.refresh(&answer.refresh_cookie()).await.status, 200, "the successor is live");

    // Every attempt's answer lost: 503, and the client's retry (within the grace window)
    // gets the successor that was stored; the token is never left dead.
    let server = start(Fault::DropAnswers { operation: "UpdateItem", n: 3 }).await;
    let flaky = api_with(&app, Some(&server.endpoint), None).await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let failed = refresh_via(&flaky, &cookie).await;
    assert_eq!(failed.status, 503);
    let retried = app.refresh(&cookie).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(generation_of(&retried.refresh_token()), 1);
    assert_eq!(app.refresh(&retried.refresh_cookie()).await.status, 200);
}

#[tokio::test]
async fn with_the_grace_window_off_a_retried_rotation_is_still_not_reuse() {
    let app = spawn_app_with(&[("REFRESH_REUSE_GRACE", "0")]).await;
    // The SDK retries a rotation whose answer was lost; the retry finds the write done.
    let server = start(Fault::DropAnswers { operation: "UpdateItem", n: 1 }).await;
    let flaky = api_with(&app, Some(&server.endpoint), None).await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let answer = refresh_via(&flaky, &cookie).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(generation_of(&answer.refresh_token()), 1);
    // Without a grace window, the same token a second later is reuse.
    let sid = session_id_of(&answer.refresh_token());
    app.set_session_number(&sid, "rotated_at", now() - 1).await;
    assert_eq!(app.refresh(&cookie).await.error_code(), "token_reused");
}
