//! Sign-in through another identity provider (OpenID Connect, authorization code with
//! PKCE): the start, which stores what the callback needs as a one-time ceremony bound to
//! the browser, and the callback, which checks it, exchanges the code, verifies the ID token
//! and finds, links or creates the user before starting a session as password login does.
//!
//! Identities are keyed by (issuer, subject), never by e-mail. An address links a new
//! identity to an existing user only when the provider asserts it verified it and the
//! operator trusts the provider for that (`trust_email`), and only into an account whose own
//! address is verified: an unverified or untrusted address never joins an account (the
//! pre-account-takeover).

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::constant_time;
use serde::{Deserialize, Serialize};

use super::account::{AccountService, Caller};
use super::{AuthService, IssuedTokens};
use crate::audit::{self, AuditEvent, RequestMeta};
use crate::claims::Authentication;
use crate::config::Signup;
use crate::error::AuthError;
use crate::federation::client::{Provider, ProviderError};
use crate::federation::id_token::{self, Expected};
use crate::federation::provider::ProviderKind;
use crate::links::LinkToken;
use crate::random::random_id;
use crate::store::{Ceremony, CeremonyPurpose, FactorStore, Identity, IdentityStore, UserRecord};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// How long a sign-in may stay at the provider (the ceremony's and the browser cookie's
/// lifetime).
pub const OAUTH_CEREMONY_TTL: u64 = 600;

/// The `amr` of a session started through another provider (RFC 8176 has no value for
/// it; `fed` is the one OpenID's federation drafts use).
pub const FEDERATED_AMR: &str = "fed";

/// Prefix of the username of a user created through a provider without an address we may
/// key it by: never an e-mail address, so never a sign-up's.
pub const FEDERATED_USERNAME_PREFIX: &str = "idp:";

/// Sign-in through other providers: on when `OAUTH_PROVIDERS` lists any.
pub struct Federation {
    providers: HashMap<String, Arc<Provider>>,
    identities: Arc<dyn IdentityStore>,
    /// Our callbacks' base (`OAUTH_CALLBACK_BASE`).
    callback_base: String,
    signup: Signup,
}

impl Federation {
    /// The providers, the identities' store, and the settings the flow reads.
    pub fn new(providers: Vec<Provider>, identities: Arc<dyn IdentityStore>, callback_base: &str, signup: Signup) -> Self {
        Self {
            providers: providers.into_iter().map(|p| (p.config.id.clone(), Arc::new(p))).collect(),
            identities,
            callback_base: callback_base.to_owned(),
            signup,
        }
    }

    /// The redirect URI registered at the provider for `provider`.
    pub fn redirect_uri(&self, provider: &str) -> String {
        format!("{}/{provider}/callback", self.callback_base)
    }
}

/// Why a federated sign-in failed: the `error` its redirect carries, and the reason the
/// audit log gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuthFailure {
    /// No such provider.
    UnknownProvider,
    /// The browser's ceremony is missing, used, expired, from another browser, or its
    /// `state` does not match.
    InvalidState,
    /// The user said no at the provider.
    AccessDenied,
    /// The provider answered with another error, or without a code.
    ProviderError,
    /// The provider could not be reached or its metadata or keys were not valid.
    ProviderUnavailable,
    /// The provider refused the code (used, expired, wrong PKCE verifier).
    CodeRejected,
    /// The ID token failed verification.
    InvalidIdToken,
    /// Sign-up is closed and no existing user has this identity or a trusted address.
    SignupClosed,
    /// The account is disabled, or its only second factor is a passkey and passkeys are off.
    SignInRefused,
    /// A link of an identity another user already has.
    IdentityInUse,
    /// The tables or keys could not be used.
    Unavailable,
}

