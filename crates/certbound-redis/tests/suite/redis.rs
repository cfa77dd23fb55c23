//! The Redis L2 against a real `redis-server` (one private server per test).
#![allow(clippy::string_slice)]
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::time::Duration;

use certbound_client::MemoryTokenCache;
use certbound_client::TokenCache;
use certbound_redis::TieredCache;
use common::*;
use redis::AsyncCommands as _;

const TOKEN_TEXT: &str = "eyJhbGciOi.SECRET-TOKEN-TEXT.sig";

#[tokio::test]
async fn round_trip_with_ttl_and_nothing_readable_in_redis() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start();
    let l2 = l2(&server.url(), 1, &[]).await;
    let ck = cache_key("api://orders/.default");
    assert!(l2.get(&ck).await.unwrap().is_none());
    let tok = token(TOKEN_TEXT, 3600);
    l2.set(&ck, &tok).await.unwrap();
    assert_eq!(l2.get(&ck).await.unwrap().as_ref(), Some(&tok));
    let s = l2.stats();
    assert_eq!(
        (s.hits, s.misses, s.writes, s.failures),
        (1, 1, 1, 0),
        "{s:?}"
    );

    // Key names: prefix + hex SHA-256, nothing else.
    let keys = server.cli(&["KEYS", "*"]);
    let names: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(names, vec![l2.redis_key(ck.as_str()).as_str()], "{keys}");
    let name = names[0];
    assert!(name.starts_with("test:") && name.len() == 5 + 64, "{name}");
    assert!(name[5..].bytes().all(|b| b.is_ascii_hexdigit()));
    // Values: sealed; neither the token, the client id nor the scope is visible.
    let value = server.cli(&["GET", name]);
    for needle in [
        "SECRET-TOKEN",
        "eyJ",
        "client-id-7f3a",
        "orders",
        "Bearer",
        "access_token",
    ] {
        assert!(!value.contains(needle), "{needle} visible in {value:?}");
        assert!(!keys.contains(needle), "{needle} visible in key names");
    }
    // Binary-safe check too.
    let mut raw = server.raw().await;
    let bytes: Vec<u8> = raw.get(name).await.unwrap();
    assert!(!bytes.windows(12).any(|w| w == b"SECRET-TOKEN"));
    assert_eq!(bytes[0], 1, "envelope version");
    // The Redis TTL is the token's remaining lifetime.
    let pttl: i64 = raw.pttl(name).await.unwrap();
    assert!(pttl > 3_590_000 && pttl <= 3_600_000, "{pttl}");

    // Remove.
    l2.remove(&ck).await.unwrap();
    assert_eq!(server.cli(&["DBSIZE"]).trim(), "0");
    // Expired tokens are not written.
    l2.set(&ck, &token(TOKEN_TEXT, -5)).await.unwrap();
    assert_eq!(server.cli(&["DBSIZE"]).trim(), "0");
}

#[tokio::test]
async fn tampered_entry_is_ignored_and_removed() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start();
    let l2 = l2(&server.url(), 1, &[]).await;
    let ck = cache_key("s");
    l2.set(&ck, &token(TOKEN_TEXT, 3600)).await.unwrap();
    let name = l2.redis_key(ck.as_str());
    let mut raw = server.raw().await;
    let mut bytes: Vec<u8> = raw.get(&name).await.unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    let _: () = raw.set(&name, bytes).await.unwrap();

    let sink = LogSink::default();
    let _guard = tracing::subscriber::set_default(sink.subscriber());
    assert!(l2.get(&ck).await.unwrap().is_none());
    let exists: bool = raw.exists(&name).await.unwrap();
    assert!(!exists, "tampered entry removed");
    assert_eq!(l2.stats().discarded, 1);
    let log = sink.text();
    assert!(log.contains("failed authentication"), "{log}");
}

