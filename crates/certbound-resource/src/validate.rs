//! Token rules (docs/resource-server.md): the compact JWS is split and decoded strictly, its header checked
//! against configuration, its signature verified with a pre-parsed key from the issuer's
//! JWKS, then its claims checked and the binding compared with the connection's certificate.
//!
//! # Why aws-lc-rs directly rather than `jsonwebtoken`
//!
//! `jsonwebtoken`'s `DecodingKey` keeps the key as bytes/components and aws-lc-rs re-parses
//! it (`UnparsedPublicKey`/`RsaPublicKeyComponents::verify`) on **every** verification, and
//! its `decode` also takes the algorithm list from a `Validation` it cannot restrict per key,
//! checks claims through a serde pass of its own, and accepts duplicate JSON members. Here
//! keys are parsed once into [`aws_lc_rs::signature::ParsedPublicKey`] when the JWKS loads,
//! so a validation is: one bounded split, three strict base64url decodes, one duplicate-aware
//! JSON parse per part, one `verify_sig` on the pre-parsed key, a handful of comparisons and a
//! 32-byte constant-time compare. `benches/validate.rs` measures this against the raw
//! `ParsedPublicKey::verify_sig` of the same token (same library, same run) and against
//! `jsonwebtoken::decode`.
//!
//! # Order of checks
//!
//! Size and shape → header (strict JSON, `alg` allowlist, `crit`, `typ`, `kid`) → key →
//! signature → payload (strict JSON) → `iss`, `aud`, `exp`, `nbf`, `iat` → `cnf` and binding.
//! The payload is not parsed until the signature has verified.
//!
//! ```
//! use certbound_core::{jose, Jwks, KeyKind, PrivateKey, Thumbprint};
//! use certbound_resource::{Scheme, TokenError, Validator};
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
//! let jwks = Jwks { keys: vec![key.public_jwk().with_kid("k1")] };
//! let validator = Validator::builder()
//!     .issuer("https://issuer.example")
//!     .audience("api://orders")
//!     .jwks(jwks)
//!     .build()
//!     .await
//!     .unwrap();
//! let cert = Thumbprint::of_der(b"the client certificate");
//! let now = certbound_core::now_unix();
//! let claims = serde_json::json!({
//!     "iss": "https://issuer.example", "aud": "api://orders", "sub": "app",
//!     "iat": now, "exp": now + 600, "cnf": {"x5t#S256": cert.to_base64url()},
//! });
//! let header = jose::JwsHeader::new(key.default_jws_algorithm()).kid("k1").typ("at+jwt");
//! let token = jose::sign_compact(&header, &claims, &key).unwrap();
//! let ok = validator.validate(Scheme::MtlsPop, &token, Some(&cert)).await.unwrap();
//! assert_eq!(ok.claims().sub(), Some("app"));
//! let refused = validator.validate(Scheme::Bearer, &token, None).await.unwrap_err();
//! assert_eq!(refused.token_error(), Some(&TokenError::NoClientCertificate));
//! # });
//! ```

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use certbound_core::tls::TrustAnchors;
use certbound_core::{Jwks, JwsAlgorithm, Thumbprint, b64};
use http::HeaderMap;
use serde_json::{Map, Value};
use url::Url;

use crate::binding::{self, Confirmation};
use crate::extract::{self, Scheme};
use crate::jwks::{self, FetchError, KeySet, KeySource, RemoteKeys};
use crate::reject::{Rejection, TokenError};
use crate::strict_json::{self, StrictJsonError};
use crate::transport::TlsInfo;

/// Default maximum token length (bytes).
pub const DEFAULT_MAX_TOKEN_LEN: usize = 16 * 1024;
/// Default clock skew.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);
/// Default minimum time between two JWKS fetches triggered by unknown `kid`s.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(60);
/// Default age after which the JWKS is refreshed on the next request.
pub const DEFAULT_MAX_KEY_AGE: Duration = Duration::from_secs(3600);

