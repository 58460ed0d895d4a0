//! Sign-in through other identity providers: OpenID Connect's authorization code flow with
//! PKCE, against any provider configured in `OAUTH_PROVIDERS`.
//!
//! - `provider`: the configured providers.
//! - `http`: the HTTPS client that reaches them.
//! - `id_token`: the provider's ID token, verified against its published keys.
//! - `client`: one provider's metadata, keys, authorization URL and code exchange.

pub mod client;
pub mod http;
pub mod id_token;
pub mod provider;
