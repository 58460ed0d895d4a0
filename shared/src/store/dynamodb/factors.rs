//! Second factors in the users table: `mfa#<username>` (the TOTP secret, the last step
//! accepted, a pending enrolment, the recovery codes' hashes as a string set of hex) and
//! login challenges (`link#<hex of the hash>` with purpose `mfa_login`, beside the e-mailed
//! links). Only the login and account functions may touch `mfa#` items (IAM leading keys).

use aws_sdk_dynamodb::types::Delete;

use super::links::{build_error, link_key};
use super::*;
use crate::factors::{FactorUse, Factors, TotpSecret};
use crate::store::{Challenge, FactorStore};

/// The purpose of a login challenge's item.
const CHALLENGE_PURPOSE: &str = "mfa_login";

fn factors_key(username: &str) -> AttributeValue {
    s(format!("mfa#{username}"))
}

fn hex(hash: &TokenHash) -> String {
    hash.0.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<TokenHash> {
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect();
    TokenHash::from_slice(&bytes?)
}

fn codes(hashes: &[TokenHash]) -> AttributeValue {
    AttributeValue::Ss(hashes.iter().map(hex).collect())
}

fn secret_value(secret: &TotpSecret) -> AttributeValue {
    AttributeValue::B(Blob::new(secret.as_bytes().to_vec()))
}

fn get_secret(item: &Item, key: &str) -> Option<TotpSecret> {
    TotpSecret::from_bytes(item.get(key)?.as_b().ok()?.as_ref())
}

/// Reads the factors item. A recovery code that does not read as a hash is skipped: it
/// could never match.
fn factors_from_item(item: &Item) -> Factors {
    Factors {
        totp: get_secret(item, "totp_secret"),
        last_totp_step: get_n(item, "last_totp_step").unwrap_or(0),
        pending: get_secret(item, "pending_secret").zip(get_n(item, "pending_until")),
        recovery_codes: item
            .get("recovery_codes")
            .and_then(|v| v.as_ss().ok())
            .map(|set| set.iter().filter_map(|h| from_hex(h)).collect())
            .unwrap_or_default(),
    }
}

/// The update, condition and values of the one conditional write that uses a factor.
fn factor_write(used: &FactorUse) -> (&'static str, &'static str, Item) {
    match used {
        // SECURITY: a step later than the last accepted one only: a code passes once, and of
        // two requests racing with one code, one write fails.
        FactorUse::TotpStep(step) => (
            "SET last_totp_step = :step",
            "attribute_exists(totp_secret) AND (attribute_not_exists(last_totp_step) OR last_totp_step < :step)",
            Item::from([(":step".into(), n(step))]),
        ),
        // SECURITY: removed by the write whose condition finds it: single use.
        FactorUse::RecoveryCode(hash) => (
            "DELETE recovery_codes :codes",
            "contains(recovery_codes, :code)",
            Item::from([(":codes".into(), codes(std::slice::from_ref(hash))), (":code".into(), s(hex(hash)))]),
        ),
    }
}

impl DynamoUsers {
    fn challenge_delete(&self, hash: &TokenHash, owner: &str, now: u64) -> Result<Delete, AuthError> {
        Delete::builder()
            .table_name(&self.table)
            .key("username", link_key(hash))
            .condition_expression("purpose = :purpose AND #owner = :owner AND expires_at > :now")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":purpose", s(CHALLENGE_PURPOSE))
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":now", n(now))
            .build()
            .map_err(build_error)
    }
}

