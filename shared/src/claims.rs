//! The claims of an access token. Typed, so a claim of the wrong JSON type, or a
//! duplicate key, fails deserialisation instead of being coerced.

use serde::{Deserialize, Serialize};

/// The payload of an access token. No PII: `sub` is the user id, never the e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer; must equal the configured `AUTH_ISSUER`.
    pub iss: String,
    /// Audience; must equal the configured `AUTH_AUDIENCE` (a single string, never an array).
    pub aud: String,
    /// The user id.
    pub sub: String,
    /// The session id (not secret; the refresh token starts with it).
    pub sid: String,
    /// A random token id, for the audit trail of the user's API.
    pub jti: String,
    /// Issued at, epoch seconds.
    pub iat: u64,
    /// Expires at, epoch seconds.
    pub exp: u64,
    /// Not before, epoch seconds; enforced when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The user's roles at the time of issue.
    pub roles: Vec<String>,
}
