//! L1 (in-process memory) in front of L2 (Redis): read L1, then L2 (back-filling L1);
//! write both; remove from both.

use std::fmt;
use std::sync::Arc;

use certbound_client::MemoryTokenCache;
use certbound_client::{BoxFuture, CacheError, CacheKey, CachedToken, TokenCache};

use crate::config::RedisCacheConfig;
use crate::error::RedisConfigError;
use crate::l2::RedisTokenCache;

/// Default L1 capacity of [`TieredCache::from_json`].
pub const DEFAULT_L1_ENTRIES: u64 = 10_000;

/// A two-level token cache: a fast per-process L1 and a shared L2.
///
/// Reads try L1; on a miss — or when the L1 token is already due for refresh, so another
/// replica's fresher token in L2 is preferred over a new authority request — they read L2
/// and back-fill L1. Writes and removals go to both. L2 trouble never fails a call.
///
/// ```no_run
/// use certbound_client::{MemoryTokenCache, TokenCache};
/// use certbound_redis::{EncryptionKey, RedisCacheConfig, RedisTokenCache, TieredCache};
/// # async fn run() -> Result<(), certbound_redis::RedisConfigError> {
/// let l2 = RedisTokenCache::connect(
///     RedisCacheConfig::builder()
///         .connection_string("redis://127.0.0.1:6379")
///         .encryption_key(EncryptionKey::generate()?)
///         .build()?,
/// )
/// .await?;
/// let cache: std::sync::Arc<dyn TokenCache> =
///     std::sync::Arc::new(TieredCache::new(MemoryTokenCache::new(10_000), l2));
/// # let _ = cache; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TieredCache {
    l1: Arc<dyn TokenCache>,
    l2: Arc<dyn TokenCache>,
}

impl fmt::Debug for TieredCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredCache")
            .field("l1", &self.l1)
            .field("l2", &self.l2)
            .finish()
    }
}

impl TieredCache {
    /// `l1` in front of `l2`.
    pub fn new(l1: impl TokenCache + 'static, l2: impl TokenCache + 'static) -> Self {
        Self {
            l1: Arc::new(l1),
            l2: Arc::new(l2),
        }
    }

    /// The same from shared trait objects.
    pub fn from_arcs(l1: Arc<dyn TokenCache>, l2: Arc<dyn TokenCache>) -> Self {
        Self { l1, l2 }
    }

    /// From a whole configuration document (`TokenCache:Redis`, environment overrides from
    /// `vars`): `Ok(None)` when no Redis cache is configured. The L1 is a
    /// [`MemoryTokenCache`] of [`DEFAULT_L1_ENTRIES`].
    pub async fn from_json(
        document: &serde_json::Value,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Option<Self>, RedisConfigError> {
        let Some(config) = RedisCacheConfig::from_json_with_env(document, vars)? else {
            return Ok(None);
        };
        let l2 = RedisTokenCache::connect(config).await?;
        Ok(Some(Self::new(
            MemoryTokenCache::new(DEFAULT_L1_ENTRIES),
            l2,
        )))
    }

    /// Synchronous form of [`from_json`](Self::from_json) for set-up code such as
    /// `App::from_config_file`: Redis is contacted on first use. `l1_max_entries` bounds the
    /// L1 (e.g. `TokenCache:MaxEntries`). Must run inside a Tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use certbound_redis::TieredCache;
    /// let doc = serde_json::json!({ "TokenCache": { "Redis": {
    ///     "ConnectionString": "redis://127.0.0.1:1",
    ///     "EncryptionKey": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" } } });
    /// let cache = TieredCache::from_json_lazy(&doc, std::iter::empty(), 10_000).unwrap();
    /// assert!(cache.is_some());
    /// let none = TieredCache::from_json_lazy(&serde_json::json!({}), std::iter::empty(), 10).unwrap();
    /// assert!(none.is_none());
    /// # }
    /// ```
    pub fn from_json_lazy(
        document: &serde_json::Value,
        vars: impl IntoIterator<Item = (String, String)>,
        l1_max_entries: u64,
    ) -> Result<Option<Self>, RedisConfigError> {
        let Some(config) = RedisCacheConfig::from_json_with_env(document, vars)? else {
            return Ok(None);
        };
        let l2 = RedisTokenCache::new(config)?;
        Ok(Some(Self::new(MemoryTokenCache::new(l1_max_entries), l2)))
    }
}

/// Whether an L1 token is fresh enough to serve without asking L2 for a newer one.
fn fresh(token: &CachedToken, now: i64) -> bool {
    let due = token.refresh_on.unwrap_or_else(|| {
        if token.acquired_on > 0 && token.acquired_on < token.expires_on {
            token.acquired_on + (token.expires_on - token.acquired_on) / 2
        } else {
            token.expires_on
        }
    });
    now < due.min(token.expires_on)
}

impl TokenCache for TieredCache {
    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<CachedToken>, CacheError>> {
        Box::pin(async move {
            let local = match self.l1.get(key).await {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(target: "certbound_redis", error = %e, "L1 cache read failed");
                    None
                }
            };
            let now = certbound_core_now();
            if local.as_ref().is_some_and(|t| fresh(t, now)) {
                return Ok(local);
            }
            let remote = self.l2.get(key).await.unwrap_or_else(|e| {
                tracing::debug!(target: "certbound_redis", error = %e, "L2 cache read failed");
                None
            });
            match (local, remote) {
                (Some(l), Some(r)) if r.expires_on > l.expires_on => {
                    let _ = self.l1.set(key, &r).await;
                    Ok(Some(r))
                }
                (Some(l), _) => Ok(Some(l)),
                (None, Some(r)) => {
                    if r.expires_on > now {
                        let _ = self.l1.set(key, &r).await;
                    }
                    Ok(Some(r))
                }
                (None, None) => Ok(None),
            }
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a CacheKey,
        token: &'a CachedToken,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let l1 = self.l1.set(key, token).await;
            if let Err(e) = self.l2.set(key, token).await {
                tracing::debug!(target: "certbound_redis", error = %e, "L2 cache write failed");
            }
            l1
        })
    }

    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let l1 = self.l1.remove(key).await;
            if let Err(e) = self.l2.remove(key).await {
                tracing::debug!(target: "certbound_redis", error = %e, "L2 cache removal failed");
            }
            l1
        })
    }
}

