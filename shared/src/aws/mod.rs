//! AWS wiring: the SDK configuration shared by every function and `authctl` (explicit
//! timeouts and the standard retry mode, so a slow dependency becomes a 503 in seconds, not
//! a Lambda timeout), building the service, the authorizer and `account` over DynamoDB and
//! Secrets Manager; `recorder` holds the call recorder the tests and benchmarks count AWS
//! calls with.

mod recorder;
mod trust;

pub use recorder::{CallRecorder, ItemAccess, SdkCall};
pub use trust::TrustRoots;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

use crate::api::account::Account;
use crate::api::authorizer::Authorizer;
use crate::api::federation::FederationApi;
use crate::api::register::RegisterApi;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, RevocationCheck};
use crate::error::ConfigError;
use crate::federation::client::Provider;
use crate::federation::http::ProviderHttp;
use crate::federation::provider::parse_providers;
use crate::keys::secrets_manager::{Connect, SecretsManagerKeys};
use crate::keys::verifying::TrustedKeys;
use crate::keys::{KeyCache, KeyDocument, PublicKeys, SigningKeys};
use crate::mail::ses::SesMailer;
use crate::passkeys::Passkeys;
use crate::service::AuthService;
use crate::service::federation::Federation;
use crate::service::register::Registration;
use crate::service::revocation::SessionCheck;
use crate::store::dynamodb::{DynamoSessions, DynamoStanding, DynamoUsers};

/// Loads the SDK configuration through `aws-config`'s default chains (environment, profile
/// files, SSO, web identity, the container and instance metadata endpoints): what
/// `authctl` and the tests run with, on an operator's machine.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await
}

/// The SDK configuration of a function, from the environment the Lambda runtime gives it:
/// `AWS_REGION` and the execution role's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
/// `AWS_SESSION_TOKEN` (plus `AWS_ENDPOINT_URL` when set, for the emulator, and
/// `AWS_USE_FIPS_ENDPOINT` / `AWS_USE_DUALSTACK_ENDPOINT`), and one HTTPS client for all
/// its SDK clients, trusting the roots `TRUST_ROOTS` names ([`TrustRoots`]). It walks no
/// chain: no profile file is read and no metadata endpoint is probed, and since no function
/// calls `aws-config`'s loader, its STS, SSO and IMDS clients are not linked into them
/// (docs/performance.md has the cold start and the sizes). Without those variables the cold
/// start fails, naming the one missing (`cargo lambda watch` runs the functions with the
/// shell's environment: `scripts/dev.sh` exports them for the emulator).
pub fn lambda_sdk_config() -> Result<SdkConfig, ConfigError> {
    lambda_sdk_config_from(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

fn lambda_sdk_config_from(var: impl Fn(&str) -> Option<String>) -> Result<SdkConfig, ConfigError> {
    let required = |name: &'static str| {
        var(name).ok_or(ConfigError {
            name,
            problem: "is required: a function takes its region and credentials from the environment Lambda gives it".into(),
        })
    };
    let credentials = Credentials::new(
        required("AWS_ACCESS_KEY_ID")?,
        required("AWS_SECRET_ACCESS_KEY")?,
        var("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    let mut builder = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(required("AWS_REGION")?))
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .retry_config(retry_config())
        .timeout_config(timeout_config());
    if let Some(endpoint) = var("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(endpoint);
    }
    if let Some(client) = TrustRoots::from_setting(var("TRUST_ROOTS").as_deref())?.http_client()? {
        builder = builder.http_client(client);
    }
    // The two endpoint switches an operator may set (GovCloud's FIPS endpoints, IPv6),
    // read as the SDK's loader reads them; anything but true or false fails the start.
    for (name, fips) in [("AWS_USE_FIPS_ENDPOINT", true), ("AWS_USE_DUALSTACK_ENDPOINT", false)] {
        let Some(value) = var(name) else { continue };
        let on = match value.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ConfigError {
                    name,
                    problem: format!("expected true or false, got {value:?}"),
                });
            }
        };
        builder = if fips { builder.use_fips(on) } else { builder.use_dual_stack(on) };
    }
    Ok(builder.build())
}

/// Three attempts in all, the SDK's standard mode (backoff with jitter).
fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3)
}

/// Bounded so a slow dependency becomes a 503 in seconds, not a Lambda timeout.
fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(1))
        .operation_attempt_timeout(Duration::from_millis(1500))
        .operation_timeout(Duration::from_secs(4))
        .build()
}

