//! Test support (feature `test-util`): a settable clock, a key provider that counts its
//! fetches, in-memory stores with the same conditional semantics as DynamoDB, fixtures.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use async_trait::async_trait;

mod factors;

pub use factors::MemoryFactors;

use crate::claims::Authentication;
use crate::clock::Clock;
use crate::config::Config;
use crate::error::AuthError;
use crate::keys::rotation::SigningKeySet;
use crate::keys::{FetchError, KeyCache, KeyDocument, KeyProvider, PublicKeys, SigningKeys};
use crate::links::{IssuedLink, LinkPurpose};
use crate::mail::{Mail, Mailer};
use crate::service::AuthService;
use crate::store::{
    AttemptReservation, LinkStore, LoginThrottle, Revocation, RevokeIf, Rotation, RotationOutcome, SessionRecord, SessionStanding, SessionStore, StandingStore,
    UserRecord, UserStanding, UserStore,
};
use crate::tokens::{SessionId, TokenHash};

/// A clock that only moves when told to.
#[derive(Debug)]
pub struct FixedClock(AtomicU64);

impl FixedClock {
    /// Starts at `now` epoch seconds.
    pub fn new(now: u64) -> Self {
        Self(AtomicU64::new(now))
    }
    /// Moves forward.
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The private key set of the tests: ES256 key `k1` signs, EdDSA key `k0` and RS256 key
/// `k2` are retired (published, still verifying), and a refresh pepper.
pub const SIGNING_KEYS_JSON: &str = concat!(
    r#"{"keys":["#,
    r#"{"kid":"k0","alg":"EdDSA","state":"retired","private_key":"MC4CAQAwBQYDK2VwBCIEILh3bZjEGLx2dxFcjuLTD3FVPv_LU6C8xHC3cIeiGqFB","created_at":1,"activated_at":1,"retired_at":2},"#,
    r#"{"kid":"k2","alg":"RS256","state":"retired","private_key":"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCGZiOVvAnhWA3_xZDa0On1vcICKgZVoBDA2PP8NojlMaEtvIA1KuueqLwqlCljdf1ZMcr8tniM7gO1hKw0Efuo0_nBjYJ92IeYKznmZDmoDokcwnQYeRNHr8vdCwb0cryX-T80EGTV5I_pbzroVdRNzIhJOloiOQwdIsKxkxwz5SpAa0jnngi_paQtjpmVFaFc6bYVBgrmkU-F6hGeLChG_wQPMNyGrzRmjg35q3IczR7po5r8FrLmQbS8FZZ0c3g-v6oPwk0EzH4oehOBGRhU66X7tYNLdStbbJQHHalbcJFfrrMcZT_GKTjU9EDwXyaUL4egS-z7mniiQ2DmBszvAgMBAAECggEAAq0b_kpNRBB1zucHOGQ6lGsf5t0hXSkfzEdFrHsFhNLVK8z6HJTrNjCT9qEWpeVekx0btqaHhf7jUgT_TNYi1bzK12DS_WCHaq9Jqt3KDB-l-U2h9C7NBHtqqs8iZ1G1ka0j5gyBhYTUnMhbOu8imB3_hL3Ft7K9HANqLxEH2byqFDzGby60GUgdmeMQTru_9w-Q9ibeVqvGp_64jQgMpj0BSVgXxFGhhRkIqkiUQB8D2v02bXFuNVxeKR1XDOoK3q73OjoJfRzb1YwKIbSByrjjrmbKmWqiEXZaLikhrMxBelv5dw2BFUX0Tl0d5mfWA7wekQEnSduY_uXV0xezgQKBgQC9K2X-9fs5wB3Eus0wUvOVI3AAmhUedNmEbgqW8pJp4B9Eit8aN4iPQOUIt6pg3QZacK0wFp9690BEP_d-KrrXcN7e0JX19xFJ3mcnSrXwVeu0IvViHUe6dIeWjDB4ezVQAwFMEO2LkZ7J_t-qZaFKJR87dMbB7LoZoFSpgXVWQQKBgQC14ULBBsuOdiuyVDgOFGoZzBr0gXKw5jg4NTlp2TCo9omG86swq9xULsWC8IvZmJa19IkR50JSQtpMsAEHkFLb55vCk927dmrJGgmR1C2BNTRwUX9k0VgcVaWyo6sdRdxBcAJgwxZgrlqmfFkyAExkqLYAOnvkCvm0otLqNvQ3LwKBgDbhUUzfhgviDYDWhNLBLgOVbVfvW7MjSTufRRk3tHxc1hVniIQtmkOdGxUlW5uQY9h3Gfd6iLf-5TknqaCDuwLnrvDLaMYb8HsSt7Bxf0kDVEdFYRUe04FnbzKg5yr866GTzZuIybGVBJErjS39IAbHsEDqhwMZr3_hwM4QTb9BAoGARg1fAq21VUeaiPL7LCEcxJbigu4g2JWzbaLCXEx0-38JdVsAwpxPHnVtSYOQudyVn7tx1910o-5v2j2oB9vErkJEser16jAv7QkESpCofi2Z5vDc2l3vS-qJCYcUbw_rR6D2qYI6aj59V8ZpLGMFCXgZsXjVIv4_Mx3Lkr5bza0CgYEAsc7ewUyB_vh1c0dR42kNt2aIBgoGQnQtBQNedTRBhpF-WfF0OXIWhsPB1_UkHKPSkn0IsiVwHN0tsZHVhcFDTgbFt2uC6-3OBDdXOy_rq1Rqw9MOUE-4OWH4pmqEza0WBkkuDTNYKf8LZd01WPWbHEqyn9gaABxrrGF8tYzArRo","created_at":1,"activated_at":2,"retired_at":3},"#,
    r#"{"kid":"k1","alg":"ES256","state":"active","private_key":"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgU1QylttFn0n4_jKlTds92G-kl-Xe_SIBu_XvhM5AoaWhRANCAARk3L_UN2ZXMQmj-zyPUuwd8ztV-pV3AOCsSSMXKJJ5El9RfFIWc_FzSbjKmTsfYomM9VvF6aF9RtK2MT7X-Aoc","created_at":1,"activated_at":3}"#,
    r#"],"refresh_pepper":"cmVmcmVzaC1wZXBwZXItZm9yLXRlc3RzLW9ubHktMzJieXRlcw"}"#
);

/// The parsed [`SIGNING_KEYS_JSON`], as the functions load it.
pub fn signing_keys() -> SigningKeys {
    #[allow(clippy::expect_used)]
    SigningKeys::from_json(SIGNING_KEYS_JSON).expect("test key set parses")
}

/// The stored form of [`SIGNING_KEYS_JSON`], with every private key.
pub fn signing_key_set() -> SigningKeySet {
    #[allow(clippy::expect_used)]
    SigningKeySet::from_json(SIGNING_KEYS_JSON).expect("test key set parses")
}

/// The public JWKS of [`SIGNING_KEYS_JSON`], as published.
pub fn public_jwks_json() -> String {
    #[allow(clippy::expect_used)]
    let jwks = signing_key_set().public_jwks().expect("test keys are valid");
    serde_json::to_string(&jwks).unwrap_or_default()
}

/// The parsed [`public_jwks_json`], as verifiers load it.
pub fn public_keys() -> PublicKeys {
    #[allow(clippy::expect_used)]
    PublicKeys::from_json(&public_jwks_json()).expect("test JWKS parses")
}

/// Cases per property of the parsers' property tests: 2,000, or `PROPTEST_CASES` for a
/// longer run.
pub fn property_cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(2000)
}