#[tokio::test]
async fn entry_copied_under_another_key_is_rejected() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start();
    let l2 = l2(&server.url(), 1, &[]).await;
    let (a, b) = (cache_key("a"), cache_key("b"));
    l2.set(&a, &token(TOKEN_TEXT, 3600)).await.unwrap();
    let mut raw = server.raw().await;
    let bytes: Vec<u8> = raw.get(l2.redis_key(a.as_str())).await.unwrap();
    let _: () = raw.set(l2.redis_key(b.as_str()), bytes).await.unwrap();
    assert!(
        l2.get(&b).await.unwrap().is_none(),
        "swapped entry must not open"
    );
    let exists: bool = raw.exists(l2.redis_key(b.as_str())).await.unwrap();
    assert!(!exists);
    assert!(
        l2.get(&a).await.unwrap().is_some(),
        "the original is untouched"
    );
}

#[tokio::test]
async fn rotated_key_still_opens_and_entry_is_resealed() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start();
    let before = l2(&server.url(), 1, &[]).await;
    let ck = cache_key("s");
    let tok = token(TOKEN_TEXT, 3600);
    before.set(&ck, &tok).await.unwrap();
    let name = before.redis_key(ck.as_str());
    let mut raw = server.raw().await;
    let ttl_before: i64 = raw.pttl(&name).await.unwrap();

    // New current key 2, old key 1 kept for reading.
    let after = l2(&server.url(), 2, &[1]).await;
    assert_eq!(after.get(&ck).await.unwrap().as_ref(), Some(&tok));
    eventually("re-sealed under the new key", async || {
        after.stats().resealed == 1
    })
    .await;
    let bytes: Vec<u8> = raw.get(&name).await.unwrap();
    assert_eq!(&bytes[1..9], &hex_id(2)[..]);
    let ttl_after: i64 = raw.pttl(&name).await.unwrap();
    assert!(
        ttl_after <= ttl_before && ttl_after > 0,
        "TTL kept: {ttl_before} → {ttl_after}"
    );
    // A replica that only has the new key now reads it.
    let only_new = l2(&server.url(), 2, &[]).await;
    assert_eq!(only_new.get(&ck).await.unwrap().as_ref(), Some(&tok));
    // New writes use the new key.
    after.set(&ck, &tok).await.unwrap();
    let bytes: Vec<u8> = raw.get(&name).await.unwrap();
    assert_eq!(&bytes[1..9], &hex_id(2)[..]);
}

fn hex_id(fill: u8) -> Vec<u8> {
    let hex = key(fill).id().to_hex();
    (0..8)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn wrong_key_is_ignored_and_removed() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start();
    let writer = l2(&server.url(), 1, &[]).await;
    let ck = cache_key("s");
    writer.set(&ck, &token(TOKEN_TEXT, 3600)).await.unwrap();
    let sink = LogSink::default();
    let _guard = tracing::subscriber::set_default(sink.subscriber());
    let stranger = l2(&server.url(), 9, &[]).await;
    assert!(stranger.get(&ck).await.unwrap().is_none());
    assert_eq!(
        server.cli(&["DBSIZE"]).trim(),
        "0",
        "undecryptable entry removed"
    );
    let log = sink.text();
    assert!(
        log.contains(&key(1).id().to_hex()) && log.contains("EncryptionKeys"),
        "{log}"
    );
    assert!(!log.contains("SECRET-TOKEN"));
}

#[tokio::test]
async fn garbage_values_are_ignored_and_removed() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start();
    let l2 = l2(&server.url(), 1, &[]).await;
    let mut raw = server.raw().await;
    // Not an envelope.
    let k1 = cache_key("garbage");
    let _: () = raw.set(l2.redis_key(k1.as_str()), "hello").await.unwrap();
    assert!(l2.get(&k1).await.unwrap().is_none());
    // Wrong Redis type.
    let k2 = cache_key("hash");
    let _: () = raw.hset(l2.redis_key(k2.as_str()), "f", "v").await.unwrap();
    assert!(l2.get(&k2).await.unwrap().is_none());
    assert_eq!(server.cli(&["DBSIZE"]).trim(), "0");
    assert_eq!(l2.stats().discarded, 2);
    assert_eq!(l2.stats().failures, 0, "entry problems are not outages");
    assert!(l2.is_available());
}

