//! Private keys: generating one with aws-lc-rs, the [`SigningKey`] that signs access tokens
//! (parsed once), its public JWK (built from the public key, so it cannot carry a private
//! member), and [`SigningKeys`], what `login` and `refresh` load from the private store: the
//! active key and the refresh pepper. Nothing here is ever given to a verifier.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{self, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;

use super::verifying::PublicJwk;
use super::{KeyAlgorithm, KeySetError, MIN_RSA_BITS, MIN_SECRET_BYTES, check_kid};

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

/// The public half of a key, as the JWK needs it.
enum PublicHalf {
    /// The uncompressed P-256 point, `0x04 ‖ x ‖ y`.
    Ec(Vec<u8>),
    /// The 32 Ed25519 bytes.
    Ed(Vec<u8>),
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl PrivateKey {
    /// A new key from the OS CSPRNG (RSA: 2048 bits), with a random `kid`.
    pub fn generate(alg: KeyAlgorithm) -> Result<Self, KeySetError> {
        let failed = |_| KeySetError("key generation failed".into());
        let rng = SystemRandom::new();
        let document = match alg {
            KeyAlgorithm::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            KeyAlgorithm::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng).map_err(failed)?.as_ref().to_vec(),
            KeyAlgorithm::Rs256 => rsa::KeyPair::generate(KeySize::Rsa2048)
                .and_then(|key| key.as_der())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
        };
        Self::from_pkcs8(new_kid(), alg, &document)
    }

    /// A key from its PKCS#8 document, refused unless it is a valid key of `alg` (RSA: of
    /// at least 2048 bits).
    pub fn from_pkcs8(kid: String, alg: KeyAlgorithm, pkcs8: &[u8]) -> Result<Self, KeySetError> {
        check_kid(&kid)?;
        let key = Self {
            kid,
            alg,
            pkcs8: pkcs8.to_vec(),
        };
        key.public_half()?;
        key.signing_key()?;
        Ok(key)
    }

    /// The PKCS#8 document, for the private key store. Never log it.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key parsed for signing, once: `jsonwebtoken`'s `EncodingKey` parses its key
    /// again on every signature, which for RSA was 633 µs of each RS256 token.
    pub fn signing_key(&self) -> Result<SigningKey, KeySetError> {
        let bad = |_| self.invalid();
        let pair = match self.alg {
            KeyAlgorithm::Es256 => ParsedKey::Es256(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8).map_err(bad)?),
            KeyAlgorithm::EdDsa => ParsedKey::EdDsa(Ed25519KeyPair::from_pkcs8(&self.pkcs8).map_err(bad)?),
            KeyAlgorithm::Rs256 => ParsedKey::Rs256(rsa::KeyPair::from_pkcs8(&self.pkcs8).map_err(bad)?),
        };
        Ok(SigningKey { kid: self.kid.clone(), pair })
    }

    fn invalid(&self) -> KeySetError {
        KeySetError(format!("key {:?} is not a valid {} PKCS#8 key", self.kid, self.alg.as_str()))
    }

    fn public_half(&self) -> Result<PublicHalf, KeySetError> {
        let bad = |_| self.invalid();
        Ok(match self.alg {
            KeyAlgorithm::Es256 => PublicHalf::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &self.pkcs8)
                    .map_err(bad)?
                    .public_key()
                    .as_ref()
                    .to_vec(),
            ),
            KeyAlgorithm::EdDsa => PublicHalf::Ed(Ed25519KeyPair::from_pkcs8(&self.pkcs8).map_err(bad)?.public_key().as_ref().to_vec()),
            KeyAlgorithm::Rs256 => {
                let key = rsa::KeyPair::from_pkcs8(&self.pkcs8).map_err(bad)?;
                let public = key.public_key();
                if public.modulus_len() * 8 < MIN_RSA_BITS {
                    return Err(KeySetError(format!("key {:?}: RSA keys must have at least {MIN_RSA_BITS} bits", self.kid)));
                }
                PublicHalf::Rsa {
                    n: public.modulus().big_endian_without_leading_zero().to_vec(),
                    e: public.exponent().big_endian_without_leading_zero().to_vec(),
                }
            }
        })
    }

    /// The public half as a JWK, built from the public key: it cannot carry a private member.
    pub fn public_jwk(&self) -> Result<PublicJwk, KeySetError> {
        let b64 = |bytes: &[u8]| Some(URL_SAFE_NO_PAD.encode(bytes));
        let mut jwk = PublicJwk {
            kty: String::new(),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            kid: self.kid.clone(),
            alg: self.alg,
            key_use: "sig".to_owned(),
        };
        match self.public_half()? {
            PublicHalf::Ec(point) if point.len() == 65 && point[0] == 4 => {
                jwk.kty = "EC".into();
                jwk.crv = Some("P-256".into());
                (jwk.x, jwk.y) = (b64(&point[1..33]), b64(&point[33..]));
            }
            PublicHalf::Ed(public) if public.len() == 32 => {
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = b64(&public);
            }
            PublicHalf::Rsa { n, e } => {
                jwk.kty = "RSA".into();
                (jwk.n, jwk.e) = (b64(&n), b64(&e));
            }
            _ => return Err(KeySetError("unexpected public key encoding".into())),
        }
        Ok(jwk)
    }
}

