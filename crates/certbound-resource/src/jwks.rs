//! The key source: the issuer's JWKS, found through its discovery document, pre-parsed
//! into aws-lc-rs [`ParsedPublicKey`]s at load time, cached, and refetched on an unknown
//! `kid` at most once per interval (single-flight: concurrent requests with the same unknown
//! `kid` wait for one fetch).
//!
//! Keys come **only** from here: `jku`, `x5u`, `jwk` and `x5c` token headers are never
//! used as key sources.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use certbound_core::{Jwk, Jwks, JwsAlgorithm, b64};
use url::Url;

/// Largest JWKS or discovery document accepted (bytes).
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// A public key ready to verify signatures: parsed once, when the JWKS is loaded.
pub struct VerifyingKey {
    kid: Option<String>,
    /// `alg` declared by the JWK, if any.
    declared_alg: Option<JwsAlgorithm>,
    kind: KeyKind,
}

enum KeyKind {
    P256(ParsedPublicKey),
    P384(ParsedPublicKey),
    Rsa {
        pkcs1: Option<ParsedPublicKey>,
        pss: Option<ParsedPublicKey>,
    },
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("type", &self.type_name())
            .field("alg", &self.declared_alg)
            .finish()
    }
}

/// Why one JWK could not be used (the key is skipped; the rest of the set still loads).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwkError {
    /// Only `EC` (P-256, P-384) and `RSA` signing keys are supported.
    #[error("unsupported key type or curve")]
    Unsupported,
    /// `use` is present and not `sig`.
    #[error("key is not for signatures (use != sig)")]
    NotForSignatures,
    /// `alg` names something outside ES256/ES384/RS256/PS256.
    #[error("unsupported alg `{0}`")]
    UnsupportedAlg(String),
    /// A member is missing or not strict base64url.
    #[error("member `{0}` missing or not base64url")]
    Member(&'static str),
    /// aws-lc-rs refused the key (e.g. an RSA modulus below 2048 bits, a point off the curve).
    #[error("key rejected by the crypto library: {0}")]
    Rejected(String),
}

