//! The API Gateway authorizer: HTTP API (payload 2.0, simple responses) and REST
//! (TOKEN and REQUEST, IAM policy). Verifies access tokens without touching a database and
//! fails closed: a malformed event, an unreadable key set or a panic is a deny.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse, ApiGatewayV2CustomAuthorizerSimpleResponse};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use serde::{Deserialize, Serialize};

use crate::audit::{self, AuditEvent, RequestMeta};
use crate::claims::{AccessClaims, amr};
use crate::clock::Clock;
use crate::config::Config;
use crate::keys::verifying::TrustedKeys;
use crate::service::revocation::{Refusal, SessionCheck};
use crate::tokens::{AccessTokenHeader, AccessTokens, Rejection};

mod event;

pub use event::AuthorizerEvent;
pub(crate) use event::bearer_token;
use event::{Gateway, HTTP_API_VERSION, Text};

/// The REST API deny: API Gateway answers 401 when the authorizer fails with exactly
/// this message.
pub const UNAUTHORIZED: &str = "Unauthorized";

/// The REST deny, returned as the invocation error API Gateway expects.
#[derive(Debug, thiserror::Error)]
#[error("Unauthorized")]
pub struct Unauthorized;

impl From<Unauthorized> for lambda_http::lambda_runtime::Diagnostic {
    fn from(_: Unauthorized) -> Self {
        lambda_http::lambda_runtime::Diagnostic {
            error_type: UNAUTHORIZED.into(),
            error_message: UNAUTHORIZED.into(),
        }
    }
}

/// What the authorizer answers; the runtime serialises it straight to the response body.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum AuthorizerResponse {
    /// HTTP API allow: `{"isAuthorized": true, "context": {...}}`.
    Allow(ApiGatewayV2CustomAuthorizerSimpleResponse<AuthorizerContext>),
    /// REST allow: an IAM policy for the stage, with the same context.
    Policy(ApiGatewayCustomAuthorizerResponse<AuthorizerContext>),
    /// HTTP API deny: exactly `{"isAuthorized": false}`, no context.
    Deny(SimpleDeny),
}

/// The body of an HTTP API deny.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SimpleDeny {
    is_authorized: bool,
}

/// What the protected API receives about the caller (`$context.authorizer.*` or
/// `event.requestContext.authorizer.lambda`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizerContext {
    /// The user id.
    pub sub: String,
    /// The session id.
    pub sid: String,
    /// The roles, comma-separated (API Gateway context values are scalars).
    pub roles: String,
    /// The access token's id.
    pub jti: String,
    /// The access token's expiry, epoch seconds.
    pub exp: u64,
}

impl From<AccessClaims> for AuthorizerContext {
    fn from(claims: AccessClaims) -> Self {
        Self {
            roles: claims.roles.join(","),
            sub: claims.sub,
            sid: claims.sid,
            jti: claims.jti,
            exp: claims.exp,
        }
    }
}

/// What an allowed request is answered with: a simple response, or a policy for the REST
/// stage `arn:aws:execute-api:<region>:<account>:<api>/<stage>`.
enum Target {
    HttpApi,
    RestStage(String),
}

/// Why a request was denied, for the audit line.
#[derive(Debug, Clone, Copy)]
enum Denial {
    MalformedEvent,
    NoBearer,
    Token(Rejection),
    KeysUnavailable,
    MissingRole,
    MissingSecondFactor,
    SessionNotLive,
    RevocationUnavailable,
    Panic,
}

impl Denial {
    fn as_str(self) -> &'static str {
        match self {
            Self::MalformedEvent => "malformed_event",
            Self::NoBearer => "no_bearer_token",
            Self::Token(r) => r.as_str(),
            Self::KeysUnavailable => "keys_unavailable",
            Self::MissingRole => "missing_role",
            Self::MissingSecondFactor => "mfa_required",
            Self::SessionNotLive => "session_not_live",
            Self::RevocationUnavailable => "revocation_unavailable",
            Self::Panic => "internal_error",
        }
    }
}

/// Verifies access tokens for API Gateway.
pub struct Authorizer {
    tokens: AccessTokens,
    keys: TrustedKeys,
    clock: Arc<dyn Clock>,
    route_roles: HashMap<String, Vec<String>>,
    /// Route keys whose tokens must show a second factor (`ROUTE_REQUIRE_MFA`).
    route_require_mfa: HashSet<String>,
    /// Strict mode's session check; `None` (the default) reads no database.
    sessions: Option<SessionCheck>,
}

