use auth_core::testing::{config_with, signing_keys};
use auth_core::tokens::AccessTokens;
use serde_json::{Value, json};

use crate::forge::*;
use crate::harness::*;

#[tokio::test]
async fn valid_token_is_allowed_with_context_in_both_gateway_shapes() {
    let app = spawn_app().await;
    let login = app.login(ALICE, PASSWORD).await;
    let bearer = format!("Bearer {}", login.access_token());
    let sid = session_id_of(&login.refresh_token());

    let http = app.authorize(http_api_authorizer_event(Some(&bearer), "GET /pets")).await.unwrap();
    assert_eq!(http["isAuthorized"], true);
    assert_eq!(http["context"]["sid"], sid.as_str());
    assert_eq!(http["context"]["roles"], "user");
    assert!(http["context"]["sub"].as_str().unwrap().starts_with("user-0-"));
    assert!(http["context"]["exp"].is_u64());

    for event in [rest_token_event(&bearer), rest_request_event(&bearer)] {
        let rest = app.authorize(event).await.unwrap();
        assert_eq!(rest["principalId"], http["context"]["sub"]);
        let statements = rest["policyDocument"]["Statement"].as_array().unwrap();
        assert_eq!(statements[0]["Effect"], "Allow");
        assert_eq!(statements[0]["Resource"][0], "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/*/*");
        assert_eq!(rest["context"]["sid"], sid.as_str());
    }
    let lower = app
        .authorize(http_api_authorizer_event(Some(&format!("bearer {}", login.access_token())), "GET /pets"))
        .await;
    assert!(is_allowed(&lower), "scheme is case-insensitive");
}

#[tokio::test]
async fn bad_tokens_are_denied_in_both_shapes_and_never_error_for_http_apis() {
    let app = spawn_app().await;
    let login = app.login(ALICE, PASSWORD).await;
    let valid = login.access_token();
    let now = now();
    let mut expired = valid_claims(&app.config);
    expired["iat"] = json!(now - 2000);
    expired["exp"] = json!(now - 31);
    let mut wrong_iss = valid_claims(&app.config);
    wrong_iss["iss"] = json!("https://evil.test");
    let mut wrong_aud = valid_claims(&app.config);
    wrong_aud["aud"] = json!("other");
    let mut nbf_null = valid_claims(&app.config);
    nbf_null["nbf"] = json!(null);
    let mut exp_string = valid_claims(&app.config);
    exp_string["exp"] = json!((now + 600).to_string());
    let other_issuer = AccessTokens::new(&config_with(&[("AUTH_ISSUER", "https://other.test")]))
        .issue(&signing_keys(), "u", "s", &[], &auth_core::claims::Authentication::password(now), now)
        .unwrap()
        .token;
    let mut tampered = valid.split('.').map(str::to_owned).collect::<Vec<_>>();
    tampered[1] = b64_json(&json!({"sub": "admin"}));
    let none_header = json!({"alg": "none", "typ": "at+jwt", "kid": "k1"});

    let cases: Vec<(&str, String)> = vec![
        ("expired", sign(&our_header(), &expired)),
        ("bad signature", format!("{}x", &valid[..valid.len() - 1])),
        ("tampered payload", tampered.join(".")),
        ("alg none", format!("{}.{}.", b64_json(&none_header), b64_json(&valid_claims(&app.config)))),
        ("alg none signed", sign(&none_header, &valid_claims(&app.config))),
        (
            "alg switched to HS512",
            sign(&json!({"alg": "HS512", "typ": "at+jwt", "kid": "k1"}), &valid_claims(&app.config)),
        ),
        ("wrong iss", sign(&our_header(), &wrong_iss)),
        ("wrong aud", sign(&our_header(), &wrong_aud)),
        ("other issuer's token", other_issuer),
        ("exp as string", sign(&our_header(), &exp_string)),
        ("nbf null", sign(&our_header(), &nbf_null)),
        ("typ JWT", sign(&json!({"alg": "ES256", "typ": "JWT", "kid": "k1"}), &valid_claims(&app.config))),
        (
            "unknown kid",
            sign(&json!({"alg": "ES256", "typ": "at+jwt", "kid": "k9"}), &valid_claims(&app.config)),
        ),
        (
            "embedded jwk",
            sign(
                &json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1", "jwk": {"kty": "oct"}}),
                &valid_claims(&app.config),
            ),
        ),
        (
            "crit",
            sign(
                &json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1", "crit": ["exp"]}),
                &valid_claims(&app.config),
            ),
        ),
        ("refresh token", login.refresh_token()),
        ("garbage", "garbage".into()),
        ("huge", "a".repeat(16 * 1024)),
    ];
    for (name, token) in &cases {
        let bearer = format!("Bearer {token}");
        let http = app.authorize(http_api_authorizer_event(Some(&bearer), "GET /pets")).await;
        assert_eq!(http.as_ref().ok(), Some(&json!({"isAuthorized": false})), "{name}");
        assert!(app.authorize(rest_token_event(&bearer)).await.is_err(), "{name} (REST TOKEN)");
        assert!(app.authorize(rest_request_event(&bearer)).await.is_err(), "{name} (REST REQUEST)");
    }
    let signed_ok = sign(&our_header(), &valid_claims(&app.config));
    assert!(
        is_allowed(
            &app.authorize(http_api_authorizer_event(Some(&format!("Bearer {signed_ok}")), "GET /pets"))
                .await
        ),
        "the crafting itself is right"
    );
}

