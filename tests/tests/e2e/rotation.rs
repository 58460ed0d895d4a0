//! Signing-key rotation end to end: every token verifies at the authorizer (with keys
//! deployed in `AUTH_PUBLIC_JWKS` and without) until its key is removed, new tokens use the
//! new key, the real `authctl keys` refuses the unsafe steps and repeats the safe ones
//! harmlessly, and the two key stores stay consistent when a step is cut short or two
//! operators' steps overlap.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auth_core::api::authorizer::Authorizer;
use auth_core::aws::{CallRecorder, authorizer_connecting, authorizer_with, load_sdk_config};
use auth_core::keys::KeyAlgorithm;
use auth_core::keys::rotation::{KeyState, SigningKeySet};
use auth_core::keys::secrets_manager::{Connect, KeyAdded, KeyStores, RotationError, read_secret, write_secret};
use auth_core::keys::signing::PrivateKey;
use auth_core::testing::{SIGNING_KEYS_JSON, config_with, public_jwks_json};
use auth_core::tokens::{AccessTokenHeader, LEEWAY_SECS};
use serde_json::{Value, json};

use crate::authctl::{authctl_with, text};
use crate::fault_server::{Fault, FaultServer, Gate, start};
use crate::forge::*;
use crate::harness::*;

/// `app`'s two key stores, as `authctl keys` works on them.
fn stores(app: &App) -> KeyStores {
    stores_over(app, app.secrets.clone())
}

fn stores_over(app: &App, client: aws_sdk_secretsmanager::Client) -> KeyStores {
    KeyStores::new(client, &app.config.signing_secret_id, &app.config.public_keys_secret_id)
}

/// A Secrets Manager client whose requests go through `endpoint` (a fault server).
/// A second operator's view of `app`'s key stores, whose writes (`PutSecretValue`) wait at
/// the returned gate until the test opens it; keep the server alive meanwhile.
async fn stores_held_at_write(app: &App) -> (KeyStores, Arc<Gate>, FaultServer) {
    let gate = Arc::new(Gate::default());
    let server = start(Fault::Hold {
        needle: "secretsmanager.putsecretvalue",
        gate: gate.clone(),
    })
    .await;
    let stores = stores_over(app, secrets_via(&server.endpoint).await);
    (stores, gate, server)
}

async fn secrets_via(endpoint: &str) -> aws_sdk_secretsmanager::Client {
    let sdk = load_sdk_config().await;
    aws_sdk_secretsmanager::Client::from_conf(aws_sdk_secretsmanager::config::Builder::from(&sdk).endpoint_url(endpoint).build())
}

/// The private and the public store's values, as stored.
async fn stored(app: &App) -> (String, String) {
    let read = |id: String| async move { read_secret(&app.secrets, &id).await.unwrap().unwrap_or_default() };
    (
        read(app.config.signing_secret_id.clone()).await,
        read(app.config.public_keys_secret_id.clone()).await,
    )
}

/// The versions both stores are at: a step that changes nothing writes no new one.
async fn versions(app: &App) -> (String, String) {
    let version = |id: String| async move {
        let out = app.secrets.get_secret_value().secret_id(id).send().await.unwrap();
        out.version_id().unwrap().to_owned()
    };
    (
        version(app.config.signing_secret_id.clone()).await,
        version(app.config.public_keys_secret_id.clone()).await,
    )
}

/// The private set, and whether the public store holds exactly its JWKS.
async fn stored_set(app: &App) -> (SigningKeySet, bool) {
    let (private, public) = stored(app).await;
    let set = SigningKeySet::from_json(&private).unwrap();
    let consistent = serde_json::from_str::<Value>(&public).unwrap() == serde_json::to_value(set.public_jwks().unwrap()).unwrap();
    (set, consistent)
}

async fn published_kids(app: &App) -> BTreeSet<String> {
    let public: Value = serde_json::from_str(&stored(app).await.1).unwrap();
    public["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn kid_of(token: &str) -> String {
    AccessTokenHeader::read(token).unwrap().kid
}

/// A valid access token signed by `key`, as our issuer would have signed it.
fn signed_by(key: &PrivateKey, app: &App) -> String {
    let header = json!({"alg": key.alg.as_str(), "typ": "at+jwt", "kid": key.kid});
    let token = sign_with(key, &header, &valid_claims(&app.config));
    record_secret(&token);
    token
}

/// Sleeps past `KEY_CACHE_TTL=1`, so every cache re-reads its store.
async fn past_cache_ttl() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

/// The tokens collected so far (what, kid, token), checked at each authorizer after every
/// step: allowed in all three gateway shapes while their key is published, denied in all
/// three once it is removed. Counts every answer that was not the expected one.
struct Verifiers<'a> {
    authorizers: Vec<(&'static str, &'a Authorizer)>,
    tokens: Vec<(String, String, String)>,
    failed_verifications: usize,
    denied_after_removal: usize,
}

