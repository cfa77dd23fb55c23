//! The RFC 8705 binding check: the token's `cnf."x5t#S256"` against the thumbprint of the
//! TLS client certificate of the connection the request arrived on.
//!
//! ```
//! use certbound_core::Thumbprint;
//! use certbound_resource::binding::{check, Confirmation};
//! use certbound_resource::{Scheme, TokenError};
//! let cert = Thumbprint::of_der(b"client certificate DER");
//! let other = Thumbprint::of_der(b"another certificate");
//! let bound = Confirmation::X5tS256(cert);
//! assert_eq!(check(Some(&bound), Scheme::MtlsPop, Some(&cert), false), Ok(()));
//! assert_eq!(check(Some(&bound), Scheme::Bearer, Some(&other), false), Err(TokenError::ThumbprintMismatch));
//! assert_eq!(check(Some(&bound), Scheme::Bearer, None, false), Err(TokenError::NoClientCertificate));
//! assert_eq!(check(None, Scheme::Bearer, None, true), Err(TokenError::BindingRequired));
//! ```

use certbound_core::Thumbprint;
use serde_json::Value;

use crate::extract::Scheme;
use crate::reject::TokenError;

/// A token's confirmation (`cnf`) as far as this resource server can check it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmation {
    /// `cnf."x5t#S256"`: bound to a certificate.
    X5tS256(Thumbprint),
}

impl Confirmation {
    /// Reads a `cnf` claim value. `cnf` must be an object carrying a well-formed
    /// `x5t#S256` (43 characters of strict base64url, 32 bytes); anything else — another
    /// JSON type, an empty object, only a `jkt` (DPoP) or `jwk` confirmation this server
    /// cannot check, a wrong-length hash — is refused rather than treated as unbound.
    pub fn from_claim(cnf: &Value) -> Result<Self, TokenError> {
        let obj = cnf.as_object().ok_or(TokenError::CnfMalformed)?;
        let x5t = obj
            .get("x5t#S256")
            .and_then(Value::as_str)
            .ok_or(TokenError::CnfMalformed)?;
        Thumbprint::from_base64url(x5t)
            .map(Self::X5tS256)
            .ok_or(TokenError::CnfMalformed)
    }

    /// The bound certificate thumbprint.
    pub fn thumbprint(&self) -> &Thumbprint {
        match self {
            Self::X5tS256(t) => t,
        }
    }
}

/// Applies SPEC §5's binding rules.
///
/// - bound token (`cnf`): the connection's certificate must be present and its thumbprint
///   equal (constant-time) — whatever the scheme, `Bearer` included (RFC 8705 §3);
/// - unbound token with the `mtls_pop` scheme: refused;
/// - unbound token where `require_binding`: refused;
/// - unbound `Bearer` token otherwise: accepted.
pub fn check(
    cnf: Option<&Confirmation>,
    scheme: Scheme,
    peer: Option<&Thumbprint>,
    require_binding: bool,
) -> Result<(), TokenError> {
    match cnf {
        Some(c) => {
            let presented = peer.ok_or(TokenError::NoClientCertificate)?;
            if presented.ct_eq(c.thumbprint()) {
                Ok(())
            } else {
                Err(TokenError::ThumbprintMismatch)
            }
        }
        None if scheme == Scheme::MtlsPop => Err(TokenError::PopWithoutCnf),
        None if require_binding => Err(TokenError::BindingRequired),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cnf_shapes() {
        let t = Thumbprint::of_der(b"x");
        assert_eq!(
            Confirmation::from_claim(&json!({"x5t#S256": t.to_base64url()})),
            Ok(Confirmation::X5tS256(t))
        );
        for bad in [
            json!("abc"),
            json!(null),
            json!([t.to_base64url()]),
            json!({}),
            json!({"jkt": t.to_base64url()}),
            json!({"x5t#S256": 42}),
            json!({"x5t#S256": format!("{}=", t.to_base64url())}),
            json!({"x5t#S256": &t.to_base64url()[..42]}),
            json!({"x5t#s256": t.to_base64url()}),
        ] {
            assert_eq!(
                Confirmation::from_claim(&bad),
                Err(TokenError::CnfMalformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn unbound_rules() {
        assert_eq!(
            check(None, Scheme::MtlsPop, None, false),
            Err(TokenError::PopWithoutCnf)
        );
        assert_eq!(check(None, Scheme::Bearer, None, false), Ok(()));
        let t = Thumbprint::of_der(b"x");
        assert_eq!(
            check(None, Scheme::Bearer, Some(&t), true),
            Err(TokenError::BindingRequired)
        );
    }
}
