//! The one configuration of every function, read once from the environment at cold start.

use std::collections::{HashMap, HashSet};

use crate::error::ConfigError;

/// How long a new key is published before it may sign: API Gateway's JWT authorizer
/// caches a JWKS for up to 2 hours, plus our own cache TTL and a margin (2 h 15 min).
pub const DEFAULT_KEY_PUBLISH_DELAY: u64 = 8_100;

/// The longest access-token lifetime issued or accepted (`exp - iat`).
pub const MAX_ACCESS_TOKEN_TTL: u64 = 86_400;

/// How the refresh token travels to and from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenDelivery {
    /// Only as an `HttpOnly` cookie (the default; script on the page never sees it).
    Cookie,
    /// Only in the JSON body, for native apps that keep it themselves.
    Body,
    /// Both.
    Both,
}

impl TokenDelivery {
    /// Whether the cookie is set and read.
    pub fn uses_cookie(self) -> bool {
        matches!(self, Self::Cookie | Self::Both)
    }
    /// Whether the token is returned in and accepted from the JSON body.
    pub fn uses_body(self) -> bool {
        matches!(self, Self::Body | Self::Both)
    }
}

/// The `SameSite` attribute of the refresh cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Never sent on cross-site requests (the default).
    Strict,
    /// Sent on top-level cross-site navigations.
    Lax,
    /// Sent everywhere; still `Secure`. Only for front ends on another site.
    None,
}

impl SameSite {
    /// The attribute value as written in `Set-Cookie`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Strict => "Strict",
            Self::Lax => "Lax",
            Self::None => "None",
        }
    }
}

/// Whether the authorizer also confirms that a token's session is live (`REVOCATION_CHECK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationCheck {
    /// Signature and claims only: no database, no network at cold start (the default).
    Off,
    /// Also the session and its user, from DynamoDB, at most `REVOCATION_MAX_STALENESS` old.
    Session,
}

/// What the strict authorizer does when DynamoDB cannot be read (`REVOCATION_FAIL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationFail {
    /// Deny (the default): nothing is authorized that could not be checked.
    Closed,
    /// Allow a token whose signature and claims are valid, and log it.
    Open,
}

/// Whether anyone may create an account (`SIGNUP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signup {
    /// Only operators create users (`authctl user add`); `POST /auth/signup` answers 403.
    Closed,
    /// Anyone may sign up with an e-mail address they then verify.
    Open,
}

/// The longest `REVOCATION_MAX_STALENESS` accepted, seconds.
pub const MAX_REVOCATION_STALENESS: u64 = 60;

