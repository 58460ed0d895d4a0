//! The `authorizer` Lambda: API Gateway Lambda authorizer for HTTP and REST APIs.
//! All logic is in `auth_core::authorizer`; this crate only adapts the runtime event.

use auth_core::api::authorizer::{Authorizer, AuthorizerResponse, Unauthorized};
use lambda_http::LambdaEvent;
use serde_json::value::RawValue;

/// Answers one authorizer invocation (a deny is an answer, or `Unauthorized` for REST).
/// The runtime hands over the event's JSON text unparsed: the authorizer reads the few
/// fields it needs straight from it, and anything it cannot read is a deny, not an error.
pub async fn handle(authorizer: &Authorizer, event: LambdaEvent<Box<RawValue>>) -> Result<AuthorizerResponse, Unauthorized> {
    authorizer.handle(event.payload.get(), Some(&event.context.request_id)).await
}
