//! The `account` endpoints a signed-in user manages their password and sessions with:
//! `POST /auth/password` changes the password (every other session ends, the caller's goes
//! on), `GET /auth/sessions` lists the caller's live sessions, `DELETE /auth/sessions/{id}`
//! ends one of them. Every request carries `Authorization: Bearer <access token>`, verified
//! with the public keys exactly as the authorizer verifies it, and the token's session must
//! still be live and accepted by its user: a token of a revoked session, or of a disabled
//! user, is refused at once, not when it expires.
//! The use cases are `service::account`; this room parses requests and shapes answers, with
//! the Origin rules, cookie and error answers of `api::http`.

use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use secrecy::SecretString;
use serde::Deserialize;

use super::authorizer::bearer_token;
use super::federation::BrowserBinding;
use super::http::{HttpPolicy, MAX_BODY_BYTES, append_header, empty_response, error_response, json_body, json_response, log_unavailable, request_meta};
use crate::clock::Clock;
use crate::config::Config;
use crate::error::AuthError;
use crate::factors::{AnswerFields, FactorAnswer};
use crate::keys::verifying::TrustedKeys;
use crate::service::account::{AccountService, Caller};
use crate::service::federation::OAUTH_CEREMONY_TTL;
use crate::store::{FactorStore, SessionStore, UserStore};
use crate::tokens::{AccessTokenHeader, AccessTokens};
use std::sync::Arc;

/// The collection path, matched by suffix: behind an HTTP API the path may carry a stage
/// (`/prod/auth/sessions`), under `cargo lambda watch` the function URL's prefix
/// (`/lambda-url/account/auth/sessions`).
pub const SESSIONS_PATH: &str = "/auth/sessions";
/// The password path, matched by suffix likewise.
pub const PASSWORD_PATH: &str = "/auth/password";

/// The passkeys collection, matched by suffix likewise.
pub const PASSKEYS_PATH: &str = "/auth/passkeys";

/// The identities (other providers) collection, matched by suffix likewise.
pub const IDENTITIES_PATH: &str = "/auth/identities";

/// The second-factor paths, matched by suffix likewise, longest first.
const MFA_PATHS: [(&str, Resource); 8] = [
    ("/auth/mfa/step-up/start", Resource::StepUpStart),
    ("/auth/passkeys/register/start", Resource::PasskeyStart),
    ("/auth/passkeys/register/finish", Resource::PasskeyFinish),
    ("/auth/mfa/totp/confirm", Resource::TotpConfirm),
    ("/auth/mfa/totp", Resource::Totp),
    ("/auth/mfa/recovery-codes", Resource::RecoveryCodes),
    ("/auth/mfa/step-up", Resource::StepUp),
    ("/auth/mfa", Resource::Mfa),
];

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `/auth/password`.
    Password,
    /// `/auth/mfa`: the caller's factors.
    Mfa,
    /// `/auth/mfa/totp`: start an enrolment (POST), turn TOTP off (DELETE).
    Totp,
    /// `/auth/mfa/totp/confirm`.
    TotpConfirm,
    /// `/auth/mfa/recovery-codes`.
    RecoveryCodes,
    /// `/auth/mfa/step-up`.
    StepUp,
    /// `/auth/mfa/step-up/start`: passkey options for a step-up.
    StepUpStart,
    /// `/auth/passkeys/register/start`.
    PasskeyStart,
    /// `/auth/passkeys/register/finish`.
    PasskeyFinish,
    /// `/auth/passkeys`: the caller's passkeys.
    Passkeys,
    /// `/auth/passkeys/{id}`, with the id as sent.
    Passkey(String),
    /// `/auth/identities`: the caller's identities at other providers.
    Identities,
    /// `/auth/identities/{id}`, with the id as sent.
    Identity(String),
    /// `/auth/identities/{provider}/link`: start linking a provider.
    IdentityLink(String),
    /// `/auth/sessions`.
    Sessions,
    /// `/auth/sessions/{id}`, with the id as sent (checked later, so a malformed id gets
    /// the same 404 as another user's).
    Session(String),
}

impl Resource {
    /// The resource a path names, by its suffix; `None` for any other path.
    pub fn from_path(path: &str) -> Option<Self> {
        if path.ends_with(PASSWORD_PATH) {
            return Some(Self::Password);
        }
        if let Some((_, resource)) = MFA_PATHS.iter().find(|(suffix, _)| path.ends_with(suffix)) {
            return Some(resource.clone());
        }
        if path.ends_with(PASSKEYS_PATH) {
            return Some(Self::Passkeys);
        }
        if path.ends_with(IDENTITIES_PATH) {
            return Some(Self::Identities);
        }
        if path.ends_with(SESSIONS_PATH) {
            return Some(Self::Sessions);
        }
        if let Some(provider) = path
            .strip_suffix("/link")
            .and_then(|rest| rest.rsplit_once('/'))
            .and_then(|(collection, provider)| (collection.ends_with(IDENTITIES_PATH) && !provider.is_empty()).then_some(provider))
        {
            return Some(Self::IdentityLink(provider.to_owned()));
        }
        let (collection, id) = path.rsplit_once('/')?;
        if id.is_empty() {
            return None;
        }
        if collection.ends_with(PASSKEYS_PATH) {
            return Some(Self::Passkey(id.to_owned()));
        }
        if collection.ends_with(IDENTITIES_PATH) {
            return Some(Self::Identity(id.to_owned()));
        }
        collection.ends_with(SESSIONS_PATH).then(|| Self::Session(id.to_owned()))
    }

    /// The methods it answers, for `Allow` and the preflight's `Access-Control-Allow-Methods`.
    fn allowed_methods(&self) -> &'static str {
        match self {
            Self::Password
            | Self::TotpConfirm
            | Self::RecoveryCodes
            | Self::StepUp
            | Self::StepUpStart
            | Self::PasskeyStart
            | Self::PasskeyFinish
            | Self::IdentityLink(_) => "POST, OPTIONS",
            Self::Mfa | Self::Passkeys | Self::Identities => "GET, OPTIONS",
            Self::Passkey(_) | Self::Identity(_) => "DELETE, OPTIONS",
            Self::Totp => "POST, DELETE, OPTIONS",
            Self::Sessions => "GET, OPTIONS",
            Self::Session(_) => "DELETE, OPTIONS",
        }
    }
}

