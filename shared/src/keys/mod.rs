//! Keys, split by who may hold them:
//! - [`signing`]: private keys and the refresh pepper, read by `login` and `refresh` only;
//! - [`rotation`]: the stored private key set and the life of a key in it
//!   (`standby → active → retired → removed`), applied by `authctl keys`;
//! - [`verifying`]: the public JWKS, which the authorizer, `discovery` and any other
//!   service may read, each key pinned to its own algorithm;
//! - [`cache`]: the in-memory cache every function reads a key set through;
//! - [`secrets_manager`]: the AWS adapter for both stores.

pub mod cache;
pub mod rotation;
pub mod secrets_manager;
pub mod signing;
pub mod verifying;

use async_trait::async_trait;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

use crate::error::AuthError;

pub use cache::KeyCache;
pub use signing::SigningKeys;
pub use verifying::PublicKeys;

/// Shortest accepted refresh pepper, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;
/// Smallest accepted RSA modulus, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest accepted RSA modulus, in bits: the most aws-lc verifies RS256 with.
pub const MAX_RSA_BITS: usize = 8192;

/// The algorithms a key may be pinned to: asymmetric only, so no verifier can sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyAlgorithm {
    /// ECDSA on P-256 with SHA-256: the default for new keys.
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519 (not accepted by API Gateway's built-in JWT authorizer).
    #[serde(rename = "EdDSA")]
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048 bits or more.
    #[serde(rename = "RS256")]
    Rs256,
}

impl KeyAlgorithm {
    /// Every algorithm, in the order the docs list them.
    pub const ALL: [Self; 3] = [Self::Es256, Self::EdDsa, Self::Rs256];

    /// The `jsonwebtoken` algorithm.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::Es256 => Algorithm::ES256,
            Self::EdDsa => Algorithm::EdDSA,
            Self::Rs256 => Algorithm::RS256,
        }
    }

    /// The JOSE name (`ES256`, `EdDSA`, `RS256`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
        }
    }
}

impl std::str::FromStr for KeyAlgorithm {
    type Err = KeySetError;

    fn from_str(s: &str) -> Result<Self, KeySetError> {
        Self::ALL
            .into_iter()
            .find(|alg| alg.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| KeySetError(format!("algorithm {s:?} is not one of ES256, EdDSA, RS256")))
    }
}

/// Why a key set or a key was refused. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key set: {0}")]
pub struct KeySetError(pub String);

impl From<KeySetError> for AuthError {
    fn from(e: KeySetError) -> Self {
        AuthError::unavailable("loading keys", e)
    }
}

/// A `kid` is 1 to 64 characters of base64url's alphabet (ours are random ids): safe in
/// logs, headers and `authctl` output.
pub(crate) fn check_kid(kid: &str) -> Result<(), KeySetError> {
    let ok = (1..=64).contains(&kid.len()) && kid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some(())
        .ok_or_else(|| KeySetError("a kid must be 1 to 64 letters, digits, '-' or '_'".into()))
}

/// Reads a serde_json error without its message, which may quote the offending value (a
/// key): the position only.
pub(crate) fn json_error(what: &str, e: &serde_json::Error) -> KeySetError {
    KeySetError(format!("not {what} (line {}, column {})", e.line(), e.column()))
}

/// A key set as a store holds it, parsed once per fetch.
pub trait KeyDocument: Sized + Send + Sync + 'static {
    /// Parses and checks the stored JSON.
    fn from_json(json: &str) -> Result<Self, KeySetError>;
    /// Whether the set holds key `kid`.
    fn knows(&self, kid: &str) -> bool;
}

/// Why a key set could not be had.
#[derive(Debug)]
pub enum FetchError {
    /// The store could not be reached, timed out, or was overloaded: worth riding out with
    /// the last good set.
    Unreachable(AuthError),
    /// The store answered, with a refusal (access denied, no such secret, a key it cannot
    /// decrypt) or a set that does not parse: an operator's doing, so it takes effect at
    /// once and nothing stale is served.
    Refused(AuthError),
}

impl From<FetchError> for AuthError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Unreachable(e) | FetchError::Refused(e) => e,
        }
    }
}

/// Where key sets of type `T` come from: Secrets Manager in the functions, a counting
/// fixture in the tests.
#[async_trait]
pub trait KeyProvider<T>: Send + Sync {
    /// Fetches and parses the current key set.
    async fn fetch(&self) -> Result<T, FetchError>;
}

/// 32 random bytes, base64url: a new refresh pepper.
pub fn generate_secret() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::random::random_bytes::<32>())
}
