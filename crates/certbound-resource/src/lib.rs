//! # certbound-resource
//!
//! The resource-server side of certificate-bound tokens (RFC 8705), following the data path:
//!
//! 1. [`transport`]: TLS accept that requests (but does not require) a client certificate
//!    and attaches it, with its `x5t#S256` thumbprint, to every request;
//! 2. the `Authorization` header, schemes `Bearer`, `mtls_pop`, `DPoP` and `PoP` (and the
//!    `DPoP` proof header), read into a [`Presented`];
//! 3. [`jwks`]: the issuer's keys, from its discovery document, pre-parsed and cached;
//! 4. [`Validator::validate`]: every token rule of docs/resource-server.md, configured by
//!    [`ValidatorBuilder`] ([`TokenRules`], [`ProofPolicy`] and, with `jwks`, the key fetching);
//! 5. the binding, `cnf."x5t#S256"` against the connection's certificate ([`Confirmation`]);
//!    [`proof`]: DPoP proofs (`cnf.jkt`) and signed HTTP requests (`cnf.kid`) against the
//!    request;
//! 6. (feature `axum`) [`CertboundLayer`], a `tower::Layer`, and the [`ValidatedToken`]
//!    extractor; the plain `MTLS` scheme — the certificate alone, no token
//!    ([`ClientCertificate`] extractor, [`RequireClientCertificate`] layer with an allow-list
//!    of thumbprints and/or trust anchors);
//! 7. [`Rejection`]: RFC 6750 `WWW-Authenticate` responses.
//!
//! The public modules are namespaces of their own: [`transport`] (the TLS server plumbing,
//! shared with the development authority), [`proof`] (the proof defaults, nonces and replay
//! record) and [`jwks`] (key sets and discovery); everything else is re-exported here.
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

mod binding;
mod client_cert;
mod extract;
pub mod jwks;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
mod layer;
mod reject;
pub mod transport {
    //! TLS accept → client certificate: re-exported from `certbound_core::tls::server`, where
    //! the development authority shares it.
    pub use certbound_core::tls::server::*;
}
mod validate;

/// DPoP proofs and signed HTTP requests: the request-bound half of validation (it extends
/// the [`Validator`]).
pub use validate::proof;

pub use binding::Confirmation;
pub use certbound_core::{ParseSchemeError, ProtocolScheme};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use client_cert::RequireClientCertificateService;
pub use client_cert::{
    CertificatePolicyError, CertificateRejection, ClientCertificate, ParseFailure,
    RequireClientCertificate,
};
pub use jwks::{FetchError, JwkError};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use layer::{CertboundLayer, CertboundService};
pub use reject::{DpopError, Rejection, TokenError};
pub use transport::{PeerCertificate, TlsInfo, TlsServer};
#[cfg(feature = "jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
pub use validate::KeyFetching;
pub use validate::{
    BuildError, Claims, DEFAULT_CONNECT_TIMEOUT, DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_KEY_AGE,
    DEFAULT_MAX_TOKEN_LEN, DEFAULT_MIN_REFETCH_INTERVAL, DEFAULT_SKEW, Presented, ProofPolicy,
    TokenRules, ValidatedToken, Validator, ValidatorBuilder,
};
