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
//!
//! Layout: this file holds the [`App`] type and its public API; the scheme policy
//! (`scheme.rs`), the hot header cache (`hot.rs`), routing to the authority or a managed
//! identity (`routing.rs`), [`HeaderHandle`] (`handle.rs`) and [`AppBuilder`]
//! (`builder.rs`) live beside it; single-flight, fetch and the throttle table are in
//! `flight.rs`, over the token request of [`crate::acquire`]. The HTTP clients come from the app's
//! [`TransportPool`], shared with downstream calls.

mod builder;
mod flight;
mod handle;
mod hot;
mod reload;
mod routing;
mod scheme;
#[cfg(test)]
mod tests;

pub use builder::AppBuilder;
use handle::{HandleInner, Slot};
pub use handle::{HeaderHandle, HeaderRef};
pub(crate) use hot::HotCache;
pub(crate) use routing::Route;
use routing::{managed_identity_label, managed_route};
use scheme::signs_every_request;

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use certbound_core::pop::ProofKey;
use certbound_core::{CertifiedKey, Thumbprint};
use futures::future::Shared;

use crate::acquire::RetryPolicy;
use crate::authority::{Authority, DiscoveryCache};
use crate::cache::{BoxFuture, CacheKey, CachedToken, TokenCache};
use crate::config::AppConfig;
use crate::credential::ClientCredential;
use crate::error::{ClientError, ErrorCause};
use crate::header::{AuthorizationHeader, HeaderOptions, HeaderParts, ProtocolScheme, TokenSource};
use crate::proof::NonceStore;
use crate::secret::Secret;
use crate::transport::TransportPool;

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

pub(crate) type Inflight = Shared<BoxFuture<'static, Result<CachedToken, Arc<ClientError>>>>;

/// The client application: token acquisition, cache and authorization headers for one app
/// registration (see the [crate docs](crate)).
#[derive(Clone)]
pub struct App {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) client_id: String,
    pub(crate) authority: Authority,
    pub(crate) credential: Arc<dyn ClientCredential>,
    pub(crate) send_x5c: bool,
    pub(crate) allow_unbound_fallback: bool,
    pub(crate) warned_fallback: AtomicBool,
    pub(crate) http: TransportPool,
    pub(crate) discovery: DiscoveryCache,
    pub(crate) cache: Arc<dyn TokenCache>,
    pub(crate) hot: HotCache,
    pub(crate) inflight: Mutex<HashMap<CacheKey, Inflight>>,
    pub(crate) throttled: Mutex<HashMap<CacheKey, i64>>,
    pub(crate) policy: RetryPolicy,
    pub(crate) margin: i64,
    pub(crate) config: Option<AppConfig>,
    pub(crate) requests: AtomicU64,
    /// The key `Pop` and `DPoP` tokens are bound to (in memory, rotatable).
    pub(crate) proof_key: ProofKey,
    /// The latest `DPoP-Nonce` of each server.
    pub(crate) nonces: NonceStore,
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
        self.inner.proof_key.rotate().map_err(|e| {
            ClientError::Proof(
                format!("cannot rotate the proof key: {e}"),
                Some(ErrorCause::new(e)),
            )
        })
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
    pub(crate) fn certificate_needed(&self, scheme: &str) -> String {
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

    pub(crate) async fn header_for(
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
}
