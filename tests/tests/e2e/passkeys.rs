//! Passkeys end to end: the account and login functions against the emulator, with a
//! software authenticator (webauthn-authenticator-rs) answering the server's real options
//! as a browser at `ORIGIN` would, and as an attacker would with what it can change.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use crate::harness::*;
use crate::mfa::{NEW_PASSWORD, fresh_account};

pub fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

/// A user with a passkey on `authenticator`: the address, a password-only bearer, the
/// credential id and the user handle (base64url) the server gave it.
pub(crate) struct Holder {
    pub(crate) address: String,
    bearer: String,
    pub(crate) id: String,
    pub(crate) handle: String,
    /// The registration's answer.
    pub(crate) status: u16,
}

pub(crate) async fn register(app: &App, authenticator: &mut SoftPasskey) -> Holder {
    register_as(app, authenticator, |_| {}).await
}

/// [`register`], with `tamper` applied to the credential before it is sent.
async fn register_as(app: &App, authenticator: &mut SoftPasskey, tamper: impl FnOnce(&mut Value)) -> Holder {
    let address = fresh_account(app).await;
    let bearer = format!("Bearer {}", app.login(&address, NEW_PASSWORD).await.access_token());
    let started = app
        .account_call(Call::post("/auth/passkeys/register/start").header("authorization", &bearer))
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let options = &started.json()["options"];
    assert_eq!(options["publicKey"]["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(options["publicKey"]["authenticatorSelection"]["userVerification"], "required");
    let handle = options["publicKey"]["user"]["id"].as_str().unwrap().to_owned();
    // The software authenticator keeps no resident keys, and a server cannot tell whether
    // one was kept (the Chromium scenario registers a real discoverable one): ask it for a
    // plain credential.
    let mut options = options.clone();
    options["publicKey"]["authenticatorSelection"]["residentKey"] = "discouraged".into();
    options["publicKey"]["authenticatorSelection"]["requireResidentKey"] = false.into();
    let ccr: CreationChallengeResponse = serde_json::from_value(options).unwrap();
    let mut credential = serde_json::to_value(authenticator.do_registration(origin(), ccr).unwrap()).unwrap();
    tamper(&mut credential);
    let finish = Call::post("/auth/passkeys/register/finish").header("authorization", &bearer).json(json!({
        "passkey_token": started.json()["passkey_token"],
        "credential": credential,
        "name": "laptop",
    }));
    let finished = app.account_call(finish).await;
    let id = finished.json()["id"].as_str().unwrap_or_default().to_owned();
    Holder {
        address,
        bearer,
        id,
        handle,
        status: finished.status,
    }
}

/// Starts a passkey sign-in: the token and the options.
async fn sign_in_start(app: &App) -> (String, RequestChallengeResponse) {
    let started = app.login_call(Call::post("/auth/passkeys/login/start")).await;
    assert_eq!(started.status, 200, "{}", started.body);
    assert_eq!(
        started.json()["options"]["publicKey"]["allowCredentials"],
        json!([]),
        "discoverable: no username asked"
    );
    let token = started.json()["passkey_token"].as_str().unwrap().to_owned();
    (token, serde_json::from_value(started.json()["options"].clone()).unwrap())
}

/// The authenticator's assertion for `options`, as a browser returns it for a discoverable
/// credential: the credential chosen (the software authenticator cannot discover, so it is
/// named for it) and the user handle set (not signed: an attacker may set any).
pub fn assert_with(authenticator: &mut SoftPasskey, mut options: RequestChallengeResponse, id: &str, handle: &str, origin: Url) -> Value {
    let allow: Value = json!([{"type": "public-key", "id": id}]);
    options.public_key.allow_credentials = serde_json::from_value(allow).unwrap();
    let credential = authenticator.do_authentication(origin, options).unwrap();
    let mut credential = serde_json::to_value(credential).unwrap();
    credential["response"]["userHandle"] = handle.into();
    credential
}

async fn sign_in_finish(app: &App, token: &str, credential: Value) -> Answer {
    app.login_call(Call::post("/auth/passkeys/login/finish").json(json!({"passkey_token": token, "credential": credential})))
        .await
}

fn amr(answer: &Answer) -> Value {
    let token = answer.access_token();
    let payload = URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap();
    serde_json::from_slice::<Value>(&payload).unwrap()["amr"].clone()
}

#[tokio::test]
async fn a_registered_passkey_signs_in_without_a_password_and_is_listed_and_removed() {
    let app = spawn_app().await;
    let mut authenticator = SoftPasskey::new(true);
    let holder = register(&app, &mut authenticator).await;
    assert_eq!(holder.status, 201);
    let listed = app.account_call(Call::get("/auth/passkeys").header("authorization", &holder.bearer)).await;
    assert_eq!(listed.json()["passkeys"][0]["id"], holder.id.as_str());
    assert_eq!(listed.json()["passkeys"][0]["name"], "laptop");
    let status = app.account_call(Call::get("/auth/mfa").header("authorization", &holder.bearer)).await;
    assert_eq!(
        status.json(),
        json!({"totp": false, "recovery_codes_left": 0, "methods": ["webauthn"], "passkeys": 1})
    );

    let (token, options) = sign_in_start(&app).await;
    let signed = sign_in_finish(&app, &token, assert_with(&mut authenticator, options, &holder.id, &holder.handle, origin())).await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    assert!(signed.header("set-cookie").is_some());
    let methods = amr(&signed);
    assert!(
        methods == json!(["hwk", "user", "mfa"]) || methods == json!(["swk", "user", "mfa"]),
        "{methods}"
    );
    let used = app.account_call(Call::get("/auth/passkeys").header("authorization", &holder.bearer)).await;
    assert!(used.json()["passkeys"][0]["last_used_at"].as_u64().unwrap() > 0);

    // A password login now asks for the second factor, which the passkey answers.
    let challenged = app.login(&holder.address, NEW_PASSWORD).await;
    assert_eq!(challenged.json()["methods"], json!(["webauthn"]), "{}", challenged.body);
    let options: RequestChallengeResponse = serde_json::from_value(challenged.json()["webauthn"].clone()).unwrap();
    let assertion = authenticator.do_authentication(origin(), options).unwrap();
    let answered = app
        .login_call(Call::post("/auth/login/mfa").json(json!({"mfa_token": challenged.json()["mfa_token"], "webauthn": assertion})))
        .await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    let methods = amr(&answered);
    assert_eq!(methods[0], "pwd");
    assert!(methods.as_array().unwrap().iter().any(|m| m == "user"), "{methods}");

    // Removing it needs a recent second factor on the session: the password-only session
    // steps up with the passkey itself (its ceremony used once), then the passkey is dead.
    let path: &'static str = format!("/auth/passkeys/{}", holder.id).leak();
    let refused = app.account_call(Call::get(path).method("DELETE").header("authorization", &holder.bearer)).await;
    assert_eq!(refused.error_code(), "step_up_required");
    let started = app
        .account_call(Call::post("/auth/mfa/step-up/start").header("authorization", &holder.bearer))
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let options: RequestChallengeResponse = serde_json::from_value(started.json()["options"].clone()).unwrap();
    let assertion = authenticator.do_authentication(origin(), options).unwrap();
    let step_up = json!({"passkey_token": started.json()["passkey_token"], "webauthn": assertion});
    let stepped = app
        .account_call(Call::post("/auth/mfa/step-up").header("authorization", &holder.bearer).json(step_up.clone()))
        .await;
    assert_eq!(stepped.status, 204, "{}", stepped.body);
    let again = app
        .account_call(Call::post("/auth/mfa/step-up").header("authorization", &holder.bearer).json(step_up))
        .await;
    assert_eq!(again.error_code(), "invalid_passkey", "a step-up ceremony is used once");
    assert_eq!(
        app.account_call(Call::get(path).method("DELETE").header("authorization", &holder.bearer))
            .await
            .status,
        204
    );
    let (token, options) = sign_in_start(&app).await;
    let gone = sign_in_finish(&app, &token, assert_with(&mut authenticator, options, &holder.id, &holder.handle, origin())).await;
    assert_eq!(gone.error_code(), "invalid_passkey");
    assert!(app.login(&holder.address, NEW_PASSWORD).await.json().get("mfa_required").is_none());
}

#[tokio::test]
async fn assertions_for_another_users_handle_replayed_or_from_another_origin_or_rp_are_refused() {
    let app = spawn_app().await;
    let (mut alice_key, mut bob_key) = (SoftPasskey::new(true), SoftPasskey::new(true));
    let alice = register(&app, &mut alice_key).await;
    let bob = register(&app, &mut bob_key).await;
    assert_eq!((alice.status, bob.status), (201, 201));
    // A registration whose request names another credential id than the attested one (the
    // id keys the one-account-per-credential pointer): refused.
    let mut other_key = SoftPasskey::new(true);
    let renamed = register_as(&app, &mut other_key, |credential| credential["id"] = "bm90LXRoZS1hdHRlc3RlZC1pZA".into()).await;
    assert_eq!(renamed.status, 401, "an id nothing attests");

    // Bob's credential presented as Alice's user: the handle is not the credential's owner's.
    let (token, options) = sign_in_start(&app).await;
    let forged = assert_with(&mut bob_key, options, &bob.id, &alice.handle, origin());
    assert_eq!(sign_in_finish(&app, &token, forged).await.error_code(), "invalid_passkey");

    // A page of another origin under the same site (the authenticator signs for it: the RP
    // id covers it), and a phishing site with its own RP id: refused.
    let (token, options) = sign_in_start(&app).await;
    let elsewhere = assert_with(&mut alice_key, options, &alice.id, &alice.handle, Url::parse("https://evil.app.test").unwrap());
    assert_eq!(sign_in_finish(&app, &token, elsewhere).await.error_code(), "invalid_passkey");
    let (token, mut options) = sign_in_start(&app).await;
    options.public_key.rp_id = "evil.test".into();
    let other_rp = assert_with(&mut alice_key, options, &alice.id, &alice.handle, Url::parse("https://evil.test").unwrap());
    assert_eq!(sign_in_finish(&app, &token, other_rp).await.error_code(), "invalid_passkey");

    // Alice's password login answered with Bob's passkey: not one of hers.
    let challenged = app.login(&alice.address, NEW_PASSWORD).await;
    let options: RequestChallengeResponse = serde_json::from_value(challenged.json()["webauthn"].clone()).unwrap();
    let bobs = assert_with(&mut bob_key, options, &bob.id, &bob.handle, origin());
    let answer = json!({"mfa_token": challenged.json()["mfa_token"], "webauthn": bobs});
    assert_eq!(app.login_call(Call::post("/auth/login/mfa").json(answer)).await.error_code(), "invalid_passkey");

    // Ids the request makes up: longer than any credential's (no DynamoDB key may hold it),
    // or not the raw id: refused, never a 503.
    let (token, options) = sign_in_start(&app).await;
    let mut long = assert_with(&mut alice_key, options, &alice.id, &alice.handle, origin());
    long["id"] = "A".repeat(3000).into();
    assert_eq!(sign_in_finish(&app, &token, long).await.error_code(), "invalid_passkey");

    // A right one passes once; its token and its assertion are dead after.
    let (token, options) = sign_in_start(&app).await;
    let right = assert_with(&mut alice_key, options, &alice.id, &alice.handle, origin());
    assert_eq!(sign_in_finish(&app, &token, right.clone()).await.status, 200);
    assert_eq!(sign_in_finish(&app, &token, right.clone()).await.error_code(), "invalid_passkey", "token used");
    let (fresh, _) = sign_in_start(&app).await;
    assert_eq!(
        sign_in_finish(&app, &fresh, right).await.error_code(),
        "invalid_passkey",
        "the challenge differs"
    );
}
