//! Signing keys: the key set format, the `KeyProvider` trait that fetches it, and the
//! in-memory cache every function reads it through.

pub mod jwk;
pub mod rotation;
pub mod secrets_manager;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::Deserialize;

use crate::clock::Clock;
use crate::error::AuthError;

/// Shortest accepted secret (signing key or pepper), in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// An unknown `kid` re-fetches the key set at most this often, so garbage `kid`s cannot
/// turn into a flood of Secrets Manager calls.
pub const UNKNOWN_KID_REFETCH_SECS: u64 = 30;

/// A key that verifies tokens, pinned to exactly one algorithm.
pub struct VerifyingKey {
    /// Key id, the JWT `kid`.
    pub kid: String,
    /// The one algorithm this key accepts.
    pub algorithm: Algorithm,
    /// The key material, decoded once when the set is loaded.
    pub decoding: DecodingKey,
}

/// The key that signs new tokens.
pub struct SigningKey {
    /// Key id, the JWT `kid`.
    pub kid: String,
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// The key material, decoded once when the set is loaded.
    pub encoding: EncodingKey,
}

/// Everything secret the service needs, loaded from one Secrets Manager value.
pub struct KeySet {
    active: SigningKey,
    verifying: HashMap<String, VerifyingKey>,
    refresh_pepper: hmac::Key,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("active_kid", &self.active.kid)
            .field("kids", &self.verifying.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySetDocument {
    active_kid: String,
    keys: Vec<KeyDocument>,
    refresh_pepper: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyDocument {
    kid: String,
    alg: String,
    secret: String,
}

/// Why a key set document was refused. Never contains key material.
#[derive(Debug, thiserror::Error)]
#[error("key set: {0}")]
pub struct KeySetError(String);

impl From<KeySetError> for AuthError {
    fn from(e: KeySetError) -> Self {
        AuthError::unavailable("loading keys", e)
    }
}

fn decode_secret(what: &str, value: &str) -> Result<Vec<u8>, KeySetError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| KeySetError(format!("{what} is not base64url")))?;
    if bytes.len() < MIN_SECRET_BYTES {
        return Err(KeySetError(format!("{what} is shorter than {MIN_SECRET_BYTES} bytes")));
    }
    Ok(bytes)
}

impl KeySet {
    /// Parses the Secrets Manager JSON
    /// `{"active_kid", "keys": [{"kid", "alg", "secret"}], "refresh_pepper"}`.
    pub fn from_json(json: &str) -> Result<Self, KeySetError> {
        // serde_json's messages may quote the offending value: report the position only.
        let doc: KeySetDocument =
            serde_json::from_str(json).map_err(|e| KeySetError(format!("not the expected JSON (line {}, column {})", e.line(), e.column())))?;
        let mut verifying = HashMap::new();
        let mut active = None;
        for key in doc.keys {
            let algorithm = match key.alg.as_str() {
                "HS256" => Algorithm::HS256,
                "HS384" => Algorithm::HS384,
                "HS512" => Algorithm::HS512,
                other => return Err(KeySetError(format!("key {:?}: algorithm {other:?} is not supported", key.kid))),
            };
            if key.kid.is_empty() || key.kid.len() > 64 {
                return Err(KeySetError("a kid must be 1 to 64 characters".into()));
            }
            let secret = decode_secret(&format!("key {:?}", key.kid), &key.secret)?;
            if key.kid == doc.active_kid {
                active = Some(SigningKey {
                    kid: key.kid.clone(),
                    algorithm,
                    encoding: EncodingKey::from_secret(&secret),
                });
            }
            let verifying_key = VerifyingKey {
                kid: key.kid.clone(),
                algorithm,
                decoding: DecodingKey::from_secret(&secret),
            };
            if verifying.insert(key.kid.clone(), verifying_key).is_some() {
                return Err(KeySetError(format!("kid {:?} is listed twice", key.kid)));
            }
        }
        let active = active.ok_or_else(|| KeySetError(format!("active_kid {:?} is not among the keys", doc.active_kid)))?;
        let pepper = decode_secret("refresh_pepper", &doc.refresh_pepper)?;
        Ok(Self {
            active,
            verifying,
            refresh_pepper: hmac::Key::new(hmac::HMAC_SHA256, &pepper),
        })
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// The verifying key for a `kid`, if listed.
    pub fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.get(kid)
    }

