//! The life of an asymmetric signing key, `standby → active → retired → removed`, and the
//! rules `authctl keys` will apply to it: a key is published before it signs, a retired
//! key verifies until every token it signed has expired, the signing key is never removed,
//! and every step is idempotent.
//!
//! The set is one JSON document in the private store (`SIGNING_SECRET_ID`); its public
//! halves go to the public store as a JWKS ([`SigningKeySet::public_jwks`]).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::signing::{PrivateKey, SigningKeys};
use super::verifying::Jwks;
use super::{KeyAlgorithm, KeyDocument, KeySetError, json_error};

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published in the JWKS, not signing yet.
    Standby,
    /// The one key that signs; published.
    Active,
    /// No longer signs; published, so the tokens it signed still verify.
    Retired,
}

/// One key of the private key set, with the times of its transitions (epoch seconds).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// The JWT `kid`.
    pub kid: String,
    /// Its algorithm.
    pub alg: KeyAlgorithm,
    /// Its state.
    pub state: KeyState,
    /// The PKCS#8 document, base64url. Never logged.
    private_key: String,
    /// When it was added (and published).
    pub created_at: u64,
    /// When it started signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<u64>,
    /// When it stopped signing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<u64>,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("private_key", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("activated_at", &self.activated_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

impl KeyEntry {
    /// The key itself.
    pub fn private_key(&self) -> Result<PrivateKey, KeySetError> {
        let der = URL_SAFE_NO_PAD
            .decode(&self.private_key)
            .map_err(|_| KeySetError(format!("key {:?} is not base64url", self.kid)))?;
        PrivateKey::from_pkcs8(self.kid.clone(), self.alg, &der)
    }
}

/// A refused transition, saying what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RotationRefused(pub String);

/// The private key set: every key with its state, and the refresh pepper. `Debug` shows
/// neither a private key nor the pepper.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeySet {
    /// The keys, oldest first.
    pub keys: Vec<KeyEntry>,
    /// The HMAC key of the refresh-token hash chain, base64url. Never logged.
    refresh_pepper: String,
}

impl std::fmt::Debug for SigningKeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeySet")
            .field("keys", &self.keys)
            .field("refresh_pepper", &"<redacted>")
            .finish()
    }
}

/// The key set document of the HMAC era: `{"active_kid", "keys": [{"kid", "alg": "HS256",
/// "secret"}], "refresh_pepper"}`. Read only to carry its pepper over (so sessions survive
/// the move to asymmetric keys); its keys are never used again.
#[derive(Deserialize)]
struct HmacKeySet {
    #[allow(dead_code)]
    active_kid: String,
    refresh_pepper: String,
}

impl SigningKeySet {
    /// Parses and checks the stored document: unique kids, at most one active key. An
    /// HMAC-era document is refused with the way out.
    pub fn from_json(json: &str) -> Result<Self, KeySetError> {
        if serde_json::from_str::<HmacKeySet>(json).is_ok() {
            return Err(KeySetError(
                "this is an HS256 key set from before asymmetric keys; `authctl keys init` replaces it (keeping the refresh pepper)".into(),
            ));
        }
        let set: Self = serde_json::from_str(json).map_err(|e| json_error("a private key set", &e))?;
        for (i, key) in set.keys.iter().enumerate() {
            if set.keys[..i].iter().any(|k| k.kid == key.kid) {
                return Err(KeySetError(format!("kid {:?} is listed twice", key.kid)));
            }
        }
        if set.keys.iter().filter(|k| k.state == KeyState::Active).count() > 1 {
            return Err(KeySetError("more than one key is active".into()));
        }
        Ok(set)
    }

    /// The refresh pepper of an HMAC-era key set document, if `json` is one.
    pub fn hmac_era_pepper(json: &str) -> Option<String> {
        serde_json::from_str::<HmacKeySet>(json).ok().map(|set| set.refresh_pepper)
    }

    /// The set as stored. Holds private keys: never log it.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A set whose first key signs at once (a new installation: nothing to publish ahead).
    pub fn starting_with(key: &PrivateKey, refresh_pepper: String, now: u64) -> Self {
        let mut entry = entry(key, now);
        entry.state = KeyState::Active;
        entry.activated_at = Some(now);
        Self {
            keys: vec![entry],
            refresh_pepper,
        }
    }

    /// The refresh pepper.
    pub fn refresh_pepper(&self) -> &str {
        &self.refresh_pepper
    }

    /// The signing key, when there is exactly one.
    pub fn active(&self) -> Option<&KeyEntry> {
        let mut active = self.keys.iter().filter(|k| k.state == KeyState::Active);
        match (active.next(), active.next()) {
            (Some(key), None) => Some(key),
            _ => None,
        }
    }

