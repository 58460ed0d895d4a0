//! CPU cost of the hot paths, without network, for each algorithm a key may use:
//! verifying an access token (and the bare aws-lc signature check under it, the floor no
//! verifier can go below), the authorizer's verify + policy and its whole handler, signing
//! (a token pair at login, one rotation at refresh), argon2id and the password policy. Run by scripts/bench.sh,
//! which also feeds the token sets written here (`target/bench/tokens.json`) to the Node
//! and Python peers, so every library verifies the same tokens with the same key.
//!
//! Benchmark ids are `<alg>/<what>` (criterion writes them under
//! `target/criterion/<alg>/<what>/`), read back by `scripts/bench/report.py`.

// A benchmark fails by panicking on a broken fixture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use auth_core::api::authorizer::{Authorizer, AuthorizerEvent};
use auth_core::claims::Authentication;
use auth_core::clock::{Clock, SystemClock};
use auth_core::keys::verifying::TrustedKeys;
use auth_core::keys::{KeyCache, KeyDocument, SigningKeys};
use auth_core::password::{hash_password, verify_password};
use auth_core::testing::{SIGNING_KEYS_JSON, StaticKeys, config, public_jwks_json, public_keys};
use auth_core::tokens::{AccessTokenHeader, AccessTokens, RefreshToken, SessionId};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, ParsedPublicKey, RSA_PKCS1_SHA256, RsaKeyPair,
    UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime};
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// How many distinct tokens per algorithm the peers cycle through.
const TOKENS: usize = 64;

/// The algorithms whose verification is measured, each with the test key that signs it
/// (`auth_core::testing`): the default ES256 and EdDSA. RS256 is measured for signing only.
const VERIFIED: [(&str, &str); 2] = [("ES256", "k1"), ("EdDSA", "k0")];

/// Every algorithm whose signing cost is measured, with its test key.
const SIGNED: [(&str, &str); 3] = [("ES256", "k1"), ("EdDSA", "k0"), ("RS256", "k2")];

/// The test key set with `kid` as the active (signing) key and the others retired: the
/// same keys `public_keys()` publishes, so every token verifies against one JWKS.
fn signing_keys_with_active(kid: &str) -> SigningKeys {
    let mut set: Value = serde_json::from_str(SIGNING_KEYS_JSON).unwrap();
    for key in set["keys"].as_array_mut().unwrap() {
        key["state"] = json!(if key["kid"] == kid { "active" } else { "retired" });
    }
    SigningKeys::from_json(&set.to_string()).unwrap()
}

/// The published JWK of `kid`.
fn public_jwk(kid: &str) -> Value {
    let jwks: Value = serde_json::from_str(&public_jwks_json()).unwrap();
    jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).unwrap().clone()
}

/// The raw public key aws-lc verifies with: the uncompressed P-256 point, or the 32
/// Ed25519 bytes.
fn raw_public_key(jwk: &Value) -> Vec<u8> {
    let member = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    match jwk["kty"].as_str().unwrap() {
        "EC" => [vec![4u8], member("x"), member("y")].concat(),
        _ => member("x"),
    }
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

/// One second of warm-up and three of measurement per benchmark: at microseconds per
/// operation that is still hundreds of thousands of samples, and keeps scripts/bench.sh short.
fn timed<'a>(c: &'a mut Criterion, group: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(group);
    group.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group
}

/// Batches per operation in [`paired`], and calls per batch (a few milliseconds each).
const ROUNDS: usize = 300;
const BATCH: usize = 40;

