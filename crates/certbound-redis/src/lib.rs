//! # certbound-redis
//!
//! A distributed token cache for certbound: an encrypted **L2** on Redis (single node or
//! Redis Cluster) shared by every replica of a service, behind the in-memory **L1** of
//! `certbound-client`, so replicas share tokens instead of each asking the authority.
//!
//! - [`EncryptionKey`], [`Keyring`]: AES-256-GCM envelopes (aws-lc-rs) with the cache key as
//!   associated data and a key id for rotation.
//! - [`RedisCacheConfig`]: the `TokenCache:Redis` JSON section, environment overrides, and a
//!   builder.
//! - [`RedisTokenCache`]: the L2 — bounded timeouts, failures absorbed and logged once per
//!   outage, self-recovery, unusable entries removed.
//! - [`TieredCache`]: the memory L1 in front of the L2, as one `TokenCache`.
//!
//! Redis sees only `KeyPrefix ‖ hex(SHA-256(cache key))` names and sealed values: no token,
//! no secret, no client id in clear.
//!
//! ## Wiring it into an app
//!
//! `certbound-client` cannot depend on this crate, so the app (or the `certbound` facade)
//! builds the tiered cache from the same configuration file and hands it to the builder:
//!
//! ```no_run
//! # fn run(doc: serde_json::Value, config: certbound_client::AppConfig) -> Result<(), Box<dyn std::error::Error>> {
//! // inside a Tokio runtime:
//! let mut builder = certbound_client::AppBuilder::from_config(config);
//! if let Some(cache) = certbound_redis::TieredCache::from_json_lazy(&doc, std::env::vars(), 10_000)? {
//!     builder = builder.token_cache(std::sync::Arc::new(cache));
//! }
//! let app = builder.build()?;
//! # let _ = app; Ok(()) }
//! ```
//!
//! Environment variables override the file with `__` nesting, names case-insensitive:
//! `TokenCache__Redis__ConnectionString`, `TokenCache__Redis__EncryptionKey`,
//! `TokenCache__Redis__EncryptionKeys__0`, `TokenCache__Redis__Timeout`, ….
//!
//! ## Rotating the encryption key
//!
//! Every entry names the key that sealed it (its [`KeyId`]); the current `EncryptionKey` seals,
//! it and the older `EncryptionKeys` open, and an entry opened with an older key is re-sealed
//! under the current one (keeping its TTL). An entry under a key a replica does not have is
//! treated as unusable and removed, so roll a new key out in two steps:
//!
//! 1. on every replica, add the new key to `EncryptionKeys` (it opens, nothing seals with it);
//! 2. on every replica, make it the `EncryptionKey` and move the old one to `EncryptionKeys`;
//! 3. once the longest token lifetime has passed, drop the old key.
//!
//! ## Failure behaviour
//!
//! Every command is bounded by `Timeout` (default 250 ms). When Redis is down, slow or speaks
//! garbage, reads miss and writes are dropped — the app carries on with its L1 and the
//! authority — the outage is logged once (`warn`), later calls skip Redis except one probe per
//! retry interval (500 ms doubling to 10 s), and recovery is logged once (`info`). Entries
//! that fail authentication, are sealed under an unknown key, are malformed or of the wrong
//! Redis type are logged, ignored and deleted.
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

mod config;
mod crypto;
mod error;
mod health;
mod l2;
mod tiered;

pub use config::{
    DEFAULT_KEY_PREFIX, DEFAULT_MAX_RETRY_INTERVAL, DEFAULT_RETRY_INTERVAL, DEFAULT_TIMEOUT,
    RedisCacheConfig, RedisCacheConfigBuilder, SECTION_KEYS,
};
pub use crypto::{ENVELOPE_VERSION, EncryptionKey, KeyId, Keyring, OpenError, Opened};
pub use error::RedisConfigError;
pub use l2::{L2Stats, MAX_ENTRY_BYTES, RedisTokenCache};
pub use tiered::{DEFAULT_L1_ENTRIES, TieredCache};
