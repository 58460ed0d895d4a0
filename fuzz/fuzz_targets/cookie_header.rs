//! The refresh cookie reader: any bytes, one `Cookie` header per line (those `http` refuses
//! as header values are skipped, as they never reach a function). Every value it returns
//! is a trimmed piece of one header between `refresh_token=` and the next `;`.
#![no_main]

use std::sync::LazyLock;

use auth_core::fuzzing::CookieReader;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

static READER: LazyLock<CookieReader> = LazyLock::new(CookieReader::new);

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    let mut lines = Vec::new();
    for line in data.split(|&b| b == b'\n').take(4) {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(COOKIE, value);
            lines.push(line);
        }
    }
    for value in READER.refresh_cookies(&headers) {
        assert!(!value.contains(';') && value.trim() == value, "{value:?}");
        let found = lines.iter().filter_map(|line| std::str::from_utf8(line).ok()).any(|line| {
            line.split(';')
                .any(|piece| piece.trim_start().strip_prefix("refresh_token=").is_some_and(|v| v.trim() == value))
        });
        assert!(found, "{value:?} is not a refresh cookie of {lines:?}");
    }
});
