//! A provider's ID token, verified with the same discipline as our own access tokens: the
//! algorithm pinned by the provider's key (never taken from the token alone), no embedded
//! or remote keys, no `crit`, `iss`, `aud`, `azp`, `exp`, `iat` and `nonce` all checked
//! against the injected clock. `jsonwebtoken` gets our own tokens' settings
//! (`AccessTokens::validation`): one algorithm, the issuer and our client id required, the
//! times checked here.

use std::collections::HashMap;

use aws_lc_rs::constant_time;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

use crate::tokens::{AccessTokens, LEEWAY_SECS};

/// The longest ID token read (Microsoft's with groups run to a few kB).
const MAX_ID_TOKEN_LEN: usize = 16 * 1024;

/// How old an ID token may be when it arrives: it was issued for this code exchange, a
/// moment ago.
pub const MAX_ID_TOKEN_AGE: u64 = 10 * 60;

/// Why an ID token was refused: a reason for the audit log, never shown in detail to the
/// browser (which gets `invalid_id_token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenRefusal {
    /// Not a compact JWS, too long, or a header or claims that are not the JSON expected.
    Malformed,
    /// The header names a key the provider does not publish.
    UnknownKey,
    /// The header's `alg` is not the one pinned to the key (incl. `none` and HMAC).
    AlgorithmMismatch,
    /// `jwk`, `jku`, `x5u`, `x5c` or `crit` in the header.
    ForbiddenHeader,
    /// The signature does not verify with the provider's key.
    BadSignature,
    /// `iss` is not the provider's issuer.
    WrongIssuer,
    /// `aud` does not hold our client id, or `azp` names another party.
    WrongAudience,
    /// `exp` passed.
    Expired,
    /// `iat` in the future or older than [`MAX_ID_TOKEN_AGE`].
    BadIssueTime,
    /// `nonce` missing or not the one this browser's sign-in sent.
    WrongNonce,
}

impl IdTokenRefusal {
    /// The reason as the audit log writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "id_token_malformed",
            Self::UnknownKey => "id_token_unknown_key",
            Self::AlgorithmMismatch => "id_token_algorithm_mismatch",
            Self::ForbiddenHeader => "id_token_forbidden_header",
            Self::BadSignature => "id_token_bad_signature",
            Self::WrongIssuer => "id_token_wrong_issuer",
            Self::WrongAudience => "id_token_wrong_audience",
            Self::Expired => "id_token_expired",
            Self::BadIssueTime => "id_token_bad_iat",
            Self::WrongNonce => "id_token_wrong_nonce",
        }
    }
}

/// One verifying key of a provider, pinned to one algorithm.
struct ProviderKey {
    algorithm: Algorithm,
    decoding: DecodingKey,
}

/// A provider's published signing keys (`jwks_uri`), by `kid`. Keys this service cannot
/// use (encryption keys, unknown types or curves, HMAC) are left out, not an error: a
/// provider's JWKS may list them beside the ones it signs ID tokens with.
pub struct ProviderKeys {
    by_kid: HashMap<Option<String>, ProviderKey>,
}

impl std::fmt::Debug for ProviderKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderKeys").field("kids", &self.by_kid.keys().collect::<Vec<_>>()).finish()
    }
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    key_use: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

impl ProviderKeys {
    /// Reads a provider's JWKS. A key's algorithm is its `alg` when given, else the one its
    /// type implies (RSA: RS256, P-256: ES256, Ed25519: EdDSA); `allowed`, the provider's
    /// `id_token_signing_alg_values_supported`, narrows them when the metadata lists it.
    pub fn from_json(json: &str, allowed: Option<&[String]>) -> Result<Self, String> {
        let jwks: Jwks = serde_json::from_str(json).map_err(|e| format!("the provider's JWKS is not a JWKS: {e}"))?;
        let mut by_kid = HashMap::new();
        for jwk in jwks.keys {
            if jwk.key_use.as_deref().is_some_and(|u| u != "sig") {
                continue;
            }
            let Some((algorithm, decoding)) = decoding_key(&jwk) else { continue };
            if allowed.is_some_and(|algs| !algs.iter().any(|a| a.parse::<Algorithm>().ok() == Some(algorithm))) {
                continue;
            }
            // SECURITY: two keys under one kid would make the choice the token's: keep neither.
            if by_kid.insert(jwk.kid.clone(), ProviderKey { algorithm, decoding }).is_some() {
                return Err(format!("the provider's JWKS lists kid {:?} twice", jwk.kid));
            }
        }
        Ok(Self { by_kid })
    }

