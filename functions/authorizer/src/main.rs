use std::sync::Arc;

use auth_core::authorizer::Authorizer;
use auth_core::clock::{Clock, SystemClock};
use auth_core::{Config, aws, telemetry};
use lambda_http::{Error, lambda_runtime, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let sdk = aws::load_sdk_config().await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let keys = aws::key_cache(&config, &sdk, clock.clone());
    aws::prefetch_keys(&keys).await;
    let authorizer = Authorizer::new(&config, keys, clock);
    lambda_runtime::run(service_fn(|event| authorizer::handle(&authorizer, event))).await
}
