//! The providers an operator configures (`OAUTH_PROVIDERS`): any OpenID Connect provider
//! by its issuer, no code per provider. Client secrets are not here: they live in a Secrets
//! Manager secret only the federation function can read (`OAUTH_CLIENT_SECRETS_ID`).

use serde::Deserialize;

use super::http::is_allowed_url;

/// One provider, as `OAUTH_PROVIDERS` lists it (a JSON array of these).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The name in our paths (`/auth/oauth/{id}/start`): lowercase letters, digits, `-`.
    pub id: String,
    /// The provider's issuer; its metadata is at `{issuer}/.well-known/openid-configuration`
    /// and must name exactly this issuer.
    pub issuer: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// The scopes asked for; `openid` is required (default `openid email`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Whether the provider's `email_verified: true` is trusted to link a sign-in to the
    /// existing user with that address, and to sign up a new user by it (default `false`:
    /// the user is created without an address, and nothing is linked).
    #[serde(default)]
    pub trust_email: bool,
}

fn default_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into()]
}

/// Reads `OAUTH_PROVIDERS`. The error says what is wrong, naming the provider.
pub fn parse_providers(json: &str) -> Result<Vec<ProviderConfig>, String> {
    let providers: Vec<ProviderConfig> =
        serde_json::from_str(json).map_err(|e| format!("expected a JSON array of {{id, issuer, client_id, scopes?, trust_email?}}: {e}"))?;
    for (i, provider) in providers.iter().enumerate() {
        let id = &provider.id;
        if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(format!("provider id {id:?}: 1 to 32 lowercase letters, digits or '-'"));
        }
        if providers[..i].iter().any(|p| p.id == *id) {
            return Err(format!("provider id {id:?} is listed twice"));
        }
        if !is_allowed_url(&provider.issuer) || provider.issuer.contains(['?', '#']) {
            return Err(format!(
                "provider {id:?}: the issuer must be an https:// URL without query or fragment (http:// only on loopback)"
            ));
        }
        if provider.client_id.is_empty() {
            return Err(format!("provider {id:?}: client_id is required"));
        }
        if !provider.scopes.iter().any(|s| s == "openid") || provider.scopes.iter().any(|s| s.is_empty() || s.contains(char::is_whitespace)) {
            return Err(format!("provider {id:?}: scopes must include \"openid\", one scope per string"));
        }
    }
    Ok(providers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_are_read_with_defaults_and_checked() {
        let providers = parse_providers(
            r#"[{"id":"google","issuer":"https://accounts.google.com","client_id":"123.apps.googleusercontent.com","trust_email":true},
            {"id":"local","issuer":"http://127.0.0.1:4000","client_id":"app","scopes":["openid","email","profile"]}]"#,
        )
        .unwrap();
        assert_eq!(providers[0].scopes, ["openid", "email"]);
        assert!(providers[0].trust_email && !providers[1].trust_email);
        assert_eq!(parse_providers("[]").unwrap(), []);
        for (bad, says) in [
            (r#"[{"id":"Google","issuer":"https://a.test","client_id":"c"}]"#, "lowercase"),
            (
                r#"[{"id":"a","issuer":"https://a.test","client_id":"c"},{"id":"a","issuer":"https://b.test","client_id":"c"}]"#,
                "twice",
            ),
            (r#"[{"id":"a","issuer":"http://a.test","client_id":"c"}]"#, "https"),
            (r#"[{"id":"a","issuer":"https://a.test#x","client_id":"c"}]"#, "fragment"),
            (r#"[{"id":"a","issuer":"https://a.test","client_id":""}]"#, "client_id"),
            (r#"[{"id":"a","issuer":"https://a.test","client_id":"c","scopes":["email"]}]"#, "openid"),
            (r#"[{"id":"a","issuer":"https://a.test","client_id":"c","client_secret":"s"}]"#, "unknown field"),
            (r#"{"id":"a"}"#, "JSON array"),
        ] {
            let error = parse_providers(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
