//! Token flows, credential sources, bound/unbound rules and faults, over real TLS against
//! the fault-injecting test token server in `common`.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use certbound_client::{App, ClientError, HeaderOptions, ProtocolScheme, TokenSource};
use certbound_core::KeyKind;
use common::*;

const SCOPE: &str = "api://resource/.default";

fn bound() -> HeaderOptions {
    HeaderOptions::mtls_pop()
}

mod cache;
mod faults;
mod schemes;
