//! # certbound-authority
//!
//! A local development authority: an Entra-shaped, OIDC-compliant token service for one
//! tenant that issues RFC 8705 certificate-bound access tokens — and tokens bound to a
//! proof key: DPoP (RFC 9449) and Microsoft's signed-HTTP-request "PoP" — over HTTPS on
//! loopback, so clients and resource servers can be exercised with no cloud account.
//!
//! The data path, in the order a token request meets it (the modules are private; their
//! API is re-exported here, as rustls does):
//! - the state directory (dev CA, TLS certificate, signing key, registry file), created
//!   on first run by [`DevAuthority::open_or_init`] and reloaded afterwards;
//! - client registrations ([`ClientRegistration`]) and the registry file a running
//!   authority re-reads when it changes;
//! - client authentication: secret, `private_key_jwt` ([`AssertionCheck`]) and mTLS
//!   ([`TlsClientAuthSubject`], [`DistinguishedName`]);
//! - key binding at the token endpoint: DPoP proofs with replay and nonce checks
//!   ([`TokenEndpointDpop`]) and `token_type=pop` with `req_cnf`;
//! - scope → audience, and signing the access token ([`LocalIssuer`], [`IssueRequest`]);
//! - discovery, JWKS and the token endpoint over HTTPS ([`RunningAuthority`]);
//! - [`imds`]: the managed-identity emulator backed by this authority (a public module:
//!   a separate service with its own vocabulary);
//! - errors: [`AuthorityError`] for setup and administration, [`OAuthError`] for the
//!   RFC 6749 §5.2 responses.
//!
//! ```no_run
//! use certbound_authority::{DevAuthority, AuthorityOptions, ClientRegistration, CertAuthMethod};
//! use certbound_core::{ca::{self, IssueSpec}, KeyKind};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let authority = DevAuthority::open_or_init("/tmp/certbound-authority", AuthorityOptions::default())?;
//! let running = authority.spawn("127.0.0.1:0".parse()?).await?;
//! let app = ca::self_signed_certified_key(&IssueSpec::client("app"), KeyKind::EcP256)?;
//! running.register(ClientRegistration::with_certificate(
//!     "app", app.leaf().clone(), CertAuthMethod::SelfSignedTlsClientAuth))?;
//! println!("issuer {} — trust {}", running.issuer(), running.ca_cert_path().display());
//! // POST running.token_endpoint() over mTLS with `app`: client_id=app,
//! // grant_type=client_credentials, scope=api://x/.default, token_type=mtls_pop.
//! running.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! ## Which token a request gets
//! | request | token |
//! |---|---|
//! | a `DPoP` header with a valid proof (RFC 9449) | `token_type: "DPoP"`, `cnf.jkt` = the proof key's RFC 7638 thumbprint |
//! | `token_type=pop` and `req_cnf=base64url({"kid":"<thumbprint>"})` | `token_type: "pop"`, `cnf.kid` = that thumbprint (Microsoft PoP / SHR) |
//! | `token_type=mtls_pop` over TLS with a certificate that authenticates the client | `token_type: "mtls_pop"`, `cnf."x5t#S256"` of that certificate (Entra mTLS PoP) |
//! | authenticated by its TLS certificate (`self_signed_tls_client_auth`, `tls_client_auth`), registered for bound tokens (the default) | `Bearer` with `cnf` (RFC 8705 §3) |
//! | anything else (secret, `private_key_jwt`, or `--no-bound-tokens`) | unbound `Bearer` |
//! | `token_type=mtls_pop` without a certificate, or with one that does not authenticate the client | `401 invalid_client` |
//!
//! The client authenticates as it is registered (secret, `private_key_jwt`, TLS certificate)
//! whatever the binding; a key-bound token carries no certificate binding. A `DPoP` header
//! with `token_type=mtls_pop` or `pop` is `invalid_request` (the bindings are exclusive), and
//! so is `token_type=pop` without a well-formed `req_cnf`. A refused DPoP proof is
//! `400 invalid_dpop_proof`; with [`AuthorityOptions::dpop_nonce`] a proof without the
//! current server nonce is `400 use_dpop_nonce` with a `DPoP-Nonce` header (see [`TokenEndpointDpop`]).
//! Discovery advertises `dpop_signing_alg_values_supported` and the four token types.
//!
//! Errors follow RFC 6749 §5.2: `invalid_request` (missing/repeated parameters,
//! malformed body, several authentication methods), `invalid_client` (401; with
//! `WWW-Authenticate: Basic` when Basic was tried), `unsupported_grant_type` (only
//! `client_credentials`), `invalid_scope` (no resource, several resources, an audience the
//! client may not request). Bodies over 64 KiB get `413 invalid_request`. How scopes map
//! to `aud` is described at [`resolve_audience`].
//!
//! Other in-process services can use [`DevAuthority::ca`] to mint certificates,
//! [`DevAuthority::register`] to register the identities they hand out (the running authority
//! sees them on its next request) and [`RunningAuthority::issue_token`] to sign tokens
//! exactly as the token endpoint does ([`RunningAuthority::issue_dpop_token`] and
//! [`RunningAuthority::issue_pop_token`] for key-bound ones). [`imds`] wires the managed-identity (IMDS v2, IMDS v1,
//! App Service) emulator to the authority that way (`certbound authority serve --imds-addr`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod client_auth;
mod dn;
mod error;
mod http;
pub mod imds;
mod issue;
mod layout;
mod method;
mod pop;
mod registry;
mod replay;
mod state;
mod subject;
mod token_dpop;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use certbound_core::ca::DevCa;
use certbound_core::tls::server::TlsServer;
use certbound_core::tls::{ClientAuth, server_config};
use certbound_core::{Certificate, CertifiedKey, JwsAlgorithm, PrivateKey};
use tokio::sync::oneshot;