#[tokio::test]
async fn redis_killed_mid_run_and_restarted() {
    if !redis_available() {
        return;
    }
    let sink = LogSink::default();
    let _guard = tracing::subscriber::set_default(sink.subscriber());
    let mut server = RedisServer::start();
    let authority = Authority::start().await;
    let http = http_client(&authority.ca_pem, authority.addr);
    let l2 = l2(&server.url(), 1, &[]).await;
    let cache = TieredCache::new(MemoryTokenCache::new(100), l2.clone());

    let hot = cache_key("hot");
    let (first, from_cache) = get_or_fetch(&cache, &hot, &http, &authority.token_url())
        .await
        .unwrap();
    assert!(!from_cache);
    server.kill();
    // Redis gone: every call still succeeds — L1 serves the hot key, the authority new keys.
    for i in 0..50 {
        let (t, cached) = get_or_fetch(&cache, &hot, &http, &authority.token_url())
            .await
            .unwrap();
        assert!(cached && t == first);
        let cold = cache_key(&format!("cold-{i}"));
        get_or_fetch(&cache, &cold, &http, &authority.token_url())
            .await
            .unwrap();
    }
    assert_eq!(authority.calls(), 51);
    assert!(!l2.is_available());
    assert!(
        l2.stats().skipped > 0,
        "calls skip Redis while it is down: {:?}",
        l2.stats()
    );

    server.restart();
    // Recovers by itself: keep serving calls until a write reaches Redis again.
    let writes_before = l2.stats().writes;
    let mut i = 0;
    eventually("L2 written again after restart", async || {
        i += 1;
        let k = cache_key(&format!("after-{i}"));
        get_or_fetch(&cache, &k, &http, &authority.token_url())
            .await
            .unwrap();
        l2.stats().writes > writes_before
    })
    .await;
    assert!(l2.is_available());
    // …and read again: a fresh process (empty L1) finds a token written after the restart.
    let k = cache_key(&format!("after-{i}"));
    let other_replica = TieredCache::new(MemoryTokenCache::new(100), l2.clone());
    let calls = authority.calls();
    let (_, cached) = get_or_fetch(&other_replica, &k, &http, &authority.token_url())
        .await
        .unwrap();
    assert!(cached, "served from L2");
    assert_eq!(authority.calls(), calls);

    let log = sink.text();
    assert_eq!(
        log.matches("Redis token cache unavailable").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("Redis token cache recovered").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("SECRET"), "no token in logs");
}

#[tokio::test]
async fn frozen_redis_is_bounded_by_the_timeout() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start();
    let l2 = l2_with(&server.url(), 1, &[], Duration::from_millis(100)).await;
    let cache = TieredCache::new(MemoryTokenCache::new(100), l2.clone());
    let k = cache_key("frozen");
    let tok = token(TOKEN_TEXT, 3600);
    // Written through a patient connection too, so the entry is surely in Redis.
    common::l2(&server.url(), 1, &[])
        .await
        .set(&k, &tok)
        .await
        .unwrap();
    cache.set(&k, &tok).await.unwrap();
    server.signal("STOP");
    // Neither reads nor writes hang: every call returns (through L1) while Redis is frozen.
    let fresh = cache_key("fresh");
    for _ in 0..20 {
        assert!(cache.get(&k).await.unwrap().is_some());
        assert!(cache.get(&fresh).await.unwrap().is_none());
        cache
            .set(&cache_key("written"), &token(TOKEN_TEXT, 3600))
            .await
            .unwrap();
    }
    assert!(l2.stats().failures >= 1);
    assert!(!l2.is_available());
    server.signal("CONT");
    eventually("recovery after SIGCONT", async || {
        let _ = cache.get(&fresh).await;
        l2.is_available()
    })
    .await;
    let l2_only = TieredCache::new(MemoryTokenCache::new(1), l2.clone());
    assert!(l2_only.get(&k).await.unwrap().is_some());
}

