//! The plain `MTLS` scheme on the resource side: APIs that authenticate the TLS client
//! certificate alone, with no token.
//!
//! - [`ClientCertificate`] is an axum extractor giving the certificate the connection
//!   presented (from [`TlsInfo`], so the server must run on [`TlsServer`](crate::TlsServer)
//!   with client certificates requested): its `x5t#S256` thumbprint, subject, issuer,
//!   validity and chain. It refuses with 401 when no certificate was presented; it does not
//!   judge the certificate.
//! - [`RequireClientCertificate`] is a `tower::Layer` that admits only certificates that are
//!   within their validity period and pass every configured check: an allow-list of
//!   thumbprints and/or a chain to configured trust anchors (webpki, the aws-lc-rs
//!   provider). Refusals are [`CertificateRejection`]s: 401 without a certificate, 403 naming
//!   the problem otherwise (expired, not yet valid, thumbprint not allowed, untrusted chain),
//!   as a JSON body `{"error","error_description"}` and no `WWW-Authenticate` header (there is
//!   no token scheme to challenge with).
//!
//! ```
//! use axum::{Json, Router, routing::get};
//! use certbound_core::Thumbprint;
//! use certbound_resource::{ClientCertificate, RequireClientCertificate};
//!
//! async fn me(cert: ClientCertificate) -> Json<serde_json::Value> {
//!     Json(cert.to_json()) // {"x5t#S256","subject","issuer","not_before","not_after"}
//! }
//!
//! // The partner's certificate thumbprint, as `certbound cert new` prints it.
//! let partner = Thumbprint::from_base64url("47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU")
//!     .ok_or("not a base64url SHA-256")?;
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     .layer(RequireClientCertificate::new().allow_thumbprint(partner));
//! # drop(app);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With trust anchors instead (every certificate issued by the partner CA is admitted):
//!
//! ```
//! use certbound_core::ca::DevCa;
//! use certbound_core::tls::TrustAnchors;
//! use certbound_resource::RequireClientCertificate;
//! let partner_ca = DevCa::generate("partner CA")?;
//! let mut anchors = TrustAnchors::default();
//! anchors.add(partner_ca.cert());
//! let layer = RequireClientCertificate::new().trust_anchors(&anchors)?;
//! # drop(layer);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;
#[cfg(feature = "axum")]
use std::convert::Infallible;
use std::fmt;
#[cfg(feature = "axum")]
use std::future::Future;
#[cfg(feature = "axum")]
use std::pin::Pin;
use std::sync::Arc;
#[cfg(feature = "axum")]
use std::task::{Context, Poll};

#[cfg(feature = "axum")]
use axum::body::Body;
#[cfg(feature = "axum")]
use axum::extract::{FromRequestParts, OptionalFromRequestParts};
#[cfg(feature = "axum")]
use axum::response::{IntoResponse, Response};
use certbound_core::fmt_unix;
use certbound_core::{Certificate, Thumbprint};
use http::StatusCode;
#[cfg(feature = "axum")]
use http::request::Parts;
#[cfg(feature = "axum")]
use http::{HeaderValue, Request, header};
use rustls::CertificateError;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use serde_json::{Value, json};

use crate::transport::{PeerCertificate, TlsInfo};

/// The TLS client certificate of the request's connection, parsed.
///
/// Cheap to clone. As an axum extractor it refuses with 401
/// ([`CertificateRejection::Missing`]) when the connection presented no certificate;
/// `Option<ClientCertificate>` gives `None` instead.
#[derive(Clone)]
pub struct ClientCertificate {
    inner: Arc<Inner>,
}

struct Inner {
    leaf: Certificate,
    chain: Arc<[CertificateDer<'static>]>,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint().to_base64url())
            .field("subject", &self.subject())
            .field("issuer", &self.issuer())
            .field("not_after", &self.not_after())
            .field("chain_len", &self.chain().len())
            .finish()
    }
}

impl ClientCertificate {
    /// Parses the certificate a connection presented.
    pub fn from_peer(peer: &PeerCertificate) -> Result<Self, CertificateRejection> {
        Self::from_chain(peer.chain.clone())
    }

