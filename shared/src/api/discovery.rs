//! What a third party needs to verify our access tokens on its own: the public JWKS
//! (`GET /.well-known/jwks.json`) and OpenID discovery metadata
//! (`GET /.well-known/openid-configuration`), the two documents API Gateway's built-in JWT
//! authorizer and standard JWKS clients fetch. Public, read-only and cacheable: a strong
//! `ETag`, `304` on a matching `If-None-Match`, and a `max-age` short enough that every
//! verifier knows a new key before it signs. Knows `lambda_http`, like `http`, whose error
//! answers it shares.
//!
//! Token verification metadata only, not an OpenID Provider: there is no authorization
//! endpoint, and tokens come from `POST /auth/login`.

use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::api::http::error_response;
use crate::claims::amr;
use crate::config::Config;
use crate::error::{AuthError, ConfigError};
use crate::keys::verifying::Jwks;
use crate::keys::{KeyAlgorithm, KeyCache, PublicKeys};

/// Where the JWKS is served, under the issuer.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Where the discovery metadata is served, under the issuer (OpenID Connect Discovery 1.0 §4).
pub const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// The methods both documents answer, for `Allow`.
const ALLOWED_METHODS: &str = "GET, HEAD";

/// The claims every access token carries, for `claims_supported` (a unit test holds it to
/// what `tokens` issues).
const ISSUED_CLAIMS: [&str; 11] = ["iss", "aud", "sub", "sid", "jti", "iat", "exp", "roles", "scope", "amr", "auth_time"];

/// Which document a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// The public JWKS.
    Jwks,
    /// The OpenID discovery metadata.
    OpenIdConfiguration,
}

impl Document {
    /// The document a request path names, by its suffix: behind an HTTP API the path may
    /// carry a stage (`/prod/.well-known/jwks.json`) and under `cargo lambda watch` the
    /// function URL's prefix (`/lambda-url/discovery/.well-known/jwks.json`).
    pub fn from_path(path: &str) -> Option<Self> {
        if path.ends_with(JWKS_PATH) {
            Some(Self::Jwks)
        } else if path.ends_with(OPENID_CONFIGURATION_PATH) {
            Some(Self::OpenIdConfiguration)
        } else {
            None
        }
    }
}

/// The OpenID Provider Metadata members a verifier reads (OpenID Connect Discovery 1.0
/// §3; the same shape as Kubernetes' service-account issuer discovery, which serves the
/// same purpose). Members about endpoints we do not have (authorization, token, userinfo)
/// are left out rather than filled with something no client could use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenIdConfiguration {
    /// Exactly `AUTH_ISSUER`: the `iss` of every token, and what clients compare it with.
    pub issuer: String,
    /// `{issuer}/.well-known/jwks.json`.
    pub jwks_uri: String,
    /// Every algorithm a key may be pinned to, not only those published now: clients that
    /// cache this document for long (some keep it for the life of the process) must
    /// still accept a key of another algorithm added by a later rotation. Each JWK's own
    /// `alg` says which one that key verifies.
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    /// `token`: tokens are bearer access tokens (required member; there is no
    /// authorization endpoint to use it with).
    pub response_types_supported: Vec<&'static str>,
    /// `public`: `sub` is the user id, the same for every audience.
    pub subject_types_supported: Vec<&'static str>,
    /// The claims of every access token.
    pub claims_supported: Vec<&'static str>,
    /// The `amr` values tokens may carry (RFC 8176). Not a registered discovery member:
    /// published so a verifier can tell which values to expect; a client that does not
    /// know it ignores it, as Discovery 1.0 §3 requires of unknown members.
    pub amr_values_supported: Vec<&'static str>,
}

impl OpenIdConfiguration {
    /// The metadata for `issuer`. `jwks_uri` joins the two with exactly one `/`, as
    /// clients build the discovery URL (Discovery 1.0 §4: a trailing `/` is removed).
    pub fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            jwks_uri: format!("{}{JWKS_PATH}", issuer.trim_end_matches('/')),
            id_token_signing_alg_values_supported: KeyAlgorithm::ALL.iter().map(|alg| alg.as_str()).collect(),
            response_types_supported: vec!["token"],
            subject_types_supported: vec!["public"],
            claims_supported: ISSUED_CLAIMS.to_vec(),
            amr_values_supported: amr::ALL.to_vec(),
        }
    }
}