/// The key that signs new access tokens, parsed when the set is loaded. The algorithm a
/// token's header names is the parsed key's own: nothing can set one apart from the other.
pub struct SigningKey {
    kid: String,
    pair: ParsedKey,
}

/// A private key as aws-lc-rs signs with it.
enum ParsedKey {
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
    Rs256(rsa::KeyPair),
}

/// Signing failed: aws-lc-rs refused (its RNG, for ES256 and RS256), or the claims did not
/// serialise.
#[derive(Debug)]
pub struct SignError;

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("signing failed")
    }
}

impl std::error::Error for SignError {}

impl SigningKey {
    /// Key id, the JWT `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm of the parsed key, the header's `alg`.
    pub fn algorithm(&self) -> Algorithm {
        match self.pair {
            ParsedKey::Es256(_) => Algorithm::ES256,
            ParsedKey::EdDsa(_) => Algorithm::EdDSA,
            ParsedKey::Rs256(_) => Algorithm::RS256,
        }
    }

    /// A JWS in compact form (RFC 7515 §7.1) of `claims`, with this key's `alg` and `kid`
    /// and the given `typ` in its header. The form is the one `jsonwebtoken::encode`
    /// writes (base64url of each JSON part, no padding); only the key is parsed once
    /// instead of on every token. Verification stays with `jsonwebtoken`.
    pub fn sign_jwt<T: Serialize>(&self, typ: &str, claims: &T) -> Result<String, SignError> {
        let mut header = Header::new(self.algorithm());
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid.clone());
        let mut token = json_part(&header)?;
        token.push('.');
        token.push_str(&json_part(claims)?);
        let signature = self.sign(token.as_bytes())?;
        token.push('.');
        token.push_str(&URL_SAFE_NO_PAD.encode(signature));
        Ok(token)
    }

    /// The raw signature of `message`: ES256's fixed `r ‖ s`, Ed25519's 64 bytes, or
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match &self.pair {
            ParsedKey::Es256(pair) => Ok(pair.sign(&SystemRandom::new(), message).map_err(|_| SignError)?.as_ref().to_vec()),
            ParsedKey::EdDsa(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            ParsedKey::Rs256(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature)
                    .map_err(|_| SignError)?;
                Ok(signature)
            }
        }
    }
}

