//! # certbound-downstream
//!
//! The last step of the client's data path: calling downstream APIs with the token and
//! over the transport the API's `ProtocolScheme` asks for.
//!
//! - [`pool`]: mTLS HTTP clients keyed by certificate thumbprint, bounded, LRU.
//! - [`api`]: named downstream APIs called with the app's token over the right transport.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod error;
pub mod pool;

pub use api::{CallOptions, Downstream, DownstreamResponse};
pub use error::DownstreamError;
pub use pool::{TransportPool, TransportPoolBuilder, TransportSettings};
