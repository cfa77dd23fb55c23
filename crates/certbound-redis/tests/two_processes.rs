//! Two separate processes (replicas) share one token through Redis: the first asks the
//! authority, the second finds the first one's token in L2 — one authority request in all.
//!
//! A custom harness (`harness = false`): the binary re-runs itself as each replica.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod common;

use std::process::Command;

use certbound_client::MemoryTokenCache;
use certbound_redis::TieredCache;
use common::*;

const NAME: &str = "two_processes_share_one_token";
const CHILD_ENV: &str = "CERTBOUND_REDIS_TEST_REPLICA";

fn main() {
    if std::env::var_os(CHILD_ENV).is_some() {
        replica();
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return;
    }
    // libtest-style filters: positional substrings, `--skip PATTERN`.
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--skip" {
            skips.extend(it.next());
        } else if [
            "--test-threads",
            "--format",
            "--color",
            "--logfile",
            "-Z",
            "--shuffle-seed",
        ]
        .contains(&a.as_str())
        {
            it.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    let selected = (filters.is_empty() || filters.iter().any(|f| NAME.contains(f.as_str())))
        && !skips.iter().any(|s| NAME.contains(s.as_str()));
    if !selected {
        println!("test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out");
        return;
    }
    println!("\nrunning 1 test");
    if !redis_available() {
        println!("test {NAME} ... ignored, redis-server is not installed");
        println!("test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(parent());
    println!("test {NAME} ... ok");
    println!("\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out\n");
}

#[derive(Debug)]
struct ReplicaReport {
    token_sha256: String,
    cached: bool,
    l2_hits: u64,
}

async fn parent() {
    let server = RedisServer::start();
    let authority = Authority::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &authority.ca_pem).expect("write ca");

    let run_replica = |name: &str| {
        let exe = std::env::current_exe().expect("current exe");
        let out = Command::new(exe)
            .env(CHILD_ENV, name)
            .env("REPLICA_REDIS_URL", server.url())
            .env("REPLICA_TOKEN_URL", authority.token_url())
            .env("REPLICA_AUTHORITY_ADDR", authority.addr.to_string())
            .env("REPLICA_CA_PEM", &ca_path)
            .output()
            .expect("spawn replica");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "replica {name} failed: {stdout}\n{stderr}"
        );
        assert!(
            !stdout.contains("SECRET") && !stderr.contains("SECRET"),
            "token leaked: {stdout}{stderr}"
        );
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .expect("report line");
        let v: serde_json::Value = serde_json::from_str(line).expect("report json");
        ReplicaReport {
            token_sha256: v["token_sha256"].as_str().expect("sha").to_owned(),
            cached: v["cached"].as_bool().expect("cached"),
            l2_hits: v["l2_hits"].as_u64().expect("hits"),
        }
    };
    // Blocking child processes: run them off the runtime threads serving the authority.
    let a = tokio::task::block_in_place(|| run_replica("a"));
    let b = tokio::task::block_in_place(|| run_replica("b"));
    assert!(!a.cached, "{a:?}");
    assert!(b.cached && b.l2_hits == 1, "{b:?}");
    assert_eq!(
        a.token_sha256, b.token_sha256,
        "the second replica uses the first one's token"
    );
    assert_eq!(
        authority.calls(),
        1,
        "exactly one authority request across both processes"
    );
}

fn replica() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
        let ca_pem = std::fs::read_to_string(var("REPLICA_CA_PEM")).expect("ca pem");
        let addr = var("REPLICA_AUTHORITY_ADDR").parse().expect("addr");
        let http = http_client(&ca_pem, addr);
        let l2 = l2(&var("REPLICA_REDIS_URL"), 1, &[]).await;
        let cache = TieredCache::new(MemoryTokenCache::new(100), l2.clone());
        let (token, cached) = get_or_fetch(
            &cache,
            &cache_key("shared"),
            &http,
            &var("REPLICA_TOKEN_URL"),
        )
        .await
        .expect("token");
        let sha = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            token.access_token.expose().as_bytes(),
        );
        println!(
            "{}",
            serde_json::json!({
                "token_sha256": hex::encode(sha.as_ref()),
                "cached": cached,
                "l2_hits": l2.stats().hits,
            })
        );
    });
}
