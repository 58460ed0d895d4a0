//! Public keys: the RFC 7517 JWKS that verifiers read (the authorizer from its environment
//! or the public store, `discovery` to publish it, any other service over HTTPS), read
//! strictly into keys that verify, each pinned to its own algorithm. No private or
//! symmetric key is ever accepted here, so nothing that verifies can sign.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::{Deserialize, Serialize};

use super::cache::KeyCache;
use super::{KeyAlgorithm, KeyDocument, KeySetError, MAX_RSA_BITS, MIN_RSA_BITS, check_kid, json_error};
use crate::error::AuthError;

/// A key that verifies tokens, pinned to exactly one algorithm.
pub struct VerifyingKey {
    /// Key id, the JWT `kid`.
    pub kid: String,
    /// The one algorithm this key accepts.
    pub algorithm: Algorithm,
    /// The key material, decoded once when the set is loaded.
    pub decoding: DecodingKey,
}

/// A public key as RFC 7517 publishes it, with exactly the members verifiers need.
/// Unknown members (`d`, `p`, `k` and every other private or symmetric member among them)
/// are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicJwk {
    /// `EC`, `OKP` or `RSA`.
    pub kty: String,
    /// `P-256` or `Ed25519` (EC and OKP only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// The x coordinate (EC) or the public key (OKP), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// The y coordinate (EC only), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// The modulus (RSA only), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// The public exponent (RSA only), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// The key id.
    pub kid: String,
    /// The one algorithm this key verifies.
    pub alg: KeyAlgorithm,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
}

/// A public JWKS document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<PublicJwk>,
}

/// The keys of a public JWKS, by `kid`, each pinned to its own algorithm, with the
/// document they came from (which `discovery` serves).
pub struct PublicKeys {
    keys: HashMap<String, VerifyingKey>,
    jwks: Jwks,
}

impl std::fmt::Debug for PublicKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKeys").field("kids", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

impl PublicKeys {
    /// Reads a JWKS already parsed: see [`KeyDocument::from_json`].
    pub fn from_jwks(jwks: Jwks) -> Result<Self, KeySetError> {
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            let key = verifying_key(jwk)?;
            if keys.insert(jwk.kid.clone(), key).is_some() {
                return Err(KeySetError(format!("kid {:?} is listed twice", jwk.kid)));
            }
        }
        Ok(Self { keys, jwks })
    }

    /// The verifying key for a `kid`, if published.
    pub fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// The JWKS these keys were read from.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// Whether no key is published.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl KeyDocument for PublicKeys {
    /// Reads a JWKS strictly: every key must be an EC P-256 key for ES256, an OKP Ed25519
    /// key for EdDSA or an RSA key of at least 2048 bits for RS256, for signatures, a valid
    /// public key of its kind, with a unique `kid` and no other member.
    fn from_json(json: &str) -> Result<Self, KeySetError> {
        let jwks: Jwks = serde_json::from_str(json).map_err(|e| json_error("a public JWKS", &e))?;
        Self::from_jwks(jwks)
    }

    fn knows(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }
}

/// The keys a verifier trusts: those deployed with it (`AUTH_PUBLIC_JWKS`), which need no
/// network, and the public store, read only for a `kid` the deployment lacks (a key added
/// since, or garbage) or when nothing was deployed.
///
/// Once the store has been read and found to differ from the deployment, the deployment is
/// out of date and the store is the authority (re-read after `KEY_CACHE_TTL`, like a
/// verifier deployed without keys): a key removed from the store (`authctl keys remove`)
/// stops verifying here too, although it is still deployed. While the store cannot be read,
/// the deployed keys keep verifying, except those the store was seen without or with other
/// material: a removed key never comes back through the fallback.
pub struct TrustedKeys {
    deployed: Option<Arc<PublicKeys>>,
    store: KeyCache<PublicKeys>,
    /// Set once the store was read holding another set than the deployment.
    deployment_outdated: AtomicBool,
    /// Deployed kids the store was seen without (or with other material).
    withdrawn: Mutex<HashSet<String>>,
}

