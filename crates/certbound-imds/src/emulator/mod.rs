//! The emulator half: an IMDS (v1 tokens and v2 certificate minting) and an App Service
//! identity endpoint, over plain HTTP as the real ones are.
//!
//! Routes:
//! - `GET /metadata/identity/getplatformmetadata?cred-api-version=2.0[&client_id|object_id|mi_res_id=…]`
//! - `POST /metadata/identity/issuecredential?cred-api-version=2.0` — checks the CSR (RSASSA-PSS
//!   SHA-256/MGF1-SHA-256/salt 32 signature, subject `CN={clientId}, DC={tenantId}`, the `cuId`
//!   attribute), issues a certificate for the CSR's key from the [`DevCa`] and reports it
//!   through the registration callback so the authority accepts it on its mTLS token endpoint.
//! - `GET /metadata/identity/oauth2/token?api-version=…&resource=…` (IMDS v1, unbound)
//! - `GET /msi/token?api-version=2019-08-01&resource=…` (App Service, guarded by
//!   `X-IDENTITY-HEADER`)
//!
//! IMDS routes refuse requests without `Metadata: true` (400), the App Service route refuses
//! a missing or wrong `X-IDENTITY-HEADER` (401). Every IMDS answer carries a `server` header.
//!
//! ```
//! use std::sync::Arc;
//! use certbound_core::ca::DevCa;
//! use certbound_imds::emulator::{EmulatorConfig, IssuedToken, TokenIssuer, UnboundTokenRequest};
//!
//! struct Issuer;
//! impl TokenIssuer for Issuer {
//!     fn issue_token(&self, req: &UnboundTokenRequest) -> Result<IssuedToken, String> {
//!         Ok(IssuedToken::bearer(format!("token-for-{}", req.client_id), 3600))
//!     }
//! }
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let ca = Arc::new(DevCa::generate("dev CA").unwrap());
//! let config = EmulatorConfig::new(ca, "tenant-1", "https://127.0.0.1:8443", Arc::new(Issuer), Arc::new(|reg| {
//!     println!("accept {} with x5t#S256 {}", reg.client_id, reg.thumbprint);
//! }));
//! let running = certbound_imds::emulator::spawn("127.0.0.1:0".parse().unwrap(), config).await.unwrap();
//! assert!(running.identity_endpoint.ends_with("/msi/token"));
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use certbound_core::ca::{DevCa, IssueSpec};
use certbound_core::{Certificate, Thumbprint, b64, now_unix};
use serde_json::json;
use subtle::ConstantTimeEq as _;
use x509_parser::oid_registry::{OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS};
use x509_parser::prelude::FromDer as _;
use zeroize::Zeroizing;

use crate::csr::{CU_ID_ATTRIBUTE_OID, PSS_SALT_LENGTH};

/// The `server` header value the emulator sends (the shape of Azure's).
pub const SERVER_HEADER: &str = "IMDS/150.870.65.1854 (certbound emulator)";
/// The App Service identity endpoint path.
pub const APP_SERVICE_PATH: &str = "/msi/token";

/// Whether an identity is the host's own or a user-assigned one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdentityType {
    /// The system-assigned identity.
    SystemAssigned,
    /// A user-assigned identity.
    UserAssigned,
}

impl IdentityType {
    /// `SystemAssigned` / `UserAssigned`, as IMDS spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SystemAssigned => "SystemAssigned",
            Self::UserAssigned => "UserAssigned",
        }
    }
}

/// One identity the emulator knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedIdentity {
    /// Client (application) id.
    pub client_id: String,
    /// Object (principal) id.
    pub object_id: String,
    /// Azure resource id (`/subscriptions/…`).
    pub resource_id: String,
}

impl EmulatedIdentity {
    /// An identity with the given client id; object and resource ids derived from it.
    pub fn new(client_id: impl Into<String>) -> Self {
        let client_id = client_id.into();
        Self {
            object_id: format!("obj-{client_id}"),
            resource_id: format!(
                "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/certbound/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{client_id}"
            ),
            client_id,
        }
    }
}

/// What the emulator tells the authority after minting a certificate: accept `thumbprint`
/// for `client_id` on the mTLS token endpoint.
#[derive(Debug, Clone)]
pub struct ManagedIdentityRegistration {
    /// The identity's client id (`client_id` of the token request).
    pub client_id: String,
    /// The identity's object id (`oid` claim).
    pub object_id: String,
    /// The tenant id.
    pub tenant_id: String,
    /// System- or user-assigned.
    pub identity_type: IdentityType,
    /// The minted certificate (leaf).
    pub certificate: Certificate,
    /// Its `x5t#S256`.
    pub thumbprint: Thumbprint,
}

/// Which emulated endpoint an unbound token was asked through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenChannel {
    /// `GET /metadata/identity/oauth2/token`.
    ImdsV1,
    /// The App Service endpoint.
    AppService,
}

