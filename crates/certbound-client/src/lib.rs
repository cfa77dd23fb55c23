//! # certbound-client
//!
//! Certificate-bound (RFC 8705 mTLS proof-of-possession) token acquisition for confidential
//! clients, a token cache and authorization headers — the Rust counterpart of
//! Microsoft.Identity.Web's token acquisition with token binding, for Entra ID and any
//! RFC 8705 authorization server.
//!
//! Module layout follows the data path: [`config`] → [`credential`] → [`authority`] →
//! [`acquire`] → [`cache`] → [`header`] → [`App`]; [`transport`] holds the one mTLS client
//! pool the app shares with downstream calls.
//!
//! ```no_run
//! # async fn run() -> Result<(), certbound_client::ClientError> {
//! let app = certbound_client::App::from_config_file("appsettings.json")?;
//! let h = app
//!     .authorization_header_for_app(&["api://my-api/.default"], &certbound_client::HeaderOptions::mtls_pop())
//!     .await?;
//! assert!(h.binding().is_some()); // present this certificate on the TLS connection
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod acquire;
pub mod app;
pub mod authority;
pub mod cache;
pub mod config;
pub mod credential;
pub mod error;
pub mod header;
pub mod managed;
mod proof;
mod scheme;
pub mod secret;
pub mod transport;
mod vocab;

pub use acquire::RetryPolicy;
pub use app::{App, AppBuilder, AppToken, HeaderHandle, HeaderRef};
pub use authority::Authority;
pub use cache::{CacheKey, CachedToken, MemoryTokenCache, TokenCache};
pub use config::AppConfig;
pub use credential::{ClientCredential, ResolvedCredential};
pub use error::{ClientError, ConfigError};
pub use header::{AuthorizationHeader, HeaderOptions, ProtocolScheme, TokenSource};
pub use managed::ManagedIdentityCredential;
pub use secret::Secret;
pub use transport::{TransportPool, TransportPoolBuilder, TransportSettings};
