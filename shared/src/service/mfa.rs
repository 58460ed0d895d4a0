//! The signed-in user's second factors: TOTP enrolment (a pending secret, confirmed by its
//! first code, which returns the recovery codes), turning it off, new recovery codes, and
//! the step-up that lets a session do the sensitive ones. Every code is checked under the
//! per-account throttle and used once (see `credentials::check_factor`).

use serde::Serialize;

use super::account::{AccountService, Caller};
use super::credentials::{FactorCheck, check_factor, verify_answer};
use super::passkeys::{PasskeyCeremony, issue_ceremony};
use crate::audit::{self, AuditEvent, RequestMeta};
use crate::error::AuthError;
use crate::factors::{ENROLMENT_TTL_SECS, FactorAnswer, Factors, TotpSecret, new_recovery_codes};
use crate::store::AttemptReservation;
use crate::store::CeremonyPurpose;

/// The answer of `GET /auth/mfa`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct MfaStatus {
    /// Whether TOTP is on (login asks for a code).
    pub totp: bool,
    /// Unused recovery codes.
    pub recovery_codes_left: usize,
    /// What a login challenge would offer.
    pub methods: Vec<&'static str>,
    /// Registered passkeys.
    pub passkeys: usize,
}

/// The answer of `POST /auth/mfa/totp`: what the authenticator app needs. The secret is
/// shown here and never again.
#[derive(Debug, Serialize)]
pub struct TotpEnrolment {
    /// Base32, for typing in.
    pub secret: String,
    /// The `otpauth://` URI, for the QR code.
    pub otpauth_uri: String,
    /// Seconds the enrolment waits for its first code.
    pub expires_in: u64,
}

impl AccountService {
    /// The caller's factors, as the status endpoint shows them.
    pub async fn mfa_status(&self, caller: &Caller) -> Result<MfaStatus, AuthError> {
        let factors = self.factors.factors(&caller.user.username).await?.unwrap_or_default();
        Ok(MfaStatus {
            totp: factors.totp.is_some(),
            recovery_codes_left: if factors.totp.is_some() { factors.recovery_codes.len() } else { 0 },
            methods: factors.methods(),
            passkeys: factors.passkeys.len(),
        })
    }

