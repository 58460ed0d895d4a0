//! Login: a throttled password check, then a new session under the user's epoch; for a
//! user with a second factor, first a challenge that `POST /auth/login/mfa` answers.

use secrecy::SecretString;

use super::credentials::{FactorCheck, PasswordCheck, check_factor, check_password, verify_answer};
use super::{AuthService, IssuedTokens, audit_session};
use crate::audit::{self, AuditEvent, RequestMeta};
use crate::claims::{Authentication, amr};
use crate::error::AuthError;
use crate::factors::{FactorAnswer, Factors};
use crate::keys::SigningKeys;
use crate::links::LinkToken;
use crate::store::{Challenge, SessionRecord, UserRecord, normalize_username};
use crate::tokens::{RefreshToken, SessionId};

/// How long a login challenge (`mfa_token`) waits for its answer.
pub const MFA_CHALLENGE_TTL: u64 = 300;
/// Wrong answers a challenge takes; the last one deletes it.
pub const MAX_CHALLENGE_FAILURES: u32 = 5;

/// What a right password leads to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// A session: the user has no second factor.
    Signed(Box<IssuedTokens>),
    /// The user has a second factor: no session yet, a challenge to answer.
    MfaRequired(MfaChallenge),
}

impl LoginOutcome {
    /// The tokens, when the login needed no second factor.
    pub fn signed(self) -> Option<IssuedTokens> {
        match self {
            Self::Signed(issued) => Some(*issued),
            Self::MfaRequired(_) => None,
        }
    }
}

/// A login challenge as the client gets it.
#[derive(Debug)]
pub struct MfaChallenge {
    /// The `mfa_token`: single use, [`MFA_CHALLENGE_TTL`] seconds, only its hash stored.
    pub token: LinkToken,
    /// What may answer it (`totp`, `recovery_code`, `webauthn`).
    pub methods: Vec<&'static str>,
    /// Seconds it stays usable.
    pub expires_in: u64,
    /// The passkey assertion options (`{"publicKey": ...}`), when the user has passkeys.
    pub webauthn: Option<serde_json::Value>,
}

impl AuthService {
    /// Checks a password and starts a session, or, for a user with a second factor, issues
    /// a challenge. The attempt is reserved before the password is hashed, so parallel
    /// guesses cannot outrun the throttle. Unknown user, wrong password and disabled account
    /// take the same path (a full argon2id verification and a counted attempt) and give the
    /// same error; the factors are read beside the password check for every username, so
    /// the answer's timing tells nothing about them either.
    pub async fn login(&self, username: &str, password: SecretString, meta: &RequestMeta) -> Result<LoginOutcome, AuthError> {
        let username = normalize_username(username);
        let now = self.clock.now();
        // Keys first: without them nothing can be issued, and no attempt should be spent.
        let keys = self.keys.current().await?;
        let (checked, factors) = tokio::try_join!(check_password(&*self.users, &username, &password, now), self.factors.factors(&username))?;
        let user = match checked {
            // The password is right: only now may the answer say the address is unverified.
            PasswordCheck::Passed(user) if !user.email_verified => {
                // The password was right: its reserved attempt must not count toward a throttle.
                if let Err(e) = self.users.clear_attempts(&username).await {
                    tracing::warn!(cause = %e, "clearing the attempt counter of an unverified login failed");
                }
                audit::emit(AuditEvent::LoginFailed, meta, Some(&user.user_id), None, Some("email_not_verified"));
                return Err(AuthError::EmailNotVerified);
            }
            PasswordCheck::Passed(user) => user,
            PasswordCheck::Throttled { user_id, retry_after_secs } => {
                audit::emit(AuditEvent::LoginThrottled, meta, user_id.as_deref(), None, None);
                return Err(AuthError::TooManyAttempts { retry_after_secs });
            }
            PasswordCheck::Failed { user_id, reason } => {
                audit::emit(AuditEvent::LoginFailed, meta, user_id.as_deref(), None, Some(reason));
                return Err(AuthError::InvalidCredentials);
            }
        };
        if let Some(factors) = factors.filter(|f| f.required()) {
            // SECURITY: the password's attempt stays reserved until the second factor passes,
            // so alternating right passwords with wrong codes does not reset the throttle.
            let challenge = self.issue_login_challenge(&user, &factors, amr::PASSWORD, now).await?;
            audit::emit(AuditEvent::MfaChallenged, meta, Some(&user.user_id), None, None);
            return Ok(LoginOutcome::MfaRequired(challenge));
        }
        let issued = self
            .start_session(&keys, &user, user.session_epoch, Authentication::password(now), meta, now)
            .await?;
        Ok(LoginOutcome::Signed(Box::new(issued)))
    }