    /// Whether a token's `kid` names a key here (a miss is the cue to fetch the JWKS again:
    /// the provider rotated).
    pub fn knows(&self, kid: Option<&str>) -> bool {
        self.find(kid).is_some()
    }

    fn find(&self, kid: Option<&str>) -> Option<&ProviderKey> {
        match kid {
            Some(kid) => self.by_kid.get(&Some(kid.to_owned())),
            // No kid: only a JWKS of exactly one usable key says which key signed.
            None if self.by_kid.len() == 1 => self.by_kid.values().next(),
            None => None,
        }
    }
}

fn decoding_key(jwk: &Jwk) -> Option<(Algorithm, DecodingKey)> {
    let implied = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("RSA", None) => Algorithm::RS256,
        ("EC", Some("P-256")) => Algorithm::ES256,
        ("EC", Some("P-384")) => Algorithm::ES384,
        ("OKP", Some("Ed25519")) => Algorithm::EdDSA,
        _ => return None,
    };
    let algorithm = match jwk.alg.as_deref() {
        None => implied,
        Some(alg) => alg.parse::<Algorithm>().ok()?,
    };
    let decoding = match (algorithm, &jwk.n, &jwk.e, &jwk.x, &jwk.y) {
        (Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512, Some(n), Some(e), None, None)
            if jwk.kty == "RSA" && URL_SAFE_NO_PAD.decode(n).is_ok_and(|n| n.len() >= 256) =>
        {
            DecodingKey::from_rsa_components(n, e).ok()?
        }
        (Algorithm::ES256, None, None, Some(x), Some(y)) if jwk.crv.as_deref() == Some("P-256") => DecodingKey::from_ec_components(x, y).ok()?,
        (Algorithm::ES384, None, None, Some(x), Some(y)) if jwk.crv.as_deref() == Some("P-384") => DecodingKey::from_ec_components(x, y).ok()?,
        (Algorithm::EdDSA, None, None, Some(x), None) if jwk.crv.as_deref() == Some("Ed25519") => DecodingKey::from_ed_components(x).ok()?,
        _ => return None,
    };
    Some((algorithm, decoding))
}

/// What the ID token must say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The provider's issuer, exactly as configured (and as its metadata repeats it).
    pub issuer: &'a str,
    /// Our client id at the provider.
    pub client_id: &'a str,
    /// The nonce this browser's sign-in sent.
    pub nonce: &'a str,
    /// Now, from the service's clock.
    pub now: u64,
}

/// What a verified ID token tells about the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaims {
    /// The user's stable id at the provider: with the issuer, the identity's key.
    pub sub: String,
    /// The address the provider gives, if any (lowercased, trimmed).
    pub email: Option<String>,
    /// Whether the provider asserts it verified that address (`email_verified: true`, the
    /// JSON boolean; anything else is not verified).
    pub email_verified: bool,
    /// The provider's authentication methods (RFC 8176), if it says.
    pub amr: Vec<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    aud: Value,
    #[serde(default)]
    azp: Option<String>,
    exp: u64,
    iat: u64,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<Value>,
    #[serde(default)]
    amr: Option<Vec<String>>,
}

/// Members of a JOSE header that carry or point at a key, or ask for extensions: an ID token
/// is verified only with the provider's published keys, and we implement no extension.
const FORBIDDEN_HEADER_MEMBERS: [&str; 5] = ["jwk", "jku", "x5u", "x5c", "crit"];

