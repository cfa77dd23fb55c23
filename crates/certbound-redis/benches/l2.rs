//! L2 hit path (GET + AES-256-GCM open + JSON deserialise of a `CachedToken`) against a raw
//! Redis `GET` of a value of the same size, in the same run, over the same kind of
//! connection (`ConnectionManager`) to the same private `redis-server`.
//!
//! `cargo bench -p certbound-redis --bench l2` — divan's table, then a summary with
//! throughput of both and their ratio (target ≥ 0.8).
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use certbound_client::{CacheKey, TokenCache};
use certbound_redis::RedisTokenCache;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

struct Fixture {
    rt: tokio::runtime::Runtime,
    _server: common::RedisServer,
    l2: RedisTokenCache,
    raw: ConnectionManager,
    key: CacheKey,
    raw_key: String,
    size: usize,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        if !common::redis_available() {
            eprintln!("redis-server is required for this benchmark");
            std::process::exit(0);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let server = common::RedisServer::start();
        let url = server.url();
        let (l2, raw, key, raw_key, size) = rt.block_on(async {
            let l2 = common::l2(&url, 1, &[]).await;
            // A realistic token: ~1.2 KB JWT-sized access token.
            let token_text = format!("eyJhbGciOiJSUzI1NiJ9.{}.sig", "A".repeat(1200));
            let key = common::cache_key("api://bench/.default");
            l2.set(&key, &common::token(&token_text, 3600))
                .await
                .expect("set");
            let mut raw = ConnectionManager::new_with_config(
                redis::Client::open(url.as_str()).expect("url"),
                ConnectionManagerConfig::new()
                    .set_response_timeout(Some(Duration::from_millis(250))),
            )
            .await
            .expect("raw connection");
            let sealed: Vec<u8> = redis::cmd("GET")
                .arg(l2.redis_key(key.as_str()))
                .query_async(&mut raw)
                .await
                .expect("get sealed");
            let raw_key = "bench:raw".to_owned();
            let () = redis::cmd("SET")
                .arg(&raw_key)
                .arg(vec![b'x'; sealed.len()])
                .query_async(&mut raw)
                .await
                .expect("set raw");
            (l2, raw, key, raw_key, sealed.len())
        });
        Fixture {
            rt,
            _server: server,
            l2,
            raw,
            key,
            raw_key,
            size,
        }
    })
}

fn l2_hit_once(f: &Fixture) {
    let t = f.rt.block_on(f.l2.get(&f.key)).expect("get");
    assert!(t.is_some(), "L2 hit expected");
    divan::black_box(t);
}

fn raw_get_once(f: &Fixture) {
    let mut c = f.raw.clone();
    let v: Vec<u8> =
        f.rt.block_on(redis::cmd("GET").arg(&f.raw_key).query_async(&mut c))
            .expect("raw get");
    assert_eq!(v.len(), f.size);
    divan::black_box(v);
}

#[divan::bench(sample_count = 100, sample_size = 50)]
fn l2_hit_get_open_deserialise(bencher: divan::Bencher) {
    let f = fixture();
    bencher
        .counter(divan::counter::ItemsCount::new(1usize))
        .bench(|| l2_hit_once(f));
}

#[divan::bench(sample_count = 100, sample_size = 50)]
fn raw_redis_get_same_size(bencher: divan::Bencher) {
    let f = fixture();
    bencher
        .counter(divan::counter::ItemsCount::new(1usize))
        .bench(|| raw_get_once(f));
}

/// Interleaved rounds of both paths; the median round's throughput of each and the ratio.
fn summary() {
    let f = fixture();
    let (rounds, per_round) = (15, 2000);
    for _ in 0..500 {
        l2_hit_once(f);
        raw_get_once(f);
    }
    let mut l2_rates = Vec::new();
    let mut raw_rates = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..per_round {
            raw_get_once(f);
        }
        raw_rates.push(per_round as f64 / t.elapsed().as_secs_f64());
        let t = Instant::now();
        for _ in 0..per_round {
            l2_hit_once(f);
        }
        l2_rates.push(per_round as f64 / t.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (l2m, rawm) = (median(&mut l2_rates), median(&mut raw_rates));
    println!(
        "\nsummary ({} rounds × {} ops, value {} bytes, ConnectionManager, current-thread runtime):",
        rounds, per_round, f.size
    );
    println!("  raw GET          : {rawm:>10.0} ops/s");
    println!("  L2 hit (GET+open+deserialise): {l2m:>10.0} ops/s");
    println!("  ratio L2/raw     : {:.3} (target >= 0.8)", l2m / rawm);
}

fn main() {
    divan::main();
    // `cargo bench` passes `--bench`; `cargo test --benches` runs divan once in test mode.
    if std::env::args().any(|a| a == "--bench") {
        summary();
    }
}
