//! Building a [`Validator`]: token rules, key fetching and proof policy.

use super::*;

/// Errors building a [`Validator`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No issuer configured.
    #[error("no issuer configured: call .issuer(url)")]
    NoIssuer,
    /// No audience configured.
    #[error("no audience configured: call .audience(aud) (the resource's App ID URI or client id)")]
    NoAudience,
    /// Empty algorithm allowlist.
    #[error("the algorithm allowlist is empty")]
    NoAlgorithms,
    /// No key source: neither `.jwks(..)`, `.jwks_uri(..)` nor an issuer to discover from.
    #[error("the JWKS URI `{0}` is not a valid URL")]
    BadJwksUri(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for discovery and JWKS: {0}")]
    Http(String),
    /// Discovery failed.
    #[error("discovery for issuer `{issuer}` failed: {source}; check --authority and --ca-cert")]
    Discovery {
        /// The issuer.
        issuer: String,
        /// The cause.
        source: FetchError,
    },
    /// The JWKS could not be fetched.
    #[error("fetching the issuer's signing keys failed: {0}")]
    Jwks(FetchError),
    /// The external base URL is not an absolute http(s) URL.
    #[error("the external base URL `{0}` is not an absolute http(s) URL without query or fragment")]
    BadBaseUrl(String),
    /// The server listens on a wildcard address and has no external URL, so DPoP and PoP
    /// proofs have no origin of this server to name (docs/resource-server.md (proof origin)).
    #[error(
        "the server listens on {0}, a wildcard address, and accepts DPoP and PoP proofs, which \
         must name this server's own origin: configure its external URL(s) (--external-url, \
         or ValidatorBuilder::external_base_url)"
    )]
    WildcardListen(std::net::SocketAddr),
    /// The key set has no key usable with the allowed algorithms.
    #[error("the issuer's JWKS has no usable key for the allowed algorithms ({0})")]
    NoUsableKeys(String),
}

/// Configuration for a [`Validator`]; start with [`Validator::builder`].
#[derive(Clone)]
pub struct ValidatorBuilder {
    pub(super) issuers: Vec<String>,
    pub(super) audiences: Vec<String>,
    pub(super) algorithms: Vec<JwsAlgorithm>,
    pub(super) types: Vec<String>,
    pub(super) allow_missing_typ: bool,
    pub(super) skew: Duration,
    pub(super) require_binding: bool,
    pub(super) max_token_len: usize,
    pub(super) understood_crit: Vec<String>,
    pub(super) jwks: Option<Jwks>,
    pub(super) jwks_uri: Option<String>,
    pub(super) anchors: TrustAnchors,
    pub(super) http: Option<reqwest::Client>,
    pub(super) min_refetch_interval: Duration,
    pub(super) max_key_age: Duration,
    pub(super) proof: super::proof::ProofConfig,
}

impl fmt::Debug for ValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatorBuilder")
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("require_binding", &self.require_binding)
            .finish_non_exhaustive()
    }
}

impl Default for ValidatorBuilder {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: Vec::new(),
            algorithms: vec![
                JwsAlgorithm::ES256,
                JwsAlgorithm::ES384,
                JwsAlgorithm::RS256,
                JwsAlgorithm::PS256,
            ],
            types: vec!["at+jwt".into(), "jwt".into()],
            allow_missing_typ: false,
            skew: DEFAULT_SKEW,
            require_binding: false,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            understood_crit: Vec::new(),
            jwks: None,
            jwks_uri: None,
            anchors: TrustAnchors::system(),
            http: None,
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            max_key_age: DEFAULT_MAX_KEY_AGE,
            proof: super::proof::ProofConfig::default(),
        }
    }
}

