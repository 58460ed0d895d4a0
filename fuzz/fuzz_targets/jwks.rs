//! The JWKS reader (`AUTH_PUBLIC_JWKS`, the public key store): any text as the document.
//! What it accepts lists each `kid` once, has a verifying key for each, and reads back the
//! same from its own serialisation (what `discovery` publishes).
#![no_main]

use std::collections::HashSet;

use auth_core::keys::{KeyDocument, PublicKeys};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|json: &str| {
    let Ok(keys) = PublicKeys::from_json(json) else { return };
    let kids: Vec<&str> = keys.jwks().keys.iter().map(|jwk| jwk.kid.as_str()).collect();
    assert_eq!(kids.iter().collect::<HashSet<_>>().len(), kids.len(), "a kid twice: {json}");
    assert!(kids.iter().all(|kid| keys.verifying_key(kid).is_some()));
    let published = serde_json::to_string(keys.jwks()).expect("a JWKS serialises");
    let again = PublicKeys::from_json(&published).expect("the published JWKS reads back");
    assert_eq!(again.jwks().keys.iter().map(|jwk| jwk.kid.as_str()).collect::<Vec<_>>(), kids);
});
