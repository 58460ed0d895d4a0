use auth_core::{Config, api::session::AuthApi, aws, passkeys::Passkeys, telemetry};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let service = aws::auth_service(&config)?.with_passkeys(Passkeys::from_config(&config)?);
    service.warm_up().await;
    let api = AuthApi::new(service, &config);
    run(service_fn(|request| login::handle(&api, request))).await
}