/// Verifies an ID token from the token endpoint.
pub fn verify(token: &str, keys: &ProviderKeys, expected: &Expected<'_>) -> Result<IdClaims, IdTokenRefusal> {
    if token.len() > MAX_ID_TOKEN_LEN {
        return Err(IdTokenRefusal::Malformed);
    }
    let header = header_of(token)?;
    if FORBIDDEN_HEADER_MEMBERS.iter().any(|m| header.contains_key(*m)) {
        return Err(IdTokenRefusal::ForbiddenHeader);
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(IdTokenRefusal::Malformed),
    };
    let alg = header.get("alg").and_then(Value::as_str).ok_or(IdTokenRefusal::Malformed)?;
    let key = keys.find(kid).ok_or(IdTokenRefusal::UnknownKey)?;
    // SECURITY: the key decides the algorithm; a token naming another (`none`, HS256 with the
    // public key as secret, RS256 for an EC key) is refused before any verification.
    if alg.parse::<Algorithm>().ok() != Some(key.algorithm) {
        return Err(IdTokenRefusal::AlgorithmMismatch);
    }
    let claims = jsonwebtoken::decode::<Claims>(
        token,
        &key.decoding,
        &AccessTokens::validation(key.algorithm, expected.issuer, expected.client_id),
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::InvalidSignature => IdTokenRefusal::BadSignature,
        jsonwebtoken::errors::ErrorKind::InvalidIssuer => IdTokenRefusal::WrongIssuer,
        jsonwebtoken::errors::ErrorKind::InvalidAudience => IdTokenRefusal::WrongAudience,
        _ => IdTokenRefusal::Malformed,
    })?
    .claims;
    // More than one audience: the party it was issued to (`azp`) must be us.
    let several_audiences = claims.aud.as_array().is_some_and(|a| a.len() > 1);
    if claims.azp.as_deref().map_or(several_audiences, |azp| azp != expected.client_id) {
        return Err(IdTokenRefusal::WrongAudience);
    }
    // OpenID Connect: a case-sensitive string of at most 255 ASCII characters.
    if claims.sub.is_empty() || claims.sub.len() > 255 || !claims.sub.is_ascii() {
        return Err(IdTokenRefusal::Malformed);
    }
    if expected.now > claims.exp.saturating_add(LEEWAY_SECS) {
        return Err(IdTokenRefusal::Expired);
    }
    if claims.iat > expected.now.saturating_add(LEEWAY_SECS) || claims.iat.saturating_add(MAX_ID_TOKEN_AGE) < expected.now {
        return Err(IdTokenRefusal::BadIssueTime);
    }
    // SECURITY: constant time, so timing does not tell how much of a guessed nonce matched.
    let nonce_matches = claims
        .nonce
        .as_deref()
        .is_some_and(|nonce| constant_time::verify_slices_are_equal(nonce.as_bytes(), expected.nonce.as_bytes()).is_ok());
    if !nonce_matches {
        return Err(IdTokenRefusal::WrongNonce);
    }
    Ok(IdClaims {
        sub: claims.sub,
        email: claims.email.map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty()),
        email_verified: claims.email_verified == Some(Value::Bool(true)),
        amr: claims.amr.unwrap_or_default(),
    })
}

/// The `kid` a token's header names, to pick (or fetch again) the provider's keys.
pub fn kid_of(token: &str) -> Option<String> {
    header_of(token).ok()?.get("kid")?.as_str().map(str::to_owned)
}

