//! Fetching the issuer's keys (feature `jwks`): discovery, the JWKS over https only, and
//! the cached, refreshable remote key set.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use certbound_core::JwsAlgorithm;
use url::Url;

use super::{FetchError, JwksDocument, KeySet, MAX_DOCUMENT_BYTES};

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
