use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn login_sets_a_narrow_secure_refresh_cookie_and_returns_a_bearer_token() {
    let app = spawn_app().await;
    let answer = app.login(" Alice@Example.com ", PASSWORD).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let body = answer.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body.get("refresh_token").is_none(), "cookie delivery keeps the token out of the body");
    let cookies = answer.set_cookies();
    assert_eq!(cookies.len(), 1);
    let cookie = &cookies[0];
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/auth", "Max-Age=1209600"] {
        assert!(cookie.split("; ").any(|a| a == attribute), "{attribute} missing in {cookie}");
    }
    assert!(!cookie.to_ascii_lowercase().contains("domain="), "{cookie}");
    let token = answer.refresh_token();
    assert_eq!(generation_of(&token), 0);
    let item = app.session_item(&session_id_of(&token)).await.expect("session stored");
    assert_eq!(item["token_hash"].as_b().unwrap().as_ref().len(), 32, "only a 32-byte hash is stored");
    assert!(!format!("{item:?}").contains(token.rsplit('.').next().unwrap()), "the secret is not stored");
}

#[tokio::test]
async fn unknown_user_wrong_password_and_disabled_user_get_byte_identical_answers() {
    let app = spawn_app().await;
    let answers = [
        app.login("nobody@example.com", PASSWORD).await,
        app.login(ALICE, "wrong password!").await,
        app.login(DISABLED, PASSWORD).await,
    ];
    for answer in &answers {
        assert_eq!(answer.status, 401);
        assert_eq!(answer.body, answers[0].body);
        assert_eq!(answer.headers, answers[0].headers);
        assert!(answer.set_cookies().is_empty());
    }
    assert_eq!(answers[0].error_code(), "invalid_credentials");
}

#[tokio::test]
async fn malformed_requests_get_400_413_415_quickly_and_never_500() {
    let app = spawn_app().await;
    let cases = [
        (
            Call::post("/auth/login").header("content-type", "application/json").body("{not json"),
            400,
            "invalid_request",
        ),
        (Call::post("/auth/login").json(json!({"username": ALICE})), 400, "invalid_request"),
        (Call::post("/auth/login").json(json!({"username": 1, "password": 2})), 400, "invalid_request"),
        // serde reads a struct from an array of its fields too: the right credentials as an
        // array logged in before (found while describing the API in docs/openapi.yaml).
        (Call::post("/auth/login").json(json!([ALICE, PASSWORD])), 400, "invalid_request"),
        (Call::post("/auth/refresh").json(json!([])), 400, "invalid_request"),
        (
            Call::post("/auth/login").json(json!({"username": ALICE, "password": ""})),
            400,
            "invalid_request",
        ),
        (
            Call::post("/auth/login")
                .header("content-type", "text/plain")
                .body(json!({"username": ALICE, "password": PASSWORD}).to_string()),
            415,
            "unsupported_media_type",
        ),
        (
            Call::post("/auth/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("username=a&password=b"),
            415,
            "unsupported_media_type",
        ),
        (
            Call::post("/auth/login").json(json!({"username": ALICE, "password": "x".repeat(1024 * 1024)})),
            413,
            "payload_too_large",
        ),
        (Call::post("/auth/login").method("GET"), 405, "method_not_allowed"),
    ];
    for (call, status, code) in cases {
        let started = Instant::now();
        let answer = app.login_call(call).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (status, code), "{}", answer.body);
        assert!(started.elapsed() < Duration::from_secs(1), "rejected without hashing");
        if status == 405 {
            assert_eq!(answer.header("allow"), Some("POST, OPTIONS"), "a 405 says what is allowed");
        }
    }
}

#[tokio::test]
async fn foreign_origins_are_refused_and_allowed_ones_get_exact_cors() {
    let app = spawn_app().await;
    let foreign = app
        .login_call(
            Call::post("/auth/login")
                .header("origin", "https://evil.test")
                .json(json!({"username": ALICE, "password": PASSWORD})),
        )
        .await;
    assert_eq!((foreign.status, foreign.error_code().as_str()), (403, "forbidden_origin"));
    assert_eq!(foreign.header("access-control-allow-origin"), None);
    let cross_site = app
        .login_call(
            Call::post("/auth/login")
                .header("sec-fetch-site", "cross-site")
                .json(json!({"username": ALICE, "password": PASSWORD})),
        )
        .await;
    assert_eq!(cross_site.status, 403);

    let preflight = app.login_call(Call::post("/auth/login").method("OPTIONS").header("origin", ORIGIN)).await;
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(preflight.header("access-control-allow-credentials"), Some("true"));
    let unlisted = app
        .login_call(Call::post("/auth/login").method("OPTIONS").header("origin", "https://evil.test"))
        .await;
    assert_eq!(unlisted.header("access-control-allow-origin"), None);

    let allowed = app
        .login_call(
            Call::post("/auth/login")
                .header("origin", ORIGIN)
                .json(json!({"username": ALICE, "password": PASSWORD})),
        )
        .await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("access-control-allow-origin"), Some(ORIGIN));
}

#[tokio::test]
async fn repeated_failures_throttle_the_account_with_retry_after() {
    let app = spawn_app().await;
    for _ in 0..5 {
        assert_eq!(app.login(ALICE, "wrong password!").await.status, 401);
    }
    let throttled = app.login(ALICE, PASSWORD).await;
    assert_eq!((throttled.status, throttled.error_code().as_str()), (429, "too_many_attempts"));
    // 30 s from the fifth failure; a second may have ticked since.
    let retry_after: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((29..=30).contains(&retry_after), "{retry_after}");
    assert_eq!(app.login(BOB, PASSWORD).await.status, 200, "another account is not affected");
    for _ in 0..5 {
        app.login("ghost@example.com", "wrong password!").await;
    }
    assert_eq!(
        app.login("ghost@example.com", "wrong password!").await.status,
        429,
        "unknown usernames throttle alike"
    );
}

#[tokio::test]
async fn thirty_parallel_wrong_guesses_check_at_most_five_passwords_then_even_the_right_one_gets_429() {
    let app = std::sync::Arc::new(spawn_app().await);
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move { app.login(ALICE, &format!("wrong password {i}")).await.status })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (5, 25), "only reserved attempts are checked: {statuses:?}");
    let item = app
        .dynamodb
        .get_item()
        .table_name(&app.config.users_table)
        .key("username", aws_sdk_dynamodb::types::AttributeValue::S(format!("throttle#{ALICE}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    let item = item.item().unwrap();
    assert_eq!(item["attempts"].as_n().unwrap(), "5", "no attempt lost to a race");
    let throttled_until: u64 = item["throttled_until"].as_n().unwrap().parse().unwrap();
    assert!(throttled_until >= now() + 29, "the fifth failure throttles for 30 s");
    let right = app.login(ALICE, PASSWORD).await;
    assert_eq!((right.status, right.error_code().as_str()), (429, "too_many_attempts"));
}
