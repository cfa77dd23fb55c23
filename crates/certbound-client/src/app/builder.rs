//! [`AppBuilder`]: building an [`App`] in code or from an [`AppConfig`].

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certbound_core::pop::ProofKey;
use certbound_core::tls::TrustAnchors;
use certbound_core::{Certificate, CertifiedKey};

use crate::acquire::RetryPolicy;
use crate::authority::{Authority, DiscoveryCache};
use crate::cache::{MemoryTokenCache, TokenCache};
use crate::config::{AppConfig, CredentialDescription};
use crate::credential::{self, CertificateCredential, ClientCredential, SecretCredential};
use crate::error::{ClientError, ErrorCause};
use crate::proof::NonceStore;
use crate::secret::Secret;
use crate::transport::{TransportPool, TransportSettings};

use super::{App, HotCache, Inner, managed_identity_label};

/// Builds an [`App`] in code (or from an [`AppConfig`] plus code).
///
/// ```
/// use certbound_client::App;
/// let app = App::builder()
///     .client_id("my-app")
///     .authority("https://login.microsoftonline.com/contoso.onmicrosoft.com")
///     .client_secret("not-a-real-secret")
///     .build()
///     .unwrap();
/// assert_eq!(app.client_id(), "my-app");
/// ```
#[derive(Default)]
pub struct AppBuilder {
    config: AppConfig,
    credential: Option<Arc<dyn ClientCredential>>,
    anchors: Option<TrustAnchors>,
    ca_files: Vec<PathBuf>,
    extra_anchors: Vec<Certificate>,
    cache: Option<Arc<dyn TokenCache>>,
    policy: Option<RetryPolicy>,
    margin: Option<Duration>,
    proof_key: Option<ProofKey>,
    transport: Option<TransportPool>,
}

impl fmt::Debug for AppBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppBuilder {
    /// Starts from a configuration.
    pub fn from_config(config: AppConfig) -> Self {
        Self {
            config,
            ..Default::default()
        }
    }
    /// `AzureAd.ClientId`.
    pub fn client_id(mut self, v: impl Into<String>) -> Self {
        self.config.azure_ad.client_id = Some(v.into());
        self
    }
    /// `AzureAd.Authority` (full URL; overrides instance + tenant).
    pub fn authority(mut self, v: impl Into<String>) -> Self {
        self.config.azure_ad.authority = Some(v.into());
        self
    }
    /// `AzureAd.Instance`.
    pub fn instance(mut self, v: impl Into<String>) -> Self {
        self.config.azure_ad.instance = Some(v.into());
        self
    }
    /// `AzureAd.TenantId`.
    pub fn tenant_id(mut self, v: impl Into<String>) -> Self {
        self.config.azure_ad.tenant_id = Some(v.into());
        self
    }
    /// `AzureAd.AzureRegion`.
    pub fn region(mut self, v: impl Into<String>) -> Self {
        self.config.azure_ad.azure_region = Some(v.into());
        self
    }
    /// `AzureAd.SendX5C`.
    pub fn send_x5c(mut self, v: bool) -> Self {
        self.config.azure_ad.send_x5c = v;
        self
    }
    /// `AzureAd.AllowUnboundFallback`.
    pub fn allow_unbound_fallback(mut self, v: bool) -> Self {
        self.config.azure_ad.allow_unbound_fallback = v;
        self
    }
    /// Uses a certificate with its key (overrides `ClientCredentials`).
    pub fn certificate(mut self, cert: CertifiedKey) -> Self {
        self.credential = Some(Arc::new(CertificateCredential::new(cert, "code")));
        self
    }
    /// Uses a client secret (overrides `ClientCredentials`).
    pub fn client_secret(mut self, secret: impl Into<String>) -> Self {
        self.credential = Some(Arc::new(SecretCredential::new(Secret::new(secret))));
        self
    }
    /// Uses any credential source (overrides `ClientCredentials`).
    pub fn credential(mut self, c: Arc<dyn ClientCredential>) -> Self {
        self.credential = Some(c);
        self
    }
    /// Sets `ClientCredentials` (tried in order when the app is built).
    pub fn client_credentials(mut self, d: Vec<CredentialDescription>) -> Self {
        self.config.azure_ad.client_credentials = d;
        self
    }
    /// Replaces the trust anchors (default: system roots, honouring `SSL_CERT_FILE`).
    pub fn trust_anchors(mut self, a: TrustAnchors) -> Self {
        self.anchors = Some(a);
        self
    }
    /// Adds the certificates of a PEM file as trust anchors (`--ca-cert`).
    pub fn add_ca_cert_file(mut self, p: impl Into<PathBuf>) -> Self {
        self.ca_files.push(p.into());
        self
    }
    /// Adds one trust anchor.
    pub fn add_trust_anchor(mut self, c: &Certificate) -> Self {
        self.extra_anchors.push(c.clone());
        self
    }
    /// Uses another token cache (e.g. a distributed one). Default: [`MemoryTokenCache`].
    pub fn token_cache(mut self, c: Arc<dyn TokenCache>) -> Self {
        self.cache = Some(c);
        self
    }
    /// Bound on the in-memory caches (`TokenCache.MaxEntries`, default 10 000).
    pub fn max_cache_entries(mut self, n: u64) -> Self {
        self.config.token_cache.max_entries = Some(n);
        self
    }
    /// A token counts as expired this long before `exp` (default 5 min).
    pub fn expiry_margin(mut self, d: Duration) -> Self {
        self.margin = Some(d);
        self
    }
    /// Timeouts and retries.
    pub fn retry_policy(mut self, p: RetryPolicy) -> Self {
        self.policy = Some(p);
        self
    }
    /// The proof-of-possession key for `Pop` and `DPoP` (default: a fresh EC P-256 key).
    pub fn proof_key(mut self, k: ProofKey) -> Self {
        self.proof_key = Some(k);
        self
    }

