//! # certbound-client
//!
//! Certificate-bound (RFC 8705 mTLS proof-of-possession) token acquisition for confidential
//! clients, a token cache and authorization headers — the Rust counterpart of
//! Microsoft.Identity.Web's token acquisition with token binding, for Entra ID and any
//! RFC 8705 authorization server.
//!
//! The data path: [`AppConfig`] → credentials ([`ClientCredential`]) → [`Authority`] →
//! token acquisition ([`RetryPolicy`]) → [`TokenCache`] → [`AuthorizationHeader`] → [`App`];
//! [`TransportPool`] is the one mTLS client pool the app shares with downstream calls. The
//! items are at the crate root; two modules are namespaces of their own: [`config`] (the
//! `appsettings.json` model) and [`managed`] (managed identity: IMDS and App Service).
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

mod acquire;
mod app;
mod authority;
mod cache;
pub mod config;
mod credential;
mod error;
mod header;
pub mod managed;
mod proof;
mod rotation;
mod scheme;
mod secret;
mod transport;
mod vocab;

pub use acquire::{
    MAX_RETRY_AFTER, RetryPolicy, check_key_bound_token_response, check_token_response,
    client_assertion,
};
pub use app::{App, AppBuilder, AppToken, HeaderHandle, HeaderRef};
pub use authority::{Authority, DiscoveredEndpoints};
pub use cache::{BoxFuture, CacheError, CacheKey, CachedToken, MemoryTokenCache, TokenCache};
pub use config::AppConfig;
pub use credential::{
    AssertionFileCredential, CertificateCredential, ClientCredential, ResolvedCredential,
    SecretCredential,
};
pub use error::{ClientError, ConfigError, ErrorCause};
pub use header::{AuthorizationHeader, HeaderOptions, ProtocolScheme, TokenSource};
pub use managed::ManagedIdentityCredential;
pub use rotation::{DEFAULT_CHECK_INTERVAL, FileCertificateCredential, RELOAD_MIN_INTERVAL};
pub use secret::Secret;
pub use transport::{DEFAULT_MAX_CLIENTS, TransportPool, TransportPoolBuilder, TransportSettings};