impl OAuthFailure {
    /// The `error` value of the redirect back to the app.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownProvider => "unknown_provider",
            Self::InvalidState => "invalid_state",
            Self::AccessDenied => "access_denied",
            Self::ProviderError => "provider_error",
            Self::ProviderUnavailable => "provider_unavailable",
            Self::CodeRejected => "code_rejected",
            Self::InvalidIdToken => "invalid_id_token",
            Self::SignupClosed => "signup_closed",
            Self::SignInRefused => "sign_in_refused",
            Self::IdentityInUse => "identity_in_use",
            Self::Unavailable => "temporarily_unavailable",
        }
    }
}

/// A started sign-in: where to send the browser, and the cookie that binds the callback
/// to this browser.
#[derive(Debug)]
pub struct OAuthStart {
    /// The provider's authorization URL.
    pub location: String,
    /// The browser cookie's value: the ceremony's one-time token (only its hash is stored).
    pub browser_token: String,
}

/// What the callback brings back, as the query string carries it.
#[derive(Debug, Default, Deserialize)]
pub struct CallbackParams {
    /// The authorization code.
    pub code: Option<String>,
    /// Our `state`, echoed.
    pub state: Option<String>,
    /// The provider's error, when the user or the provider refused.
    pub error: Option<String>,
}

/// How a callback ended well.
#[derive(Debug)]
pub enum OAuthDone {
    /// Signed in: a new session.
    SignedIn(Box<IssuedTokens>),
    /// The identity is now linked to the signed-in user who asked.
    Linked,
    /// The user has a second factor: a login challenge, answered at `POST /auth/login/mfa`
    /// as a password login's is (the token travels in a cookie, never in the URL).
    MfaRequired {
        /// The challenge's one-time token.
        token: LinkToken,
        /// What it may be answered with: `totp`, `recovery_code`, `webauthn`.
        methods: Vec<&'static str>,
    },
}

/// What the ceremony keeps between start and callback (server-side, never sent).
#[derive(Serialize, Deserialize)]
struct Pending {
    provider: String,
    state: String,
    nonce: String,
    pkce_verifier: String,
    return_to: String,
}

impl AuthService {
    /// Federation on: the login function's sign-in through other providers.
    pub fn with_federation(mut self, federation: Option<Federation>) -> Self {
        self.federation = federation.map(Arc::new);
        self
    }

    /// The federation and the provider `id` names.
    fn provider(&self, id: &str) -> Result<(Arc<Federation>, Arc<Provider>), OAuthFailure> {
        let federation = self.federation.clone().ok_or(OAuthFailure::UnknownProvider)?;
        let provider = federation.providers.get(id).cloned().ok_or(OAuthFailure::UnknownProvider)?;
        Ok((federation, provider))
    }

    /// Starts a sign-in at a provider. `return_to` has been checked against
    /// `ALLOWED_ORIGINS` by the caller.
    pub async fn start_oauth(&self, provider_id: &str, return_to: &str) -> Result<OAuthStart, OAuthFailure> {
        let federation = self.federation.clone().ok_or(OAuthFailure::UnknownProvider)?;
        issue_ceremony(&federation, &*self.factors, provider_id, return_to, None, self.clock.now()).await
    }

