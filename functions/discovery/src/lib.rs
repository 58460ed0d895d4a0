//! The `discovery` Lambda — GET /.well-known/jwks.json and /.well-known/openid-configuration:
//! publishes the public keys and the metadata third parties verify our tokens with.
//! All logic is in `auth_core::discovery`; this crate only names the endpoint.

use std::convert::Infallible;

use auth_core::api::discovery::Discovery;
use lambda_http::{Body, Request, Response};

/// Answers one request. Never fails: every error is an answer from the error table.
pub async fn handle(discovery: &Discovery, request: Request) -> Result<Response<Body>, Infallible> {
    Ok(discovery.respond(&request).await)
}
