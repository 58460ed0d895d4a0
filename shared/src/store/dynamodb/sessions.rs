//! The sessions table: create, rotate, revoke, read, and a user's sessions newest first.

use super::*;

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
            // only once, and never a revoked or expired session. The same condition as
            // `Rotation::permits`, which the protocol model checks: change both together.
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
        // Each condition is the expression of `RevokeIf::permits`: change both together.
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
            // An item without an epoch is at 0, below every epoch but 0.
            RevokeIf::EpochBelow(epoch) => request
                .condition_expression(match epoch {
                    0 => "attribute_exists(session_id) AND attribute_not_exists(revoked_at) AND session_epoch < :epoch",
                    _ => {
                        "attribute_exists(session_id) AND attribute_not_exists(revoked_at) \
                          AND (attribute_not_exists(session_epoch) OR session_epoch < :epoch)"
                    }
                })
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

    async fn set_auth(&self, session_id: &SessionId, user_id: &str, auth: &Authentication, now: u64) -> Result<bool, AuthError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("session_id", s(session_id.as_str()))
            .update_expression("SET amr = :amr, auth_time = :auth_time")
            // SECURITY: only a live session of this user is stepped up.
            .condition_expression("user_id = :user_id AND attribute_not_exists(revoked_at) AND expires_at > :now AND absolute_expires_at > :now")
            .expression_attribute_values(":amr", s(auth.amr.join(" ")))
            .expression_attribute_values(":auth_time", n(auth.auth_time))
            .expression_attribute_values(":user_id", s(user_id))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        written(result, "UpdateItem session auth")
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
