//! RFC 6750 §3 error responses.
//!
//! Every refusal is a [`Rejection`]. Its description names the rule or claim that failed
//! (`token expired`, `audience not accepted`, `certificate thumbprint does not match cnf`)
//! and never contains the token or any other value taken from the request, so it is safe to
//! put into a `WWW-Authenticate` header and into logs.
//!
//! ```
//! use axum::response::IntoResponse as _;
//! use certbound_resource::{ProtocolScheme, Rejection, TokenError};
//! let r = Rejection::InvalidToken { scheme: ProtocolScheme::MtlsPop, error: TokenError::Expired };
//! let resp = r.into_response();
//! assert_eq!(resp.status(), 401);
//! assert_eq!(
//!     resp.headers()["www-authenticate"],
//!     r#"mtls_pop error="invalid_token", error_description="token expired""#
//! );
//! ```

#[cfg(feature = "axum")]
use axum::response::{IntoResponse, Response};
use http::StatusCode;
#[cfg(feature = "axum")]
use http::{HeaderValue, header};

use certbound_core::pop::{PROOF_ALGORITHMS, PopError};

use certbound_core::ProtocolScheme;

/// Why a token was refused. The `Display` text is the `error_description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than the configured maximum.
    #[error("token too large")]
    TooLarge,
    /// Not `header.payload.signature`.
    #[error("token is not a compact JWS (expected three non-empty dot-separated parts)")]
    NotCompactJws,
    /// A part is not strict base64url (no padding, URL alphabet, canonical).
    #[error("token {0} is not valid base64url")]
    Base64(&'static str),
    /// A part is not a JSON object.
    #[error("token {0} is not a JSON object")]
    NotJsonObject(&'static str),
    /// A member name appears twice.
    #[error("duplicate member in token {0}")]
    DuplicateMember(&'static str),
    /// `alg` missing or not a string.
    #[error("alg header missing")]
    AlgMissing,
    /// `alg: none`.
    #[error("algorithm none is not accepted")]
    AlgNone,
    /// `HS256` and friends.
    #[error("HMAC algorithms are not accepted")]
    AlgHmac,
    /// An algorithm outside the configured allowlist.
    #[error("algorithm not accepted")]
    AlgNotAllowed,
    /// `typ` missing.
    #[error("token type (typ) missing")]
    TypMissing,
    /// `typ` not in the accepted list.
    #[error("token type (typ) not accepted")]
    TypNotAccepted,
    /// `crit` lists an extension this server does not understand (or is malformed).
    #[error("unsupported critical header parameter (crit)")]
    Crit,
    /// `kid` is present but not a string.
    #[error("kid header is not a string")]
    KidMalformed,
    /// No key of the issuer's JWKS has the token's `kid` (after a refetch, when allowed).
    #[error("signing key not found")]
    KeyNotFound,
    /// No `kid` and not exactly one key fits the algorithm.
    #[error("kid header missing and the signing key is ambiguous")]
    KeyAmbiguous,
    /// The key with that `kid` is of another type or declares another `alg`.
    #[error("signing key does not fit the token's algorithm")]
    KeyAlgMismatch,
    /// The signature does not verify.
    #[error("signature invalid")]
    BadSignature,
    /// A registered claim has the wrong JSON type.
    #[error("claim {0} is malformed")]
    ClaimMalformed(&'static str),
    /// A required claim is absent.
    #[error("claim {0} missing")]
    ClaimMissing(&'static str),
    /// `iss` is not one of the configured issuers.
    #[error("issuer not accepted")]
    IssuerNotAccepted,
    /// No `aud` value is one of the configured audiences.
    #[error("audience not accepted")]
    AudienceNotAccepted,
    /// `exp` (plus skew) has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` (minus skew) is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` (minus skew) is in the future.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `cnf` present but not an object with a well-formed `x5t#S256`.
    #[error("cnf claim malformed (expected an object with a base64url SHA-256 x5t#S256)")]
    CnfMalformed,
    /// `cnf` names two or more proof-of-possession keys (RFC 7800 §3.1: a `cnf` represents a
    /// single key). Holds the member names found, comma-separated, from a fixed list (never
    /// a value from the token).
    #[error(
        "cnf claim holds more than one proof-of-possession key ({0}); exactly one of x5t#S256, jkt or kid is accepted"
    )]
    CnfMultipleKeys(String),
    /// `cnf`'s only key member is one this server cannot enforce (`jwk`, `jwe`, `jku`).
    #[error(
        "cnf claim's {0} confirmation is not supported (this server enforces x5t#S256, jkt or kid)"
    )]
    CnfUnsupported(&'static str),
    /// Bound token, but the connection presented no client certificate.
    #[error("certificate-bound token but no client certificate was presented")]
    NoClientCertificate,
    /// Bound token, another certificate.
    #[error("certificate thumbprint does not match cnf")]
    ThumbprintMismatch,
    /// Unbound token on an endpoint that requires binding.
    #[error("token is not certificate-bound (no cnf) but this resource requires binding")]
    BindingRequired,
    /// `mtls_pop` scheme with an unbound token.
    #[error("mtls_pop scheme requires a certificate-bound token (no cnf)")]
    PopWithoutCnf,
    /// A DPoP-bound token (`cnf.jkt`) presented with another scheme than `DPoP`.
    #[error("DPoP-bound token (cnf.jkt) must be sent with the DPoP scheme and a proof")]
    DpopBoundToken,
    /// An SHR-bound token (`cnf.kid`) presented with another scheme than `PoP`.
    #[error("PoP-bound token (cnf.kid) must be sent inside a signed HTTP request (PoP scheme)")]
    PopBoundToken,
    /// `DPoP`/`PoP` scheme with a token not bound to a proof key.
    #[error("{0} scheme requires a token bound to a proof key")]
    SchemeNeedsKeyBinding(&'static str),
    /// `DPoP`/`PoP` token handed to an entry point that has no request method and URL.
    #[error("DPoP and PoP tokens need the request method and URL to be checked")]
    ProofRequired,
    /// The signed HTTP request (`PoP` scheme) was refused.
    #[error("signed request: {0}")]
    SignedRequest(#[source] PopError),
    /// The SHR (its `nonce`, or its whole text when it has none) was already used within
    /// the window.
    #[error("signed request replayed (already used)")]
    SignedRequestReplayed,
    /// The SHR key's thumbprint is not the inner token's `cnf.kid`.
    #[error("signed request key does not match the token's cnf.kid")]
    PopKeyMismatch,
}

pub use certbound_core::pop::DpopError;

impl TokenError {
    /// A short, stable name for the failed rule (for logs and metrics).
    pub fn rule(&self) -> &'static str {
        match self {
            Self::TooLarge | Self::NotCompactJws | Self::Base64(_) | Self::NotJsonObject(_) => {
                "format"
            }
            Self::DuplicateMember(_) => "duplicate_member",
            Self::AlgMissing | Self::AlgNone | Self::AlgHmac | Self::AlgNotAllowed => "alg",
            Self::TypMissing | Self::TypNotAccepted => "typ",
            Self::Crit => "crit",
            Self::KidMalformed | Self::KeyNotFound | Self::KeyAmbiguous | Self::KeyAlgMismatch => {
                "key"
            }
            Self::BadSignature => "signature",
            Self::ClaimMalformed(_) | Self::ClaimMissing(_) => "claims",
            Self::IssuerNotAccepted => "iss",
            Self::AudienceNotAccepted => "aud",
            Self::Expired => "exp",
            Self::NotYetValid => "nbf",
            Self::IssuedInFuture => "iat",
            Self::CnfMalformed
            | Self::CnfMultipleKeys(_)
            | Self::CnfUnsupported(_)
            | Self::NoClientCertificate
            | Self::ThumbprintMismatch
            | Self::BindingRequired
            | Self::PopWithoutCnf
            | Self::DpopBoundToken
            | Self::PopBoundToken
            | Self::SchemeNeedsKeyBinding(_)
            | Self::ProofRequired
            | Self::PopKeyMismatch => "binding",
            Self::SignedRequest(_) | Self::SignedRequestReplayed => "proof",
        }
    }
}

/// A refused request, convertible into the RFC 6750 response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// No `Authorization` header (or a scheme this server does not serve): 401 with bare
    /// `Bearer` and `mtls_pop` challenges, no error code (RFC 6750 §3.1).
    #[error("no access token presented")]
    MissingToken,
    /// A malformed `Authorization` header: 400 `invalid_request`.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// The token was refused: 401 `invalid_token`.
    #[error("invalid token: {error}")]
    InvalidToken {
        /// The scheme the request used (the challenge answers in it).
        scheme: ProtocolScheme,
        /// The failed rule.
        #[source]
        error: TokenError,
    },
    /// The DPoP proof was refused: 401 `DPoP error="invalid_dpop_proof"`.
    #[error("invalid DPoP proof: {0}")]
    InvalidDpopProof(#[source] DpopError),
    /// The server requires a DPoP nonce and the proof has none or a stale one: 401
    /// `DPoP error="use_dpop_nonce"` with the fresh nonce in `DPoP-Nonce` (RFC 9449 §9).
    #[error("DPoP nonce required")]
    UseDpopNonce(String),
    /// The issuer's keys could not be obtained: 503 with `Retry-After`.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(#[source] crate::jwks::FetchError),
    /// The record of used proofs is full of live entries, so this proof cannot be checked
    /// for replay: 503 with `Retry-After` (fail closed; an entry is never evicted early).
    #[error("too many recent proofs to check this one for replay")]
    ProofRecordFull,
    /// The server is misconfigured (e.g. the extractor was used without a validator).
    #[error("resource server misconfigured: {0}")]
    Misconfigured(&'static str),
}

impl Rejection {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken
            | Self::InvalidToken { .. }
            | Self::InvalidDpopProof(_)
            | Self::UseDpopNonce(_) => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::KeysUnavailable(_) | Self::ProofRecordFull => StatusCode::SERVICE_UNAVAILABLE,
            Self::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The token error, when this is an `invalid_token` refusal.
    pub fn token_error(&self) -> Option<&TokenError> {
        match self {
            Self::InvalidToken { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The `WWW-Authenticate` values (one challenge per header line).
    pub fn challenges(&self) -> Vec<String> {
        match self {
            Self::MissingToken => vec![
                "Bearer".into(),
                "mtls_pop".into(),
                format!(r#"DPoP algs="{}""#, dpop_algs()),
                "PoP".into(),
            ],
            Self::InvalidRequest(d) => vec![format!(
                r#"Bearer error="invalid_request", error_description="{}""#,
                sanitize(d)
            )],
            Self::InvalidToken {
                scheme: ProtocolScheme::DPoP,
                error,
            } => vec![format!(
                r#"DPoP error="invalid_token", error_description="{}", algs="{}""#,
                sanitize(&error.to_string()),
                dpop_algs()
            )],
            Self::InvalidToken { scheme, error } => vec![format!(
                r#"{} error="invalid_token", error_description="{}""#,
                header_word(*scheme),
                sanitize(&error.to_string())
            )],
            Self::InvalidDpopProof(e) => vec![format!(
                r#"DPoP error="invalid_dpop_proof", error_description="{}", algs="{}""#,
                sanitize(&e.to_string()),
                dpop_algs()
            )],
            Self::UseDpopNonce(_) => vec![format!(
                r#"DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof", algs="{}""#,
                dpop_algs()
            )],
            Self::KeysUnavailable(_) | Self::ProofRecordFull | Self::Misconfigured(_) => Vec::new(),
        }
    }
}

/// The scheme as challenges and the wire spell it (`Bearer`, `mtls_pop`, `DPoP`, `PoP`);
/// `Bearer` for `MTLS`, which has no header scheme of its own.
pub(crate) fn header_word(scheme: ProtocolScheme) -> &'static str {
    scheme.header_scheme().unwrap_or("Bearer")
}

fn dpop_algs() -> String {
    PROOF_ALGORITHMS
        .iter()
        .map(|a| a.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Keeps only the characters RFC 6750 §3 allows in `error_description`
/// (`%x20-21 / %x23-5B / %x5D-7E`).
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(*c as u32, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        .collect()
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match &self {
            Self::MissingToken => serde_json::json!({"error": "unauthorized"}),
            Self::InvalidRequest(d) => {
                serde_json::json!({"error": "invalid_request", "error_description": sanitize(d)})
            }
            Self::InvalidToken { error, .. } => serde_json::json!({
                "error": "invalid_token",
                "error_description": sanitize(&error.to_string()),
            }),
            Self::InvalidDpopProof(e) => serde_json::json!({
                "error": "invalid_dpop_proof",
                "error_description": sanitize(&e.to_string()),
            }),
            Self::UseDpopNonce(_) => serde_json::json!({
                "error": "use_dpop_nonce",
                "error_description": "Resource server requires nonce in DPoP proof",
            }),
            Self::KeysUnavailable(_) => serde_json::json!({
                "error": "temporarily_unavailable",
                "error_description": "the issuer's signing keys could not be fetched",
            }),
            Self::ProofRecordFull => serde_json::json!({
                "error": "temporarily_unavailable",
                "error_description": "too many recent proofs to check this one for replay; retry shortly",
            }),
            Self::Misconfigured(d) => {
                serde_json::json!({"error": "server_error", "error_description": sanitize(d)})
            }
        };
        let mut resp = (status, axum::Json(body)).into_response();
        let headers = resp.headers_mut();
        for c in self.challenges() {
            if let Ok(v) = HeaderValue::from_str(&c) {
                headers.append(header::WWW_AUTHENTICATE, v);
            }
        }
        if let Self::UseDpopNonce(nonce) = &self
            && let Ok(v) = HeaderValue::from_str(nonce)
        {
            headers.insert("dpop-nonce", v);
        }
        if matches!(self, Self::KeysUnavailable(_)) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        if matches!(self, Self::ProofRecordFull) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}
