//! Application-layer proof of possession at the resource server: `DPoP` (RFC 9449) and
//! `PoP` (Microsoft's signed HTTP request, SHR).
//!
//! [`Validator::validate_http_request`] takes the request's method and URI besides its
//! headers, because both proofs cover them.
//!
//! - **DPoP**: `Authorization: DPoP <token>` plus exactly one `DPoP: <proof>` header. The
//!   proof is verified with its own `jwk` ([`certbound_core::pop::verify_dpop_proof`]: `typ`,
//!   `alg`, signature, `htm`, `htu`, `iat` window, `ath` of the presented token), the server
//!   nonce when required, then the token by every docs/resource-server.md rule, its `cnf.jkt` against the
//!   proof key's RFC 7638 thumbprint, and finally the `jti` against a bounded replay cache
//!   whose entries live as long as the proof window.
//! - **PoP**: `Authorization: PoP <shr>`. The SHR's signature is verified with its own
//!   `cnf.jwk` and its `kid` must be that key's thumbprint; `m` (case-sensitively), `u`, `p`
//!   must name the request and `ts` lie in the window; the inner token (`at`) is validated as
//!   usual and its `cnf.kid` must equal the key's thumbprint; every SHR is replay-protected,
//!   by its `nonce`, or by the SHA-256 of its whole text when it has none.
//!
//! **Origin** (docs/resource-server.md (proof origin), RFC 9449 §4.3 step 9 and §11.1): the URL a proof must name is
//! built from the server's **own** origins — the configured external base URLs
//! ([`external_base_url`](crate::ValidatorBuilder::external_base_url), repeatable, each
//! possibly with a path prefix), else `https://<the address the server listens on>` (from
//! [`TlsInfo::listen_addr`]) when that is a specific address — joined with the request's
//! path. What the request claims (absolute-form target, `Host`, `:authority`) only selects
//! among those origins: a proof-scheme request whose `Host`/`:authority` names none of them
//! is refused (401 `invalid_dpop_proof` / `invalid_token`), and a proof naming a configured
//! origin other than the one its `Host` names is refused too (a request naming no host at
//! all is checked against the only origin, refused when there are several). A server on a wildcard
//! address without an external URL has no origin: [`Validator::proof_origins`] says so
//! before serving ([`crate::sample::serve`] and `certbound api serve` refuse to start).
//!
//! A DPoP-bound token sent as `Bearer` (or `mtls_pop`, or inside an SHR) is refused, and so
//! is a token that is not bound to a proof key when sent with `DPoP` or `PoP`.
//!
//! ```
//! use certbound_core::pop::ProofKey;
//! use certbound_core::{jose, Jwks, KeyKind, PrivateKey};
//! use certbound_resource::Validator;
//! use http::{HeaderMap, HeaderValue, Method, Uri};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let issuer_key = PrivateKey::generate(KeyKind::EcP256).unwrap();
//! let validator = Validator::builder()
//!     .issuer("https://issuer.example")
//!     .audience("api://orders")
//!     .jwks(Jwks { keys: vec![issuer_key.public_jwk().with_kid("k1")] })
//!     .external_base_url("https://api.example")
//!     .build()
//!     .await
//!     .unwrap();
//! // The client's proof key; the authority put its thumbprint into cnf.jkt.
//! let proof_key = ProofKey::generate().unwrap();
//! let now = certbound_core::now_unix();
//! let claims = serde_json::json!({
//!     "iss": "https://issuer.example", "aud": "api://orders", "sub": "app",
//!     "iat": now, "exp": now + 600, "cnf": {"jkt": proof_key.thumbprint()},
//! });
//! let header = jose::JwsHeader::new(issuer_key.default_jws_algorithm()).kid("k1").typ("at+jwt");
//! let token = jose::sign_compact(&header, &claims, &issuer_key).unwrap();
//! let proof = proof_key
//!     .dpop_proof("GET", "https://api.example/orders", Some(&token), None)
//!     .unwrap();
//! let mut headers = HeaderMap::new();
//! headers.insert("authorization", HeaderValue::from_str(&format!("DPoP {token}")).unwrap());
//! headers.insert("dpop", HeaderValue::from_str(&proof).unwrap());
//! headers.insert("host", HeaderValue::from_static("api.example"));
//! let uri: Uri = "/orders".parse().unwrap();
//! let ok = validator.validate_http_request(&Method::GET, &uri, &headers, None).await.unwrap();
//! assert_eq!(ok.proof_key_thumbprint(), Some(proof_key.thumbprint().as_str()));
//! // The same proof again is a replay.
//! assert!(validator.validate_http_request(&Method::GET, &uri, &headers, None).await.is_err());
//! # });
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::{digest, hmac};
use certbound_core::pop::{
    self, DpopExpectations, DpopProof, HttpTarget, PopError, SignedHttpRequest,
};
use http::{HeaderMap, Method, Uri, header};
use subtle::ConstantTimeEq as _;