#[async_trait]
impl FactorStore for DynamoUsers {
    async fn factors(&self, username: &str) -> Result<Option<Factors>, AuthError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("username", factors_key(username))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem factors", e))?;
        Ok(out.item().map(factors_from_item))
    }

    async fn start_totp(&self, username: &str, secret: &TotpSecret, until: u64) -> Result<bool, AuthError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("username", factors_key(username))
            .update_expression("SET pending_secret = :secret, pending_until = :until")
            .condition_expression("attribute_not_exists(totp_secret)")
            .expression_attribute_values(":secret", secret_value(secret))
            .expression_attribute_values(":until", n(until))
            .send()
            .await;
        written(result, "UpdateItem start TOTP")
    }

    async fn confirm_totp(&self, username: &str, secret: &TotpSecret, step: u64, recovery_codes: &[TokenHash], now: u64) -> Result<bool, AuthError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("username", factors_key(username))
            .update_expression("SET totp_secret = :secret, last_totp_step = :step, recovery_codes = :codes REMOVE pending_secret, pending_until")
            // SECURITY: exactly the enrolment whose code was checked, still pending: a second
            // enrolment started meanwhile, or a confirmed one, is never overwritten.
            .condition_expression("pending_secret = :secret AND pending_until > :now AND attribute_not_exists(totp_secret)")
            .expression_attribute_values(":secret", secret_value(secret))
            .expression_attribute_values(":step", n(step))
            .expression_attribute_values(":codes", codes(recovery_codes))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        written(result, "UpdateItem confirm TOTP")
    }

    async fn remove_factors(&self, username: &str) -> Result<(), AuthError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("username", factors_key(username))
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem factors", e))?;
        Ok(())
    }

    async fn replace_recovery_codes(&self, username: &str, recovery_codes: &[TokenHash]) -> Result<bool, AuthError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("username", factors_key(username))
            .update_expression("SET recovery_codes = :codes")
            .condition_expression("attribute_exists(totp_secret)")
            .expression_attribute_values(":codes", codes(recovery_codes))
            .send()
            .await;
        written(result, "UpdateItem recovery codes")
    }

    async fn use_factor(&self, username: &str, used: &FactorUse, challenge: Option<&TokenHash>, now: u64) -> Result<bool, AuthError> {
        let (update, condition, values) = factor_write(used);
        let Some(challenge) = challenge else {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("username", factors_key(username))
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            return written(result, "UpdateItem use factor");
        };
        let update = Update::builder()
            .table_name(&self.table)
            .key("username", factors_key(username))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;
        // SECURITY: the factor and the challenge are used together or not at all: two
        // requests with one challenge cannot both pass, whatever codes they carry.
        let result = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(TransactWriteItem::builder().delete(self.challenge_delete(challenge, username, now)?).build())
            .send()
            .await;
        transacted(result, "TransactWriteItems use factor")
    }

    async fn issue_challenge(&self, challenge: &Challenge) -> Result<(), AuthError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("username", link_key(&challenge.hash))
            .item("purpose", s(CHALLENGE_PURPOSE))
            .item("owner", s(&challenge.username))
            .item("session_epoch", n(challenge.session_epoch))
            .item("password_at", n(challenge.password_at))
            .item("failures", n(challenge.failures))
            .item("expires_at", n(challenge.expires_at))
            .condition_expression("attribute_not_exists(username)")
            .send()
            .await
            .map_err(|e| sdk_error("PutItem challenge", e))?;
        Ok(())
    }

    async fn challenge(&self, hash: &TokenHash, now: u64) -> Result<Option<Challenge>, AuthError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("username", link_key(hash))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem challenge", e))?;
        let Some(item) = out.item() else { return Ok(None) };
        // SECURITY: an e-mailed link's token is never taken for a challenge, nor the reverse.
        if get_s(item, "purpose").as_deref() != Some(CHALLENGE_PURPOSE) {
            return Ok(None);
        }
        let challenge = (|| {
            Some(Challenge {
                hash: hash.clone(),
                username: get_s(item, "owner")?,
                session_epoch: get_n(item, "session_epoch")?,
                password_at: get_n(item, "password_at")?,
                failures: u32::try_from(get_n(item, "failures")?).ok()?,
                expires_at: get_n(item, "expires_at")?,
            })
        })();
        Ok(challenge.filter(|c| now < c.expires_at))
    }

    async fn fail_challenge(&self, hash: &TokenHash, max_failures: u32) -> Result<(), AuthError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("username", link_key(hash))
            .update_expression("ADD failures :one")
            .condition_expression("purpose = :purpose")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":purpose", s(CHALLENGE_PURPOSE))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        let failures = match result {
            Ok(out) => out.attributes().and_then(|a| get_n(a, "failures")).unwrap_or(u64::MAX),
            Err(e) if matches!(e.as_service_error(), Some(UpdateItemError::ConditionalCheckFailedException(_))) => return Ok(()),
            Err(e) => return Err(sdk_error("UpdateItem challenge failures", e)),
        };
        if failures >= u64::from(max_failures) {
            // SECURITY: after the last wrong answer allowed, the challenge is gone: the next
            // try needs the password again.
            self.client
                .delete_item()
                .table_name(&self.table)
                .key("username", link_key(hash))
                .send()
                .await
                .map_err(|e| sdk_error("DeleteItem challenge", e))?;
        }
        Ok(())
    }
}