pub use client_auth::{AssertionCheck, JWT_BEARER};
pub use dn::{DistinguishedName, DnError};
pub use error::{AuthorityError, ErrorCode, OAuthError};
pub use http::{AuthorityEndpoints, MAX_BODY};
pub use issue::{
    Audience, IssueRequest, IssuedAccessToken, KeyBinding, LocalIssuer, resolve_audience,
};
pub use method::AuthMethod;
pub use registry::{CertAuthMethod, ClientRegistration, ClientSecret, Credential};
pub use subject::TlsClientAuthSubject;
pub use token_dpop::{TokenEndpointDpop, TokenEndpointDpopError};

/// Options for opening (and, the first time, initialising) an authority directory.
#[derive(Debug, Clone)]
pub struct AuthorityOptions {
    /// Tenant id for a new directory (default: a fresh GUID). For an existing directory
    /// it must match the stored one.
    pub tenant: Option<String>,
    /// Token-signing algorithm for a new directory: ES256 (default), RS256 or PS256.
    /// An existing directory keeps its algorithm.
    pub signing_alg: JwsAlgorithm,
    /// Access-token lifetime (default one hour).
    pub token_lifetime: Duration,
    /// Demand a server nonce in DPoP proofs at the token endpoint (RFC 9449 §8): a proof
    /// without the current nonce gets `400 use_dpop_nonce` and a `DPoP-Nonce` header.
    /// Default false. (`certbound authority serve --dpop-nonce`.)
    pub dpop_nonce: bool,
}

impl Default for AuthorityOptions {
    fn default() -> Self {
        Self {
            tenant: None,
            signing_alg: JwsAlgorithm::ES256,
            token_lifetime: Duration::from_secs(3600),
            dpop_nonce: false,
        }
    }
}

#[derive(Clone)]
struct Inner {
    dir: PathBuf,
    ca: Arc<DevCa>,
    tls: CertifiedKey,
    signing_key: Arc<PrivateKey>,
    signing_alg: JwsAlgorithm,
    kid: String,
    tenant: String,
    lifetime: Duration,
    dpop_nonce: bool,
    registry: Arc<registry::Registry>,
    /// Bound on remembered unexpired client assertions.
    jti_capacity: usize,
    /// The seen-`jti` store, opened by the first server (shared by later ones).
    jtis: Arc<std::sync::Mutex<Option<Arc<replay::JtiStore>>>>,
}

/// A development authority loaded from its state directory. Cheap to clone.
#[derive(Clone)]
pub struct DevAuthority {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DevAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevAuthority")
            .field("dir", &self.inner.dir)
            .field("tenant", &self.inner.tenant)
            .field("signing_alg", &self.inner.signing_alg)
            .field("kid", &self.inner.kid)
            .field("dpop_nonce", &self.inner.dpop_nonce)
            .finish_non_exhaustive()
    }
}

