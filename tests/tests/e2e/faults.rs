//! Dependency failures: nothing issued, nothing authorized, nothing lost or half-done.

use std::time::{Duration, Instant};

use auth_core::aws::{auth_service_with, authorizer_with, load_sdk_config};
use auth_core::http::AuthApi;
use auth_core::keys::secrets_manager::put_key_set;
use serde_json::json;

use crate::fault_server::{Fault, start};
use crate::harness::*;

/// SDK clients whose DynamoDB and Secrets Manager endpoints are `dynamodb` / `secrets`
/// (or the emulator when `None`).
async fn clients(dynamodb: Option<&str>, secrets: Option<&str>) -> (aws_sdk_dynamodb::Client, aws_sdk_secretsmanager::Client) {
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

async fn api_with(app: &App, dynamodb: Option<&str>, secrets: Option<&str>) -> AuthApi {
    let (d, s) = clients(dynamodb, secrets).await;
    AuthApi::new(auth_service_with(&app.config, d, s), &app.config)
}

fn login_request() -> lambda_http::Request {
    Call::post("/auth/login").json(json!({"username": ALICE, "password": PASSWORD})).request()
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
    assert_unavailable(&Answer::from(login::handle(&broken, login_request()).await.unwrap()));

    let authorizer = authorizer_with(&app.config, clients(None, Some("http://127.0.0.1:9")).await.1);
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
        assert_unavailable(&Answer::from(login::handle(&broken, login_request()).await.unwrap()));
        assert_unavailable(&Answer::from(
            refresh::handle(&broken, Call::post("/auth/refresh").cookie(&login.refresh_cookie()).request())
                .await
                .unwrap(),
        ));
        let authorizer = authorizer_with(&app.config, clients(None, Some(&server.endpoint)).await.1);
        assert_eq!(
            ask(&authorizer, &http_api_authorizer_event(Some(&bearer), "GET /pets")).await.ok(),
            Some(json!({"isAuthorized": false})),
            "{fault}"
        );
    }
    // A malformed key set in the secret itself.
    put_key_set(&app.secrets, &app.config.signing_secret_id, r#"{"active_kid":"k1","keys":[]}"#)
        .await
        .unwrap();
    let fresh = api_with(&app, None, None).await;
    assert_unavailable(&Answer::from(login::handle(&fresh, login_request()).await.unwrap()));
    let authorizer = authorizer_with(&app.config, app.secrets.clone());
    assert_eq!(
        ask(&authorizer, &http_api_authorizer_event(Some(&bearer), "GET /pets")).await.ok(),
        Some(json!({"isAuthorized": false}))
    );
    assert_eq!(
        app.refresh(&login.refresh_cookie()).await.status,
        200,
        "the failures consumed nothing: the token still works with keys back"
    );
}

#[tokio::test]
async fn a_missing_key_secret_fails_closed_too() {
    let app = spawn_app().await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let mut config = app.config.clone();
    config.signing_secret_id = "does-not-exist".into();
    let broken = AuthApi::new(auth_service_with(&config, app.dynamodb.clone(), app.secrets.clone()), &config);
    let answer = Answer::from(refresh::handle(&broken, Call::post("/auth/refresh").cookie(&cookie).request()).await.unwrap());
    assert_eq!(answer.status, 503);
    assert_eq!(app.refresh(&cookie).await.status, 200, "the token was not consumed by the failed refresh");
}

#[tokio::test]
async fn dynamodb_throttling_is_retried_a_bounded_number_of_times_then_503() {
    let app = spawn_app().await;
    let server = start(Fault::Error("ProvisionedThroughputExceededException")).await;
    let broken = api_with(&app, Some(&server.endpoint), None).await;
    let started = Instant::now();
    assert_unavailable(&Answer::from(login::handle(&broken, login_request()).await.unwrap()));
    assert_eq!(server.requests(), 3, "standard retry mode: three attempts, then give up");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_hanging_dynamodb_times_out_into_503() {
    let app = spawn_app().await;
    let server = start(Fault::Hang).await;
    let broken = api_with(&app, Some(&server.endpoint), None).await;
    let started = Instant::now();
    assert_unavailable(&Answer::from(login::handle(&broken, login_request()).await.unwrap()));
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
    let answer = Answer::from(refresh::handle(&flaky, Call::post("/auth/refresh").cookie(&cookie).request()).await.unwrap());
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(generation_of(&answer.refresh_token()), 1);
    assert_eq!(app.refresh(&answer.refresh_cookie()).await.status, 200, "the successor is live");

    // Every attempt's answer lost: 503, and the client's retry (within the grace window)
    // gets the successor that was stored; the token is never left dead.
    let server = start(Fault::DropAnswers { operation: "UpdateItem", n: 3 }).await;
    let flaky = api_with(&app, Some(&server.endpoint), None).await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let failed = Answer::from(refresh::handle(&flaky, Call::post("/auth/refresh").cookie(&cookie).request()).await.unwrap());
    assert_eq!(failed.status, 503);
    let retried = app.refresh(&cookie).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    assert_eq!(generation_of(&retried.refresh_token()), 1);
    assert_eq!(app.refresh(&retried.refresh_cookie()).await.status, 200);
}

#[tokio::test]
async fn key_rotation_keeps_old_tokens_while_listed_and_drops_them_once_removed() {
    let app = spawn_app_with(&[("KEY_CACHE_TTL", "1")]).await;
    let old = app.login(ALICE, PASSWORD).await.access_token();
    let k2 = auth_core::keys::generate_secret();
    let k1 = crate::forge::b64(crate::forge::K1_SECRET);
    let pepper = serde_json::from_str::<serde_json::Value>(auth_core::testing::KEY_SET_JSON).unwrap()["refresh_pepper"].clone();
    let both = json!({"active_kid": "k2", "keys": [{"kid": "k2", "alg": "HS256", "secret": k2}, {"kid": "k1", "alg": "HS256", "secret": k1}], "refresh_pepper": pepper});
    put_key_set(&app.secrets, &app.config.signing_secret_id, &both.to_string()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let new = app.login(ALICE, PASSWORD).await.access_token();
    let kid = auth_core::tokens::AccessTokenHeader::read(&new).unwrap().kid;
    assert_eq!(kid, "k2", "signed with the new active key");
    assert_eq!(crate::forge::allowed_in_shapes(&app, &format!("Bearer {old}")).await, 3, "old key still listed");
    assert_eq!(crate::forge::allowed_in_shapes(&app, &format!("Bearer {new}")).await, 3);
    let only_new = json!({"active_kid": "k2", "keys": [{"kid": "k2", "alg": "HS256", "secret": k2}], "refresh_pepper": pepper});
    put_key_set(&app.secrets, &app.config.signing_secret_id, &only_new.to_string()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        crate::forge::allowed_in_shapes(&app, &format!("Bearer {old}")).await,
        0,
        "removed key no longer verifies"
    );
    assert_eq!(crate::forge::allowed_in_shapes(&app, &format!("Bearer {new}")).await, 3);
}