    /// The key waiting in standby, if any.
    pub fn standby(&self) -> Option<&KeyEntry> {
        self.keys.iter().find(|k| k.state == KeyState::Standby)
    }

    /// Adds `key` in standby: published from now on, not signing.
    pub fn add(&mut self, key: &PrivateKey, now: u64) -> Result<(), RotationRefused> {
        if self.keys.iter().any(|k| k.kid == key.kid) {
            return Err(RotationRefused(format!("a key {:?} is already in the set", key.kid)));
        }
        self.keys.push(entry(key, now));
        Ok(())
    }

    /// Makes `kid` the signing key and retires the one before. Refused until the key has
    /// been published for `publish_delay` seconds (verifiers that cache the JWKS must know
    /// it before a token signed by it reaches them), unless `now_anyway`.
    pub fn activate(&mut self, kid: &str, now: u64, publish_delay: u64, now_anyway: bool) -> Result<(), RotationRefused> {
        let key = self.find(kid)?;
        match key.state {
            KeyState::Active => return Ok(()),
            KeyState::Retired => {
                return Err(RotationRefused(format!(
                    "key {kid} is retired; add a new key with `authctl keys add` instead of bringing an old one back"
                )));
            }
            // Saturating: `created_at` may be ahead of this clock (another operator's machine)
            // and the delay is whatever the operator's environment says.
            KeyState::Standby if !now_anyway && now < key.created_at.saturating_add(publish_delay) => {
                let wait = key.created_at.saturating_add(publish_delay) - now;
                return Err(RotationRefused(format!(
                    "key {kid} has been published for {} s; verifiers may cache the JWKS longer: wait {wait} s more, or pass --now",
                    now.saturating_sub(key.created_at)
                )));
            }
            KeyState::Standby => {}
        }
        for other in self.keys.iter_mut().filter(|k| k.state == KeyState::Active) {
            other.state = KeyState::Retired;
            other.retired_at = Some(now);
        }
        let key = self.find_mut(kid)?;
        key.state = KeyState::Active;
        key.activated_at = Some(now);
        Ok(())
    }

    /// Removes retired key `kid` once `token_lifetime` seconds (access-token TTL plus
    /// leeway) have passed since it retired, so no unexpired token it signed is left;
    /// `now_anyway` removes it at once (a compromised key: every token it signed dies). A
    /// key not in the set is already removed.
    pub fn remove(&mut self, kid: &str, now: u64, token_lifetime: u64, now_anyway: bool) -> Result<(), RotationRefused> {
        let Some(key) = self.keys.iter().find(|k| k.kid == kid) else { return Ok(()) };
        match (key.state, key.retired_at) {
            (KeyState::Active, _) => {
                return Err(RotationRefused(format!(
                    "key {kid} signs new tokens; activate another key first (`authctl keys add`, then `authctl keys activate`)"
                )));
            }
            (KeyState::Retired, Some(retired_at)) if !now_anyway && now < retired_at.saturating_add(token_lifetime) => {
                return Err(RotationRefused(format!(
                    "tokens signed by key {kid} may still be valid for {} s; wait, or pass --now to end them at once",
                    retired_at.saturating_add(token_lifetime) - now
                )));
            }
            // SECURITY: a retired key with no retirement time (a hand-edited set) may have
            // signed a token that is still valid: it goes only when the operator says so.
            (KeyState::Retired, None) if !now_anyway => {
                return Err(RotationRefused(format!(
                    "key {kid} has no retirement time, so its tokens may still be valid; pass --now to remove it anyway"
                )));
            }
            _ => {}
        }
        self.keys.retain(|k| k.kid != kid);
        Ok(())
    }

    /// The public JWKS of every key in the set (standby, active and retired).
    pub fn public_jwks(&self) -> Result<Jwks, KeySetError> {
        let keys = self.keys.iter().map(|k| k.private_key()?.public_jwk()).collect::<Result<_, _>>()?;
        Ok(Jwks { keys })
    }

    /// Key `kid`, refused with where to look when it is not in the set.
    pub fn entry(&self, kid: &str) -> Result<&KeyEntry, RotationRefused> {
        self.find(kid)
    }

    /// Restarts the publish delay of standby key `kid`: it was found missing from the
    /// public store and has just been published again.
    pub fn restart_publication(&mut self, kid: &str, now: u64) -> Result<(), RotationRefused> {
        let key = self.find_mut(kid)?;
        if key.state == KeyState::Standby {
            key.created_at = now;
        }
        Ok(())
    }

    fn find(&self, kid: &str) -> Result<&KeyEntry, RotationRefused> {
        self.keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(|| RotationRefused(format!("no key {kid} in the set; `authctl keys list` shows them")))
    }

