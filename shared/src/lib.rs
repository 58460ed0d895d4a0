//! The core of the authentication service: every rule lives here, the Lambdas only wire it.
//!
//! Three layers, with imports pointing down only:
//!
//! - `api`: the Lambda-facing surfaces, one room per function (`api::session` for login,
//!   refresh and logout, `api::account`, `api::register`, `api::federation`, `api::discovery`,
//!   `api::authorizer`, and `api::http` for what the HTTP rooms share). The only modules that know `lambda_http`
//!   or an event shape.
//! - `service`: the use cases, one room each (`login`, `refresh`, `logout` over
//!   `AuthService`; `account`; `mfa`, TOTP enrolment and step-up; `passkeys`; `register`,
//!   sign-up and reset by e-mail; `federation`, sign-in through other OpenID providers;
//!   `revocation`, the strict authorizer's check;
//!   `credentials`, the throttled password and second-factor checks they share). They see stores
//!   and keys through traits only.
//! - Below them: `store` (the session, user, link and identity stores, `store::dynamodb`),
//!   `federation` (the providers, their HTTPS client, metadata, keys and ID tokens), `keys`
//!   (key sets and their stores, `keys::secrets_manager`), `tokens`, `links`, `mail` (with
//!   `mail::ses`), `claims`, `factors` (TOTP and recovery codes), `passkeys` (the WebAuthn
//!   relying party), `password`,
//!   `password_policy`, `audit`; and `config`, `error`, `clock`, `random`, which import
//!   nothing but `error`. `tokens` uses `keys`, never the other way.
//!
//! `aws` wires the adapters for the Lambdas' `main.rs` (the one module that knows every
//! layer); `telemetry` sets up logging; `testing` (feature `test-util`) holds in-memory
//! stores and fixtures; `fuzzing` (feature `fuzzing`) opens the private parsers to the fuzz
//! targets in `fuzz/`. AWS SDK types stay inside the adapters and `aws`.

pub mod api;
pub mod audit;
pub mod aws;
pub mod claims;
pub mod clock;
pub mod config;
pub mod error;
pub mod factors;
pub mod federation;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod keys;
pub mod links;
pub mod mail;
pub mod passkeys;
pub mod password;
pub mod password_policy;
pub mod random;
pub mod service;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "test-util"))]
pub mod testing;
pub mod tokens;

pub use config::Config;
pub use error::AuthError;
