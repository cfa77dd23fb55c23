//! Test harness: a private `redis-server` per test on a free loopback port, and a tiny
//! HTTPS token endpoint (real TLS) that counts the requests it serves.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use certbound_client::Secret;
use certbound_client::{CacheKey, CachedToken, TokenCache};
use certbound_core::KeyKind;
use certbound_core::ca::{DevCa, IssueSpec};
use certbound_core::tls::{ClientAuth, TrustAnchors};
use certbound_redis::{EncryptionKey, RedisCacheConfig, RedisTokenCache};

/// Whether `redis-server` is installed; when it is not and `CI` is unset, prints why the
/// test is skipped and returns false. In CI a missing binary fails the test.
pub fn redis_available() -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("redis-server is not installed but CI is set: scripts/test.sh installs it with apt");
    }
    eprintln!("SKIPPED: redis-server is not installed (apt-get install redis-server); CI is unset");
    false
}

/// A private redis-server process, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// Starts one on a free port (retrying on a port collision).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..20 {
            let port = free_port();
            if let Some(child) = spawn_redis(port, &dir.path().to_path_buf()) {
                return Self {
                    child: Some(child),
                    port,
                    dir,
                };
            }
        }
        panic!("could not start redis-server on any free port");
    }

    /// Starts one that speaks TLS only (`--port 0 --tls-port N`), with a server certificate
    /// for `localhost` issued by a fresh development CA. Returns it and the CA's PEM.
    pub fn start_tls() -> (Self, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = DevCa::generate("redis-tls-test-ca").expect("ca");
        let server = ca
            .issue_certified_key(
                &IssueSpec::server("localhost", &["localhost", "127.0.0.1"]),
                KeyKind::EcP256,
            )
            .expect("server cert");
        let cert = dir.path().join("server.pem");
        let key = dir.path().join("server.key");
        let ca_pem = ca.cert().to_pem();
        std::fs::write(&cert, server.leaf().to_pem()).expect("write cert");
        std::fs::write(&key, server.key().to_pkcs8_pem().as_str()).expect("write key");
        std::fs::write(dir.path().join("ca.pem"), &ca_pem).expect("write ca");
        for _ in 0..20 {
            let port = free_port();
            let mut child = Command::new("redis-server")
                .args([
                    "--port",
                    "0",
                    "--tls-port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                ])
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--tls-auth-clients",
                    "no",
                ])
                .arg("--tls-cert-file")
                .arg(&cert)
                .arg("--tls-key-file")
                .arg(&key)
                .arg("--tls-ca-cert-file")
                .arg(dir.path().join("ca.pem"))
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return (
                        Self {
                            child: Some(child),
                            port,
                            dir,
                        },
                        ca_pem,
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start a TLS redis-server");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Kills it (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (after [`kill`](Self::kill)); the data is gone.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(c) = spawn_redis(self.port, &self.dir.path().to_path_buf()) {
                self.child = Some(c);
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart redis-server on port {}", self.port);
    }

    /// Sends SIGSTOP / SIGCONT (a Redis that hangs without closing connections).
    pub fn signal(&self, sig: &str) {
        // The shell's builtin `kill`: no procps needed.
        let ok = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -{sig} {}", self.pid()))
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} failed");
    }

    /// Runs `redis-cli -p PORT args…` and returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A plain connection, for poking at raw values.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_redis(port: u16, dir: &PathBuf) -> Option<Child> {
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None; // exited: most likely the port was taken
        }
        if ping(port) {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn ping(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
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
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Authority {
    pub async fn start() -> Self {
        certbound_core::tls::install_default_provider();
        let ca = DevCa::generate("redis-test-ca").expect("ca");
        let server = ca
            .issue_certified_key(
                &IssueSpec::server("localhost", &["localhost"]),
                KeyKind::EcP256,
            )
            .expect("server cert");
        let tls = certbound_core::tls::server_config(&server, ClientAuth::None).expect("tls");
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let srv = certbound_resource::transport::TlsServer::new(listener, tls);
        tokio::spawn(async move {
            let _ = srv
                .serve(app, async move {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            addr,
            calls,
            ca_pem: ca.cert().to_pem(),
            shutdown: Some(tx),
        }
    }

    pub fn token_url(&self) -> String {
        format!("https://localhost:{}/token", self.addr.port())
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// An HTTPS client trusting the test CA.
pub fn http_client(ca_pem: &str, authority: SocketAddr) -> reqwest::Client {
    certbound_core::tls::install_default_provider();
    let mut anchors = TrustAnchors::default();
    for c in
        certbound_core::Certificate::all_from_pem(ca_pem.as_bytes(), "test ca").expect("ca pem")
    {
        anchors.add(&c);
    }
    let cfg = certbound_core::tls::client_config(&anchors, None).expect("client tls");
    reqwest::Client::builder()
        .use_preconfigured_tls(cfg)
        .resolve("localhost", authority)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
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

/// A log sink for `tracing`, to count messages.
#[derive(Clone, Default)]
pub struct LogSink(pub Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogSink {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
    pub fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        let sink = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish()
    }
}

/// Polls `cond` every 20 ms for up to 30 s (a bound on waiting, not a performance claim).
pub async fn eventually(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn spawn_cluster_node(port: u16, base: &std::path::Path) -> Option<Child> {
    let node_dir = base.join(port.to_string());
    std::fs::create_dir_all(&node_dir).expect("node dir");
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
        ])
        .arg("--dir")
        .arg(&node_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if ping(port) {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A three-master Redis Cluster of private `redis-server` processes (killed on drop).
pub struct RedisCluster {
    nodes: Vec<Child>,
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

fn free_cluster_port() -> u16 {
    // The cluster bus listens on port + 10000: both must be free.
    loop {
        let p = free_port();
        if p < 55_000 && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

impl RedisCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        while nodes.len() < 3 {
            let port = free_cluster_port();
            let node_dir = dir.path().join(port.to_string());
            std::fs::create_dir_all(&node_dir).expect("node dir");
            let mut child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
                .arg("--dir")
                .arg(&node_dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if ping(port) {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if up {
                nodes.push(child);
                ports.push(port);
            } else {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self {
            nodes,
            ports,
            _dir: dir,
        };
        cluster.wait_ok();
        cluster
    }

    /// Restarts every node on its port; the cluster re-forms from its nodes.conf files.
    pub fn restart_all(&mut self) {
        self.kill_all();
        self.nodes.clear();
        for p in self.ports.clone() {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Some(c) = spawn_cluster_node(p, self._dir.path()) {
                    self.nodes.push(c);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster node {p} did not restart"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.wait_ok();
    }

    fn wait_ok(&self) {
        let cluster = self;
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if cluster.ports.iter().all(|p| {
                Command::new("redis-cli")
                    .args(["-p", &p.to_string(), "CLUSTER", "INFO"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
            }) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("cluster did not reach cluster_state:ok");
    }

    pub fn connection_string(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// All keys of all nodes (`redis-cli KEYS '*'` on each).
    pub fn all_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for p in &self.ports {
            let out = Command::new("redis-cli")
                .args(["-p", &p.to_string(), "KEYS", "*"])
                .output()
                .expect("redis-cli");
            keys.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
        }
        keys
    }

    pub fn kill_all(&mut self) {
        for c in &mut self.nodes {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}