impl Verifiers<'_> {
    fn add(&mut self, what: impl Into<String>, token: String) {
        self.tokens.push((what.into(), kid_of(&token), token));
    }

    async fn check(&mut self, step: &str, removed: &[&str]) {
        for (what, kid, token) in &self.tokens {
            for (name, authorizer) in &self.authorizers {
                let allowed = allowed_in_shapes_by(authorizer, &format!("Bearer {token}")).await;
                if removed.contains(&kid.as_str()) {
                    assert_eq!(allowed, 0, "{step}: {what} ({kid}) must be denied by the {name} authorizer once removed");
                    self.denied_after_removal += 3;
                } else {
                    self.failed_verifications += 3 - allowed;
                    assert_eq!(allowed, 3, "{step}: {what} ({kid}) must verify at the {name} authorizer while published");
                }
            }
        }
    }
}

#[tokio::test]
async fn a_full_rotation_verifies_every_token_until_its_key_is_removed_with_and_without_deployed_keys() {
    // The authorizer is deployed with the JWKS from before the rotation (k0, k1, k2).
    let app = spawn_app_with(&[("KEY_CACHE_TTL", "1"), ("AUTH_PUBLIC_JWKS", &public_jwks_json())]).await;
    let sdk = load_sdk_config().await;
    let (deployed_calls, plain_calls) = (CallRecorder::default(), CallRecorder::default());
    let deployed = authorizer_with(&app.config, deployed_calls.clients(&sdk).1).unwrap();
    assert!(deployed.keys().has_deployed_keys());
    let mut plain_config = app.config.clone();
    plain_config.public_jwks = None;
    let plain = authorizer_with(&plain_config, plain_calls.clients(&sdk).1).unwrap();
    assert!(!plain.keys().has_deployed_keys());
    let mut verifiers = Verifiers {
        authorizers: vec![("deployed-keys", &deployed), ("store-only", &plain)],
        tokens: Vec::new(),
        failed_verifications: 0,
        denied_after_removal: 0,
    };
    let stores = stores(&app);
    let (delay, lifetime) = (app.config.key_publish_delay, app.config.access_token_ttl + LEEWAY_SECS);
    let t0 = now();

    // Before: k1 signs; the retired k0 (EdDSA) and k2 (RS256) still verify.
    let first = app.login(ALICE, PASSWORD).await;
    assert_eq!(kid_of(&first.access_token()), "k1");
    verifiers.add("login before the rotation", first.access_token());
    verifiers.add("token of retired k0 (EdDSA)", signed_by(&crate::forge::test_key("k0"), &app));
    verifiers.add("token of retired k2 (RS256)", signed_by(&crate::forge::test_key("k2"), &app));
    verifiers.check("before the rotation", &[]).await;
    assert_eq!(deployed_calls.calls(), vec![], "deployed kids verify without an AWS call");

    // Step 1: a standby key is published; k1 still signs.
    let KeyAdded::New(entry) = stores.add(KeyAlgorithm::Es256, t0).await.unwrap() else {
        panic!("a new key")
    };
    let new_kid = entry.kid.clone();
    assert_eq!(entry.state, KeyState::Standby);
    assert!(published_kids(&app).await.contains(&new_kid), "published at once");
    past_cache_ttl().await;
    let during_standby = app.login(ALICE, PASSWORD).await.access_token();
    assert_eq!(kid_of(&during_standby), "k1", "a standby key does not sign");
    verifiers.add("login with the new key in standby", during_standby);
    verifiers.check("after add", &[]).await;
    assert_eq!(deployed_calls.calls(), vec![], "still nothing the deployment lacks");

    // Step 2: activation, refused a second before the publish delay is over.
    let early = stores.activate(&new_kid, t0 + delay - 1, delay, false).await.unwrap_err();
    assert!(early.to_string().contains("wait 1 s more"), "{early}");
    stores.activate(&new_kid, t0 + delay, delay, false).await.unwrap();
    let new_key = stores.list().await.unwrap().entry(&new_kid).unwrap().private_key().unwrap();
    // Logins right after the activation may still sign with k1 (their cached set): both verify.
    verifiers.add("login during the activation", app.login(ALICE, PASSWORD).await.access_token());
    verifiers.add("token of k1 after its retirement", signed_by(&crate::forge::test_key("k1"), &app));
    past_cache_ttl().await;
    let after = app.login(ALICE, PASSWORD).await;
    assert_eq!(kid_of(&after.access_token()), new_kid, "new logins sign with the new key");
    let refreshed = app.refresh(&first.refresh_cookie()).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(kid_of(&refreshed.access_token()), new_kid, "refreshes sign with the new key");
    verifiers.add("login after the activation", after.access_token());
    verifiers.add("refresh after the activation", refreshed.access_token());
    verifiers.add("token of the new key", signed_by(&new_key, &app));
    verifiers.check("after activate", &[]).await;
    let fetched = deployed_calls.calls();
    assert!(!fetched.is_empty(), "the deployed authorizer read the store for the new kid");
    assert!(
        fetched
            .iter()
            .all(|c| c.operation == "GetSecretValue" && c.resource == app.config.public_keys_secret_id),
        "{fetched:?}"
    );

    // Step 3: k1 goes once its last token has expired (by the rotation's clock), not before.
    let early = stores.remove("k1", t0 + delay + lifetime - 1, lifetime, false).await.unwrap_err();
    assert!(early.to_string().contains("--now"), "{early}");
    assert!(stores.remove("k1", t0 + delay + lifetime, lifetime, false).await.unwrap());
    let (set, consistent) = stored_set(&app).await;
    assert!(consistent && set.keys.iter().all(|k| k.kid != "k1"));
    past_cache_ttl().await;
    verifiers.check("after remove", &["k1"]).await;
    let last = app.login(ALICE, PASSWORD).await.access_token();
    assert_eq!(kid_of(&last), new_kid);

    assert_eq!(verifiers.failed_verifications, 0, "no token failed while its key was published");
    let k1_tokens = verifiers.tokens.iter().filter(|(_, kid, _)| kid == "k1").count();
    assert!(k1_tokens >= 3);
    assert_eq!(
        verifiers.denied_after_removal,
        k1_tokens * 3 * 2,
        "every k1 token, every shape, both authorizers"
    );
}

