//! Crafting tokens the way an attacker would: any header, any claims, signed with the
//! test key set's `k1` secret or not at all.

use auth_core::Config;
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::harness::{App, http_api_authorizer_event, now, rest_request_event, rest_token_event};

/// The secret of key `k1` in the test key set.
pub const K1_SECRET: &[u8] = b"k1-signing-key-for-tests-only-32bytes";

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64_json(value: &Value) -> String {
    b64(value.to_string())
}

/// `<header>.<payload>.<HMAC of both>` from already-encoded parts.
pub fn sign_parts(alg: hmac::Algorithm, header: &str, payload: &str) -> String {
    let message = format!("{header}.{payload}");
    let tag = hmac::sign(&hmac::Key::new(alg, K1_SECRET), message.as_bytes());
    format!("{message}.{}", b64(tag.as_ref()))
}

pub fn sign(alg: hmac::Algorithm, header: &Value, claims: &Value) -> String {
    sign_parts(alg, &b64_json(header), &b64_json(claims))
}

/// Claims exactly as our issuer writes them, valid now.
pub fn valid_claims(config: &Config) -> Value {
    let now = now();
    json!({"iss": config.issuer, "aud": config.audience, "sub": "user-x", "sid": "sid-x", "jti": "j", "iat": now, "exp": now + 600, "roles": ["user"]})
}

pub fn our_header() -> Value {
    json!({"alg": "HS256", "typ": "at+jwt", "kid": "k1"})
}

pub fn is_allowed(answer: &Result<Value, auth_core::authorizer::Unauthorized>) -> bool {
    matches!(answer, Ok(v) if v["isAuthorized"] == true)
}

/// Sends `authorization` through all three gateway shapes; returns how many allowed it.
/// A deny must be `{"isAuthorized": false}` for HTTP APIs, never an invocation error.
pub async fn allowed_in_shapes(app: &App, authorization: &str) -> usize {
    let http = app.authorize(http_api_authorizer_event(Some(authorization), "GET /pets")).await;
    let http_allowed = match &http {
        Ok(v) if v == &json!({"isAuthorized": false}) => false,
        Ok(v) if v["isAuthorized"] == true => true,
        other => panic!("HTTP API answer must be a simple response: {other:?}"),
    };
    let rest_token = app.authorize(rest_token_event(authorization)).await.is_ok();
    let rest_request = app.authorize(rest_request_event(authorization)).await.is_ok();
    [http_allowed, rest_token, rest_request].iter().filter(|a| **a).count()
}
