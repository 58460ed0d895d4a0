//! `account` end to end: the real handler over the emulator's sessions table and public key
//! store, with tokens issued by the real login.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::forge::{b64_json, our_header, sign};
use crate::harness::*;

/// `GET /auth/sessions` with `bearer`.
fn list(bearer: &str) -> Call {
    Call::get("/auth/sessions").header("authorization", &format!("Bearer {bearer}"))
}

/// `DELETE /auth/sessions/{session_id}` with `bearer`.
fn end(session_id: &str, bearer: &str) -> Call {
    let path: &'static str = format!("/auth/sessions/{session_id}").leak();
    Call::get(path).method("DELETE").header("authorization", &format!("Bearer {bearer}"))
}

/// `POST /auth/password` with `bearer`.
fn change_password(bearer: &str, current: &str, new: &str) -> Call {
    record_secret(current);
    record_secret(new);
    Call::post("/auth/password")
        .header("authorization", &format!("Bearer {bearer}"))
        .json(json!({"current_password": current, "new_password": new}))
}

/// A password the policy accepts.
const NEW_PASSWORD: &str = "quartz lantern orbit meadow";

/// A login's access token and session id.
async fn signed_in(app: &App, username: &str) -> (String, String) {
    let answer = app.login(username, PASSWORD).await;
    (answer.access_token(), session_id_of(&answer.refresh_token()))
}

fn listed_ids(answer: &Answer) -> Vec<String> {
    answer.json()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn revoked_at(app: &App, session_id: &str) -> Option<u64> {
    app.session_number(session_id, "revoked_at").await
}

#[tokio::test]
async fn listing_shows_exactly_the_callers_live_sessions_with_the_current_one_marked() {
    let app = spawn_app().await;
    let from_browser = Call::post("/auth/login")
        .header("user-agent", "Mozilla/5.0 (e2e)")
        .json(json!({"username": ALICE, "password": PASSWORD}));
    let logins = [
        app.login_call(from_browser).await,
        app.login(ALICE, PASSWORD).await,
        app.login(ALICE, PASSWORD).await,
    ];
    let ids: Vec<String> = logins.iter().map(|l| session_id_of(&l.refresh_token())).collect();
    app.set_session_number(&ids[0], "created_at", now() - 20).await;
    app.set_session_number(&ids[1], "created_at", now() - 10).await;
    // One logged out, one of another user: neither is listed.
    let logout = app.logout_call(Call::post("/auth/logout").cookie(&logins[2].refresh_cookie())).await;
    assert_eq!(logout.status, 204);
    let (_, bobs) = signed_in(&app, BOB).await;

    let answer = app.account_call(list(&logins[0].access_token())).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.header("content-type"), Some("application/json"));
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(listed_ids(&answer), [ids[1].clone(), ids[0].clone()], "newest first, live ones only");
    assert!(!answer.body.contains(&bobs));
    let sessions = answer.json()["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.iter().map(|s| s["current"].clone()).collect::<Vec<_>>(), [json!(false), json!(true)]);
    let item = app.session_item(&ids[0]).await.unwrap();
    let number = |name: &str| item[name].as_n().unwrap().parse::<u64>().unwrap();
    assert_eq!(
        sessions[1],
        json!({
            "session_id": ids[0],
            "created_at": number("created_at"),
            "last_used_at": number("rotated_at"),
            "expires_at": number("expires_at").min(number("absolute_expires_at")),
            "user_agent": "Mozilla/5.0 (e2e)",
            "source_ip": "203.0.113.7",
            "current": true,
        })
    );

    // From the other live session, the other one is current.
    let from_second = app.account_call(list(&logins[1].access_token())).await;
    let current: Vec<Value> = from_second.json()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["current"].clone())
        .collect();
    assert_eq!(current, [json!(true), json!(false)]);
}

