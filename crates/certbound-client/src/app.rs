//! [`App`]: one object wiring configuration, credentials, authority, acquisition, cache and
//! headers. Cheap to clone (`Arc` inside), `Send + Sync`, meant to be shared across tasks.
//!
//! ```no_run
//! # async fn run() -> Result<(), certbound_client::ClientError> {
//! use certbound_client::{App, HeaderOptions};
//! let app = App::from_config_file("appsettings.json")?;
//! let header = app.authorization_header_for_app(&["api://my-api/.default"], &HeaderOptions::mtls_pop()).await?;
//! // Send `header.value()` as `Authorization`, over a TLS connection presenting `header.binding()`.
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use certbound_core::pop::ProofKey;
use certbound_core::tls::TrustAnchors;
use certbound_core::{Certificate, CertifiedKey, Thumbprint};
use futures::FutureExt as _;
use futures::future::Shared;

use crate::acquire::{KeyBound, RetryPolicy, TokenRequest, request_token, unshare};
use crate::authority::{Authority, DiscoveryCache};
use crate::cache::{BoxFuture, CacheKey, CachedToken, MemoryTokenCache, TokenCache};
use crate::config::{AppConfig, CredentialDescription};
use crate::credential::{
    self, CertificateCredential, ClientCredential, ResolvedCredential, SecretCredential,
};
use crate::error::ClientError;
use crate::header::{AuthorizationHeader, HeaderOptions, HeaderParts, ProtocolScheme, TokenSource};
use crate::managed::{ManagedIdentityCredential, MintedCredential};
use crate::proof::NonceStore;
use crate::secret::Secret;
use crate::transport::{TransportPool, TransportSettings};

/// An app-only access token.
#[derive(Clone, Debug)]
pub struct AppToken {
    /// The token type the server returned (`mtls_pop`, `Bearer`; `pop` or `DPoP` for tokens
    /// bound to the app's proof key).
    pub token_type: String,
    /// The access token (`Debug` redacts it).
    pub access_token: Secret,
    /// Expiry, Unix seconds.
    pub expires_on: i64,
    /// What the token is bound to, `None` when unbound: the certificate's `x5t#S256`
    /// (`MTLS_POP`) or the proof key's RFC 7638 thumbprint (`cnf.kid` for `Pop`, `cnf.jkt`
    /// for `DPoP`).
    pub binding_thumbprint: Option<Thumbprint>,
    /// Where it came from.
    pub source: TokenSource,
}

type Inflight = Shared<BoxFuture<'static, Result<CachedToken, Arc<ClientError>>>>;

