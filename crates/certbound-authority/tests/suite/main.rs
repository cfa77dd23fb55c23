//! The integration tests of `certbound-authority`, one binary for all of them (one link of
//! the crate graph instead of one per file): one module per area, the shared fixtures in
//! `tests/common` (built on the `certbound-test` crate).
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "../common/mod.rs"]
mod common;

mod assertion_numbers;
mod assertion_x5t;
mod client_auth;
mod dpop;
mod hostile;
mod imds;
mod interop;
mod load;
mod state;
mod token;
mod verify;
