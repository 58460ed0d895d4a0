use auth_core::{Config, api::session::AuthApi, aws, telemetry};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let api = AuthApi::new(aws::auth_service(&config)?, &config);
    run(service_fn(|request| logout::handle(&api, request))).await
}