impl TrustedKeys {
    /// `deployed` (`None` or an empty set: everything comes from `store`) before `store`.
    pub fn new(deployed: Option<PublicKeys>, store: KeyCache<PublicKeys>) -> Self {
        Self {
            deployed: deployed.filter(|keys| !keys.is_empty()).map(Arc::new),
            store,
            deployment_outdated: AtomicBool::new(false),
            withdrawn: Mutex::new(HashSet::new()),
        }
    }

    /// Whether keys were deployed with the verifier.
    pub fn has_deployed_keys(&self) -> bool {
        self.deployed.is_some()
    }

    /// Whether the public store was seen holding other keys than the deployment (a key
    /// added or removed since): from then on the store decides.
    pub fn deployment_outdated(&self) -> bool {
        self.deployment_outdated.load(Ordering::Acquire)
    }

    /// Cold-start work: with nothing deployed, fetches the public store now rather than on
    /// the first request. A failure is logged, not fatal: requests fail closed until the
    /// store can be read.
    pub async fn warm_up(&self) {
        if !self.has_deployed_keys()
            && let Err(e) = self.store.current().await
        {
            tracing::error!(cause = %e, "public keys not available at cold start");
        }
    }

    /// The public store's cache.
    pub fn store(&self) -> &KeyCache<PublicKeys> {
        &self.store
    }

    /// The keys holding `kid`: the deployed ones when they do and are not known to be out
    /// of date (no await on this path), else the store's (see [`KeyCache::for_kid`]); when
    /// the store cannot be read, the deployed ones the store has not withdrawn, else an
    /// error (the caller denies).
    pub async fn for_kid(&self, kid: &str) -> Result<Arc<PublicKeys>, AuthError> {
        match &self.deployed {
            // SECURITY: once the store differs, a deployed key may have been removed: the store decides.
            Some(keys) if keys.knows(kid) && !self.deployment_outdated() => Ok(keys.clone()),
            _ => Box::pin(self.via_store(kid)).await,
        }
    }

    async fn via_store(&self, kid: &str) -> Result<Arc<PublicKeys>, AuthError> {
        let Some(deployed) = &self.deployed else {
            return self.store.for_kid(kid).await;
        };
        match self.store.for_kid(kid).await {
            Ok(keys) => {
                self.compare_with_deployment(deployed, &keys);
                Ok(keys)
            }
            // SECURITY: the fallback never brings back a key the store was seen without.
            Err(_) if deployed.knows(kid) && !self.is_withdrawn(kid) => Ok(deployed.clone()),
            Err(e) => Err(e),
        }
    }

    /// Notes which deployed keys the store no longer holds as deployed, and whether the
    /// deployment is out of date.
    fn compare_with_deployment(&self, deployed: &PublicKeys, store: &PublicKeys) {
        let mut differs = deployed.keys.len() != store.keys.len();
        for jwk in &deployed.jwks.keys {
            if store.jwks.keys.iter().any(|published| published == jwk) {
                continue;
            }
            differs = true;
            let mut withdrawn = self.withdrawn.lock().unwrap_or_else(|e| e.into_inner());
            if withdrawn.insert(jwk.kid.clone()) {
                tracing::warn!(kid = %jwk.kid, "a deployed key is no longer published; its tokens are denied (redeploy with `authctl keys jwks`)");
            }
        }
        if differs && !self.deployment_outdated.swap(true, Ordering::AcqRel) {
            tracing::warn!("the public key store differs from AUTH_PUBLIC_JWKS; verifying with the store from now on (redeploy with `authctl keys jwks`)");
        }
    }

    fn is_withdrawn(&self, kid: &str) -> bool {
        self.withdrawn.lock().unwrap_or_else(|e| e.into_inner()).contains(kid)
    }
}