impl ValidatorBuilder {
    /// Adds an accepted issuer (`iss`, compared exactly). The first one is also where keys are
    /// discovered (`{issuer}/.well-known/openid-configuration`) unless `.jwks`/`.jwks_uri`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(issuer.into());
        self
    }
    /// Adds an accepted audience.
    pub fn audience(mut self, aud: impl Into<String>) -> Self {
        self.audiences.push(aud.into());
        self
    }
    /// Adds accepted audiences.
    pub fn audiences<I: IntoIterator<Item = S>, S: Into<String>>(mut self, auds: I) -> Self {
        self.audiences.extend(auds.into_iter().map(Into::into));
        self
    }
    /// Replaces the algorithm allowlist (default ES256, ES384, RS256, PS256). `none` and
    /// HMAC cannot be expressed and are always refused.
    pub fn algorithms(mut self, algs: &[JwsAlgorithm]) -> Self {
        self.algorithms = algs.to_vec();
        self
    }
    /// Replaces the accepted `typ` values (default `at+jwt` and `JWT`; compared
    /// case-insensitively, an `application/` prefix ignored).
    pub fn token_types<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, types: I) -> Self {
        self.types = types
            .into_iter()
            .map(|t| normalize_typ(t.as_ref()))
            .collect();
        self
    }
    /// Accepts tokens without a `typ` header (default: refused).
    pub fn allow_missing_typ(mut self, allow: bool) -> Self {
        self.allow_missing_typ = allow;
        self
    }
    /// Clock skew tolerated on `exp`, `nbf`, `iat` (default 60 s).
    pub fn skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }
    /// Refuse tokens without `cnf` (default: unbound `Bearer` tokens are accepted).
    pub fn require_binding(mut self, require: bool) -> Self {
        self.require_binding = require;
        self
    }
    /// Largest token accepted, in bytes (default 16 KiB).
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }
    /// `crit` header extensions this application understands and checks itself (default: none,
    /// so any `crit` is refused).
    pub fn understood_crit<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.understood_crit = names.into_iter().map(Into::into).collect();
        self
    }
    /// Uses this fixed key set instead of fetching one.
    pub fn jwks(mut self, jwks: Jwks) -> Self {
        self.jwks = Some(jwks);
        self
    }
    /// Fetches keys from this URL instead of the discovery document's `jwks_uri`.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }
    /// Trust anchors for the issuer's TLS certificate (default: system roots).
    pub fn trust_anchors(mut self, anchors: TrustAnchors) -> Self {
        self.anchors = anchors;
        self
    }
    /// Uses this HTTP client for discovery and JWKS (overrides `trust_anchors`).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }
    /// Minimum time between JWKS fetches caused by unknown `kid`s (default 60 s).
    pub fn min_refetch_interval(mut self, d: Duration) -> Self {
        self.min_refetch_interval = d;
        self
    }
    /// Refresh the JWKS on the next request once it is this old (default 1 h).
    pub fn max_key_age(mut self, d: Duration) -> Self {
        self.max_key_age = d;
        self
    }

    /// Adds an external base URL of the API (e.g. `https://api.example.com` or
    /// `https://gw.example.com/orders-api`): an origin a DPoP proof (`htu`) or signed request
    /// (`u`, `p`) may name, the base joined with the request's path, when the request's
    /// `Host` names it (docs/resource-server.md (proof origin)). Repeatable (one per name the API is reached by). Without
    /// any, the origin is `https://<the address the server listens on>`, which must then be
    /// a specific address. Never taken from the request itself.
    pub fn external_base_url(mut self, url: impl Into<String>) -> Self {
        self.proof.external_base_urls.push(url.into());
        self
    }
    /// Adds several external base URLs (see [`external_base_url`](Self::external_base_url)).
    pub fn external_base_urls(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.proof
            .external_base_urls
            .extend(urls.into_iter().map(Into::into));
        self
    }
    /// How old a DPoP proof (`iat`) or signed request (`ts`) may be (default 60 s); also
    /// the lifetime of replay-cache entries and of a DPoP nonce. Proofs more than
    /// [`proof_future_skew`](Self::proof_future_skew) in the future are refused too.
    pub fn proof_window(mut self, window: Duration) -> Self {
        self.proof.window = window;
        self
    }
    /// Tolerated clock skew of proofs into the future (default 5 s).
    pub fn proof_future_skew(mut self, skew: Duration) -> Self {
        self.proof.future_skew = skew;
        self
    }
    /// Require a server nonce in DPoP proofs (RFC 9449 §9; default: not required). Requests
    /// without the current nonce get 401 `use_dpop_nonce` with a `DPoP-Nonce` header.
    pub fn require_dpop_nonce(mut self, require: bool) -> Self {
        self.proof.require_nonce = require;
        self
    }
    /// Most proofs remembered for replay detection (default 1 000 000; entries expire after
    /// the proof window). When full, the oldest entries are evicted.
    pub fn replay_cache_capacity(mut self, entries: u64) -> Self {
        self.proof.replay_capacity = entries;
        self
    }

    /// Discovers and loads the keys, and returns the validator.
    pub async fn build(self) -> Result<Validator, BuildError> {
        let first_issuer = self.issuers.first().cloned().ok_or(BuildError::NoIssuer)?;
        if self.audiences.is_empty() {
            return Err(BuildError::NoAudience);
        }
        if self.algorithms.is_empty() {
            return Err(BuildError::NoAlgorithms);
        }
        let proof = super::proof::ProofState::new(self.proof.clone())?;
        let algs = self.algorithms.clone();
        let alg_list = || {
            algs.iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let keys = if let Some(jwks) = &self.jwks {
            let set = KeySet::from_jwks(jwks, &algs);
            if set.is_empty() {
                return Err(BuildError::NoUsableKeys(alg_list()));
            }
            KeySource::Static(Arc::new(set))
        } else {
            let http = match self.http.clone() {
                Some(c) => c,
                None => http_client(&self.anchors)?,
            };
            let uri = match &self.jwks_uri {
                Some(u) => u.clone(),
                None => {
                    jwks::discover(&http, &first_issuer)
                        .await
                        .map_err(|source| BuildError::Discovery {
                            issuer: first_issuer.clone(),
                            source,
                        })?
                        .jwks_uri
                }
            };
            let uri = Url::parse(&uri).map_err(|_| BuildError::BadJwksUri(uri.clone()))?;
            let remote = RemoteKeys::load(
                http,
                uri,
                algs.clone(),
                self.min_refetch_interval,
                self.max_key_age,
            )
            .await
            .map_err(BuildError::Jwks)?;
            if remote.snapshot().is_empty() {
                return Err(BuildError::NoUsableKeys(alg_list()));
            }
            KeySource::Remote(Box::new(remote))
        };
        Ok(Validator {
            inner: Arc::new(Inner {
                cfg: Config {
                    issuers: self.issuers,
                    audiences: self.audiences,
                    algorithms: self.algorithms,
                    types: self.types,
                    allow_missing_typ: self.allow_missing_typ,
                    skew: i64::try_from(self.skew.as_secs()).unwrap_or(i64::MAX),
                    require_binding: self.require_binding,
                    max_token_len: self.max_token_len,
                    understood_crit: self.understood_crit,
                },
                keys,
                header_cache: std::sync::RwLock::new(Vec::new()),
                proof,
            }),
        })
    }
}

pub(super) fn http_client(anchors: &TrustAnchors) -> Result<reqwest::Client, BuildError> {
    let tls = certbound_core::tls::client_config(anchors, None)
        .map_err(|e| BuildError::Http(e.to_string()))?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| BuildError::Http(e.to_string()))
}

pub(super) fn normalize_typ(t: &str) -> String {
    let t = t.trim().to_ascii_lowercase();
    match t.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => t,
    }
}