    /// Answers a login challenge with a second factor: the session starts as login's would
    /// have, under the epoch the password was checked at, with `amr` `pwd` and what the
    /// factor adds (`otp` + `mfa` for a code; `hwk`/`swk` + `user` + `mfa` for a passkey).
    /// A wrong answer counts toward the account's throttle and the challenge's own limit; an
    /// unknown, used, expired or outdated challenge (the password changed, every session was
    /// ended, or the account disabled since) is `invalid_token`.
    pub async fn complete_mfa(&self, mfa_token: &str, answer: &FactorAnswer, meta: &RequestMeta) -> Result<IssuedTokens, AuthError> {
        let now = self.clock.now();
        let hash = LinkToken::parse(mfa_token).ok_or(AuthError::InvalidToken)?.hash();
        let keys = self.keys.current().await?;
        let challenge = self.factors.challenge(&hash, now).await?.ok_or(AuthError::InvalidToken)?;
        let verify = |factors: &Factors| verify_answer(self.passkeys.as_deref(), answer, factors, challenge.webauthn_state.as_deref(), now);
        let (user, checked) = tokio::try_join!(
            self.users.get(&challenge.username),
            check_factor(&*self.users, &*self.factors, &challenge.username, verify, Some(&hash), now)
        )?;
        let user_id = user.as_ref().map(|u| u.user_id.as_str());
        let added = match checked {
            FactorCheck::Passed(added) => added,
            FactorCheck::Throttled { retry_after_secs } => {
                audit::emit(AuditEvent::LoginThrottled, meta, user_id, None, Some("mfa"));
                return Err(AuthError::TooManyAttempts { retry_after_secs });
            }
            FactorCheck::Failed { reason } => {
                self.factors.fail_challenge(&hash, MAX_CHALLENGE_FAILURES).await?;
                audit::emit(AuditEvent::MfaFailed, meta, user_id, None, Some(reason));
                return Err(match answer {
                    FactorAnswer::Passkey(_) => AuthError::InvalidPasskey,
                    _ => AuthError::InvalidCode,
                });
            }
        };
        // SECURITY: the challenge is bound to the password check: a bump of the epoch since
        // (password change or reset, logout everywhere, disable) ends it like a session.
        let user = match user {
            Some(user) if !user.disabled && user.session_epoch == challenge.session_epoch => user,
            _ => {
                audit::emit(AuditEvent::LoginFailed, meta, user_id, None, Some("challenge_outdated"));
                return Err(AuthError::InvalidToken);
            }
        };
        let first = Authentication {
            amr: challenge.first_amr.clone(),
            auth_time: challenge.password_at,
        };
        let auth = first.with(&added, now);
        self.start_session(&keys, &user, challenge.session_epoch, auth, meta, now).await
    }

    /// A new session of `user` under `epoch`, and its first tokens.
    pub(super) async fn start_session(
        &self,
        keys: &SigningKeys,
        user: &UserRecord,
        epoch: u64,
        auth: Authentication,
        meta: &RequestMeta,
        now: u64,
    ) -> Result<IssuedTokens, AuthError> {
        let session_id = SessionId::generate();
        let refresh = RefreshToken::start(session_id.clone());
        let session = SessionRecord {
            session_id,
            user_id: user.user_id.clone(),
            username: user.username.clone(),
            token_hash: refresh.hash(),
            previous_token_hash: None,
            generation: 0,
            rotated_at: now,
            created_at: now,
            // SECURITY: the epoch of the user item the password was checked against, not a
            // fresh read: a bump since (a password change, logout everywhere, disable)
            // leaves this session dead, however soon after it lands.
            session_epoch: Some(epoch),
            expires_at: now + self.refresh_idle_ttl,
            absolute_expires_at: now + self.session_max_age,
            revoked_at: None,
            revoke_reason: None,
            user_agent: meta.user_agent.clone(),
            source_ip: meta.source_ip.clone(),
            auth,
        };
        tokio::try_join!(self.sessions.create(&session), self.users.clear_attempts(&user.username))?;
        let issued = self.issue(keys, user, &session, refresh, now)?;
        audit_session(AuditEvent::LoginSucceeded, meta, &session, None);
        Ok(issued)
    }

    /// Issues the login challenge of `user`, whose first factor (`first_amr`: a password, or
    /// another provider's sign-in) passed at `now`: bound to the user's session epoch as it
    /// is now, [`MFA_CHALLENGE_TTL`] long, stored under the hash of a new token, with a
    /// passkey assertion started when the user has passkeys (and they are on).
    pub(super) async fn issue_login_challenge(&self, user: &UserRecord, factors: &Factors, first_amr: &str, now: u64) -> Result<MfaChallenge, AuthError> {
        let token = LinkToken::generate();
        let (webauthn, webauthn_state) = match (&self.passkeys, factors.passkeys.is_empty()) {
            (Some(passkeys), false) => {
                let (options, state) = passkeys.start_authentication(&factors.passkeys)?;
                (
                    Some(serde_json::to_value(options).map_err(|e| AuthError::unavailable("passkey options", e))?),
                    Some(state),
                )
            }
            _ => (None, None),
        };
        let methods = factors.offered_methods(webauthn.is_some());
        self.factors
            .issue_challenge(&Challenge {
                hash: token.hash(),
                username: user.username.clone(),
                session_epoch: user.session_epoch,
                password_at: now,
                failures: 0,
                expires_at: now + MFA_CHALLENGE_TTL,
                webauthn_state,
                webauthn_options: webauthn.as_ref().map(serde_json::Value::to_string),
                first_amr: vec![first_amr.to_owned()],
            })
            .await?;
        Ok(MfaChallenge {
            token,
            methods,
            expires_in: MFA_CHALLENGE_TTL,
            webauthn,
        })
    }

    /// A challenge still waiting for its answer, as it was issued: what may answer it and
    /// the passkey request, for a page that got its token only as a cookie (after a sign-in
    /// through another provider). `invalid_token` when unknown, used or expired.
    pub async fn pending_challenge(&self, mfa_token: &str) -> Result<MfaChallenge, AuthError> {
        let now = self.clock.now();
        let token = LinkToken::parse(mfa_token).ok_or(AuthError::InvalidToken)?;
        let challenge = self.factors.challenge(&token.hash(), now).await?.ok_or(AuthError::InvalidToken)?;
        let factors = self.factors.factors(&challenge.username).await?.unwrap_or_default();
        let webauthn = challenge.webauthn_options.as_deref().and_then(|o| serde_json::from_str(o).ok());
        let methods = factors.offered_methods(webauthn.is_some());
        Ok(MfaChallenge {
            token,
            methods,
            expires_in: challenge.expires_at - now,
            webauthn,
        })
    }
}