/// `text` with one character replaced by `c`, `c` inserted, or one character removed (`how`
/// 0, 1 or anything else), at `at` modulo its length: the parsers' property tests' mutations.
pub fn edit(text: &str, at: usize, c: char, how: u8) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return c.to_string();
    }
    let i = at % chars.len();
    match how {
        0 => chars[i] = c,
        1 => chars.insert(i, c),
        _ => {
            chars.remove(i);
        }
    }
    chars.into_iter().collect()
}

/// A configuration for tests: issuer `https://auth.test`, audience `api`, origin
/// `https://app.test` allowed, everything else default.
pub fn config() -> Config {
    config_with(&[])
}

/// [`config`] with extra variables.
pub fn config_with(extra: &[(&str, &str)]) -> Config {
    let mut vars: HashMap<String, String> = [
        ("AUTH_ISSUER", "https://auth.test"),
        ("AUTH_AUDIENCE", "api"),
        ("ALLOWED_ORIGINS", "https://app.test"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    #[allow(clippy::expect_used)]
    Config::from_lookup(|name| vars.get(name).cloned()).expect("test configuration is valid")
}

/// A key provider serving a fixed document (or a replacement), counting fetches, and
/// failing on demand.
pub struct StaticKeys<T> {
    fetches: AtomicUsize,
    failing: AtomicBool,
    json: Mutex<String>,
    document: std::marker::PhantomData<fn() -> T>,
}

impl StaticKeys<SigningKeys> {
    /// Serves [`SIGNING_KEYS_JSON`].
    pub fn signing() -> Self {
        Self::serving(SIGNING_KEYS_JSON.to_owned())
    }
}

impl StaticKeys<PublicKeys> {
    /// Serves [`public_jwks_json`].
    pub fn public() -> Self {
        Self::serving(public_jwks_json())
    }
}

impl<T> StaticKeys<T> {
    fn serving(json: String) -> Self {
        Self {
            fetches: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
            json: Mutex::new(json),
            document: std::marker::PhantomData,
        }
    }
    /// How many times the set was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
    /// Makes every fetch fail (like Secrets Manager being unreachable).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
    /// Serves another document from now on.
    pub fn set_json(&self, json: &str) {
        *self.json.lock().unwrap_or_else(|e| e.into_inner()) = json.to_owned();
    }
}

#[async_trait]
impl<T: KeyDocument> KeyProvider<T> for StaticKeys<T> {
    async fn fetch(&self) -> Result<T, FetchError> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(FetchError::Unreachable(AuthError::unavailable("GetSecretValue", "test provider is failing")));
        }
        let json = self.json.lock().unwrap_or_else(|e| e.into_inner()).clone();
        T::from_json(&json).map_err(|e| FetchError::Refused(e.into()))
    }
}

