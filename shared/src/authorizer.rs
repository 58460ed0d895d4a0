//! The API Gateway authorizer: HTTP API (payload 2.0, simple responses) and REST
//! (TOKEN and REQUEST, IAM policy). Verifies access tokens without touching a database and
//! fails closed: a malformed event, an unreadable key set or a panic is a deny.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayCustomAuthorizerPolicy, ApiGatewayCustomAuthorizerResponse, ApiGatewayV2CustomAuthorizerSimpleResponse};
use aws_lambda_events::iam::{IamPolicyEffect, IamPolicyStatement};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::audit::{self, AuditEvent, RequestMeta};
use crate::claims::AccessClaims;
use crate::clock::Clock;
use crate::config::Config;
use crate::keys::KeyCache;
use crate::tokens::{AccessTokenHeader, AccessTokens, Rejection};

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

/// Which gateway asked, from the event's `version` and `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gateway {
    HttpApi,
    RestToken,
    RestRequest,
}

/// The fields of an authorizer event this module reads, borrowed from the event. The
/// `aws_lambda_events` request types parse the whole request context and build an
/// `http::HeaderMap` for every event, which took longer than verifying the token; the
/// authorizer needs seven fields. A field of the wrong JSON type fails the parse: a deny.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizerEvent<'a> {
    #[serde(borrow, default)]
    version: Option<&'a str>,
    #[serde(borrow, default, rename = "type")]
    kind: Option<&'a str>,
    #[serde(borrow, default)]
    headers: Option<HashMap<&'a str, &'a str>>,
    #[serde(borrow, default)]
    multi_value_headers: Option<HashMap<&'a str, Vec<&'a str>>>,
    #[serde(borrow, default)]
    authorization_token: Option<&'a str>,
    #[serde(borrow, default)]
    method_arn: Option<&'a str>,
    #[serde(borrow, default)]
    route_key: Option<&'a str>,
}

impl AuthorizerEvent<'_> {
    fn gateway(&self) -> Option<Gateway> {
        let kind = self.kind?;
        match self.version {
            Some("2.0") if kind.eq_ignore_ascii_case("REQUEST") => Some(Gateway::HttpApi),
            _ if kind.eq_ignore_ascii_case("TOKEN") => Some(Gateway::RestToken),
            None | Some("1.0") if kind.eq_ignore_ascii_case("REQUEST") => Some(Gateway::RestRequest),
            _ => None,
        }
    }

    /// The Bearer token, when exactly one `Authorization` header carries one.
    fn bearer(&self, gateway: Gateway) -> Option<&str> {
        if gateway == Gateway::RestToken {
            return self.authorization_token.and_then(bearer_token);
        }
        let is_authorization = |name: &&str| name.eq_ignore_ascii_case("authorization");
        // REST keeps only the last of repeated headers in `headers`; all are in `multiValueHeaders`.
        let repeated: usize = self
            .multi_value_headers
            .iter()
            .flatten()
            .filter(|(name, _)| is_authorization(name))
            .map(|(_, values)| values.len())
            .sum();
        let mut values = self
            .headers
            .iter()
            .flatten()
            .filter(|(name, _)| is_authorization(name))
            .map(|(_, value)| *value);
        match (values.next(), values.next()) {
            (Some(value), None) if repeated <= 1 => bearer_token(value),
            _ => None,
        }
    }
}

/// Why a request was denied, for the audit line.
#[derive(Debug, Clone, Copy)]
enum Denial {
    MalformedEvent,
    NoBearer,
    Token(Rejection),
    KeysUnavailable,
    MissingRole,
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
            Self::Panic => "internal_error",
        }
    }
}

/// Verifies access tokens for API Gateway.
pub struct Authorizer {
    tokens: AccessTokens,
    keys: Arc<KeyCache>,
    clock: Arc<dyn Clock>,
    route_roles: HashMap<String, Vec<String>>,
}

impl Authorizer {
    /// Wires the authorizer.
    pub fn new(config: &Config, keys: Arc<KeyCache>, clock: Arc<dyn Clock>) -> Self {
        Self {
            tokens: AccessTokens::new(config),
            keys,
            clock,
            route_roles: config.route_roles.clone(),
        }
    }

    /// The key cache, for warming it at cold start.
    pub fn keys(&self) -> &KeyCache {
        &self.keys
    }

