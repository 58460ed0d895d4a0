//! The `login` Lambda — POST /auth/login: checks the password and starts a session (or
//! issues a second-factor challenge); POST /auth/login/mfa answers that challenge; POST
//! /auth/passkeys/login/start|finish sign in by passkey.
//! All logic is in `auth_core`; this crate only names the endpoint.

use std::convert::Infallible;

use auth_core::api::session::AuthApi;
use lambda_http::{Body, Request, Response};

/// Answers one request. Never fails: every error is an answer from the error table.
pub async fn handle(api: &AuthApi, request: Request) -> Result<Response<Body>, Infallible> {
    Ok(api.login_endpoints(request).await)
}