use crate::binding::Confirmation;
use crate::extract::{self, Scheme};
use crate::reject::{DpopError, Rejection, TokenError};
use crate::transport::TlsInfo;
use crate::validate::{BuildError, ValidatedToken, Validator};

/// Default proof window (`iat`/`ts` age, replay-cache entry and nonce lifetime).
pub const DEFAULT_PROOF_WINDOW: Duration = Duration::from_secs(60);
/// Default tolerated clock skew of proofs into the future.
pub const DEFAULT_PROOF_FUTURE_SKEW: Duration = Duration::from_secs(5);
/// Default replay-cache capacity.
pub const DEFAULT_REPLAY_CAPACITY: u64 = 1_000_000;

#[derive(Clone, Debug)]
pub(crate) struct ProofConfig {
    /// The server's own origins (`--external-url`), in order; empty: the listen address.
    pub(crate) external_base_urls: Vec<String>,
    pub(crate) window: Duration,
    pub(crate) future_skew: Duration,
    pub(crate) require_nonce: bool,
    pub(crate) replay_capacity: u64,
}

impl Default for ProofConfig {
    fn default() -> Self {
        Self {
            external_base_urls: Vec::new(),
            window: DEFAULT_PROOF_WINDOW,
            future_skew: DEFAULT_PROOF_FUTURE_SKEW,
            require_nonce: false,
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
        }
    }
}

pub use crate::replay::{ReplayCache, ReplayCheck};

/// Stateless DPoP nonces (RFC 9449 §8–9): `base64url(period) . base64url(HMAC(period))[..16]`
/// under a key generated at start, valid in the period it was issued and the next one. No
/// storage, nothing to share between requests; instances do not accept each other's nonces
/// (give several replicas the same instance, or pin clients, if that matters).
///
/// ```
/// use certbound_resource::proof::DpopNonces;
/// let nonces = DpopNonces::new(std::time::Duration::from_secs(60)).unwrap();
/// let n = nonces.current();
/// assert!(nonces.is_valid(&n));
/// assert!(!nonces.is_valid("made-up"));
/// ```
#[derive(Clone)]
pub struct DpopNonces {
    key: Arc<hmac::Key>,
    period: i64,
}

impl std::fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopNonces")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl DpopNonces {
    /// Nonces rotating every `period` (at least 1 s); `None` if no randomness is available.
    pub fn new(period: Duration) -> Option<Self> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).ok()?;
        Some(Self {
            key: Arc::new(key),
            period: i64::try_from(period.as_secs().max(1)).unwrap_or(i64::MAX),
        })
    }

    fn for_period(&self, period: i64) -> String {
        let b = period.to_be_bytes();
        let tag = hmac::sign(&self.key, &b);
        format!(
            "{}.{}",
            certbound_core::b64::encode(b),
            certbound_core::b64::encode(&tag.as_ref()[..16])
        )
    }

    /// The nonce to hand out now (`DPoP-Nonce`).
    pub fn current(&self) -> String {
        self.for_period(certbound_core::now_unix() / self.period)
    }

    /// Whether `nonce` was issued by this instance in the current or the previous period.
    pub fn is_valid(&self, nonce: &str) -> bool {
        let current = certbound_core::now_unix() / self.period;
        let Some((b, tag)) = nonce.split_once('.') else {
            return false;
        };
        let (Ok(b), Ok(tag)) = (
            certbound_core::b64::decode(b),
            certbound_core::b64::decode(tag),
        ) else {
            return false;
        };
        let Ok(bytes) = <[u8; 8]>::try_from(b.as_slice()) else {
            return false;
        };
        let period = i64::from_be_bytes(bytes);
        if period != current && period != current.saturating_sub(1) {
            return false;
        }
        let full = hmac::sign(&self.key, &bytes);
        tag.len() == 16 && bool::from(full.as_ref()[..16].ct_eq(&tag))
    }
}

