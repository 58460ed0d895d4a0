//! Cold start and memory of the release binaries, measured against a minimal local Lambda
//! Runtime API (this file) and the emulator on loopback: the time from process start to
//! its first `GET /runtime/invocation/next` (median and max over N starts, the binaries
//! started in turn), and peak RSS after serving M real invocations (M = 0: init only).
//! The authorizer is started three times over: with the public JWKS in `AUTH_PUBLIC_JWKS`
//! (as deployed: no network at init), with no keys in its environment (it fetches the
//! public store during init), and deployed keys in strict revocation mode (it builds the
//! DynamoDB client and opens its connection during init). Given the `bare_runtime` example, the same Lambda runtime with no
//! work of ours, every row also says how far above that floor it starts. Where Linux
//! publishes it, the CPU time each init used is shown too: unlike the wall-clock time, it
//! does not depend on what else the machine is running.
//!
//! Run by scripts/bench.sh: `lambda_init <dir with the binaries> <starts> <invocations>
//! [bare_runtime binary]`; expects the emulator prepared by `authctl local-setup` (default
//! table and secret names, both key secrets, the demo user).

// A benchmark fails by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_core::aws::load_sdk_config;
use auth_core::keys::{KeyDocument, SigningKeys};
use auth_core::store::dynamodb::DynamoSessions;
use auth_core::store::{SessionRecord, SessionStore};
use auth_core::tokens::{AccessTokens, RefreshToken, SessionId};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};

const DEMO: (&str, &str) = ("demo@example.com", "demo-password-change-me");

/// One HTTP/1.1 request: the request line and the body (Content-Length or chunked).
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let lower = head.to_ascii_lowercase();
    let request_line = head.lines().next()?.to_owned();
    let mut rest = buf.split_off(head_end + 4);
    std::mem::swap(buf, &mut rest);
    let body = if lower.contains("transfer-encoding: chunked") {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(p) = buf.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
                buf.extend_from_slice(&chunk[..n]);
            };
            let size = usize::from_str_radix(String::from_utf8_lossy(&buf[..line_end]).trim(), 16).ok()?;
            while buf.len() < line_end + 2 + size + 2 {
                let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
                buf.extend_from_slice(&chunk[..n]);
            }
            body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
            buf.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break body;
            }
        }
    } else {
        let length: usize = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        while buf.len() < length {
            let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..length).collect()
    };
    Some((request_line, body))
}

/// What the Runtime API tells the benchmark.
enum Seen {
    /// The function asked for its first (or next) event.
    Next,
    /// The function answered an event.
    Response(Vec<u8>),
}

