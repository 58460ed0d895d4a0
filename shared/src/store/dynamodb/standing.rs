//! The strict authorizer's projected reads of a session and its user.

use super::*;

/// The attributes the strict authorizer reads of a session item: what decides whether it
/// is live, never a token hash.
pub const SESSION_STANDING_ATTRIBUTES: &str = "session_id, user_id, username, created_at, expires_at, absolute_expires_at, revoked_at, session_epoch";
/// The attributes it reads of a user item: never the password hash or the roles.
pub const USER_STANDING_ATTRIBUTES: &str = "username, user_id, disabled, session_epoch, sessions_valid_after, password_changed_at";

fn session_standing_from_item(item: &Item) -> Option<SessionStanding> {
    Some(SessionStanding {
        session_id: SessionId::parse(&get_s(item, "session_id")?)?,
        user_id: get_s(item, "user_id")?,
        username: get_s(item, "username")?,
        created_at: get_n(item, "created_at")?,
        expires_at: get_n(item, "expires_at")?,
        absolute_expires_at: get_n(item, "absolute_expires_at")?,
        revoked_at: get_n(item, "revoked_at"),
        session_epoch: get_n(item, "session_epoch"),
    })
}

fn user_standing_from_item(item: &Item) -> Option<UserStanding> {
    Some(UserStanding {
        user_id: get_s(item, "user_id")?,
        // A missing flag is read as disabled: fail closed, as `user_from_item`.
        disabled: item.get("disabled").and_then(|v| v.as_bool().ok()).copied().unwrap_or(true),
        session_epoch: get_n(item, "session_epoch").unwrap_or(0),
        legacy_sessions_valid_after: legacy_point(item),
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
