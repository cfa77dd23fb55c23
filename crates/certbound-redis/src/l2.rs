//! The Redis L2: encrypted entries under hashed key names, every command bounded by a
//! timeout, failures absorbed (a cache miss, never an error) and logged once per outage.
//!
//! Redis key name: `KeyPrefix ‖ hex(SHA-256(cache key string))` — no secret, no token.
//! Redis value: the [`crate::crypto`] envelope. TTL: the token's remaining lifetime.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_lc_rs::digest;
use certbound_client::{BoxFuture, CacheError, CacheKey, CachedToken, TokenCache};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisError};
use zeroize::Zeroizing;

use crate::config::{RedisCacheConfig, redact_url};
use crate::crypto::{Keyring, OpenError};
use crate::error::RedisConfigError;
use crate::health::{Admit, Health};

/// The largest Redis value read or written (bytes). Reads ask Redis for at most one byte
/// more (`GETRANGE key 0 MAX_ENTRY_BYTES`), so a huge value under a cache key costs this
/// much, not its size; such an entry is unusable and removed. A sealed token (at most 64 KiB
/// of access token) is far smaller.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;

/// Counters of a [`RedisTokenCache`], for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L2Stats {
    /// Reads that found and opened an entry.
    pub hits: u64,
    /// Reads that found nothing.
    pub misses: u64,
    /// Entries written.
    pub writes: u64,
    /// Commands that failed because Redis was down, slow or answered garbage.
    pub failures: u64,
    /// Calls that did not try Redis because it was known to be down.
    pub skipped: u64,
    /// Entries that could not be opened (tampered, unknown key, malformed) and were removed.
    pub discarded: u64,
    /// Entries opened with an older key and re-sealed under the current key.
    pub resealed: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    writes: AtomicU64,
    failures: AtomicU64,
    skipped: AtomicU64,
    discarded: AtomicU64,
    resealed: AtomicU64,
}

enum Backend {
    Single(ConnectionManager),
    Cluster(Box<ClusterBackend>),
}

struct ClusterBackend {
    client: ClusterClient,
    /// Built on first use; dropped after an outage so the next attempt rediscovers the
    /// topology from the seed nodes.
    conn: Mutex<Option<ClusterConnection>>,
}

impl ClusterBackend {
    fn lock(&self) -> MutexGuard<'_, Option<ClusterConnection>> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

struct Inner {
    backend: Backend,
    keyring: Keyring,
    prefix: String,
    timeout: Duration,
    health: Health,
    counters: Counters,
    target: String,
}

/// An encrypted token cache on Redis (single node through a [`ConnectionManager`], or Redis
/// Cluster). Cheap to clone; clones share connections and health.
///
/// It never fails a caller: when Redis is unreachable, slow or answers garbage, reads miss
/// and writes are dropped; the outage is logged once and Redis is retried in the
/// background of later calls (one bounded attempt per retry interval), so a down Redis
/// costs nothing per call.
///
/// ```no_run
/// use certbound_redis::{EncryptionKey, RedisCacheConfig, RedisTokenCache};
/// # async fn run() -> Result<(), certbound_redis::RedisConfigError> {
/// let config = RedisCacheConfig::builder()
///     .connection_string("redis://127.0.0.1:6379")
///     .encryption_key(EncryptionKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?)
///     .build()?;
/// let l2 = RedisTokenCache::connect(config).await?;
/// l2.put_bytes("app|scope", b"{\"access_token\":\"...\"}", std::time::Duration::from_secs(3600)).await;
/// let back = l2.get_bytes("app|scope").await;
/// # let _ = back; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisTokenCache {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisTokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTokenCache")
            .field("redis", &self.inner.target)
            .field("prefix", &self.inner.prefix)
            .field("keyring", &self.inner.keyring)
            .field("timeout", &self.inner.timeout)
            .field("available", &self.inner.health.is_up())
            .finish()
    }
}

enum Failure {
    /// Redis itself is unusable right now.
    Outage(String),
    /// Redis answered, but this entry is unusable (e.g. wrong type).
    Entry(String),
}

