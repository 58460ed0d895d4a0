//! The password check that login and the account's password change share: one attempt of
//! the per-account throttle reserved before any hashing (so parallel guesses cannot outrun
//! it), one full argon2id verification whether or not the user exists, and one failure
//! recorded whatever the reason. A password change is therefore no faster or unthrottled
//! way to guess a password than login. Second factors (the login challenge and the step-up)
//! are checked under the same throttle by [`check_factor`].

use secrecy::SecretString;

use crate::error::AuthError;
use crate::factors::{FactorAnswer, FactorUse, Factors, OTP_AMR};
use crate::passkeys::{Passkeys, StoredPasskey, amr_of};
use crate::password::verify_password;
use crate::password_policy::normalize;
use crate::store::{AttemptReservation, FactorStore, UserRecord, UserStore};
use crate::tokens::TokenHash;

/// What a password check found.
#[derive(Debug)]
pub enum PasswordCheck {
    /// The password is the user's and the account is enabled.
    Passed(UserRecord),
    /// The account is throttled; nothing was hashed.
    Throttled {
        /// The user, when there is one (for the audit line).
        user_id: Option<String>,
        /// Seconds until the next attempt is accepted.
        retry_after_secs: u64,
    },
    /// Unknown user, wrong password or disabled account; the failure is recorded.
    Failed {
        /// The user, when there is one (for the audit line).
        user_id: Option<String>,
        /// `unknown_user`, `wrong_password` or `disabled`: for the audit line only, never
        /// for the client.
        reason: &'static str,
    },
}

/// Checks `password` for `username` (already normalised) at `now`. The throttle attempt is
/// left reserved on success: the caller clears it once what the password was for is done.
pub async fn check_password(users: &dyn UserStore, username: &str, password: &SecretString, now: u64) -> Result<PasswordCheck, AuthError> {
    let (user, reservation) = tokio::try_join!(users.get(username), users.reserve_attempt(username, now))?;
    // An unverified sign-up past its time is no user: its address is free again.
    let user = user.filter(|user| user.is_present(now));
    let attempts = match reservation {
        AttemptReservation::Granted { attempts } => attempts,
        AttemptReservation::Refused { retry_after_secs } => {
            return Ok(PasswordCheck::Throttled {
                user_id: user.map(|u| u.user_id),
                retry_after_secs,
            });
        }
    };
    // Hashed passwords are NFKC-normalised: the same text typed another way matches.
    let verified = verify_password(normalize(password), user.as_ref().map(|u| u.password_hash.clone())).await?;
    match user {
        Some(user) if verified && !user.disabled => Ok(PasswordCheck::Passed(user)),
        other => {
            let reason = match &other {
                None => "unknown_user",
                Some(u) if u.disabled => "disabled",
                Some(_) => "wrong_password",
            };
            users.record_failure(username, attempts, now).await?;
            Ok(PasswordCheck::Failed {
                user_id: other.map(|u| u.user_id),
                reason,
            })
        }
    }
}

/// What a second-factor check found.
#[derive(Debug)]
pub enum FactorCheck {
    /// The answer was right and is now used (and the challenge with it, when there was
    /// one); the `amr` values it adds.
    Passed(Vec<&'static str>),
    /// The account is throttled; nothing was checked.
    Throttled {
        /// Seconds until the next attempt is accepted.
        retry_after_secs: u64,
    },
    /// Wrong, or right but already used (or its challenge just was); the failure is
    /// recorded. `reason` is for the audit line only.
    Failed {
        /// `wrong_code` or `replayed`.
        reason: &'static str,
    },
}

/// A second factor an answer proved: the use to write, and what it adds to `amr`.
#[derive(Debug)]
pub struct Verified {
    /// The conditional write that makes it single-use.
    pub used: FactorUse,
    /// RFC 8176 values.
    pub amr: Vec<&'static str>,
}

/// A TOTP or recovery code checked against the user's factors.
pub fn verify_code(answer: &FactorAnswer, factors: &Factors, now: u64) -> Option<Verified> {
    answer.check(factors, now).map(|used| Verified { used, amr: OTP_AMR.to_vec() })
}

/// What a second-factor answer proves: a code against the factors, or a passkey assertion
/// against the ceremony started for it (`state`) and the user's passkey it names. A refused
/// assertion is a wrong answer, like a wrong code.
pub fn verify_answer(
    passkeys: Option<&Passkeys>,
    answer: &FactorAnswer,
    factors: &Factors,
    state: Option<&str>,
    now: u64,
) -> Result<Option<Verified>, AuthError> {
    let FactorAnswer::Passkey(credential) = answer else {
        return Ok(verify_code(answer, factors, now));
    };
    let (Some(passkeys), Some(state), Some(stored)) = (passkeys, state, factors.passkey(&credential.id)) else {
        return Ok(None);
    };
    match passkeys.finish(credential, state, stored, false) {
        Ok((result, after)) => Ok(Some(Verified {
            used: FactorUse::Passkey {
                before: stored.key.clone(),
                after: StoredPasskey { last_used_at: now, ..after },
            },
            amr: amr_of(&result).to_vec(),
        })),
        Err(AuthError::InvalidPasskey) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Checks a second-factor answer of `username` with `verify` (a code, or a passkey
/// assertion against its ceremony), under the same per-account throttle as passwords (one
/// attempt reserved before the check, a failure recorded), and uses it in one conditional
/// write, with `challenge` when a login is being completed: a TOTP step, a recovery code or
/// a passkey's counter passes once, however many requests race with it. A pass clears the
/// throttle (a login's, with the attempt its password check left reserved, as its session
/// is written).
pub async fn check_factor(
    users: &dyn UserStore,
    factors: &dyn FactorStore,
    username: &str,
    verify: impl FnOnce(&Factors) -> Result<Option<Verified>, AuthError>,
    challenge: Option<&TokenHash>,
    now: u64,
) -> Result<FactorCheck, AuthError> {
    let (stored, reservation) = tokio::try_join!(factors.factors(username), users.reserve_attempt(username, now))?;
    let attempts = match reservation {
        AttemptReservation::Granted { attempts } => attempts,
        AttemptReservation::Refused { retry_after_secs } => return Ok(FactorCheck::Throttled { retry_after_secs }),
    };
    let verified = match &stored {
        Some(stored) => verify(stored)?,
        None => None,
    };
    let reason = match verified {
        None => "wrong_code",
        Some(verified) if factors.use_factor(username, &verified.used, challenge, now).await? => {
            // A login clears the counter when its session is written; a step-up here.
            if challenge.is_none() {
                users.clear_attempts(username).await?;
            }
            return Ok(FactorCheck::Passed(verified.amr));
        }
        Some(_) => "replayed",
    };
    users.record_failure(username, attempts, now).await?;
    Ok(FactorCheck::Failed { reason })
}
