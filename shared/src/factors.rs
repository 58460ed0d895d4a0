//! Second factors: TOTP (RFC 6238, as every authenticator app does it: HMAC-SHA-1, 6 digits,
//! 30-second steps, ±1 step of clock skew, through `totp-rs`) and the recovery codes that
//! replace a lost device. What a user has enrolled is a [`Factors`] record; which step or
//! code was used is decided here and made single-use by the store's conditional write.

use std::fmt;

use aws_lc_rs::digest;
use totp_rs::{Algorithm, Builder, Totp};

use crate::passkeys::StoredPasskey;
use crate::random::random_bytes;
use crate::tokens::TokenHash;

/// Seconds of one TOTP step.
pub const TOTP_STEP_SECS: u64 = 30;
/// Digits of a TOTP code.
pub const TOTP_DIGITS: u8 = 6;
/// How many recovery codes a user holds after enrolment or regeneration.
pub const RECOVERY_CODES: usize = 10;
/// How long an enrolment waits for its first code before it must start over.
pub const ENROLMENT_TTL_SECS: u64 = 600;

/// A TOTP secret: 160 random bits (RFC 4226 §4's recommendation). Never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A fresh secret from the OS CSPRNG.
    pub fn generate() -> Self {
        Self(random_bytes::<20>().to_vec())
    }

    /// A stored secret; `None` for anything shorter than 128 bits (never one of ours).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() >= 16).then(|| Self(bytes.to_vec()))
    }

    /// A secret as `to_base32` wrote it (case and spaces ignored); `None` for anything else.
    pub fn from_base32(text: &str) -> Option<Self> {
        let (mut buffer, mut bits, mut bytes) = (0u32, 0u32, Vec::new());
        for c in text.chars().filter(|c| !c.is_whitespace()) {
            let value = match c.to_ascii_uppercase() {
                c @ 'A'..='Z' => c as u32 - 'A' as u32,
                c @ '2'..='7' => c as u32 - '2' as u32 + 26,
                _ => return None,
            };
            buffer = (buffer << 5) | value;
            bits += 5;
            if bits >= 8 {
                bits -= 8;
                bytes.push((buffer >> bits) as u8);
            }
        }
        Self::from_bytes(&bytes)
    }

    /// The bytes to store.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 without padding: what authenticator apps take when typed in.
    pub fn to_base32(&self) -> String {
        base32(&self.0)
    }

    /// The `otpauth://` URI authenticator apps read from a QR code (Key Uri Format): the
    /// label `issuer:account`, and the parameters every app understands.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let label = format!("{}:{}", uri_escape(issuer), uri_escape(account));
        format!(
            "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={TOTP_DIGITS}&period={TOTP_STEP_SECS}",
            self.to_base32(),
            uri_escape(issuer)
        )
    }

    fn totp(&self) -> Option<Totp> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(TOTP_DIGITS)
            .with_skew(1)
            .with_step_duration(TOTP_STEP_SECS)
            .with_secret(self.0.clone())
            .build()
            .ok()
    }

    /// The step whose code `code` is, among the current one and its two neighbours (±30 s
    /// of skew) at `now`; `None` for any other code or anything that is not 6 digits. The
    /// caller accepts the step only once (see [`Factors::last_totp_step`]).
    pub fn matching_step(&self, code: &str, now: u64) -> Option<u64> {
        let code = code.trim();
        if code.len() != usize::from(TOTP_DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.totp()?.check(code, now)
    }

    /// The code of the step holding `time` (for tests and the local tools).
    pub fn code_at(&self, time: u64) -> String {
        self.totp().map(|t| t.generate(time).to_string()).unwrap_or_default()
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// A recovery code as shown to the user once: 80 random bits as four groups of four base32
/// characters (`abcd-efgh-ijkl-mnop`). Only its SHA-256 is stored: 80 bits make an
/// unsalted hash as safe to keep as a refresh token's (no guessing from a stolen table).
pub struct RecoveryCode(String);

impl RecoveryCode {
    /// A fresh code.
    pub fn generate() -> Self {
        let text = base32(&random_bytes::<10>()).to_lowercase();
        let groups: Vec<&str> = (0..4).map(|i| &text[i * 4..i * 4 + 4]).collect();
        Self(groups.join("-"))
    }

    /// The code as shown.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stored form of a code as typed: case, spaces and dashes do not matter.
    pub fn hash_of(typed: &str) -> TokenHash {
        let canonical: String = typed
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let d = digest::digest(&digest::SHA256, canonical.as_bytes());
        TokenHash::from_slice(d.as_ref()).unwrap_or(TokenHash([0; 32]))
    }

    /// The stored form of this code.
    pub fn hash(&self) -> TokenHash {
        Self::hash_of(&self.0)
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

/// A new set of recovery codes: the codes to show once, and their hashes to store.
pub fn new_recovery_codes() -> (Vec<String>, Vec<TokenHash>) {
    (0..RECOVERY_CODES)
        .map(|_| {
            let code = RecoveryCode::generate();
            (code.as_str().to_owned(), code.hash())
        })
        .unzip()
}

/// The second factors a user has: the `mfa#<username>` item of the users table.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Factors {
    /// The confirmed TOTP secret: while present, login asks for a second factor.
    pub totp: Option<TotpSecret>,
    /// The last TOTP step accepted: only a later one is accepted next (RFC 6238 §5.2), so a
    /// code is good once, even within its own 90 seconds.
    pub last_totp_step: u64,
    /// An enrolment waiting for its first code, and when it lapses.
    pub pending: Option<(TotpSecret, u64)>,
    /// SHA-256 of each unused recovery code.
    pub recovery_codes: Vec<TokenHash>,
    /// The user's passkeys.
    pub passkeys: Vec<StoredPasskey>,
    /// The user's WebAuthn user handle (a random UUID, never the e-mail), set with the
    /// first passkey and kept.
    pub user_handle: Option<webauthn_rs::prelude::Uuid>,
}

impl Factors {
    /// Whether login must ask for a second factor.
    pub fn required(&self) -> bool {
        self.totp.is_some() || !self.passkeys.is_empty()
    }

    /// The methods a login challenge offers.
    pub fn methods(&self) -> Vec<&'static str> {
        let mut methods = Vec::new();
        if self.totp.is_some() {
            methods.push("totp");
            if !self.recovery_codes.is_empty() {
                methods.push("recovery_code");
            }
        }
        if !self.passkeys.is_empty() {
            methods.push("webauthn");
        }
        methods
    }

    /// The methods a challenge can take: [`Self::methods`], without `webauthn` when no
    /// passkey request goes with it (passkeys are off).
    pub fn offered_methods(&self, with_passkey_request: bool) -> Vec<&'static str> {
        let mut methods = self.methods();
        methods.retain(|m| *m != "webauthn" || with_passkey_request);
        methods
    }

    /// The passkey with this credential id.
    pub fn passkey(&self, id: &str) -> Option<&StoredPasskey> {
        self.passkeys.iter().find(|p| p.id == id)
    }

    /// The step `code` proves at `now`, if it is one not used yet.
    pub fn fresh_totp_step(&self, code: &str, now: u64) -> Option<u64> {
        self.totp.as_ref()?.matching_step(code, now).filter(|step| *step > self.last_totp_step)
    }

    /// The stored hash `code` matches, compared in constant time against every stored one.
    pub fn recovery_code(&self, code: &str) -> Option<TokenHash> {
        let typed = RecoveryCode::hash_of(code);
        let found = self.recovery_codes.iter().fold(false, |found, stored| found | stored.ct_eq(&typed));
        found.then_some(typed)
    }

    /// The pending enrolment's secret, while it has not lapsed at `now`.
    pub fn pending_at(&self, now: u64) -> Option<&TotpSecret> {
        self.pending.as_ref().filter(|(_, until)| now < *until).map(|(secret, _)| secret)
    }
}

impl fmt::Debug for Factors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Factors")
            .field("totp", &self.totp.is_some())
            .field("last_totp_step", &self.last_totp_step)
            .field("pending", &self.pending.is_some())
            .field("recovery_codes", &self.recovery_codes.len())
            .field("passkeys", &self.passkeys.len())
            .finish()
    }
}

