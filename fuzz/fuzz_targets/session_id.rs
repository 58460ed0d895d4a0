//! The session id parser: any text as the id. What it accepts is 22 characters of base64url
//! for 16 bytes, and comes back unchanged.
#![no_main]

use auth_core::tokens::SessionId;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Some(id) = SessionId::parse(text) {
        assert_eq!(id.as_str(), text);
        assert_eq!(URL_SAFE_NO_PAD.decode(text).map(|bytes| bytes.len()), Ok(16), "{text:?}");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(URL_SAFE_NO_PAD.decode(text).unwrap_or_default()),
            text,
            "not canonical: {text:?}"
        );
    }
});