/// The `kid` in `keys add`'s answer: `keys add: <ALG> key <kid> ...`.
fn added_kid(output: &str) -> String {
    output.split_whitespace().skip_while(|w| *w != "key").nth(1).unwrap().to_owned()
}

/// `keys list` rows by kid: (alg, state, added, activated, retired).
fn listed(output: &str) -> Vec<(String, String, String, String, String, String)> {
    let mut lines = output.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["KID", "ALG", "STATE", "ADDED", "ACTIVATED", "RETIRED"]);
    lines
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let mut rest = words[3..].iter();
            let mut time = || match rest.next().copied() {
                Some("-") => "-".to_owned(),
                Some(day) => format!("{day} {}", rest.next().unwrap()),
                None => panic!("{line}"),
            };
            let (added, activated, retired) = (time(), time(), time());
            (words[0].into(), words[1].into(), words[2].into(), added, activated, retired)
        })
        .collect()
}

fn is_timestamp(value: &str) -> bool {
    let b = value.as_bytes();
    value.len() == 20 && b[4] == b'-' && b[7] == b'-' && b[10] == b' ' && value.ends_with('Z') && b[..4].iter().all(u8::is_ascii_digit)
}

/// The wait a refused `keys remove` names, in seconds.
fn waited_for(refusal: &str) -> u64 {
    refusal
        .split("valid for ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn authctl_rotates_keys_step_by_step_refusing_unsafe_steps_and_repeating_safe_ones_harmlessly() {
    let app = spawn_app_with(&[("KEY_CACHE_TTL", "1")]).await;
    // An hour's publish delay, until the test has waited out a delay of 1 s.
    let mut delay = "3600";
    let mut outputs = Vec::new();
    let mut run = |args: &[&str], delay: &str| {
        let env = [("KEY_PUBLISH_DELAY", delay), ("KEY_CACHE_TTL", "300"), ("ACCESS_TOKEN_TTL", "900")];
        let output = authctl_with(&app, args, None, &env);
        let printed = text(&output);
        outputs.push(printed.clone());
        (output.status.success(), printed)
    };

    let (ok, list) = run(&["keys", "list"], delay);
    assert!(ok, "{list}");
    let rows = listed(&list);
    let expected = [("k0", "EdDSA", "retired"), ("k2", "RS256", "retired"), ("k1", "ES256", "active")];
    for ((kid, alg, state, added, activated, retired), want) in rows.iter().zip(expected) {
        assert_eq!((kid.as_str(), alg.as_str(), state.as_str()), want, "{list}");
        assert!(is_timestamp(added) && is_timestamp(activated), "{list}");
        assert_eq!(is_timestamp(retired), state == "retired", "{list}");
    }

    // add, twice: one EdDSA key in standby; asking for another algorithm adds nothing either.
    let (ok, added) = run(&["keys", "add", "--alg", "EdDSA"], delay);
    assert!(ok && added.contains("EdDSA key") && added.contains("published in standby"), "{added}");
    let ed_kid = added_kid(&added);
    let (after_add, added_versions) = (stored(&app).await, versions(&app).await);
    for args in [["keys", "add", "--alg", "EdDSA"], ["keys", "add", "--alg", "RS256"]] {
        let (ok, again) = run(&args, delay);
        assert!(ok && again.contains(&format!("EdDSA key {ed_kid} was already waiting")), "{again}");
        assert_eq!(stored(&app).await, after_add, "a second add changes nothing");
        assert_eq!(versions(&app).await, added_versions, "and writes nothing");
    }
    let (_, list) = run(&["keys", "list"], delay);
    let row = listed(&list).into_iter().find(|r| r.0 == ed_kid).unwrap();
    assert_eq!((row.1.as_str(), row.2.as_str(), row.4.as_str()), ("EdDSA", "standby", "-"), "{list}");

    // activate: refused before KEY_PUBLISH_DELAY, saying what to do; then done, twice.
    let (ok, early) = run(&["keys", "activate", &ed_kid], delay);
    assert!(!ok && early.contains("wait 3") && early.contains("s more, or pass --now"), "{early}");
    assert_eq!(stored(&app).await, after_add, "a refused step writes nothing");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    delay = "1";
    let (ok, activated) = run(&["keys", "activate", &ed_kid], delay);
    assert!(ok && activated.contains(&format!("key {ed_kid} signs new tokens")), "{activated}");
    let (after_activate, activated_versions) = (stored(&app).await, versions(&app).await);
    let (ok, again) = run(&["keys", "activate", &ed_kid], delay);
    assert!(ok, "{again}");
    assert_eq!(stored(&app).await, after_activate, "a second activate changes nothing");
    assert_eq!(versions(&app).await, activated_versions, "and writes nothing");
    let (_, list) = run(&["keys", "list"], delay);
    let rows = listed(&list);
    let state = |kid: &str| rows.iter().find(|r| r.0 == kid).map(|r| (r.2.clone(), is_timestamp(&r.4), is_timestamp(&r.5)));
    assert_eq!(state(&ed_kid), Some(("active".into(), true, false)), "{list}");
    assert_eq!(state("k1"), Some(("retired".into(), true, true)), "{list}");
    past_cache_ttl().await;
    let login = app.login(ALICE, PASSWORD).await;
    assert_eq!(kid_of(&login.access_token()), ed_kid, "the functions sign with the activated key");
    assert_eq!(allowed_in_shapes(&app, &format!("Bearer {}", login.access_token())).await, 3);

    // remove: never the signing key; a retired key only once its tokens expired, or --now.
    let (ok, refused) = run(&["keys", "remove", &ed_kid], delay);
    assert!(
        !ok && refused.contains("signs new tokens") && refused.contains("activate another key first"),
        "{refused}"
    );
    // Without the stack's lifetimes it refuses to guess them (a stack with longer-lived
    // tokens would have them refused early), before reading or writing anything.
    let (before, before_versions) = (stored(&app).await, versions(&app).await);
    let unknown = authctl_with(&app, &["keys", "remove", "k1"], None, &[("KEY_PUBLISH_DELAY", delay)]);
    let refused_blind = text(&unknown);
    assert!(!unknown.status.success() && refused_blind.contains("--access-token-ttl"), "{refused_blind}");
    assert_eq!((stored(&app).await, versions(&app).await), (before, before_versions), "nothing written");
    let explicit = ["keys", "remove", "k1", "--access-token-ttl", "3600", "--key-cache-ttl", "300"];
    let long_lived = authctl_with(&app, &explicit, None, &[("KEY_PUBLISH_DELAY", delay)]);
    let long_wait = waited_for(&text(&long_lived));
    assert!((3_900..=3_930).contains(&long_wait), "the stack's 3,600 s tokens: {}", text(&long_lived));
    let (ok, early) = run(&["keys", "remove", "k1"], delay);
    assert!(!ok && early.contains("may still be valid") && early.contains("--now"), "{early}");
    // Logins may sign with k1 for a KEY_CACHE_TTL (300 s) after the activation, and their
    // tokens live ACCESS_TOKEN_TTL (900 s) plus the 30 s leeway.
    assert!((1_200..=1_230).contains(&waited_for(&early)), "{early}");
    assert_eq!(stored(&app).await, after_activate, "refused removals write nothing");
    let (ok, removed) = run(&["keys", "remove", "k1", "--now"], delay);
    assert!(ok && removed.contains("key k1 is no longer published"), "{removed}");
    let (after_remove, removed_versions) = (stored(&app).await, versions(&app).await);
    let (ok, again) = run(&["keys", "remove", "k1", "--now"], delay);
    assert!(ok && again.contains("there is no key k1"), "{again}");
    assert_eq!(stored(&app).await, after_remove, "a second remove changes nothing");
    assert_eq!(versions(&app).await, removed_versions, "and writes nothing");
    let (set, consistent) = stored_set(&app).await;
    assert!(consistent && set.keys.iter().all(|k| k.kid != "k1"));

    // RS256 end to end: generated, published, activated with --now, signing, verifying.
    let (ok, added) = run(&["keys", "add", "--alg", "RS256"], delay);
    assert!(ok && added.contains("RS256 key"), "{added}");
    let rsa_kid = added_kid(&added);
    let (ok, activated) = run(&["keys", "activate", &rsa_kid, "--now"], "3600");
    assert!(ok, "{activated}");
    past_cache_ttl().await;
    let login = app.login(ALICE, PASSWORD).await;
    assert_eq!(kid_of(&login.access_token()), rsa_kid);
    assert_eq!(allowed_in_shapes(&app, &format!("Bearer {}", login.access_token())).await, 3);
    let (ok, added) = run(&["keys", "add", "--alg", "ES256"], delay);
    assert!(ok && added.contains("ES256 key"), "{added}");

    // jwks: what is published, every key type, public members only.
    let (ok, printed) = run(&["keys", "jwks"], delay);
    assert!(ok, "{printed}");
    assert_eq!(printed.trim(), stored(&app).await.1, "keys jwks prints what is published");
    let jwks: Value = serde_json::from_str(&printed).unwrap();
    let mut kinds = BTreeSet::new();
    for key in jwks["keys"].as_array().unwrap() {
        let mut members: Vec<&str> = key.as_object().unwrap().keys().map(String::as_str).collect();
        members.sort_unstable();
        let kty = key["kty"].as_str().unwrap();
        let public: &[&str] = match kty {
            "EC" => &["alg", "crv", "kid", "kty", "use", "x", "y"],
            "OKP" => &["alg", "crv", "kid", "kty", "use", "x"],
            "RSA" => &["alg", "e", "kid", "kty", "n", "use"],
            other => panic!("unexpected kty {other}"),
        };
        assert_eq!(members, public, "{key}");
        kinds.insert(kty);
    }
    assert_eq!(kinds, BTreeSet::from(["EC", "OKP", "RSA"]));

    // No output ever held a private key or the pepper.
    let (private, _) = stored(&app).await;
    let private: Value = serde_json::from_str(&private).unwrap();
    let mut secrets: Vec<&str> = private["keys"].as_array().unwrap().iter().map(|k| k["private_key"].as_str().unwrap()).collect();
    secrets.push(private["refresh_pepper"].as_str().unwrap());
    for output in &outputs {
        for secret in &secrets {
            assert!(!output.contains(secret), "an authctl output shows a secret: {output}");
        }
    }
}

/// A `connect` for [`authorizer_connecting`] that counts how often a client is built, and
/// builds one reporting to `recorder`.
fn counting_connect(recorder: &CallRecorder, connects: &Arc<AtomicUsize>) -> Connect {
    let (recorder, connects) = (recorder.clone(), connects.clone());
    Box::new(move || {
        let (recorder, connects) = (recorder.clone(), connects.clone());
        Box::pin(async move {
            connects.fetch_add(1, Ordering::SeqCst);
            recorder.clients(&load_sdk_config().await).1
        })
    })
}

#[tokio::test]
async fn deployed_keys_verify_known_kids_with_no_aws_call_and_no_client_and_unknown_kids_cost_one_fetch() {
    let app = spawn_app_with(&[("AUTH_PUBLIC_JWKS", &public_jwks_json())]).await;
    let (recorder, connects) = (CallRecorder::default(), Arc::new(AtomicUsize::new(0)));
    let authorizer = authorizer_connecting(&app.config, counting_connect(&recorder, &connects)).await.unwrap();
    let tokens = [
        app.login(ALICE, PASSWORD).await.access_token(),
        signed_by(&crate::forge::test_key("k0"), &app),
        signed_by(&crate::forge::test_key("k2"), &app),
    ];
    for _ in 0..5 {
        for token in &tokens {
            assert_eq!(allowed_in_shapes_by(&authorizer, &format!("Bearer {token}")).await, 3);
        }
    }
    assert_eq!(recorder.calls(), vec![], "no AWS call");
    assert_eq!(connects.load(Ordering::SeqCst), 0, "not even a client was built");

    // Unknown kids (a key never published): denied, after one read of the public store.
    for _ in 0..5 {
        let stranger = PrivateKey::generate(KeyAlgorithm::Es256).unwrap();
        assert_eq!(allowed_in_shapes_by(&authorizer, &format!("Bearer {}", signed_by(&stranger, &app))).await, 0);
    }
    let calls = recorder.calls();
    assert_eq!(calls.len(), 1, "one fetch for 15 unknown-kid requests within 30 s: {calls:?}");
    assert_eq!(
        (calls[0].operation.as_str(), calls[0].resource.as_str()),
        ("GetSecretValue", app.config.public_keys_secret_id.as_str())
    );
    assert_eq!(connects.load(Ordering::SeqCst), 1, "the client is built on that first fetch");

    // The store holds what was deployed: known kids stay on the no-call path.
    recorder.clear();
    for token in &tokens {
        assert_eq!(allowed_in_shapes_by(&authorizer, &format!("Bearer {token}")).await, 3);
    }
    assert_eq!(recorder.calls(), vec![]);
    assert!(!authorizer.keys().deployment_outdated());
}

#[tokio::test]
async fn a_malformed_auth_public_jwks_fails_the_cold_start_naming_the_variable() {
    let sdk = load_sdk_config().await;
    let jwks: Value = serde_json::from_str(&public_jwks_json()).unwrap();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut jwks = jwks.clone();
        change(&mut jwks);
        jwks.to_string()
    };
    let private_value = "PRIVATE-d-VALUE-THAT-MUST-NOT-BE-QUOTED";
    for (case, value) in [
        ("not JSON", "{keys".to_owned()),
        ("a single JWK, not a set", jwks["keys"][0].to_string()),
        ("a private member", with(&|j| j["keys"][0]["d"] = json!(private_value))),
        (
            "a symmetric key",
            json!({"keys": [{"kty": "oct", "k": private_value, "kid": "k9", "alg": "HS256", "use": "sig"}]}).to_string(),
        ),
        ("alg changed to HS256", with(&|j| j["keys"][0]["alg"] = json!("HS256"))),
        ("a duplicate kid", with(&|j| j["keys"][1]["kid"] = j["keys"][0]["kid"].clone())),
        ("a point off the curve", with(&|j| j["keys"][2]["y"] = json!(b64([7u8; 32])))),
    ] {
        let config = config_with(&[("AUTH_PUBLIC_JWKS", &value)]);
        let connects = Arc::new(AtomicUsize::new(0));
        let error = match authorizer_connecting(&config, counting_connect(&CallRecorder::default(), &connects)).await {
            Ok(_) => panic!("{case}: accepted"),
            Err(e) => e,
        };
        assert_eq!(error.name, "AUTH_PUBLIC_JWKS", "{case}");
        let message = error.to_string();
        assert!(
            message.contains("AUTH_PUBLIC_JWKS") && message.contains("authctl keys jwks"),
            "{case}: {message}"
        );
        assert!(!message.contains(private_value), "{case}: the message quotes the value: {message}");
        assert_eq!(connects.load(Ordering::SeqCst), 0, "{case}");
        assert!(authorizer_with(&config, CallRecorder::default().clients(&sdk).1).is_err(), "{case}");
    }
}

