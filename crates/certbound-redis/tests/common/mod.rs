//! Test harness: a private `redis-server` per test on a free loopback port (from
//! `certbound-test`), and a tiny HTTPS token endpoint (real TLS) that counts the requests it
//! serves.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use certbound_client::Secret;
use certbound_client::{CacheKey, CachedToken, TokenCache};
use certbound_core::tls::{ClientAuth, TrustAnchors};
use certbound_redis::{EncryptionKey, RedisCacheConfig, RedisTokenCache};

// Each test binary uses some of these.
#[allow(unused_imports)]
pub use certbound_test::eventually;
#[allow(unused_imports)]
pub use certbound_test::logs::LogCapture as LogSink;
#[allow(unused_imports)]
pub use certbound_test::redis::{RedisCluster, RedisServer, redis_available};

/// A plain connection to a [`RedisServer`], for poking at raw values.
pub trait RawConnection {
    /// Connects (multiplexed).
    fn raw(&self) -> impl Future<Output = redis::aio::MultiplexedConnection>;
}

impl RawConnection for RedisServer {
    async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection")
    }
}

/// A test key of 32 fixed bytes.
pub fn key_bytes(fill: u8) -> [u8; 32] {
    [fill; 32]
}

pub fn key(fill: u8) -> EncryptionKey {
    EncryptionKey::from_bytes(&key_bytes(fill)).expect("key")
}

/// An L2 with a generous command timeout (1 s), so a loaded CI machine does not turn a
/// slow-but-healthy local Redis into an outage.
pub async fn l2(url: &str, current: u8, older: &[u8]) -> RedisTokenCache {
    l2_timeouts(
        url,
        current,
        older,
        Duration::from_millis(50),
        Duration::from_secs(1),
    )
    .await
}

/// An L2 with the production default timeout (250 ms) and the given retry interval.
pub async fn l2_with(url: &str, current: u8, older: &[u8], retry: Duration) -> RedisTokenCache {
    l2_timeouts(url, current, older, retry, Duration::from_millis(250)).await
}

pub async fn l2_timeouts(
    url: &str,
    current: u8,
    older: &[u8],
    retry: Duration,
    timeout: Duration,
) -> RedisTokenCache {
    let mut b = RedisCacheConfig::builder()
        .connection_string(url)
        .key_prefix("test:")
        .encryption_key(key(current))
        .timeout(timeout)
        .retry_interval(retry)
        .max_retry_interval(retry);
    for o in older {
        b = b.older_key(key(*o));
    }
    RedisTokenCache::connect(b.build().expect("config"))
        .await
        .expect("connect")
}

pub fn cache_key(scope: &str) -> CacheKey {
    CacheKey::new(
        "https://login.example/tenant",
        "tenant",
        "client-id-7f3a",
        &[scope],
        "bearer",
        None,
    )
}

pub fn token(text: &str, lifetime: i64) -> CachedToken {
    CachedToken::new(
        "Bearer",
        Secret::new(text),
        certbound_core::now_unix() + lifetime,
        None,
        None,
    )
}

/// A tiny token endpoint over real TLS: `POST /token` returns a fresh, unique access token
/// and counts the calls.
pub struct Authority {
    pub addr: SocketAddr,
    pub calls: Arc<AtomicUsize>,
    pub ca_pem: String,
    _server: certbound_test::net::TlsHandle,
}

impl Authority {
    pub async fn start() -> Self {
        let pki = certbound_test::pki::TestPki::new("redis-test-ca");
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = axum::Router::new().route(
            "/token",
            axum::routing::post(move || {
                let counter = counter.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    axum::Json(serde_json::json!({
                        "access_token": format!("eyJ.SECRET-ACCESS-TOKEN-{n}-{}", std::process::id()),
                        "token_type": "Bearer",
                        "expires_in": 3600
                    }))
                }
            }),
        );
        let server = certbound_test::net::serve_tls(app, pki.server_config(ClientAuth::None)).await;
        Self {
            addr: server.addr,
            calls,
            ca_pem: pki.ca.cert().to_pem(),
            _server: server,
        }
    }

    pub fn token_url(&self) -> String {
        format!("https://localhost:{}/token", self.addr.port())
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// An HTTPS client trusting the test CA.
pub fn http_client(ca_pem: &str, authority: SocketAddr) -> reqwest::Client {
    let mut anchors = TrustAnchors::default();
    for c in
        certbound_core::Certificate::all_from_pem(ca_pem.as_bytes(), "test ca").expect("ca pem")
    {
        anchors.add(&c);
    }
    certbound_test::net::mtls_client_resolving(&anchors, None, "localhost", authority)
}

/// What the client does: the cache, else the authority (then the cache is filled).
/// Returns the token and whether it came from the cache.
pub async fn get_or_fetch(
    cache: &dyn TokenCache,
    key: &CacheKey,
    http: &reqwest::Client,
    token_url: &str,
) -> Result<(CachedToken, bool), String> {
    if let Some(t) = cache.get(key).await.map_err(|e| e.to_string())?
        && t.expires_on > certbound_core::now_unix() + 60
    {
        return Ok((t, true));
    }
    let resp = http
        .post(token_url)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .map_err(|e| format!("token request: {e}"))?;
    let body: serde_json::Value = resp.json().await.map_err(|e| format!("token json: {e}"))?;
    let at = body["access_token"].as_str().ok_or("no access_token")?;
    let exp = body["expires_in"].as_i64().ok_or("no expires_in")?;
    let t = CachedToken::new(
        body["token_type"].as_str().unwrap_or("Bearer"),
        Secret::new(at),
        certbound_core::now_unix() + exp,
        None,
        None,
    );
    cache.set(key, &t).await.map_err(|e| e.to_string())?;
    Ok((t, false))
}
