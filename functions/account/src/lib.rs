//! The `account` Lambda — GET /auth/sessions and DELETE /auth/sessions/{session_id}: a
//! signed-in user lists and ends their own sessions, with a bearer access token.
//! All logic is in `auth_core::account`; this crate only names the endpoint.

use std::convert::Infallible;

use auth_core::api::account::Account;
use lambda_http::{Body, Request, Response};

/// Answers one request. Never fails: every error is an answer from the error table.
pub async fn handle(account: &Account, request: Request) -> Result<Response<Body>, Infallible> {
    Ok(account.respond(&request).await)
}
