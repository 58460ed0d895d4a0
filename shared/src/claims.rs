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
    /// a route's required scopes against; plus [`MFA_SCOPE`] when the session passed a
    /// second factor.
    pub scope: String,
    /// How the session's user authenticated (RFC 8176 values, see [`amr`]); kept across
    /// refreshes. Absent in tokens issued before it existed: read as no method at all, so
    /// such a token never passes a route that requires a second factor.
    #[serde(default)]
    pub amr: Vec<String>,
    /// When the user last authenticated (epoch seconds): the login, or the latest step-up
    /// with a second factor. Kept across refreshes, unlike `iat`.
    #[serde(default)]
    pub auth_time: u64,
}

/// The scope a token of a session that passed a second factor carries beside its roles, for
/// API Gateway's built-in JWT authorizer (which can require a scope, not read `amr`). A role
/// of this name never reaches the scope, so no role can forge it.
pub const MFA_SCOPE: &str = "amr:mfa";

/// The authentication method references we issue (RFC 8176 §2).
pub mod amr {
    /// A password.
    pub const PASSWORD: &str = "pwd";
    /// A one-time password: a TOTP code or a recovery code.
    pub const OTP: &str = "otp";
    /// More than one factor.
    pub const MULTI_FACTOR: &str = "mfa";
    /// A passkey bound to its device.
    pub const HARDWARE_KEY: &str = "hwk";
    /// A passkey that may be synced (backup eligible).
    pub const SOFTWARE_KEY: &str = "swk";
    /// The authenticator verified its user (PIN or biometrics).
    pub const USER_VERIFIED: &str = "user";
    /// Every value a token may carry, in the order the discovery document lists them.
    pub const ALL: [&str; 6] = [PASSWORD, OTP, MULTI_FACTOR, HARDWARE_KEY, SOFTWARE_KEY, USER_VERIFIED];
    /// The values that show a second factor: what `ROUTE_REQUIRE_MFA` and step-up accept.
    pub const SECOND_FACTORS: [&str; 4] = [OTP, MULTI_FACTOR, HARDWARE_KEY, SOFTWARE_KEY];

    /// Whether `methods` include a second factor.
    pub fn has_second_factor(methods: &[String]) -> bool {
        methods.iter().any(|m| SECOND_FACTORS.contains(&m.as_str()))
    }
}

/// How a session was authenticated: what its access tokens carry as `amr` and `auth_time`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    /// RFC 8176 values, in the order they were added.
    pub amr: Vec<String>,
    /// When the latest of them was done, epoch seconds.
    pub auth_time: u64,
}

impl Authentication {
    /// A password alone, at `now`.
    pub fn password(now: u64) -> Self {
        Self {
            amr: vec![amr::PASSWORD.to_owned()],
            auth_time: now,
        }
    }

    /// These methods plus a one-time password passed at `now`: the session now counts as
    /// multi-factor.
    pub fn with_otp(&self, now: u64) -> Self {
        self.with(&[amr::OTP, amr::MULTI_FACTOR], now)
    }

    /// These methods plus `added` (each once), passed at `now`.
    pub fn with(&self, added: &[&str], now: u64) -> Self {
        let mut methods = self.amr.clone();
        for &value in added {
            if !methods.iter().any(|m| m == value) {
                methods.push(value.to_owned());
            }
        }
        Self { amr: methods, auth_time: now }
    }

    /// Whether a second factor was passed no earlier than `since`: what step-up requires.
    pub fn second_factor_since(&self, since: u64) -> bool {
        amr::has_second_factor(&self.amr) && self.auth_time >= since
    }
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
        let base = r#""iss":"i","aud":"a","sub":"s","sid":"d","jti":"j","iat":1,"exp":2,"roles":[],"scope":"","amr":["pwd"],"auth_time":1"#;
        assert_eq!(serde_json::from_str::<AccessClaims>(&format!("{{{base}}}")).unwrap().nbf, None);
        assert_eq!(serde_json::from_str::<AccessClaims>(&format!(r#"{{{base},"nbf":1}}"#)).unwrap().nbf, Some(1));
        for bad in [r#""nbf":null"#, r#""nbf":"1""#, r#""nbf":1.5"#, r#""exp":3"#] {
            assert!(serde_json::from_str::<AccessClaims>(&format!("{{{base},{bad}}}")).is_err(), "{bad}");
        }
    }
}

#[cfg(test)]
mod authentication_tests {
    use super::*;

    #[test]
    fn an_otp_makes_the_session_multi_factor_and_moves_auth_time() {
        let password = Authentication::password(100);
        assert_eq!(password.amr, ["pwd"]);
        assert!(!password.second_factor_since(0), "a password alone is no second factor");
        let stepped = password.with_otp(200);
        assert_eq!(stepped.amr, ["pwd", "otp", "mfa"]);
        assert_eq!(stepped.with_otp(300).amr, ["pwd", "otp", "mfa"], "no value twice");
        assert!(stepped.second_factor_since(200) && !stepped.second_factor_since(201));
    }
}
