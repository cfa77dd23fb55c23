//! Certificate thumbprints: `x5t#S256` (RFC 8705 §3.1) and legacy `x5t` (SHA-1).
//!
//! ```
//! use certbound_core::Thumbprint;
//! let t = Thumbprint::of_der(b"not really a certificate");
//! assert_eq!(t.to_string().len(), 43); // 32 bytes, base64url, no padding
//! assert!(t.ct_eq(&Thumbprint::from_base64url(&t.to_string()).unwrap()));
//! ```

use std::fmt;

use aws_lc_rs::digest;
use subtle::ConstantTimeEq as _;

use crate::b64;

/// SHA-256 over the DER bytes of a certificate: the RFC 8705 `x5t#S256` value.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Thumbprint([u8; 32]);

impl Thumbprint {
    /// Computes the thumbprint of DER-encoded certificate bytes.
    pub fn of_der(der: &[u8]) -> Self {
        let d = digest::digest(&digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// Parses a base64url (no padding) `x5t#S256` value; `None` when it is not exactly
    /// 32 bytes of strict base64url.
    pub fn from_base64url(text: &str) -> Option<Self> {
        if text.len() != 43 {
            return None;
        }
        let bytes = b64::decode(text).ok()?;
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self(arr))
    }

    /// A thumbprint from its 32 SHA-256 bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time comparison.
    pub fn ct_eq(&self, other: &Thumbprint) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    /// The base64url (no padding) text form, as carried in `cnf."x5t#S256"`.
    pub fn to_base64url(&self) -> String {
        b64::encode(self.0)
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64url())
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbprint({self})")
    }
}

/// Legacy `x5t`: base64url SHA-1 of DER bytes (only for old servers that need it).
pub fn x5t_sha1(der: &[u8]) -> String {
    b64::encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        // SHA-256("abc")
        let t = Thumbprint::of_der(b"abc");
        assert_eq!(t.to_string(), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
        assert_eq!(x5t_sha1(b"abc"), "qZk-NkcGgWq6PiVxeFDCbJzQ2J0");
    }

    #[test]
    fn rejects_bad_text() {
        assert!(Thumbprint::from_base64url("").is_none());
        assert!(
            Thumbprint::from_base64url("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0=").is_none()
        );
        assert!(
            Thumbprint::from_base64url("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0").is_none()
        );
        assert!(Thumbprint::from_base64url("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa").is_none());
    }
}
