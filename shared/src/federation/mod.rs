//! Sign-in through other identity providers: OpenID Connect's authorization code flow with
//! PKCE, against any provider configured in `OAUTH_PROVIDERS`, and GitHub's OAuth 2.0.
//!
//! - `provider`: the configured providers.
//! - `http`: the HTTPS client that reaches them.
//! - `id_token`: the provider's ID token, verified against its published keys.
//! - `client`: one provider's metadata, keys, authorization URL and code exchange.
//! - `github`: who signed in at GitHub, from its REST API.

pub mod client;
pub mod github;
pub mod http;
pub mod id_token;
pub mod provider;
