//! The in-memory cache every function reads a key set through: fetched at cold start (or
//! on first use), again after `KEY_CACHE_TTL`, and on an unknown `kid`; bounded staleness
//! during a store outage, fail closed otherwise.

use std::sync::{Arc, RwLock};

use super::{FetchError, KeyDocument, KeyProvider};
use crate::clock::Clock;
use crate::error::AuthError;

/// An unknown `kid` re-fetches the key set at most this often, so garbage `kid`s cannot
/// turn into a flood of Secrets Manager calls.
pub const UNKNOWN_KID_REFETCH_SECS: u64 = 30;
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

struct CacheState<T> {
    keys: Option<Arc<T>>,
    fetched_at: u64,
    /// Successful fetches so far: tells a caller whether its own call fetched.
    good_fetches: u64,
    last_unknown_kid_fetch: Option<u64>,
    failed_fetches: u32,
    next_fetch_at: u64,
}

impl<T> Default for CacheState<T> {
    fn default() -> Self {
        Self {
            keys: None,
            fetched_at: 0,
            good_fetches: 0,
            last_unknown_kid_fetch: None,
            failed_fetches: 0,
            next_fetch_at: 0,
        }
    }
}

impl<T> CacheState<T> {
    /// The cached set while it may still serve past its TTL.
    fn stale(&self, now: u64, ttl: u64) -> Option<Arc<T>> {
        let keys = self.keys.as_ref()?;
        (now < self.fetched_at.saturating_add(ttl).saturating_add(MAX_STALE_SECS)).then(|| keys.clone())
    }
}

/// Caches a key set in memory: fetched at cold start, again after `ttl` seconds, and
/// on an unknown `kid` (at most once per [`UNKNOWN_KID_REFETCH_SECS`]). When the store is
/// unreachable, the last good set serves for up to [`MAX_STALE_SECS`] past its TTL and
/// fetches back off; past that, with no set ever fetched, or when the store refuses or
/// holds an unusable set, it fails closed: callers answer 503 or deny.
pub struct KeyCache<T> {
    provider: Arc<dyn KeyProvider<T>>,
    clock: Arc<dyn Clock>,
    ttl: u64,
    state: RwLock<CacheState<T>>,
    // One fetch at a time: concurrent requests on a stale cache share one call.
    fetching: tokio::sync::Mutex<()>,
}