#[tokio::test]
async fn missing_or_malformed_authorization_and_events_are_denied() {
    let app = spawn_app().await;
    let token = app.login(ALICE, PASSWORD).await.access_token();
    for authorization in [
        None,
        Some(token.clone()),
        Some(format!("Basic {token}")),
        Some(format!("Bearer {token} {token}")),
        Some(format!("Bearer {token},Bearer {token}")),
    ] {
        let answer = app.authorize(http_api_authorizer_event(authorization.as_deref(), "GET /pets")).await;
        assert_eq!(answer.ok(), Some(json!({"isAuthorized": false})), "{authorization:?}");
    }
    assert_eq!(
        app.authorize(json!({"version": "2.0", "type": "REQUEST"})).await.ok(),
        Some(json!({"isAuthorized": false}))
    );
    // An HTTP API payload always gets a simple deny, even when it names another type.
    assert_eq!(
        app.authorize(json!({"version": "2.0", "type": "TOKEN", "authorizationToken": "Bearer x"}))
            .await
            .ok(),
        Some(json!({"isAuthorized": false}))
    );
    assert!(app.authorize(json!("not an event")).await.is_err());
    assert!(
        app.authorize(json!({"type": "TOKEN", "authorizationToken": format!("Bearer {token}"), "methodArn": "garbage"}))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn route_roles_deny_tokens_without_the_role() {
    let app = spawn_app_with(&[("ROUTE_ROLES", r#"{"GET /admin": ["admin"]}"#)]).await;
    let bearer = format!("Bearer {}", app.login(ALICE, PASSWORD).await.access_token());
    assert!(is_allowed(&app.authorize(http_api_authorizer_event(Some(&bearer), "GET /pets")).await));
    assert!(!is_allowed(&app.authorize(http_api_authorizer_event(Some(&bearer), "GET /admin")).await));
    let rest = app.authorize(rest_token_event(&bearer)).await.unwrap();
    assert_eq!(rest["policyDocument"]["Statement"][1]["Effect"], "Deny");
    assert_eq!(
        rest["policyDocument"]["Statement"][1]["Resource"][0],
        "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/GET/admin"
    );
}

#[tokio::test]
async fn the_sample_fixture_event_parses_and_is_denied_without_a_valid_token() {
    let app = spawn_app().await;
    let fixture: Value = serde_json::from_str(include_str!("../../../functions/authorizer/fixtures/http-api-request.json")).unwrap();
    assert_eq!(app.authorize(fixture).await.ok(), Some(json!({"isAuthorized": false})));
}

#[tokio::test]
async fn rest_request_events_with_two_authorization_headers_are_denied() {
    let app = spawn_app().await;
    let bearer = format!("Bearer {}", app.login(ALICE, PASSWORD).await.access_token());
    let other = format!("Bearer {}", app.login(BOB, PASSWORD).await.access_token());
    let with_values = |values: Vec<&str>| {
        let mut event = rest_request_event(values.last().unwrap());
        event["multiValueHeaders"] = json!({"Authorization": values});
        event
    };
    assert!(app.authorize(with_values(vec![&bearer])).await.is_ok(), "one header: allowed");
    // REST keeps only the last repeated header in `headers`; `multiValueHeaders` has both.
    for values in [vec![other.as_str(), bearer.as_str()], vec![bearer.as_str(), bearer.as_str()]] {
        assert!(app.authorize(with_values(values)).await.is_err());
    }
    let mut differently_cased = rest_request_event(&bearer);
    differently_cased["multiValueHeaders"] = json!({"Authorization": [bearer], "authorization": [other]});
    assert!(app.authorize(differently_cased).await.is_err());
}

#[tokio::test]
async fn a_rest_route_whose_path_holds_a_colon_is_allowed_for_the_whole_stage() {
    let app = spawn_app().await;
    let bearer = format!("Bearer {}", app.login(ALICE, PASSWORD).await.access_token());
    let mut event = rest_token_event(&bearer);
    event["methodArn"] = json!("arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/POST/v1/items:batchGet");
    let policy = app.authorize(event).await.expect("allowed");
    assert_eq!(
        policy["policyDocument"]["Statement"][0]["Resource"][0],
        "arn:aws:execute-api:us-east-1:123456789012:abcdef1234/prod/*/*"
    );
}
