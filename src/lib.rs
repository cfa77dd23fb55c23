//! # certbound
//!
//! Certificate-bound OAuth access tokens (RFC 8705 mTLS proof-of-possession) for Rust, on
//! both sides of the wire. This crate is the front door: it re-exports the workspace's
//! crates and holds the `certbound` command line.
//!
//! - [`core`]: certificates, thumbprints, JOSE, TLS configuration.
//! - [`client`]: token acquisition, cache, authorization headers.
//! - [`downstream`]: downstream API calls over the mTLS transport pool.
//! - [`resource`]: TLS accept, token validation, binding check, tower layer, axum extractor.
//! - [`authority`]: the local development authority and IMDS emulator.
//! - [`redis`]: the encrypted Redis L2 token cache.
//! - `local` (feature `local`, part of the default `cli`): `LocalStack`, a development
//!   authority, registered clients and a protected API on loopback in one process, for
//!   integration tests, examples and the demo.
//!
//! One line: [`app_from_config_file`] wires credentials, authority, acquisition and
//! cache (Redis L2 included when configured) from an `appsettings.json`.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use certbound_authority as authority;
pub use certbound_client as client;
pub use certbound_core as core;
pub use certbound_downstream as downstream;
pub use certbound_redis as redis;
pub use certbound_resource as resource;

#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
#[cfg(feature = "local")]
#[cfg_attr(docsrs, doc(cfg(feature = "local")))]
pub mod local;
mod setup;

/// The README's Rust code blocks, compiled as doctests (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use certbound_client::{
    App, AppBuilder, AppConfig, AuthorizationHeader, HeaderHandle, HeaderOptions, ProtocolScheme,
};
pub use setup::{SetupError, app_builder, app_from_config_file};