impl DevAuthority {
    /// Opens `dir`, creating the CA, TLS certificate, signing key and registry on first use.
    pub fn open_or_init(
        dir: impl AsRef<Path>,
        options: AuthorityOptions,
    ) -> Result<Self, AuthorityError> {
        let dir = dir.as_ref().to_path_buf();
        if options.token_lifetime.as_secs() < 60 || options.token_lifetime.as_secs() > 86400 {
            return Err(AuthorityError::Options(
                "the token lifetime must be between 60 seconds and 24 hours".into(),
            ));
        }
        if options.signing_alg == JwsAlgorithm::ES384 {
            return Err(AuthorityError::Options(
                "the signing algorithm must be ES256, RS256 or PS256".into(),
            ));
        }
        let loaded = state::open_or_init(&dir, options.tenant.as_deref(), options.signing_alg)?;
        let dir = loaded.dir.clone();
        let jwk = loaded.signing_key.public_jwk();
        let kid = jwk
            .thumbprint()
            .map_err(|e| AuthorityError::state(dir.join(state::SIGNING_KEY), e.to_string()))?;
        let registry = Arc::new(registry::Registry::new(
            dir.join(state::REGISTRY),
            &loaded.file,
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                dir,
                ca: Arc::new(loaded.ca),
                tls: loaded.tls,
                signing_key: Arc::new(loaded.signing_key),
                signing_alg: loaded.file.signing_alg,
                kid,
                tenant: loaded.file.tenant,
                lifetime: options.token_lifetime,
                dpop_nonce: options.dpop_nonce,
                registry,
                jti_capacity: replay::DEFAULT_CAPACITY,
                jtis: Arc::default(),
            }),
        })
    }

    /// Bounds how many unexpired client-assertion `jti`s the token endpoint remembers
    /// (default 100 000; at least 1). They are kept in `DIR/assertion-jtis.log` until their
    /// `exp`, across restarts; when the bound is reached, new assertions are refused with
    /// `503 temporarily_unavailable` until old ones expire. Applies to servers spawned
    /// from the returned handle.
    pub fn with_assertion_jti_capacity(&self, capacity: usize) -> Self {
        let mut inner = (*self.inner).clone();
        inner.jti_capacity = capacity.max(1);
        inner.jtis = Arc::default();
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The seen-`jti` store, opened (and compacted) on first use.
    fn jti_store(&self) -> Result<Arc<replay::JtiStore>, AuthorityError> {
        let mut slot = self.inner.jtis.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = slot.as_ref() {
            return Ok(s.clone());
        }
        let store = Arc::new(replay::JtiStore::open(
            &self.inner.dir,
            self.inner.jti_capacity,
            client_auth::SKEW,
            certbound_core::now_unix(),
        )?);
        *slot = Some(store.clone());
        Ok(store)
    }

    /// Registers (or replaces) a client in the authority at `dir`, initialising the
    /// directory if needed. A running authority picks the change up on its next request.
    pub fn register_client(
        dir: impl AsRef<Path>,
        registration: ClientRegistration,
    ) -> Result<(), AuthorityError> {
        Self::open_or_init(dir, AuthorityOptions::default())?.register(registration)
    }

    /// Registers (or replaces) a client.
    pub fn register(&self, registration: ClientRegistration) -> Result<(), AuthorityError> {
        let rec = registry::record_for(&registration, self.inner.ca.cert())?;
        self.inner.registry.register(rec)
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }
    /// The tenant id.
    pub fn tenant(&self) -> &str {
        &self.inner.tenant
    }
    /// The development CA (to issue client certificates that chain to `ca.pem`).
    pub fn ca(&self) -> &DevCa {
        &self.inner.ca
    }
    /// The development CA, shared (for services such as the IMDS emulator that issue
    /// certificates from it).
    pub fn shared_ca(&self) -> Arc<DevCa> {
        self.inner.ca.clone()
    }
    /// The CA certificate (the trust anchor for the authority's TLS).
    pub fn ca_cert(&self) -> Certificate {
        self.inner.ca.cert().clone()
    }
    /// `DIR/ca.pem`.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.inner.dir.join(state::CA_CERT)
    }
    /// The token-signing algorithm.
    pub fn signing_alg(&self) -> JwsAlgorithm {
        self.inner.signing_alg
    }
    /// The `kid` of the signing key (its RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.inner.kid
    }

    /// Binds `addr` (port 0 picks a free one) and serves HTTPS until
    /// [`RunningAuthority::shutdown`] (or drop).
    ///
    /// URLs use the bound address; an unspecified address (`0.0.0.0`, `::`) is advertised
    /// as loopback.
    pub async fn spawn(&self, addr: SocketAddr) -> Result<RunningAuthority, AuthorityError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AuthorityError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| AuthorityError::Bind { addr, source })?;
        let advertised = match local.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), local.port())
            }
            IpAddr::V6(ip) if ip.is_unspecified() => {
                SocketAddr::new(Ipv6Addr::LOCALHOST.into(), local.port())
            }
            _ => local,
        };
        let base = format!("https://{advertised}");
        let endpoints = AuthorityEndpoints::new(&base, &self.inner.tenant);
        let localhost = AuthorityEndpoints::new(
            &format!("https://localhost:{}", local.port()),
            &self.inner.tenant,
        );
        // The token endpoint as clients may name it: the advertised URL (also the mTLS
        // alias), `localhost`, and the loopback addresses at the same port.
        let mut token_urls = vec![
            endpoints.token_endpoint.clone(),
            localhost.token_endpoint.clone(),
        ];
        for ip in [
            IpAddr::from(Ipv4Addr::LOCALHOST),
            IpAddr::from(Ipv6Addr::LOCALHOST),
        ] {
            let url = AuthorityEndpoints::new(
                &format!("https://{}", SocketAddr::new(ip, local.port())),
                &self.inner.tenant,
            )
            .token_endpoint;
            if !token_urls.contains(&url) {
                token_urls.push(url);
            }
        }
        let dpop = pop::DpopEndpoint::new(&token_urls, self.inner.dpop_nonce)?;
        let dpop_nonces = dpop.nonces();
        let verifier = client_auth::Verifier::new(
            self.inner.ca.cert().clone(),
            vec![
                endpoints.token_endpoint.clone(),
                endpoints.issuer.clone(),
                localhost.token_endpoint,
                localhost.issuer,
            ],
            self.jti_store()?,
        );
        let jwk = self
            .inner
            .signing_key
            .public_jwk()
            .with_kid(self.inner.kid.clone())
            .with_alg(self.inner.signing_alg);
        let token_issuer = Arc::new(issue::TokenIssuer {
            key: self.inner.signing_key.clone(),
            alg: self.inner.signing_alg,
            kid: self.inner.kid.clone(),
            issuer: endpoints.issuer.clone(),
            tenant: self.inner.tenant.clone(),
            lifetime: self.inner.lifetime.as_secs() as i64,
        });
        let local_issuer = issue::LocalIssuer {
            issuer: token_issuer.clone(),
            registry: self.inner.registry.clone(),
        };
        let svc = Arc::new(http::Service {
            discovery: http::Service::discovery_document(
                &endpoints,
                self.inner.signing_alg.as_str(),
            ),
            jwks: serde_json::json!({ "keys": [jwk] }),
            issuer: token_issuer.clone(),
            verifier,
            registry: self.inner.registry.clone(),
            dpop,
        });
        let app = http::router(svc, &self.inner.tenant);
        let tls =
            server_config(&self.inner.tls, ClientAuth::Optional).map_err(AuthorityError::Tls)?;
        let (tx, rx) = oneshot::channel::<()>();
        let server = TlsServer::new(listener, tls);
        let task = tokio::spawn(async move {
            if let Err(e) = server
                .serve(app, async {
                    let _ = rx.await;
                })
                .await
            {
                tracing::error!(error = %e, "authority server stopped");
            }
        });
        tracing::info!(issuer = %endpoints.issuer, "development authority listening");
        Ok(RunningAuthority {
            authority: self.clone(),
            addr: local,
            endpoints,
            local_issuer,
            dpop_nonces,
            stop: Some(tx),
            task: Some(task),
        })
    }
}

