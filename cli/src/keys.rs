//! `authctl keys`: the signing key set and its staged rotation, over the two key stores.

use auth_core::AuthError;
use auth_core::config::{DEFAULT_KEY_PUBLISH_DELAY, MAX_ACCESS_TOKEN_TTL};
use auth_core::keys::KeyAlgorithm;
use auth_core::keys::rotation::KeyEntry;
use auth_core::keys::secrets_manager::{KeyAdded, KeyStores, KeysInit, RotationError};
use auth_core::tokens::LEEWAY_SECS;
use clap::{Args, Subcommand};

use crate::timestamp;

/// Where the keys live and the times the rotation rules need.
#[derive(Args)]
pub struct KeysArgs {
    /// Seconds a new key must be published before `activate` lets it sign.
    #[arg(long, env = "KEY_PUBLISH_DELAY", default_value_t = DEFAULT_KEY_PUBLISH_DELAY, global = true)]
    key_publish_delay: u64,
    /// The stack's access token lifetime (its `AccessTokenTtl`), seconds: a retired key is
    /// kept this long (plus leeway). No default: `keys remove` must not guess it, since a
    /// stack with longer-lived tokens would have them refused early.
    #[arg(long, env = "ACCESS_TOKEN_TTL", global = true,
          value_parser = clap::value_parser!(u64).range(1..=MAX_ACCESS_TOKEN_TTL))]
    access_token_ttl: Option<u64>,
    /// The functions' `KEY_CACHE_TTL`, seconds (300 unless the stack sets it): after an
    /// activation, login and refresh may sign with the retired key this much longer. No
    /// default, likewise.
    #[arg(long, env = "KEY_CACHE_TTL", global = true)]
    key_cache_ttl: Option<u64>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create the key set where there is none: one active key and a fresh refresh pepper.
    /// Over an HS256 key set (before asymmetric keys), replaces it and keeps its pepper,
    /// so sessions survive. A valid key set is left alone (its JWKS is republished).
    Init {
        /// Algorithm of the first key.
        #[arg(long, default_value = "ES256")]
        alg: KeyAlgorithm,
    },
    /// Add a standby key: published in the JWKS at once, signing only once activated.
    Add {
        /// Its algorithm: ES256 (default), EdDSA (not for API Gateway's JWT authorizer) or RS256.
        #[arg(long, default_value = "ES256")]
        alg: KeyAlgorithm,
    },
    /// Make a standby key the signing key; the active one retires and still verifies.
    Activate {
        kid: String,
        /// Skip the wait for verifiers' JWKS caches (tokens may be refused meanwhile).
        #[arg(long)]
        now: bool,
    },
    /// Remove a retired (or standby) key once no token it signed can still be valid
    /// (KEY_CACHE_TTL + ACCESS_TOKEN_TTL + 30 s after it retired).
    Remove {
        kid: String,
        /// Remove it at once: every token it signed stops verifying (a key compromise).
        #[arg(long)]
        now: bool,
    },
    /// Show every key: kid, algorithm, state and the times of its transitions.
    List,
    /// Print the public JWKS: the value of the `PublicJwks` deploy parameter.
    Jwks,
}

/// Why `keys remove` (without `--now`) refuses to run without the stack's lifetimes.
const LIFETIMES_NEEDED: &str = "keys remove waits until no token the key signed can still be valid, which depends on the \
     stack's access token lifetime and key cache TTL: give them as --access-token-ttl (the AccessTokenTtl parameter, \
     900 by default) and --key-cache-ttl (the functions' KEY_CACHE_TTL, 300 unless you set it), or as \
     ACCESS_TOKEN_TTL and KEY_CACHE_TTL. Nothing was changed.";

