//! The federation function's two browser endpoints: `GET /auth/oauth/{provider}/start`
//! (a redirect to the provider, with a cookie binding the sign-in to this browser) and
//! `GET /auth/oauth/{provider}/callback` (the provider's redirect back; the session's refresh
//! cookie and a redirect to the app). Every failure after `return_to` is known is a
//! redirect to it with `error`; no token ever travels in a URL.

use lambda_http::http::{Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};

use crate::api::http::{HttpPolicy, append_header, cookies_named, empty_response, error_response, request_meta};
use crate::audit::RequestMeta;
use crate::config::Config;
use crate::error::AuthError;
use crate::service::AuthService;
use crate::service::MFA_CHALLENGE_TTL;
use crate::service::federation::{CallbackParams, OAUTH_CEREMONY_TTL, OAuthDone, OAuthFailure};

/// The cookie that binds a sign-in to the browser that started it.
pub const OAUTH_COOKIE: &str = "oauth_ceremony";
/// Where the endpoints are, under any stage or function URL prefix.
const ROUTE_PREFIX: &str = "/auth/oauth/";

/// The federation function's endpoints.
pub struct FederationApi {
    service: AuthService,
    policy: HttpPolicy,
    binding: BrowserBinding,
    /// Where a failure goes when its sign-in is unknown: `APP_URL`, else the first allowed
    /// origin.
    default_return: String,
}

/// Where a sign-in (or a link) may send the browser back, and the cookie that binds it to
/// the browser that started it: shared by the federation function's start and the account
/// function's link.
pub(crate) struct BrowserBinding {
    allowed_origins: Vec<String>,
    /// The ceremony cookie's path: `OAUTH_CALLBACK_BASE`'s (`/auth/oauth/` by default), so
    /// that it goes to the callback and nowhere else.
    cookie_path: String,
}

impl BrowserBinding {
    pub(crate) fn new(config: &Config) -> Self {
        let base = &config.oauth_callback_base;
        let after_scheme = base.split_once("://").map_or(base.as_str(), |(_, rest)| rest);
        Self {
            allowed_origins: config.allowed_origins.clone(),
            cookie_path: format!("{}/", after_scheme.find('/').map_or("", |at| &after_scheme[at..])),
        }
    }

    // SECURITY: HttpOnly and Secure like the refresh cookie; SameSite=Lax so that the
    // provider's top-level redirect back carries it (Strict would not); the callback's path.
    pub(crate) fn ceremony_cookie(&self, value: &str, max_age: u64) -> String {
        format!(
            "{OAUTH_COOKIE}={value}; HttpOnly; Secure; SameSite=Lax; Path={}; Max-Age={max_age}",
            self.cookie_path
        )
    }

    /// An absolute URL whose origin is exactly one of `ALLOWED_ORIGINS` (no user info, no
    /// backslash or control character a browser might read differently).
    pub(crate) fn is_allowed_return(&self, url: &str) -> bool {
        if url.chars().any(|c| c == '\\' || c.is_control() || c.is_whitespace()) {
            return false;
        }
        self.allowed_origins.iter().any(|origin| {
            url.strip_prefix(origin.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') || rest.starts_with('#'))
        })
    }
}

enum Endpoint {
    Start,
    Callback,
}

impl FederationApi {
    /// Wires the endpoints over the service (built `with_federation`).
    pub fn new(config: &Config, service: AuthService) -> Self {
        let default_return = config.app_url.clone().or_else(|| config.allowed_origins.first().cloned()).unwrap_or_default();
        Self {
            service,
            policy: HttpPolicy::new(config),
            binding: BrowserBinding::new(config),
            default_return,
        }
    }

    /// Answers one request; never an error, never a panic.
    pub async fn respond(&self, request: Request) -> Response<Body> {
        let path = request.uri().path().to_owned();
        let Some((provider, endpoint)) = route(&path) else {
            return error_response(&AuthError::NotFound);
        };
        if request.method() != Method::GET {
            let mut response = error_response(&AuthError::MethodNotAllowed);
            append_header(&mut response, header::ALLOW, "GET");
            return response;
        }
        // Everything the answer needs is read from the request before any await.
        let query = request.query_string_parameters();
        match endpoint {
            Endpoint::Start => {
                let return_to = query.first("return_to").filter(|url| self.binding.is_allowed_return(url)).map(str::to_owned);
                self.start(provider, return_to).await
            }
            Endpoint::Callback => {
                let params = CallbackParams {
                    code: query.first("code").map(str::to_owned),
                    state: query.first("state").map(str::to_owned),
                    error: query.first("error").map(str::to_owned),
                };
                // Two ceremony cookies: one was planted; neither is trusted.
                let browser_token = match cookies_named(request.headers(), OAUTH_COOKIE).as_slice() {
                    [one] => Some((*one).to_owned()),
                    _ => None,
                };
                self.callback(provider, params, browser_token, request_meta(&request)).await
            }
        }
    }

    async fn start(&self, provider: &str, return_to: Option<String>) -> Response<Body> {
        // SECURITY: back only to an allowed origin, so the endpoint is no open redirect.
        let Some(return_to) = return_to else {
            return error_response(&AuthError::InvalidRequest("return_to must be a URL on an allowed origin."));
        };
        match self.service.start_oauth(provider, &return_to).await {
            Ok(start) => {
                let mut response = redirect(&start.location);
                append_header(
                    &mut response,
                    header::SET_COOKIE,
                    &self.binding.ceremony_cookie(&start.browser_token, OAUTH_CEREMONY_TTL),
                );
                response
            }
            Err(OAuthFailure::UnknownProvider) => error_response(&AuthError::NotFound),
            Err(failure) => redirect(&with_error(&return_to, failure)),
        }
    }

