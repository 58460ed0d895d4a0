//! Second factors in the users table: `mfa#<username>` (the TOTP secret, the last step
//! accepted, a pending enrolment, the recovery codes' hashes as a string set of hex, each
//! passkey as a map attribute `passkey:<credential id>`, and the WebAuthn user handle),
//! `passkey#<credential id>` (its owner: how a discoverable sign-in finds the user), and
//! login challenges and passkey ceremonies (`link#<hex of the hash>` with their purpose,
//! beside the e-mailed links). Only the login and account functions may touch `mfa#` and
//! `passkey#` items (IAM leading keys).

use aws_sdk_dynamodb::types::{Delete, Put};
use webauthn_rs::prelude::Uuid;

use super::links::{build_error, link_key};
use super::*;
use crate::claims::amr;
use crate::factors::{FactorUse, Factors, TotpSecret};
use crate::passkeys::StoredPasskey;
use crate::store::{Ceremony, CeremonyPurpose, Challenge, FactorStore};

/// Prefix of a passkey's attribute on the factors item.
const PASSKEY_ATTRIBUTE: &str = "passkey:";

fn pointer_key(id: &str) -> AttributeValue {
    s(format!("passkey#{id}"))
}

fn passkey_value(passkey: &StoredPasskey) -> AttributeValue {
    AttributeValue::M(Item::from([
        ("key".into(), s(&passkey.key)),
        ("name".into(), s(&passkey.name)),
        ("created_at".into(), n(passkey.created_at)),
        ("last_used_at".into(), n(passkey.last_used_at)),
    ]))
}

fn passkey_from(id: &str, value: &AttributeValue) -> Option<StoredPasskey> {
    let map = value.as_m().ok()?;
    Some(StoredPasskey {
        id: id.to_owned(),
        key: get_s(map, "key")?,
        name: get_s(map, "name").unwrap_or_default(),
        created_at: get_n(map, "created_at").unwrap_or(0),
        last_used_at: get_n(map, "last_used_at").unwrap_or(0),
    })
}

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
        passkeys: {
            let mut passkeys: Vec<StoredPasskey> = item
                .iter()
                .filter_map(|(name, value)| passkey_from(name.strip_prefix(PASSKEY_ATTRIBUTE)?, value))
                .collect();
            passkeys.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
            passkeys
        },
        user_handle: get_s(item, "user_handle").and_then(|h| Uuid::parse_str(&h).ok()),
    }
}

/// The update, condition, names and values of the one conditional write that uses a factor.
fn factor_write(used: &FactorUse) -> (&'static str, &'static str, Option<HashMap<String, String>>, Item) {
    let (update, condition, values) = match used {
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
        // SECURITY: only over the credential the assertion was verified against: of two
        // assertions racing, one write fails, and the sign counter never moves back.
        FactorUse::Passkey { before, after } => {
            let names = HashMap::from([
                ("#pk".to_owned(), format!("{PASSKEY_ATTRIBUTE}{}", after.id)),
                ("#key".to_owned(), "key".to_owned()),
            ]);
            let values = Item::from([(":after".into(), passkey_value(after)), (":before".into(), s(before))]);
            return ("SET #pk = :after", "#pk.#key = :before", Some(names), values);
        }
    };
    (update, condition, None, values)
}

impl DynamoUsers {
    /// An `UpdateItem` of `username`'s factors item.
    fn update_factors(&self, username: &str) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client.update_item().table_name(&self.table).key("username", factors_key(username))
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
            .update_factors(username)
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
            .update_factors(username)
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

    async fn remove_totp(&self, username: &str) -> Result<(), AuthError> {
        self.update_factors(username)
            .update_expression("REMOVE totp_secret, last_totp_step, recovery_codes, pending_secret, pending_until")
            .send()
            .await
            .map_err(|e| sdk_error("UpdateItem remove TOTP", e))?;
        Ok(())
    }

    async fn replace_recovery_codes(&self, username: &str, recovery_codes: &[TokenHash]) -> Result<bool, AuthError> {
        let result = self
            .update_factors(username)
            .update_expression("SET recovery_codes = :codes")
            .condition_expression("attribute_exists(totp_secret)")
            .expression_attribute_values(":codes", codes(recovery_codes))
            .send()
            .await;
        written(result, "UpdateItem recovery codes")
    }

