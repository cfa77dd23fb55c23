//! The [`ProtocolScheme`] vocabulary shared by the configuration (`DownstreamApis.*.ProtocolScheme`)
//! and the authorization headers — a leaf module, so `config` and `header` do not import
//! each other.

use std::fmt;
use std::str::FromStr;

use crate::error::ClientError;

/// How a downstream API is called: which token (if any) is sent, how it is bound, and
/// whether the TLS connection presents the client certificate.
///
/// | scheme | token request | header | TLS client certificate |
/// |---|---|---|---|
/// | `Bearer` | unbound | `Authorization: Bearer <t>` | no |
/// | `MTLS_POP` | `token_type=mtls_pop` over mTLS, `cnf.x5t#S256` | `Authorization: mtls_pop <t>` | yes, the bound one |
/// | `Pop` | `token_type=pop` + `req_cnf`, `cnf.kid` | `Authorization: PoP <signed HTTP request>` | no |
/// | `DPoP` | `DPoP` proof, `cnf.jkt` (RFC 9449) | `Authorization: DPoP <t>` + `DPoP: <proof>` | no |
/// | `MTLS` | none | none | yes |
///
/// `Pop` and `DPoP` bind the token to the app's in-memory [`ProofKey`](certbound_core::pop::ProofKey)
/// and sign every request (method and URL): use them where a proxy terminates TLS, so an mTLS
/// binding cannot reach the API.
///
/// Parsed case-insensitively; the empty string means `Bearer`. `MTLS_POP` also accepts
/// `mtls-pop` and `mtls_pop`.
///
/// ```
/// use certbound_client::ProtocolScheme;
/// assert_eq!("".parse::<ProtocolScheme>().unwrap(), ProtocolScheme::Bearer);
/// assert_eq!("mtls-pop".parse::<ProtocolScheme>().unwrap(), ProtocolScheme::MtlsPop);
/// assert_eq!("dpop".parse::<ProtocolScheme>().unwrap(), ProtocolScheme::DPoP);
/// assert_eq!("POP".parse::<ProtocolScheme>().unwrap(), ProtocolScheme::Pop);
/// assert_eq!("mtls".parse::<ProtocolScheme>().unwrap(), ProtocolScheme::Mtls);
/// assert!("Kerberos".parse::<ProtocolScheme>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtocolScheme {
    /// An unbound bearer token (`Authorization: Bearer <t>`).
    #[default]
    Bearer,
    /// A certificate-bound token (RFC 8705) sent over mutual TLS with the same certificate.
    MtlsPop,
    /// Microsoft's signed HTTP request: a token bound to the app's proof key (`cnf.kid`),
    /// wrapped per request in a JWS over method, host and path (`Authorization: PoP <shr>`).
    Pop,
    /// RFC 9449 DPoP: a token bound to the app's proof key (`cnf.jkt`), sent with a fresh
    /// proof per request (`Authorization: DPoP <t>`, `DPoP: <proof>`).
    DPoP,
    /// Mutual TLS with the client certificate and no token at all.
    Mtls,
}

impl ProtocolScheme {
    /// Every scheme, in documentation order.
    pub const ALL: [ProtocolScheme; 5] = [
        Self::Bearer,
        Self::MtlsPop,
        Self::Pop,
        Self::DPoP,
        Self::Mtls,
    ];
    /// The canonical configuration name (`Bearer`, `MTLS_POP`, `Pop`, `DPoP`, `MTLS`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::MtlsPop => "MTLS_POP",
            Self::Pop => "Pop",
            Self::DPoP => "DPoP",
            Self::Mtls => "MTLS",
        }
    }
    /// Whether the token is bound to something (the certificate or the proof key).
    pub fn is_bound(self) -> bool {
        matches!(self, Self::MtlsPop | Self::Pop | Self::DPoP)
    }
    /// Whether the token is bound to the client certificate (`MTLS_POP`).
    pub fn binds_certificate(self) -> bool {
        matches!(self, Self::MtlsPop)
    }
    /// Whether the token is bound to the app's proof key and each request is signed
    /// (`Pop`, `DPoP`): the header needs the request's method and URL.
    pub fn signs_requests(self) -> bool {
        matches!(self, Self::Pop | Self::DPoP)
    }
    /// Whether an access token is sent at all (every scheme but `MTLS`).
    pub fn uses_token(self) -> bool {
        !matches!(self, Self::Mtls)
    }
    /// Whether the TLS connection presents the client certificate (`MTLS_POP`, `MTLS`).
    pub fn presents_certificate(self) -> bool {
        matches!(self, Self::MtlsPop | Self::Mtls)
    }
    /// The kind of token requested from the authority, as used in cache keys (`bearer`,
    /// `mtls_pop`, `pop`, `dpop`; `none` for `MTLS`).
    pub fn token_type(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::MtlsPop => "mtls_pop",
            Self::Pop => "pop",
            Self::DPoP => "dpop",
            Self::Mtls => "none",
        }
    }
}

impl fmt::Display for ProtocolScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProtocolScheme {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, ClientError> {
        let t = s.trim();
        let is = |name: &str| t.eq_ignore_ascii_case(name);
        if t.is_empty() || is("bearer") {
            Ok(Self::Bearer)
        } else if is("mtls_pop") || is("mtls-pop") {
            Ok(Self::MtlsPop)
        } else if is("pop") {
            Ok(Self::Pop)
        } else if is("dpop") {
            Ok(Self::DPoP)
        } else if is("mtls") {
            Ok(Self::Mtls)
        } else {
            Err(ClientError::UnknownScheme(crate::error::shorten(t, 40)))
        }
    }
}