/// Serves the Runtime API: each `next` takes an event from `events`, and each `next` and
/// response is reported on `seen`.
async fn runtime_api(listener: TcpListener, events: Arc<Mutex<mpsc::Receiver<Value>>>, seen: mpsc::UnboundedSender<Seen>) {
    while let Ok((mut stream, _)) = listener.accept().await {
        let (events, seen) = (events.clone(), seen.clone());
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut counter = 0u64;
            while let Some((line, body)) = read_request(&mut stream, &mut buf).await {
                let reply = if line.contains("/runtime/invocation/next") {
                    let _ = seen.send(Seen::Next);
                    let Some(event) = events.lock().await.recv().await else { return };
                    counter += 1;
                    let body = event.to_string();
                    let deadline = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() + 30_000;
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: req-{counter}\r\nlambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\nlambda-runtime-trace-id: Root=1-00000000-000000000000000000000000\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    if line.contains("/response") {
                        let _ = seen.send(Seen::Response(body));
                    } else if line.contains("/error") {
                        panic!("the function reported an error: {}", String::from_utf8_lossy(&body));
                    }
                    "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n".to_owned()
                };
                if stream.write_all(reply.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

struct Function {
    child: Child,
    events: mpsc::Sender<Value>,
    seen: mpsc::UnboundedReceiver<Seen>,
}

impl Function {
    /// Starts `binary` with `env` against a fresh Runtime API and returns once it asks for
    /// an event, with the time that took. `AUTH_PUBLIC_JWKS` is never inherited from the
    /// benchmark's own environment: only `env` decides whether keys are deployed.
    async fn start(binary: &str, env: &[(&str, String)]) -> (Self, Duration) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (events_tx, events_rx) = mpsc::channel(1);
        let (seen_tx, mut seen) = mpsc::unbounded_channel();
        tokio::spawn(runtime_api(listener, Arc::new(Mutex::new(events_rx)), seen_tx));
        let mut command = Command::new(binary);
        command
            .env_remove("AUTH_PUBLIC_JWKS")
            .env("AWS_LAMBDA_RUNTIME_API", &address)
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AUTH_ISSUER", "https://auth.bench")
            .env("AUTH_AUDIENCE", "bench-api")
            .env("RUST_LOG", "warn")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let started = Instant::now();
        let child = command.spawn().unwrap();
        assert!(matches!(seen.recv().await, Some(Seen::Next)));
        let init = started.elapsed();
        (
            Self {
                child,
                events: events_tx,
                seen,
            },
            init,
        )
    }

    /// Sends one event and returns the function's answer.
    async fn invoke(&mut self, event: Value) -> Value {
        self.events.send(event).await.unwrap();
        loop {
            match self.seen.recv().await.unwrap() {
                Seen::Response(body) => return serde_json::from_slice(&body).unwrap(),
                Seen::Next => continue,
            }
        }
    }

    /// CPU time all its threads have run so far (`se.sum_exec_runtime` of each
    /// `/proc/<pid>/task/<tid>/sched`), or `None` where the kernel does not publish it. Read
    /// while the function waits for its first event, it is the CPU its init used, without
    /// the time it spent waiting for a core, which on a busy machine makes wall-clock
    /// starts jump by milliseconds.
    fn cpu_time(&self) -> Option<Duration> {
        let mut total = 0.0;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.child.id())).ok()? {
            let sched = std::fs::read_to_string(task.ok()?.path().join("sched")).ok()?;
            let line = sched.lines().find(|l| l.starts_with("se.sum_exec_runtime"))?;
            total += line.rsplit(':').next()?.trim().parse::<f64>().ok()?;
        }
        Some(Duration::from_secs_f64(total / 1000.0))
    }

    /// Peak resident set size so far, in KiB (`VmHWM`).
    fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .unwrap()
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap()
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_event(path: &str, body: Option<Value>, cookie: Option<&str>) -> Value {
    let mut event = get_event(path, None);
    event["routeKey"] = json!(format!("POST {path}"));
    event["requestContext"]["routeKey"] = event["routeKey"].clone();
    event["requestContext"]["http"]["method"] = json!("POST");
    event["cookies"] = json!(cookie.map(|c| vec![c.to_owned()]).unwrap_or_default());
    event["headers"]["content-type"] = json!("application/json");
    event["body"] = json!(body.map(|b| b.to_string()));
    event
}

/// An HTTP API `GET path` event, with a bearer token when given.
fn get_event(path: &str, bearer: Option<&str>) -> Value {
    let mut headers = json!({"user-agent": "bench"});
    if let Some(token) = bearer {
        headers["authorization"] = json!(format!("Bearer {token}"));
    }
    json!({
        "version": "2.0", "routeKey": format!("GET {path}"), "rawPath": path, "rawQueryString": "",
        "cookies": [], "headers": headers,
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "auth.bench", "domainPrefix": "auth",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "r", "routeKey": format!("GET {path}"), "stage": "$default", "time": "23/Nov/2026:12:00:00 +0000", "timeEpoch": 0},
        "body": null, "isBase64Encoded": false
    })
}

fn authorizer_event(token: &str) -> Value {
    json!({"version": "2.0", "type": "REQUEST", "routeArn": "arn:aws:execute-api:us-east-1:123456789012:api/$default/GET/pets",
        "identitySource": [format!("Bearer {token}")], "routeKey": "GET /pets", "rawPath": "/pets", "rawQueryString": "",
        "headers": {"authorization": format!("Bearer {token}")},
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.bench", "domainPrefix": "api",
            "http": {"method": "GET", "path": "/pets", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "bench"},
            "requestId": "r", "routeKey": "GET /pets", "stage": "$default", "time": "23/Nov/2026:12:00:00 +0000", "timeEpoch": 0}})
}

