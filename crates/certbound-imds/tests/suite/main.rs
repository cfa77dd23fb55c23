//! The integration tests of `certbound-imds`, one binary for all of them (one link of the
//! crate graph instead of one per file): one module per area, the shared fixtures in
//! `tests/common` (built on the `certbound-test` crate).
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "../common/mod.rs"]
mod common;

mod azure_sdk_interop;
mod csr;
mod faults;
mod hostile;
mod imds_v2;
mod unbound;
