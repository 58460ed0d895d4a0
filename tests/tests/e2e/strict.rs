//! Strict revocation end to end: the authorizer with `REVOCATION_CHECK=session` over the
//! emulator's tables, each way a session ends, timed from the event to the first denial.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::api::authorizer::Authorizer;
use auth_core::aws::{authorizer_with, session_check};
use auth_core::store::UserStore;
use auth_core::store::dynamodb::DynamoUsers;
use serde_json::json;

use crate::faults::clients;
use crate::harness::*;

/// Seconds of staleness the tests run with (shorter than the default 5, to keep them quick).
const STALENESS: u64 = 2;

async fn strict_app(extra: &[(&str, &str)]) -> (App, Authorizer) {
    let staleness = STALENESS.to_string();
    let mut vars = vec![("REVOCATION_CHECK", "session"), ("REVOCATION_MAX_STALENESS", staleness.as_str())];
    vars.extend_from_slice(extra);
    let app = spawn_app_with(&vars).await;
    let authorizer = authorizer_with(&app.config, app.secrets.clone())
        .unwrap()
        .with_session_check(session_check(&app.config, app.dynamodb.clone()));
    (app, authorizer)
}

async fn allowed(authorizer: &Authorizer, token: &str) -> bool {
    let answer = ask(authorizer, &http_api_authorizer_event(Some(&format!("Bearer {token}")), "GET /pets")).await;
    answer.unwrap()["isAuthorized"] == true
}

