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
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "present_number")]
    pub nbf: Option<u64>,
    /// The user's roles at the time of issue.
    pub roles: Vec<String>,
    /// The same roles, space-separated: what API Gateway's built-in JWT authorizer matches
    /// a route's required scopes against.
    pub scope: String,
}

/// An optional claim that, when present, must be a number: `"nbf": null` is a wrong type,
/// not an absent claim.
fn present_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    u64::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optional_nbf_must_be_a_number_when_present() {
        let base = r#""iss":"i","aud":"a","sub":"s","sid":"d","jti":"j","iat":1,"exp":2,"roles":[],"scope":"""#;
        assert_eq!(serde_json::from_str::<AccessClaims>(&format!("{{{base}}}")).unwrap().nbf, None);
        assert_eq!(serde_json::from_str::<AccessClaims>(&format!(r#"{{{base},"nbf":1}}"#)).unwrap().nbf, Some(1));
        for bad in [r#""nbf":null"#, r#""nbf":"1""#, r#""nbf":1.5"#, r#""exp":3"#] {
            assert!(serde_json::from_str::<AccessClaims>(&format!("{{{base},{bad}}}")).is_err(), "{bad}");
        }
    }
}
