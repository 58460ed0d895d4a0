//! Asymmetric signing keys and their public halves as RFC 7517 JWKs: generating a key with
//! aws-lc-rs, the `EncodingKey` that signs with it, the public JWK built from its public
//! key (never from the private one), and a public JWKS read strictly into keys that
//! verify, each pinned to its own algorithm.
//!
//! Groundwork for asymmetric access tokens: the functions still sign with the HMAC key
//! set of [`super::KeySet`]. RS256 is not here yet: `jsonwebtoken` signs RSA from a
//! PKCS#1 key, which aws-lc-rs does not export.

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};

use super::{KeySetError, VerifyingKey};

/// The asymmetric algorithms a key may be pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256: the default for new keys.
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl KeyAlgorithm {
    /// The `jsonwebtoken` algorithm.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// A private signing key: its id, its algorithm and its PKCS#8 document. `Debug` never
/// shows the key.
#[derive(Clone)]
pub struct PrivateKey {
    /// The JWT `kid`.
    pub kid: String,
    /// The one algorithm it signs with.
    pub alg: KeyAlgorithm,
    pkcs8: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("pkcs8", &"<redacted>")
            .finish()
    }
}

fn rejected(what: &str) -> KeySetError {
    KeySetError(what.to_owned())
}

impl PrivateKey {
    /// A new key from the OS CSPRNG, with a random `kid`.
    pub fn generate(alg: KeyAlgorithm) -> Result<Self, KeySetError> {
        let rng = SystemRandom::new();
        let document = match alg {
            KeyAlgorithm::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng),
            KeyAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| rejected("key generation failed"))?;
        Self::from_pkcs8(crate::random::random_id(), alg, document.as_ref())
    }

    /// A key from its PKCS#8 document, refused unless it is a key of `alg`.
    pub fn from_pkcs8(kid: String, alg: KeyAlgorithm, pkcs8: &[u8]) -> Result<Self, KeySetError> {
        if kid.is_empty() || kid.len() > 64 {
            return Err(rejected("a kid must be 1 to 64 characters"));
        }
        let key = Self {
            kid,
            alg,
            pkcs8: pkcs8.to_vec(),
        };
        key.public_key()?;
        Ok(key)
    }

    /// The PKCS#8 document, for the private key store. Never log it.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key `jsonwebtoken` signs with.
    pub fn encoding_key(&self) -> EncodingKey {
        match self.alg {
            KeyAlgorithm::Es256 => EncodingKey::from_ec_der(&self.pkcs8),
            KeyAlgorithm::EdDsa => EncodingKey::from_ed_der(&self.pkcs8),
        }
    }

    /// The public key's bytes: the uncompressed P-256 point, or the 32 Ed25519 bytes.
    fn public_key(&self) -> Result<Vec<u8>, KeySetError> {
        let bad = |_| KeySetError(format!("key {:?} is not a valid {:?} PKCS#8 key", self.kid, self.alg));
        Ok(match self.alg {
            KeyAlgorithm::Es256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8)
                .map_err(bad)?
                .public_key()
                .as_ref()
                .to_vec(),
            KeyAlgorithm::EdDsa => Ed25519KeyPair::from_pkcs8(&self.pkcs8).map_err(bad)?.public_key().as_ref().to_vec(),
        })
    }

    /// The public half as a JWK, built from the public key: it cannot carry a private member.
    pub fn public_jwk(&self) -> Result<PublicJwk, KeySetError> {
        let public = self.public_key()?;
        let (kty, crv, x, y) = match self.alg {
            // 0x04 ‖ x ‖ y, 32 bytes each.
            KeyAlgorithm::Es256 if public.len() == 65 && public[0] == 4 => ("EC", "P-256", &public[1..33], Some(&public[33..])),
            KeyAlgorithm::EdDsa if public.len() == 32 => ("OKP", "Ed25519", &public[..], None),
            _ => return Err(rejected("unexpected public key encoding")),
        };
        Ok(PublicJwk {
            kty: kty.to_owned(),
            crv: crv.to_owned(),
            x: URL_SAFE_NO_PAD.encode(x),
            y: y.map(|y| URL_SAFE_NO_PAD.encode(y)),
            kid: self.kid.clone(),
            alg: self.alg,
            key_use: "sig".to_owned(),
        })
    }
}

