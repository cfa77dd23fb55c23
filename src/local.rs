//! A development authority and a protected API in this process, on loopback, with fresh
//! state: what the demo, the examples, `certbound bench` and your own integration tests
//! need to exercise certificate-bound tokens end to end without a cloud account.
//!
//! [`LocalStack::builder`] starts, in order:
//!
//! 1. a development authority ([`certbound_authority::DevAuthority`]) whose CA, signing key and
//!    registry live in a temporary directory, serving HTTPS on `127.0.0.1:0`;
//! 2. the confidential clients you name, each with a fresh self-signed certificate (or one
//!    you give) registered for `self_signed_tls_client_auth` and `private_key_jwt`, so every
//!    protocol scheme works;
//! 3. optionally a protected API ([`LocalStackBuilder::api`]): your axum `Router`, given a
//!    [`Validator`] that trusts the authority's tokens (issuer, audience, CA), served over
//!    TLS on `127.0.0.1:0` with a certificate from the authority's CA, asking for (not
//!    requiring) a client certificate;
//! 4. optionally the managed-identity (IMDS v2) emulator ([`LocalStackBuilder::imds`]).
//!
//! Every server binds its listener before `start` returns (port 0: the system picks a
//! free port), so the URLs work at once; nothing waits or sleeps. [`LocalStack::shutdown`]
//! stops the servers and waits for their in-flight requests; dropping the stack stops them
//! too, without waiting. The state directory is removed when the stack goes away.
//!
//! ```
//! use certbound::HeaderOptions;
//! use certbound::local::LocalStack;
//! use certbound::resource::{CertboundLayer, ValidatedToken};
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An authority, one registered client and an API that wants certificate-bound tokens.
//! let stack = LocalStack::builder()
//!     .audience("api://orders")
//!     .client("orders-app")
//!     .api(|validator| {
//!         axum::Router::new()
//!             .route("/orders", axum::routing::get(|t: ValidatedToken| async move {
//!                 format!("orders for {}", t.claims().client_id().unwrap_or("?"))
//!             }))
//!             .layer(CertboundLayer::new(validator))
//!     })
//!     .start()
//!     .await?;
//!
//! // The client: an app configured against the authority, and a token bound to its
//! // certificate, presented over mutual TLS with that certificate.
//! let app = stack.app("orders-app")?;
//! let header = app
//!     .authorization_header_for_app(&[stack.scope()], &HeaderOptions::mtls_pop())
//!     .await?;
//! let client = stack.transport_pool()?.client_for(Some(stack.certificate("orders-app")?))?;
//! let response = client
//!     .get(format!("{}/orders", stack.api_url()?))
//!     .header("authorization", header.value())
//!     .send()
//!     .await?;
//! assert_eq!(response.status(), 200);
//! assert_eq!(response.text().await?, "orders for orders-app");
//!
//! stack.shutdown().await;
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use certbound_authority::imds::RunningEmulator;
use certbound_authority::{
    AuthMethod, AuthorityError, AuthorityOptions, CertAuthMethod, ClientRegistration, DevAuthority,
    RunningAuthority,
};
use certbound_client::{App, AppBuilder, ClientError, TransportPool};
use certbound_core::ca::{self, IssueSpec};
use certbound_core::fs::write_private_file;
use certbound_core::tls::{ClientAuth, TrustAnchors, server_config};
use certbound_core::{CertError, Certificate, CertifiedKey, KeyKind};
use certbound_resource::{BuildError, TlsServer, Validator, ValidatorBuilder};

/// The audience of a stack that names none.
pub const DEFAULT_AUDIENCE: &str = "api://certbound-local";

/// How long [`LocalStack::shutdown`] waits for the API's in-flight requests.
const API_DRAIN: Duration = Duration::from_secs(10);