#[tokio::test]
async fn with_deployed_keys_and_an_unreadable_store_unknown_kids_are_denied_and_known_kids_verify() {
    let app = spawn_app_with(&[("AUTH_PUBLIC_JWKS", &public_jwks_json())]).await;
    let known = [
        app.login(ALICE, PASSWORD).await.access_token(),
        signed_by(&crate::forge::test_key("k0"), &app),
        signed_by(&crate::forge::test_key("k2"), &app),
    ];
    let unknown = signed_by(&PrivateKey::generate(KeyAlgorithm::Es256).unwrap(), &app);
    // Refused (no such secret: a decision) and unreachable (nothing listening: an outage).
    let mut missing = app.config.clone();
    missing.public_keys_secret_id = format!("{}-missing", missing.public_keys_secret_id);
    let refused = authorizer_with(&missing, app.secrets.clone()).unwrap();
    let unreachable = authorizer_with(&app.config, secrets_via("http://127.0.0.1:9").await).unwrap();
    for (case, authorizer) in [("store refusing", &refused), ("store unreachable", &unreachable)] {
        assert_eq!(allowed_in_shapes_by(authorizer, &format!("Bearer {unknown}")).await, 0, "{case}");
        for token in &known {
            assert_eq!(allowed_in_shapes_by(authorizer, &format!("Bearer {token}")).await, 3, "{case}");
        }
        assert_eq!(allowed_in_shapes_by(authorizer, &format!("Bearer {unknown}")).await, 0, "{case}");
    }
}