/// A public key as RFC 7517 publishes it, with exactly the members verifiers need.
/// Unknown members (`d` and every other private member among them) are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicJwk {
    /// `EC` or `OKP`.
    pub kty: String,
    /// `P-256` or `Ed25519`.
    pub crv: String,
    /// The x coordinate (EC) or the public key (OKP), base64url.
    pub x: String,
    /// The y coordinate (EC only), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// The key id.
    pub kid: String,
    /// The one algorithm this key verifies.
    pub alg: KeyAlgorithm,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
}

/// A public JWKS document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<PublicJwk>,
}

/// The keys of a public JWKS, by `kid`, each pinned to its own algorithm.
pub struct PublicKeys {
    keys: HashMap<String, VerifyingKey>,
}

impl PublicKeys {
    /// Reads a JWKS strictly: every key must be an EC P-256 key for ES256 or an OKP Ed25519
    /// key for EdDSA, for signatures, with coordinates of the right length, a unique `kid`
    /// and no other member (no private or symmetric key is ever accepted).
    pub fn from_jwks(json: &str) -> Result<Self, KeySetError> {
        // serde_json's messages may quote the offending value: report the position only.
        let jwks: Jwks = serde_json::from_str(json).map_err(|e| KeySetError(format!("not a public JWKS (line {}, column {})", e.line(), e.column())))?;
        let mut keys = HashMap::new();
        for jwk in jwks.keys {
            let key = verifying_key(&jwk)?;
            if keys.insert(jwk.kid.clone(), key).is_some() {
                return Err(KeySetError(format!("kid {:?} is listed twice", jwk.kid)));
            }
        }
        Ok(Self { keys })
    }

    /// The verifying key for a `kid`, if published.
    pub fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }
}

