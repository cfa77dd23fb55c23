//! TLS accept → client certificate (feature `server`): serving a `tower` service over rustls and attaching
//! the connection's TLS client certificate to every request.
//!
//! Each request carries a [`TlsInfo`] extension. Its `peer` is the client certificate the
//! connection presented (if any), with its `x5t#S256` thumbprint computed once per
//! connection, so the binding check per request is a 32-byte comparison.
//!
//! ```no_run
//! use axum::{Router, routing::get, Extension};
//! use certbound_core::tls::server::{TlsInfo, TlsServer};
//! # async fn run(tls: rustls::ServerConfig) -> std::io::Result<()> {
//! let app = Router::new().route("/", get(|Extension(info): Extension<TlsInfo>| async move {
//!     match info.peer { Some(p) => format!("hello {}", p.thumbprint), None => "hello anonymous".into() }
//! }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! TlsServer::new(listener, tls).serve(app, std::future::pending()).await
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::Thumbprint;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::CertificateDer;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceExt as _};

/// The TLS client certificate a connection presented.
#[derive(Clone, Debug)]
pub struct PeerCertificate {
    /// The chain as sent, leaf first.
    pub chain: Arc<[CertificateDer<'static>]>,
    /// `x5t#S256` of the leaf.
    pub thumbprint: Thumbprint,
}

impl PeerCertificate {
    /// The leaf certificate's DER bytes.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }
}

/// Connection facts attached to every request as an extension.
#[derive(Clone, Debug)]
pub struct TlsInfo {
    /// The client certificate, when one was presented (and its handshake signature verified).
    pub peer: Option<PeerCertificate>,
    /// The remote address.
    pub remote_addr: SocketAddr,
    /// The address the server's listener is bound to (possibly a wildcard such as
    /// `0.0.0.0:8443`), when known: without a configured external URL, DPoP and PoP proofs
    /// must name `https://<this address>` (docs/resource-server.md (proof origin)).
    pub listen_addr: Option<SocketAddr>,
}

/// Limits that keep a server healthy under hostile or idle clients.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed for a request's headers to arrive (HTTP/1, slow-loris guard).
    pub header_read_timeout: Duration,
    /// Most connections served at once; further accepts wait.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(15),
            max_connections: 10_000,
        }
    }
}

/// An HTTPS server that hands each request its connection's [`TlsInfo`].
pub struct TlsServer {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: ServerLimits,
}

impl TlsServer {
    /// A server on `listener` with the rustls configuration `tls`
    /// (see `certbound_core::tls::server_config`).
    pub fn new(listener: TcpListener, tls: rustls::ServerConfig) -> Self {
        Self {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            limits: ServerLimits::default(),
        }
    }

    /// Sets the limits.
    pub fn limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves `service` until `shutdown` completes, then lets open connections finish
    /// their in-flight requests (up to 10 s).
    pub async fn serve<S, B>(
        self,
        service: S,
        shutdown: impl Future<Output = ()>,
    ) -> std::io::Result<()>
    where
        S: Service<Request<Incoming>, Response = http::Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let listen_addr = self.listener.local_addr().ok();
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let permits = Arc::new(Semaphore::new(self.limits.max_connections.max(1)));
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .max_concurrent_streams(256)
            // Room for large tokens, so the validator (not the framing layer) refuses them
            // and says why.
            .max_header_list_size(64 * 1024);
        let builder = Arc::new(builder);
        tokio::pin!(shutdown);
        loop {
            let permit = tokio::select! {
                _ = &mut shutdown => break,
                p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            };
            let (tcp, remote_addr) = tokio::select! {
                _ = &mut shutdown => break,
                r = self.listener.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let service = service.clone();
            let builder = builder.clone();
            let handshake_timeout = self.limits.handshake_timeout;
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let _permit = permit;
                let tls = match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%remote_addr, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%remote_addr, "TLS handshake timed out");
                        return;
                    }
                };
                let peer = tls.get_ref().1.peer_certificates().and_then(|certs| {
                    let first = certs.first()?;
                    Some(PeerCertificate {
                        thumbprint: Thumbprint::of_der(first),
                        chain: certs.iter().map(|c| c.clone().into_owned()).collect(),
                    })
                });
                let info = TlsInfo {
                    peer,
                    remote_addr,
                    listen_addr,
                };
                let svc = tower::service_fn(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(info.clone());
                    service.clone().oneshot(req)
                });
                let conn =
                    builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(svc));
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(%remote_addr, error = %e, "connection ended with an error");
                }
            });
        }
        drop(self.listener);
        let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
        Ok(())
    }
}

/// Resolves when the process receives SIGINT or SIGTERM (Ctrl-C elsewhere).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