/// The claims of a validated token.
///
/// The registered claims are available typed; every member (as sent) through
/// [`Claims::all`], which is materialised on first use (validation itself does not build the
/// full JSON object — see the module docs).
#[derive(Clone)]
pub struct Claims {
    header_json: Arc<[u8]>,
    payload_json: Vec<u8>,
    header: OnceLock<Map<String, Value>>,
    payload: OnceLock<Map<String, Value>>,
    alg: JwsAlgorithm,
    kid: Option<Arc<str>>,
    iss: String,
    aud: Vec<String>,
    exp: i64,
    cnf: Option<Confirmation>,
}

impl fmt::Debug for Claims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Claims")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("iss", &self.iss)
            .field("aud", &self.aud)
            .field("exp", &self.exp)
            .field("sub", &self.sub())
            .field("cnf", &self.cnf)
            .finish_non_exhaustive()
    }
}

fn lazy_map<'a>(cell: &'a OnceLock<Map<String, Value>>, json: &[u8]) -> &'a Map<String, Value> {
    // The bytes were already parsed strictly during validation, so this cannot fail.
    cell.get_or_init(|| serde_json::from_slice(json).unwrap_or_default())
}

impl Claims {
    /// Every payload member, as sent.
    pub fn all(&self) -> &Map<String, Value> {
        lazy_map(&self.payload, &self.payload_json)
    }
    /// The protected header.
    pub fn header(&self) -> &Map<String, Value> {
        lazy_map(&self.header, &self.header_json)
    }
    /// One payload member.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.all().get(name)
    }
    /// The algorithm that signed the token.
    pub fn alg(&self) -> JwsAlgorithm {
        self.alg
    }
    /// `kid` of the signing key.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
    /// `iss`.
    pub fn issuer(&self) -> &str {
        &self.iss
    }
    /// `aud` (a single string is returned as one element).
    pub fn audiences(&self) -> &[String] {
        &self.aud
    }
    /// `exp` (Unix seconds).
    pub fn expires_at(&self) -> i64 {
        self.exp
    }
    /// `sub`.
    pub fn sub(&self) -> Option<&str> {
        self.get("sub").and_then(Value::as_str)
    }
    /// The client: `client_id` (RFC 9068), `azp` or Entra's `appid`.
    pub fn client_id(&self) -> Option<&str> {
        ["client_id", "azp", "appid"]
            .iter()
            .find_map(|n| self.get(n).and_then(Value::as_str))
    }
    /// Scopes from `scope` (RFC 9068, space-separated) or Entra's `scp`.
    pub fn scopes(&self) -> Vec<&str> {
        ["scope", "scp"]
            .iter()
            .find_map(|n| self.get(n).and_then(Value::as_str))
            .map(|s| s.split(' ').filter(|x| !x.is_empty()).collect())
            .unwrap_or_default()
    }
    /// App roles (`roles`, Entra app-only tokens).
    pub fn roles(&self) -> Vec<&str> {
        self.get("roles")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    }
    /// The binding, when the token is certificate-bound.
    pub fn confirmation(&self) -> Option<&Confirmation> {
        self.cnf.as_ref()
    }
}

/// A token that passed every rule, with the request facts it was checked against.
#[derive(Clone, Debug)]
pub struct ValidatedToken {
    scheme: Scheme,
    claims: Arc<Claims>,
    peer: Option<Thumbprint>,
    pub(crate) proof_key: Option<Arc<str>>,
}