/// What `login` and `refresh` need from the private store: the active key and the refresh
/// pepper, decoded once per fetch. `Debug` shows the active `kid` only.
pub struct SigningKeys {
    active: SigningKey,
    refresh_pepper: hmac::Key,
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys").field("active_kid", &self.active.kid()).finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// The active `key` and the refresh pepper (at least 32 bytes, base64url). Loaded from
    /// the stored set by `KeyDocument for SigningKeys` in [`super::rotation`].
    pub fn new(key: &PrivateKey, refresh_pepper: &str) -> Result<Self, KeySetError> {
        let pepper = URL_SAFE_NO_PAD
            .decode(refresh_pepper.trim_end_matches('='))
            .ok()
            .filter(|p| p.len() >= MIN_SECRET_BYTES)
            .ok_or_else(|| KeySetError(format!("refresh_pepper must be at least {MIN_SECRET_BYTES} bytes of base64url")))?;
        Ok(Self {
            active: key.signing_key()?,
            refresh_pepper: hmac::Key::new(hmac::HMAC_SHA256, &pepper),
        })
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// The HMAC key of the refresh-token hash chain.
    pub fn refresh_pepper(&self) -> &hmac::Key {
        &self.refresh_pepper
    }
}

/// One part of a JWS: the JSON of `value`, base64url without padding.
fn json_part<T: Serialize>(value: &T) -> Result<String, SignError> {
    serde_json::to_vec(value).map(|json| URL_SAFE_NO_PAD.encode(json)).map_err(|_| SignError)
}

/// A fresh key id: 128 random bits, base64url, never starting with `-`, so an operator can
/// pass it to `authctl keys activate KID` without it being read as a flag.
fn new_kid() -> String {
    loop {
        let kid = crate::random::random_id();
        if !kid.starts_with('-') {
            return kid;
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::Validation;
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn new_key_ids_never_start_with_a_dash() {
        // One random id in 64 starts with `-`: a thousand without one means the rule holds.
        assert!((0..1_000).map(|_| new_kid()).all(|kid| !kid.starts_with('-') && kid.len() == 22));
    }
    use crate::keys::KeyDocument;
    use crate::keys::verifying::{Jwks, PublicKeys};

    /// A 1024-bit RSA key (PKCS#8), too short to be accepted.
    const RSA_1024_PKCS8: &str = "MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBAL4qz049u-CqK1sqe2j_3c0zE55tY3_rgA1PEbrdSciW9JEmBHfYkhsmJDe3mYG5Mx-qCulfwYqvmHeiHXMjR5dzyU5lPPHMtvhvzqCTXJLBXGy_prJeHod6P2gIPWyLhLpwRb5CDYCO71cFMyh-P7UQuscXxbgO1-6yGc5dZ2yjAgMBAAECgYAYP9NBkeO0SV7P-EHWaNI6yWmWCTLn6_rfN5b2MiOnfYBgRe3J7obrCVkS9cmQXjJjtkY_7iL68VtK3hRNS1FkiQCQeIC77tv0TZeup6sJYPm9uV73bE7yNfaK09uYXPmP4-Od4AIq_7GpsawUlkgkwRUIs5E7yTIqq0BFbSBq4QJBAPlkUUUj2zWQmYXxVZXKJR0csVHcIx-TUSIQIBpJ5EchavdiloG652JqjwwsQsRAZjrPpYBtPn2wPGqFN5MPWzECQQDDNMIIQl5A5AubC9EfJ7trHV8Bc6j3tYAkZFAoUylo73XnHraLDPBMYyoz2WZAZHzW57zSIeBELQADbIAURCgTAkEAto31Y5wUqYgYqVB4arZXJpFLR3XSDBoFSN7u8O9n952BtGbpbztGhucjoTCBCzFs49398x2EofKwtvSfMroJ8QJACCuSH3Rfq4mf7rpc41fvYTlWe6ISpWOEXIGSVU29wvWa0rSXYVSGTjwsTQVBYVqTWw9R-N2QHGphwMLuzWpY3wJAGv3HyuOjeWwfNqBDDDPaFpTzYlZzdb8ZdwlSx2mJxRz7r_XNNvbQVjI8IaGafk1PwbqyzJRidyqEbPgT1yROwg";

    #[test]
    fn generated_keys_sign_tokens_that_their_published_jwk_verifies_and_no_other_key_does() {
        for alg in KeyAlgorithm::ALL {
            let key = PrivateKey::generate(alg).unwrap();
            let other = PrivateKey::generate(alg).unwrap();
            let keys = vec![key.public_jwk().unwrap(), other.public_jwk().unwrap()];
            let public = PublicKeys::from_json(&serde_json::to_string(&Jwks { keys }).unwrap()).unwrap();
            let token = key
                .signing_key()
                .unwrap()
                .sign_jwt("JWT", &json!({"sub": "u", "exp": 4_000_000_000u64}))
                .unwrap();
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
    fn a_key_of_the_wrong_algorithm_a_short_rsa_key_or_garbage_is_refused_and_debug_hides_the_key() {
        let ed = PrivateKey::generate(KeyAlgorithm::EdDsa).unwrap();
        assert!(PrivateKey::from_pkcs8("k".into(), KeyAlgorithm::Es256, ed.pkcs8()).is_err());
        assert!(PrivateKey::from_pkcs8("k".into(), KeyAlgorithm::Rs256, ed.pkcs8()).is_err());
        assert!(PrivateKey::from_pkcs8("k".into(), KeyAlgorithm::EdDsa, b"not a key").is_err());
        assert!(
            PrivateKey::from_pkcs8("k/../x".into(), KeyAlgorithm::EdDsa, ed.pkcs8()).is_err(),
            "kid alphabet"
        );
        let rsa_1024 = URL_SAFE_NO_PAD.decode(RSA_1024_PKCS8).unwrap();
        assert!(
            PrivateKey::from_pkcs8("k".into(), KeyAlgorithm::Rs256, &rsa_1024).is_err(),
            "RSA under 2048 bits"
        );
        let printed = format!("{ed:?}");
        assert!(printed.contains("<redacted>") && !printed.contains(&format!("{:?}", ed.pkcs8())), "{printed}");
    }
}