    fn find_mut(&mut self, kid: &str) -> Result<&mut KeyEntry, RotationRefused> {
        self.keys
            .iter_mut()
            .find(|k| k.kid == kid)
            .ok_or_else(|| RotationRefused(format!("no key {kid} in the set; `authctl keys list` shows them")))
    }
}

impl KeyDocument for SigningKeys {
    /// Parses the private key set (see [`SigningKeySet`]), keeping only the active key and
    /// the pepper: what login and refresh sign and rotate with.
    fn from_json(json: &str) -> Result<Self, KeySetError> {
        let set = SigningKeySet::from_json(json)?;
        let active = set
            .active()
            .ok_or_else(|| KeySetError("no key is active; `authctl keys list` shows the keys, `authctl keys activate` picks one".into()))?;
        Self::new(&active.private_key()?, set.refresh_pepper())
    }

    fn knows(&self, kid: &str) -> bool {
        self.active().kid() == kid
    }
}

fn entry(key: &PrivateKey, now: u64) -> KeyEntry {
    KeyEntry {
        kid: key.kid.clone(),
        alg: key.alg,
        state: KeyState::Standby,
        private_key: URL_SAFE_NO_PAD.encode(key.pkcs8()),
        created_at: now,
        activated_at: None,
        retired_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DELAY: u64 = 8100;
    const LIFETIME: u64 = 930;

    #[test]
    fn an_hmac_era_set_is_refused_with_the_way_out_and_its_pepper_can_be_carried_over() {
        let old = r#"{"active_kid":"k1","keys":[{"kid":"k1","alg":"HS256","secret":"c2VjcmV0"}],"refresh_pepper":"the-pepper"}"#;
        assert!(SigningKeySet::from_json(old).unwrap_err().0.contains("authctl keys init"));
        assert_eq!(SigningKeySet::hmac_era_pepper(old).as_deref(), Some("the-pepper"));
        let set = SigningKeySet::starting_with(&key(), "p".into(), 1);
        assert_eq!(SigningKeySet::hmac_era_pepper(&set.to_json()), None);
    }

    #[test]
    fn duplicate_kids_and_two_active_keys_are_refused() {
        let first = key();
        let mut set = SigningKeySet::starting_with(&first, "p".into(), 1);
        assert!(SigningKeySet::from_json(&set.to_json()).is_ok());
        let mut twin = set.keys[0].clone();
        twin.state = KeyState::Retired;
        set.keys.push(twin);
        assert!(SigningKeySet::from_json(&set.to_json()).unwrap_err().0.contains("twice"));
        set.keys[1].kid = "other".into();
        set.keys[1].state = KeyState::Active;
        assert!(SigningKeySet::from_json(&set.to_json()).unwrap_err().0.contains("more than one"));
    }

    fn key() -> PrivateKey {
        PrivateKey::generate(KeyAlgorithm::Es256).unwrap()
    }

    #[test]
    fn a_full_rotation_keeps_every_key_that_may_have_signed_a_live_token_published() {
        let (first, second) = (key(), key());
        let mut set = SigningKeySet::starting_with(&first, "pepper".into(), 1_000);
        assert_eq!(set.active().unwrap().kid, first.kid);
        set.add(&second, 2_000).unwrap();
        assert_eq!(set.active().unwrap().kid, first.kid, "a standby key does not sign");
        assert_eq!(set.public_jwks().unwrap().keys.len(), 2, "but it is published");

        let refused = set.activate(&second.kid, 2_000 + DELAY - 1, DELAY, false).unwrap_err();
        assert!(refused.0.contains("wait 1 s more"), "{refused}");
        set.activate(&second.kid, 2_000 + DELAY, DELAY, false).unwrap();
        set.activate(&second.kid, 2_000 + DELAY + 5, DELAY, false).unwrap();
        assert_eq!(set.active().unwrap().kid, second.kid);
        let retired = set.keys.iter().find(|k| k.kid == first.kid).unwrap();
        assert_eq!((retired.state, retired.retired_at), (KeyState::Retired, Some(2_000 + DELAY)));
        assert_eq!(set.public_jwks().unwrap().keys.len(), 2, "a retired key still verifies");

        assert!(set.remove(&second.kid, 99_999, LIFETIME, true).is_err(), "the signing key is never removed");
        let early = set.remove(&first.kid, 2_000 + DELAY + LIFETIME - 1, LIFETIME, false).unwrap_err();
        assert!(early.0.contains("--now"), "{early}");
        set.remove(&first.kid, 2_000 + DELAY + LIFETIME, LIFETIME, false).unwrap();
        set.remove(&first.kid, 2_000 + DELAY + LIFETIME, LIFETIME, false).unwrap();
        assert_eq!(set.public_jwks().unwrap().keys.len(), 1);
    }

    #[test]
    fn unsafe_or_unknown_transitions_are_refused_with_what_to_do() {
        let (first, second, third) = (key(), key(), key());
        let mut set = SigningKeySet::starting_with(&first, "pepper".into(), 1_000);
        assert!(set.add(&first, 1_001).is_err(), "a kid is added once");
        assert!(set.activate("nope", 1_001, DELAY, true).unwrap_err().0.contains("keys list"));
        set.add(&second, 1_001).unwrap();
        set.activate(&second.kid, 1_002, DELAY, true).unwrap();
        assert!(set.activate(&first.kid, 99_999, DELAY, true).unwrap_err().0.contains("retired"));
        // A compromised retired key goes at once with --now.
        set.remove(&first.kid, 1_003, LIFETIME, true).unwrap();
        set.add(&third, 1_004).unwrap();
        assert!(
            set.remove(&third.kid, 99_999, LIFETIME, false).is_ok(),
            "a standby key that never signed may go"
        );
    }

    #[test]
    fn times_from_a_clock_ahead_of_ours_or_huge_delays_give_refusals_not_overflows() {
        let (first, second) = (key(), key());
        let mut set = SigningKeySet::starting_with(&first, "pepper".into(), 1_000);
        // Added by an operator whose clock is 500 s ahead of this one.
        set.add(&second, 1_500).unwrap();
        let refused = set.activate(&second.kid, 1_000, DELAY, false).unwrap_err();
        assert!(refused.0.contains("published for 0 s") && refused.0.contains("wait 8600 s more"), "{refused}");
        let refused = set.activate(&second.kid, 2_000, u64::MAX, false).unwrap_err();
        assert!(refused.0.contains(&format!("wait {} s more", u64::MAX - 2_000)), "{refused}");
        set.activate(&second.kid, 1_000, DELAY, true).unwrap();
        // Retired at 1_000 by this clock; removal asked with a lifetime that saturates.
        let refused = set.remove(&first.kid, 1_001, u64::MAX, false).unwrap_err();
        assert!(refused.0.contains(&format!("valid for {} s", u64::MAX - 1_001)), "{refused}");
        assert_eq!(set.keys.len(), 2);
    }

    #[test]
    fn a_retired_key_without_a_retirement_time_is_removed_only_with_now() {
        let (first, second) = (key(), key());
        let mut set = SigningKeySet::starting_with(&first, "pepper".into(), 1_000);
        set.add(&second, 1_000).unwrap();
        set.activate(&second.kid, 1_000, DELAY, true).unwrap();
        set.keys[0].retired_at = None;
        let refused = set.remove(&first.kid, 99_999, LIFETIME, false).unwrap_err();
        assert!(refused.0.contains("--now"), "{refused}");
        set.remove(&first.kid, 99_999, LIFETIME, true).unwrap();
        assert_eq!(set.keys.len(), 1);
    }

    #[test]
    fn the_set_round_trips_and_never_prints_a_private_key() {
        let first = key();
        let set = SigningKeySet::starting_with(&first, "pepper-value".into(), 1_000);
        let json = serde_json::to_string(&set).unwrap();
        let back: SigningKeySet = serde_json::from_str(&json).unwrap();
        assert_eq!(back.active().unwrap().private_key().unwrap().pkcs8(), first.pkcs8());
        assert_eq!(back.refresh_pepper(), "pepper-value");
        let printed = format!("{set:?}");
        assert!(!printed.contains(&set.keys[0].private_key) && !printed.contains("pepper-value"), "{printed}");
        assert!(serde_json::from_str::<SigningKeySet>(&json.replace("\"keys\"", "\"secret\":1,\"keys\"")).is_err());
    }

    #[test]
    fn signing_keys_need_an_active_key_and_a_long_pepper_and_never_quote_a_secret() {
        let key = PrivateKey::generate(KeyAlgorithm::Es256).unwrap();
        let pepper = crate::keys::generate_secret();
        let good = serde_json::to_string(&SigningKeySet::starting_with(&key, pepper.clone(), 1)).unwrap();
        assert_eq!(SigningKeys::from_json(&good).unwrap().active().kid(), key.kid);
        assert!(SigningKeys::from_json(&good.replace(&pepper, "c2hvcnQ")).is_err(), "short pepper");
        assert!(SigningKeys::from_json(&good.replace("\"active\"", "\"standby\"")).is_err(), "no active key");
        let secret = "S3CR3T-VALUE-THAT-MUST-NOT-LEAK";
        let err = SigningKeys::from_json(&good.replace(&pepper, &format!("{secret}\", \"x\": \"{secret}"))).unwrap_err();
        assert!(!err.to_string().contains(secret), "{err}");
    }
}
