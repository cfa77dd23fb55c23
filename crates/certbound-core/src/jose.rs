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

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::b64;
use crate::error::JoseError;
use crate::key::PrivateKey;

/// The JWS algorithms certbound signs and accepts (asymmetric only; never `none`/HMAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// ECDSA P-256 with SHA-256.
    ES256,
    /// ECDSA P-384 with SHA-384.
    ES384,
}

impl JwsAlgorithm {
    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
        }
    }
}

impl fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JwsAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "RS256" => Ok(Self::RS256),
            "PS256" => Ok(Self::PS256),
            "ES256" => Ok(Self::ES256),
            "ES384" => Ok(Self::ES384),
            _ => Err(format!(
                "unsupported JWS algorithm `{s}` (expected RS256, PS256, ES256 or ES384)"
            )),
        }
    }
}

/// A JSON Web Key (public members only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Jwk {
    /// Key type: `RSA` or `EC`.
    pub kty: String,
    /// Key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended use (`sig`).
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// EC curve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// EC x coordinate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// EC y coordinate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// RSA modulus.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// RSA exponent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Certificate chain (standard base64 DER).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x5c: Option<Vec<String>>,
    /// SHA-256 certificate thumbprint.
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl Jwk {
    /// An RSA public JWK from base64url `n` and `e`.
    pub fn rsa(n: String, e: String) -> Self {
        Self {
            kty: "RSA".into(),
            n: Some(n),
            e: Some(e),
            ..Default::default()
        }
    }
    /// An EC public JWK.
    pub fn ec(crv: &str, x: String, y: String) -> Self {
        Self {
            kty: "EC".into(),
            crv: Some(crv.into()),
            x: Some(x),
            y: Some(y),
            ..Default::default()
        }
    }
    /// Sets `kid`.
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }
    /// Sets `alg` and `use: sig`.
    pub fn with_alg(mut self, alg: JwsAlgorithm) -> Self {
        self.alg = Some(alg.as_str().into());
        self.use_ = Some("sig".into());
        self
    }

    /// RFC 7638 thumbprint (SHA-256, base64url) over the required members in
    /// lexicographic order.
    pub fn thumbprint(&self) -> Result<String, JoseError> {
        let canonical = match self.kty.as_str() {
            "EC" => format!(
                r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
                json_str(self.crv.as_deref().ok_or(JoseError::JwkMember("crv"))?),
                json_str(self.x.as_deref().ok_or(JoseError::JwkMember("x"))?),
                json_str(self.y.as_deref().ok_or(JoseError::JwkMember("y"))?),
            ),
            "RSA" => format!(
                r#"{{"e":{},"kty":"RSA","n":{}}}"#,
                json_str(self.e.as_deref().ok_or(JoseError::JwkMember("e"))?),
                json_str(self.n.as_deref().ok_or(JoseError::JwkMember("n"))?),
            ),
            _ => return Err(JoseError::JwkMember("kty")),
        };
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        Ok(b64::encode(d.as_ref()))
    }
}

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A JWK set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

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
    let h = serde_json::to_vec(&header.members).map_err(|e| JoseError::Json(e.to_string()))?;
    let p = serde_json::to_vec(claims).map_err(|e| JoseError::Json(e.to_string()))?;
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