    /// The HMAC key of the refresh-token hash chain.
    pub fn refresh_pepper(&self) -> &hmac::Key {
        &self.refresh_pepper
    }
}

/// Why a key set could not be had.
#[derive(Debug)]
pub enum FetchError {
    /// The store could not be reached, timed out, or was overloaded: worth riding out with
    /// the last good set.
    Unreachable(AuthError),
    /// The store answered, with a refusal (access denied, no such secret, a key it cannot
    /// decrypt) or a set that does not parse: an operator's doing, so it takes effect at
    /// once and nothing stale is served.
    Refused(AuthError),
}

impl From<FetchError> for AuthError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Unreachable(e) | FetchError::Refused(e) => e,
        }
    }
}

/// Where key sets come from. Implemented for Secrets Manager; asymmetric keys and a
/// public JWKS are further implementations of the same trait.
#[async_trait]
pub trait KeyProvider: Send + Sync {
    /// Fetches and parses the current key set.
    async fn fetch(&self) -> Result<KeySet, FetchError>;
}

/// During an outage of the key store, the last good key set keeps serving for at most this
/// long past its TTL (logged), so an outage of Secrets Manager is not an outage of login,
/// refresh and the authorizer. A removed key stays usable that much longer at worst.
pub const MAX_STALE_SECS: u64 = 3600;
/// After a failed fetch, the next one waits this long, doubling per failure up to
/// [`MAX_FETCH_BACKOFF_SECS`]: requests meanwhile get the stale set (or fail) at once
/// instead of each waiting for the SDK's retries and timeouts.
pub const FETCH_BACKOFF_SECS: u64 = 2;
/// The longest wait between fetches while they fail.
pub const MAX_FETCH_BACKOFF_SECS: u64 = 60;

#[derive(Default)]
struct CacheState {
    keys: Option<Arc<KeySet>>,
    fetched_at: u64,
    last_unknown_kid_fetch: Option<u64>,
    failed_fetches: u32,
    next_fetch_at: u64,
}

impl CacheState {
    /// The cached set while it may still serve past its TTL.
    fn stale(&self, now: u64, ttl: u64) -> Option<Arc<KeySet>> {
        let keys = self.keys.as_ref()?;
        (now < self.fetched_at.saturating_add(ttl).saturating_add(MAX_STALE_SECS)).then(|| keys.clone())
    }
}

/// Caches the key set in memory: fetched at cold start, again after `ttl` seconds, and
/// on an unknown `kid` (at most once per [`UNKNOWN_KID_REFETCH_SECS`]). When the store is
/// unreachable, the last good set serves for up to [`MAX_STALE_SECS`] past its TTL and
/// fetches back off; past that, with no set ever fetched, or when the store refuses or
/// holds an unusable set, it fails closed: callers answer 503 or deny.
pub struct KeyCache {
    provider: Arc<dyn KeyProvider>,
    clock: Arc<dyn Clock>,
    ttl: u64,
    state: RwLock<CacheState>,
    // One fetch at a time: concurrent requests on a stale cache share one call.
    fetching: tokio::sync::Mutex<()>,
}

