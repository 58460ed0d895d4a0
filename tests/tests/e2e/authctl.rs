use std::io::Write;
use std::process::{Command, Output, Stdio};

use auth_core::random::random_id;

use crate::harness::*;

/// Runs the real `authctl` binary (built by scripts/e2e.sh) against `app`'s tables.
fn authctl(app: &App, args: &[&str], stdin: Option<&str>) -> Output {
    let binary = std::env::var("AUTHCTL_BIN").expect("AUTHCTL_BIN is set by scripts/e2e.sh");
    let mut child = Command::new(binary)
        .args(args)
        .env("USERS_TABLE", &app.config.users_table)
        .env("SESSIONS_TABLE", &app.config.sessions_table)
        .env("SIGNING_SECRET_ID", &app.config.signing_secret_id)
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

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[tokio::test]
async fn local_setup_creates_everything_once_and_then_says_nothing_changed() {
    let mut app = spawn_app().await;
    let prefix = format!("setup-{}", random_id().to_lowercase().replace(['-', '_'], "x"));
    app.config.users_table = format!("{prefix}-users");
    app.config.sessions_table = format!("{prefix}-sessions");
    app.config.signing_secret_id = format!("{prefix}/keys");
    let first = authctl(&app, &["local-setup"], None);
    assert!(first.status.success(), "{}", text(&first));
    for expected in [
        "created table",
        "with index by_user",
        "enabled TTL",
        "created secret",
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
    let short = authctl(&app, &["user", "add", "dave@example.com"], Some("short\n"));
    assert!(
        !short.status.success() && text(&short).contains("the password must be 8 characters"),
        "{}",
        text(&short)
    );
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

#[tokio::test]
async fn keys_init_fills_the_stacks_placeholder_secret_once() {
    let mut app = spawn_app().await;
    app.config.signing_secret_id = format!("keys-{}/signing-keys", random_id().to_lowercase().replace(['-', '_'], "x"));
    // What template.yaml's GenerateSecretString creates.
    app.secrets
        .create_secret()
        .name(&app.config.signing_secret_id)
        .secret_string(r#"{"uninitialized": true, "placeholder": "x"}"#)
        .send()
        .await
        .unwrap();
    let first = authctl(&app, &["keys", "init"], None);
    assert!(first.status.success() && text(&first).contains("wrote a fresh HS256 key"), "{}", text(&first));
    let written = app.secrets.get_secret_value().secret_id(&app.config.signing_secret_id).send().await.unwrap();
    let keys = auth_core::keys::KeySet::from_json(written.secret_string().unwrap()).expect("a valid key set");
    assert_eq!(keys.active().kid, "k1");
    let second = authctl(&app, &["keys", "init"], None);
    assert!(second.status.success() && text(&second).contains("nothing to do"), "{}", text(&second));
    let unchanged = app.secrets.get_secret_value().secret_id(&app.config.signing_secret_id).send().await.unwrap();
    assert_eq!(unchanged.secret_string(), written.secret_string(), "working keys are never replaced");
}