/// Runs one `authctl keys` command.
pub async fn run(stores: &KeyStores, args: KeysArgs, now: u64) -> Result<(), String> {
    let redeploy = "redeploy with the PublicJwks parameter set to `authctl keys jwks`, so the authorizer's deployed keys match the store";
    match args.command {
        KeysCommand::Init { alg } => match init(stores, alg, now).await? {
            Some(change) => println!("keys init: {change}"),
            None => println!("keys init: nothing to do, the key set is valid (its JWKS is published)"),
        },
        KeysCommand::Add { alg } => {
            let (key, what) = match stores.add(alg, now).await.map_err(describe)? {
                KeyAdded::New(key) => (key, "is published in standby"),
                KeyAdded::AlreadyWaiting(key) => (key, "was already waiting in standby (no key added)"),
            };
            // From the key's own publication time: a second run must not move the date.
            let ready = timestamp(key.created_at.saturating_add(args.key_publish_delay));
            println!("keys add: {} key {} {what}; activate it from {ready} on; {redeploy}", key.alg.as_str(), key.kid);
        }
        KeysCommand::Activate { kid, now: at_once } => {
            stores.activate(&kid, now, args.key_publish_delay, at_once).await.map_err(describe)?;
            println!("keys activate: key {kid} signs new tokens; the previous key is retired and still verifies");
        }
        KeysCommand::Remove { kid, now: at_once } => {
            // A login or refresh whose cached set predates the activation still signs with
            // the retired key for up to KEY_CACHE_TTL, and each token lives ACCESS_TOKEN_TTL
            // plus the leeway verifiers allow: the stack's values, never assumed ones.
            let lifetime = match (args.key_cache_ttl, args.access_token_ttl) {
                (Some(cache), Some(tokens)) => cache.saturating_add(tokens).saturating_add(LEEWAY_SECS),
                _ if at_once => 0,
                _ => return Err(LIFETIMES_NEEDED.into()),
            };
            if stores.remove(&kid, now, lifetime, at_once).await.map_err(describe)? {
                println!(
                    "keys remove: key {kid} is no longer published; authorizers deployed with it trust it until they next read \
                     the public store: {redeploy}"
                );
            } else {
                println!("keys remove: there is no key {kid} in the set (removed before, or never added); `authctl keys list` shows the keys");
            }
        }
        KeysCommand::List => {
            let set = stores.list().await.map_err(describe)?;
            println!(
                "{:<24} {:<6} {:<8} {:<20} {:<20} {:<20}",
                "KID", "ALG", "STATE", "ADDED", "ACTIVATED", "RETIRED"
            );
            for key in &set.keys {
                println!("{}", row(key));
            }
        }
        KeysCommand::Jwks => {
            let jwks = stores.jwks().await.map_err(describe)?;
            println!("{}", serde_json::to_string(&jwks).map_err(|e| e.to_string())?);
        }
    }
    Ok(())
}

/// What `keys init` and `local-setup` did, if anything.
pub async fn init(stores: &KeyStores, alg: KeyAlgorithm, now: u64) -> Result<Option<String>, String> {
    Ok(match stores.init(alg, now).await.map_err(describe)? {
        KeysInit::Created(kid) => Some(format!("created the key set: {} key {kid} signs, with a fresh refresh pepper", alg.as_str())),
        KeysInit::MigratedFromHs256(kid) => Some(format!(
            "replaced the HS256 key set: {} key {kid} signs; the refresh pepper was kept, so sessions survive \
             (access tokens signed with HS256 stop verifying: clients refresh)",
            alg.as_str()
        )),
        KeysInit::AlreadyPresent => None,
    })
}

fn row(key: &KeyEntry) -> String {
    let at = |t: Option<u64>| t.map_or_else(|| "-".to_owned(), timestamp);
    format!(
        "{:<24} {:<6} {:<8} {:<20} {:<20} {:<20}",
        key.kid,
        key.alg.as_str(),
        format!("{:?}", key.state).to_lowercase(),
        timestamp(key.created_at),
        at(key.activated_at),
        at(key.retired_at)
    )
}

fn describe(e: RotationError) -> String {
    match e {
        RotationError::Store(AuthError::Unavailable(cause)) => cause,
        other => other.to_string(),
    }
}
