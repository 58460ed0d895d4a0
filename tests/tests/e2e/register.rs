//! Sign-up, e-mail verification and password reset end to end: the register function
//! against the emulator's DynamoDB and SES, links read from the emulator's mailbox.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::json;

use crate::harness::*;

const NEW_PASSWORD: &str = "quartz lantern orbit meadow";

fn fresh_address() -> String {
    format!("u{}@example.com", auth_core::random::random_id().to_lowercase().replace(['-', '_'], "x"))
}

fn post(path: &'static str, body: serde_json::Value) -> Call {
    Call::post(path).json(body)
}

async fn sign_up(app: &App, address: &str, password: &str) -> Answer {
    record_secret(password);
    app.register_call(post("/auth/signup", json!({"username": address, "password": password})))
        .await
}

async fn verify(app: &App, token: &str) -> Answer {
    verify_with(app, token, NEW_PASSWORD).await
}

async fn verify_with(app: &App, token: &str, password: &str) -> Answer {
    app.register_call(post("/auth/verify-email", json!({"token": token, "password": password})))
        .await
}

async fn forgot(app: &App, address: &str) -> Answer {
    app.register_call(post("/auth/password/forgot", json!({"username": address}))).await
}

/// A fresh address signed up and verified: an account of its own, with a mailbox no other
/// test writes to.
async fn verified_account(app: &App) -> String {
    let address = fresh_address();
    sign_up(app, &address, NEW_PASSWORD).await;
    let token = last_link_token(&address).await.unwrap();
    assert_eq!(verify(app, &token).await.status, 204);
    address
}

async fn reset(app: &App, token: &str, password: &str) -> Answer {
    record_secret(password);
    app.register_call(post("/auth/password/reset", json!({"token": token, "new_password": password})))
        .await
}

#[tokio::test]
async fn a_sign_up_logs_in_only_after_its_address_is_verified_through_the_mailed_link() {
    let app = spawn_app().await;
    let address = fresh_address();
    let answer = sign_up(&app, &address, NEW_PASSWORD).await;
    assert_eq!((answer.status, answer.json()), (202, json!({"status": "accepted"})));
    // A wrong password learns nothing; only the right one is told to verify first.
    assert_eq!(app.login(&address, "not the password at all").await.error_code(), "invalid_credentials");
    let refused = app.login(&address, NEW_PASSWORD).await;
    assert_eq!((refused.status, refused.error_code().as_str()), (403, "email_not_verified"));
    let (subject, body) = mails_to(&address).await.pop().expect("a verification e-mail in the emulator's mailbox");
    assert!(subject.contains("Confirm your e-mail address"), "{subject}");
    assert!(
        body.contains("http://localhost:5173/verify-email#token="),
        "the token travels in the fragment: {body}"
    );
    let token = last_link_token(&address).await.unwrap();
    assert_eq!(verify(&app, &token).await.status, 204);
    let user = app.user_item(&address).await;
    assert_eq!(user["email_verified"].as_bool().ok(), Some(&true));
    assert!(!user.contains_key("expires_at"), "a verified account never expires");
    let login = app.login(&address, NEW_PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let again = verify(&app, &token).await;
    assert_eq!((again.status, again.error_code().as_str()), (400, "invalid_token"), "single use");
}

#[tokio::test]
async fn whoever_signs_up_first_with_someone_elses_address_keeps_no_way_into_it() {
    let app = spawn_app().await;
    let address = fresh_address();
    let attacker = "the attacker's own passphrase";
    sign_up(&app, &address, attacker).await;
    sign_up(&app, &address, NEW_PASSWORD).await;
    let token = last_link_token(&address).await.unwrap();
    let refused = verify_with(&app, &token, attacker).await;
    assert_eq!((refused.status, refused.error_code().as_str()), (401, "invalid_credentials"));
    assert_eq!(verify(&app, &token).await.status, 204, "the link survived the wrong password");
    assert_eq!(app.login(&address, attacker).await.error_code(), "invalid_credentials");
    assert_eq!(app.login(&address, NEW_PASSWORD).await.status, 200);
}

#[tokio::test]
async fn sign_up_answers_a_new_and_a_taken_address_byte_for_byte_alike() {
    let app = spawn_app().await;
    let owner = verified_account(&app).await;
    let new = sign_up(&app, &fresh_address(), NEW_PASSWORD).await;
    let taken = sign_up(&app, &owner, "another good passphrase").await;
    assert_eq!((new.status, &new.body), (taken.status, &taken.body));
    let headers = |a: &Answer| {
        let mut h: Vec<(String, String)> = a.headers.iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned())).collect();
        h.sort();
        h
    };
    assert_eq!(headers(&new), headers(&taken));
    // The taken address's owner hears of it, with a reset link; the account is untouched.
    let (subject, body) = mails_to(&owner).await.pop().unwrap();
    assert!(subject.contains("already have"), "{subject}");
    assert!(body.contains("/reset-password#token="));
    assert_eq!(app.login(&owner, NEW_PASSWORD).await.status, 200, "the first password stands");
}

