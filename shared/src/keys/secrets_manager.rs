//! The key set from AWS Secrets Manager.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;

use super::{FetchError, KeyProvider, KeySet};
use crate::error::{AuthError, sdk_error};

/// Answers of Secrets Manager that are decisions, not outages: failing closed at once.
const REFUSALS: [&str; 5] = [
    "AccessDeniedException",
    "ResourceNotFoundException",
    "DecryptionFailure",
    "InvalidRequestException",
    "InvalidParameterException",
];

/// Reads the key set JSON from one secret (`SIGNING_SECRET_ID`).
pub struct SecretsManagerKeys {
    client: Client,
    secret_id: String,
}

impl SecretsManagerKeys {
    /// A provider for `secret_id`.
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client,
            secret_id: secret_id.into(),
        }
    }
}

#[async_trait]
impl KeyProvider for SecretsManagerKeys {
    async fn fetch(&self) -> Result<KeySet, FetchError> {
        let out = self.client.get_secret_value().secret_id(&self.secret_id).send().await.map_err(|e| {
            let refused = e.as_service_error().and_then(|s| s.code()).is_some_and(|code| REFUSALS.contains(&code));
            let error = sdk_error("GetSecretValue", e);
            if refused {
                FetchError::Refused(error)
            } else {
                FetchError::Unreachable(error)
            }
        })?;
        let json = out
            .secret_string()
            .ok_or_else(|| FetchError::Refused(AuthError::unavailable("GetSecretValue", "the secret has no string value")))?;
        KeySet::from_json(json).map_err(|e| FetchError::Refused(e.into()))
    }
}

/// What [`init_key_set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySetInit {
    /// The secret did not exist and was created with the key set.
    Created,
    /// The secret existed without a valid key set (e.g. the stack's placeholder) and the
    /// key set was written into it.
    Written,
    /// The secret already holds a valid key set; nothing changed.
    AlreadyPresent,
}

/// Makes sure `secret_id` holds a valid key set, writing `key_set_json` only where it does
/// not: never replaces working keys (that would end every session). Used by
/// `authctl local-setup` / `keys init` and the tests; never by the Lambdas.
pub async fn init_key_set(client: &Client, secret_id: &str, key_set_json: &str) -> Result<KeySetInit, AuthError> {
    let current = client.get_secret_value().secret_id(secret_id).send().await;
    match current {
        Ok(out) if out.secret_string().is_some_and(|json| KeySet::from_json(json).is_ok()) => Ok(KeySetInit::AlreadyPresent),
        Ok(_) => {
            put_key_set(client, secret_id, key_set_json).await?;
            Ok(KeySetInit::Written)
        }
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
            client
                .create_secret()
                .name(secret_id)
                .secret_string(key_set_json)
                .send()
                .await
                .map_err(|e| sdk_error("CreateSecret", e))?;
            Ok(KeySetInit::Created)
        }
        Err(e) => Err(sdk_error("GetSecretValue", e)),
    }
}

/// Overwrites the key-set secret with a new value (key rotation, tests).
pub async fn put_key_set(client: &Client, secret_id: &str, key_set_json: &str) -> Result<(), AuthError> {
    client
        .put_secret_value()
        .secret_id(secret_id)
        .secret_string(key_set_json)
        .send()
        .await
        .map_err(|e| sdk_error("PutSecretValue", e))?;
    Ok(())
}

/// A fresh key set JSON: one HS256 key `k1` and a pepper, 32 bytes each from the OS CSPRNG.
pub fn generate_key_set_json() -> String {
    let key = super::generate_secret();
    let pepper = super::generate_secret();
    serde_json::json!({
        "active_kid": "k1",
        "keys": [{"kid": "k1", "alg": "HS256", "secret": key}],
        "refresh_pepper": pepper,
    })
    .to_string()
}
