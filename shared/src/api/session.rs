//! Login, refresh and logout over HTTP: method, Origin, size and content-type checks,
//! the refresh cookie (or body) and the token answers. The rules live in `service`.

use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use serde::Deserialize;

use super::http::{
    HttpPolicy, MAX_USERNAME_BYTES, append_header, empty_response, error_response, from_json_object, json_body, json_response, log_unavailable, request_meta,
};
use crate::config::Config;
use crate::error::AuthError;
use crate::factors::AnswerFields;
use crate::password::check_size;
use crate::service::{AuthService, IssuedTokens, LoginOutcome, MfaChallenge, RefreshFailure};

/// The login, refresh and logout endpoints over one [`AuthService`].
pub struct AuthApi {
    service: AuthService,
    policy: HttpPolicy,
}

#[derive(Deserialize)]
struct LoginBody {
    username: String,
    password: SecretString,
}

#[derive(Deserialize)]
struct MfaBody {
    /// The challenge's token; after a sign-in through another provider it comes in the
    /// `mfa_challenge` cookie instead.
    #[serde(default)]
    mfa_token: Option<String>,
    #[serde(flatten)]
    answer: AnswerFields,
}

#[derive(serde::Serialize)]
struct ChallengeResponse<'a> {
    mfa_required: bool,
    /// Absent when the token is in the `mfa_challenge` cookie.
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_token: Option<&'a str>,
    methods: &'a [&'static str],
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    webauthn: Option<&'a serde_json::Value>,
}

impl<'a> ChallengeResponse<'a> {
    fn of(challenge: &'a MfaChallenge, mfa_token: Option<&'a str>) -> Self {
        Self {
            mfa_required: true,
            mfa_token,
            methods: &challenge.methods,
            expires_in: challenge.expires_in,
            webauthn: challenge.webauthn.as_ref(),
        }
    }
}

/// The path suffix of the challenge's answer.
const MFA_LOGIN_SUFFIX: &str = "/login/mfa";
/// The path suffix of a cookie-borne challenge's description.
const MFA_OPTIONS_SUFFIX: &str = "/login/mfa/options";
/// The path suffixes of a sign-in by passkey.
const PASSKEY_START_SUFFIX: &str = "/passkeys/login/start";
const PASSKEY_FINISH_SUFFIX: &str = "/passkeys/login/finish";

#[derive(Deserialize)]
struct PasskeyBody {
    passkey_token: String,
    credential: Box<webauthn_rs::prelude::PublicKeyCredential>,
}

#[derive(Deserialize, Default)]
struct TokenBody {
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    everywhere: bool,
}

#[derive(serde::Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

impl AuthApi {
    /// The endpoints for `service` with the HTTP rules of `config`.
    pub fn new(service: AuthService, config: &Config) -> Self {
        Self {
            service,
            policy: HttpPolicy::new(config),
        }
    }

    /// The login function's endpoints, by the path's suffix: `POST /auth/login/mfa`
    /// answers a challenge, `POST /auth/login/mfa/options` describes the one in the
    /// `mfa_challenge` cookie, `POST /auth/passkeys/login/start|finish` sign in by passkey;
    /// any other path is `POST /auth/login` (a function URL reaches the function with any
    /// path).
    pub async fn login_endpoints(&self, request: Request) -> Response<Body> {
        let path = request.uri().path().trim_end_matches('/');
        if path.ends_with(MFA_LOGIN_SUFFIX) {
            self.login_mfa(request).await
        } else if path.ends_with(MFA_OPTIONS_SUFFIX) {
            self.login_mfa_options(request).await
        } else if path.ends_with(PASSKEY_START_SUFFIX) {
            self.passkey_start(request).await
        } else if path.ends_with(PASSKEY_FINISH_SUFFIX) {
            self.passkey_finish(request).await
        } else {
            self.login(request).await
        }
    }

    /// `POST /auth/passkeys/login/start`: options for any discoverable passkey of the site.
    pub async fn passkey_start(&self, request: Request) -> Response<Body> {
        self.policy
            .respond(&request, async {
                Ok(json_response(StatusCode::OK, &self.service.start_passkey_sign_in().await?))
            })
            .await
    }