/// One origin of this server: what a proof's URL must start with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    /// `http` or `https`.
    scheme: String,
    /// Lowercase host, with `:port` unless it is the scheme's default.
    authority: String,
    /// Normalised path prefix without a trailing slash (`""` for none).
    prefix: String,
}

impl Origin {
    /// An external base URL: absolute http(s), no query, fragment or user info.
    fn parse(url: &str) -> Result<Self, BuildError> {
        if url.contains(['?', '#']) {
            return Err(BuildError::BadBaseUrl(url.to_owned()));
        }
        let t = HttpTarget::parse(url).map_err(|_| BuildError::BadBaseUrl(url.to_owned()))?;
        Ok(Self {
            scheme: t.scheme,
            authority: t.authority,
            prefix: t.path.trim_end_matches('/').to_owned(),
        })
    }

    /// `https://<addr>` for a specific listen address; `None` for a wildcard one.
    fn of_listener(addr: SocketAddr) -> Option<Self> {
        if addr.ip().is_unspecified() {
            return None;
        }
        HttpTarget::parse(&format!("https://{addr}/"))
            .ok()
            .map(|t| Self {
                scheme: t.scheme,
                authority: t.authority,
                prefix: String::new(),
            })
    }

    /// `scheme://authority[/prefix]`.
    fn base(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.prefix)
    }

    /// The URL a proof for `path` on this origin names.
    fn url(&self, path: &str) -> String {
        format!("{}://{}{}{path}", self.scheme, self.authority, self.prefix)
    }

    /// Whether `host` (a `Host` or `:authority` value) names this origin. Anything but a
    /// bare `host[:port]` (a path, query, user info, spaces) names none.
    fn named_by(&self, host: &str) -> bool {
        if host.is_empty()
            || host
                .bytes()
                .any(|b| matches!(b, b'/' | b'?' | b'#' | b'@' | b'\\') || !b.is_ascii_graphic())
        {
            return false;
        }
        HttpTarget::parse(&format!("{}://{host}/", self.scheme))
            .is_ok_and(|t| t.authority == self.authority)
    }
}

pub(crate) struct ProofState {
    /// The configured origins (empty: the listen address, per request).
    origins: Vec<Origin>,
    window: i64,
    future_skew: i64,
    replay: ReplayCache,
    nonces: Option<DpopNonces>,
}

impl ProofState {
    pub(crate) fn new(cfg: ProofConfig) -> Result<Self, BuildError> {
        let mut origins: Vec<Origin> = Vec::new();
        for url in &cfg.external_base_urls {
            let o = Origin::parse(url)?;
            if !origins.contains(&o) {
                origins.push(o);
            }
        }
        let window = cfg.window.max(Duration::from_secs(1));
        let nonces =
            if cfg.require_nonce {
                Some(DpopNonces::new(window).ok_or_else(|| {
                    BuildError::Http("no randomness for the DPoP nonce key".into())
                })?)
            } else {
                None
            };
        Ok(Self {
            origins,
            window: i64::try_from(window.as_secs()).unwrap_or(i64::MAX),
            future_skew: i64::try_from(cfg.future_skew.as_secs()).unwrap_or(i64::MAX),
            // A proof is refused once older than the window (+ future skew), so its entry
            // need not outlive that.
            replay: ReplayCache::new(
                window + cfg.future_skew + Duration::from_secs(1),
                cfg.replay_capacity,
            ),
            nonces,
        })
    }
}

/// The request facts a proof is checked against.
struct RequestFacts<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    tls: Option<&'a TlsInfo>,
}

