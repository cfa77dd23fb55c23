//! The integration tests of `certbound-downstream`, one binary for all of them (one link of the crate
//! graph instead of one per file): one module per area.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod hostile;
mod pool;
