//! Signing-key rotation end to end: the two key stores stay consistent when a step is cut
//! short or two operators' steps overlap.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use auth_core::aws::load_sdk_config;
use auth_core::keys::KeyAlgorithm;
use auth_core::keys::rotation::SigningKeySet;
use auth_core::keys::secrets_manager::{KeyAdded, KeyStores, RotationError, read_secret, write_secret};
use auth_core::keys::signing::PrivateKey;
use auth_core::testing::{SIGNING_KEYS_JSON, public_jwks_json};
use serde_json::{Value, json};

use crate::authctl::{authctl_with, text};
use crate::fault_server::{Fault, Gate, start};
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
    let gate = Arc::new(Gate::default());
    let server = start(Fault::Hold {
        needle: "secretsmanager.putsecretvalue",
        gate: gate.clone(),
    })
    .await;
    let stale = stores_over(&app, secrets_via(&server.endpoint).await);
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
    let gate = Arc::new(Gate::default());
    let server = start(Fault::Hold {
        needle: "secretsmanager.putsecretvalue",
        gate: gate.clone(),
    })
    .await;
    let stale = stores_over(&app, secrets_via(&server.endpoint).await);
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
    // The stack's placeholder is replaced, as before.
    write_secret(&app.secrets, &app.config.signing_secret_id, r#"{"uninitialized": true, "placeholder": "abc"}"#)
        .await
        .unwrap();
    let output = authctl_with(&app, &["keys", "init"], None, &[]);
    assert!(output.status.success() && text(&output).contains("created the key set"), "{}", text(&output));
    assert!(stored_set(&app).await.1);
}
