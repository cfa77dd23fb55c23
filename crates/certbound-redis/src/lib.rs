//! # certbound-redis
//!
//! A distributed token cache for certbound: an encrypted **L2** on Redis (single node or
//! Redis Cluster) shared by every replica of a service, behind the in-memory **L1** of
//! `certbound-client`, so replicas share tokens instead of each asking the authority.
//!
//! - [`crypto`]: AES-256-GCM envelopes (aws-lc-rs) with the cache key as associated data and a
//!   key id for rotation ([`EncryptionKey`], [`Keyring`]).
//! - [`config`]: the `TokenCache:Redis` JSON section, environment overrides, and a builder
//!   ([`RedisCacheConfig`]).
//! - [`l2`]: [`RedisTokenCache`] — bounded timeouts, failures absorbed and logged once per
//!   outage, self-recovery, unusable entries removed.
//! - [`tiered`]: [`TieredCache`] — the memory L1 in front of the L2, as one `TokenCache`.
//!
//! Redis sees only `KeyPrefix ‖ hex(SHA-256(cache key))` names and sealed values: no token,
//! no secret, no client id in clear.
//!
//! ```no_run
//! use certbound_redis::{RedisCacheConfig, RedisTokenCache};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let doc: serde_json::Value = serde_json::from_str(r#"{ "TokenCache": { "Redis": {
//!     "ConnectionString": "redis://127.0.0.1:6379", "KeyPrefix": "myapp:",
//!     "EncryptionKey": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" } } }"#)?;
//! if let Some(config) = RedisCacheConfig::from_json_with_env(&doc, std::env::vars())? {
//!     let l2 = RedisTokenCache::connect(config).await?;
//!     println!("{l2:?}");
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod crypto;
pub mod error;
mod health;
pub mod l2;
pub mod tiered;

pub use config::{RedisCacheConfig, RedisCacheConfigBuilder};
pub use crypto::{EncryptionKey, KeyId, Keyring, OpenError};
pub use error::ConfigError;
pub use l2::{L2Stats, RedisTokenCache};
pub use tiered::TieredCache;