impl KeyCache {
    /// A cache with nothing fetched yet.
    pub fn new(provider: Arc<dyn KeyProvider>, clock: Arc<dyn Clock>, ttl: u64) -> Self {
        Self {
            provider,
            clock,
            ttl,
            state: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<Arc<KeySet>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let keys = state.keys.as_ref()?;
        (self.clock.now() < state.fetched_at.saturating_add(self.ttl)).then(|| keys.clone())
    }

    /// The current key set, fetching it when missing or older than the TTL.
    pub async fn current(&self) -> Result<Arc<KeySet>, AuthError> {
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        let _guard = self.fetching.lock().await;
        if let Some(keys) = self.fresh() {
            return Ok(keys);
        }
        self.fetch_now().await
    }

    /// The key set for verifying a token signed with `kid`: re-fetches once when the kid is
    /// unknown (a new key was added), but at most once per 30 s.
    pub async fn for_kid(&self, kid: &str) -> Result<Arc<KeySet>, AuthError> {
        // The warm path, taken by nearly every request, awaits nothing; the fetching path is
        // boxed so its large future is not built (and copied) on every call.
        match self.fresh() {
            Some(keys) if keys.verifying_key(kid).is_some() => Ok(keys),
            _ => Box::pin(self.fetch_for_kid(kid)).await,
        }
    }

    async fn fetch_for_kid(&self, kid: &str) -> Result<Arc<KeySet>, AuthError> {
        let keys = self.current().await?;
        if keys.verifying_key(kid).is_some() {
            return Ok(keys);
        }
        let _guard = self.fetching.lock().await;
        let now = self.clock.now();
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if let Some(keys) = state.keys.as_ref().filter(|k| k.verifying_key(kid).is_some()) {
                return Ok(keys.clone());
            }
            if state.last_unknown_kid_fetch.is_some_and(|t| now < t + UNKNOWN_KID_REFETCH_SECS) {
                return Ok(keys);
            }
        }
        self.state.write().unwrap_or_else(|e| e.into_inner()).last_unknown_kid_fetch = Some(now);
        self.fetch_now().await
    }

    /// Fetches the set (called holding `fetching`); while fetches fail and back off, answers
    /// with the stale set when it may still serve.
    async fn fetch_now(&self) -> Result<Arc<KeySet>, AuthError> {
        let now = self.clock.now();
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if now < state.next_fetch_at {
                return state
                    .stale(now, self.ttl)
                    .ok_or_else(|| AuthError::unavailable("loading keys", "the key store failed moments ago; waiting before the next try"));
            }
        }
        let fetched = self.provider.fetch().await;
        let now = self.clock.now();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        match fetched {
            Ok(keys) => {
                let keys = Arc::new(keys);
                state.keys = Some(keys.clone());
                state.fetched_at = now;
                state.failed_fetches = 0;
                state.next_fetch_at = 0;
                Ok(keys)
            }
            Err(e) => {
                state.failed_fetches = state.failed_fetches.saturating_add(1);
                let backoff = (FETCH_BACKOFF_SECS << (state.failed_fetches - 1).min(8)).min(MAX_FETCH_BACKOFF_SECS);
                state.next_fetch_at = now + backoff;
                match (e, state.stale(now, self.ttl)) {
                    (FetchError::Unreachable(e), Some(keys)) => {
                        tracing::warn!(cause = %e, stale_secs = now.saturating_sub(state.fetched_at), "key store unavailable; serving the last good key set");
                        Ok(keys)
                    }
                    (FetchError::Refused(e), _) => {
                        // SECURITY: a refusal or an unusable set is deliberate (or must be seen
                        // at once): the old set stops serving, whatever its age.
                        state.keys = None;
                        tracing::error!(cause = %e, "key store refused or holds an unusable key set; failing closed");
                        Err(e)
                    }
                    (FetchError::Unreachable(e), None) => Err(e),
                }
            }
        }
    }
}

