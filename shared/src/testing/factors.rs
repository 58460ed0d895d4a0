//! Second factors and login challenges in memory, with the conditions of the DynamoDB
//! store's writes checked and applied under one lock.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;

use crate::error::AuthError;
use crate::factors::{FactorUse, Factors, TotpSecret};
use crate::passkeys::StoredPasskey;
use crate::store::{Ceremony, CeremonyPurpose, Challenge, FactorStore};
use crate::tokens::TokenHash;
use webauthn_rs::prelude::Uuid;

#[derive(Default)]
struct State {
    factors: HashMap<String, Factors>,
    challenges: HashMap<[u8; 32], Challenge>,
    owners: HashMap<String, (String, Uuid)>,
    ceremonies: HashMap<[u8; 32], Ceremony>,
}

/// Factors and challenges in memory.
#[derive(Default)]
pub struct MemoryFactors {
    state: Mutex<State>,
    uses: AtomicUsize,
}

impl MemoryFactors {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stored factors of `username`, without a read counted.
    pub fn peek(&self, username: &str) -> Option<Factors> {
        self.lock().factors.get(username).cloned()
    }

    /// Stores factors as they are, skipping the enrolment.
    pub fn put(&self, username: &str, factors: Factors) {
        self.lock().factors.insert(username.to_owned(), factors);
    }

    /// How many factor uses were written.
    pub fn uses(&self) -> usize {
        self.uses.load(Ordering::SeqCst)
    }

    /// The stored challenge with this hash, expired or not.
    pub fn stored_challenge(&self, hash: &TokenHash) -> Option<Challenge> {
        self.lock().challenges.get(&hash.0).cloned()
    }
}

#[async_trait]
impl FactorStore for MemoryFactors {
    async fn factors(&self, username: &str) -> Result<Option<Factors>, AuthError> {
        Ok(self.peek(username))
    }

    async fn start_totp(&self, username: &str, secret: &TotpSecret, until: u64) -> Result<bool, AuthError> {
        let mut state = self.lock();
        let factors = state.factors.entry(username.to_owned()).or_default();
        if factors.totp.is_some() {
            return Ok(false);
        }
        factors.pending = Some((secret.clone(), until));
        Ok(true)
    }

    async fn confirm_totp(&self, username: &str, secret: &TotpSecret, step: u64, recovery_codes: &[TokenHash], now: u64) -> Result<bool, AuthError> {
        let mut state = self.lock();
        let Some(factors) = state.factors.get_mut(username) else { return Ok(false) };
        let pending = factors.pending.as_ref().is_some_and(|(s, until)| s == secret && now < *until);
        if !pending || factors.totp.is_some() {
            return Ok(false);
        }
        factors.totp = Some(secret.clone());
        factors.last_totp_step = step;
        factors.pending = None;
        factors.recovery_codes = recovery_codes.to_vec();
        Ok(true)
    }

    async fn remove_factors(&self, username: &str) -> Result<(), AuthError> {
        self.lock().factors.remove(username);
        Ok(())
    }

    async fn remove_totp(&self, username: &str) -> Result<(), AuthError> {
        if let Some(factors) = self.lock().factors.get_mut(username) {
            factors.totp = None;
            factors.last_totp_step = 0;
            factors.pending = None;
            factors.recovery_codes.clear();
        }
        Ok(())
    }

    async fn replace_recovery_codes(&self, username: &str, recovery_codes: &[TokenHash]) -> Result<bool, AuthError> {
        let mut state = self.lock();
        match state.factors.get_mut(username) {
            Some(factors) if factors.totp.is_some() => {
                factors.recovery_codes = recovery_codes.to_vec();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn use_factor(&self, username: &str, used: &FactorUse, challenge: Option<&TokenHash>, now: u64) -> Result<bool, AuthError> {
        let mut state = self.lock();
        if let Some(hash) = challenge {
            let usable = state.challenges.get(&hash.0).is_some_and(|c| c.username == username && now < c.expires_at);
            if !usable {
                return Ok(false);
            }
        }
        let Some(factors) = state.factors.get_mut(username) else { return Ok(false) };
        match used {
            FactorUse::TotpStep(step) if factors.totp.is_some() && *step > factors.last_totp_step => factors.last_totp_step = *step,
            FactorUse::RecoveryCode(hash) if factors.recovery_codes.contains(hash) => factors.recovery_codes.retain(|h| h != hash),
            FactorUse::Passkey { before, after } => match factors.passkeys.iter_mut().find(|p| p.id == after.id && p.key == *before) {
                Some(stored) => *stored = after.clone(),
                None => return Ok(false),
            },
            _ => return Ok(false),
        }
        if let Some(hash) = challenge {
            state.challenges.remove(&hash.0);
        }
        self.uses.fetch_add(1, Ordering::SeqCst);
        Ok(true)
    }

    async fn issue_challenge(&self, challenge: &Challenge) -> Result<(), AuthError> {
        self.lock().challenges.insert(challenge.hash.0, challenge.clone());
        Ok(())
    }

    async fn challenge(&self, hash: &TokenHash, now: u64) -> Result<Option<Challenge>, AuthError> {
        Ok(self.lock().challenges.get(&hash.0).filter(|c| now < c.expires_at).cloned())
    }

    async fn fail_challenge(&self, hash: &TokenHash, max_failures: u32) -> Result<(), AuthError> {
        let mut state = self.lock();
        let Some(challenge) = state.challenges.get_mut(&hash.0) else { return Ok(()) };
        challenge.failures += 1;
        if challenge.failures >= max_failures {
            state.challenges.remove(&hash.0);
        }
        Ok(())
    }

    async fn add_passkey(&self, username: &str, handle: &Uuid, passkey: &StoredPasskey) -> Result<bool, AuthError> {
        let mut state = self.lock();
        if state.owners.contains_key(&passkey.id) {
            return Ok(false);
        }
        let factors = state.factors.entry(username.to_owned()).or_default();
        if factors.user_handle.is_some_and(|h| h != *handle) || factors.passkey(&passkey.id).is_some() {
            return Ok(false);
        }
        factors.user_handle = Some(*handle);
        factors.passkeys.push(passkey.clone());
        state.owners.insert(passkey.id.clone(), (username.to_owned(), *handle));
        Ok(true)
    }

    async fn remove_passkey(&self, username: &str, id: &str) -> Result<bool, AuthError> {
        let mut state = self.lock();
        if state.owners.get(id).is_none_or(|(owner, _)| owner != username) {
            return Ok(false);
        }
        state.owners.remove(id);
        if let Some(factors) = state.factors.get_mut(username) {
            factors.passkeys.retain(|p| p.id != id);
        }
        Ok(true)
    }

    async fn passkey_owner(&self, id: &str) -> Result<Option<(String, Uuid)>, AuthError> {
        Ok(self.lock().owners.get(id).cloned())
    }

    async fn issue_ceremony(&self, ceremony: &Ceremony) -> Result<(), AuthError> {
        self.lock().ceremonies.insert(ceremony.hash.0, ceremony.clone());
        Ok(())
    }

    async fn take_ceremony(&self, hash: &TokenHash, purpose: CeremonyPurpose, owner: Option<&str>, now: u64) -> Result<Option<Ceremony>, AuthError> {
        let mut state = self.lock();
        let usable = state
            .ceremonies
            .get(&hash.0)
            .is_some_and(|c| c.purpose == purpose && now < c.expires_at && owner.is_none_or(|o| c.owner.as_deref() == Some(o)));
        Ok(if usable { state.ceremonies.remove(&hash.0) } else { None })
    }
}
