//! Passkeys: a signed-in user registers, lists and removes them (`AccountService`), and
//! anyone signs in with one, without a username (`AuthService`). Each ceremony's state
//! waits server-side between its two requests under a single-use `passkey_token`; the
//! assertion names its credential, whose owner comes from the credential's pointer item
//! and must match the user handle the authenticator returned.

use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential, Uuid};

use super::account::{AccountService, Caller};
use super::{AuthService, IssuedTokens};
use crate::audit::{self, AuditEvent, RequestMeta};
use crate::claims::Authentication;
use crate::error::AuthError;
use crate::factors::FactorUse;
use crate::links::LinkToken;
use crate::passkeys::{PasskeyView, Passkeys, StoredPasskey, amr_of};
use crate::random::random_bytes;
use crate::store::{Ceremony, CeremonyPurpose};

/// How long a ceremony waits for the authenticator (WebAuthn's recommended timeout).
pub const CEREMONY_TTL: u64 = 300;
/// The longest passkey label kept.
pub const MAX_PASSKEY_NAME: usize = 64;

/// A started ceremony as the client gets it.
#[derive(Debug, Serialize)]
pub struct PasskeyCeremony {
    /// The single-use token the finish presents (only its hash is stored).
    pub passkey_token: String,
    /// `{"publicKey": ...}` for `navigator.credentials.create` or `.get`.
    pub options: serde_json::Value,
    /// Seconds it waits.
    pub expires_in: u64,
}

/// What a registration keeps between start and finish.
#[derive(Serialize, Deserialize)]
struct Registration {
    handle: Uuid,
    state: String,
}

fn json_error(e: serde_json::Error) -> AuthError {
    AuthError::unavailable("passkey ceremony", e)
}

/// The ceremony a token names; a malformed token is a refused passkey.
fn token_hash(token: &str) -> Result<crate::tokens::TokenHash, AuthError> {
    Ok(LinkToken::parse(token).ok_or(AuthError::InvalidPasskey)?.hash())
}

/// Stores a new ceremony and hands its token out.
pub(super) async fn issue_ceremony(
    store: &dyn crate::store::FactorStore,
    purpose: CeremonyPurpose,
    owner: Option<String>,
    options: serde_json::Value,
    state: String,
    now: u64,
) -> Result<PasskeyCeremony, AuthError> {
    let token = LinkToken::generate();
    store
        .issue_ceremony(&Ceremony {
            hash: token.hash(),
            purpose,
            owner,
            state,
            expires_at: now + CEREMONY_TTL,
        })
        .await?;
    Ok(PasskeyCeremony {
        passkey_token: token.encode(),
        options,
        expires_in: CEREMONY_TTL,
    })
}

impl AuthService {
    fn passkeys(&self) -> Result<&Passkeys, AuthError> {
        self.passkeys.as_deref().ok_or(AuthError::NotFound)
    }

    /// Starts a sign-in by passkey: options that let the browser offer any of this site's
    /// discoverable credentials.
    pub async fn start_passkey_sign_in(&self) -> Result<PasskeyCeremony, AuthError> {
        let (options, state) = self.passkeys()?.start_discoverable()?;
        let options = serde_json::to_value(options).map_err(json_error)?;
        issue_ceremony(&*self.factors, CeremonyPurpose::SignIn, None, options, state, self.clock.now()).await
    }

    /// Finishes a sign-in by passkey: the ceremony is used up first (one try per start),
    /// the credential's owner found by its id and checked against the user handle the
    /// authenticator returned, the assertion verified against that user's stored passkey,
    /// and its counter written only over the credential it was verified against. The
    /// session carries `amr` `hwk`/`swk`, `user`, `mfa`.
    pub async fn finish_passkey_sign_in(&self, token: &str, credential: &PublicKeyCredential, meta: &RequestMeta) -> Result<IssuedTokens, AuthError> {
        let passkeys = self.passkeys()?;
        let now = self.clock.now();
        let hash = token_hash(token)?;
        let keys = self.keys.current().await?;
        let refused = |reason: &str, user_id: Option<&str>| {
            audit::emit(AuditEvent::LoginFailed, meta, user_id, None, Some(reason));
            AuthError::InvalidPasskey
        };
        let Some(ceremony) = self.factors.take_ceremony(&hash, CeremonyPurpose::SignIn, None, now).await? else {
            return Err(refused("passkey_ceremony_unknown", None));
        };
        let (handle, id) = passkeys.identify(credential)?;
        let Some((owner, owner_handle)) = self.factors.passkey_owner(&id).await? else {
            return Err(refused("passkey_unknown", None));
        };
        // SECURITY: the authenticator's user handle must be the one the credential was
        // registered under: an assertion by one user's credential never signs in another.
        if owner_handle != handle {
            return Err(refused("passkey_user_mismatch", None));
        }
        let (user, factors) = tokio::try_join!(self.users.get(&owner), self.factors.factors(&owner))?;
        let user = match user {
            Some(user) if user.is_present(now) && !user.disabled && user.email_verified => user,
            other => return Err(refused("passkey_user_refused", other.as_ref().map(|u| u.user_id.as_str()))),
        };
        let Some(stored) = factors.as_ref().and_then(|f| f.passkey(&id)) else {
            return Err(refused("passkey_removed", Some(&user.user_id)));
        };
        let (result, after) = passkeys.finish(credential, &ceremony.state, stored, true).map_err(|e| match e {
            AuthError::InvalidPasskey => refused("passkey_assertion_refused", Some(&user.user_id)),
            other => other,
        })?;
        let used = FactorUse::Passkey {
            before: stored.key.clone(),
            after: StoredPasskey { last_used_at: now, ..after },
        };
        if !self.factors.use_factor(&user.username, &used, None, now).await? {
            return Err(refused("passkey_used_concurrently", Some(&user.user_id)));
        }
        let auth = Authentication {
            amr: amr_of(&result).iter().map(|m| (*m).to_owned()).collect(),
            auth_time: now,
        };
        self.start_session(&keys, &user, user.session_epoch, auth, meta, now).await
    }
}

