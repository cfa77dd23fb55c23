//! JOSE building blocks: JWS algorithms, JWKs (RFC 7517/7638) and compact JWS signing.
//!
//! Verification lives in the resource-server crate (on `jsonwebtoken`); signing is done
//! here directly on aws-lc-rs key pairs, because `jsonwebtoken`'s `EncodingKey`
//! re-parses the private key on every signature, which would dominate the development
//! authority's issuance cost.
//!
//! ```
//! use certbound_core::{jose, KeyKind, PrivateKey};
//! let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
//! let jwk = key.public_jwk().with_kid("k1");
//! let header = jose::JwsHeader::new(key.default_jws_algorithm()).kid("k1").typ("at+jwt");
//! let token = jose::sign_compact(&header, &serde_json::json!({"sub": "app"}), &key).unwrap();
//! let (h, claims) = jose::decode_unverified(&token).unwrap();
//! assert_eq!(h["kid"], "k1");
//! assert_eq!(claims["sub"], "app");
//! assert_eq!(jwk.thumbprint().unwrap().len(), 43);
//! ```

use serde::Serialize;
use serde_json::{Map, Value};

use crate::b64;
use crate::error::JoseError;
use crate::key::PrivateKey;

pub use crate::jwk::{Jwk, Jwks, JwsAlgorithm};

/// A JWS protected header under construction.
#[derive(Debug, Clone)]
pub struct JwsHeader {
    alg: JwsAlgorithm,
    members: Map<String, Value>,
}

impl JwsHeader {
    /// A header with `alg`.
    pub fn new(alg: JwsAlgorithm) -> Self {
        let mut members = Map::new();
        members.insert("alg".into(), Value::String(alg.as_str().into()));
        Self { alg, members }
    }
    /// Sets `typ`.
    pub fn typ(self, typ: &str) -> Self {
        self.set("typ", Value::String(typ.into()))
    }
    /// Sets `kid`.
    pub fn kid(self, kid: &str) -> Self {
        self.set("kid", Value::String(kid.into()))
    }
    /// Sets any member.
    pub fn set(mut self, name: &str, value: Value) -> Self {
        if name != "alg" {
            self.members.insert(name.into(), value);
        }
        self
    }
    /// The algorithm.
    pub fn alg(&self) -> JwsAlgorithm {
        self.alg
    }
}

/// Signs `claims` into a compact JWS (`header.payload.signature`).
pub fn sign_compact(
    header: &JwsHeader,
    claims: &impl Serialize,
    key: &PrivateKey,
) -> Result<String, JoseError> {
    let h = serde_json::to_vec(&header.members)?;
    let p = serde_json::to_vec(claims)?;
    let mut out = String::with_capacity(h.len() * 4 / 3 + p.len() * 4 / 3 + 360);
    out.push_str(&b64::encode(&h));
    out.push('.');
    out.push_str(&b64::encode(&p));
    let sig = key.sign(header.alg, out.as_bytes())?;
    out.push('.');
    out.push_str(&b64::encode(&sig));
    Ok(out)
}

/// Decodes a compact JWS's header and payload **without verifying the signature**
/// (for diagnostics such as `certbound inspect`; never for authorization decisions).
pub fn decode_unverified(token: &str) -> Result<(Value, Value), JoseError> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(_s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Malformed("expected three dot-separated parts"));
    };
    let h = b64::decode(h).map_err(|_| JoseError::Malformed("header is not base64url"))?;
    let p = b64::decode(p).map_err(|_| JoseError::Malformed("payload is not base64url"))?;
    let h: Value =
        serde_json::from_slice(&h).map_err(|_| JoseError::Malformed("header is not JSON"))?;
    let p: Value =
        serde_json::from_slice(&p).map_err(|_| JoseError::Malformed("payload is not JSON"))?;
    if !h.is_object() || !p.is_object() {
        return Err(JoseError::Malformed(
            "header and payload must be JSON objects",
        ));
    }
    Ok((h, p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example() {
        // RFC 7638 §3.1 example key.
        let jwk = Jwk::rsa(
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw".into(),
            "AQAB".into(),
        );
        assert_eq!(
            jwk.thumbprint().unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn decode_rejects_garbage() {
        for t in [
            "",
            "a",
            "a.b",
            "a.b.c.d",
            "!!.!!.x",
            "e30.bm90anNvbg.x",
            "W10.e30.x",
        ] {
            assert!(decode_unverified(t).is_err(), "{t}");
        }
    }

    #[test]
    fn alg_parse() {
        assert_eq!(
            "es256".parse::<JwsAlgorithm>().unwrap(),
            JwsAlgorithm::ES256
        );
        assert!("none".parse::<JwsAlgorithm>().is_err());
        assert!("HS256".parse::<JwsAlgorithm>().is_err());
    }
}
