//! The core of the authentication service: every rule lives here, the Lambdas only wire it.
//!
//! Dependencies point one way, with no cycle: `service` uses `tokens`, `keys`, `store`
//! and `credentials` (the throttled password check it shares with `account`, over
//! `password` and `store`); `http`, `authorizer`, `discovery` and `account` (the only modules that know about
//! Lambda event shapes) call `service`, `tokens` or `keys`; `aws` wires the adapters
//! (`store::dynamodb`, `keys::secrets_manager`), which know nothing of it. `config`,
//! `error`, `clock` and `random` depend on no other module but `error`; `tokens` uses
//! `keys`, never the other way. AWS SDK types stay inside the adapters and `aws`.

pub mod account;
pub mod audit;
pub mod authorizer;
pub mod aws;
pub mod claims;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod discovery;
pub mod error;
pub mod http;
pub mod keys;
pub mod password;
pub mod password_policy;
pub mod random;
pub mod revocation;
pub mod service;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod tokens;

pub use config::Config;
pub use error::AuthError;
