//! Identities at other providers in the users table: `identity#<issuer>#<subject>` items
//! naming the user they sign in. Created only beside their user (in one transaction with
//! the user item's creation, or with a check that it exists and is verified).

use aws_sdk_dynamodb::types::{ConditionCheck, Put};

use super::links::build_error;
use super::*;
use crate::store::{Identity, IdentityStore};

fn identity_key(issuer: &str, subject: &str) -> AttributeValue {
    s(format!("identity#{issuer}#{subject}"))
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
        let owner = ConditionCheck::builder()
            .table_name(&self.table)
            .key("username", Self::key(&identity.owner))
            .condition_expression("user_id = :user_id AND (attribute_not_exists(email_verified) OR email_verified = :true)")
            .expression_attribute_values(":user_id", s(&identity.user_id))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .build()
            .map_err(build_error)?;
        let items = vec![self.put_identity(identity)?, TransactWriteItem::builder().condition_check(owner).build()];
        self.transact(items, "TransactWriteItems link identity").await
    }

    async fn create_with_identity(&self, user: &UserRecord, identity: &Identity) -> Result<bool, AuthError> {
        let put_user = Put::builder()
            .table_name(&self.table)
            .set_item(Some(user_to_item(user)))
            .condition_expression("attribute_not_exists(username)")
            .build()
            .map_err(build_error)?;
        let items = vec![TransactWriteItem::builder().put(put_user).build(), self.put_identity(identity)?];
        self.transact(items, "TransactWriteItems user with identity").await
    }
}
