use std::io::Write;
use std::process::{Command, Output, Stdio};

use auth_core::keys::secrets_manager::{read_secret, write_secret};
use auth_core::keys::{KeyDocument, PublicKeys, SigningKeys};
use auth_core::random::random_id;
use auth_core::testing::SIGNING_KEYS_JSON;

use crate::harness::*;

/// Runs the real `authctl` binary (built by scripts/e2e.sh) against `app`'s tables.
fn authctl(app: &App, args: &[&str], stdin: Option<&str>) -> Output {
    authctl_with(app, args, stdin, &[])
}

/// [`authctl`] with extra environment variables (e.g. `KEY_PUBLISH_DELAY`).
pub fn authctl_with(app: &App, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let binary = std::env::var("AUTHCTL_BIN").expect("AUTHCTL_BIN is set by scripts/e2e.sh");
    let mut child = Command::new(binary)
        .args(args)
        .envs(env.iter().copied())
        .env("USERS_TABLE", &app.config.users_table)
        .env("SESSIONS_TABLE", &app.config.sessions_table)
        .env("SIGNING_SECRET_ID", &app.config.signing_secret_id)
        .env("PUBLIC_KEYS_SECRET_ID", &app.config.public_keys_secret_id)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

pub fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test]
async fn local_setup_creates_everything_once_and_then_says_nothing_changed() {
    let mut app = spawn_app().await;
    let prefix = format!("setup-{}", random_id().to_lowercase().replace(['-', '_'], "x"));
    app.config.users_table = format!("{prefix}-users");
    app.config.sessions_table = format!("{prefix}-sessions");
    app.config.signing_secret_id = format!("{prefix}/keys");
    app.config.public_keys_secret_id = format!("{prefix}/public-keys");
    let first = authctl(&app, &["local-setup"], None);
    assert!(first.status.success(), "{}", text(&first));
    for expected in [
        "created table",
        "with index by_user",
        "enabled TTL",
        "created the key set: ES256 key",
        "created user demo@example.com",
    ] {
        assert!(text(&first).contains(expected), "{expected}: {}", text(&first));
    }
    let second = authctl(&app, &["local-setup"], None);
    assert!(second.status.success());
    assert!(text(&second).contains("nothing to do"), "{}", text(&second));
    assert!(!text(&second).contains("created"), "{}", text(&second));
}

#[tokio::test]
async fn local_setup_finds_existing_tables_however_many_tables_there_are() {
    // 100 tables created before the app's and sorting before them: ListTables' first page
    // (100 names, alphabetical in AWS, in creation order in moto) does not show the app's.
    let client = aws_sdk_dynamodb::Client::new(&auth_core::aws::load_sdk_config().await);
    let prefix = format!("a-{}", random_id().to_lowercase().replace(['-', '_'], "x"));
    let mut creating = tokio::task::JoinSet::new();
    for i in 0..100 {
        let (client, name) = (client.clone(), format!("{prefix}-{i:03}"));
        creating.spawn(async move {
            let key = aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("k")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap();
            let attribute = aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("k")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap();
            client
                .create_table()
                .table_name(name)
                .key_schema(key)
                .attribute_definitions(attribute)
                .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
                .send()
                .await
                .unwrap();
        });
    }
    creating.join_all().await;
    let app = spawn_app().await;
    let output = authctl(&app, &["local-setup"], None);
    assert!(output.status.success(), "{}", text(&output));
    assert!(!text(&output).contains("created table"), "{}", text(&output));
}

