use auth_core::api::discovery::Discovery;
use auth_core::{Config, aws, telemetry};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let discovery = Discovery::new(&config, aws::public_key_cache(&config)?)?;
    discovery.warm_up().await;
    run(service_fn(|request| discovery::handle(&discovery, request))).await
}
