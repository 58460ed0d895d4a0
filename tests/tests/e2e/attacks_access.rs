//! Every known access-token attack at the authorizer: each is denied in all three gateway
//! shapes, never with an error an HTTP API would turn into a 500, never with a panic.

use std::time::{Duration, Instant};

use auth_core::keys::KeyAlgorithm;
use auth_core::keys::signing::PrivateKey;
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use serde_json::{Value, json};

use crate::forge::*;
use crate::harness::*;

/// Claims with `key` set to `value` (or removed, for `Value::Null` with `remove`).
fn claims_with(app: &App, key: &str, value: Value) -> Value {
    let mut claims = valid_claims(&app.config);
    claims[key] = value;
    claims
}

fn claims_without(app: &App, key: &str) -> Value {
    let mut claims = valid_claims(&app.config);
    claims.as_object_mut().unwrap().remove(key);
    claims
}

fn header_with(key: &str, value: Value) -> Value {
    let mut header = our_header();
    header[key] = value;
    header
}

/// The public key of test key `kid` in every encoding an HMAC-confused verifier might use
/// as the secret: PEM, DER (SubjectPublicKeyInfo), the JWK's JSON, and its `x` (or `n`),
/// both decoded and as the base64url text.
fn public_key_encodings(kid: &str) -> Vec<(&'static str, Vec<u8>)> {
    use base64::Engine;
    let key = test_key(kid);
    let der = match key.alg {
        KeyAlgorithm::Es256 => spki(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key.pkcs8()).unwrap()),
        KeyAlgorithm::EdDsa => spki(Ed25519KeyPair::from_pkcs8(key.pkcs8()).unwrap()),
        KeyAlgorithm::Rs256 => spki(aws_lc_rs::rsa::KeyPair::from_pkcs8(key.pkcs8()).unwrap()),
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"));
    let jwk = key.public_jwk().unwrap();
    let component = jwk.x.clone().or(jwk.n.clone()).unwrap();
    vec![
        ("PEM", pem.clone().into_bytes()),
        ("PEM without its final newline", pem.trim_end().as_bytes().to_vec()),
        ("DER", der),
        ("JWK JSON", serde_json::to_vec(&jwk).unwrap()),
        ("x or n decoded", base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&component).unwrap()),
        ("x or n as text", component.into_bytes()),
    ]
}

/// The DER SubjectPublicKeyInfo of a key pair's public key.
fn spki<K: KeyPair>(pair: K) -> Vec<u8>
where
    K::PublicKey: AsDer<PublicKeyX509Der<'static>>,
{
    pair.public_key().as_der().unwrap().as_ref().to_vec()
}

fn signed(claims: &Value) -> String {
    sign(&our_header(), claims)
}

fn signed_header(header: &Value) -> String {
    sign(header, &json!({}))
}

