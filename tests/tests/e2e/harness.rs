//! `spawn_app()`: fresh tables and a fresh key secret in the emulator for each test, the
//! real handlers wired over them, and helpers to send API Gateway events.

use auth_core::Config;
use auth_core::api::account::Account;
use auth_core::api::authorizer::{Authorizer, Unauthorized};
use auth_core::api::session::AuthApi;
use auth_core::aws::{account_with, auth_service_with, authorizer_with, load_sdk_config};
use auth_core::keys::secrets_manager::write_secret;
use auth_core::password::hash_password;
use auth_core::random::random_id;
use auth_core::store::dynamodb::{DynamoUsers, create_tables};
use auth_core::store::{UserRecord, UserStore};
use auth_core::testing::{SIGNING_KEYS_JSON, config_with, public_jwks_json, signing_key_set};
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

pub const ALICE: &str = "alice@example.com";
pub const BOB: &str = "bob@example.com";
pub const DISABLED: &str = "disabled@example.com";
pub const PASSWORD: &str = "correct horse battery staple";
pub const ORIGIN: &str = "https://app.test";

/// One isolated deployment inside the shared emulator.
pub struct App {
    pub api: AuthApi,
    pub register: auth_core::api::register::RegisterApi,
    pub authorizer: Authorizer,
    pub account: Account,
    pub config: Config,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

fn emulator_endpoint() -> String {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "end-to-end tests need the emulator: run scripts/test.sh (or scripts/e2e.sh), which starts it on loopback"
    );
    endpoint
}

/// The sender of the suite's e-mail, verified in the emulator (which refuses others).
pub const SENDER: &str = "no-reply@example.com";

/// Verifies [`SENDER`] in the emulator's SES, once per process (again is harmless).
pub async fn verify_sender(ses: &aws_sdk_sesv2::Client) {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        let _ = ses.create_email_identity().email_identity(SENDER).send().await;
    })
    .await;
}

/// The messages the emulator's SES kept for `to`, oldest first: (subject, HTML body).
pub async fn mails_to(to: &str) -> Vec<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = emulator_endpoint().trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!("GET /moto-api/data.json HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    let body = text.split_once("\r\n\r\n").unwrap().1;
    let data: Value = serde_json::from_str(body).unwrap();
    let messages = data["ses"]["Message"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .filter(|m| {
            m["destinations"]["ToAddresses"]
                .as_array()
                .is_some_and(|to_list| to_list.iter().any(|a| a == to))
        })
        .map(|m| {
            (
                m["subject"].as_str().unwrap_or_default().to_owned(),
                m["body"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The link token of the newest message to `to`, and notes it for the log scan.
pub async fn last_link_token(to: &str) -> Option<String> {
    let (_, body) = mails_to(to).await.pop()?;
    let token = body.split("#token=").nth(1)?.split('"').next()?.to_owned();
    record_secret(&token);
    Some(token)
}

pub async fn spawn_app() -> App {
    spawn_app_with(&[]).await
}

/// Sends every log line of the suite to `$E2E_LOG_FILE` (in the production JSON format)
/// and notes the suite's secrets in `$E2E_SECRETS_FILE`, so scripts/e2e.sh can check that
/// no log line contains any of them. Without the variables, logs are discarded.
fn capture_suite_logs() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if let Ok(path) = std::env::var("E2E_LOG_FILE") {
            let file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
            tracing::subscriber::set_global_default(auth_core::telemetry::json_subscriber(std::sync::Mutex::new(file))).unwrap();
        }
        let set = serde_json::from_str::<Value>(SIGNING_KEYS_JSON).unwrap();
        record_secret(PASSWORD);
        record_secret(set["refresh_pepper"].as_str().unwrap());
        for key in signing_key_set().keys {
            let pkcs8 = key.private_key().unwrap().pkcs8().to_vec();
            record_secret(&crate::forge::b64(&pkcs8));
            record_secret(&base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &pkcs8));
        }
    });
}

/// Notes a secret the suite handled (a token, password, key or hash) for the log scan.
pub fn record_secret(secret: &str) {
    use std::io::Write;
    if let Ok(path) = std::env::var("E2E_SECRETS_FILE") {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        writeln!(file, "{secret}").unwrap();
    }
}

/// Notes a refresh token: the whole token, its secret part, and the SHA-256 of the secret
/// (hex and base64url), which is what the table stores.
pub fn record_refresh_token(token: &str) {
    use base64::Engine;
    record_secret(token);
    let secret = token.rsplit('.').next().unwrap();
    record_secret(secret);
    if let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(secret) {
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes);
        record_secret(&hash.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>());
        record_secret(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.as_ref()));
        record_secret(&base64::engine::general_purpose::STANDARD.encode(hash.as_ref()));
    }
}

