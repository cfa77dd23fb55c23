//! [`Presented`]: what a request presents to the validator — the one input of
//! [`Validator::validate`](super::Validator::validate) and its cached twin.

use std::fmt;
use std::net::SocketAddr;

use certbound_core::{ProtocolScheme, Thumbprint};
use http::{HeaderMap, Method, Request, Uri, request::Parts};

use crate::transport::TlsInfo;

/// What a request presents for validation: its `Authorization` header (and `DPoP` proof
/// header), its method and URL when known (the `DPoP` and `PoP` proofs cover them), and the
/// client certificate of its TLS connection.
///
/// Built from a whole request ([`request`](Self::request), [`parts`](Self::parts)), from
/// its pieces ([`http`](Self::http)), from its headers alone ([`headers`](Self::headers):
/// no method or URL, so `DPoP` and `PoP` are refused with
/// [`TokenError::ProofRequired`](crate::TokenError::ProofRequired)), or from a bare token
/// ([`token`](Self::token), likewise). The connection's certificate comes from
/// [`tls`](Self::tls) (what [`TlsServer`](crate::TlsServer) attaches to each request;
/// `request` and `parts` read it from the extensions) or [`peer`](Self::peer).
///
/// Its `Debug` shows the scheme or "headers", the method and path, never a token, header
/// value or query.
#[derive(Clone, Copy)]
pub struct Presented<'a> {
    pub(super) credential: Credential<'a>,
    pub(super) request_line: Option<(&'a Method, &'a Uri)>,
    pub(super) peer: Option<&'a Thumbprint>,
    pub(super) listen_addr: Option<SocketAddr>,
}

/// Where the token is.
#[derive(Clone, Copy)]
pub(super) enum Credential<'a> {
    /// In the `Authorization` header of these headers (exactly one).
    Headers(&'a HeaderMap),
    /// Given directly, with its scheme.
    Token(ProtocolScheme, &'a str),
}

impl<'a> Presented<'a> {
    /// A request: its method, URI, headers and [`TlsInfo`] extension (absent: no client
    /// certificate, and the proof origin only from configured external URLs).
    pub fn request<B>(req: &'a Request<B>) -> Self {
        Self::http(req.method(), req.uri(), req.headers()).tls(req.extensions().get::<TlsInfo>())
    }

    /// A request's head (what an axum extractor sees), like [`request`](Self::request).
    pub fn parts(parts: &'a Parts) -> Self {
        Self::http(&parts.method, &parts.uri, &parts.headers).tls(parts.extensions.get::<TlsInfo>())
    }

    /// A request given by its method, URI (origin-form or absolute) and headers; no client
    /// certificate until [`tls`](Self::tls) or [`peer`](Self::peer).
    pub fn http(method: &'a Method, uri: &'a Uri, headers: &'a HeaderMap) -> Self {
        Self {
            credential: Credential::Headers(headers),
            request_line: Some((method, uri)),
            peer: None,
            listen_addr: None,
        }
    }

    /// Headers without a request line: `Bearer` and `mtls_pop` are validated as usual;
    /// `DPoP` and `PoP`, whose proofs cover the method and URL, are refused
    /// ([`TokenError::ProofRequired`](crate::TokenError::ProofRequired)).
    pub fn headers(headers: &'a HeaderMap) -> Self {
        Self {
            credential: Credential::Headers(headers),
            request_line: None,
            peer: None,
            listen_addr: None,
        }
    }

    /// A bare token presented with `scheme` (e.g. taken from somewhere other than an HTTP
    /// header). `DPoP` and `PoP` are refused ([`TokenError::ProofRequired`](crate::TokenError::ProofRequired));
    /// `MTLS` carries no token ([`Rejection::MissingToken`](crate::Rejection::MissingToken)).
    pub fn token(scheme: ProtocolScheme, token: &'a str) -> Self {
        Self {
            credential: Credential::Token(scheme, token),
            request_line: None,
            peer: None,
            listen_addr: None,
        }
    }

    /// The connection the request came on: its client certificate and listen address
    /// (`None`: a connection without TLS information, no certificate).
    pub fn tls(mut self, tls: Option<&'a TlsInfo>) -> Self {
        self.peer = tls.and_then(|t| t.peer.as_ref()).map(|p| &p.thumbprint);
        self.listen_addr = tls.and_then(|t| t.listen_addr);
        self
    }

    /// The `x5t#S256` thumbprint of the connection's client certificate (replaces what
    /// [`tls`](Self::tls) set).
    pub fn peer(mut self, peer: Option<&'a Thumbprint>) -> Self {
        self.peer = peer;
        self
    }
}

impl fmt::Debug for Presented<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Presented");
        match self.credential {
            Credential::Headers(_) => d.field("credential", &"headers"),
            Credential::Token(s, _) => d.field("credential", &s),
        };
        if let Some((m, u)) = self.request_line {
            d.field("method", m).field("path", &u.path());
        }
        d.field("peer", &self.peer)
            .field("listen_addr", &self.listen_addr)
            .finish()
    }
}