#[tokio::test]
async fn a_peer_speaking_garbage_is_an_outage_not_an_error() {
    // Not Redis at all: a TCP peer answering nonsense. No redis-server needed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        while let Ok((mut s, _)) = listener.accept().await {
            let _ = s.write_all(b"\x00\xffHTTP/1.1 400 garbage\r\n\r\n").await;
        }
    });
    let sink = LogSink::default();
    let _guard = tracing::subscriber::set_default(sink.subscriber());
    let l2 = l2(&format!("redis://127.0.0.1:{port}"), 1, &[]).await;
    let cache = TieredCache::new(MemoryTokenCache::new(10), l2.clone());
    let k = cache_key("x");
    for _ in 0..20 {
        cache.set(&k, &token(TOKEN_TEXT, 3600)).await.unwrap();
        assert!(cache.get(&k).await.unwrap().is_some(), "L1 still serves");
    }
    assert!(!l2.is_available());
    let log = sink.text();
    assert_eq!(
        log.matches("Redis token cache unavailable").count(),
        1,
        "{log}"
    );
}

#[tokio::test]
async fn unreachable_at_startup_then_appears() {
    if !redis_available() {
        return;
    }
    // Configure a port where nothing listens yet.
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let l2 = l2(&url, 1, &[]).await;
    assert!(!l2.is_available());
    let k = cache_key("late");
    assert!(l2.get(&k).await.unwrap().is_none());
    server.restart();
    eventually("connects once Redis appears", async || {
        l2.set(&k, &token(TOKEN_TEXT, 3600)).await.unwrap();
        l2.stats().writes == 1
    })
    .await;
    assert!(l2.get(&k).await.unwrap().is_some());
}

#[tokio::test]
async fn debug_output_is_redacted() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start();
    let url = format!("redis://:hunter2pw@127.0.0.1:{}", server.port);
    let _ = server.cli(&["CONFIG", "SET", "requirepass", "hunter2pw"]);
    let config = certbound_redis::RedisCacheConfig::builder()
        .connection_string(&url)
        .encryption_key(key(1))
        .build()
        .unwrap();
    let cfg_dbg = format!("{config:?}");
    let l2 = certbound_redis::RedisTokenCache::connect(config)
        .await
        .unwrap();
    let k = cache_key("s");
    l2.set(&k, &token(TOKEN_TEXT, 3600)).await.unwrap();
    assert!(
        l2.get(&k).await.unwrap().is_some(),
        "authenticated connection works"
    );
    let cache = TieredCache::new(MemoryTokenCache::new(10), l2.clone());
    let all = format!("{cfg_dbg} {l2:?} {cache:?} {:?}", key(1));
    assert!(!all.contains("hunter2pw"), "{all}");
    assert!(!all.contains("SECRET"), "{all}");
    assert!(!all.contains("[1, 1, 1"), "{all}");
}