/// Tables, secret and users named after a random prefix, so tests run in parallel.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> App {
    emulator_endpoint();
    capture_suite_logs();
    let prefix = format!("e2e-{}", random_id().to_lowercase().replace(['-', '_'], "x"));
    let users_table = format!("{prefix}-users");
    let sessions_table = format!("{prefix}-sessions");
    let secret_id = format!("{prefix}/signing-keys");
    let public_id = format!("{prefix}/public-keys");
    let mut vars = vec![
        ("USERS_TABLE", users_table.as_str()),
        ("SESSIONS_TABLE", sessions_table.as_str()),
        ("SIGNING_SECRET_ID", secret_id.as_str()),
        ("PUBLIC_KEYS_SECRET_ID", public_id.as_str()),
    ];
    // Sign-up open, links into the local demo page, from the sender verified below.
    vars.extend_from_slice(&[("SIGNUP", "open"), ("APP_URL", "http://localhost:5173"), ("EMAIL_FROM", SENDER)]);
    // Passkeys for the page at ORIGIN.
    vars.push(("WEBAUTHN_RP_ID", "app.test"));
    vars.extend_from_slice(extra);
    let config = config_with(&vars);

    let sdk = load_sdk_config().await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    create_tables(&dynamodb, &users_table, &sessions_table).await.unwrap();
    write_secret(&secrets, &public_id, &public_jwks_json()).await.unwrap();
    write_secret(&secrets, &secret_id, SIGNING_KEYS_JSON).await.unwrap();
    let users = DynamoUsers::new(dynamodb.clone(), &users_table, &sessions_table);
    for (i, (name, disabled)) in [(ALICE, false), (BOB, false), (DISABLED, true)].into_iter().enumerate() {
        let user = UserRecord {
            disabled,
            ..UserRecord::new(
                name,
                format!("user-{i}-{prefix}"),
                hash_password(&PASSWORD.to_owned().into()).unwrap(),
                vec!["user".into()],
            )
        };
        assert!(users.create(&user).await.unwrap());
    }
    let passkeys = auth_core::passkeys::Passkeys::from_config(&config).unwrap();
    let service = auth_service_with(&config, dynamodb.clone(), secrets.clone()).with_passkeys(passkeys);
    let authorizer = authorizer_with(&config, secrets.clone()).unwrap();
    let account = account_with(&config, dynamodb.clone(), secrets.clone()).unwrap();
    let ses = aws_sdk_sesv2::Client::new(&sdk);
    verify_sender(&ses).await;
    let register = auth_core::aws::register_with(&config, dynamodb.clone(), ses).unwrap();
    App {
        api: AuthApi::new(service, &config),
        register,
        authorizer,
        account,
        config,
        dynamodb,
        secrets,
    }
}

/// An HTTP API (payload 2.0) event as API Gateway or a function URL sends it.
pub struct Call {
    method: &'static str,
    path: &'static str,
    headers: serde_json::Map<String, Value>,
    cookies: Vec<String>,
    body: Option<String>,
    query: Vec<(String, String)>,
}

