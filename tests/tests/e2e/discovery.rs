//! `discovery` end to end: the real handler over the emulator's public key store.

use auth_core::aws::public_key_cache_with;
use auth_core::discovery::{Discovery, JWKS_PATH, OPENID_CONFIGURATION_PATH};
use auth_core::testing::public_jwks_json;
use serde_json::Value;

use crate::harness::*;

/// The discovery function as `main.rs` wires it, over `app`'s public key secret.
fn discovery_of(app: &App) -> Discovery {
    Discovery::new(&app.config, public_key_cache_with(&app.config, app.secrets.clone())).unwrap()
}

async fn get(discovery: &Discovery, call: Call) -> Answer {
    Answer::from(discovery::handle(discovery, call.request()).await.unwrap())
}

#[tokio::test]
async fn discovery_serves_the_published_jwks_from_the_store_with_revalidation() {
    let app = spawn_app().await;
    let discovery = discovery_of(&app);
    let jwks = get(&discovery, Call::get(JWKS_PATH)).await;
    assert_eq!(jwks.status, 200);
    assert_eq!(jwks.json(), serde_json::from_str::<Value>(&public_jwks_json()).unwrap());
    assert_eq!(jwks.header("cache-control"), Some("public, max-age=300"));
    let etag = jwks.header("etag").unwrap();
    let again = get(&discovery, Call::get(JWKS_PATH).header("if-none-match", etag)).await;
    assert_eq!((again.status, again.body.as_str()), (304, ""));

    let metadata = get(&discovery, Call::get(OPENID_CONFIGURATION_PATH)).await;
    assert_eq!(metadata.json()["issuer"], app.config.issuer);
    assert_eq!(metadata.json()["jwks_uri"], format!("{}{JWKS_PATH}", app.config.issuer));
}

#[tokio::test]
async fn discovery_fails_closed_when_the_public_key_secret_cannot_be_read() {
    let mut app = spawn_app().await;
    app.config.public_keys_secret_id = format!("{}-missing", app.config.public_keys_secret_id);
    let discovery = discovery_of(&app);
    let jwks = get(&discovery, Call::get(JWKS_PATH)).await;
    assert_eq!(jwks.status, 503);
    assert_eq!(jwks.error_code(), "unavailable");
    assert_eq!(jwks.header("cache-control"), Some("no-store"));
    assert!(!jwks.body.contains("keys"), "no key set, not even an empty one: {}", jwks.body);
}
