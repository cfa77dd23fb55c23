//! Building a [`Validator`]: token rules, key fetching and proof policy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "jwks")]
use certbound_core::tls::TrustAnchors;
use certbound_core::{Jwks, JwsAlgorithm};
#[cfg(feature = "jwks")]
use url::Url;

use super::{Config, DEFAULT_MAX_TOKEN_LEN, DEFAULT_SKEW, Inner, Validator};
#[cfg(feature = "jwks")]
use super::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_FETCH_TIMEOUT, DEFAULT_MAX_KEY_AGE,
    DEFAULT_MIN_REFETCH_INTERVAL,
};
#[cfg(feature = "jwks")]
use crate::jwks::{self, RemoteKeys};
use crate::jwks::{FetchError, KeySet, KeySource};

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
    Http(
        String,
        /// The TLS or HTTP-client error underneath, when there is one.
        #[source]
        Option<Box<dyn std::error::Error + Send + Sync>>,
    ),
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
    Jwks(#[source] FetchError),
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
    /// No fixed key set and no way to fetch one: without the `jwks` feature, keys come only
    /// from [`ValidatorBuilder::jwks`].
    #[error(
        "no signing keys configured: call .jwks(..) (fetching the issuer's keys needs the `jwks` feature of certbound-resource)"
    )]
    NoKeySource,
    /// The key set has no key usable with the allowed algorithms.
    #[error("the issuer's JWKS has no usable key for the allowed algorithms ({0})")]
    NoUsableKeys(String),
}

/// The token rules beyond issuer and audience (docs/resource-server.md): algorithms, `typ`,
/// clock leeway, size and `crit`. Start from [`TokenRules::default`] and set what differs;
/// pass it to [`ValidatorBuilder::token_rules`].
///
/// ```
/// use std::time::Duration;
/// use certbound_core::JwsAlgorithm;
/// use certbound_resource::TokenRules;
/// let rules = TokenRules::default()
///     .algorithms(&[JwsAlgorithm::ES256])
///     .leeway(Duration::from_secs(30));
/// # drop(rules);
/// ```
#[derive(Clone, Debug)]
pub struct TokenRules {
    pub(super) algorithms: Vec<JwsAlgorithm>,
    pub(super) types: Vec<String>,
    pub(super) allow_missing_typ: bool,
    pub(super) skew: Duration,
    pub(super) max_token_len: usize,
    pub(super) understood_crit: Vec<String>,
}

impl Default for TokenRules {
    fn default() -> Self {
        Self {
            algorithms: vec![
                JwsAlgorithm::ES256,
                JwsAlgorithm::ES384,
                JwsAlgorithm::RS256,
                JwsAlgorithm::PS256,
            ],
            types: vec!["at+jwt".into(), "jwt".into()],
            allow_missing_typ: false,
            skew: DEFAULT_SKEW,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            understood_crit: Vec::new(),
        }
    }
}

impl TokenRules {
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
    /// Clock leeway tolerated on `exp`, `nbf`, `iat` (default 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.skew = leeway;
        self
    }
    /// Largest token accepted, in bytes (default 16 KiB).
    pub fn max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }
    /// `crit` header extensions this application understands and checks itself (default:
    /// none, so any `crit` is refused).
    pub fn understood_crit<I: IntoIterator<Item = S>, S: Into<String>>(mut self, names: I) -> Self {
        self.understood_crit = names.into_iter().map(Into::into).collect();
        self
    }
}

/// How the issuer's keys are fetched and refreshed (when they are not a fixed
/// [`ValidatorBuilder::jwks`] set): the HTTP client or its timeouts, the refresh cadence.
/// Pass it to [`ValidatorBuilder::keys`]; the JWKS URL and the issuer's trust anchors are
/// one-liners of the builder.
///
/// ```
/// use std::time::Duration;
/// use certbound_resource::KeyFetching;
/// let keys = KeyFetching::default()
///     .max_key_age(Duration::from_secs(600))
///     .timeout(Duration::from_secs(3));
/// # drop(keys);
/// ```
#[cfg(feature = "jwks")]
#[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
#[derive(Clone)]
pub struct KeyFetching {
    pub(super) http: Option<reqwest::Client>,
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) min_refetch_interval: Duration,
    pub(super) max_key_age: Duration,
}