    /// Starts a TOTP enrolment: a new secret, pending until its first code confirms it (a
    /// second start replaces a pending one). Refused while TOTP is on: turning it off first
    /// needs a step-up, so a stolen access token cannot swap the user's device; and see
    /// [`AccountService::may_add_factor`].
    pub async fn start_totp(&self, caller: &Caller) -> Result<TotpEnrolment, AuthError> {
        let factors = self.factors.factors(&caller.user.username).await?.unwrap_or_default();
        if factors.totp.is_some() {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        self.may_add_factor(caller, &factors)?;
        let secret = TotpSecret::generate();
        let now = self.clock.now();
        if !self.factors.start_totp(&caller.user.username, &secret, now + ENROLMENT_TTL_SECS).await? {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        Ok(TotpEnrolment {
            secret: secret.to_base32(),
            otpauth_uri: secret.otpauth_uri(&self.totp_issuer, &caller.user.username),
            expires_in: ENROLMENT_TTL_SECS,
        })
    }

    /// Confirms the pending enrolment with a code from the app: TOTP is on from this write,
    /// and the ten recovery codes are returned, the only time they are shown (only their
    /// hashes are stored). A wrong code counts toward the account's throttle.
    pub async fn confirm_totp(&self, caller: &Caller, code: &str, meta: &RequestMeta) -> Result<Vec<String>, AuthError> {
        let username = &caller.user.username;
        let now = self.clock.now();
        let (factors, reservation) = tokio::try_join!(self.factors.factors(username), self.users.reserve_attempt(username, now))?;
        let attempts = match reservation {
            AttemptReservation::Granted { attempts } => attempts,
            AttemptReservation::Refused { retry_after_secs } => return Err(AuthError::TooManyAttempts { retry_after_secs }),
        };
        let factors = factors.unwrap_or_default();
        if factors.totp.is_some() {
            return Err(AuthError::MfaAlreadyEnabled);
        }
        self.may_add_factor(caller, &factors)?;
        let Some(pending) = factors.pending_at(now) else {
            return Err(AuthError::InvalidRequest("No TOTP enrolment is pending; start one with POST /auth/mfa/totp."));
        };
        let (codes, hashes) = new_recovery_codes();
        let confirmed = match pending.matching_step(code, now) {
            Some(step) => self.factors.confirm_totp(username, pending, step, &hashes, now).await?,
            None => false,
        };
        if !confirmed {
            self.users.record_failure(username, attempts, now).await?;
            self.audit(AuditEvent::MfaFailed, caller, meta, Some("enrolment_code"));
            return Err(AuthError::InvalidCode);
        }
        self.users.clear_attempts(username).await?;
        self.audit(AuditEvent::MfaEnabled, caller, meta, None);
        Ok(codes)
    }

    /// Turns TOTP off and removes the recovery codes (needs a step-up); passkeys stay.
    pub async fn disable_totp(&self, caller: &Caller, meta: &RequestMeta) -> Result<(), AuthError> {
        self.require_step_up(caller)?;
        self.factors.remove_totp(&caller.user.username).await?;
        self.audit(AuditEvent::MfaDisabled, caller, meta, None);
        Ok(())
    }

    /// Replaces the recovery codes with ten new ones (needs a step-up; TOTP must be on).
    pub async fn regenerate_recovery_codes(&self, caller: &Caller, meta: &RequestMeta) -> Result<Vec<String>, AuthError> {
        self.require_step_up(caller)?;
        let (codes, hashes) = new_recovery_codes();
        if !self.factors.replace_recovery_codes(&caller.user.username, &hashes).await? {
            return Err(AuthError::InvalidRequest("TOTP is off: recovery codes come with it."));
        }
        self.audit(AuditEvent::RecoveryCodesRegenerated, caller, meta, None);
        Ok(codes)
    }

    /// A second factor passed again by a signed-in session: the session's `amr` gains what
    /// the factor adds (`otp` and `mfa`, or a passkey's), its `auth_time` moves to now (its
    /// next access token carries both), and for [`AccountService::require_step_up`]'s window
    /// it may do the sensitive actions. A passkey answers the ceremony `passkey_token` names
    /// (see [`AccountService::start_passkey_step_up`]), used up by this call.
    pub async fn step_up(&self, caller: &Caller, answer: &FactorAnswer, passkey_token: Option<&str>, meta: &RequestMeta) -> Result<(), AuthError> {
        let username = &caller.user.username;
        let now = self.clock.now();
        let state = match (answer, passkey_token) {
            (FactorAnswer::Passkey(_), Some(token)) => {
                let hash = crate::links::LinkToken::parse(token).ok_or(AuthError::InvalidPasskey)?.hash();
                let ceremony = self.factors.take_ceremony(&hash, CeremonyPurpose::StepUp, Some(username), now).await?;
                Some(ceremony.ok_or(AuthError::InvalidPasskey)?.state)
            }
            (FactorAnswer::Passkey(_), None) => {
                return Err(AuthError::InvalidRequest(
                    "A passkey answer needs the passkey_token of POST /auth/mfa/step-up/start.",
                ));
            }
            _ => None,
        };
        let verify = |factors: &Factors| verify_answer(self.passkeys.as_deref(), answer, factors, state.as_deref(), now);
        let added = match check_factor(&*self.users, &*self.factors, username, verify, None, now).await? {
            FactorCheck::Passed(added) => added,
            FactorCheck::Throttled { retry_after_secs } => return Err(AuthError::TooManyAttempts { retry_after_secs }),
            FactorCheck::Failed { reason } => {
                self.audit(AuditEvent::MfaFailed, caller, meta, Some(reason));
                return Err(match answer {
                    FactorAnswer::Passkey(_) => AuthError::InvalidPasskey,
                    _ => AuthError::InvalidCode,
                });
            }
        };
        let auth = caller.session.auth.with(&added, now);
        // SECURITY: only while the session is still live and the caller's.
        if !self.sessions.set_auth(&caller.session.session_id, &caller.session.user_id, &auth, now).await? {
            return Err(AuthError::InvalidToken);
        }
        self.audit(AuditEvent::MfaSteppedUp, caller, meta, None);
        Ok(())
    }

    /// Starts a step-up by passkey: assertion options for the caller's passkeys, under a
    /// single-use `passkey_token` that `POST /auth/mfa/step-up` presents with the answer.
    pub async fn start_passkey_step_up(&self, caller: &Caller) -> Result<PasskeyCeremony, AuthError> {
        let passkeys = self.passkeys.as_deref().ok_or(AuthError::NotFound)?;
        let factors = self.factors.factors(&caller.user.username).await?.unwrap_or_default();
        if factors.passkeys.is_empty() {
            return Err(AuthError::InvalidRequest("You have no passkey; step up with a code."));
        }
        let (options, state) = passkeys.start_authentication(&factors.passkeys)?;
        let options = serde_json::to_value(options).map_err(|e| AuthError::unavailable("passkey options", e))?;
        issue_ceremony(
            &*self.factors,
            CeremonyPurpose::StepUp,
            Some(caller.user.username.clone()),
            options,
            state,
            self.clock.now(),
        )
        .await
    }

    /// Whether this session may add a factor (TOTP, a passkey), which is what a thief holding
    /// a stolen access token would do to keep the account: with a factor already on, only
    /// after a step-up; with none, only within `STEP_UP_MAX_AGE` of the session's sign-in
    /// (else 403 `reauthentication_required`). Checked at the start and the end of each
    /// enrolment, so a factor turned on in between is seen.
    pub fn may_add_factor(&self, caller: &Caller, factors: &Factors) -> Result<(), AuthError> {
        if factors.required() {
            return self.require_step_up(caller);
        }
        let since = self.clock.now().saturating_sub(self.step_up_max_age);
        match caller.session.auth.auth_time >= since {
            true => Ok(()),
            false => Err(AuthError::ReauthenticationRequired),
        }
    }

    /// Refuses with `step_up_required` unless this session passed a second factor within
    /// `STEP_UP_MAX_AGE` (at login or by a step-up).
    pub fn require_step_up(&self, caller: &Caller) -> Result<(), AuthError> {
        let since = self.clock.now().saturating_sub(self.step_up_max_age);
        match caller.session.auth.second_factor_since(since) {
            true => Ok(()),
            false => Err(AuthError::StepUpRequired),
        }
    }

    /// [`Self::require_step_up`], when the user has a second factor to step up with.
    pub async fn require_step_up_if_enrolled(&self, caller: &Caller) -> Result<(), AuthError> {
        match self.factors.factors(&caller.user.username).await? {
            Some(factors) if Factors::required(&factors) => self.require_step_up(caller),
            _ => Ok(()),
        }
    }

    fn audit(&self, event: AuditEvent, caller: &Caller, meta: &RequestMeta, reason: Option<&str>) {
        audit::emit(event, meta, Some(&caller.user.user_id), Some(caller.session.session_id.as_str()), reason);
    }
}