impl ValidatedToken {
    /// The validated claims.
    pub fn claims(&self) -> &Claims {
        &self.claims
    }
    /// The scheme the request used.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }
    /// The thumbprint of the client certificate the connection presented (bound or not).
    pub fn peer_thumbprint(&self) -> Option<&Thumbprint> {
        self.peer.as_ref()
    }
    /// Whether the token was bound (`cnf`: certificate, DPoP or SHR key) and the binding
    /// verified.
    pub fn is_bound(&self) -> bool {
        self.claims.cnf.is_some()
    }
    /// The RFC 7638 thumbprint of the key whose proof was verified (`DPoP` and `PoP`
    /// schemes), equal to the token's `cnf.jkt`/`cnf.kid`.
    pub fn proof_key_thumbprint(&self) -> Option<&str> {
        self.proof_key.as_deref()
    }
}

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
    issuers: Vec<String>,
    audiences: Vec<String>,
    algorithms: Vec<JwsAlgorithm>,
    types: Vec<String>,
    allow_missing_typ: bool,
    skew: Duration,
    require_binding: bool,
    max_token_len: usize,
    understood_crit: Vec<String>,
    jwks: Option<Jwks>,
    jwks_uri: Option<String>,
    anchors: TrustAnchors,
    http: Option<reqwest::Client>,
    min_refetch_interval: Duration,
    max_key_age: Duration,
    proof: crate::proof::ProofConfig,
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
            proof: crate::proof::ProofConfig::default(),
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
        let proof = crate::proof::ProofState::new(self.proof.clone())?;
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

fn http_client(anchors: &TrustAnchors) -> Result<reqwest::Client, BuildError> {
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

fn normalize_typ(t: &str) -> String {
    let t = t.trim().to_ascii_lowercase();
    match t.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => t,
    }
}

struct Config {
    issuers: Vec<String>,
    audiences: Vec<String>,
    algorithms: Vec<JwsAlgorithm>,
    types: Vec<String>,
    allow_missing_typ: bool,
    skew: i64,
    require_binding: bool,
    max_token_len: usize,
    understood_crit: Vec<String>,
}

/// Distinct protected headers remembered (an issuer uses one per signing key and type).
const HEADER_CACHE_SIZE: usize = 16;

#[derive(Clone)]
struct CheckedHeader {
    alg: JwsAlgorithm,
    kid: Option<Arc<str>>,
    json: Arc<[u8]>,
}

pub(crate) struct Inner {
    cfg: Config,
    keys: KeySource,
    header_cache: std::sync::RwLock<Vec<(Box<str>, CheckedHeader)>>,
    pub(crate) proof: crate::proof::ProofState,
}

/// Validates access tokens and their certificate binding. Cheap to clone (shared state).
#[derive(Clone)]
pub struct Validator {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.inner.cfg;
        f.debug_struct("Validator")
            .field("issuers", &c.issuers)
            .field("audiences", &c.audiences)
            .field("algorithms", &c.algorithms)
            .field("types", &c.types)
            .field("require_binding", &c.require_binding)
            .finish_non_exhaustive()
    }
}

/// What the cached-keys pass concluded.
enum Outcome {
    Done(Result<ValidatedToken, TokenError>),
    /// The `kid` is not in the current set (which is returned so a refresh can tell whether
    /// someone else already replaced it).
    UnknownKid(Arc<KeySet>),
}

impl Validator {
    /// A builder with docs/resource-server.md's defaults.
    pub fn builder() -> ValidatorBuilder {
        ValidatorBuilder::default()
    }