fn classify(e: &RedisError) -> Failure {
    if e.kind() == redis::ErrorKind::UnexpectedReturnType || e.code() == Some("WRONGTYPE") {
        Failure::Entry(format!("{:?}", e.kind()))
    } else {
        // The kind and code only: messages may carry node addresses with credentials.
        Failure::Outage(match e.code() {
            Some(code) => format!("{:?} ({code})", e.kind()),
            None if e.is_timeout() => "timed out".to_owned(),
            None if e.is_connection_refusal() => "connection refused".to_owned(),
            None if e.is_connection_dropped() => "connection dropped".to_owned(),
            None => format!("{:?}", e.kind()),
        })
    }
}

impl RedisTokenCache {
    /// Builds the cache and tries Redis once (bounded by the timeout). An unreachable Redis
    /// is logged, not an error: the cache starts in the "unavailable" state and recovers by
    /// itself. Must be called inside a Tokio runtime.
    pub async fn connect(config: RedisCacheConfig) -> Result<Self, RedisConfigError> {
        let cache = Self::new(config)?;
        let _: Option<String> = cache.run(&redis::cmd("PING")).await.ok().flatten();
        Ok(cache)
    }

    /// Builds the cache without contacting Redis (the first call connects). For synchronous
    /// set-up code; it must run inside a Tokio runtime (the connection task is spawned on it),
    /// otherwise an error says so.
    pub fn new(config: RedisCacheConfig) -> Result<Self, RedisConfigError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(RedisConfigError::invalid(
                "TokenCache:Redis",
                "needs a Tokio runtime: build the token cache (or the app) from within one",
            ));
        }
        let target = config
            .nodes
            .iter()
            .map(|n| redact_url(n))
            .collect::<Vec<_>>()
            .join(",");
        let backend = if config.cluster {
            let mut builder = ClusterClient::builder(config.nodes.clone());
            if let Some(pem) = &config.tls_ca_pem {
                builder = builder.certs(redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                });
            }
            let client = builder
                .connection_timeout(config.timeout)
                .response_timeout(config.timeout)
                .retries(1)
                .min_retry_wait(10)
                .max_retry_wait(config.timeout.as_millis().max(1) as u64)
                .build()
                .map_err(|e| {
                    RedisConfigError::invalid(
                        "TokenCache:Redis:ConnectionString",
                        format!("cannot be used for Redis Cluster ({:?})", e.kind()),
                    )
                })?;
            Backend::Cluster(Box::new(ClusterBackend {
                client,
                conn: Mutex::new(None),
            }))
        } else {
            let url = config.nodes.first().ok_or_else(|| {
                RedisConfigError::missing("TokenCache:Redis:ConnectionString", "name a Redis node")
            })?;
            let client = match &config.tls_ca_pem {
                Some(pem) => redis::Client::build_with_tls(
                    url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(pem.clone()),
                    },
                ),
                None => redis::Client::open(url.as_str()),
            }
            .map_err(|e| {
                RedisConfigError::invalid(
                    "TokenCache:Redis:ConnectionString",
                    format!("is not a usable Redis URL ({:?})", e.kind()),
                )
            })?;
            let cm_config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(config.timeout))
                .set_response_timeout(Some(config.timeout))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(10))
                .set_max_delay(config.timeout);
            let manager =
                ConnectionManager::new_lazy_with_config(client, cm_config).map_err(|e| {
                    RedisConfigError::invalid(
                        "TokenCache:Redis:ConnectionString",
                        format!("cannot be used ({:?})", e.kind()),
                    )
                })?;
            Backend::Single(manager)
        };
        Ok(Self {
            inner: Arc::new(Inner {
                backend,
                health: Health::new(
                    config.retry_interval,
                    config.max_retry_interval,
                    target.clone(),
                ),
                keyring: config.keyring,
                prefix: config.key_prefix,
                timeout: config.timeout,
                counters: Counters::default(),
                target,
            }),
        })
    }

    /// The Redis key name of a cache key: the prefix and the hex SHA-256 of the key string.
    pub fn redis_key(&self, cache_key: &str) -> String {
        let d = digest::digest(&digest::SHA256, cache_key.as_bytes());
        let mut s = String::with_capacity(self.inner.prefix.len() + 64);
        s.push_str(&self.inner.prefix);
        s.push_str(&hex::encode(d.as_ref()));
        s
    }

    /// Whether Redis is currently believed reachable.
    pub fn is_available(&self) -> bool {
        self.inner.health.is_up()
    }

    /// Counters since creation.
    pub fn stats(&self) -> L2Stats {
        let c = &self.inner.counters;
        L2Stats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            writes: c.writes.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            discarded: c.discarded.load(Ordering::Relaxed),
            resealed: c.resealed.load(Ordering::Relaxed),
        }
    }

    async fn conn(&self) -> Result<Conn, RedisError> {
        match &self.inner.backend {
            Backend::Single(m) => Ok(Conn::Single(m.clone())),
            Backend::Cluster(cluster) => {
                if let Some(c) = cluster.lock().as_ref() {
                    return Ok(Conn::Cluster(c.clone()));
                }
                let c = cluster.client.get_async_connection().await?;
                *cluster.lock() = Some(c.clone());
                Ok(Conn::Cluster(c))
            }
        }
    }

    fn forget_cluster_connection(&self) {
        if let Backend::Cluster(cluster) = &self.inner.backend {
            *cluster.lock() = None;
        }
    }

    /// Runs one command under the circuit breaker and the timeout. `Ok(None)`: skipped or
    /// failed (already counted and logged); `Err`: Redis answered but the entry is unusable.
    async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<Option<T>, String> {
        let admit = self.inner.health.admit();
        if admit == Admit::Skip {
            self.inner.counters.skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let attempt = async {
            match self.conn().await? {
                Conn::Single(mut c) => cmd.query_async::<T>(&mut c).await,
                Conn::Cluster(mut c) => cmd.query_async::<T>(&mut c).await,
            }
        };
        let outcome = match tokio::time::timeout(self.inner.timeout, attempt).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(&e)),
            Err(_) => Err(Failure::Outage(format!(
                "no answer within {} ms",
                self.inner.timeout.as_millis()
            ))),
        };
        match outcome {
            Ok(v) => {
                self.inner.health.success(admit);
                Ok(Some(v))
            }
            Err(Failure::Entry(e)) => {
                self.inner.health.success(admit);
                Err(e)
            }
            Err(Failure::Outage(e)) => {
                self.inner.counters.failures.fetch_add(1, Ordering::Relaxed);
                self.forget_cluster_connection();
                self.inner.health.failure(admit, &e);
                Ok(None)
            }
        }
    }

    /// Reads and opens the entry of `cache_key`. `None` on a miss, when Redis is unavailable,
    /// or when the entry is unusable (which is then removed). An entry sealed under an older
    /// key is re-sealed under the current key in the background.
    pub async fn get_bytes(&self, cache_key: &str) -> Option<Zeroizing<Vec<u8>>> {
        let rkey = self.redis_key(cache_key);
        // A bounded read: GETRANGE's end is inclusive, so at most MAX_ENTRY_BYTES + 1 bytes
        // come back (an absent key reads as empty).
        let raw = match self
            .run::<Vec<u8>>(
                redis::cmd("GETRANGE")
                    .arg(&rkey)
                    .arg(0)
                    .arg(MAX_ENTRY_BYTES),
            )
            .await
        {
            Ok(Some(raw)) if raw.is_empty() => {
                self.inner.counters.misses.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            Ok(Some(raw)) if raw.len() > MAX_ENTRY_BYTES => {
                self.discard(
                    &rkey,
                    &format!("entry larger than {MAX_ENTRY_BYTES} bytes; not read further"),
                )
                .await;
                return None;
            }
            Ok(Some(raw)) => raw,
            Ok(None) => return None,
            Err(why) => {
                self.discard(&rkey, &why).await;
                return None;
            }
        };
        match self.inner.keyring.open(cache_key, &raw) {
            Ok(opened) => {
                self.inner.counters.hits.fetch_add(1, Ordering::Relaxed);
                if opened.rotated {
                    self.reseal_in_background(cache_key, &opened.plaintext, rkey);
                }
                Some(opened.plaintext)
            }
            Err(e) => {
                self.discard(&rkey, &e.to_string()).await;
                None
            }
        }
    }

    /// Removes an unusable entry and says so (without any entry bytes).
    pub(crate) async fn discard(&self, rkey: &str, why: &str) {
        self.inner
            .counters
            .discarded
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            target: "certbound_redis",
            redis_key = %rkey,
            reason = %why,
            "ignoring and removing an unusable token cache entry"
        );
        let _: Result<Option<i64>, _> = self.run(redis::cmd("DEL").arg(rkey)).await;
    }

    fn reseal_in_background(&self, cache_key: &str, plaintext: &[u8], rkey: String) {
        let Ok(sealed) = self.inner.keyring.seal(cache_key, plaintext) else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            // Same remaining lifetime; only if the entry is still there.
            let mut cmd = redis::cmd("SET");
            cmd.arg(&rkey).arg(sealed).arg("KEEPTTL").arg("XX");
            if let Ok(Some(Some(_))) = this.run::<Option<String>>(&cmd).await {
                this.inner.counters.resealed.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    /// Seals `plaintext` for `cache_key` and stores it for `ttl` (rounded up to whole
    /// milliseconds; nothing is stored for a zero TTL). Failures are absorbed.
    pub async fn put_bytes(&self, cache_key: &str, plaintext: &[u8], ttl: Duration) {
        let ttl_ms = ttl.as_millis().min(u64::MAX as u128) as u64;
        if ttl_ms == 0 {
            return;
        }
        let sealed = match self.inner.keyring.seal(cache_key, plaintext) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(target: "certbound_redis", error = %e, "not caching a token in Redis");
                return;
            }
        };
        if sealed.len() > MAX_ENTRY_BYTES {
            tracing::warn!(target: "certbound_redis", bytes = sealed.len(), limit = MAX_ENTRY_BYTES,
                "not caching a token in Redis: the entry is larger than the limit");
            return;
        }
        let rkey = self.redis_key(cache_key);
        let mut cmd = redis::cmd("SET");
        cmd.arg(&rkey).arg(sealed).arg("PX").arg(ttl_ms);
        if let Ok(Some(_)) = self.run::<redis::Value>(&cmd).await {
            self.inner.counters.writes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Removes the entry of `cache_key`. Failures are absorbed.
    pub async fn remove_bytes(&self, cache_key: &str) {
        let rkey = self.redis_key(cache_key);
        let _: Result<Option<i64>, _> = self.run(redis::cmd("DEL").arg(&rkey)).await;
    }

    /// Opens raw envelope bytes for `cache_key` (no Redis access), e.g. for diagnostics.
    pub fn open_envelope(
        &self,
        cache_key: &str,
        envelope: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        self.inner
            .keyring
            .open(cache_key, envelope)
            .map(|o| o.plaintext)
    }
}

/// The L2 as a `certbound-client` [`TokenCache`]: entries are the JSON of [`CachedToken`],
/// sealed for [`CacheKey::as_str`]; the Redis TTL is the token's remaining lifetime.
/// Never returns an error: Redis trouble is a miss (logged once per outage).
impl TokenCache for RedisTokenCache {
    fn get<'a>(
        &'a self,
        key: &'a CacheKey,
    ) -> BoxFuture<'a, Result<Option<CachedToken>, CacheError>> {
        Box::pin(async move {
            let Some(plain) = self.get_bytes(key.as_str()).await else {
                return Ok(None);
            };
            match serde_json::from_slice::<CachedToken>(&plain) {
                Ok(token) => Ok(Some(token)),
                Err(e) => {
                    // Authenticated but not a token: written by an incompatible version.
                    let why = format!(
                        "not a cached token (line {}, column {})",
                        e.line(),
                        e.column()
                    );
                    self.discard(&self.redis_key(key.as_str()), &why).await;
                    Ok(None)
                }
            }
        })
    }

    fn set<'a>(
        &'a self,
        key: &'a CacheKey,
        token: &'a CachedToken,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            let left_ms = token
                .expires_on
                .saturating_mul(1000)
                .saturating_sub(now_unix_ms());
            if left_ms <= 0 {
                return Ok(());
            }
            let json = match serde_json::to_vec(token) {
                Ok(j) => Zeroizing::new(j),
                Err(_) => return Ok(()),
            };
            self.put_bytes(key.as_str(), &json, Duration::from_millis(left_ms as u64))
                .await;
            Ok(())
        })
    }

    fn remove<'a>(&'a self, key: &'a CacheKey) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move {
            self.remove_bytes(key.as_str()).await;
            Ok(())
        })
    }
}

fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
