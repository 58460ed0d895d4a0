//! Passkeys (WebAuthn) through `webauthn-rs`: the relying party built from the
//! configuration, the four ceremonies (register, sign in by a discoverable credential, and
//! the second factor of a password login), and what a passkey adds to `amr`. No CBOR or
//! COSE is read here: the crate verifies origins, the RP id hash, challenges, signatures,
//! user verification and the sign counter; this module only keeps its state between the
//! start and the finish (serialised into the ceremony's item, never sent to the client).

use std::fmt;

use serde::Serialize;
use webauthn_rs::prelude::{
    AuthenticationResult, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder,
};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::Config;
use crate::error::{AuthError, ConfigError};

/// RFC 8176 values a passkey sign-in adds: a key held in software that may be synced
/// (`swk`, the backup-eligible flag), or bound to its device (`hwk`); user verification
/// (`user`); and more than one factor (`mfa`: something held and something known or are).
pub fn amr_of(result: &AuthenticationResult) -> [&'static str; 3] {
    let key = if result.backup_eligible() { "swk" } else { "hwk" };
    [key, "user", "mfa"]
}

/// The longest credential id read, base64url: 1023 bytes (WebAuthn §5.8.3).
const MAX_CREDENTIAL_ID_CHARS: usize = 1364;

/// A passkey as stored on the user's factors item: the crate's credential (JSON), and
/// what the listing shows.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    /// The credential id, base64url: the listing's id and the key of its items.
    pub id: String,
    /// The user's label for it.
    pub name: String,
    /// When it was registered.
    pub created_at: u64,
    /// When it last signed in (0: never).
    pub last_used_at: u64,
    /// `webauthn_rs::Passkey` as JSON: public key, counter, backup flags.
    pub key: String,
}

impl fmt::Debug for StoredPasskey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredPasskey").field("id", &self.id).field("name", &self.name).finish()
    }
}

/// One passkey as `GET /auth/passkeys` lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PasskeyView {
    /// The credential id.
    pub id: String,
    /// The label.
    pub name: String,
    /// Registered at.
    pub created_at: u64,
    /// Last sign-in (0: never).
    pub last_used_at: u64,
}