#[tokio::test]
async fn forged_and_malformed_access_tokens_are_denied_everywhere() {
    let app = spawn_app().await;
    let login = app.login(ALICE, PASSWORD).await;
    let valid = login.access_token();
    let (h, p, _) = {
        let mut parts = valid.split('.');
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    };
    let claims = valid_claims(&app.config);
    let now = now();
    let payload = b64_json(&claims);
    let mut cases: Vec<(String, String)> = Vec::new();
    let mut add = |name: &str, token: String| cases.push((name.to_owned(), token));

    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64_json(&json!({"alg": alg, "typ": "at+jwt", "kid": "k1"}));
        add(&format!("alg {alg} without signature"), format!("{header}.{payload}."));
        add(&format!("alg {alg} with a signature"), sign_parts(&header, &payload));
        add(&format!("alg {alg} two parts"), format!("{header}.{payload}"));
    }
    add("signature stripped", format!("{h}.{p}."));
    add("two parts", format!("{h}.{p}"));
    add("four parts", format!("{valid}.x"));
    add("five parts", format!("{valid}.x.y"));
    add(
        "payload tampered, original signature",
        format!(
            "{h}.{}.{}",
            b64_json(&claims_with(&app, "sub", json!("admin"))),
            valid.rsplit('.').next().unwrap()
        ),
    );
    // The classic confusion: HMAC-sign with the public key, in every encoding a verifier
    // might feed to HMAC, for every key type, under every HMAC name.
    for kid in ["k1", "k0", "k2"] {
        for (encoding, key) in public_key_encodings(kid) {
            for (alg, name) in [(hmac::HMAC_SHA256, "HS256"), (hmac::HMAC_SHA384, "HS384"), (hmac::HMAC_SHA512, "HS512")] {
                let header = json!({"alg": name, "typ": "at+jwt", "kid": kid});
                add(
                    &format!("{name} keyed with {kid}'s public key as {encoding}"),
                    hmac_sign(alg, &key, &header, &claims),
                );
            }
        }
    }
    // A real key of the set signing under another key's kid, or naming another algorithm.
    for (signer, kid, alg) in [
        ("k1", "k1", "RS256"),
        ("k1", "k1", "EdDSA"),
        ("k1", "k1", "ES384"),
        ("k1", "k0", "EdDSA"),
        ("k1", "k2", "RS256"),
        ("k1", "k0", "ES256"),
        ("k0", "k1", "ES256"),
        ("k0", "k1", "EdDSA"),
        ("k0", "k2", "RS256"),
        ("k2", "k1", "ES256"),
        ("k2", "k1", "RS256"),
        ("k2", "k2", "PS256"),
        ("k2", "k2", "RS512"),
        ("k2", "k0", "EdDSA"),
    ] {
        let header = json!({"alg": alg, "typ": "at+jwt", "kid": kid});
        add(
            &format!("signed by {signer}, kid {kid}, alg {alg}"),
            sign_with(&test_key(signer), &header, &claims),
        );
    }
    for alg in KeyAlgorithm::ALL {
        let outsider = PrivateKey::generate(alg).unwrap();
        for kid in ["k1", "k0", "k2"] {
            let header = json!({"alg": alg.as_str(), "typ": "at+jwt", "kid": kid});
            add(&format!("another {} key under kid {kid}", alg.as_str()), sign_with(&outsider, &header, &claims));
        }
    }
    for kid in ["k9", "", "../../x", "' OR 1=1 --", &"k".repeat(4000)] {
        add(&format!("kid {:.20}", kid), sign(&header_with("kid", json!(kid)), &claims));
    }
    add("kid a number", sign(&header_with("kid", json!(1)), &claims));
    add(
        "embedded jwk",
        sign(
            &header_with("jwk", serde_json::to_value(test_key("k1").public_jwk().unwrap()).unwrap()),
            &claims,
        ),
    );
    add("jku", sign(&header_with("jku", json!("https://evil.test/jwks")), &claims));
    add("x5u", sign(&header_with("x5u", json!("https://evil.test/cert")), &claims));
    add("x5c", sign(&header_with("x5c", json!(["MIIB"])), &claims));
    add("crit", sign(&header_with("crit", json!(["exp"])), &claims));
    add("typ missing", sign(&json!({"alg": "ES256", "kid": "k1"}), &claims));
    add("typ JWT", sign(&header_with("typ", json!("JWT")), &claims));
    add("typ at+JWT", sign(&header_with("typ", json!("at+JWT")), &claims));
    add(
        "header duplicate kid",
        sign_parts(&b64(r#"{"alg":"ES256","typ":"at+jwt","kid":"k9","kid":"k1"}"#), &payload),
    );
    add("expired 1 s beyond leeway", signed(&claims_with(&app, "exp", json!(now - 31))));
    add("exp missing", signed(&claims_without(&app, "exp")));
    add("exp a string", signed(&claims_with(&app, "exp", json!((now + 600).to_string()))));
    add("exp a float", signed(&claims_with(&app, "exp", json!(now as f64 + 600.5))));
    add("exp null", signed(&claims_with(&app, "exp", Value::Null)));
    add("exp huge", signed(&claims_with(&app, "exp", json!(u64::MAX))));
    add("exp 1e30", signed(&claims_with(&app, "exp", json!(1e30))));
    add("exp negative", signed(&claims_with(&app, "exp", json!(-1))));
    add("iat in the future", signed(&claims_with(&app, "iat", json!(now + 3600))));
    add("iat missing", signed(&claims_without(&app, "iat")));
    add("nbf in the future", signed(&claims_with(&app, "nbf", json!(now + 3600))));
    add("nbf null", signed(&claims_with(&app, "nbf", Value::Null)));
    add("iss wrong", signed(&claims_with(&app, "iss", json!("https://evil.test"))));
    add("iss missing", signed(&claims_without(&app, "iss")));
    add("iss array with the right value", signed(&claims_with(&app, "iss", json!([app.config.issuer]))));
    add("aud wrong", signed(&claims_with(&app, "aud", json!("other-api"))));
    add("aud missing", signed(&claims_without(&app, "aud")));
    add(
        "aud array with the right value",
        signed(&claims_with(&app, "aud", json!([app.config.audience]))),
    );
    add("aud array without the right value", signed(&claims_with(&app, "aud", json!(["other-api"]))));
    add("sub missing", signed(&claims_without(&app, "sub")));
    add("sub a number", signed(&claims_with(&app, "sub", json!(7))));
    add("roles a string", signed(&claims_with(&app, "roles", json!("admin"))));
    add(
        "payload duplicate sub",
        sign_parts(
            &b64(our_header().to_string()),
            &b64(format!(r#"{},"sub":"admin"}}"#, claims.to_string().trim_end_matches('}'))),
        ),
    );
    add("refresh token as bearer", login.refresh_token());
    add("random string", "c2VjcmV0".into());
    add("invalid base64url", format!("{h}!.{p}.sig"));
    add("padded base64", format!("{h}==.{p}.{}", valid.rsplit('.').next().unwrap()));
    add("non-UTF-8 header", sign_parts(&b64([0xff, 0xfe, 0xfd]), &payload));
    add("header a JSON string", signed_header(&json!("ES256")));
    add("header a JSON array", sign_parts(&b64_json(&json!(["ES256", "at+jwt", "k1"])), &payload));
    add("payload a JSON array", sign_parts(&b64_json(&our_header()), &b64_json(&json!([claims]))));
    add("payload a JSON string", sign_parts(&b64_json(&our_header()), &b64_json(&json!("claims"))));
    add("16 KiB", format!("{valid}{}", "A".repeat(16 * 1024)));

    let sanity = allowed_in_shapes(&app, &format!("Bearer {}", signed(&claims))).await;
    assert_eq!(
        sanity, 3,
        "a correctly forged token with the real key is allowed: the cases differ from it only in what they test"
    );
    for (name, token) in &cases {
        assert_eq!(allowed_in_shapes(&app, &format!("Bearer {token}")).await, 0, "{name} was allowed");
    }
}

#[tokio::test]
async fn authorization_header_shapes() {
    let app = spawn_app().await;
    let token = app.login(ALICE, PASSWORD).await.access_token();
    // Case-insensitive scheme and surrounding spaces are RFC 7235 syntax: allowed.
    for ok in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("Bearer   {token}  "),
    ] {
        assert_eq!(allowed_in_shapes(&app, &ok).await, 3, "{ok:.20}");
    }
    for bad in [
        token.clone(),
        format!("Basic {token}"),
        format!("Bearer {token} {token}"),
        format!("Bearer {token},Bearer {token}"),
        "Bearer".into(),
        String::new(),
    ] {
        assert_eq!(allowed_in_shapes(&app, &bad).await, 0, "{bad:.30}");
    }
}

#[tokio::test]
async fn validly_signed_tokens_over_8_kib_are_refused_on_their_length() {
    let app = spawn_app().await;
    // Signed with the real key and valid in every claim: only the length check refuses it.
    let fits = signed(&claims_with(&app, "sub", json!("x".repeat(4 * 1024))));
    assert_eq!(
        allowed_in_shapes(&app, &format!("Bearer {fits}")).await,
        3,
        "a long token within the limit passes"
    );
    let oversized = signed(&claims_with(&app, "sub", json!("x".repeat(8 * 1024))));
    assert!(oversized.len() > auth_core::tokens::MAX_ACCESS_TOKEN_LEN);
    assert_eq!(allowed_in_shapes(&app, &format!("Bearer {oversized}")).await, 0);

    // A 1 MiB header value is answered quickly too (a debug build reads the event itself in
    // tens of milliseconds).
    let huge = format!("Bearer {oversized}{}", "A".repeat(1024 * 1024));
    let started = Instant::now();
    let answer = app.authorize(http_api_authorizer_event(Some(&huge), "GET /pets")).await;
    assert_eq!(answer.ok(), Some(json!({"isAuthorized": false})));
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
}
