//! Application-layer proof of possession at the resource server: `DPoP` (RFC 9449) and
//! `PoP` (Microsoft's signed HTTP request, SHR).
//!
//! [`Validator::validate`] needs the request's method and URI besides its headers
//! ([`Presented::http`], [`Presented::request`]), because both proofs cover them.
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
//! [`TlsInfo::listen_addr`](crate::TlsInfo::listen_addr)) when that is a specific address — joined with the request's
//! path. What the request claims (absolute-form target, `Host`, `:authority`) only selects
//! among those origins: a proof-scheme request whose `Host`/`:authority` names none of them
//! is refused (401 `invalid_dpop_proof` / `invalid_token`), and a proof naming a configured
//! origin other than the one its `Host` names is refused too (a request naming no host at
//! all is checked against the only origin, refused when there are several). A server on a wildcard
//! address without an external URL has no origin: [`Validator::proof_origins`] says so
//! before serving (`certbound api serve` refuses to start).
//!
//! A DPoP-bound token sent as `Bearer` (or `mtls_pop`, or inside an SHR) is refused, and so
//! is a token that is not bound to a proof key when sent with `DPoP` or `PoP`.
//!
//! ```
//! use certbound_core::pop::ProofKey;
//! use certbound_core::{jose, Jwks, KeyKind, PrivateKey};
//! use certbound_resource::{Presented, Validator};
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
//! let presented = Presented::http(&Method::GET, &uri, &headers);
//! let ok = validator.validate(&presented).await.unwrap();
//! assert_eq!(ok.proof_key_thumbprint(), Some(proof_key.thumbprint().as_str()));
//! // The same proof again is a replay.
//! assert!(validator.validate(&presented).await.is_err());
//! # });
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use certbound_core::pop::{
    self, DpopExpectations, DpopProof, HttpTarget, PopError, SignedHttpRequest,
};
use http::{HeaderMap, Uri, header};
use subtle::ConstantTimeEq as _;

use super::presented::{Credential, Presented};
use super::{BuildError, ValidatedToken, Validator};
use crate::binding::Confirmation;
use crate::extract;
use crate::reject::{DpopError, Rejection, TokenError};
use certbound_core::ProtocolScheme;

pub use certbound_core::pop::{
    DEFAULT_PROOF_FUTURE_SKEW, DEFAULT_PROOF_WINDOW, DEFAULT_REPLAY_CAPACITY, DpopNonces,
};

#[derive(Debug)]
pub(crate) struct ProofConfig {
    /// The server's own origins (`--external-url`), in order; empty: the listen address.
    pub(crate) external_base_urls: Vec<String>,
    pub(crate) window: Duration,
    pub(crate) future_skew: Duration,
    pub(crate) require_nonce: bool,
    pub(crate) replay_capacity: u64,
}

