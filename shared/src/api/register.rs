//! The unauthenticated self-service endpoints (function `register`): `POST /auth/signup`,
//! `/auth/verify-email`, `/auth/verify-email/resend`, `/auth/password/forgot` and
//! `/auth/password/reset`, with login's Origin, preflight, method, size and content-type
//! rules. The use cases are `service::register`.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::http::{HttpPolicy, empty_response, json_body, json_response, request_meta};
use crate::config::Config;
use crate::error::AuthError;
use crate::password::check_size;
use crate::service::register::{MAX_ADDRESS_BYTES, Registration};

/// What a path names, by its suffix (a stage or `cargo lambda watch`'s prefix may come first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/auth/signup`.
    Signup,
    /// `/auth/verify-email`.
    VerifyEmail,
    /// `/auth/verify-email/resend`.
    ResendVerification,
    /// `/auth/password/forgot`.
    ForgotPassword,
    /// `/auth/password/reset`.
    ResetPassword,
}

impl Endpoint {
    /// The endpoint a path names; `None` for any other path.
    pub fn from_path(path: &str) -> Option<Self> {
        [
            ("/auth/signup", Self::Signup),
            ("/auth/verify-email", Self::VerifyEmail),
            ("/auth/verify-email/resend", Self::ResendVerification),
            ("/auth/password/forgot", Self::ForgotPassword),
            ("/auth/password/reset", Self::ResetPassword),
        ]
        .into_iter()
        .find_map(|(suffix, endpoint)| path.ends_with(suffix).then_some(endpoint))
    }
}

#[derive(Deserialize)]
struct SignupBody {
    username: String,
    password: SecretString,
}

#[derive(Deserialize)]
struct AddressBody {
    username: String,
}

#[derive(Deserialize)]
struct VerifyBody {
    token: String,
    password: SecretString,
}

#[derive(Deserialize)]
struct ResetBody {
    token: String,
    new_password: SecretString,
}

/// The one answer of sign-up, resend and forgot, whatever happened.
#[derive(Serialize)]
struct Accepted {
    status: &'static str,
}

/// The register endpoints over one [`Registration`].
pub struct RegisterApi {
    service: Registration,
    policy: HttpPolicy,
}

impl RegisterApi {
    /// The endpoints for `service` with the HTTP rules of `config`.
    pub fn new(service: Registration, config: &Config) -> Self {
        Self {
            service,
            policy: HttpPolicy::new(config),
        }
    }

    /// Answers one request; every failure is an answer from the error table.
    pub async fn respond(&self, request: Request) -> Response<Body> {
        self.policy
            .respond(&request, async {
                let meta = request_meta(&request);
                match Endpoint::from_path(request.uri().path()).ok_or(AuthError::NotFound)? {
                    Endpoint::Signup => {
                        let body: SignupBody = json_body(&request, "The body must be JSON with string fields username and password.")?;
                        check_size(&body.password, "password must be 1 to 1024 bytes.")?;
                        self.service.sign_up(address(&body.username)?, &body.password, &meta).await?;
                        Ok(accepted())
                    }
                    Endpoint::VerifyEmail => {
                        let body: VerifyBody = json_body(&request, "The body must be JSON with string fields token and password.")?;
                        check_size(&body.password, "password must be 1 to 1024 bytes.")?;
                        self.service.verify_email(&body.token, &body.password, &meta).await?;
                        Ok(empty_response(StatusCode::NO_CONTENT))
                    }
                    Endpoint::ResendVerification => {
                        let body: AddressBody = json_body(&request, "The body must be JSON with a string field username.")?;
                        self.service.resend_verification(address(&body.username)?, &meta).await?;
                        Ok(accepted())
                    }
                    Endpoint::ForgotPassword => {
                        let body: AddressBody = json_body(&request, "The body must be JSON with a string field username.")?;
                        self.service.forgot_password(address(&body.username)?, &meta).await?;
                        Ok(accepted())
                    }
                    Endpoint::ResetPassword => {
                        let body: ResetBody = json_body(&request, "The body must be JSON with string fields token and new_password.")?;
                        check_size(&body.new_password, "new_password must be 1 to 1024 bytes.")?;
                        self.service.reset_password(&body.token, &body.new_password, &meta).await?;
                        Ok(empty_response(StatusCode::NO_CONTENT))
                    }
                }
            })
            .await
    }
}

/// 202 with the same body for every address, known or not.
fn accepted() -> Response<Body> {
    json_response(StatusCode::ACCEPTED, &Accepted { status: "accepted" })
}

fn address(raw: &str) -> Result<&str, AuthError> {
    match raw.len() {
        1..=MAX_ADDRESS_BYTES => Ok(raw),
        _ => Err(AuthError::InvalidRequest("username must be an e-mail address.")),
    }
}
