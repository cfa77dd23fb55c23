//! # certbound-client
//!
//! Certificate-bound (RFC 8705 mTLS proof-of-possession) token acquisition for confidential
//! clients, a token cache and authorization headers. Module layout follows the data path:
//! [`config`] → [`credential`] → [`authority`] → [`acquire`] → [`cache`] → [`header`] → [`App`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cache;
pub mod error;
pub mod secret;

pub use cache::{CacheKey, CachedToken, MemoryTokenCache, TokenCache};
pub use error::{ClientError, ConfigError};
pub use secret::Secret;