    /// Parses a chain (leaf first), e.g. one taken from a rustls connection.
    pub fn from_chain(chain: Arc<[CertificateDer<'static>]>) -> Result<Self, CertificateRejection> {
        let Some(first) = chain.first() else {
            return Err(CertificateRejection::Missing);
        };
        let leaf = Certificate::from_der(first.to_vec(), "the client certificate")
            .map_err(|e| CertificateRejection::Malformed(ParseFailure(Arc::new(e))))?;
        Ok(Self {
            inner: Arc::new(Inner { leaf, chain }),
        })
    }

    /// The certificate of the request's connection: [`CertificateRejection::Missing`] when
    /// none was presented, [`CertificateRejection::Misconfigured`] when the request did not
    /// come through [`TlsServer`](crate::TlsServer) (no [`TlsInfo`]).
    pub fn from_request_extensions(
        extensions: &http::Extensions,
    ) -> Result<Self, CertificateRejection> {
        if let Some(c) = extensions.get::<ClientCertificate>() {
            return Ok(c.clone());
        }
        let Some(info) = extensions.get::<TlsInfo>() else {
            return Err(CertificateRejection::Misconfigured(
                "no TLS connection information on the request: serve the router with \
                 certbound_resource::TlsServer",
            ));
        };
        match &info.peer {
            Some(peer) => Self::from_peer(peer),
            None => Err(CertificateRejection::Missing),
        }
    }

    /// `x5t#S256` of the leaf (SHA-256 of its DER bytes).
    pub fn thumbprint(&self) -> Thumbprint {
        self.inner.leaf.thumbprint()
    }
    /// The leaf's subject distinguished name (e.g. `CN=app`).
    pub fn subject(&self) -> &str {
        self.inner.leaf.subject()
    }
    /// The leaf's issuer distinguished name.
    pub fn issuer(&self) -> &str {
        self.inner.leaf.issuer()
    }
    /// Start of the leaf's validity, Unix seconds.
    pub fn not_before(&self) -> i64 {
        self.inner.leaf.not_before()
    }
    /// End of the leaf's validity, Unix seconds.
    pub fn not_after(&self) -> i64 {
        self.inner.leaf.not_after()
    }
    /// The parsed leaf (SANs, public key, …).
    pub fn leaf(&self) -> &Certificate {
        &self.inner.leaf
    }
    /// The chain as the client sent it, leaf first.
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.inner.chain
    }

