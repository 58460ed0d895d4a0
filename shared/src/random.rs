//! Randomness from the OS CSPRNG (through aws-lc): session ids, `jti`s, refresh secrets,
//! salts and keys all come from here.

use aws_lc_rs::rand;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// 128 random bits, base64url: session ids and `jti`s.
pub fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<16>())
}

/// `N` random bytes.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The OS CSPRNG does not fail on Linux; if it ever did, an all-zero value would be
    // catastrophic, so this is the one place we prefer to abort the request.
    #[allow(clippy::expect_used)]
    rand::fill(&mut bytes).expect("OS random number generator failed");
    bytes
}
