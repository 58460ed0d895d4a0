//! The DynamoDB implementation of the stores, and the table definitions that
//! `authctl local-setup` and the tests create. No scans, ever.

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
        ("session_epoch".into(), n(session.session_epoch)),
        ("expires_at".into(), n(session.expires_at)),
        ("absolute_expires_at".into(), n(session.absolute_expires_at)),
    ]);
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
        // Items written before epochs existed read as epoch 0, as their users do.
        session_epoch: get_n(item, "session_epoch").unwrap_or(0),
        expires_at: get_n(item, "expires_at")?,
        absolute_expires_at: get_n(item, "absolute_expires_at")?,
        revoked_at: get_n(item, "revoked_at"),
        revoke_reason: get_s(item, "revoke_reason"),
        user_agent: get_s(item, "user_agent"),
        source_ip: get_s(item, "source_ip"),
    })
}

fn user_to_item(user: &UserRecord) -> Item {
    Item::from([
        ("username".into(), s(&user.username)),
        ("user_id".into(), s(&user.user_id)),
        ("password_hash".into(), s(&user.password_hash)),
        ("roles".into(), AttributeValue::L(user.roles.iter().map(s).collect())),
        ("disabled".into(), AttributeValue::Bool(user.disabled)),
        ("password_changed_at".into(), n(user.password_changed_at)),
        ("session_epoch".into(), n(user.session_epoch)),
    ])
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
    })
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

/// Sessions in DynamoDB.
#[derive(Clone)]
pub struct DynamoSessions {
    client: Client,
    table: String,
}

impl DynamoSessions {
    /// Sessions in `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }
}

#[async_trait]
impl SessionStore for DynamoSessions {
    async fn create(&self, session: &SessionRecord) -> Result<(), AuthError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(session_to_item(session)))
            .condition_expression("attribute_not_exists(session_id)")
            .send()
            .await
            .map_err(|e| sdk_error("PutItem session", e))?;
        Ok(())
    }

    async fn rotate(&self, rotation: &Rotation) -> Result<RotationOutcome, AuthError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("session_id", s(rotation.session_id.as_str()))
            .update_expression(
                "SET token_hash = :new_hash, previous_token_hash = :expected_hash, generation = :next_generation, \
                 rotated_at = :now, expires_at = :idle_expires_at",
            )
            // SECURITY: the rotation condition. Only the holder of the current token rotates,
            // only once, and never a revoked or expired session.
            .condition_expression(
                "token_hash = :expected_hash AND generation = :generation AND attribute_not_exists(revoked_at) \
                 AND expires_at > :now AND absolute_expires_at > :now",
            )
            .expression_attribute_values(":new_hash", AttributeValue::B(Blob::new(rotation.new_hash.0.to_vec())))
            .expression_attribute_values(":expected_hash", AttributeValue::B(Blob::new(rotation.expected_hash.0.to_vec())))
            .expression_attribute_values(":generation", n(rotation.expected_generation))
            .expression_attribute_values(":next_generation", n(rotation.expected_generation + 1))
            .expression_attribute_values(":now", n(rotation.now))
            .expression_attribute_values(":idle_expires_at", n(rotation.idle_expires_at))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(out) => {
                let session = out
                    .attributes()
                    .and_then(session_from_item)
                    .ok_or_else(|| AuthError::unavailable("UpdateItem session", "unreadable item after rotation"))?;
                Ok(RotationOutcome::Rotated(session))
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => Ok(RotationOutcome::Rejected(failed.item().and_then(session_from_item))),
                _ => Err(sdk_error("UpdateItem session", e)),
            },
        }
    }

    async fn revoke(&self, session_id: &SessionId, condition: RevokeIf<'_>, reason: &str, now: u64) -> Result<Revocation, AuthError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("session_id", s(session_id.as_str()))
            .update_expression("SET revoked_at = :now, revoke_reason = :reason, expires_at = :retained_until")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":retained_until", n(now + REVOKED_RETENTION_SECS))
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        request = match condition {
            // SECURITY: only the holder of the current token of a live session, or of the one
            // its last rotation replaced, can end it (and, with `everywhere`, the user's other
            // sessions); a session id alone (it is in every access token) or an expired token
            // must not log anyone out.
            RevokeIf::Holds(hash) => request
                .condition_expression(
                    "(token_hash = :expected_hash OR previous_token_hash = :expected_hash) AND attribute_not_exists(revoked_at) \
                     AND expires_at > :now AND absolute_expires_at > :now",
                )
                .expression_attribute_values(":expected_hash", AttributeValue::B(Blob::new(hash.0.to_vec()))),
            RevokeIf::NotRevoked => request.condition_expression("attribute_exists(session_id) AND attribute_not_exists(revoked_at)"),
            RevokeIf::EpochBelow(epoch) => request
                .condition_expression(
                    "attribute_exists(session_id) AND attribute_not_exists(revoked_at) \
                     AND (attribute_not_exists(session_epoch) OR session_epoch < :epoch)",
                )
                .expression_attribute_values(":epoch", n(epoch)),
            // SECURITY: the owner is checked in the write itself: a session id of another
            // user (or none) fails the condition and nothing is written.
            RevokeIf::LiveOwnedBy(user_id) => request
                .condition_expression("user_id = :user_id AND attribute_not_exists(revoked_at) AND expires_at > :now AND absolute_expires_at > :now")
                .expression_attribute_values(":user_id", s(user_id)),
        };
        match request.send().await {
            Ok(out) => Ok(match out.attributes().and_then(session_from_item) {
                Some(session) => Revocation::Revoked(session),
                None => Revocation::Refused(None),
            }),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => Ok(Revocation::Refused(failed.item().and_then(session_from_item))),
                _ => Err(sdk_error("UpdateItem revoke", e)),
            },
        }
    }

    async fn get(&self, session_id: &SessionId) -> Result<Option<SessionRecord>, AuthError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("session_id", s(session_id.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem session", e))?;
        Ok(out.item().and_then(session_from_item))
    }

    async fn list_for_user(&self, user_id: &str, limit: usize) -> Result<Vec<SessionId>, AuthError> {
        let mut ids = Vec::new();
        let mut start_key = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(BY_USER_INDEX)
                .key_condition_expression("user_id = :user_id")
                .expression_attribute_values(":user_id", s(user_id))
                // Newest first, and no more items read than asked for.
                .scan_index_forward(false)
                .set_limit(i32::try_from(limit - ids.len()).ok())
                .set_exclusive_start_key(start_key)
                .send()
                .await
                .map_err(|e| sdk_error("Query by_user_created", e))?;
            ids.extend(out.items().iter().filter_map(|item| SessionId::parse(&get_s(item, "session_id")?)));
            start_key = out.last_evaluated_key().cloned();
            if start_key.is_none() || ids.len() >= limit {
                ids.truncate(limit);
                return Ok(ids);
            }
        }
    }
}