    /// Finishes a sign-in or link at its callback. On failure, the `return_to` to send the
    /// browser back to when the ceremony was found (else the caller's default).
    pub async fn finish_oauth(
        &self,
        provider_id: &str,
        params: &CallbackParams,
        browser_token: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<(OAuthDone, String), (OAuthFailure, Option<String>)> {
        let (federation, provider) = self.provider(provider_id).map_err(|f| (f, None))?;
        let now = self.clock.now();
        // SECURITY: the ceremony is found by the browser's own cookie and used up before
        // anything else: a callback from another browser, or a second one, finds nothing.
        let hash = browser_token.and_then(LinkToken::parse).map(|t| t.hash());
        let ceremony = match hash {
            Some(hash) => self
                .factors
                .take_ceremony(&hash, CeremonyPurpose::OAuth, None, now)
                .await
                .map_err(|e| (store_failed(&e), None))?,
            None => None,
        };
        let Some((ceremony, pending)) = ceremony.and_then(|c| serde_json::from_str::<Pending>(&c.state).ok().map(|p| (c, p))) else {
            return Err((refused(meta, OAuthFailure::InvalidState, "oauth_state_unknown", None), None));
        };
        let back = Some(pending.return_to.clone());
        let state_matches = params
            .state
            .as_deref()
            .is_some_and(|state| constant_time::verify_slices_are_equal(state.as_bytes(), pending.state.as_bytes()).is_ok());
        if pending.provider != provider_id || !state_matches {
            return Err((refused(meta, OAuthFailure::InvalidState, "oauth_state_mismatch", None), back));
        }
        if let Some(error) = params.error.as_deref() {
            let failure = if error == "access_denied" {
                OAuthFailure::AccessDenied
            } else {
                OAuthFailure::ProviderError
            };
            return Err((refused(meta, failure, "oauth_provider_error", None), back));
        }
        let Some(code) = params.code.as_deref() else {
            return Err((refused(meta, OAuthFailure::ProviderError, "oauth_no_code", None), back));
        };
        let claims = match self.verified_claims(&federation, &provider, &pending, code, now).await {
            Ok(claims) => claims,
            Err((failure, reason)) => return Err((refused(meta, failure, &reason, None), back)),
        };
        let identity = Identity {
            issuer: provider.config.issuer.clone(),
            subject: claims.sub.clone(),
            provider: provider_id.to_owned(),
            owner: String::new(),
            user_id: String::new(),
            email: claims.email.clone(),
            created_at: now,
        };
        let store = |e: AuthError| (store_failed(&e), back.clone());
        let known = federation.identities.identity(&identity.issuer, &identity.subject).await.map_err(store)?;
        if let Some(owner) = ceremony.owner {
            return self
                .link_identity(&federation, identity, known, &owner, meta)
                .await
                .map(|()| (OAuthDone::Linked, pending.return_to.clone()))
                .map_err(|f| (f, back));
        }
        let trusted_address = claims.email.as_deref().filter(|_| claims.email_verified && provider.config.trust_email);
        let user = match known {
            Some(known) => self.users.get(&known.owner).await.map_err(store)?,
            None => self
                .new_identity_user(&federation, identity, trusted_address, now)
                .await
                .map_err(|f| (f, back.clone()))?,
        };
        let user = match user {
            Some(user) if user.is_present(now) && !user.disabled => user,
            other => {
                return Err((
                    refused(
                        meta,
                        OAuthFailure::SignInRefused,
                        "oauth_user_refused",
                        other.as_ref().map(|u| u.user_id.as_str()),
                    ),
                    back,
                ));
            }
        };
        // SECURITY: the provider's word never skips our second factor (its `amr` is not
        // trusted): the user answers a login challenge as after a password. Its token goes
        // into a cookie; the passkey request, which a redirect cannot carry, stays with the
        // challenge for `POST /auth/login/mfa/options`.
        let keys = self.keys.current().await.map_err(store)?;
        if let Some(factors) = self.factors.factors(&user.username).await.map_err(store)?.filter(|f| f.required()) {
            // Passkeys turned off (no `WEBAUTHN_RP_ID`) leave a passkey-only user no answer.
            if factors.offered_methods(self.passkeys.is_some()).is_empty() {
                return Err((refused(meta, OAuthFailure::SignInRefused, "oauth_no_usable_factor", Some(&user.user_id)), back));
            }
            let challenge = self.issue_login_challenge(&user, &factors, FEDERATED_AMR, now).await.map_err(store)?;
            audit::emit(AuditEvent::MfaChallenged, meta, Some(&user.user_id), None, Some("oauth"));
            return Ok((
                OAuthDone::MfaRequired {
                    token: challenge.token,
                    methods: challenge.methods,
                },
                pending.return_to,
            ));
        }
        let auth = Authentication {
            amr: vec![FEDERATED_AMR.to_owned()],
            auth_time: now,
        };
        let issued = self.start_session(&keys, &user, user.session_epoch, auth, meta, now).await.map_err(store)?;
        Ok((OAuthDone::SignedIn(Box::new(issued)), pending.return_to))
    }

    /// Exchanges the code and learns who signed in: from the ID token, verified (the keys
    /// fetched again once when it names a `kid` they lack), or from GitHub's API.
    async fn verified_claims(
        &self,
        federation: &Federation,
        provider: &Provider,
        pending: &Pending,
        code: &str,
        now: u64,
    ) -> Result<id_token::IdClaims, (OAuthFailure, String)> {
        let failed = |e: ProviderError| match e {
            ProviderError::Refused(cause) => {
                tracing::warn!(provider = %provider.config.id, %cause, "the provider refused the code");
                (OAuthFailure::CodeRejected, "oauth_code_rejected".to_owned())
            }
            ProviderError::Unavailable(cause) => {
                tracing::error!(provider = %provider.config.id, %cause, "the provider is unavailable");
                (OAuthFailure::ProviderUnavailable, "oauth_provider_unavailable".to_owned())
            }
        };
        let metadata = provider.metadata(now).await.map_err(failed)?;
        let tokens = provider
            .exchange(&metadata, &federation.redirect_uri(&provider.config.id), code, &pending.pkce_verifier)
            .await
            .map_err(failed)?;
        // SECURITY: GitHub has no ID token and no nonce: the access token was just obtained
        // by this server, for this browser's ceremony (state and PKCE), straight from the
        // token endpoint, so it is GitHub's answer about the user who consented.
        let token = match provider.config.kind {
            ProviderKind::Github => return provider.github_user(&tokens.access_token).await.map_err(failed),
            ProviderKind::Oidc => tokens
                .id_token
                .ok_or_else(|| failed(ProviderError::Refused("the token response has no ID token".into())))?,
        };
        let keys = provider.keys(&metadata, id_token::kid_of(&token).as_deref(), now).await.map_err(failed)?;
        let expected = Expected {
            issuer: &provider.config.issuer,
            client_id: &provider.config.client_id,
            nonce: &pending.nonce,
            now,
        };
        id_token::verify(&token, &keys, &expected).map_err(|refusal| (OAuthFailure::InvalidIdToken, refusal.as_str().to_owned()))
    }

    /// The user a first sign-in with `identity` signs in: the verified account with the
    /// trusted address (linked now), or a new user (keyed by that address when it is free,
    /// else by a new id).
    async fn new_identity_user(
        &self,
        federation: &Federation,
        identity: Identity,
        trusted_address: Option<&str>,
        now: u64,
    ) -> Result<Option<UserRecord>, OAuthFailure> {
        let holder = match trusted_address {
            Some(address) => self.users.get(address).await.map_err(|e| store_failed(&e))?,
            None => None,
        };
        // SECURITY: only an account that proved the same address joins; an unverified
        // sign-up holding it is left alone and the identity gets an account of its own.
        if let Some(holder) = holder.as_ref().filter(|u| u.is_present(now) && u.email_verified) {
            // A disabled account gets nothing linked: the caller refuses the sign-in.
            if holder.disabled {
                return Ok(Some(holder.clone()));
            }
            return match federation.identities.link(&identity.owned_by(holder)).await.map_err(|e| store_failed(&e))? {
                true => Ok(Some(holder.clone())),
                false => Err(OAuthFailure::Unavailable),
            };
        }
        if federation.signup == Signup::Closed {
            return Err(OAuthFailure::SignupClosed);
        }
        let user_id = uuid::Uuid::new_v4().to_string();
        let username = match (trusted_address, holder) {
            (Some(address), None) => address.to_owned(),
            _ => format!("{FEDERATED_USERNAME_PREFIX}{user_id}"),
        };
        // No password: password login fails for it as for a wrong one, after the same work.
        let user = UserRecord {
            password_changed_at: now,
            ..UserRecord::new(username, user_id, "", Vec::new())
        };
        match federation
            .identities
            .create_with_identity(&user, &identity.owned_by(&user))
            .await
            .map_err(|e| store_failed(&e))?
        {
            true => Ok(Some(user)),
            // The address or the identity was taken meanwhile (a sign-up, a second tab).
            false => Err(OAuthFailure::Unavailable),
        }
    }

    async fn link_identity(
        &self,
        federation: &Federation,
        identity: Identity,
        known: Option<Identity>,
        owner: &str,
        meta: &RequestMeta,
    ) -> Result<(), OAuthFailure> {
        let user = self.users.get(owner).await.map_err(|e| store_failed(&e))?;
        let Some(user) = user.filter(|u| !u.disabled) else {
            return Err(OAuthFailure::SignInRefused);
        };
        match known {
            Some(known) if known.user_id == user.user_id => return Ok(()),
            Some(_) => {
                audit::emit(AuditEvent::LoginFailed, meta, Some(&user.user_id), None, Some("oauth_identity_in_use"));
                return Err(OAuthFailure::IdentityInUse);
            }
            None => {}
        }
        match federation.identities.link(&identity.owned_by(&user)).await.map_err(|e| store_failed(&e))? {
            true => Ok(()),
            false => Err(OAuthFailure::IdentityInUse),
        }
    }
}

/// Stores a sign-in's ceremony (a link's, with its `owner`) and builds the provider's URL.
async fn issue_ceremony(
    federation: &Federation,
    factors: &dyn FactorStore,
    provider_id: &str,
    return_to: &str,
    owner: Option<String>,
    now: u64,
) -> Result<OAuthStart, OAuthFailure> {
    let provider = federation.providers.get(provider_id).ok_or(OAuthFailure::UnknownProvider)?;
    let metadata = provider.metadata(now).await.map_err(|e| unavailable(provider_id, &e))?;
    let (state, nonce) = (random_id(), random_id());
    let authorization = provider
        .authorization(&metadata, &federation.redirect_uri(provider_id), &state, &nonce)
        .map_err(|e| unavailable(provider_id, &e))?;
    let pending = Pending {
        provider: provider_id.to_owned(),
        state,
        nonce,
        pkce_verifier: authorization.pkce_verifier,
        return_to: return_to.to_owned(),
    };
    let token = LinkToken::generate();
    let ceremony = Ceremony {
        hash: token.hash(),
        purpose: CeremonyPurpose::OAuth,
        owner,
        state: serde_json::to_string(&pending).map_err(|_| OAuthFailure::Unavailable)?,
        expires_at: now + OAUTH_CEREMONY_TTL,
    };
    factors.issue_ceremony(&ceremony).await.map_err(|e| store_failed(&e))?;
    Ok(OAuthStart {
        location: authorization.url,
        browser_token: token.encode(),
    })
}

/// One of a user's identities as the account endpoints show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityView {
    /// What `DELETE /auth/identities/{id}` takes: the issuer and subject, base64url.
    pub id: String,
    /// Our id of the provider.
    pub provider: String,
    /// The provider's issuer.
    pub issuer: String,
    /// The address it gave at linking, if any.
    pub email: Option<String>,
    /// When it was linked.
    pub created_at: u64,
}

