//! AWS SDK configuration shared by every function and `authctl`: explicit timeouts and the
//! standard retry mode, so a slow dependency becomes a 503 in seconds, not a Lambda timeout.

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

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

use std::sync::Arc;

use crate::authorizer::Authorizer;
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::keys::KeyCache;
use crate::keys::secrets_manager::SecretsManagerKeys;
use crate::service::AuthService;
use crate::store::dynamodb::{DynamoSessions, DynamoUsers};

/// The service over DynamoDB and Secrets Manager, configured from the environment.
pub async fn auth_service(config: &Config) -> AuthService {
    let sdk = load_sdk_config().await;
    auth_service_with(config, &sdk, aws_sdk_secretsmanager::Client::new(&sdk)).await
}

/// The service over the given SDK configuration and Secrets Manager client. Nothing is
/// fetched yet: login and refresh call [`AuthService::warm_up`] during init.
pub async fn auth_service_with(config: &Config, sdk: &SdkConfig, secrets: aws_sdk_secretsmanager::Client) -> AuthService {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let users = DynamoUsers::new(dynamodb.clone(), &config.users_table);
    let sessions = DynamoSessions::new(dynamodb, &config.sessions_table);
    let keys = key_cache(config, secrets, clock.clone());
    AuthService::new(config, Arc::new(users), Arc::new(sessions), keys, clock)
}

/// The authorizer over Secrets Manager, configured from the environment, with the key set
/// fetched during init. A failure is logged, not fatal: every request denies until the
/// set can be read.
pub async fn authorizer(config: &Config) -> Authorizer {
    let sdk = load_sdk_config().await;
    let authorizer = authorizer_with(config, aws_sdk_secretsmanager::Client::new(&sdk));
    if let Err(e) = authorizer.keys().current().await {
        tracing::error!(cause = %e, "key set not available at cold start");
    }
    authorizer
}

/// The authorizer reading keys through `secrets`; nothing fetched yet.
pub fn authorizer_with(config: &Config, secrets: aws_sdk_secretsmanager::Client) -> Authorizer {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    Authorizer::new(config, key_cache(config, secrets, clock.clone()), clock)
}

fn key_cache(config: &Config, secrets: aws_sdk_secretsmanager::Client, clock: Arc<dyn Clock>) -> Arc<KeyCache> {
    let provider = SecretsManagerKeys::new(secrets, &config.signing_secret_id);
    Arc::new(KeyCache::new(Arc::new(provider), clock, config.key_cache_ttl))
}
