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
    let sid = session_of_cookie(&cookie);
    assert_eq!(app.session_item(&sid).await.unwrap()["revoke_reason"].as_s().unwrap(), "logout");
    assert_eq!(app.logout_call(Call::post("/auth/logout").cookie(&cookie)).await.status, 204);
    assert_eq!(app.logout_call(Call::post("/auth/logout")).await.status, 204);
    assert_eq!(app.logout_call(Call::post("/auth/logout").method("GET")).await.status, 405);
}

#[tokio::test]
async fn logout_everywhere_revokes_every_session_of_that_user_only() {
    let app = spawn_app().await;
    let alice = app.sessions(ALICE, 3).await;
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

#[tokio::test]
async fn logout_with_a_superseded_token_of_the_session_ends_it() {
    let app = spawn_app().await;
    let first = app.login(ALICE, PASSWORD).await.refresh_cookie();
    // A background refresh raced the logout: the client still holds the older token.
    let second = app.refresh(&first).await.refresh_cookie();
    assert_eq!(app.logout_call(Call::post("/auth/logout").cookie(&first)).await.status, 204);
    let sid = session_of_cookie(&first);
    assert_eq!(app.session_item(&sid).await.unwrap()["revoke_reason"].as_s().unwrap(), "logout");
    assert_eq!(app.refresh(&second).await.error_code(), "invalid_token", "the successor died with the session");
}

#[tokio::test]
async fn logout_with_a_forged_token_of_a_real_session_revokes_nothing() {
    let app = spawn_app().await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let sid = session_of_cookie(&cookie);
    for forged in [format!("{sid}.0.{}", "A".repeat(43)), format!("{sid}.3.{}", "B".repeat(43))] {
        let answer = app
            .logout_call(
                Call::post("/auth/logout")
                    .cookie(&format!("refresh_token={forged}"))
                    .json(json!({"everywhere": true})),
            )
            .await;
        assert_eq!(answer.status, 204, "logout answers alike");
    }
    assert!(!app.session_item(&sid).await.unwrap().contains_key("revoked_at"));
    assert_eq!(app.refresh(&cookie).await.status, 200);
}

#[tokio::test]
async fn logout_everywhere_bumps_the_users_epoch_and_a_login_in_the_same_second_lives() {
    let app = spawn_app().await;
    let cookies = app.sessions(ALICE, 3).await;
    let answer = app
        .logout_call(Call::post("/auth/logout").cookie(&cookies[0]).json(json!({"everywhere": true})))
        .await;
    assert_eq!(answer.status, 204);
    // At once, with no pause: the new session carries the new epoch.
    let later = app.login(ALICE, PASSWORD).await.refresh_cookie();
    assert_eq!(app.user_item(ALICE).await["session_epoch"].as_n().unwrap(), "1");
    for (i, cookie) in cookies.iter().enumerate() {
        let sid = session_of_cookie(cookie);
        let item = app.session_item(&sid).await.unwrap();
        let reason = if i == 0 { "logout_everywhere" } else { "logout_everywhere_other" };
        assert_eq!(item["revoke_reason"].as_s().unwrap(), reason);
        let expires_at: u64 = item["expires_at"].as_n().unwrap().parse().unwrap();
        assert!(expires_at <= now() + 3600, "revoked items leave the index within the hour");
    }
    let refreshed = app.refresh(&later).await;
    assert_eq!(
        refreshed.status, 200,
        "a session started right after the logout is not touched: {}",
        refreshed.body
    );
    assert_eq!(app.refresh(&refreshed.refresh_cookie()).await.status, 200);
}