impl From<&Identity> for IdentityView {
    fn from(identity: &Identity) -> Self {
        Self {
            id: URL_SAFE_NO_PAD.encode(format!("{}#{}", identity.issuer, identity.subject)),
            provider: identity.provider.clone(),
            issuer: identity.issuer.clone(),
            email: identity.email.clone(),
            created_at: identity.created_at,
        }
    }
}

impl AccountService {
    /// Identities on: listing and unlinking the caller's (the account function's).
    pub fn with_identities(mut self, identities: Option<Arc<dyn IdentityStore>>) -> Self {
        self.identities = identities;
        self
    }

    /// Federation on: a signed-in user may link a provider.
    pub fn with_federation(mut self, federation: Option<Federation>) -> Self {
        self.federation = federation.map(Arc::new);
        self
    }

    /// Starts linking a provider to the caller: the same ceremony as a sign-in's, owned by
    /// the caller, finished at the same callback. A new way to sign in is added as a second
    /// factor is: after a step-up when the user has one, else within `STEP_UP_MAX_AGE` of
    /// the session's sign-in, so that a stolen access token cannot link the thief's account.
    pub async fn start_link(&self, caller: &Caller, provider_id: &str, return_to: &str) -> Result<OAuthStart, AuthError> {
        let federation = self.federation.as_ref().ok_or(AuthError::NotFound)?;
        let factors = self.factors.factors(&caller.user.username).await?.unwrap_or_default();
        self.may_add_factor(caller, &factors)?;
        let owner = Some(caller.user.username.clone());
        issue_ceremony(federation, &*self.factors, provider_id, return_to, owner, self.clock.now())
            .await
            .map_err(|failure| match failure {
                OAuthFailure::UnknownProvider => AuthError::NotFound,
                other => AuthError::unavailable("identity provider", other.as_str()),
            })
    }