/// Why a [`LocalStack`] could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The temporary state directory could not be created, or a file in it written.
    #[error("cannot {action} in the local stack's state directory: {source}")]
    State {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The development authority (or the IMDS emulator) could not be set up.
    #[error("cannot {action}: {source}")]
    Authority {
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: AuthorityError,
    },
    /// A certificate could not be made.
    #[error("cannot make the {what} certificate: {source}")]
    Certificate {
        /// Whose certificate.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: CertError,
    },
    /// The API's TLS configuration could not be built.
    #[error("cannot configure the API's TLS: {0}")]
    Tls(#[source] rustls::Error),
    /// The API's listener could not be bound.
    #[error("cannot listen for the API on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    /// The API's token validator could not be built.
    #[error("cannot configure the API's token validator: {0}")]
    Validator(#[source] BuildError),
    /// An app or HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No client of that id was registered through [`LocalStackBuilder::client`].
    #[error("the local stack has no client `{0}`")]
    UnknownClient(String),
    /// The stack was not asked for this (an API, the IMDS emulator).
    #[error("the local stack has no {0}: ask its builder for one")]
    NotStarted(&'static str),
    /// [`LocalStack::serve_api`] was called when the stack already serves an API.
    #[error("the local stack already serves an API")]
    ApiAlreadyServed,
}

/// A confidential client to register with the stack's authority.
///
/// `"id".into()` makes one with a fresh self-signed EC P-256 certificate.
#[derive(Clone)]
pub struct LocalClient {
    client_id: String,
    certificate: Option<CertifiedKey>,
}

impl LocalClient {
    /// A client `client_id` with a fresh self-signed certificate.
    pub fn new(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            certificate: None,
        }
    }
    /// Uses `certificate` (and its key) instead of a fresh one.
    pub fn certificate(mut self, certificate: CertifiedKey) -> Self {
        self.certificate = Some(certificate);
        self
    }
}

impl From<&str> for LocalClient {
    fn from(client_id: &str) -> Self {
        Self::new(client_id)
    }
}

impl From<String> for LocalClient {
    fn from(client_id: String) -> Self {
        Self::new(client_id)
    }
}

impl fmt::Debug for LocalClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalClient")
            .field("client_id", &self.client_id)
            .field(
                "certificate",
                &self
                    .certificate
                    .as_ref()
                    .map(|c| c.thumbprint().to_base64url()),
            )
            .finish()
    }
}

type ApiFn = Box<dyn FnOnce(Validator) -> axum::Router + Send>;

/// Configures a [`LocalStack`]; see the [module documentation](self).
#[must_use]
pub struct LocalStackBuilder {
    audience: String,
    require_binding: bool,
    options: AuthorityOptions,
    clients: Vec<LocalClient>,
    api: Option<ApiFn>,
    imds: bool,
}

impl fmt::Debug for LocalStackBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStackBuilder")
            .field("audience", &self.audience)
            .field("require_binding", &self.require_binding)
            .field("clients", &self.clients)
            .field("api", &self.api.is_some())
            .field("imds", &self.imds)
            .finish_non_exhaustive()
    }
}