#[tokio::test]
async fn ending_another_users_session_is_404_and_revokes_nothing() {
    let app = spawn_app().await;
    let (alice, _) = signed_in(&app, ALICE).await;
    let (_, bobs) = signed_in(&app, BOB).await;
    let answer = app.account_call(end(&bobs, &alice)).await;
    assert_eq!((answer.status, answer.error_code().as_str()), (404, "not_found"));
    let unknown = app.account_call(end("AAAAAAAAAAAAAAAAAAAAAA", &alice)).await;
    assert_eq!((unknown.status, unknown.body.as_str()), (404, answer.body.as_str()), "no oracle");
    let malformed = app.account_call(end("not-a-session", &alice)).await;
    assert_eq!((malformed.status, malformed.body.as_str()), (404, answer.body.as_str()));
    assert_eq!(revoked_at(&app, &bobs).await, None);
    assert!(app.session_item("AAAAAAAAAAAAAAAAAAAAAA").await.is_none(), "a failed condition creates no item");
}

#[tokio::test]
async fn ending_an_own_session_revokes_it_and_its_refresh_then_fails() {
    let app = spawn_app().await;
    let current = app.login(ALICE, PASSWORD).await;
    let other = app.login(ALICE, PASSWORD).await;
    let other_id = session_id_of(&other.refresh_token());
    let answer = app.account_call(end(&other_id, &current.access_token())).await;
    assert_eq!((answer.status, answer.body.as_str()), (204, ""));
    assert!(answer.set_cookies().is_empty(), "another session's cookie is not this browser's");
    let item = app.session_item(&other_id).await.unwrap();
    assert_eq!(item["revoke_reason"].as_s().unwrap(), "ended_by_user");
    assert_eq!(app.refresh(&other.refresh_cookie()).await.error_code(), "invalid_token");
    assert_eq!(app.refresh(&current.refresh_cookie()).await.status, 200, "the caller's session lives on");
    assert_eq!(app.account_call(end(&other_id, &current.access_token())).await.status, 404, "already ended");
}

#[tokio::test]
async fn ending_the_current_session_clears_the_refresh_cookie_and_its_token_stops_working() {
    let app = spawn_app().await;
    let login = app.login(ALICE, PASSWORD).await;
    let token = login.access_token();
    let id = session_id_of(&login.refresh_token());
    let answer = app.account_call(end(&id, &token)).await;
    assert_eq!(answer.status, 204);
    let cleared = answer.set_cookies();
    assert!(
        cleared.len() == 1 && cleared[0].starts_with("refresh_token=;") && cleared[0].contains("Max-Age=0") && cleared[0].contains("Path=/auth"),
        "{cleared:?}"
    );
    assert_eq!(app.account_call(list(&token)).await.error_code(), "invalid_token");
}

#[tokio::test]
async fn a_token_of_a_revoked_session_is_refused_at_once() {
    let app = spawn_app().await;
    let login = app.login(ALICE, PASSWORD).await;
    let token = login.access_token();
    assert_eq!(app.account_call(list(&token)).await.status, 200);
    assert_eq!(app.logout_call(Call::post("/auth/logout").cookie(&login.refresh_cookie())).await.status, 204);
    let answer = app.account_call(list(&token)).await;
    assert_eq!((answer.status, answer.error_code().as_str()), (401, "invalid_token"));
    // Ending any session with it is refused too, before any write.
    let (_, still_live) = signed_in(&app, ALICE).await;
    assert_eq!(app.account_call(end(&still_live, &token)).await.status, 401);
    assert_eq!(revoked_at(&app, &still_live).await, None);
}

#[tokio::test]
async fn a_missing_forged_or_expired_bearer_is_one_401() {
    let app = spawn_app().await;
    let login = app.login(ALICE, PASSWORD).await;
    let token = login.access_token();
    let id = session_id_of(&login.refresh_token());
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();

    // Bob's sub on Alice's signature: the signature no longer verifies.
    let (_, bobs) = signed_in(&app, BOB).await;
    let mut as_bob = claims.clone();
    as_bob["sub"] = json!("someone-else");
    let parts: Vec<&str> = token.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64_json(&as_bob), parts[2]);
    // Signed with the real key, live session, but expired.
    let mut expired = claims.clone();
    expired["iat"] = json!(now() - 1000);
    expired["exp"] = json!(now() - 100);
    let expired = sign(&our_header(), &expired);

    let cases = [
        ("missing", Call::get("/auth/sessions")),
        ("tampered", list(&tampered)),
        ("expired", list(&expired)),
        ("not a jwt", list("abc")),
        ("another scheme", Call::get("/auth/sessions").header("authorization", &format!("Basic {token}"))),
        ("tampered delete", end(&bobs, &tampered)),
    ];
    let mut bodies = Vec::new();
    for (case, call) in cases {
        let answer = app.account_call(call).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (401, "invalid_token"), "{case}");
        bodies.push(answer.body);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "one answer for every refusal");
    assert_eq!(revoked_at(&app, &bobs).await, None);
    assert_eq!(revoked_at(&app, &id).await, None);
    // The untouched token still works: the refusals were about the tokens.
    assert_eq!(app.account_call(list(&token)).await.status, 200);
}

