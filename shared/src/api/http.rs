//! What the HTTP rooms share: the Origin and CORS rules, the refresh cookie, request
//! metadata and the JSON answers of the one error table. Knows `lambda_http`.

use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};
use serde::de::DeserializeOwned;

use crate::audit::RequestMeta;
use crate::config::{Config, SameSite, TokenDelivery};
use crate::error::AuthError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 8 * 1024;
/// Longest accepted username (an e-mail address).
pub const MAX_USERNAME_BYTES: usize = 256;

/// The HTTP rules that come from configuration.
#[derive(Debug, Clone)]
pub struct HttpPolicy {
    allowed_origins: Vec<String>,
    cookie_name: String,
    cookie_path: String,
    same_site: SameSite,
    /// Where the refresh token travels: cookie, body or both.
    pub(crate) delivery: TokenDelivery,
}

/// The name of the cookie that carries a login challenge after a provider's redirect.
pub const MFA_CHALLENGE_COOKIE: &str = "mfa_challenge";

impl HttpPolicy {
    /// From the configuration.
    pub fn new(config: &Config) -> Self {
        Self {
            allowed_origins: config.allowed_origins.clone(),
            cookie_name: config.refresh_cookie_name.clone(),
            cookie_path: config.refresh_cookie_path.clone(),
            same_site: config.refresh_cookie_same_site,
            delivery: config.refresh_token_delivery,
        }
    }

    /// The request's `Origin`, when it is on the allow-list (exact match).
    pub(crate) fn allowed_origin<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
        self.allowed_origins.iter().any(|o| o == origin).then_some(origin)
    }

    // SECURITY: the cookie attributes. HttpOnly keeps it from scripts, Secure from plain
    // HTTP, SameSite from cross-site requests, a narrow Path from every other endpoint,
    // and no Domain keeps it off sibling subdomains.
    pub(crate) fn cookie(&self, value: &str, max_age: u64) -> String {
        format!(
            "{}={}; HttpOnly; Secure; SameSite={}; Path={}; Max-Age={}",
            self.cookie_name,
            value,
            self.same_site.as_str(),
            self.cookie_path,
            max_age
        )
    }

    /// The cookie that carries a login challenge's token from a sign-in through another
    /// provider (a redirect, where no body reaches the page) to `POST /auth/login/mfa`:
    /// the refresh cookie's attributes and path, its own name.
    pub(crate) fn challenge_cookie(&self, value: &str, max_age: u64) -> String {
        format!(
            "{MFA_CHALLENGE_COOKIE}={value}; HttpOnly; Secure; SameSite={}; Path={}; Max-Age={max_age}",
            self.same_site.as_str(),
            self.cookie_path
        )
    }

    /// The login challenge's token from its cookie, when exactly one is sent.
    pub(crate) fn challenge_from_cookie<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        match cookies_named(headers, MFA_CHALLENGE_COOKIE)[..] {
            [one] => Some(one),
            _ => None,
        }
    }

    /// Clears the refresh cookie (`Max-Age=0`, same name and path), when cookies carry it.
    pub(crate) fn clear_cookie(&self, response: &mut Response<Body>) {
        if self.delivery.uses_cookie() {
            append_header(response, header::SET_COOKIE, &self.cookie("", 0));
        }
    }

    /// Every refresh cookie the request carries, empty ones included: browsers send each
    /// cookie whose domain and path match, so a second one was planted (by a sibling
    /// subdomain with `Domain=` the parent, or with another path).
    pub(crate) fn cookie_values<'a>(&self, headers: &'a HeaderMap) -> Vec<&'a str> {
        cookies_named(headers, &self.cookie_name)
    }
}

/// The values (trimmed) of every cookie named `name` the request carries, over all its
/// `Cookie` headers, in order.
pub(crate) fn cookies_named<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(found, _)| *found == name)
        .map(|(_, value)| value.trim())
        .collect()
}

