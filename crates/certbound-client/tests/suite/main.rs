//! The integration tests of `certbound-client`, one binary for all of them (one link of the crate
//! graph instead of one per file): one module per area, the shared fixtures in `tests/common`.
//! `tests/secrets.rs` stays its own binary: it installs a process-wide `tracing`
//! subscriber and reads everything logged in the process.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "../common/mod.rs"]
mod common;

mod authority;
mod flows;
mod handle;
mod hostile;
mod key_bound;
mod managed_identity;
mod oidc_provider;
mod rotation;
