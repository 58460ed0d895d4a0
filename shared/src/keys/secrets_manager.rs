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

use super::rotation::{KeyEntry, KeyState, RotationRefused, SigningKeySet};
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
    /// Another operator's command changed a store between this command's read and its
    /// write; this one stopped rather than overwrite it.
    #[error(
        "another `authctl keys` command changed secret {0} while this one ran, so this one stopped without overwriting it: \
         check `authctl keys list`, then run this command again"
    )]
    Conflict(String),
    /// Secrets Manager failed.
    #[error(transparent)]
    Store(#[from] AuthError),
}

/// What [`KeyStores::init`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysInit {
    /// There was no key set (no secret, or the stack's placeholder): a new one with a
    /// fresh pepper signs with this key.
    Created(String),
    /// An HS256 set was replaced; its pepper was kept, so sessions survive.
    MigratedFromHs256(String),
    /// A valid set was there; its JWKS was (re)published.
    AlreadyPresent,
}

/// What [`KeyStores::add`] did.
#[derive(Debug, Clone)]
pub enum KeyAdded {
    /// A new standby key, published now.
    New(KeyEntry),
    /// A standby key was already waiting (maybe of another algorithm): that one is the
    /// answer, so running `add` twice adds one key.
    AlreadyWaiting(KeyEntry),
}

/// A secret's value with the version it was read from, so that a write replaces exactly
/// what was read or fails (see [`KeyStores`]).
struct Read {
    id: String,
    value: Option<String>,
    version: Option<String>,
}

