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
            certbound_core::id::random_guid().unwrap_or_else(|| {
                // Not secret, only distinct: the clock will do.
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                certbound_core::id::guid_text(&t.to_be_bytes())
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

fn imds_json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, axum::Json(body)).into_response();
    r.headers_mut()
        .insert(header::SERVER, HeaderValue::from_static(SERVER_HEADER));
    r
}

fn imds_error(status: StatusCode, error: &str, description: impl fmt::Display) -> Response {
    imds_json(
        status,
        json!({ "error": error, "error_description": description.to_string() }),
    )
}

/// IMDS refuses requests without `Metadata: true` (400), to stop SSRF.
fn refuse_without_metadata(headers: &HeaderMap) -> Option<Response> {
    let ok = headers
        .get("metadata")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    (!ok).then(|| {
        imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Required metadata header not specified",
        )
    })
}

fn refuse_bad_cred_api(q: &HashMap<String, String>) -> Option<Response> {
    match q.get("cred-api-version").map(String::as_str) {
        Some("2.0") => None,
        Some(other) => Some(imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("unsupported cred-api-version `{other}`; use 2.0"),
        )),
        None => Some(imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "cred-api-version is required",
        )),
    }
}

async fn platform_metadata(
    State(cfg): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if cfg.v1_only {
        return imds_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested resource was not found",
        );
    }
    if let Some(r) = refuse_without_metadata(&headers).or_else(|| refuse_bad_cred_api(&q)) {
        return r;
    }
    let (identity, _) = match cfg.select(&q) {
        Ok(found) => found,
        Err(e) => return imds_error(StatusCode::BAD_REQUEST, "invalid_request", e),
    };
    imds_json(
        StatusCode::OK,
        json!({
            "cuId": cfg.cu_id,
            "clientId": identity.client_id,
            "tenantId": cfg.tenant_id,
            "attestationEndpoint": cfg.attestation_endpoint,
        }),
    )
}

/// Why a CSR was refused.
fn csr_refused(why: impl fmt::Display) -> Response {
    imds_error(StatusCode::BAD_REQUEST, "invalid_csr", why)
}

/// The parts of a checked CSR the handler needs.
struct CheckedCsr {
    client_id: String,
    spki_der: Vec<u8>,
}

/// Parses and checks a CSR: RSASSA-PSS (SHA-256, MGF1-SHA-256, salt 32) signature that
/// verifies, an RSA key of 2048+ bits, subject exactly `CN=<client>` + `DC=<tenant>`, and the
/// `cuId` attribute equal to the host's.
fn check_csr(cfg: &EmulatorConfig, der: &[u8]) -> Result<CheckedCsr, String> {
    use x509_parser::certification_request::X509CertificationRequest;
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| format!("not a PKCS#10 certification request: {e}"))?;
    if !rest.is_empty() {
        return Err("trailing bytes after the CSR".into());
    }
    let alg = &csr.signature_algorithm;
    if alg.algorithm != OID_PKCS1_RSASSAPSS {
        return Err(format!(
            "the CSR must be signed with RSASSA-PSS (1.2.840.113549.1.1.10), not {}",
            alg.algorithm
        ));
    }
    let params = alg
        .parameters
        .as_ref()
        .ok_or("RSASSA-PSS parameters are missing")
        .and_then(|p| {
            x509_parser::signature_algorithm::RsaSsaPssParams::try_from(p)
                .map_err(|_| "RSASSA-PSS parameters are malformed")
        })?;
    let sha256 = x509_parser::oid_registry::OID_NIST_HASH_SHA256;
    let mgf = params
        .mask_gen_algorithm()
        .map_err(|_| "the RSASSA-PSS mask generation function is malformed")?;
    if *params.hash_algorithm_oid() != sha256 || mgf.hash != sha256 {
        return Err("RSASSA-PSS must use SHA-256 and MGF1 with SHA-256".into());
    }
    if params.salt_length() != PSS_SALT_LENGTH || params.trailer_field() != 1 {
        return Err(format!(
            "RSASSA-PSS salt length must be {PSS_SALT_LENGTH} (got {}) with trailer field 1",
            params.salt_length()
        ));
    }
    let info = &csr.certification_request_info;
    if info.subject_pki.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
        return Err("the CSR's key must be RSA".into());
    }
    csr.verify_signature()
        .map_err(|e| format!("the CSR's signature does not verify: {e}"))?;
    let bits = match info.subject_pki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(k)) => k.key_size(),
        _ => return Err("the CSR's RSA public key is malformed".into()),
    };
    if bits < 2048 {
        return Err(format!(
            "the CSR's RSA key has {bits} bits; 2048 or more are required"
        ));
    }

    let subject = &info.subject;
    let mut cns = Vec::new();
    let mut dcs = Vec::new();
    for attr in subject.iter_attributes() {
        let value = attr
            .as_str()
            .map_err(|_| "a subject attribute is not a string".to_string())?
            .to_string();
        if *attr.attr_type() == x509_parser::oid_registry::OID_X509_COMMON_NAME {
            cns.push(value);
        } else if *attr.attr_type() == x509_parser::oid_registry::OID_DOMAIN_COMPONENT {
            dcs.push(value);
        } else {
            return Err(format!("unexpected subject attribute {}", attr.attr_type()));
        }
    }
    let [cn] = cns.as_slice() else {
        return Err("the subject must have exactly one CN (the client id)".into());
    };
    let [dc] = dcs.as_slice() else {
        return Err("the subject must have exactly one DC (the tenant id)".into());
    };
    if !dc.eq_ignore_ascii_case(&cfg.tenant_id) {
        return Err(format!("subject DC `{dc}` is not this host's tenant"));
    }
    if cfg.by_client_id(cn).is_none() {
        return Err(format!(
            "subject CN `{cn}` is not a managed identity of this host"
        ));
    }

    let oid_str = CU_ID_ATTRIBUTE_OID;
    let cu_id = cu_id_attribute(info.raw)?
        .ok_or_else(|| format!("the cuId attribute {oid_str} is missing"))?;
    let parsed: serde_json::Value =
        serde_json::from_str(&cu_id).map_err(|_| format!("attribute {oid_str} is not JSON"))?;
    if parsed != cfg.cu_id {
        return Err(format!(
            "attribute {oid_str} does not name this host's compute unit"
        ));
    }
    Ok(CheckedCsr {
        client_id: cn.clone(),
        spki_der: info.subject_pki.raw.to_vec(),
    })
}

