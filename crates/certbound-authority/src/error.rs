//! Errors: [`AuthorityError`] for setting up and administering the authority, and
//! [`OAuthError`], the RFC 6749 §5.2 error response of the token endpoint.

use std::borrow::Cow;
use std::path::PathBuf;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// Setting up, loading or administering the authority failed.
///
/// Every variant names the file, client or option involved and never carries key
/// material or client secrets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// A file or directory could not be read or written.
    #[error("{}: cannot {action}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`"read"`, `"write"`, `"create the directory"` …).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A state file exists but its content is unusable.
    #[error("{}: {problem}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        problem: String,
    },
    /// A certificate or key could not be loaded or generated.
    #[error(transparent)]
    Cert(#[from] certbound_core::CertError),
    /// A client registration was refused.
    #[error("client `{client_id}`: {problem}")]
    Registration {
        /// The client id.
        client_id: String,
        /// What is wrong and what to do.
        problem: String,
    },
    /// An option has an unusable value.
    #[error("{0}")]
    Options(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    /// A token endpoint URL cannot be used for DPoP `htu` checks.
    #[error("token endpoint URL {url}: {source}")]
    EndpointUrl {
        /// The URL as configured.
        url: String,
        /// Why it is unusable.
        #[source]
        source: certbound_core::pop::PopError,
    },
    /// The registry could not be encoded as JSON.
    #[error("cannot encode the registry: {0}")]
    Encode(#[source] serde_json::Error),
}

impl AuthorityError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            path: path.into(),
            action,
            source,
        }
    }
    pub(crate) fn state(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        Self::State {
            path: path.into(),
            problem: problem.into(),
        }
    }
    pub(crate) fn registration(client_id: &str, problem: impl Into<String>) -> Self {
        Self::Registration {
            client_id: client_id.into(),
            problem: problem.into(),
        }
    }
}

/// The RFC 6749 §5.2 error codes the token endpoint returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is missing a parameter, repeats one, or is otherwise malformed.
    InvalidRequest,
    /// Client authentication failed (HTTP 401).
    InvalidClient,
    /// The grant (or assertion) is invalid.
    InvalidGrant,
    /// The client may not use this grant or request this.
    UnauthorizedClient,
    /// The grant type is not supported (only `client_credentials` is).
    UnsupportedGrantType,
    /// The scope is invalid, names no resource, several resources, or a resource the
    /// client may not request.
    InvalidScope,
    /// The authority cannot serve the request right now (e.g. its replay cache is full).
    TemporarilyUnavailable,
    /// The authority failed unexpectedly.
    ServerError,
    /// The `DPoP` proof of the token request was refused (RFC 9449 §5): malformed,
    /// missing a claim, for another method or URL, too old, replayed, or several `DPoP`
    /// headers.
    InvalidDpopProof,
    /// The authority requires a DPoP nonce: retry with a new proof carrying the nonce from
    /// the `DPoP-Nonce` response header (RFC 9449 §8).
    UseDpopNonce,
}

impl ErrorCode {
    /// The `error` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::ServerError => "server_error",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }
}

/// A token-endpoint error response: `{"error": …, "error_description": …}`.
///
/// Descriptions are fixed texts written by the authority; they never echo client
/// secrets, assertions or other request values.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OAuthError {
    /// The error code.
    pub code: ErrorCode,
    /// A human-readable explanation.
    pub description: Cow<'static, str>,
    /// The HTTP status (400, 401 for `invalid_client`, 413 for oversized bodies …).
    pub status: StatusCode,
    /// Add `WWW-Authenticate: Basic` (the client tried HTTP Basic authentication).
    pub basic_challenge: bool,
    /// Send this `DPoP-Nonce` header (with [`ErrorCode::UseDpopNonce`]).
    pub dpop_nonce: Option<String>,
}

impl OAuthError {
    /// An error with the default status for `code`.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        let status = match code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            code,
            description: description.into(),
            status,
            basic_challenge: false,
            dpop_nonce: None,
        }
    }
    pub(crate) fn invalid_request(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, d)
    }
    pub(crate) fn invalid_client(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, d)
    }
    pub(crate) fn invalid_scope(d: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, d)
    }
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
    pub(crate) fn with_dpop_nonce(mut self, nonce: Option<String>) -> Self {
        self.dpop_nonce = nonce;
        self
    }
    pub(crate) fn with_basic_challenge(mut self, basic: bool) -> Self {
        self.basic_challenge = basic && self.code == ErrorCode::InvalidClient;
        self
    }
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": self.code.as_str(),
            "error_description": self.description,
        });
        let mut resp = (self.status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(v) = self
            .dpop_nonce
            .as_deref()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            h.insert("dpop-nonce", v);
        }
        if self.basic_challenge {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"certbound\", charset=\"UTF-8\""),
            );
        }
        resp
    }
}
