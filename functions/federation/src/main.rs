use auth_core::{Config, aws, telemetry};
use lambda_http::{Error, run, service_fn};

// One thread: an instance serves one request at a time (docs/performance.md).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let api = aws::federation(&config).await?;
    run(service_fn(|request| federation::handle(&api, request))).await
}