#[tokio::test]
async fn a_delete_from_a_foreign_origin_is_403_and_revokes_nothing() {
    let app = spawn_app().await;
    let (token, _) = signed_in(&app, ALICE).await;
    let (_, other) = signed_in(&app, ALICE).await;
    for (name, value) in [("origin", "https://evil.test"), ("sec-fetch-site", "cross-site")] {
        let answer = app.account_call(end(&other, &token).header(name, value)).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (403, "forbidden_origin"), "{name}");
        assert_eq!(answer.header("access-control-allow-origin"), None);
    }
    assert_eq!(revoked_at(&app, &other).await, None);

    // The allow-listed origin may preflight and send it.
    let preflight = app.account_call(end(&other, &token).method("OPTIONS").header("origin", ORIGIN)).await;
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(preflight.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(preflight.header("access-control-allow-methods"), Some("DELETE, OPTIONS"));
    assert_eq!(preflight.header("access-control-allow-headers"), Some("authorization, content-type"));
    let answer = app.account_call(end(&other, &token).header("origin", ORIGIN)).await;
    assert_eq!(answer.status, 204);
    assert_eq!(answer.header("access-control-allow-origin"), Some(ORIGIN));
    assert!(revoked_at(&app, &other).await.is_some());
}

#[tokio::test]
async fn the_function_url_paths_of_cargo_lambda_watch_are_served() {
    let app = spawn_app().await;
    let (token, id) = signed_in(&app, ALICE).await;
    let listed = app
        .account_call(Call::get("/lambda-url/account/auth/sessions").header("authorization", &format!("Bearer {token}")))
        .await;
    assert_eq!(listed_ids(&listed), [id]);
    let wrong_method = app.account_call(list(&token).method("POST")).await;
    assert_eq!((wrong_method.status, wrong_method.header("allow")), (405, Some("GET, OPTIONS")));
    let elsewhere = app
        .account_call(Call::get("/lambda-url/account/").header("authorization", &format!("Bearer {token}")))
        .await;
    assert_eq!(elsewhere.status, 404);
}

#[tokio::test]
async fn changing_the_password_from_one_of_three_sessions_ends_the_other_two_and_keeps_the_callers() {
    let app = spawn_app().await;
    let logins = [
        app.login(ALICE, PASSWORD).await,
        app.login(ALICE, PASSWORD).await,
        app.login(ALICE, PASSWORD).await,
    ];
    let ids: Vec<String> = logins.iter().map(|l| session_id_of(&l.refresh_token())).collect();
    let (_, bobs) = signed_in(&app, BOB).await;
    let answer = app.account_call(change_password(&logins[0].access_token(), PASSWORD, NEW_PASSWORD)).await;
    assert_eq!((answer.status, answer.body.as_str()), (204, ""));

    let user = app.user_item(ALICE).await;
    assert_eq!(user["session_epoch"].as_n().unwrap(), "1");
    assert_eq!(app.session_number(&ids[0], "session_epoch").await, Some(1));
    assert!(user["password_hash"].as_s().unwrap().starts_with("$argon2id$"));
    for (login, id) in logins[1..].iter().zip(&ids[1..]) {
        // Revoked in the table at once, so their access tokens stop here at once too ...
        assert_eq!(app.session_item(id).await.unwrap()["revoke_reason"].as_s().unwrap(), "password_changed");
        assert_eq!(app.account_call(list(&login.access_token())).await.error_code(), "invalid_token");
        // ... and their refresh tokens are refused.
        assert_eq!(app.refresh(&login.refresh_cookie()).await.error_code(), "invalid_token");
    }
    // The caller's session goes on: its refresh token works, and so does its successor's.
    let refreshed = app.refresh(&logins[0].refresh_cookie()).await;
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(app.refresh(&refreshed.refresh_cookie()).await.status, 200);
    assert_eq!(listed_ids(&app.account_call(list(&refreshed.access_token())).await), [ids[0].clone()]);
    // Another user's session is untouched.
    assert_eq!(revoked_at(&app, &bobs).await, None);
    // The old password fails, the new one logs in, and that session works at once (no
    // waiting for the clock to pass the second of the change).
    assert_eq!(app.login(ALICE, PASSWORD).await.error_code(), "invalid_credentials");
    let fresh = app.login(ALICE, NEW_PASSWORD).await;
    assert_eq!(fresh.status, 200);
    assert_eq!(app.refresh(&fresh.refresh_cookie()).await.status, 200);
}