/// The client application. See the [module docs](self).
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    client_id: String,
    authority: Authority,
    credential: Arc<dyn ClientCredential>,
    send_x5c: bool,
    allow_unbound_fallback: bool,
    warned_fallback: AtomicBool,
    http: TransportPool,
    discovery: DiscoveryCache,
    cache: Arc<dyn TokenCache>,
    hot: HotCache,
    inflight: Mutex<HashMap<CacheKey, Inflight>>,
    throttled: Mutex<HashMap<CacheKey, i64>>,
    policy: RetryPolicy,
    margin: i64,
    config: Option<AppConfig>,
    requests: AtomicU64,
    /// The key `Pop` and `DPoP` tokens are bound to (in memory, rotatable).
    proof_key: ProofKey,
    /// The latest `DPoP-Nonce` of each server.
    nonces: NonceStore,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("client_id", &self.inner.client_id)
            .field("authority", &self.inner.authority.url())
            .field("credential", &self.inner.credential.describe())
            .field("cache", &self.inner.cache)
            .field("proof_key", &self.inner.proof_key)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Reads an appsettings-style file (with environment overrides) and builds the app.
    pub fn from_config_file(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        Self::from_config(AppConfig::from_file(path)?)
    }
    /// Builds the app from a parsed configuration.
    pub fn from_config(config: AppConfig) -> Result<Self, ClientError> {
        AppBuilder::from_config(config).build()
    }
    /// A builder for options in code.
    pub fn builder() -> AppBuilder {
        AppBuilder::default()
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }
    /// The authority.
    pub fn authority(&self) -> &Authority {
        &self.inner.authority
    }
    /// The credential in use.
    pub fn credential(&self) -> &Arc<dyn ClientCredential> {
        &self.inner.credential
    }
    /// The configuration the app was built from, if any.
    pub fn config(&self) -> Option<&AppConfig> {
        self.inner.config.as_ref()
    }
    /// The app's mTLS client pool: token requests take their HTTP client from it, and
    /// downstream calls made through it (`certbound-downstream`) use the same client — the
    /// same connections — for the same certificate. Cheap to clone.
    pub fn transport(&self) -> &TransportPool {
        &self.inner.http
    }

    /// How many token requests this app has sent to the authority (attempts, including retries).
    pub fn token_requests_sent(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The app's proof-of-possession key: `Pop` (`cnf.kid`) and `DPoP` (`cnf.jkt`) tokens
    /// are bound to it. Generated when the app is built (EC P-256, ES256) unless
    /// [`AppBuilder::proof_key`] gave one; it lives in memory only.
    pub fn proof_key(&self) -> &ProofKey {
        &self.inner.proof_key
    }

    /// Replaces the proof key with a fresh one. Tokens bound to the old key are no longer
    /// served: the next `Pop`/`DPoP` header acquires a token for the new key.
    pub fn rotate_proof_key(&self) -> Result<(), ClientError> {
        self.inner
            .proof_key
            .rotate()
            .map_err(|e| ClientError::Proof(format!("cannot rotate the proof key: {e}")))
    }

    /// Remembers the `DPoP-Nonce` a server sent (in any response, or with a
    /// `use_dpop_nonce` challenge); later DPoP proofs for that origin carry it. Returns
    /// false when the URL or nonce is malformed (then nothing changes).
    pub fn note_dpop_nonce(&self, url: &str, nonce: &str) -> bool {
        self.inner.nonces.set(url, nonce)
    }

    /// The client certificate the app presents on mTLS connections (`MTLS`, `MTLS_POP`): the
    /// credential's certificate, or the one minted for the managed identity.
    pub async fn client_certificate(&self) -> Result<CertifiedKey, ClientError> {
        if let Some(mi) = self.inner.credential.managed_identity() {
            return Ok(mi.minted().await?.certified_key().clone());
        }
        let resolved = self.inner.credential.resolve().await?;
        resolved
            .certificate()
            .cloned()
            .ok_or_else(|| ClientError::SchemeNotSatisfiable(self.certificate_needed("MTLS")))
    }

    /// Why `scheme` cannot be served: the loaded credential has no certificate with its key.
    fn certificate_needed(&self, scheme: &str) -> String {
        format!(
            "{scheme} needs a certificate credential with its private key (SourceType Path, Base64Encoded or ManagedCertificate); the loaded credential is a {}",
            self.inner.credential.describe()
        )
    }

    /// The headers for one request with `method` to `url`: what
    /// [`authorization_header_for_app`](Self::authorization_header_for_app) gives, and for
    /// the schemes that sign each request a fresh proof — `DPoP`: `Authorization: DPoP <t>`
    /// plus [`dpop_proof`](AuthorizationHeader::dpop_proof) (`htm`, `htu`, `ath`, and the
    /// server's latest nonce); `Pop`: `Authorization: PoP <signed HTTP request>` over
    /// method, host and path. The token itself comes from the cache when valid.
    ///
    /// ```no_run
    /// # async fn run(app: certbound_client::App) -> Result<(), certbound_client::ClientError> {
    /// use certbound_client::HeaderOptions;
    /// let url = "https://api.example/orders?top=5";
    /// let h = app
    ///     .authorization_header_for_request(&["api://orders/.default"], &HeaderOptions::dpop(), "GET", url)
    ///     .await?;
    /// let mut headers = http::HeaderMap::new();
    /// h.apply(&mut headers)?; // Authorization: DPoP …, DPoP: <proof>
    /// # Ok(()) }
    /// ```
    pub async fn authorization_header_for_request(
        &self,
        scopes: &[impl AsRef<str>],
        options: &HeaderOptions,
        method: &str,
        url: &str,
    ) -> Result<AuthorizationHeader, ClientError> {
        let scheme = self.effective_scheme(options)?;
        if !scheme.signs_requests() {
            return self.header_for(scopes, scheme, options).await;
        }
        let (entry, source) = self.entry(scopes, scheme, options).await?;
        let token = entry.token.access_token.expose();
        let key = &self.inner.proof_key;
        let (value, scheme_len, dpop) = if scheme == ProtocolScheme::DPoP {
            let proof =
                crate::proof::dpop_proof(key, &self.inner.nonces, method, url, Some(token))?;
            (entry.header.value().into(), 4, Some(proof.into_boxed_str()))
        } else {
            let shr = crate::proof::signed_http_request(key, token, method, url)?;
            (format!("PoP {shr}").into_boxed_str(), 3, None)
        };
        Ok(HeaderParts {
            value,
            dpop,
            scheme_len,
            binding: None,
            binding_thumbprint: None,
            expires_on: entry.token.expires_on,
        }
        .into_header(source))
    }

    /// The `Authorization` header for an app token with `scopes`, and the certificate to
    /// present when the token is bound. The cache-hit path takes no lock other than a shard
    /// read lock and allocates nothing.
    pub async fn authorization_header_for_app(
        &self,
        scopes: &[impl AsRef<str>],
        options: &HeaderOptions,
    ) -> Result<AuthorizationHeader, ClientError> {
        let scheme = self.effective_scheme(options)?;
        if scheme.signs_requests() {
            return Err(signs_every_request(scheme));
        }
        self.header_for(scopes, scheme, options).await
    }

    async fn header_for(
        &self,
        scopes: &[impl AsRef<str>],
        scheme: ProtocolScheme,
        options: &HeaderOptions,
    ) -> Result<AuthorizationHeader, ClientError> {
        if scheme == ProtocolScheme::Mtls {
            let cert = self.client_certificate().await?;
            return Ok(HeaderParts {
                value: Box::from(""),
                dpop: None,
                scheme_len: 0,
                binding_thumbprint: Some(cert.thumbprint()),
                expires_on: cert.leaf().not_after(),
                binding: Some(cert),
            }
            .into_header(TokenSource::Cache));
        }
        let (entry, source) = self.entry(scopes, scheme, options).await?;
        let mut h = entry.header.clone();
        h.source = source;
        Ok(h)
    }

    /// A prepared header source for `scopes` and `options`: each
    /// [`HeaderHandle::get`] is a cache hit of one atomic load, a generation check and one
    /// reference-count increment while the token is fresh — no scope hashing or lookup.
    /// Made once per downstream API and kept (it is `Clone`, `Send`, `Sync`).
    ///
    /// ```no_run
    /// # async fn run(app: certbound_client::App) -> Result<(), certbound_client::ClientError> {
    /// let orders = app.header_handle(&["api://orders/.default"], &certbound_client::HeaderOptions::mtls_pop());
    /// let h = orders.get().await?; // the first call acquires; later calls are cache hits
    /// # Ok(()) }
    /// ```
    pub fn header_handle(
        &self,
        scopes: &[impl AsRef<str>],
        options: &HeaderOptions,
    ) -> HeaderHandle {
        let mut scopes: Vec<String> = scopes
            .iter()
            .map(|s| s.as_ref().trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        HeaderHandle {
            inner: Arc::new(HandleInner {
                app: self.clone(),
                scopes: scopes.into_boxed_slice(),
                options: HeaderOptions {
                    force_refresh: false,
                    ..options.clone()
                },
                slot: arc_swap::ArcSwap::from_pointee(Slot::empty()),
            }),
        }
    }

    /// An app token for `scopes` (`client_credentials`), from the cache when valid.
    pub async fn acquire_token_for_app(
        &self,
        scopes: &[impl AsRef<str>],
        options: &HeaderOptions,
    ) -> Result<AppToken, ClientError> {
        let scheme = self.effective_scheme(options)?;
        if !scheme.uses_token() {
            return Err(ClientError::SchemeNotSatisfiable(
                "MTLS authenticates with the client certificate alone: there is no token to acquire".into(),
            ));
        }
        let (entry, source) = self.entry(scopes, scheme, options).await?;
        Ok(AppToken {
            token_type: entry.token.token_type.clone(),
            access_token: entry.token.access_token.clone(),
            expires_on: entry.token.expires_on,
            binding_thumbprint: entry
                .token
                .binding_thumbprint
                .as_deref()
                .and_then(Thumbprint::from_base64url),
            source,
        })
    }

    /// Applies the scheme rules: `MTLS_POP` needs an app token and a certificate credential;
    /// `Pop`/`DPoP` an app token from the app's own credential (not a managed identity);
    /// `MTLS` a certificate. A bound scheme that cannot be honoured falls back to Bearer
    /// (with a warning) only when the unbound fallback is allowed.
    fn effective_scheme(&self, o: &HeaderOptions) -> Result<ProtocolScheme, ClientError> {
        if o.scheme == ProtocolScheme::Mtls {
            if !self.inner.credential.provides_certificate() {
                return Err(ClientError::SchemeNotSatisfiable(
                    self.certificate_needed("MTLS"),
                ));
            }
            return Ok(o.scheme);
        }
        if !o.scheme.is_bound() {
            return Ok(o.scheme);
        }
        let problem = if !o.request_app_token {
            Some(format!(
                "{} needs RequestAppToken: true (only app tokens can be bound)",
                o.scheme
            ))
        } else if o.scheme.signs_requests() {
            self.inner.credential.managed_identity().map(|_| {
                format!(
                    "{} tokens are bound to the app's proof key, which a managed identity cannot present to its token endpoint; use MTLS_POP (the minted certificate) or Bearer",
                    o.scheme
                )
            })
        } else if !self.inner.credential.provides_certificate() {
            Some(self.certificate_needed("MTLS_POP"))
        } else {
            None
        };
        match problem {
            None => Ok(o.scheme),
            Some(p)
                if o.allow_unbound_fallback
                    .unwrap_or(self.inner.allow_unbound_fallback) =>
            {
                if !self.inner.warned_fallback.swap(true, Ordering::Relaxed) {
                    tracing::warn!(problem = %p, scheme = %o.scheme, "AllowUnboundFallback: using an UNBOUND bearer token instead of the bound scheme");
                }
                Ok(ProtocolScheme::Bearer)
            }
            Some(p) => Err(ClientError::SchemeNotSatisfiable(format!(
                "{p}; or opt in to AllowUnboundFallback to accept an unbound bearer token"
            ))),
        }
    }

    fn hot_entry(
        &self,
        scopes: &[impl AsRef<str>],
        scheme: ProtocolScheme,
        tenant: Option<&str>,
    ) -> Option<Arc<HotEntry>> {
        let fp = fingerprint(scopes, scheme, tenant);
        let e = self.inner.hot.get(fp)?;
        if !e.matches(scopes, scheme, tenant) || e.generation != self.inner.credential.generation()
        {
            return None;
        }
        if scheme.signs_requests()
            && !e
                .token
                .binding_thumbprint
                .as_deref()
                .is_some_and(|t| self.inner.proof_key.has_thumbprint(t))
        {
            return None; // the proof key was rotated
        }
        // The coarse clock (one atomic load): expiry margins are minutes long.
        let now = certbound_core::clock::coarse_now_unix();
        if now >= e.usable_until {
            return None;
        }
        if let Some(r) = e.token.refresh_on
            && now >= r
        {
            self.maybe_refresh(&e, now);
        }
        Some(e)
    }

    /// The hot entry (unless `force_refresh`), else the pluggable cache or the authority.
    /// The hot path takes a shard read lock and one reference count.
    async fn entry(
        &self,
        scopes: &[impl AsRef<str>],
        scheme: ProtocolScheme,
        o: &HeaderOptions,
    ) -> Result<(Arc<HotEntry>, TokenSource), ClientError> {
        if !o.force_refresh
            && let Some(e) = self.hot_entry(scopes, scheme, o.tenant.as_deref())
        {
            return Ok((e, TokenSource::Cache));
        }
        self.token_slow(scopes, scheme, o).await
    }

    /// Starts one background refresh for an entry past its `refresh_on` (at most one every 30 s).
    fn maybe_refresh(&self, e: &Arc<HotEntry>, now: i64) {
        let next = e.next_refresh_try.load(Ordering::Relaxed);
        if now < next
            || e.next_refresh_try
                .compare_exchange(next, now + 30, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let app = self.clone();
        let e = e.clone();
        rt.spawn(async move {
            let opts = HeaderOptions {
                scheme: e.scheme,
                request_app_token: true,
                tenant: e.tenant.as_deref().map(str::to_owned),
                force_refresh: true,
                allow_unbound_fallback: None,
            };
            match app.token_slow(&e.scopes, e.scheme, &opts).await {
                Ok(_) => tracing::debug!(key = %e.key, "proactive refresh done"),
                Err(err) => tracing::warn!(key = %e.key, error = %err, "proactive refresh failed; serving the cached token"),
            }
        });
    }

    async fn token_slow(
        &self,
        scopes: &[impl AsRef<str>],
        scheme: ProtocolScheme,
        o: &HeaderOptions,
    ) -> Result<(Arc<HotEntry>, TokenSource), ClientError> {
        let mut sorted: Vec<String> = scopes
            .iter()
            .map(|s| s.as_ref().trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() {
            return Err(ClientError::NoScopes);
        }
        let (route, resolved, cert, key) = match self.inner.credential.managed_identity() {
            Some(mi) => managed_route(mi, &sorted, scheme, o).await?,
            None => {
                let authority = match &o.tenant {
                    Some(t) => self.inner.authority.with_tenant(t)?,
                    None => self.inner.authority.clone(),
                };
                let resolved = self.inner.credential.resolve().await?;
                let cert = if scheme.binds_certificate() {
                    Some(resolved.certificate().cloned().ok_or_else(|| {
                        ClientError::SchemeNotSatisfiable(format!(
                            "MTLS_POP needs a certificate; {} yielded none",
                            self.inner.credential.describe()
                        ))
                    })?)
                } else {
                    None
                };
                let key = CacheKey::new(
                    &authority.url(),
                    authority.tenant(),
                    &self.inner.client_id,
                    &sorted,
                    scheme.token_type(),
                    self.binding_for(scheme, cert.as_ref()).as_ref(),
                );
                (Route::Authority(authority), Some(resolved), cert, key)
            }
        };
        let tp = self.binding_for(scheme, cert.as_ref());
        let now = certbound_core::now_unix();
        if !o.force_refresh {
            match self.inner.cache.get(&key).await {
                Ok(Some(t)) if self.usable(&t, tp.as_ref(), now) => {
                    let e = self.remember(sorted, scheme, o.tenant.as_deref(), key, t, cert);
                    if e.token.refresh_on.is_some_and(|r| now >= r) {
                        self.maybe_refresh(&e, now);
                    }
                    return Ok((e, TokenSource::Cache));
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(key = %key, error = %err, "token cache lookup failed; asking the authority")
                }
            }
        }
        if let Some(until) = self
            .inner
            .throttled
            .lock()
            .ok()
            .and_then(|g| g.get(&key).copied())
            && now < until
        {
            return Err(ClientError::Throttled {
                url: self.route_url(&route),
                retry_after: Duration::from_secs((until - now) as u64),
            });
        }
        let token = self
            .single_flight(&key, &sorted, scheme, route, resolved, cert.clone())
            .await?;
        let e = self.remember(sorted, scheme, o.tenant.as_deref(), key, token, cert);
        Ok((e, TokenSource::IdentityProvider))
    }

    /// What a token for `scheme` is bound to: the certificate's thumbprint (`MTLS_POP`), the
    /// proof key's (`Pop`, `DPoP`: a rotated key never finds the old key's tokens), or nothing.
    fn binding_for(
        &self,
        scheme: ProtocolScheme,
        cert: Option<&CertifiedKey>,
    ) -> Option<Thumbprint> {
        match cert {
            Some(c) => Some(c.thumbprint()),
            None if scheme.signs_requests() => {
                Thumbprint::from_base64url(&self.inner.proof_key.thumbprint())
            }
            None => None,
        }
    }

    fn usable(&self, t: &CachedToken, binding: Option<&Thumbprint>, now: i64) -> bool {
        if now >= t.expires_on - self.inner.margin {
            return false;
        }
        match (binding, &t.binding_thumbprint) {
            (None, None) => true,
            (Some(b), Some(tb)) => Thumbprint::from_base64url(tb).is_some_and(|x| x.ct_eq(b)),
            _ => false,
        }
    }

    fn remember(
        &self,
        scopes: Vec<String>,
        scheme: ProtocolScheme,
        tenant: Option<&str>,
        key: CacheKey,
        token: CachedToken,
        cert: Option<CertifiedKey>,
    ) -> Arc<HotEntry> {
        let value =
            format!("{} {}", token.token_type, token.access_token.expose()).into_boxed_str();
        let header = HeaderParts {
            value,
            dpop: None,
            scheme_len: token.token_type.len(),
            binding_thumbprint: cert.as_ref().map(CertifiedKey::thumbprint),
            binding: cert,
            expires_on: token.expires_on,
        }
        .into_header(TokenSource::Cache);
        // A bound header is only useful while its certificate can still be presented (rotating
        // sources such as managed identity mint a new one before the old expires).
        let minted = self.inner.credential.managed_identity().is_some();
        let cert_until = header.binding().map_or(i64::MAX, |c| {
            let until = c.leaf().not_after() - 60;
            // A minted certificate is re-minted from its refresh point on: stop serving the
            // header then, so the next request picks up the new certificate (and token).
            if minted {
                until.min(crate::managed::refresh_at(c))
            } else {
                until
            }
        });
        let usable_until = (token.expires_on - self.inner.margin).min(cert_until);
        let fp = fingerprint(&scopes, scheme, tenant);
        let e = Arc::new(HotEntry {
            scopes: scopes.into_iter().map(String::into_boxed_str).collect(),
            scheme,
            tenant: tenant.map(Into::into),
            usable_until,
            next_refresh_try: AtomicI64::new(0),
            generation: self.inner.credential.generation(),
            header,
            token,
            key,
        });
        self.inner.hot.insert(fp, e.clone());
        e
    }

    async fn single_flight(
        &self,
        key: &CacheKey,
        scopes: &[String],
        scheme: ProtocolScheme,
        route: Route,
        resolved: Option<ResolvedCredential>,
        cert: Option<CertifiedKey>,
    ) -> Result<CachedToken, ClientError> {
        let fut = {
            let mut g = self
                .inner
                .inflight
                .lock()
                .map_err(|_| ClientError::Cache("in-flight table lock poisoned".into()))?;
            match g.get(key) {
                Some(f) => f.clone(),
                None => {
                    let app = self.clone();
                    let (key2, scopes) = (key.clone(), scopes.to_vec());
                    let handle = tokio::spawn(async move {
                        let r = app
                            .fetch(
                                &key2,
                                &scopes,
                                scheme,
                                &route,
                                resolved.as_ref(),
                                cert.as_ref(),
                            )
                            .await;
                        if let Ok(t) = &r
                            && let Err(e) = app.inner.cache.set(&key2, t).await
                        {
                            tracing::warn!(key = %key2, error = %e, "token cache store failed");
                        }
                        if let Err(ClientError::Throttled { retry_after, .. }) = &r
                            && let Ok(mut t) = app.inner.throttled.lock()
                        {
                            if t.len() >= 1024 {
                                let now = certbound_core::now_unix();
                                t.retain(|_, until| *until > now);
                            }
                            t.insert(
                                key2.clone(),
                                certbound_core::now_unix() + retry_after.as_secs() as i64,
                            );
                        }
                        if let Ok(mut g) = app.inner.inflight.lock() {
                            g.remove(&key2);
                        }
                        r.map_err(Arc::new)
                    });
                    let f: BoxFuture<'static, Result<CachedToken, Arc<ClientError>>> =
                        Box::pin(async move {
                            handle
                                .await
                                .unwrap_or_else(|_| Err(Arc::new(ClientError::Cancelled)))
                        });
                    let f = f.shared();
                    g.insert(key.clone(), f.clone());
                    f
                }
            }
        };
        fut.await.map_err(unshare)
    }

    async fn fetch(
        &self,
        key: &CacheKey,
        scopes: &[String],
        scheme: ProtocolScheme,
        route: &Route,
        resolved: Option<&ResolvedCredential>,
        cert: Option<&CertifiedKey>,
    ) -> Result<CachedToken, ClientError> {
        let inner = &self.inner;
        let authority = match route {
            Route::Authority(a) => a,
            Route::ManagedIdentity => return self.fetch_managed_unbound(key, scopes).await,
            Route::Minted(m) => return self.fetch_minted(key, scopes, m, resolved).await,
        };
        let Some(resolved) = resolved else {
            return Err(ClientError::Credential {
                what: inner.credential.describe(),
                message: "yielded no credential for the token request".into(),
            });
        };
        let endpoint = if authority.is_entra() {
            match cert {
                Some(_) => authority.mtls_token_endpoint()?,
                None => authority.entra_token_endpoint().unwrap_or_default(),
            }
        } else {
            let plain = inner.http.client_for(None)?;
            let ep = inner
                .discovery
                .get(authority, &plain, inner.policy.request_timeout)
                .await?;
            match cert {
                Some(_) => ep.for_mtls().to_owned(),
                None => ep.token_endpoint.clone(),
            }
        };
        let client = inner.http.client_for(cert)?;
        let key_bound = match scheme {
            ProtocolScheme::Pop => Some(KeyBound::Pop(&inner.proof_key)),
            ProtocolScheme::DPoP => Some(KeyBound::DPoP(&inner.proof_key, &inner.nonces)),
            _ => None,
        };
        let req = TokenRequest {
            endpoint: &endpoint,
            client_id: &inner.client_id,
            scopes,
            bound: cert,
            bearer_ok_for_bound: !authority.is_entra(),
            credential: resolved,
            send_x5c: inner.send_x5c,
            key_bound,
        };
        tracing::debug!(key = %key, endpoint = %endpoint, scheme = %scheme, bound = cert.is_some(), "requesting a token");
        let counter = &inner.requests;
        let r = request_token(&client, &req, &inner.policy, counter).await;
        match &r {
            Ok(t) => {
                tracing::info!(key = %key, token_type = %t.token_type, expires_on = t.expires_on, bound = t.binding_thumbprint.is_some(), "token acquired")
            }
            Err(e) => tracing::debug!(key = %key, error = %e, "token request failed"),
        }
        r
    }
}

impl App {
    /// Where a route's tokens come from (for errors).
    fn route_url(&self, route: &Route) -> String {
        match route {
            Route::Authority(a) => a.url(),
            Route::Minted(m) => m.token_endpoint(),
            Route::ManagedIdentity => self
                .inner
                .credential
                .managed_identity()
                .map(ManagedIdentityCredential::unbound_endpoint)
                .unwrap_or_default(),
        }
    }

    /// An unbound managed-identity token from IMDS v1 or App Service.
    async fn fetch_managed_unbound(
        &self,
        key: &CacheKey,
        scopes: &[String],
    ) -> Result<CachedToken, ClientError> {
        let credential = &self.inner.credential;
        let mi = credential
            .managed_identity()
            .ok_or_else(|| ClientError::Credential {
                what: credential.describe(),
                message: "is not a managed identity".into(),
            })?;
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(key = %key, endpoint = %mi.unbound_endpoint(), "requesting an unbound managed-identity token");
        let r = mi.unbound_token(scopes).await;
        match &r {
            Ok(t) => {
                tracing::info!(key = %key, expires_on = t.expires_on, "managed-identity token acquired")
            }
            Err(e) => {
                tracing::debug!(key = %key, error = %e, "managed-identity token request failed")
            }
        }
        r
    }

    /// The step 4 of docs/wire-formats.md (IMDS v2) request: the minted credential's token endpoint and client id,
    /// `token_type=mtls_pop`, over mTLS with the minted certificate. A certificate the
    /// endpoint rejects (`invalid_client`) is forgotten, so the next request re-mints.
    async fn fetch_minted(
        &self,
        key: &CacheKey,
        scopes: &[String],
        minted: &MintedCredential,
        resolved: Option<&ResolvedCredential>,
    ) -> Result<CachedToken, ClientError> {
        let inner = &self.inner;
        let fallback;
        let resolved = match resolved {
            Some(r) => r,
            None => {
                fallback = ResolvedCredential::Certificate(minted.certified_key().clone());
                &fallback
            }
        };
        let endpoint = minted.token_endpoint();
        let client = inner.http.client_for(Some(minted.certified_key()))?;
        let req = TokenRequest {
            endpoint: &endpoint,
            client_id: minted.client_id(),
            scopes,
            bound: Some(minted.certified_key()),
            bearer_ok_for_bound: false,
            credential: resolved,
            send_x5c: inner.send_x5c,
            key_bound: None,
        };
        tracing::debug!(key = %key, endpoint = %endpoint, client_id = minted.client_id(), "requesting a token with the managed-identity certificate");
        let r = request_token(&client, &req, &inner.policy, &inner.requests).await;
        match &r {
            Ok(t) => {
                tracing::info!(key = %key, token_type = %t.token_type, expires_on = t.expires_on, bound = true, "token acquired with the managed-identity certificate")
            }
            Err(e) => {
                tracing::debug!(key = %key, error = %e, "token request with the managed-identity certificate failed");
                if e.code() == "invalid_client"
                    && let Some(mi) = inner.credential.managed_identity()
                {
                    tracing::warn!(endpoint = %endpoint, "the token endpoint rejected the managed-identity certificate; the next request mints a new one");
                    mi.invalidate().await;
                }
            }
        }
        r
    }
}

/// A prepared header source for one set of scopes and options; see [`App::header_handle`].
#[derive(Clone)]
pub struct HeaderHandle {
    inner: Arc<HandleInner>,
}

struct HandleInner {
    app: App,
    scopes: Box<[String]>,
    options: HeaderOptions,
    slot: arc_swap::ArcSwap<Slot>,
}

/// What a handle remembers: the header and until when it may be served without a lookup.
struct Slot {
    header: AuthorizationHeader,
    /// `min(usable_until, refresh_on)` of the cache entry.
    fresh_until: i64,
    generation: u64,
}

impl Slot {
    fn empty() -> Self {
        Self {
            header: HeaderParts {
                value: Box::from(""),
                dpop: None,
                scheme_len: 0,
                binding: None,
                binding_thumbprint: None,
                expires_on: 0,
            }
            .into_header(TokenSource::Cache),
            fresh_until: i64::MIN,
            generation: 0,
        }
    }
}

/// A borrowed cache-hit header from [`HeaderHandle::cached`]: no reference count is taken.
/// Use it and drop it; do not hold it across an `.await`.
pub struct HeaderRef(arc_swap::Guard<Arc<Slot>>);

impl std::ops::Deref for HeaderRef {
    type Target = AuthorizationHeader;
    fn deref(&self) -> &AuthorizationHeader {
        &self.0.header
    }
}

impl fmt::Debug for HeaderRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Debug for HeaderHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderHandle")
            .field("scopes", &self.inner.scopes)
            .field("scheme", &self.inner.options.scheme)
            .field("tenant", &self.inner.options.tenant)
            .finish_non_exhaustive()
    }
}

impl HeaderHandle {
    /// The header: the remembered entry while it is fresh (not past its refresh point or
    /// expiry margin, same credential generation), else what
    /// [`App::authorization_header_for_app`] gives (cache, then authority).
    pub async fn get(&self) -> Result<AuthorizationHeader, ClientError> {
        if let Some(h) = self.cached() {
            return Ok((*h).clone());
        }
        self.fill(false).await
    }

    /// The remembered header, borrowed, when it is fresh — the cheapest cache hit (one
    /// `ArcSwap` load, no reference count); `None` when [`get`](Self::get) has to look further.
    ///
    /// ```no_run
    /// # async fn run(h: certbound_client::HeaderHandle) -> Result<(), certbound_client::ClientError> {
    /// let value: String = match h.cached() {
    ///     Some(hit) => hit.value().to_owned(),
    ///     None => h.get().await?.value().to_owned(),
    /// };
    /// # Ok(()) }
    /// ```
    pub fn cached(&self) -> Option<HeaderRef> {
        let i = &self.inner;
        let slot = i.slot.load();
        let now = certbound_core::clock::coarse_now_unix();
        (now < slot.fresh_until && slot.generation == i.app.inner.credential.generation())
            .then(|| HeaderRef(slot))
    }

    /// Asks the authority for a new token now (like `force_refresh`) and remembers it.
    pub async fn refresh(&self) -> Result<AuthorizationHeader, ClientError> {
        self.fill(true).await
    }

    /// The scopes (trimmed, sorted, deduplicated).
    pub fn scopes(&self) -> &[String] {
        &self.inner.scopes
    }

    async fn fill(&self, force: bool) -> Result<AuthorizationHeader, ClientError> {
        let i = &self.inner;
        let app = &i.app;
        let scheme = app.effective_scheme(&i.options)?;
        if scheme.signs_requests() {
            return Err(signs_every_request(scheme));
        }
        if !scheme.uses_token() {
            return app.header_for(&i.scopes, scheme, &i.options).await;
        }
        let (entry, source) = if force {
            let o = HeaderOptions {
                force_refresh: true,
                ..i.options.clone()
            };
            app.entry(&i.scopes, scheme, &o).await?
        } else {
            app.entry(&i.scopes, scheme, &i.options).await?
        };
        i.slot.store(Arc::new(Slot {
            header: entry.header.clone(),
            fresh_until: entry
                .usable_until
                .min(entry.token.refresh_on.unwrap_or(i64::MAX)),
            generation: entry.generation,
        }));
        let mut h = entry.header.clone();
        h.source = source;
        Ok(h)
    }
}

/// A header for a scheme that signs each request was asked for without the request.
fn signs_every_request(scheme: ProtocolScheme) -> ClientError {
    ClientError::SchemeNotSatisfiable(format!(
        "{scheme} signs every request: use App::authorization_header_for_request(scopes, options, method, url)"
    ))
}

/// Where a token request goes.
#[derive(Clone)]
enum Route {
    /// The configured authority's token endpoint, with the app's client id.
    Authority(Authority),
    /// The token endpoint named by IMDS v2, with the managed identity's client id (bound).
    Minted(Arc<MintedCredential>),
    /// IMDS v1 or App Service (unbound managed-identity token).
    ManagedIdentity,
}

/// The route, credential, binding certificate and cache key of a managed-identity request.
async fn managed_route(
    mi: &ManagedIdentityCredential,
    scopes: &[String],
    scheme: ProtocolScheme,
    o: &HeaderOptions,
) -> Result<
    (
        Route,
        Option<ResolvedCredential>,
        Option<CertifiedKey>,
        CacheKey,
    ),
    ClientError,
> {
    if let Some(t) = &o.tenant {
        return Err(ClientError::SchemeNotSatisfiable(format!(
            "a managed identity gets tokens in its own tenant; the tenant override `{}` does not apply to it",
            crate::error::shorten(t, 80)
        )));
    }
    if scheme.signs_requests() {
        return Err(ClientError::SchemeNotSatisfiable(format!(
            "{scheme} is not available with a managed identity; use MTLS_POP or Bearer"
        )));
    }
    if scheme.binds_certificate() {
        let minted = mi.minted().await?;
        let cert = minted.certified_key().clone();
        let key = CacheKey::new(
            minted.mtls_authentication_endpoint(),
            minted.tenant_id(),
            minted.client_id(),
            scopes,
            scheme.token_type(),
            Some(&cert.thumbprint()),
        );
        Ok((
            Route::Minted(minted.clone()),
            Some(ResolvedCredential::Minted(minted)),
            Some(cert),
            key,
        ))
    } else {
        let key = CacheKey::new(
            &mi.unbound_endpoint(),
            "managed-identity",
            &mi.identity_label(),
            scopes,
            scheme.token_type(),
            None,
        );
        Ok((Route::ManagedIdentity, None, None, key))
    }
}

/// The hot, header-ready cache entry.
struct HotEntry {
    scopes: Box<[Box<str>]>,
    scheme: ProtocolScheme,
    tenant: Option<Box<str>>,
    usable_until: i64,
    next_refresh_try: AtomicI64,
    /// The credential's generation when the entry was made.
    generation: u64,
    header: AuthorizationHeader,
    token: CachedToken,
    key: CacheKey,
}

impl HotEntry {
    fn matches(
        &self,
        scopes: &[impl AsRef<str>],
        scheme: ProtocolScheme,
        tenant: Option<&str>,
    ) -> bool {
        if self.scheme != scheme || self.tenant.as_deref() != tenant {
            return false;
        }
        let mut n = 0;
        for s in scopes {
            let s = s.as_ref().trim();
            if s.is_empty() {
                continue;
            }
            n += 1;
            if self.scopes.binary_search_by(|x| (**x).cmp(s)).is_err() {
                return false;
            }
        }
        // Set equality without allocating: every requested scope is in the (sorted) entry, and
        // every entry scope was requested (a request may repeat or reorder scopes).
        n >= self.scopes.len()
            && self
                .scopes
                .iter()
                .all(|x| scopes.iter().any(|s| s.as_ref().trim() == &**x))
    }
}

/// Order-insensitive fingerprint of the request (scheme, tenant, scopes).
fn fingerprint(scopes: &[impl AsRef<str>], scheme: ProtocolScheme, tenant: Option<&str>) -> u64 {
    let mut acc: u64 = match scheme {
        ProtocolScheme::Bearer => 0x9e37_79b9_7f4a_7c15,
        ProtocolScheme::MtlsPop => 0xc2b2_ae3d_27d4_eb4f,
        ProtocolScheme::Pop => 0x1656_67b1_9e37_79f9,
        ProtocolScheme::DPoP => 0x27d4_eb2f_1656_67c5,
        ProtocolScheme::Mtls => 0x85eb_ca77_c2b2_ae63,
    };
    for s in scopes {
        let s = s.as_ref().trim();
        if !s.is_empty() {
            acc = acc.wrapping_add(fx(s.as_bytes()));
        }
    }
    if let Some(t) = tenant {
        acc ^= fx(t.as_bytes()).rotate_left(17);
    }
    acc
}

/// FxHash-style mixing (fast; collisions are checked by `HotEntry::matches`).
fn fx(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    for &b in chunks.remainder() {
        h = (h.rotate_left(5) ^ b as u64).wrapping_mul(K);
    }
    h ^ (h >> 29)
}

#[derive(Default)]
struct IdHasher(u64);
impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = fx(bytes);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

const SHARDS: usize = 16;

type Shard = RwLock<HashMap<u64, Arc<HotEntry>, BuildHasherDefault<IdHasher>>>;

/// Sharded map fingerprint → header-ready entry, bounded.
struct HotCache {
    shards: [Shard; SHARDS],
    per_shard: usize,
}

impl HotCache {
    fn new(max_entries: u64) -> Self {
        Self {
            shards: std::array::from_fn(|_| RwLock::default()),
            per_shard: ((max_entries as usize) / SHARDS).max(4),
        }
    }
    fn shard(&self, fp: u64) -> &Shard {
        &self.shards[(fp >> 60) as usize % SHARDS]
    }
    fn get(&self, fp: u64) -> Option<Arc<HotEntry>> {
        self.shard(fp).read().ok()?.get(&fp).cloned()
    }
    fn insert(&self, fp: u64, e: Arc<HotEntry>) {
        let Ok(mut g) = self.shard(fp).write() else {
            return;
        };
        if g.len() >= self.per_shard && !g.contains_key(&fp) {
            let now = certbound_core::now_unix();
            g.retain(|_, v| v.usable_until > now);
            if g.len() >= self.per_shard
                && let Some(victim) = g
                    .iter()
                    .min_by_key(|(_, v)| v.usable_until)
                    .map(|(k, _)| *k)
            {
                g.remove(&victim);
            }
        }
        g.insert(fp, e);
    }
}

/// When the credential that will be used is a managed identity, a label for it (the app's
/// client id then comes from IMDS).
fn managed_identity_label(
    credential: Option<&dyn ClientCredential>,
    descriptions: &[CredentialDescription],
) -> Option<String> {
    if let Some(c) = credential {
        return c.managed_identity().map(|m| m.identity_label());
    }
    match &descriptions.iter().find(|d| !d.skip)?.source {
        crate::config::CredentialSourceConfig::ManagedCertificate {
            managed_identity_client_id,
        } => Some(
            managed_identity_client_id
                .clone()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "system-assigned-managed-identity".into()),
        ),
        _ => None,
    }
}

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
            anchors
                .add_pem_file(f)
                .map_err(|e| ClientError::Tls(format!("trust anchor {e}")))?;
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
            None => ProofKey::generate()
                .map_err(|e| ClientError::Proof(format!("cannot generate the proof key: {e}")))?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_order_insensitive() {
        let a = fingerprint(&["a", "b"], ProtocolScheme::Bearer, None);
        assert_eq!(a, fingerprint(&["b", "a"], ProtocolScheme::Bearer, None));
        assert_ne!(a, fingerprint(&["a", "b"], ProtocolScheme::MtlsPop, None));
        assert_ne!(
            a,
            fingerprint(&["a", "b"], ProtocolScheme::Bearer, Some("t"))
        );
        assert_ne!(a, fingerprint(&["a"], ProtocolScheme::Bearer, None));
    }

    #[test]
    fn hot_entry_matches_sets_not_lists() {
        let app = App::builder()
            .client_id("c")
            .authority("https://idp.example/t")
            .client_secret("x")
            .build()
            .unwrap();
        let key = CacheKey::new(
            "https://idp.example/t",
            "t",
            "c",
            &["a", "b"],
            "bearer",
            None,
        );
        let tok = CachedToken::new(
            "Bearer",
            Secret::new("t"),
            certbound_core::now_unix() + 3600,
            None,
            None,
        );
        let e = app.remember(
            vec!["a".into(), "b".into()],
            ProtocolScheme::Bearer,
            None,
            key,
            tok,
            None,
        );
        assert!(e.matches(&["b", "a"], ProtocolScheme::Bearer, None));
        assert!(e.matches(&["a", "b", "a", " "], ProtocolScheme::Bearer, None));
        assert!(!e.matches(&["a", "a"], ProtocolScheme::Bearer, None));
        assert!(!e.matches(&["a"], ProtocolScheme::Bearer, None));
        assert!(!e.matches(&["a", "b", "c"], ProtocolScheme::Bearer, None));
        assert!(!e.matches(&["a", "b"], ProtocolScheme::MtlsPop, None));
        assert!(!e.matches(&["a", "b"], ProtocolScheme::Bearer, Some("t2")));
    }

    #[test]
    fn app_is_send_sync_clone() {
        fn f<T: Send + Sync + Clone + 'static>() {}
        f::<App>();
    }
}