/// The two secrets `authctl keys` works on. Used by `authctl` and the tests; never by the
/// Lambdas.
///
/// Every step reads the public store, then the private one, and writes each only over the
/// version it read (a new version whose request token is derived from the one read, or a
/// create when there was none): of two operators' steps that overlap, the later write
/// fails with [`RotationError::Conflict`] instead of silently undoing the other (bringing
/// back a removed key, or dropping a new one from the JWKS). Public before private when a
/// key is added or activated, private before public when one is removed, so no verifier
/// lacks a key that signs; a step cut short between its two writes is finished by running
/// it again.
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
        Ok(self.read(&self.private_id).await?.value.and_then(|json| SigningKeySet::from_json(&json).ok()))
    }

    /// Both stores, public first: a key that an overlapping step removes (private, then
    /// public) is then either missing from what this step read, or this step's public write
    /// fails, or the remover's does (and it is told to run again). A key an overlapping
    /// step adds can still be left out of this step's JWKS; `activate` finds and repairs
    /// that before the key may sign.
    async fn read_both(&self) -> Result<(Read, Read), RotationError> {
        let public = self.read(&self.public_id).await?;
        let private = self.read(&self.private_id).await?;
        Ok((public, private))
    }

    fn existing(&self, private: &Read) -> Result<SigningKeySet, RotationError> {
        let value = private.value.as_deref();
        SigningKeySet::from_json(value.unwrap_or_default()).map_err(|e| {
            let what_to_do = match value {
                None => "there is no key set yet: run `authctl keys init`",
                Some(json) if is_placeholder(json) || SigningKeySet::hmac_era_pepper(json).is_some() => "run `authctl keys init`",
                Some(_) => "repair it (`keys init` would not replace it)",
            };
            RotationRefused(format!("secret {} holds no usable key set ({}); {what_to_do}", self.private_id, e.0)).into()
        })
    }

    /// Makes sure there is a key set: a new one signing with a fresh `alg` key where there
    /// is none (no secret, or the placeholder the stack creates), or, over an HS256 set,
    /// one that keeps its refresh pepper. A valid set is left as it is, and so is anything
    /// else it cannot read: replacing that would throw away its pepper and end every
    /// session. Public before private: the key is published before anything can sign with
    /// it.
    pub async fn init(&self, alg: KeyAlgorithm, now: u64) -> Result<KeysInit, RotationError> {
        let (public, private) = self.read_both().await?;
        let current = private.value.as_deref();
        let parsed = current.map(SigningKeySet::from_json);
        if let Some(Ok(set)) = &parsed {
            self.publish(&public, set, false).await?;
            return Ok(KeysInit::AlreadyPresent);
        }
        let carried = current.and_then(SigningKeySet::hmac_era_pepper);
        if let (Some(Err(e)), None, false) = (&parsed, &carried, current.is_some_and(is_placeholder)) {
            return Err(RotationRefused(format!(
                "secret {} holds something that is not a key set ({}); `keys init` does not replace it, as that would end every \
                 session: repair it, or delete the secret to start afresh",
                self.private_id, e.0
            ))
            .into());
        }
        let key = PrivateKey::generate(alg)?;
        let set = SigningKeySet::starting_with(&key, carried.clone().unwrap_or_else(super::generate_secret), now);
        self.publish(&public, &set, false).await?;
        self.write(&private, &set.to_json(), false).await?;
        Ok(match carried {
            Some(_) => KeysInit::MigratedFromHs256(key.kid),
            None => KeysInit::Created(key.kid),
        })
    }

    /// Adds a standby `alg` key: published, not signing. Public before private. When a
    /// standby key already waits, that one is the answer (and is published again if it
    /// is missing from the public store, its publish delay starting over).
    pub async fn add(&self, alg: KeyAlgorithm, now: u64) -> Result<KeyAdded, RotationError> {
        let (public, private) = self.read_both().await?;
        let mut set = self.existing(&private)?;
        if let Some(kid) = set.standby().map(|k| k.kid.clone()) {
            self.republish_if_missing(&public, &private, &mut set, &kid, now).await?;
            return Ok(KeyAdded::AlreadyWaiting(set.entry(&kid)?.clone()));
        }
        let key = PrivateKey::generate(alg)?;
        set.add(&key, now)?;
        self.publish(&public, &set, false).await?;
        self.write(&private, &set.to_json(), false).await?;
        Ok(KeyAdded::New(set.entry(&key.kid)?.clone()))
    }

    /// Makes `kid` the signing key (see [`SigningKeySet::activate`]), once it is in the
    /// public store: a standby key missing from it (its publication lost to a failed or
    /// overlapping step) is published again and its publish delay starts over, unless
    /// `now_anyway`. Public (always rewritten, so an overlapping step's stale JWKS cannot
    /// replace it afterwards) before private.
    pub async fn activate(&self, kid: &str, now: u64, publish_delay: u64, now_anyway: bool) -> Result<(), RotationError> {
        let (mut public, mut private) = self.read_both().await?;
        let mut set = self.existing(&private)?;
        if set.entry(kid)?.state == KeyState::Active {
            // Done before (maybe cut short before its JWKS was written): finish, write nothing new.
            return self.publish(&public, &set, false).await;
        }
        // SECURITY: never sign with a key that verifiers may not have been able to fetch.
        if set.entry(kid)?.state == KeyState::Standby && self.republish_if_missing(&public, &private, &mut set, kid, now).await? {
            if !now_anyway {
                return Err(RotationRefused(format!(
                    "key {kid} was missing from the public store ({}), so verifiers may not know it: it is published again now; \
                     activate it in {publish_delay} s, or pass --now",
                    self.public_id
                ))
                .into());
            }
            (public, private) = self.read_both().await?;
            set = self.existing(&private)?;
        }
        set.activate(kid, now, publish_delay, now_anyway)?;
        // SECURITY: always a new public version, so a stale JWKS can no longer replace it.
        self.publish(&public, &set, true).await?;
        self.write(&private, &set.to_json(), false).await
    }

    /// Removes `kid` (see [`SigningKeySet::remove`]); `false` when it was not in the set
    /// (removed before, or never added). Private before public: nothing signs with it any
    /// more by the time verifiers stop knowing it.
    pub async fn remove(&self, kid: &str, now: u64, token_lifetime: u64, now_anyway: bool) -> Result<bool, RotationError> {
        let (public, private) = self.read_both().await?;
        let mut set = self.existing(&private)?;
        let present = set.keys.iter().any(|k| k.kid == kid);
        set.remove(kid, now, token_lifetime, now_anyway)?;
        self.write(&private, &set.to_json(), false).await?;
        self.publish(&public, &set, false).await?;
        Ok(present)
    }

    /// The public JWKS of the private set, as published.
    pub async fn jwks(&self) -> Result<Jwks, RotationError> {
        let private = self.read(&self.private_id).await?;
        Ok(self.existing(&private)?.public_jwks()?)
    }

    /// The private set, for `keys list`.
    pub async fn list(&self) -> Result<SigningKeySet, RotationError> {
        let private = self.read(&self.private_id).await?;
        self.existing(&private)
    }

    /// When standby key `kid` is not in the public store as read, publishes `set` and
    /// restarts the key's publish delay (private after public). Whether it had to.
    async fn republish_if_missing(&self, public: &Read, private: &Read, set: &mut SigningKeySet, kid: &str, now: u64) -> Result<bool, RotationError> {
        let jwk = set.entry(kid)?.private_key()?.public_jwk()?;
        let published = public
            .value
            .as_deref()
            .and_then(|json| serde_json::from_str::<Jwks>(json).ok())
            .is_some_and(|jwks| jwks.keys.contains(&jwk));
        if published {
            return Ok(false);
        }
        set.restart_publication(kid, now)?;
        self.publish(public, set, false).await?;
        self.write(private, &set.to_json(), false).await?;
        Ok(true)
    }

    /// Writes the JWKS of `set` over the public store as read; `always`: even when it
    /// holds that JWKS already.
    async fn publish(&self, public: &Read, set: &SigningKeySet, always: bool) -> Result<(), RotationError> {
        let jwks = serde_json::to_string(&set.public_jwks()?).map_err(|e| KeySetError(e.to_string()))?;
        self.write(public, &jwks, always).await
    }

    async fn read(&self, secret_id: &str) -> Result<Read, AuthError> {
        read_version(&self.client, secret_id).await
    }

    /// Writes `value` over exactly the version `read` came from: a create when there was
    /// no secret, else a new version whose request token is derived from the version read,
    /// so a second writer of a successor to that version fails (Secrets Manager refuses a
    /// token already used with another value), as does a create of a secret that exists.
    /// An SDK retry of the same write is the same request, and succeeds. Unchanged values
    /// are not written unless `always`.
    async fn write(&self, read: &Read, value: &str, always: bool) -> Result<(), RotationError> {
        if !always && read.value.as_deref() == Some(value) {
            return Ok(());
        }
        let conflict = |code: Option<&str>| code == Some("ResourceExistsException");
        match &read.version {
            None => match self.client.create_secret().name(&read.id).secret_string(value).send().await {
                Ok(_) => Ok(()),
                Err(e) if conflict(e.as_service_error().and_then(|s| s.code())) => Err(RotationError::Conflict(read.id.clone())),
                Err(e) => Err(sdk_error("CreateSecret", e).into()),
            },
            Some(version) => {
                let request = self
                    .client
                    .put_secret_value()
                    .secret_id(&read.id)
                    .secret_string(value)
                    // SECURITY: the compare-and-set: a token derived from the version read.
                    .client_request_token(successor_token(&read.id, version));
                match request.send().await {
                    Ok(_) => Ok(()),
                    Err(e) if conflict(e.as_service_error().and_then(|s| s.code())) => Err(RotationError::Conflict(read.id.clone())),
                    Err(e) => Err(sdk_error("PutSecretValue", e).into()),
                }
            }
        }
    }
}

