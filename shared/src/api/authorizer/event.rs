//! Reading an authorizer event: the few fields the authorizer needs, parsed straight from
//! the event's JSON text, and the one `Authorization: Bearer` token it may carry.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// The payload version an HTTP API sends. Its denies are simple responses, never errors,
/// whatever else the event holds.
pub(super) const HTTP_API_VERSION: &str = "2.0";

/// Which gateway asked, from the event's `version` and `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gateway {
    HttpApi,
    RestToken,
    RestRequest,
}

/// The fields of an authorizer event this module reads, parsed straight from the event's
/// JSON text and borrowed from it. Building a `serde_json::Value` or `aws_lambda_events`'
/// request for every event (the whole request context, every header) took longer than
/// verifying the token; the authorizer needs seven fields, the client's address and user
/// agent for the audit line, and of the headers only `Authorization`. A field of the wrong
/// JSON type fails the parse: a deny. `Debug` never shows the bearer token.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthorizerEvent<'a> {
    #[serde(borrow, default)]
    pub(super) version: Option<Text<'a>>,
    #[serde(borrow, default, rename = "type")]
    pub(super) kind: Option<Text<'a>>,
    #[serde(borrow, default, rename = "headers")]
    pub(super) authorization: Option<AuthorizationHeaders<'a, false>>,
    #[serde(borrow, default, rename = "multiValueHeaders")]
    pub(super) multi_value_authorization: Option<AuthorizationHeaders<'a, true>>,
    #[serde(borrow, default)]
    pub(super) authorization_token: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) method_arn: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) route_key: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) request_context: Option<EventContext<'a>>,
}

impl fmt::Debug for AuthorizerEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizerEvent")
            .field("version", &self.version)
            .field("kind", &self.kind)
            .field("authorization", &self.authorization)
            .field("multi_value_authorization", &self.multi_value_authorization)
            .field("authorization_token", &self.authorization_token.as_ref().map(|_| "<redacted>"))
            .field("method_arn", &self.method_arn)
            .field("route_key", &self.route_key)
            .field("request_context", &self.request_context)
            .finish()
    }
}

/// Where the client is, for the audit line: `requestContext.http` in an HTTP API event,
/// `requestContext.identity` in a REST one.
#[derive(Debug, Deserialize)]
pub(super) struct EventContext<'a> {
    #[serde(borrow, default)]
    pub(super) http: Option<Client<'a>>,
    #[serde(borrow, default)]
    pub(super) identity: Option<Client<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Client<'a> {
    #[serde(borrow, default)]
    pub(super) source_ip: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub(super) user_agent: Option<Text<'a>>,
}

impl<'a> AuthorizerEvent<'a> {
    /// Parses an event from its JSON text; `None` when it is not an authorizer event we read.
    pub fn parse(text: &'a str) -> Option<Self> {
        let event: Self = serde_json::from_str(text).ok()?;
        event.gateway().is_some().then_some(event)
    }

    pub(crate) fn gateway(&self) -> Option<Gateway> {
        let kind = self.kind.as_deref()?;
        match self.version.as_deref() {
            Some(HTTP_API_VERSION) if kind.eq_ignore_ascii_case("REQUEST") => Some(Gateway::HttpApi),
            _ if kind.eq_ignore_ascii_case("TOKEN") => Some(Gateway::RestToken),
            None | Some("1.0") if kind.eq_ignore_ascii_case("REQUEST") => Some(Gateway::RestRequest),
            _ => None,
        }
    }

    /// The client's address and user agent, as far as the event tells.
    pub(super) fn client(&self) -> (Option<String>, Option<String>) {
        let client = self.request_context.as_ref().and_then(|c| c.http.as_ref().or(c.identity.as_ref()));
        let text = |field: Option<&Text<'_>>| field.map(|t| t.to_string());
        (
            text(client.and_then(|c| c.source_ip.as_ref())),
            text(client.and_then(|c| c.user_agent.as_ref())),
        )
    }

    /// The Bearer token, when exactly one `Authorization` header carries one.
    pub(crate) fn bearer(&self, gateway: Gateway) -> Option<&str> {
        if gateway == Gateway::RestToken {
            return self.authorization_token.as_deref().and_then(bearer_token);
        }
        // REST keeps only the last of repeated headers in `headers`; all are in `multiValueHeaders`.
        let repeated = self.multi_value_authorization.as_ref().map_or(0, |h| h.count);
        match &self.authorization {
            Some(AuthorizationHeaders { count: 1, last: Some(value) }) if repeated <= 1 => bearer_token(value),
            _ => None,
        }
    }
}

/// A JSON string borrowed from the event text, or copied when it holds escapes.
#[derive(Debug)]
pub(super) struct Text<'a>(Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(value)))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(value.to_owned())))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// The `Authorization` entries of a `headers` map (`MULTI = false`: string values) or a
/// `multiValueHeaders` map (`MULTI = true`: lists of strings), names in any case: how many
/// values there are and the last one. Other headers are skipped unread, so a request's
/// cookies or user agent are never copied. `Debug` shows the count, never the value.
#[derive(Default)]
pub(super) struct AuthorizationHeaders<'a, const MULTI: bool> {
    count: usize,
    last: Option<Text<'a>>,
}

impl<const MULTI: bool> fmt::Debug for AuthorizationHeaders<'_, MULTI> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationHeaders")
            .field("count", &self.count)
            .field("last", &self.last.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl<'de: 'a, 'a, const MULTI: bool> Deserialize<'de> for AuthorizationHeaders<'a, MULTI> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(AuthorizationHeadersVisitor::<MULTI>)
    }
}

struct AuthorizationHeadersVisitor<const MULTI: bool>;

impl<'de, const MULTI: bool> Visitor<'de> for AuthorizationHeadersVisitor<MULTI> {
    type Value = AuthorizationHeaders<'de, MULTI>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of header names to values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = AuthorizationHeaders { count: 0, last: None };
        while let Some(IsAuthorization(is_authorization)) = map.next_key()? {
            if !is_authorization {
                map.next_value::<IgnoredAny>()?;
            } else if MULTI {
                let values: Vec<Text<'de>> = map.next_value()?;
                found.count += values.len();
                found.last = values.into_iter().last();
            } else {
                found.count += 1;
                found.last = Some(map.next_value()?);
            }
        }
        Ok(found)
    }
}

/// A header name, read only as far as whether it is `Authorization` (any case).
struct IsAuthorization(bool);

impl<'de> Deserialize<'de> for IsAuthorization {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = IsAuthorization;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header name")
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
                Ok(IsAuthorization(name.eq_ignore_ascii_case("authorization")))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

/// `Bearer <jwt>`: scheme case-insensitive, exactly one token of JWT characters.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    let jwt_character = |b: u8| matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.');
    let well_formed = scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.bytes().all(jwt_character);
    well_formed.then_some(token)
}