    fn identity_store(&self) -> Result<&Arc<dyn IdentityStore>, AuthError> {
        self.identities.as_ref().ok_or(AuthError::NotFound)
    }

    /// The caller's identities at other providers, oldest first.
    pub async fn identities_of(&self, caller: &Caller) -> Result<Vec<IdentityView>, AuthError> {
        let mut identities = self.identity_store()?.identities_of(&caller.user.username).await?;
        identities.sort_by_key(|i| i.created_at);
        Ok(identities.iter().map(IdentityView::from).collect())
    }

    /// Unlinks one of the caller's identities. `false` when `id` is not one of theirs;
    /// `last_sign_in_method` when it is their only way to sign in (no other identity, no
    /// password).
    pub async fn unlink_identity(&self, caller: &Caller, id: &str, meta: &RequestMeta) -> Result<bool, AuthError> {
        let store = self.identity_store()?;
        let key = URL_SAFE_NO_PAD.decode(id).ok().and_then(|bytes| String::from_utf8(bytes).ok());
        let Some((issuer, subject)) = key.as_deref().and_then(|key| key.split_once('#')) else {
            return Ok(false);
        };
        let mine = store.identities_of(&caller.user.username).await?;
        if !mine.iter().any(|i| i.issuer == issuer && i.subject == subject) {
            return Ok(false);
        }
        // The store's transaction decides (a concurrent unlink or password change races it);
        // its refusal here can only be the last way in.
        if !store.unlink(&caller.user.username, issuer, subject).await? {
            return Err(AuthError::LastSignInMethod);
        }
        audit::emit(
            AuditEvent::IdentityUnlinked,
            meta,
            Some(&caller.user.user_id),
            Some(caller.session.session_id.as_str()),
            None,
        );
        Ok(true)
    }
}

/// Audits a refused sign-in; the failure, for the redirect.
fn refused(meta: &RequestMeta, failure: OAuthFailure, reason: &str, user_id: Option<&str>) -> OAuthFailure {
    audit::emit(AuditEvent::LoginFailed, meta, user_id, None, Some(reason));
    failure
}

fn unavailable(provider: &str, e: &ProviderError) -> OAuthFailure {
    tracing::error!(provider, cause = %e, "the provider is unavailable");
    OAuthFailure::ProviderUnavailable
}

fn store_failed(e: &AuthError) -> OAuthFailure {
    tracing::error!(cause = %e, "a federated sign-in could not use its tables or keys");
    OAuthFailure::Unavailable
}
