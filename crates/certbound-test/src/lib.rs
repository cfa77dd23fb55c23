//! Test support for the certbound workspace (not published).
//!
//! One documented function for each piece of test plumbing the crates' integration tests
//! share: a development PKI and client certificates ([`pki`]), loopback HTTP(S) servers and
//! mTLS `reqwest` clients ([`net`]), a development authority in a temporary directory
//! ([`authority`]), guards for child processes that print a JSON ready line ([`process`]),
//! private `redis-server` processes ([`redis`]), captured `tracing` output ([`logs`]) and
//! polling ([`eventually`]).
//!
//! Integration tests (`tests/`) link the normal library of their crate, so this crate may
//! depend on `certbound-authority` and still be its dev-dependency. A crate's own unit tests
//! (`#[cfg(test)]` in `src/`) must not use it: they would see a second copy of the crate's
//! types.
//!
//! Every helper panics on failure: in a test, that is the failed test.
// Test support: a failed expectation is a failed test, with the message saying which.
#![allow(clippy::expect_used)]

pub mod authority;
pub mod logs;
pub mod net;
pub mod pki;
pub mod process;
pub mod redis;

use std::time::{Duration, Instant};

/// Polls `cond` every 20 ms for up to 30 s and panics naming `what` if it never holds (a
/// bound on waiting, not a performance claim).
pub async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// The header and claims of a compact JWS, decoded without verifying the signature (tests
/// verify separately where it matters).
pub fn jwt_parts(token: &str) -> (serde_json::Value, serde_json::Value) {
    certbound_core::jose::decode_unverified(token).expect("a compact JWS")
}