/// A session stored directly in the table, and its refresh token as a cookie.
async fn stored_session(sessions: &DynamoSessions, user_id: &str) -> String {
    let token = RefreshToken::start(SessionId::generate());
    let now = auth_core::clock::Clock::now(&auth_core::clock::SystemClock);
    let session = SessionRecord {
        session_id: token.session_id.clone(),
        user_id: user_id.into(),
        username: DEMO.0.into(),
        token_hash: token.hash(),
        generation: 0,
        rotated_at: now,
        created_at: now,
        expires_at: now + 3600,
        absolute_expires_at: now + 7200,
        session_epoch: Some(0),
        revoked_at: None,
        revoke_reason: None,
        user_agent: None,
        source_ip: None,
        previous_token_hash: None,
        auth: auth_core::claims::Authentication::password(now),
    };
    sessions.create(&session).await.unwrap();
    format!("refresh_token={}", token.encode())
}

fn next_cookie(response: &Value) -> String {
    let cookie = response["cookies"][0].as_str().unwrap_or_else(|| panic!("no cookie in {response}"));
    cookie.split(';').next().unwrap().to_owned()
}

fn stats(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    (
        samples[samples.len() / 2].as_secs_f64() * 1000.0,
        samples[samples.len() - 1].as_secs_f64() * 1000.0,
    )
}

/// The most requests the register function serves for its RSS figure.
const REGISTER_INVOCATIONS: usize = 20;

/// What a measured binary is, which decides the events it is sent.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// `bare_runtime`: echoes the event.
    Bare,
    Authorizer,
    Login,
    Refresh,
    Logout,
    Register,
    Account,
    Discovery,
    Federation,
}

/// One row of the table: a binary and the environment it starts with.
struct Variant {
    label: &'static str,
    binary: String,
    env: Vec<(&'static str, String)>,
    kind: Kind,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (dir, starts, invocations): (&str, usize, usize) = (&args[1], args[2].parse().unwrap(), args[3].parse().unwrap());
    let bare = args.get(4);
    let sdk = load_sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let read = |id: &'static str| {
        let secrets = secrets.clone();
        async move {
            let secret = secrets.get_secret_value().secret_id(id).send().await.unwrap();
            secret.secret_string().unwrap().to_owned()
        }
    };
    let keys = SigningKeys::from_json(&read("auth/signing-keys").await).unwrap();
    // What a deployment puts in AUTH_PUBLIC_JWKS (`authctl keys jwks` prints the same).
    let public_jwks = read("auth/public-keys").await;
    let config = auth_core::Config::from_lookup(|name| match name {
        "AUTH_ISSUER" => Some("https://auth.bench".into()),
        "AUTH_AUDIENCE" => Some("bench-api".into()),
        _ => None,
    })
    .unwrap();
    let users = aws_sdk_dynamodb::Client::new(&sdk);
    let demo = users
        .get_item()
        .table_name("auth-users")
        .key("username", aws_sdk_dynamodb::types::AttributeValue::S(DEMO.0.into()))
        .send()
        .await
        .unwrap();
    let user_id = demo.item().unwrap()["user_id"].as_s().unwrap().clone();
    let sessions = DynamoSessions::new(users.clone(), "auth-sessions");