#[tokio::test]
async fn a_step_cut_short_between_its_two_writes_leaves_verifiers_safe_and_is_finished_by_running_it_again() {
    let app = spawn_app_with(&[("KEY_CACHE_TTL", "1")]).await;
    let stores = stores(&app);
    let token = |kid: &str| signed_by(&crate::forge::test_key(kid), &app);
    // Each step's second PutSecretValue fails (every attempt): add and activate write the
    // public store first, remove the private one.
    let second_write_fails = || async {
        let server = start(Fault::internal_error("secretsmanager.putsecretvalue", 1, usize::MAX)).await;
        let client = secrets_via(&server.endpoint).await;
        (server, stores_over(&app, client))
    };

    // add: published, not stored. Harmless (a key that never signs); a re-run adds one
    // key and the stores agree again.
    let (_server, broken) = second_write_fails().await;
    let before: BTreeSet<String> = published_kids(&app).await;
    assert!(matches!(broken.add(KeyAlgorithm::Es256, now()).await, Err(RotationError::Store(_))));
    let (set, consistent) = stored_set(&app).await;
    assert!(!consistent && set.standby().is_none(), "the private write failed");
    assert_eq!(published_kids(&app).await.len(), before.len() + 1, "the public one happened");
    let KeyAdded::New(entry) = stores.add(KeyAlgorithm::Es256, now()).await.unwrap() else {
        panic!("a new key")
    };
    let (set, consistent) = stored_set(&app).await;
    assert!(consistent && set.keys.len() == 4, "one key added; the orphan is unpublished");

    // activate: the public write happened, the private one not: k1 still signs, all verify.
    let (_server, broken) = second_write_fails().await;
    assert!(broken.activate(&entry.kid, now(), 0, true).await.is_err());
    assert_eq!(stored_set(&app).await.0.active().unwrap().kid, "k1");
    stores.activate(&entry.kid, now(), 0, true).await.unwrap();
    let (set, consistent) = stored_set(&app).await;
    assert!(consistent && set.active().unwrap().kid == entry.kid);

    // remove: the private write happened, the public one not: k1 verifies a while longer
    // (never the other way round), and a re-run unpublishes it.
    let (_server, broken) = second_write_fails().await;
    assert!(broken.remove("k1", now(), 930, true).await.is_err());
    let (set, consistent) = stored_set(&app).await;
    assert!(!consistent && set.keys.iter().all(|k| k.kid != "k1"));
    assert!(published_kids(&app).await.contains("k1"), "still published: safe");
    past_cache_ttl().await;
    assert_eq!(allowed_in_shapes(&app, &format!("Bearer {}", token("k1"))).await, 3);
    assert!(!stores.remove("k1", now(), 930, true).await.unwrap(), "already gone from the private set");
    let (_, consistent) = stored_set(&app).await;
    assert!(consistent && !published_kids(&app).await.contains("k1"), "and now unpublished");
    past_cache_ttl().await;
    assert_eq!(allowed_in_shapes(&app, &format!("Bearer {}", token("k1"))).await, 0);
}

