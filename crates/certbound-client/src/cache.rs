//! The token cache: a pluggable async [`TokenCache`] trait, its key ([`CacheKey`]) and
//! value ([`CachedToken`]), and the in-memory implementation [`MemoryTokenCache`].
//!
//! The trait is object-safe (`Arc<dyn TokenCache>`) and every method may fail, so a
//! distributed layer (e.g. an L1 memory + L2 Redis composition) can slot in: serialise
//! [`CachedToken`] with serde (JSON) and use [`CacheKey::as_str`] as the storage key — it is
//! stable across processes and versions (`certbound:v1:…`) and contains no secret.
//!
//! Policy (expiry margin, proactive refresh, single-flight) lives in [`crate::App`], not in
//! the cache: a cache stores and returns tokens; it may drop entries at any time.
//!
//! ```
//! use certbound_client::{CacheKey, CachedToken, MemoryTokenCache, TokenCache};
//! use certbound_client::Secret;
//! # tokio_test(async {
//! let cache = MemoryTokenCache::new(1000);
//! let key = CacheKey::new("https://login.example/t", "t", "app", &["b", "a"], "bearer", None);
//! assert_eq!(key.as_str(), "certbound:v1:app_token|https://login.example/t|t|app|bearer|-|a b");
//! let tok = CachedToken::new("Bearer", Secret::new("opaque"), certbound_core::now_unix() + 3600, None, None);
//! cache.set(&key, &tok).await.unwrap();
//! assert_eq!(cache.get(&key).await.unwrap().unwrap().expires_on, tok.expires_on);
//! # });
//! # fn tokio_test(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certbound_core::Thumbprint;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

/// A boxed, `Send` future (what the object-safe async traits return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A cache backend failed (connection lost, bad data …). The app treats it as a miss and
/// logs it; it never fails a token request because of the cache.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
#[error("token cache: {0}")]
pub struct CacheError(pub String);

impl CacheError {
    /// A cache failure described by `message` (never a token or secret).
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// Identifies one app token: authority, tenant, client id, sorted scopes, token type and
/// the binding certificate's thumbprint (SHA-256 of the whole DER; `-` when unbound).
///
/// A bearer token is never served for a bound request nor the reverse: the token type
/// and the thumbprint are part of the key. Cheap to clone; compares by its string form.
#[derive(Clone)]
pub struct CacheKey {
    text: Arc<str>,
    hash: u64,
}

impl CacheKey {
    /// Builds a key. Scopes are sorted and de-duplicated; the authority is lower-cased
    /// and stripped of a trailing `/`; the token type is lower-cased.
    pub fn new(
        authority: &str,
        tenant: &str,
        client_id: &str,
        scopes: &[impl AsRef<str>],
        token_type: &str,
        binding: Option<&Thumbprint>,
    ) -> Self {
        let mut sorted: Vec<&str> = scopes
            .iter()
            .map(|s| s.as_ref().trim())
            .filter(|s| !s.is_empty())
            .collect();
        sorted.sort_unstable();
        sorted.dedup();
        let binding = binding
            .map(|t| t.to_base64url())
            .unwrap_or_else(|| "-".into());
        let text = format!(
            "certbound:v1:app_token|{}|{}|{}|{}|{}|{}",
            authority.trim_end_matches('/').to_ascii_lowercase(),
            tenant.to_ascii_lowercase(),
            client_id,
            token_type.to_ascii_lowercase(),
            binding,
            sorted.join(" ")
        );
        Self::from_string(text)
    }

    /// Rebuilds a key from its [`as_str`](Self::as_str) form (e.g. read back from storage).
    pub fn from_string(text: String) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        text.hash(&mut h);
        Self {
            hash: h.finish(),
            text: text.into(),
        }
    }