/// The cost of each operation relative to the first (the floor), from alternating batches:
/// every round times one batch of each operation, one after the other. On a shared machine
/// load comes in bursts; a burst slows all batches of its round alike, so the per-round
/// ratios, and their median, hold still while criterion's medians, taken one benchmark
/// after another, can drift apart. Returns each operation's median ns per call and median
/// ratio to the floor.
fn paired(operations: &mut [(&'static str, &mut dyn FnMut())]) -> Value {
    let mut times: Vec<Vec<f64>> = operations.iter().map(|_| Vec::with_capacity(ROUNDS)).collect();
    for round in 0..ROUNDS {
        // Rotate the order, so no operation always runs right after the same one.
        for k in 0..operations.len() {
            let i = (round + k) % operations.len();
            let started = std::time::Instant::now();
            for _ in 0..BATCH {
                (operations[i].1)();
            }
            times[i].push(started.elapsed().as_nanos() as f64 / BATCH as f64);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let floor = times[0].clone();
    let rows: Vec<Value> = operations
        .iter()
        .zip(&times)
        .map(|((name, _), samples)| {
            let ratios = samples.iter().zip(&floor).map(|(t, f)| t / f).collect();
            json!({"name": name, "ns_per_op": median(samples.clone()), "ratio_to_floor": median(ratios)})
        })
        .collect();
    json!(rows)
}

/// Verification of one algorithm's tokens, from the bare signature check up to the whole
/// handler; returns the token set for the peers and the [`paired`] ratios to the floor.
fn verification_of(c: &mut Criterion, alg: &str, kid: &str) -> (Value, Value) {
    let config = config();
    let access = AccessTokens::new(&config);
    let (signing, keys) = (signing_keys_with_active(kid), public_keys());
    let now = SystemClock.now();
    let tokens: Vec<String> = (0..TOKENS)
        .map(|i| {
            access
                .issue(&signing, &format!("user-{i}"), "sid", &["user".into()], &Authentication::password(now), now)
                .unwrap()
                .token
        })
        .collect();
    let token = tokens[0].clone();
    let header = AccessTokenHeader::read(&token).unwrap();
    assert_eq!((header.kid.as_str(), header.alg.map(|a| format!("{a:?}"))), (kid, Some(alg.to_owned())));

    let jwk = public_jwk(kid);
    let raw = raw_public_key(&jwk);
    let algorithm: &'static dyn VerificationAlgorithm = if alg == "ES256" { &ECDSA_P256_SHA256_FIXED } else { &ED25519 };
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let mut group = timed(c, alg);

    // The floor: aws-lc checking the signature of the signing input with the key parsed
    // once, nothing else (no base64, no JSON, no claims).
    let parsed = ParsedPublicKey::new(algorithm, &raw).unwrap();
    group.bench_function("verify_floor", |b| {
        b.iter(|| parsed.verify_sig(black_box(signing_input.as_bytes()), black_box(&signature)).unwrap())
    });
    // The same with the key parsed on every call, which is what `jsonwebtoken` does with a
    // `DecodingKey` (for ES256 that includes checking the point is on the curve).
    let unparsed = UnparsedPublicKey::new(algorithm, &raw);
    group.bench_function("verify_floor_key_per_call", |b| {
        b.iter(|| unparsed.verify(black_box(signing_input.as_bytes()), black_box(&signature)).unwrap())
    });

    // The library alone with our settings (one Validation, typed claims, key decoded once):
    // the floor of verifying through jsonwebtoken.
    let mut validation = jsonwebtoken::Validation::new(keys.verifying_key(kid).unwrap().algorithm);
    validation.set_issuer(&[&config.issuer]);
    validation.set_audience(&[&config.audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    let decoding = &keys.verifying_key(kid).unwrap().decoding;
    group.bench_function("jsonwebtoken_decode_only", |b| {
        b.iter(|| jsonwebtoken::decode::<auth_core::claims::AccessClaims>(black_box(&token), decoding, &validation).unwrap())
    });

    group.bench_function("verify", |b| {
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
    group.bench_function("authorizer_verify_and_policy", |b| {
        b.to_async(&runtime).iter(|| authorizer.answer(black_box(&event), None))
    });
    // Event JSON text in, response JSON text out, as the runtime does it: the body is taken
    // as raw JSON, handled, and the response serialised.
    group.bench_function("authorizer_handler", |b| {
        b.to_async(&runtime).iter(|| async {
            let body: Box<RawValue> = serde_json::from_str(black_box(&event_text)).unwrap();
            serde_json::to_vec(&authorizer.handle(body.get(), None).await.unwrap()).unwrap()
        })
    });
    group.finish();

    let paired = paired(&mut [
        ("verify_floor", &mut || {
            parsed.verify_sig(black_box(signing_input.as_bytes()), black_box(&signature)).unwrap()
        }),
        ("verify_floor_key_per_call", &mut || {
            unparsed.verify(black_box(signing_input.as_bytes()), black_box(&signature)).unwrap()
        }),
        ("jsonwebtoken_decode_only", &mut || {
            jsonwebtoken::decode::<auth_core::claims::AccessClaims>(black_box(&token), decoding, &validation).unwrap();
        }),
        ("verify", &mut || {
            let header = AccessTokenHeader::read(black_box(&token)).unwrap();
            access.verify(&keys, &token, &header, now).unwrap();
        }),
        ("authorizer_verify_and_policy", &mut || {
            runtime.block_on(authorizer.answer(black_box(&event), None)).unwrap();
        }),
        ("authorizer_handler", &mut || {
            let body: Box<RawValue> = serde_json::from_str(black_box(&event_text)).unwrap();
            serde_json::to_vec(&runtime.block_on(authorizer.handle(body.get(), None)).unwrap()).unwrap();
        }),
    ]);
    (json!({"alg": alg, "jwk": jwk, "tokens": tokens}), paired)
}

fn verification(c: &mut Criterion) {
    let (sets, ratios): (Vec<Value>, Vec<Value>) = VERIFIED.iter().map(|(alg, kid)| verification_of(c, alg, kid)).unzip();
    let config = config();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).unwrap();
    // The token sets for the peers: same claims shape, same keys, same issuer/audience.
    let data = json!({"issuer": config.issuer, "audience": config.audience, "sets": sets});
    std::fs::write(dir.join("tokens.json"), data.to_string()).unwrap();
    let ratios: serde_json::Map<String, Value> = VERIFIED.iter().map(|(alg, _)| alg.to_string()).zip(ratios).collect();
    println!("paired ratios to the floor: {}", Value::Object(ratios.clone()));
    std::fs::write(dir.join("floor_ratios.json"), Value::Object(ratios).to_string()).unwrap();
}

/// What login and refresh spend on CPU per request, for each signing algorithm.
fn signing(c: &mut Criterion) {
    let config = config();
    let access = AccessTokens::new(&config);
    let now = SystemClock.now();
    let set: Value = serde_json::from_str(SIGNING_KEYS_JSON).unwrap();
    let rng = SystemRandom::new();
    for (alg, kid) in SIGNED {
        let keys = signing_keys_with_active(kid);
        let mut group = timed(c, alg);
        // The floor: aws-lc signing a token's signing input with the key parsed once, as
        // `SigningKey` does; `issue_token_pair` adds the claims, their JSON and base64url,
        // and the refresh token and its hash.
        let entry = set["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).unwrap();
        let pkcs8 = URL_SAFE_NO_PAD.decode(entry["private_key"].as_str().unwrap()).unwrap();
        let token = access
            .issue(&keys, "user-1", "sid", &["user".into()], &Authentication::password(now), now)
            .unwrap()
            .token;
        let message = token.rsplit_once('.').unwrap().0.as_bytes();
        match alg {
            "ES256" => {
                let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
                group.bench_function("sign_floor", |b| b.iter(|| key.sign(&rng, black_box(message)).unwrap()));
            }
            "EdDSA" => {
                let key = Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap();
                group.bench_function("sign_floor", |b| b.iter(|| key.sign(black_box(message))));
            }
            _ => {
                let key = RsaKeyPair::from_pkcs8(&pkcs8).unwrap();
                let mut signature = vec![0u8; key.public_modulus_len()];
                group.bench_function("sign_floor", |b| {
                    b.iter(|| key.sign(&RSA_PKCS1_SHA256, &rng, black_box(message), &mut signature).unwrap())
                });
            }
        }
        // Login: a new session's refresh token and its hash, and a signed access token.
        group.bench_function("issue_token_pair", |b| {
            b.iter(|| {
                let refresh = RefreshToken::start(SessionId::generate());
                let hash = refresh.hash();
                let token = access
                    .issue(
                        &keys,
                        "user-1",
                        refresh.session_id.as_str(),
                        &["user".into()],
                        &Authentication::password(now),
                        now,
                    )
                    .unwrap();
                (hash, token, refresh.encode())
            })
        });
        // Refresh: parse the presented token, one step of the hash chain, both hashes, and
        // a signed access token.
        let presented = RefreshToken::start(SessionId::generate());
        let wire = presented.encode();
        group.bench_function("rotation_cpu", |b| {
            b.iter(|| {
                let presented = RefreshToken::parse(black_box(&wire)).unwrap();
                let successor = presented.successor(keys.refresh_pepper());
                (
                    presented.hash(),
                    successor.hash(),
                    successor.encode(),
                    access
                        .issue(&keys, "user-1", "sid", &["user".into()], &Authentication::password(now), now)
                        .unwrap(),
                )
            })
        });
        group.finish();
    }
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

/// The password policy's cost: zxcvbn grows with length, which is why only the first 100
/// characters are estimated; the longest accepted password must stay far below one argon2id.
fn password_policy(c: &mut Criterion) {
    let policy = auth_core::password_policy::PasswordPolicy::new(12, 3, vec!["auth.test".into(), "api".into()]);
    let mut group = c.benchmark_group("password_policy");
    for (name, password) in [
        ("typical_28_chars", "correct horse battery staple".to_owned()),
        ("longest_1008_bytes", "quartz lantern orbit meadow ".repeat(36)),
    ] {
        let password: secrecy::SecretString = password.into();
        group.bench_function(name, |b| b.iter(|| policy.check(black_box(&password), "alice@example.com").unwrap()));
    }
    group.finish();
}

/// The CPU a second factor adds to a login: a TOTP code checked against the ±1 step window
/// (three HMAC-SHA-1), and a recovery code hashed and compared with ten stored ones.
fn second_factor(c: &mut Criterion) {
    use auth_core::factors::{FactorAnswer, Factors, TotpSecret, new_recovery_codes};
    let secret = TotpSecret::generate();
    let (codes, hashes) = new_recovery_codes();
    let factors = Factors {
        totp: Some(secret.clone()),
        recovery_codes: hashes,
        ..Factors::default()
    };
    let now = SystemClock.now();
    let mut group = c.benchmark_group("second_factor");
    // The worst case for a right code: the last of the three steps tried.
    let late = FactorAnswer::Totp(secret.code_at(now + 30));
    group.bench_function("totp_check", |b| b.iter(|| black_box(&late).check(&factors, now).unwrap()));
    let recovery = FactorAnswer::RecoveryCode(codes[9].clone());
    group.bench_function("recovery_code_check", |b| b.iter(|| black_box(&recovery).check(&factors, now).unwrap()));
    group.finish();
}

criterion_group!(benches, verification, signing, passwords, password_policy, second_factor);
criterion_main!(benches);