impl LocalStackBuilder {
    /// The API's audience (App ID URI): clients are registered for it and the API's
    /// validator requires it. Default [`DEFAULT_AUDIENCE`].
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }
    /// Whether the validator given to [`api`](Self::api) refuses unbound (`Bearer`)
    /// tokens. Default true.
    pub fn require_binding(mut self, require: bool) -> Self {
        self.require_binding = require;
        self
    }
    /// The authority's options (tenant, signing algorithm, token lifetime …).
    pub fn authority_options(mut self, options: AuthorityOptions) -> Self {
        self.options = options;
        self
    }
    /// Registers a confidential client (`"id"` for one with a fresh certificate, or a
    /// [`LocalClient`]).
    pub fn client(mut self, client: impl Into<LocalClient>) -> Self {
        self.clients.push(client.into());
        self
    }
    /// Serves the router `make_api` returns as the protected API. It is given a
    /// [`Validator`] for the authority's tokens with the stack's audience and
    /// [`require_binding`](Self::require_binding) (to wrap routes in
    /// [`CertboundLayer`](certbound_resource::CertboundLayer)). For a router that needs
    /// more of the running stack, use [`LocalStack::serve_api`] after `start` instead.
    pub fn api(
        mut self,
        make_api: impl FnOnce(Validator) -> axum::Router + Send + 'static,
    ) -> Self {
        self.api = Some(Box::new(make_api));
        self
    }
    /// Also starts the managed-identity (IMDS v2) emulator, wired to the authority
    /// ([`LocalStack::imds`]).
    pub fn imds(mut self) -> Self {
        self.imds = true;
        self
    }

    /// Starts everything; every server is listening when this returns. Installs the
    /// aws-lc-rs TLS provider as the process default if none is.
    pub async fn start(self) -> Result<LocalStack, LocalError> {
        certbound_core::tls::install_default_provider();
        let state = tempfile::tempdir().map_err(|source| LocalError::State {
            action: "create the directory",
            source,
        })?;
        let authority = DevAuthority::open_or_init(state.path().join("authority"), self.options)
            .map_err(|source| LocalError::Authority {
                action: "initialise the development authority",
                source,
            })?;
        let running =
            authority
                .spawn(loopback())
                .await
                .map_err(|source| LocalError::Authority {
                    action: "start the development authority",
                    source,
                })?;
        let mut trust_anchors = TrustAnchors::default();
        trust_anchors.add(&running.ca_cert());
        let mut clients = Vec::with_capacity(self.clients.len());
        for client in self.clients {
            clients.push(register(&running, client, &self.audience)?);
        }
        let imds = if self.imds {
            Some(
                certbound_authority::imds::spawn_emulator(&running, loopback())
                    .await
                    .map_err(|source| LocalError::Authority {
                        action: "start the managed-identity (IMDS) emulator",
                        source,
                    })?,
            )
        } else {
            None
        };
        let mut stack = LocalStack {
            running,
            trust_anchors,
            audience: self.audience,
            clients,
            api: None,
            imds,
            state,
        };
        if let Some(make_api) = self.api {
            let validator = stack
                .validator()
                .require_binding(self.require_binding)
                .build()
                .await
                .map_err(LocalError::Validator)?;
            stack.serve_api(make_api(validator)).await?;
        }
        Ok(stack)
    }
}

fn loopback() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Registers `client` for `audience` (certificate and `private_key_jwt`).
fn register(
    running: &RunningAuthority,
    client: LocalClient,
    audience: &str,
) -> Result<(String, CertifiedKey), LocalError> {
    let certificate = match client.certificate {
        Some(c) => c,
        None => {
            ca::self_signed_certified_key(&IssueSpec::client(&client.client_id), KeyKind::EcP256)
                .map_err(|source| LocalError::Certificate {
                    what: "client",
                    source,
                })?
        }
    };
    running
        .register(
            ClientRegistration::with_certificate(
                client.client_id.clone(),
                certificate.leaf().clone(),
                CertAuthMethod::SelfSignedTlsClientAuth,
            )
            // The unbound and key-bound schemes authenticate with a client assertion.
            .auth_method(AuthMethod::PrivateKeyJwt)
            .audience(audience),
        )
        .map_err(|source| LocalError::Authority {
            action: "register the client",
            source,
        })?;
    Ok((client.client_id, certificate))
}

/// The protected API's server.
struct RunningApi {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A running development authority, its clients and (optionally) a protected API and the
/// IMDS emulator; see the [module documentation](self).
///
/// Its `Debug` output names URLs and client ids, never a key.
pub struct LocalStack {
    running: RunningAuthority,
    trust_anchors: TrustAnchors,
    audience: String,
    clients: Vec<(String, CertifiedKey)>,
    api: Option<RunningApi>,
    imds: Option<RunningEmulator>,
    // Dropped last: the servers above read their state from it.
    state: tempfile::TempDir,
}

impl fmt::Debug for LocalStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalStack")
            .field("issuer", &self.running.issuer())
            .field("audience", &self.audience)
            .field(
                "clients",
                &self.clients.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .field("api_url", &self.api.as_ref().map(|a| &a.url))
            .field("imds", &self.imds.as_ref().map(|e| e.addr))
            .finish_non_exhaustive()
    }
}

impl LocalStack {
    /// A builder with the default audience, binding required, no client and no API.
    pub fn builder() -> LocalStackBuilder {
        LocalStackBuilder {
            audience: DEFAULT_AUDIENCE.into(),
            require_binding: true,
            options: AuthorityOptions::default(),
            clients: Vec::new(),
            api: None,
            imds: false,
        }
    }

