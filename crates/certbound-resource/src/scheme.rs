//! The `Authorization` schemes a resource server reads: the vocabulary the extractor, the
//! validator and the challenges share (a leaf module).

use std::fmt;

/// The authorization scheme a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum Scheme {
    /// `Bearer` (RFC 6750; with RFC 8705 the token may still be certificate-bound).
    #[serde(rename = "Bearer")]
    Bearer,
    /// `mtls_pop` (Entra ID's certificate-bound token type).
    #[serde(rename = "mtls_pop")]
    MtlsPop,
    /// `DPoP` (RFC 9449): a `cnf.jkt`-bound token plus a `DPoP` proof header.
    #[serde(rename = "DPoP")]
    DPoP,
    /// `PoP`: Microsoft's signed HTTP request wrapping a `cnf.kid`-bound token.
    #[serde(rename = "PoP")]
    Pop,
}

impl Scheme {
    /// The scheme as written in challenges.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::MtlsPop => "mtls_pop",
            Self::DPoP => "DPoP",
            Self::Pop => "PoP",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
