//! The RFC 8705 binding check: the token's `cnf."x5t#S256"` against the thumbprint of the
//! TLS client certificate of the connection the request arrived on.

use certbound_core::Thumbprint;
use serde_json::Value;

use crate::reject::TokenError;
use certbound_core::ProtocolScheme;

/// A token's confirmation (`cnf`) as far as this resource server can check it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Confirmation {
    /// `cnf."x5t#S256"`: bound to a certificate.
    X5tS256(Thumbprint),
    /// `cnf.jkt` (RFC 9449 §6): bound to a DPoP proof key (its RFC 7638 thumbprint).
    Jkt(String),
    /// `cnf.kid` (signed HTTP request, `token_type=pop`): bound to an SHR key (its RFC 7638
    /// thumbprint).
    Kid(String),
}

/// The `cnf` members that each name a proof-of-possession key (RFC 7800 §3.1 and its
/// extensions: RFC 8705 `x5t#S256`, RFC 9449 `jkt`, RFC 7800 `kid`/`jwk`/`jwe`/`jku`). A `cnf`
/// represents a single key, so a token carries exactly one of them.
pub(crate) const CNF_KEY_MEMBERS: [&str; 6] = ["x5t#S256", "jkt", "kid", "jwk", "jwe", "jku"];

/// The key members of `cnf` this server can enforce.
const ENFORCEABLE: [&str; 3] = ["x5t#S256", "jkt", "kid"];

/// The [`CNF_KEY_MEMBERS`] present in a `cnf` object, in that list's order.
pub(crate) fn cnf_key_members(cnf: &serde_json::Map<String, Value>) -> Vec<&'static str> {
    CNF_KEY_MEMBERS
        .iter()
        .copied()
        .filter(|m| cnf.contains_key(*m))
        .collect()
}