/// A JSON document as served: its exact bytes and their strong `ETag`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Representation {
    /// The JSON text.
    pub body: String,
    /// `"<base64url SHA-256 of body>"`: equal bodies, equal tags, so every instance of
    /// the function answers the same tag for the same keys and a `304` is always right.
    pub etag: String,
}

impl Representation {
    /// Serialises `document` and tags it.
    pub fn of(document: &impl Serialize) -> Result<Self, AuthError> {
        let body = serde_json::to_string(document).map_err(|e| AuthError::unavailable("serialising a discovery document", e))?;
        Ok(Self::from_body(body))
    }

    fn from_body(body: String) -> Self {
        use base64::Engine;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body.as_bytes());
        let etag = format!("\"{}\"", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()));
        Self { body, etag }
    }
}

/// The public JWKS as served: re-serialised from the parsed, checked [`Jwks`], never the
/// stored text, so only the members `PublicJwk` knows (all public) can ever go out.
pub fn jwks_representation(jwks: &Jwks) -> Result<Representation, AuthError> {
    Representation::of(jwks)
}

/// How long clients may cache either document, seconds. A verifier's copy of the keys can
/// be as old as our own cache (`KEY_CACHE_TTL`) plus this; both must fit in the standby
/// period (`KEY_PUBLISH_DELAY`), so that every verifier following these headers has a new
/// key before `authctl keys activate` lets it sign. Configuration already refuses a
/// publish delay shorter than the cache TTL, so this is never negative; it is 0 (revalidate
/// every time, cheap with the `ETag`) when the two are equal.
pub fn max_age(config: &Config) -> u64 {
    config.key_cache_ttl.min(config.key_publish_delay.saturating_sub(config.key_cache_ttl))
}

/// Whether an `If-None-Match` header list names `etag` (weak comparison, RFC 9110
/// §13.1.2: a `W/` tag matches its strong twin; `*` matches any current representation).
/// A malformed list matches nothing, so the client gets the full answer.
pub fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|list| entity_tags(list).is_some_and(|tags| tags.iter().any(|tag| *tag == "*" || *tag == etag)))
}

/// The entity tags of one `If-None-Match` value (`*`, or `#( [W/] "<etagc>*" )`), each as
/// its quoted opaque part with any `W/` dropped; `None` when the value is not that grammar.
fn entity_tags(list: &str) -> Option<Vec<&str>> {
    if list.trim() == "*" {
        return Some(vec!["*"]);
    }
    let mut tags = Vec::new();
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(tags);
        }
        rest = rest.strip_prefix("W/").unwrap_or(rest);
        let quoted = rest.strip_prefix('"')?;
        let end = quoted.find('"')?;
        let opaque = &quoted[..end];
        if !opaque.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80) {
            return None;
        }
        // The tag with its quotes, as the `ETag` header carries it.
        tags.push(&rest[..end + 2]);
        rest = &quoted[end + 1..];
        if !(rest.is_empty() || rest.starts_with([' ', '\t', ','])) {
            return None;
        }
    }
}

/// The `discovery` endpoints over the public key store.
pub struct Discovery {
    keys: KeyCache<PublicKeys>,
    openid_configuration: Representation,
    cache_control: HeaderValue,
}

impl Discovery {
    /// The endpoints for `config`, reading the public JWKS through `keys`. Refuses an
    /// `AUTH_ISSUER` that is not an `http(s)` URL without query or fragment: clients find
    /// these documents under the issuer, so any other value could never be resolved.
    pub fn new(config: &Config, keys: KeyCache<PublicKeys>) -> Result<Self, ConfigError> {
        check_issuer_url(&config.issuer)?;
        let openid_configuration = Representation::of(&OpenIdConfiguration::new(&config.issuer)).map_err(|e| ConfigError {
            name: "AUTH_ISSUER",
            problem: e.to_string(),
        })?;
        let cache_control = HeaderValue::from_str(&format!("public, max-age={}", max_age(config))).map_err(|e| ConfigError {
            name: "KEY_CACHE_TTL",
            problem: e.to_string(),
        })?;
        Ok(Self {
            keys,
            openid_configuration,
            cache_control,
        })
    }