    /// The running authority (its URLs, CA, registry, in-process token issuance).
    pub fn authority(&self) -> &RunningAuthority {
        &self.running
    }
    /// The issuer URL (`https://127.0.0.1:PORT/{tenant}/v2.0`), the app's authority.
    pub fn issuer(&self) -> &str {
        self.authority().issuer()
    }
    /// The authority's CA certificate, which issued the API's and the authority's TLS
    /// certificates.
    pub fn ca_cert(&self) -> Certificate {
        self.authority().ca_cert()
    }
    /// The CA certificate's file (`ca.pem` in the state directory), for configuration
    /// that names a file (`AppBuilder::add_ca_cert_file`, `--ca-cert`).
    pub fn ca_cert_path(&self) -> PathBuf {
        self.authority().ca_cert_path()
    }
    /// Trust anchors holding the authority's CA: what clients of the authority and of the
    /// API must trust.
    pub fn trust_anchors(&self) -> &TrustAnchors {
        &self.trust_anchors
    }
    /// The API's audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }
    /// The app-token scope for the API: `{audience}/.default`.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.audience)
    }
    /// The temporary state directory (removed with the stack).
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }
    /// The certificate (and key) of the registered client `client_id`.
    pub fn certificate(&self, client_id: &str) -> Result<&CertifiedKey, LocalError> {
        self.clients
            .iter()
            .find(|(id, _)| id == client_id)
            .map(|(_, c)| c)
            .ok_or_else(|| LocalError::UnknownClient(client_id.into()))
    }
    /// An [`AppBuilder`] for the registered client `client_id`: its id and certificate, the
    /// authority as its authority, the authority's CA as its trust anchor.
    pub fn app_builder(&self, client_id: &str) -> Result<AppBuilder, LocalError> {
        let certificate = self.certificate(client_id)?;
        Ok(App::builder()
            .client_id(client_id)
            .authority(self.issuer())
            .certificate(certificate.clone())
            .trust_anchors(self.trust_anchors.clone()))
    }
    /// [`app_builder`](Self::app_builder), built.
    pub fn app(&self, client_id: &str) -> Result<App, LocalError> {
        Ok(self.app_builder(client_id)?.build()?)
    }
    /// A transport pool (one pooled HTTP client per client certificate) that trusts the
    /// authority's CA: for calling the API, with or without a certificate.
    pub fn transport_pool(&self) -> Result<TransportPool, LocalError> {
        Ok(TransportPool::builder()
            .trust(self.trust_anchors.clone())
            .build()?)
    }
    /// Writes the client's certificate and private key (PEM, the key readable by this user
    /// only) to `{client_id}.pem` in the state directory, for configuration files that name
    /// a `CertificateDiskPath`; returns the path.
    pub fn write_client_pem(&self, client_id: &str) -> Result<PathBuf, LocalError> {
        let certificate = self.certificate(client_id)?;
        let path = self.state.path().join(format!("{client_id}.pem"));
        // The key's PEM is wiped from memory once written.
        let pem = zeroize::Zeroizing::new(format!(
            "{}{}",
            certificate.leaf().to_pem(),
            certificate.key().to_pkcs8_pem().as_str()
        ));
        write_private_file(&path, pem.as_bytes()).map_err(|source| LocalError::State {
            action: "write the client's PEM file",
            source,
        })?;
        Ok(path)
    }
    /// A validator builder for the authority's tokens: the issuer, the stack's audience
    /// and the CA (for discovery) are set; add what the API needs and `build` it.
    pub fn validator(&self) -> ValidatorBuilder {
        Validator::builder()
            .issuer(self.issuer())
            .audience(self.audience.clone())
            .trust_anchors(self.trust_anchors.clone())
    }
    /// Serves `api` over TLS on `127.0.0.1:0` (a certificate from the authority's CA for
    /// `127.0.0.1` and `localhost`; a client certificate asked for, not required) and
    /// returns its base URL (`https://127.0.0.1:PORT`). One API per stack.
    pub async fn serve_api(&mut self, api: axum::Router) -> Result<&str, LocalError> {
        if self.api.is_some() {
            return Err(LocalError::ApiAlreadyServed);
        }
        let identity = self
            .authority()
            .authority()
            .ca()
            .issue_certified_key(
                &IssueSpec::server("certbound-local-api", &["127.0.0.1", "localhost"]),
                KeyKind::EcP256,
            )
            .map_err(|source| LocalError::Certificate {
                what: "API's TLS",
                source,
            })?;
        let tls = server_config(&identity, ClientAuth::Optional).map_err(LocalError::Tls)?;
        let listener = tokio::net::TcpListener::bind(loopback())
            .await
            .map_err(LocalError::Bind)?;
        let port = listener.local_addr().map_err(LocalError::Bind)?.port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(TlsServer::new(listener, tls).serve(api, async {
            let _ = stopped.await;
        }));
        let api = self.api.insert(RunningApi {
            url: format!("https://127.0.0.1:{port}"),
            stop: Some(stop),
            task,
        });
        Ok(&api.url)
    }
    /// The API's base URL (`https://127.0.0.1:PORT`), once one is served.
    pub fn api_url(&self) -> Result<&str, LocalError> {
        self.api
            .as_ref()
            .map(|a| a.url.as_str())
            .ok_or(LocalError::NotStarted("API"))
    }
    /// The IMDS emulator, when [`LocalStackBuilder::imds`] started it (its
    /// `imds_base()` is the `AZURE_POD_IDENTITY_AUTHORITY_HOST` for clients).
    pub fn imds(&self) -> Result<&RunningEmulator, LocalError> {
        self.imds
            .as_ref()
            .ok_or(LocalError::NotStarted("IMDS emulator"))
    }

    /// Stops the API, the emulator and the authority, each after its in-flight requests
    /// (up to 10 s), then removes the state directory.
    pub async fn shutdown(self) {
        let LocalStack {
            running,
            api,
            imds,
            state,
            ..
        } = self;
        if let Some(mut api) = api {
            if let Some(stop) = api.stop.take() {
                let _ = stop.send(());
            }
            if tokio::time::timeout(API_DRAIN, &mut api.task)
                .await
                .is_err()
            {
                api.task.abort();
            }
        }
        if let Some(emulator) = imds {
            emulator.shutdown().await;
        }
        running.shutdown().await;
        drop(state);
    }
}

