//! The Lambda-facing surfaces, one room per function: request parsing, the Origin and CORS
//! rules, cookies and answers. [`session`] serves login, refresh and logout, [`account`]
//! the signed-in user's endpoints, [`register`] sign-up and reset by e-mail, [`discovery`] the public key documents, [`authorizer`]
//! API Gateway's authorizer events; [`http`] holds what the HTTP rooms share. These are the
//! only modules that know `lambda_http` or an event shape; they call the use cases in
//! `service` (or `tokens` and `keys` to verify), never the other way round.

pub mod account;
pub mod authorizer;
pub mod discovery;
pub mod federation;
pub mod http;
pub mod register;
pub mod session;