#[tokio::test]
async fn a_wrong_current_password_is_401_and_counts_toward_the_login_throttle() {
    let app = spawn_app().await;
    let (token, _) = signed_in(&app, ALICE).await;
    for attempt in 1..=5 {
        let answer = app.account_call(change_password(&token, "not the password", NEW_PASSWORD)).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (401, "invalid_credentials"), "attempt {attempt}");
    }
    // One counter for login and password change: the right password is now refused at both.
    let login = app.login(ALICE, PASSWORD).await;
    assert_eq!(login.status, 429, "{}", login.body);
    let hash = app.user_item(ALICE).await["password_hash"].clone();
    let change = app.account_call(change_password(&token, PASSWORD, NEW_PASSWORD)).await;
    assert_eq!(change.error_code(), "too_many_attempts");
    assert!(change.header("retry-after").is_some());
    assert_eq!(app.user_item(ALICE).await["password_hash"], hash, "nothing changed");
    assert_eq!(app.user_item(ALICE).await["session_epoch"].as_n().unwrap(), "0", "no bump");
}

#[tokio::test]
async fn a_weak_or_oversized_new_password_is_400_with_the_rule_and_changes_nothing() {
    let app = spawn_app().await;
    let (token, _) = signed_in(&app, ALICE).await;
    let oversized = "correct horse ".repeat(80);
    for (new, rule) in [
        ("password1234", "too easy to guess"),
        ("short one", "at least 12 characters"),
        (oversized.as_str(), "at most 1024 bytes"),
    ] {
        let answer = app.account_call(change_password(&token, PASSWORD, new)).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (400, "weak_password"), "{rule}");
        let message = answer.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(rule), "{message}");
    }
    let hash = app.user_item(ALICE).await["password_hash"].clone();
    assert_eq!(app.login(ALICE, PASSWORD).await.status, 200, "the password is unchanged");
    assert_eq!(app.user_item(ALICE).await["password_hash"], hash);
}

#[tokio::test]
async fn a_password_change_is_one_transaction_that_a_lost_race_leaves_unwritten() {
    use auth_core::store::dynamodb::{DynamoSessions, DynamoUsers};
    use auth_core::store::{SessionStore, UserStore};
    use auth_core::tokens::SessionId;

    let app = spawn_app().await;
    let users = DynamoUsers::new(app.dynamodb.clone(), &app.config.users_table, &app.config.sessions_table);
    let sessions = DynamoSessions::new(app.dynamodb.clone(), &app.config.sessions_table);
    let ids: Vec<String> = app.sessions(ALICE, 2).await.iter().map(|cookie| session_of_cookie(cookie)).collect();
    let read = |id: &String| {
        let sessions = &sessions;
        let id = SessionId::parse(id).unwrap();
        async move { sessions.get(&id).await.unwrap().unwrap() }
    };
    let (keep, other) = (read(&ids[0]).await, read(&ids[1]).await);
    let before = (app.user_item(ALICE).await, app.session_item(&ids[0]).await);
    // The hash the current password was checked against has been replaced meanwhile.
    let stale = "$argon2id$v=19$m=19456,t=2,p=1$c3RhbGU$c3RhbGU";
    assert!(!users.change_password(ALICE, stale, "$argon2id$new", &keep, now()).await.unwrap());
    assert_eq!((app.user_item(ALICE).await, app.session_item(&ids[0]).await), before, "nothing written");
    let current = before.0["password_hash"].as_s().unwrap();
    assert!(users.change_password(ALICE, current, "$argon2id$new", &keep, now()).await.unwrap());
    assert_eq!(app.user_item(ALICE).await["session_epoch"].as_n().unwrap(), "1");
    assert_eq!(
        app.session_number(&ids[0], "session_epoch").await,
        Some(1),
        "the caller's session moved in the same write"
    );
    assert_eq!(app.session_number(&ids[1], "session_epoch").await, Some(0), "no other did");
    // The caller's session, read before, is behind now: a second change from it is refused
    // whole, and so is one naming another user's session.
    let after = (app.user_item(ALICE).await, app.session_item(&ids[0]).await);
    assert!(!users.change_password(ALICE, "$argon2id$new", "$argon2id$newer", &keep, now()).await.unwrap());
    assert!(!users.change_password(ALICE, "$argon2id$new", "$argon2id$newer", &other, now()).await.unwrap());
    assert_eq!((app.user_item(ALICE).await, app.session_item(&ids[0]).await), after, "nothing written");
    assert!(
        !users
            .change_password("nobody@example.com", current, "$argon2id$new", &keep, now())
            .await
            .unwrap(),
        "no user, no item created"
    );
}