    let function = |label, name: &str, env, kind| Variant {
        label,
        binary: format!("{dir}/{name}"),
        env,
        kind,
    };
    let mut variants = Vec::new();
    if let Some(bare) = bare {
        variants.push(Variant {
            label: "bare lambda_runtime (echo), the floor",
            binary: bare.clone(),
            env: vec![],
            kind: Kind::Bare,
        });
    }
    variants.extend([
        function(
            "authorizer, keys in AUTH_PUBLIC_JWKS (deployed)",
            "authorizer",
            vec![("AUTH_PUBLIC_JWKS", public_jwks.clone())],
            Kind::Authorizer,
        ),
        function("authorizer, no keys in env (fetched at init)", "authorizer", vec![], Kind::Authorizer),
        function(
            "authorizer, keys deployed, strict revocation (REVOCATION_CHECK=session)",
            "authorizer",
            vec![("AUTH_PUBLIC_JWKS", public_jwks.clone()), ("REVOCATION_CHECK", "session".into())],
            Kind::Authorizer,
        ),
        function("login", "login", vec![], Kind::Login),
        function("refresh", "refresh", vec![], Kind::Refresh),
        function("logout", "logout", vec![], Kind::Logout),
        function(
            "register (sign-up and reset by e-mail)",
            "register",
            vec![
                ("SIGNUP", "open".into()),
                ("APP_URL", "https://app.bench".into()),
                ("EMAIL_FROM", "no-reply@example.com".into()),
            ],
            Kind::Register,
        ),
        function(
            "account (keys in AUTH_PUBLIC_JWKS)",
            "account",
            vec![("AUTH_PUBLIC_JWKS", public_jwks.clone())],
            Kind::Account,
        ),
        function("discovery", "discovery", vec![], Kind::Discovery),
        // Its init reads the client secrets (none stored here: the secret is not found, an
        // empty set); the provider is not contacted before a sign-in starts.
        function(
            "federation (one provider configured)",
            "federation",
            vec![("OAUTH_PROVIDERS", r#"[{"id":"bench","issuer":"https://idp.bench","client_id":"bench"}]"#.into())],
            Kind::Federation,
        ),
    ]);

    // Round-robin: every round starts each binary once, so a burst of load on this shared
    // machine hits all rows alike, and the differences to the bare runtime stay fair.
    let mut inits: Vec<Vec<Duration>> = variants.iter().map(|_| Vec::new()).collect();
    let mut cpu: Vec<Option<Vec<Duration>>> = variants.iter().map(|_| Some(Vec::new())).collect();
    for _ in 0..starts {
        for ((variant, samples), cpu) in variants.iter().zip(&mut inits).zip(&mut cpu) {
            let (function, init) = Function::start(&variant.binary, &variant.env).await;
            samples.push(init);
            *cpu = cpu.take().zip(function.cpu_time()).map(|(mut all, one)| {
                all.push(one);
                all
            });
            function.stop();
        }
    }
    let floor = bare.map(|_| stats(inits[0].clone()).0);
    let cpu: Option<Vec<f64>> = cpu.into_iter().map(|samples| samples.map(|s| stats(s).0)).collect();

    let mut header = String::from("| function | init median (ms) | init max (ms) |");
    let mut rule = String::from("|---|---|---|");
    if floor.is_some() {
        header += " median above bare (ms) |";
        rule += "---|";
    }
    if cpu.is_some() {
        header += " init CPU time, median (ms) |";
        rule += "---|";
    }
    if invocations > 0 {
        header += &format!(" peak RSS after {invocations} invocations (MB) |");
        rule += "---|";
    }
    println!("{header}\n{rule}");
    for (i, (variant, samples)) in variants.iter().zip(inits).enumerate() {
        let (median, max) = stats(samples);
        let mut row = format!("| {} | {median:.1} | {max:.1} |", variant.label);
        if let Some(floor) = floor {
            row += &match variant.kind {
                Kind::Bare => " (reference) |".to_owned(),
                _ => format!(" {:+.1} |", median - floor),
            };
        }
        if let Some(cpu) = &cpu {
            row += &format!(" {:.1} |", cpu[i]);
        }
        if invocations > 0 {
            // register answers no sooner than 1.5 s after a request began (so that time tells
            // nothing): 1,000 of them would take 25 minutes, and its memory is flat long before.
            let served = if variant.kind == Kind::Register {
                invocations.min(REGISTER_INVOCATIONS)
            } else {
                invocations
            };
            let rss = serve(variant, served, &keys, &config, &sessions, &user_id).await;
            row += &if served < invocations {
                format!(" {rss:.1} (after {served}) |")
            } else {
                format!(" {rss:.1} |")
            };
        }
        println!("{row}");
    }
}

/// Starts one instance of `variant`, has it serve `invocations` real requests (each answer
/// checked), and returns its peak RSS in MB.
async fn serve(variant: &Variant, invocations: usize, keys: &SigningKeys, config: &auth_core::Config, sessions: &DynamoSessions, user_id: &str) -> f64 {
    let (mut function, _) = Function::start(&variant.binary, &variant.env).await;
    let mut cookie = stored_session(sessions, user_id).await;
    let mut logout_cookies = Vec::new();
    if variant.kind == Kind::Logout {
        for _ in 0..invocations {
            logout_cookies.push(stored_session(sessions, user_id).await);
        }
    }
    let now = auth_core::clock::Clock::now(&auth_core::clock::SystemClock);
    // The token of a stored session, so that the strict authorizer finds it live.
    let sid = cookie.trim_start_matches("refresh_token=").split('.').next().unwrap().to_owned();
    let token = AccessTokens::new(config)
        .issue(keys, user_id, &sid, &["user".into()], &auth_core::claims::Authentication::password(now), now)
        .unwrap()
        .token;
    let mut logout_cookies = logout_cookies.into_iter();
    for _ in 0..invocations {
        match variant.kind {
            Kind::Bare => {
                let event = authorizer_event(&token);
                assert_eq!(function.invoke(event.clone()).await, event);
            }
            // Without keys in its environment, this is also the check that the fetch at
            // init worked: every token is authorized with the fetched keys.
            Kind::Authorizer => assert_eq!(function.invoke(authorizer_event(&token)).await["isAuthorized"], true),
            Kind::Login => {
                let answer = function
                    .invoke(http_event("/auth/login", Some(json!({"username": DEMO.0, "password": DEMO.1})), None))
                    .await;
                assert_eq!(answer["statusCode"], 200, "{answer}");
            }
            Kind::Refresh => {
                let answer = function.invoke(http_event("/auth/refresh", None, Some(&cookie))).await;
                assert_eq!(answer["statusCode"], 200, "{answer}");
                cookie = next_cookie(&answer);
            }
            Kind::Logout => assert_eq!(
                function.invoke(http_event("/auth/logout", None, Some(&logout_cookies.next().unwrap()))).await["statusCode"],
                204
            ),
            // A reset link for the demo user: the first few are mailed, the rest are over
            // the hourly limit; the answer is the same 202 either way.
            Kind::Register => {
                let answer = function
                    .invoke(http_event("/auth/password/forgot", Some(json!({"username": DEMO.0})), None))
                    .await;
                assert_eq!(answer["statusCode"], 202, "{answer}");
            }
            // The user's sessions, with the token of a live one.
            Kind::Account => {
                let answer = function.invoke(get_event("/auth/sessions", Some(&token))).await;
                assert_eq!(answer["statusCode"], 200, "{answer}");
            }
            Kind::Discovery => {
                let answer = function.invoke(get_event("/.well-known/jwks.json", None)).await;
                assert_eq!(answer["statusCode"], 200, "{answer}");
            }
            // A callback with no sign-in behind it (no ceremony cookie): the redirect with
            // `invalid_state`, without a provider or a table (a real sign-in needs a provider).
            Kind::Federation => {
                let answer = function.invoke(get_event("/auth/oauth/bench/callback", None)).await;
                assert_eq!(answer["statusCode"], 302, "{answer}");
            }
        }
    }
    let rss = function.peak_rss_kib() as f64 / 1024.0;
    function.stop();
    rss
}
