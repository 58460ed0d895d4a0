//! Both key stores in AWS Secrets Manager: the private key set (`SIGNING_SECRET_ID`, read by
//! `login` and `refresh`) and the public JWKS (`PUBLIC_KEYS_SECRET_ID`, read by verifiers).
//! A second secret rather than S3 or Parameter Store: one SDK client and one IAM model for
//! both, versioned writes, and no new dependency in the Lambdas. Also the rotation steps
//! of `authctl keys`, which order their writes so no verifier ever lacks a key that signs.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use tokio::sync::OnceCell;

use super::rotation::{RotationRefused, SigningKeySet};
use super::signing::PrivateKey;
use super::verifying::Jwks;
use super::{FetchError, KeyAlgorithm, KeyDocument, KeyProvider, KeySetError};
use crate::error::{AuthError, sdk_error};

/// Answers of Secrets Manager that are decisions, not outages: failing closed at once.
const REFUSALS: [&str; 5] = [
    "AccessDeniedException",
    "ResourceNotFoundException",
    "DecryptionFailure",
    "InvalidRequestException",
    "InvalidParameterException",
];

/// Builds a client on first use (the authorizer's cold start has no network).
pub type Connect = Box<dyn Fn() -> Pin<Box<dyn Future<Output = Client> + Send>> + Send + Sync>;

/// Reads a key set of type `T` (the private [`super::SigningKeys`] or the public
/// [`super::PublicKeys`]) from one secret.
pub struct SecretsManagerKeys<T> {
    client: OnceCell<Client>,
    connect: Option<Connect>,
    secret_id: String,
    document: PhantomData<fn() -> T>,
}

impl<T> SecretsManagerKeys<T> {
    /// A provider for `secret_id` over `client`.
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        Self {
            client: OnceCell::new_with(Some(client)),
            connect: None,
            secret_id: secret_id.into(),
            document: PhantomData,
        }
    }

    /// A provider that builds its client with `connect` on its first fetch.
    pub fn lazy(connect: Connect, secret_id: impl Into<String>) -> Self {
        Self {
            client: OnceCell::new(),
            connect: Some(connect),
            secret_id: secret_id.into(),
            document: PhantomData,
        }
    }

    async fn client(&self) -> Result<&Client, FetchError> {
        self.client
            .get_or_try_init(|| async {
                match &self.connect {
                    Some(connect) => Ok(connect().await),
                    None => Err(FetchError::Refused(AuthError::unavailable("GetSecretValue", "no client"))),
                }
            })
            .await
    }
}

