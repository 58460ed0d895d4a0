//! The parsers a request reaches that are private to their modules, opened to the
//! coverage-guided fuzz targets in `fuzz/` (feature `fuzzing`; no function enables it). The
//! public ones (`AccessTokenHeader::read`, `RefreshToken::parse`, `SessionId::parse`,
//! `PublicKeys::from_json`) are fuzzed as they are.

use http::HeaderMap;

use crate::api::authorizer::AuthorizerEvent;
use crate::api::http::HttpPolicy;
use crate::testing;

/// The Bearer token the authorizer reads from an event's JSON text, as it reads it: `None`
/// for a text that is not an authorizer event, or one without exactly one well-formed token.
pub fn authorizer_bearer(event: &str) -> Option<String> {
    let event = AuthorizerEvent::parse(event)?;
    event.bearer(event.gateway()?).map(str::to_owned)
}

/// The refresh cookie reader of the HTTP functions, with the default cookie name.
pub struct CookieReader(HttpPolicy);

impl CookieReader {
    /// The reader of a default configuration (cookie `refresh_token`).
    pub fn new() -> Self {
        Self(HttpPolicy::new(&testing::config()))
    }

    /// The values of every refresh cookie the headers carry, in order.
    pub fn refresh_cookies<'a>(&self, headers: &'a HeaderMap) -> Vec<&'a str> {
        self.0.cookie_values(headers)
    }
}

impl Default for CookieReader {
    fn default() -> Self {
        Self::new()
    }
}
