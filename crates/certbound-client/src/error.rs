//! Typed errors. Every error names what is wrong (which file, key, endpoint or claim) and,
//! where it helps, what to do. No error carries a token, secret, key or password.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The typed cause under a [`ClientError`], returned by [`std::error::Error::source`] as the
/// underlying error itself (downcast it: `e.source()?.downcast_ref::<CertError>()`).
///
/// Shared, because one failed token request is handed to every caller waiting on it, so
/// `ClientError` is `Clone`. It derefs to the error and deliberately does not implement `Error`
/// itself: the source chain then skips the wrapper and reaches the typed error.
#[derive(Clone)]
pub struct ErrorCause(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl ErrorCause {
    /// Wraps `error`.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }
}

impl std::ops::Deref for ErrorCause {
    type Target = dyn std::error::Error + Send + Sync + 'static;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl std::fmt::Debug for ErrorCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

/// A configuration problem: the file, the key path (`AzureAd.ClientCredentials[1].CertificateDiskPath`)
/// and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
#[error("{}{}{message}", file.as_ref().map(|f| format!("{}: ", f.display())).unwrap_or_default(), if key.is_empty() { String::new() } else { format!("{key}: ") })]
pub struct ConfigError {
    /// The configuration file, when the value came from one.
    pub file: Option<PathBuf>,
    /// The key path, e.g. `AzureAd.ClientId`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(
        file: Option<&std::path::Path>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.map(|p| p.to_path_buf()),
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Errors of the client: configuration, credentials, authority, token acquisition, cache.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// No configured credential could be loaded; `tried` says why each failed.
    #[error("no usable client credential: {}", tried.join("; "))]
    NoUsableCredential {
        /// One line per credential, in order: which one and why it failed.
        tried: Vec<String>,
    },
    /// A credential source type that exists in the configuration model but is not implemented yet.
    #[error(
        "credential source `{source_type}` at {key} is not supported yet ; use Path, Base64Encoded, ClientSecret, SignedAssertionFilePath or ManagedCertificate"
    )]
    NotSupportedYet {
        /// The `SourceType`.
        source_type: String,
        /// The key path.
        key: String,
    },
    /// A credential failed at use time (e.g. the signed-assertion file vanished).
    #[error("credential {what}: {message}")]
    Credential {
        /// Which credential.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The authority is unusable (bad URL, tenant rule, …).
    #[error("authority {authority}: {message}")]
    Authority {
        /// The authority URL or host.
        authority: String,
        /// What is wrong.
        message: String,
    },
    /// OIDC / OAuth metadata discovery failed.
    #[error("discovery at {url} failed: {message}")]
    Discovery {
        /// The metadata URL(s) tried.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// TLS configuration failed (bad trust anchor, unusable client certificate).
    #[error("TLS setup: {0}")]
    Tls(String, #[source] Option<ErrorCause>),
    /// The request could not be sent or the response not read (connection refused, TLS handshake, …).
    #[error("request to {url} failed: {message}")]
    Transport {
        /// The endpoint.
        url: String,
        /// What failed.
        message: String,
    },
    /// The request timed out (after the retry).
    #[error("request to {url} timed out after {timeout:?}")]
    Timeout {
        /// The endpoint.
        url: String,
        /// The per-request timeout.
        timeout: Duration,
    },
    /// The token endpoint answered with an OAuth error or a non-success status.
    #[error("token endpoint {url} answered HTTP {status}{}{}", error.as_ref().map(|e| format!(": {e}")).unwrap_or_default(), description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    TokenEndpoint {
        /// The endpoint.
        url: String,
        /// HTTP status.
        status: u16,
        /// OAuth `error` code (`invalid_client`, …).
        error: Option<String>,
        /// OAuth `error_description`, shortened.
        description: Option<String>,
    },
    /// The server asks to wait (`429`/`5xx` with `Retry-After`) longer than the client waits inline.
    #[error("token endpoint {url} is throttling this client: retry after {retry_after:?}")]
    Throttled {
        /// The endpoint.
        url: String,
        /// How long to wait (capped at one hour).
        retry_after: Duration,
    },
    /// The response is not a valid token response (not JSON, missing `access_token`, …).
    #[error("invalid token response from {url}: {message}")]
    InvalidResponse {
        /// The endpoint.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// `token_type_mismatch`: the server returned another token type than requested.
    #[error(
        "token_type_mismatch: requested a `{requested}` token, the server returned token_type `{received}`; the token is not used"
    )]
    TokenTypeMismatch {
        /// What was requested.
        requested: String,
        /// What came back.
        received: String,
    },
    /// `token_type_missing`: the response has no `token_type`.
    #[error("token_type_missing: the token response has no token_type (requested `{requested}`)")]
    TokenTypeMissing {
        /// What was requested.
        requested: String,
    },
    /// The bound token's `cnf."x5t#S256"` is not the certificate's thumbprint.
    #[error(
        "binding mismatch: the token is bound to x5t#S256 `{received}` but the client certificate is `{expected}`; the token is not used"
    )]
    BindingMismatch {
        /// The certificate's thumbprint.
        expected: String,
        /// The token's `cnf."x5t#S256"`.
        received: String,
    },
    /// A bound token was requested but the JWT carries no `cnf."x5t#S256"`.
    #[error(
        "binding missing: a certificate-bound token was requested but the returned JWT has no cnf.\"x5t#S256\" (is the client registered for tls_client_certificate_bound_access_tokens?); the token is not used"
    )]
    BindingMissing,
    /// A key-bound token (`Pop`, `DPoP`) is not bound to the app's proof key: its `cnf.jkt` /
    /// `cnf.kid` is missing or names another key.
    #[error(
        "binding mismatch: a {scheme} token bound to the app's proof key `{expected}` was requested, but the returned token's {claim} is {received}; the token is not used"
    )]
    KeyBindingMismatch {
        /// `Pop` or `DPoP`.
        scheme: &'static str,
        /// `cnf.kid` or `cnf.jkt`.
        claim: &'static str,
        /// The proof key's RFC 7638 thumbprint.
        expected: String,
        /// What the token carries (quoted), or `missing`.
        received: String,
    },
    /// A bound token's `cnf` names two or more proof-of-possession keys (RFC 7800 §3.1: a
    /// `cnf` represents a single key), e.g. `x5t#S256` and `jwk`.
    #[error(
        "binding ambiguous: the returned token's cnf claim holds more than one proof-of-possession key ({members}); the token is not used"
    )]
    CnfMultipleKeys {
        /// The key members found (names from a fixed list, comma-separated).
        members: String,
    },
    /// A per-request proof (DPoP proof, signed HTTP request) could not be made.
    #[error("proof of possession: {0}")]
    Proof(String, #[source] Option<ErrorCause>),
    /// The protocol scheme is unknown or not supported (the message names the value).
    #[error(transparent)]
    UnknownScheme(#[from] certbound_core::ParseSchemeError),
    /// A scheme that needs a certificate-bound app token cannot be served as configured.
    #[error("{0}")]
    SchemeNotSatisfiable(String),
    /// No scopes were given.
    #[error("no scopes: pass at least one scope (e.g. `api://app/.default`)")]
    NoScopes,
    /// The managed identity could not provide a certificate or a token (IMDS, App Service).
    #[error("managed identity: {message}")]
    ManagedIdentity {
        /// What went wrong and what to do (never a token or secret).
        message: String,
        /// The host has IMDS v1 only: certificate-bound (mTLS PoP) tokens are unavailable.
        mtls_pop_unavailable: bool,
    },
    /// The token cache failed.
    #[error("token cache: {0}")]
    Cache(String),
    /// The operation was cancelled (the runtime shut down).
    #[error("the token request was cancelled")]
    Cancelled,
}

impl ClientError {
    /// A stable error code in MSAL's style (`token_type_mismatch`, `invalid_client`, …).
    pub fn code(&self) -> &str {
        match self {
            Self::Config(_) => "invalid_configuration",
            Self::NoUsableCredential { .. } => "no_usable_credential",
            Self::NotSupportedYet { .. } => "not_supported_yet",
            Self::Credential { .. } => "credential_error",
            Self::Authority { .. } => "invalid_authority",
            Self::Discovery { .. } => "discovery_failed",
            Self::Tls(..) => "tls_error",
            Self::Transport { .. } => "request_failed",
            Self::Timeout { .. } => "request_timeout",
            Self::TokenEndpoint { error: Some(e), .. } => e,
            Self::TokenEndpoint { .. } => "http_error",
            Self::Throttled { .. } => "throttled",
            Self::InvalidResponse { .. } => "invalid_response",
            Self::TokenTypeMismatch { .. } => "token_type_mismatch",
            Self::TokenTypeMissing { .. } => "token_type_missing",
            Self::BindingMismatch { .. } => "binding_mismatch",
            Self::BindingMissing => "binding_missing",
            Self::KeyBindingMismatch { received, .. } if received == "missing" => "binding_missing",
            Self::KeyBindingMismatch { .. } => "binding_mismatch",
            Self::CnfMultipleKeys { .. } => "binding_ambiguous",
            Self::Proof(..) => "proof_error",
            Self::UnknownScheme(_) => "unknown_scheme",
            Self::SchemeNotSatisfiable(_) => "scheme_not_satisfiable",
            Self::NoScopes => "no_scopes",
            Self::ManagedIdentity {
                mtls_pop_unavailable: true,
                ..
            } => "mtls_pop_unavailable",
            Self::ManagedIdentity { .. } => "managed_identity_unavailable",
            Self::Cache(_) => "cache_error",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Shortens server-provided text for errors and logs (servers sometimes echo large bodies).
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let t: String = text.chars().filter(|c| !c.is_control()).take(max).collect();
    if text.chars().count() > max {
        format!("{t}…")
    } else {
        t
    }
}