    /// `POST /auth/passkeys/login/finish`: `passkey_token` and the assertion; the usual
    /// token answer.
    pub async fn passkey_finish(&self, request: Request) -> Response<Body> {
        self.policy
            .respond(&request, async {
                let body: PasskeyBody = json_body(&request, "The body must be JSON with passkey_token and credential.")?;
                let issued = self
                    .service
                    .finish_passkey_sign_in(&body.passkey_token, &body.credential, &request_meta(&request))
                    .await?;
                Ok(self.token_response(issued))
            })
            .await
    }

    /// `POST /auth/login`: the tokens, or for a user with a second factor a challenge (200,
    /// `mfa_required`, no token and no cookie).
    pub async fn login(&self, request: Request) -> Response<Body> {
        self.policy
            .respond(&request, async {
                let body: LoginBody = json_body(&request, "The body must be JSON with string fields username and password.")?;
                if body.username.trim().is_empty() || body.username.len() > MAX_USERNAME_BYTES {
                    return Err(AuthError::InvalidRequest("username must be 1 to 256 bytes."));
                }
                check_size(&body.password, "password must be 1 to 1024 bytes.")?;
                match self.service.login(&body.username, body.password, &request_meta(&request)).await? {
                    LoginOutcome::Signed(issued) => Ok(self.token_response(*issued)),
                    LoginOutcome::MfaRequired(challenge) => Ok(json_response(
                        StatusCode::OK,
                        &ChallengeResponse::of(&challenge, Some(&challenge.token.encode())),
                    )),
                }
            })
            .await
    }

    /// `POST /auth/login/mfa`: `mfa_token` and exactly one of `code` (TOTP) and
    /// `recovery_code`; the usual token answer.
    pub async fn login_mfa(&self, request: Request) -> Response<Body> {
        self.policy
            .respond(&request, async {
                let body: MfaBody = json_body(&request, "The body must be JSON with mfa_token and one of code and recovery_code.")?;
                let answer = body.answer.answer()?;
                let from_cookie = body.mfa_token.is_none();
                let token = match body.mfa_token.as_deref() {
                    Some(token) => token,
                    None => self.policy.challenge_from_cookie(request.headers()).ok_or(AuthError::InvalidToken)?,
                };
                let issued = self.service.complete_mfa(token, &answer, &request_meta(&request)).await?;
                let mut response = self.token_response(issued);
                if from_cookie {
                    append_header(&mut response, header::SET_COOKIE, &self.policy.challenge_cookie("", 0));
                }
                Ok(response)
            })
            .await
    }

    /// `POST /auth/login/mfa/options`: the challenge whose token is in the `mfa_challenge`
    /// cookie (a sign-in through another provider came back with `mfa_required`), as login
    /// answers one but without the token: its methods, seconds left, and the passkey
    /// request when `webauthn` is among them. No body is read; nothing changes.
    pub async fn login_mfa_options(&self, request: Request) -> Response<Body> {
        self.policy
            .respond(&request, async {
                let token = self.policy.challenge_from_cookie(request.headers()).ok_or(AuthError::InvalidToken)?;
                let challenge = self.service.pending_challenge(token).await?;
                Ok(json_response(StatusCode::OK, &ChallengeResponse::of(&challenge, None)))
            })
            .await
    }

