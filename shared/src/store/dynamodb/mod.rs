//! The DynamoDB implementation of the stores, and the table definitions that
//! `authctl local-setup` and the tests create. No scans, ever.

mod factors;
mod identities;
mod links;
mod sessions;
mod standing;
mod tables;
mod users;

pub use sessions::DynamoSessions;
pub use standing::{DynamoStanding, SESSION_STANDING_ATTRIBUTES, USER_STANDING_ATTRIBUTES};
pub use tables::create_tables;
pub use users::DynamoUsers;

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType,
    ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TimeToLiveSpecification, TransactWriteItem, Update,
};

use super::{
    ATTEMPT_LEASE_SECS, AttemptReservation, LoginThrottle, REVOKED_RETENTION_SECS, Revocation, RevokeIf, Rotation, RotationOutcome, SessionRecord,
    SessionStanding, SessionStore, StandingStore, THROTTLE_AFTER_FAILURES, THROTTLE_WINDOW_SECS, UserRecord, UserStanding, UserStore,
};
use crate::claims::Authentication;
use crate::error::{AuthError, sdk_error};
use crate::tokens::{SessionId, TokenHash};

/// Name of the sessions-by-user index: key `user_id`, sort key `created_at`, keys only, so
/// a listing reads a user's newest sessions first and stops at its limit. (It replaced
/// `by_user`, which had no sort key: a listing had to read every session of the user.)
pub const BY_USER_INDEX: &str = "by_user_created";
/// Longest stored user agent, so a session item stays under 1 KB (one write unit).
pub const MAX_USER_AGENT_BYTES: usize = 256;
/// Prefix of the throttle bookkeeping items in the users table.
const THROTTLE_PREFIX: &str = "throttle#";

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn get_s(item: &Item, key: &str) -> Option<String> {
    item.get(key)?.as_s().ok().cloned()
}
fn get_n(item: &Item, key: &str) -> Option<u64> {
    item.get(key)?.as_n().ok()?.parse().ok()
}

/// Cuts a string to at most `max` bytes on a character boundary.
fn truncate_bytes(value: &str, max: usize) -> String {
    let mut end = value.len().min(max);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].to_owned()
}

fn session_to_item(session: &SessionRecord) -> Item {
    let mut item = Item::from([
        ("session_id".into(), s(session.session_id.as_str())),
        ("user_id".into(), s(&session.user_id)),
        ("username".into(), s(&session.username)),
        ("token_hash".into(), AttributeValue::B(Blob::new(session.token_hash.0.to_vec()))),
        ("generation".into(), n(session.generation)),
        ("rotated_at".into(), n(session.rotated_at)),
        ("created_at".into(), n(session.created_at)),
        ("expires_at".into(), n(session.expires_at)),
        ("absolute_expires_at".into(), n(session.absolute_expires_at)),
        ("amr".into(), s(session.auth.amr.join(" "))),
        ("auth_time".into(), n(session.auth.auth_time)),
    ]);
    if let Some(epoch) = session.session_epoch {
        item.insert("session_epoch".into(), n(epoch));
    }
    if let Some(ua) = &session.user_agent {
        item.insert("user_agent".into(), s(truncate_bytes(ua, MAX_USER_AGENT_BYTES)));
    }
    if let Some(ip) = &session.source_ip {
        item.insert("source_ip".into(), s(truncate_bytes(ip, 64)));
    }
    if let Some(previous) = &session.previous_token_hash {
        item.insert("previous_token_hash".into(), AttributeValue::B(Blob::new(previous.0.to_vec())));
    }
    if let Some(at) = session.revoked_at {
        item.insert("revoked_at".into(), n(at));
    }
    if let Some(reason) = &session.revoke_reason {
        item.insert("revoke_reason".into(), s(reason));
    }
    item
}

/// Reads a session item; an item missing a required attribute is treated as absent
/// (fail closed: nothing half-understood is trusted).
fn session_from_item(item: &Item) -> Option<SessionRecord> {
    Some(SessionRecord {
        session_id: SessionId::parse(&get_s(item, "session_id")?)?,
        user_id: get_s(item, "user_id")?,
        username: get_s(item, "username")?,
        token_hash: TokenHash::from_slice(item.get("token_hash")?.as_b().ok()?.as_ref())?,
        previous_token_hash: match item.get("previous_token_hash") {
            None => None,
            Some(value) => Some(TokenHash::from_slice(value.as_b().ok()?.as_ref())?),
        },
        generation: get_n(item, "generation")?,
        rotated_at: get_n(item, "rotated_at")?,
        created_at: get_n(item, "created_at")?,
        // Items written before epochs existed have none (see `UserStanding::accepts`).
        session_epoch: get_n(item, "session_epoch"),
        expires_at: get_n(item, "expires_at")?,
        absolute_expires_at: get_n(item, "absolute_expires_at")?,
        revoked_at: get_n(item, "revoked_at"),
        revoke_reason: get_s(item, "revoke_reason"),
        user_agent: get_s(item, "user_agent"),
        source_ip: get_s(item, "source_ip"),
        auth: auth_from_item(item)?,
    })
}

/// A session's `amr` and `auth_time`. A session from before they were stored was opened
/// with a password at its creation; a stored value that does not read is no session.
fn auth_from_item(item: &Item) -> Option<Authentication> {
    let created_at = get_n(item, "created_at")?;
    match (item.get("amr"), item.get("auth_time")) {
        (None, None) => Some(Authentication::password(created_at)),
        (Some(amr), Some(_)) => Some(Authentication {
            amr: amr.as_s().ok()?.split_whitespace().map(str::to_owned).collect(),
            auth_time: get_n(item, "auth_time")?,
        }),
        _ => None,
    }
}