fn certbound_core_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use certbound_client::Secret;

    fn token(expires_on: i64, acquired_on: i64, refresh_on: Option<i64>) -> CachedToken {
        let mut t = CachedToken::new("Bearer", Secret::new("t"), expires_on, refresh_on, None);
        t.acquired_on = acquired_on;
        t
    }

    fn key() -> CacheKey {
        CacheKey::new("https://a", "t", "c", &["s"], "bearer", None)
    }

    #[test]
    fn freshness_rule() {
        assert!(fresh(&token(1000, 0, Some(900)), 899));
        assert!(!fresh(&token(1000, 0, Some(900)), 900));
        assert!(fresh(&token(1000, 200, None), 599));
        assert!(!fresh(&token(1000, 200, None), 600));
        assert!(!fresh(&token(1000, 0, None), 1000));
    }

    #[tokio::test]
    async fn reads_l1_then_l2_and_backfills() {
        let l1 = MemoryTokenCache::new(10);
        let l2 = MemoryTokenCache::new(10);
        let tiered = TieredCache::new(l1.clone(), l2.clone());
        let now = certbound_core_now();
        let k = key();
        assert!(tiered.get(&k).await.unwrap().is_none());
        let t = token(now + 3600, now, None);
        l2.set(&k, &t).await.unwrap();
        assert_eq!(tiered.get(&k).await.unwrap().as_ref(), Some(&t));
        assert_eq!(l1.get_now(&k).as_ref(), Some(&t), "L1 back-filled");
        // Writes reach both, removals both.
        let t2 = token(now + 7200, now, None);
        tiered.set(&k, &t2).await.unwrap();
        assert_eq!(l1.get_now(&k).as_ref(), Some(&t2));
        assert_eq!(l2.get_now(&k).as_ref(), Some(&t2));
        tiered.remove(&k).await.unwrap();
        assert!(l1.get_now(&k).is_none() && l2.get_now(&k).is_none());
    }

    #[tokio::test]
    async fn due_l1_token_prefers_newer_l2_token() {
        let l1 = MemoryTokenCache::new(10);
        let l2 = MemoryTokenCache::new(10);
        let tiered = TieredCache::new(l1.clone(), l2.clone());
        let now = certbound_core_now();
        let k = key();
        let old = token(now + 60, now - 3540, None); // past half-life
        let newer = token(now + 3600, now, None);
        l1.set(&k, &old).await.unwrap();
        l2.set(&k, &newer).await.unwrap();
        assert_eq!(tiered.get(&k).await.unwrap().as_ref(), Some(&newer));
        assert_eq!(l1.get_now(&k).as_ref(), Some(&newer));
        // A due L1 token with nothing newer in L2 is still served (the App refreshes it).
        l2.remove(&k).await.unwrap();
        l1.set(&k, &old).await.unwrap();
        assert_eq!(tiered.get(&k).await.unwrap().as_ref(), Some(&old));
    }
}