    /// The stable string form, usable as a storage key; contains no secret.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.text == other.text
    }
}
impl Eq for CacheKey {}
impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}
impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({})", self.text)
    }
}
impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A cached access token. Serialisable (JSON) for distributed caches; `Debug` redacts the token.
///
/// Deserialising checks what a distributed cache hands back as strictly as a token
/// endpoint's answer (see [`CachedToken::check`]): a token or token type that does not fit
/// in an `Authorization` header, or a negative time, is an error; an `expires_on` past the
/// token's own JWT `exp` is lowered to it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(try_from = "StoredToken")]
pub struct CachedToken {
    /// The `token_type` the server returned (`mtls_pop`, `Bearer`), used as the header scheme.
    pub token_type: String,
    /// The access token.
    pub access_token: Secret,
    /// Expiry, Unix seconds.
    pub expires_on: i64,
    /// When to refresh proactively (from `refresh_in`, or half-life for long tokens), Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_on: Option<i64>,
    /// The `x5t#S256` the token is bound to (`None`: unbound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binding_thumbprint: Option<String>,
    /// When it was acquired, Unix seconds.
    #[serde(default)]
    pub acquired_on: i64,
}

/// The stored form of a [`CachedToken`], checked on the way in.
#[derive(Deserialize)]
struct StoredToken {
    token_type: String,
    access_token: Secret,
    expires_on: i64,
    #[serde(default)]
    refresh_on: Option<i64>,
    #[serde(default)]
    binding_thumbprint: Option<String>,
    #[serde(default)]
    acquired_on: i64,
}

impl TryFrom<StoredToken> for CachedToken {
    type Error = CacheError;
    fn try_from(s: StoredToken) -> Result<Self, CacheError> {
        let expires_on = certbound_imds::wire::token_expiry(s.access_token.expose(), s.expires_on);
        let t = Self {
            token_type: s.token_type,
            access_token: s.access_token,
            expires_on,
            refresh_on: s.refresh_on,
            binding_thumbprint: s.binding_thumbprint,
            acquired_on: s.acquired_on,
        };
        t.check()?;
        Ok(t)
    }
}

impl CachedToken {
    /// Checks a token read back from a cache as the token-endpoint answer was checked: the
    /// access token and token type fit in an `Authorization` header (visible ASCII only, no
    /// CR/LF), the times are not negative. The error never contains the token.
    pub fn check(&self) -> Result<(), CacheError> {
        if !certbound_imds::wire::token_is_header_safe(self.access_token.expose()) {
            return Err(CacheError(
                "cached access_token is empty, too large or holds characters not allowed in an HTTP header".into(),
            ));
        }
        if self.token_type.len() > 64
            || !certbound_imds::wire::token_is_header_safe(&self.token_type)
        {
            return Err(CacheError(
                "cached token_type is not an HTTP authentication scheme".into(),
            ));
        }
        if self.expires_on < 0 || self.acquired_on < 0 || self.refresh_on.is_some_and(|r| r < 0) {
            return Err(CacheError("cached token has a negative time".into()));
        }
        if let Some(b) = &self.binding_thumbprint
            && (b.len() > 64
                || !b
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'))
        {
            return Err(CacheError(
                "cached binding_thumbprint is not a base64url thumbprint".into(),
            ));
        }
        Ok(())
    }

    /// A token acquired now.
    pub fn new(
        token_type: impl Into<String>,
        access_token: Secret,
        expires_on: i64,
        refresh_on: Option<i64>,
        binding: Option<&Thumbprint>,
    ) -> Self {
        Self {
            token_type: token_type.into(),
            access_token,
            expires_on,
            refresh_on,
            binding_thumbprint: binding.map(|t| t.to_base64url()),
            acquired_on: certbound_core::now_unix(),
        }
    }
}

/// A token store. Object-safe; implementations must be cheap to call concurrently.
///
/// `get` returns what was stored (possibly expired: the caller applies the expiry margin);
/// `set` stores or replaces; `remove` forgets. Errors are reported, not panicked.
pub trait TokenCache: Send + Sync + fmt::Debug {
    /// Looks a token up.
    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<CachedToken>, CacheError>>;
    /// Stores a token.
    fn set<'a>(
        &'a self,
        key: &'a CacheKey,
        token: &'a CachedToken,
    ) -> BoxFuture<'a, Result<(), CacheError>>;
    /// Removes a token.
    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<(), CacheError>>;
}

