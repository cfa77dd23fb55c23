//! The mTLS client pool: one pooled HTTP client per binding certificate and TLS profile.
//!
//! A certificate-bound token is only useful on a connection that presents the same
//! certificate, so the pool keys its clients by the certificate's `x5t#S256` — plus the TLS
//! profile (trust anchors and timeouts), since two clients with different trust must never
//! be confused. Each client keeps its own connection pool (HTTP/2 negotiated by ALPN,
//! keep-alive), so repeated calls reuse warm TLS connections. The set of certificate-bound
//! clients is bounded and evicts the least-recently-used one — never a global clear, so a
//! busy certificate keeps its warm connections when a new one (rotation, another identity)
//! arrives.
//!
//! One pool serves token acquisition and downstream calls: the [`App`](crate::App) owns one
//! ([`App::transport`](crate::App::transport)) and `certbound-downstream` takes it, so the
//! token request and the API call for one certificate share one client. Handles made with
//! [`TransportPool::with_trust`] / [`TransportPool::with_settings`] share the same bounded
//! set under another profile.
//!
//! Every client refuses to follow redirects: a redirect would present the client certificate
//! and forward proofs to wherever it points.
//!
//! ```no_run
//! use certbound_core::tls::TrustAnchors;
//! use certbound_client::TransportPool;
//! # fn f(cert: certbound_core::CertifiedKey) -> Result<(), certbound_client::ClientError> {
//! let pool = TransportPool::builder().trust(TrustAnchors::system()).max_clients(32).build()?;
//! let mtls = pool.client_for(Some(&cert))?;    // presents `cert`
//! let plain = pool.client_for(None)?;          // no client certificate
//! # Ok(()) }
//! ```

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use certbound_core::tls::{TrustAnchors, client_config};
use certbound_core::{CertifiedKey, Thumbprint};

use crate::error::{ClientError, ErrorCause};

/// Settings shared by every client built under one profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// Default bound on certificate-bound clients.
pub const DEFAULT_MAX_CLIENTS: usize = 64;
/// Clients without a certificate are kept per profile; profiles are few.
const MAX_UNBOUND_PROFILES: usize = 16;

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
    pub fn build(self) -> Result<TransportPool, ClientError> {
        let pool = self.build_lazy();
        // Fail early on a bad TLS configuration.
        pool.client_for(None)?;
        Ok(pool)
    }

    /// Builds the pool without building any client yet.
    pub(crate) fn build_lazy(self) -> TransportPool {
        let cap = NonZeroUsize::new(self.max_clients).unwrap_or(NonZeroUsize::MIN);
        let unbound_cap = NonZeroUsize::new(MAX_UNBOUND_PROFILES).unwrap_or(NonZeroUsize::MIN);
        TransportPool {
            shared: Arc::new(Shared {
                clients: Mutex::new(Clients {
                    bound: lru::LruCache::new(cap),
                    unbound: lru::LruCache::new(unbound_cap),
                }),
            }),
            profile: Arc::new(Profile::new(self.anchors, self.settings)),
        }
    }
}

/// What makes two clients for one certificate differ.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ProfileKey {
    system_roots: bool,
    extra_roots: Vec<Vec<u8>>,
    settings: TransportSettings,
}

struct Profile {
    anchors: TrustAnchors,
    settings: TransportSettings,
    key: Arc<ProfileKey>,
}

impl Profile {
    fn new(anchors: TrustAnchors, settings: TransportSettings) -> Self {
        let key = Arc::new(ProfileKey {
            system_roots: anchors.system,
            extra_roots: anchors.extra.iter().map(|c| c.as_ref().to_vec()).collect(),
            settings: settings.clone(),
        });
        Self {
            anchors,
            settings,
            key,
        }
    }
}

struct Clients {
    bound: lru::LruCache<(Thumbprint, Arc<ProfileKey>), reqwest::Client>,
    unbound: lru::LruCache<Arc<ProfileKey>, reqwest::Client>,
}

struct Shared {
    /// Short critical sections only: a lookup and an `Arc` clone. Building a client
    /// happens outside the lock.
    clients: Mutex<Clients>,
}

/// HTTP clients keyed by client certificate (and TLS profile), bounded, LRU. Cheap to clone:
/// clones share the clients.
#[derive(Clone)]
pub struct TransportPool {
    shared: Arc<Shared>,
    profile: Arc<Profile>,
}

impl std::fmt::Debug for TransportPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportPool")
            .field("bound_clients", &self.bound_clients())
            .field("extra_anchors", &self.profile.anchors.extra.len())
            .field("settings", &self.profile.settings)
            .finish_non_exhaustive()
    }
}

