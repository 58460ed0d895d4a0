//! Sign-in through another provider, end to end: the federation function's handler against
//! the emulator and a real OpenID provider on loopback (panva's oidc-provider, started per
//! test from tests/oidc/; its login and consent pages driven by tests/oidc/sign_in.mjs as a
//! browser would), and a GitHub-shaped one (the same provider speaking plain OAuth 2.0 at
//! GitHub's paths, with GitHub's REST API for its tokens).

use std::path::PathBuf;
use std::process::Stdio;

use auth_core::api::federation::FederationApi;
use auth_core::keys::secrets_manager::write_secret;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::harness::*;

const PROVIDER: &str = "local";
const START: &str = "/auth/oauth/local/start";
const CALLBACK: &str = "/auth/oauth/local/callback";
const RETURN_TO: &str = "https://app.test/signed-in";
const CLIENT_SECRET: &str = "local-idp-secret";
const GITHUB: &str = "github";

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc")
}

/// The providers, stopped when dropped.
pub(crate) struct Idp {
    pub(crate) issuer: String,
    /// The GitHub-shaped provider's URL (its issuer, as a GitHub Enterprise Server's).
    pub(crate) github: String,
    _process: Child,
}

impl Idp {
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// The providers with `env` set (tests/oidc/provider.mjs's misbehaviours).
    async fn start_with(env: &[(&str, &str)]) -> Self {
        let mut process = Command::new("node")
            .arg("provider.mjs")
            .envs(env.iter().copied())
            .current_dir(oidc_dir())
            .env("PORT", "0")
            .env("CLIENT_SECRET", CLIENT_SECRET)
            .env("REDIRECT_URIS", format!("https://auth.test{CALLBACK}"))
            .env("GITHUB_PORT", "0")
            .env("GITHUB_REDIRECT_URIS", format!("https://auth.test/auth/oauth/{GITHUB}/callback"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs tests/oidc/provider.mjs (scripts/e2e.sh installs its packages)");
        let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
        let mut github = String::new();
        let issuer = loop {
            let line = lines.next_line().await.unwrap().expect("the provider says where it listens");
            if let Some(url) = line.strip_prefix("github ") {
                github = url.to_owned();
            }
            if let Some(issuer) = line.strip_prefix("listening ") {
                break issuer.to_owned();
            }
        };
        // Keep reading what it prints: a closed pipe would end it at its next line.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            issuer,
            github,
            _process: process,
        }
    }
}

/// An app with the federation function for the provider at `issuer`.
pub(crate) async fn app_with_provider(issuer: &str, trust_email: bool) -> (App, FederationApi) {
    app_with(json!({ "id": PROVIDER, "issuer": issuer, "client_id": "app", "trust_email": trust_email })).await
}

/// An app with the federation function for the GitHub-shaped provider at `url`, offered
/// as `github` (its REST API at `{url}/api/v3`, as a GitHub Enterprise Server's); `more`
/// adds to its configuration.
async fn app_with_github(url: &str, more: Value) -> (App, FederationApi) {
    let mut provider = json!({ "id": GITHUB, "kind": "github", "issuer": url, "client_id": "gh-app", "trust_email": true });
    provider.as_object_mut().unwrap().extend(more.as_object().unwrap().clone());
    app_with(provider).await
}

async fn app_with(provider: Value) -> (App, FederationApi) {
    let id = provider["id"].as_str().unwrap().to_owned();
    let providers = json!([provider]).to_string();
    let secret_id = format!("oauth-{}", auth_core::random::random_id());
    let app = spawn_app_with(&[("OAUTH_PROVIDERS", &providers), ("OAUTH_CLIENT_SECRETS_ID", &secret_id)]).await;
    write_secret(&app.secrets, &secret_id, &json!({ id: CLIENT_SECRET }).to_string()).await.unwrap();
    let federation = auth_core::aws::federation_with(&app.config, app.dynamodb.clone(), app.secrets.clone())
        .await
        .unwrap();
    (app, federation)
}

/// A sign-in started: the provider URL and the browser's ceremony cookie (`name=value`).
struct Started {
    location: String,
    cookie: String,
}

async fn start(federation: &FederationApi) -> Started {
    start_at(federation, START).await
}

async fn start_at(federation: &FederationApi, path: &'static str) -> Started {
    let answer = Answer::from(federation.respond(Call::get(path).query("return_to", RETURN_TO).request()).await);
    assert_eq!(answer.status, 302, "{answer:?}");
    let cookie = answer.set_cookies().into_iter().find(|c| c.starts_with("oauth_ceremony=")).unwrap();
    Started {
        location: answer.header("location").unwrap().to_owned(),
        cookie: cookie.split(';').next().unwrap().to_owned(),
    }
}

/// Signs in at the provider's pages as `login`; the query of its redirect back to us.
async fn sign_in_at_provider(location: &str, login: &str) -> Vec<(String, String)> {
    let output = Command::new("node")
        .arg("sign_in.mjs")
        .arg(location)
        .arg(login)
        .current_dir(oidc_dir())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let back = String::from_utf8(output.stdout).unwrap();
    let back = back.trim();
    assert!(back.starts_with("https://auth.test/auth/oauth/") && back.contains("/callback?"), "{back}");
    let query = back.split_once('?').unwrap().1;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), percent_decoded(value)))
        .collect()
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// Signs in through the provider as `login`, from the start to the callback's answer.
pub(crate) async fn sign_in(federation: &FederationApi, login: &str) -> Answer {
    let started = start(federation).await;
    let back = sign_in_at_provider(&started.location, login).await;
    callback(federation, &back, Some(&started.cookie)).await
}