/// The in-memory cache: bounded (least-recently/frequently used entries are evicted past
/// `max_entries`), entries expire with their token.
#[derive(Clone)]
pub struct MemoryTokenCache {
    inner: moka::sync::Cache<CacheKey, CachedToken>,
}

struct ExpireWithToken;

impl moka::Expiry<CacheKey, CachedToken> for ExpireWithToken {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &CachedToken,
        _created_at: Instant,
    ) -> Option<Duration> {
        let left = value.expires_on.saturating_sub(certbound_core::now_unix());
        Some(Duration::from_secs(left.max(0) as u64))
    }
    fn expire_after_update(
        &self,
        key: &CacheKey,
        value: &CachedToken,
        updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        self.expire_after_create(key, value, updated_at)
    }
}

impl MemoryTokenCache {
    /// A cache holding at most `max_entries` tokens.
    pub fn new(max_entries: u64) -> Self {
        Self {
            inner: moka::sync::Cache::builder()
                .max_capacity(max_entries.max(1))
                .expire_after(ExpireWithToken)
                .build(),
        }
    }
    /// Number of entries (approximate; pending maintenance may lag).
    pub fn len(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }
    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Synchronous lookup (what `get` does, without the future).
    pub fn get_now(&self, key: &CacheKey) -> Option<CachedToken> {
        self.inner.get(key)
    }
}

impl fmt::Debug for MemoryTokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTokenCache")
            .field("entries", &self.inner.entry_count())
            .finish()
    }
}

impl TokenCache for MemoryTokenCache {
    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<CachedToken>, CacheError>> {
        let v = self.inner.get(key);
        Box::pin(std::future::ready(Ok(v)))
    }
    fn set<'a>(
        &'a self,
        key: &'a CacheKey,
        token: &'a CachedToken,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        self.inner.insert(key.clone(), token.clone());
        Box::pin(std::future::ready(Ok(())))
    }
    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<(), CacheError>> {
        self.inner.invalidate(key);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_order_insensitive_and_separates_binding_and_type() {
        let t = Thumbprint::of_der(b"cert");
        let a = CacheKey::new(
            "https://A/t/",
            "T",
            "c",
            &["s2", "s1", "s1"],
            "MTLS_POP",
            Some(&t),
        );
        let b = CacheKey::new("https://a/t", "t", "c", &["s1", "s2"], "mtls_pop", Some(&t));
        assert_eq!(a, b);
        let unbound = CacheKey::new("https://a/t", "t", "c", &["s1", "s2"], "mtls_pop", None);
        assert_ne!(a, unbound);
        let bearer = CacheKey::new("https://a/t", "t", "c", &["s1", "s2"], "bearer", Some(&t));
        assert_ne!(a, bearer);
        let other = CacheKey::new(
            "https://a/t",
            "t",
            "c",
            &["s1", "s2"],
            "mtls_pop",
            Some(&Thumbprint::of_der(b"x")),
        );
        assert_ne!(a, other);
        assert!(a.as_str().contains(&t.to_base64url()));
    }

    #[test]
    fn cached_token_roundtrips_and_redacts() {
        let t = CachedToken::new("mtls_pop", Secret::new("tok-SECRET"), 100, Some(50), None);
        let json = serde_json::to_string(&t).unwrap();
        let back: CachedToken = serde_json::from_str(&json).unwrap();
        assert_eq!(back, t);
        assert!(!format!("{t:?}").contains("tok-SECRET"));
    }

    #[test]
    fn memory_cache_is_bounded_and_expires() {
        let c = MemoryTokenCache::new(10);
        let now = certbound_core::now_unix();
        for i in 0..100 {
            let k = CacheKey::new("a", "t", "c", &[format!("s{i}")], "bearer", None);
            c.inner.insert(
                k,
                CachedToken::new("Bearer", Secret::new("x"), now + 3600, None, None),
            );
        }
        assert!(c.len() <= 10, "{}", c.len());
        let k = CacheKey::new("a", "t", "c", &["old"], "bearer", None);
        c.inner.insert(
            k.clone(),
            CachedToken::new("Bearer", Secret::new("x"), now - 1, None, None),
        );
        assert!(c.get_now(&k).is_none());
    }
}