#[tokio::test]
async fn overlapping_steps_of_two_operators_never_undo_each_other() {
    let app = spawn_app().await;
    let stores = stores(&app);

    // Operator B adds a key from a stale read while operator A removes k0 (a compromised
    // key, --now): B's write would put k0 back in both stores. It must fail instead.
    let (stale, gate, _server) = stores_held_at_write(&app).await;
    let b = tokio::spawn(async move { stale.add(KeyAlgorithm::Es256, now()).await });
    gate.arrived.notified().await;
    assert!(stores.remove("k0", now(), 930, true).await.unwrap());
    gate.open.notify_one();
    let refused = b.await.unwrap().unwrap_err();
    assert!(matches!(refused, RotationError::Conflict(_)), "{refused}");
    assert!(refused.to_string().contains("run this command again"), "{refused}");
    let (set, consistent) = stored_set(&app).await;
    assert!(consistent && set.keys.iter().all(|k| k.kid != "k0"), "k0 stays removed");
    assert!(!published_kids(&app).await.contains("k0"));

    // Operator B removes k2 from a stale read while operator A activates a new key: B's
    // write would bring k1 back as the signing key. It must fail instead.
    let KeyAdded::New(entry) = stores.add(KeyAlgorithm::Es256, now()).await.unwrap() else {
        panic!("a new key")
    };
    let (stale, gate, _server) = stores_held_at_write(&app).await;
    let b = tokio::spawn(async move { stale.remove("k2", now(), 930, true).await });
    gate.arrived.notified().await;
    stores.activate(&entry.kid, now(), 0, true).await.unwrap();
    gate.open.notify_one();
    assert!(matches!(b.await.unwrap(), Err(RotationError::Conflict(_))));
    let (set, consistent) = stored_set(&app).await;
    assert!(consistent && set.active().unwrap().kid == entry.kid, "the activation stands");
    assert!(set.keys.iter().any(|k| k.kid == "k2"), "and the stale removal did not happen");
    // Run again, it works.
    assert!(stores.remove("k2", now(), 930, true).await.unwrap());
}