    /// A validator for `issuer` (keys from its discovery document) and `audiences`, trusting
    /// the system roots for the issuer's TLS.
    pub async fn from_issuer<I, S>(issuer: &str, audiences: I) -> Result<Self, BuildError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::builder()
            .issuer(issuer)
            .audiences(audiences)
            .build()
            .await
    }

    /// Whether tokens without `cnf` are refused.
    pub fn requires_binding(&self) -> bool {
        self.inner.cfg.require_binding
    }

    /// The accepted issuers.
    pub fn issuers(&self) -> &[String] {
        &self.inner.cfg.issuers
    }

    /// The accepted audiences.
    pub fn audiences(&self) -> &[String] {
        &self.inner.cfg.audiences
    }

    /// Validates a request from its headers and connection only: its single `Authorization`
    /// header and its connection's client certificate (`None` for a connection without TLS
    /// information). `DPoP` and `PoP` requests are refused here (their proofs cover the
    /// method and URL): use [`validate_http_request`](Self::validate_http_request), as
    /// [`CertboundLayer`](crate::CertboundLayer) does.
    pub async fn validate_request(
        &self,
        headers: &HeaderMap,
        tls: Option<&TlsInfo>,
    ) -> Result<ValidatedToken, Rejection> {
        let (scheme, token) = extract::from_headers(headers)?;
        if scheme == Scheme::DPoP {
            extract::dpop_proof(headers).map_err(Rejection::InvalidDpopProof)?;
        }
        let peer = tls.and_then(|t| t.peer.as_ref()).map(|p| &p.thumbprint);
        self.validate(scheme, token, peer).await
    }

    /// Validates `token` presented with `scheme` on a connection whose client certificate
    /// has thumbprint `peer`. Fetches keys when the `kid` is unknown (rate-limited) or the
    /// key set is older than the maximum age.
    pub async fn validate(
        &self,
        scheme: Scheme,
        token: &str,
        peer: Option<&Thumbprint>,
    ) -> Result<ValidatedToken, Rejection> {
        use tracing::Instrument as _;
        if matches!(scheme, Scheme::DPoP | Scheme::Pop) {
            return Err(Rejection::InvalidToken {
                scheme,
                error: TokenError::ProofRequired,
            });
        }
        // The span carries the scheme only: never the token.
        let span = tracing::debug_span!("certbound.validate", %scheme);
        self.validate_in_span(scheme, token, peer)
            .instrument(span)
            .await
    }

    pub(crate) async fn validate_in_span(
        &self,
        scheme: Scheme,
        token: &str,
        peer: Option<&Thumbprint>,
    ) -> Result<ValidatedToken, Rejection> {
        let keys = match &self.inner.keys {
            KeySource::Static(s) => s.clone(),
            KeySource::Remote(r) => {
                if r.is_stale() {
                    let seen = r.snapshot();
                    if let Err(e) = r.refresh(&seen).await {
                        tracing::warn!(error = %e, "JWKS refresh failed; keeping the current keys");
                    }
                }
                r.snapshot()
            }
        };
        let outcome = match self.check(scheme, token, peer, &keys) {
            Outcome::UnknownKid(seen) => match &self.inner.keys {
                KeySource::Static(_) => Outcome::Done(Err(TokenError::KeyNotFound)),
                KeySource::Remote(r) => {
                    tracing::debug!("unknown kid; refreshing the issuer's keys");
                    match r.refresh(&seen).await {
                        Ok(fresh) => match self.check(scheme, token, peer, &fresh) {
                            Outcome::UnknownKid(_) => Outcome::Done(Err(TokenError::KeyNotFound)),
                            done => done,
                        },
                        Err(e) => {
                            tracing::warn!(error = %e, "JWKS refetch failed");
                            return Err(Rejection::KeysUnavailable(e.to_string()));
                        }
                    }
                }
            },
            done => done,
        };
        self.finish(scheme, outcome)
    }

    /// Validates with the keys already loaded, never fetching (an unknown `kid` is refused).
    /// Synchronous; useful outside an async context and for benchmarks.
    pub fn validate_cached(
        &self,
        scheme: Scheme,
        token: &str,
        peer: Option<&Thumbprint>,
    ) -> Result<ValidatedToken, Rejection> {
        if matches!(scheme, Scheme::DPoP | Scheme::Pop) {
            return Err(Rejection::InvalidToken {
                scheme,
                error: TokenError::ProofRequired,
            });
        }
        self.validate_cached_any(scheme, token, peer)
    }

    /// [`validate_cached`](Self::validate_cached) for any scheme (the proof of `DPoP`/`PoP`
    /// is the caller's).
    pub(crate) fn validate_cached_any(
        &self,
        scheme: Scheme,
        token: &str,
        peer: Option<&Thumbprint>,
    ) -> Result<ValidatedToken, Rejection> {
        let keys = match &self.inner.keys {
            KeySource::Static(s) => s.clone(),
            KeySource::Remote(r) => r.snapshot(),
        };
        let outcome = match self.check(scheme, token, peer, &keys) {
            Outcome::UnknownKid(_) => Outcome::Done(Err(TokenError::KeyNotFound)),
            done => done,
        };
        self.finish(scheme, outcome)
    }

    fn finish(&self, scheme: Scheme, outcome: Outcome) -> Result<ValidatedToken, Rejection> {
        match outcome {
            Outcome::Done(Ok(v)) => {
                tracing::debug!(bound = v.is_bound(), "token accepted");
                Ok(v)
            }
            Outcome::Done(Err(error)) => {
                tracing::info!(rule = error.rule(), reason = %error, %scheme, "token refused");
                Err(Rejection::InvalidToken { scheme, error })
            }
            Outcome::UnknownKid(_) => Err(Rejection::InvalidToken {
                scheme,
                error: TokenError::KeyNotFound,
            }),
        }
    }

    /// Decodes and checks the protected header, or returns the cached result for the same
    /// header text. Only headers that passed every rule are cached (exact-text key, so an
    /// entry can only ever answer for the bytes it was computed from); the cache is small and
    /// stops growing when full, so hostile headers cannot evict or bloat it.
    fn checked_header(&self, h64: &str) -> Result<CheckedHeader, TokenError> {
        let cache = &self.inner.header_cache;
        {
            let guard = match cache.read() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if let Some((_, h)) = guard.iter().find(|(text, _)| **text == *h64) {
                return Ok(h.clone());
            }
        }
        let cfg = &self.inner.cfg;
        let json = b64::decode(h64).map_err(|_| TokenError::Base64("header"))?;
        let [alg_v, kid_v, typ_v, crit_v] = scan(&json, &HEADER_MEMBERS, "header")?;
        let alg = check_alg(alg_v.as_ref(), &cfg.algorithms)?;
        if let Some(crit) = &crit_v {
            check_crit(crit, &json, &cfg.understood_crit)?;
        }
        check_typ(typ_v.as_ref(), &cfg.types, cfg.allow_missing_typ)?;
        let kid = match kid_v {
            Some(Value::String(k)) => Some(Arc::<str>::from(k)),
            Some(_) => return Err(TokenError::KidMalformed),
            None => None,
        };
        let checked = CheckedHeader {
            alg,
            kid,
            json: Arc::from(json),
        };
        let mut guard = match cache.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if guard.len() < HEADER_CACHE_SIZE && !guard.iter().any(|(t, _)| **t == *h64) {
            guard.push((Box::from(h64), checked.clone()));
        }
        Ok(checked)
    }

    fn check(
        &self,
        scheme: Scheme,
        token: &str,
        peer: Option<&Thumbprint>,
        keys: &Arc<KeySet>,
    ) -> Outcome {
        let cfg = &self.inner.cfg;
        macro_rules! tri {
            ($e:expr) => {
                match $e {
                    Ok(v) => v,
                    Err(e) => return Outcome::Done(Err(e)),
                }
            };
        }
        // Shape.
        if token.len() > cfg.max_token_len {
            return Outcome::Done(Err(TokenError::TooLarge));
        }
        let (h64, p64, s64) = tri!(split(token));
        // Header (cached by its exact text once it has passed every header rule).
        let CheckedHeader {
            alg,
            kid,
            json: header_json,
        } = tri!(self.checked_header(h64));
        // Key.
        let key = match &kid {
            Some(kid) => match keys.get(kid) {
                Some(k) => k,
                None => return Outcome::UnknownKid(keys.clone()),
            },
            None => match keys.sole_key_for(alg) {
                Some(k) => k,
                None => return Outcome::Done(Err(TokenError::KeyAmbiguous)),
            },
        };
        let Some(parsed) = key.for_alg(alg) else {
            return Outcome::Done(Err(TokenError::KeyAlgMismatch));
        };
        // Signature.
        // Signatures are at most 512 bytes (RSA-4096): decode on the stack.
        let mut sig_buf = [0u8; 512];
        let sig_len = tri!(decode_signature(s64, &mut sig_buf));
        // `split` found exactly three parts: the signing input is everything before the last dot.
        let Some((signing_input, _)) = token.rsplit_once('.') else {
            return Outcome::Done(Err(TokenError::NotCompactJws));
        };
        if parsed
            .verify_sig(signing_input.as_bytes(), &sig_buf[..sig_len])
            .is_err()
        {
            return Outcome::Done(Err(TokenError::BadSignature));
        }
        // Claims.
        let payload_json = tri!(b64::decode(p64).map_err(|_| TokenError::Base64("payload")));
        let [iss_v, aud_v, exp_v, nbf_v, iat_v, cnf_v] =
            tri!(scan(&payload_json, &PAYLOAD_MEMBERS, "payload"));
        let now = certbound_core::now_unix();
        let iss = match iss_v {
            Some(Value::String(s)) => s,
            Some(_) => return Outcome::Done(Err(TokenError::ClaimMalformed("iss"))),
            None => return Outcome::Done(Err(TokenError::ClaimMissing("iss"))),
        };
        if !cfg.issuers.contains(&iss) {
            return Outcome::Done(Err(TokenError::IssuerNotAccepted));
        }
        let aud = tri!(audiences(aud_v));
        if !aud.iter().any(|a| cfg.audiences.contains(a)) {
            return Outcome::Done(Err(TokenError::AudienceNotAccepted));
        }
        let exp = match tri!(numeric_date(exp_v.as_ref(), "exp")) {
            Some(e) => e,
            None => return Outcome::Done(Err(TokenError::ClaimMissing("exp"))),
        };
        if now.saturating_sub(cfg.skew) >= exp {
            return Outcome::Done(Err(TokenError::Expired));
        }
        if let Some(nbf) = tri!(numeric_date(nbf_v.as_ref(), "nbf"))
            && now.saturating_add(cfg.skew) < nbf
        {
            return Outcome::Done(Err(TokenError::NotYetValid));
        }
        if let Some(iat) = tri!(numeric_date(iat_v.as_ref(), "iat"))
            && now.saturating_add(cfg.skew) < iat
        {
            return Outcome::Done(Err(TokenError::IssuedInFuture));
        }
        // Binding.
        let cnf = match &cnf_v {
            Some(v) => Some(tri!(Confirmation::from_claim(v))),
            None => None,
        };
        tri!(binding::check(
            cnf.as_ref(),
            scheme,
            peer,
            cfg.require_binding
        ));
        Outcome::Done(Ok(ValidatedToken {
            scheme,
            peer: peer.copied(),
            proof_key: None,
            claims: Arc::new(Claims {
                header_json,
                payload_json,
                header: OnceLock::new(),
                payload: OnceLock::new(),
                alg,
                kid,
                iss,
                aud,
                exp,
                cnf,
            }),
        }))
    }
}

