//! Password hashing with argon2id at OWASP parameters, always on a blocking thread.

use std::sync::Mutex;

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

/// A presented password of 1 to [`MAX_PASSWORD_BYTES`] bytes, checked before any work;
/// `invalid` is the 400's text, naming the field.
pub fn check_size(password: &SecretString, invalid: &'static str) -> Result<(), AuthError> {
    let len = password.expose_secret().len();
    if len == 0 || len > MAX_PASSWORD_BYTES {
        return Err(AuthError::InvalidRequest(invalid));
    }
    Ok(())
}

/// A hash with the same parameters, checked when the user does not exist (or its record
/// is unusable) so an unknown username costs the same time as a wrong password. Its
/// password is no secret: the result of checking it is thrown away, so knowing it logs in
/// as nobody (a test pins that).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$DsQFWbOOjmfiVumm3N9AKVLTUUhsZWr4CpHYVVYaIVc";

#[cfg(test)]
thread_local! {
    /// How many argon2id computations ran on this thread, so tests can see that every path
    /// does the work.
    static COMPUTATIONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn argon2() -> Result<Argon2<'static>, AuthError> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None).map_err(|e| AuthError::unavailable("argon2 parameters", e))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a new password (a PHC string). Blocks for tens of milliseconds: call it from
/// `spawn_blocking` or a CLI.
pub fn hash_password(password: &SecretString) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&crate::random::random_bytes::<16>()).map_err(|e| AuthError::unavailable("salt", e))?;
    let hash = argon2()?
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map_err(|e| AuthError::unavailable("argon2 hash", e))?;
    Ok(hash.to_string())
}

/// [`hash_password`] on a blocking thread, for a request handler.
pub async fn hash_new_password(password: SecretString) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AuthError::unavailable("password hashing task", e))?
}

/// Checks `password` against `stored` (or the dummy hash when `stored` is `None`) on a
/// blocking thread. Only argon2id hashes are accepted; a malformed stored hash fails, after
/// the same work as any other check.
pub async fn verify_password(password: SecretString, stored: Option<String>) -> Result<bool, AuthError> {
    tokio::task::spawn_blocking(move || check_password(password.expose_secret().as_bytes(), stored.as_deref()))
        .await
        .map_err(|e| AuthError::unavailable("password verification task", e))
}

/// The check itself: exactly one argon2id computation on every path.
fn check_password(password: &[u8], stored: Option<&str>) -> bool {
    let parsed = stored.and_then(|phc| PasswordHash::new(phc).ok());
    match parsed
        .filter(|p| p.algorithm == Algorithm::Argon2id.ident())
        .and_then(|hash| verify_against(password, &hash))
    {
        Some(verified) => verified,
        None => {
            // SECURITY: unknown user or an unusable record: spend the same time, then refuse.
            let _ = PasswordHash::new(DUMMY_HASH).ok().and_then(|dummy| verify_against(password, &dummy));
            false
        }
    }
}

/// The argon2id working memory (19 MiB at our parameters), allocated at the first check
/// and reused by every later one. Letting the crate allocate it per check, on tokio's
/// blocking threads, left glibc holding ~125 MB after 1,000 logins; one buffer keeps the
/// login function near 30 MB.
static WORKING_MEMORY: Mutex<Vec<Block>> = Mutex::new(Vec::new());

/// Stored hashes asking for more memory than this are refused: they are not ours, and
/// honouring them would let one record grow the buffer without bound.
const MAX_MEMORY_KIB: u32 = 256 * 1024;

/// Recomputes the hash of `password` with the stored salt and parameters, and compares it
/// with the stored one in constant time. `None` when the stored hash cannot be checked
/// (nothing computed: the caller then spends the same time on the dummy).
fn verify_against(password: &[u8], hash: &PasswordHash<'_>) -> Option<bool> {
    let (Some(salt), Some(expected)) = (hash.salt, hash.hash) else { return None };
    let params = Params::try_from(hash).ok()?;
    if params.m_cost() > MAX_MEMORY_KIB || hash.version.is_some_and(|v| v != u32::from(Version::V0x13)) || expected.len() > 64 {
        return None;
    }
    let mut salt_bytes = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_bytes).ok()?;
    let mut computed = [0u8; 64];
    let computed = &mut computed[..expected.len()];
    let mut memory = WORKING_MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let blocks = params.block_count();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    argon2.hash_password_into_with_memory(password, salt, computed, &mut memory[..blocks]).ok()?;
    #[cfg(test)]
    COMPUTATIONS.set(COMPUTATIONS.get() + 1);
    // SECURITY: constant-time comparison of the computed and stored hashes.
    Some(aws_lc_rs::constant_time::verify_slices_are_equal(computed, expected.as_bytes()).is_ok())
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

    const DUMMY_PASSWORD: &str = "unknown-user dummy password";

    /// The answer of `check` and how many argon2id computations it made (on this thread).
    fn counted(check: impl FnOnce() -> bool) -> (bool, usize) {
        let before = COMPUTATIONS.get();
        let answer = check();
        (answer, COMPUTATIONS.get() - before)
    }

    #[test]
    fn unknown_user_costs_a_full_check_and_never_verifies_even_with_the_dummy_password() {
        // The dummy is a real hash of OWASP cost whose full check succeeds for its password...
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let params = Params::try_from(&dummy).unwrap();
        assert_eq!((params.m_cost(), params.t_cost(), params.p_cost()), (MEMORY_KIB, ITERATIONS, PARALLELISM));
        let (matches, work) = counted(|| verify_against(DUMMY_PASSWORD.as_bytes(), &dummy) == Some(true));
        assert!(matches && work == 1);
        // ...and an unknown user pays for that check, yet its result never logs anyone in.
        let (verified, work) = counted(|| check_password(DUMMY_PASSWORD.as_bytes(), None));
        assert_eq!((verified, work), (false, 1));
    }

    #[test]
    fn unusable_stored_hashes_are_refused_after_the_same_argon2id_work() {
        let argon2i = "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$L0ATiVn8jEMrbeRF9IJnh5iCV4HoxHvMNSLnD8CqmbE";
        for stored in [argon2i, "not a hash", "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA"] {
            let (verified, work) = counted(|| check_password(DUMMY_PASSWORD.as_bytes(), Some(stored)));
            assert_eq!((verified, work), (false, 1), "{stored}");
        }
        let real = hash_password(&SecretString::from("right")).unwrap();
        let (verified, work) = counted(|| check_password(b"wrong", Some(&real)));
        assert_eq!((verified, work), (false, 1), "a wrong password costs the same one check");
    }
}