/// Finds the `cuId` attribute in a DER `CertificationRequestInfo` and returns its
/// UTF8String value. (x509-parser keeps only the header of attributes it does not know, so
/// the `[0]` attribute set is walked here with its DER parser.)
fn cu_id_attribute(info_der: &[u8]) -> Result<Option<String>, String> {
    use x509_parser::der_parser::ber::BerObjectContent;
    use x509_parser::der_parser::der::parse_der;
    let malformed = |what: &str| format!("malformed CSR attributes: {what}");
    let (_, info) = parse_der(info_der).map_err(|_| malformed("request info"))?;
    let items = info.as_sequence().map_err(|_| malformed("request info"))?;
    let Some(attrs) = items.get(3) else {
        return Ok(None);
    };
    let mut rest: &[u8] = match &attrs.content {
        BerObjectContent::Unknown(any) => any.data,
        _ => return Err(malformed("expected [0] attributes")),
    };
    let mut found = None;
    while !rest.is_empty() {
        let (r, attr) = parse_der(rest).map_err(|_| malformed("attribute"))?;
        rest = r;
        let parts = attr.as_sequence().map_err(|_| malformed("attribute"))?;
        let [oid, values] = parts.as_slice() else {
            return Err(malformed("attribute"));
        };
        let oid = oid.as_oid().map_err(|_| malformed("attribute type"))?;
        if oid.to_id_string() != CU_ID_ATTRIBUTE_OID {
            continue;
        }
        if found.is_some() {
            return Err(format!("attribute {CU_ID_ATTRIBUTE_OID} appears twice"));
        }
        let set = values
            .as_set()
            .map_err(|_| format!("attribute {CU_ID_ATTRIBUTE_OID} values are not a SET"))?;
        match set.as_slice() {
            [v] => match &v.content {
                BerObjectContent::UTF8String(s) => found = Some(s.to_string()),
                _ => {
                    return Err(format!(
                        "attribute {CU_ID_ATTRIBUTE_OID} is not a UTF8String"
                    ));
                }
            },
            _ => {
                return Err(format!(
                    "attribute {CU_ID_ATTRIBUTE_OID} must hold exactly one value"
                ));
            }
        }
    }
    Ok(found)
}