enum Prepared<'a> {
    /// `Bearer`/`mtls_pop`: validate as before.
    Plain(Scheme, &'a str),
    /// `DPoP`: proof verified (all but replay and `jkt`).
    Dpop(&'a str, Box<DpopProof>),
    /// `PoP`: SHR verified and matched with the request; its text (whose signed part is
    /// the replay key when it has no `nonce`).
    Shr(Box<SignedHttpRequest>, &'a str),
}

impl Validator {
    /// Validates a request whose method and URI are known — what [`crate::CertboundLayer`]
    /// and the [`ValidatedToken`] extractor call. `Bearer` and `mtls_pop` are validated as by
    /// [`validate_request`](Self::validate_request); `DPoP` and `PoP` additionally verify
    /// their proofs (see the [module docs](crate::proof)).
    pub async fn validate_http_request(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        tls: Option<&TlsInfo>,
    ) -> Result<ValidatedToken, Rejection> {
        let facts = RequestFacts {
            method,
            uri,
            headers,
            tls,
        };
        let peer = tls.and_then(|t| t.peer.as_ref()).map(|p| &p.thumbprint);
        let prepared = self.prepare(&facts)?;
        let (scheme, token) = match &prepared {
            Prepared::Plain(s, t) => (*s, *t),
            Prepared::Dpop(t, _) => (Scheme::DPoP, *t),
            Prepared::Shr(shr, _) => (Scheme::Pop, shr.access_token.as_str()),
        };
        let validated = self.validate_in_span(scheme, token, peer).await?;
        self.finish_proof(prepared, validated)
    }

    /// [`validate_http_request`](Self::validate_http_request) with the keys already
    /// loaded, never fetching (synchronous; for benchmarks and non-async callers).
    pub fn validate_http_request_cached(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        tls: Option<&TlsInfo>,
    ) -> Result<ValidatedToken, Rejection> {
        let facts = RequestFacts {
            method,
            uri,
            headers,
            tls,
        };
        let peer = tls.and_then(|t| t.peer.as_ref()).map(|p| &p.thumbprint);
        let prepared = self.prepare(&facts)?;
        let validated = match &prepared {
            Prepared::Plain(s, t) => self.validate_cached(*s, t, peer)?,
            Prepared::Dpop(t, _) => self.validate_cached_any(Scheme::DPoP, t, peer)?,
            Prepared::Shr(shr, _) => {
                self.validate_cached_any(Scheme::Pop, &shr.access_token, peer)?
            }
        };
        self.finish_proof(prepared, validated)
    }

    /// The current DPoP nonce when this validator requires one (for a `DPoP-Nonce` header
    /// on successful responses), else `None`.
    pub fn current_dpop_nonce(&self) -> Option<String> {
        self.inner.proof.nonces.as_ref().map(DpopNonces::current)
    }

    /// The origins DPoP and PoP proofs are checked against when the server listens on
    /// `listen` (`scheme://authority[/prefix]`): the configured external base URLs, else
    /// `https://<listen>`. A server on a wildcard address (`0.0.0.0`, `::`) without an
    /// external URL has none: [`BuildError::WildcardListen`]. Call it once the listener is
    /// bound and before serving ([`crate::sample::serve`] does); without it such a server
    /// refuses every `DPoP` and `PoP` request.
    pub fn proof_origins(&self, listen: SocketAddr) -> Result<Vec<String>, BuildError> {
        let p = &self.inner.proof;
        if !p.origins.is_empty() {
            return Ok(p.origins.iter().map(Origin::base).collect());
        }
        Origin::of_listener(listen)
            .map(|o| vec![o.base()])
            .ok_or(BuildError::WildcardListen(listen))
    }

    /// The URLs a proof for this request may name, each an origin of this server that the
    /// request's `Host`/`:authority` names (the only origin when it has neither), joined
    /// with the request's path.
    fn proof_urls(&self, f: &RequestFacts<'_>) -> Result<Vec<String>, PopError> {
        let fallback;
        let origins: &[Origin] = if self.inner.proof.origins.is_empty() {
            let listen = f.tls.and_then(|t| t.listen_addr);
            fallback = listen.and_then(Origin::of_listener).ok_or_else(|| {
                tracing::warn!(
                    listen = ?listen,
                    "DPoP/PoP request refused: no external URL configured and no specific \
                     listen address to take the origin from"
                );
                PopError::NoOrigin
            })?;
            std::slice::from_ref(&fallback)
        } else {
            &self.inner.proof.origins
        };
        // What the request claims: the absolute-form target or HTTP/2 `:authority`, and the
        // `Host` header. Each present one must name the origin.
        let mut names: Vec<&str> = Vec::with_capacity(2);
        if let Some(a) = f.uri.authority() {
            names.push(a.as_str());
        }
        let mut hosts = f.headers.get_all(header::HOST).iter();
        match (hosts.next(), hosts.next()) {
            (None, _) => {}
            (Some(h), None) => names.push(h.to_str().map_err(|_| PopError::HostNotOrigin)?),
            (Some(_), Some(_)) => return Err(PopError::HostMissing),
        }
        // No Host at all (HTTP/1.0, or an in-process caller): unambiguous only when the
        // server has a single origin — the proof must name that one.
        if names.is_empty() && origins.len() != 1 {
            return Err(PopError::HostMissing);
        }
        let path = f.uri.path();
        let urls: Vec<String> = origins
            .iter()
            .filter(|o| names.iter().all(|n| o.named_by(n)))
            .map(|o| o.url(path))
            .collect();
        if urls.is_empty() {
            return Err(PopError::HostNotOrigin);
        }
        Ok(urls)
    }

    fn prepare<'a>(&self, f: &RequestFacts<'a>) -> Result<Prepared<'a>, Rejection> {
        let (scheme, token) = extract::from_headers(f.headers)?;
        let p = &self.inner.proof;
        let now = certbound_core::now_unix();
        match scheme {
            Scheme::Bearer | Scheme::MtlsPop => Ok(Prepared::Plain(scheme, token)),
            Scheme::DPoP => {
                let proof = extract::dpop_proof(f.headers).map_err(Rejection::InvalidDpopProof)?;
                let urls = self.proof_urls(f).map_err(|e| {
                    tracing::info!(rule = "dpop_origin", reason = %e, "DPoP proof refused");
                    Rejection::InvalidDpopProof(DpopError::Proof(e))
                })?;
                let url = dpop_url(proof, &urls);
                let want = DpopExpectations::new(f.method.as_str(), url, now)
                    .access_token(token)
                    .window(p.window, p.future_skew);
                let checked = pop::verify_dpop_proof(proof, &want).map_err(|e| {
                    tracing::info!(rule = "dpop_proof", reason = %e, "DPoP proof refused");
                    Rejection::InvalidDpopProof(DpopError::Proof(e))
                })?;
                if let Some(nonces) = &p.nonces
                    && !checked.nonce.as_deref().is_some_and(|n| nonces.is_valid(n))
                {
                    return Err(Rejection::UseDpopNonce(nonces.current()));
                }
                Ok(Prepared::Dpop(token, Box::new(checked)))
            }
            Scheme::Pop => {
                let refuse = |e| {
                    tracing::info!(rule = "signed_request", reason = %e, "signed request refused");
                    Rejection::InvalidToken {
                        scheme: Scheme::Pop,
                        error: TokenError::SignedRequest(e),
                    }
                };
                let urls = self.proof_urls(f).map_err(refuse)?;
                let shr = pop::verify_signed_http_request(token).map_err(refuse)?;
                // Accepted when it names one of the origins the Host names; else the first
                // one's reason.
                let mut checks = urls
                    .iter()
                    .map(|u| shr.check_request(f.method.as_str(), u, now, p.window, p.future_skew));
                let first = checks.next().unwrap_or(Err(PopError::HostNotOrigin));
                if first.is_err() {
                    checks
                        .find(Result::is_ok)
                        .unwrap_or(first)
                        .map_err(refuse)?;
                }
                Ok(Prepared::Shr(Box::new(shr), token))
            }
        }
    }

    fn finish_proof(
        &self,
        prepared: Prepared<'_>,
        mut validated: ValidatedToken,
    ) -> Result<ValidatedToken, Rejection> {
        let p = &self.inner.proof;
        let bound_key = validated
            .claims()
            .confirmation()
            .and_then(Confirmation::key_thumbprint)
            .map(str::to_owned);
        let same = |a: &str| {
            bound_key
                .as_deref()
                .is_some_and(|b| bool::from(a.as_bytes().ct_eq(b.as_bytes())))
        };
        match prepared {
            Prepared::Plain(..) => Ok(validated),
            Prepared::Dpop(_, proof) => {
                if !same(&proof.jkt) {
                    tracing::info!(rule = "dpop_jkt", "DPoP proof key does not match cnf.jkt");
                    return Err(Rejection::InvalidDpopProof(DpopError::KeyMismatch));
                }
                match p.replay.check("dpop", &proof.jkt, &proof.jti) {
                    ReplayCheck::Fresh => {}
                    ReplayCheck::Full => {
                        tracing::warn!(rule = "dpop_replay", "replay record full: proof refused");
                        return Err(Rejection::ProofRecordFull);
                    }
                    _ => {
                        tracing::info!(rule = "dpop_replay", "DPoP proof replayed");
                        return Err(Rejection::InvalidDpopProof(DpopError::Replayed));
                    }
                }
                validated.proof_key = Some(Arc::from(proof.jkt.as_str()));
                Ok(validated)
            }
            Prepared::Shr(shr, text) => {
                let refuse = |error| Rejection::InvalidToken {
                    scheme: Scheme::Pop,
                    error,
                };
                if !same(&shr.thumbprint) {
                    tracing::info!(rule = "pop_kid", "SHR key does not match cnf.kid");
                    return Err(refuse(TokenError::PopKeyMismatch));
                }
                // Every SHR is replay-protected: by its nonce, else by the SHA-256 of its
                // text — without a nonce it would otherwise be replayable for the whole
                // `ts` window. The text up to the signature (`header.payload`, exactly
                // what is signed): an ECDSA signature can be re-encoded by anyone as
                // another valid one, (r, n - s), so hashing it too would let a replayer
                // make "new" SHRs from an old one.
                let fresh = match &shr.nonce {
                    Some(n) => p.replay.check("shr", &shr.thumbprint, n),
                    None => {
                        let signed = text.rsplit_once('.').map_or(text, |(input, _)| input);
                        let h = digest::digest(&digest::SHA256, signed.as_bytes());
                        let id = certbound_core::b64::encode(h.as_ref());
                        p.replay.check("shr-text", &shr.thumbprint, &id)
                    }
                };
                match fresh {
                    ReplayCheck::Fresh => {}
                    ReplayCheck::Full => {
                        tracing::warn!(
                            rule = "pop_replay",
                            "replay record full: signed request refused"
                        );
                        return Err(Rejection::ProofRecordFull);
                    }
                    _ => {
                        tracing::info!(rule = "pop_replay", "signed request replayed");
                        return Err(refuse(TokenError::SignedRequestReplayed));
                    }
                }
                validated.proof_key = Some(Arc::from(shr.thumbprint.as_str()));
                Ok(validated)
            }
        }
    }
}

