//! CPU cost of the hot paths, without network: verifying an access token (and the bare
//! ES256 signature check under it), the whole authorizer handler, issuing a token pair, one
//! rotation, argon2id. Run by scripts/bench.sh, which also feeds the token set written
//! here to the Node and Python peers so every library verifies the same tokens.

// A benchmark fails by panicking on a broken fixture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use auth_core::authorizer::{Authorizer, AuthorizerEvent};
use auth_core::clock::{Clock, SystemClock};
use auth_core::keys::KeyCache;
use auth_core::keys::verifying::TrustedKeys;
use auth_core::password::{hash_password, verify_password};
use auth_core::testing::{StaticKeys, config, public_jwks_json, public_keys, signing_keys};
use auth_core::tokens::{AccessTokenHeader, AccessTokens, RefreshToken, SessionId};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// How many distinct tokens the peers cycle through.
const TOKENS: usize = 64;

/// The published JWK of the active key `k1`.
fn k1_jwk() -> Value {
    let jwks: Value = serde_json::from_str(&public_jwks_json()).unwrap();
    jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == "k1").unwrap().clone()
}

fn http_api_event(token: &str) -> Value {
    json!({
        "version": "2.0", "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/$default/GET/pets",
        "identitySource": [format!("Bearer {token}")], "routeKey": "GET /pets", "rawPath": "/pets", "rawQueryString": "",
        "headers": {"authorization": format!("Bearer {token}"), "host": "abcdef1234.execute-api.us-east-1.amazonaws.com", "user-agent": "curl/8.5.0"},
        "requestContext": {"accountId": "123456789012", "apiId": "abcdef1234", "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com", "domainPrefix": "abcdef1234",
            "http": {"method": "GET", "path": "/pets", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
            "requestId": "id", "routeKey": "GET /pets", "stage": "$default", "time": "23/Nov/2026:12:00:00 +0000", "timeEpoch": 1_795_000_000_000u64}
    })
}

/// Writes the token set for the peers: same claims shape, same key, same issuer/audience.
fn write_peer_tokens(tokens: &[String]) {
    let config = config();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    let data = json!({"jwk": k1_jwk(), "issuer": config.issuer, "audience": config.audience, "tokens": tokens});
    std::fs::write(dir.join("tokens.json"), data.to_string()).unwrap();
}

fn verification(c: &mut Criterion) {
    let config = config();
    let access = AccessTokens::new(&config);
    let (signing, keys) = (signing_keys(), public_keys());
    let now = SystemClock.now();
    let tokens: Vec<String> = (0..TOKENS)
        .map(|i| access.issue(&signing, &format!("user-{i}"), "sid", &["user".into()], now).unwrap().token)
        .collect();
    write_peer_tokens(&tokens);
    let token = tokens[0].clone();

    let jwk = k1_jwk();
    let coordinate = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let point = [vec![4u8], coordinate("x"), coordinate("y")].concat();
    let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point);
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    c.bench_function("es256_verify_floor", |b| {
        b.iter(|| public.verify(black_box(signing_input.as_bytes()), black_box(&signature)).unwrap())
    });

    // The library alone with our settings (one Validation, typed claims, key decoded once):
    // the floor of verifying through jsonwebtoken.
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    let decoding = &keys.verifying_key("k1").unwrap().decoding;
    c.bench_function("jsonwebtoken_decode_only", |b| {
        b.iter(|| jsonwebtoken::decode::<auth_core::claims::AccessClaims>(black_box(&token), decoding, &validation).unwrap())
    });

    c.bench_function("verify", |b| {
        b.iter(|| {
            let header = AccessTokenHeader::read(black_box(&token)).unwrap();
            access.verify(&keys, &token, &header, now).unwrap()
        })
    });

    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let store = KeyCache::new(Arc::new(StaticKeys::public()), clock.clone(), 300);
    // Keys deployed in the environment, as in production: nothing to fetch.
    let authorizer = Authorizer::new(&config, TrustedKeys::new(Some(public_keys()), store), clock);
    let event_text = http_api_event(&token).to_string();
    let allowed = runtime.block_on(authorizer.handle(&event_text, None)).unwrap();
    assert_eq!(serde_json::to_value(allowed).unwrap()["isAuthorized"], true);

    // The event's fields already read (`AuthorizerEvent::parse`): bearer, verify, response.
    let event = AuthorizerEvent::parse(&event_text).unwrap();
    c.bench_function("authorizer_verify_and_policy", |b| {
        b.to_async(&runtime).iter(|| authorizer.answer(black_box(&event), None))
    });
    // Event JSON text in, response JSON text out, as the runtime does it: the body is taken
    // as raw JSON, handled, and the response serialised.
    c.bench_function("authorizer_handler", |b| {
        b.to_async(&runtime).iter(|| async {
            let body: Box<RawValue> = serde_json::from_str(black_box(&event_text)).unwrap();
            serde_json::to_vec(&authorizer.handle(body.get(), None).await.unwrap()).unwrap()
        })
    });
}

fn issuing(c: &mut Criterion) {
    let config = config();
    let access = AccessTokens::new(&config);
    let keys = signing_keys();
    let now = SystemClock.now();
    c.bench_function("issue_token_pair", |b| {
        b.iter(|| {
            let refresh = RefreshToken::start(SessionId::generate());
            let hash = refresh.hash();
            let token = access.issue(&keys, "user-1", refresh.session_id.as_str(), &["user".into()], now).unwrap();
            (hash, token, refresh.encode())
        })
    });
    let presented = RefreshToken::start(SessionId::generate());
    let wire = presented.encode();
    c.bench_function("rotation_cpu", |b| {
        b.iter(|| {
            let presented = RefreshToken::parse(black_box(&wire)).unwrap();
            let successor = presented.successor(keys.refresh_pepper());
            (
                presented.hash(),
                successor.hash(),
                successor.encode(),
                access.issue(&keys, "user-1", "sid", &["user".into()], now).unwrap(),
            )
        })
    });
}

fn passwords(c: &mut Criterion) {
    let mut group = c.benchmark_group("argon2id");
    group.sample_size(10);
    let password: secrecy::SecretString = "correct horse battery staple".to_owned().into();
    group.bench_function("hash", |b| b.iter(|| hash_password(&password).unwrap()));
    let phc = hash_password(&password).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    group.bench_function("verify", |b| b.to_async(&runtime).iter(|| verify_password(password.clone(), Some(phc.clone()))));
    group.finish();
}

/// One second of warm-up and three of measurement per benchmark: at microseconds per
/// operation that is still millions of samples, and keeps scripts/bench.sh short.
fn settings() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = settings();
    targets = verification, issuing, passwords
}
criterion_main!(benches);
