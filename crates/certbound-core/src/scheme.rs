//! The [`ProtocolScheme`] vocabulary both sides share: the client's configuration
//! (`DownstreamApis.*.ProtocolScheme`) and authorization headers, and the resource server's
//! `Authorization` parsing, validation and challenges. A leaf module: it imports nothing
//! from the rest of the crate.

use std::fmt;
use std::str::FromStr;

/// How an API is called: which token (if any) is sent, how it is bound, and whether the TLS
/// connection presents the client certificate.
///
/// | scheme | token request | header | TLS client certificate |
/// |---|---|---|---|
/// | `Bearer` | unbound | `Authorization: Bearer <t>` | no |
/// | `MTLS_POP` | `token_type=mtls_pop` over mTLS, `cnf.x5t#S256` | `Authorization: mtls_pop <t>` | yes, the bound one |
/// | `Pop` | `token_type=pop` + `req_cnf`, `cnf.kid` | `Authorization: PoP <signed HTTP request>` | no |
/// | `DPoP` | `DPoP` proof, `cnf.jkt` (RFC 9449) | `Authorization: DPoP <t>` + `DPoP: <proof>` | no |
/// | `MTLS` | none | none | yes |
///
/// `Pop` and `DPoP` bind the token to the app's in-memory proof key
/// ([`ProofKey`](crate::pop::ProofKey)) and sign every request (method and URL): use them
/// where a proxy terminates TLS, so an mTLS binding cannot reach the API.
///
/// Two spellings: [`as_str`](Self::as_str) (and `Display`, and [`FromStr`]) is the
/// configuration name (`MTLS_POP`, `Pop`); [`header_scheme`](Self::header_scheme) is the
/// scheme as written in `Authorization` and `WWW-Authenticate` headers (`mtls_pop`, `PoP`).
///
/// Parsed case-insensitively; the empty string means `Bearer`. `MTLS_POP` also accepts
/// `mtls-pop` and `mtls_pop`.
///
/// ```
/// use certbound_core::ProtocolScheme;
/// assert_eq!("".parse::<ProtocolScheme>().unwrap(), ProtocolScheme::Bearer);
/// assert_eq!("mtls-pop".parse::<ProtocolScheme>().unwrap(), ProtocolScheme::MtlsPop);
/// assert_eq!("dpop".parse::<ProtocolScheme>().unwrap(), ProtocolScheme::DPoP);
/// assert_eq!("POP".parse::<ProtocolScheme>().unwrap(), ProtocolScheme::Pop);
/// assert_eq!("mtls".parse::<ProtocolScheme>().unwrap(), ProtocolScheme::Mtls);
/// assert!("Kerberos".parse::<ProtocolScheme>().is_err());
/// assert_eq!(ProtocolScheme::MtlsPop.as_str(), "MTLS_POP");
/// assert_eq!(ProtocolScheme::MtlsPop.header_scheme(), Some("mtls_pop"));
/// assert_eq!(ProtocolScheme::Mtls.header_scheme(), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtocolScheme {
    /// An unbound bearer token (`Authorization: Bearer <t>`; with RFC 8705 the token may
    /// still be certificate-bound).
    #[default]
    Bearer,
    /// A certificate-bound token (RFC 8705; Entra ID's `mtls_pop` token type) sent over
    /// mutual TLS with the same certificate.
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
    /// The scheme as written in `Authorization` and `WWW-Authenticate` headers (and in the
    /// resource server's JSON): `Bearer`, `mtls_pop`, `PoP`, `DPoP`; `None` for `MTLS`,
    /// which sends no token.
    pub fn header_scheme(self) -> Option<&'static str> {
        match self {
            Self::Bearer => Some("Bearer"),
            Self::MtlsPop => Some("mtls_pop"),
            Self::Pop => Some("PoP"),
            Self::DPoP => Some("DPoP"),
            Self::Mtls => None,
        }
    }
    /// The scheme of an `Authorization` header's scheme word (compared case-insensitively):
    /// `Bearer`, `mtls_pop`, `DPoP` or `PoP`; `None` for any other word.
    pub fn from_header_scheme(word: &str) -> Option<Self> {
        [Self::Bearer, Self::MtlsPop, Self::DPoP, Self::Pop]
            .into_iter()
            .find(|s| {
                s.header_scheme()
                    .is_some_and(|h| h.eq_ignore_ascii_case(word))
            })
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

/// The longest part of an unknown scheme name an error repeats (in characters).
const MAX_SHOWN: usize = 40;

/// A protocol scheme name that is not one of `Bearer`, `MTLS_POP` (`mtls-pop`), `Pop`,
/// `DPoP` or `MTLS`. Holds the (trimmed) name without control characters, shortened to 40
/// characters (with `…` when cut): a scheme name is configuration, never a secret.
///
/// ```
/// use certbound_core::ProtocolScheme;
/// let e = "Kerberos".parse::<ProtocolScheme>().unwrap_err();
/// assert_eq!(e.value(), "Kerberos");
/// assert_eq!(
///     e.to_string(),
///     "unknown protocol scheme `Kerberos`: use Bearer, MTLS_POP (mtls-pop), Pop, DPoP or MTLS"
/// );
/// let long = "é".repeat(50).parse::<ProtocolScheme>().unwrap_err();
/// assert_eq!(long.value(), format!("{}…", "é".repeat(40)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol scheme `{shown}`: use Bearer, MTLS_POP (mtls-pop), Pop, DPoP or MTLS")]
pub struct ParseSchemeError {
    shown: String,
}

impl ParseSchemeError {
    fn new(text: &str) -> Self {
        let mut chars = text.chars().filter(|c| !c.is_control());
        let mut shown: String = chars.by_ref().take(MAX_SHOWN).collect();
        if chars.next().is_some() {
            shown.push('…');
        }
        Self { shown }
    }
    /// The unknown name as the message shows it (shortened, control characters removed).
    pub fn value(&self) -> &str {
        &self.shown
    }
}

impl FromStr for ProtocolScheme {
    type Err = ParseSchemeError;
    fn from_str(s: &str) -> Result<Self, ParseSchemeError> {
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
            Err(ParseSchemeError::new(t))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for s in ProtocolScheme::ALL {
            assert_eq!(s.as_str().parse::<ProtocolScheme>(), Ok(s));
            if let Some(h) = s.header_scheme() {
                assert_eq!(ProtocolScheme::from_header_scheme(h), Some(s));
                assert_eq!(
                    ProtocolScheme::from_header_scheme(&h.to_ascii_uppercase()),
                    Some(s)
                );
                assert_eq!(h.parse::<ProtocolScheme>(), Ok(s));
            }
        }
        assert_eq!(ProtocolScheme::from_header_scheme("mtls"), None);
        assert_eq!(ProtocolScheme::from_header_scheme("Basic"), None);
        assert_eq!(ProtocolScheme::from_header_scheme(""), None);
    }

    #[test]
    fn parse_error_is_shortened_by_characters() {
        let e = format!("{}\u{7}x", "ü".repeat(39))
            .parse::<ProtocolScheme>()
            .unwrap_err();
        // The control character is dropped, not counted.
        assert_eq!(e.value(), format!("{}x", "ü".repeat(39)));
        let e = "a".repeat(41).parse::<ProtocolScheme>().unwrap_err();
        assert_eq!(e.value(), format!("{}…", "a".repeat(40)));
    }
}
