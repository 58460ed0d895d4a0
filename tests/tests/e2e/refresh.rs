use std::sync::Arc;

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn refresh_rotates_and_the_old_token_stops_working() {
    let app = spawn_app().await;
    let login = app.login(ALICE, PASSWORD).await;
    let first = login.refresh_cookie();
    let rotated = app.refresh(&first).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let second = rotated.refresh_token();
    assert_eq!(generation_of(&second), 1);
    assert_eq!(app.session_number(&session_id_of(&second), "generation").await, Some(1));
    assert!(rotated.json()["access_token"].is_string());
    let third = app.refresh(&rotated.refresh_cookie()).await;
    assert_eq!(third.status, 200);
    assert_eq!(generation_of(&third.refresh_token()), 2);
}

#[tokio::test]
async fn twenty_concurrent_refreshes_all_get_the_same_successor_and_one_rotation() {
    let app = Arc::new(spawn_app().await);
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move { app.refresh(&cookie).await })
        })
        .collect();
    let mut successors = Vec::new();
    for task in tasks {
        let answer = task.await.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        successors.push(answer.refresh_token());
    }
    assert!(successors.iter().all(|s| *s == successors[0]), "{successors:?}");
    assert_eq!(generation_of(&successors[0]), 1);
    assert_eq!(
        app.session_number(&session_id_of(&successors[0]), "generation").await,
        Some(1),
        "exactly one rotation stored"
    );
}

#[tokio::test]
async fn reuse_after_the_grace_window_revokes_the_session_and_the_successor_dies_too() {
    let app = spawn_app().await;
    let first = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let second = app.refresh(&first).await;
    let sid = session_id_of(&second.refresh_token());
    app.set_session_number(&sid, "rotated_at", now() - 60).await;
    let reused = app.refresh(&first).await;
    assert_eq!((reused.status, reused.error_code().as_str()), (401, "token_reused"));
    assert!(reused.set_cookies().iter().any(|c| c.contains("Max-Age=0")), "cookie cleared");
    let item = app.session_item(&sid).await.unwrap();
    assert_eq!(item["revoke_reason"].as_s().unwrap(), "reuse_detected");
    assert!(item.contains_key("revoked_at"));
    // The victim's current token is refused as well, with the reason, so its app can say why.
    let successor = app.refresh(&second.refresh_cookie()).await;
    assert_eq!((successor.status, successor.error_code().as_str()), (401, "token_reused"));
}

#[tokio::test]
async fn replaying_an_ancestor_two_generations_back_is_reuse_even_inside_the_grace_window() {
    let app = spawn_app().await;
    let first = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let second = app.refresh(&first).await.refresh_cookie();
    let third = app.refresh(&second).await;
    assert_eq!(third.status, 200);
    let replay = app.refresh(&first).await;
    assert_eq!((replay.status, replay.error_code().as_str()), (401, "token_reused"));
    assert_eq!(app.refresh(&third.refresh_cookie()).await.status, 401, "session revoked");
}

#[tokio::test]
async fn forged_tokens_with_a_real_session_id_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let token = app.login(ALICE, PASSWORD).await.refresh_token();
    let sid = session_id_of(&token);
    let before = app.session_item(&sid).await.unwrap();
    for forged in [
        format!("{sid}.0.{}", "A".repeat(43)),
        format!("{sid}.7.{}", token.rsplit('.').next().unwrap()),
        format!("{sid}.1.{}", "B".repeat(43)),
    ] {
        let answer = app.refresh(&format!("refresh_token={forged}")).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (401, "invalid_token"), "{forged}");
    }
    assert_eq!(app.session_item(&sid).await.unwrap(), before, "no write");
    assert_eq!(
        app.refresh(&format!("refresh_token={token}")).await.status,
        200,
        "the real token still refreshes"
    );
}

#[tokio::test]
async fn sessions_past_idle_or_absolute_expiry_are_refused_though_the_item_exists() {
    let app = spawn_app().await;
    let idle = app.login(ALICE, PASSWORD).await.refresh_token();
    let absolute = app.login(ALICE, PASSWORD).await.refresh_token();
    app.set_session_number(&session_id_of(&idle), "expires_at", now() - 1).await;
    app.set_session_number(&session_id_of(&absolute), "absolute_expires_at", now() - 1).await;
    for token in [idle, absolute] {
        let answer = app.refresh(&format!("refresh_token={token}")).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (401, "invalid_token"));
        assert!(app.session_item(&session_id_of(&token)).await.is_some());
    }
}

#[tokio::test]
async fn refresh_without_a_token_or_with_garbage_is_invalid_token() {
    let app = spawn_app().await;
    for call in [
        Call::post("/auth/refresh"),
        Call::post("/auth/refresh").cookie("refresh_token=garbage"),
        Call::post("/auth/refresh").json(json!({"refresh_token": "x"})),
    ] {
        let answer = app.refresh_call(call).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (401, "invalid_token"));
    }
}

#[tokio::test]
async fn body_delivery_returns_and_accepts_the_token_in_json() {
    let app = spawn_app_with(&[("REFRESH_TOKEN_DELIVERY", "body")]).await;
    let login = app.login(ALICE, PASSWORD).await;
    assert!(login.set_cookies().is_empty());
    let token = login.json()["refresh_token"].as_str().unwrap().to_owned();
    record_refresh_token(&token);
    let rotated = app
        .refresh_call(
            Call::post("/auth/refresh")
                .header("content-type", "text/plain")
                .body(json!({"refresh_token": token}).to_string()),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    assert_eq!(generation_of(rotated.json()["refresh_token"].as_str().unwrap()), 1);
}