/// 32 random bytes, base64url: a new signing key or pepper.
pub fn generate_secret() -> String {
    URL_SAFE_NO_PAD.encode(crate::random::random_bytes::<32>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FixedClock, StaticKeys};

    #[test]
    fn rejects_short_secrets_unknown_algorithms_and_missing_active_key() {
        let good = "A".repeat(43);
        let doc = |active: &str, alg: &str, secret: &str| {
            format!(r#"{{"active_kid":"{active}","keys":[{{"kid":"k1","alg":"{alg}","secret":"{secret}"}}],"refresh_pepper":"{good}"}}"#)
        };
        assert!(KeySet::from_json(&doc("k1", "HS256", &good)).is_ok());
        assert!(KeySet::from_json(&doc("k1", "none", &good)).is_err());
        assert!(KeySet::from_json(&doc("k1", "RS256", &good)).is_err());
        assert!(KeySet::from_json(&doc("k1", "HS256", "c2hvcnQ")).is_err());
        assert!(KeySet::from_json(&doc("k2", "HS256", &good)).is_err());
    }

    #[test]
    fn key_set_errors_never_quote_the_secret() {
        let secret = "S3CR3T-VALUE-THAT-MUST-NOT-LEAK";
        let err = KeySet::from_json(&format!(
            r#"{{"active_kid":"k1","keys":[{{"kid":"k1","alg":"HS256","secret":{{"x":"{secret}"}}}}],"refresh_pepper":"x"}}"#
        ))
        .unwrap_err();
        assert!(!err.to_string().contains(secret), "{err}");
    }

    #[tokio::test]
    async fn cache_refetches_after_ttl_and_at_most_every_30s_for_unknown_kids() {
        let clock = Arc::new(FixedClock::new(1_000));
        let provider = Arc::new(StaticKeys::new());
        let cache = KeyCache::new(provider.clone(), clock.clone(), 300);
        cache.current().await.unwrap();
        cache.current().await.unwrap();
        assert_eq!(provider.fetches(), 1);
        cache.for_kid("nope").await.unwrap();
        cache.for_kid("nope").await.unwrap();
        assert_eq!(provider.fetches(), 2, "one re-fetch for an unknown kid");
        clock.advance(31);
        cache.for_kid("nope").await.unwrap();
        assert_eq!(provider.fetches(), 3);
        clock.advance(300);
        cache.current().await.unwrap();
        assert_eq!(provider.fetches(), 4, "TTL expiry re-fetches");
    }

    #[tokio::test]
    async fn cache_fails_closed_when_the_provider_fails() {
        let clock = Arc::new(FixedClock::new(1_000));
        let provider = Arc::new(StaticKeys::new());
        provider.set_failing(true);
        let cache = KeyCache::new(provider.clone(), clock, 300);
        assert!(matches!(cache.current().await, Err(AuthError::Unavailable(_))));
    }

    #[tokio::test]
    async fn an_outage_serves_the_last_good_set_for_a_bounded_time_and_backs_off() {
        let clock = Arc::new(FixedClock::new(1_000));
        let provider = Arc::new(StaticKeys::new());
        let cache = KeyCache::new(provider.clone(), clock.clone(), 300);
        cache.current().await.unwrap();
        provider.set_failing(true);
        clock.advance(300);
        assert!(cache.current().await.is_ok(), "stale set served");
        assert_eq!(provider.fetches(), 2);
        for _ in 0..10 {
            cache.current().await.unwrap();
            cache.for_kid("k1").await.unwrap();
        }
        assert_eq!(provider.fetches(), 2, "no fetch during the back-off");
        clock.advance(FETCH_BACKOFF_SECS);
        cache.current().await.unwrap();
        assert_eq!(provider.fetches(), 3, "one try after the back-off");
        cache.current().await.unwrap();
        assert_eq!(provider.fetches(), 3, "and the back-off doubled");
        clock.advance(MAX_STALE_SECS);
        assert!(
            matches!(cache.current().await, Err(AuthError::Unavailable(_))),
            "past the stale bound: fail closed"
        );
        provider.set_failing(false);
        clock.advance(MAX_FETCH_BACKOFF_SECS);
        assert!(cache.current().await.is_ok(), "recovers once the store answers");
    }

    #[tokio::test]
    async fn a_refusal_or_an_unusable_set_is_never_ridden_out_with_the_stale_set() {
        let clock = Arc::new(FixedClock::new(1_000));
        let provider = Arc::new(StaticKeys::new());
        let cache = KeyCache::new(provider.clone(), clock.clone(), 300);
        cache.current().await.unwrap();
        provider.set_json(r#"{"active_kid":"k1","keys":[]}"#);
        clock.advance(300);
        assert!(matches!(cache.current().await, Err(AuthError::Unavailable(_))), "fails closed at once");
        provider.set_json(crate::testing::KEY_SET_JSON);
        clock.advance(FETCH_BACKOFF_SECS);
        assert!(cache.current().await.is_ok(), "and recovers with a good set");
    }
}
