//! The `authorizer` Lambda: API Gateway Lambda authorizer for HTTP and REST APIs.
//! All logic is in `auth_core::authorizer`; this crate only adapts the runtime event.

use auth_core::authorizer::{Authorizer, Unauthorized};
use lambda_http::LambdaEvent;
use serde_json::Value;

/// Answers one authorizer invocation (a deny is an answer, or `Unauthorized` for REST).
pub async fn handle(authorizer: &Authorizer, event: LambdaEvent<Value>) -> Result<Value, Unauthorized> {
    authorizer.handle(&event.payload, Some(&event.context.request_id)).await
}