async fn issue_credential(
    State(cfg): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if cfg.v1_only {
        return imds_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "The requested resource was not found",
        );
    }
    if let Some(r) = refuse_without_metadata(&headers).or_else(|| refuse_bad_cred_api(&q)) {
        return r;
    }
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return imds_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be JSON {\"csr\":…}",
            );
        }
    };
    let Some(csr_b64) = v.get("csr").and_then(|c| c.as_str()) else {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "`csr` is required",
        );
    };
    let der = match b64::decode_std_lenient(csr_b64) {
        Ok(d) => d,
        Err(_) => return csr_refused("`csr` is not base64"),
    };
    let checked = match check_csr(&cfg, &der) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(reason = %e, "IMDS emulator refused a CSR");
            return csr_refused(e);
        }
    };
    let Some((identity, identity_type)) = cfg.by_client_id(&checked.client_id) else {
        return csr_refused("unknown client id");
    };
    // A user-assigned selector in the query must name the same identity as the CSR.
    match cfg.select(&q) {
        Err(e) => return imds_error(StatusCode::BAD_REQUEST, "invalid_request", e),
        Ok((selected, _)) if selected.client_id != identity.client_id => {
            return csr_refused(format!(
                "the CSR's CN `{}` is not the identity selected by the query",
                checked.client_id
            ));
        }
        Ok(_) => {}
    }
    let mut spec = IssueSpec::client(&identity.client_id).valid_for(cfg.certificate_lifetime);
    spec.extra_subject
        .push(("DC".into(), cfg.tenant_id.clone()));
    // Short lifetimes (tests) start now rather than five minutes ago.
    let now = now_unix();
    let lifetime = cfg.certificate_lifetime.as_secs() as i64;
    if lifetime < 3600 {
        spec = spec.valid_between(now - 1, now + lifetime);
    }
    let cert = match cfg.ca.issue_for_spki(&spec, &checked.spki_der) {
        Ok(c) => c,
        Err(e) => {
            return imds_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                format!("cannot issue: {e}"),
            );
        }
    };
    let registration = ManagedIdentityRegistration {
        client_id: identity.client_id.clone(),
        object_id: identity.object_id.clone(),
        tenant_id: cfg.tenant_id.clone(),
        identity_type,
        thumbprint: cert.thumbprint(),
        certificate: cert.clone(),
    };
    (cfg.on_register)(registration);
    imds_json(
        StatusCode::OK,
        json!({
            "client_id": identity.client_id,
            "tenant_id": cfg.tenant_id,
            "certificate": b64::encode_std(cert.der()),
            "identity_type": identity_type.as_str(),
            "mtls_authentication_endpoint": cfg.mtls_authentication_endpoint,
        }),
    )
}

fn unbound_token(
    cfg: &EmulatorConfig,
    q: &HashMap<String, String>,
    channel: TokenChannel,
) -> Result<serde_json::Value, (StatusCode, String)> {
    let resource = q
        .get("resource")
        .map(|r| r.trim())
        .filter(|r| !r.is_empty())
        .ok_or((
            StatusCode::BAD_REQUEST,
            "`resource` is required".to_string(),
        ))?;
    let (identity, identity_type) = cfg.select(q).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let request = UnboundTokenRequest {
        client_id: identity.client_id.clone(),
        object_id: identity.object_id.clone(),
        tenant_id: cfg.tenant_id.clone(),
        identity_type,
        resource: resource.to_string(),
        channel,
    };
    let token = cfg
        .token_issuer
        .issue_token(&request)
        .map_err(|e| (StatusCode::BAD_REQUEST, e))?;
    let now = now_unix();
    Ok(json!({
        "access_token": token.access_token.as_str(),
        "client_id": identity.client_id,
        "expires_in": token.expires_in.to_string(),
        "expires_on": (now + token.expires_in as i64).to_string(),
        "ext_expires_in": token.expires_in.to_string(),
        "not_before": now.to_string(),
        "resource": resource,
        "token_type": token.token_type,
    }))
}

async fn imds_v1_token(
    State(cfg): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = refuse_without_metadata(&headers) {
        return r;
    }
    if q.get("api-version").is_none_or(|v| v.is_empty()) {
        return imds_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "api-version is required",
        );
    }
    match unbound_token(&cfg, &q, TokenChannel::ImdsV1) {
        Ok(body) => imds_json(StatusCode::OK, body),
        Err((status, e)) => imds_error(status, "invalid_request", e),
    }
}

async fn app_service_token(
    State(cfg): Shared,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let presented = headers.get("x-identity-header").map(|v| v.as_bytes());
    let ok = presented.is_some_and(|p| bool::from(p.ct_eq(cfg.identity_header.as_bytes())));
    if !ok {
        let body = json!({"statusCode": 401, "message": "Unauthorized: X-IDENTITY-HEADER missing or wrong"});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    match q.get("api-version").map(String::as_str) {
        Some("2019-08-01") => {}
        _ => {
            let body = json!({"statusCode": 400, "message": "api-version 2019-08-01 is required"});
            return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
        }
    }
    match unbound_token(&cfg, &q, TokenChannel::AppService) {
        Ok(mut body) => {
            if let Some(obj) = body.as_object_mut() {
                for k in ["expires_in", "ext_expires_in", "not_before"] {
                    obj.remove(k);
                }
            }
            (StatusCode::OK, axum::Json(body)).into_response()
        }
        Err((status, e)) => {
            let body = json!({"statusCode": status.as_u16(), "message": e});
            (status, axum::Json(body)).into_response()
        }
    }
}