#[async_trait]
impl<T: KeyDocument> KeyProvider<T> for SecretsManagerKeys<T> {
    async fn fetch(&self) -> Result<T, FetchError> {
        let out = self.client().await?.get_secret_value().secret_id(&self.secret_id).send().await.map_err(|e| {
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
        T::from_json(json).map_err(|e| FetchError::Refused(e.into()))
    }
}

/// Why a rotation step did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// An unsafe or impossible transition, with what to do instead.
    #[error(transparent)]
    Refused(#[from] RotationRefused),
    /// A stored set or a key that does not parse.
    #[error(transparent)]
    KeySet(#[from] KeySetError),
    /// Secrets Manager failed.
    #[error(transparent)]
    Store(#[from] AuthError),
}

/// What [`KeyStores::init`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysInit {
    /// There was no usable set: a new one with a fresh pepper signs with this key.
    Created(String),
    /// An HS256 set was replaced; its pepper was kept, so sessions survive.
    MigratedFromHs256(String),
    /// A valid set was there; its JWKS was (re)published.
    AlreadyPresent,
}

/// The two secrets `authctl keys` works on. Used by `authctl` and the tests; never by the
/// Lambdas.
pub struct KeyStores {
    client: Client,
    private_id: String,
    public_id: String,
}

impl KeyStores {
    /// The stores named by `SIGNING_SECRET_ID` and `PUBLIC_KEYS_SECRET_ID`.
    pub fn new(client: Client, private_id: impl Into<String>, public_id: impl Into<String>) -> Self {
        Self {
            client,
            private_id: private_id.into(),
            public_id: public_id.into(),
        }
    }

    /// The private set, `None` when the secret is missing or holds no asymmetric key set.
    pub async fn load(&self) -> Result<Option<SigningKeySet>, RotationError> {
        Ok(self.read(&self.private_id).await?.and_then(|json| SigningKeySet::from_json(&json).ok()))
    }

    async fn load_existing(&self) -> Result<SigningKeySet, RotationError> {
        let json = self.read(&self.private_id).await?.unwrap_or_default();
        SigningKeySet::from_json(&json)
            .map_err(|e| RotationRefused(format!("secret {} holds no usable key set ({}); run `authctl keys init`", self.private_id, e.0)).into())
    }

    /// Makes sure there is a key set: a new one signing with a fresh `alg` key, or, over
    /// an HS256 set, one that keeps its refresh pepper. A valid set is left as it is.
    /// Public before private: the key is published before anything can sign with it.
    pub async fn init(&self, alg: KeyAlgorithm, now: u64) -> Result<KeysInit, RotationError> {
        let current = self.read(&self.private_id).await?;
        if let Some(set) = current.as_deref().and_then(|json| SigningKeySet::from_json(json).ok()) {
            self.publish(&set).await?;
            return Ok(KeysInit::AlreadyPresent);
        }
        let carried = current.as_deref().and_then(SigningKeySet::hmac_era_pepper);
        let key = PrivateKey::generate(alg)?;
        let set = SigningKeySet::starting_with(&key, carried.clone().unwrap_or_else(super::generate_secret), now);
        self.publish(&set).await?;
        self.write(&self.private_id, &set.to_json()).await?;
        Ok(match carried {
            Some(_) => KeysInit::MigratedFromHs256(key.kid),
            None => KeysInit::Created(key.kid),
        })
    }

    /// Adds a standby `alg` key: published, not signing. Public before private. When a
    /// standby key already waits, that one is the answer (running `add` twice adds one key).
    pub async fn add(&self, alg: KeyAlgorithm, now: u64) -> Result<String, RotationError> {
        let mut set = self.load_existing().await?;
        if let Some(waiting) = set.standby() {
            let kid = waiting.kid.clone();
            self.publish(&set).await?;
            return Ok(kid);
        }
        let key = PrivateKey::generate(alg)?;
        set.add(&key, now)?;
        self.publish(&set).await?;
        self.write(&self.private_id, &set.to_json()).await?;
        Ok(key.kid)
    }

    /// Makes `kid` the signing key (see [`SigningKeySet::activate`]).
    pub async fn activate(&self, kid: &str, now: u64, publish_delay: u64, now_anyway: bool) -> Result<(), RotationError> {
        let mut set = self.load_existing().await?;
        set.activate(kid, now, publish_delay, now_anyway)?;
        self.write(&self.private_id, &set.to_json()).await?;
        self.publish(&set).await
    }

    /// Removes `kid` (see [`SigningKeySet::remove`]). Private before public: nothing signs
    /// with it any more by the time verifiers stop knowing it.
    pub async fn remove(&self, kid: &str, now: u64, token_lifetime: u64, now_anyway: bool) -> Result<(), RotationError> {
        let mut set = self.load_existing().await?;
        set.remove(kid, now, token_lifetime, now_anyway)?;
        self.write(&self.private_id, &set.to_json()).await?;
        self.publish(&set).await
    }

    /// The public JWKS of the private set, as published.
    pub async fn jwks(&self) -> Result<Jwks, RotationError> {
        Ok(self.load_existing().await?.public_jwks()?)
    }

    /// The private set, for `keys list`.
    pub async fn list(&self) -> Result<SigningKeySet, RotationError> {
        self.load_existing().await
    }

    /// Writes the JWKS of `set` into the public store.
    async fn publish(&self, set: &SigningKeySet) -> Result<(), RotationError> {
        let jwks = serde_json::to_string(&set.public_jwks()?).map_err(|e| KeySetError(e.to_string()))?;
        self.write(&self.public_id, &jwks).await?;
        Ok(())
    }

    async fn read(&self, secret_id: &str) -> Result<Option<String>, AuthError> {
        read_secret(&self.client, secret_id).await
    }

    async fn write(&self, secret_id: &str, value: &str) -> Result<(), AuthError> {
        write_secret(&self.client, secret_id, value).await
    }
}

/// A secret's string value, `None` when the secret does not exist.
pub async fn read_secret(client: &Client, secret_id: &str) -> Result<Option<String>, AuthError> {
    match client.get_secret_value().secret_id(secret_id).send().await {
        Ok(out) => Ok(out.secret_string().map(str::to_owned)),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
        Err(e) => Err(sdk_error("GetSecretValue", e)),
    }
}

/// Writes a secret's value, creating the secret when it does not exist; an unchanged value
/// is not written again.
pub async fn write_secret(client: &Client, secret_id: &str, value: &str) -> Result<(), AuthError> {
    match read_secret(client, secret_id).await? {
        Some(current) if current == value => Ok(()),
        Some(_) => {
            client
                .put_secret_value()
                .secret_id(secret_id)
                .secret_string(value)
                .send()
                .await
                .map_err(|e| sdk_error("PutSecretValue", e))?;
            Ok(())
        }
        None => {
            client
                .create_secret()
                .name(secret_id)
                .secret_string(value)
                .send()
                .await
                .map_err(|e| sdk_error("CreateSecret", e))?;
            Ok(())
        }
    }
}