    /// `POST /auth/refresh`.
    pub async fn refresh(&self, request: Request) -> Response<Body> {
        self.policy
            .respond(&request, async {
                let body = self.token_body(&request)?;
                let presented = match self.presented_tokens(&request, &body)[..] {
                    [] => None,
                    [one] => Some(one),
                    // SECURITY: never pick one of several refresh cookies: the planted one would
                    // refresh the victim into the planter's session (session fixation). Nor clear
                    // the cookie: a `Set-Cookie` without `Domain` would delete only the victim's
                    // own, and leave the planted one to be sent alone next time.
                    [_, _, ..] => return Ok(error_response(&AuthError::InvalidToken)),
                };
                match self.service.refresh(presented, &request_meta(&request)).await {
                    Ok(issued) => Ok(self.token_response(issued)),
                    Err(RefreshFailure {
                        error: e @ (AuthError::InvalidToken | AuthError::TokenReused),
                        ..
                    }) => Ok(self.refused_token(&e)),
                    Err(RefreshFailure { error, successor: None }) => Err(error),
                    // The rotation is committed: the error goes out with the successor, so the
                    // client's next try presents it instead of the superseded token.
                    Err(RefreshFailure {
                        error,
                        successor: Some(successor),
                    }) => {
                        log_unavailable(&error);
                        let mut response = error_response(&error);
                        self.deliver_refresh_token(&mut response, &successor.refresh.encode(), successor.max_age);
                        Ok(response)
                    }
                }
            })
            .await
    }

    /// `POST /auth/logout`: 204 whether or not there was a live session.
    pub async fn logout(&self, request: Request) -> Response<Body> {
        self.policy
            .respond(&request, async {
                let body = self.token_body(&request)?;
                // Several refresh cookies (one planted): end the session of each, so the planted
                // one is dead too once the cookie is cleared (each token is authenticated alone).
                let meta = request_meta(&request);
                self.service.logout_each(self.presented_tokens(&request, &body), body.everywhere, &meta).await?;
                let mut response = empty_response(StatusCode::NO_CONTENT);
                self.clear_cookie(&mut response);
                Ok(response)
            })
            .await
    }

    /// The 401 for a refresh token that is refused: the error, and the cookie cleared.
    fn refused_token(&self, error: &AuthError) -> Response<Body> {
        let mut response = error_response(error);
        self.clear_cookie(&mut response);
        response
    }

    /// Refresh and logout accept any content type and read JSON only when a body is sent.
    fn token_body(&self, request: &Request) -> Result<TokenBody, AuthError> {
        let bytes = request.body().as_ref();
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(TokenBody::default());
        }
        from_json_object(bytes).ok_or(AuthError::InvalidRequest("The body, when sent, must be a JSON object."))
    }

    /// The refresh tokens the request presents: its refresh cookies, or else the body's
    /// token. Empty values count (an empty cookie must not hide a second one).
    fn presented_tokens<'a>(&self, request: &'a Request, body: &'a TokenBody) -> Vec<&'a str> {
        let cookies = match self.policy.delivery.uses_cookie() {
            true => self.policy.cookie_values(request.headers()),
            false => Vec::new(),
        };
        let from_body = self.policy.delivery.uses_body().then_some(body.refresh_token.as_deref()).flatten();
        match (cookies.is_empty(), from_body) {
            (true, Some(token)) => vec![token],
            _ => cookies,
        }
    }

    fn token_response(&self, issued: IssuedTokens) -> Response<Body> {
        let refresh = issued.refresh.encode();
        let body = TokenResponse {
            access_token: &issued.access.token,
            token_type: "Bearer",
            expires_in: issued.access.expires_in,
            refresh_token: self.policy.delivery.uses_body().then(|| refresh.clone()),
        };
        let mut response = json_response(StatusCode::OK, &body);
        if self.policy.delivery.uses_cookie() {
            append_header(&mut response, header::SET_COOKIE, &self.policy.cookie(&refresh, issued.refresh_max_age));
        }
        response
    }

    /// Adds a refresh token to an error answer: the cookie, and with body delivery a
    /// `refresh_token` member beside `error` and `message`.
    fn deliver_refresh_token(&self, response: &mut Response<Body>, refresh: &str, max_age: u64) {
        if self.policy.delivery.uses_cookie() {
            append_header(response, header::SET_COOKIE, &self.policy.cookie(refresh, max_age));
        }
        if self.policy.delivery.uses_body()
            && let Body::Text(text) = response.body_mut()
            && let Ok(serde_json::Value::Object(mut members)) = serde_json::from_str(text)
        {
            members.insert("refresh_token".into(), refresh.into());
            *text = serde_json::Value::Object(members).to_string();
        }
    }

    fn clear_cookie(&self, response: &mut Response<Body>) {
        self.policy.clear_cookie(response);
    }
}
