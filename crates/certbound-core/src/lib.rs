//! # certbound-core
//!
//! The shared foundation of certbound: what both sides of a certificate-bound token
//! exchange need to agree on.
//!
//! - [`cert`]: X.509 certificates and certificate+key credentials, loaded from PEM, DER,
//!   PKCS#12/PFX and base64, checked (key matches, validity period).
//! - [`thumbprint`]: the RFC 8705 `x5t#S256` binding value.
//! - [`key`]: RSA/EC private keys that sign JWS.
//! - [`jose`]: JWS algorithms, JWKs and compact JWS signing.
//! - [`ca`]: minting certificates (development CA, self-signed client certificates).
//! - [`tls`]: rustls configurations on the aws-lc-rs provider; with the `server` feature,
//!   `tls::server`: HTTPS accept with the peer certificate attached to each request.
//! - [`json`]: JSON parsing that refuses duplicate members (tokens, proofs).
//! - [`replay`]: the fail-closed record of used proofs.
//! - [`pop`]: application-layer proof of possession (DPoP, signed HTTP requests).
//! - [`clock`]: a coarse clock for hot paths.
//!
//! ```
//! use certbound_core::ca::{self, IssueSpec};
//! use certbound_core::KeyKind;
//! let cred = ca::self_signed_certified_key(&IssueSpec::client("app"), KeyKind::EcP256).unwrap();
//! // The value a bound token carries in cnf."x5t#S256":
//! let x5t = cred.thumbprint().to_base64url();
//! assert_eq!(x5t.len(), 43);
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub mod b64;
pub mod ca;
pub mod cert;
pub mod clock;
pub mod error;
pub mod id;
pub mod jose;
pub mod json;
pub mod jwk;
pub mod key;
mod pem;
pub mod pop;
pub mod replay;
pub mod scheme;
pub mod thumbprint;
pub mod tls;

pub use cert::{Certificate, CertifiedKey};
pub use error::{CertError, CertErrorKind, JoseError};
pub use jwk::{Jwk, Jwks, JwsAlgorithm};
pub use key::{KeyKind, PrivateKey};
pub use scheme::{ParseSchemeError, ProtocolScheme};
pub use thumbprint::Thumbprint;

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Writes a file readable only by its owner (mode 0600 on Unix), e.g. for keys.
pub fn write_private_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}
