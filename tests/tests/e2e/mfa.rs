//! The TOTP second factor end to end: enrolment through the account function, the login
//! challenge through the login function, the table as the emulator holds it, the
//! authorizer's `ROUTE_REQUIRE_MFA`, and a reset by e-mail that must not skip the factor.

use auth_core::factors::TotpSecret;
use serde_json::{Value, json};

use crate::harness::*;

pub const NEW_PASSWORD: &str = "quartz lantern orbit meadow";

/// A verified account of its own (so no other test's throttle or factors meet it).
pub async fn fresh_account(app: &App) -> String {
    let address = format!("m{}@example.com", auth_core::random::random_id().to_lowercase().replace(['-', '_'], "x"));
    let signed_up = app
        .register_call(Call::post("/auth/signup").json(json!({"username": address, "password": NEW_PASSWORD})))
        .await;
    assert_eq!(signed_up.status, 202);
    let token = last_link_token(&address).await.unwrap();
    let verified = app
        .register_call(Call::post("/auth/verify-email").json(json!({"token": token, "password": NEW_PASSWORD})))
        .await;
    assert_eq!(verified.status, 204);
    address
}

/// An account with TOTP on: its address, secret, recovery codes and a password-only token.
pub(crate) async fn with_totp(app: &App) -> (String, TotpSecret, Vec<String>, String) {
    let address = fresh_account(app).await;
    let token = app.login(&address, NEW_PASSWORD).await.access_token();
    let bearer = format!("Bearer {token}");
    let enrolment = app.account_call(Call::post("/auth/mfa/totp").header("authorization", &bearer)).await;
    assert_eq!(enrolment.status, 200, "{}", enrolment.body);
    let uri = enrolment.json()["otpauth_uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("otpauth://totp/") && uri.contains("%40example.com"), "{uri}");
    let secret = TotpSecret::from_base32(enrolment.json()["secret"].as_str().unwrap()).unwrap();
    let confirm = Call::post("/auth/mfa/totp/confirm")
        .header("authorization", &bearer)
        .json(json!({"code": secret.code_at(now())}));
    let confirmed = app.account_call(confirm).await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    let codes = confirmed.json()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (address, secret, codes, token)
}

/// `POST /auth/login/mfa` with the challenge and an answer.
async fn answer(app: &App, mfa_token: &str, answer: Value) -> Answer {
    let mut body = answer;
    body["mfa_token"] = mfa_token.into();
    app.login_call(Call::post("/auth/login/mfa").json(body)).await
}

pub(crate) fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn a_totp_user_signs_in_in_two_steps_and_only_then_reaches_a_route_requiring_mfa() {
    let app = spawn_app_with(&[("ROUTE_REQUIRE_MFA", "POST /payments")]).await;
    let (address, secret, _, password_only) = with_totp(&app).await;

    let challenged = app.login(&address, NEW_PASSWORD).await;
    assert_eq!(challenged.status, 200);
    assert_eq!(challenged.json()["mfa_required"], true);
    assert_eq!(challenged.json()["methods"], json!(["totp", "recovery_code"]));
    assert!(challenged.json().get("access_token").is_none() && challenged.header("set-cookie").is_none());
    let mfa_token = challenged.json()["mfa_token"].as_str().unwrap().to_owned();
    record_secret(&mfa_token);

    // The mfa_token is no access token: the account endpoints and the authorizer refuse it.
    let as_bearer = format!("Bearer {mfa_token}");
    assert_eq!(
        app.account_call(Call::get("/auth/sessions").header("authorization", &as_bearer)).await.status,
        401
    );
    let denied = app.authorize(http_api_authorizer_event(Some(&as_bearer), "GET /pets")).await.unwrap();
    assert_eq!(denied["isAuthorized"], false);

    // Two steps away either way is refused; the next step's code passes.
    for offset in [-60i64, 60] {
        let code = secret.code_at(now().saturating_add_signed(offset));
        assert_eq!(answer(&app, &mfa_token, json!({"code": code})).await.error_code(), "invalid_code", "{offset}");
    }
    let signed = answer(&app, &mfa_token, json!({"code": secret.code_at(now() + 30)})).await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    assert!(signed.header("set-cookie").is_some());
    let token = signed.access_token();
    assert_eq!(claims(&token)["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(
        answer(&app, &mfa_token, json!({"code": secret.code_at(now())})).await.error_code(),
        "invalid_token",
        "used once"
    );

    let route = |token: &str| http_api_authorizer_event(Some(&format!("Bearer {token}")), "POST /payments");
    assert_eq!(app.authorize(route(&password_only)).await.unwrap()["isAuthorized"], false);
    assert_eq!(app.authorize(route(&token)).await.unwrap()["isAuthorized"], true);

    // A refresh keeps amr and auth_time.
    let refreshed = app.refresh(&signed.refresh_cookie()).await;
    let (before, after) = (claims(&token), claims(&refreshed.access_token()));
    assert_eq!((&after["amr"], &after["auth_time"]), (&before["amr"], &before["auth_time"]));
}

#[tokio::test]
async fn one_code_in_two_parallel_answers_passes_once_and_the_table_holds_only_hashes_of_recovery_codes() {
    let app = spawn_app().await;
    let (address, secret, codes, _) = with_totp(&app).await;
    let first = app.login(&address, NEW_PASSWORD).await.json()["mfa_token"].as_str().unwrap().to_owned();
    let second = app.login(&address, NEW_PASSWORD).await.json()["mfa_token"].as_str().unwrap().to_owned();
    let code = json!({"code": secret.code_at(now() + 30)});
    let (a, b) = tokio::join!(answer(&app, &first, code.clone()), answer(&app, &second, code));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [200, 401], "{} / {}", a.body, b.body);

    let stored = app.user_item(&format!("mfa#{address}")).await;
    let hashes = stored["recovery_codes"].as_ss().unwrap();
    assert_eq!(hashes.len(), 10);
    for code in &codes {
        let typed: String = code.replace('-', "");
        assert!(hashes.iter().all(|h| h.len() == 64 && !h.contains(&typed)), "a code is stored only hashed");
    }
    // A recovery code answers a challenge once.
    let third = app.login(&address, NEW_PASSWORD).await.json()["mfa_token"].as_str().unwrap().to_owned();
    assert_eq!(answer(&app, &third, json!({"recovery_code": codes[0]})).await.status, 200);
    let fourth = app.login(&address, NEW_PASSWORD).await.json()["mfa_token"].as_str().unwrap().to_owned();
    assert_eq!(answer(&app, &fourth, json!({"recovery_code": codes[0]})).await.error_code(), "invalid_code");
    assert_eq!(app.user_item(&format!("mfa#{address}")).await["recovery_codes"].as_ss().unwrap().len(), 9);
}

#[tokio::test]
async fn a_password_reset_by_email_does_not_skip_the_second_factor() {
    let app = spawn_app().await;
    let (address, secret, _, _) = with_totp(&app).await;
    let pending = app.login(&address, NEW_PASSWORD).await.json()["mfa_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.register_call(Call::post("/auth/password/forgot").json(json!({"username": address})))
            .await
            .status,
        202
    );
    let link = last_link_token(&address).await.unwrap();
    let chosen = "a brand new passphrase here";
    record_secret(chosen);
    let reset = app
        .register_call(Call::post("/auth/password/reset").json(json!({"token": link, "new_password": chosen})))
        .await;
    assert_eq!(reset.status, 204, "{}", reset.body);
    let after = app.login(&address, chosen).await;
    assert_eq!(after.json()["mfa_required"], true, "{}", after.body);
    assert!(after.json().get("access_token").is_none());
    // The challenge issued before the reset died with the old password, even with a right code.
    let right = json!({"code": secret.code_at(now() + 30)});
    assert_eq!(answer(&app, &pending, right).await.error_code(), "invalid_token");
}

#[tokio::test]
async fn turning_totp_off_needs_a_recent_second_factor_on_the_session() {
    let app = spawn_app_with(&[("STEP_UP_MAX_AGE", "60")]).await;
    let (address, secret, codes, password_only) = with_totp(&app).await;
    let bearer = format!("Bearer {password_only}");
    let off = || Call::get("/auth/mfa/totp").method("DELETE").header("authorization", &bearer);
    assert_eq!(app.account_call(off()).await.error_code(), "step_up_required");
    let change = Call::post("/auth/password")
        .header("authorization", &bearer)
        .json(json!({"current_password": NEW_PASSWORD, "new_password": "yet another long passphrase"}));
    assert_eq!(app.account_call(change).await.error_code(), "step_up_required");
    let wrong = Call::post("/auth/mfa/step-up").header("authorization", &bearer).json(json!({"code": "000000"}));
    assert_eq!(app.account_call(wrong).await.error_code(), "invalid_code");
    let step_up = Call::post("/auth/mfa/step-up")
        .header("authorization", &bearer)
        .json(json!({"recovery_code": codes[1]}));
    assert_eq!(app.account_call(step_up).await.status, 204);
    assert_eq!(app.account_call(off()).await.status, 204);
    assert_eq!(
        app.login(&address, NEW_PASSWORD).await.json().get("mfa_required"),
        None,
        "off: a password signs in"
    );
    let _ = secret;
}

#[tokio::test]
async fn an_operator_resets_a_lost_factor_with_authctl_which_ends_every_session() {
    use crate::authctl::{authctl_with, text};
    let app = spawn_app().await;
    let (address, _, _, _) = with_totp(&app).await;
    let shown = text(&authctl_with(&app, &["user", "show", &address], None, &[]));
    assert!(shown.contains("totp, 10 recovery codes left"), "{shown}");
    let before = fresh_session_cookie(&app, &address).await;

    let reset = authctl_with(&app, &["user", "mfa", "reset", &address], None, &[]);
    assert!(reset.status.success(), "{}", text(&reset));
    assert!(text(&authctl_with(&app, &["user", "show", &address], None, &[])).contains("second factor         none"));
    let after = app.login(&address, NEW_PASSWORD).await;
    assert_eq!(after.status, 200);
    assert!(after.json().get("mfa_required").is_none(), "{}", after.body);
    assert_eq!(app.refresh(&before).await.status, 401, "the sessions from before the reset are ended");
}

/// The refresh cookie of a new session of `address`, signed in with the next step's code
/// (the secret read from the table, as the user's app holds it).
async fn fresh_session_cookie(app: &App, address: &str) -> String {
    let stored = app.user_item(&format!("mfa#{address}")).await;
    let secret = TotpSecret::from_bytes(stored["totp_secret"].as_b().unwrap().as_ref()).unwrap();
    let mfa_token = app.login(address, NEW_PASSWORD).await.json()["mfa_token"].as_str().unwrap().to_owned();
    let signed = answer(app, &mfa_token, json!({"code": secret.code_at(now() + 30)})).await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    signed.refresh_cookie()
}
