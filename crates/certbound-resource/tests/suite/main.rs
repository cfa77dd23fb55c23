//! The resource crate's integration tests, in one binary (one link instead of eight): each
//! module is one former `tests/*.rs` file, sharing the fixtures of [`common`].
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

mod binding_tls;
mod client_cert;
mod cnf_tls;
mod garbage;
mod hostile;
mod key_source;
mod proof_tls;
mod unicode_offsets;