/// A serving authority. Dropping it stops the server; [`RunningAuthority::shutdown`]
/// also waits for in-flight requests.
pub struct RunningAuthority {
    authority: DevAuthority,
    addr: SocketAddr,
    endpoints: AuthorityEndpoints,
    local_issuer: issue::LocalIssuer,
    dpop_nonces: Option<certbound_core::pop::DpopNonces>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for RunningAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningAuthority")
            .field("addr", &self.addr)
            .field("issuer", &self.endpoints.issuer)
            .finish_non_exhaustive()
    }
}

impl RunningAuthority {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The issuer URL (`https://127.0.0.1:PORT/{tenant}/v2.0`).
    pub fn issuer(&self) -> &str {
        &self.endpoints.issuer
    }
    /// The tenant id.
    pub fn tenant(&self) -> &str {
        self.authority.tenant()
    }
    /// The token endpoint (also its `mtls_endpoint_aliases.token_endpoint`).
    pub fn token_endpoint(&self) -> &str {
        &self.endpoints.token_endpoint
    }
    /// The JWKS URL.
    pub fn jwks_uri(&self) -> &str {
        &self.endpoints.jwks_uri
    }
    /// The discovery document URL.
    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.endpoints.issuer)
    }
    /// All endpoint URLs.
    pub fn endpoints(&self) -> &AuthorityEndpoints {
        &self.endpoints
    }
    /// The CA certificate clients must trust.
    pub fn ca_cert(&self) -> Certificate {
        self.authority.ca_cert()
    }
    /// `DIR/ca.pem`.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.authority.ca_cert_path()
    }
    /// The authority behind this server.
    pub fn authority(&self) -> &DevAuthority {
        &self.authority
    }
    /// Registers (or replaces) a client; effective for the next request.
    pub fn register(&self, registration: ClientRegistration) -> Result<(), AuthorityError> {
        self.authority.register(registration)
    }
    /// Issues a token in process, exactly as the token endpoint would sign it (same
    /// issuer, key, lifetime and claims), for a client the caller vouches for — the
    /// managed-identity emulator uses it for IMDS v1 and App Service tokens.
    ///
    /// ```no_run
    /// # async fn run(running: certbound_authority::RunningAuthority) -> Result<(), certbound_authority::OAuthError> {
    /// use certbound_authority::IssueRequest;
    /// let t = running.issue_token(&IssueRequest::new("mi-client", "https://management.azure.com/"))?;
    /// assert!(t.expires_in > 0);
    /// # Ok(()) }
    /// ```
    pub fn issue_token(&self, request: &IssueRequest) -> Result<IssuedAccessToken, OAuthError> {
        self.local_issuer.issue_token(request)
    }
    /// Issues a DPoP-bound token in process (`cnf.jkt` = `jkt`, the RFC 7638 thumbprint of
    /// the client's proof key), as the token endpoint does for a token request with a valid
    /// `DPoP` proof. Send it as `Authorization: DPoP <token>` with a fresh proof.
    ///
    /// ```no_run
    /// # async fn run(running: certbound_authority::RunningAuthority) -> Result<(), Box<dyn std::error::Error>> {
    /// let key = certbound_core::pop::ProofKey::generate()?;
    /// let t = running.issue_dpop_token("app", "api://orders/.default", &key.thumbprint())?;
    /// assert_eq!(t.key_binding, Some(certbound_authority::KeyBinding::Dpop(key.thumbprint())));
    /// # Ok(()) }
    /// ```
    pub fn issue_dpop_token(
        &self,
        client_id: &str,
        resource: &str,
        jkt: &str,
    ) -> Result<IssuedAccessToken, OAuthError> {
        self.issue_token(&IssueRequest::new(client_id, resource).dpop_bound(jkt))
    }
    /// Issues a PoP-bound token in process (`cnf.kid` = `kid`, the RFC 7638 thumbprint of
    /// the client's proof key), as the token endpoint does for `token_type=pop` with
    /// `req_cnf`. Send it inside a signed HTTP request (`Authorization: PoP <shr>`).
    pub fn issue_pop_token(
        &self,
        client_id: &str,
        resource: &str,
        kid: &str,
    ) -> Result<IssuedAccessToken, OAuthError> {
        self.issue_token(&IssueRequest::new(client_id, resource).pop_bound(kid))
    }
    /// The DPoP nonce the token endpoint currently accepts, when it demands nonces
    /// ([`AuthorityOptions::dpop_nonce`]); `None` otherwise.
    pub fn dpop_nonce(&self) -> Option<String> {
        self.dpop_nonces
            .as_ref()
            .map(certbound_core::pop::DpopNonces::current)
    }
    /// A cloneable handle for [`RunningAuthority::issue_token`] (for other services).
    pub fn local_issuer(&self) -> LocalIssuer {
        self.local_issuer.clone()
    }
    /// The ready line `certbound authority serve` prints.
    pub fn ready_json(&self) -> serde_json::Value {
        serde_json::json!({
            "addr": self.addr.to_string(),
            "issuer": self.endpoints.issuer,
            "tenant": self.tenant(),
            "ca_cert": self.ca_cert_path().display().to_string(),
            "token_endpoint": self.endpoints.token_endpoint,
            "jwks_uri": self.endpoints.jwks_uri,
        })
    }
    /// Stops accepting connections and waits (up to 10 s) for in-flight requests.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningAuthority {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}
