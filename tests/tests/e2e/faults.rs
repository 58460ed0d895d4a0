use auth_core::aws::{auth_service_with, authorizer_with};
use auth_core::http::AuthApi;

use crate::harness::*;

#[tokio::test]
async fn secrets_manager_unreachable_means_login_503_without_token_and_authorizer_deny() {
    let app = spawn_app().await;
    let token = app.login(ALICE, PASSWORD).await.access_token();
    let broken = AuthApi::new(auth_service_with(&app.config, app.dynamodb.clone(), unreachable_secrets().await), &app.config);
    let answer = crate::harness::Answer::from(
        login::handle(
            &broken,
            Call::post("/auth/login")
                .json(serde_json::json!({"username": ALICE, "password": PASSWORD}))
                .request(),
        )
        .await
        .unwrap(),
    );
    assert_eq!((answer.status, answer.error_code().as_str()), (503, "unavailable"));
    assert!(answer.header("retry-after").is_some());
    assert!(answer.set_cookies().is_empty());
    assert!(!answer.body.contains("access_token"));

    let authorizer = authorizer_with(&app.config, unreachable_secrets().await);
    let denied = authorizer
        .handle(http_api_authorizer_event(Some(&format!("Bearer {token}")), "GET /pets"), None)
        .await;
    assert_eq!(denied.ok(), Some(serde_json::json!({"isAuthorized": false})));
    assert!(authorizer.handle(rest_token_event(&format!("Bearer {token}")), None).await.is_err());
}

#[tokio::test]
async fn a_missing_key_secret_fails_closed_too() {
    let app = spawn_app().await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let mut config = app.config.clone();
    config.signing_secret_id = "does-not-exist".into();
    let broken = AuthApi::new(auth_service_with(&config, app.dynamodb.clone(), app.secrets.clone()), &config);
    let answer = crate::harness::Answer::from(refresh::handle(&broken, Call::post("/auth/refresh").cookie(&cookie).request()).await.unwrap());
    assert_eq!(answer.status, 503);
    assert_eq!(app.refresh(&cookie).await.status, 200, "the token was not consumed by the failed refresh");
}