fn verifying_key(jwk: &PublicJwk) -> Result<VerifyingKey, KeySetError> {
    let bad = |what: &str| KeySetError(format!("key {:?}: {what}", jwk.kid));
    if jwk.kid.is_empty() || jwk.kid.len() > 64 {
        return Err(rejected("a kid must be 1 to 64 characters"));
    }
    if jwk.key_use != "sig" {
        return Err(bad("use must be sig"));
    }
    let bytes = |value: &str| URL_SAFE_NO_PAD.decode(value).ok().filter(|b| b.len() == 32);
    // SECURITY: the algorithm is pinned by the key's type and curve, never taken alone, and
    // the key must be a valid public key of that curve (aws-lc parses it), so a bad point is
    // refused here rather than failing every verification later.
    let decoding = match (jwk.alg, jwk.kty.as_str(), jwk.crv.as_str(), &jwk.y) {
        (KeyAlgorithm::Es256, "EC", "P-256", Some(y)) => {
            let (Some(x_bytes), Some(y_bytes)) = (bytes(&jwk.x), bytes(y)) else {
                return Err(bad("x and y must be 32 bytes"));
            };
            let point = [&[4u8][..], &x_bytes, &y_bytes].concat();
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map_err(|_| bad("not a P-256 point"))?;
            DecodingKey::from_ec_components(&jwk.x, y).map_err(|_| bad("not a P-256 point"))?
        }
        (KeyAlgorithm::EdDsa, "OKP", "Ed25519", None) => {
            let x_bytes = bytes(&jwk.x).ok_or_else(|| bad("x must be 32 bytes"))?;
            ParsedPublicKey::new(&ED25519, x_bytes).map_err(|_| bad("not an Ed25519 key"))?;
            DecodingKey::from_ed_components(&jwk.x).map_err(|_| bad("not an Ed25519 key"))?
        }
        _ => return Err(bad("kty, crv and alg do not match ES256 on P-256 or EdDSA on Ed25519")),
    };
    Ok(VerifyingKey {
        kid: jwk.kid.clone(),
        algorithm: jwk.alg.algorithm(),
        decoding,
    })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Header, Validation};
    use serde_json::{Value, json};

    use super::*;

    fn jwks_of(keys: &[&PrivateKey]) -> String {
        let keys = keys.iter().map(|k| k.public_jwk().unwrap()).collect();
        serde_json::to_string(&Jwks { keys }).unwrap()
    }

    #[test]
    fn generated_keys_sign_tokens_that_their_published_jwk_verifies_and_no_other_key_does() {
        for alg in [KeyAlgorithm::Es256, KeyAlgorithm::EdDsa] {
            let key = PrivateKey::generate(alg).unwrap();
            let other = PrivateKey::generate(alg).unwrap();
            let public = PublicKeys::from_jwks(&jwks_of(&[&key, &other])).unwrap();
            let mut header = Header::new(alg.algorithm());
            header.kid = Some(key.kid.clone());
            let token = jsonwebtoken::encode(&header, &json!({"sub": "u", "exp": 4_000_000_000u64}), &key.encoding_key()).unwrap();
            let verify = |kid: &str| {
                let verifying = public.verifying_key(kid).unwrap();
                assert_eq!(verifying.algorithm, alg.algorithm());
                jsonwebtoken::decode::<Value>(&token, &verifying.decoding, &Validation::new(verifying.algorithm)).is_ok()
            };
            assert!(verify(&key.kid), "{alg:?}");
            assert!(!verify(&other.kid), "{alg:?}: another key of the set must not verify it");
        }
    }

    #[test]
    fn published_jwks_hold_only_public_members() {
        for (alg, members) in [
            (KeyAlgorithm::Es256, vec!["alg", "crv", "kid", "kty", "use", "x", "y"]),
            (KeyAlgorithm::EdDsa, vec!["alg", "crv", "kid", "kty", "use", "x"]),
        ] {
            let key = PrivateKey::generate(alg).unwrap();
            let jwk: Value = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
            let mut names: Vec<&str> = jwk.as_object().unwrap().keys().map(String::as_str).collect();
            names.sort_unstable();
            assert_eq!(names, members, "{alg:?}");
            assert_eq!(jwk["use"], "sig");
        }
    }

    #[test]
    fn jwks_with_private_symmetric_mismatched_or_malformed_keys_are_refused() {
        let key = PrivateKey::generate(KeyAlgorithm::Es256).unwrap();
        let good: Value = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
        let ed: Value = serde_json::to_value(PrivateKey::generate(KeyAlgorithm::EdDsa).unwrap().public_jwk().unwrap()).unwrap();
        let with = |base: &Value, name: &str, value: Value| {
            let mut jwk = base.clone();
            jwk[name] = value;
            json!({"keys": [jwk]}).to_string()
        };
        assert!(PublicKeys::from_jwks(&json!({"keys": [good]}).to_string()).is_ok());
        for (case, jwks) in [
            ("private member d", with(&good, "d", json!("AAAA"))),
            (
                "symmetric key",
                json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k", "alg": "HS256"}]}).to_string(),
            ),
            ("ES256 named on an Ed25519 key", with(&ed, "alg", json!("ES256"))),
            ("EdDSA named on a P-256 key", with(&good, "alg", json!("EdDSA"))),
            ("HS256", with(&good, "alg", json!("HS256"))),
            ("another curve", with(&good, "crv", json!("P-384"))),
            ("short x", with(&good, "x", json!("AAAA"))),
            ("not a point", with(&good, "y", json!(URL_SAFE_NO_PAD.encode([7u8; 32])))),
            ("use enc", with(&good, "use", json!("enc"))),
            ("empty kid", with(&good, "kid", json!(""))),
            ("embedded certificate chain", with(&good, "x5c", json!(["MII"]))),
            ("duplicate kid", json!({"keys": [good, good]}).to_string()),
        ] {
            assert!(PublicKeys::from_jwks(&jwks).is_err(), "{case}");
        }
    }

    #[test]
    fn a_key_of_the_wrong_algorithm_or_garbage_is_refused_and_debug_hides_the_key() {
        let ed = PrivateKey::generate(KeyAlgorithm::EdDsa).unwrap();
        assert!(PrivateKey::from_pkcs8("k".into(), KeyAlgorithm::Es256, ed.pkcs8()).is_err());
        assert!(PrivateKey::from_pkcs8("k".into(), KeyAlgorithm::EdDsa, b"not a key").is_err());
        let printed = format!("{ed:?}");
        assert!(printed.contains("<redacted>") && !printed.contains(&format!("{:?}", ed.pkcs8())), "{printed}");
    }
}
