//! The JOSE vocabulary shared by keys, signing and verification: JWS algorithms and (public)
//! JWKs with their RFC 7638 thumbprints. A leaf module: it names no other part of core but
//! the base64url helpers and the error type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::b64;
use crate::error::JoseError;

/// The JWS algorithms certbound signs and accepts (asymmetric only; never `none`/HMAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
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