/// The `register` endpoints, configured from the environment: the users table and SES v2.
/// `APP_URL` (where links lead) and `EMAIL_FROM` (the verified sender) are required here:
/// without them the cold start fails, naming the variable.
pub fn register(config: &Config) -> Result<RegisterApi, ConfigError> {
    let sdk = lambda_sdk_config()?;
    register_with(config, aws_sdk_dynamodb::Client::new(&sdk), aws_sdk_sesv2::Client::new(&sdk))
}

/// The `register` endpoints over the given clients.
pub fn register_with(config: &Config, dynamodb: aws_sdk_dynamodb::Client, ses: aws_sdk_sesv2::Client) -> Result<RegisterApi, ConfigError> {
    let needed = |name: &'static str, value: &Option<String>| {
        value.clone().ok_or(ConfigError {
            name,
            problem: "is required by the register function".into(),
        })
    };
    let app_url = needed("APP_URL", &config.app_url)?;
    let from = needed("EMAIL_FROM", &config.email_from)?;
    let users = Arc::new(DynamoUsers::new(dynamodb, &config.users_table, &config.sessions_table));
    let mailer = Arc::new(SesMailer::new(ses, from));
    let service = Registration::new(config, &app_url, users.clone(), users, mailer, Arc::new(SystemClock));
    Ok(RegisterApi::new(service, config))
}

/// The service over DynamoDB and Secrets Manager, configured from the environment.
pub fn auth_service(config: &Config) -> Result<AuthService, ConfigError> {
    let sdk = lambda_sdk_config()?;
    Ok(auth_service_with(
        config,
        aws_sdk_dynamodb::Client::new(&sdk),
        aws_sdk_secretsmanager::Client::new(&sdk),
    ))
}

/// The service over the given clients. Nothing is fetched yet: login and refresh call
/// [`AuthService::warm_up`] during init.
pub fn auth_service_with(config: &Config, dynamodb: aws_sdk_dynamodb::Client, secrets: aws_sdk_secretsmanager::Client) -> AuthService {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let users = Arc::new(DynamoUsers::new(dynamodb.clone(), &config.users_table, &config.sessions_table));
    let sessions = DynamoSessions::new(dynamodb, &config.sessions_table);
    let keys = Arc::new(key_cache::<SigningKeys>(SecretsManagerKeys::new(secrets, &config.signing_secret_id), config));
    AuthService::new(config, users.clone(), Arc::new(sessions), users, keys, clock)
}

/// The federation function's endpoints, configured from the environment: the providers of
/// `OAUTH_PROVIDERS` (required; checked here), their client secrets read once from
/// `OAUTH_CLIENT_SECRETS_ID` during init (a provider missing there is a public client,
/// PKCE only), the tables and the signing keys.
pub async fn federation(config: &Config) -> Result<FederationApi, ConfigError> {
    let sdk = lambda_sdk_config()?;
    federation_with(config, aws_sdk_dynamodb::Client::new(&sdk), aws_sdk_secretsmanager::Client::new(&sdk)).await
}

/// The federation function's endpoints over the given clients.
pub async fn federation_with(
    config: &Config,
    dynamodb: aws_sdk_dynamodb::Client,
    secrets: aws_sdk_secretsmanager::Client,
) -> Result<FederationApi, ConfigError> {
    let bad = |name: &'static str, problem: String| ConfigError { name, problem };
    if config.oauth_providers.is_none() {
        return Err(bad("OAUTH_PROVIDERS", "is required by the federation function".into()));
    }
    let client_secrets = match secrets.get_secret_value().secret_id(&config.oauth_client_secrets_id).send().await {
        Ok(out) => serde_json::from_str::<HashMap<String, String>>(out.secret_string().unwrap_or_default()).map_err(|_| {
            bad(
                "OAUTH_CLIENT_SECRETS_ID",
                "the secret must be a JSON object of provider ids to client secrets".into(),
            )
        })?,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => HashMap::new(),
        Err(e) => {
            return Err(bad(
                "OAUTH_CLIENT_SECRETS_ID",
                format!("the secret cannot be read: {}", aws_sdk_secretsmanager::error::DisplayErrorContext(&e)),
            ));
        }
    };
    let users = Arc::new(DynamoUsers::new(dynamodb.clone(), &config.users_table, &config.sessions_table));
    let federation = federation_of(config, client_secrets, users)?;
    // Passkeys: a user whose second factor is one answers the challenge with it.
    let service = auth_service_with(config, dynamodb, secrets)
        .with_passkeys(Passkeys::from_config(config)?)
        .with_federation(federation);
    Ok(FederationApi::new(config, service))
}