/// Of `urls` (non-empty), the one the proof's `htu` names, else the first: several origins
/// of one host (path prefixes) would otherwise need one signature check each. Only picks
/// the expectation; [`pop::verify_dpop_proof`] still checks everything, `htu` included.
fn dpop_url<'u>(proof: &str, urls: &'u [String]) -> &'u str {
    let first = urls.first().map_or("", String::as_str);
    if urls.len() < 2 || proof.len() > pop::MAX_PROOF_LEN {
        return first;
    }
    let claimed = certbound_core::jose::decode_unverified(proof)
        .ok()
        .and_then(|(_, p)| {
            p.get("htu")
                .and_then(|v| v.as_str())
                .map(pop::normalize_htu)
        })
        .and_then(Result::ok);
    claimed
        .and_then(|htu| {
            urls.iter()
                .find(|u| pop::normalize_htu(u).is_ok_and(|n| n == htu))
        })
        .map_or(first, String::as_str)
}

/// Why a token endpoint refused a DPoP proof (RFC 9449 §5, §8): answer HTTP 400 with
/// `{"error": `[`error_code`](Self::error_code)`}` and, for [`UseNonce`](Self::UseNonce),
/// the `DPoP-Nonce` header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenEndpointDpopError {
    /// The proof was refused.
    #[error("invalid DPoP proof: {0}")]
    InvalidProof(DpopError),
    /// A nonce is required: send this one in `DPoP-Nonce`.
    #[error("DPoP nonce required")]
    UseNonce(String),
    /// The replay record is full of live proofs: refuse for now (HTTP 503,
    /// `temporarily_unavailable`) rather than forget one.
    #[error("too many recent DPoP proofs to check this one for replay; retry shortly")]
    Unavailable,
}