impl VerifyingKey {
    /// Parses a JWK for the algorithms in `allowed`.
    pub fn from_jwk(jwk: &Jwk, allowed: &[JwsAlgorithm]) -> Result<Self, JwkError> {
        if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
            return Err(JwkError::NotForSignatures);
        }
        let declared_alg = match jwk.alg.as_deref() {
            None => None,
            Some(a) => Some(
                a.parse::<JwsAlgorithm>()
                    .ok()
                    .filter(|p| p.as_str() == a)
                    .ok_or_else(|| JwkError::UnsupportedAlg(a.chars().take(16).collect()))?,
            ),
        };
        let rejected = |e: aws_lc_rs::error::KeyRejected| JwkError::Rejected(e.to_string());
        let kind = match jwk.kty.as_str() {
            "EC" => {
                let x = b64::decode(jwk.x.as_deref().ok_or(JwkError::Member("x"))?)
                    .map_err(|_| JwkError::Member("x"))?;
                let y = b64::decode(jwk.y.as_deref().ok_or(JwkError::Member("y"))?)
                    .map_err(|_| JwkError::Member("y"))?;
                let (size, alg): (usize, &'static signature::EcdsaVerificationAlgorithm) =
                    match jwk.crv.as_deref() {
                        Some("P-256") => (32, &signature::ECDSA_P256_SHA256_FIXED),
                        Some("P-384") => (48, &signature::ECDSA_P384_SHA384_FIXED),
                        _ => return Err(JwkError::Unsupported),
                    };
                if x.len() != size {
                    return Err(JwkError::Member("x"));
                }
                if y.len() != size {
                    return Err(JwkError::Member("y"));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                let parsed = ParsedPublicKey::new(alg, &point).map_err(rejected)?;
                if size == 32 {
                    KeyKind::P256(parsed)
                } else {
                    KeyKind::P384(parsed)
                }
            }
            "RSA" => {
                let n = b64::decode(jwk.n.as_deref().ok_or(JwkError::Member("n"))?)
                    .map_err(|_| JwkError::Member("n"))?;
                let e = b64::decode(jwk.e.as_deref().ok_or(JwkError::Member("e"))?)
                    .map_err(|_| JwkError::Member("e"))?;
                // aws-lc-rs checks the modulus size only when verifying; refuse weak or
                // absurd keys when loading, so they never count as usable.
                let n_bits = n
                    .iter()
                    .position(|b| *b != 0)
                    .map_or(0, |i| (n.len() - i) * 8);
                if !(2048..=8192).contains(&n_bits) {
                    return Err(JwkError::Rejected(format!(
                        "RSA modulus of about {n_bits} bits (2048 to 8192 required)"
                    )));
                }
                let comps = RsaPublicKeyComponents {
                    n: &n[..],
                    e: &e[..],
                };
                let want = |a| allowed.contains(&a) && declared_alg.is_none_or(|d| d == a);
                let pkcs1 = if want(JwsAlgorithm::RS256) {
                    Some(
                        comps
                            .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
                            .map_err(rejected)?,
                    )
                } else {
                    None
                };
                let pss = if want(JwsAlgorithm::PS256) {
                    Some(
                        comps
                            .to_parsed_public_key(&signature::RSA_PSS_2048_8192_SHA256)
                            .map_err(rejected)?,
                    )
                } else {
                    None
                };
                KeyKind::Rsa { pkcs1, pss }
            }
            _ => return Err(JwkError::Unsupported),
        };
        Ok(Self {
            kid: jwk.kid.clone(),
            declared_alg,
            kind,
        })
    }

    /// The key id.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    fn type_name(&self) -> &'static str {
        match self.kind {
            KeyKind::P256(_) => "EC P-256",
            KeyKind::P384(_) => "EC P-384",
            KeyKind::Rsa { .. } => "RSA",
        }
    }

    /// The pre-parsed key for `alg`, or `None` when this key cannot verify `alg` (another
    /// type or curve, or the JWK declared another `alg`).
    pub fn for_alg(&self, alg: JwsAlgorithm) -> Option<&ParsedPublicKey> {
        if self.declared_alg.is_some_and(|d| d != alg) {
            return None;
        }
        match (&self.kind, alg) {
            (KeyKind::P256(k), JwsAlgorithm::ES256) => Some(k),
            (KeyKind::P384(k), JwsAlgorithm::ES384) => Some(k),
            (KeyKind::Rsa { pkcs1, .. }, JwsAlgorithm::RS256) => pkcs1.as_ref(),
            (KeyKind::Rsa { pss, .. }, JwsAlgorithm::PS256) => pss.as_ref(),
            _ => None,
        }
    }

    /// Verifies `signature` over `message` with `alg`.
    pub fn verify(&self, alg: JwsAlgorithm, message: &[u8], sig: &[u8]) -> bool {
        self.for_alg(alg)
            .is_some_and(|k| k.verify_sig(message, sig).is_ok())
    }
}

/// A loaded JWKS: keys by `kid`, plus keys without a `kid`.
#[derive(Debug, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    all: Vec<Arc<VerifyingKey>>,
    generation: u64,
}

impl KeySet {
    /// Parses every usable key of `jwks`; unusable keys are skipped and logged.
    pub fn from_jwks(jwks: &Jwks, allowed: &[JwsAlgorithm]) -> Self {
        let mut set = KeySet::default();
        for (i, jwk) in jwks.keys.iter().enumerate() {
            match VerifyingKey::from_jwk(jwk, allowed) {
                Ok(k) => {
                    let k = Arc::new(k);
                    if let Some(kid) = &k.kid {
                        if set.by_kid.contains_key(kid) {
                            tracing::warn!(index = i, kid = %kid, "JWKS repeats a kid; keeping the first key");
                            continue;
                        }
                        set.by_kid.insert(kid.clone(), k.clone());
                    }
                    set.all.push(k);
                }
                Err(e) => {
                    tracing::debug!(index = i, kid = ?jwk.kid, error = %e, "skipping JWKS key");
                }
            }
        }
        set
    }