#[tokio::test]
async fn a_standby_key_missing_from_the_public_store_is_published_again_before_it_may_sign() {
    let app = spawn_app().await;
    let stores = stores(&app);
    let t0 = now();
    let KeyAdded::New(entry) = stores.add(KeyAlgorithm::Es256, t0).await.unwrap() else {
        panic!("a new key")
    };
    // The public store loses the key (an overlapping step, a hand edit, a restored backup).
    write_secret(&app.secrets, &app.config.public_keys_secret_id, &public_jwks_json())
        .await
        .unwrap();

    let refused = stores.activate(&entry.kid, t0 + 8_100, 8_100, false).await.unwrap_err();
    assert!(
        refused.to_string().contains("missing from the public store") && refused.to_string().contains("--now"),
        "{refused}"
    );
    assert!(published_kids(&app).await.contains(&entry.kid), "published again");
    let (set, consistent) = stored_set(&app).await;
    assert!(consistent && set.active().unwrap().kid == "k1", "still not signing");
    let republished = set.entry(&entry.kid).unwrap().created_at;
    assert!(republished >= t0, "its publish delay starts over");
    // Run with the same clock again: the delay now counts from the new publication.
    let early = stores.activate(&entry.kid, republished + 8_099, 8_100, false).await.unwrap_err();
    assert!(early.to_string().contains("wait 1 s more"), "{early}");
    stores.activate(&entry.kid, republished + 8_100, 8_100, false).await.unwrap();
    assert_eq!(stored_set(&app).await.0.active().unwrap().kid, entry.kid);

    // add over a waiting standby key missing from the store republishes it too.
    let KeyAdded::New(next) = stores.add(KeyAlgorithm::EdDsa, t0).await.unwrap() else {
        panic!("a new key")
    };
    write_secret(&app.secrets, &app.config.public_keys_secret_id, &public_jwks_json())
        .await
        .unwrap();
    let KeyAdded::AlreadyWaiting(waiting) = stores.add(KeyAlgorithm::EdDsa, t0 + 60).await.unwrap() else {
        panic!("waiting")
    };
    assert_eq!((waiting.kid.as_str(), waiting.created_at), (next.kid.as_str(), t0 + 60));
    assert!(stored_set(&app).await.1, "the stores agree again");
}

