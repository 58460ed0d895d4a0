//! AWS wiring: the SDK configuration shared by every function and `authctl` (explicit
//! timeouts and the standard retry mode, so a slow dependency becomes a 503 in seconds, not
//! a Lambda timeout), building the service, the authorizer and `account` over DynamoDB and
//! Secrets Manager; `recorder` holds the call recorder the tests and benchmarks count AWS
//! calls with.

mod recorder;

pub use recorder::{CallRecorder, ItemAccess, SdkCall};

use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::api::account::Account;
use crate::api::authorizer::Authorizer;
use crate::api::register::RegisterApi;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, RevocationCheck};
use crate::error::ConfigError;
use crate::keys::secrets_manager::{Connect, SecretsManagerKeys};
use crate::keys::verifying::TrustedKeys;
use crate::keys::{KeyCache, KeyDocument, PublicKeys, SigningKeys};
use crate::mail::ses::SesMailer;
use crate::passkeys::Passkeys;
use crate::service::AuthService;
use crate::service::register::Registration;
use crate::service::revocation::SessionCheck;
use crate::store::dynamodb::{DynamoSessions, DynamoStanding, DynamoUsers};

/// Loads the SDK configuration from the standard environment (`AWS_REGION`,
/// `AWS_ENDPOINT_URL`, credentials chain).
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_millis(1500))
                .operation_timeout(Duration::from_secs(4))
                .build(),
        )
        .load()
        .await
}

/// The `register` endpoints, configured from the environment: the users table and SES v2.
/// `APP_URL` (where links lead) and `EMAIL_FROM` (the verified sender) are required here:
/// without them the cold start fails, naming the variable.
pub async fn register(config: &Config) -> Result<RegisterApi, ConfigError> {
    let sdk = load_sdk_config().await;
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
pub async fn auth_service(config: &Config) -> AuthService {
    let sdk = load_sdk_config().await;
    auth_service_with(config, aws_sdk_dynamodb::Client::new(&sdk), aws_sdk_secretsmanager::Client::new(&sdk))
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

/// The authorizer, configured from the environment. With keys deployed in
/// `AUTH_PUBLIC_JWKS` and `REVOCATION_CHECK=off` its cold start touches no network and
/// builds no SDK client: the Secrets Manager client is built on the first token whose `kid`
/// the deployment lacks. With no keys deployed, the public store is fetched during init; a
/// failure is logged, not fatal: every request denies until the keys can be read. With
/// `REVOCATION_CHECK=session` the DynamoDB client is built and its connection opened during
/// init, since every request needs it. A malformed `AUTH_PUBLIC_JWKS` fails the cold start.
pub async fn authorizer(config: &Config) -> Result<Authorizer, ConfigError> {
    let connect: Connect = Box::new(|| Box::pin(async { aws_sdk_secretsmanager::Client::new(&load_sdk_config().await) }));
    let authorizer = authorizer_connecting(config, connect).await?;
    Ok(match config.revocation_check {
        RevocationCheck::Off => authorizer,
        RevocationCheck::Session => {
            let check = session_check(config, aws_sdk_dynamodb::Client::new(&load_sdk_config().await));
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
    let sdk = load_sdk_config().await;
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
    Ok(Account::new(config, keys, users.clone(), Arc::new(sessions), users, Arc::new(SystemClock)).with_passkeys(passkeys))
}

/// The keys of `AUTH_PUBLIC_JWKS`, refused with the variable's name when malformed.
pub fn deployed_keys(config: &Config) -> Result<Option<PublicKeys>, ConfigError> {
    config.public_jwks.as_deref().map(PublicKeys::from_json).transpose().map_err(|e| ConfigError {
        name: "AUTH_PUBLIC_JWKS",
        problem: format!("{e}; print the right value with `authctl keys jwks`"),
    })
}

/// The public store over Secrets Manager: what `discovery` serves.
pub async fn public_key_cache(config: &Config) -> KeyCache<PublicKeys> {
    let sdk = load_sdk_config().await;
    public_key_cache_with(config, aws_sdk_secretsmanager::Client::new(&sdk))
}

/// The public store read through `secrets`; nothing fetched yet.
pub fn public_key_cache_with(config: &Config, secrets: aws_sdk_secretsmanager::Client) -> KeyCache<PublicKeys> {
    key_cache(SecretsManagerKeys::new(secrets, &config.public_keys_secret_id), config)
}

fn key_cache<T: KeyDocument>(provider: SecretsManagerKeys<T>, config: &Config) -> KeyCache<T> {
    KeyCache::new(Arc::new(provider), Arc::new(SystemClock), config.key_cache_ttl)
}
