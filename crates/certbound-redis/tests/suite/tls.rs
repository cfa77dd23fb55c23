//! `rediss://` to a TLS-only `redis-server`, trusting a private CA.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use std::time::Duration;

use certbound_client::TokenCache;
use certbound_redis::{RedisCacheConfig, RedisTokenCache};
use common::*;

#[tokio::test]
async fn rediss_with_a_private_ca() {
    if !redis_available() {
        return;
    }
    certbound_core::tls::install_default_provider();
    let (server, ca_pem) = RedisServer::start_tls();
    let url = format!("rediss://localhost:{}", server.port);
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca_pem).unwrap();

    let doc = serde_json::json!({ "TokenCache": { "Redis": {
        "ConnectionString": url, "TlsCaCertificatePath": ca_path.display().to_string(),
        "EncryptionKey": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" } } });
    let config = RedisCacheConfig::from_json(&doc).unwrap().unwrap();
    let l2 = RedisTokenCache::connect(config).await.unwrap();
    assert!(l2.is_available(), "TLS connection established");
    let k = cache_key("tls");
    l2.set(&k, &token("SECRET-OVER-TLS", 3600)).await.unwrap();
    assert_eq!(
        l2.get(&k).await.unwrap().unwrap().access_token.expose(),
        "SECRET-OVER-TLS"
    );

    // Without the CA (system roots only) the server is not trusted: an outage, not an error.
    let untrusted = RedisCacheConfig::builder()
        .connection_string(&url)
        .encryption_key(key(1))
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let l2 = RedisTokenCache::connect(untrusted).await.unwrap();
    assert!(!l2.is_available());
    assert!(l2.get(&k).await.unwrap().is_none());
    // Plain redis:// to the TLS port fails the same way.
    let plain = RedisTokenCache::connect(
        RedisCacheConfig::builder()
            .connection_string(format!("redis://127.0.0.1:{}", server.port))
            .encryption_key(key(1))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    assert!(plain.get(&k).await.unwrap().is_none());
    assert!(!plain.is_available());
}

#[test]
fn unreadable_ca_file_is_a_config_error_naming_the_key() {
    let e = RedisCacheConfig::builder()
        .connection_string("rediss://localhost:1")
        .encryption_key(key(1))
        .tls_ca_certificate_path("/nonexistent/ca.pem")
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("TlsCaCertificatePath") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
}