    async fn use_factor(&self, username: &str, used: &FactorUse, challenge: Option<&TokenHash>, now: u64) -> Result<bool, AuthError> {
        let (update, condition, names, values) = factor_write(used);
        let Some(challenge) = challenge else {
            let result = self
                .update_factors(username)
                .update_expression(update)
                .condition_expression(condition)
                .set_expression_attribute_names(names)
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
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;
        // SECURITY: the factor and the challenge are used together or not at all: two
        // requests with one challenge cannot both pass, whatever codes they carry.
        let delete = self.one_time_delete(challenge, CHALLENGE_PURPOSE, username, now)?;
        let items = vec![
            TransactWriteItem::builder().update(update).build(),
            TransactWriteItem::builder().delete(delete).build(),
        ];
        self.transact(items, "TransactWriteItems use factor").await
    }

    async fn issue_challenge(&self, challenge: &Challenge) -> Result<(), AuthError> {
        let mut item = Item::from([
            ("username".into(), link_key(&challenge.hash)),
            ("purpose".into(), s(CHALLENGE_PURPOSE)),
            ("owner".into(), s(&challenge.username)),
            ("session_epoch".into(), n(challenge.session_epoch)),
            ("password_at".into(), n(challenge.password_at)),
            ("failures".into(), n(challenge.failures)),
            ("expires_at".into(), n(challenge.expires_at)),
        ]);
        if let Some(state) = &challenge.webauthn_state {
            item.insert("webauthn_state".into(), s(state));
        }
        if let Some(options) = &challenge.webauthn_options {
            item.insert("webauthn_options".into(), s(options));
        }
        // Absent for a password's challenge (every item from before it means `pwd`).
        if challenge.first_amr != [amr::PASSWORD] {
            item.insert("first_amr".into(), AttributeValue::L(challenge.first_amr.iter().map(s).collect()));
        }
        self.put_new(item, "PutItem challenge").await
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
                webauthn_state: get_s(item, "webauthn_state"),
                webauthn_options: get_s(item, "webauthn_options"),
                first_amr: match item.get("first_amr") {
                    Some(AttributeValue::L(values)) => values.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
                    _ => vec![amr::PASSWORD.to_owned()],
                },
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

    async fn add_passkey(&self, username: &str, handle: &Uuid, passkey: &StoredPasskey) -> Result<bool, AuthError> {
        // SECURITY: a credential id belongs to one account: the pointer is created only where
        // none is (WebAuthn §7.1 step 22).
        let pointer = Put::builder()
            .table_name(&self.table)
            .item("username", pointer_key(&passkey.id))
            .item("owner", s(username))
            .item("user_handle", s(handle.to_string()))
            .condition_expression("attribute_not_exists(username)")
            .build()
            .map_err(build_error)?;
        let add = Update::builder()
            .table_name(&self.table)
            .key("username", factors_key(username))
            .update_expression("SET #pk = :passkey, user_handle = if_not_exists(user_handle, :handle)")
            .condition_expression("attribute_not_exists(#pk) AND (attribute_not_exists(user_handle) OR user_handle = :handle)")
            .expression_attribute_names("#pk", format!("{PASSKEY_ATTRIBUTE}{}", passkey.id))
            .expression_attribute_values(":passkey", passkey_value(passkey))
            .expression_attribute_values(":handle", s(handle.to_string()))
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().put(pointer).build(),
            TransactWriteItem::builder().update(add).build(),
        ];
        self.transact(items, "TransactWriteItems add passkey").await
    }

    async fn remove_passkey(&self, username: &str, id: &str) -> Result<bool, AuthError> {
        let pointer = Delete::builder()
            .table_name(&self.table)
            .key("username", pointer_key(id))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(username))
            .build()
            .map_err(build_error)?;
        let remove = Update::builder()
            .table_name(&self.table)
            .key("username", factors_key(username))
            .update_expression("REMOVE #pk")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", format!("{PASSKEY_ATTRIBUTE}{id}"))
            .build()
            .map_err(build_error)?;
        let items = vec![
            TransactWriteItem::builder().delete(pointer).build(),
            TransactWriteItem::builder().update(remove).build(),
        ];
        self.transact(items, "TransactWriteItems remove passkey").await
    }

    async fn passkey_owner(&self, id: &str) -> Result<Option<(String, Uuid)>, AuthError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("username", pointer_key(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem passkey", e))?;
        Ok(out.item().and_then(|item| {
            let handle = Uuid::parse_str(&get_s(item, "user_handle")?).ok()?;
            Some((get_s(item, "owner")?, handle))
        }))
    }

    async fn issue_ceremony(&self, ceremony: &Ceremony) -> Result<(), AuthError> {
        let mut item = Item::from([
            ("username".into(), link_key(&ceremony.hash)),
            ("purpose".into(), s(ceremony.purpose.as_str())),
            ("state".into(), s(&ceremony.state)),
            ("expires_at".into(), n(ceremony.expires_at)),
        ]);
        if let Some(owner) = &ceremony.owner {
            item.insert("owner".into(), s(owner));
        }
        self.put_new(item, "PutItem ceremony").await
    }

    async fn take_ceremony(&self, hash: &TokenHash, purpose: CeremonyPurpose, owner: Option<&str>, now: u64) -> Result<Option<Ceremony>, AuthError> {
        let request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("username", link_key(hash))
            .expression_attribute_values(":purpose", s(purpose.as_str()))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllOld);
        // SECURITY: single use, of its purpose only, unexpired, and a registration only by
        // the user who started it.
        let request = match owner {
            Some(owner) => request
                .condition_expression("purpose = :purpose AND expires_at > :now AND #owner = :owner")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":owner", s(owner)),
            None => request.condition_expression("purpose = :purpose AND expires_at > :now"),
        };
        let item = match request.send().await {
            Ok(out) => out.attributes().cloned(),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => return Ok(None),
            Err(e) => return Err(sdk_error("DeleteItem ceremony", e)),
        };
        Ok(item.and_then(|item| {
            Some(Ceremony {
                hash: hash.clone(),
                purpose,
                owner: get_s(&item, "owner"),
                state: get_s(&item, "state")?,
                expires_at: get_n(&item, "expires_at")?,
            })
        }))
    }
}