async fn callback(federation: &FederationApi, query: &[(String, String)], cookie: Option<&str>) -> Answer {
    callback_at(federation, CALLBACK, query, cookie).await
}

async fn callback_at(federation: &FederationApi, path: &'static str, query: &[(String, String)], cookie: Option<&str>) -> Answer {
    let mut call = Call::get(path);
    for (name, value) in query {
        call = call.query(name, value);
    }
    if let Some(cookie) = cookie {
        call = call.cookie(cookie);
    }
    Answer::from(federation.respond(call.request()).await)
}

/// The `error` of a redirect back to the app, or `None` for a success.
fn error_of(answer: &Answer) -> Option<String> {
    assert_eq!(answer.status, 302, "{answer:?}");
    let location = answer.header("location").unwrap();
    assert!(location.starts_with("https://app.test/"), "{location}");
    location.split_once("error=").map(|(_, e)| e.split(['&', '#']).next().unwrap().to_owned())
}

/// The claims of the access token a refresh with the callback's cookie gets.
async fn signed_in_claims(app: &App, answer: &Answer) -> Value {
    assert_eq!(error_of(answer), None, "{answer:?}");
    let refreshed = app.refresh(&answer.refresh_cookie()).await;
    assert_eq!(refreshed.status, 200, "{refreshed:?}");
    let token = refreshed.access_token();
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap()).unwrap()
}

async fn identity_items(app: &App) -> usize {
    let out = app.dynamodb.scan().table_name(&app.config.users_table).send().await.unwrap();
    out.items().iter().filter(|i| i["username"].as_s().unwrap().starts_with("identity#")).count()
}

#[tokio::test]
async fn a_verified_address_from_a_trusted_provider_signs_in_the_account_that_holds_it() {
    let idp = Idp::start().await;
    let (app, federation) = app_with_provider(&idp.issuer, true).await;
    let alice_id = app.user_item(ALICE).await["user_id"].as_s().unwrap().clone();
    let started = start(&federation).await;
    assert!(started.location.starts_with(&format!("{}/auth?", idp.issuer)), "{}", started.location);
    for part in [
        "response_type=code",
        "code_challenge_method=S256",
        "code_challenge=",
        "nonce=",
        "state=",
        "scope=openid+email",
    ] {
        assert!(started.location.contains(part), "{part} in {}", started.location);
    }
    let back = sign_in_at_provider(&started.location, ALICE).await;
    let answer = callback(&federation, &back, Some(&started.cookie)).await;
    let cleared = answer.set_cookies().into_iter().find(|c| c.starts_with("oauth_ceremony=")).unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let claims = signed_in_claims(&app, &answer).await;
    assert_eq!(claims["sub"], json!(alice_id));
    assert_eq!(claims["amr"], json!(["fed"]));
    // The identity is linked now: the next sign-in finds it by (issuer, subject).
    assert_eq!(identity_items(&app).await, 1);
    let started = start(&federation).await;
    let back = sign_in_at_provider(&started.location, ALICE).await;
    let claims = signed_in_claims(&app, &callback(&federation, &back, Some(&started.cookie)).await).await;
    assert_eq!(claims["sub"], json!(alice_id));
    assert_eq!(identity_items(&app).await, 1);
    // The operator sees it.
    let shown = crate::authctl::text(&crate::authctl::authctl_with(&app, &["user", "show", ALICE], None, &[]));
    assert!(
        shown.contains(&format!("identity              local ({})", idp.issuer)) && shown.contains(ALICE),
        "{shown}"
    );
}