#[tokio::test]
async fn user_add_reads_the_password_from_stdin_and_the_user_can_log_in() {
    let app = spawn_app().await;
    let added = authctl(
        &app,
        &["user", "add", "Carol@Example.com", "--role", "admin", "--role", "user"],
        Some("a long enough password\n"),
    );
    assert!(added.status.success(), "{}", text(&added));
    let login = app.login("carol@example.com", "a long enough password").await;
    assert_eq!(login.status, 200);
    assert_eq!(
        app.refresh(&login.refresh_cookie()).await.status,
        200,
        "a session from the second of creation lives"
    );
    let collides = authctl(&app, &["user", "add", "throttle#carol@example.com"], Some("a long enough password\n"));
    assert!(
        !collides.status.success() && text(&collides).contains("must not contain '#'"),
        "{}",
        text(&collides)
    );
    let again = authctl(&app, &["user", "add", "carol@example.com"], Some("a long enough password\n"));
    assert!(!again.status.success() && text(&again).contains("already exists"));
    for (weak, rule) in [
        ("short\n", "at least 12 characters"),
        ("password1234\n", "too easy to guess"),
        ("dave@example.com\n", "must not be the username"),
    ] {
        let refused = authctl(&app, &["user", "add", "dave@example.com"], Some(weak));
        assert!(!refused.status.success() && text(&refused).contains(rule), "{rule}: {}", text(&refused));
    }
    assert_eq!(app.login("dave@example.com", "password1234").await.status, 401, "no user was added");
}

#[tokio::test]
async fn user_passwd_ends_every_session_and_roles_and_show_manage_the_user() {
    let app = spawn_app().await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let weak = authctl(&app, &["user", "passwd", ALICE], Some("alice1234567\n"));
    assert!(!weak.status.success() && text(&weak).contains("too easy to guess"), "{}", text(&weak));
    assert_eq!(app.refresh(&cookie).await.status, 200, "a refused change changes nothing");

    let changed = authctl(&app, &["user", "passwd", ALICE], Some("ｎｅｗ quartz lantern orbit\n"));
    assert!(changed.status.success(), "{}", text(&changed));
    assert_eq!(app.refresh(&cookie).await.error_code(), "invalid_token", "the old session ended");
    assert_eq!(app.login(ALICE, PASSWORD).await.status, 401, "the old password fails");
    assert_eq!(
        app.login(ALICE, "new quartz lantern orbit").await.status,
        200,
        "the new one, NFKC-normalised, works"
    );
    assert_eq!(
        app.login(ALICE, "ｎｅｗ quartz lantern orbit").await.status,
        200,
        "and so does the text as typed"
    );
    assert!(
        !authctl(&app, &["user", "passwd", "nobody@example.com"], Some("new quartz lantern orbit\n"))
            .status
            .success()
    );

    let roles = authctl(&app, &["user", "roles", ALICE, "--set", "admin,billing"], None);
    assert!(roles.status.success() && text(&roles).contains("next refresh"), "{}", text(&roles));
    let login = app.login(ALICE, "new quartz lantern orbit").await;
    let claims = login.access_token().split('.').nth(1).map(crate::forge::b64_decode_json).unwrap();
    assert_eq!(claims["roles"], serde_json::json!(["admin", "billing"]));
    assert_eq!(claims["scope"], "admin billing");

    let shown = text(&authctl(&app, &["user", "show", ALICE], None));
    assert!(shown.contains("[admin, billing]") && shown.contains("user id"), "{shown}");
    let stored = app.user_item(ALICE).await;
    assert!(!shown.contains(stored["password_hash"].as_s().unwrap()), "the hash is never printed");
}

#[tokio::test]
async fn sessions_can_be_listed_and_revoked_and_users_disabled() {
    let app = spawn_app().await;
    let first = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let second = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let sid = session_of_cookie(&first);
    let listed = authctl(&app, &["sessions", "list", ALICE], None);
    assert!(listed.status.success(), "{}", text(&listed));
    assert_eq!(text(&listed).matches(" live ").count(), 2, "{}", text(&listed));
    let revoked = authctl(&app, &["sessions", "revoke", &sid], None);
    assert!(text(&revoked).contains("revoked 1 session"), "{}", text(&revoked));
    assert_eq!(app.refresh(&first).await.status, 401);
    assert_eq!(app.refresh(&second).await.status, 200);

    let disabled = authctl(&app, &["user", "disable", ALICE], None);
    assert!(disabled.status.success(), "{}", text(&disabled));
    assert_eq!(app.login(ALICE, PASSWORD).await.status, 401);
    let all = authctl(&app, &["sessions", "revoke", "--user", BOB], None);
    assert!(all.status.success(), "{}", text(&all));
    assert!(!authctl(&app, &["user", "disable", "nobody@example.com"], None).status.success());
}