    /// `{"x5t#S256","subject","issuer","not_before","not_after"}` (times in Unix seconds) —
    /// the body of the sample API's `GET /certificate`.
    pub fn to_json(&self) -> Value {
        json!({
            "x5t#S256": self.thumbprint().to_base64url(),
            "subject": self.subject(),
            "issuer": self.issuer(),
            "not_before": self.not_before(),
            "not_after": self.not_after(),
        })
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> FromRequestParts<S> for ClientCertificate {
    type Rejection = CertificateRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Self, CertificateRejection> {
        let cert = Self::from_request_extensions(&parts.extensions)?;
        parts.extensions.insert(cert.clone());
        Ok(cert)
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S: Send + Sync> OptionalFromRequestParts<S> for ClientCertificate {
    type Rejection = CertificateRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, CertificateRejection> {
        match Self::from_request_extensions(&parts.extensions) {
            Ok(cert) => {
                parts.extensions.insert(cert.clone());
                Ok(Some(cert))
            }
            Err(CertificateRejection::Missing) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The parse error under [`CertificateRejection::Malformed`]: derefs to the
/// [`CertError`](certbound_core::CertError), which [`std::error::Error::source`] returns.
///
/// Shared so that a rejection stays `Clone`; two are equal when their messages are (a
/// rejection is compared by what it tells the caller).
#[derive(Clone)]
pub struct ParseFailure(Arc<certbound_core::CertError>);

impl std::ops::Deref for ParseFailure {
    type Target = certbound_core::CertError;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl fmt::Display for ParseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl fmt::Debug for ParseFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl PartialEq for ParseFailure {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for ParseFailure {}

/// Why a client certificate was refused. The `Display` text is the `error_description`;
/// it names the problem and carries no secret (certificates are public).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateRejection {
    /// No certificate was presented on the connection: 401.
    #[error(
        "no client certificate was presented; this API authenticates callers by their TLS client certificate"
    )]
    Missing,
    /// The presented certificate could not be parsed: 403.
    #[error("the client certificate is not a valid X.509 certificate: {0}")]
    Malformed(#[source] ParseFailure),
    /// The leaf's validity period ended: 403.
    #[error("the client certificate expired at {}", fmt_unix(*not_after))]
    Expired {
        /// End of validity, Unix seconds.
        not_after: i64,
    },
    /// The leaf's validity period has not started: 403.
    #[error("the client certificate is not valid before {}", fmt_unix(*not_before))]
    NotYetValid {
        /// Start of validity, Unix seconds.
        not_before: i64,
    },
    /// The thumbprint is not in the allow-list: 403.
    #[error("client certificate x5t#S256 {thumbprint} is not in this API's allow-list")]
    NotAllowed {
        /// `x5t#S256` of the presented leaf.
        thumbprint: Thumbprint,
    },
    /// The chain does not lead to a configured trust anchor (or is otherwise unusable for
    /// client authentication): 403.
    #[error("the client certificate does not chain to a trusted anchor: {reason}")]
    Untrusted {
        /// What the chain verification said.
        reason: String,
    },
    /// The server is set up wrongly (e.g. not served by `TlsServer`): 500.
    #[error("resource server misconfigured: {0}")]
    Misconfigured(&'static str),
}

impl CertificateRejection {
    /// The HTTP status: 401 when no certificate was presented, 403 for a refused one, 500
    /// for a misconfigured server.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Missing => StatusCode::UNAUTHORIZED,
            Self::Misconfigured(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::FORBIDDEN,
        }
    }

    /// The machine-readable `error` code of the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "client_certificate_required",
            Self::Malformed(_) => "invalid_client_certificate",
            Self::Expired { .. } => "client_certificate_expired",
            Self::NotYetValid { .. } => "client_certificate_not_yet_valid",
            Self::NotAllowed { .. } => "client_certificate_not_allowed",
            Self::Untrusted { .. } => "client_certificate_untrusted",
            Self::Misconfigured(_) => "server_error",
        }
    }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl IntoResponse for CertificateRejection {
    fn into_response(self) -> Response {
        let body = json!({"error": self.code(), "error_description": self.to_string()});
        let mut resp = (self.status(), axum::Json(body)).into_response();
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

/// A trust-anchor configuration that cannot verify anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificatePolicyError {
    /// None of the given anchors is a usable CA certificate (and system roots were not asked
    /// for or not found).
    #[error(
        "no usable trust anchor for client certificates: give at least one CA certificate (PEM)"
    )]
    NoTrustAnchors,
    /// rustls refused the verifier configuration.
    #[error("cannot build the client-certificate verifier: {0}")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
}

/// Which client certificates [`RequireClientCertificate`] admits.
#[derive(Clone, Default)]
struct Policy {
    /// `Some` once an allow-list was configured (even an empty one, which admits nobody).
    allowed: Option<HashSet<[u8; 32]>>,
    /// Chain verification against trust anchors.
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

/// A `tower::Layer` admitting only requests whose connection presented an acceptable client
/// certificate, and inserting it as a [`ClientCertificate`] extension for the handler.
///
/// Checks, in order: a certificate was presented (else 401); the leaf is within its validity
/// period; its thumbprint is in the allow-list, when one is configured; its chain leads to a
/// trust anchor, when anchors are configured (webpki path building with the intermediates
/// the client sent; the leaf must allow TLS client authentication, or carry no extended key
/// usage). Every configured check must pass. With none configured
/// ([`RequireClientCertificate::new`] alone) any currently valid certificate is admitted and
/// the handler decides by [`ClientCertificate`].
#[derive(Clone, Default)]
pub struct RequireClientCertificate {
    policy: Arc<Policy>,
}

impl fmt::Debug for RequireClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireClientCertificate")
            .field(
                "allowed_thumbprints",
                &self.policy.allowed.as_ref().map(HashSet::len),
            )
            .field("trust_anchors", &self.policy.verifier.is_some())
            .finish()
    }
}

impl RequireClientCertificate {
    /// Admits any currently valid client certificate (add checks with the other methods).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `thumbprint` (`x5t#S256`) to the allow-list; once one is added, only listed
    /// certificates are admitted.
    pub fn allow_thumbprint(self, thumbprint: Thumbprint) -> Self {
        self.allow_thumbprints([thumbprint])
    }

    /// Adds thumbprints to the allow-list (an empty iterator still turns the allow-list on,
    /// admitting nobody until one is added).
    pub fn allow_thumbprints(mut self, thumbprints: impl IntoIterator<Item = Thumbprint>) -> Self {
        let policy = Arc::make_mut(&mut self.policy);
        policy
            .allowed
            .get_or_insert_with(HashSet::new)
            .extend(thumbprints.into_iter().map(|t| *t.as_bytes()));
        self
    }

    /// Requires the certificate to chain to one of `anchors` (replacing earlier anchors).
    pub fn trust_anchors(
        mut self,
        anchors: &certbound_core::tls::TrustAnchors,
    ) -> Result<Self, CertificatePolicyError> {
        let roots = anchors.root_store();
        if roots.is_empty() {
            return Err(CertificatePolicyError::NoTrustAnchors);
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            certbound_core::tls::provider(),
        )
        .build()
        .map_err(CertificatePolicyError::Verifier)?;
        Arc::make_mut(&mut self.policy).verifier = Some(verifier);
        Ok(self)
    }

    /// Checks `cert` against the policy at the current time.
    pub fn check(&self, cert: &ClientCertificate) -> Result<(), CertificateRejection> {
        self.check_at(cert, certbound_core::now_unix())
    }

    /// Checks `cert` against the policy at `now` (Unix seconds).
    pub fn check_at(&self, cert: &ClientCertificate, now: i64) -> Result<(), CertificateRejection> {
        if now > cert.not_after() {
            return Err(CertificateRejection::Expired {
                not_after: cert.not_after(),
            });
        }
        if now < cert.not_before() {
            return Err(CertificateRejection::NotYetValid {
                not_before: cert.not_before(),
            });
        }
        if let Some(allowed) = &self.policy.allowed {
            let t = cert.thumbprint();
            if !allowed.contains(t.as_bytes()) {
                return Err(CertificateRejection::NotAllowed { thumbprint: t });
            }
        }
        if let Some(verifier) = &self.policy.verifier {
            let chain = cert.chain();
            let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
                u64::try_from(now).unwrap_or(0),
            ));
            verifier
                .verify_client_cert(&chain[0], &chain[1..], time)
                .map_err(untrusted)?;
        }
        Ok(())
    }

    /// Takes the request's certificate and checks it.
    #[cfg(feature = "axum")]
    fn admit(
        &self,
        extensions: &http::Extensions,
    ) -> Result<ClientCertificate, CertificateRejection> {
        let cert = ClientCertificate::from_request_extensions(extensions)?;
        self.check(&cert)?;
        Ok(cert)
    }
}

fn untrusted(e: rustls::Error) -> CertificateRejection {
    let reason = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "issued by a certificate authority this API does not trust".to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "a certificate in the chain has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "a certificate in the chain is not yet valid".to_owned()
            }
            CertificateError::BadSignature => "a signature in the chain is invalid".to_owned(),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "the certificate is not valid for TLS client authentication (extended key usage)"
                    .to_owned()
            }
            CertificateError::Revoked => "the certificate is revoked".to_owned(),
            other => other.to_string(),
        },
        other => other.to_string(),
    };
    CertificateRejection::Untrusted { reason }
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S> tower_layer::Layer<S> for RequireClientCertificate {
    type Service = RequireClientCertificateService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RequireClientCertificateService {
            inner,
            policy: self.clone(),
        }
    }
}

/// The service produced by [`RequireClientCertificate`].
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
#[derive(Clone, Debug)]
pub struct RequireClientCertificateService<S> {
    inner: S,
    policy: RequireClientCertificate,
}

#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
impl<S, B, ResBody> tower_service::Service<Request<B>> for RequireClientCertificateService<S>
where
    S: tower_service::Service<Request<B>, Response = http::Response<ResBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    ResBody: http_body::Body<Data = axum::body::Bytes> + Send + 'static,
    ResBody::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        match self.policy.admit(req.extensions()) {
            Ok(cert) => {
                // Take the service that was driven to readiness; leave a fresh clone behind.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                req.extensions_mut().insert(cert);
                Box::pin(async move { Ok(inner.call(req).await?.map(Body::new)) })
            }
            Err(rejection) => {
                tracing::debug!(error = %rejection, "client certificate refused");
                Box::pin(std::future::ready(Ok(rejection.into_response())))
            }
        }
    }
}