    /// Takes the app's HTTP clients from `pool` (sharing its bounded set with other users
    /// of it, e.g. another app); the app still builds with its own trust anchors and
    /// timeouts. Default: a pool of its own.
    pub fn transport_pool(mut self, pool: TransportPool) -> Self {
        self.transport = Some(pool);
        self
    }

    /// Loads the credential, checks the authority and builds the app (no network access).
    pub fn build(self) -> Result<App, ClientError> {
        let cfg = self.config;
        let file = cfg.source_file.clone();
        let ad = &cfg.azure_ad;
        // A managed identity brings its own client id (from IMDS); `AzureAd.ClientId` is
        // then optional and only names the app in logs.
        let client_id = match ad.client_id.clone() {
            Some(id) => id,
            None => managed_identity_label(self.credential.as_deref(), &ad.client_credentials)
                .ok_or_else(|| {
                    cfg.err("AzureAd.ClientId", "missing: the application (client) id")
                })?,
        };
        let authority = Authority::from_config(ad, file.as_deref())?;
        let credential = match self.credential {
            Some(c) => c,
            None => credential::load_first(&ad.client_credentials)?,
        };
        let mut anchors = self.anchors.unwrap_or_else(TrustAnchors::system);
        for f in &self.ca_files {
            anchors.add_pem_file(f).map_err(|e| {
                ClientError::Tls(format!("trust anchor {e}"), Some(ErrorCause::new(e)))
            })?;
        }
        for c in &self.extra_anchors {
            anchors.add(c);
        }
        let mut policy = self.policy.unwrap_or_default();
        if let Some(s) = ad.http_timeout_seconds {
            policy.request_timeout = Duration::from_secs(s.max(1));
        }
        // The acquisition timeouts as before: connect and whole request within
        // `request_timeout`; downstream handles share these clients.
        let settings = TransportSettings {
            request_timeout: policy.request_timeout,
            connect_timeout: policy.request_timeout,
            ..TransportSettings::default()
        };
        let http = match self.transport {
            Some(pool) => pool.with_trust(anchors).with_settings(settings),
            None => TransportPool::builder()
                .trust(anchors)
                .settings(settings)
                .build_lazy(),
        };
        let max = cfg.token_cache.max_entries.unwrap_or(10_000);
        let margin = self
            .margin
            .map(|d| d.as_secs() as i64)
            .or(cfg.token_cache.expiry_margin_seconds.map(|s| s as i64))
            .unwrap_or(300);
        let proof_key = match self.proof_key {
            Some(k) => k,
            None => ProofKey::generate().map_err(|e| {
                ClientError::Proof(
                    format!("cannot generate the proof key: {e}"),
                    Some(ErrorCause::new(e)),
                )
            })?,
        };
        Ok(App {
            inner: Arc::new(Inner {
                client_id,
                authority,
                credential,
                send_x5c: ad.send_x5c,
                allow_unbound_fallback: ad.allow_unbound_fallback,
                warned_fallback: AtomicBool::new(false),
                http,
                discovery: DiscoveryCache::default(),
                cache: self
                    .cache
                    .unwrap_or_else(|| Arc::new(MemoryTokenCache::new(max))),
                hot: HotCache::new(max),
                inflight: Mutex::new(HashMap::new()),
                throttled: Mutex::new(HashMap::new()),
                policy,
                margin,
                config: Some(cfg),
                requests: AtomicU64::new(0),
                proof_key,
                nonces: NonceStore::default(),
            }),
        })
    }
}
