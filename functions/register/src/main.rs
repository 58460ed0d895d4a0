use auth_core::{Config, aws, telemetry};
use lambda_http::{Error, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let api = aws::register(&config)?;
    run(service_fn(|request| register::handle(&api, request))).await
}