#[tokio::test]
async fn a_password_change_from_a_foreign_origin_is_403_and_checks_nothing() {
    let app = spawn_app().await;
    let (token, _) = signed_in(&app, ALICE).await;
    let before = app.user_item(ALICE).await;
    for (name, value) in [("origin", "https://evil.test"), ("sec-fetch-site", "cross-site")] {
        let answer = app.account_call(change_password(&token, PASSWORD, NEW_PASSWORD).header(name, value)).await;
        assert_eq!((answer.status, answer.error_code().as_str()), (403, "forbidden_origin"), "{name}");
    }
    assert_eq!(app.user_item(ALICE).await, before);
    let preflight = app.account_call(Call::get("/auth/password").method("OPTIONS").header("origin", ORIGIN)).await;
    assert_eq!(preflight.header("access-control-allow-methods"), Some("POST, OPTIONS"));
    let answer = app.account_call(change_password(&token, PASSWORD, NEW_PASSWORD).header("origin", ORIGIN)).await;
    assert_eq!(answer.status, 204);
}

#[tokio::test]
async fn a_listing_of_250_sessions_reads_the_newest_101_keys_and_100_items_from_dynamodb() {
    use auth_core::aws::{CallRecorder, account_with, load_sdk_config};
    use auth_core::store::SessionStore;
    use auth_core::store::dynamodb::DynamoSessions;
    use auth_core::tokens::SessionId;

    let app = spawn_app().await;
    let (token, sid) = signed_in(&app, ALICE).await;
    // 249 older sessions of the same user, written as login writes them.
    let sessions = DynamoSessions::new(app.dynamodb.clone(), &app.config.sessions_table);
    let caller = sessions.get(&SessionId::parse(&sid).unwrap()).await.unwrap().unwrap();
    for i in 1..250 {
        let older = auth_core::store::SessionRecord {
            session_id: SessionId::generate(),
            created_at: caller.created_at - i,
            ..caller.clone()
        };
        sessions.create(&older).await.unwrap();
    }
    let recorder = CallRecorder::default();
    let (dynamodb, secrets) = recorder.clients(&load_sdk_config().await);
    let account = account_with(&app.config, dynamodb, secrets).unwrap();
    account.keys().store().current().await.unwrap();
    recorder.clear();
    let listed = Answer::from(account::handle(&account, list(&token).request()).await.unwrap());
    assert_eq!(listed.status, 200, "{}", listed.body);
    let ids = listed_ids(&listed);
    assert_eq!((ids.len(), ids[0].as_str()), (100, sid.as_str()), "the newest hundred, the caller's first");
    assert_eq!(listed.json()["more"], true);
    let calls = recorder.calls();
    let queries = calls.iter().filter(|c| c.operation == "Query").count();
    let gets = calls.iter().filter(|c| c.operation == "GetItem").count();
    // The caller's session and user, one page of 101 keys, and the 100 listed items.
    assert_eq!((queries, gets), (1, 102), "{calls:?}");
}