impl TokenEndpointDpopError {
    /// The OAuth `error` code: `invalid_dpop_proof`, `use_dpop_nonce` or
    /// `temporarily_unavailable`.
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::InvalidProof(_) => "invalid_dpop_proof",
            Self::UseNonce(_) => "use_dpop_nonce",
            Self::Unavailable => "temporarily_unavailable",
        }
    }
}

/// The DPoP checks of a token endpoint (RFC 9449 §4.3, §5, §8): the proof on a token
/// request (no `ath`), its `htm` `POST` and `htu` the endpoint's external URL, the `iat`
/// window, the `jti` replay cache and, optionally, a server nonce. The authority then issues
/// `token_type: "DPoP"` with `cnf.jkt` = [`DpopProof::jkt`].
///
/// ```
/// use certbound_core::pop::ProofKey;
/// use certbound_resource::proof::TokenEndpointDpop;
/// let endpoint = TokenEndpointDpop::new("https://login.example/tenant/oauth2/v2.0/token").unwrap();
/// let key = ProofKey::generate().unwrap();
/// let proof = key.dpop_proof("POST", "https://login.example/tenant/oauth2/v2.0/token", None, None).unwrap();
/// let mut headers = http::HeaderMap::new();
/// headers.insert("dpop", proof.parse().unwrap());
/// let checked = endpoint.check(&http::Method::POST, &headers).unwrap().unwrap();
/// assert_eq!(checked.jkt, key.thumbprint()); // → cnf.jkt
/// assert!(endpoint.check(&http::Method::POST, &headers).is_err()); // replayed
/// assert!(endpoint.check(&http::Method::POST, &http::HeaderMap::new()).unwrap().is_none());
/// ```
#[derive(Debug, Clone)]
pub struct TokenEndpointDpop {
    url: String,
    window: Duration,
    future_skew: Duration,
    replay: ReplayCache,
    nonces: Option<DpopNonces>,
}