impl Drop for RunningApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn debug_names_no_key_and_shutdown_stops_the_servers() {
        let mut stack = LocalStack::builder()
            .audience("api://t")
            .client("t-app")
            .start()
            .await
            .unwrap();
        assert!(matches!(stack.api_url(), Err(LocalError::NotStarted(_))));
        assert!(matches!(stack.imds(), Err(LocalError::NotStarted(_))));
        assert!(matches!(
            stack.app("nobody"),
            Err(LocalError::UnknownClient(_))
        ));
        let validator = stack.validator().build().await.unwrap();
        let api = axum::Router::new().layer(certbound_resource::CertboundLayer::new(validator));
        let url = stack.serve_api(api.clone()).await.unwrap().to_owned();
        assert!(matches!(
            stack.serve_api(api).await,
            Err(LocalError::ApiAlreadyServed)
        ));

        let key = stack.certificate("t-app").unwrap().key().to_pkcs8_pem();
        let pem = std::fs::read_to_string(stack.write_client_pem("t-app").unwrap()).unwrap();
        assert!(pem.contains(key.as_str()));
        let debug = format!("{stack:?}");
        assert!(debug.contains("t-app") && debug.contains(&url), "{debug}");
        assert!(!debug.contains("PRIVATE KEY"), "{debug}");
        let client = format!(
            "{:?}",
            LocalClient::new("c").certificate(stack.certificate("t-app").unwrap().clone())
        );
        assert!(!client.contains("PRIVATE KEY"), "{client}");

        let authority = stack.authority().addr();
        let api_addr: std::net::SocketAddr = url.trim_start_matches("https://").parse().unwrap();
        let dir = stack.state_dir().to_path_buf();
        stack.shutdown().await;
        // Both listeners are closed and the state is gone once `shutdown` returns.
        for addr in [authority, api_addr] {
            assert!(
                tokio::net::TcpStream::connect(addr).await.is_err(),
                "{addr}"
            );
        }
        assert!(!dir.exists());
    }
}