/// `app` with its two key secrets renamed to fresh ids, each created holding `placeholder`
/// when given (what template.yaml's GenerateSecretString creates).
async fn fresh_key_secrets(app: &mut App, placeholder: Option<&str>) {
    let prefix = format!("keys-{}", random_id().to_lowercase().replace(['-', '_'], "x"));
    app.config.signing_secret_id = format!("{prefix}/signing-keys");
    app.config.public_keys_secret_id = format!("{prefix}/public-keys");
    if let Some(value) = placeholder {
        for id in [&app.config.signing_secret_id, &app.config.public_keys_secret_id] {
            write_secret(&app.secrets, id, value).await.unwrap();
        }
    }
}

async fn secret(app: &App, id: &str) -> String {
    read_secret(&app.secrets, id).await.unwrap().unwrap()
}

#[tokio::test]
async fn keys_init_fills_the_stacks_placeholder_secrets_once_with_an_es256_key_published_first() {
    let mut app = spawn_app().await;
    fresh_key_secrets(&mut app, Some(r#"{"uninitialized": true, "placeholder": "x"}"#)).await;
    let first = authctl(&app, &["keys", "init"], None);
    assert!(
        first.status.success() && text(&first).contains("created the key set: ES256 key"),
        "{}",
        text(&first)
    );
    let private = secret(&app, &app.config.signing_secret_id).await;
    let keys = SigningKeys::from_json(&private).expect("a valid private key set");
    assert_eq!(format!("{:?}", keys.active().algorithm()), "ES256");
    let public = PublicKeys::from_json(&secret(&app, &app.config.public_keys_secret_id).await).expect("a valid public JWKS");
    assert!(public.verifying_key(keys.active().kid()).is_some(), "the signing key is published");
    let second = authctl(&app, &["keys", "init"], None);
    assert!(second.status.success() && text(&second).contains("nothing to do"), "{}", text(&second));
    assert_eq!(secret(&app, &app.config.signing_secret_id).await, private, "working keys are never replaced");
    let printed = authctl(&app, &["keys", "jwks"], None);
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout).trim(),
        secret(&app, &app.config.public_keys_secret_id).await,
        "keys jwks prints what is published"
    );
}

#[tokio::test]
async fn keys_init_replaces_an_hs256_key_set_and_keeps_its_pepper_so_sessions_survive() {
    let mut app = spawn_app().await;
    let cookie = app.login(ALICE, PASSWORD).await.refresh_cookie();
    let pepper = serde_json::from_str::<serde_json::Value>(SIGNING_KEYS_JSON).unwrap()["refresh_pepper"].clone();
    let hs256 = serde_json::json!({"active_kid": "k1", "keys": [{"kid": "k1", "alg": "HS256", "secret": auth_core::keys::generate_secret()}], "refresh_pepper": pepper});
    fresh_key_secrets(&mut app, None).await;
    write_secret(&app.secrets, &app.config.signing_secret_id, &hs256.to_string()).await.unwrap();
    let refused = SigningKeys::from_json(&hs256.to_string()).unwrap_err();
    assert!(refused.to_string().contains("authctl keys init"), "the functions say what to do: {refused}");

    let migrated = authctl(&app, &["keys", "init"], None);
    assert!(
        migrated.status.success() && text(&migrated).contains("replaced the HS256 key set"),
        "{}",
        text(&migrated)
    );
    let private = secret(&app, &app.config.signing_secret_id).await;
    assert!(private.contains(pepper.as_str().unwrap()), "the pepper is kept");
    assert!(!private.contains("HS256"));
    let api = crate::faults::api_with(&app, None, None).await;
    let refreshed = crate::faults::refresh_via(&api, &cookie).await;
    assert_eq!(refreshed.status, 200, "a session from before the migration refreshes: {}", refreshed.body);
    let kid = auth_core::tokens::AccessTokenHeader::read(&refreshed.access_token()).unwrap().kid;
    assert_eq!(kid, SigningKeys::from_json(&private).unwrap().active().kid(), "and gets a token of the new key");
}
