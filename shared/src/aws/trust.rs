//! Which certificate authorities the functions' HTTPS client trusts (`TRUST_ROOTS`).
//!
//! By default, only the five roots AWS's service endpoints chain to (Amazon Root CA 1–4
//! and Starfield Services Root CA G2, the cross-sign of Amazon's roots; published at
//! <https://www.amazontrust.com/repository/>), compiled into the binary. The SDK's default
//! would read and parse every root of the system's store during each cold start: about
//! 2.6 ms of CPU here, most of what building an SDK client costs (docs/performance.md has
//! the profile), for ~150 authorities a function calling DynamoDB, Secrets Manager and SES
//! never needs. Trusting five instead of ~150 is also the narrower trust.
//!
//! `TRUST_ROOTS=system` keeps the SDK's default client and the system store (with
//! `SSL_CERT_FILE` / `SSL_CERT_DIR`): for endpoints that do not chain to Amazon's roots,
//! such as an emulator served over TLS with a local CA, a TLS-inspecting proxy or a
//! partition whose endpoints use another authority.

use aws_smithy_http_client::Builder;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::error::ConfigError;

/// Amazon Root CA 1–4 and Starfield Services Root Certificate Authority - G2, PEM
/// (SHA-256 fingerprints in the test below and in docs/configuration.md).
const AMAZON_ROOTS: &str = include_str!("amazon-roots.pem");

/// The trust roots a function's HTTPS client verifies AWS's endpoints against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    /// The five roots AWS's endpoints chain to, compiled in (the default).
    Amazon,
    /// The system's store, as the SDK's default client loads it.
    System,
}

impl TrustRoots {
    /// Reads `TRUST_ROOTS` (`amazon`, the default, or `system`); anything else fails the
    /// cold start, naming the variable.
    pub fn from_setting(value: Option<&str>) -> Result<Self, ConfigError> {
        match value {
            None | Some("amazon") => Ok(Self::Amazon),
            Some("system") => Ok(Self::System),
            Some(other) => Err(ConfigError {
                name: "TRUST_ROOTS",
                problem: format!("expected amazon or system, got {other:?}"),
            }),
        }
    }

    /// The HTTPS client for these roots: `None` leaves the SDK's default client (and its
    /// system store) in place. One client is shared by every SDK client of the function.
    pub fn http_client(self) -> Result<Option<SharedHttpClient>, ConfigError> {
        match self {
            Self::System => Ok(None),
            Self::Amazon => trusting_only(AMAZON_ROOTS).map(Some),
        }
    }
}

/// The SDK's HTTPS client (hyper and rustls on aws-lc) trusting only the roots in `pem`.
/// Its certificates are parsed when an SDK client first builds its connector; five cost
/// nothing measurable.
fn trusting_only(pem: &'static str) -> Result<SharedHttpClient, ConfigError> {
    let roots = TrustStore::empty().with_native_roots(false).with_pem_certificate(pem);
    let context = TlsContext::builder().with_trust_store(roots).build().map_err(|e| ConfigError {
        name: "TRUST_ROOTS",
        problem: format!("the TLS context: {e}"),
    })?;
    Ok(Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(context)
        .build_https())
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::digest::{SHA256, digest};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    /// The compiled-in file holds exactly the five published roots, byte for byte: a
    /// certificate added, dropped or swapped changes a fingerprint.
    #[test]
    fn the_compiled_in_roots_are_the_five_amazon_publishes() {
        let fingerprints: Vec<String> = AMAZON_ROOTS
            .split("-----BEGIN CERTIFICATE-----")
            .skip(1)
            .map(|block| {
                let body: String = block.split("-----END CERTIFICATE-----").next().unwrap().split_whitespace().collect();
                let der = STANDARD.decode(body).unwrap();
                digest(&SHA256, &der).as_ref().iter().map(|b| format!("{b:02x}")).collect()
            })
            .collect();
        assert_eq!(
            fingerprints,
            [
                "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e", // Amazon Root CA 1
                "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4", // Amazon Root CA 2
                "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4", // Amazon Root CA 3
                "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092", // Amazon Root CA 4
                "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5", // Starfield Services G2
            ]
        );
    }

    #[test]
    fn trust_roots_default_to_amazon_and_refuse_anything_but_amazon_or_system() {
        assert_eq!(TrustRoots::from_setting(None).unwrap(), TrustRoots::Amazon);
        assert_eq!(TrustRoots::from_setting(Some("amazon")).unwrap(), TrustRoots::Amazon);
        assert_eq!(TrustRoots::from_setting(Some("system")).unwrap(), TrustRoots::System);
        assert_eq!(TrustRoots::from_setting(Some("System")).unwrap_err().name, "TRUST_ROOTS");
        assert!(TrustRoots::System.http_client().unwrap().is_none());
        assert!(TrustRoots::Amazon.http_client().unwrap().is_some());
    }

    /// A server whose certificate a local CA signed: the compiled-in roots refuse it, and
    /// the same client trusting that CA instead gets through (so the refusal is the trust,
    /// not the server).
    #[tokio::test]
    async fn the_compiled_in_roots_refuse_an_endpoint_no_amazon_root_vouches_for() {
        let endpoint = serve_tls_once_per_connection().await;
        let list_tables = |http: SharedHttpClient| {
            let sdk = aws_config::SdkConfig::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new("AKID", "secret", None, None, "test"),
                ))
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .endpoint_url(&endpoint)
                .http_client(http)
                .build();
            async move { aws_sdk_dynamodb::Client::new(&sdk).list_tables().send().await }
        };
        let refused = list_tables(TrustRoots::Amazon.http_client().unwrap().unwrap()).await.unwrap_err();
        assert!(
            format!("{:?}", aws_smithy_types::error::display::DisplayErrorContext(&refused)).contains("UnknownIssuer"),
            "{refused:?}"
        );
        list_tables(trusting_only(include_str!("testdata/local-ca.pem")).unwrap())
            .await
            .expect("the local CA's client connects");
    }

    /// `https://127.0.0.1:PORT`, answering every request on every connection with `{}`
    /// (an empty ListTables answer), with the certificate in `testdata/` (the local CA's,
    /// for 127.0.0.1).
    async fn serve_tls_once_per_connection() -> String {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let chain = vec![CertificateDer::from_pem_slice(include_bytes!("testdata/server.pem")).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("testdata/server-key.pem")).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("https://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A refused handshake ends here: the client hung up.
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut request = vec![0; 64 * 1024];
                    let _ = tls.read(&mut request).await;
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                    let _ = tls.write_all(answer.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        endpoint
    }
}
