//! Loopback servers (plain HTTP and TLS on port 0, ready when the function returns) and
//! `reqwest` clients presenting a client certificate.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use certbound_core::CertifiedKey;
use certbound_core::tls::server::TlsServer;
use certbound_core::tls::{TrustAnchors, client_config};
use tokio::net::TcpListener;

/// A `reqwest` client trusting `anchors` and presenting `identity` when given (30 s
/// timeout).
pub fn mtls_client(anchors: &TrustAnchors, identity: Option<&CertifiedKey>) -> reqwest::Client {
    builder(anchors, identity)
        .build()
        .expect("build the HTTPS client")
}

/// Like [`mtls_client`], with `host` resolving to `addr` (for a server certificate issued
/// to `localhost` while the server listens on `127.0.0.1`).
pub fn mtls_client_resolving(
    anchors: &TrustAnchors,
    identity: Option<&CertifiedKey>,
    host: &str,
    addr: SocketAddr,
) -> reqwest::Client {
    builder(anchors, identity)
        .resolve(host, addr)
        .build()
        .expect("build the HTTPS client")
}

fn builder(anchors: &TrustAnchors, identity: Option<&CertifiedKey>) -> reqwest::ClientBuilder {
    certbound_core::tls::install_default_provider();
    let cfg = client_config(anchors, identity).expect("client TLS configuration");
    reqwest::Client::builder()
        .tls_backend_preconfigured(cfg)
        .timeout(Duration::from_secs(30))
}

/// Binds `127.0.0.1:0`.
pub async fn loopback_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("the bound address");
    (listener, addr)
}

/// Serves `router` over plain HTTP on a loopback port until the test's runtime ends;
/// returns its address (accepting as soon as this returns).
pub async fn serve_plain(router: Router) -> SocketAddr {
    let (listener, addr) = loopback_listener().await;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// A TLS server started by [`serve_tls`]; it stops accepting when dropped.
pub struct TlsHandle {
    /// The bound loopback address.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TlsHandle {
    /// `https://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// `https://localhost:PORT`.
    pub fn localhost_url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// Keeps the server running until the test's runtime ends, dropping the handle.
    pub fn detach(mut self) -> SocketAddr {
        // Dropping the sender unsent (rather than sending) leaves the server running.
        drop(self.stop.take());
        self.addr
    }
}

impl Drop for TlsHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Serves `router` over TLS (`tls`, see [`TestPki::server_config`](crate::pki::TestPki::server_config))
/// on a loopback port with `certbound_core::tls::server::TlsServer`, so handlers can take
/// `Extension<TlsInfo>`; accepting as soon as this returns, until the handle is dropped
/// (or, after [`TlsHandle::detach`], until the test's runtime ends).
pub async fn serve_tls(router: Router, tls: rustls::ServerConfig) -> TlsHandle {
    let (listener, _) = loopback_listener().await;
    serve_tls_on(listener, router, tls)
}

/// Like [`serve_tls`], on a `listener` the caller bound (from [`loopback_listener`], when the
/// router needs to know its own address).
pub fn serve_tls_on(listener: TcpListener, router: Router, tls: rustls::ServerConfig) -> TlsHandle {
    let addr = listener.local_addr().expect("the bound address");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = TlsServer::new(listener, tls);
    tokio::spawn(async move {
        let _ = server
            .serve(router, async move {
                // Stop when told to; a sender dropped unsent (`detach`) never stops it.
                if rx.await.is_err() {
                    std::future::pending::<()>().await;
                }
            })
            .await;
    });
    TlsHandle {
        addr,
        stop: Some(tx),
    }
}
