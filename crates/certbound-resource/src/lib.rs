//! # certbound-resource
//!
//! The resource-server side of certificate-bound tokens (RFC 8705), following the data path:
//!
//! 1. [`transport`]: TLS accept that requests (but does not require) a client certificate
//!    and attaches it, with its `x5t#S256` thumbprint, to every request;
//! 2. [`extract`]: the `Authorization` header, schemes `Bearer`, `mtls_pop`, `DPoP` and `PoP`
//!    (and the `DPoP` proof header);
//! 3. [`jwks`]: the issuer's keys, from its discovery document, pre-parsed and cached;
//! 4. [`validate`]: every token rule of docs/resource-server.md;
//! 5. [`binding`]: `cnf."x5t#S256"` against the connection's certificate; [`proof`]: DPoP
//!    proofs (`cnf.jkt`) and signed HTTP requests (`cnf.kid`) against the request;
//! 6. [`layer`]: a `tower::Layer` and an axum extractor;
//!    [`client_cert`]: the plain `MTLS` scheme — the certificate alone, no token
//!    ([`ClientCertificate`] extractor, [`RequireClientCertificate`] layer with an allow-list
//!    of thumbprints and/or trust anchors);
//! 7. [`reject`]: RFC 6750 `WWW-Authenticate` responses.
//!
//! ```no_run
//! use axum::{Json, Router, routing::get};
//! use certbound_resource::{CertboundLayer, ValidatedToken, Validator};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let validator = Validator::builder()
//!     .issuer("https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0")
//!     .audience("api://orders")
//!     .require_binding(true)
//!     .build()
//!     .await?;
//! // Every route below the layer needs a valid token, bound to the caller's certificate.
//! let app: Router = Router::new()
//!     .route("/whoami", get(|token: ValidatedToken| async move {
//!         Json(serde_json::json!({ "sub": token.claims().sub() }))
//!     }))
//!     .layer(CertboundLayer::new(validator));
//! # drop(app); Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod binding;
pub mod client_cert;
pub mod extract;
pub mod jwks;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod layer;
pub mod reject;
pub mod transport {
    //! TLS accept → client certificate: re-exported from `certbound_core::tls::server`, where
    //! the development authority shares it.
    pub use certbound_core::tls::server::*;
}
pub mod validate;

/// DPoP proofs and signed HTTP requests: the request-bound half of validation (it lives in
/// [`validate`], whose [`Validator`] it extends).
pub use validate::proof;

pub use binding::Confirmation;
pub use certbound_core::scheme::{ParseSchemeError, ProtocolScheme};
pub use client_cert::{CertificateRejection, ClientCertificate, RequireClientCertificate};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use layer::{CertboundLayer, CertboundService};
pub use reject::{DpopError, Rejection, TokenError};
pub use transport::{PeerCertificate, TlsInfo, TlsServer};
#[cfg(feature = "jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
pub use validate::KeyFetching;
pub use validate::{
    BuildError, Claims, Presented, ProofPolicy, TokenRules, ValidatedToken, Validator,
    ValidatorBuilder,
};