impl AccountService {
    fn passkeys(&self) -> Result<&Passkeys, AuthError> {
        self.passkeys.as_deref().ok_or(AuthError::NotFound)
    }

    /// Starts registering a passkey for the caller (a step-up first when the user has a
    /// second factor, a recent sign-in when not: a stolen access token must not add the
    /// thief's authenticator; see [`AccountService::may_add_factor`]).
    pub async fn start_passkey_registration(&self, caller: &Caller) -> Result<PasskeyCeremony, AuthError> {
        let passkeys = self.passkeys()?;
        let username = &caller.user.username;
        let factors = self.factors.factors(username).await?.unwrap_or_default();
        self.may_add_factor(caller, &factors)?;
        // The user handle is random, not the e-mail or the user id: authenticators may show
        // it to whoever holds them.
        let handle = factors
            .user_handle
            .unwrap_or_else(|| uuid::Builder::from_random_bytes(random_bytes()).into_uuid());
        let (options, state) = passkeys.start_registration(handle, username, &factors.passkeys)?;
        let state = serde_json::to_string(&Registration { handle, state }).map_err(json_error)?;
        issue_ceremony(
            &*self.factors,
            CeremonyPurpose::Register,
            Some(username.clone()),
            options,
            state,
            self.clock.now(),
        )
        .await
    }

    /// Finishes a registration started by the same user: the credential verified against
    /// the ceremony (origin, RP id, challenge, user verification), then stored with its
    /// owner pointer, only if no account has that credential yet.
    pub async fn finish_passkey_registration(
        &self,
        caller: &Caller,
        token: &str,
        credential: &RegisterPublicKeyCredential,
        name: Option<&str>,
        meta: &RequestMeta,
    ) -> Result<PasskeyView, AuthError> {
        let passkeys = self.passkeys()?;
        let now = self.clock.now();
        let username = &caller.user.username;
        let Some(ceremony) = self
            .factors
            .take_ceremony(&token_hash(token)?, CeremonyPurpose::Register, Some(username), now)
            .await?
        else {
            return Err(AuthError::InvalidPasskey);
        };
        let registration: Registration = serde_json::from_str(&ceremony.state).map_err(json_error)?;
        // A factor turned on since the start needs its step-up now.
        self.may_add_factor(caller, &self.factors.factors(username).await?.unwrap_or_default())?;
        let name: String = name
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .unwrap_or("Passkey")
            .chars()
            .take(MAX_PASSKEY_NAME)
            .collect();
        let passkey = StoredPasskey {
            name,
            created_at: now,
            ..passkeys.finish_registration(credential, &registration.state)?
        };
        if !self.factors.add_passkey(username, &registration.handle, &passkey).await? {
            return Err(AuthError::InvalidPasskey);
        }
        audit::emit(
            AuditEvent::PasskeyAdded,
            meta,
            Some(&caller.user.user_id),
            Some(caller.session.session_id.as_str()),
            None,
        );
        Ok(PasskeyView::from(&passkey))
    }

    /// The caller's passkeys, oldest first.
    pub async fn passkeys_of(&self, caller: &Caller) -> Result<Vec<PasskeyView>, AuthError> {
        let factors = self.factors.factors(&caller.user.username).await?.unwrap_or_default();
        Ok(factors.passkeys.iter().map(PasskeyView::from).collect())
    }

    /// Removes one of the caller's passkeys (a step-up first, as for turning TOTP off).
    /// `false` when it is not the caller's.
    pub async fn delete_passkey(&self, caller: &Caller, id: &str, meta: &RequestMeta) -> Result<bool, AuthError> {
        self.require_step_up(caller)?;
        if !self.factors.remove_passkey(&caller.user.username, id).await? {
            return Ok(false);
        }
        audit::emit(
            AuditEvent::PasskeyRemoved,
            meta,
            Some(&caller.user.user_id),
            Some(caller.session.session_id.as_str()),
            None,
        );
        Ok(true)
    }
}