/// Users (and throttle bookkeeping items `throttle#<username>`) in DynamoDB. Knows the
/// sessions table too: the self-service password change moves the caller's session to the
/// new epoch in the same transaction as the change.
#[derive(Clone)]
pub struct DynamoUsers {
    client: Client,
    table: String,
    sessions_table: String,
}

impl DynamoUsers {
    /// Users in `table`, their sessions in `sessions_table`.
    pub fn new(client: Client, table: impl Into<String>, sessions_table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            sessions_table: sessions_table.into(),
        }
    }

    fn key(username: &str) -> AttributeValue {
        s(username)
    }

    fn throttle_key(username: &str) -> AttributeValue {
        s(format!("{THROTTLE_PREFIX}{username}"))
    }
}

#[async_trait]
impl UserStore for DynamoUsers {
    /// One cheap read of a key that never exists: DNS, TCP and TLS are done before the
    /// first login.
    async fn warm(&self) {
        let result = self.client.get_item().table_name(&self.table).key("username", s("warmup#")).send().await;
        if let Err(e) = result {
            tracing::warn!(error = %DisplayErrorContext(e), "warming the DynamoDB connection failed");
        }
    }

    async fn get(&self, username: &str) -> Result<Option<UserRecord>, AuthError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("username", Self::key(username))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem user", e))?;
        Ok(out.item().and_then(user_from_item))
    }

    async fn reserve_attempt(&self, username: &str, now: u64) -> Result<AttemptReservation, AuthError> {
        let key = Self::throttle_key(username);
        // Kept long enough for the longest throttle plus a quiet window; the item then expires.
        let expires_at = now + 2 * THROTTLE_WINDOW_SECS;
        let fresh_since = now.saturating_sub(THROTTLE_WINDOW_SECS);
        for _ in 0..2 {
            // SECURITY: the attempt is counted before the password is checked, and only while
            // the account is not throttled and fewer than the allowed attempts are taken, in
            // one conditional write: parallel guesses cannot all pass a check read earlier.
            let reserved = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("username", key.clone())
                .update_expression("SET attempts = if_not_exists(attempts, :zero) + :one, last_attempt_at = :now, expires_at = :expires")
                .condition_expression(
                    "(attribute_not_exists(attempts) OR attempts < :base OR attempts < allowed OR last_attempt_at <= :lease_expired) \
                     AND (attribute_not_exists(throttled_until) OR throttled_until <= :now) \
                     AND (attribute_not_exists(last_attempt_at) OR last_attempt_at >= :fresh_since)",
                )
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":base", n(THROTTLE_AFTER_FAILURES))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":fresh_since", n(fresh_since))
                .expression_attribute_values(":lease_expired", n(now.saturating_sub(ATTEMPT_LEASE_SECS)))
                .expression_attribute_values(":expires", n(expires_at))
                .return_values(ReturnValue::UpdatedNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            let seen = match reserved {
                Ok(out) => {
                    let attempts = out.attributes().map(throttle_from_item).map_or(u32::MAX, |t| t.attempts);
                    return Ok(AttemptReservation::Granted { attempts });
                }
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(failed)) => failed.item().map(throttle_from_item).unwrap_or_default(),
                    _ => return Err(sdk_error("UpdateItem throttle", e)),
                },
            };
            if !seen.is_stale(now) {
                return Ok(AttemptReservation::Refused {
                    retry_after_secs: seen.refusal(now).unwrap_or(1),
                });
            }
            // A counter quiet for a whole window starts over with this attempt, unless another
            // attempt restarted it first (then the loop reserves after that one).
            let restarted = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("username", key.clone())
                .update_expression("SET attempts = :one, allowed = :base, throttled_until = :zero, last_attempt_at = :now, expires_at = :expires")
                .condition_expression("last_attempt_at = :seen_last")
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":base", n(THROTTLE_AFTER_FAILURES))
                .expression_attribute_values(":now", n(now))
                .expression_attribute_values(":expires", n(expires_at))
                .expression_attribute_values(":seen_last", n(seen.last_attempt_at))
                .send()
                .await;
            if written(restarted, "UpdateItem throttle")? {
                return Ok(AttemptReservation::Granted { attempts: 1 });
            }
        }
        Ok(AttemptReservation::Refused { retry_after_secs: 1 })
    }

    async fn record_failure(&self, username: &str, attempts: u32, now: u64) -> Result<(), AuthError> {
        let Some(secs) = LoginThrottle::throttle_secs(attempts) else { return Ok(()) };
        let until = now + secs;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("username", Self::throttle_key(username))
            .update_expression("SET throttled_until = :until, allowed = :allowed")
            // Never shorten a longer throttle that a concurrent failure already set, and do
            // nothing once a success reset the counter below this attempt.
            .condition_expression("attempts >= :attempts AND (attribute_not_exists(throttled_until) OR throttled_until < :until)")
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":attempts", n(attempts))
            .expression_attribute_values(":allowed", n(attempts + 1))
            .send()
            .await;
        written(result, "UpdateItem throttle").map(drop)
    }

    async fn clear_attempts(&self, username: &str) -> Result<(), AuthError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("username", Self::throttle_key(username))
            .update_expression("SET attempts = :zero, allowed = :base, throttled_until = :zero")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":base", n(THROTTLE_AFTER_FAILURES))
            .send()
            .await
            .map_err(|e| sdk_error("UpdateItem throttle", e))?;
        Ok(())
    }

    async fn create(&self, user: &UserRecord) -> Result<bool, AuthError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(user_to_item(user)))
            .condition_expression("attribute_not_exists(username)")
            .send()
            .await;
        written(result, "PutItem user")
    }

    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, AuthError> {
        // SECURITY: disabling bumps the epoch in the same write: enabling again later does
        // not bring the old sessions back.
        let expression = if disabled {
            "SET disabled = :disabled ADD session_epoch :one"
        } else {
            "SET disabled = :disabled"
        };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("username", Self::key(username))
            .update_expression(expression)
            .condition_expression("attribute_exists(username) AND attribute_exists(user_id)")
            .expression_attribute_values(":disabled", AttributeValue::Bool(disabled));
        if disabled {
            request = request.expression_attribute_values(":one", n(1));
        }
        written(request.send().await, "UpdateItem user")
    }

    async fn set_password(&self, username: &str, password_hash: &str, now: u64) -> Result<bool, AuthError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("username", Self::key(username))
            .update_expression("SET password_hash = :hash, password_changed_at = :now ADD session_epoch :one")
            .condition_expression("attribute_exists(username) AND attribute_exists(user_id)")
            .expression_attribute_values(":hash", s(password_hash))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .send()
            .await;
        written(result, "UpdateItem user")
    }

    async fn change_password(&self, username: &str, verified_hash: &str, new_hash: &str, keep: &SessionRecord, now: u64) -> Result<bool, AuthError> {
        let epoch = keep.session_epoch;
        let build = |e: aws_sdk_dynamodb::error::BuildError| AuthError::unavailable("TransactWriteItems request", e);
        let user = Update::builder()
            .table_name(&self.table)
            .key("username", Self::key(username))
            .update_expression("SET password_hash = :hash, password_changed_at = :now, session_epoch = :next")
            // SECURITY: compare-and-set on the hash the current password was checked against
            // (a change that raced another one, or an operator's, is refused, not applied),
            // and on the epoch the caller's session carries.
            .condition_expression(format!("password_hash = :verified AND {}", epoch_is(epoch)))
            .expression_attribute_values(":hash", s(new_hash))
            .expression_attribute_values(":verified", s(verified_hash))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":epoch", n(epoch))
            .expression_attribute_values(":next", n(epoch + 1))
            .build()
            .map_err(build)?;
        let session = Update::builder()
            .table_name(&self.sessions_table)
            .key("session_id", s(keep.session_id.as_str()))
            .update_expression("SET session_epoch = :next")
            // SECURITY: only the caller's own live session, still under the old epoch, moves.
            .condition_expression(format!(
                "user_id = :user_id AND attribute_not_exists(revoked_at) AND expires_at > :now AND absolute_expires_at > :now AND {}",
                epoch_is(epoch)
            ))
            .expression_attribute_values(":user_id", s(&keep.user_id))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":epoch", n(epoch))
            .expression_attribute_values(":next", n(epoch + 1))
            .build()
            .map_err(build)?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(user).build())
            .transact_items(TransactWriteItem::builder().update(session).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled))
                    if cancelled.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed")) =>
                {
                    Ok(false)
                }
                _ => Err(sdk_error("TransactWriteItems password change", e)),
            },
        }
    }

    async fn set_roles(&self, username: &str, roles: &[String]) -> Result<bool, AuthError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("username", Self::key(username))
            .update_expression("SET #roles = :roles")
            .condition_expression("attribute_exists(username) AND attribute_exists(user_id)")
            .expression_attribute_names("#roles", "roles")
            .expression_attribute_values(":roles", AttributeValue::L(roles.iter().map(s).collect()))
            .send()
            .await;
        written(result, "UpdateItem user")
    }

    async fn bump_session_epoch(&self, username: &str, epoch: u64) -> Result<bool, AuthError> {
        // Names no attribute but the key and the epoch (logout's IAM grant allows no other).
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("username", Self::key(username))
            .update_expression("SET session_epoch = :next")
            .condition_expression(format!("attribute_exists(username) AND {}", epoch_is(epoch)))
            .expression_attribute_values(":epoch", n(epoch))
            .expression_attribute_values(":next", n(epoch + 1))
            .send()
            .await;
        // A failed condition: already bumped (a retry, or another bump since), or no such
        // user any more. Nothing is read back: logout has no business with the user item.
        written(result, "UpdateItem user epoch")
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

/// The attributes the strict authorizer reads of a session item: what decides whether it
/// is live, never a token hash.
pub const SESSION_STANDING_ATTRIBUTES: &str = "session_id, user_id, username, created_at, expires_at, absolute_expires_at, revoked_at, session_epoch";
/// The attributes it reads of a user item: never the password hash or the roles.
pub const USER_STANDING_ATTRIBUTES: &str = "username, user_id, disabled, session_epoch";

fn session_standing_from_item(item: &Item) -> Option<SessionStanding> {
    Some(SessionStanding {
        session_id: SessionId::parse(&get_s(item, "session_id")?)?,
        user_id: get_s(item, "user_id")?,
        username: get_s(item, "username")?,
        created_at: get_n(item, "created_at")?,
        expires_at: get_n(item, "expires_at")?,
        absolute_expires_at: get_n(item, "absolute_expires_at")?,
        revoked_at: get_n(item, "revoked_at"),
        session_epoch: get_n(item, "session_epoch").unwrap_or(0),
    })
}

fn user_standing_from_item(item: &Item) -> Option<UserStanding> {
    Some(UserStanding {
        user_id: get_s(item, "user_id")?,
        // A missing flag is read as disabled: fail closed, as `user_from_item`.
        disabled: item.get("disabled").and_then(|v| v.as_bool().ok()).copied().unwrap_or(true),
        session_epoch: get_n(item, "session_epoch").unwrap_or(0),
    })
}

/// The strict authorizer's reads, over both tables: projected, eventually consistent.
#[derive(Clone)]
pub struct DynamoStanding {
    client: Client,
    sessions_table: String,
    users_table: String,
}

impl DynamoStanding {
    /// Standings from `sessions_table` and `users_table`.
    pub fn new(client: Client, sessions_table: impl Into<String>, users_table: impl Into<String>) -> Self {
        Self {
            client,
            sessions_table: sessions_table.into(),
            users_table: users_table.into(),
        }
    }
}

#[async_trait]
impl StandingStore for DynamoStanding {
    async fn session(&self, session_id: &SessionId, consistent: bool) -> Result<Option<SessionStanding>, AuthError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.sessions_table)
            .key("session_id", s(session_id.as_str()))
            .projection_expression(SESSION_STANDING_ATTRIBUTES)
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem session standing", e))?;
        Ok(out.item().and_then(session_standing_from_item))
    }

    async fn user(&self, username: &str, consistent: bool) -> Result<Option<UserStanding>, AuthError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.users_table)
            .key("username", s(username))
            .projection_expression(USER_STANDING_ATTRIBUTES)
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem user standing", e))?;
        Ok(out.item().and_then(user_standing_from_item))
    }

    /// One BatchGetItem. What DynamoDB leaves unprocessed (under throttling) is read again
    /// on its own, once, rather than taken for absent.
    async fn both(&self, session_id: &SessionId, username: &str) -> Result<(Option<SessionStanding>, Option<UserStanding>), AuthError> {
        let keys = |name: &str, value: &str, projection: &str| {
            KeysAndAttributes::builder()
                .keys(HashMap::from([(name.to_owned(), s(value))]))
                .projection_expression(projection)
                .build()
                .map_err(|e| AuthError::unavailable("BatchGetItem request", e))
        };
        let out = self
            .client
            .batch_get_item()
            .request_items(&self.sessions_table, keys("session_id", session_id.as_str(), SESSION_STANDING_ATTRIBUTES)?)
            .request_items(&self.users_table, keys("username", username, USER_STANDING_ATTRIBUTES)?)
            .send()
            .await
            .map_err(|e| sdk_error("BatchGetItem standing", e))?;
        let unprocessed = |table: &str| out.unprocessed_keys().is_some_and(|keys| keys.contains_key(table));
        let first = |table: &str| out.responses().and_then(|r| r.get(table)).and_then(|items| items.first());
        let session = match unprocessed(&self.sessions_table) {
            true => self.session(session_id, false).await?,
            false => first(&self.sessions_table).and_then(session_standing_from_item),
        };
        let user = match unprocessed(&self.users_table) {
            true => self.user(username, false).await?,
            false => first(&self.users_table).and_then(user_standing_from_item),
        };
        Ok((session, user))
    }

    async fn warm(&self) {
        // Projected like every read of this store, so it needs no wider grant.
        if let Err(e) = self.user("warmup#", false).await {
            tracing::warn!(cause = %e, "warming the DynamoDB connection failed");
        }
    }
}