/// The providers of `OAUTH_PROVIDERS` (checked here) with the client secrets given, over
/// the identities' store; `None` when none is configured.
fn federation_of(config: &Config, mut client_secrets: HashMap<String, String>, users: Arc<DynamoUsers>) -> Result<Option<Federation>, ConfigError> {
    let Some(listed) = config.oauth_providers.as_deref() else {
        return Ok(None);
    };
    let bad = |problem: String| ConfigError {
        name: "OAUTH_PROVIDERS",
        problem,
    };
    let http = ProviderHttp::new();
    let providers = parse_providers(listed)
        .map_err(bad)?
        .into_iter()
        .map(|p| {
            let secret = client_secrets.remove(&p.id);
            Provider::new(p, secret, http.clone())
        })
        .collect();
    Ok(Some(Federation::new(providers, users, &config.oauth_callback_base, config.signup)))
}

/// The authorizer, configured from the environment. With keys deployed in
/// `AUTH_PUBLIC_JWKS` and `REVOCATION_CHECK=off` its cold start touches no network and
/// builds no SDK client: the Secrets Manager client is built on the first token whose `kid`
/// the deployment lacks. With no keys deployed, the public store is fetched during init; a
/// failure is logged, not fatal: every request denies until the keys can be read. With
/// `REVOCATION_CHECK=session` the DynamoDB client is built and its connection opened during
/// init, since every request needs it. A malformed `AUTH_PUBLIC_JWKS` fails the cold start.
pub async fn authorizer(config: &Config) -> Result<Authorizer, ConfigError> {
    let sdk = lambda_sdk_config()?;
    let lazy_sdk = sdk.clone();
    let connect: Connect = Box::new(move || {
        let sdk = lazy_sdk.clone();
        Box::pin(async move { aws_sdk_secretsmanager::Client::new(&sdk) })
    });
    let authorizer = authorizer_connecting(config, connect).await?;
    Ok(match config.revocation_check {
        RevocationCheck::Off => authorizer,
        RevocationCheck::Session => {
            let check = session_check(config, aws_sdk_dynamodb::Client::new(&sdk));
            check.warm().await;
            authorizer.with_session_check(check)
        }
    })
}

/// Strict mode's session check over `dynamodb` (the sessions and users tables); nothing
/// read yet.
pub fn session_check(config: &Config, dynamodb: aws_sdk_dynamodb::Client) -> SessionCheck {
    let store = DynamoStanding::new(dynamodb, &config.sessions_table, &config.users_table);
    SessionCheck::new(config, Arc::new(store), Arc::new(SystemClock))
}

/// [`authorizer`] with the public store's client built by `connect`, on its first fetch:
/// the same cold start, so the tests can see when (and whether) a client is ever built.
pub async fn authorizer_connecting(config: &Config, connect: Connect) -> Result<Authorizer, ConfigError> {
    let authorizer = authorizer_over(config, SecretsManagerKeys::lazy(connect, &config.public_keys_secret_id))?;
    authorizer.keys().warm_up().await;
    Ok(authorizer)
}

/// The authorizer reading the public store through `secrets` (tests); nothing fetched yet.
pub fn authorizer_with(config: &Config, secrets: aws_sdk_secretsmanager::Client) -> Result<Authorizer, ConfigError> {
    authorizer_over(config, SecretsManagerKeys::new(secrets, &config.public_keys_secret_id))
}

fn authorizer_over(config: &Config, store: SecretsManagerKeys<PublicKeys>) -> Result<Authorizer, ConfigError> {
    Ok(Authorizer::new(config, trusted_keys(config, store)?, Arc::new(SystemClock)))
}

/// What a verifier trusts: the keys deployed in `AUTH_PUBLIC_JWKS`, then the public store.
fn trusted_keys(config: &Config, store: SecretsManagerKeys<PublicKeys>) -> Result<TrustedKeys, ConfigError> {
    Ok(TrustedKeys::new(deployed_keys(config)?, key_cache(store, config)))
}

/// The `account` endpoints, configured from the environment: both tables, and the
/// authorizer's keys (deployed `AUTH_PUBLIC_JWKS`, then the public store, whose client is
/// built on first use); never the private key secret. Without deployed keys the public
/// store is fetched during init; a failure is logged, not fatal (requests answer 503 until
/// the keys can be read). A malformed `AUTH_PUBLIC_JWKS` fails the cold start.
pub async fn account(config: &Config) -> Result<Account, ConfigError> {
    let sdk = lambda_sdk_config()?;
    let account = account_with(config, aws_sdk_dynamodb::Client::new(&sdk), aws_sdk_secretsmanager::Client::new(&sdk))?;
    account.keys().warm_up().await;
    Ok(account)
}