/// The body of `POST /auth/password`.
#[derive(Deserialize)]
struct PasswordChange {
    current_password: SecretString,
    new_password: SecretString,
}

/// The body of the confirm and step-up endpoints.
#[derive(Deserialize)]
struct CodeBody {
    #[serde(flatten)]
    answer: AnswerFields,
    #[serde(default)]
    passkey_token: Option<String>,
}

/// The body of `POST /auth/passkeys/register/finish`.
#[derive(Deserialize)]
struct PasskeyRegistrationBody {
    passkey_token: String,
    credential: Box<webauthn_rs::prelude::RegisterPublicKeyCredential>,
    #[serde(default)]
    name: Option<String>,
}

/// The answer of `GET /auth/passkeys`.
#[derive(serde::Serialize)]
struct PasskeyList {
    passkeys: Vec<crate::passkeys::PasskeyView>,
}

/// The body of `POST /auth/identities/{provider}/link`.
#[derive(Deserialize)]
struct LinkBody {
    return_to: String,
}

/// The answer of `GET /auth/identities`.
#[derive(serde::Serialize)]
struct IdentityList {
    identities: Vec<crate::service::federation::IdentityView>,
}

/// Recovery codes, shown once.
#[derive(serde::Serialize)]
struct RecoveryCodes {
    recovery_codes: Vec<String>,
}

/// The account endpoints over the public keys and the account use cases.
pub struct Account {
    tokens: AccessTokens,
    keys: TrustedKeys,
    clock: Arc<dyn Clock>,
    policy: HttpPolicy,
    service: AccountService,
    binding: BrowserBinding,
}