impl Authorizer {
    /// Wires the authorizer.
    pub fn new(config: &Config, keys: TrustedKeys, clock: Arc<dyn Clock>) -> Self {
        Self {
            tokens: AccessTokens::new(config),
            keys,
            clock,
            route_roles: config.route_roles.clone(),
            route_require_mfa: config.route_require_mfa.clone(),
            sessions: None,
        }
    }

    /// Strict mode: every token's session is also confirmed live by `check`.
    pub fn with_session_check(mut self, check: SessionCheck) -> Self {
        self.sessions = Some(check);
        self
    }

    /// Strict mode's session check, when on.
    pub fn session_check(&self) -> Option<&SessionCheck> {
        self.sessions.as_ref()
    }

    /// The keys it trusts, for warming the store at cold start.
    pub fn keys(&self) -> &TrustedKeys {
        &self.keys
    }

    /// Answers one authorizer invocation from the event's JSON text. HTTP API: always `Ok`,
    /// a deny is `{"isAuthorized": false}`. REST: `Ok(policy)` or `Err(Unauthorized)` (401).
    pub async fn handle(&self, event: &str, request_id: Option<&str>) -> Result<AuthorizerResponse, Unauthorized> {
        match AuthorizerEvent::parse(event) {
            Some(event) => self.answer(&event, request_id).await,
            None => {
                audit::emit(
                    AuditEvent::AuthorizerDenied,
                    &Self::meta(request_id),
                    None,
                    None,
                    Some(Denial::MalformedEvent.as_str()),
                );
                Self::deny(is_http_api_event(event))
            }
        }
    }

    /// Answers an event already parsed with [`AuthorizerEvent::parse`].
    pub async fn answer(&self, event: &AuthorizerEvent<'_>, request_id: Option<&str>) -> Result<AuthorizerResponse, Unauthorized> {
        let gateway = event.gateway();
        let denial = match self.decide(event, gateway).await {
            // The response is built inside `guard` too: a bug there must deny, not crash.
            Ok((target, claims)) => match guard(|| Ok(self.allow(target, claims))) {
                Ok(response) => return Ok(response),
                Err(denial) => denial,
            },
            Err(denial) => denial,
        };
        let (source_ip, user_agent) = event.client();
        let meta = RequestMeta {
            source_ip,
            user_agent,
            ..Self::meta(request_id)
        };
        audit::emit(AuditEvent::AuthorizerDenied, &meta, None, None, Some(denial.as_str()));
        Self::deny(event.version.as_deref() == Some(HTTP_API_VERSION))
    }

    fn meta(request_id: Option<&str>) -> RequestMeta {
        RequestMeta {
            request_id: request_id.map(str::to_owned),
            ..RequestMeta::default()
        }
    }

    /// Who may pass, and what to answer them: every check that can deny happens here.
    async fn decide(&self, event: &AuthorizerEvent<'_>, gateway: Option<Gateway>) -> Result<(Target, AccessClaims), Denial> {
        let gateway = gateway.ok_or(Denial::MalformedEvent)?;
        let target = match gateway {
            Gateway::HttpApi => Target::HttpApi,
            Gateway::RestToken | Gateway::RestRequest => {
                Target::RestStage(event.method_arn.as_deref().and_then(api_stage_prefix).ok_or(Denial::MalformedEvent)?)
            }
        };
        let bearer = event.bearer(gateway).ok_or(Denial::NoBearer)?;
        let header = guard(|| AccessTokenHeader::read(bearer).map_err(Denial::Token))?;
        let keys = self.keys.for_kid(&header.kid).await.map_err(|e| {
            tracing::error!(cause = %e, "key set unavailable; denying");
            Denial::KeysUnavailable
        })?;
        let now = self.clock.now();
        let claims = guard(|| self.tokens.verify(&keys, bearer, &header, now).map_err(Denial::Token))?;
        if gateway == Gateway::HttpApi {
            let route_key = event.route_key.as_deref().unwrap_or_default();
            if !has_required_role(&self.route_roles, route_key, &claims.roles) {
                return Err(Denial::MissingRole);
            }
            // SECURITY: a password-only token (or one from before `amr`) does not reach a
            // route that requires a second factor.
            if self.route_require_mfa.contains(route_key) && !amr::has_second_factor(&claims.amr) {
                return Err(Denial::MissingSecondFactor);
            }
        }
        // Strict mode, last: only a token that passed everything else costs a read.
        if let Some(sessions) = &self.sessions {
            sessions.confirm(&claims.sub, &claims.sid).await.map_err(|refusal| match refusal {
                Refusal::NotLive => Denial::SessionNotLive,
                Refusal::Unavailable => Denial::RevocationUnavailable,
            })?;
        }
        Ok((target, claims))
    }

