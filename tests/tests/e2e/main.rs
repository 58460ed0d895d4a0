//! End-to-end tests: the real handlers of the six Lambdas against the emulator.

// A test fails by panicking; the harness helpers unwrap for the same reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod account;
mod attacks_access;
mod attacks_sessions;
pub mod authctl;
mod authorizer;
mod calls;
mod discovery;
mod fault_server;
mod faults;
mod federation;
mod forge;
mod harness;
mod login;
mod logout;
mod mfa;
pub mod passkeys;
mod refresh;
mod register;
mod rotation;
mod strict;
mod template;