/// Sessions in memory, with DynamoDB's conditional-write semantics, counting writes.
#[derive(Default)]
pub struct MemorySessions {
    items: Mutex<HashMap<SessionId, SessionRecord>>,
    writes: AtomicUsize,
    gets: AtomicUsize,
    listed: AtomicUsize,
    revoke_delay_ms: AtomicU64,
}

impl MemorySessions {
    /// How many single-session reads (`get`) happened.
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }
    /// Makes every revocation take `ms` milliseconds (of tokio's clock: pause it in tests).
    pub fn set_revoke_delay_ms(&self, ms: u64) {
        self.revoke_delay_ms.store(ms, Ordering::SeqCst);
    }
    /// How many listings (`list_for_user`) happened.
    pub fn listings(&self) -> usize {
        self.listed.load(Ordering::SeqCst)
    }
    /// How many successful writes happened.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
    /// A copy of one stored session.
    pub fn stored(&self, id: &SessionId) -> Option<SessionRecord> {
        self.lock().get(id).cloned()
    }
    /// Replaces a stored session (to set up expiry cases).
    pub fn put(&self, session: SessionRecord) {
        self.lock().insert(session.session_id.clone(), session);
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionId, SessionRecord>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl SessionStore for MemorySessions {
    async fn create(&self, session: &SessionRecord) -> Result<(), AuthError> {
        let mut items = self.lock();
        if items.contains_key(&session.session_id) {
            return Err(AuthError::unavailable("create session", "id taken"));
        }
        items.insert(session.session_id.clone(), session.clone());
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn rotate(&self, r: &Rotation) -> Result<RotationOutcome, AuthError> {
        let mut items = self.lock();
        let Some(session) = items.get_mut(&r.session_id) else {
            return Ok(RotationOutcome::Rejected(None));
        };
        if !r.permits(session) {
            return Ok(RotationOutcome::Rejected(Some(session.clone())));
        }
        r.apply(session);
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(RotationOutcome::Rotated(session.clone()))
    }

    async fn revoke(&self, id: &SessionId, condition: RevokeIf<'_>, reason: &str, now: u64) -> Result<Revocation, AuthError> {
        let delay = self.revoke_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let mut items = self.lock();
        let Some(session) = items.get_mut(id) else {
            return Ok(Revocation::Refused(None));
        };
        if !condition.permits(session, now) {
            return Ok(Revocation::Refused(Some(session.clone())));
        }
        let before = session.clone();
        session.revoke(reason, now);
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(Revocation::Revoked(before))
    }

    async fn set_auth(&self, id: &SessionId, user_id: &str, auth: &Authentication, now: u64) -> Result<bool, AuthError> {
        let mut items = self.lock();
        match items.get_mut(id) {
            Some(session) if session.user_id == user_id && session.is_live(now) => {
                session.auth = auth.clone();
                self.writes.fetch_add(1, Ordering::SeqCst);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get(&self, id: &SessionId) -> Result<Option<SessionRecord>, AuthError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        Ok(self.lock().get(id).cloned())
    }

    async fn list_for_user(&self, user_id: &str, limit: usize) -> Result<Vec<SessionId>, AuthError> {
        self.listed.fetch_add(1, Ordering::SeqCst);
        let mut mine: Vec<(u64, SessionId)> = self
            .lock()
            .values()
            .filter(|s| s.user_id == user_id)
            .map(|s| (s.created_at, s.session_id.clone()))
            .collect();
        mine.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.as_str().cmp(b.1.as_str())));
        Ok(mine.into_iter().take(limit).map(|(_, id)| id).collect())
    }
}

/// Users and throttle state in memory; the sessions too, for the password change's
/// transaction over a user and a session.
#[derive(Default)]
pub struct MemoryUsers {
    sessions: Arc<MemorySessions>,
    users: Mutex<HashMap<String, UserRecord>>,
    throttles: Mutex<HashMap<String, LoginThrottle>>,
    on_reserve: Mutex<Option<ReserveHook>>,
    on_get: Mutex<Option<ReserveHook>>,
    links: Mutex<Links>,
}

/// The self-service items of [`MemoryUsers`]: link tokens by hash (purpose, owner,
/// expiry), each user's current link per purpose, and e-mail counters.
#[derive(Default)]
struct Links {
    issued: HashMap<[u8; 32], (LinkPurpose, String, u64)>,
    current: HashMap<(String, LinkPurpose), [u8; 32]>,
    counters: HashMap<String, u64>,
}

/// What [`MemoryUsers::on_reserve`] runs.
type ReserveHook = Box<dyn Fn(&MemoryUsers) + Send + Sync>;

impl MemoryUsers {
    /// Users whose password change transactions also write `sessions`.
    pub fn with_sessions(sessions: Arc<MemorySessions>) -> Self {
        Self { sessions, ..Self::default() }
    }
    /// Runs `hook` at every attempt reservation, after the user was read (a password check
    /// reads the user, then reserves): what happens meanwhile, e.g. time passing or another
    /// write landing.
    pub fn on_reserve(&self, hook: impl Fn(&MemoryUsers) + Send + Sync + 'static) {
        *self.on_reserve.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
    }
    /// Runs `hook` at every read of a user, before it is read: a write landing just before.
    pub fn on_get(&self, hook: impl Fn(&MemoryUsers) + Send + Sync + 'static) {
        *self.on_get.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
    }
    /// A copy of a user, read without running any hook.
    pub fn peek(&self, username: &str) -> Option<UserRecord> {
        self.users.lock().unwrap_or_else(|e| e.into_inner()).get(username).cloned()
    }
    /// Replaces a user.
    pub fn put(&self, user: UserRecord) {
        self.users.lock().unwrap_or_else(|e| e.into_inner()).insert(user.username.clone(), user);
    }
    /// The throttle state of a username.
    pub fn throttle(&self, username: &str) -> LoginThrottle {
        self.throttles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(username)
            .copied()
            .unwrap_or_default()
    }
}

#[async_trait]
impl UserStore for MemoryUsers {
    async fn get(&self, username: &str) -> Result<Option<UserRecord>, AuthError> {
        if let Some(hook) = &*self.on_get.lock().unwrap_or_else(|e| e.into_inner()) {
            hook(self);
        }
        Ok(self.users.lock().unwrap_or_else(|e| e.into_inner()).get(username).cloned())
    }
    async fn reserve_attempt(&self, username: &str, now: u64) -> Result<AttemptReservation, AuthError> {
        if let Some(hook) = &*self.on_reserve.lock().unwrap_or_else(|e| e.into_inner()) {
            hook(self);
        }
        let mut throttles = self.throttles.lock().unwrap_or_else(|e| e.into_inner());
        Ok(throttles.entry(username.to_owned()).or_default().reserve(now))
    }
    async fn record_failure(&self, username: &str, attempts: u32, now: u64) -> Result<(), AuthError> {
        let mut throttles = self.throttles.lock().unwrap_or_else(|e| e.into_inner());
        throttles.entry(username.to_owned()).or_default().record_failure(attempts, now);
        Ok(())
    }
    async fn clear_attempts(&self, username: &str) -> Result<(), AuthError> {
        self.throttles.lock().unwrap_or_else(|e| e.into_inner()).remove(username);
        Ok(())
    }
    async fn create(&self, user: &UserRecord) -> Result<bool, AuthError> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if users.contains_key(&user.username) {
            return Ok(false);
        }
        users.insert(user.username.clone(), user.clone());
        Ok(true)
    }
    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, AuthError> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let Some(user) = users.get_mut(username) else { return Ok(false) };
        user.disabled = disabled;
        if disabled {
            user.session_epoch += 1;
        }
        Ok(true)
    }
    async fn set_password(&self, username: &str, password_hash: &str, now: u64) -> Result<bool, AuthError> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let Some(user) = users.get_mut(username) else { return Ok(false) };
        user.password_hash = password_hash.to_owned();
        user.password_changed_at = now;
        user.session_epoch += 1;
        Ok(true)
    }
    async fn change_password(&self, username: &str, verified_hash: &str, new_hash: &str, keep: &SessionRecord, now: u64) -> Result<bool, AuthError> {
        // Both locks held: the two writes land together or not at all, as a transaction.
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let mut sessions = self.sessions.lock();
        let epoch = keep.epoch();
        let Some(user) = users.get_mut(username).filter(|u| u.password_hash == verified_hash && u.session_epoch == epoch) else {
            return Ok(false);
        };
        let Some(session) = sessions
            .get_mut(&keep.session_id)
            .filter(|s| s.user_id == keep.user_id && s.is_live(now) && s.epoch() == epoch)
        else {
            return Ok(false);
        };
        user.password_hash = new_hash.to_owned();
        user.password_changed_at = now;
        user.session_epoch = epoch + 1;
        session.session_epoch = Some(epoch + 1);
        Ok(true)
    }
    async fn set_roles(&self, username: &str, roles: &[String]) -> Result<bool, AuthError> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let Some(user) = users.get_mut(username) else { return Ok(false) };
        user.roles = roles.to_vec();
        Ok(true)
    }
    async fn bump_session_epoch(&self, username: &str, epoch: u64) -> Result<bool, AuthError> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        match users.get_mut(username) {
            Some(user) if user.session_epoch == epoch => {
                user.session_epoch = epoch + 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

impl MemoryUsers {
    fn links(&self) -> std::sync::MutexGuard<'_, Links> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored link hashes (to check that no token is stored in the clear).
    pub fn link_hashes(&self) -> Vec<[u8; 32]> {
        self.links().issued.keys().copied().collect()
    }

    /// Deletes the link and applies `change` to its user, only while the link is `owner`'s,
    /// unexpired, of `purpose` and the user's current one, and `change` accepts the user
    /// (it returns `false` to refuse, changing nothing): the transaction of the DynamoDB
    /// store, under both locks.
    fn use_link(&self, hash: &TokenHash, purpose: LinkPurpose, owner: &str, now: u64, change: impl FnOnce(&mut UserRecord) -> bool) -> bool {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let mut links = self.links();
        let usable = links
            .issued
            .get(&hash.0)
            .is_some_and(|(p, o, expires_at)| *p == purpose && o == owner && now < *expires_at)
            && links.current.get(&(owner.to_owned(), purpose)) == Some(&hash.0);
        if !usable || !users.get_mut(owner).is_some_and(change) {
            return false;
        }
        links.issued.remove(&hash.0);
        links.current.remove(&(owner.to_owned(), purpose));
        true
    }
}

#[async_trait]
impl LinkStore for MemoryUsers {
    async fn create_unverified(&self, user: &UserRecord, now: u64) -> Result<bool, AuthError> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        if users.get(&user.username).is_some_and(|u| u.email_verified || u.is_present(now)) {
            return Ok(false);
        }
        users.insert(user.username.clone(), user.clone());
        // A new item: the pointers of the expired one it replaces are gone, as in DynamoDB.
        self.links().current.retain(|(owner, _), _| *owner != user.username);
        Ok(true)
    }
    async fn issue_link(&self, username: &str, link: &IssuedLink) -> Result<bool, AuthError> {
        if self.peek(username).is_none() {
            return Ok(false);
        }
        let mut links = self.links();
        links.issued.insert(link.hash.0, (link.purpose, username.to_owned(), link.expires_at));
        links.current.insert((username.to_owned(), link.purpose), link.hash.0);
        Ok(true)
    }
    async fn link_owner(&self, hash: &TokenHash, purpose: LinkPurpose, now: u64) -> Result<Option<String>, AuthError> {
        Ok(self
            .links()
            .issued
            .get(&hash.0)
            .filter(|(p, _, expires_at)| *p == purpose && now < *expires_at)
            .map(|(_, owner, _)| owner.clone()))
    }
    async fn verify_email(&self, hash: &TokenHash, owner: &str, password_hash: &str, now: u64) -> Result<bool, AuthError> {
        Ok(self.use_link(hash, LinkPurpose::VerifyEmail, owner, now, |user| {
            let accepted = user.password_hash == password_hash && user.is_present(now);
            if accepted {
                user.email_verified = true;
                user.expires_at = None;
            }
            accepted
        }))
    }
    async fn replace_unverified_password(&self, username: &str, password_hash: &str, now: u64) -> Result<bool, AuthError> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        match users.get_mut(username) {
            Some(user) if !user.email_verified && user.is_present(now) => {
                user.password_hash = password_hash.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn reset_password(&self, hash: &TokenHash, owner: &str, new_hash: &str, now: u64) -> Result<bool, AuthError> {
        Ok(self.use_link(hash, LinkPurpose::ResetPassword, owner, now, |user| {
            user.password_hash = new_hash.to_owned();
            user.password_changed_at = now;
            user.session_epoch += 1;
            true
        }))
    }
    async fn count_mail(&self, key: &str, limit: u64, now: u64) -> Result<bool, AuthError> {
        let mut links = self.links();
        let sent = links.counters.entry(format!("{key}#{}", now / 3600)).or_default();
        if *sent >= limit {
            return Ok(false);
        }
        *sent += 1;
        Ok(true)
    }
}

/// A mailer that keeps what it was asked to send, or fails on purpose.
#[derive(Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<Mail>>,
    failing: AtomicBool,
}

impl MemoryMailer {
    /// Everything sent so far.
    pub fn sent(&self) -> Vec<Mail> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// The link token in the last message to `to`, if any.
    pub fn last_token(&self, to: &str) -> Option<String> {
        let sent = self.sent();
        let mail = sent.iter().rev().find(|m| m.to == to)?;
        Some(mail.text.split("#token=").nth(1)?.split_whitespace().next()?.to_owned())
    }
    /// Makes every send fail (or work again).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, mail: &Mail) -> Result<(), AuthError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(AuthError::unavailable("SendEmail", "failing on purpose"));
        }
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).push(mail.clone());
        Ok(())
    }
}