impl<T: KeyDocument> KeyCache<T> {
    /// A cache with nothing fetched yet.
    pub fn new(provider: Arc<dyn KeyProvider<T>>, clock: Arc<dyn Clock>, ttl: u64) -> Self {
        Self {
            provider,
            clock,
            ttl,
            state: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn fresh(&self) -> Option<Arc<T>> {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let keys = state.keys.as_ref()?;
        (self.clock.now() < state.fetched_at.saturating_add(self.ttl)).then(|| keys.clone())
    }

    /// The current key set, fetching it when missing or older than the TTL.
    pub async fn current(&self) -> Result<Arc<T>, AuthError> {
        Ok(self.current_or_fetched().await?.0)
    }

    /// [`Self::current`], and whether this call fetched it.
    async fn current_or_fetched(&self) -> Result<(Arc<T>, bool), AuthError> {
        if let Some(keys) = self.fresh() {
            return Ok((keys, false));
        }
        let _guard = self.fetching.lock().await;
        if let Some(keys) = self.fresh() {
            return Ok((keys, false));
        }
        let before = self.state.read().unwrap_or_else(|e| e.into_inner()).good_fetches;
        let keys = self.fetch_now().await?;
        // A stale set served during an outage was not fetched now.
        let fetched = self.state.read().unwrap_or_else(|e| e.into_inner()).good_fetches != before;
        Ok((keys, fetched))
    }

    /// The key set for verifying a token signed with `kid`: re-fetches once when the kid is
    /// unknown (a new key was added), but at most once per 30 s.
    pub async fn for_kid(&self, kid: &str) -> Result<Arc<T>, AuthError> {
        // The warm path, taken by nearly every request, awaits nothing; the fetching path is
        // boxed so its large future is not built (and copied) on every call.
        match self.fresh() {
            Some(keys) if keys.knows(kid) => Ok(keys),
            _ => Box::pin(self.fetch_for_kid(kid)).await,
        }
    }

    async fn fetch_for_kid(&self, kid: &str) -> Result<Arc<T>, AuthError> {
        let (keys, fetched) = self.current_or_fetched().await?;
        if keys.knows(kid) {
            return Ok(keys);
        }
        if fetched {
            // The fetch this request just made (a cold cache or an expired TTL) is its
            // unknown-kid fetch: a second one at once would read the same set again.
            self.state.write().unwrap_or_else(|e| e.into_inner()).last_unknown_kid_fetch = Some(self.clock.now());
            return Ok(keys);
        }
        let _guard = self.fetching.lock().await;
        let now = self.clock.now();
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if let Some(keys) = state.keys.as_ref().filter(|k| k.knows(kid)) {
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
    async fn fetch_now(&self) -> Result<Arc<T>, AuthError> {
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
                state.good_fetches += 1;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{PublicKeys, SigningKeys};
    use crate::testing::{FixedClock, StaticKeys};

    #[tokio::test]
    async fn cache_refetches_after_ttl_and_at_most_every_30s_for_unknown_kids() {
        let clock = Arc::new(FixedClock::new(1_000));
        let provider = Arc::new(StaticKeys::<PublicKeys>::public());
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
    async fn an_unknown_kid_on_a_cold_or_expired_cache_costs_one_fetch_not_two() {
        let clock = Arc::new(FixedClock::new(1_000));
        let provider = Arc::new(StaticKeys::<PublicKeys>::public());
        let cache = KeyCache::new(provider.clone(), clock.clone(), 300);
        cache.for_kid("nope").await.unwrap();
        assert_eq!(provider.fetches(), 1, "the cold fetch was the unknown kid's fetch");
        cache.for_kid("other").await.unwrap();
        assert_eq!(provider.fetches(), 1, "and counts towards the 30 s limit");
        clock.advance(300);
        cache.for_kid("nope").await.unwrap();
        assert_eq!(provider.fetches(), 2, "the TTL fetch answers the unknown kid too");
        clock.advance(UNKNOWN_KID_REFETCH_SECS);
        cache.for_kid("nope").await.unwrap();
        assert_eq!(provider.fetches(), 3, "a fresh set, an unknown kid: one re-fetch");
    }

    #[tokio::test]
    async fn cache_fails_closed_when_the_provider_fails() {
        let clock = Arc::new(FixedClock::new(1_000));
        let provider = Arc::new(StaticKeys::<SigningKeys>::signing());
        provider.set_failing(true);
        let cache = KeyCache::new(provider.clone(), clock, 300);
        assert!(matches!(cache.current().await, Err(AuthError::Unavailable(_))));
    }

    #[tokio::test]
    async fn an_outage_serves_the_last_good_set_for_a_bounded_time_and_backs_off() {
        let clock = Arc::new(FixedClock::new(1_000));
        let provider = Arc::new(StaticKeys::<SigningKeys>::signing());
        let cache = KeyCache::new(provider.clone(), clock.clone(), 300);
        cache.current().await.unwrap();
        provider.set_failing(true);
        clock.advance(300);
        assert!(cache.current().await.is_ok(), "stale set served");
        assert_eq!(provider.fetches(), 2);
        for _ in 0..10 {
            cache.current().await.unwrap();
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
        let provider = Arc::new(StaticKeys::<SigningKeys>::signing());
        let cache = KeyCache::new(provider.clone(), clock.clone(), 300);
        cache.current().await.unwrap();
        provider.set_json(r#"{"keys":[],"refresh_pepper":"x"}"#);
        clock.advance(300);
        assert!(matches!(cache.current().await, Err(AuthError::Unavailable(_))), "fails closed at once");
        provider.set_json(crate::testing::SIGNING_KEYS_JSON);
        clock.advance(FETCH_BACKOFF_SECS);
        assert!(cache.current().await.is_ok(), "and recovers with a good set");
    }
}
