//! # certbound-core
//!
//! The shared foundation of certbound: what both sides of a certificate-bound token
//! exchange need to agree on.
//!
//! The types are at the crate root; the modules that stay public are namespaces of functions
//! and of one concern each.
//!
//! - [`Certificate`], [`CertifiedKey`]: X.509 certificates and certificate+key credentials,
//!   loaded from PEM, DER, PKCS#12/PFX (feature `pkcs12`, default) and base64, checked (key
//!   matches, validity period).
//! - [`Thumbprint`]: the RFC 8705 `x5t#S256` binding value.
//! - [`PrivateKey`]: RSA/EC private keys that sign JWS; [`Jwk`], [`Jwks`], [`JwsAlgorithm`].
//! - [`jose`]: compact JWS signing and decoding.
//! - [`b64`]: the base64url (and lenient standard base64) codecs of JOSE.
//! - `ca` (feature `dev-ca`): minting certificates (development CA, self-signed client
//!   certificates).
//! - [`tls`]: rustls configurations on the aws-lc-rs provider; with the `server` feature,
//!   `tls::server`: HTTPS accept with the peer certificate attached to each request.
//! - [`json`]: JSON parsing that refuses duplicate members (tokens, proofs).
//! - [`ReplayCache`]: the fail-closed record of used proofs.
//! - [`pop`]: application-layer proof of possession (DPoP, signed HTTP requests).
//! - [`coarse_now_unix`]: a coarse clock for hot paths.
//!
//! ```
//! # #[cfg(feature = "dev-ca")] {
//! use certbound_core::ca::{self, IssueSpec};
//! use certbound_core::KeyKind;
//! let cred = ca::self_signed_certified_key(&IssueSpec::client("app"), KeyKind::EcP256).unwrap();
//! // The value a bound token carries in cnf."x5t#S256":
//! let x5t = cred.thumbprint().to_base64url();
//! assert_eq!(x5t.len(), 43);
//! # }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod b64;
#[cfg(feature = "dev-ca")]
#[cfg_attr(docsrs, doc(cfg(feature = "dev-ca")))]
pub mod ca;
mod cert;
mod clock;
mod error;
#[doc(hidden)]
pub mod fs;
mod id;
pub mod jose;
pub mod json;
mod jwk;
mod key;
mod pem;
pub mod pop;
mod replay;
mod scheme;
mod thumbprint;
pub mod tls;

pub use cert::{Certificate, CertifiedKey, fmt_unix};
pub use clock::{TICK, coarse_now_unix};
pub use error::{CertError, CertErrorKind, JoseError};
pub use id::{derived_guid, guid_text, random_guid};
pub use jwk::{Jwk, Jwks, JwsAlgorithm};
pub use key::{KeyKind, PrivateKey};
pub use pem::pem_encode;
pub use replay::{ReplayCache, ReplayCheck};
pub use scheme::{ParseSchemeError, ProtocolScheme};
pub use thumbprint::{Thumbprint, x5t_sha1};

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
