//! The DPoP checks of the token endpoint (RFC 9449 §4.3, §5, §8): a proof on a token request
//! is checked here, before client authentication, and its key thumbprint becomes the token's
//! `cnf.jkt`. The replay record and the nonces are core's, shared with the resource server.

use std::time::Duration;

use certbound_core::pop::{
    self, DEFAULT_PROOF_FUTURE_SKEW, DEFAULT_PROOF_WINDOW, DEFAULT_REPLAY_CAPACITY, DpopError,
    DpopExpectations, DpopNonces, DpopProof,
};
use certbound_core::{ReplayCache, ReplayCheck};
use http::{HeaderMap, Method};

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
/// use certbound_authority::TokenEndpointDpop;
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
        let proof = match pop::dpop_header(headers) {
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