const HEADER_MEMBERS: [&str; 4] = ["alg", "kid", "typ", "crit"];
const PAYLOAD_MEMBERS: [&str; 6] = ["iss", "aud", "exp", "nbf", "iat", "cnf"];

fn scan<const N: usize>(
    json: &[u8],
    names: &[&str; N],
    what: &'static str,
) -> Result<[Option<Value>; N], TokenError> {
    strict_json::scan_object(json, names).map_err(|e| match e {
        StrictJsonError::Duplicate => TokenError::DuplicateMember(what),
        StrictJsonError::Syntax | StrictJsonError::NotObject => TokenError::NotJsonObject(what),
    })
}

/// Decodes a strict base64url signature into `buf`.
fn decode_signature(s64: &str, buf: &mut [u8; 512]) -> Result<usize, TokenError> {
    use base64::Engine as _;
    if s64.len() > 683 {
        // More than 512 bytes: not a signature of any supported key.
        return Err(TokenError::BadSignature);
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode_slice(s64, buf)
        .map_err(|_| TokenError::Base64("signature"))
}

/// Splits a compact JWS into its three non-empty parts.
fn split(token: &str) -> Result<(&str, &str, &str), TokenError> {
    let mut it = token.splitn(4, '.');
    match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() && !s.is_empty() => {
            Ok((h, p, s))
        }
        _ => Err(TokenError::NotCompactJws),
    }
}

