//! Strict revocation (`REVOCATION_CHECK=session`): after a token's signature and claims
//! pass, the authorizer also confirms that its session is live and its user still accepts
//! it, the rule refresh applies. The answer comes from DynamoDB at most
//! `REVOCATION_MAX_STALENESS` seconds old: each container keeps what it read per session
//! id in a bounded LRU cache, so a busy session costs one read per window, not one per
//! request, and a flood of distinct ids cannot grow memory without bound.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;

use crate::clock::Clock;
use crate::config::{Config, RevocationFail};
use crate::error::AuthError;
use crate::store::{Standing, StandingStore};
use crate::tokens::SessionId;

/// The most session ids one container remembers; the least recently used is forgotten
/// first. 10,000 entries of about 300 bytes: a few MB at most.
pub const MAX_CACHED_SESSIONS: usize = 10_000;

/// The longest one check may wait for DynamoDB, all its reads together: well inside the
/// function's 5 s timeout (each SDK operation alone may take up to 4 s with its retries),
/// so that a slow table gets the answer `REVOCATION_FAIL` chooses, not a Lambda timeout
/// that API Gateway turns into a 500.
pub const READ_DEADLINE: Duration = Duration::from_millis(1500);

/// Why a token was refused after its signature and claims passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The session is revoked, expired, unknown, another user's, or its user no longer
    /// accepts it (disabled, or its epoch moved on: logout everywhere, password change).
    NotLive,
    /// The tables could not be read and `REVOCATION_FAIL=closed`.
    Unavailable,
}

/// What one read found, and when (epoch seconds).
struct Cached {
    standing: Option<Arc<Standing>>,
    read_at: u64,
}

/// What the cache says about a session id.
enum Lookup {
    /// Enough to answer: a read within the window, or one whose verdict is final (an
    /// unknown session, or one dead for good). `None`: no such session.
    Known(Option<Arc<Standing>>),
    /// Read it (again); the username, once known, lets one request fetch both items.
    Read { username: Option<String> },
}

/// The session check of the strict authorizer.
pub struct SessionCheck {
    store: Arc<dyn StandingStore>,
    clock: Arc<dyn Clock>,
    max_staleness: u64,
    fail: RevocationFail,
    deadline: Duration,
    cache: Mutex<LruCache<SessionId, Cached>>,
}