    async fn callback(&self, provider: &str, params: CallbackParams, browser_token: Option<String>, meta: RequestMeta) -> Response<Body> {
        let mut response = match self.service.finish_oauth(provider, &params, browser_token.as_deref(), &meta).await {
            Ok((OAuthDone::SignedIn(issued), return_to)) => {
                let mut response = redirect(&return_to);
                let refresh = issued.refresh.encode();
                append_header(&mut response, header::SET_COOKIE, &self.policy.cookie(&refresh, issued.refresh_max_age));
                response
            }
            Ok((OAuthDone::Linked, return_to)) => redirect(&return_to),
            // The page asks for the code; the challenge's token stays in an HttpOnly cookie
            // that only the login function's paths receive.
            Ok((OAuthDone::MfaRequired { token, methods }, return_to)) => {
                let mut response = redirect(&with_param(&return_to, "mfa_required", &methods.join(",")));
                append_header(
                    &mut response,
                    header::SET_COOKIE,
                    &self.policy.challenge_cookie(&token.encode(), MFA_CHALLENGE_TTL),
                );
                response
            }
            Err((failure, return_to)) => redirect(&with_error(return_to.as_deref().unwrap_or(&self.default_return), failure)),
        };
        append_header(&mut response, header::SET_COOKIE, &self.binding.ceremony_cookie("", 0));
        response
    }
}

/// The provider and endpoint of a path `…/auth/oauth/{provider}/start|callback`.
fn route(path: &str) -> Option<(&str, Endpoint)> {
    let rest = &path[path.find(ROUTE_PREFIX)? + ROUTE_PREFIX.len()..];
    let (provider, endpoint) = rest.split_once('/')?;
    let endpoint = match endpoint {
        "start" => Endpoint::Start,
        "callback" => Endpoint::Callback,
        _ => return None,
    };
    (!provider.is_empty()).then_some((provider, endpoint))
}

fn redirect(location: &str) -> Response<Body> {
    let mut response = empty_response(StatusCode::FOUND);
    append_header(&mut response, header::LOCATION, location);
    response
}

/// `return_to` with `error=<code>` added to its query (before any fragment).
fn with_error(return_to: &str, failure: OAuthFailure) -> String {
    with_param(return_to, "error", failure.as_str())
}

/// `return_to` with `name=value` added to its query (before any fragment); the values here
/// are our own codes, which need no escaping.
fn with_param(return_to: &str, name: &str, value: &str) -> String {
    let (base, fragment) = match return_to.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (return_to, None),
    };
    let separator = if base.contains('?') { '&' } else { '?' };
    let mut url = format!("{base}{separator}{name}={value}");
    if let Some(fragment) = fragment {
        url.push('#');
        url.push_str(fragment);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    #[test]
    fn paths_name_a_provider_and_an_endpoint() {
        assert!(matches!(route("/auth/oauth/google/start"), Some(("google", Endpoint::Start))));
        assert!(matches!(
            route("/lambda-url/federation/auth/oauth/local/callback"),
            Some(("local", Endpoint::Callback))
        ));
        for path in ["/auth/oauth//start", "/auth/oauth/google/other", "/auth/oauth/google", "/auth/login"] {
            assert!(route(path).is_none(), "{path}");
        }
    }

    #[test]
    fn return_to_must_be_on_an_allowed_origin() {
        let config = testing::config();
        let api = FederationApi::new(&config, testing::TestBed::new(config.clone()).service);
        for url in [
            "https://app.test",
            "https://app.test/",
            "https://app.test/signed-in?x=1",
            "https://app.test#done",
        ] {
            assert!(api.binding.is_allowed_return(url), "{url}");
        }
        for url in [
            "https://app.test.evil.test/",
            "https://app.test@evil.test/",
            "https://app.test:8443/",
            "//evil.test/",
            "https://evil.test/?https://app.test",
            "https://app.test/\\evil.test",
            "https://app.test/\nx",
            "",
        ] {
            assert!(!api.binding.is_allowed_return(url), "{url}");
        }
    }

    #[test]
    fn the_ceremony_cookie_goes_to_the_callback_base_only() {
        for (base, path) in [
            (None, "/auth/oauth/"),
            (Some("https://auth.test/prod/auth/oauth"), "/prod/auth/oauth/"),
            (
                Some("http://localhost:9000/lambda-url/federation/auth/oauth/"),
                "/lambda-url/federation/auth/oauth/",
            ),
        ] {
            let config = match base {
                Some(base) => testing::config_with(&[("OAUTH_CALLBACK_BASE", base)]),
                None => testing::config(),
            };
            let api = FederationApi::new(&config, testing::TestBed::new(config.clone()).service);
            assert!(api.binding.ceremony_cookie("t", 600).contains(&format!("; Path={path};")), "{base:?}");
        }
    }

    #[test]
    fn errors_go_into_the_query_before_the_fragment() {
        assert_eq!(
            with_error("https://app.test/", OAuthFailure::InvalidState),
            "https://app.test/?error=invalid_state"
        );
        assert_eq!(
            with_error("https://app.test/?a=1#top", OAuthFailure::AccessDenied),
            "https://app.test/?a=1&error=access_denied#top"
        );
    }
}
