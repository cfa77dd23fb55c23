//! Key-bound schemes on the client: the server-provided DPoP nonces (RFC 9449 §8, §9) the app
//! remembers per origin, and the per-request proofs (`DPoP` proof, `PoP` signed HTTP request)
//! made with the app's [`ProofKey`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use certbound_core::pop::ProofKey;

use crate::error::ClientError;

/// The most origins whose nonce is remembered; beyond that the table starts over (a nonce
/// that was forgotten costs one `use_dpop_nonce` round trip, nothing more).
const MAX_ORIGINS: usize = 256;
/// The longest nonce kept (servers use short opaque strings).
const MAX_NONCE_LEN: usize = 512;

/// The latest `DPoP-Nonce` each server (origin: scheme, host, port) handed out.
#[derive(Default)]
pub(crate) struct NonceStore {
    by_origin: RwLock<HashMap<String, Arc<str>>>,
}

impl std::fmt::Debug for NonceStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.by_origin.read().map(|g| g.len()).unwrap_or(0);
        f.debug_struct("NonceStore").field("origins", &n).finish()
    }
}

/// `scheme://host:port` of a URL, lowercased; `None` when it is not an absolute http(s) URL.
pub(crate) fn origin(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    if !matches!(u.scheme(), "http" | "https") {
        return None;
    }
    Some(format!(
        "{}://{}:{}",
        u.scheme(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default()?
    ))
}

impl NonceStore {
    /// The nonce last seen from `url`'s origin.
    pub(crate) fn get(&self, url: &str) -> Option<Arc<str>> {
        let o = origin(url)?;
        self.by_origin.read().ok()?.get(&o).cloned()
    }

    /// Remembers `nonce` for `url`'s origin. Returns whether it was accepted (a nonce must be
    /// a short run of the RFC 9449 `NQCHAR`s: printable ASCII without `"` and `\`).
    pub(crate) fn set(&self, url: &str, nonce: &str) -> bool {
        let nonce = nonce.trim();
        let ok = !nonce.is_empty()
            && nonce.len() <= MAX_NONCE_LEN
            && nonce
                .bytes()
                .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\');
        let Some(o) = origin(url).filter(|_| ok) else {
            return false;
        };
        if let Ok(mut g) = self.by_origin.write() {
            if g.len() >= MAX_ORIGINS && !g.contains_key(&o) {
                g.clear();
            }
            g.insert(o, nonce.into());
        }
        true
    }
}

/// A `DPoP` proof for one request with the app's key and the origin's latest nonce.
pub(crate) fn dpop_proof(
    key: &ProofKey,
    nonces: &NonceStore,
    method: &str,
    url: &str,
    access_token: Option<&str>,
) -> Result<String, ClientError> {
    let nonce = nonces.get(url);
    key.dpop_proof(method, url, access_token, nonce.as_deref())
        .map_err(|e| {
            ClientError::Proof(
                format!(
                    "cannot make a DPoP proof for {method} {}: {e}",
                    redact_query(url)
                ),
                Some(crate::error::ErrorCause::new(e)),
            )
        })
}

/// A signed HTTP request (`PoP`) wrapping `access_token` for one request.
pub(crate) fn signed_http_request(
    key: &ProofKey,
    access_token: &str,
    method: &str,
    url: &str,
) -> Result<String, ClientError> {
    key.signed_http_request(access_token, method, url)
        .map_err(|e| {
            ClientError::Proof(
                format!(
                    "cannot sign the {method} {} request: {e}",
                    redact_query(url)
                ),
                Some(crate::error::ErrorCause::new(e)),
            )
        })
}

/// A URL for messages: the query (which may carry secrets) left out.
pub(crate) fn redact_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_per_origin_and_normalised() {
        let s = NonceStore::default();
        assert!(s.set("https://API.example:443/a?x=1", "n-1"));
        assert_eq!(s.get("https://api.example/b").as_deref(), Some("n-1"));
        assert_eq!(s.get("https://api.example:8443/b"), None);
        assert_eq!(s.get("http://api.example/b"), None);
        assert!(s.set("https://api.example/", "n-2"));
        assert_eq!(s.get("https://api.example/c").as_deref(), Some("n-2"));
    }

    #[test]
    fn bad_nonces_and_urls_are_refused() {
        let s = NonceStore::default();
        assert!(!s.set("https://a.example/", ""));
        assert!(!s.set("https://a.example/", "has space"));
        assert!(!s.set("https://a.example/", "quote\""));
        assert!(!s.set("https://a.example/", &"x".repeat(MAX_NONCE_LEN + 1)));
        assert!(!s.set("not a url", "n"));
        assert!(!s.set("ftp://a.example/", "n"));
        assert_eq!(s.get("https://a.example/"), None);
    }

    #[test]
    fn the_table_is_bounded() {
        let s = NonceStore::default();
        for i in 0..(MAX_ORIGINS + 10) {
            assert!(s.set(&format!("https://h{i}.example/"), "n"));
        }
        assert!(s.by_origin.read().unwrap().len() <= MAX_ORIGINS);
    }

    #[test]
    fn proofs_carry_the_remembered_nonce() {
        let key = ProofKey::generate().unwrap();
        let s = NonceStore::default();
        s.set("https://api.example/", "server-nonce");
        let p = dpop_proof(&key, &s, "GET", "https://api.example/r?q=1", Some("tok")).unwrap();
        let (_, claims) = certbound_core::jose::decode_unverified(&p).unwrap();
        assert_eq!(claims["nonce"], "server-nonce");
        assert_eq!(claims["htu"], "https://api.example/r");
        let e = dpop_proof(&key, &s, "G ET", "https://api.example/?secret=1", None).unwrap_err();
        assert!(!e.to_string().contains("secret=1"), "{e}");
    }
}
