//! The `federation` Lambda — sign-in through other OpenID Connect providers
//! (`GET /auth/oauth/{provider}/start`, `GET /auth/oauth/{provider}/callback`). All logic
//! is in `auth_core`.

use std::convert::Infallible;

use auth_core::api::federation::FederationApi;
use lambda_http::{Body, Request, Response};

/// Answers one request. Never fails: every error is a redirect or an answer from the
/// error table.
pub async fn handle(api: &FederationApi, request: Request) -> Result<Response<Body>, Infallible> {
    Ok(api.respond(request).await)
}
