//! One configured provider as a client talks to it: its metadata (OpenID Connect
//! Discovery; GitHub's fixed paths) and signing keys, fetched on first use and cached per
//! container, the authorization URL, and the code exchange (the `oauth2` crate's, over our
//! HTTP client).

use std::sync::Arc;

use oauth2::basic::{BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet, ExtraTokenFields, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::http::{ProviderHttp, ProviderHttpError, is_allowed_url};
use super::id_token::{IdClaims, ProviderKeys};
use super::provider::{ProviderConfig, ProviderKind};

/// How long a provider's metadata is kept: it names endpoints that rarely move.
pub const METADATA_TTL: u64 = 3600;
/// How long its keys are kept; a token naming an unknown `kid` fetches them again, at most
/// once per [`KEYS_REFETCH_SECS`] (a provider rotates by publishing the new key first).
pub const KEYS_TTL: u64 = 3600;
/// The least time between two fetches of the keys for an unknown `kid`: garbage `kid`s do
/// not turn into a request to the provider each.
pub const KEYS_REFETCH_SECS: u64 = 60;

/// A provider could not be used: unreachable, its answer not what the protocol says, or it
/// refused the exchange. The text is for the log (it names no secret, code or token).
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Unreachable, or metadata, keys or an answer that are not valid.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The token endpoint refused the code (`invalid_grant`: used, expired, or the PKCE
    /// verifier does not match), or an OpenID provider answered without an ID token.
    #[error("code exchange refused: {0}")]
    Refused(String),
}

impl From<ProviderHttpError> for ProviderError {
    fn from(e: ProviderHttpError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

/// The members of a provider's metadata we use.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// Must be the configured issuer exactly.
    pub issuer: String,
    /// Where the browser is sent.
    pub authorization_endpoint: String,
    /// Where the code is exchanged.
    pub token_endpoint: String,
    /// The provider's signing keys (none for GitHub, which issues no ID token).
    pub jwks_uri: String,
    /// How the client authenticates at the token endpoint (default `client_secret_basic`).
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// The algorithms ID tokens are signed with.
    #[serde(default)]
    pub id_token_signing_alg_values_supported: Option<Vec<String>>,
    /// The PKCE methods; when listed, `S256` must be among them.
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
}

/// The token response's `id_token`, which OpenID Connect adds to OAuth's.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdTokenField {
    #[serde(default)]
    id_token: Option<String>,
}

impl ExtraTokenFields for IdTokenField {}

type OidcClient = oauth2::Client<
    BasicErrorResponse,
    StandardTokenResponse<IdTokenField, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// What a sign-in sends the browser to the provider with, and keeps to finish it.
#[derive(Debug)]
pub struct Authorization {
    /// The provider's authorization URL with every parameter.
    pub url: String,
    /// The PKCE verifier, kept server-side until the callback.
    pub pkce_verifier: String,
}

/// What the token endpoint gave for a code. Secrets both: never logged.
pub struct Tokens {
    /// The access token (what GitHub's API is called with).
    pub access_token: String,
    /// An OpenID provider's ID token.
    pub id_token: Option<String>,
}

type Cached<T> = Mutex<Option<(Arc<T>, u64)>>;

/// A configured provider with its client secret and caches.
pub struct Provider {
    /// As configured.
    pub config: ProviderConfig,
    secret: Option<String>,
    http: ProviderHttp,
    metadata: Cached<Metadata>,
    keys: Cached<ProviderKeys>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.config.id)
            .field("issuer", &self.config.issuer)
            .finish()
    }
}

impl Provider {
    /// A provider; `secret` is its client secret (`None`: a public client, PKCE only).
    pub fn new(config: ProviderConfig, secret: Option<String>, http: ProviderHttp) -> Self {
        Self {
            config,
            secret,
            http,
            metadata: Mutex::new(None),
            keys: Mutex::new(None),
        }
    }