/// What a second-factor answer proves, to be made single-use by one conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorUse {
    /// This TOTP step, which must be later than the last one accepted.
    TotpStep(u64),
    /// This recovery code, which must still be stored (it is removed).
    RecoveryCode(TokenHash),
    /// This passkey, whose stored credential must still be `before` (the one the assertion
    /// was verified against), replaced by `after` (its counter and last use moved).
    Passkey {
        /// The credential as it was read.
        before: String,
        /// The passkey as it is to be stored.
        after: StoredPasskey,
    },
}

/// A second-factor answer as the client sent it.
#[derive(Debug, Clone)]
pub enum FactorAnswer {
    /// A 6-digit TOTP code.
    Totp(String),
    /// A recovery code.
    RecoveryCode(String),
    /// A passkey assertion (`credential.toJSON()`), checked against the challenge's state.
    Passkey(Box<webauthn_rs::prelude::PublicKeyCredential>),
}

/// What TOTP and recovery codes add to `amr`.
pub const OTP_AMR: [&str; 2] = ["otp", "mfa"];

impl FactorAnswer {
    /// What a code proves against `factors` at `now`, if anything (a passkey is checked by
    /// `passkeys::Passkeys`, with its ceremony's state).
    pub fn check(&self, factors: &Factors, now: u64) -> Option<FactorUse> {
        match self {
            Self::Totp(code) => factors.fresh_totp_step(code, now).map(FactorUse::TotpStep),
            Self::RecoveryCode(code) => factors.recovery_code(code).map(FactorUse::RecoveryCode),
            Self::Passkey(_) => None,
        }
    }
}

/// The longest code read: a recovery code with generous spacing.
const MAX_CODE_BYTES: usize = 64;

