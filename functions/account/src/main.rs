use auth_core::{Config, aws, telemetry};
use lambda_http::{Error, run, service_fn};

// One thread: an instance serves one request at a time, and worker threads cost CPU at
// every cold start (docs/performance.md). argon2id still runs on tokio's blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let account = aws::account(&config).await?;
    run(service_fn(|request| account::handle(&account, request))).await
}