    /// The provider's metadata, from the cache or fetched and checked; GitHub's, from its
    /// fixed paths.
    pub async fn metadata(&self, now: u64) -> Result<Arc<Metadata>, ProviderError> {
        if self.config.kind == ProviderKind::Github {
            return Ok(Arc::new(github_metadata(&self.config.issuer)));
        }
        let mut cached = self.metadata.lock().await;
        if let Some((metadata, at)) = cached.as_ref()
            && now < at + METADATA_TTL
        {
            return Ok(metadata.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let json = self.http.get_json(&url).await?;
        let metadata: Metadata = serde_json::from_str(&json).map_err(|e| ProviderError::Unavailable(format!("{url}: not OpenID metadata: {e}")))?;
        // SECURITY: the metadata must be the configured issuer's own (OpenID Connect
        // Discovery §4.3), and every endpoint on HTTPS: a mix-up or a downgrade fails here.
        if metadata.issuer != self.config.issuer {
            return Err(ProviderError::Unavailable(format!(
                "{url}: names issuer {:?}, not {:?}",
                metadata.issuer, self.config.issuer
            )));
        }
        for endpoint in [&metadata.authorization_endpoint, &metadata.token_endpoint, &metadata.jwks_uri] {
            if !is_allowed_url(endpoint) {
                return Err(ProviderError::Unavailable(format!("{url}: endpoint {endpoint:?} is not https")));
            }
        }
        if metadata
            .code_challenge_methods_supported
            .as_ref()
            .is_some_and(|m| !m.iter().any(|m| m == "S256"))
        {
            return Err(ProviderError::Unavailable(format!("{url}: PKCE with S256 is not supported")));
        }
        let metadata = Arc::new(metadata);
        *cached = Some((metadata.clone(), now));
        Ok(metadata)
    }

    /// The provider's keys, fetched again when `kid` is not among them (it rotated) and the
    /// last fetch is older than [`KEYS_REFETCH_SECS`].
    pub async fn keys(&self, metadata: &Metadata, kid: Option<&str>, now: u64) -> Result<Arc<ProviderKeys>, ProviderError> {
        let mut cached = self.keys.lock().await;
        if let Some((keys, at)) = cached.as_ref() {
            let fresh = now < at + KEYS_TTL;
            let may_refetch = now >= at + KEYS_REFETCH_SECS;
            if fresh && (keys.knows(kid) || !may_refetch) {
                return Ok(keys.clone());
            }
        }
        let json = self.http.get_json(&metadata.jwks_uri).await?;
        let keys = ProviderKeys::from_json(&json, metadata.id_token_signing_alg_values_supported.as_deref()).map_err(ProviderError::Unavailable)?;
        let keys = Arc::new(keys);
        *cached = Some((keys.clone(), now));
        Ok(keys)
    }

    fn client(&self, metadata: &Metadata, redirect_uri: &str) -> Result<OidcClient, ProviderError> {
        let bad = |what: &str, e: oauth2::url::ParseError| ProviderError::Unavailable(format!("{what}: {e}"));
        let mut client = oauth2::Client::new(ClientId::new(self.config.client_id.clone()))
            .set_auth_uri(AuthUrl::new(metadata.authorization_endpoint.clone()).map_err(|e| bad("authorization_endpoint", e))?)
            .set_token_uri(TokenUrl::new(metadata.token_endpoint.clone()).map_err(|e| bad("token_endpoint", e))?)
            .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| bad("redirect URI", e))?);
        if let Some(secret) = &self.secret {
            client = client.set_client_secret(ClientSecret::new(secret.clone()));
        }
        // Basic unless the provider lists only the body method (RFC 8414's default is Basic).
        let methods = metadata.token_endpoint_auth_methods_supported.as_deref().unwrap_or_default();
        let body_only = methods.iter().any(|m| m == "client_secret_post") && !methods.iter().any(|m| m == "client_secret_basic");
        if body_only || self.secret.is_none() {
            client = client.set_auth_type(AuthType::RequestBody);
        }
        Ok(client)
    }

    /// The URL that starts a sign-in at the provider: code flow, our scopes, the `state`
    /// and `nonce` given (GitHub: no nonce, there is no ID token to carry it), and a new
    /// PKCE S256 challenge.
    pub fn authorization(&self, metadata: &Metadata, redirect_uri: &str, state: &str, nonce: &str) -> Result<Authorization, ProviderError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = state.to_owned();
        let client = self.client(metadata, redirect_uri)?;
        let mut request = client
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(self.config.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge);
        if self.config.kind == ProviderKind::Oidc {
            request = request.add_extra_param("nonce", nonce);
        }
        let (url, _) = request.url();
        Ok(Authorization {
            url: url.to_string(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges a code (with its PKCE verifier) at the token endpoint.
    pub async fn exchange(&self, metadata: &Metadata, redirect_uri: &str, code: &str, pkce_verifier: &str) -> Result<Tokens, ProviderError> {
        let response = self
            .client(metadata, redirect_uri)?
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(refusal) => ProviderError::Refused(refusal.error().to_string()),
                RequestTokenError::Request(e) => ProviderError::Unavailable(e.to_string()),
                // GitHub refuses a code with status 200 and an OAuth error as the body.
                RequestTokenError::Parse(e, body) => match serde_json::from_slice::<BasicErrorResponse>(&body) {
                    Ok(refusal) => ProviderError::Refused(refusal.error().to_string()),
                    Err(_) => ProviderError::Refused(format!("the answer is not a token response: {e}")),
                },
                RequestTokenError::Other(e) => ProviderError::Unavailable(e),
            })?;
        Ok(Tokens {
            access_token: response.access_token().secret().clone(),
            id_token: response.extra_fields().id_token.clone(),
        })
    }

    /// Who signed in at GitHub, from its REST API with the access token the code gave.
    pub async fn github_user(&self, access_token: &str) -> Result<IdClaims, ProviderError> {
        let api_url = self.config.api_url.as_deref().ok_or_else(|| ProviderError::Unavailable("no api_url".into()))?;
        let read_emails = self.config.scopes.iter().any(|s| s == "user:email");
        super::github::user(&self.http, api_url, access_token, read_emails).await
    }
}

/// GitHub's endpoints (github.com's, or a GitHub Enterprise Server's under its URL): no
/// discovery, no keys; clients authenticate in the body; PKCE S256 since 2025.
fn github_metadata(issuer: &str) -> Metadata {
    Metadata {
        issuer: issuer.to_owned(),
        authorization_endpoint: format!("{issuer}/login/oauth/authorize"),
        token_endpoint: format!("{issuer}/login/oauth/access_token"),
        jwks_uri: String::new(),
        token_endpoint_auth_methods_supported: Some(vec!["client_secret_post".into()]),
        id_token_signing_alg_values_supported: None,
        code_challenge_methods_supported: Some(vec!["S256".into()]),
    }
}