    fn allow(&self, target: Target, claims: AccessClaims) -> AuthorizerResponse {
        let api_prefix = match target {
            Target::HttpApi => {
                let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::default();
                response.is_authorized = true;
                response.context = claims.into();
                return AuthorizerResponse::Allow(response);
            }
            Target::RestStage(api_prefix) => api_prefix,
        };
        // API Gateway caches this policy per token and reuses it for every route: allow the
        // whole stage, then deny each role-guarded route the token may not reach, and each
        // route requiring a second factor when the token shows none.
        let mut statements = vec![statement(IamPolicyEffect::Allow, vec![format!("{api_prefix}/*/*")])];
        let missing_role = self
            .route_roles
            .iter()
            .filter(|(_, roles)| !roles.iter().any(|r| claims.roles.contains(r)))
            .map(|(route_key, _)| route_key);
        let missing_factor = self.route_require_mfa.iter().filter(|_| !amr::has_second_factor(&claims.amr));
        let denied: Vec<String> = missing_role
            .chain(missing_factor)
            .filter_map(|route_key| rest_resource(route_key).map(|r| format!("{api_prefix}/{r}")))
            .collect();
        if !denied.is_empty() {
            statements.push(statement(IamPolicyEffect::Deny, denied));
        }
        let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
        policy.version = Some("2012-10-17".into());
        policy.statement = statements;
        let mut response = ApiGatewayCustomAuthorizerResponse::default();
        response.principal_id = Some(claims.sub.clone());
        response.policy_document = policy;
        response.context = claims.into();
        AuthorizerResponse::Policy(response)
    }

    fn deny(is_http_api: bool) -> Result<AuthorizerResponse, Unauthorized> {
        if is_http_api {
            Ok(AuthorizerResponse::Deny(SimpleDeny { is_authorized: false }))
        } else {
            Err(Unauthorized)
        }
    }
}

/// Whether an event we could not read came from an HTTP API (which wants a simple deny,
/// not an error): its `version` is [`HTTP_API_VERSION`], as in [`Authorizer::answer`].
fn is_http_api_event(event: &str) -> bool {
    #[derive(Deserialize)]
    struct Version<'a> {
        #[serde(borrow)]
        version: Option<Text<'a>>,
    }
    serde_json::from_str::<Version>(event).is_ok_and(|v| v.version.as_deref() == Some(HTTP_API_VERSION))
}

/// Runs `f`, turning a panic into a deny.
fn guard<T>(f: impl FnOnce() -> Result<T, Denial>) -> Result<T, Denial> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(Err(Denial::Panic))
}

fn statement(effect: IamPolicyEffect, resource: Vec<String>) -> IamPolicyStatement {
    let mut s = IamPolicyStatement::default();
    s.action = vec!["execute-api:Invoke".into()];
    s.effect = effect;
    s.resource = resource;
    s
}

/// Whether a route that requires roles is reached by a token holding one of them.
fn has_required_role(route_roles: &HashMap<String, Vec<String>>, route_key: &str, roles: &[String]) -> bool {
    route_roles.get(route_key).is_none_or(|required| required.iter().any(|r| roles.contains(r)))
}

/// `arn:aws:execute-api:<region>:<account>:<api>/<stage>` from a method ARN. The ARN's
/// five fixed fields are split from the left: the resource path after them may hold colons
/// itself (`POST /v1/items:batchGet`).
fn api_stage_prefix(method_arn: &str) -> Option<String> {
    let mut fields = method_arn.splitn(6, ':');
    let head: Vec<&str> = fields.by_ref().take(5).collect();
    let path = fields.next()?;
    if head.len() != 5 || head[0] != "arn" || head[2] != "execute-api" {
        return None;
    }
    let mut parts = path.split('/');
    let (api, stage) = (parts.next().filter(|s| !s.is_empty())?, parts.next().filter(|s| !s.is_empty())?);
    Some(format!("{}:{api}/{stage}", head.join(":")))
}

