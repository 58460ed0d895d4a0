use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn logout_clears_the_cookie_revokes_the_session_and_is_idempotent() {
    let app = spawn_app().await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let answer = app.logout_call(Call::post("/auth/logout").cookie(&cookie)).await;
    assert_eq!(answer.status, 204);
    assert!(answer.body.is_empty(), "the token is never echoed");
    let cleared = answer.set_cookies();
    assert!(
        cleared[0].starts_with("refresh_token=;") && cleared[0].contains("Max-Age=0") && cleared[0].contains("Path=/auth"),
        "{cleared:?}"
    );
    assert_eq!(app.refresh(&cookie).await.status, 401);
    let sid = session_id_of(cookie.trim_start_matches("refresh_token="));
    assert_eq!(app.session_item(&sid).await.unwrap()["revoke_reason"].as_s().unwrap(), "logout");
    assert_eq!(app.logout_call(Call::post("/auth/logout").cookie(&cookie)).await.status, 204);
    assert_eq!(app.logout_call(Call::post("/auth/logout")).await.status, 204);
    assert_eq!(app.logout_call(Call::post("/auth/logout").method("GET")).await.status, 405);
}

#[tokio::test]
async fn logout_everywhere_revokes_every_session_of_that_user_only() {
    let app = spawn_app().await;
    let mut alice = Vec::new();
    for _ in 0..3 {
        alice.push(app.login(ALICE, PASSWORD).await.refresh_cookie());
    }
    let bob = app.login(BOB, PASSWORD).await.refresh_cookie();
    let answer = app
        .logout_call(
            Call::post("/auth/logout")
                .cookie(&alice[0])
                .header("content-type", "application/json")
                .body(json!({"everywhere": true}).to_string()),
        )
        .await;
    assert_eq!(answer.status, 204);
    for cookie in &alice {
        assert_eq!(app.refresh(cookie).await.status, 401, "{cookie}");
    }
    assert_eq!(app.refresh(&bob).await.status, 200, "another user's session lives on");
}