    /// Fetches the public JWKS during init, so the first request does not wait for it. A
    /// failure is logged, not fatal: requests answer 503 until the store can be read.
    pub async fn warm_up(&self) {
        if let Err(e) = self.keys.current().await {
            log_unavailable(&e);
        }
    }

    /// Answers one request: a document, a `304`, or an error from the error table
    /// (`404` for another path, `405` for another method, `503` when the keys cannot be
    /// read: no JWKS is better than a wrong one).
    pub async fn respond(&self, request: &Request) -> Response<Body> {
        let Some(document) = Document::from_path(request.uri().path()) else {
            return error_response(&AuthError::NotFound);
        };
        let head = match *request.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut response = error_response(&AuthError::MethodNotAllowed);
                response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
                return response;
            }
        };
        let representation = match document {
            Document::OpenIdConfiguration => Ok(self.openid_configuration.clone()),
            Document::Jwks => match self.keys.current().await {
                Ok(keys) => jwks_representation(keys.jwks()),
                Err(e) => Err(e),
            },
        };
        match representation {
            Ok(representation) => self.cacheable(request.headers(), representation, head),
            Err(e) => {
                log_unavailable(&e);
                error_response(&e)
            }
        }
    }

    /// `200` with the document, or `304` with no body when the client already holds it;
    /// either way with the headers a cache needs (RFC 9110 §15.4.5).
    fn cacheable(&self, request_headers: &HeaderMap, representation: Representation, head: bool) -> Response<Body> {
        let not_modified = if_none_match(request_headers, &representation.etag);
        let body = match not_modified || head {
            true => Body::Empty,
            false => Body::Text(representation.body),
        };
        let mut response = Response::new(body);
        if not_modified {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
        }
        let headers = response.headers_mut();
        if !not_modified {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        headers.insert(header::CACHE_CONTROL, self.cache_control.clone());
        if let Ok(etag) = HeaderValue::from_str(&representation.etag) {
            headers.insert(header::ETAG, etag);
        }
        response
    }
}

/// An issuer under which `/.well-known/…` can be fetched: `http(s)://host[/path]`.
fn check_issuer_url(issuer: &str) -> Result<(), ConfigError> {
    let rest = issuer.strip_prefix("https://").or_else(|| issuer.strip_prefix("http://"));
    let host = rest.map(|r| r.split('/').next().unwrap_or_default()).unwrap_or_default();
    if host.is_empty() || issuer.contains(['?', '#']) || issuer.contains(char::is_whitespace) {
        return Err(ConfigError {
            name: "AUTH_ISSUER",
            problem: format!(
                "{issuer:?} is not a URL like https://auth.example.com: discovery serves {{issuer}}{OPENID_CONFIGURATION_PATH}, \
                 so the issuer must be the URL of the API (or custom domain) that routes to it"
            ),
        });
    }
    Ok(())
}

