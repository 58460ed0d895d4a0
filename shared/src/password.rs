//! Password hashing with argon2id at OWASP parameters, always on a blocking thread.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};

use crate::error::AuthError;

/// Memory cost in KiB (OWASP: 19 MiB).
pub const MEMORY_KIB: u32 = 19_456;
/// Iterations (OWASP: 2).
pub const ITERATIONS: u32 = 2;
/// Lanes (OWASP: 1).
pub const PARALLELISM: u32 = 1;
/// Longest accepted password in bytes; the request body limit keeps far longer ones out
/// before this is reached.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password `authctl` accepts for a new user.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A hash of a random password with the same parameters, checked when the user does not
/// exist so an unknown username costs the same time as a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$L0ATiVn8jEMrbeRF9IJnh5iCV4HoxHvMNSLnD8CqmbE";

fn argon2() -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).map_err(|e| AuthError::unavailable("argon2 parameters", e))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a new password (a PHC string). Blocks for tens of milliseconds: call it from
/// `spawn_blocking` or a CLI.
pub fn hash_password(password: &SecretString) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&crate::tokens::random_bytes::<16>()).map_err(|e| AuthError::unavailable("salt", e))?;
    let hash = argon2()?
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map_err(|e| AuthError::unavailable("argon2 hash", e))?;
    Ok(hash.to_string())
}

/// Checks `password` against `stored` (or the dummy hash when `stored` is `None`) on a
/// blocking thread. Only argon2id hashes are accepted; a malformed stored hash fails.
pub async fn verify_password(password: SecretString, stored: Option<String>) -> Result<bool, AuthError> {
    tokio::task::spawn_blocking(move || {
        let phc = stored.as_deref().unwrap_or(DUMMY_HASH);
        let Ok(parsed) = PasswordHash::new(phc) else {
            // Still spend the time, so a broken record is not visible from outside.
            let _ = verify_against(password.expose_secret(), DUMMY_HASH);
            return false;
        };
        if parsed.algorithm != Algorithm::Argon2id.ident() {
            let _ = verify_against(password.expose_secret(), DUMMY_HASH);
            return false;
        }
        let matches = Argon2::default().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok();
        matches && stored.is_some()
    })
    .await
    .map_err(|e| AuthError::unavailable("password verification task", e))
}

fn verify_against(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_uses_owasp_argon2id_parameters_and_verifies() {
        let password = SecretString::from("correct horse battery staple");
        let phc = hash_password(&password).unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert_eq!(parsed.algorithm, Algorithm::Argon2id.ident());
        let params = Params::try_from(&parsed).unwrap();
        assert_eq!((params.m_cost(), params.t_cost(), params.p_cost()), (MEMORY_KIB, ITERATIONS, PARALLELISM));
        assert!(verify_password(password.clone(), Some(phc.clone())).await.unwrap());
        assert!(!verify_password(SecretString::from("wrong"), Some(phc)).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_user_never_verifies_even_with_the_dummy_password() {
        assert!(!verify_password(SecretString::from("anything"), None).await.unwrap());
        let params = Params::try_from(&PasswordHash::new(DUMMY_HASH).unwrap()).unwrap();
        assert_eq!((params.m_cost(), params.t_cost(), params.p_cost()), (MEMORY_KIB, ITERATIONS, PARALLELISM));
    }

    #[tokio::test]
    async fn non_argon2id_hashes_are_refused() {
        let argon2i = "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$L0ATiVn8jEMrbeRF9IJnh5iCV4HoxHvMNSLnD8CqmbE";
        assert!(!verify_password(SecretString::from("x"), Some(argon2i.into())).await.unwrap());
        assert!(!verify_password(SecretString::from("x"), Some("not a hash".into())).await.unwrap());
    }
}
