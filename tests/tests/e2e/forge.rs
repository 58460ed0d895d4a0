//! Crafting tokens the way an attacker would: any header, any claims, signed with one of
//! the test key set's private keys (so the one thing a case changes is what gets it
//! denied), with an HMAC key of the attacker's choosing, or not at all.

use auth_core::Config;
use auth_core::keys::KeyAlgorithm;
use auth_core::keys::signing::PrivateKey;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::harness::{App, ask, http_api_authorizer_event, now, rest_request_event, rest_token_event};

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A base64url JSON part of a token, decoded.
pub fn b64_decode_json(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

pub fn b64_json(value: &Value) -> String {
    b64(value.to_string())
}

/// A private key of the test key set: `k1` (ES256, active), `k0` (EdDSA, retired) or
/// `k2` (RS256, retired).
pub fn test_key(kid: &str) -> PrivateKey {
    let set = auth_core::testing::signing_key_set();
    set.keys.iter().find(|k| k.kid == kid).unwrap().private_key().unwrap()
}

/// The raw JWS signature of `message` by `key`, in its algorithm's JOSE form.
pub fn raw_signature(key: &PrivateKey, message: &[u8]) -> Vec<u8> {
    let rng = SystemRandom::new();
    match key.alg {
        KeyAlgorithm::Es256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.pkcs8())
            .unwrap()
            .sign(&rng, message)
            .unwrap()
            .as_ref()
            .to_vec(),
        KeyAlgorithm::EdDsa => Ed25519KeyPair::from_pkcs8(key.pkcs8()).unwrap().sign(message).as_ref().to_vec(),
        KeyAlgorithm::Rs256 => {
            let pair = RsaKeyPair::from_pkcs8(key.pkcs8()).unwrap();
            let mut signature = vec![0; pair.public_modulus_len()];
            pair.sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature).unwrap();
            signature
        }
    }
}

/// `<header>.<payload>.<signature by key>` from already-encoded parts.
pub fn sign_parts_with(key: &PrivateKey, header: &str, payload: &str) -> String {
    let message = format!("{header}.{payload}");
    let signature = raw_signature(key, message.as_bytes());
    format!("{message}.{}", b64(signature))
}

/// Signed by `key`, whatever the header says.
pub fn sign_with(key: &PrivateKey, header: &Value, claims: &Value) -> String {
    sign_parts_with(key, &b64_json(header), &b64_json(claims))
}

/// Signed by the active key `k1` (ES256), whatever the header says.
pub fn sign_parts(header: &str, payload: &str) -> String {
    sign_parts_with(&test_key("k1"), header, payload)
}

/// Signed by the active key `k1` (ES256), whatever the header says.
pub fn sign(header: &Value, claims: &Value) -> String {
    sign_parts(&b64_json(header), &b64_json(claims))
}

/// An HMAC-signed token, with a key of the attacker's choosing.
pub fn hmac_sign(alg: hmac::Algorithm, key: &[u8], header: &Value, claims: &Value) -> String {
    let message = format!("{}.{}", b64_json(header), b64_json(claims));
    let tag = hmac::sign(&hmac::Key::new(alg, key), message.as_bytes());
    format!("{message}.{}", b64(tag.as_ref()))
}

/// Claims exactly as our issuer writes them, valid now.
pub fn valid_claims(config: &Config) -> Value {
    let now = now();
    json!({"iss": config.issuer, "aud": config.audience, "sub": "user-x", "sid": "sid-x", "jti": "j", "iat": now, "exp": now + 600, "roles": ["user"], "scope": "user"})
}

/// The header our issuer writes for `k1`.
pub fn our_header() -> Value {
    json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"})
}

pub fn is_allowed(answer: &Result<Value, auth_core::api::authorizer::Unauthorized>) -> bool {
    matches!(answer, Ok(v) if v["isAuthorized"] == true)
}

/// Sends `authorization` through all three gateway shapes; returns how many allowed it.
/// A deny must be `{"isAuthorized": false}` for HTTP APIs, never an invocation error.
pub async fn allowed_in_shapes(app: &App, authorization: &str) -> usize {
    allowed_in_shapes_by(&app.authorizer, authorization).await
}

/// [`allowed_in_shapes`] for any authorizer (one built with its own configuration or client).
pub async fn allowed_in_shapes_by(authorizer: &auth_core::api::authorizer::Authorizer, authorization: &str) -> usize {
    let http = ask(authorizer, &http_api_authorizer_event(Some(authorization), "GET /pets")).await;
    let http_allowed = match &http {
        Ok(v) if v == &json!({"isAuthorized": false}) => false,
        Ok(v) if v["isAuthorized"] == true => true,
        other => panic!("HTTP API answer must be a simple response: {other:?}"),
    };
    let rest_token = ask(authorizer, &rest_token_event(authorization)).await.is_ok();
    let rest_request = ask(authorizer, &rest_request_event(authorization)).await.is_ok();
    [http_allowed, rest_token, rest_request].iter().filter(|a| **a).count()
}
