//! The users table: users, their epochs and password changes, and the login throttle items.

use super::*;

/// Users (and throttle bookkeeping items `throttle#<username>`) in DynamoDB. Knows the
/// sessions table too: the self-service password change moves the caller's session to the
/// new epoch in the same transaction as the change.
#[derive(Clone)]
pub struct DynamoUsers {
    pub(super) client: Client,
    pub(super) table: String,
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

    pub(super) fn key(username: &str) -> AttributeValue {
        s(username)
    }

    fn throttle_key(username: &str) -> AttributeValue {
        s(format!("{THROTTLE_PREFIX}{username}"))
    }

    /// Writes `items` in one `TransactWriteItems`: `true` when every write landed, `false`
    /// when a condition failed (then none did).
    pub(super) async fn transact(&self, items: Vec<TransactWriteItem>, operation: &str) -> Result<bool, AuthError> {
        let result = self.client.transact_write_items().set_transact_items(Some(items)).send().await;
        transacted(result, operation)
    }

    /// Puts a new item (a login challenge, a passkey ceremony) where no item is.
    pub(super) async fn put_new(&self, item: Item, operation: &str) -> Result<(), AuthError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(username)")
            .send()
            .await
            .map_err(|e| sdk_error(operation, e))?;
        Ok(())
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
        let epoch = keep.epoch();
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
        let items = vec![
            TransactWriteItem::builder().update(user).build(),
            TransactWriteItem::builder().update(session).build(),
        ];
        self.transact(items, "TransactWriteItems password change").await
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
