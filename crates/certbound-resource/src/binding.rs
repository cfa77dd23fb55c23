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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// `cnf."x5t#S256"`: bound to a certificate.
    X5tS256(Thumbprint),
    /// `cnf.jkt` (RFC 9449 §6): bound to a DPoP proof key (its RFC 7638 thumbprint).
    Jkt(String),
    /// `cnf.kid` (signed HTTP request, `token_type=pop`): bound to an SHR key (its RFC 7638
    /// thumbprint).
    Kid(String),
}

impl Confirmation {
    /// Reads a `cnf` claim value. `cnf` must be an object carrying exactly one of a
    /// well-formed `x5t#S256`, `jkt` or `kid` (each 43 characters of strict base64url, a
    /// SHA-256); anything else — another JSON type, an empty object, a `jwk` confirmation
    /// this server cannot check, two methods at once, a wrong-length hash — is refused rather
    /// than treated as unbound.
    pub fn from_claim(cnf: &Value) -> Result<Self, TokenError> {
        let obj = cnf.as_object().ok_or(TokenError::CnfMalformed)?;
        let member = |name: &str| -> Result<Option<Thumbprint>, TokenError> {
            match obj.get(name) {
                None => Ok(None),
                Some(v) => v
                    .as_str()
                    .and_then(Thumbprint::from_base64url)
                    .map(Some)
                    .ok_or(TokenError::CnfMalformed),
            }
        };
        match (member("x5t#S256")?, member("jkt")?, member("kid")?) {
            (Some(t), None, None) => Ok(Self::X5tS256(t)),
            (None, Some(t), None) => Ok(Self::Jkt(t.to_base64url())),
            (None, None, Some(t)) => Ok(Self::Kid(t.to_base64url())),
            _ => Err(TokenError::CnfMalformed),
        }
    }

    /// The bound certificate thumbprint (`x5t#S256` confirmations only).
    pub fn thumbprint(&self) -> Option<&Thumbprint> {
        match self {
            Self::X5tS256(t) => Some(t),
            Self::Jkt(_) | Self::Kid(_) => None,
        }
    }

    /// The bound proof key's RFC 7638 thumbprint (`jkt` or `kid` confirmations).
    pub fn key_thumbprint(&self) -> Option<&str> {
        match self {
            Self::Jkt(t) | Self::Kid(t) => Some(t),
            Self::X5tS256(_) => None,
        }
    }
}

/// Applies SPEC §5's binding rules.
///
/// - certificate-bound token (`cnf."x5t#S256"`): the connection's certificate must be present
///   and its thumbprint equal (constant-time) — with `Bearer` or `mtls_pop` (RFC 8705 §3);
///   with `DPoP` or `PoP` it is refused (those schemes need a key-bound token);
/// - DPoP-bound token (`cnf.jkt`): only with the `DPoP` scheme (RFC 9449 §7.2 — never as
///   `Bearer`); the proof key itself is compared by the validator, which holds the proof;
/// - SHR-bound token (`cnf.kid`): only with the `PoP` scheme (likewise);
/// - unbound token with the `mtls_pop`, `DPoP` or `PoP` scheme: refused;
/// - unbound token where `require_binding`: refused;
/// - unbound `Bearer` token otherwise: accepted.
pub fn check(
    cnf: Option<&Confirmation>,
    scheme: Scheme,
    peer: Option<&Thumbprint>,
    require_binding: bool,
) -> Result<(), TokenError> {
    match cnf {
        Some(Confirmation::X5tS256(_)) if matches!(scheme, Scheme::DPoP | Scheme::Pop) => {
            Err(TokenError::SchemeNeedsKeyBinding(scheme.as_str()))
        }
        Some(Confirmation::X5tS256(bound)) => {
            let presented = peer.ok_or(TokenError::NoClientCertificate)?;
            if presented.ct_eq(bound) {
                Ok(())
            } else {
                Err(TokenError::ThumbprintMismatch)
            }
        }
        Some(Confirmation::Jkt(_)) if scheme == Scheme::DPoP => Ok(()),
        Some(Confirmation::Jkt(_)) => Err(TokenError::DpopBoundToken),
        Some(Confirmation::Kid(_)) if scheme == Scheme::Pop => Ok(()),
        Some(Confirmation::Kid(_)) => Err(TokenError::PopBoundToken),
        None if scheme == Scheme::MtlsPop => Err(TokenError::PopWithoutCnf),
        None if matches!(scheme, Scheme::DPoP | Scheme::Pop) => {
            Err(TokenError::SchemeNeedsKeyBinding(scheme.as_str()))
        }
        None if require_binding => Err(TokenError::BindingRequired),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::string_slice)]
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
            json!({"jkt": t.to_base64url(), "x5t#S256": t.to_base64url()}),
            json!({"jkt": 1}),
            json!({"kid": "short"}),
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
    fn key_bound_rules() {
        let t = Thumbprint::of_der(b"k").to_base64url();
        let jkt = Confirmation::from_claim(&json!({"jkt": t})).unwrap();
        let kid = Confirmation::from_claim(&json!({"kid": t})).unwrap();
        assert_eq!(jkt.key_thumbprint(), Some(t.as_str()));
        assert_eq!(check(Some(&jkt), Scheme::DPoP, None, true), Ok(()));
        for s in [Scheme::Bearer, Scheme::MtlsPop, Scheme::Pop] {
            assert_eq!(
                check(Some(&jkt), s, None, false),
                Err(TokenError::DpopBoundToken)
            );
        }
        assert_eq!(check(Some(&kid), Scheme::Pop, None, true), Ok(()));
        assert_eq!(
            check(Some(&kid), Scheme::Bearer, None, false),
            Err(TokenError::PopBoundToken)
        );
        assert_eq!(
            check(None, Scheme::DPoP, None, false),
            Err(TokenError::SchemeNeedsKeyBinding("DPoP"))
        );
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