impl Account {
    /// The endpoints for `config`, verifying with `keys` (the authorizer's: deployed
    /// `AUTH_PUBLIC_JWKS`, then the public store; never a private key).
    pub fn new(
        config: &Config,
        keys: TrustedKeys,
        users: Arc<dyn UserStore>,
        sessions: Arc<dyn SessionStore>,
        factors: Arc<dyn FactorStore>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            tokens: AccessTokens::new(config),
            keys,
            service: AccountService::new(config, users, sessions, factors, clock.clone()),
            clock,
            policy: HttpPolicy::new(config),
            binding: BrowserBinding::new(config),
        }
    }

    /// Passkeys on (`WEBAUTHN_RP_ID` set).
    pub fn with_passkeys(mut self, passkeys: Option<crate::passkeys::Passkeys>) -> Self {
        self.service = self.service.with_passkeys(passkeys);
        self
    }

    /// Federation on (`OAUTH_PROVIDERS` set): the caller may link a provider.
    pub fn with_federation(mut self, federation: Option<crate::service::federation::Federation>) -> Self {
        self.service = self.service.with_federation(federation);
        self
    }

    /// Identities on: listing and unlinking the caller's identities at other providers.
    pub fn with_identities(mut self, identities: Option<Arc<dyn crate::store::IdentityStore>>) -> Self {
        self.service = self.service.with_identities(identities);
        self
    }

    /// The keys it trusts, for warming the store at cold start.
    pub fn keys(&self) -> &TrustedKeys {
        &self.keys
    }

    /// Answers one request: the Origin, path, method and size rules, then the bearer, then
    /// the endpoint; every failure is an answer from the error table, never a 500.
    pub async fn respond(&self, request: &Request) -> Response<Body> {
        let allowed_origin = self.policy.allowed_origin(request.headers());
        let resource = Resource::from_path(request.uri().path());
        let mut response = match self.check(request, allowed_origin, resource.as_ref()) {
            Err(e) => error_response(&e),
            Ok(Some(preflight)) => preflight,
            Ok(None) => match self.handle(request, resource).await {
                Ok(response) => response,
                Err(e) => {
                    log_unavailable(&e);
                    error_response(&e)
                }
            },
        };
        let headers = response.headers_mut();
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(origin) = allowed_origin.and_then(|o| HeaderValue::from_str(o).ok()) {
            // SECURITY: echo only an allow-listed origin, never `*` with credentials.
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
        }
        response
    }

    /// Origin, path, method and size. `Ok(Some(_))` is a finished answer: a preflight, or a
    /// 405 with the `Allow` header.
    fn check(&self, request: &Request, allowed_origin: Option<&str>, resource: Option<&Resource>) -> Result<Option<Response<Body>>, AuthError> {
        let headers = request.headers();
        // SECURITY: CSRF defence: a browser request from a foreign origin is refused before
        // the bearer is read or anything is written.
        let cross_site = headers.get("sec-fetch-site").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
        if (headers.contains_key(header::ORIGIN) || cross_site) && allowed_origin.is_none() {
            return Err(AuthError::ForbiddenOrigin);
        }
        let resource = resource.ok_or(AuthError::NotFound)?;
        let allowed = match (resource, request.method()) {
            (_, &Method::OPTIONS) => {
                let mut response = empty_response(StatusCode::NO_CONTENT);
                if allowed_origin.is_some() {
                    let h = response.headers_mut();
                    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(resource.allowed_methods()));
                    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type"));
                    h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
                }
                return Ok(Some(response));
            }
            (
                Resource::Password
                | Resource::TotpConfirm
                | Resource::RecoveryCodes
                | Resource::StepUp
                | Resource::StepUpStart
                | Resource::PasskeyStart
                | Resource::PasskeyFinish
                | Resource::IdentityLink(_),
                &Method::POST,
            )
            | (Resource::Sessions | Resource::Mfa | Resource::Passkeys | Resource::Identities, &Method::GET)
            | (Resource::Totp, &Method::POST | &Method::DELETE)
            | (Resource::Session(_) | Resource::Passkey(_) | Resource::Identity(_), &Method::DELETE) => true,
            _ => false,
        };
        if !allowed {
            let mut response = error_response(&AuthError::MethodNotAllowed);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(resource.allowed_methods()));
            return Ok(Some(response));
        }
        if request.body().len() > MAX_BODY_BYTES {
            return Err(AuthError::PayloadTooLarge);
        }
        Ok(None)
    }

    async fn handle(&self, request: &Request, resource: Option<Resource>) -> Result<Response<Body>, AuthError> {
        let caller = self.authenticate(request.headers()).await?;
        match resource {
            Some(Resource::Password) => {
                let body: PasswordChange = json_body(request, "The body must be JSON with string fields current_password and new_password.")?;
                self.service
                    .change_password(&caller, &body.current_password, &body.new_password, &request_meta(request))
                    .await?;
                Ok(empty_response(StatusCode::NO_CONTENT))
            }
            Some(Resource::Sessions) => self.list(&caller).await,
            Some(Resource::Session(id)) => self.end(request, &caller, &id).await,
            Some(resource @ (Resource::Mfa | Resource::Totp | Resource::TotpConfirm | Resource::RecoveryCodes | Resource::StepUp)) => {
                self.mfa(request, &caller, resource).await
            }
            Some(resource @ (Resource::StepUpStart | Resource::PasskeyStart | Resource::PasskeyFinish | Resource::Passkeys | Resource::Passkey(_))) => {
                self.passkeys(request, &caller, resource).await
            }
            Some(Resource::Identities) => Ok(json_response(
                StatusCode::OK,
                &IdentityList {
                    identities: self.service.identities_of(&caller).await?,
                },
            )),
            Some(Resource::IdentityLink(provider)) => {
                let body: LinkBody = json_body(request, "The body must be JSON with a string field return_to.")?;
                // SECURITY: back only to an allowed origin, as a sign-in's start.
                if !self.binding.is_allowed_return(&body.return_to) {
                    return Err(AuthError::InvalidRequest("return_to must be a URL on an allowed origin."));
                }
                let start = self.service.start_link(&caller, &provider, &body.return_to).await?;
                let mut response = json_response(StatusCode::OK, &serde_json::json!({ "url": start.location }));
                let cookie = self.binding.ceremony_cookie(&start.browser_token, OAUTH_CEREMONY_TTL);
                append_header(&mut response, header::SET_COOKIE, &cookie);
                Ok(response)
            }
            Some(Resource::Identity(id)) => match self.service.unlink_identity(&caller, &id, &request_meta(request)).await? {
                true => Ok(empty_response(StatusCode::NO_CONTENT)),
                false => Err(AuthError::NotFound),
            },
            None => Err(AuthError::NotFound),
        }
    }

    /// The second-factor endpoints (`service::mfa`).
    async fn mfa(&self, request: &Request, caller: &Caller, resource: Resource) -> Result<Response<Body>, AuthError> {
        let meta = request_meta(request);
        match (resource, request.method() == Method::DELETE) {
            (Resource::Mfa, _) => Ok(json_response(StatusCode::OK, &self.service.mfa_status(caller).await?)),
            (Resource::Totp, false) => Ok(json_response(StatusCode::OK, &self.service.start_totp(caller).await?)),
            (Resource::Totp, true) => {
                self.service.disable_totp(caller, &meta).await?;
                Ok(empty_response(StatusCode::NO_CONTENT))
            }
            (Resource::TotpConfirm, _) => {
                let body: CodeBody = json_body(request, "The body must be JSON with a string field code.")?;
                let FactorAnswer::Totp(code) = body.answer.answer()? else {
                    return Err(AuthError::InvalidRequest("Confirm with a code from the app."));
                };
                let codes = self.service.confirm_totp(caller, &code, &meta).await?;
                Ok(json_response(StatusCode::OK, &RecoveryCodes { recovery_codes: codes }))
            }
            (Resource::RecoveryCodes, _) => {
                let codes = self.service.regenerate_recovery_codes(caller, &meta).await?;
                Ok(json_response(StatusCode::OK, &RecoveryCodes { recovery_codes: codes }))
            }
            (Resource::StepUp, _) => {
                let body: CodeBody = json_body(
                    request,
                    "The body must be JSON with one of code, recovery_code and webauthn (with passkey_token).",
                )?;
                self.service
                    .step_up(caller, &body.answer.answer()?, body.passkey_token.as_deref(), &meta)
                    .await?;
                Ok(empty_response(StatusCode::NO_CONTENT))
            }
            _ => Err(AuthError::NotFound),
        }
    }

    /// The passkey endpoints (`service::passkeys`).
    async fn passkeys(&self, request: &Request, caller: &Caller, resource: Resource) -> Result<Response<Body>, AuthError> {
        let meta = request_meta(request);
        match resource {
            Resource::PasskeyStart => Ok(json_response(StatusCode::OK, &self.service.start_passkey_registration(caller).await?)),
            Resource::StepUpStart => Ok(json_response(StatusCode::OK, &self.service.start_passkey_step_up(caller).await?)),
            Resource::PasskeyFinish => {
                let body: PasskeyRegistrationBody = json_body(request, "The body must be JSON with passkey_token, credential and an optional name.")?;
                let view = self
                    .service
                    .finish_passkey_registration(caller, &body.passkey_token, &body.credential, body.name.as_deref(), &meta)
                    .await?;
                Ok(json_response(StatusCode::CREATED, &view))
            }
            Resource::Passkeys => Ok(json_response(
                StatusCode::OK,
                &PasskeyList {
                    passkeys: self.service.passkeys_of(caller).await?,
                },
            )),
            Resource::Passkey(id) => match self.service.delete_passkey(caller, &id, &meta).await? {
                true => Ok(empty_response(StatusCode::NO_CONTENT)),
                false => Err(AuthError::NotFound),
            },
            _ => Err(AuthError::NotFound),
        }
    }

    /// The caller of a request: one well-formed bearer token that verifies as the
    /// authorizer verifies it, then its session and user (see [`AccountService::caller`]).
    /// Every refusal is the same 401 `invalid_token`; only a dependency failure is a 503.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, AuthError> {
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        // SECURITY: exactly one Authorization header; two are refused, never one picked.
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(AuthError::InvalidToken);
        };
        let token = value.to_str().ok().and_then(bearer_token).ok_or(AuthError::InvalidToken)?;
        let token_header = AccessTokenHeader::read(token).map_err(|_| AuthError::InvalidToken)?;
        let keys = self.keys.for_kid(&token_header.kid).await?;
        // SECURITY: the authorizer's verification: pinned algorithm, typ, iss, aud, exp, ...
        let claims = self
            .tokens
            .verify(&keys, token, &token_header, self.clock.now())
            .map_err(|_| AuthError::InvalidToken)?;
        self.service.caller(&claims.sub, &claims.sid).await
    }

    async fn list(&self, caller: &Caller) -> Result<Response<Body>, AuthError> {
        Ok(json_response(StatusCode::OK, &self.service.sessions_of(caller).await?))
    }

    async fn end(&self, request: &Request, caller: &Caller, id: &str) -> Result<Response<Body>, AuthError> {
        if !self.service.end_session(caller, id, &request_meta(request)).await? {
            return Err(AuthError::NotFound);
        }
        let mut response = empty_response(StatusCode::NO_CONTENT);
        // The browser's refresh cookie belongs to the session just ended: clear it, as logout does.
        if id == caller.session.session_id.as_str() {
            self.policy.clear_cookie(&mut response);
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use lambda_http::http;
    use serde_json::{Value, json};

    use super::*;
    use crate::keys::{KeyCache, PublicKeys};
    use crate::service::IssuedTokens;
    use std::time::Duration;

    use crate::password::MAX_PASSWORD_BYTES;
    use crate::service::account::{ENDED_BY_PASSWORD_CHANGE, ENDED_BY_USER, MAX_LISTED_SESSIONS};
    use crate::store::{FAN_OUT_DEADLINE, SessionRecord, UserStore};
    use crate::testing::{ALICE, StaticKeys, TestBed, capture_logs, config, public_keys};
    use crate::tokens::SessionId;

    struct Bed {
        bed: TestBed,
        account: Account,
        public_store: Arc<StaticKeys<PublicKeys>>,
    }

    fn bed() -> Bed {
        let bed = TestBed::new(config());
        let public_store = Arc::new(StaticKeys::<PublicKeys>::public());
        let keys = TrustedKeys::new(Some(public_keys()), KeyCache::new(public_store.clone(), bed.clock.clone(), 300));
        let account = Account::new(
            &bed.config,
            keys,
            bed.users.clone(),
            bed.sessions.clone(),
            bed.factors.clone(),
            bed.clock.clone(),
        );
        Bed { bed, account, public_store }
    }

    async fn login(bed: &Bed) -> IssuedTokens {
        bed.bed
            .service
            .login(ALICE.0, ALICE.1.to_owned().into(), &Default::default())
            .await
            .unwrap()
            .signed()
            .unwrap()
    }

    fn request(method: &str, path: &str, bearer: Option<&str>, origin: Option<&str>) -> Request {
        let mut builder = http::Request::builder().method(method).uri(format!("https://auth.test{path}"));
        if let Some(token) = bearer {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        builder.body(Body::Empty).unwrap()
    }

    async fn call(bed: &Bed, method: &str, path: &str, bearer: Option<&str>) -> Response<Body> {
        bed.account.respond(&request(method, path, bearer, None)).await
    }

    /// `POST /auth/password` with `current` and `new`, as JSON.
    async fn change(bed: &Bed, token: &str, current: &str, new: &str) -> Response<Body> {
        let mut request = request("POST", "/auth/password", Some(token), None);
        request.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        *request.body_mut() = Body::Text(json!({"current_password": current, "new_password": new}).to_string());
        bed.account.respond(&request).await
    }

    async fn refreshes(bed: &Bed, issued: &IssuedTokens) -> bool {
        bed.bed.service.refresh(Some(&issued.refresh.encode()), &Default::default()).await.is_ok()
    }

    async fn logs_in_with(bed: &Bed, password: &str) -> bool {
        bed.bed.service.login(ALICE.0, password.to_owned().into(), &Default::default()).await.is_ok()
    }

    const NEW_PASSWORD: &str = "quartz lantern orbit meadow";

    fn body(response: &Response<Body>) -> Value {
        serde_json::from_slice(response.body().as_ref()).unwrap_or(Value::Null)
    }

    fn sid(issued: &IssuedTokens) -> SessionId {
        issued.refresh.session_id.clone()
    }

    #[test]
    fn paths_match_by_suffix_and_nothing_else() {
        for path in ["/auth/sessions", "/prod/auth/sessions", "/lambda-url/account/auth/sessions"] {
            assert_eq!(Resource::from_path(path), Some(Resource::Sessions), "{path}");
        }
        assert_eq!(
            Resource::from_path("/lambda-url/account/auth/sessions/abc"),
            Some(Resource::Session("abc".into()))
        );
        for path in ["/", "/auth/sessions/", "/auth/sessions/a/b", "/auth/session", "/auth/login", "/auth/sessionsx"] {
            assert_eq!(Resource::from_path(path), None, "{path}");
        }
        // Identities: the collection, one by id, and a provider's link.
        assert_eq!(Resource::from_path("/prod/auth/identities"), Some(Resource::Identities));
        assert_eq!(Resource::from_path("/auth/identities/aGk"), Some(Resource::Identity("aGk".into())));
        assert_eq!(
            Resource::from_path("/lambda-url/account/auth/identities/google/link"),
            Some(Resource::IdentityLink("google".into()))
        );
        for path in ["/auth/identities//link", "/auth/link", "/auth/sessions/x/link", "/auth/identities/a/b"] {
            assert_eq!(Resource::from_path(path), None, "{path}");
        }
    }

    #[tokio::test]
    async fn listing_shows_the_callers_live_sessions_newest_first_with_current_marked() {
        let bed = bed();
        let first = login(&bed).await;
        bed.bed.clock.advance(10);
        let second = login(&bed).await;
        bed.bed.clock.advance(10);
        let ended = login(&bed).await;
        bed.bed.service.logout(Some(&ended.refresh.encode()), false, &Default::default()).await.unwrap();
        // Another user's session is never listed.
        let mut bob = UserStore::get(&*bed.bed.users, ALICE.0).await.unwrap().unwrap();
        bob.username = "bob@example.com".into();
        bob.user_id = "user-bob".into();
        bed.bed.users.put(bob);
        bed.bed
            .service
            .login("bob@example.com", ALICE.1.to_owned().into(), &Default::default())
            .await
            .unwrap()
            .signed()
            .unwrap();

        let response = call(&bed, "GET", "/auth/sessions", Some(&first.access.token)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        let listed = body(&response)["sessions"].as_array().unwrap().clone();
        let ids: Vec<&str> = listed.iter().map(|s| s["session_id"].as_str().unwrap()).collect();
        assert_eq!(ids, [sid(&second).as_str(), sid(&first).as_str()]);
        assert_eq!(listed[0]["current"], false);
        assert_eq!(listed[1]["current"], true);
        let stored = bed.bed.sessions.stored(&sid(&first)).unwrap();
        assert_eq!(
            listed[1],
            json!({
                "session_id": sid(&first).as_str(),
                "created_at": stored.created_at,
                "last_used_at": stored.rotated_at,
                "expires_at": stored.expires_at.min(stored.absolute_expires_at),
                "user_agent": null,
                "source_ip": null,
                "current": true,
            })
        );
        let text = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        assert!(!text.contains(&first.refresh.encode()) && !text.contains("token_hash"), "{text}");
    }

    #[tokio::test]
    async fn a_change_whose_session_ended_or_whose_user_was_disabled_during_the_check_writes_nothing() {
        for disable in [false, true] {
            let bed = bed();
            let caller = login(&bed).await;
            let sessions = bed.bed.sessions.clone();
            let ended = sid(&caller);
            // While the current password is being checked: the session is ended, or the
            // user disabled (which bumps the epoch).
            bed.bed.users.on_reserve(move |users| {
                if disable {
                    let mut user = futures_util::FutureExt::now_or_never(UserStore::get(users, ALICE.0)).unwrap().unwrap().unwrap();
                    user.disabled = true;
                    user.session_epoch += 1;
                    users.put(user);
                } else {
                    let mut session = sessions.stored(&ended).unwrap();
                    session.revoked_at = Some(session.created_at);
                    sessions.put(session);
                }
            });
            let before = UserStore::get(&*bed.bed.users, ALICE.0).await.unwrap().unwrap().password_hash;
            let answer = change(&bed, &caller.access.token, ALICE.1, NEW_PASSWORD).await;
            assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "disable: {disable}");
            let user = UserStore::get(&*bed.bed.users, ALICE.0).await.unwrap().unwrap();
            assert_eq!(user.password_hash, before, "nothing written (disable: {disable})");
            let expected_epoch = if disable { 1 } else { 0 };
            assert_eq!(user.session_epoch, expected_epoch, "no bump of its own (disable: {disable})");
            assert_eq!(
                bed.bed.sessions.stored(&sid(&caller)).unwrap().session_epoch,
                Some(0),
                "the session did not move"
            );
        }
    }

    #[tokio::test]
    async fn a_listing_of_250_sessions_reads_only_the_newest_hundred_and_one() {
        let bed = bed();
        let caller = login(&bed).await;
        let template = bed.bed.sessions.stored(&sid(&caller)).unwrap();
        for i in 1..250 {
            bed.bed.sessions.put(SessionRecord {
                session_id: SessionId::generate(),
                created_at: template.created_at - i,
                ..template.clone()
            });
        }
        let user = UserStore::get(&*bed.bed.users, ALICE.0).await.unwrap().unwrap();
        let gets_before = bed.bed.sessions.gets();
        let listed = bed
            .account
            .service
            .sessions_of(&Caller {
                session: template.clone(),
                user,
            })
            .await
            .unwrap();
        assert_eq!(bed.bed.sessions.listings(), 1, "one bounded listing");
        assert_eq!(
            bed.bed.sessions.gets() - gets_before,
            MAX_LISTED_SESSIONS,
            "one read per listed session, no more"
        );
        assert!(listed.more, "the user has older sessions");
        let listed = listed.sessions;
        assert_eq!(listed.len(), MAX_LISTED_SESSIONS);
        assert!(listed[0].current, "the caller's session is the newest");
        assert!(listed.windows(2).all(|w| w[0].created_at > w[1].created_at), "newest first");
        assert_eq!(listed.last().unwrap().created_at, template.created_at - (MAX_LISTED_SESSIONS as u64 - 1));
    }

    #[tokio::test]
    async fn changing_the_password_ends_every_other_session_and_keeps_the_callers() {
        let bed = bed();
        let caller = login(&bed).await;
        let others = [login(&bed).await, login(&bed).await];
        bed.bed.clock.advance(5);
        let response = change(&bed, &caller.access.token, ALICE.1, NEW_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT, "{:?}", body(&response));

        let user = UserStore::get(&*bed.bed.users, ALICE.0).await.unwrap().unwrap();
        assert_eq!(user.password_changed_at, bed.bed.clock.now());
        assert_eq!(user.session_epoch, 1, "bumped");
        assert_eq!(
            bed.bed.sessions.stored(&sid(&caller)).unwrap().session_epoch,
            Some(1),
            "the caller's session moved with it"
        );
        for other in &others {
            let stored = bed.bed.sessions.stored(&sid(other)).unwrap();
            assert_eq!(
                stored.revoke_reason.as_deref(),
                Some(ENDED_BY_PASSWORD_CHANGE),
                "revoked at once, not only at refresh"
            );
            assert!(!refreshes(&bed, other).await);
        }
        // The caller's session goes on, through more than one refresh.
        bed.bed.clock.advance(1);
        let next = bed.bed.service.refresh(Some(&caller.refresh.encode()), &Default::default()).await.unwrap();
        assert!(refreshes(&bed, &next).await);
        let listed = call(&bed, "GET", "/auth/sessions", Some(&next.access.token)).await;
        let ids: Vec<Value> = body(&listed)["sessions"].as_array().unwrap().iter().map(|s| s["session_id"].clone()).collect();
        assert_eq!(ids, [json!(sid(&caller).as_str())]);
        // The old password is gone, the new one logs in, in the very second of the change.
        assert!(!logs_in_with(&bed, ALICE.1).await);
        assert!(logs_in_with(&bed, NEW_PASSWORD).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_with_5000_other_sessions_answers_within_the_function_timeout_and_ends_them_all() {
        let bed = bed();
        let caller = login(&bed).await;
        let template = bed.bed.sessions.stored(&sid(&caller)).unwrap();
        let others: Vec<SessionId> = (1..=5_000)
            .map(|i| {
                let id = SessionId::generate();
                bed.bed.sessions.put(SessionRecord {
                    session_id: id.clone(),
                    created_at: template.created_at - i,
                    ..template.clone()
                });
                id
            })
            .collect();
        // 10 ms a revocation, 8 at a time: 6.25 s for all of them, more than the 5 s timeout.
        bed.bed.sessions.set_revoke_delay_ms(10);
        let (_guard, logs) = capture_logs();
        let started = tokio::time::Instant::now();
        let answer = change(&bed, &caller.access.token, ALICE.1, NEW_PASSWORD).await;
        let took = started.elapsed();
        assert_eq!(answer.status(), StatusCode::NO_CONTENT);
        assert!(
            took >= FAN_OUT_DEADLINE && took < Duration::from_secs(5),
            "answered after {took:?} (tokio's paused clock)"
        );
        let revoked = others.iter().filter(|id| bed.bed.sessions.stored(id).unwrap().revoked_at.is_some()).count();
        assert!(revoked > 0 && revoked < others.len(), "stopped at the deadline after {revoked}");
        assert!(logs.text().contains("stopped at its deadline"), "{}", logs.text());
        // The epoch bump ended every one of them, revoked item or not.
        let user = UserStore::get(&*bed.bed.users, ALICE.0).await.unwrap().unwrap();
        assert!(others.iter().all(|id| !user.accepts(&bed.bed.sessions.stored(id).unwrap())));
    }

    #[tokio::test]
    async fn a_login_that_read_the_old_hash_during_the_change_is_ended_whenever_it_finishes() {
        let bed = bed();
        let caller = login(&bed).await;
        let keep = bed.bed.sessions.stored(&sid(&caller)).unwrap();
        // The change took its time a second before a second login started; that login reads
        // the user (old hash, epoch 0), the change's transaction commits while it checks the
        // password, and it then writes its session.
        let clock = bed.bed.clock.clone();
        bed.bed.users.on_reserve(move |users| {
            let hash = users.peek(ALICE.0).unwrap().password_hash;
            let change = users.change_password(ALICE.0, &hash, "$argon2id$new", &keep, clock.now() - 1);
            assert!(futures_util::FutureExt::now_or_never(change).unwrap().unwrap());
        });
        let raced = login(&bed).await;
        let user = UserStore::get(&*bed.bed.users, ALICE.0).await.unwrap().unwrap();
        let raced_session = bed.bed.sessions.stored(&sid(&raced)).unwrap();
        assert!(raced_session.created_at > user.password_changed_at, "a clock rule would let it live");
        assert!(!user.accepts(&raced_session), "the login during the change is ended");
        assert!(!refreshes(&bed, &raced).await);
        assert!(user.accepts(&bed.bed.sessions.stored(&sid(&caller)).unwrap()), "the caller's session lives");
    }

    #[tokio::test]
    async fn a_change_that_lost_the_race_to_another_is_401_and_writes_nothing() {
        let bed = bed();
        let caller = login(&bed).await;
        let other = login(&bed).await;
        // Another change lands after this one read the user and before it writes.
        bed.bed.users.on_reserve(|users| {
            let mut user = futures_util::FutureExt::now_or_never(UserStore::get(users, ALICE.0)).unwrap().unwrap().unwrap();
            user.password_hash = "$argon2id$the-other-change".into();
            users.put(user);
        });
        let response = change(&bed, &caller.access.token, ALICE.1, NEW_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body(&response)["error"], "invalid_credentials");
        let user = UserStore::get(&*bed.bed.users, ALICE.0).await.unwrap().unwrap();
        assert_eq!(user.password_hash, "$argon2id$the-other-change");
        assert_eq!(user.session_epoch, 0, "no bump");
        assert_eq!(
            bed.bed.sessions.stored(&sid(&caller)).unwrap().session_epoch,
            Some(0),
            "the caller's session did not move"
        );
        assert!(bed.bed.sessions.stored(&sid(&other)).unwrap().revoked_at.is_none(), "nothing revoked");
    }

    #[tokio::test]
    async fn the_listing_leaves_out_sessions_the_user_no_longer_accepts() {
        let bed = bed();
        let before = login(&bed).await;
        // An epoch bump between the two whose fan-out never reached the older item.
        assert!(bed.bed.users.bump_session_epoch(ALICE.0, 0).await.unwrap());
        let caller = login(&bed).await;
        assert!(bed.bed.sessions.stored(&sid(&before)).unwrap().revoked_at.is_none());
        let listed = call(&bed, "GET", "/auth/sessions", Some(&caller.access.token)).await;
        let ids: Vec<Value> = body(&listed)["sessions"].as_array().unwrap().iter().map(|s| s["session_id"].clone()).collect();
        assert_eq!(ids, [json!(sid(&caller).as_str())]);
    }

    #[tokio::test]
    async fn an_operators_later_password_change_ends_the_session_that_changed_it_before() {
        let bed = bed();
        let caller = login(&bed).await;
        bed.bed.clock.advance(5);
        assert_eq!(change(&bed, &caller.access.token, ALICE.1, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
        bed.bed.clock.advance(5);
        assert!(bed.bed.users.set_password(ALICE.0, "$argon2id$operator", bed.bed.clock.now()).await.unwrap());
        assert!(!refreshes(&bed, &caller).await);
    }

    #[tokio::test]
    async fn a_wrong_current_password_is_401_and_counts_toward_the_login_throttle() {
        let bed = bed();
        let caller = login(&bed).await;
        let other = login(&bed).await;
        let stored_hash = UserStore::get(&*bed.bed.users, ALICE.0).await.unwrap().unwrap().password_hash;
        for attempt in 1..=5 {
            let response = change(&bed, &caller.access.token, "not the password at all", NEW_PASSWORD).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
            assert_eq!(body(&response)["error"], "invalid_credentials");
        }
        assert_eq!(bed.bed.users.throttle(ALICE.0).attempts, 5);
        assert!(bed.bed.users.throttle(ALICE.0).throttled_until > bed.bed.clock.now());
        // The sixth guess is refused before any hashing, even with the right password, and
        // login is throttled alike: one counter.
        let throttled = change(&bed, &caller.access.token, ALICE.1, NEW_PASSWORD).await;
        assert_eq!(throttled.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(!logs_in_with(&bed, ALICE.1).await);
        let user = UserStore::get(&*bed.bed.users, ALICE.0).await.unwrap().unwrap();
        assert_eq!(user.password_hash, stored_hash, "nothing changed");
        assert!(refreshes(&bed, &other).await, "no other session ended");
    }

    #[tokio::test]
    async fn a_weak_or_oversized_new_password_is_400_naming_the_rule_and_spends_no_attempt() {
        let bed = bed();
        let caller = login(&bed).await;
        for (new, rule) in [
            ("short", "at least 12 characters"),
            ("password1234", "too easy to guess"),
            (ALICE.0, "must not be the username"),
            (&"x".repeat(MAX_PASSWORD_BYTES + 1), "at most 1024 bytes"),
        ] {
            let response = change(&bed, &caller.access.token, ALICE.1, new).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{rule}");
            let answer = body(&response);
            assert_eq!(answer["error"], "weak_password", "{rule}");
            let message = answer["message"].as_str().unwrap();
            assert!(message.contains(rule), "{message}");
            assert!(!message.contains(new), "the password is never echoed: {message}");
        }
        assert_eq!(bed.bed.users.throttle(ALICE.0).attempts, 0);
        assert!(logs_in_with(&bed, ALICE.1).await, "the password is unchanged");
    }

    #[tokio::test]
    async fn malformed_password_change_bodies_get_their_table_answers() {
        let bed = bed();
        let token = login(&bed).await.access.token;
        let mut plain = request("POST", "/auth/password", Some(&token), None);
        *plain.body_mut() = Body::Text(json!({"current_password": ALICE.1, "new_password": NEW_PASSWORD}).to_string());
        assert_eq!(bed.account.respond(&plain).await.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        for bad in [
            json!({"current_password": ALICE.1}),
            json!({"current_password": 1, "new_password": NEW_PASSWORD}),
            json!([]),
        ] {
            let mut request = request("POST", "/auth/password", Some(&token), None);
            request.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            *request.body_mut() = Body::Text(bad.to_string());
            let response = bed.account.respond(&request).await;
            assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
            assert_eq!(body(&response)["error"], "invalid_request");
        }
        let empty = change(&bed, &token, "", NEW_PASSWORD).await;
        assert_eq!(body(&empty)["error"], "invalid_request");
        // Without a valid bearer nothing is checked: no attempt spent.
        let anonymous = change(&bed, "not-a-token", "guess", NEW_PASSWORD).await;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(body(&anonymous)["error"], "invalid_token");
        assert_eq!(bed.bed.users.throttle(ALICE.0).attempts, 0);
    }

    #[tokio::test]
    async fn ending_another_users_or_an_unknown_session_is_one_404_and_writes_nothing() {
        let bed = bed();
        let alice = login(&bed).await;
        let other = login(&bed).await;
        let mut record = bed.bed.sessions.stored(&sid(&other)).unwrap();
        record.user_id = "user-mallory".into();
        bed.bed.sessions.put(record);
        let writes = bed.bed.sessions.writes();
        let unknown = SessionId::generate();
        let mut answers = Vec::new();
        for id in [sid(&other).as_str(), unknown.as_str(), "not-a-session-id"] {
            let response = call(&bed, "DELETE", &format!("/auth/sessions/{id}"), Some(&alice.access.token)).await;
            answers.push((response.status(), body(&response)));
        }
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        assert_eq!(answers[0].0, StatusCode::NOT_FOUND);
        assert_eq!(answers[0].1["error"], "not_found");
        assert_eq!(bed.bed.sessions.writes(), writes, "nothing revoked");
        assert!(bed.bed.sessions.stored(&sid(&other)).unwrap().revoked_at.is_none());
    }

    #[tokio::test]
    async fn ending_an_own_session_revokes_it_and_only_the_current_one_clears_the_cookie() {
        let bed = bed();
        let caller = login(&bed).await;
        let other = login(&bed).await;
        let response = call(&bed, "DELETE", &format!("/auth/sessions/{}", sid(&other)), Some(&caller.access.token)).await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        let revoked = bed.bed.sessions.stored(&sid(&other)).unwrap();
        assert_eq!(revoked.revoke_reason.as_deref(), Some(ENDED_BY_USER));
        assert!(bed.bed.service.refresh(Some(&other.refresh.encode()), &Default::default()).await.is_err());
        // A second time: no longer live, the same 404.
        let again = call(&bed, "DELETE", &format!("/auth/sessions/{}", sid(&other)), Some(&caller.access.token)).await;
        assert_eq!(again.status(), StatusCode::NOT_FOUND);

        let own = call(&bed, "DELETE", &format!("/auth/sessions/{}", sid(&caller)), Some(&caller.access.token)).await;
        assert_eq!(own.status(), StatusCode::NO_CONTENT);
        let cookie = own.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.starts_with("refresh_token=;") && cookie.contains("Max-Age=0"), "{cookie}");
        // Its token is refused from now on.
        let after = call(&bed, "GET", "/auth/sessions", Some(&caller.access.token)).await;
        assert_eq!(after.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_token_is_refused_alike_when_missing_forged_expired_or_its_session_is_not_live() {
        let bed = bed();
        let issued = login(&bed).await;
        let token = issued.access.token.clone();
        let (head, rest) = token.split_once('.').unwrap();
        let tampered = format!("{head}.{}", rest.replace('.', ".A"));
        let mut cases: Vec<(&str, Request)> = vec![
            ("missing", request("GET", "/auth/sessions", None, None)),
            ("forged", request("GET", "/auth/sessions", Some(&tampered), None)),
            ("garbage", request("GET", "/auth/sessions", Some("abc"), None)),
        ];
        let mut basic = request("GET", "/auth/sessions", None, None);
        basic.headers_mut().insert(header::AUTHORIZATION, HeaderValue::from_static("Basic YTpi"));
        cases.push(("other scheme", basic));
        let mut two = request("GET", "/auth/sessions", Some(&token), None);
        two.headers_mut()
            .append(header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        cases.push(("two headers", two));
        for (case, request) in cases {
            let response = bed.account.respond(&request).await;
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{case}");
            assert_eq!(body(&response)["error"], "invalid_token", "{case}");
        }
        assert_eq!(call(&bed, "GET", "/auth/sessions", Some(&token)).await.status(), StatusCode::OK);

        // The session revoked (logout): refused at once, long before the token's exp.
        let session = bed.bed.sessions.stored(&sid(&issued)).unwrap();
        let mut revoked = session.clone();
        revoked.revoked_at = Some(bed.bed.clock.now());
        bed.bed.sessions.put(revoked);
        assert_eq!(call(&bed, "GET", "/auth/sessions", Some(&token)).await.status(), StatusCode::UNAUTHORIZED);
        // Another user's session id under this user's token (cannot be signed, but the
        // session item must agree with sub anyway).
        let mut foreign = session.clone();
        foreign.user_id = "user-mallory".into();
        bed.bed.sessions.put(foreign);
        assert_eq!(call(&bed, "GET", "/auth/sessions", Some(&token)).await.status(), StatusCode::UNAUTHORIZED);
        // Past the idle expiry: dead although TTL has not deleted the item.
        let mut idle = session.clone();
        idle.expires_at = bed.bed.clock.now();
        bed.bed.sessions.put(idle);
        assert_eq!(call(&bed, "GET", "/auth/sessions", Some(&token)).await.status(), StatusCode::UNAUTHORIZED);
        bed.bed.sessions.put(session);
        assert_eq!(call(&bed, "GET", "/auth/sessions", Some(&token)).await.status(), StatusCode::OK);
        // The token expired.
        bed.bed.clock.advance(bed.bed.config.access_token_ttl + 31);
        assert_eq!(call(&bed, "GET", "/auth/sessions", Some(&token)).await.status(), StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn a_token_is_refused_at_once_when_its_user_no_longer_accepts_the_session() {
        let bed = bed();
        let issued = login(&bed).await;
        bed.bed.clock.advance(1);
        assert_eq!(call(&bed, "GET", "/auth/sessions", Some(&issued.access.token)).await.status(), StatusCode::OK);
        // Disabled (its epoch moves), or logged out everywhere whose fan-out did not reach
        // this item: the session item still says live, the user item does not.
        assert!(bed.bed.users.set_disabled(ALICE.0, true).await.unwrap());
        assert!(bed.bed.sessions.stored(&sid(&issued)).unwrap().revoked_at.is_none());
        let answer = call(&bed, "GET", "/auth/sessions", Some(&issued.access.token)).await;
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
        assert!(bed.bed.users.set_disabled(ALICE.0, false).await.unwrap());
        let fresh = login(&bed).await;
        assert!(bed.bed.users.bump_session_epoch(ALICE.0, 1).await.unwrap());
        assert_eq!(
            call(&bed, "GET", "/auth/sessions", Some(&fresh.access.token)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }

    #[tokio::test]
    async fn foreign_origins_are_refused_before_anything_is_written_and_preflight_allows_delete() {
        let bed = bed();
        let caller = login(&bed).await;
        let other = login(&bed).await;
        let writes = bed.bed.sessions.writes();
        let path = format!("/auth/sessions/{}", sid(&other));
        let response = bed
            .account
            .respond(&request("DELETE", &path, Some(&caller.access.token), Some("https://evil.test")))
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert_eq!(body(&response)["error"], "forbidden_origin");
        assert!(response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert_eq!(bed.bed.sessions.writes(), writes);

        let allowed = bed.bed.config.allowed_origins[0].clone();
        let preflight = bed.account.respond(&request("OPTIONS", &path, None, Some(&allowed))).await;
        assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
        let h = preflight.headers();
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], allowed.as_str());
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_METHODS], "DELETE, OPTIONS");
        assert!(h[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap().contains("authorization"));
        let listing = bed.account.respond(&request("OPTIONS", "/auth/sessions", None, Some(&allowed))).await;
        assert_eq!(listing.headers()[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, OPTIONS");
    }

    #[tokio::test]
    async fn other_methods_paths_and_sizes_get_their_table_answers() {
        let bed = bed();
        let token = login(&bed).await.access.token;
        for (method, path, allow) in [
            ("POST", "/auth/sessions", "GET, OPTIONS"),
            ("DELETE", "/auth/sessions", "GET, OPTIONS"),
            ("GET", "/auth/password", "POST, OPTIONS"),
            ("GET", "/auth/sessions/abc", "DELETE, OPTIONS"),
        ] {
            let response = call(&bed, method, path, Some(&token)).await;
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(response.headers()[header::ALLOW], allow);
        }
        assert_eq!(call(&bed, "GET", "/auth/other", Some(&token)).await.status(), StatusCode::NOT_FOUND);
        let mut big = request("GET", "/auth/sessions", Some(&token), None);
        *big.body_mut() = Body::Text("x".repeat(MAX_BODY_BYTES + 1));
        assert_eq!(bed.account.respond(&big).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn keys_that_cannot_be_read_are_a_503_not_a_401() {
        let bed = bed();
        let token = login(&bed).await.access.token;
        let keys = TrustedKeys::new(None, KeyCache::new(bed.public_store.clone(), bed.bed.clock.clone(), 300));
        let account = Account::new(
            &bed.bed.config,
            keys,
            bed.bed.users.clone(),
            bed.bed.sessions.clone(),
            bed.bed.factors.clone(),
            bed.bed.clock.clone(),
        );
        bed.public_store.set_failing(true);
        let response = account.respond(&request("GET", "/auth/sessions", Some(&token), None)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