impl TransportPool {
    /// A builder with system trust anchors and defaults.
    pub fn builder() -> TransportPoolBuilder {
        TransportPoolBuilder {
            anchors: TrustAnchors::system(),
            max_clients: DEFAULT_MAX_CLIENTS,
            settings: TransportSettings::default(),
        }
    }

    /// A handle on the same clients (same bound, same LRU order) building under other trust
    /// anchors; clients for equal anchors and settings are the same clients.
    pub fn with_trust(&self, anchors: TrustAnchors) -> TransportPool {
        TransportPool {
            shared: self.shared.clone(),
            profile: Arc::new(Profile::new(anchors, self.profile.settings.clone())),
        }
    }

    /// A handle on the same clients building with other timeouts.
    pub fn with_settings(&self, settings: TransportSettings) -> TransportPool {
        TransportPool {
            shared: self.shared.clone(),
            profile: Arc::new(Profile::new(self.profile.anchors.clone(), settings)),
        }
    }

    /// The trust anchors this handle builds with.
    pub fn trust_anchors(&self) -> &TrustAnchors {
        &self.profile.anchors
    }

    /// The settings this handle builds with.
    pub fn settings(&self) -> &TransportSettings {
        &self.profile.settings
    }

    /// Whether both handles hold the same clients.
    pub fn shares_clients_with(&self, other: &TransportPool) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The client presenting `cert` (built on first use, then reused), or the plain
    /// client when `cert` is `None`.
    pub fn client_for(&self, cert: Option<&CertifiedKey>) -> Result<reqwest::Client, ClientError> {
        let profile = &self.profile.key;
        let Some(cert) = cert else {
            if let Some(c) = self.lock().unbound.get(profile) {
                return Ok(c.clone());
            }
            let client = build_client(&self.profile.anchors, None, &self.profile.settings)?;
            let mut g = self.lock();
            if let Some(c) = g.unbound.get(profile) {
                return Ok(c.clone());
            }
            g.unbound.put(profile.clone(), client.clone());
            return Ok(client);
        };
        let key = (cert.thumbprint(), profile.clone());
        if let Some(c) = self.lock().bound.get(&key) {
            return Ok(c.clone());
        }
        tracing::debug!(x5t_s256 = %key.0, "building mTLS client");
        let client = build_client(&self.profile.anchors, Some(cert), &self.profile.settings)?;
        // If another task built one meanwhile, keep the first (its connections may be warm).
        let mut g = self.lock();
        if let Some(c) = g.bound.get(&key) {
            return Ok(c.clone());
        }
        g.bound.put(key, client.clone());
        Ok(client)
    }

    fn lock(&self) -> MutexGuard<'_, Clients> {
        // A poisoned lock only means a panic elsewhere mid-lookup; the map is still sound.
        self.shared
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Drops the client presenting the certificate with `thumbprint` (under this handle's
    /// profile): new requests get a new client; requests in flight on the old one finish.
    pub fn release(&self, thumbprint: &Thumbprint) {
        let key = (*thumbprint, self.profile.key.clone());
        if self.lock().bound.pop(&key).is_some() {
            tracing::debug!(x5t_s256 = %thumbprint, "dropped the mTLS client of a retired certificate");
        }
    }

    /// How many certificate-bound clients are held now (under every profile).
    pub fn bound_clients(&self) -> usize {
        self.lock().bound.len()
    }

    /// The bound on certificate-bound clients.
    pub fn max_clients(&self) -> usize {
        self.lock().bound.cap().get()
    }

    /// Whether a client for this thumbprint is held under this handle's profile (does not
    /// count as a use).
    pub fn holds(&self, thumbprint: &Thumbprint) -> bool {
        self.lock()
            .bound
            .contains(&(*thumbprint, self.profile.key.clone()))
    }
}

fn build_client(
    anchors: &TrustAnchors,
    cert: Option<&CertifiedKey>,
    s: &TransportSettings,
) -> Result<reqwest::Client, ClientError> {
    let tls = client_config(anchors, cert).map_err(|e| {
        ClientError::Tls(format!("TLS configuration: {e}"), Some(ErrorCause::new(e)))
    })?;
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
        // redirects of Bearer calls itself, re-attaching the token.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| {
            ClientError::Tls(
                format!("cannot build HTTP client: {}", super::describe_reqwest(&e)),
                Some(ErrorCause::new(e)),
            )
        })
}