fn header_of(token: &str) -> Result<serde_json::Map<String, Value>, IdTokenRefusal> {
    let encoded = token.split('.').next().ok_or(IdTokenRefusal::Malformed)?;
    let json = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| IdTokenRefusal::Malformed)?;
    match serde_json::from_slice(&json) {
        Ok(Value::Object(header)) => Ok(header),
        _ => Err(IdTokenRefusal::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::keys::KeyAlgorithm;
    use crate::keys::signing::PrivateKey;

    const ISSUER: &str = "https://idp.test";
    const NOW: u64 = 1_800_000_000;

    struct Idp {
        key: PrivateKey,
        keys: ProviderKeys,
    }

    impl Idp {
        fn new(alg: KeyAlgorithm) -> Self {
            let key = PrivateKey::generate(alg).unwrap();
            let jwks = json!({ "keys": [key.public_jwk().unwrap()] }).to_string();
            Self {
                keys: ProviderKeys::from_json(&jwks, None).unwrap(),
                key,
            }
        }

        fn sign(&self, claims: &Value) -> String {
            self.key.signing_key().unwrap().sign_jwt("JWT", claims).unwrap()
        }
    }

    fn claims() -> Value {
        json!({
            "iss": ISSUER, "aud": "app", "sub": "248289761001", "iat": NOW - 5, "exp": NOW + 600,
            "nonce": "n-0S6_WzA2Mj", "email": " Alice@Example.COM", "email_verified": true, "amr": ["pwd", "mfa"],
        })
    }

    fn with(changes: Value) -> Value {
        let mut claims = claims();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    }

    fn expected() -> Expected<'static> {
        Expected {
            issuer: ISSUER,
            client_id: "app",
            nonce: "n-0S6_WzA2Mj",
            now: NOW,
        }
    }

    /// A token with any header (the signature is not reached by the checks these feed).
    fn with_header(header: Value, claims: &Value) -> String {
        let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.{}", part(&header), part(claims), URL_SAFE_NO_PAD.encode([7u8; 64]))
    }

    #[test]
    fn an_id_token_of_each_algorithm_verifies_and_gives_its_claims() {
        for alg in KeyAlgorithm::ALL {
            let idp = Idp::new(alg);
            let read = verify(&idp.sign(&claims()), &idp.keys, &expected()).unwrap();
            assert_eq!(
                read,
                IdClaims {
                    sub: "248289761001".into(),
                    email: Some("alice@example.com".into()),
                    email_verified: true,
                    amr: vec!["pwd".into(), "mfa".into()],
                }
            );
        }
    }

    #[test]
    fn only_the_json_true_verifies_an_address() {
        let idp = Idp::new(KeyAlgorithm::Es256);
        for value in [json!("true"), json!(1), json!(false), Value::Null] {
            let read = verify(&idp.sign(&with(json!({ "email_verified": value }))), &idp.keys, &expected()).unwrap();
            assert!(!read.email_verified, "{value}");
        }
    }

    #[test]
    fn each_claim_is_checked() {
        let idp = Idp::new(KeyAlgorithm::Es256);
        let cases = [
            (json!({ "iss": "https://other.test" }), IdTokenRefusal::WrongIssuer),
            (json!({ "iss": null }), IdTokenRefusal::Malformed),
            (json!({ "aud": "another-client" }), IdTokenRefusal::WrongAudience),
            (json!({ "aud": ["app", "another-client"] }), IdTokenRefusal::WrongAudience),
            (json!({ "azp": "another-client" }), IdTokenRefusal::WrongAudience),
            (json!({ "exp": NOW - LEEWAY_SECS - 1 }), IdTokenRefusal::Expired),
            (json!({ "iat": NOW + LEEWAY_SECS + 1 }), IdTokenRefusal::BadIssueTime),
            (json!({ "iat": NOW - MAX_ID_TOKEN_AGE - 1 }), IdTokenRefusal::BadIssueTime),
            (json!({ "nonce": null }), IdTokenRefusal::WrongNonce),
            (json!({ "nonce": "n-0S6_WzA2Mk" }), IdTokenRefusal::WrongNonce),
            (json!({ "sub": "" }), IdTokenRefusal::Malformed),
            (json!({ "sub": null }), IdTokenRefusal::Malformed),
        ];
        for (changes, refusal) in cases {
            assert_eq!(verify(&idp.sign(&with(changes.clone())), &idp.keys, &expected()), Err(refusal), "{changes}");
        }
        // Several audiences with `azp` naming us, and the leeway's edges, pass.
        for changes in [
            json!({ "aud": ["app", "another-client"], "azp": "app" }),
            json!({ "exp": NOW - LEEWAY_SECS, "iat": NOW + LEEWAY_SECS }),
            json!({ "iat": NOW - MAX_ID_TOKEN_AGE }),
        ] {
            assert!(verify(&idp.sign(&with(changes.clone())), &idp.keys, &expected()).is_ok(), "{changes}");
        }
    }

    #[test]
    fn a_token_signed_by_another_key_under_the_same_kid_is_refused() {
        let idp = Idp::new(KeyAlgorithm::Es256);
        let other = PrivateKey::generate(KeyAlgorithm::Es256).unwrap();
        let impostor = PrivateKey::from_pkcs8(idp.key.kid.as_str().to_owned(), KeyAlgorithm::Es256, other.pkcs8()).unwrap();
        let token = impostor.signing_key().unwrap().sign_jwt("JWT", &claims()).unwrap();
        assert_eq!(verify(&token, &idp.keys, &expected()), Err(IdTokenRefusal::BadSignature));
    }

    #[test]
    fn the_algorithm_is_the_keys_never_the_headers() {
        let idp = Idp::new(KeyAlgorithm::Es256);
        let kid = idp.key.kid.as_str();
        for alg in ["none", "HS256", "RS256", "ES384", "EdDSA", "es256", ""] {
            let token = with_header(json!({ "alg": alg, "kid": kid }), &claims());
            assert_eq!(verify(&token, &idp.keys, &expected()), Err(IdTokenRefusal::AlgorithmMismatch), "{alg}");
        }
        // HS256 "signed" with the public key as the secret: refused before any verification.
        let jwk = serde_json::to_vec(&idp.key.public_jwk().unwrap()).unwrap();
        let mut header = jsonwebtoken::Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        let forged = jsonwebtoken::encode(&header, &claims(), &jsonwebtoken::EncodingKey::from_secret(&jwk)).unwrap();
        assert_eq!(verify(&forged, &idp.keys, &expected()), Err(IdTokenRefusal::AlgorithmMismatch));
    }

    #[test]
    fn embedded_keys_and_extensions_are_refused() {
        let idp = Idp::new(KeyAlgorithm::Es256);
        let kid = idp.key.kid.as_str();
        let jwk = serde_json::to_value(idp.key.public_jwk().unwrap()).unwrap();
        for (member, value) in [
            ("jwk", jwk),
            ("jku", json!("https://evil.test/jwks")),
            ("x5u", json!("https://evil.test/cert")),
            ("x5c", json!(["MIIB"])),
            ("crit", json!(["exp"])),
        ] {
            let token = with_header(json!({ "alg": "ES256", "kid": kid, member: value }), &claims());
            assert_eq!(verify(&token, &idp.keys, &expected()), Err(IdTokenRefusal::ForbiddenHeader), "{member}");
        }
    }

    #[test]
    fn the_key_is_found_by_kid_or_as_the_only_one() {
        let idp = Idp::new(KeyAlgorithm::Es256);
        let unknown = with_header(json!({ "alg": "ES256", "kid": "rotated-away" }), &claims());
        assert_eq!(verify(&unknown, &idp.keys, &expected()), Err(IdTokenRefusal::UnknownKey));
        assert!(!idp.keys.knows(Some("rotated-away")) && idp.keys.knows(Some(idp.key.kid.as_str())));
        // No kid: the only key of the set is tried (and here the signature is not its).
        let no_kid = with_header(json!({ "alg": "ES256" }), &claims());
        assert_eq!(verify(&no_kid, &idp.keys, &expected()), Err(IdTokenRefusal::BadSignature));
        let two = json!({ "keys": [idp.key.public_jwk().unwrap(), PrivateKey::generate(KeyAlgorithm::Es256).unwrap().public_jwk().unwrap()] });
        let keys = ProviderKeys::from_json(&two.to_string(), None).unwrap();
        assert_eq!(verify(&no_kid, &keys, &expected()), Err(IdTokenRefusal::UnknownKey));
        for garbage in ["", "a.b", "...", "e30.e30.e30", &"a".repeat(MAX_ID_TOKEN_LEN + 1)] {
            assert!(verify(garbage, &idp.keys, &expected()).is_err(), "{garbage}");
        }
    }

    #[test]
    fn the_providers_jwks_keeps_only_signing_keys_it_can_pin() {
        let es = PrivateKey::generate(KeyAlgorithm::Es256).unwrap().public_jwk().unwrap();
        let mut es = serde_json::to_value(es).unwrap();
        let mut encryption = es.clone();
        encryption["kid"] = json!("enc");
        encryption["use"] = json!("enc");
        let hmac = json!({ "kty": "oct", "kid": "h", "k": "c2VjcmV0", "alg": "HS256" });
        let mismatched = json!({ "kty": "EC", "crv": "P-256", "kid": "m", "alg": "RS256", "x": es["x"], "y": es["y"] });
        let jwks = json!({ "keys": [es, encryption, hmac, mismatched] }).to_string();
        let keys = ProviderKeys::from_json(&jwks, None).unwrap();
        let kid = es["kid"].as_str().unwrap().to_owned();
        assert!(keys.knows(Some(&kid)) && !keys.knows(Some("enc")) && !keys.knows(Some("h")) && !keys.knows(Some("m")));
        // Without `alg` the type decides; the provider's metadata can narrow the algorithms.
        es.as_object_mut().unwrap().remove("alg");
        let jwks = json!({ "keys": [es] }).to_string();
        assert!(ProviderKeys::from_json(&jwks, None).unwrap().knows(Some(&kid)));
        assert!(!ProviderKeys::from_json(&jwks, Some(&["RS256".to_owned()])).unwrap().knows(Some(&kid)));
        let twice = json!({ "keys": [es, es] }).to_string();
        assert!(ProviderKeys::from_json(&twice, None).is_err());
        assert!(ProviderKeys::from_json("{\"keys\":{}}", None).is_err());
    }
}