/// Every setting of the service. Built once by [`Config::from_env`].
#[derive(Debug, Clone)]
pub struct Config {
    /// `iss` of issued tokens and the only one accepted.
    pub issuer: String,
    /// `aud` of issued tokens and the only one accepted.
    pub audience: String,
    /// DynamoDB table of users (and login throttle counters).
    pub users_table: String,
    /// DynamoDB table of sessions.
    pub sessions_table: String,
    /// Secrets Manager id of the private key set (login and refresh only).
    pub signing_secret_id: String,
    /// Secrets Manager id of the public JWKS (verifiers).
    pub public_keys_secret_id: String,
    /// The public JWKS deployed with the authorizer (`AUTH_PUBLIC_JWKS`), read with no
    /// network at cold start; parsed by the authorizer, which alone uses it.
    pub public_jwks: Option<String>,
    /// How long a new key is published before `authctl keys activate` lets it sign.
    pub key_publish_delay: u64,
    /// Lifetime of an access token, seconds.
    pub access_token_ttl: u64,
    /// Sliding idle lifetime of a session, seconds.
    pub refresh_idle_ttl: u64,
    /// Absolute lifetime of a session, seconds.
    pub session_max_age: u64,
    /// How long after a rotation the previous token still gets the same successor.
    pub refresh_reuse_grace: u64,
    /// How long the key set is cached, seconds.
    pub key_cache_ttl: u64,
    /// Origins allowed to call the endpoints from a browser (exact match).
    pub allowed_origins: Vec<String>,
    /// Name of the refresh cookie.
    pub refresh_cookie_name: String,
    /// `Path` of the refresh cookie: narrow, so the cookie only goes to refresh/logout.
    pub refresh_cookie_path: String,
    /// `SameSite` of the refresh cookie.
    pub refresh_cookie_same_site: SameSite,
    /// Cookie, body or both.
    pub refresh_token_delivery: TokenDelivery,
    /// Optional authorizer rule: route key → roles of which the token must hold one.
    pub route_roles: HashMap<String, Vec<String>>,
    /// Fewest characters of a new password (NIST: at least 8; default 12).
    pub password_min_length: usize,
    /// Lowest zxcvbn score (0–4) of a new password.
    pub password_min_score: u8,
    /// Whether the authorizer checks the session too.
    pub revocation_check: RevocationCheck,
    /// How old the authorizer's view of a session may be, seconds (0: read every time).
    pub revocation_max_staleness: u64,
    /// What the strict authorizer does when the tables cannot be read.
    pub revocation_fail: RevocationFail,
    /// Whether `POST /auth/signup` creates accounts (`SIGNUP`, default closed).
    pub signup: Signup,
    /// The app's origin that e-mailed links lead to (`APP_URL`); the function that sends
    /// mail refuses to start without it.
    pub app_url: Option<String>,
    /// The verified SES sender of every e-mail (`EMAIL_FROM`); required likewise.
    pub email_from: Option<String>,
    /// Lifetime of an e-mail verification link, seconds (`EMAIL_VERIFY_TTL`, 24 h).
    pub email_verify_ttl: u64,
    /// Lifetime of a password reset link, seconds (`PASSWORD_RESET_TTL`, 30 min).
    pub password_reset_ttl: u64,
    /// E-mails sent to one address per hour at most (`EMAIL_LIMIT_PER_HOUR`, 3).
    pub email_limit_per_hour: u64,
    /// Sign-up, resend and forgot requests from one source IP per hour at most
    /// (`EMAIL_IP_LIMIT_PER_HOUR`, 30).
    pub email_ip_limit_per_hour: u64,
    /// How recent a session's second factor must be for the sensitive account actions
    /// (turning TOTP off, new recovery codes, a password change while MFA is on), seconds
    /// (`STEP_UP_MAX_AGE`, 10 min).
    pub step_up_max_age: u64,
    /// The issuer authenticator apps show beside the account (`TOTP_ISSUER`; default the
    /// host of `AUTH_ISSUER`).
    pub totp_issuer: String,
    /// Route keys (`"POST /payments"`) whose tokens must show a second factor in `amr`
    /// (`ROUTE_REQUIRE_MFA`, comma-separated; the authorizer's).
    pub route_require_mfa: HashSet<String>,
    /// The WebAuthn relying party id (`WEBAUTHN_RP_ID`: the site's registrable domain, or
    /// `localhost`); passkeys are off without it. The origins are `ALLOWED_ORIGINS`.
    pub webauthn_rp_id: Option<String>,
    /// The OpenID providers users may sign in with (`OAUTH_PROVIDERS`, a JSON array; read
    /// and checked by the federation function, `federation::provider`).
    pub oauth_providers: Option<String>,
    /// The Secrets Manager secret holding the providers' client secrets as
    /// `{"<provider id>": "<secret>"}` (`OAUTH_CLIENT_SECRETS_ID`, default
    /// `auth/oauth-client-secrets`): only the federation function may read it.
    pub oauth_client_secrets_id: String,
    /// The URL under which the providers send browsers back, `{base}/{provider}/callback`
    /// (`OAUTH_CALLBACK_BASE`, default `{AUTH_ISSUER}/auth/oauth`); its path is the
    /// ceremony cookie's. Set it where the federation function is not at the issuer's
    /// `/auth/oauth`, as under `cargo lambda watch`.
    pub oauth_callback_base: String,
}

