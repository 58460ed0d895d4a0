use auth_core::{Config, api::session::AuthApi, aws, passkeys::Passkeys, telemetry};
use lambda_http::{Error, run, service_fn};

// One thread: an instance serves one request at a time, and worker threads cost CPU at
// every cold start (docs/performance.md). argon2id still runs on tokio's blocking pool.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let service = aws::auth_service(&config)?.with_passkeys(Passkeys::from_config(&config)?);
    service.warm_up().await;
    let api = AuthApi::new(service, &config);
    run(service_fn(|request| login::handle(&api, request))).await
}
