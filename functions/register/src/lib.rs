//! The `register` Lambda — sign-up, e-mail verification and password reset by e-mail
//! (`POST /auth/signup`, `/auth/verify-email`, `/auth/verify-email/resend`,
//! `/auth/password/forgot`, `/auth/password/reset`). All logic is in `auth_core`.

use std::convert::Infallible;

use auth_core::api::register::RegisterApi;
use lambda_http::{Body, Request, Response};

/// Answers one request. Never fails: every error is an answer from the error table.
pub async fn handle(api: &RegisterApi, request: Request) -> Result<Response<Body>, Infallible> {
    Ok(api.respond(request).await)
}