#[cfg(feature = "jwks")]
impl fmt::Debug for KeyFetching {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFetching")
            .field("http_client", &self.http.is_some())
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("min_refetch_interval", &self.min_refetch_interval)
            .field("max_key_age", &self.max_key_age)
            .finish()
    }
}

#[cfg(feature = "jwks")]
impl Default for KeyFetching {
    fn default() -> Self {
        Self {
            http: None,
            timeout: DEFAULT_FETCH_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
            max_key_age: DEFAULT_MAX_KEY_AGE,
        }
    }
}

#[cfg(feature = "jwks")]
impl KeyFetching {
    /// Uses this HTTP client for discovery and JWKS (overrides the builder's
    /// `trust_anchors` and the timeouts here).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }
    /// Whole-request timeout of discovery and JWKS fetches (default 10 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
    /// Connect timeout of discovery and JWKS fetches (default 5 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
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
}

/// What DPoP proofs and signed HTTP requests must satisfy: their time window, the server
/// nonce, the replay record. Pass it to [`ValidatorBuilder::proof_policy`]; the server's
/// own origins are the builder's [`external_base_url`](ValidatorBuilder::external_base_url).
///
/// ```
/// use std::time::Duration;
/// use certbound_resource::ProofPolicy;
/// let policy = ProofPolicy::default()
///     .require_dpop_nonce(true)
///     .window(Duration::from_secs(30));
/// # drop(policy);
/// ```
#[derive(Clone, Debug)]
pub struct ProofPolicy {
    pub(super) window: Duration,
    pub(super) future_skew: Duration,
    pub(super) require_nonce: bool,
    pub(super) replay_capacity: u64,
}

impl Default for ProofPolicy {
    fn default() -> Self {
        Self {
            window: super::proof::DEFAULT_PROOF_WINDOW,
            future_skew: super::proof::DEFAULT_PROOF_FUTURE_SKEW,
            require_nonce: false,
            replay_capacity: super::proof::DEFAULT_REPLAY_CAPACITY,
        }
    }
}

impl ProofPolicy {
    /// How old a DPoP proof (`iat`) or signed request (`ts`) may be (default 60 s); also
    /// the lifetime of replay-cache entries and of a DPoP nonce. Proofs more than
    /// [`future_skew`](Self::future_skew) in the future are refused too.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }
    /// Tolerated clock skew of proofs into the future (default 5 s).
    pub fn future_skew(mut self, skew: Duration) -> Self {
        self.future_skew = skew;
        self
    }
    /// Require a server nonce in DPoP proofs (RFC 9449 §9; default: not required). Requests
    /// without the current nonce get 401 `use_dpop_nonce` with a `DPoP-Nonce` header.
    pub fn require_dpop_nonce(mut self, require: bool) -> Self {
        self.require_nonce = require;
        self
    }
    /// Most proofs remembered for replay detection (default 1 000 000; entries expire after
    /// the proof window). When full of live entries, new proofs are refused (503).
    pub fn replay_cache_capacity(mut self, entries: u64) -> Self {
        self.replay_capacity = entries;
        self
    }
}