#[tokio::test]
async fn keys_init_never_replaces_a_key_set_it_cannot_read() {
    let app = spawn_app().await;
    // A hand edit gone wrong: two keys active. Replacing it would throw away the pepper.
    let broken = SIGNING_KEYS_JSON.replace(r#""state":"retired""#, r#""state":"active""#);
    write_secret(&app.secrets, &app.config.signing_secret_id, &broken).await.unwrap();
    for args in [&["keys", "init"][..], &["local-setup"][..]] {
        let output = authctl_with(&app, args, None, &[]);
        let printed = text(&output);
        assert!(!output.status.success() && printed.contains("does not replace it"), "{printed}");
        assert_eq!(stored(&app).await.0, broken, "the secret is left as it was");
    }
    let output = authctl_with(&app, &["keys", "add"], None, &[]);
    assert!(!output.status.success() && text(&output).contains("repair it"), "{}", text(&output));
    // The stack's placeholder is replaced, as before.
    write_secret(&app.secrets, &app.config.signing_secret_id, r#"{"uninitialized": true, "placeholder": "abc"}"#)
        .await
        .unwrap();
    let output = authctl_with(&app, &["keys", "init"], None, &[]);
    assert!(output.status.success() && text(&output).contains("created the key set"), "{}", text(&output));
    assert!(stored_set(&app).await.1);
}
