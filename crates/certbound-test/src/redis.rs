//! Private `redis-server` processes on free loopback ports (plain, TLS, a three-node
//! cluster), killed on drop. Tests skip themselves when `redis-server` is missing, unless
//! `CI` is set (see [`redis_available`]).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use certbound_core::KeyKind;
use certbound_core::ca::{DevCa, IssueSpec};

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
    /// The port it listens on.
    pub port: u16,
    dir: tempfile::TempDir,
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// Starts one on a free port (retrying on a port collision).
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..20 {
            let port = free_port();
            if let Some(child) = spawn_redis(port, dir.path()) {
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

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id (0 once killed).
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
            if let Some(c) = spawn_redis(self.port, self.dir.path()) {
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
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn_redis(port: u16, dir: &Path) -> Option<Child> {
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
    /// The ports of the nodes.
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
    /// Starts three cluster-enabled nodes and joins them (`redis-cli --cluster create`),
    /// waiting for `cluster_state:ok`.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes = Vec::new();
        let mut ports = Vec::new();
        while nodes.len() < 3 {
            let port = free_cluster_port();
            // A node that does not come up (its port was taken meanwhile) is retried elsewhere.
            if let Some(child) = spawn_cluster_node(port, dir.path()) {
                nodes.push(child);
                ports.push(port);
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

    /// The nodes' URLs, comma-separated (the `ConnectionString` of a cluster).
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

    /// Kills every node (SIGKILL) and waits for them.
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
