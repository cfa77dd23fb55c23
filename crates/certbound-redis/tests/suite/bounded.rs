//! What the L2 accepts back from Redis (a real `redis-server`): reads are bounded, and a
//! decoded entry is checked like a token-endpoint answer before it can become a header.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use crate::common;

use certbound_client::TokenCache;
use certbound_core::jose::{JwsHeader, sign_compact};
use certbound_core::{JwsAlgorithm, KeyKind, PrivateKey, now_unix};
use certbound_redis::Keyring;
use certbound_redis::MAX_ENTRY_BYTES;
use common::*;
use redis::AsyncCommands as _;

const SECRET: &str = "SeCrEt-cached-token";

/// Seals `plaintext` exactly as the L2 does (same key) and stores it under the Redis key of
/// `scope`'s cache key, bypassing the L2's own checks on writing.
async fn plant(
    server: &RedisServer,
    l2: &certbound_redis::RedisTokenCache,
    scope: &str,
    plaintext: &[u8],
) {
    let ck = cache_key(scope);
    let sealed = Keyring::new(key(1)).seal(ck.as_str(), plaintext).unwrap();
    let mut raw = server.raw().await;
    let _: () = raw.set(l2.redis_key(ck.as_str()), sealed).await.unwrap();
}

async fn present(server: &RedisServer, l2: &certbound_redis::RedisTokenCache, scope: &str) -> bool {
    let mut raw = server.raw().await;
    raw.exists(l2.redis_key(cache_key(scope).as_str()))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_oversized_entry_is_a_miss_read_only_up_to_the_limit_and_removed() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start();
    let l2 = l2(&server.url(), 1, &[]).await;
    // A genuine envelope (it would open), just far too large to be a token.
    let big = vec![b'a'; 4 * MAX_ENTRY_BYTES];
    plant(&server, &l2, "big", &big).await;
    assert!(l2.get_bytes(cache_key("big").as_str()).await.is_none());
    assert_eq!(l2.stats().discarded, 1);
    assert_eq!(l2.stats().hits, 0);
    assert!(!present(&server, &l2, "big").await, "the entry was removed");
}

#[tokio::test]
async fn decoded_entries_that_would_split_a_header_are_refused_and_removed() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start();
    let l2 = l2(&server.url(), 1, &[]).await;
    let exp = now_unix() + 3600;
    let cases = [
        (
            "crlf-token",
            serde_json::json!({"token_type": "Bearer", "access_token": format!("{SECRET}\r\nX-Injected: 1"), "expires_on": exp}),
        ),
        (
            "lf-token",
            serde_json::json!({"token_type": "Bearer", "access_token": format!("{SECRET}\nx"), "expires_on": exp}),
        ),
        (
            "space-token",
            serde_json::json!({"token_type": "Bearer", "access_token": format!("{SECRET} x"), "expires_on": exp}),
        ),
        (
            "crlf-type",
            serde_json::json!({"token_type": "Bearer\r\nX-Injected: 1", "access_token": SECRET, "expires_on": exp}),
        ),
        (
            "negative-time",
            serde_json::json!({"token_type": "Bearer", "access_token": SECRET, "expires_on": i64::MIN}),
        ),
    ];
    for (i, (scope, json)) in cases.iter().enumerate() {
        plant(&server, &l2, scope, json.to_string().as_bytes()).await;
        let got = l2.get(&cache_key(scope)).await.unwrap();
        assert!(got.is_none(), "{scope}: {got:?}");
        assert_eq!(l2.stats().discarded, i as u64 + 1, "{scope}");
        assert!(!present(&server, &l2, scope).await, "{scope} removed");
    }
}

#[tokio::test]
async fn a_decoded_entry_never_outlives_its_jwt_exp() {
    if !redis_available() {
        return;
    }
    let server = RedisServer::start();
    let l2 = l2(&server.url(), 1, &[]).await;
    let exp = now_unix() + 600;
    let key = PrivateKey::generate(KeyKind::EcP256).unwrap();
    let jwt = sign_compact(
        &JwsHeader::new(JwsAlgorithm::ES256),
        &serde_json::json!({"exp": exp}),
        &key,
    )
    .unwrap();
    let json = serde_json::json!({"token_type": "Bearer", "access_token": jwt, "expires_on": now_unix() + 100 * 365 * 24 * 3600});
    plant(&server, &l2, "long", json.to_string().as_bytes()).await;
    let got = l2.get(&cache_key("long")).await.unwrap().unwrap();
    assert_eq!(got.expires_on, exp);
}
