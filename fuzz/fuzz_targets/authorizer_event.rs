//! The authorizer's event reader: any text as the event. A token comes out only when the
//! text is an authorizer event with exactly one `Authorization: Bearer` value, and it is one
//! run of the JWT alphabet; the token header reader then takes it without a panic.
#![no_main]

use auth_core::fuzzing::authorizer_bearer;
use auth_core::tokens::AccessTokenHeader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|event: &str| {
    if let Some(token) = authorizer_bearer(event) {
        let jwt_alphabet = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
        assert!(!token.is_empty() && token.bytes().all(jwt_alphabet), "{token:?}");
        let _ = AccessTokenHeader::read(&token);
    }
});
