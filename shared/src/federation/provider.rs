//! The providers an operator configures (`OAUTH_PROVIDERS`): any OpenID Connect provider
//! by its issuer, no code per provider, and GitHub (OAuth 2.0 without OpenID Connect: its
//! REST API says who signed in) as the one special case. Client secrets are not here: they
//! live in a Secrets Manager secret only the federation function can read
//! (`OAUTH_CLIENT_SECRETS_ID`).

use serde::Deserialize;

use super::http::is_allowed_url;

/// GitHub's own issuer; a GitHub Enterprise Server is its own host's URL.
pub const GITHUB_ISSUER: &str = "https://github.com";
/// The REST API of github.com (a GitHub Enterprise Server's is `{issuer}/api/v3`).
pub const GITHUB_API: &str = "https://api.github.com";

/// What protocol a provider speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenID Connect: discovery, and an ID token verified against the provider's keys.
    #[default]
    Oidc,
    /// GitHub: OAuth 2.0 at fixed paths under the issuer, no ID token; the user and the
    /// addresses come from its REST API with the access token.
    Github,
}

/// One provider, as `OAUTH_PROVIDERS` lists it (a JSON array of these).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The name in our paths (`/auth/oauth/{id}/start`): lowercase letters, digits, `-`.
    pub id: String,
    /// `oidc` (default) or `github`.
    #[serde(default)]
    pub kind: ProviderKind,
    /// The provider's issuer; an OpenID provider's metadata is at
    /// `{issuer}/.well-known/openid-configuration` and must name exactly this issuer.
    /// GitHub's defaults to `https://github.com`. With the subject, an identity's key.
    #[serde(default)]
    pub issuer: String,
    /// GitHub's REST API (default `https://api.github.com` for github.com, else
    /// `{issuer}/api/v3`); not for OpenID providers.
    #[serde(default)]
    pub api_url: Option<String>,
    /// Our client id at the provider.
    pub client_id: String,
    /// The scopes asked for: an OpenID provider's must include `openid` (default
    /// `openid email`); GitHub's default is `read:user user:email` (without `user:email`
    /// no address is read, so none links).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Whether the provider's `email_verified: true` is trusted to link a sign-in to the
    /// existing user with that address, and to sign up a new user by it (default `false`:
    /// the user is created without an address, and nothing is linked).
    #[serde(default)]
    pub trust_email: bool,
}

/// Reads `OAUTH_PROVIDERS`, filling in the defaults. The error says what is wrong, naming
/// the provider.
pub fn parse_providers(json: &str) -> Result<Vec<ProviderConfig>, String> {
    let mut providers: Vec<ProviderConfig> =
        serde_json::from_str(json).map_err(|e| format!("expected a JSON array of {{id, kind?, issuer, client_id, scopes?, trust_email?}}: {e}"))?;
    for provider in &mut providers {
        if provider.kind == ProviderKind::Github {
            if provider.issuer.is_empty() {
                provider.issuer = GITHUB_ISSUER.to_owned();
            }
            // No discovery names it: one spelling, so an identity's key does not vary.
            provider.issuer = provider.issuer.trim_end_matches('/').to_owned();
            if provider.api_url.is_none() {
                provider.api_url = Some(match provider.issuer.as_str() {
                    GITHUB_ISSUER => GITHUB_API.to_owned(),
                    enterprise => format!("{enterprise}/api/v3"),
                });
            }
        }
        if provider.scopes.is_empty() {
            provider.scopes = match provider.kind {
                ProviderKind::Oidc => vec!["openid".into(), "email".into()],
                ProviderKind::Github => vec!["read:user".into(), "user:email".into()],
            };
        }
    }
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
        if provider.scopes.iter().any(|s| s.is_empty() || s.contains(char::is_whitespace)) {
            return Err(format!("provider {id:?}: one scope per string"));
        }
        match provider.kind {
            ProviderKind::Oidc if !provider.scopes.iter().any(|s| s == "openid") => {
                return Err(format!("provider {id:?}: scopes must include \"openid\""));
            }
            ProviderKind::Oidc if provider.api_url.is_some() => {
                return Err(format!("provider {id:?}: api_url is only for kind \"github\""));
            }
            // No ID token, so nothing would say who signed in.
            ProviderKind::Github if provider.scopes.iter().any(|s| s == "openid") => {
                return Err(format!("provider {id:?}: GitHub does not speak OpenID Connect; leave \"openid\" out"));
            }
            ProviderKind::Github if !provider.api_url.as_deref().is_some_and(|url| is_allowed_url(url) && !url.contains(['?', '#'])) => {
                return Err(format!("provider {id:?}: api_url must be an https:// URL (http:// only on loopback)"));
            }
            _ => {}
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
        assert_eq!((providers[0].kind, &providers[0].api_url), (ProviderKind::Oidc, &None));
        let github = parse_providers(
            r#"[{"id":"github","kind":"github","client_id":"Ov23li"},
            {"id":"ghes","kind":"github","issuer":"https://git.corp.test/","client_id":"c","scopes":["read:user"]},
            {"id":"gh-local","kind":"github","issuer":"http://127.0.0.1:4001","api_url":"http://127.0.0.1:4001/api/v3","client_id":"c"}]"#,
        )
        .unwrap();
        assert_eq!(github[0].issuer, GITHUB_ISSUER);
        assert_eq!(github[0].api_url.as_deref(), Some(GITHUB_API));
        assert_eq!(github[0].scopes, ["read:user", "user:email"]);
        assert_eq!(github[1].issuer, "https://git.corp.test");
        assert_eq!(github[1].api_url.as_deref(), Some("https://git.corp.test/api/v3"));
        assert_eq!(github[1].scopes, ["read:user"]);
        assert_eq!(github[2].kind, ProviderKind::Github);
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
            (r#"[{"id":"a","client_id":"c"}]"#, "issuer"),
            (
                r#"[{"id":"a","issuer":"https://a.test","client_id":"c","api_url":"https://api.a.test"}]"#,
                "only for kind",
            ),
            (r#"[{"id":"a","kind":"github","client_id":"c","scopes":["openid"]}]"#, "leave"),
            (r#"[{"id":"a","kind":"github","client_id":"c","api_url":"http://api.github.com"}]"#, "api_url"),
            (r#"[{"id":"a","kind":"gitlab","issuer":"https://a.test","client_id":"c"}]"#, "unknown variant"),
            (r#"[{"id":"a","issuer":"https://a.test","client_id":"c","client_secret":"s"}]"#, "unknown field"),
            (r#"{"id":"a"}"#, "JSON array"),
        ] {
            let error = parse_providers(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