impl Call {
    pub fn post(path: &'static str) -> Self {
        Self {
            method: "POST",
            path,
            headers: serde_json::Map::new(),
            cookies: Vec::new(),
            body: None,
            query: Vec::new(),
        }
    }
    pub fn get(path: &'static str) -> Self {
        Self::post(path).method("GET")
    }
    pub fn method(mut self, method: &'static str) -> Self {
        self.method = method;
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_ascii_lowercase(), json!(value));
        self
    }
    pub fn json(self, body: Value) -> Self {
        self.header("content-type", "application/json").body(body.to_string())
    }
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }
    /// A query parameter (sent decoded in `queryStringParameters`, as API Gateway does).
    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.query.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn cookie(mut self, cookie: &str) -> Self {
        self.cookies.push(cookie.to_owned());
        self
    }
    pub fn request(&self) -> Request {
        let event = json!({
            "version": "2.0",
            "routeKey": format!("{} {}", self.method, self.path),
            "rawPath": self.path,
            "rawQueryString": self.query.iter().map(|(k, v)| format!("{k}={}", percent(v))).collect::<Vec<_>>().join("&"),
            "queryStringParameters": self.query.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<String, Value>>(),
            "cookies": self.cookies,
            "headers": self.headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "api",
                "domainName": "auth.example.com",
                "domainPrefix": "auth",
                "http": {"method": self.method, "path": self.path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "e2e"},
                "requestId": random_id(),
                "routeKey": format!("{} {}", self.method, self.path),
                "stage": "$default",
                "time": "23/Nov/2026:12:00:00 +0000",
                "timeEpoch": 1_795_000_000_000u64
            },
            "body": self.body,
            "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).unwrap()
    }
}

/// `text` percent-encoded for a query string (everything but RFC 3986's unreserved).
pub fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A handler's answer, read back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: lambda_http::http::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn from(response: Response<Body>) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        Self { status, headers, body }
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
    pub fn error_code(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect()
    }
    /// `name=value` of the refresh cookie, ready for a `Cookie` header.
    pub fn refresh_cookie(&self) -> String {
        let cookie = self.set_cookies().into_iter().find(|c| c.starts_with("refresh_token=")).unwrap();
        let pair = cookie.split(';').next().unwrap().to_owned();
        record_refresh_token(pair.trim_start_matches("refresh_token="));
        pair
    }
    pub fn refresh_token(&self) -> String {
        self.refresh_cookie().trim_start_matches("refresh_token=").to_owned()
    }
    pub fn access_token(&self) -> String {
        let token = self.json()["access_token"].as_str().unwrap().to_owned();
        record_secret(&token);
        record_secret(token.rsplit('.').next().unwrap());
        token
    }
}

impl App {
    pub async fn login_call(&self, call: Call) -> Answer {
        Answer::from(login::handle(&self.api, call.request()).await.unwrap())
    }
    pub async fn refresh_call(&self, call: Call) -> Answer {
        Answer::from(refresh::handle(&self.api, call.request()).await.unwrap())
    }
    pub async fn logout_call(&self, call: Call) -> Answer {
        Answer::from(logout::handle(&self.api, call.request()).await.unwrap())
    }
    pub async fn register_call(&self, call: Call) -> Answer {
        Answer::from(register::handle(&self.register, call.request()).await.unwrap())
    }
    pub async fn account_call(&self, call: Call) -> Answer {
        Answer::from(account::handle(&self.account, call.request()).await.unwrap())
    }
    pub async fn login(&self, username: &str, password: &str) -> Answer {
        self.login_call(Call::post("/auth/login").json(json!({"username": username, "password": password})))
            .await
    }
    /// `n` logins of `username`: their refresh cookies.
    pub async fn sessions(&self, username: &str, n: usize) -> Vec<String> {
        let mut cookies = Vec::new();
        for _ in 0..n {
            cookies.push(self.login(username, PASSWORD).await.refresh_cookie());
        }
        cookies
    }
    pub async fn refresh(&self, cookie: &str) -> Answer {
        self.refresh_call(Call::post("/auth/refresh").cookie(cookie)).await
    }
    pub async fn authorize(&self, event: Value) -> Result<Value, Unauthorized> {
        ask(&self.authorizer, &event).await
    }

