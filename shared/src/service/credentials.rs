//! The password check that login and the account's password change share: one attempt of
//! the per-account throttle reserved before any hashing (so parallel guesses cannot outrun
//! it), one full argon2id verification whether or not the user exists, and one failure
//! recorded whatever the reason. A password change is therefore no faster or unthrottled
//! way to guess a password than login.

use secrecy::SecretString;

use crate::error::AuthError;
use crate::password::verify_password;
use crate::password_policy::normalize;
use crate::store::{AttemptReservation, UserRecord, UserStore};

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
