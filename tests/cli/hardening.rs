//! The TLS server sheds clients that hold connections without speaking: idle before the
//! handshake, and slow-loris partial headers after it.
// Test code: a failed unwrap is a failed test; `pub` in shared test modules is for the tests.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use axum::{Router, routing::get};
use certbound::core::KeyKind;
use certbound::core::ca::{DevCa, IssueSpec};
use certbound::core::tls::{ClientAuth, TrustAnchors, client_config, server_config};
use certbound::resource::transport::{ServerLimits, TlsServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

async fn server(limits: ServerLimits) -> (std::net::SocketAddr, DevCa) {
    certbound::core::tls::install_default_provider();
    let ca = DevCa::generate("hardening CA").unwrap();
    let id = ca
        .issue_certified_key(&IssueSpec::server("s", &["127.0.0.1"]), KeyKind::EcP256)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut tls = server_config(&id, ClientAuth::Optional).unwrap();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let app = Router::new().route("/", get(|| async { "hi" }));
    tokio::spawn(
        TlsServer::new(listener, tls)
            .limits(limits)
            .serve(app, std::future::pending()),
    );
    (addr, ca)
}

fn short_limits() -> ServerLimits {
    ServerLimits {
        handshake_timeout: Duration::from_millis(500),
        header_read_timeout: Duration::from_millis(500),
        ..ServerLimits::default()
    }
}

/// Reads until the peer closes; `true` when it did within the (generous) bound.
async fn closed_by_peer(mut read: impl tokio::io::AsyncRead + Unpin) -> bool {
    let mut buf = [0u8; 1024];
    let wait = async {
        loop {
            match read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .is_ok()
}

#[tokio::test]
async fn silent_tcp_connection_is_dropped_after_the_handshake_timeout() {
    let (addr, _ca) = server(short_limits()).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_by_peer(tcp).await,
        "the server kept a silent connection open"
    );
}

#[tokio::test]
async fn slow_loris_headers_are_timed_out() {
    let (addr, ca) = server(short_limits()).await;
    let mut anchors = TrustAnchors::default();
    anchors.add(ca.cert());
    let mut cfg = client_config(&anchors, None).unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    // Start a request and never finish its headers.
    tls.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    assert!(
        closed_by_peer(tls).await,
        "the server waited forever for the headers"
    );
}

#[tokio::test]
async fn a_well_behaved_client_is_served() {
    let (addr, ca) = server(short_limits()).await;
    let mut anchors = TrustAnchors::default();
    anchors.add(ca.cert());
    let client = reqwest::Client::builder()
        .use_preconfigured_tls(client_config(&anchors, None).unwrap())
        .build()
        .unwrap();
    let body = client
        .get(format!("https://{addr}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "hi");
}

/// `certbound api serve` as started from the command line, fed tokens and proofs whose
/// protected headers hold non-ASCII text (the review's `"alg":"€"` class): every request gets
/// an HTTP answer (401 with a challenge naming the problem), the server never panics and keeps
/// serving. The validator refuses these before any signature check, so no key is needed.
#[tokio::test]
async fn api_serve_answers_non_ascii_headers_with_401_never_a_dropped_connection() {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    fn start(args: &[&str]) -> (Kill, serde_json::Value) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_certbound"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn certbound");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let ready = serde_json::from_str(line.trim()).expect("ready line is JSON");
        (Kill(child), ready)
    }
    let b64 = |v: &str| certbound::core::b64::encode(v.as_bytes());
    let dir = tempfile::tempdir().unwrap();
    let auth_dir = dir.path().join("authority");
    let (_authority, a) = start(&["authority", "serve", "--dir", auth_dir.to_str().unwrap()]);
    let issuer = a["issuer"].as_str().unwrap();
    let ca = a["ca_cert"].as_str().unwrap();
    let (mut api, ready) = start(&[
        "api",
        "serve",
        "--authority",
        issuer,
        "--audience",
        "api://hardening",
        "--ca-cert",
        ca,
    ]);
    let url = format!("{}/whoami", ready["url"].as_str().unwrap());
    let pem = std::fs::read(ready["tls_cert"].as_str().unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();

    let payload = b64(r#"{"iss":"x","aud":"api://hardening","exp":4102444800}"#);
    let mut headers = Vec::new();
    for alg in ["€", "aé", "ES2€", "𝄞𝄞", "HS€", "nonè"] {
        headers.push(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"k"}}"#));
    }
    for typ in ["application€", "applicationé/at+jwt", "at+jwt€", "€"] {
        headers.push(format!(r#"{{"alg":"ES256","typ":"{typ}","kid":"k"}}"#));
    }
    headers.push(r#"{"alg":"ES256","typ":"JWT","kid":"ké€"}"#.to_string());
    headers.push(r#"{"alg":"ES256","typ":"JWT","kid":"k","crit":["€"],"€":1}"#.to_string());
    for header in &headers {
        let token = format!("{}.{payload}.AAAA", b64(header));
        for scheme in ["Bearer", "mtls_pop", "DPoP", "PoP"] {
            let mut req = http
                .get(&url)
                .header("authorization", format!("{scheme} {token}"));
            if scheme == "DPoP" {
                // A DPoP proof with the same hostile header.
                req = req.header("dpop", format!("{}.{payload}.AAAA", b64(header)));
            }
            let resp = req
                .send()
                .await
                .unwrap_or_else(|e| panic!("{scheme} {header}: no HTTP answer: {e}"));
            assert!(
                resp.status() == 401 || resp.status() == 400,
                "{scheme} {header}: {}",
                resp.status()
            );
            let challenge = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            assert!(
                challenge.contains("error="),
                "{scheme} {header}: challenge {challenge:?}"
            );
        }
    }
    // Still serving, and nothing panicked.
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(api.0.try_wait().unwrap().is_none(), "api serve exited");
    let _ = api.0.kill();
    let _ = api.0.wait();
    let mut stderr = String::new();
    use std::io::Read as _;
    api.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
}