/// The `account` endpoints over the given clients (tests); nothing fetched yet.
pub fn account_with(config: &Config, dynamodb: aws_sdk_dynamodb::Client, secrets: aws_sdk_secretsmanager::Client) -> Result<Account, ConfigError> {
    let keys = trusted_keys(config, SecretsManagerKeys::new(secrets, &config.public_keys_secret_id))?;
    let users = Arc::new(DynamoUsers::new(dynamodb.clone(), &config.users_table, &config.sessions_table));
    let sessions = DynamoSessions::new(dynamodb, &config.sessions_table);
    let passkeys = Passkeys::from_config(config)?;
    // Linking a provider starts here (no client secret needed: the code exchange is the
    // federation function's).
    let federation = federation_of(config, HashMap::new(), users.clone())?;
    Ok(
        Account::new(config, keys, users.clone(), Arc::new(sessions), users.clone(), Arc::new(SystemClock))
            .with_passkeys(passkeys)
            .with_identities(Some(users))
            .with_federation(federation),
    )
}

/// The keys of `AUTH_PUBLIC_JWKS`, refused with the variable's name when malformed.
pub fn deployed_keys(config: &Config) -> Result<Option<PublicKeys>, ConfigError> {
    config.public_jwks.as_deref().map(PublicKeys::from_json).transpose().map_err(|e| ConfigError {
        name: "AUTH_PUBLIC_JWKS",
        problem: format!("{e}; print the right value with `authctl keys jwks`"),
    })
}

/// The public store over Secrets Manager: what `discovery` serves.
pub fn public_key_cache(config: &Config) -> Result<KeyCache<PublicKeys>, ConfigError> {
    let sdk = lambda_sdk_config()?;
    Ok(public_key_cache_with(config, aws_sdk_secretsmanager::Client::new(&sdk)))
}

/// The public store read through `secrets`; nothing fetched yet.
pub fn public_key_cache_with(config: &Config, secrets: aws_sdk_secretsmanager::Client) -> KeyCache<PublicKeys> {
    key_cache(SecretsManagerKeys::new(secrets, &config.public_keys_secret_id), config)
}

fn key_cache<T: KeyDocument>(provider: SecretsManagerKeys<T>, config: &Config) -> KeyCache<T> {
    KeyCache::new(Arc::new(provider), Arc::new(SystemClock), config.key_cache_ttl)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<SdkConfig, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        lambda_sdk_config_from(|name| vars.get(name).cloned())
    }

    #[test]
    fn a_function_takes_region_and_credentials_from_the_lambda_environment_and_names_what_is_missing() {
        let lambda = [
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
            ("AWS_SESSION_TOKEN", "token"),
        ];
        let sdk = from(&lambda).unwrap();
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(sdk.endpoint_url(), None);
        assert!(sdk.credentials_provider().is_some());
        assert_eq!(sdk.retry_config().map(|r| r.max_attempts()), Some(3));
        assert!(sdk.http_client().is_some(), "the compiled-in roots' client, shared by every SDK client");
        let system = from(&[lambda[0], lambda[1], lambda[2], ("TRUST_ROOTS", "system")]).unwrap();
        assert!(system.http_client().is_none(), "the SDK's default client, over the system store");
        let typo = from(&[lambda[0], lambda[1], lambda[2], ("TRUST_ROOTS", "mozilla")]).unwrap_err();
        assert_eq!(typo.name, "TRUST_ROOTS");
        let emulator = from(&[lambda[0], lambda[1], lambda[2], ("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")]).unwrap();
        assert_eq!(
            emulator.endpoint_url(),
            Some("http://127.0.0.1:5000"),
            "the session token is optional, the endpoint taken"
        );
        assert_eq!((sdk.use_fips(), sdk.use_dual_stack()), (None, None));
        let switches = [("AWS_USE_FIPS_ENDPOINT", "TRUE"), ("AWS_USE_DUALSTACK_ENDPOINT", "false")];
        let fips = from(&[lambda[0], lambda[1], lambda[2], switches[0], switches[1]]).unwrap();
        assert_eq!((fips.use_fips(), fips.use_dual_stack()), (Some(true), Some(false)));
        let typo = from(&[lambda[0], lambda[1], lambda[2], ("AWS_USE_FIPS_ENDPOINT", "yes")]).unwrap_err();
        assert_eq!(typo.name, "AWS_USE_FIPS_ENDPOINT");
        for missing in ["AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            let without: Vec<_> = lambda.iter().copied().filter(|(k, _)| *k != missing).collect();
            assert_eq!(from(&without).unwrap_err().name, missing);
        }
    }
}