fn verifying_key(jwk: &PublicJwk) -> Result<VerifyingKey, KeySetError> {
    let bad = |what: &str| KeySetError(format!("key {:?}: {what}", jwk.kid));
    check_kid(&jwk.kid)?;
    if jwk.key_use != "sig" {
        return Err(bad("use must be sig"));
    }
    let bytes = |value: &str| URL_SAFE_NO_PAD.decode(value).ok();
    let coordinate = |value: &str| bytes(value).filter(|b| b.len() == 32);
    // SECURITY: the algorithm is pinned by the key's type and curve, never taken alone, and
    // the key must be a valid public key of its kind (aws-lc parses it), so a bad key is
    // refused here rather than failing every verification later.
    let decoding = match (jwk.alg, jwk.kty.as_str(), jwk.crv.as_deref(), &jwk.x, &jwk.y, &jwk.n, &jwk.e) {
        (KeyAlgorithm::Es256, "EC", Some("P-256"), Some(x), Some(y), None, None) => {
            let (Some(x_bytes), Some(y_bytes)) = (coordinate(x), coordinate(y)) else {
                return Err(bad("x and y must be 32 bytes"));
            };
            let point = [&[4u8][..], &x_bytes, &y_bytes].concat();
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map_err(|_| bad("not a P-256 point"))?;
            DecodingKey::from_ec_components(x, y).map_err(|_| bad("not a P-256 point"))?
        }
        (KeyAlgorithm::EdDsa, "OKP", Some("Ed25519"), Some(x), None, None, None) => {
            let x_bytes = coordinate(x).ok_or_else(|| bad("x must be 32 bytes"))?;
            ParsedPublicKey::new(&ED25519, x_bytes).map_err(|_| bad("not an Ed25519 key"))?;
            DecodingKey::from_ed_components(x).map_err(|_| bad("not an Ed25519 key"))?
        }
        (KeyAlgorithm::Rs256, "RSA", None, None, None, Some(n), Some(e)) => {
            let (Some(n_bytes), Some(e_bytes)) = (bytes(n), bytes(e)) else {
                return Err(bad("n and e must be base64url"));
            };
            let bits = n_bytes.iter().position(|b| *b != 0).map_or(0, |first| (n_bytes.len() - first) * 8);
            let exponent = (e_bytes.len() <= 4).then(|| e_bytes.iter().fold(0u64, |e, b| e << 8 | u64::from(*b)));
            // aws-lc verifies RS256 with moduli of 2048 to 8192 bits and odd exponents from 3
            // to 2^32 - 1 only: any other key would fail every verification, so it is refused
            // here, with its reason, instead.
            let odd = |bytes: &[u8]| bytes.last().is_some_and(|b| b & 1 == 1);
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) || !odd(&n_bytes) || !odd(&e_bytes) || exponent.is_none_or(|e| e < 3) {
                return Err(bad(
                    "an RSA key needs an odd modulus of 2048 to 8192 bits and an odd exponent from 3 to 2^32 - 1",
                ));
            }
            DecodingKey::from_rsa_components(n, e).map_err(|_| bad("not an RSA public key"))?
        }
        _ => return Err(bad("kty, crv, alg and members do not match ES256 on P-256, EdDSA on Ed25519 or RS256 on RSA")),
    };
    Ok(VerifyingKey {
        kid: jwk.kid.clone(),
        algorithm: jwk.alg.algorithm(),
        decoding,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::keys::cache::UNKNOWN_KID_REFETCH_SECS;
    use crate::keys::signing::PrivateKey;

    /// The test JWKS after a rotation: `k3` added and active, `k1` removed (`--now`).
    fn rotated_jwks() -> (String, String) {
        let mut set = crate::testing::signing_key_set();
        let key = PrivateKey::generate(KeyAlgorithm::Es256).unwrap();
        set.add(&key, 10).unwrap();
        set.activate(&key.kid, 10, 0, true).unwrap();
        set.remove("k1", 10, 930, true).unwrap();
        (key.kid, serde_json::to_string(&set.public_jwks().unwrap()).unwrap())
    }

    fn trusted(deployed: bool) -> (TrustedKeys, Arc<crate::testing::StaticKeys<PublicKeys>>, Arc<crate::testing::FixedClock>) {
        let clock = Arc::new(crate::testing::FixedClock::new(1_000));
        let provider = Arc::new(crate::testing::StaticKeys::<PublicKeys>::public());
        let store = KeyCache::new(provider.clone(), clock.clone(), 300);
        let keys = TrustedKeys::new(deployed.then(crate::testing::public_keys), store);
        (keys, provider, clock)
    }

    async fn knows(keys: &TrustedKeys, kid: &str) -> Option<bool> {
        keys.for_kid(kid).await.ok().map(|set| set.knows(kid))
    }

    #[tokio::test]
    async fn deployed_keys_serve_without_the_store_until_it_shows_a_rotation_then_the_store_decides() {
        let (keys, store, clock) = trusted(true);
        assert_eq!(knows(&keys, "k1").await, Some(true));
        assert_eq!(store.fetches(), 0, "a deployed kid needs no fetch");
        assert_eq!(knows(&keys, "garbage").await, Some(false));
        assert_eq!(store.fetches(), 1, "an unknown kid: one fetch");
        assert!(!keys.deployment_outdated(), "the store holds what was deployed");
        assert_eq!(knows(&keys, "k1").await, Some(true));
        assert_eq!(store.fetches(), 1, "so deployed kids still need no fetch");

        let (new_kid, rotated) = rotated_jwks();
        store.set_json(&rotated);
        clock.advance(UNKNOWN_KID_REFETCH_SECS);
        assert_eq!(knows(&keys, &new_kid).await, Some(true), "a key added since is found in the store");
        assert!(keys.deployment_outdated());
        assert_eq!(knows(&keys, "k1").await, Some(false), "a key removed from the store is denied, deployed or not");
        assert_eq!(knows(&keys, "k0").await, Some(true));

        // The store now refuses (or holds garbage): the deployed keys serve, but never k1.
        store.set_json("{}");
        clock.advance(300);
        assert_eq!(knows(&keys, "k0").await, Some(true), "deployed fallback while the store is unusable");
        assert_eq!(knows(&keys, "k1").await, None, "a withdrawn key stays withdrawn");
        assert_eq!(knows(&keys, &new_kid).await, None, "a key only the store had: deny");
    }

    #[tokio::test]
    async fn with_an_unreadable_store_deployed_kids_verify_and_unknown_kids_are_denied() {
        let (keys, store, _clock) = trusted(true);
        store.set_failing(true);
        assert_eq!(knows(&keys, "garbage").await, None, "unknown kid: fails closed");
        assert_eq!(store.fetches(), 1);
        for kid in ["k0", "k1", "k2"] {
            assert_eq!(knows(&keys, kid).await, Some(true), "{kid}");
        }
        assert_eq!(store.fetches(), 1, "known kids never wait for the broken store");

        let (without, store, _clock) = trusted(false);
        store.set_failing(true);
        assert_eq!(knows(&without, "k1").await, None, "nothing deployed: nothing verifies");
    }

    #[test]
    fn published_jwks_hold_only_public_members_for_every_key_type() {
        for (alg, members) in [
            (KeyAlgorithm::Es256, vec!["alg", "crv", "kid", "kty", "use", "x", "y"]),
            (KeyAlgorithm::EdDsa, vec!["alg", "crv", "kid", "kty", "use", "x"]),
            (KeyAlgorithm::Rs256, vec!["alg", "e", "kid", "kty", "n", "use"]),
        ] {
            let key = PrivateKey::generate(alg).unwrap();
            let jwk: Value = serde_json::to_value(key.public_jwk().unwrap()).unwrap();
            let mut names: Vec<&str> = jwk.as_object().unwrap().keys().map(String::as_str).collect();
            names.sort_unstable();
            assert_eq!(names, members, "{alg:?}");
            assert_eq!(jwk["use"], "sig");
            assert_eq!(jwk["alg"], alg.as_str());
        }
    }

    #[test]
    fn jwks_with_private_symmetric_mismatched_or_malformed_keys_are_refused() {
        let jwk = |alg| serde_json::to_value(PrivateKey::generate(alg).unwrap().public_jwk().unwrap()).unwrap();
        let (ec, ed, rsa) = (jwk(KeyAlgorithm::Es256), jwk(KeyAlgorithm::EdDsa), jwk(KeyAlgorithm::Rs256));
        let with = |base: &Value, name: &str, value: Value| {
            let mut jwk = base.clone();
            jwk[name] = value;
            json!({"keys": [jwk]}).to_string()
        };
        let short_n = URL_SAFE_NO_PAD.encode([0xc5u8; 128]);
        assert!(PublicKeys::from_json(&json!({"keys": [ec, ed, rsa]}).to_string()).is_ok());
        for (case, jwks) in [
            ("EC private member d", with(&ec, "d", json!("AAAA"))),
            ("OKP private member d", with(&ed, "d", json!("AAAA"))),
            ("RSA private member d", with(&rsa, "d", json!("AAAA"))),
            ("RSA private member p", with(&rsa, "p", json!("AAAA"))),
            (
                "symmetric key",
                json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "k", "alg": "HS256", "use": "sig"}]}).to_string(),
            ),
            ("ES256 named on an Ed25519 key", with(&ed, "alg", json!("ES256"))),
            ("EdDSA named on a P-256 key", with(&ec, "alg", json!("EdDSA"))),
            ("RS256 named on a P-256 key", with(&ec, "alg", json!("RS256"))),
            ("ES256 named on an RSA key", with(&rsa, "alg", json!("ES256"))),
            ("HS256", with(&ec, "alg", json!("HS256"))),
            ("another curve", with(&ec, "crv", json!("P-384"))),
            ("short x", with(&ec, "x", json!("AAAA"))),
            ("not a point", with(&ec, "y", json!(URL_SAFE_NO_PAD.encode([7u8; 32])))),
            ("RSA under 2048 bits", with(&rsa, "n", json!(short_n))),
            ("RSA even exponent", with(&rsa, "e", json!("AQAA"))),
            ("RSA exponent 1", with(&rsa, "e", json!("AQ"))),
            ("RSA exponent over 32 bits", with(&rsa, "e", json!(URL_SAFE_NO_PAD.encode([1u8, 0, 0, 0, 1])))),
            ("RSA over 8192 bits", with(&rsa, "n", json!(URL_SAFE_NO_PAD.encode([0xc5u8; 1025])))),
            ("RSA even modulus", with(&rsa, "n", json!(URL_SAFE_NO_PAD.encode([0xc4u8; 256])))),
            ("use enc", with(&ec, "use", json!("enc"))),
            ("empty kid", with(&ec, "kid", json!(""))),
            ("embedded certificate chain", with(&ec, "x5c", json!(["MII"]))),
            ("duplicate kid", json!({"keys": [ec, ec]}).to_string()),
        ] {
            assert!(PublicKeys::from_json(&jwks).is_err(), "{case}");
        }
    }
}