/// A route key `GET /pets/{id}` as a REST resource `GET/pets/*` (`ANY` becomes `*`).
fn rest_resource(route_key: &str) -> Option<String> {
    let (method, path) = route_key.split_once(' ')?;
    let method = if method == "ANY" { "*" } else { method };
    let path: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .map(|seg| if seg.starts_with('{') { "*" } else { seg })
        .collect();
    Some(format!("{method}/{}", path.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing_is_strict() {
        assert_eq!(bearer_token("Bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token("bearer abc.def.ghi"), Some("abc.def.ghi"));
        assert_eq!(bearer_token("Bearer  abc.def.ghi "), Some("abc.def.ghi"));
        for bad in ["abc.def.ghi", "Basic abc", "Bearer a b", "Bearer a,Bearer b", "Bearer ", "Token abc"] {
            assert_eq!(bearer_token(bad), None, "{bad}");
        }
    }

    fn bearer_of(event: &str) -> Option<String> {
        let event = AuthorizerEvent::parse(event)?;
        event.bearer(event.gateway()?).map(str::to_owned)
    }

    fn http_api_event(headers: &str) -> String {
        format!(r#"{{"version":"2.0","type":"REQUEST","routeKey":"GET /pets","headers":{headers},"requestContext":{{"http":{{"method":"GET"}}}}}}"#)
    }

    mod grammar {
        use proptest::prelude::*;

        use super::*;

        /// RFC 6750's form as we take it: `Bearer` in any case, one or more spaces, one token
        /// of the JWT alphabet (base64url and dots); spaces around the whole allowed.
        fn bearer_grammar(value: &str) -> Option<&str> {
            let value = value.trim_matches(|c: char| c.is_whitespace());
            let scheme = value.get(..6)?;
            let rest = value.get(6..)?;
            let token = rest.trim_start_matches(' ');
            let jwt = !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            (scheme.eq_ignore_ascii_case("bearer") && rest.starts_with(' ') && jwt).then_some(token)
        }

        fn header_values() -> impl Strategy<Value = String> {
            let schemes = prop::sample::select(&["Bearer ", "bearer  ", "BEARER ", " Bearer ", "Bearer", "Basic ", "Bearerx ", ""][..]);
            let tokens = prop_oneof!["[A-Za-z0-9_.-]{0,60}", "[A-Za-z0-9_.,=+/ -]{0,60}", "\\PC{0,40}"];
            prop_oneof![(schemes, tokens).prop_map(|(scheme, token)| format!("{scheme}{token}")), "\\PC{0,80}"]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(crate::testing::property_cases()))]

            /// The event reader with any `Authorization` value, JSON-escaped as API Gateway
            /// sends it (quotes, backslashes, non-ASCII): the token comes back exactly when
            /// the value is in the grammar, and the text is read without a panic.
            #[test]
            fn the_bearer_token_comes_back_exactly_when_the_header_is_in_the_grammar(value in header_values()) {
                let headers = serde_json::json!({"authorization": value}).to_string();
                let expected = bearer_grammar(&value).map(str::to_owned);
                prop_assert_eq!(bearer_of(&http_api_event(&headers)), expected, "{:?}", value);
            }

            #[test]
            fn a_damaged_event_is_read_without_a_panic(at in any::<prop::sample::Index>(), byte in any::<u8>(), insert in any::<bool>()) {
                let mut bytes = http_api_event(r#"{"authorization":"Bearer abc.def.ghi"}"#).into_bytes();
                let i = at.index(bytes.len());
                if insert { bytes.insert(i, byte) } else { bytes[i] = byte }
                if let Ok(text) = String::from_utf8(bytes) {
                    let read = bearer_of(&text);
                    let well_formed = read.as_deref().is_none_or(|token| bearer_grammar(&("Bearer ".to_owned() + token)).is_some());
                    prop_assert!(well_formed, "{}", text);
                }
            }
        }
    }

    #[test]
    fn events_are_read_from_their_text_strictly() {
        assert_eq!(
            bearer_of(&http_api_event(r#"{"Authorization":"Bearer a.b.c","cookie":"x=\"1\""}"#)).as_deref(),
            Some("a.b.c")
        );
        // A value with JSON escapes is copied, not refused.
        assert_eq!(bearer_of(&http_api_event(r#"{"authorization":"Bearer a.b\u002ec"}"#)).as_deref(), Some("a.b.c"));
        // Two Authorization headers, in any case, or none: no token.
        assert_eq!(
            bearer_of(&http_api_event(r#"{"authorization":"Bearer a.b.c","AUTHORIZATION":"Bearer a.b.c"}"#)),
            None
        );
        assert_eq!(bearer_of(&http_api_event("null")), None);
        // A header of the wrong JSON type, or a mistyped field, is a malformed event.
        for headers in [r#"{"authorization":["Bearer a.b.c"]}"#, r#"{"authorization":1}"#, r#"["authorization"]"#] {
            assert!(AuthorizerEvent::parse(&http_api_event(headers)).is_none(), "{headers}");
        }
        assert!(AuthorizerEvent::parse(r#"{"version":2,"type":"REQUEST"}"#).is_none());
        assert!(AuthorizerEvent::parse(r#"{"version":"2.0","type":"TOKEN?"}"#).is_none());
        // REST keeps the last repeated header in `headers`, all of them in `multiValueHeaders`.
        let rest = |multi: &str| format!(r#"{{"type":"REQUEST","headers":{{"Authorization":"Bearer a.b.c"}},"multiValueHeaders":{multi}}}"#);
        assert_eq!(bearer_of(&rest(r#"{"Authorization":["Bearer a.b.c"]}"#)).as_deref(), Some("a.b.c"));
        assert_eq!(bearer_of(&rest(r#"{"Authorization":["Bearer x.y.z","Bearer a.b.c"]}"#)), None);
        assert_eq!(bearer_of(&rest(r#"{"authorization":["Bearer x.y.z"],"AUTHORIZATION":["Bearer a.b.c"]}"#)), None);
    }

    #[test]
    fn an_unreadable_http_api_event_still_gets_a_simple_deny() {
        assert!(is_http_api_event(&http_api_event(r#"{"authorization":1}"#)));
        assert!(!is_http_api_event(r#"{"type":"TOKEN","authorizationToken":1}"#));
        assert!(!is_http_api_event(r#""not an event""#));
    }

    #[test]
    fn rest_policy_resources_come_from_the_method_arn() {
        let arn = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/pets/7";
        assert_eq!(api_stage_prefix(arn).unwrap(), "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod");
        assert_eq!(api_stage_prefix("garbage"), None);
        // A greedy path with a colon (`POST /v1/items:batchGet`) is still this stage.
        let colon = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/POST/v1/items:batchGet";
        assert_eq!(api_stage_prefix(colon).unwrap(), "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod");
        assert_eq!(api_stage_prefix("arn:aws:execute-api:eu-west-1:abcdef1234/prod/GET/x"), None, "a field missing");
        assert_eq!(rest_resource("GET /admin/{id}").unwrap(), "GET/admin/*");
        assert_eq!(rest_resource("ANY /admin").unwrap(), "*/admin");
    }

    #[test]
    fn route_roles_require_one_of_the_roles() {
        let rules = HashMap::from([("GET /admin".to_string(), vec!["admin".to_string()])]);
        assert!(has_required_role(&rules, "GET /pets", &[]));
        assert!(!has_required_role(&rules, "GET /admin", &["user".into()]));
        assert!(has_required_role(&rules, "GET /admin", &["admin".into()]));
    }

    #[test]
    fn debug_output_of_events_never_shows_the_bearer_token() {
        let token = "eyJzZWNyZXQ.eyJzZWNyZXQ.c2lnbmF0dXJl";
        let http = http_api_event(&format!(r#"{{"authorization":"Bearer {token}"}}"#));
        let rest_token = format!(r#"{{"type":"TOKEN","authorizationToken":"Bearer {token}","methodArn":"arn:aws:execute-api:r:1:a/s/GET/x"}}"#);
        let rest_multi =
            format!(r#"{{"type":"REQUEST","headers":{{"Authorization":"Bearer {token}"}},"multiValueHeaders":{{"Authorization":["Bearer {token}"]}}}}"#);
        for text in [http, rest_token, rest_multi] {
            let event = AuthorizerEvent::parse(&text).unwrap();
            let printed = format!("{event:?}");
            assert!(!printed.contains(token), "{printed}");
            assert!(printed.contains("<redacted>"), "{printed}");
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn denials_are_audited_with_the_clients_address_and_user_agent() {
        let config = crate::testing::config();
        let clock = Arc::new(crate::testing::FixedClock::new(1_700_000_000));
        let store = crate::keys::KeyCache::new(Arc::new(crate::testing::StaticKeys::public()), clock.clone(), 300);
        let authorizer = Authorizer::new(&config, TrustedKeys::new(None, store), clock);
        let (_guard, logs) = crate::testing::capture_logs();
        let http = r#"{"version":"2.0","type":"REQUEST","routeKey":"GET /pets","headers":{"authorization":"Bearer x.y.z"},
            "requestContext":{"http":{"method":"GET","sourceIp":"203.0.113.9","userAgent":"curl/8.5"}}}"#;
        let rest = r#"{"type":"REQUEST","methodArn":"arn:aws:execute-api:r:1:a/s/GET/x","headers":{},
            "requestContext":{"identity":{"sourceIp":"198.51.100.4","userAgent":"okhttp/4"}}}"#;
        authorizer.handle(http, Some("r1")).await.unwrap();
        assert!(authorizer.handle(rest, Some("r2")).await.is_err());
        let lines: Vec<serde_json::Value> = logs.text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let denied: Vec<_> = lines.iter().filter(|l| l["event"] == "authorizer_denied").collect();
        assert_eq!(denied.len(), 2, "{lines:?}");
        assert_eq!(
            (denied[0]["source_ip"].as_str(), denied[0]["user_agent"].as_str()),
            (Some("203.0.113.9"), Some("curl/8.5"))
        );
        assert_eq!(
            (denied[1]["source_ip"].as_str(), denied[1]["user_agent"].as_str()),
            (Some("198.51.100.4"), Some("okhttp/4"))
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_route_requiring_mfa_denies_a_password_only_token_and_allows_a_second_factor() {
        use crate::claims::Authentication;
        let config = crate::testing::config_with(&[("ROUTE_REQUIRE_MFA", "POST /payments")]);
        let clock = Arc::new(crate::testing::FixedClock::new(1_700_000_000));
        let store = crate::keys::KeyCache::new(Arc::new(crate::testing::StaticKeys::public()), clock.clone(), 300);
        let authorizer = Authorizer::new(&config, TrustedKeys::new(None, store), clock.clone());
        let now = clock.now();
        let token = |auth: Authentication| {
            AccessTokens::new(&config)
                .issue(&crate::testing::signing_keys(), "u", "s", &[], &auth, now)
                .unwrap()
                .token
        };
        let (password, second) = (token(Authentication::password(now)), token(Authentication::password(now).with_otp(now)));
        let http = |route: &str, token: &str| {
            format!(
                r#"{{"version":"2.0","type":"REQUEST","routeKey":"{route}","headers":{{"authorization":"Bearer {token}"}},"requestContext":{{"http":{{"method":"POST"}}}}}}"#
            )
        };
        let allowed = |answer: Result<AuthorizerResponse, Unauthorized>| matches!(answer, Ok(AuthorizerResponse::Allow(_)));
        let (_guard, logs) = crate::testing::capture_logs();
        assert!(!allowed(authorizer.handle(&http("POST /payments", &password), None).await));
        assert!(logs.text().contains(r#""reason":"mfa_required""#), "{}", logs.text());
        assert!(allowed(authorizer.handle(&http("POST /payments", &second), None).await));
        assert!(
            allowed(authorizer.handle(&http("GET /pets", &password), None).await),
            "other routes are not affected"
        );

        // REST: the cached policy denies the route to the password-only token only.
        let rest = |token: &str| format!(r#"{{"type":"TOKEN","authorizationToken":"Bearer {token}","methodArn":"arn:aws:execute-api:r:1:a/s/GET/pets"}}"#);
        let policy = |answer: Result<AuthorizerResponse, Unauthorized>| match answer {
            Ok(AuthorizerResponse::Policy(p)) => serde_json::to_string(&p.policy_document).unwrap(),
            _ => panic!("no policy"),
        };
        let denied = policy(authorizer.handle(&rest(&password), None).await);
        assert!(
            denied.contains("Deny") && denied.contains("arn:aws:execute-api:r:1:a/s/POST/payments"),
            "{denied}"
        );
        assert!(!policy(authorizer.handle(&rest(&second), None).await).contains("Deny"));
    }
}