/// Configuration for a [`Validator`]; start with [`Validator::builder`].
///
/// The one-liners name what every deployment sets — [`issuer`](Self::issuer),
/// [`audience`](Self::audience), the keys ([`jwks_uri`](Self::jwks_uri) or a fixed
/// [`jwks`](Self::jwks); by default discovered from the issuer), the issuer's
/// [`trust_anchors`](Self::trust_anchors), [`require_binding`](Self::require_binding) and the
/// server's [`external_base_url`](Self::external_base_url); the rest comes in three groups:
/// [`token_rules`](Self::token_rules), [`keys`](Self::keys) and
/// [`proof_policy`](Self::proof_policy), each replacing its defaults as a whole.
///
/// ```no_run
/// use std::time::Duration;
/// use certbound_resource::{ProofPolicy, TokenRules, Validator};
/// # async fn run() -> Result<(), certbound_resource::BuildError> {
/// let validator = Validator::builder()
///     .issuer("https://login.example/tenant/v2.0")
///     .audience("api://orders")
///     .jwks_uri("https://login.example/tenant/discovery/v2.0/keys")
///     .require_binding(true)
///     .token_rules(TokenRules::default().leeway(Duration::from_secs(30)))
///     .proof_policy(ProofPolicy::default().require_dpop_nonce(true))
///     .build()
///     .await?;
/// # drop(validator); Ok(()) }
/// ```
#[derive(Clone)]
pub struct ValidatorBuilder {
    pub(super) issuers: Vec<String>,
    pub(super) audiences: Vec<String>,
    pub(super) require_binding: bool,
    pub(super) jwks: Option<Jwks>,
    #[cfg(feature = "jwks")]
    pub(super) jwks_uri: Option<String>,
    #[cfg(feature = "jwks")]
    pub(super) anchors: TrustAnchors,
    pub(super) external_base_urls: Vec<String>,
    pub(super) rules: TokenRules,
    #[cfg(feature = "jwks")]
    pub(super) fetching: KeyFetching,
    pub(super) proof: ProofPolicy,
}

impl fmt::Debug for ValidatorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatorBuilder")
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.rules.algorithms)
            .field("require_binding", &self.require_binding)
            .finish_non_exhaustive()
    }
}

// Without `jwks` every field has its type's default.
#[cfg_attr(not(feature = "jwks"), allow(clippy::derivable_impls))]
impl Default for ValidatorBuilder {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: Vec::new(),
            require_binding: false,
            jwks: None,
            #[cfg(feature = "jwks")]
            jwks_uri: None,
            #[cfg(feature = "jwks")]
            anchors: TrustAnchors::system(),
            external_base_urls: Vec::new(),
            rules: TokenRules::default(),
            #[cfg(feature = "jwks")]
            fetching: KeyFetching::default(),
            proof: ProofPolicy::default(),
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
    /// Refuse tokens without `cnf` (default: unbound `Bearer` tokens are accepted).
    pub fn require_binding(mut self, require: bool) -> Self {
        self.require_binding = require;
        self
    }
    /// Uses this fixed key set instead of fetching one.
    pub fn jwks(mut self, jwks: Jwks) -> Self {
        self.jwks = Some(jwks);
        self
    }
    /// Fetches keys from this URL instead of the discovery document's `jwks_uri`.
    #[cfg(feature = "jwks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }
    /// Trust anchors for the issuer's TLS certificate (default: system roots).
    #[cfg(feature = "jwks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
    pub fn trust_anchors(mut self, anchors: TrustAnchors) -> Self {
        self.anchors = anchors;
        self
    }
    /// Adds an external base URL of the API (e.g. `https://api.example.com` or
    /// `https://gw.example.com/orders-api`): an origin a DPoP proof (`htu`) or signed request
    /// (`u`, `p`) may name, the base joined with the request's path, when the request's
    /// `Host` names it (docs/resource-server.md (proof origin)). Repeatable (one per name the API is reached by). Without
    /// any, the origin is `https://<the address the server listens on>`, which must then be
    /// a specific address. Never taken from the request itself.
    pub fn external_base_url(mut self, url: impl Into<String>) -> Self {
        self.external_base_urls.push(url.into());
        self
    }
    /// Adds several external base URLs (see [`external_base_url`](Self::external_base_url)).
    pub fn external_base_urls(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.external_base_urls
            .extend(urls.into_iter().map(Into::into));
        self
    }
    /// Require a server nonce in DPoP proofs (the `--dpop-nonce` one-liner of
    /// [`ProofPolicy::require_dpop_nonce`]; a later [`proof_policy`](Self::proof_policy)
    /// replaces it).
    pub fn require_dpop_nonce(mut self, require: bool) -> Self {
        self.proof.require_nonce = require;
        self
    }
    /// Replaces the token rules (algorithms, `typ`, leeway, size, `crit`).
    pub fn token_rules(mut self, rules: TokenRules) -> Self {
        self.rules = rules;
        self
    }
    /// Replaces how fetched keys are fetched and refreshed.
    #[cfg(feature = "jwks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "jwks")))]
    pub fn keys(mut self, fetching: KeyFetching) -> Self {
        self.fetching = fetching;
        self
    }
    /// Replaces the DPoP and signed-request policy (window, nonce, replay record).
    pub fn proof_policy(mut self, policy: ProofPolicy) -> Self {
        self.proof = policy;
        self
    }