#[tokio::test]
async fn links_are_stored_only_hashed_superseded_by_a_newer_one_and_dead_once_expired() {
    let app = spawn_app().await;
    let address = fresh_address();
    sign_up(&app, &address, NEW_PASSWORD).await;
    let first = last_link_token(&address).await.unwrap();
    let resend = app.register_call(post("/auth/verify-email/resend", json!({"username": address}))).await;
    assert_eq!(resend.status, 202);
    let second = last_link_token(&address).await.unwrap();
    // The user item names the newest link by its hash; the link item is keyed by it too.
    let user = app.user_item(&address).await;
    let pointer = user["verify_link"].as_b().unwrap().as_ref().to_vec();
    let hash = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &second).unwrap(),
    );
    assert_eq!(pointer, hash.as_ref());
    let hex: String = hash.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let link = app.user_item(&format!("link#{hex}")).await;
    assert_eq!(link["purpose"].as_s().unwrap(), "verify_email");
    let stored = format!("{user:?}{link:?}");
    assert!(!stored.contains(&first) && !stored.contains(&second), "no token in the clear");
    assert_eq!(verify(&app, &first).await.error_code(), "invalid_token", "superseded");
    // Past its expiry (the item outlives its TTL in the emulator, as in DynamoDB for days).
    app.dynamodb
        .update_item()
        .table_name(&app.config.users_table)
        .key("username", AttributeValue::S(format!("link#{hex}")))
        .update_expression("SET expires_at = :past")
        .expression_attribute_values(":past", AttributeValue::N((now() - 1).to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(verify(&app, &second).await.error_code(), "invalid_token", "expired");
    assert_eq!(app.login(&address, NEW_PASSWORD).await.error_code(), "email_not_verified");
}

#[tokio::test]
async fn a_reset_ends_every_session_clears_the_throttle_and_its_link_is_no_verification_link() {
    let app = spawn_app().await;
    let owner = verified_account(&app).await;
    let mut sessions = Vec::new();
    for _ in 0..2 {
        sessions.push(app.login(&owner, NEW_PASSWORD).await.refresh_cookie());
    }
    for _ in 0..4 {
        app.login(&owner, "a wrong password!").await;
    }
    assert_eq!(forgot(&app, &owner).await.status, 202);
    let token = last_link_token(&owner).await.unwrap();
    assert_eq!(verify(&app, &token).await.error_code(), "invalid_token", "a reset link verifies nothing");
    let weak = reset(&app, &token, "password").await;
    assert_eq!((weak.status, weak.error_code().as_str()), (400, "weak_password"));
    let chosen = "a brand new passphrase here";
    assert_eq!(reset(&app, &token, chosen).await.status, 204);
    for cookie in &sessions {
        assert_eq!(app.refresh(cookie).await.error_code(), "invalid_token", "every session ended");
    }
    assert_eq!(app.login(&owner, NEW_PASSWORD).await.error_code(), "invalid_credentials");
    // Four failures were counted before; had the throttle stayed, these would reach it.
    for _ in 0..2 {
        assert_eq!(app.login(&owner, "a wrong password!").await.error_code(), "invalid_credentials");
    }
    assert_eq!(app.login(&owner, chosen).await.status, 200);
    assert_eq!(reset(&app, &token, "another fine passphrase").await.error_code(), "invalid_token", "single use");
    let (subject, _) = mails_to(&owner).await.pop().unwrap();
    assert!(subject.contains("password was changed"), "{subject}");
}

#[tokio::test]
async fn forgot_answers_alike_for_unknown_unverified_and_disabled_addresses_and_sends_them_nothing() {
    let app = spawn_app().await;
    let unverified = fresh_address();
    sign_up(&app, &unverified, NEW_PASSWORD).await;
    let before = mails_to(&unverified).await.len();
    let ghost = fresh_address();
    let owner = verified_account(&app).await;
    let answers = [
        forgot(&app, &owner).await,
        forgot(&app, &ghost).await,
        forgot(&app, &unverified).await,
        forgot(&app, DISABLED).await,
    ];
    for answer in &answers {
        assert_eq!((answer.status, &answer.body), (202, &answers[0].body));
    }
    assert!(mails_to(&ghost).await.is_empty() && mails_to(DISABLED).await.is_empty());
    assert_eq!(mails_to(&unverified).await.len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_parallel_requests_send_at_most_the_hourly_limit_to_one_address() {
    let app = std::sync::Arc::new(spawn_app().await);
    let address = verified_account(&app).await;
    let before = mails_to(&address).await.len();
    let hour = now() / 3600;
    let requests = (0..20).map(|_| {
        let (app, address) = (app.clone(), address.clone());
        tokio::spawn(async move { forgot(&app, &address).await.status })
    });
    for request in requests {
        assert_eq!(request.await.unwrap(), 202, "over the limit the answer is the same");
    }
    // The sign-up's e-mail counted too: 3 an hour in all (two hours' worth, should the
    // requests straddle the top of an hour).
    let sent = mails_to(&address).await.len() - before;
    if now() / 3600 == hour {
        assert_eq!(sent, 2, "3 per hour, the sign-up's included");
    } else {
        assert!(sent <= 5, "{sent}");
    }
}

#[tokio::test]
async fn a_failing_mail_service_answers_202_and_leaves_a_state_a_resend_repairs() {
    use crate::fault_server::{Fault, start};
    let app = spawn_app().await;
    // SES fails every send; DynamoDB works.
    let server = start(Fault::internal_error("outbound-emails", 0, usize::MAX)).await;
    let sdk = auth_core::aws::load_sdk_config().await;
    let ses = aws_sdk_sesv2::Client::from_conf(aws_sdk_sesv2::config::Builder::from(&sdk).endpoint_url(&server.endpoint).build());
    let flaky = auth_core::aws::register_with(&app.config, app.dynamodb.clone(), ses).unwrap();
    let address = fresh_address();
    let call = post("/auth/signup", json!({"username": address, "password": NEW_PASSWORD}));
    let answer = Answer::from(register::handle(&flaky, call.request()).await.unwrap());
    assert_eq!(answer.status, 202);
    assert!(mails_to(&address).await.is_empty());
    assert!(
        app.user_item(&address).await.contains_key("verify_link"),
        "the account and its link were written first"
    );
    let resend = app.register_call(post("/auth/verify-email/resend", json!({"username": address}))).await;
    assert_eq!(resend.status, 202);
    assert_eq!(verify(&app, &last_link_token(&address).await.unwrap()).await.status, 204);
}

#[tokio::test]
async fn closed_sign_up_foreign_origins_and_bad_bodies_get_their_table_answers() {
    let closed = spawn_app_with(&[("SIGNUP", "closed")]).await;
    let answer = sign_up(&closed, &fresh_address(), NEW_PASSWORD).await;
    assert_eq!((answer.status, answer.error_code().as_str()), (403, "signup_closed"));
    let app = spawn_app().await;
    let foreign = app
        .register_call(post("/auth/signup", json!({"username": fresh_address(), "password": NEW_PASSWORD})).header("origin", "https://evil.example"))
        .await;
    assert_eq!(foreign.error_code(), "forbidden_origin");
    assert_eq!(app.register_call(Call::post("/auth/signup").body("x")).await.status, 415);
    assert_eq!(
        app.register_call(post("/auth/signup", json!({"username": "not-an-address", "password": NEW_PASSWORD})))
            .await
            .error_code(),
        "invalid_request"
    );
    assert_eq!(app.register_call(post("/auth/nowhere", json!({}))).await.status, 404);
    assert_eq!(sign_up(&app, &fresh_address(), "password").await.error_code(), "weak_password");
}
