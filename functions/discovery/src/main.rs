use auth_core::api::discovery::Discovery;
use auth_core::{Config, aws, telemetry};
use lambda_http::{Error, run, service_fn};

// One thread: an instance serves one request at a time, and worker threads cost CPU at
// every cold start (docs/performance.md). argon2id still runs on tokio's blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let discovery = Discovery::new(&config, aws::public_key_cache(&config)?)?;
    discovery.warm_up().await;
    run(service_fn(|request| discovery::handle(&discovery, request))).await
}