    /// Discovers and loads the keys, and returns the validator.
    pub async fn build(self) -> Result<Validator, BuildError> {
        let first_issuer = self.issuers.first().cloned().ok_or(BuildError::NoIssuer)?;
        if self.audiences.is_empty() {
            return Err(BuildError::NoAudience);
        }
        if self.rules.algorithms.is_empty() {
            return Err(BuildError::NoAlgorithms);
        }
        let proof = super::proof::ProofState::new(super::proof::ProofConfig {
            external_base_urls: self.external_base_urls.clone(),
            window: self.proof.window,
            future_skew: self.proof.future_skew,
            require_nonce: self.proof.require_nonce,
            replay_capacity: self.proof.replay_capacity,
        })?;
        let algs = self.rules.algorithms.clone();
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
            #[cfg(not(feature = "jwks"))]
            {
                drop(first_issuer);
                return Err(BuildError::NoKeySource);
            }
            #[cfg(feature = "jwks")]
            KeySource::Remote(Box::new(self.remote_keys(&first_issuer, &algs).await?))
        };
        Ok(Validator {
            inner: Arc::new(Inner {
                cfg: Config {
                    issuers: self.issuers,
                    audiences: self.audiences,
                    algorithms: self.rules.algorithms,
                    types: self.rules.types,
                    allow_missing_typ: self.rules.allow_missing_typ,
                    skew: i64::try_from(self.rules.skew.as_secs()).unwrap_or(i64::MAX),
                    require_binding: self.require_binding,
                    max_token_len: self.rules.max_token_len,
                    understood_crit: self.rules.understood_crit,
                },
                keys,
                header_cache: std::sync::RwLock::new(Vec::new()),
                proof,
            }),
        })
    }

    /// The issuer's fetched keys: from `jwks_uri`, else from the discovery document.
    #[cfg(feature = "jwks")]
    async fn remote_keys(
        &self,
        first_issuer: &str,
        algs: &[JwsAlgorithm],
    ) -> Result<RemoteKeys, BuildError> {
        let alg_list = || {
            algs.iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let f = &self.fetching;
        let http = match f.http.clone() {
            Some(c) => c,
            None => http_client(&self.anchors, f.timeout, f.connect_timeout)?,
        };
        let uri = match &self.jwks_uri {
            Some(u) => u.clone(),
            None => {
                jwks::discover(&http, first_issuer)
                    .await
                    .map_err(|source| BuildError::Discovery {
                        issuer: first_issuer.to_owned(),
                        source,
                    })?
                    .jwks_uri
            }
        };
        let uri = Url::parse(&uri).map_err(|_| BuildError::BadJwksUri(uri.clone()))?;
        let remote = RemoteKeys::load(
            http,
            uri,
            algs.to_vec(),
            f.min_refetch_interval,
            f.max_key_age,
        )
        .await
        .map_err(BuildError::Jwks)?;
        if remote.snapshot().is_empty() {
            return Err(BuildError::NoUsableKeys(alg_list()));
        }
        Ok(remote)
    }
}

#[cfg(feature = "jwks")]
pub(super) fn http_client(
    anchors: &TrustAnchors,
    timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, BuildError> {
    let tls = certbound_core::tls::client_config(anchors, None)
        .map_err(|e| BuildError::Http(e.to_string(), Some(Box::new(e))))?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .connect_timeout(connect_timeout)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .map_err(|e| BuildError::Http(e.to_string(), Some(Box::new(e))))
}

pub(super) fn normalize_typ(t: &str) -> String {
    let t = t.trim().to_ascii_lowercase();
    match t.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => t,
    }
}
