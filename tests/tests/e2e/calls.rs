//! Benchmark, not a check: AWS calls per operation, counted by an SDK interceptor (not
//! from consumed capacity), next to the design budget and the naive pattern. Run by
//! scripts/bench.sh (`--ignored`); writes target/bench/calls.md.

use std::sync::Arc;

use auth_core::api::session::AuthApi;
use auth_core::aws::{CallRecorder, account_with, auth_service_with, authorizer_with, load_sdk_config, session_check};
use serde_json::json;

use crate::harness::*;

/// (DynamoDB requests, Secrets Manager requests) since the last count. The recorder notes a
/// BatchGetItem once per table, one after the other (as IAM authorizes it): here it counts
/// once, as the request it is (nothing in these rows runs two batches at once).
fn count(recorder: &CallRecorder) -> (usize, usize) {
    let calls = recorder.calls();
    recorder.clear();
    let batch_continued = |i: usize| i > 0 && calls[i].operation == "BatchGetItem" && calls[i - 1].operation == "BatchGetItem";
    let dynamodb = (0..calls.len()).filter(|&i| calls[i].service == "dynamodb" && !batch_continued(i)).count();
    let secrets = calls.iter().filter(|c| c.service != "dynamodb").count();
    (dynamodb, secrets)
}

#[tokio::test]
#[ignore = "benchmark: run by scripts/bench.sh"]
async fn calls_per_operation() {
    let app = Arc::new(spawn_app().await);
    let sdk = load_sdk_config().await;
    let recorder = CallRecorder::default();
    let (dynamodb, secrets) = recorder.clients(&sdk);
    let service = auth_service_with(&app.config, dynamodb, secrets.clone());
    service.warm_up().await;
    let mut rows = vec![("cold start (login, refresh)", count(&recorder), "0 + 1 key fetch (+1 connection warm-up)", "-")];
    let api = Arc::new(AuthApi::new(service, &app.config));
    let login = |username: &str, password: &str| Call::post("/auth/login").json(json!({"username": username, "password": password})).request();

    let first = Answer::from(login::handle(&api, login(ALICE, PASSWORD)).await.unwrap());
    rows.push((
        "login",
        count(&recorder),
        "5 in 2 round trips (GetItem user + GetItem factors + UpdateItem attempt reservation, then PutItem session + UpdateItem reset)",
        "2-3 (GetItem user, PutItem session, often a counter write), guesses not bounded under parallelism",
    ));
    login::handle(&api, login(ALICE, "wrong password!")).await.unwrap();
    rows.push((
        "login, wrong password",
        count(&recorder),
        "3 (GetItem user + GetItem factors + UpdateItem reservation; +1 when a throttle starts)",
        "2-3",
    ));
    login::handle(&api, login(ALICE, PASSWORD)).await.unwrap();
    rows.push(("login after a failure", count(&recorder), "5 (as login)", "2-3"));

    // TOTP on (written straight to the table, uncounted): the challenge, then its answer.
    let users = auth_core::store::dynamodb::DynamoUsers::new(app.dynamodb.clone(), &app.config.users_table, &app.config.sessions_table);
    let secret = auth_core::factors::TotpSecret::generate();
    let totp_user = auth_core::store::FactorStore::start_totp(&users, BOB, &secret, now() + 600).await.unwrap();
    assert!(totp_user);
    let step = now() / 30;
    assert!(
        auth_core::store::FactorStore::confirm_totp(&users, BOB, &secret, step - 1, &[], now())
            .await
            .unwrap()
    );
    recorder.clear();
    let challenged = Answer::from(login::handle(&api, login(BOB, PASSWORD)).await.unwrap());
    rows.push((
        "login, TOTP on: the challenge",
        count(&recorder),
        "4 in 2 round trips (GetItem user + GetItem factors + UpdateItem reservation, then PutItem challenge)",
        "-",
    ));
    let answer = json!({"mfa_token": challenged.json()["mfa_token"], "code": secret.code_at(now())});
    let answered = Answer::from(login::handle(&api, Call::post("/auth/login/mfa").json(answer).request()).await.unwrap());
    assert_eq!(answered.status, 200, "{}", answered.body);
    rows.push((
        "login, TOTP on: the answer",
        count(&recorder),
        "8: GetItem challenge, GetItem user + GetItem factors + UpdateItem reservation, TransactWriteItems (counted as its UpdateItem factors + DeleteItem challenge), PutItem session + UpdateItem reset",
        "-",
    ));
    auth_core::store::FactorStore::remove_factors(&users, BOB).await.unwrap();

    let rotated = Answer::from(
        refresh::handle(&api, Call::post("/auth/refresh").cookie(&first.refresh_cookie()).request())
            .await
            .unwrap(),
    );
    assert_eq!(rotated.status, 200);
    rows.push((
        "refresh",
        count(&recorder),
        "1-2 (UpdateItem + GetItem user)",
        "3-4 (GetItem token, DeleteItem, PutItem, GetItem user) or a 2-item transaction at 2x cost",
    ));

    let cookie = rotated.refresh_cookie();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (api, cookie) = (api.clone(), cookie.clone());
            tokio::spawn(async move { Answer::from(refresh::handle(&api, Call::post("/auth/refresh").cookie(&cookie).request()).await.unwrap()).status })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    rows.push((
        "20 concurrent refreshes, one token",
        count(&recorder),
        "20 UpdateItem (1 succeeds) + 20 GetItem user",
        "60-80, and 19 of 20 tabs logged out",
    ));

    let session = Answer::from(login::handle(&api, login(BOB, PASSWORD)).await.unwrap());
    recorder.clear();
    logout::handle(&api, Call::post("/auth/logout").cookie(&session.refresh_cookie()).request())
        .await
        .unwrap();
    rows.push((
        "logout",
        count(&recorder),
        "1 UpdateItem (the current or the previous token; no key read)",
        "2 (GetItem + DeleteItem)",
    ));

    let mut sessions = Vec::new();
    for _ in 0..10 {
        sessions.push(Answer::from(login::handle(&api, login(BOB, PASSWORD)).await.unwrap()).refresh_cookie());
    }
    recorder.clear();
    logout::handle(
        &api,
        Call::post("/auth/logout").cookie(&sessions[0]).json(json!({"everywhere": true})).request(),
    )
    .await
    .unwrap();
    rows.push((
        "logout everywhere, 10 sessions",
        count(&recorder),
        "1 UpdateItem session + 1 UpdateItem user (the epoch bump) + 1 Query + 1 UpdateItem per other session, 8 at a time, best-effort, within 2.5 s",
        "1 Query/Scan + 1 DeleteItem per session",
    ));

    let authorizer = authorizer_with(&app.config, recorder.clients(&sdk).1).unwrap();
    authorizer.keys().store().current().await.unwrap();
    recorder.clear();
    let bearer = format!("Bearer {}", first.access_token());
    for _ in 0..100 {
        ask(&authorizer, &http_api_authorizer_event(Some(&bearer), "GET /pets")).await.unwrap();
    }
    rows.push((
        "authorizer, 100 warm invocations",
        count(&recorder),
        "0",
        "100 (a session or denylist lookup per request)",
    ));

    // Strict revocation: 100 invocations within one staleness window of a session it has
    // not seen, then one after the window with the session known.
    let strict_config = auth_core::Config {
        revocation_check: auth_core::config::RevocationCheck::Session,
        ..app.config.clone()
    };
    let (dynamodb, secrets) = recorder.clients(&sdk);
    let strict = authorizer_with(&strict_config, secrets)
        .unwrap()
        .with_session_check(session_check(&strict_config, dynamodb));
    strict.keys().store().current().await.unwrap();
    let fresh = Answer::from(login::handle(&api, login(ALICE, PASSWORD)).await.unwrap());
    let bearer = format!("Bearer {}", fresh.access_token());
    recorder.clear();
    for _ in 0..100 {
        ask(&strict, &http_api_authorizer_event(Some(&bearer), "GET /pets")).await.unwrap();
    }
    rows.push((
        "authorizer, strict, 100 invocations of a new session within 5 s",
        count(&recorder),
        "2 (GetItem session, then user), then 0 while the read is younger than REVOCATION_MAX_STALENESS",
        "100 (a session or denylist lookup per request)",
    ));
    let no_staleness = auth_core::Config {
        revocation_max_staleness: 0,
        ..strict_config.clone()
    };
    let (dynamodb, secrets) = recorder.clients(&sdk);
    let every_time = authorizer_with(&no_staleness, secrets)
        .unwrap()
        .with_session_check(session_check(&no_staleness, dynamodb));
    every_time.keys().store().current().await.unwrap();
    ask(&every_time, &http_api_authorizer_event(Some(&bearer), "GET /pets")).await.unwrap();
    recorder.clear();
    ask(&every_time, &http_api_authorizer_event(Some(&bearer), "GET /pets")).await.unwrap();
    rows.push((
        "authorizer, strict, a known session after its window",
        count(&recorder),
        "1 BatchGetItem (session + user)",
        "2 (GetItem session + GetItem user)",
    ));

    // Account: a listing of 3 sessions, ending one, a password change ending the others.
    let (dynamodb, secrets) = recorder.clients(&sdk);
    let account = account_with(&app.config, dynamodb, secrets).unwrap();
    account.keys().store().current().await.unwrap();
    let mut alices = Vec::new();
    for _ in 0..3 {
        alices.push(Answer::from(login::handle(&api, login(ALICE, PASSWORD)).await.unwrap()));
    }
    let bearer = format!("Bearer {}", alices[0].access_token());
    let live_before = Answer::from(
        account::handle(&account, Call::get("/auth/sessions").header("authorization", &bearer).request())
            .await
            .unwrap(),
    );
    recorder.clear();
    let listed = Answer::from(
        account::handle(&account, Call::get("/auth/sessions").header("authorization", &bearer).request())
            .await
            .unwrap(),
    );
    assert_eq!(listed.json()["sessions"], live_before.json()["sessions"]);
    let listed_count = listed.json()["sessions"].as_array().unwrap().len();
    rows.push((
        "account: list sessions",
        count(&recorder),
        "GetItem session + GetItem user + Query by_user_created (newest first, Limit 101) + 1 GetItem per listed session (here the user's live and ended ones), at most 100",
        "1 Scan",
    ));
    let end: &'static str = format!("/auth/sessions/{}", session_id_of(&alices[1].refresh_token())).leak();
    let ended = account::handle(&account, Call::get(end).method("DELETE").header("authorization", &bearer).request()).await;
    assert_eq!(Answer::from(ended.unwrap()).status, 204);
    rows.push((
        "account: end a session",
        count(&recorder),
        "GetItem session + GetItem user + 1 conditional UpdateItem",
        "2 (GetItem + DeleteItem)",
    ));
    let change = Call::post("/auth/password")
        .header("authorization", &bearer)
        .json(json!({"current_password": PASSWORD, "new_password": "quartz lantern orbit meadow"}));
    let changed = Answer::from(account::handle(&account, change.request()).await.unwrap());
    assert_eq!(changed.status, 204, "{}", changed.body);
    rows.push((
        "account: change password",
        count(&recorder),
        "GetItem session + GetItem user + GetItem factors (a step-up needed?), then GetItem user ∥ UpdateItem reservation, TransactWriteItems (counted as its 2 UpdateItems: user + caller's session), UpdateItem reset, Query by_user_created + 1 UpdateItem per other session, within 2.5 s",
        "3 + 1 per session",
    ));
    println!("(listing showed {listed_count} live sessions)");

    let mut table = String::from("| operation | DynamoDB calls | Secrets Manager calls | design budget | naive pattern |\n|---|---|---|---|---|\n");
    for (operation, (dynamodb, secrets), budget, naive) in rows {
        table.push_str(&format!("| {operation} | {dynamodb} | {secrets} | {budget} | {naive} |\n"));
    }
    println!("{table}");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/calls.md"), table).unwrap();
}
