//! # certbound-resource
//!
//! The resource-server side of certificate-bound tokens, following the data path:
//! TLS accept → client certificate ([`transport`]) → token validation → binding check.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod transport;