    /// The stored session item, straight from the table.
    pub async fn session_item(&self, session_id: &str) -> Option<std::collections::HashMap<String, AttributeValue>> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.config.sessions_table)
            .key("session_id", AttributeValue::S(session_id.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.item().cloned()
    }

    /// The stored user item, straight from the table.
    pub async fn user_item(&self, username: &str) -> std::collections::HashMap<String, AttributeValue> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.config.users_table)
            .key("username", AttributeValue::S(username.into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.item().cloned().unwrap()
    }

    /// Forgets `username`'s failed attempts (the throttle item), as a wait would.
    pub async fn clear_throttle(&self, username: &str) {
        self.dynamodb
            .delete_item()
            .table_name(&self.config.users_table)
            .key("username", AttributeValue::S(format!("throttle#{username}")))
            .send()
            .await
            .unwrap();
    }

    pub async fn session_number(&self, session_id: &str, attribute: &str) -> Option<u64> {
        self.session_item(session_id).await?.get(attribute)?.as_n().ok()?.parse().ok()
    }

    /// Sets a numeric attribute of a stored session (to age it without waiting).
    pub async fn set_session_number(&self, session_id: &str, attribute: &str, value: u64) {
        self.dynamodb
            .update_item()
            .table_name(&self.config.sessions_table)
            .key("session_id", AttributeValue::S(session_id.into()))
            .update_expression("SET #a = :v")
            .expression_attribute_names("#a", attribute)
            .expression_attribute_values(":v", AttributeValue::N(value.to_string()))
            .send()
            .await
            .unwrap();
    }
}

pub fn now() -> u64 {
    use auth_core::clock::Clock;
    auth_core::clock::SystemClock.now()
}

pub fn session_id_of(refresh_token: &str) -> String {
    refresh_token.split('.').next().unwrap().to_owned()
}

/// The session id of a `refresh_token=<token>` cookie pair.
pub fn session_of_cookie(cookie: &str) -> String {
    session_id_of(cookie.trim_start_matches("refresh_token="))
}

pub fn generation_of(refresh_token: &str) -> u64 {
    refresh_token.split('.').nth(1).unwrap().parse().unwrap()
}

/// An HTTP API (payload 2.0) REQUEST authorizer event.
pub fn http_api_authorizer_event(authorization: Option<&str>, route_key: &str) -> Value {
    let mut headers = serde_json::Map::new();
    if let Some(value) = authorization {
        headers.insert("authorization".into(), json!(value));
    }
    json!({
        "version": "2.0",
        "type": "REQUEST",
        "routeArn": "arn:aws:execute-api:us-east-1:123456789012:api/$default/GET/pets",
        "identitySource": [authorization.unwrap_or_default()],
        "routeKey": route_key,
        "rawPath": "/pets",
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com", "domainPrefix": "api",
            "http": {"method": "GET", "path": "/pets", "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "e2e"},
            "requestId": "r1", "routeKey": route_key, "stage": "$default", "time": "23/Nov/2026:12:00:00 +0000", "timeEpoch": 1_795_000_000_000u64
        }
    })
}

/// Asks the authorizer about an event, as the runtime does (JSON text in), and returns its
/// answer as JSON, as API Gateway reads it.
pub async fn ask(authorizer: &Authorizer, event: &Value) -> Result<Value, Unauthorized> {
    let response = authorizer.handle(&event.to_string(), Some("e2e")).await?;
    Ok(serde_json::to_value(response).unwrap())
}

/// A REST API TOKEN authorizer event.
pub fn rest_token_event(authorization: &str) -> Value {
    json!({
        "type": "TOKEN",
        "authorizationToken": authorization,
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/pets/7"
    })
}

/// A REST API REQUEST authorizer event.
pub fn rest_request_event(authorization: &str) -> Value {
    json!({
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/pets",
        "resource": "/pets",
        "path": "/pets",
        "httpMethod": "GET",
        "headers": {"Authorization": authorization},
        "queryStringParameters": {},
        "pathParameters": {},
        "stageVariables": {},
        "requestContext": {"path": "/prod/pets", "accountId": "123456789012", "resourceId": "r", "stage": "prod", "requestId": "r1", "identity": {"sourceIp": "203.0.113.7"}, "resourcePath": "/pets", "httpMethod": "GET", "apiId": "abcdef1234"}
    })
}
