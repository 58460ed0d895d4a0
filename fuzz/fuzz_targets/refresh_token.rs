//! The refresh token parser: any text as the token. Only the exact form we issue is
//! accepted, so what it accepts encodes back to the same text.
#![no_main]

use auth_core::tokens::RefreshToken;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(token) = RefreshToken::parse(text) {
        assert_eq!(token.encode(), text);
    }
});