/// The option `value` names (case-insensitively) among `options`, or an error for `name`
/// that lists them.
fn choose<T: Copy>((name, value): (&'static str, String), options: &[(&str, T)]) -> Result<T, ConfigError> {
    if let Some((_, option)) = options.iter().find(|(label, _)| label.eq_ignore_ascii_case(&value)) {
        return Ok(*option);
    }
    let labels: Vec<&str> = options.iter().map(|(label, _)| *label).collect();
    let (last, rest) = labels.split_last().unwrap_or((&"", &[]));
    Err(ConfigError {
        name,
        problem: format!("expected {} or {last}, got {value:?}", rest.join(", ")),
    })
}

impl Config {
    /// Reads the process environment. A bad value names its variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let required = |name: &'static str| {
            get(name).ok_or_else(|| ConfigError {
                name,
                problem: "is required".into(),
            })
        };
        let text = |name: &'static str, default: &str| get(name).unwrap_or_else(|| default.to_owned());
        let seconds = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(v) => v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| ConfigError {
                    name,
                    problem: format!("expected a positive number of seconds, got {v:?}"),
                }),
            }
        };

        let refresh_cookie_path = text("REFRESH_COOKIE_PATH", "/auth");
        if !refresh_cookie_path.starts_with('/') || refresh_cookie_path.contains([';', ',', ' ']) {
            return Err(ConfigError {
                name: "REFRESH_COOKIE_PATH",
                problem: "must be a path starting with '/'".into(),
            });
        }
        let refresh_cookie_name = text("REFRESH_COOKIE_NAME", "refresh_token");
        if !refresh_cookie_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(ConfigError {
                name: "REFRESH_COOKIE_NAME",
                problem: "use letters, digits, '_' or '-'".into(),
            });
        }
        // Browsers drop a `__Host-` cookie unless its Path is `/` (and it is Secure with no
        // Domain, which ours always are): refuse the pair rather than set a cookie that never sticks.
        if refresh_cookie_name.starts_with("__Host-") && refresh_cookie_path != "/" {
            return Err(ConfigError {
                name: "REFRESH_COOKIE_PATH",
                problem: "a __Host- cookie name needs REFRESH_COOKIE_PATH=/".into(),
            });
        }
        let one_of = |name: &'static str, default: &str| (name, text(name, default));
        let refresh_cookie_same_site = choose(
            one_of("REFRESH_COOKIE_SAMESITE", "Strict"),
            &[("Strict", SameSite::Strict), ("Lax", SameSite::Lax), ("None", SameSite::None)],
        )?;
        let refresh_token_delivery = choose(
            one_of("REFRESH_TOKEN_DELIVERY", "cookie"),
            &[("cookie", TokenDelivery::Cookie), ("body", TokenDelivery::Body), ("both", TokenDelivery::Both)],
        )?;
        let allowed_origins = get("ALLOWED_ORIGINS")
            .map(|v| {
                v.split(',')
                    .map(|o| o.trim().trim_end_matches('/').to_owned())
                    .filter(|o| !o.is_empty())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if let Some(bad) = allowed_origins
            .iter()
            .find(|o| *o == "*" || !(o.starts_with("https://") || o.starts_with("http://")))
        {
            return Err(ConfigError {
                name: "ALLOWED_ORIGINS",
                problem: format!("{bad:?} is not an origin like https://app.example.com (no wildcards)"),
            });
        }
        let route_roles = match get("ROUTE_ROLES") {
            None => HashMap::new(),
            Some(v) => serde_json::from_str(&v).map_err(|e| ConfigError {
                name: "ROUTE_ROLES",
                problem: format!("expected a JSON object of route key to list of roles: {e}"),
            })?,
        };

        let password_min_length = match get("PASSWORD_MIN_LENGTH") {
            None => 12,
            Some(v) => v.parse::<usize>().ok().filter(|n| (8..=256).contains(n)).ok_or_else(|| ConfigError {
                name: "PASSWORD_MIN_LENGTH",
                problem: format!("expected 8 to 256 characters, got {v:?}"),
            })?,
        };
        let password_min_score = match get("PASSWORD_MIN_SCORE") {
            None => 3,
            Some(v) => v.parse::<u8>().ok().filter(|n| *n <= 4).ok_or_else(|| ConfigError {
                name: "PASSWORD_MIN_SCORE",
                problem: format!("expected a zxcvbn score from 0 to 4, got {v:?}"),
            })?,
        };

        let revocation_check = choose(
            one_of("REVOCATION_CHECK", "off"),
            &[("off", RevocationCheck::Off), ("session", RevocationCheck::Session)],
        )?;
        let revocation_max_staleness = match get("REVOCATION_MAX_STALENESS") {
            None => 5,
            Some(v) => v.parse::<u64>().ok().filter(|n| *n <= MAX_REVOCATION_STALENESS).ok_or_else(|| ConfigError {
                name: "REVOCATION_MAX_STALENESS",
                problem: format!("expected 0 to {MAX_REVOCATION_STALENESS} seconds, got {v:?}"),
            })?,
        };
        let revocation_fail = choose(
            one_of("REVOCATION_FAIL", "closed"),
            &[("closed", RevocationFail::Closed), ("open", RevocationFail::Open)],
        )?;

        let signup = choose(one_of("SIGNUP", "closed"), &[("closed", Signup::Closed), ("open", Signup::Open)])?;
        let app_url = get("APP_URL").map(|url| url.trim_end_matches('/').to_owned());
        if let Some(url) = &app_url
            && !(url.starts_with("https://") || url.starts_with("http://localhost") || url.starts_with("http://127.0.0.1"))
        {
            return Err(ConfigError {
                name: "APP_URL",
                problem: "must be an https:// origin (http:// only for localhost)".into(),
            });
        }
        let email_from = get("EMAIL_FROM");
        if email_from.as_deref().is_some_and(|from| !from.contains('@') || from.contains(['\r', '\n'])) {
            return Err(ConfigError {
                name: "EMAIL_FROM",
                problem: "must be an e-mail address".into(),
            });
        }

        let issuer = required("AUTH_ISSUER")?;
        let issuer_host = issuer
            .split("://")
            .nth(1)
            .unwrap_or(&issuer)
            .split(['/', ':'])
            .next()
            .unwrap_or_default()
            .to_owned();
        let totp_issuer = text("TOTP_ISSUER", &issuer_host);
        if totp_issuer.contains(':') {
            return Err(ConfigError {
                name: "TOTP_ISSUER",
                problem: "must not contain ':' (it separates issuer and account in authenticator apps)".into(),
            });
        }
        let route_require_mfa = get("ROUTE_REQUIRE_MFA")
            .map(|v| {
                v.split(',')
                    .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
                    .filter(|r| !r.is_empty())
                    .collect()
            })
            .unwrap_or_default();

        let oauth_callback_base = get("OAUTH_CALLBACK_BASE").unwrap_or_else(|| format!("{}/auth/oauth", issuer.trim_end_matches('/')));
        let oauth_callback_base = oauth_callback_base.trim_end_matches('/').to_owned();
        let config = Self {
            issuer,
            audience: required("AUTH_AUDIENCE")?,
            users_table: text("USERS_TABLE", "auth-users"),
            sessions_table: text("SESSIONS_TABLE", "auth-sessions"),
            signing_secret_id: text("SIGNING_SECRET_ID", "auth/signing-keys"),
            public_keys_secret_id: text("PUBLIC_KEYS_SECRET_ID", "auth/public-keys"),
            public_jwks: get("AUTH_PUBLIC_JWKS"),
            key_publish_delay: seconds("KEY_PUBLISH_DELAY", DEFAULT_KEY_PUBLISH_DELAY)?,
            access_token_ttl: seconds("ACCESS_TOKEN_TTL", 900)?,
            refresh_idle_ttl: seconds("REFRESH_IDLE_TTL", 1_209_600)?,
            session_max_age: seconds("SESSION_MAX_AGE", 2_592_000)?,
            refresh_reuse_grace: match get("REFRESH_REUSE_GRACE") {
                // Zero is allowed here: it turns the grace window off.
                Some(v) => v.parse().map_err(|_| ConfigError {
                    name: "REFRESH_REUSE_GRACE",
                    problem: format!("expected seconds, got {v:?}"),
                })?,
                None => 10,
            },
            key_cache_ttl: seconds("KEY_CACHE_TTL", 300)?,
            allowed_origins,
            refresh_cookie_name,
            refresh_cookie_path,
            refresh_cookie_same_site,
            refresh_token_delivery,
            route_roles,
            password_min_length,
            password_min_score,
            revocation_check,
            revocation_max_staleness,
            revocation_fail,
            signup,
            app_url,
            email_from,
            email_verify_ttl: seconds("EMAIL_VERIFY_TTL", 86_400)?,
            password_reset_ttl: seconds("PASSWORD_RESET_TTL", 1_800)?,
            email_limit_per_hour: seconds("EMAIL_LIMIT_PER_HOUR", 3)?,
            email_ip_limit_per_hour: seconds("EMAIL_IP_LIMIT_PER_HOUR", 30)?,
            step_up_max_age: seconds("STEP_UP_MAX_AGE", 600)?,
            totp_issuer,
            route_require_mfa,
            webauthn_rp_id: get("WEBAUTHN_RP_ID"),
            oauth_providers: get("OAUTH_PROVIDERS"),
            oauth_client_secrets_id: text("OAUTH_CLIENT_SECRETS_ID", "auth/oauth-client-secrets"),
            oauth_callback_base,
        };
        if config.refresh_reuse_grace > 60 {
            return Err(ConfigError {
                name: "REFRESH_REUSE_GRACE",
                problem: "at most 60 seconds".into(),
            });
        }
        if config.access_token_ttl > MAX_ACCESS_TOKEN_TTL {
            return Err(ConfigError {
                name: "ACCESS_TOKEN_TTL",
                problem: format!("at most {} seconds", MAX_ACCESS_TOKEN_TTL),
            });
        }
        if config.key_publish_delay < config.key_cache_ttl {
            return Err(ConfigError {
                name: "KEY_PUBLISH_DELAY",
                problem: "must be at least KEY_CACHE_TTL, or a verifier may meet a key before it has fetched it".into(),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_design() {
        let c = config_with(&[("AUTH_ISSUER", "https://auth.example.com"), ("AUTH_AUDIENCE", "api")]).unwrap();
        assert_eq!(c.access_token_ttl, 900);
        assert_eq!(c.refresh_idle_ttl, 1_209_600);
        assert_eq!(c.session_max_age, 2_592_000);
        assert_eq!(c.refresh_reuse_grace, 10);
        assert_eq!(c.key_cache_ttl, 300);
        assert_eq!(c.users_table, "auth-users");
        assert_eq!(c.sessions_table, "auth-sessions");
        assert_eq!(c.signing_secret_id, "auth/signing-keys");
        assert_eq!(c.refresh_cookie_path, "/auth");
        assert_eq!(c.refresh_token_delivery, TokenDelivery::Cookie);
        assert_eq!(c.refresh_cookie_same_site, SameSite::Strict);
        assert_eq!(c.step_up_max_age, 600);
        assert_eq!(c.totp_issuer, "auth.example.com");
        assert!(c.route_require_mfa.is_empty());
    }

    #[test]
    fn mfa_routes_are_route_keys_and_the_totp_issuer_has_no_colon() {
        let c = config_with(&[
            ("AUTH_ISSUER", "http://localhost:9000/lambda-url/discovery"),
            ("AUTH_AUDIENCE", "api"),
            ("ROUTE_REQUIRE_MFA", " POST  /payments, DELETE /account ,"),
        ])
        .unwrap();
        assert_eq!(c.totp_issuer, "localhost");
        assert_eq!(c.route_require_mfa, HashSet::from(["POST /payments".to_owned(), "DELETE /account".to_owned()]));
        let bad = config_with(&[("AUTH_ISSUER", "https://a.example"), ("AUTH_AUDIENCE", "api"), ("TOTP_ISSUER", "a:b")]);
        assert_eq!(bad.unwrap_err().name, "TOTP_ISSUER");
    }

    #[test]
    fn missing_issuer_names_the_variable() {
        let err = config_with(&[("AUTH_AUDIENCE", "api")]).unwrap_err();
        assert_eq!(err.name, "AUTH_ISSUER");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let base = [("AUTH_ISSUER", "i"), ("AUTH_AUDIENCE", "a")];
        for (name, value) in [
            ("ACCESS_TOKEN_TTL", "soon"),
            ("REFRESH_IDLE_TTL", "0"),
            ("REFRESH_TOKEN_DELIVERY", "pigeon"),
            ("ALLOWED_ORIGINS", "*"),
            ("REFRESH_COOKIE_PATH", "auth"),
            ("ROUTE_ROLES", "[1]"),
            ("REVOCATION_CHECK", "always"),
            ("REVOCATION_MAX_STALENESS", "61"),
            ("REVOCATION_FAIL", "maybe"),
            ("SIGNUP", "sometimes"),
            ("APP_URL", "http://example.com"),
            ("EMAIL_FROM", "nobody"),
            ("EMAIL_LIMIT_PER_HOUR", "0"),
        ] {
            let mut pairs = base.to_vec();
            pairs.push((name, value));
            assert_eq!(config_with(&pairs).unwrap_err().name, name, "{name}={value}");
        }
    }

    #[test]
    fn strict_revocation_is_off_by_default_and_read_when_set() {
        let base = [("AUTH_ISSUER", "i"), ("AUTH_AUDIENCE", "a")];
        let default = config_with(&base).unwrap();
        assert_eq!(
            (default.revocation_check, default.revocation_max_staleness, default.revocation_fail),
            (RevocationCheck::Off, 5, RevocationFail::Closed)
        );
        let mut strict = base.to_vec();
        strict.extend([("REVOCATION_CHECK", "session"), ("REVOCATION_MAX_STALENESS", "0"), ("REVOCATION_FAIL", "open")]);
        let strict = config_with(&strict).unwrap();
        assert_eq!(
            (strict.revocation_check, strict.revocation_max_staleness, strict.revocation_fail),
            (RevocationCheck::Session, 0, RevocationFail::Open)
        );
    }

    #[test]
    fn a_host_prefixed_cookie_needs_the_root_path() {
        let base = [
            ("AUTH_ISSUER", "https://auth.test"),
            ("AUTH_AUDIENCE", "api"),
            ("REFRESH_COOKIE_NAME", "__Host-refresh_token"),
        ];
        let err = config_with(&base).unwrap_err();
        assert_eq!(err.name, "REFRESH_COOKIE_PATH");
        let mut root = base.to_vec();
        root.push(("REFRESH_COOKIE_PATH", "/"));
        assert_eq!(config_with(&root).unwrap().refresh_cookie_name, "__Host-refresh_token");
    }
}
