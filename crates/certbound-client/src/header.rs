//! Authorization headers: the [`ProtocolScheme`] a downstream API wants, the per-call
//! [`HeaderOptions`], and the resulting [`AuthorizationHeader`] — the header value
//! (`<token_type> <token>`) **and** the certificate the transport must present.

use std::fmt;
use std::sync::Arc;

use certbound_core::{CertifiedKey, Thumbprint};

use crate::error::ClientError;

pub use crate::scheme::ProtocolScheme;

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
    /// `Pop` options (signed HTTP requests; use
    /// [`App::authorization_header_for_request`](crate::App::authorization_header_for_request)).
    pub fn pop() -> Self {
        Self {
            scheme: ProtocolScheme::Pop,
            ..Self::default()
        }
    }
    /// `DPoP` options (a proof per request; use
    /// [`App::authorization_header_for_request`](crate::App::authorization_header_for_request)).
    pub fn dpop() -> Self {
        Self {
            scheme: ProtocolScheme::DPoP,
            ..Self::default()
        }
    }
    /// `MTLS` options (the client certificate, no token).
    pub fn mtls() -> Self {
        Self {
            scheme: ProtocolScheme::Mtls,
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
#[non_exhaustive]
pub enum TokenSource {
    /// Freshly acquired from the authority.
    IdentityProvider,
    /// Served from the cache.
    Cache,
}

/// The `Authorization` header for one downstream call (plus the `DPoP` proof header for
/// `DPoP`), and the certificate the TLS connection must present (`MTLS_POP`, `MTLS`).
/// `Debug` redacts the token and the proof.
///
/// For `MTLS` there is no token: [`value`](Self::value) is empty and [`apply`](Self::apply)
/// adds no header.
///
/// Cloning is one reference-count increment (the cache hands out clones).
#[derive(Clone)]
pub struct AuthorizationHeader {
    pub(crate) parts: Arc<HeaderParts>,
    pub(crate) source: TokenSource,
}

/// What an [`AuthorizationHeader`] shares between its clones.
pub(crate) struct HeaderParts {
    pub(crate) value: Box<str>,
    pub(crate) dpop: Option<Box<str>>,
    pub(crate) scheme_len: usize,
    pub(crate) binding: Option<CertifiedKey>,
    pub(crate) binding_thumbprint: Option<Thumbprint>,
    pub(crate) expires_on: i64,
}

impl HeaderParts {
    pub(crate) fn into_header(self, source: TokenSource) -> AuthorizationHeader {
        AuthorizationHeader {
            parts: Arc::new(self),
            source,
        }
    }
}

impl AuthorizationHeader {
    /// The header value, `<scheme> <credential>` (e.g. `mtls_pop eyJ…`, `DPoP eyJ…`,
    /// `PoP <signed request>`); empty for `MTLS`. Do not log it.
    pub fn value(&self) -> &str {
        &self.parts.value
    }
    /// The scheme part (the token type as the server returned it: `mtls_pop`, `Bearer`;
    /// `PoP` or `DPoP` for key-bound tokens; empty for `MTLS`).
    pub fn scheme(&self) -> &str {
        self.parts
            .value
            .get(..self.parts.scheme_len)
            .unwrap_or_default()
    }
    /// Whether an `Authorization` header is sent (false for `MTLS`).
    pub fn has_token(&self) -> bool {
        !self.parts.value.is_empty()
    }
    /// The `DPoP` proof to send as the `DPoP` request header (RFC 9449), made for this one
    /// request; `None` for other schemes. Do not log it.
    pub fn dpop_proof(&self) -> Option<&str> {
        self.parts.dpop.as_deref()
    }
    /// Adds `Authorization` (and `DPoP`) to `headers`, marked sensitive.
    pub fn apply(&self, headers: &mut http::HeaderMap) -> Result<(), ClientError> {
        if self.has_token() {
            headers.insert(http::header::AUTHORIZATION, self.to_header_value()?);
        }
        if let Some(p) = &self.parts.dpop {
            let mut v = http::HeaderValue::from_str(p).map_err(|_| {
                ClientError::Proof("the DPoP proof is not a valid header value".into(), None)
            })?;
            v.set_sensitive(true);
            headers.insert(http::HeaderName::from_static("dpop"), v);
        }
        Ok(())
    }
    /// The certificate to present on the TLS connection: `Some` for `MTLS_POP` (the certificate
    /// the token is bound to) and `MTLS`.
    pub fn binding(&self) -> Option<&CertifiedKey> {
        self.parts.binding.as_ref()
    }
    /// The `x5t#S256` of [`binding`](Self::binding).
    pub fn binding_thumbprint(&self) -> Option<&Thumbprint> {
        self.parts.binding_thumbprint.as_ref()
    }
    /// Token expiry (Unix seconds).
    pub fn expires_on(&self) -> i64 {
        self.parts.expires_on
    }
    /// Cache or identity provider.
    pub fn source(&self) -> TokenSource {
        self.source
    }
    /// An `http::HeaderValue` marked sensitive (HTTP/2 never indexes it; hyper/reqwest redact it).
    pub fn to_header_value(&self) -> Result<http::HeaderValue, ClientError> {
        let mut v = http::HeaderValue::from_str(&self.parts.value).map_err(|_| {
            ClientError::InvalidResponse {
                url: "(token)".into(),
                message: "the access token holds characters not allowed in an HTTP header".into(),
            }
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
            .field(
                "dpop_proof",
                &self.parts.dpop.as_ref().map(|_| "<redacted>"),
            )
            .field("binding", &self.parts.binding_thumbprint)
            .field("expires_on", &self.parts.expires_on)
            .field("source", &self.source)
            .finish()
    }
}