/// A request for an unbound managed-identity token, handed to the [`TokenIssuer`].
#[derive(Debug, Clone)]
pub struct UnboundTokenRequest {
    /// The identity's client id.
    pub client_id: String,
    /// The identity's object id.
    pub object_id: String,
    /// The tenant id.
    pub tenant_id: String,
    /// System- or user-assigned.
    pub identity_type: IdentityType,
    /// The `resource` (audience) asked for.
    pub resource: String,
    /// Which endpoint was used.
    pub channel: TokenChannel,
}

/// A token the [`TokenIssuer`] made.
#[derive(Clone)]
pub struct IssuedToken {
    /// The access token (secret).
    pub access_token: Zeroizing<String>,
    /// Lifetime in seconds.
    pub expires_in: u64,
    /// `Bearer`.
    pub token_type: String,
}

impl IssuedToken {
    /// A bearer token valid for `expires_in` seconds.
    pub fn bearer(access_token: String, expires_in: u64) -> Self {
        Self {
            access_token: Zeroizing::new(access_token),
            expires_in,
            token_type: "Bearer".into(),
        }
    }
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &"<redacted>")
            .field("expires_in", &self.expires_in)
            .field("token_type", &self.token_type)
            .finish()
    }
}

/// Mints unbound access tokens for the IMDS v1 and App Service endpoints (the authority
/// implements it). An `Err` message is returned to the caller as `invalid_request`.
pub trait TokenIssuer: Send + Sync {
    /// Issues a token for `request`.
    fn issue_token(&self, request: &UnboundTokenRequest) -> Result<IssuedToken, String>;
}

/// Called for every certificate minted by `issuecredential`, before the answer is sent, so
/// the authority knows the certificate before the client can present it. Keep it quick (it
/// runs on the request path).
pub type RegistrationSink = Arc<dyn Fn(ManagedIdentityRegistration) + Send + Sync>;

/// The emulator's configuration.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// Issues the managed-identity certificates.
    pub ca: Arc<DevCa>,
    /// The tenant id of every identity.
    pub tenant_id: String,
    /// The system-assigned identity.
    pub system_assigned: EmulatedIdentity,
    /// User-assigned identities.
    pub user_assigned: Vec<EmulatedIdentity>,
    /// The compute unit id reported by `getplatformmetadata` (and required in CSRs).
    pub cu_id: serde_json::Value,
    /// `attestationEndpoint` reported by `getplatformmetadata`.
    pub attestation_endpoint: String,
    /// `mtls_authentication_endpoint` returned by `issuecredential` (the authority's mTLS
    /// base URL, `https://…`).
    pub mtls_authentication_endpoint: String,
    /// Lifetime of minted certificates (default 8 h, like Azure's short-lived ones).
    pub certificate_lifetime: Duration,
    /// Emulate an IMDS v1-only host: the two v2 routes answer 404.
    pub v1_only: bool,
    /// The App Service secret header value (random by default).
    pub identity_header: Zeroizing<String>,
    /// Makes unbound tokens.
    pub token_issuer: Arc<dyn TokenIssuer>,
    /// Learns about minted certificates.
    pub on_register: RegistrationSink,
}

impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("tenant_id", &self.tenant_id)
            .field("system_assigned", &self.system_assigned)
            .field("user_assigned", &self.user_assigned)
            .field(
                "mtls_authentication_endpoint",
                &self.mtls_authentication_endpoint,
            )
            .field("certificate_lifetime", &self.certificate_lifetime)
            .field("v1_only", &self.v1_only)
            .field("identity_header", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// `n` random bytes as hex, or an empty string if the system RNG fails (then the GUIDs
/// below fall back to the clock, and [`spawn`] refuses an empty App Service secret).
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The shortest App Service secret [`spawn`] accepts.
const MIN_IDENTITY_HEADER_LEN: usize = 16;

impl EmulatorConfig {
    /// A configuration with a random system-assigned identity, no user-assigned ones, a
    /// random VM id and a random App Service header.
    pub fn new(
        ca: Arc<DevCa>,
        tenant_id: impl Into<String>,
        mtls_authentication_endpoint: impl Into<String>,
        token_issuer: Arc<dyn TokenIssuer>,
        on_register: RegistrationSink,
    ) -> Self {
        let guid = || {
            certbound_core::random_guid().unwrap_or_else(|| {
                // Not secret, only distinct: the clock will do.
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                certbound_core::guid_text(&t.to_be_bytes())
            })
        };
        Self {
            ca,
            tenant_id: tenant_id.into(),
            system_assigned: EmulatedIdentity::new(guid()),
            user_assigned: Vec::new(),
            cu_id: json!({ "vmId": guid(), "vmssId": "" }),
            attestation_endpoint: "https://certbound-emulator.attest.invalid".into(),
            mtls_authentication_endpoint: mtls_authentication_endpoint.into(),
            certificate_lifetime: Duration::from_secs(8 * 3600),
            v1_only: false,
            identity_header: Zeroizing::new(random_hex(24)),
            token_issuer,
            on_register,
        }
    }

    /// Adds a user-assigned identity.
    pub fn with_user_assigned(mut self, identity: EmulatedIdentity) -> Self {
        self.user_assigned.push(identity);
        self
    }
    /// Sets the system-assigned identity.
    pub fn with_system_assigned(mut self, identity: EmulatedIdentity) -> Self {
        self.system_assigned = identity;
        self
    }
    /// Sets the minted certificates' lifetime.
    pub fn with_certificate_lifetime(mut self, lifetime: Duration) -> Self {
        self.certificate_lifetime = lifetime;
        self
    }
    /// Emulates an IMDS v1-only host.
    pub fn v1_only(mut self, yes: bool) -> Self {
        self.v1_only = yes;
        self
    }
    /// Sets the App Service secret header value.
    pub fn with_identity_header(mut self, value: impl Into<String>) -> Self {
        self.identity_header = Zeroizing::new(value.into());
        self
    }

    /// Finds an identity by the IMDS/App Service query parameters (none = system-assigned).
    /// `Err` when a selector names no configured identity.
    fn select(
        &self,
        q: &HashMap<String, String>,
    ) -> Result<(&EmulatedIdentity, IdentityType), String> {
        let all = std::iter::once((&self.system_assigned, IdentityType::SystemAssigned)).chain(
            self.user_assigned
                .iter()
                .map(|i| (i, IdentityType::UserAssigned)),
        );
        let pick = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let found = if let Some(v) = pick("client_id") {
            all.clone()
                .find(|(i, _)| i.client_id.eq_ignore_ascii_case(v))
        } else if let Some(v) = pick("object_id").or_else(|| pick("principal_id")) {
            all.clone()
                .find(|(i, _)| i.object_id.eq_ignore_ascii_case(v))
        } else if let Some(v) = pick("mi_res_id").or_else(|| pick("msi_res_id")) {
            all.clone()
                .find(|(i, _)| i.resource_id.eq_ignore_ascii_case(v))
        } else {
            return Ok((&self.system_assigned, IdentityType::SystemAssigned));
        };
        found.ok_or_else(|| "Identity not found".to_string())
    }

    fn by_client_id(&self, client_id: &str) -> Option<(&EmulatedIdentity, IdentityType)> {
        std::iter::once((&self.system_assigned, IdentityType::SystemAssigned))
            .chain(
                self.user_assigned
                    .iter()
                    .map(|i| (i, IdentityType::UserAssigned)),
            )
            .find(|(i, _)| i.client_id.eq_ignore_ascii_case(client_id))
    }
}

/// The emulator's routes (no TLS: IMDS is plain HTTP on a link-local address).
pub fn router(config: EmulatorConfig) -> Router {
    Router::new()
        .route(
            "/metadata/identity/getplatformmetadata",
            get(platform_metadata),
        )
        .route("/metadata/identity/issuecredential", post(issue_credential))
        .route("/metadata/identity/oauth2/token", get(imds_v1_token))
        .route(APP_SERVICE_PATH, get(app_service_token))
        .with_state(Arc::new(config))
}

/// A running emulator.
pub struct RunningEmulator {
    /// The bound address (IMDS base is `http://{addr}`).
    pub addr: SocketAddr,
    /// `IDENTITY_ENDPOINT` for App Service clients.
    pub identity_endpoint: String,
    /// `IDENTITY_HEADER` for App Service clients (a secret).
    pub identity_header: Zeroizing<String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("addr", &self.addr)
            .field("identity_endpoint", &self.identity_endpoint)
            .field("identity_header", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl RunningEmulator {
    /// The IMDS base address (`http://ip:port`), for `AZURE_POD_IDENTITY_AUTHORITY_HOST`.
    pub fn imds_base(&self) -> String {
        format!("http://{}", self.addr)
    }
    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds `addr` and serves the emulator in a background task.
pub async fn spawn(addr: SocketAddr, config: EmulatorConfig) -> std::io::Result<RunningEmulator> {
    if config.identity_header.len() < MIN_IDENTITY_HEADER_LEN {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "the App Service identity header secret must be at least {MIN_IDENTITY_HEADER_LEN} characters (the system RNG may have failed)"
            ),
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let identity_header = config.identity_header.clone();
    let app = router(config);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "IMDS emulator stopped");
        }
    });
    Ok(RunningEmulator {
        addr,
        identity_endpoint: format!("http://{addr}{APP_SERVICE_PATH}"),
        identity_header,
        shutdown: Some(tx),
        task,
    })
}

type Shared = State<Arc<EmulatorConfig>>;

mod handlers;

use handlers::*;