#[tokio::test]
async fn an_unverified_or_untrusted_address_never_joins_an_existing_account() {
    let idp = Idp::start().await;
    let alice_id = {
        let (app, _) = app_with_provider(&idp.issuer, true).await;
        app.user_item(ALICE).await["user_id"].as_s().unwrap().clone()
    };
    // A trusted provider, but the address is not verified there.
    let (app, federation) = app_with_provider(&idp.issuer, true).await;
    let alice_id_here = app.user_item(ALICE).await["user_id"].as_s().unwrap().clone();
    let started = start(&federation).await;
    let back = sign_in_at_provider(&started.location, &format!("unverified:{ALICE}")).await;
    let claims = signed_in_claims(&app, &callback(&federation, &back, Some(&started.cookie)).await).await;
    assert_ne!(claims["sub"], json!(alice_id_here));
    // A verified address from a provider the operator does not trust for it.
    let (app, federation) = app_with_provider(&idp.issuer, false).await;
    let alice_id_there = app.user_item(ALICE).await["user_id"].as_s().unwrap().clone();
    let started = start(&federation).await;
    let back = sign_in_at_provider(&started.location, ALICE).await;
    let claims = signed_in_claims(&app, &callback(&federation, &back, Some(&started.cookie)).await).await;
    assert_ne!(claims["sub"], json!(alice_id_there));
    assert_ne!(alice_id, alice_id_there);
    // Alice's own account is untouched: no identity names her.
    let out = app.dynamodb.scan().table_name(&app.config.users_table).send().await.unwrap();
    for item in out.items().iter().filter(|i| i["username"].as_s().unwrap().starts_with("identity#")) {
        assert_ne!(item["owner"].as_s().unwrap(), ALICE);
        assert!(item["owner"].as_s().unwrap().starts_with("idp:"), "{item:?}");
    }
}

#[tokio::test]
async fn the_callback_needs_this_browsers_unused_ceremony_and_its_state() {
    let idp = Idp::start().await;
    let (app, federation) = app_with_provider(&idp.issuer, true).await;
    let mine = start(&federation).await;
    let theirs = start(&federation).await;
    let back = sign_in_at_provider(&mine.location, ALICE).await;
    // No cookie, another browser's cookie, the state missing or changed: refused, and the
    // default return (APP_URL or the first allowed origin) gets the error when the
    // ceremony is unknown.
    let no_cookie = callback(&federation, &back, None).await;
    assert_eq!(no_cookie.status, 302);
    assert!(no_cookie.header("location").unwrap().ends_with("error=invalid_state"), "{no_cookie:?}");
    let other_browser = callback(&federation, &back, Some(&theirs.cookie)).await;
    assert!(other_browser.header("location").unwrap().ends_with("error=invalid_state"), "{other_browser:?}");
    let fresh = start(&federation).await;
    let fresh_back = sign_in_at_provider(&fresh.location, ALICE).await;
    let fresh_without_state: Vec<_> = fresh_back.iter().filter(|(k, _)| k != "state").cloned().collect();
    assert_eq!(
        error_of(&callback(&federation, &fresh_without_state, Some(&fresh.cookie)).await).as_deref(),
        Some("invalid_state")
    );
    // The right browser and state, once (the refusals above used up only the ceremonies
    // whose cookie they carried: `mine` is unused).
    let signed_in = callback(&federation, &back, Some(&mine.cookie)).await;
    signed_in_claims(&app, &signed_in).await;
    // The same callback again (the code and the state replayed): the ceremony is gone.
    let replayed = callback(&federation, &back, Some(&mine.cookie)).await;
    assert!(replayed.header("location").unwrap().ends_with("error=invalid_state"), "{replayed:?}");
    assert!(replayed.set_cookies().iter().all(|c| !c.starts_with("refresh_token=")));
}