#[tokio::test]
async fn redis_cluster_shares_tokens_across_slots() {
    if !redis_available() {
        return;
    }
    let mut cluster = RedisCluster::start();
    let config = certbound_redis::RedisCacheConfig::builder()
        .connection_string(cluster.connection_string())
        .key_prefix("test:")
        .encryption_key(key(1))
        .timeout(Duration::from_secs(1))
        .retry_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    assert!(config.is_cluster());
    let l2 = certbound_redis::RedisTokenCache::connect(config)
        .await
        .unwrap();
    assert!(l2.is_available());
    // Enough keys to land on every master.
    let keys: Vec<_> = (0..30).map(|i| cache_key(&format!("scope-{i}"))).collect();
    for (i, k) in keys.iter().enumerate() {
        l2.set(k, &token(&format!("{TOKEN_TEXT}-{i}"), 3600))
            .await
            .unwrap();
    }
    let other_replica = TieredCache::new(MemoryTokenCache::new(100), l2.clone());
    for (i, k) in keys.iter().enumerate() {
        let t = other_replica.get(k).await.unwrap().expect("cluster hit");
        assert_eq!(t.access_token.expose(), format!("{TOKEN_TEXT}-{i}"));
    }
    let stored = cluster.all_keys();
    assert_eq!(stored.len(), 30);
    assert!(
        stored
            .iter()
            .all(|k| k.starts_with("test:") && !k.contains("scope"))
    );
    for p in &cluster.ports {
        let n = std::process::Command::new("redis-cli")
            .args(["-p", &p.to_string(), "DBSIZE"])
            .output()
            .unwrap();
        let n: u32 = String::from_utf8_lossy(&n.stdout).trim().parse().unwrap();
        assert!(n > 0, "every master holds entries");
    }
    // The whole cluster gone: calls still succeed (misses), no error.
    cluster.kill_all();
    let fresh = TieredCache::new(MemoryTokenCache::new(100), l2.clone());
    for k in &keys {
        assert!(fresh.get(k).await.unwrap().is_none());
    }
    assert!(!l2.is_available());
    // …and it comes back: the topology is rediscovered, L2 used again.
    cluster.restart_all();
    let k = &keys[0];
    eventually("cluster L2 written again after restart", async || {
        l2.set(k, &token(TOKEN_TEXT, 3600)).await.unwrap();
        l2.is_available() && fresh.get(k).await.unwrap().is_some()
    })
    .await;
    let another = TieredCache::new(MemoryTokenCache::new(100), l2.clone());
    assert!(
        another.get(k).await.unwrap().is_some(),
        "read from the restarted cluster"
    );
}

#[test]
fn lazy_construction_outside_a_runtime_is_a_clear_error() {
    let config = certbound_redis::RedisCacheConfig::builder()
        .connection_string("redis://127.0.0.1:1")
        .encryption_key(key(1))
        .build()
        .unwrap();
    let e = certbound_redis::RedisTokenCache::new(config)
        .unwrap_err()
        .to_string();
    assert!(e.contains("Tokio runtime"), "{e}");
}

#[tokio::test]
async fn lazy_construction_connects_on_first_use() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start();
    let doc = serde_json::json!({ "TokenCache": { "Redis": {
        "ConnectionString": server.url(), "KeyPrefix": "lazy:",
        "EncryptionKey": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" } } });
    let cache = TieredCache::from_json_lazy(&doc, std::iter::empty(), 100)
        .unwrap()
        .expect("configured");
    let k = cache_key("lazy");
    cache.set(&k, &token(TOKEN_TEXT, 3600)).await.unwrap();
    let keys = server.cli(&["KEYS", "*"]);
    assert!(keys.trim().starts_with("lazy:"), "{keys}");
    // A second, independent cache from the same configuration reads it from Redis.
    let other = TieredCache::from_json(&doc, std::iter::empty())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        other.get(&k).await.unwrap().unwrap().access_token.expose(),
        TOKEN_TEXT
    );
}

#[tokio::test]
async fn wrong_password_is_an_outage_logged_once_without_the_password() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start();
    let _ = server.cli(&["CONFIG", "SET", "requirepass", "right-pw-123"]);
    let sink = LogSink::default();
    let _guard = tracing::subscriber::set_default(sink.subscriber());
    let config = certbound_redis::RedisCacheConfig::builder()
        .connection_string(format!("redis://:wrong-pw-456@127.0.0.1:{}", server.port))
        .encryption_key(key(1))
        .retry_interval(Duration::from_millis(10))
        .max_retry_interval(Duration::from_millis(10))
        .build()
        .unwrap();
    let l2 = certbound_redis::RedisTokenCache::connect(config)
        .await
        .unwrap();
    let cache = TieredCache::new(MemoryTokenCache::new(10), l2.clone());
    let k = cache_key("pw");
    for _ in 0..20 {
        cache.set(&k, &token(TOKEN_TEXT, 3600)).await.unwrap();
        assert!(cache.get(&k).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!l2.is_available());
    let log = sink.text();
    assert_eq!(
        log.matches("Redis token cache unavailable").count(),
        1,
        "{log}"
    );
    assert!(
        !log.contains("wrong-pw-456") && !log.contains("right-pw-123"),
        "{log}"
    );
    assert!(!format!("{l2:?}").contains("wrong-pw-456"));
}
