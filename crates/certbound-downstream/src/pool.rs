//! mTLS transport: one pooled HTTP client per binding certificate — re-exported from
//! `certbound-client`.
//!
//! The pool lives in the client crate because the [`App`](certbound_client::App) owns it:
//! token acquisition and downstream calls take their clients from the same bounded LRU
//! pool, so a token request and a downstream call presenting the same certificate share one
//! `reqwest::Client` (one connection pool). [`Downstream::for_app`](crate::Downstream::for_app)
//! and [`Downstream::from_app`](crate::Downstream::from_app) use the app's pool; a pool
//! built here with [`TransportPool::builder`] is a separate one.
//!
//! ```no_run
//! use certbound_core::tls::TrustAnchors;
//! use certbound_downstream::TransportPool;
//! # fn f(cert: certbound_core::CertifiedKey) -> Result<(), certbound_client::ClientError> {
//! let pool = TransportPool::builder().trust(TrustAnchors::system()).max_clients(32).build()?;
//! let mtls = pool.client_for(Some(&cert))?;    // presents `cert`
//! let plain = pool.client_for(None)?;          // no client certificate
//! # Ok(()) }
//! ```

pub use certbound_client::{TransportPool, TransportPoolBuilder, TransportSettings};