fn check_alg(alg: Option<&Value>, allowed: &[JwsAlgorithm]) -> Result<JwsAlgorithm, TokenError> {
    let Some(Value::String(alg)) = alg else {
        return Err(TokenError::AlgMissing);
    };
    if alg.eq_ignore_ascii_case("none") {
        return Err(TokenError::AlgNone);
    }
    if alg
        .as_bytes()
        .get(..2)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"HS"))
    {
        return Err(TokenError::AlgHmac);
    }
    allowed
        .iter()
        .copied()
        .find(|a| a.as_str() == alg)
        .ok_or(TokenError::AlgNotAllowed)
}

fn check_crit(crit: &Value, header_json: &[u8], understood: &[String]) -> Result<(), TokenError> {
    // RFC 7515 §4.1.11: a non-empty array of names that are present in the header and are
    // not names defined by the JWS/JWA specifications.
    let Some(names) = crit.as_array() else {
        return Err(TokenError::Crit);
    };
    if names.is_empty() {
        return Err(TokenError::Crit);
    }
    let mut header: Option<Map<String, Value>> = None;
    for n in names {
        let Some(n) = n.as_str() else {
            return Err(TokenError::Crit);
        };
        if !understood.iter().any(|u| u == n) {
            return Err(TokenError::Crit);
        }
        // Rare path (only with configured extensions): the named member must be present.
        let h =
            header.get_or_insert_with(|| serde_json::from_slice(header_json).unwrap_or_default());
        if !h.contains_key(n) {
            return Err(TokenError::Crit);
        }
    }
    Ok(())
}

