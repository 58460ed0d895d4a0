use auth_core::{Config, aws, telemetry};
use lambda_http::{Error, lambda_runtime, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let authorizer = aws::authorizer(&config).await?;
    lambda_runtime::run(service_fn(|event| authorizer::handle(&authorizer, event))).await
}
