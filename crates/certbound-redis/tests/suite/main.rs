//! The integration tests of `certbound-redis`, one binary for all of them (one link of the crate
//! graph instead of one per file): one module per area, the shared fixtures in `tests/common`.
//! `tests/two_processes.rs` stays its own binary: a custom harness (`harness = false`) that
//! re-runs itself as each replica.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "../common/mod.rs"]
mod common;

mod app_e2e;
mod bounded;
mod redis;
mod tls;