    /// Parses a JWKS document leniently: each member of `keys` is read on its own, so one
    /// key of an unexpected shape (another `kty`, odd members) does not hide the others.
    pub fn from_document(doc: &JwksDocument, allowed: &[JwsAlgorithm]) -> Self {
        let keys = doc
            .keys
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match serde_json::from_value::<Jwk>(v.clone()) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::debug!(index = i, error = %e, "skipping a JWKS entry that is not a JWK");
                    None
                }
            })
            .collect();
        Self::from_jwks(&Jwks { keys }, allowed)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyingKey>> {
        self.by_kid.get(kid)
    }

    /// The only key that can verify `alg`, if exactly one can (for tokens without `kid`).
    pub fn sole_key_for(&self, alg: JwsAlgorithm) -> Option<&Arc<VerifyingKey>> {
        let mut it = self.all.iter().filter(|k| k.for_alg(alg).is_some());
        let first = it.next()?;
        if it.next().is_some() {
            None
        } else {
            Some(first)
        }
    }
}

/// A JWKS document as fetched: `keys` kept as raw JSON so each is parsed on its own.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct JwksDocument {
    /// The entries.
    pub keys: Vec<serde_json::Value>,
}

/// Errors fetching discovery documents or key sets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// Transport failure.
    #[error("GET {url} failed: {detail}")]
    Http {
        /// The URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// A non-2xx answer.
    #[error("GET {url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// Bigger than [`MAX_DOCUMENT_BYTES`].
    #[error("GET {url}: document larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge {
        /// The URL.
        url: String,
    },
    /// Keys and discovery documents come only over https, from URLs without a user name or
    /// password (and never through a redirect to `http://`).
    #[error("refusing {url}: {detail}")]
    Insecure {
        /// The URL (user name and password removed).
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// Not the expected JSON.
    #[error("GET {url}: {detail}")]
    Invalid {
        /// The URL.
        url: String,
        /// What is wrong.
        detail: String,
    },
}

/// Why a key-source URL cannot be used: not https, or carrying a user name or password.
/// Keys fetched over plain HTTP could be anyone's, so there is no exception (not even
/// loopback: the development authority serves https).
fn insecure_reason(url: &Url) -> Option<&'static str> {
    if !url.username().is_empty() || url.password().is_some() {
        Some("the URL carries a user name or password (`user:password@host`)")
    } else if url.scheme() != "https" {
        Some("signing keys and discovery documents are fetched over https only")
    } else {
        None
    }
}

/// `url` as text without user name and password.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.to_string()
}

/// The same for URL text that may not parse: anything between `://` and `@` is hidden.
fn shown_text(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => shown(&u),
        Err(_) => match url.split_once("://") {
            Some((scheme, rest)) => {
                let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                match rest.split_at_checked(end) {
                    Some((auth, tail)) => match auth.rsplit_once('@') {
                        Some((_, host)) => format!("{scheme}://***@{host}{tail}"),
                        None => url.to_owned(),
                    },
                    None => url.to_owned(),
                }
            }
            None => url.to_owned(),
        },
    }
}