impl HttpPolicy {
    /// Runs the checks every POST endpoint shares (Origin, preflight, method, size), then
    /// `handler`, and adds the CORS headers.
    pub(crate) async fn respond(&self, request: &Request, handler: impl Future<Output = Result<Response<Body>, AuthError>>) -> Response<Body> {
        let allowed_origin = self.allowed_origin(request.headers());
        let mut response = match self.check(request, allowed_origin) {
            Err(e) => error_response(&e),
            Ok(Some(preflight)) => preflight,
            Ok(None) => match handler.await {
                Ok(response) => response,
                Err(e) => {
                    log_unavailable(&e);
                    error_response(&e)
                }
            },
        };
        let status_is_405 = response.status() == StatusCode::METHOD_NOT_ALLOWED;
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        if status_is_405 {
            headers.insert(header::ALLOW, HeaderValue::from_static("POST, OPTIONS"));
        }
        if let Some(origin) = allowed_origin.and_then(|o| HeaderValue::from_str(o).ok()) {
            // SECURITY: echo only an allow-listed origin, never `*` with credentials.
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        response
    }

    /// Method, CSRF and size checks. `Ok(Some(_))` is a finished preflight answer.
    fn check(&self, request: &Request, allowed_origin: Option<&str>) -> Result<Option<Response<Body>>, AuthError> {
        let headers = request.headers();
        // SECURITY: CSRF defence in depth beside SameSite: a browser request from a foreign
        // origin is refused before anything is read.
        if headers.contains_key(header::ORIGIN) && allowed_origin.is_none() {
            return Err(AuthError::ForbiddenOrigin);
        }
        if headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site")) && allowed_origin.is_none() {
            return Err(AuthError::ForbiddenOrigin);
        }
        if request.method() == Method::OPTIONS {
            let mut response = empty_response(StatusCode::NO_CONTENT);
            if allowed_origin.is_some() {
                let h = response.headers_mut();
                h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("POST, OPTIONS"));
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("content-type"));
                h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            }
            return Ok(Some(response));
        }
        if request.method() != Method::POST {
            return Err(AuthError::MethodNotAllowed);
        }
        if request.body().len() > MAX_BODY_BYTES {
            return Err(AuthError::PayloadTooLarge);
        }
        Ok(None)
    }
}

/// Logs the cause of a dependency failure (never a secret: see [`AuthError::Unavailable`]).
pub(crate) fn log_unavailable(error: &AuthError) {
    if let AuthError::Unavailable(cause) = error {
        tracing::error!(cause = %cause, "dependency failure");
    }
}

pub(crate) fn append_header(response: &mut Response<Body>, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().append(name, value);
    }
}

fn base_response(status: StatusCode, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn empty_response(status: StatusCode) -> Response<Body> {
    base_response(status, Body::Empty)
}

pub(crate) fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".into());
    let mut response = base_response(status, Body::Text(text));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The body of a JSON request: sent as `application/json` (else 415) and parsing as `T`
/// (else 400 with `invalid`, which names the fields expected).
pub(crate) fn json_body<T: DeserializeOwned>(request: &Request, invalid: &'static str) -> Result<T, AuthError> {
    let content_type = request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(AuthError::UnsupportedMediaType);
    }
    from_json_object(request.body().as_ref()).ok_or(AuthError::InvalidRequest(invalid))
}

/// `bytes` as `T`, only when they are a JSON object. serde's derived structs also read an
/// array of their fields in order (`["name", "password"]` logged in), which no client sends
/// and docs/openapi.yaml does not allow (found while writing that description).
pub(crate) fn from_json_object<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(bytes).ok()
}

/// The JSON error answer of the error table, with `Retry-After` where it applies.
pub fn error_response(error: &AuthError) -> Response<Body> {
    let outward = error.outward();
    let status = StatusCode::from_u16(outward.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut response = json_response(status, &serde_json::json!({ "error": outward.code, "message": outward.message }));
    if let Some(secs) = outward.retry_after_secs {
        append_header(&mut response, header::RETRY_AFTER, &secs.to_string());
    }
    response
}

/// Request id, client IP and user agent, from whichever gateway shape carried the request.
pub fn request_meta(request: &Request) -> RequestMeta {
    let (request_id, source_ip) = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => (ctx.request_id.clone(), ctx.http.source_ip.clone()),
        Some(RequestContext::ApiGatewayV1(ctx)) => (ctx.request_id.clone(), ctx.identity.source_ip.clone()),
        _ => (None, None),
    };
    let request_id = request_id.or_else(|| request.lambda_context_ref().map(|c| c.request_id.clone()));
    let user_agent = request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    RequestMeta {
        request_id,
        source_ip,
        user_agent,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testing;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(testing::property_cases()))]

        /// The cookie reader against RFC 6265's `name=value` pairs joined by `;`, over
        /// one to three `Cookie` headers: it returns exactly the values (trimmed) of the
        /// pairs named like the refresh cookie, in order, and nothing of any other name.
        #[test]
        fn the_cookie_reader_finds_exactly_the_pairs_named_like_the_refresh_cookie(
            headers in prop::collection::vec(
                prop::collection::vec(
                    (
                        prop::sample::select(&["refresh_token", "refresh_tokenx", "Refresh_token", "refresh_token ", "xrefresh_token", "other", ""][..]),
                        " ?[A-Za-z0-9._=-]{0,30} ?",
                        prop::sample::select(&[";", "; ", " ;  "][..]),
                    ),
                    0..5,
                ),
                1..4,
            )
        ) {
            let policy = HttpPolicy::new(&testing::config());
            let mut map = HeaderMap::new();
            let mut expected = Vec::new();
            for pairs in &headers {
                let line: String = pairs.iter().map(|(name, value, separator)| format!("{name}={value}{separator}")).collect();
                map.append(header::COOKIE, HeaderValue::from_str(&line).unwrap());
                expected.extend(pairs.iter().filter(|(name, _, _)| *name == policy.cookie_name).map(|(_, value, _)| value.trim().to_owned()));
            }
            prop_assert_eq!(policy.cookie_values(&map), expected);
        }
    }
}