    /// Answers one authorizer invocation. HTTP API: always `Ok`, a deny is
    /// `{"isAuthorized": false}`. REST: `Ok(policy)` or `Err(Unauthorized)` (401).
    pub async fn handle(&self, event: &Value, request_id: Option<&str>) -> Result<Value, Unauthorized> {
        let is_http_api = event.get("version").and_then(Value::as_str) == Some("2.0");
        let meta = RequestMeta {
            request_id: request_id.map(str::to_owned),
            ..RequestMeta::default()
        };
        let event = AuthorizerEvent::deserialize(event).ok();
        let outcome = match event.as_ref().and_then(|e| Some((e, e.gateway()?))) {
            Some((event, gateway)) => self.decide(event, gateway).await.map(|claims| (event, gateway, claims)),
            None => Err(Denial::MalformedEvent),
        };
        match outcome {
            Ok((event, gateway, claims)) => {
                // The policy is built inside `guard` too: a bug there must deny, not crash.
                match guard(|| Self::allow(event, gateway, &claims, &self.route_roles)) {
                    Ok(response) => Ok(response),
                    Err(denial) => {
                        audit::emit(AuditEvent::AuthorizerDenied, &meta, Some(&claims.sub), Some(&claims.sid), Some(denial.as_str()));
                        Self::deny(is_http_api)
                    }
                }
            }
            Err(denial) => {
                audit::emit(AuditEvent::AuthorizerDenied, &meta, None, None, Some(denial.as_str()));
                Self::deny(is_http_api)
            }
        }
    }

    async fn decide(&self, event: &AuthorizerEvent<'_>, gateway: Gateway) -> Result<AccessClaims, Denial> {
        let bearer = event.bearer(gateway).ok_or(Denial::NoBearer)?;
        let header = guard(|| AccessTokenHeader::read(bearer).map_err(Denial::Token))?;
        let keys = self.keys.for_kid(&header.kid).await.map_err(|e| {
            tracing::error!(cause = %e, "key set unavailable; denying");
            Denial::KeysUnavailable
        })?;
        let now = self.clock.now();
        let claims = guard(|| self.tokens.verify(&keys, bearer, &header, now).map_err(Denial::Token))?;
        if gateway == Gateway::HttpApi && !has_required_role(&self.route_roles, event.route_key.unwrap_or_default(), &claims.roles) {
            return Err(Denial::MissingRole);
        }
        Ok(claims)
    }

    fn allow(event: &AuthorizerEvent<'_>, gateway: Gateway, claims: &AccessClaims, route_roles: &HashMap<String, Vec<String>>) -> Result<Value, Denial> {
        let context = json!({
            "sub": claims.sub,
            "sid": claims.sid,
            "roles": claims.roles.join(","),
            "jti": claims.jti,
            "exp": claims.exp,
        });
        if gateway == Gateway::HttpApi {
            let mut response = ApiGatewayV2CustomAuthorizerSimpleResponse::<Value>::default();
            response.is_authorized = true;
            response.context = context;
            return serde_json::to_value(response).map_err(|_| Denial::Panic);
        }
        let api_prefix = event.method_arn.and_then(api_stage_prefix).ok_or(Denial::MalformedEvent)?;
        // API Gateway caches this policy per token and reuses it for every route: allow the
        // whole stage, then deny each role-guarded route the token may not reach.
        let mut statements = vec![statement(IamPolicyEffect::Allow, vec![format!("{api_prefix}/*/*")])];
        let denied: Vec<String> = route_roles
            .iter()
            .filter(|(_, roles)| !roles.iter().any(|r| claims.roles.contains(r)))
            .filter_map(|(route_key, _)| rest_resource(route_key).map(|r| format!("{api_prefix}/{r}")))
            .collect();
        if !denied.is_empty() {
            statements.push(statement(IamPolicyEffect::Deny, denied));
        }
        let mut policy = ApiGatewayCustomAuthorizerPolicy::default();
        policy.version = Some("2012-10-17".into());
        policy.statement = statements;
        let mut response = ApiGatewayCustomAuthorizerResponse::<Value>::default();
        response.principal_id = Some(claims.sub.clone());
        response.policy_document = policy;
        response.context = context;
        serde_json::to_value(response).map_err(|_| Denial::Panic)
    }

    fn deny(is_http_api: bool) -> Result<Value, Unauthorized> {
        if is_http_api {
            Ok(json!({ "isAuthorized": false }))
        } else {
            Err(Unauthorized)
        }
    }
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

/// `Bearer <jwt>`: scheme case-insensitive, exactly one token of JWT characters.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    let well_formed = scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    well_formed.then_some(token)
}

/// Whether a route that requires roles is reached by a token holding one of them.
fn has_required_role(route_roles: &HashMap<String, Vec<String>>, route_key: &str, roles: &[String]) -> bool {
    route_roles.get(route_key).is_none_or(|required| required.iter().any(|r| roles.contains(r)))
}

/// `arn:aws:execute-api:<region>:<account>:<api>/<stage>` from a method ARN.
fn api_stage_prefix(method_arn: &str) -> Option<String> {
    let (arn_head, path) = method_arn.rsplit_once(':')?;
    if !arn_head.starts_with("arn:") || arn_head.split(':').count() != 5 {
        return None;
    }
    let mut parts = path.split('/');
    let (api, stage) = (parts.next().filter(|s| !s.is_empty())?, parts.next().filter(|s| !s.is_empty())?);
    Some(format!("{arn_head}:{api}/{stage}"))
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

    #[test]
    fn rest_policy_resources_come_from_the_method_arn() {
        let arn = "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/pets/7";
        assert_eq!(api_stage_prefix(arn).unwrap(), "arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod");
        assert_eq!(api_stage_prefix("garbage"), None);
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
}