/// The members of a request body that answer a second factor (the login challenge, the
/// step-up, the enrolment's confirmation): exactly one of them is sent.
#[derive(Debug, Default, serde::Deserialize)]
pub struct AnswerFields {
    /// A TOTP code.
    #[serde(default)]
    pub code: Option<String>,
    /// A recovery code.
    #[serde(default)]
    pub recovery_code: Option<String>,
    /// A passkey assertion (`credential.toJSON()`).
    #[serde(default)]
    pub webauthn: Option<Box<webauthn_rs::prelude::PublicKeyCredential>>,
}

impl AnswerFields {
    /// The answer: exactly one member, a code at most [`MAX_CODE_BYTES`].
    pub fn answer(self) -> Result<FactorAnswer, crate::error::AuthError> {
        factor_answer(self.code, self.recovery_code, self.webauthn)
    }
}

/// The answer of exactly one of `code`, `recovery_code` and `webauthn`, a code at most
/// [`MAX_CODE_BYTES`].
fn factor_answer(
    code: Option<String>,
    recovery_code: Option<String>,
    webauthn: Option<Box<webauthn_rs::prelude::PublicKeyCredential>>,
) -> Result<FactorAnswer, crate::error::AuthError> {
    let answer = match (code, recovery_code, webauthn) {
        (Some(code), None, None) => FactorAnswer::Totp(code),
        (None, Some(code), None) => FactorAnswer::RecoveryCode(code),
        (None, None, Some(credential)) => FactorAnswer::Passkey(credential),
        _ => return Err(crate::error::AuthError::InvalidRequest("Send exactly one of code, recovery_code and webauthn.")),
    };
    match &answer {
        FactorAnswer::Totp(c) | FactorAnswer::RecoveryCode(c) if c.len() > MAX_CODE_BYTES => {
            Err(crate::error::AuthError::InvalidRequest("The code is at most 64 bytes."))
        }
        _ => Ok(answer),
    }
}

/// RFC 4648 base32 (upper case, no padding).
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn uri_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1: the 20-byte ASCII secret, each time and its 8-digit code.
    /// A 6-digit code is the same truncated value mod 10^6, so it is the last six digits.
    const RFC_6238_SHA1: [(u64, &str); 6] = [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ];

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        for (time, eight) in RFC_6238_SHA1 {
            assert_eq!(rfc_secret().code_at(time), eight[2..], "T = {time}");
            assert_eq!(rfc_secret().matching_step(&eight[2..], time), Some(time / 30), "T = {time}");
        }
    }

    #[test]
    fn one_step_of_skew_either_way_is_accepted_and_two_are_not() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let step = now / 30;
        for (offset, accepted) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let time = (step as i64 + offset) as u64 * 30;
            let code = secret.code_at(time);
            assert_eq!(secret.matching_step(&code, now).is_some(), accepted, "offset {offset}");
        }
        for bad in ["", "12345", "1234567", "12a456", "８９００５９"] {
            assert_eq!(secret.matching_step(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn a_step_is_fresh_only_after_the_last_one_accepted() {
        let now = 1_234_567_890;
        let mut factors = Factors {
            totp: Some(rfc_secret()),
            ..Factors::default()
        };
        let code = rfc_secret().code_at(now);
        assert_eq!(factors.fresh_totp_step(&code, now), Some(now / 30));
        factors.last_totp_step = now / 30;
        assert_eq!(factors.fresh_totp_step(&code, now), None, "the same code again");
        assert_eq!(factors.fresh_totp_step(&rfc_secret().code_at(now + 30), now), Some(now / 30 + 1));
    }

    #[test]
    fn recovery_codes_are_80_bits_matched_by_hash_whatever_the_case_or_dashes() {
        let (codes, hashes) = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        assert!(codes.iter().all(|c| c.len() == 19 && c.split('-').count() == 4), "{codes:?}");
        let factors = Factors {
            recovery_codes: hashes.clone(),
            ..Factors::default()
        };
        let typed = codes[3].to_uppercase().replace('-', " ");
        assert_eq!(factors.recovery_code(&typed), Some(hashes[3].clone()));
        assert_eq!(factors.recovery_code("aaaa-bbbb-cccc-dddd"), None);
    }

    #[test]
    fn the_otpauth_uri_names_the_issuer_and_account_and_the_secret_is_base32() {
        assert_eq!(base32(b"12345678901234567890"), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        let uri = rfc_secret().otpauth_uri("auth.example.com", "alice@example.com");
        assert_eq!(
            uri,
            "otpauth://totp/auth.example.com:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=auth.example.com&algorithm=SHA1&digits=6&period=30"
        );
        let fresh = TotpSecret::generate();
        assert_eq!(fresh.to_base32().len(), 32);
        assert_eq!(TotpSecret::from_base32(&fresh.to_base32().to_lowercase()), Some(fresh));
        assert_eq!(TotpSecret::from_base32("not base32!"), None);
        assert_eq!(format!("{:?}", rfc_secret()), "TotpSecret(<redacted>)");
    }
}
