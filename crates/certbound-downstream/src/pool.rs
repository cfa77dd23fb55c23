//! mTLS transport: one pooled HTTP client per binding certificate.
//!
//! A certificate-bound token is only useful on a connection that presents the same
//! certificate, so the transport keys its clients by the certificate's `x5t#S256`. Each
//! client keeps its own connection pool (HTTP/2 negotiated by ALPN, keep-alive), so
//! repeated calls reuse warm TLS connections. The set of clients is bounded and evicts the
//! least-recently-used one — never a global clear, so a busy certificate keeps its warm
//! connections when a new one (rotation, another identity) arrives.
//!
//! ```no_run
//! use certbound_core::tls::TrustAnchors;
//! use certbound_downstream::TransportPool;
//! # fn f(cert: certbound_core::CertifiedKey) -> Result<(), certbound_downstream::DownstreamError> {
//! let pool = TransportPool::builder().trust(TrustAnchors::system()).max_clients(32).build()?;
//! let mtls = pool.client_for(Some(&cert))?;    // presents `cert`
//! let plain = pool.client_for(None)?;          // no client certificate
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use certbound_core::tls::{TrustAnchors, client_config};
use certbound_core::{CertifiedKey, Thumbprint};
use std::num::NonZeroUsize;
use std::sync::Mutex;

use crate::error::DownstreamError;

/// Settings shared by every client the pool builds.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub idle_timeout: Duration,
    /// Idle connections kept per host.
    pub max_idle_per_host: usize,
}

impl Default for TransportSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            max_idle_per_host: 32,
        }
    }
}

/// Builder for [`TransportPool`].
#[derive(Debug, Clone)]
pub struct TransportPoolBuilder {
    anchors: TrustAnchors,
    max_clients: usize,
    settings: TransportSettings,
}

impl TransportPoolBuilder {
    /// Trust anchors for server certificates.
    pub fn trust(mut self, anchors: TrustAnchors) -> Self {
        self.anchors = anchors;
        self
    }
    /// Most certificate-bound clients kept (least-recently-used eviction). Default 64.
    pub fn max_clients(mut self, n: usize) -> Self {
        self.max_clients = n.max(1);
        self
    }
    /// Timeouts and pooling.
    pub fn settings(mut self, s: TransportSettings) -> Self {
        self.settings = s;
        self
    }
    /// Builds the pool (and its client without a certificate).
    pub fn build(self) -> Result<TransportPool, DownstreamError> {
        let unbound = build_client(&self.anchors, None, &self.settings)?;
        let cap = NonZeroUsize::new(self.max_clients).unwrap_or(NonZeroUsize::MIN);
        let bound = Mutex::new(lru::LruCache::new(cap));
        Ok(TransportPool {
            inner: Arc::new(Inner {
                anchors: self.anchors,
                settings: self.settings,
                unbound,
                bound,
            }),
        })
    }
}

struct Inner {
    anchors: TrustAnchors,
    settings: TransportSettings,
    unbound: reqwest::Client,
    /// Short critical sections only: a lookup and an `Arc` clone. Building a client
    /// happens outside the lock.
    bound: Mutex<lru::LruCache<Thumbprint, reqwest::Client>>,
}

/// HTTP clients keyed by client certificate. Cheap to clone.
#[derive(Clone)]
pub struct TransportPool {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TransportPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportPool")
            .field("bound_clients", &self.bound_clients())
            .finish_non_exhaustive()
    }
}

impl TransportPool {
    /// A builder with system trust anchors and defaults.
    pub fn builder() -> TransportPoolBuilder {
        TransportPoolBuilder {
            anchors: TrustAnchors::system(),
            max_clients: 64,
            settings: TransportSettings::default(),
        }
    }

    /// The client presenting `cert` (built on first use, then reused), or the plain
    /// client when `cert` is `None`.
    pub fn client_for(
        &self,
        cert: Option<&CertifiedKey>,
    ) -> Result<reqwest::Client, DownstreamError> {
        let Some(cert) = cert else {
            return Ok(self.inner.unbound.clone());
        };
        let key = cert.thumbprint();
        if let Some(c) = self.lock().get(&key) {
            return Ok(c.clone());
        }
        tracing::debug!(x5t_s256 = %key, "building mTLS client");
        let client = build_client(&self.inner.anchors, Some(cert), &self.inner.settings)?;
        // If another task built one meanwhile, keep the first (its connections may be warm).
        let mut map = self.lock();
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        map.put(key, client.clone());
        Ok(client)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, lru::LruCache<Thumbprint, reqwest::Client>> {
        // A poisoned lock only means a panic elsewhere mid-lookup; the map is still sound.
        self.inner.bound.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many certificate-bound clients are held now.
    pub fn bound_clients(&self) -> usize {
        self.lock().len()
    }

    /// Whether a client for this thumbprint is held (does not count as a use).
    pub fn holds(&self, thumbprint: &Thumbprint) -> bool {
        self.lock().contains(thumbprint)
    }
}

fn build_client(
    anchors: &TrustAnchors,
    cert: Option<&CertifiedKey>,
    s: &TransportSettings,
) -> Result<reqwest::Client, DownstreamError> {
    let tls = client_config(anchors, cert)
        .map_err(|e| DownstreamError::Transport(format!("TLS configuration: {e}")))?;
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(s.request_timeout)
        .connect_timeout(s.connect_timeout)
        .pool_idle_timeout(s.idle_timeout)
        .pool_max_idle_per_host(s.max_idle_per_host)
        .tcp_nodelay(true)
        .tcp_keepalive(Duration::from_secs(60))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_while_idle(true)
        // Never followed by the HTTP client: a redirect would present the client certificate
        // and forward proofs to wherever it points. `Downstream` follows same-origin https
        // redirects of Bearer calls itself, re-attaching the token (see `api`).
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| DownstreamError::Transport(format!("cannot build HTTP client: {e}")))
}
