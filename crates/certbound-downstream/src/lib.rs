//! # certbound-downstream
//!
//! The last step of the client's data path: calling downstream APIs with the token and
//! over the transport the API's `ProtocolScheme` asks for.
//!
//! - [`pool`]: mTLS HTTP clients keyed by certificate thumbprint, bounded, LRU.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod error;
pub mod pool;

pub use error::DownstreamError;
pub use pool::{TransportPool, TransportPoolBuilder, TransportSettings};