/// GETs a JSON document with a size limit, over https only (the final URL too, when the
/// HTTP client followed a redirect).
pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &Url,
) -> Result<T, FetchError> {
    if let Some(detail) = insecure_reason(url) {
        return Err(FetchError::Insecure {
            url: shown(url),
            detail: detail.into(),
        });
    }
    let u = shown(url);
    let mut resp = http
        .get(url.clone())
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| FetchError::Http {
            url: u.clone(),
            detail: error_chain(&e),
        })?;
    if let Some(detail) = insecure_reason(resp.url()) {
        return Err(FetchError::Insecure {
            url: u,
            detail: format!("redirected to {}: {detail}", shown(resp.url())),
        });
    }
    if !resp.status().is_success() {
        return Err(FetchError::Status {
            url: u,
            status: resp.status().as_u16(),
        });
    }
    if resp
        .content_length()
        .is_some_and(|l| l > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(FetchError::TooLarge { url: u });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| FetchError::Http {
        url: u.clone(),
        detail: error_chain(&e),
    })? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(FetchError::TooLarge { url: u });
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|e| FetchError::Invalid {
        url: u,
        detail: format!("not the expected JSON document ({e})"),
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Where the keys come from.
pub(crate) enum KeySource {
    /// A fixed set (tests, offline deployments).
    Static(Arc<KeySet>),
    /// The issuer's `jwks_uri`.
    Remote(Box<RemoteKeys>),
}

pub(crate) struct RemoteKeys {
    pub(crate) http: reqwest::Client,
    pub(crate) jwks_uri: Url,
    pub(crate) allowed: Vec<JwsAlgorithm>,
    pub(crate) min_refetch_interval: Duration,
    pub(crate) max_age: Duration,
    pub(crate) current: RwLock<Arc<KeySet>>,
    pub(crate) fetched_at: RwLock<Instant>,
    /// Single-flight guard; holds the time of the last refetch attempt.
    pub(crate) refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl RemoteKeys {
    pub(crate) async fn load(
        http: reqwest::Client,
        jwks_uri: Url,
        allowed: Vec<JwsAlgorithm>,
        min_refetch_interval: Duration,
        max_age: Duration,
    ) -> Result<Self, FetchError> {
        let doc: JwksDocument = get_json(&http, &jwks_uri).await?;
        let set = KeySet::from_document(&doc, &allowed);
        tracing::info!(jwks_uri = %jwks_uri, keys = set.len(), "loaded issuer signing keys");
        let now = Instant::now();
        Ok(Self {
            http,
            jwks_uri,
            allowed,
            min_refetch_interval,
            max_age,
            current: RwLock::new(Arc::new(set)),
            fetched_at: RwLock::new(now),
            // The initial load does not count against the refetch interval: a key rotated
            // in just after start-up is still picked up on its first use.
            refresh: tokio::sync::Mutex::new(None),
        })
    }

    pub(crate) fn snapshot(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    pub(crate) fn is_stale(&self) -> bool {
        let at = match self.fetched_at.read() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        };
        at.elapsed() >= self.max_age
    }

    /// Refetches unless another caller already replaced `seen` or the last attempt was
    /// less than the minimum interval ago. Returns the current set either way.
    pub(crate) async fn refresh(&self, seen: &Arc<KeySet>) -> Result<Arc<KeySet>, FetchError> {
        let mut last = self.refresh.lock().await;
        let cur = self.snapshot();
        if cur.generation != seen.generation {
            return Ok(cur); // someone else refreshed while we waited
        }
        if last.is_some_and(|t| t.elapsed() < self.min_refetch_interval) {
            tracing::debug!(jwks_uri = %self.jwks_uri, "JWKS refetch suppressed (rate limit)");
            return Ok(cur);
        }
        *last = Some(Instant::now());
        let doc: JwksDocument = get_json(&self.http, &self.jwks_uri).await?;
        let mut set = KeySet::from_document(&doc, &self.allowed);
        set.generation = cur.generation.wrapping_add(1);
        let set = Arc::new(set);
        tracing::info!(jwks_uri = %self.jwks_uri, keys = set.len(), "refreshed issuer signing keys");
        match self.current.write() {
            Ok(mut g) => *g = set.clone(),
            Err(p) => *p.into_inner() = set.clone(),
        }
        match self.fetched_at.write() {
            Ok(mut g) => *g = Instant::now(),
            Err(p) => *p.into_inner() = Instant::now(),
        }
        Ok(set)
    }
}

/// The members of a discovery document certbound reads.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DiscoveryDocument {
    /// The issuer identifier; must equal the configured issuer.
    pub issuer: String,
    /// Where the signing keys are.
    pub jwks_uri: String,
}

/// Fetches `{issuer}/.well-known/openid-configuration`, falling back to the RFC 8414
/// `/.well-known/oauth-authorization-server{path}`, and checks its `issuer` member.
pub async fn discover(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<DiscoveryDocument, FetchError> {
    let invalid = |detail: String| FetchError::Invalid {
        url: shown_text(issuer),
        detail,
    };
    let base = Url::parse(issuer).map_err(|e| invalid(format!("issuer is not a URL ({e})")))?;
    if let Some(detail) = insecure_reason(&base) {
        return Err(FetchError::Insecure {
            url: shown(&base),
            detail: format!("issuer: {detail}"),
        });
    }
    let oidc = Url::parse(&format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    ))
    .map_err(|e| invalid(e.to_string()))?;
    let doc: DiscoveryDocument = match get_json(http, &oidc).await {
        Ok(d) => d,
        Err(first) => {
            let mut rfc8414 = base.clone();
            let path = base.path().trim_end_matches('/');
            rfc8414.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
            match get_json(http, &rfc8414).await {
                Ok(d) => d,
                Err(_) => return Err(first),
            }
        }
    };
    if doc.issuer != issuer {
        return Err(invalid(format!(
            "discovery document names issuer `{}`, expected exactly `{}`",
            shown_text(&doc.issuer),
            shown_text(issuer)
        )));
    }
    match Url::parse(&doc.jwks_uri) {
        Ok(j) => {
            if let Some(detail) = insecure_reason(&j) {
                return Err(FetchError::Insecure {
                    url: shown(&j),
                    detail: format!("the discovery document's jwks_uri: {detail}"),
                });
            }
        }
        Err(e) => {
            return Err(invalid(format!(
                "the discovery document's jwks_uri `{}` is not a URL ({e})",
                shown_text(&doc.jwks_uri)
            )));
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use certbound_core::{KeyKind, PrivateKey};

    #[test]
    fn odd_entries_do_not_hide_good_keys() {
        let ec = PrivateKey::generate(KeyKind::EcP256).unwrap();
        let good = serde_json::to_value(ec.public_jwk().with_kid("good")).unwrap();
        let doc: JwksDocument = serde_json::from_value(serde_json::json!({"keys": [
            {"kid": "no-kty"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ed"},
            {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "short"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "tiny-rsa"},
            {"kty": "EC", "crv": "P-256", "x": 1, "kid": "wrong-type"},
            {"kty": "EC", "use": "enc", "kid": "enc"},
            good,
        ]}))
        .unwrap();
        let set = KeySet::from_document(&doc, &[JwsAlgorithm::ES256, JwsAlgorithm::RS256]);
        let kids: Vec<_> = set
            .all
            .iter()
            .map(|k| k.kid().unwrap_or("").to_owned())
            .collect();
        assert_eq!(kids, vec!["good".to_owned()]);
        assert!(set.get("good").is_some());
        assert!(set.get("tiny-rsa").is_none());
    }

    #[test]
    fn declared_alg_restricts_the_key() {
        let rsa = PrivateKey::generate(KeyKind::Rsa2048).unwrap();
        let jwk = rsa.public_jwk().with_kid("r").with_alg(JwsAlgorithm::PS256);
        let k = VerifyingKey::from_jwk(&jwk, &[JwsAlgorithm::RS256, JwsAlgorithm::PS256]).unwrap();
        assert!(k.for_alg(JwsAlgorithm::PS256).is_some());
        assert!(k.for_alg(JwsAlgorithm::RS256).is_none());
        assert!(k.for_alg(JwsAlgorithm::ES256).is_none());
        assert!(format!("{k:?}").contains("RSA"));
    }
}