/// Log lines captured by [`capture_logs`].
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<CapturedLogs>> = const { std::cell::RefCell::new(None) };
}

/// Writes into the capture buffer of the current thread, if any.
struct ThreadCaptureWriter;

impl std::io::Write for ThreadCaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(logs) = &*c.borrow() {
                logs.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Stops capturing when dropped.
pub struct CaptureGuard(());

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

/// Captures this thread's log lines, in the production JSON format, until the guard is
/// dropped. One global subscriber serves every test (a thread-scoped subscriber races
/// with tracing's per-callsite cache when tests run in parallel); use it from a
/// current-thread test runtime.
pub fn capture_logs() -> (CaptureGuard, CapturedLogs) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let _ = tracing::subscriber::set_global_default(crate::telemetry::json_subscriber(|| ThreadCaptureWriter));
    });
    let logs = CapturedLogs::default();
    CAPTURE.with(|c| *c.borrow_mut() = Some(logs.clone()));
    (CaptureGuard(()), logs)
}

/// A service over in-memory stores and a fixed clock, with handles to all of them.
pub struct TestBed {
    /// The service under test.
    pub service: AuthService,
    /// Its users.
    pub users: Arc<MemoryUsers>,
    /// Its sessions.
    pub sessions: Arc<MemorySessions>,
    /// Its users' second factors and login challenges.
    pub factors: Arc<MemoryFactors>,
    /// Its key provider.
    pub keys: Arc<StaticKeys<SigningKeys>>,
    /// Its clock.
    pub clock: Arc<FixedClock>,
    /// Its configuration.
    pub config: Config,
}

