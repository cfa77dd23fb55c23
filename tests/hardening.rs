//! The TLS server sheds clients that hold connections without speaking: idle before the
//! handshake, and slow-loris partial headers after it.

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