/// `text` without a leading `prefix` compared ASCII-case-insensitively (`prefix` is ASCII),
/// without slicing `text` at a byte offset that may fall inside a multi-byte character.
fn strip_prefix_ignore_ascii_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let n = prefix.len();
    let head = text.as_bytes().get(..n)?;
    if !head.eq_ignore_ascii_case(prefix.as_bytes()) {
        return None;
    }
    // The first `n` bytes equal ASCII bytes, so byte `n` is a character boundary.
    text.get(n..)
}

fn check_typ(typ: Option<&Value>, types: &[String], allow_missing: bool) -> Result<(), TokenError> {
    match typ {
        None if allow_missing => Ok(()),
        None => Err(TokenError::TypMissing),
        Some(Value::String(t)) => {
            // Compare without allocating in the common case.
            let t = t.trim();
            let t = strip_prefix_ignore_ascii_case(t, "application/")
                .filter(|rest| !rest.is_empty())
                .unwrap_or(t);
            if types.iter().any(|a| a.eq_ignore_ascii_case(t)) {
                Ok(())
            } else {
                Err(TokenError::TypNotAccepted)
            }
        }
        Some(_) => Err(TokenError::TypNotAccepted),
    }
}

fn audiences(aud: Option<Value>) -> Result<Vec<String>, TokenError> {
    match aud {
        None => Err(TokenError::ClaimMissing("aud")),
        Some(Value::String(s)) => Ok(vec![s]),
        Some(Value::Array(a)) if !a.is_empty() => a
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                _ => Err(TokenError::ClaimMalformed("aud")),
            })
            .collect(),
        Some(_) => Err(TokenError::ClaimMalformed("aud")),
    }
}

/// A NumericDate claim (RFC 7519 §2): a JSON number, possibly fractional; truncated.
fn numeric_date(v: Option<&Value>, name: &'static str) -> Result<Option<i64>, TokenError> {
    match v {
        None => Ok(None),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else if let Some(f) = n.as_f64().filter(|f| f.is_finite()) {
                // Saturating float→int conversion.
                Ok(Some(f as i64))
            } else {
                Err(TokenError::ClaimMalformed(name))
            }
        }
        Some(_) => Err(TokenError::ClaimMalformed(name)),
    }
}
