//! The HTTP client the federation function reaches identity providers with: hyper 1 and
//! rustls on aws-lc (what the SDK links already), trusting the system's certificate store
//! (providers are on the public web PKI, unlike AWS's endpoints: `TRUST_ROOTS` is not
//! theirs). HTTPS only, except to a loopback address (a provider on the developer's
//! machine or in the tests); every exchange bounded in time and size.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// How long one exchange with a provider may take, connection included.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest answer read from a provider (metadata, JWKS, token response).
const MAX_RESPONSE_BYTES: usize = 512 * 1024;

/// Sent with every request: GitHub's API refuses requests without a `User-Agent`.
const USER_AGENT: &str = concat!("serverless-jwt-auth/", env!("CARGO_PKG_VERSION"));

/// Why a provider could not be reached or read. The text names the URL's origin and the
/// cause, never a request's body (it carries the client secret and the code).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProviderHttpError(String);

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The client, shared by a container's providers. Built on its first request, not at the
/// cold start: reading the system's trust store is most of the federation function's init
/// otherwise (docs/performance.md), and a cold start may serve a callback that needs no
/// provider.
#[derive(Clone, Default)]
pub struct ProviderHttp {
    client: Arc<OnceLock<Result<HttpsClient, String>>>,
}

impl std::fmt::Debug for ProviderHttp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProviderHttp")
    }
}

impl ProviderHttp {
    /// A client whose trust store is read on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// The client, reading the system's trust store the first time; an empty or unreadable
    /// store fails every request (the provider is then unavailable).
    fn client(&self) -> Result<&HttpsClient, ProviderHttpError> {
        let built = self.client.get_or_init(|| {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_native_roots()
                .map_err(|e| format!("the system's trust store cannot be read: {e}"))?
                .https_or_http()
                .enable_http1()
                .build();
            Ok(Client::builder(TokioExecutor::new()).build(connector))
        });
        built.as_ref().map_err(|e| ProviderHttpError(e.clone()))
    }

    /// Sends one request (no redirect is followed) and reads the whole answer.
    pub async fn send(&self, request: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>, ProviderHttpError> {
        let origin = allowed_origin(request.uri())?;
        let (mut parts, body) = request.into_parts();
        parts
            .headers
            .entry(http::header::USER_AGENT)
            .or_insert(http::HeaderValue::from_static(USER_AGENT));
        let request = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        let exchange = async {
            let response = self.client()?.request(request).await.map_err(|e| ProviderHttpError(format!("{origin}: {e}")))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| ProviderHttpError(format!("{origin}: reading the answer: {e}")))?
                .to_bytes();
            Ok(http::Response::from_parts(parts, body.to_vec()))
        };
        tokio::time::timeout(PROVIDER_TIMEOUT, exchange)
            .await
            .map_err(|_| ProviderHttpError(format!("{origin}: no answer within {} s", PROVIDER_TIMEOUT.as_secs())))?
    }

    /// GETs a JSON document.
    pub async fn get_json(&self, url: &str) -> Result<String, ProviderHttpError> {
        let request = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| ProviderHttpError(format!("{url}: {e}")))?;
        let response = self.send(request).await?;
        if !response.status().is_success() {
            return Err(ProviderHttpError(format!("{url}: answered {}", response.status())));
        }
        String::from_utf8(response.into_body()).map_err(|_| ProviderHttpError(format!("{url}: the answer is not UTF-8")))
    }
}

/// The `oauth2` crate's code exchange goes through this client too, with a boxed `Send`
/// future of one concrete type: through the crate's blanket impl for closures, rustc could
/// not prove the Lambda handler's future `Send` for every lifetime.
impl<'c> oauth2::AsyncHttpClient<'c> for ProviderHttp {
    type Error = ProviderHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, ProviderHttpError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}

/// Whether a URL may be reached: `https`, or `http` to a loopback host only.
pub fn is_allowed_url(url: &str) -> bool {
    url.parse::<http::Uri>().is_ok_and(|uri| allowed_origin(&uri).is_ok())
}

fn allowed_origin(uri: &http::Uri) -> Result<String, ProviderHttpError> {
    let host = uri.host().unwrap_or_default();
    let loopback = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(format!("https://{host}")),
        Some("http") if loopback => Ok(format!("http://{host}")),
        _ => Err(ProviderHttpError(format!("{uri:?} is neither https nor on loopback"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_is_reached() {
        for url in [
            "https://accounts.google.com/.well-known/openid-configuration",
            "http://127.0.0.1:4000/jwks",
            "http://localhost/x",
            "http://[::1]:9/",
        ] {
            assert!(is_allowed_url(url), "{url}");
        }
        for url in [
            "http://accounts.google.com/",
            "http://127.0.0.2/",
            "http://localhost.evil.test/",
            "ftp://127.0.0.1/",
            "https:///x",
            "/relative",
            "",
        ] {
            assert!(!is_allowed_url(url), "{url}");
        }
    }
}
