//! Authorization headers: the [`ProtocolScheme`] a downstream API wants, the per-call
//! [`HeaderOptions`], and the resulting [`AuthorizationHeader`] — the header value
//! (`<token_type> <token>`) **and** the certificate the transport must present.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use certbound_core::{CertifiedKey, Thumbprint};

use crate::error::ClientError;

/// How the access token is presented downstream.
///
/// Parsed case-insensitively; the empty string means `Bearer`. `MTLS_POP` also accepts
/// `mtls-pop` and `mtls_pop`. (`Pop`, `DPoP` and plain `MTLS` are reserved for later.)
///
/// ```
/// use certbound_client::ProtocolScheme;
/// assert_eq!("".parse::<ProtocolScheme>().unwrap(), ProtocolScheme::Bearer);
/// assert_eq!("mtls-pop".parse::<ProtocolScheme>().unwrap(), ProtocolScheme::MtlsPop);
/// assert!("DPoP".parse::<ProtocolScheme>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProtocolScheme {
    /// An unbound bearer token (`Authorization: Bearer <t>`).
    #[default]
    Bearer,
    /// A certificate-bound token (RFC 8705) sent over mutual TLS with the same certificate.
    MtlsPop,
}

impl ProtocolScheme {
    /// The canonical configuration name (`Bearer`, `MTLS_POP`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::MtlsPop => "MTLS_POP",
        }
    }
    /// Whether the token must be bound to the client certificate.
    pub fn is_bound(self) -> bool {
        matches!(self, Self::MtlsPop)
    }
    /// The token type requested from the authority (`bearer` or `mtls_pop`), as used in cache keys.
    pub fn token_type(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::MtlsPop => "mtls_pop",
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
        if t.is_empty() || t.eq_ignore_ascii_case("bearer") {
            Ok(Self::Bearer)
        } else if t.eq_ignore_ascii_case("mtls_pop") || t.eq_ignore_ascii_case("mtls-pop") {
            Ok(Self::MtlsPop)
        } else {
            Err(ClientError::UnknownScheme(crate::error::shorten(t, 40)))
        }
    }
}

/// Per-call options for headers and tokens.
///
/// ```
/// use certbound_client::{HeaderOptions, ProtocolScheme};
/// let o = HeaderOptions::mtls_pop().tenant("contoso").force_refresh(true);
/// assert_eq!(o.scheme, ProtocolScheme::MtlsPop);
/// ```
#[derive(Clone, Debug)]
pub struct HeaderOptions {
    /// The scheme (default Bearer).
    pub scheme: ProtocolScheme,
    /// Whether an app token is requested (`RequestAppToken`); `MTLS_POP` needs it. Default true.
    /// (certbound acquires app tokens only; for `Bearer` this flag is not consulted.)
    pub request_app_token: bool,
    /// Another tenant than the configured one.
    pub tenant: Option<String>,
    /// Bypass the cache and ask the authority.
    pub force_refresh: bool,
    /// Allow falling back to an unbound bearer token (with a warning) when `MTLS_POP`
    /// cannot be honoured. `None`: the app's configured default.
    pub allow_unbound_fallback: Option<bool>,
}

impl Default for HeaderOptions {
    fn default() -> Self {
        Self {
            scheme: ProtocolScheme::Bearer,
            request_app_token: true,
            tenant: None,
            force_refresh: false,
            allow_unbound_fallback: None,
        }
    }
}

/// Options for [`crate::App::acquire_token_for_app`] (the same knobs).
pub type TokenOptions = HeaderOptions;

impl HeaderOptions {
    /// Bearer options.
    pub fn bearer() -> Self {
        Self::default()
    }
    /// `MTLS_POP` options.
    pub fn mtls_pop() -> Self {
        Self {
            scheme: ProtocolScheme::MtlsPop,
            ..Self::default()
        }
    }
    /// Options for a configured downstream API.
    pub fn for_downstream_api(api: &crate::config::DownstreamApiConfig) -> Self {
        Self {
            scheme: api.protocol_scheme,
            request_app_token: api.request_app_token,
            tenant: api.acquire_token_options.tenant.clone(),
            force_refresh: api.acquire_token_options.force_refresh,
            allow_unbound_fallback: api.allow_unbound_fallback,
        }
    }
    /// Sets the scheme.
    pub fn scheme(mut self, s: ProtocolScheme) -> Self {
        self.scheme = s;
        self
    }
    /// Sets the tenant.
    pub fn tenant(mut self, t: impl Into<String>) -> Self {
        self.tenant = Some(t.into());
        self
    }
    /// Sets force-refresh.
    pub fn force_refresh(mut self, f: bool) -> Self {
        self.force_refresh = f;
        self
    }
    /// Sets the unbound-fallback opt-in.
    pub fn allow_unbound_fallback(mut self, f: bool) -> Self {
        self.allow_unbound_fallback = Some(f);
        self
    }
    /// Sets `request_app_token`.
    pub fn request_app_token(mut self, f: bool) -> Self {
        self.request_app_token = f;
        self
    }
}

/// Where a token came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// Freshly acquired from the authority.
    IdentityProvider,
    /// Served from the cache.
    Cache,
}

/// The `Authorization` header for one downstream call, and the certificate the TLS
/// connection must present (for bound tokens). `Debug` redacts the token.
#[derive(Clone)]
pub struct AuthorizationHeader {
    pub(crate) value: Arc<str>,
    pub(crate) scheme_len: usize,
    pub(crate) binding: Option<CertifiedKey>,
    pub(crate) binding_thumbprint: Option<Thumbprint>,
    pub(crate) expires_on: i64,
    pub(crate) source: TokenSource,
}

impl AuthorizationHeader {
    /// The header value, `<token_type> <token>` (e.g. `mtls_pop eyJ…`). Do not log it.
    pub fn value(&self) -> &str {
        &self.value
    }
    /// The scheme part (the token type as the server returned it: `mtls_pop`, `Bearer`).
    pub fn scheme(&self) -> &str {
        &self.value[..self.scheme_len]
    }
    /// The certificate to present on the TLS connection; `Some` exactly when the token is bound.
    pub fn binding(&self) -> Option<&CertifiedKey> {
        self.binding.as_ref()
    }
    /// The `x5t#S256` the token is bound to.
    pub fn binding_thumbprint(&self) -> Option<&Thumbprint> {
        self.binding_thumbprint.as_ref()
    }
    /// Token expiry (Unix seconds).
    pub fn expires_on(&self) -> i64 {
        self.expires_on
    }
    /// Cache or identity provider.
    pub fn source(&self) -> TokenSource {
        self.source
    }
    /// An `http::HeaderValue` marked sensitive (HTTP/2 never indexes it; hyper/reqwest redact it).
    pub fn to_header_value(&self) -> Result<http::HeaderValue, ClientError> {
        let mut v =
            http::HeaderValue::from_str(&self.value).map_err(|_| ClientError::InvalidResponse {
                url: "(token)".into(),
                message: "the access token holds characters not allowed in an HTTP header".into(),
            })?;
        v.set_sensitive(true);
        Ok(v)
    }
}

impl fmt::Debug for AuthorizationHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationHeader")
            .field("scheme", &self.scheme())
            .field("value", &"<redacted>")
            .field("binding", &self.binding_thumbprint)
            .field("expires_on", &self.expires_on)
            .field("source", &self.source)
            .finish()
    }
}
