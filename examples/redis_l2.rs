//! Two replicas of one service sharing certificate-bound tokens through an encrypted
//! Redis L2 cache.
//!
//! ```sh
//! cargo run --example redis_l2                                # starts its own redis-server
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example redis_l2   # or uses yours
//! ```
//!
//! Each `App` keeps an in-memory L1 cache; with a `TokenCache.Redis` section in its
//! configuration, `certbound::app_builder` puts an encrypted Redis L2 behind it
//! (`TieredCache`). The first replica gets a token from the authority and writes it,
//! sealed with AES-256-GCM, to Redis; the second replica, with an empty L1, finds it there
//! and never asks the authority. Redis sees only hashed key names and ciphertext.
//!
//! It needs a Redis: `REDIS_URL` when set, else a private `redis-server` on a free
//! loopback port when the binary is on `PATH`; otherwise it says so and exits 0.
// Example code: it stops at the first failure, with the error shown.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use certbound::AppConfig;
use certbound::HeaderOptions;
use certbound::client::TokenSource;
use certbound::local::LocalStack;

const CLIENT_ID: &str = "orders-service";
const SCOPE: &str = "api://orders/.default";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Fresh state for our own Redis (the stack below keeps its own).
    let state = tempfile::tempdir()?;

    // Find a Redis, or explain how to get one. `_server` stops ours when main returns.
    let (redis_url, _server) = match std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) {
        Some(url) => (url, None),
        None => match PrivateRedis::start(state.path())? {
            Some(server) => (format!("redis://127.0.0.1:{}", server.port), Some(server)),
            None => {
                println!(
                    "redis_l2 skipped: no redis-server on PATH and REDIS_URL unset \
                     (install redis-server, or run with REDIS_URL=redis://HOST:PORT)"
                );
                return Ok(());
            }
        },
    };
    println!("Redis at {}", redact(&redis_url));

    // The authority and the service's registered certificate, kept in a file.
    let stack = LocalStack::builder()
        .audience("api://orders")
        .client(CLIENT_ID)
        .start()
        .await?;
    let pem = stack.write_client_pem(CLIENT_ID)?;

    // Every replica reads the same configuration. The encryption key must be the same on
    // all of them (in production it comes from a secret store, e.g. as the environment
    // variable `TokenCache__Redis__EncryptionKey`); here it is 32 fresh random bytes.
    // A per-run key prefix keeps this run's entries apart on a shared Redis.
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    let prefix = format!(
        "certbound-example:{}:",
        certbound::core::random_guid().context("no system randomness")?
    );
    let settings = serde_json::json!({
        "AzureAd": {
            "Authority": stack.issuer(),
            "ClientId": CLIENT_ID,
            "ClientCredentials": [
                { "SourceType": "Path", "CertificateDiskPath": pem.display().to_string() }
            ]
        },
        "TokenCache": {
            "Redis": {
                "ConnectionString": redis_url,
                "KeyPrefix": prefix,
                "EncryptionKey": certbound::core::b64::encode_std(key)
            }
        }
    });
    let file = stack.state_dir().join("appsettings.json");
    std::fs::write(&file, serde_json::to_string_pretty(&settings)?)?;

    // Two replicas: two apps, each with its own L1 and its own Redis connection.
    let replica = || -> anyhow::Result<certbound::App> {
        Ok(certbound::app_builder(AppConfig::from_file(&file)?)?
            .add_ca_cert_file(stack.ca_cert_path())
            .build()?)
    };
    let (first, second) = (replica()?, replica()?);
    let options = HeaderOptions::mtls_pop();

    let a = first.acquire_token_for_app(&[SCOPE], &options).await?;
    println!(
        "replica 1: {} token from {:?} (token requests sent: {}), bound to x5t#S256 {}",
        a.token_type,
        a.source,
        first.token_requests_sent(),
        a.binding_thumbprint
            .map(|t| t.to_base64url())
            .unwrap_or_default()
    );
    ensure!(
        a.source == TokenSource::IdentityProvider,
        "replica 1 should ask the authority"
    );

    let b = second.acquire_token_for_app(&[SCOPE], &options).await?;
    let same = a.access_token.expose() == b.access_token.expose();
    println!(
        "replica 2: {} token from {:?} (token requests sent: {}), same token as replica 1: {same}",
        b.token_type,
        b.source,
        second.token_requests_sent()
    );
    ensure!(
        b.source == TokenSource::Cache && second.token_requests_sent() == 0 && same,
        "replica 2 should get replica 1's token from Redis without asking the authority"
    );

    stack.shutdown().await;
    Ok(())
}

/// `redis://user:password@host` without the password, for printing.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://…@{host}"),
        _ => url.to_owned(),
    }
}

/// A `redis-server` of our own on a free loopback port, with no persistence, stopped on
/// drop.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    /// `Ok(None)` when `redis-server` is not installed.
    fn start(dir: &std::path::Path) -> anyhow::Result<Option<Self>> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            return Ok(None);
        }
        // Another process can take the free port between our probe and Redis binding it:
        // then Redis exits at once, and we try another port.
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start redis-server")?;
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && child.try_wait()?.is_none() {
                if ping(port) {
                    return Ok(Some(Self { child, port }));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        anyhow::bail!("redis-server did not start on any free port")
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a Redis answers `PING` on `port`.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    let mut buf = [0u8; 7];
    s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