impl SessionCheck {
    /// The check for `config` (`REVOCATION_MAX_STALENESS`, `REVOCATION_FAIL`) over `store`.
    pub fn new(config: &Config, store: Arc<dyn StandingStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            max_staleness: config.revocation_max_staleness,
            fail: config.revocation_fail,
            deadline: READ_DEADLINE,
            cache: Mutex::new(LruCache::new(NonZeroUsize::new(MAX_CACHED_SESSIONS).unwrap_or(NonZeroUsize::MIN))),
        }
    }

    /// The same with another deadline for the reads (tests).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Opens the DynamoDB connection during cold start.
    pub async fn warm(&self) {
        self.store.warm().await;
    }

    /// How many session ids are remembered now.
    pub fn cached(&self) -> usize {
        self.lock().len()
    }

    /// Whether the session `sid` of a token of `sub` may be used now. A read younger than
    /// the staleness bound answers from memory, and so does one that found the session
    /// dead for good (revocations are never undone: no read can bring it back); otherwise
    /// one read (see [`dyn StandingStore::standing`]) replaces it, within [`READ_DEADLINE`].
    /// A failed read is never cached: each request tries again, and `REVOCATION_FAIL`
    /// decides what it answers meanwhile.
    pub async fn confirm(&self, sub: &str, sid: &str) -> Result<(), Refusal> {
        let session_id = SessionId::parse(sid).ok_or(Refusal::NotLive)?;
        let now = self.clock.now();
        let lookup = match self.lock().get(&session_id) {
            None => Lookup::Read { username: None },
            Some(c) if now.saturating_sub(c.read_at) < self.max_staleness => Lookup::Known(c.standing.clone()),
            Some(Cached { standing: None, .. }) => Lookup::Known(None),
            Some(Cached { standing: Some(s), .. }) if s.is_dead_for_good() => Lookup::Known(Some(s.clone())),
            Some(Cached { standing: Some(s), .. }) => Lookup::Read {
                username: Some(s.session.username.clone()),
            },
        };
        let standing = match lookup {
            Lookup::Known(standing) => standing,
            Lookup::Read { username } => {
                let read = tokio::time::timeout(self.deadline, self.store.standing(&session_id, username.as_deref())).await;
                match read.unwrap_or_else(|_| Err(AuthError::unavailable("session standing", "no answer within the deadline"))) {
                    Ok(standing) => {
                        let standing = standing.map(Arc::new);
                        self.lock().put(
                            session_id,
                            Cached {
                                standing: standing.clone(),
                                read_at: now,
                            },
                        );
                        standing
                    }
                    Err(e) => return self.unavailable(&e),
                }
            }
        };
        // SECURITY: evaluated at each request, not at the read: expiry moves on meanwhile.
        match standing {
            Some(standing) if standing.session.user_id == sub && standing.is_live(now) => Ok(()),
            _ => Err(Refusal::NotLive),
        }
    }

    fn unavailable(&self, error: &AuthError) -> Result<(), Refusal> {
        match self.fail {
            RevocationFail::Closed => {
                tracing::error!(cause = %error, "session standing unavailable; denying (REVOCATION_FAIL=closed)");
                Err(Refusal::Unavailable)
            }
            RevocationFail::Open => {
                tracing::warn!(cause = %error, "session standing unavailable; allowing a valid token unchecked (REVOCATION_FAIL=open)");
                Ok(())
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<SessionId, Cached>> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::IssuedTokens;
    use crate::store::UserStore;
    use crate::testing::{ALICE, MemoryStanding, TestBed, capture_logs, config_with};

    const STALENESS: u64 = 5;

    fn bed(extra: &[(&str, &str)]) -> (TestBed, Arc<MemoryStanding>, SessionCheck) {
        let mut vars = vec![("REVOCATION_CHECK", "session"), ("REVOCATION_MAX_STALENESS", "5")];
        vars.extend_from_slice(extra);
        let bed = TestBed::new(config_with(&vars));
        let store = Arc::new(MemoryStanding::of(&bed));
        let check = SessionCheck::new(&bed.config, store.clone(), bed.clock.clone());
        (bed, store, check)
    }

    async fn login(bed: &TestBed) -> IssuedTokens {
        bed.service
            .login(ALICE.0, ALICE.1.to_owned().into(), &Default::default())
            .await
            .unwrap()
            .signed()
            .unwrap()
    }

    async fn confirm(check: &SessionCheck, issued: &IssuedTokens) -> Result<(), Refusal> {
        check.confirm("user-alice", issued.refresh.session_id.as_str()).await
    }

    #[tokio::test]
    async fn a_live_session_is_confirmed_with_one_read_per_staleness_window() {
        let (bed, store, check) = bed(&[]);
        let issued = login(&bed).await;
        for _ in 0..STALENESS {
            for _ in 0..100 {
                assert_eq!(confirm(&check, &issued).await, Ok(()));
            }
            bed.clock.advance(1);
        }
        assert_eq!(store.reads(), 2, "one read for the whole window (the session, then its user)");
        assert_eq!(confirm(&check, &issued).await, Ok(()));
        assert_eq!(store.reads(), 3, "the window passed: read again, both in one request");
    }

    #[tokio::test]
    async fn with_no_staleness_every_request_reads() {
        let (bed, store, check) = bed(&[("REVOCATION_MAX_STALENESS", "0")]);
        let issued = login(&bed).await;
        for _ in 0..3 {
            assert_eq!(confirm(&check, &issued).await, Ok(()));
        }
        assert_eq!(store.reads(), 2 + 1 + 1, "the first sight, then one request each");
    }

    /// Ends `issued`'s session, or makes its user refuse it, the way `path` names.
    async fn revoke(bed: &TestBed, issued: &IssuedTokens, path: &str) {
        let now = bed.clock.now();
        match path {
            "logout" => bed.service.logout(Some(&issued.refresh.encode()), false, &Default::default()).await.unwrap(),
            "logout everywhere, from another session" => {
                let other = login(bed).await;
                bed.service.logout(Some(&other.refresh.encode()), true, &Default::default()).await.unwrap();
            }
            "password change" => assert!(bed.users.set_password(ALICE.0, "$argon2id$new", now).await.unwrap()),
            "user disabled" => assert!(bed.users.set_disabled(ALICE.0, true).await.unwrap()),
            "session expired" => {
                let mut session = bed.sessions.stored(&issued.refresh.session_id).unwrap();
                session.expires_at = now + 1;
                bed.sessions.put(session);
            }
            other => unreachable!("{other}"),
        }
    }

    #[tokio::test]
    async fn every_revocation_is_denied_once_the_window_has_passed_and_not_before_the_event() {
        for path in [
            "logout",
            "logout everywhere, from another session",
            "password change",
            "user disabled",
            "session expired",
        ] {
            let (bed, _, check) = bed(&[]);
            let issued = login(&bed).await;
            assert_eq!(confirm(&check, &issued).await, Ok(()), "{path}: live before the event");
            revoke(&bed, &issued, path).await;
            // Within the window the container may still answer from what it read ...
            bed.clock.advance(STALENESS - 1);
            assert_eq!(confirm(&check, &issued).await, Ok(()), "{path}: the read is at most {STALENESS} s old");
            // ... and once it has passed, the event is seen.
            bed.clock.advance(1);
            assert_eq!(
                confirm(&check, &issued).await,
                Err(Refusal::NotLive),
                "{path}: denied within the staleness bound"
            );
        }
    }

    #[tokio::test]
    async fn unknown_malformed_or_another_users_sessions_are_refused() {
        let (bed, _, check) = bed(&[]);
        let issued = login(&bed).await;
        let sid = issued.refresh.session_id.as_str();
        assert_eq!(check.confirm("user-mallory", sid).await, Err(Refusal::NotLive));
        assert_eq!(check.confirm("user-alice", "not-a-session").await, Err(Refusal::NotLive));
        assert_eq!(check.confirm("user-alice", SessionId::generate().as_str()).await, Err(Refusal::NotLive));
        assert_eq!(check.confirm("user-alice", sid).await, Ok(()));
    }

    #[tokio::test]
    async fn a_burst_of_distinct_session_ids_never_grows_the_cache_past_its_bound() {
        let (bed, store, check) = bed(&[]);
        for _ in 0..MAX_CACHED_SESSIONS + 500 {
            let _ = check.confirm("user-alice", SessionId::generate().as_str()).await;
        }
        assert_eq!(check.cached(), MAX_CACHED_SESSIONS);
        // The most recent entries are the ones kept: a live session read last is answered
        // from memory.
        let issued = login(&bed).await;
        assert_eq!(confirm(&check, &issued).await, Ok(()));
        let reads = store.reads();
        assert_eq!(confirm(&check, &issued).await, Ok(()));
        assert_eq!(store.reads(), reads);
        assert_eq!(check.cached(), MAX_CACHED_SESSIONS);
    }

    #[tokio::test]
    async fn a_table_that_does_not_answer_gets_the_fail_modes_answer_within_the_deadline() {
        for (fail, expected) in [("closed", Err(Refusal::Unavailable)), ("open", Ok(()))] {
            let (bed, store, check) = bed(&[("REVOCATION_FAIL", fail)]);
            let check = check.with_deadline(Duration::from_millis(50));
            let issued = login(&bed).await;
            store.set_hanging(true);
            let answer = tokio::time::timeout(Duration::from_secs(5), confirm(&check, &issued)).await;
            assert_eq!(answer.expect("answered within the deadline, not at the Lambda timeout"), expected, "{fail}");
        }
    }

    #[tokio::test]
    async fn a_session_found_dead_for_good_is_denied_without_a_read_even_when_the_table_fails_open() {
        let (bed, store, check) = bed(&[("REVOCATION_FAIL", "open")]);
        let issued = login(&bed).await;
        assert_eq!(confirm(&check, &issued).await, Ok(()));
        bed.service.logout(Some(&issued.refresh.encode()), false, &Default::default()).await.unwrap();
        bed.clock.advance(STALENESS);
        assert_eq!(confirm(&check, &issued).await, Err(Refusal::NotLive));
        let reads = store.reads();
        bed.clock.advance(STALENESS);
        store.set_failing(true);
        assert_eq!(
            confirm(&check, &issued).await,
            Err(Refusal::NotLive),
            "fail-open never revives a revoked session"
        );
        assert_eq!(store.reads(), reads, "and asks no more");
    }

    #[tokio::test]
    async fn a_session_an_eventually_consistent_read_misses_is_read_again_consistently() {
        let (bed, store, check) = bed(&[]);
        let issued = login(&bed).await;
        store.set_lagging(true);
        assert_eq!(confirm(&check, &issued).await, Ok(()), "a token used right after its login");
        assert_eq!(store.reads(), 3, "eventual miss, consistent read, user");
        assert_eq!(
            check.confirm("user-alice", SessionId::generate().as_str()).await,
            Err(Refusal::NotLive),
            "a session missing from both reads is unknown"
        );
    }

    #[tokio::test]
    async fn a_user_a_lagging_read_shows_refusing_the_session_is_read_again_consistently_before_any_verdict() {
        // Enabled again, then a login at once: the lagging read still shows the user disabled.
        let (bed, store, check) = bed(&[]);
        assert!(bed.users.set_disabled(ALICE.0, true).await.unwrap());
        store.set_users_lagging(true).await;
        assert!(bed.users.set_disabled(ALICE.0, false).await.unwrap());
        let issued = login(&bed).await;
        assert_eq!(confirm(&check, &issued).await, Ok(()), "not denied on a stale user");
        assert_eq!(store.reads(), 4, "session, user (stale), then both again, consistently");
        bed.clock.advance(STALENESS);
        assert_eq!(confirm(&check, &issued).await, Ok(()), "and nothing was cached against it");
    }

    #[tokio::test]
    async fn a_login_right_after_a_logout_everywhere_is_confirmed_though_a_lagging_read_shows_the_old_epoch() {
        let (bed, store, check) = bed(&[]);
        let old = login(&bed).await;
        store.set_users_lagging(true).await;
        bed.service.logout(Some(&old.refresh.encode()), true, &Default::default()).await.unwrap();
        let fresh = login(&bed).await;
        assert_eq!(confirm(&check, &fresh).await, Ok(()));
        assert_eq!(confirm(&check, &old).await, Err(Refusal::NotLive));
    }

    #[tokio::test]
    async fn the_session_its_own_password_change_moved_is_confirmed_though_a_lagging_read_shows_its_old_epoch() {
        let (bed, store, check) = bed(&[]);
        let issued = login(&bed).await;
        let caller = bed.sessions.stored(&issued.refresh.session_id).unwrap();
        store.set_sessions_stale(true);
        // The transaction of `POST /auth/password`: the user and this session to epoch 1.
        let hash = UserStore::get(&*bed.users, ALICE.0).await.unwrap().unwrap().password_hash;
        assert!(
            bed.users
                .change_password(ALICE.0, &hash, "$argon2id$new", &caller, bed.clock.now())
                .await
                .unwrap()
        );
        assert_eq!(confirm(&check, &issued).await, Ok(()), "not denied on a stale session");
        bed.clock.advance(STALENESS);
        assert_eq!(confirm(&check, &issued).await, Ok(()), "and nothing was cached against it");
    }

    #[tokio::test]
    async fn an_unreadable_table_denies_when_closed_and_allows_with_a_log_line_when_open() {
        for (fail, expected) in [("closed", Err(Refusal::Unavailable)), ("open", Ok(()))] {
            let (bed, store, check) = bed(&[("REVOCATION_FAIL", fail)]);
            let issued = login(&bed).await;
            store.set_failing(true);
            let (_guard, logs) = capture_logs();
            assert_eq!(confirm(&check, &issued).await, expected, "{fail}");
            let text = logs.text();
            assert!(text.contains("session standing unavailable"), "{fail}: {text}");
            assert!(text.contains(&format!("REVOCATION_FAIL={fail}")), "{fail}: {text}");
            // A failure is never cached: the next request reads again and is answered.
            store.set_failing(false);
            assert_eq!(confirm(&check, &issued).await, Ok(()), "{fail}");
        }
    }
}