/// Rewrites one member of the stored ceremony of `cookie` (what a bug or a tampered store
/// would change), to see the provider and the ID token check catch it.
async fn tamper_ceremony(app: &App, member: &str, value: &str) {
    let out = app.dynamodb.scan().table_name(&app.config.users_table).send().await.unwrap();
    let item = out
        .items()
        .iter()
        .find(|i| i.get("purpose").and_then(|p| p.as_s().ok()).map(String::as_str) == Some("oauth"))
        .unwrap()
        .clone();
    let mut state: Value = serde_json::from_str(item["state"].as_s().unwrap()).unwrap();
    state[member] = json!(value);
    let mut item = item;
    item.insert("state".into(), aws_sdk_dynamodb::types::AttributeValue::S(state.to_string()));
    app.dynamodb
        .put_item()
        .table_name(&app.config.users_table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_wrong_pkce_verifier_or_nonce_is_refused_and_nothing_is_written() {
    let idp = Idp::start().await;
    for (member, value, error) in [
        (
            "pkce_verifier",
            "a-verifier-of-the-right-length-but-not-the-one-sent-with-the-challenge",
            "code_rejected",
        ),
        ("nonce", "another-nonce", "invalid_id_token"),
    ] {
        let (app, federation) = app_with_provider(&idp.issuer, true).await;
        let started = start(&federation).await;
        let back = sign_in_at_provider(&started.location, "dave@example.com").await;
        tamper_ceremony(&app, member, value).await;
        let answer = callback(&federation, &back, Some(&started.cookie)).await;
        assert_eq!(error_of(&answer).as_deref(), Some(error), "{member}");
        assert_eq!(identity_items(&app).await, 0, "{member}");
    }
}

#[tokio::test]
async fn the_provider_down_at_the_callback_is_a_clean_redirect_with_nothing_written() {
    let idp = Idp::start().await;
    let (app, federation) = app_with_provider(&idp.issuer, true).await;
    let started = start(&federation).await;
    let back = sign_in_at_provider(&started.location, "erin@example.com").await;
    drop(idp);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let answer = callback(&federation, &back, Some(&started.cookie)).await;
    assert_eq!(error_of(&answer).as_deref(), Some("provider_unavailable"));
    assert_eq!(identity_items(&app).await, 0);
    assert!(answer.set_cookies().iter().all(|c| !c.starts_with("refresh_token=")));
}

#[tokio::test]
async fn start_refuses_a_foreign_return_to_and_unknown_providers() {
    let idp = Idp::start().await;
    let (_app, federation) = app_with_provider(&idp.issuer, true).await;
    for return_to in [
        "https://evil.test/",
        "https://app.test.evil.test/",
        "https://app.test@evil.test/",
        "//evil.test",
    ] {
        let answer = Answer::from(federation.respond(Call::get(START).query("return_to", return_to).request()).await);
        assert_eq!((answer.status, answer.error_code().as_str()), (400, "invalid_request"), "{return_to}");
        assert!(answer.header("location").is_none());
    }
    let answer = Answer::from(federation.respond(Call::get(START).request()).await);
    assert_eq!(answer.status, 400);
    let answer = Answer::from(
        federation
            .respond(Call::get("/auth/oauth/nope/start").query("return_to", RETURN_TO).request())
            .await,
    );
    assert_eq!(answer.status, 404);
    // The user cancelling at the provider comes back as `access_denied`.
    let started = start(&federation).await;
    let state = started.location.split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let query = vec![("error".to_owned(), "access_denied".to_owned()), ("state".to_owned(), state)];
    assert_eq!(
        error_of(&callback(&federation, &query, Some(&started.cookie)).await).as_deref(),
        Some("access_denied")
    );
}

#[tokio::test]
async fn a_user_lists_and_unlinks_identities_but_never_the_last_way_in() {
    let idp = Idp::start().await;
    let (app, federation) = app_with_provider(&idp.issuer, true).await;
    let bearer_of = |answer: Answer| {
        let app = &app;
        async move { format!("Bearer {}", app.refresh(&answer.refresh_cookie()).await.access_token()) }
    };
    let list = |bearer: &str| {
        let call = Call::get("/auth/identities").header("authorization", bearer);
        let app = &app;
        async move { app.account_call(call).await }
    };
    let unlink = |bearer: &str, id: &str| {
        let path: &'static str = format!("/auth/identities/{id}").leak();
        let call = Call::get(path).method("DELETE").header("authorization", bearer);
        let app = &app;
        async move { app.account_call(call).await }
    };
    // Alice has a password; her first sign-in through the provider linked it.
    let alice = bearer_of(sign_in(&federation, ALICE).await).await;
    let listed = list(&alice).await;
    assert_eq!(listed.status, 200, "{listed:?}");
    let identities = listed.json()["identities"].as_array().unwrap().clone();
    assert_eq!(identities.len(), 1, "{identities:?}");
    assert_eq!(identities[0]["provider"], "local");
    assert_eq!(identities[0]["email"], ALICE);
    let alices = identities[0]["id"].as_str().unwrap().to_owned();
    // Frank exists only through the provider: his identity is his only way in.
    let frank = bearer_of(sign_in(&federation, "frank@example.com").await).await;
    let franks = list(&frank).await.json()["identities"][0]["id"].as_str().unwrap().to_owned();
    // Another user's identity, or garbage: 404, and nothing unlinked.
    for (bearer, id) in [
        (&alice, franks.as_str()),
        (&frank, alices.as_str()),
        (&alice, "not-base64!"),
        (&alice, "aHR0cHM6Ly9ub3BlI3g"),
    ] {
        assert_eq!(unlink(bearer, id).await.status, 404, "{id}");
    }
    let refused = unlink(&frank, &franks).await;
    assert_eq!((refused.status, refused.error_code().as_str()), (409, "last_sign_in_method"));
    assert_eq!(list(&frank).await.json()["identities"].as_array().unwrap().len(), 1);
    // Alice keeps her password: her identity goes.
    assert_eq!(unlink(&alice, &alices).await.status, 204);
    assert_eq!(list(&alice).await.json()["identities"], json!([]));
    assert_eq!(identity_items(&app).await, 1, "Frank's stays");
}

#[tokio::test]
async fn a_signed_in_user_links_a_provider_and_then_signs_in_with_it() {
    let idp = Idp::start().await;
    // Not trusted for e-mail: only the explicit link joins the identity to Alice.
    let (app, federation) = app_with_provider(&idp.issuer, false).await;
    let alice_id = app.user_item(ALICE).await["user_id"].as_s().unwrap().clone();
    let link = |bearer: &str, return_to: &str| {
        let call = Call::post("/auth/identities/local/link")
            .header("authorization", bearer)
            .json(json!({ "return_to": return_to }));
        let app = &app;
        async move { app.account_call(call).await }
    };
    let login = app.login(ALICE, PASSWORD).await;
    let alice = format!("Bearer {}", login.access_token());
    // Back only to an allowed origin; only for a signed-in caller.
    assert_eq!(link(&alice, "https://evil.test/").await.status, 400);
    assert_eq!(link("Bearer nope", RETURN_TO).await.status, 401);
    let started = link(&alice, RETURN_TO).await;
    assert_eq!(started.status, 200, "{started:?}");
    let cookie = started.set_cookies().into_iter().find(|c| c.starts_with("oauth_ceremony=")).unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/auth/oauth/"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let back = sign_in_at_provider(started.json()["url"].as_str().unwrap(), "alice.elsewhere@example.com").await;
    let linked = callback(&federation, &back, Some(&cookie)).await;
    assert_eq!(error_of(&linked), None, "{linked:?}");
    assert!(linked.set_cookies().iter().all(|c| !c.starts_with("refresh_token=")), "a link signs no one in");
    let listed = app.account_call(Call::get("/auth/identities").header("authorization", &alice)).await;
    assert_eq!(listed.json()["identities"][0]["email"], "alice.elsewhere@example.com");
    // From now on that identity signs Alice in.
    let claims = signed_in_claims(&app, &sign_in(&federation, "alice.elsewhere@example.com").await).await;
    assert_eq!(claims["sub"], json!(alice_id));

    // Bob cannot take it over by linking it too.
    let bob = format!("Bearer {}", app.login(BOB, PASSWORD).await.access_token());
    let started = link(&bob, RETURN_TO).await;
    let cookie = started.set_cookies().into_iter().find(|c| c.starts_with("oauth_ceremony=")).unwrap();
    let back = sign_in_at_provider(started.json()["url"].as_str().unwrap(), "alice.elsewhere@example.com").await;
    let refused = callback(&federation, &back, Some(cookie.split(';').next().unwrap())).await;
    assert_eq!(error_of(&refused).as_deref(), Some("identity_in_use"));

    // A session signed in long ago must sign in again first (a stolen token links nothing).
    app.set_session_number(&session_id_of(&login.refresh_token()), "auth_time", now() - 3600).await;
    let stale = link(&alice, RETURN_TO).await;
    assert_eq!((stale.status, stale.error_code().as_str()), (403, "reauthentication_required"));
}

#[tokio::test]
async fn a_code_replayed_into_a_fresh_sign_in_is_rejected_and_nothing_is_written() {
    let idp = Idp::start().await;
    let (app, federation) = app_with_provider(&idp.issuer, true).await;
    // A code used once (its sign-in succeeded) ...
    let used = start(&federation).await;
    let back = sign_in_at_provider(&used.location, "grace@example.com").await;
    signed_in_claims(&app, &callback(&federation, &back, Some(&used.cookie)).await).await;
    let identities = identity_items(&app).await;
    // ... then carried into another sign-in of the same browser with that sign-in's state:
    // the provider refuses it (used, and issued for another PKCE challenge).
    let fresh = start(&federation).await;
    let state = fresh.location.split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let code = back.iter().find(|(k, _)| k == "code").unwrap().1.clone();
    let replayed = callback(&federation, &[("code".to_owned(), code), ("state".to_owned(), state)], Some(&fresh.cookie)).await;
    assert_eq!(error_of(&replayed).as_deref(), Some("code_rejected"));
    assert!(replayed.set_cookies().iter().all(|c| !c.starts_with("refresh_token=")));
    assert_eq!(identity_items(&app).await, identities);
}

#[tokio::test]
async fn a_user_with_totp_answers_a_challenge_after_the_provider_never_skipping_it() {
    let idp = Idp::start().await;
    let (app, federation) = app_with_provider(&idp.issuer, true).await;
    let (address, secret, _, _) = crate::mfa::with_totp(&app).await;
    // The provider vouches for the address (trusted, verified): the account is found, and
    // its second factor is still asked for.
    let answer = sign_in(&federation, &address).await;
    assert_eq!(answer.header("location"), Some(format!("{RETURN_TO}?mfa_required=totp,recovery_code").as_str()));
    assert!(answer.set_cookies().iter().all(|c| !c.starts_with("refresh_token=")), "no session yet");
    let cookie = answer.set_cookies().into_iter().find(|c| c.starts_with("mfa_challenge=")).unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure") && cookie.contains("Path=/auth;"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    record_secret(cookie.trim_start_matches("mfa_challenge="));
    let mfa = |code: String, with_cookie: bool| {
        let mut call = Call::post("/auth/login/mfa").json(json!({ "code": code }));
        if with_cookie {
            call = call.cookie(&cookie);
        }
        let app = &app;
        async move { app.login_call(call).await }
    };
    assert_eq!(
        mfa(secret.code_at(now() + 30), false).await.error_code(),
        "invalid_token",
        "no challenge, no token"
    );
    assert_eq!(mfa("000000".into(), true).await.error_code(), "invalid_code");
    let signed = mfa(secret.code_at(now() + 30), true).await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    assert_eq!(crate::mfa::claims(&signed.access_token())["amr"], json!(["fed", "otp", "mfa"]));
    let cleared = signed.set_cookies().into_iter().find(|c| c.starts_with("mfa_challenge=")).unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    record_refresh_token(&signed.refresh_token());
}

const GITHUB_START: &str = "/auth/oauth/github/start";
const GITHUB_CALLBACK: &str = "/auth/oauth/github/callback";

/// Signs in through the GitHub-shaped provider as `login`.
async fn sign_in_with_github(federation: &FederationApi, login: &str) -> Answer {
    let started = start_at(federation, GITHUB_START).await;
    let back = sign_in_at_provider(&started.location, login).await;
    callback_at(federation, GITHUB_CALLBACK, &back, Some(&started.cookie)).await
}

/// The identities' items: (subject, owner, address).
async fn identities(app: &App) -> Vec<(String, String, Option<String>)> {
    let out = app.dynamodb.scan().table_name(&app.config.users_table).send().await.unwrap();
    out.items()
        .iter()
        .filter(|i| i["username"].as_s().unwrap().starts_with("identity#"))
        .map(|i| {
            (
                i["subject"].as_s().unwrap().clone(),
                i["owner"].as_s().unwrap().clone(),
                i.get("email").map(|e| e.as_s().unwrap().clone()),
            )
        })
        .collect()
}

#[tokio::test]
async fn github_signs_in_by_its_numeric_user_id_and_links_only_a_verified_primary_address() {
    let idp = Idp::start().await;
    let (app, federation) = app_with_github(&idp.github, json!({})).await;
    let alice_id = app.user_item(ALICE).await["user_id"].as_s().unwrap().clone();
    let started = start_at(&federation, GITHUB_START).await;
    assert!(
        started.location.starts_with(&format!("{}/login/oauth/authorize?", idp.github)),
        "{}",
        started.location
    );
    for part in ["response_type=code", "code_challenge_method=S256", "state=", "scope=read%3Auser+user%3Aemail"] {
        assert!(started.location.contains(part), "{part} in {}", started.location);
    }
    assert!(!started.location.contains("nonce="), "no ID token, no nonce: {}", started.location);
    // Alice's verified primary address at GitHub (trusted) finds her account; the identity
    // is keyed by GitHub's numeric id, not by the address or the login name.
    let back = sign_in_at_provider(&started.location, ALICE).await;
    let claims = signed_in_claims(&app, &callback_at(&federation, GITHUB_CALLBACK, &back, Some(&started.cookie)).await).await;
    assert_eq!((claims["sub"].as_str(), &claims["amr"]), (Some(alice_id.as_str()), &json!(["fed"])));
    let linked = identities(&app).await;
    assert_eq!(linked.len(), 1);
    let (subject, owner, email) = &linked[0];
    assert!(subject.bytes().all(|b| b.is_ascii_digit()), "{subject}");
    assert_eq!((owner.as_str(), email.as_deref()), (ALICE, Some(ALICE)));
    // The same GitHub user again: the same account, by the identity.
    let claims = signed_in_claims(&app, &sign_in_with_github(&federation, ALICE).await).await;
    assert_eq!(claims["sub"], json!(alice_id));
    // Her address, but not verified at GitHub: an account of its own, Alice's untouched.
    let claims = signed_in_claims(&app, &sign_in_with_github(&federation, &format!("unverified:{ALICE}")).await).await;
    assert_ne!(claims["sub"], json!(alice_id));
    let mut owners: Vec<_> = identities(&app).await.into_iter().map(|(_, owner, _)| owner).collect();
    owners.sort();
    assert_eq!(owners[0], ALICE);
    assert!(owners[1].starts_with("idp:"), "{owners:?}");

    // Without the `user:email` scope no address is read, so none links.
    let (app, federation) = app_with_github(&idp.github, json!({ "scopes": ["read:user"] })).await;
    let alice_id = app.user_item(ALICE).await["user_id"].as_s().unwrap().clone();
    let claims = signed_in_claims(&app, &sign_in_with_github(&federation, ALICE).await).await;
    assert_ne!(claims["sub"], json!(alice_id));
    let (_, owner, email) = identities(&app).await.remove(0);
    assert!(owner.starts_with("idp:") && email.is_none(), "{owner} {email:?}");
}

#[tokio::test]
async fn github_refuses_a_used_code_or_a_wrong_verifier_and_an_unreachable_api_writes_nothing() {
    let idp = Idp::start().await;
    let (app, federation) = app_with_github(&idp.github, json!({})).await;
    // GitHub answers a refused code with status 200 and an `error`: still `code_rejected`.
    let used = start_at(&federation, GITHUB_START).await;
    let back = sign_in_at_provider(&used.location, "grace@example.com").await;
    signed_in_claims(&app, &callback_at(&federation, GITHUB_CALLBACK, &back, Some(&used.cookie)).await).await;
    let fresh = start_at(&federation, GITHUB_START).await;
    let state = fresh.location.split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let code = back.iter().find(|(k, _)| k == "code").unwrap().1.clone();
    let replayed = callback_at(
        &federation,
        GITHUB_CALLBACK,
        &[("code".to_owned(), code), ("state".to_owned(), state)],
        Some(&fresh.cookie),
    )
    .await;
    assert_eq!(error_of(&replayed).as_deref(), Some("code_rejected"));
    let started = start_at(&federation, GITHUB_START).await;
    let back = sign_in_at_provider(&started.location, "heidi@example.com").await;
    tamper_ceremony(&app, "pkce_verifier", "a-verifier-of-the-right-length-but-not-the-one-sent-with-the-challenge").await;
    let answer = callback_at(&federation, GITHUB_CALLBACK, &back, Some(&started.cookie)).await;
    assert_eq!(error_of(&answer).as_deref(), Some("code_rejected"));
    assert!(answer.set_cookies().iter().all(|c| !c.starts_with("refresh_token=")));
    assert_eq!(identity_items(&app).await, 1, "grace's only");

    // The code is good but GitHub's API cannot be reached: a clean redirect, nothing written.
    let (app, federation) = app_with_github(&idp.github, json!({ "api_url": "http://127.0.0.1:9/api/v3" })).await;
    let answer = sign_in_with_github(&federation, "ivan@example.com").await;
    assert_eq!(error_of(&answer).as_deref(), Some("provider_unavailable"));
    assert!(answer.set_cookies().iter().all(|c| !c.starts_with("refresh_token=")));
    assert_eq!(identity_items(&app).await, 0);
}

#[tokio::test]
async fn a_passkey_user_answers_the_challenge_with_a_passkey_after_the_provider() {
    let idp = Idp::start().await;
    let (app, federation) = app_with_provider(&idp.issuer, true).await;
    let mut authenticator = webauthn_authenticator_rs::softpasskey::SoftPasskey::new(true);
    let holder = crate::passkeys::register(&app, &mut authenticator).await;
    assert_eq!(holder.status, 201);
    // Her only second factor is a passkey: the redirect says so, and its request, which a
    // redirect cannot carry, is described to the page that holds the cookie.
    let answer = sign_in(&federation, &holder.address).await;
    assert_eq!(answer.header("location"), Some(format!("{RETURN_TO}?mfa_required=webauthn").as_str()));
    assert!(answer.set_cookies().iter().all(|c| !c.starts_with("refresh_token=")), "no session yet");
    let cookie = answer.set_cookies().into_iter().find(|c| c.starts_with("mfa_challenge=")).unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    record_secret(cookie.trim_start_matches("mfa_challenge="));
    let options = |with_cookie: bool| {
        let mut call = Call::post("/auth/login/mfa/options");
        if with_cookie {
            call = call.cookie(&cookie);
        }
        let app = &app;
        async move { app.login_call(call).await }
    };
    let refused = options(false).await;
    assert_eq!((refused.status, refused.error_code().as_str()), (401, "invalid_token"));
    let described = options(true).await;
    assert_eq!(described.status, 200, "{}", described.body);
    let challenge = described.json();
    assert_eq!(challenge["methods"], json!(["webauthn"]));
    assert!(challenge.get("mfa_token").is_none(), "the token stays in its cookie: {challenge}");
    let expires_in = challenge["expires_in"].as_u64().unwrap();
    assert!((1..=300).contains(&expires_in), "{expires_in}");
    let allowed = &challenge["webauthn"]["publicKey"]["allowCredentials"];
    assert_eq!(allowed[0]["id"], json!(holder.id), "the request names her passkey: {allowed}");
    // The passkey answers it; the session is the provider's and the passkey's.
    let assertion = crate::passkeys::assert_with(
        &mut authenticator,
        serde_json::from_value(challenge["webauthn"].clone()).unwrap(),
        &holder.id,
        &holder.handle,
        crate::passkeys::origin(),
    );
    let signed = app
        .login_call(Call::post("/auth/login/mfa").cookie(&cookie).json(json!({ "webauthn": assertion })))
        .await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    let amr = crate::mfa::claims(&signed.access_token())["amr"].clone();
    assert!(
        amr == json!(["fed", "hwk", "user", "mfa"]) || amr == json!(["fed", "swk", "user", "mfa"]),
        "{amr}"
    );
    record_refresh_token(&signed.refresh_token());
    // Answered: nothing is left to describe.
    assert_eq!(options(true).await.error_code(), "invalid_token");
}

#[tokio::test]
async fn id_tokens_the_real_provider_signs_with_an_unpublished_key_hs256_or_a_late_clock_are_refused_and_nothing_is_written() {
    for (misbehaviour, client_id) in [
        // Its JWKS lists other keys under the kids it signs with.
        (&[("PUBLISH_OTHER_KEYS", "1")][..], "app"),
        // Its clock is 5 minutes behind and its ID tokens live 60 s: expired on arrival.
        (&[("CLOCK_SKEW_SECS", "-300"), ("ID_TOKEN_TTL", "60")][..], "app"),
        // The client it signs ID tokens for with HS256 (the client secret as the key).
        (&[][..], "app-hs256"),
    ] {
        let idp = Idp::start_with(misbehaviour).await;
        let (app, federation) = app_with(json!({ "id": PROVIDER, "issuer": idp.issuer, "client_id": client_id, "trust_email": true })).await;
        let answer = sign_in(&federation, ALICE).await;
        assert_eq!(error_of(&answer).as_deref(), Some("invalid_id_token"), "{misbehaviour:?} {client_id}");
        assert!(answer.set_cookies().iter().all(|c| !c.starts_with("refresh_token=")));
        assert_eq!(identity_items(&app).await, 0, "{misbehaviour:?} {client_id}");
    }
}

#[tokio::test]
async fn a_disabled_account_holding_the_address_is_refused_and_gets_nothing_linked() {
    let idp = Idp::start().await;
    let (app, federation) = app_with_provider(&idp.issuer, true).await;
    let answer = sign_in(&federation, DISABLED).await;
    assert_eq!(error_of(&answer).as_deref(), Some("sign_in_refused"));
    assert!(answer.set_cookies().iter().all(|c| !c.starts_with("refresh_token=")));
    assert_eq!(identity_items(&app).await, 0, "no identity joins a disabled account");
}