/// Logs why the keys could not be read (never key material: see [`AuthError::Unavailable`]).
fn log_unavailable(error: &AuthError) {
    tracing::error!(cause = %error, "public keys not available; discovery answers 503");
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use lambda_http::http;
    use serde_json::{Value, json};

    use super::*;
    use crate::claims::AccessClaims;
    use crate::keys::KeyDocument;
    use crate::testing::{FixedClock, StaticKeys, config, config_with, public_jwks_json};

    struct Bed {
        discovery: Discovery,
        store: Arc<StaticKeys<PublicKeys>>,
        clock: Arc<FixedClock>,
    }

    fn bed_with(config: &Config) -> Bed {
        let store = Arc::new(StaticKeys::<PublicKeys>::public());
        let clock = Arc::new(FixedClock::new(1_000));
        let keys = KeyCache::new(store.clone(), clock.clone(), config.key_cache_ttl);
        Bed {
            discovery: Discovery::new(config, keys).unwrap(),
            store,
            clock,
        }
    }

    fn bed() -> Bed {
        bed_with(&config())
    }

    fn request(method: &str, path: &str, if_none_match: &[&str]) -> Request {
        let mut builder = http::Request::builder().method(method).uri(format!("https://auth.test{path}"));
        for value in if_none_match {
            builder = builder.header(header::IF_NONE_MATCH, *value);
        }
        builder.body(Body::Empty).unwrap()
    }

    async fn get(bed: &Bed, path: &str, if_none_match: &[&str]) -> Response<Body> {
        bed.discovery.respond(&request("GET", path, if_none_match)).await
    }

    fn header_of(response: &Response<Body>, name: header::HeaderName) -> &str {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    fn body(response: &Response<Body>) -> &[u8] {
        response.body().as_ref()
    }

    fn sha256_tag(bytes: &[u8]) -> String {
        use base64::Engine;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
        format!("\"{}\"", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()))
    }

    #[tokio::test]
    async fn jwks_is_served_with_a_strong_etag_of_its_body_and_public_caching() {
        let bed = bed();
        let response = get(&bed, JWKS_PATH, &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(header_of(&response, header::CONTENT_TYPE), "application/json");
        assert_eq!(header_of(&response, header::CACHE_CONTROL), "public, max-age=300");
        assert_eq!(header_of(&response, header::ETAG), sha256_tag(body(&response)));
        let served: Jwks = serde_json::from_slice(body(&response)).unwrap();
        let published: Jwks = serde_json::from_str(&public_jwks_json()).unwrap();
        assert_eq!(served, published);
        assert_eq!(served.keys.len(), 3, "every published key, retired ones included");
    }

    #[tokio::test]
    async fn a_matching_if_none_match_gets_304_with_no_body_and_the_cache_headers() {
        let bed = bed();
        let etag = header_of(&get(&bed, JWKS_PATH, &[]).await, header::ETAG).to_owned();
        let weak = format!("W/{etag}");
        let listed = format!("\"other\", {etag}");
        for sent in [
            &[etag.as_str()][..],
            &[weak.as_str()],
            &[listed.as_str()],
            &["\"other\"", etag.as_str()],
            &["*"],
        ] {
            let response = get(&bed, JWKS_PATH, sent).await;
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{sent:?}");
            assert!(body(&response).is_empty(), "{sent:?}");
            assert_eq!(header_of(&response, header::ETAG), etag);
            assert_eq!(header_of(&response, header::CACHE_CONTROL), "public, max-age=300");
        }
        let unquoted = etag.trim_matches('"').to_owned();
        for sent in ["\"other\"", "", unquoted.as_str(), "W/", "\"unterminated", "W/\"a\"junk", "**"] {
            let response = get(&bed, JWKS_PATH, &[sent]).await;
            assert_eq!(response.status(), StatusCode::OK, "{sent:?}");
            assert!(!body(&response).is_empty());
        }
    }

    #[tokio::test]
    async fn the_etag_follows_the_published_keys() {
        let bed = bed();
        let before = get(&bed, JWKS_PATH, &[]).await;
        let old_etag = header_of(&before, header::ETAG).to_owned();
        let mut jwks: Value = serde_json::from_str(&public_jwks_json()).unwrap();
        jwks["keys"].as_array_mut().unwrap().pop();
        bed.store.set_json(&jwks.to_string());
        bed.clock.advance(300);
        let after = get(&bed, JWKS_PATH, &[&old_etag]).await;
        assert_eq!(after.status(), StatusCode::OK, "a removed key changes the tag: the old copy is stale");
        assert_ne!(header_of(&after, header::ETAG), old_etag);
        assert_eq!(serde_json::from_slice::<Jwks>(body(&after)).unwrap().keys.len(), 2);
    }

    #[test]
    fn max_age_fits_the_standby_period_after_our_own_cache() {
        let cases = [
            (&[][..], 300),
            (&[("KEY_CACHE_TTL", "60")][..], 60),
            (&[("KEY_CACHE_TTL", "300"), ("KEY_PUBLISH_DELAY", "420")][..], 120),
            (&[("KEY_CACHE_TTL", "300"), ("KEY_PUBLISH_DELAY", "300")][..], 0),
        ];
        for (vars, expected) in cases {
            let config = config_with(vars);
            let age = max_age(&config);
            assert_eq!(age, expected, "{vars:?}");
            assert!(config.key_cache_ttl + age <= config.key_publish_delay, "{vars:?}");
        }
    }

    #[tokio::test]
    async fn the_cache_control_header_carries_the_computed_max_age() {
        let bed = bed_with(&config_with(&[("KEY_CACHE_TTL", "300"), ("KEY_PUBLISH_DELAY", "420")]));
        for path in [JWKS_PATH, OPENID_CONFIGURATION_PATH] {
            assert_eq!(header_of(&get(&bed, path, &[]).await, header::CACHE_CONTROL), "public, max-age=120");
        }
    }

    /// The members a public JWK may have; anything else (`d`, `p`, `q`, `dp`, `dq`, `qi`,
    /// `k`, `oth`, ...) is private or symmetric.
    const PUBLIC_MEMBERS: [&str; 9] = ["kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"];

    #[tokio::test]
    async fn only_public_members_are_ever_served_and_a_store_holding_private_keys_is_refused() {
        let served: Value = serde_json::from_slice(body(&get(&bed(), JWKS_PATH, &[]).await)).unwrap();
        assert_eq!(served.as_object().unwrap().keys().collect::<Vec<_>>(), ["keys"]);
        for key in served["keys"].as_array().unwrap() {
            for member in key.as_object().unwrap().keys() {
                assert!(PUBLIC_MEMBERS.contains(&member.as_str()), "served member {member}");
            }
        }

        let published: Value = serde_json::from_str(&public_jwks_json()).unwrap();
        let private_ec = {
            let mut jwks = published.clone();
            let ec = jwks["keys"].as_array_mut().unwrap().iter_mut().find(|k| k["kty"] == "EC").unwrap();
            ec["d"] = json!("c2VjcmV0LXNjYWxhci1vZi10aGUtZWMta2V5LTMyYnl0ZXM");
            jwks
        };
        let symmetric = json!({"keys": [{"kty": "oct", "k": "c3ltbWV0cmljLXNlY3JldA", "kid": "h1", "alg": "HS256", "use": "sig"}]});
        let extra_top_level = {
            let mut jwks = published.clone();
            jwks["refresh_pepper"] = json!("cGVwcGVy");
            jwks
        };
        for (case, stored) in [
            ("EC private key", private_ec),
            ("symmetric key", symmetric),
            ("pepper beside the keys", extra_top_level),
        ] {
            let bed = bed();
            bed.store.set_json(&stored.to_string());
            let response = get(&bed, JWKS_PATH, &[]).await;
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{case}");
            let text = String::from_utf8_lossy(body(&response)).into_owned();
            assert!(
                !text.contains("c2VjcmV0") && !text.contains("c3ltbWV0") && !text.contains("cGVwcGVy"),
                "{case}: {text}"
            );
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["error"], "unavailable", "{case}");
        }
    }

    #[test]
    fn the_jwks_is_reserialised_from_the_parsed_set_not_passed_through() {
        // Whitespace, member order and escapes of the stored text do not survive: what is
        // served is what PublicJwk serialises.
        let compact: Value = serde_json::from_str(&public_jwks_json()).unwrap();
        let stored = serde_json::to_string_pretty(&compact).unwrap().replace("\"sig\"", "\"\\u0073ig\"");
        let keys = PublicKeys::from_json(&stored).unwrap();
        let served = jwks_representation(keys.jwks()).unwrap();
        assert_ne!(served.body, stored);
        assert_eq!(served.body, serde_json::to_string(&serde_json::from_str::<Jwks>(&stored).unwrap()).unwrap());
        assert!(!served.body.contains('\n') && !served.body.contains("\\u0073"));
    }

    #[tokio::test]
    async fn an_unreadable_store_is_a_503_in_the_error_shape_never_an_empty_set() {
        let bed = bed();
        bed.store.set_failing(true);
        let response = get(&bed, JWKS_PATH, &[]).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-store", "an outage is not cached");
        assert_eq!(header_of(&response, header::RETRY_AFTER), "1");
        assert!(response.headers().get(header::ETAG).is_none());
        let error: Value = serde_json::from_slice(body(&response)).unwrap();
        assert_eq!(
            error,
            json!({"error": "unavailable", "message": "The service is temporarily unavailable; try again."})
        );
        // The metadata needs no key: it is still served.
        assert_eq!(get(&bed, OPENID_CONFIGURATION_PATH, &[]).await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn openid_configuration_names_the_issuer_exactly_and_the_jwks_under_it() {
        for (issuer, jwks_uri) in [
            ("https://auth.test", "https://auth.test/.well-known/jwks.json"),
            ("https://api.example.com/prod/", "https://api.example.com/prod/.well-known/jwks.json"),
            (
                "http://localhost:9000/lambda-url/discovery",
                "http://localhost:9000/lambda-url/discovery/.well-known/jwks.json",
            ),
        ] {
            let bed = bed_with(&config_with(&[("AUTH_ISSUER", issuer)]));
            let response = get(&bed, OPENID_CONFIGURATION_PATH, &[]).await;
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(header_of(&response, header::ETAG), sha256_tag(body(&response)));
            let document: Value = serde_json::from_slice(body(&response)).unwrap();
            assert_eq!(document["issuer"], issuer);
            assert_eq!(document["jwks_uri"], jwks_uri);
            assert_eq!(document["id_token_signing_alg_values_supported"], json!(["ES256", "EdDSA", "RS256"]));
            assert_eq!(document["response_types_supported"], json!(["token"]));
            assert_eq!(document["subject_types_supported"], json!(["public"]));
            let etag = header_of(&response, header::ETAG).to_owned();
            assert_eq!(get(&bed, OPENID_CONFIGURATION_PATH, &[&etag]).await.status(), StatusCode::NOT_MODIFIED);
        }
    }

    #[test]
    fn claims_supported_are_the_claims_tokens_carry() {
        let claims = AccessClaims {
            iss: "i".into(),
            aud: "a".into(),
            sub: "s".into(),
            sid: "d".into(),
            jti: "j".into(),
            iat: 1,
            exp: 2,
            nbf: None,
            roles: vec![],
            scope: String::new(),
            amr: vec![],
            auth_time: 1,
        };
        let issued: BTreeSet<String> = serde_json::to_value(claims).unwrap().as_object().unwrap().keys().cloned().collect();
        let listed: BTreeSet<String> = OpenIdConfiguration::new("https://auth.test")
            .claims_supported
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        assert_eq!(issued, listed);
    }

    #[tokio::test]
    async fn paths_match_by_suffix_behind_an_api_a_stage_or_a_function_url() {
        let bed = bed();
        for path in [
            "/.well-known/jwks.json",
            "/prod/.well-known/jwks.json",
            "/lambda-url/discovery/.well-known/jwks.json",
            "/lambda-url/discovery/.well-known/openid-configuration",
        ] {
            assert_eq!(get(&bed, path, &[]).await.status(), StatusCode::OK, "{path}");
        }
        for path in [
            "/",
            "/.well-known/",
            "/.well-known/jwks.json/",
            "/.well-known/jwks",
            "/lambda-url/discovery/",
            "/auth/login",
        ] {
            let response = get(&bed, path, &[]).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(serde_json::from_slice::<Value>(body(&response)).unwrap()["error"], "not_found");
        }
    }

    #[tokio::test]
    async fn other_methods_get_405_with_allow_and_head_gets_the_headers_only() {
        let bed = bed();
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let response = bed.discovery.respond(&request(method, JWKS_PATH, &[])).await;
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(header_of(&response, header::ALLOW), "GET, HEAD");
            assert_eq!(serde_json::from_slice::<Value>(body(&response)).unwrap()["error"], "method_not_allowed");
        }
        let head = bed.discovery.respond(&request("HEAD", JWKS_PATH, &[])).await;
        let full = get(&bed, JWKS_PATH, &[]).await;
        assert_eq!(head.status(), StatusCode::OK);
        assert!(body(&head).is_empty());
        assert_eq!(header_of(&head, header::ETAG), header_of(&full, header::ETAG));
    }

    #[test]
    fn an_issuer_that_is_not_a_url_fails_the_cold_start_naming_the_variable() {
        for issuer in [
            "my-app",
            "auth.example.com",
            "https://",
            "https:///path",
            "https://a.test/?x=1",
            "https://a.test/#f",
            "ftp://a.test",
        ] {
            let config = config_with(&[("AUTH_ISSUER", issuer)]);
            let keys = KeyCache::new(Arc::new(StaticKeys::<PublicKeys>::public()), Arc::new(FixedClock::new(0)), 300);
            let err = Discovery::new(&config, keys).err().unwrap_or_else(|| panic!("{issuer} accepted"));
            assert_eq!(err.name, "AUTH_ISSUER", "{issuer}");
        }
    }
}
