//! Identities at other providers in the users table: `identity#<issuer>#<subject>` items
//! naming the user they sign in, and on the user item the string set `identities` of their
//! `<issuer>#<subject>`, so that a user's identities are found without a scan. Both are
//! written in one transaction: with the user item's creation, with the link (only into a
//! verified user), and at the unlink (only while another way to sign in remains).

use aws_sdk_dynamodb::types::{Delete, Put};

use super::links::build_error;
use super::*;
use crate::store::{Identity, IdentityStore};

fn identity_key(issuer: &str, subject: &str) -> AttributeValue {
    s(format!("identity#{}", set_member(issuer, subject)))
}

/// The identity's member of its owner's `identities` set. Issuers hold no `#` (they have no
/// fragment), so the first `#` splits it again.
fn set_member(issuer: &str, subject: &str) -> String {
    format!("{issuer}#{subject}")
}

fn identity_to_item(identity: &Identity) -> Item {
    let mut item = Item::from([
        ("username".into(), identity_key(&identity.issuer, &identity.subject)),
        ("issuer".into(), s(&identity.issuer)),
        ("subject".into(), s(&identity.subject)),
        ("provider".into(), s(&identity.provider)),
        ("owner".into(), s(&identity.owner)),
        ("user_id".into(), s(&identity.user_id)),
        ("created_at".into(), n(identity.created_at)),
    ]);
    if let Some(email) = &identity.email {
        item.insert("email".into(), s(email));
    }
    item
}

fn identity_from_item(item: &Item) -> Option<Identity> {
    Some(Identity {
        issuer: get_s(item, "issuer")?,
        subject: get_s(item, "subject")?,
        provider: get_s(item, "provider")?,
        owner: get_s(item, "owner")?,
        user_id: get_s(item, "user_id")?,
        email: get_s(item, "email"),
        created_at: get_n(item, "created_at").unwrap_or(0),
    })
}

impl DynamoUsers {
    fn put_identity(&self, identity: &Identity) -> Result<TransactWriteItem, AuthError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(identity_to_item(identity)))
            .condition_expression("attribute_not_exists(username)")
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

#[async_trait]
impl IdentityStore for DynamoUsers {
    async fn identity(&self, issuer: &str, subject: &str) -> Result<Option<Identity>, AuthError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("username", identity_key(issuer, subject))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem identity", e))?;
        Ok(out.item().and_then(identity_from_item))
    }

    async fn link(&self, identity: &Identity) -> Result<bool, AuthError> {
        // SECURITY: only into an account whose address is proven: an unverified sign-up is
        // never joined by another provider's identity (it may be a squatter's).
        let owner = Update::builder()
            .table_name(&self.table)
            .key("username", Self::key(&identity.owner))
            .update_expression("ADD identities :member")
            .condition_expression("user_id = :user_id AND (attribute_not_exists(email_verified) OR email_verified = :true)")
            .expression_attribute_values(":member", AttributeValue::Ss(vec![set_member(&identity.issuer, &identity.subject)]))
            .expression_attribute_values(":user_id", s(&identity.user_id))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .build()
            .map_err(build_error)?;
        let items = vec![self.put_identity(identity)?, TransactWriteItem::builder().update(owner).build()];
        self.transact(items, "TransactWriteItems link identity").await
    }

    async fn create_with_identity(&self, user: &UserRecord, identity: &Identity) -> Result<bool, AuthError> {
        let mut item = user_to_item(user);
        item.insert("identities".into(), AttributeValue::Ss(vec![set_member(&identity.issuer, &identity.subject)]));
        let put_user = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(username)")
            .build()
            .map_err(build_error)?;
        let items = vec![TransactWriteItem::builder().put(put_user).build(), self.put_identity(identity)?];
        self.transact(items, "TransactWriteItems user with identity").await
    }

    async fn identities_of(&self, owner: &str) -> Result<Vec<Identity>, AuthError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("username", Self::key(owner))
            .projection_expression("identities")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem user identities", e))?;
        let members = match out.item().and_then(|item| item.get("identities")) {
            Some(AttributeValue::Ss(members)) => members.clone(),
            _ => return Ok(Vec::new()),
        };
        let reads = members
            .iter()
            .filter_map(|m| m.split_once('#'))
            .map(|(issuer, subject)| self.identity(issuer, subject));
        let found = futures_util::future::try_join_all(reads).await?;
        // Only those that still name this owner: a set member is a pointer, the item the truth.
        Ok(found.into_iter().flatten().filter(|i| i.owner == owner).collect())
    }

    async fn unlink(&self, owner: &str, issuer: &str, subject: &str) -> Result<bool, AuthError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .key("username", identity_key(issuer, subject))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner))
            .build()
            .map_err(build_error)?;
        // SECURITY: never the last way in: another identity stays, or a password is set.
        let user = Update::builder()
            .table_name(&self.table)
            .key("username", Self::key(owner))
            .update_expression("DELETE identities :member")
            .condition_expression("contains(identities, :one_member) AND (size(identities) > :one OR password_hash <> :none)")
            .expression_attribute_values(":member", AttributeValue::Ss(vec![set_member(issuer, subject)]))
            .expression_attribute_values(":one_member", s(set_member(issuer, subject)))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":none", s(""))
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(user).build(),
        ];
        self.transact(items, "TransactWriteItems unlink identity").await
    }
}