impl From<&StoredPasskey> for PasskeyView {
    fn from(p: &StoredPasskey) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

/// The relying party: `WEBAUTHN_RP_ID` and the browser origins of `ALLOWED_ORIGINS`.
pub struct Passkeys {
    webauthn: Webauthn,
}

/// A refused ceremony, whatever the reason (for the log only).
fn refused(what: &str, e: impl fmt::Display) -> AuthError {
    tracing::info!(cause = %e, "{what} refused");
    AuthError::InvalidPasskey
}

fn state_error(e: serde_json::Error) -> AuthError {
    AuthError::unavailable("passkey ceremony state", e)
}

impl Passkeys {
    /// The relying party of `config`, or `None` when `WEBAUTHN_RP_ID` is not set (passkeys
    /// off). At least one origin must be the RP id or below it.
    pub fn from_config(config: &Config) -> Result<Option<Self>, ConfigError> {
        let Some(rp_id) = config.webauthn_rp_id.as_deref() else { return Ok(None) };
        let problem = |problem: String| ConfigError {
            name: "WEBAUTHN_RP_ID",
            problem,
        };
        // Only the origins at or below the RP id can use its passkeys (a browser refuses the
        // others); they may still use everything else (e.g. http://127.0.0.1 locally).
        let origins: Vec<Url> = config
            .allowed_origins
            .iter()
            .filter_map(|o| Url::parse(o).ok())
            .filter(|o| o.host_str().is_some_and(|host| host == rp_id || host.ends_with(&format!(".{rp_id}"))))
            .collect();
        let (first, rest) = origins
            .split_first()
            .ok_or_else(|| problem(format!("no origin of ALLOWED_ORIGINS is {rp_id:?} or below it: passkeys would work nowhere")))?;
        let mut builder = WebauthnBuilder::new(rp_id, first).map_err(|e| problem(format!("{rp_id:?} with {first}: {e}")))?;
        for origin in rest {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder
            .rp_name(&config.totp_issuer)
            .build()
            .map_err(|e| problem(format!("{rp_id:?} does not cover every origin of ALLOWED_ORIGINS: {e}")))?;
        Ok(Some(Self { webauthn }))
    }

    /// Starts a registration for the user `handle` (`username` shown by the authenticator),
    /// excluding the credentials it already has. The credential must be discoverable (it is
    /// what signs in without a username) and verify its user.
    pub fn start_registration(&self, handle: Uuid, username: &str, existing: &[StoredPasskey]) -> Result<(serde_json::Value, String), AuthError> {
        let exclude = existing
            .iter()
            .filter_map(|p| serde_json::from_str::<Passkey>(&p.key).ok())
            .map(|p| p.cred_id().clone())
            .collect::<Vec<_>>();
        let (options, state) = self
            .webauthn
            .start_passkey_registration(handle, username, username, Some(exclude))
            .map_err(|e| AuthError::unavailable("passkey registration", e))?;
        let mut options = serde_json::to_value(&options).map_err(state_error)?;
        // A discoverable credential: it is what signs in without a username. (The crate's
        // passkey registration leaves residence to the authenticator.)
        if let Some(selection) = options.pointer_mut("/publicKey/authenticatorSelection") {
            selection["residentKey"] = "required".into();
            selection["requireResidentKey"] = true.into();
        }
        Ok((options, serde_json::to_string(&state).map_err(state_error)?))
    }

    /// Finishes a registration against its stored state.
    pub fn finish_registration(&self, credential: &RegisterPublicKeyCredential, state: &str) -> Result<StoredPasskey, AuthError> {
        let state: PasskeyRegistration = serde_json::from_str(state).map_err(state_error)?;
        let passkey = self
            .webauthn
            .finish_passkey_registration(credential, &state)
            .map_err(|e| refused("passkey registration", e))?;
        // SECURITY: the id is the credential's own, from the verified attestation, never the
        // request's `id` (which nothing verifies): it keys the one-account-per-credential
        // pointer.
        let id = URL_SAFE_NO_PAD.encode(passkey.cred_id());
        if id != credential.id {
            return Err(refused("passkey registration", "the id is not the attested credential's"));
        }
        Ok(StoredPasskey {
            id,
            name: String::new(),
            created_at: 0,
            last_used_at: 0,
            key: serde_json::to_string(&passkey).map_err(state_error)?,
        })
    }

    /// Starts an assertion by one of `passkeys` (the second factor of a password login).
    pub fn start_authentication(&self, passkeys: &[StoredPasskey]) -> Result<(RequestChallengeResponse, String), AuthError> {
        let keys: Vec<Passkey> = passkeys.iter().filter_map(|p| serde_json::from_str(&p.key).ok()).collect();
        let (options, state) = self
            .webauthn
            .start_passkey_authentication(&keys)
            .map_err(|e| AuthError::unavailable("passkey authentication", e))?;
        Ok((options, serde_json::to_string(&state).map_err(state_error)?))
    }

    /// Starts a sign-in by any discoverable credential of this relying party (no username).
    /// The caller decides how the browser asks (a button, not conditional mediation).
    pub fn start_discoverable(&self) -> Result<(RequestChallengeResponse, String), AuthError> {
        let (mut options, state) = self
            .webauthn
            .start_discoverable_authentication()
            .map_err(|e| AuthError::unavailable("passkey sign-in", e))?;
        options.mediation = None;
        Ok((options, serde_json::to_string(&state).map_err(state_error)?))
    }

    /// The user handle and credential id an assertion of a discoverable sign-in names
    /// (unverified: the caller finds that credential and then finishes).
    pub fn identify(&self, credential: &PublicKeyCredential) -> Result<(Uuid, String), AuthError> {
        // A credential id is at most 1023 bytes (WebAuthn §5.8.3): a longer one is no
        // credential of ours, and would not fit a DynamoDB key.
        if credential.id.len() > MAX_CREDENTIAL_ID_CHARS || credential.id != URL_SAFE_NO_PAD.encode(credential.raw_id.as_ref() as &[u8]) {
            return Err(refused("passkey sign-in", "a credential id too long, or not its raw id"));
        }
        self.webauthn
            .identify_discoverable_authentication(credential)
            .map(|(handle, _)| (handle, credential.id.clone()))
            .map_err(|e| refused("passkey sign-in", e))
    }

    /// Verifies an assertion against the stored state of its ceremony and the passkey it
    /// claims to be: `Ok` with the passkey as it must be stored now (its counter moved).
    pub fn finish(
        &self,
        credential: &PublicKeyCredential,
        state: &str,
        stored: &StoredPasskey,
        discoverable: bool,
    ) -> Result<(AuthenticationResult, StoredPasskey), AuthError> {
        let mut passkey: Passkey = serde_json::from_str(&stored.key).map_err(state_error)?;
        let result = match discoverable {
            true => {
                let state: DiscoverableAuthentication = serde_json::from_str(state).map_err(state_error)?;
                self.webauthn.finish_discoverable_authentication_v2(credential, state, &passkey)
            }
            false => {
                let state: PasskeyAuthentication = serde_json::from_str(state).map_err(state_error)?;
                self.webauthn.finish_passkey_authentication(credential, &state)
            }
        }
        .map_err(|e| refused("passkey assertion", e))?;
        // SECURITY: the assertion must be by this very credential (the allow list of a
        // second-factor ceremony holds all of the user's).
        if passkey.update_credential(&result).is_none() {
            return Err(AuthError::InvalidPasskey);
        }
        let updated = StoredPasskey {
            key: serde_json::to_string(&passkey).map_err(state_error)?,
            ..stored.clone()
        };
        Ok((result, updated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::config_with;

    #[test]
    fn the_relying_party_covers_its_origins_and_is_off_without_an_rp_id() {
        assert!(Passkeys::from_config(&config_with(&[])).unwrap().is_none());
        let local = config_with(&[
            ("WEBAUTHN_RP_ID", "localhost"),
            ("ALLOWED_ORIGINS", "http://localhost:5173,http://localhost:9000"),
        ]);
        assert!(Passkeys::from_config(&local).unwrap().is_some(), "a local page over http");
        let site = config_with(&[("WEBAUTHN_RP_ID", "example.com"), ("ALLOWED_ORIGINS", "https://app.example.com")]);
        assert!(Passkeys::from_config(&site).unwrap().is_some(), "an origin below the RP id");
        for origins in ["https://app.example.org", "https://evilexample.com"] {
            let foreign = config_with(&[("WEBAUTHN_RP_ID", "example.com"), ("ALLOWED_ORIGINS", origins)]);
            assert_eq!(Passkeys::from_config(&foreign).err().unwrap().name, "WEBAUTHN_RP_ID", "{origins}");
        }
        let mixed = config_with(&[
            ("WEBAUTHN_RP_ID", "localhost"),
            ("ALLOWED_ORIGINS", "http://localhost:5173,http://127.0.0.1:5173"),
        ]);
        assert!(Passkeys::from_config(&mixed).unwrap().is_some(), "127.0.0.1 just cannot use passkeys");
        let none = config_with(&[("WEBAUTHN_RP_ID", "example.com"), ("ALLOWED_ORIGINS", "")]);
        assert_eq!(Passkeys::from_config(&none).err().unwrap().name, "WEBAUTHN_RP_ID");
    }
}