/// The request token of the version that follows `version` of `secret_id`: the same for
/// every writer that read that version (64 hex characters, Secrets Manager's longest).
fn successor_token(secret_id: &str, version: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, format!("authctl successor of {secret_id} {version}").as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `json` is the placeholder `template.yaml` creates the private secret with
/// (`{"uninitialized": true, "placeholder": ...}`), which `keys init` replaces.
fn is_placeholder(json: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(json).is_ok_and(|v| v.get("uninitialized") == Some(&serde_json::Value::Bool(true)))
}

/// A secret's current value and version; both `None` when the secret does not exist.
async fn read_version(client: &Client, secret_id: &str) -> Result<Read, AuthError> {
    let (value, version) = match client.get_secret_value().secret_id(secret_id).send().await {
        Ok(out) => (out.secret_string().map(str::to_owned), out.version_id().map(str::to_owned)),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => (None, None),
        Err(e) => return Err(sdk_error("GetSecretValue", e)),
    };
    Ok(Read {
        id: secret_id.to_owned(),
        value,
        version,
    })
}

/// A secret's string value, `None` when the secret does not exist.
pub async fn read_secret(client: &Client, secret_id: &str) -> Result<Option<String>, AuthError> {
    Ok(read_version(client, secret_id).await?.value)
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