impl Confirmation {
    /// Reads a `cnf` claim value. `cnf` must be an object carrying exactly one key member
    /// (RFC 7800 §3.1: a `cnf` represents a single proof-of-possession key), and that member
    /// must be a well-formed `x5t#S256`, `jkt` or `kid` (each 43 characters of strict
    /// base64url, a SHA-256). Members that name no key (Entra's `xms_ksl`, extensions) are
    /// ignored, as RFC 7800 says for members that are not understood. Refused rather than
    /// treated as unbound: another JSON type, no key member ([`TokenError::CnfMalformed`]),
    /// two or more key members ([`TokenError::CnfMultipleKeys`]), a `jwk`/`jwe`/`jku`
    /// confirmation this server cannot enforce ([`TokenError::CnfUnsupported`]), a
    /// wrong-length hash ([`TokenError::CnfMalformed`]).
    pub fn from_claim(cnf: &Value) -> Result<Self, TokenError> {
        let obj = cnf.as_object().ok_or(TokenError::CnfMalformed)?;
        match cnf_key_members(obj).as_slice() {
            [] => return Err(TokenError::CnfMalformed),
            [one] if !ENFORCEABLE.contains(one) => return Err(TokenError::CnfUnsupported(one)),
            [_] => {}
            many => return Err(TokenError::CnfMultipleKeys(many.join(", "))),
        }
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

/// Applies docs/resource-server.md's binding rules.
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
pub(crate) fn check(
    cnf: Option<&Confirmation>,
    scheme: ProtocolScheme,
    peer: Option<&Thumbprint>,
    require_binding: bool,
) -> Result<(), TokenError> {
    match cnf {
        Some(Confirmation::X5tS256(_))
            if matches!(scheme, ProtocolScheme::DPoP | ProtocolScheme::Pop) =>
        {
            Err(TokenError::SchemeNeedsKeyBinding(
                crate::reject::header_word(scheme),
            ))
        }
        Some(Confirmation::X5tS256(bound)) => {
            let presented = peer.ok_or(TokenError::NoClientCertificate)?;
            if presented.ct_eq(bound) {
                Ok(())
            } else {
                Err(TokenError::ThumbprintMismatch)
            }
        }
        Some(Confirmation::Jkt(_)) if scheme == ProtocolScheme::DPoP => Ok(()),
        Some(Confirmation::Jkt(_)) => Err(TokenError::DpopBoundToken),
        Some(Confirmation::Kid(_)) if scheme == ProtocolScheme::Pop => Ok(()),
        Some(Confirmation::Kid(_)) => Err(TokenError::PopBoundToken),
        None if scheme == ProtocolScheme::MtlsPop => Err(TokenError::PopWithoutCnf),
        None if matches!(scheme, ProtocolScheme::DPoP | ProtocolScheme::Pop) => Err(
            TokenError::SchemeNeedsKeyBinding(crate::reject::header_word(scheme)),
        ),
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
            json!({"jkt": 1}),
            json!({"kid": "short"}),
            json!({"x5t#S256": 42}),
            json!({"x5t#S256": format!("{}=", t.to_base64url())}),
            json!({"x5t#S256": &t.to_base64url()[..42]}),
            json!({"x5t#s256": t.to_base64url()}),
            json!({"x5t#S256": "€".repeat(15)}),
            json!({"xms_ksl": "sw"}),
        ] {
            assert_eq!(
                Confirmation::from_claim(&bad),
                Err(TokenError::CnfMalformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn cnf_holds_exactly_one_key() {
        let t = Thumbprint::of_der(b"x").to_base64url();
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"});
        for (cnf, members) in [
            (json!({"x5t#S256": t, "jwk": jwk}), "x5t#S256, jwk"),
            (json!({"jkt": t, "jwk": jwk}), "jkt, jwk"),
            (json!({"kid": t, "jwk": jwk}), "kid, jwk"),
            (json!({"jkt": t, "x5t#S256": t}), "x5t#S256, jkt"),
            (json!({"kid": t, "jku": "https://k.example/"}), "kid, jku"),
            (json!({"x5t#S256": t, "jwe": "a.b.c.d.e"}), "x5t#S256, jwe"),
            (
                json!({"x5t#S256": t, "jkt": t, "kid": t, "jwk": jwk, "jwe": "", "jku": ""}),
                "x5t#S256, jkt, kid, jwk, jwe, jku",
            ),
        ] {
            let err = Confirmation::from_claim(&cnf).unwrap_err();
            assert_eq!(err, TokenError::CnfMultipleKeys(members.into()), "{cnf}");
            let text = err.to_string();
            assert!(text.contains("cnf") && text.contains(members), "{text}");
        }
        for (cnf, member) in [
            (json!({"jwk": jwk}), "jwk"),
            (json!({"jwe": "a.b.c.d.e"}), "jwe"),
            (json!({"jku": "https://k.example/", "xms_ksl": "sw"}), "jku"),
        ] {
            let err = Confirmation::from_claim(&cnf).unwrap_err();
            assert_eq!(err, TokenError::CnfUnsupported(member), "{cnf}");
            let text = err.to_string();
            assert!(text.contains("cnf") && text.contains(member), "{text}");
        }
        // Members that name no key are ignored (Entra's Pop tokens carry `xms_ksl`).
        assert_eq!(
            Confirmation::from_claim(&json!({"kid": t, "xms_ksl": "sw"})),
            Ok(Confirmation::Kid(t.clone()))
        );
        assert_eq!(
            Confirmation::from_claim(&json!({"x5t#S256": t, "x5t": "sha1", "ext": {"a": 1}})),
            Ok(Confirmation::X5tS256(Thumbprint::of_der(b"x")))
        );
    }

    #[test]
    fn key_bound_rules() {
        let t = Thumbprint::of_der(b"k").to_base64url();
        let jkt = Confirmation::from_claim(&json!({"jkt": t})).unwrap();
        let kid = Confirmation::from_claim(&json!({"kid": t})).unwrap();
        assert_eq!(jkt.key_thumbprint(), Some(t.as_str()));
        assert_eq!(check(Some(&jkt), ProtocolScheme::DPoP, None, true), Ok(()));
        for s in [
            ProtocolScheme::Bearer,
            ProtocolScheme::MtlsPop,
            ProtocolScheme::Pop,
        ] {
            assert_eq!(
                check(Some(&jkt), s, None, false),
                Err(TokenError::DpopBoundToken)
            );
        }
        assert_eq!(check(Some(&kid), ProtocolScheme::Pop, None, true), Ok(()));
        assert_eq!(
            check(Some(&kid), ProtocolScheme::Bearer, None, false),
            Err(TokenError::PopBoundToken)
        );
        assert_eq!(
            check(None, ProtocolScheme::DPoP, None, false),
            Err(TokenError::SchemeNeedsKeyBinding("DPoP"))
        );
    }

    #[test]
    fn unbound_rules() {
        assert_eq!(
            check(None, ProtocolScheme::MtlsPop, None, false),
            Err(TokenError::PopWithoutCnf)
        );
        assert_eq!(check(None, ProtocolScheme::Bearer, None, false), Ok(()));
        let t = Thumbprint::of_der(b"x");
        assert_eq!(
            check(None, ProtocolScheme::Bearer, Some(&t), true),
            Err(TokenError::BindingRequired)
        );
    }

    #[test]
    fn certificate_binding_examples() {
        let cert = Thumbprint::of_der(b"client certificate DER");
        let other = Thumbprint::of_der(b"another certificate");
        let bound = Confirmation::X5tS256(cert);
        assert_eq!(
            check(Some(&bound), ProtocolScheme::MtlsPop, Some(&cert), false),
            Ok(())
        );
        assert_eq!(
            check(Some(&bound), ProtocolScheme::Bearer, Some(&other), false),
            Err(TokenError::ThumbprintMismatch)
        );
        assert_eq!(
            check(Some(&bound), ProtocolScheme::Bearer, None, false),
            Err(TokenError::NoClientCertificate)
        );
        assert_eq!(
            check(None, ProtocolScheme::Bearer, None, true),
            Err(TokenError::BindingRequired)
        );
    }
}
