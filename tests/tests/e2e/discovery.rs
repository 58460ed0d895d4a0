//! `discovery` end to end: the real handler over the emulator's public key store, and the
//! same handler behind a loopback HTTP server, where a third-party verifier (PyJWT's
//! `PyJWKClient`, run by the venv's Python) starts from the discovery document as any client
//! of the issuer would, and must accept our tokens and refuse forgeries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auth_core::api::discovery::{Discovery, JWKS_PATH, OPENID_CONFIGURATION_PATH};
use auth_core::aws::public_key_cache_with;
use auth_core::keys::KeyAlgorithm;
use auth_core::keys::signing::PrivateKey;
use auth_core::testing::public_jwks_json;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use lambda_http::Body;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::forge::{b64_json, hmac_sign, our_header, sign_with, test_key, valid_claims};
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

/// Serves `discovery` over HTTP/1.1 on `listener`: one request per connection, turned into
/// the `lambda_http::Request` a function URL would deliver, answered by the real handler.
/// Counts the requests. The task ends with the test's runtime, whatever the outcome.
fn serve(listener: TcpListener, discovery: Arc<Discovery>) -> Arc<AtomicUsize> {
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(answer(stream, discovery.clone()));
        }
    });
    requests
}

async fn answer(mut stream: TcpStream, discovery: Arc<Discovery>) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
        assert!(head.len() < 16 * 1024, "request head too large");
    }
    let text = String::from_utf8(head).unwrap();
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let (method, target) = (request_line.next().unwrap(), request_line.next().unwrap());
    let mut request = lambda_http::http::Request::builder().method(method).uri(target);
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        request = request.header(name.trim(), value.trim());
    }
    let response = discovery::handle(&discovery, request.body(Body::Empty).unwrap()).await.unwrap();
    let status = response.status();
    let mut out = format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or(""));
    for (name, value) in response.headers() {
        out.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    let body = response.body().as_ref();
    if status != 304 && method != "HEAD" {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("connection: close\r\n\r\n");
    stream.write_all(out.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream.shutdown().await.unwrap();
}

/// The public key of `k1` as PEM, the form a verifier loads it in: the key an HMAC
/// "algorithm confusion" forgery is keyed with.
fn k1_public_pem() -> String {
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, test_key("k1").pkcs8()).unwrap();
    let der = pair.public_key().as_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
}

/// Runs tests/verifiers/pyjwt_verify.py with the venv's Python (`E2E_PYTHON`, set by
/// scripts/e2e.sh); the tokens go on stdin, never on a command line. Killed on timeout.
async fn pyjwt_verify(issuer: &str, audience: &str, tokens: &Value) -> Value {
    let python = std::env::var("E2E_PYTHON").expect("E2E_PYTHON (the venv's python with PyJWT) is set by scripts/e2e.sh");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/verifiers/pyjwt_verify.py");
    let mut child = tokio::process::Command::new(python)
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let input = json!({"issuer": issuer, "audience": audience, "tokens": tokens}).to_string();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).await.unwrap();
    drop(stdin);
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the verifier finished within 60 s")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the verifier failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("verifier output is not JSON ({e}): {stderr}"))
}

#[tokio::test]
async fn a_standard_verifier_from_the_discovery_document_accepts_our_tokens_and_refuses_forgeries() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let app = spawn_app_with(&[("AUTH_ISSUER", &issuer)]).await;
    let requests = serve(listener, Arc::new(discovery_of(&app)));

    let login = app.login(ALICE, PASSWORD).await;
    assert_eq!(login.status, 200);
    let ours = login.access_token();
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(ours.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let claims = valid_claims(&app.config);

    // Ours: the login's token (ES256, the active key), and tokens by the retired keys,
    // which are still published: every key type a standard client must handle.
    let by_retired = |kid: &str, alg: &str| sign_with(&test_key(kid), &json!({"alg": alg, "typ": "at+jwt", "kid": kid}), &claims);
    // Forgeries, each refused for one reason.
    let stranger = PrivateKey::generate(KeyAlgorithm::Es256).unwrap();
    let hs256_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": "k1"});
    let k1_jwk = serde_json::from_str::<Value>(&public_jwks_json()).unwrap()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == "k1")
        .unwrap()
        .to_string();
    let (header, signature) = (ours.split('.').next().unwrap(), ours.rsplit('.').next().unwrap());
    let mut elevated = payload.clone();
    elevated["sub"] = json!("someone-else");
    elevated["roles"] = json!(["admin"]);
    let mut foreign_audience = claims.clone();
    foreign_audience["aud"] = json!("another-api");

    let tokens = json!({
        "ours": ours,
        "ours_eddsa_retired": by_retired("k0", "EdDSA"),
        "ours_rs256_retired": by_retired("k2", "RS256"),
        "another_key_under_our_kid": sign_with(&stranger, &our_header(), &claims),
        "hs256_keyed_with_the_public_pem": hmac_sign(hmac::HMAC_SHA256, k1_public_pem().as_bytes(), &hs256_header, &claims),
        "hs256_keyed_with_the_public_jwk": hmac_sign(hmac::HMAC_SHA256, k1_jwk.as_bytes(), &hs256_header, &claims),
        "our_signature_on_other_claims": format!("{header}.{}.{signature}", b64_json(&elevated)),
        "alg_none": format!("{}.{}.", b64_json(&json!({"alg": "none", "typ": "at+jwt", "kid": "k1"})), b64_json(&claims)),
        "unknown_kid": sign_with(&stranger, &json!({"alg": "ES256", "typ": "at+jwt", "kid": "k9"}), &claims),
        "our_key_another_audience": sign_with(&test_key("k1"), &our_header(), &foreign_audience),
    });

    let verdict = pyjwt_verify(&issuer, &app.config.audience, &tokens).await;
    assert_eq!(verdict["discovery"]["jwks_uri"], format!("{issuer}{JWKS_PATH}"));
    assert_eq!(verdict["discovery"]["kids"].as_array().unwrap().len(), 3, "{verdict}");
    assert!(requests.load(Ordering::SeqCst) >= 2, "the verifier fetched both documents over HTTP");

    let results = &verdict["results"];
    assert_eq!(results["ours"]["accepted"], true, "{}", results["ours"]);
    assert_eq!(results["ours"]["sub"], payload["sub"]);
    for name in ["ours_eddsa_retired", "ours_rs256_retired"] {
        assert_eq!(results[name]["accepted"], true, "{name}: {}", results[name]);
    }
    // Each forgery refused, and for its own reason (not, say, because a fetch failed).
    for (name, reason) in [
        ("another_key_under_our_kid", "InvalidSignatureError"),
        ("hs256_keyed_with_the_public_pem", "InvalidAlgorithmError"),
        ("hs256_keyed_with_the_public_jwk", "InvalidAlgorithmError"),
        ("our_signature_on_other_claims", "InvalidSignatureError"),
        ("alg_none", "InvalidAlgorithmError"),
        ("unknown_kid", "PyJWKClientError"),
        ("our_key_another_audience", "InvalidAudienceError"),
    ] {
        assert_eq!(results[name], json!({"accepted": false, "error": reason}), "{name}");
    }
    assert_eq!(results.as_object().unwrap().len(), tokens.as_object().unwrap().len());
}