pub use certbound_core::{ReplayCache, ReplayCheck};

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
        let nonces = if cfg.require_nonce {
            Some(DpopNonces::new(window).ok_or_else(|| {
                BuildError::Http("no randomness for the DPoP nonce key".into(), None)
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

pub(super) enum Prepared<'a> {
    /// `Bearer`/`mtls_pop`: validate as before.
    Plain(ProtocolScheme, &'a str),
    /// `DPoP`: proof verified (all but replay and `jkt`).
    Dpop(&'a str, Box<DpopProof>),
    /// `PoP`: SHR verified and matched with the request; its text (whose signed part is
    /// the replay key when it has no `nonce`).
    Shr(Box<SignedHttpRequest>, &'a str),
}

impl Prepared<'_> {
    /// The scheme and the access token to validate.
    pub(super) fn token(&self) -> (ProtocolScheme, &str) {
        match self {
            Prepared::Plain(s, t) => (*s, t),
            Prepared::Dpop(t, _) => (ProtocolScheme::DPoP, t),
            Prepared::Shr(shr, _) => (ProtocolScheme::Pop, shr.access_token.as_str()),
        }
    }
}

impl Validator {
    /// The current DPoP nonce when this validator requires one (for a `DPoP-Nonce` header
    /// on successful responses), else `None`.
    pub fn current_dpop_nonce(&self) -> Option<String> {
        self.inner.proof.nonces.as_ref().map(DpopNonces::current)
    }

    /// The origins DPoP and PoP proofs are checked against when the server listens on
    /// `listen` (`scheme://authority[/prefix]`): the configured external base URLs, else
    /// `https://<listen>`. A server on a wildcard address (`0.0.0.0`, `::`) without an
    /// external URL has none: [`BuildError::WildcardListen`]. Call it once the listener is
    /// bound and before serving (`certbound api serve` does); without it such a server
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
    fn proof_urls(
        &self,
        listen: Option<SocketAddr>,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<Vec<String>, PopError> {
        let fallback;
        let origins: &[Origin] = if self.inner.proof.origins.is_empty() {
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
        if let Some(a) = uri.authority() {
            names.push(a.as_str());
        }
        let mut hosts = headers.get_all(header::HOST).iter();
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
        let path = uri.path();
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

    /// The token and, for `DPoP`/`PoP`, the verified proof (all but replay and the key
    /// match, which need the validated token).
    pub(super) fn prepare<'a>(&self, req: &Presented<'a>) -> Result<Prepared<'a>, Rejection> {
        let (scheme, token, headers) = match req.credential {
            Credential::Headers(h) => {
                let (s, t) = extract::from_headers(h)?;
                (s, t, Some(h))
            }
            Credential::Token(s, t) => (s, t, None),
        };
        let p = &self.inner.proof;
        let now = certbound_core::now_unix();
        match (scheme, headers, req.request_line) {
            (ProtocolScheme::Bearer | ProtocolScheme::MtlsPop, _, _) => {
                Ok(Prepared::Plain(scheme, token))
            }
            (ProtocolScheme::DPoP, Some(h), Some((method, uri))) => {
                let proof = extract::dpop_proof(h).map_err(Rejection::InvalidDpopProof)?;
                let urls = self.proof_urls(req.listen_addr, uri, h).map_err(|e| {
                    tracing::info!(rule = "dpop_origin", reason = %e, "DPoP proof refused");
                    Rejection::InvalidDpopProof(DpopError::Proof(e))
                })?;
                let url = dpop_url(proof, &urls);
                let want = DpopExpectations::new(method.as_str(), url, now)
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
            (ProtocolScheme::Pop, Some(h), Some((method, uri))) => {
                let refuse = |e| {
                    tracing::info!(rule = "signed_request", reason = %e, "signed request refused");
                    Rejection::InvalidToken {
                        scheme: ProtocolScheme::Pop,
                        error: TokenError::SignedRequest(e),
                    }
                };
                let urls = self.proof_urls(req.listen_addr, uri, h).map_err(refuse)?;
                let shr = pop::verify_signed_http_request(token).map_err(refuse)?;
                // Accepted when it names one of the origins the Host names; else the first
                // one's reason.
                let mut checks = urls
                    .iter()
                    .map(|u| shr.check_request(method.as_str(), u, now, p.window, p.future_skew));
                let first = checks.next().unwrap_or(Err(PopError::HostNotOrigin));
                if first.is_err() {
                    checks
                        .find(Result::is_ok)
                        .unwrap_or(first)
                        .map_err(refuse)?;
                }
                Ok(Prepared::Shr(Box::new(shr), token))
            }
            // No request line (or a bare token): the proof cannot be checked. A `DPoP`
            // request still needs its single proof header.
            (ProtocolScheme::DPoP | ProtocolScheme::Pop, h, _) => {
                if let (ProtocolScheme::DPoP, Some(h)) = (scheme, h) {
                    extract::dpop_proof(h).map_err(Rejection::InvalidDpopProof)?;
                }
                Err(Rejection::InvalidToken {
                    scheme,
                    error: TokenError::ProofRequired,
                })
            }
            // `MTLS` carries no token.
            _ => Err(Rejection::MissingToken),
        }
    }

    pub(super) fn finish_proof(
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
                    scheme: ProtocolScheme::Pop,
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
