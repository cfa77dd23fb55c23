//! # certbound-downstream
//!
//! The last step of the client's data path: calling downstream APIs with the token and
//! over the transport the API's `ProtocolScheme` asks for.
//!
//! - [`TransportPool`]: mTLS HTTP clients keyed by certificate thumbprint, bounded, LRU — a
//!   re-export of [`certbound_client::TransportPool`].
//! - [`Downstream`]: named downstream APIs called with the app's token over the right
//!   transport.
//!
//! ## Decision: a thin crate over the app's transport
//!
//! The mTLS client pool lives in `certbound-client` and the [`App`](certbound_client::App)
//! owns it ([`App::transport`](certbound_client::App::transport)), because token
//! acquisition needs it too: a token request and a downstream call for the same
//! certificate must use the same `reqwest::Client` (the same warm connections).
//! [`Downstream::for_app`] and [`Downstream::from_app`] take the app's pool; this crate
//! keeps only what is specific to calling APIs (named APIs, schemes, per-request proofs,
//! redirects of Bearer calls, body limits, the one refresh-and-retry on `invalid_token`).
//! [`TransportPool`], [`TransportPoolBuilder`] and [`TransportSettings`] stay importable
//! from here as re-exports.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod api;
mod error;
mod pool;

pub use api::{CallOptions, DEFAULT_MAX_BODY, Downstream, DownstreamResponse, MAX_REDIRECTS};
pub use error::DownstreamError;
pub use pool::{TransportPool, TransportPoolBuilder, TransportSettings};