/// The strict authorizer's reads over a [`TestBed`]'s stores, counting requests, and on
/// demand failing, never answering, or missing sessions in eventually consistent reads
/// (as a DynamoDB replica may for an item written a moment ago).
#[derive(Default)]
pub struct MemoryStanding {
    users: Arc<MemoryUsers>,
    sessions: Arc<MemorySessions>,
    requests: AtomicUsize,
    failing: AtomicBool,
    hanging: AtomicBool,
    lagging: AtomicBool,
    stale_users: Mutex<Option<HashMap<String, UserStanding>>>,
    stale_sessions: Mutex<Option<HashMap<SessionId, SessionStanding>>>,
}

impl MemoryStanding {
    /// Over `bed`'s stores.
    pub fn of(bed: &TestBed) -> Self {
        Self {
            users: bed.users.clone(),
            sessions: bed.sessions.clone(),
            ..Self::default()
        }
    }
    /// How many requests so far (a read of both items is one).
    pub fn reads(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
    /// Makes every read fail (or work again).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
    /// Makes every read wait forever (or answer again).
    pub fn set_hanging(&self, hanging: bool) {
        self.hanging.store(hanging, Ordering::SeqCst);
    }
    /// Makes eventually consistent reads miss every session (or see them again).
    pub fn set_lagging(&self, lagging: bool) {
        self.lagging.store(lagging, Ordering::SeqCst);
    }

    async fn request(&self) -> Result<(), AuthError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        if self.hanging.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(AuthError::unavailable("standing", "failing on purpose"));
        }
        Ok(())
    }

    /// Makes eventually consistent reads of users show them as they are now, whatever
    /// happens to them next, until called with `false`.
    pub async fn set_users_lagging(&self, lagging: bool) {
        let snapshot = match lagging {
            true => Some(
                self.users
                    .users
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .map(|(name, user)| (name.clone(), user.standing()))
                    .collect(),
            ),
            false => None,
        };
        *self.stale_users.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    /// Makes eventually consistent reads of sessions show them as they are now, whatever
    /// happens to them next, until called with `false`.
    pub fn set_sessions_stale(&self, stale: bool) {
        let snapshot = stale.then(|| self.sessions.lock().iter().map(|(id, s)| (id.clone(), s.standing())).collect());
        *self.stale_sessions.lock().unwrap_or_else(|e| e.into_inner()) = snapshot;
    }

    fn session_now(&self, session_id: &SessionId, consistent: bool) -> Option<SessionStanding> {
        if !consistent && let Some(stale) = &*self.stale_sessions.lock().unwrap_or_else(|e| e.into_inner()) {
            return stale.get(session_id).cloned();
        }
        let lagging = !consistent && self.lagging.load(Ordering::SeqCst);
        self.sessions.stored(session_id).filter(|_| !lagging).map(|s| s.standing())
    }

    async fn user_now(&self, username: &str, consistent: bool) -> Result<Option<UserStanding>, AuthError> {
        if !consistent && let Some(stale) = &*self.stale_users.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(stale.get(username).cloned());
        }
        Ok(UserStore::get(&*self.users, username).await?.map(|u| u.standing()))
    }
}