impl TokenEndpointDpop {
    /// Checks for the token endpoint at `url` (its external URL, as clients call it),
    /// with the default window (60 s), future skew (5 s) and no nonce.
    pub fn new(url: &str) -> Result<Self, pop::PopError> {
        let url = pop::normalize_htu(url)?;
        Ok(Self {
            url,
            window: DEFAULT_PROOF_WINDOW,
            future_skew: DEFAULT_PROOF_FUTURE_SKEW,
            replay: ReplayCache::new(
                DEFAULT_PROOF_WINDOW + DEFAULT_PROOF_FUTURE_SKEW + Duration::from_secs(1),
                DEFAULT_REPLAY_CAPACITY,
            ),
            nonces: None,
        })
    }

    /// Sets the proof window (and the replay-cache lifetime).
    pub fn window(mut self, window: Duration, future_skew: Duration) -> Self {
        self.window = window.max(Duration::from_secs(1));
        self.future_skew = future_skew;
        self.replay = ReplayCache::new(
            self.window + future_skew + Duration::from_secs(1),
            DEFAULT_REPLAY_CAPACITY,
        );
        self
    }

    /// Requires a server nonce (`use_dpop_nonce` until the client sends the current one).
    pub fn require_nonce(mut self, nonces: DpopNonces) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// The nonce to send in `DPoP-Nonce` on token responses, when nonces are required.
    pub fn current_nonce(&self) -> Option<String> {
        self.nonces.as_ref().map(DpopNonces::current)
    }

    /// Checks the request's `DPoP` header: `Ok(None)` without one (a plain token request),
    /// `Ok(Some(proof))` for a good proof (now recorded against replay), an error otherwise.
    pub fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<DpopProof>, TokenEndpointDpopError> {
        let proof = match extract::dpop_proof(headers) {
            Ok(p) => p,
            Err(DpopError::Missing) if headers.get("dpop").is_none() => return Ok(None),
            Err(e) => return Err(TokenEndpointDpopError::InvalidProof(e)),
        };
        let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        let want = DpopExpectations::new(method.as_str(), &self.url, certbound_core::now_unix())
            .window(secs(self.window), secs(self.future_skew));
        let checked = pop::verify_dpop_proof(proof, &want)
            .map_err(|e| TokenEndpointDpopError::InvalidProof(DpopError::Proof(e)))?;
        if let Some(nonces) = &self.nonces
            && !checked.nonce.as_deref().is_some_and(|n| nonces.is_valid(n))
        {
            return Err(TokenEndpointDpopError::UseNonce(nonces.current()));
        }
        match self.replay.check("dpop-token", &checked.jkt, &checked.jti) {
            ReplayCheck::Fresh => {}
            ReplayCheck::Full => return Err(TokenEndpointDpopError::Unavailable),
            _ => return Err(TokenEndpointDpopError::InvalidProof(DpopError::Replayed)),
        }
        Ok(Some(checked))
    }
}