fn user_to_item(user: &UserRecord) -> Item {
    let mut item = Item::from([
        ("username".into(), s(&user.username)),
        ("user_id".into(), s(&user.user_id)),
        ("password_hash".into(), s(&user.password_hash)),
        ("roles".into(), AttributeValue::L(user.roles.iter().map(s).collect())),
        ("disabled".into(), AttributeValue::Bool(user.disabled)),
        ("password_changed_at".into(), n(user.password_changed_at)),
        ("session_epoch".into(), n(user.session_epoch)),
        ("email_verified".into(), AttributeValue::Bool(user.email_verified)),
    ]);
    if let Some(at) = user.expires_at {
        item.insert("expires_at".into(), n(at));
    }
    item
}

fn user_from_item(item: &Item) -> Option<UserRecord> {
    let roles = match item.get("roles") {
        Some(AttributeValue::L(list)) => list.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
        Some(AttributeValue::Ss(set)) => set.clone(),
        _ => Vec::new(),
    };
    Some(UserRecord {
        username: get_s(item, "username")?,
        user_id: get_s(item, "user_id")?,
        password_hash: get_s(item, "password_hash")?,
        roles,
        // A missing flag is read as disabled: fail closed.
        disabled: item.get("disabled").and_then(|v| v.as_bool().ok()).copied().unwrap_or(true),
        password_changed_at: get_n(item, "password_changed_at").unwrap_or(0),
        session_epoch: get_n(item, "session_epoch").unwrap_or(0),
        legacy_sessions_valid_after: legacy_point(item),
        // Users from before sign-up, and operators' users, are verified.
        email_verified: item.get("email_verified").and_then(|v| v.as_bool().ok()).copied().unwrap_or(true),
        expires_at: get_n(item, "expires_at"),
    })
}

/// The clock rule's revocation point on a user item written before epochs (see
/// `UserRecord::legacy_sessions_valid_after`); nothing writes `sessions_valid_after` now.
pub(super) fn legacy_point(item: &Item) -> u64 {
    let valid_after = get_n(item, "sessions_valid_after").unwrap_or(0);
    valid_after.max(get_n(item, "password_changed_at").unwrap_or(0))
}

fn throttle_from_item(item: &Item) -> LoginThrottle {
    let count = |key| get_n(item, key).and_then(|v| u32::try_from(v).ok()).unwrap_or(0);
    LoginThrottle {
        attempts: count("attempts"),
        allowed: count("allowed"),
        last_attempt_at: get_n(item, "last_attempt_at").unwrap_or(0),
        throttled_until: get_n(item, "throttled_until").unwrap_or(0),
    }
}

/// The outcome of a conditional write that reads nothing back: `true` when it was written,
/// `false` when its condition failed (an answer, not an error); anything else is a 503.
fn written<T, E, R>(result: Result<T, SdkError<E, R>>, operation: &str) -> Result<bool, AuthError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(sdk_error(operation, e)),
    }
}

/// The outcome of a `TransactWriteItems`, as [`written`] for one item: `true` when every
/// write landed, `false` when a condition failed (then none did); anything else is a 503.
fn transacted<R: std::fmt::Debug>(
    result: Result<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsOutput, SdkError<TransactWriteItemsError, R>>,
    operation: &str,
) -> Result<bool, AuthError> {
    match result {
        Ok(_) => Ok(true),
        Err(e) => match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                if cancelled.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed")) =>
            {
                Ok(false)
            }
            _ => Err(sdk_error(operation, e)),
        },
    }
}

/// The condition that an item's `session_epoch` is `epoch` (bound as `:epoch`); an item
/// without one is at epoch 0.
fn epoch_is(epoch: u64) -> &'static str {
    match epoch {
        0 => "(attribute_not_exists(session_epoch) OR session_epoch = :epoch)",
        _ => "session_epoch = :epoch",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_item_round_trips_and_cuts_the_user_agent() {
        let session = SessionRecord {
            session_id: SessionId::generate(),
            user_id: "u1".into(),
            username: "a@example.com".into(),
            token_hash: TokenHash([7; 32]),
            previous_token_hash: Some(TokenHash([6; 32])),
            generation: 3,
            rotated_at: 10,
            created_at: 5,
            expires_at: 100,
            absolute_expires_at: 200,
            session_epoch: Some(4),
            revoked_at: None,
            revoke_reason: None,
            user_agent: Some("é".repeat(300)),
            source_ip: Some("127.0.0.1".into()),
            auth: Authentication::password(5).with_otp(9),
        };
        let item = session_to_item(&session);
        let back = session_from_item(&item).unwrap();
        assert!(back.user_agent.as_ref().unwrap().len() <= MAX_USER_AGENT_BYTES);
        assert_eq!(back.token_hash, session.token_hash);
        assert_eq!(back.generation, 3);
        assert_eq!(back.session_epoch, Some(4));
        assert_eq!(back.auth, session.auth);
        let mut before_amr = item.clone();
        before_amr.remove("amr");
        before_amr.remove("auth_time");
        assert_eq!(session_from_item(&before_amr).unwrap().auth, Authentication::password(5), "written before amr");
        let mut legacy = item.clone();
        legacy.remove("session_epoch");
        assert_eq!(session_from_item(&legacy).unwrap().session_epoch, None, "written before epochs");
        let mut incomplete = item.clone();
        incomplete.remove("token_hash");
        assert!(session_from_item(&incomplete).is_none());
    }

    #[test]
    fn user_without_disabled_flag_is_treated_as_disabled() {
        let mut item = user_to_item(&UserRecord::new("a@example.com", "u1", "$argon2id$...", vec!["admin".into()]));
        assert!(!user_from_item(&item).unwrap().disabled);
        item.remove("disabled");
        assert!(user_from_item(&item).unwrap().disabled);
    }
}
