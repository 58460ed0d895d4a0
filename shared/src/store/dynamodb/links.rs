//! The self-service flows' items in the users table: unverified users, link tokens
//! (`link#<hex of the hash>`: purpose, username, expiry; the user item names its current
//! one per purpose), and hourly e-mail counters (`mail#<key>#<hour>`).

use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::types::{Delete, Put};

use super::*;
use crate::links::{IssuedLink, LinkPurpose};
use crate::store::LinkStore;

/// The user attribute naming the current link of `purpose`.
fn pointer(purpose: LinkPurpose) -> &'static str {
    match purpose {
        LinkPurpose::VerifyEmail => "verify_link",
        LinkPurpose::ResetPassword => "reset_link",
    }
}

pub(super) fn link_key(hash: &TokenHash) -> AttributeValue {
    let hex: String = hash.0.iter().map(|b| format!("{b:02x}")).collect();
    s(format!("link#{hex}"))
}

fn blob(hash: &TokenHash) -> AttributeValue {
    AttributeValue::B(Blob::new(hash.0.to_vec()))
}

pub(super) fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> AuthError {
    AuthError::unavailable("TransactWriteItems request", e)
}

impl DynamoUsers {
    /// Deletes the link (only while it is `owner`'s, unexpired and of `purpose`) and applies
    /// `update` to its user (whose condition holds the link as the user's current one), in
    /// one transaction. `Ok(false)` when a condition failed: nothing was written.
    async fn use_link(&self, hash: &TokenHash, purpose: LinkPurpose, owner: &str, now: u64, update: Update) -> Result<bool, AuthError> {
        let delete = self.one_time_delete(hash, purpose.as_str(), owner, now)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(update).build(),
        ];
        self.transact(items, "TransactWriteItems link").await
    }

    /// The delete that uses a one-time item of the users table (`link#<hash>`: an e-mailed
    /// link, a login challenge): only while it is of `purpose`, `owner`'s and unexpired.
    pub(super) fn one_time_delete(&self, hash: &TokenHash, purpose: &str, owner: &str, now: u64) -> Result<Delete, AuthError> {
        Delete::builder()
            .table_name(&self.table)
            .key("username", link_key(hash))
            // SECURITY: one purpose is never accepted as another; an expired link is dead
            // though its item may outlive its TTL.
            .condition_expression("purpose = :purpose AND #owner = :owner AND expires_at > :now")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":purpose", s(purpose))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":now", n(now))
            .build()
            .map_err(build_error)
    }
}

#[async_trait]
impl LinkStore for DynamoUsers {
    async fn create_unverified(&self, user: &UserRecord, now: u64) -> Result<bool, AuthError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(user_to_item(user)))
            // Only over nothing, or over an unverified sign-up whose time ran out.
            .condition_expression("attribute_not_exists(username) OR (email_verified = :false AND expires_at <= :now)")
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        written(result, "PutItem unverified user")
    }

    async fn issue_link(&self, username: &str, link: &IssuedLink) -> Result<bool, AuthError> {
        let put = Put::builder()
            .table_name(&self.table)
            .item("username", link_key(&link.hash))
            .item("purpose", s(link.purpose.as_str()))
            .item("owner", s(username))
            .item("expires_at", n(link.expires_at))
            .condition_expression("attribute_not_exists(username)")
            .build()
            .map_err(build_error)?;
        let point = Update::builder()
            .table_name(&self.table)
            .key("username", Self::key(username))
            .update_expression("SET #pointer = :hash")
            .condition_expression("attribute_exists(user_id)")
            .expression_attribute_names("#pointer", pointer(link.purpose))
            .expression_attribute_values(":hash", blob(&link.hash))
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder().update(point).build(),
        ];
        self.transact(items, "TransactWriteItems issue link").await
    }

    async fn link_owner(&self, hash: &TokenHash, purpose: LinkPurpose, now: u64) -> Result<Option<String>, AuthError> {
        let out: GetItemOutput = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("username", link_key(hash))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem link", e))?;
        let Some(item) = out.item() else { return Ok(None) };
        let usable = get_s(item, "purpose").as_deref() == Some(purpose.as_str()) && get_n(item, "expires_at").is_some_and(|at| now < at);
        Ok(get_s(item, "owner").filter(|_| usable))
    }

    async fn verify_email(&self, hash: &TokenHash, owner: &str, password_hash: &str, now: u64) -> Result<bool, AuthError> {
        let verify = Update::builder()
            .table_name(&self.table)
            .key("username", Self::key(owner))
            .update_expression("SET email_verified = :true REMOVE expires_at, verify_link")
            // SECURITY: only the newest link the user was sent (an older one is superseded),
            // and only with the password the verifier proved: a sign-up since replaced it.
            .condition_expression("verify_link = :hash AND password_hash = :password AND expires_at > :now")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":hash", blob(hash))
            .expression_attribute_values(":password", s(password_hash))
            .build()
            .map_err(build_error)?;
        self.use_link(hash, LinkPurpose::VerifyEmail, owner, now, verify).await
    }

    async fn reset_password(&self, hash: &TokenHash, owner: &str, new_hash: &str, now: u64) -> Result<bool, AuthError> {
        let reset = Update::builder()
            .table_name(&self.table)
            .key("username", Self::key(owner))
            .update_expression("SET password_hash = :password, password_changed_at = :now ADD session_epoch :one REMOVE reset_link")
            // SECURITY: only the newest link; using it removes the pointer, so every
            // outstanding reset link of the user dies with this one.
            .condition_expression("reset_link = :hash AND attribute_exists(user_id)")
            .expression_attribute_values(":password", s(new_hash))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":hash", blob(hash))
            .build()
            .map_err(build_error)?;
        self.use_link(hash, LinkPurpose::ResetPassword, owner, now, reset).await
    }

    async fn replace_unverified_password(&self, username: &str, password_hash: &str, now: u64) -> Result<bool, AuthError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("username", Self::key(username))
            .update_expression("SET password_hash = :password")
            .condition_expression("email_verified = :false AND expires_at > :now")
            .expression_attribute_values(":password", s(password_hash))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        written(result, "UpdateItem unverified password")
    }

    async fn count_mail(&self, key: &str, limit: u64, now: u64) -> Result<bool, AuthError> {
        let hour = now / 3600;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("username", s(format!("mail#{key}#{hour}")))
            .update_expression("ADD sent :one SET expires_at = :expires")
            // SECURITY: counted before anything is sent, in one conditional write: parallel
            // requests cannot all pass a count read earlier.
            .condition_expression("attribute_not_exists(sent) OR sent < :limit")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":limit", n(limit))
            .expression_attribute_values(":expires", n((hour + 2) * 3600))
            .send()
            .await;
        written(result, "UpdateItem mail counter")
    }
}