/// Asks every 100 ms for `for_at_least`, asserting every answer is an allow.
async fn always_allowed(authorizer: &Authorizer, token: &str, for_at_least: Duration) {
    let started = Instant::now();
    while started.elapsed() < for_at_least {
        assert!(allowed(authorizer, token).await, "a live session was denied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks every 50 ms until denied; the time from `since` to the denial.
async fn time_to_denial(authorizer: &Authorizer, token: &str, since: Instant) -> Duration {
    while allowed(authorizer, token).await {
        assert!(since.elapsed() < Duration::from_secs(STALENESS + 5), "still allowed long after the event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    since.elapsed()
}

/// A login whose token the authorizer has seen (its session cached).
async fn seen_login(app: &App, authorizer: &Authorizer) -> Answer {
    let login = app.login(ALICE, PASSWORD).await;
    assert!(allowed(authorizer, &login.access_token()).await);
    login
}

fn assert_within_bound(path: &str, elapsed: Duration) {
    println!("strict revocation: {path} denied after {} ms", elapsed.as_millis());
    assert!(
        elapsed <= Duration::from_secs(STALENESS + 1),
        "{path}: denied after {elapsed:?}, bound {STALENESS} s + 1 s"
    );
}

/// The ways a session ends for its user.
#[derive(Debug, Clone, Copy)]
enum Revocation {
    Logout,
    LogoutEverywhere,
    PasswordChange,
    UserDisabled,
}

/// Ends `victim`'s session the way `how` names: logout with its own cookie; logout
/// everywhere and the password change from `other`, another session of the same user
/// (which the password change spares); disabling through the users table.
async fn revoke(app: &App, how: Revocation, victim: &Answer, other: &Answer) {
    match how {
        Revocation::Logout => {
            assert_eq!(app.logout_call(Call::post("/auth/logout").cookie(&victim.refresh_cookie())).await.status, 204);
        }
        Revocation::LogoutEverywhere => {
            let everywhere = Call::post("/auth/logout").cookie(&other.refresh_cookie()).json(json!({"everywhere": true}));
            assert_eq!(app.logout_call(everywhere).await.status, 204);
        }
        Revocation::PasswordChange => {
            record_secret("quartz lantern orbit meadow");
            let change = Call::post("/auth/password")
                .header("authorization", &format!("Bearer {}", other.access_token()))
                .json(json!({"current_password": PASSWORD, "new_password": "quartz lantern orbit meadow"}));
            assert_eq!(app.account_call(change).await.status, 204);
        }
        Revocation::UserDisabled => {
            let users = DynamoUsers::new(app.dynamodb.clone(), &app.config.users_table, &app.config.sessions_table);
            assert!(users.set_disabled(ALICE, true).await.unwrap());
        }
    }
}

/// A seen login, another session of the same user, the revocation, then the time to the
/// first denial, asserted within the bound. Returns the other session.
async fn denied_within_the_bound(how: Revocation) -> (App, Authorizer, Answer) {
    let (app, authorizer) = strict_app(&[]).await;
    let victim = seen_login(&app, &authorizer).await;
    let other = app.login(ALICE, PASSWORD).await;
    let event = Instant::now();
    revoke(&app, how, &victim, &other).await;
    assert_within_bound(&format!("{how:?}"), time_to_denial(&authorizer, &victim.access_token(), event).await);
    (app, authorizer, other)
}

#[tokio::test]
async fn logout_is_denied_at_the_authorizer_within_the_staleness_bound() {
    denied_within_the_bound(Revocation::Logout).await;
}

#[tokio::test]
async fn logout_everywhere_is_denied_at_the_authorizer_within_the_staleness_bound() {
    denied_within_the_bound(Revocation::LogoutEverywhere).await;
}

#[tokio::test]
async fn a_password_change_is_denied_at_the_authorizer_within_the_bound_and_the_callers_session_is_not() {
    let (_app, authorizer, caller) = denied_within_the_bound(Revocation::PasswordChange).await;
    always_allowed(&authorizer, &caller.access_token(), Duration::from_secs(STALENESS + 1)).await;
}

#[tokio::test]
async fn disabling_the_user_is_denied_at_the_authorizer_within_the_staleness_bound() {
    denied_within_the_bound(Revocation::UserDisabled).await;
}

#[tokio::test]
async fn a_live_session_is_never_denied_across_windows_and_a_fresh_login_is_allowed_at_once() {
    let (app, authorizer) = strict_app(&[]).await;
    let login = app.login(ALICE, PASSWORD).await;
    // The very first request after the login (the session was written a moment ago).
    assert!(allowed(&authorizer, &login.access_token()).await);
    always_allowed(&authorizer, &login.access_token(), Duration::from_secs(2 * STALENESS + 1)).await;
    // Refreshed meanwhile: the new access token too.
    let refreshed = app.refresh(&login.refresh_cookie()).await;
    assert!(allowed(&authorizer, &refreshed.access_token()).await);
    // Another user's session is not disturbed by this one ending.
    let bob = app.login(BOB, PASSWORD).await;
    assert_eq!(
        app.logout_call(Call::post("/auth/logout").cookie(&refreshed.refresh_cookie())).await.status,
        204
    );
    always_allowed(&authorizer, &bob.access_token(), Duration::from_secs(STALENESS + 1)).await;
}

#[tokio::test]
async fn a_login_right_after_a_logout_everywhere_or_a_re_enable_is_allowed_at_once_and_stays_allowed() {
    let (app, authorizer) = strict_app(&[]).await;
    let old = seen_login(&app, &authorizer).await;
    let everywhere = Call::post("/auth/logout").cookie(&old.refresh_cookie()).json(json!({"everywhere": true}));
    assert_eq!(app.logout_call(everywhere).await.status, 204);
    // In the same second: a clock rule would call this session older than the logout.
    let fresh = app.login(ALICE, PASSWORD).await;
    assert!(allowed(&authorizer, &fresh.access_token()).await, "allowed at once");

    let users = DynamoUsers::new(app.dynamodb.clone(), &app.config.users_table, &app.config.sessions_table);
    assert!(users.set_disabled(ALICE, true).await.unwrap());
    assert!(users.set_disabled(ALICE, false).await.unwrap());
    let after_enable = app.login(ALICE, PASSWORD).await;
    assert!(allowed(&authorizer, &after_enable.access_token()).await, "allowed at once after enabling");
    always_allowed(&authorizer, &after_enable.access_token(), Duration::from_secs(STALENESS + 1)).await;
    assert!(!allowed(&authorizer, &fresh.access_token()).await, "the session before the disable is dead");
}

#[tokio::test]
async fn with_dynamodb_unreachable_closed_denies_and_open_allows_a_valid_token() {
    for (fail, expected) in [("closed", false), ("open", true)] {
        let (app, _) = strict_app(&[("REVOCATION_FAIL", fail)]).await;
        let token = app.login(ALICE, PASSWORD).await.access_token();
        let (unreachable, _) = clients(Some("http://127.0.0.1:9"), None).await;
        let authorizer = authorizer_with(&app.config, app.secrets.clone())
            .unwrap()
            .with_session_check(session_check(&app.config, unreachable));
        // This test's log lines, in a file of its own (the suite's subscriber is global).
        let log_path = std::env::temp_dir().join(format!("strict-{fail}-{}.jsonl", std::process::id()));
        let file = std::fs::File::create(&log_path).unwrap();
        let guard = tracing::subscriber::set_default(auth_core::telemetry::json_subscriber(std::sync::Mutex::new(file)));
        assert_eq!(allowed(&authorizer, &token).await, expected, "REVOCATION_FAIL={fail}");
        drop(guard);
        let logs = std::fs::read_to_string(&log_path).unwrap();
        std::fs::remove_file(&log_path).unwrap();
        assert!(
            logs.contains("session standing unavailable") && logs.contains(&format!("REVOCATION_FAIL={fail}")),
            "{logs}"
        );
        // A forged token is denied either way: the fail mode only ever applies after the
        // signature and claims passed.
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let other = if signature.starts_with('A') { "B" } else { "A" };
        let forged = format!("{signed}.{other}{}", &signature[1..]);
        assert!(!allowed(&authorizer, &forged).await, "REVOCATION_FAIL={fail}");
    }
}

/// A store that finds every session live, counting its requests and their read units
/// (in halves: an eventually consistent item is half a unit, a consistent one a whole):
/// the read-count simulation below needs the real cache's decisions, not a table.
#[derive(Default)]
struct CountingStanding {
    requests: std::sync::atomic::AtomicU64,
    half_units: std::sync::atomic::AtomicU64,
}

impl CountingStanding {
    fn count(&self, half_units: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        self.requests.fetch_add(1, Relaxed);
        self.half_units.fetch_add(half_units, Relaxed);
    }
}

fn live_session(session_id: &auth_core::tokens::SessionId) -> auth_core::store::SessionStanding {
    auth_core::store::SessionStanding {
        session_id: session_id.clone(),
        user_id: "u".into(),
        username: "u@example.com".into(),
        created_at: 1,
        expires_at: u64::MAX,
        absolute_expires_at: u64::MAX,
        revoked_at: None,
        session_epoch: Some(0),
    }
}

fn accepting_user() -> auth_core::store::UserStanding {
    auth_core::store::UserStanding {
        user_id: "u".into(),
        disabled: false,
        session_epoch: 0,
        legacy_sessions_valid_after: 0,
    }
}

#[async_trait::async_trait]
impl auth_core::store::StandingStore for CountingStanding {
    async fn session(
        &self,
        session_id: &auth_core::tokens::SessionId,
        consistent: bool,
    ) -> Result<Option<auth_core::store::SessionStanding>, auth_core::AuthError> {
        self.count(if consistent { 2 } else { 1 });
        Ok(Some(live_session(session_id)))
    }
    async fn user(&self, _username: &str, consistent: bool) -> Result<Option<auth_core::store::UserStanding>, auth_core::AuthError> {
        self.count(if consistent { 2 } else { 1 });
        Ok(Some(accepting_user()))
    }
    async fn both(
        &self,
        session_id: &auth_core::tokens::SessionId,
        _username: &str,
    ) -> Result<(Option<auth_core::store::SessionStanding>, Option<auth_core::store::UserStanding>), auth_core::AuthError> {
        self.count(2);
        Ok((Some(live_session(session_id)), Some(accepting_user())))
    }
}

/// Reads per API request with `users` clients each making one request a second to one of
/// `routes` routes for `seconds`, through API Gateway's cache (TTL `ttl`, keyed by token
/// and route) and `containers` authorizer containers picked at random, each with the real
/// session check (staleness `staleness`). Returns (API requests, authorizer invocations,
/// read requests, read units).
async fn simulate_reads(users: usize, routes: usize, seconds: u64, ttl: u64, staleness: u64, containers: usize) -> (u64, u64, u64, f64) {
    use auth_core::clock::Clock;
    use auth_core::service::revocation::SessionCheck;
    use auth_core::testing::FixedClock;

    let clock = Arc::new(FixedClock::new(1_000));
    let config = auth_core::testing::config_with(&[("REVOCATION_MAX_STALENESS", &staleness.to_string())]);
    let store = Arc::new(CountingStanding::default());
    let checks: Vec<SessionCheck> = (0..containers).map(|_| SessionCheck::new(&config, store.clone(), clock.clone())).collect();
    let sessions: Vec<String> = (0..users).map(|_| auth_core::tokens::SessionId::generate().as_str().to_owned()).collect();
    let mut cached_until = std::collections::HashMap::new();
    // A small deterministic generator: the figures must not change from run to run.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let (mut requests, mut invocations) = (0, 0);
    for _ in 0..seconds {
        let now = clock.now();
        for sid in &sessions {
            requests += 1;
            let key = (sid.clone(), next(routes));
            if ttl > 0 && cached_until.get(&key).is_some_and(|until| now < *until) {
                continue;
            }
            invocations += 1;
            checks[next(containers)].confirm("u", sid).await.unwrap();
            if ttl > 0 {
                cached_until.insert(key, now + ttl);
            }
        }
        clock.advance(1);
    }
    use std::sync::atomic::Ordering::Relaxed;
    (requests, invocations, store.requests.load(Relaxed), store.half_units.load(Relaxed) as f64 / 2.0)
}

/// One authorizer request that must be allowed, timed.
async fn time(authorizer: &Authorizer, token: &str) -> Duration {
    let event = http_api_authorizer_event(Some(&format!("Bearer {token}")), "GET /pets").to_string();
    let started = Instant::now();
    let answer = authorizer.handle(&event, None).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(serde_json::to_value(answer).unwrap()["isAuthorized"], true);
    elapsed
}

fn median(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

/// Published on-demand list prices, us-east-1 (December 2026; check current ones).
const READ_REQUEST_UNIT: f64 = 0.125 / 1e6;
const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
const LAMBDA_GB_SECOND_ARM: f64 = 0.000_013_333_4;

#[tokio::test]
#[ignore = "benchmark: run by scripts/bench.sh"]
async fn strict_revocation_figures() {
    let mut report = String::new();
    let staleness = 5;

    // 1. From each revocation to the first denial at the authorizer, at the default
    // staleness, with the session read by the authorizer just before the event (the worst
    // case: the whole window is still ahead).
    report += "| revocation | time to the first denial (ms), staleness 5 s |\n|---|---|\n";
    for (path, how) in [
        ("logout", Revocation::Logout),
        ("logout everywhere", Revocation::LogoutEverywhere),
        ("password change", Revocation::PasswordChange),
        ("user disabled", Revocation::UserDisabled),
    ] {
        let (app, authorizer) = strict_app(&[("REVOCATION_MAX_STALENESS", "5")]).await;
        let login = app.login(ALICE, PASSWORD).await;
        let other = app.login(ALICE, PASSWORD).await;
        assert!(allowed(&authorizer, &login.access_token()).await);
        let event = Instant::now();
        revoke(&app, how, &login, &other).await;
        let elapsed = time_to_denial(&authorizer, &login.access_token(), event).await;
        assert!(elapsed <= Duration::from_secs(staleness + 1), "{path}: {elapsed:?}");
        report += &format!("| {path} | {} |\n", elapsed.as_millis());
    }

    // 2. Latency per authorized request, in process, emulator on loopback: off, strict with
    // the session in the cache, strict at a new session (two reads), strict at a known
    // session whose read is stale (one BatchGetItem).
    let (app, strict) = strict_app(&[("REVOCATION_MAX_STALENESS", "5")]).await;
    let mut config0 = app.config.clone();
    config0.revocation_max_staleness = 0;
    let stale = authorizer_with(&config0, app.secrets.clone())
        .unwrap()
        .with_session_check(session_check(&config0, app.dynamodb.clone()));
    let off = authorizer_with(&app.config, app.secrets.clone()).unwrap();
    let tokens: Vec<String> = {
        let mut tokens = Vec::new();
        for _ in 0..100 {
            tokens.push(app.login(ALICE, PASSWORD).await.access_token());
        }
        tokens
    };
    let (mut off_t, mut cold_t, mut warm_t, mut stale_t) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for token in &tokens {
        off_t.push(time(&off, token).await);
        cold_t.push(time(&strict, token).await);
        warm_t.push(time(&strict, token).await);
        time(&stale, token).await;
        stale_t.push(time(&stale, token).await);
    }
    let off_ms = median(off_t);
    report += "\n| authorizer request (100 sessions, median) | ms | above off (ms) | DynamoDB reads |\n|---|---|---|---|\n";
    for (label, ms, reads) in [
        ("off", off_ms, "0"),
        ("strict, session in the cache (within the window)", median(warm_t), "0"),
        ("strict, a session not seen before", median(cold_t), "2 (GetItem session, then user)"),
        ("strict, a known session, window passed", median(stale_t), "1 (BatchGetItem of both)"),
    ] {
        report += &format!("| {label} | {ms:.2} | {:+.2} | {reads} |\n", ms - off_ms);
    }

    // 3. Reads and their price per million API requests: 1,000 users, one request a second
    // each for an hour, API Gateway's cache TTL = staleness (template.yaml in strict mode).
    report += "\n| users, routes, containers | authorizer invocations per million requests | read requests per million requests | read units per million requests | reads $ / M requests | authorizer $ / M requests |\n|---|---|---|---|---|---|\n";
    for (routes, containers) in [(1, 1), (1, 4), (5, 4)] {
        let (requests, invocations, reads, units) = simulate_reads(1000, routes, 3600, staleness, staleness, containers).await;
        let per_million = |n: f64| n * 1e6 / requests as f64;
        let invocation_cost = per_million(invocations as f64) * (LAMBDA_REQUEST + 0.001 * 0.125 * LAMBDA_GB_SECOND_ARM);
        report += &format!(
            "| 1000, {routes}, {containers} | {:.0} | {:.0} | {:.0} | {:.4} | {invocation_cost:.4} |\n",
            per_million(invocations as f64),
            per_million(reads as f64),
            per_million(units),
            per_million(units) * READ_REQUEST_UNIT,
        );
    }
    println!("{report}");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/strict.md"), report).unwrap();
}
