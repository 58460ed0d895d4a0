//! The access token's header reader (a fixed buffer on the stack): any text as the token.
//! What it accepts has three dot-separated parts and a header that decodes to a JSON object
//! of exactly `alg`, `typ` = `at+jwt` and `kid`, with the `kid` it returned.
#![no_main]

use auth_core::tokens::{ACCESS_TOKEN_TYP, AccessTokenHeader, MAX_ACCESS_TOKEN_LEN};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|token: &str| {
    let Ok(header) = AccessTokenHeader::read(token) else { return };
    assert!(token.len() <= MAX_ACCESS_TOKEN_LEN);
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token:?}");
    let json = URL_SAFE_NO_PAD.decode(parts[0]).expect("an accepted header is base64url");
    let Value::Object(members) = serde_json::from_slice(&json).expect("an accepted header is JSON") else {
        panic!("an accepted header is not an object: {token:?}");
    };
    let mut names: Vec<&str> = members.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["alg", "kid", "typ"], "{token:?}");
    assert_eq!(members["typ"], ACCESS_TOKEN_TYP);
    assert_eq!(members["kid"], header.kid.as_str());
});
