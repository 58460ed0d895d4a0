use auth_core::{Config, api::session::AuthApi, aws, telemetry};
use lambda_http::{Error, run, service_fn};

// One thread: an instance serves one request at a time, and worker threads cost CPU at
// every cold start (docs/performance.md). argon2id still runs on tokio's blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let api = AuthApi::new(aws::auth_service(&config)?, &config);
    run(service_fn(|request| logout::handle(&api, request))).await
}
