//! Benchmark, not a check: AWS calls per operation, counted by an SDK interceptor (not
//! from consumed capacity), next to the design budget and the naive pattern. Run by
//! scripts/bench.sh (`--ignored`); writes target/bench/calls.md.

use std::sync::Arc;

use auth_core::aws::{CallRecorder, auth_service_with, authorizer_with, load_sdk_config};
use auth_core::http::AuthApi;
use serde_json::json;

use crate::harness::*;

fn count(recorder: &CallRecorder) -> (usize, usize) {
    let calls = recorder.calls();
    recorder.clear();
    let dynamodb = calls.iter().filter(|c| c.service == "dynamodb").count();
    (dynamodb, calls.len() - dynamodb)
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
        "4 in 2 round trips (GetItem user + UpdateItem attempt reservation, then PutItem session + UpdateItem reset)",
        "2-3 (GetItem user, PutItem session, often a counter write), guesses not bounded under parallelism",
    ));
    login::handle(&api, login(ALICE, "wrong password!")).await.unwrap();
    rows.push((
        "login, wrong password",
        count(&recorder),
        "2 (GetItem user + UpdateItem reservation; +1 when a throttle starts)",
        "2-3",
    ));
    login::handle(&api, login(ALICE, PASSWORD)).await.unwrap();
    rows.push(("login after a failure", count(&recorder), "4 (as login)", "2-3"));

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
        "1 UpdateItem session + 1 UpdateItem user (the revocation point) + 1 Query + 1 UpdateItem per other session, 8 at a time, best-effort",
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

    let mut table = String::from("| operation | DynamoDB calls | Secrets Manager calls | design budget | naive pattern |\n|---|---|---|---|---|\n");
    for (operation, (dynamodb, secrets), budget, naive) in rows {
        table.push_str(&format!("| {operation} | {dynamodb} | {secrets} | {budget} | {naive} |\n"));
    }
    println!("{table}");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench");
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/calls.md"), table).unwrap();
}