/// Whether `table` exists, asked by name: `ListTables` answers 100 names a page, so in an
/// account (or emulator) with more tables ours may be on a later page.
async fn table_exists(client: &Client, table: &str) -> Result<bool, AuthError> {
    match client.describe_table().table_name(table).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(false),
        Err(e) => Err(sdk_error("DescribeTable", e)),
    }
}

/// Creates the users and sessions tables (on-demand, TTL on `expires_at`, the `by_user`
/// index) where they do not exist. Returns a line for each change made; empty when
/// everything was already in place.
pub async fn create_tables(client: &Client, users_table: &str, sessions_table: &str) -> Result<Vec<String>, AuthError> {
    let mut changes = Vec::new();
    let key = |name: &str, kind, scalar| -> Result<(AttributeDefinition, KeySchemaElement), AuthError> {
        Ok((
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(scalar)
                .build()
                .map_err(|e| AuthError::unavailable("table definition", e))?,
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| AuthError::unavailable("table definition", e))?,
        ))
    };
    if !table_exists(client, users_table).await? {
        let (attr, schema) = key("username", KeyType::Hash, ScalarAttributeType::S)?;
        client
            .create_table()
            .table_name(users_table)
            .attribute_definitions(attr)
            .key_schema(schema)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| sdk_error("CreateTable users", e))?;
        changes.push(format!("created table {users_table}"));
    }
    if !table_exists(client, sessions_table).await? {
        let (session_attr, session_schema) = key("session_id", KeyType::Hash, ScalarAttributeType::S)?;
        let (user_attr, user_schema) = key("user_id", KeyType::Hash, ScalarAttributeType::S)?;
        let (created_attr, created_schema) = key("created_at", KeyType::Range, ScalarAttributeType::N)?;
        let index = GlobalSecondaryIndex::builder()
            .index_name(BY_USER_INDEX)
            .key_schema(user_schema)
            .key_schema(created_schema)
            .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
            .build()
            .map_err(|e| AuthError::unavailable("table definition", e))?;
        client
            .create_table()
            .table_name(sessions_table)
            .attribute_definitions(session_attr)
            .attribute_definitions(user_attr)
            .attribute_definitions(created_attr)
            .key_schema(session_schema)
            .global_secondary_indexes(index)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .map_err(|e| sdk_error("CreateTable sessions", e))?;
        changes.push(format!("created table {sessions_table} with index {BY_USER_INDEX}"));
    }
    for table in [users_table, sessions_table] {
        let ttl = client
            .describe_time_to_live()
            .table_name(table)
            .send()
            .await
            .map_err(|e| sdk_error("DescribeTimeToLive", e))?;
        let enabled = ttl.time_to_live_description().and_then(|d| d.attribute_name()) == Some("expires_at");
        if !enabled {
            let spec = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .map_err(|e| AuthError::unavailable("TTL definition", e))?;
            client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(|e| sdk_error("UpdateTimeToLive", e))?;
            changes.push(format!("enabled TTL on {table}.expires_at"));
        }
    }
    Ok(changes)
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
            session_epoch: 4,
            revoked_at: None,
            revoke_reason: None,
            user_agent: Some("é".repeat(300)),
            source_ip: Some("127.0.0.1".into()),
        };
        let item = session_to_item(&session);
        let back = session_from_item(&item).unwrap();
        assert!(back.user_agent.as_ref().unwrap().len() <= MAX_USER_AGENT_BYTES);
        assert_eq!(back.token_hash, session.token_hash);
        assert_eq!(back.generation, 3);
        assert_eq!(back.session_epoch, 4);
        let mut legacy = item.clone();
        legacy.remove("session_epoch");
        assert_eq!(session_from_item(&legacy).unwrap().session_epoch, 0, "written before epochs: epoch 0");
        let mut incomplete = item.clone();
        incomplete.remove("token_hash");
        assert!(session_from_item(&incomplete).is_none());
    }

    #[test]
    fn user_without_disabled_flag_is_treated_as_disabled() {
        let mut item = user_to_item(&UserRecord {
            username: "a@example.com".into(),
            user_id: "u1".into(),
            password_hash: "$argon2id$...".into(),
            roles: vec!["admin".into()],
            disabled: false,
            password_changed_at: 0,
            session_epoch: 0,
        });
        assert!(!user_from_item(&item).unwrap().disabled);
        item.remove("disabled");
        assert!(user_from_item(&item).unwrap().disabled);
    }
}