#[cfg(test)]
mod reader {
    use proptest::prelude::*;

    use super::*;
    use crate::testing;

    /// The test JWKS with a character replaced, inserted or removed, or any text.
    fn candidates() -> impl Strategy<Value = String> {
        let jwks = testing::public_jwks_json();
        let edits = prop::sample::select(&['"', '{', '}', ',', ':', '[', 'A', '0', '-', 'é', ' '][..]);
        let mutated = (any::<usize>(), edits, 0..3u8).prop_map(move |(at, c, how)| testing::edit(&jwks, at, c, how));
        prop_oneof![mutated, "\\PC{0,200}"]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(testing::property_cases()))]

        /// The JWKS reader on damaged and arbitrary input: never a panic, and a set it
        /// accepts holds only keys that pass its checks: each `kid` one the text names,
        /// and nothing but the three test keys' ids.
        #[test]
        fn a_damaged_jwks_is_read_without_a_panic_and_never_yields_a_key_it_does_not_name(text in candidates()) {
            if let Ok(keys) = PublicKeys::from_json(&text) {
                for kid in ["k0", "k1", "k2"] {
                    if keys.verifying_key(kid).is_some() {
                        prop_assert!(text.contains(&format!("\"{kid}\"")), "{}", text);
                    }
                }
                prop_assert!(keys.keys.keys().all(|kid| text.contains(kid.as_str())), "{}", text);
            }
        }
    }
}