#[async_trait]
impl StandingStore for MemoryStanding {
    async fn session(&self, session_id: &SessionId, consistent: bool) -> Result<Option<SessionStanding>, AuthError> {
        self.request().await?;
        Ok(self.session_now(session_id, consistent))
    }
    async fn user(&self, username: &str, consistent: bool) -> Result<Option<UserStanding>, AuthError> {
        self.request().await?;
        self.user_now(username, consistent).await
    }
    async fn both(&self, session_id: &SessionId, username: &str) -> Result<(Option<SessionStanding>, Option<UserStanding>), AuthError> {
        self.request().await?;
        Ok((self.session_now(session_id, false), self.user_now(username, false).await?))
    }
}

/// The demo user of [`TestBed`]: `alice@example.com` / `correct horse battery staple`.
pub const ALICE: (&str, &str) = ("alice@example.com", "correct horse battery staple");

impl TestBed {
    /// A service with user [`ALICE`] (role `user`), starting at a fixed instant.
    pub fn new(config: Config) -> Self {
        let sessions = Arc::new(MemorySessions::default());
        let users = Arc::new(MemoryUsers::with_sessions(sessions.clone()));
        #[allow(clippy::expect_used)]
        let password_hash = crate::password::hash_password(&ALICE.1.to_owned().into()).expect("hashing works");
        users.put(UserRecord::new(ALICE.0, "user-alice", password_hash, vec!["user".into()]));
        let keys = Arc::new(StaticKeys::signing());
        let clock = Arc::new(FixedClock::new(1_700_000_000));
        let cache = Arc::new(KeyCache::new(keys.clone(), clock.clone(), config.key_cache_ttl));
        let factors = Arc::new(MemoryFactors::default());
        let service = AuthService::new(&config, users.clone(), sessions.clone(), factors.clone(), cache, clock.clone());
        Self {
            service,
            users,
            sessions,
            factors,
            keys,
            clock,
            config,
        }
    }
}
