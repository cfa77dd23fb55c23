//! The managed-identity (IMDS) emulator wired to a running authority
//! (`certbound authority serve --imds-addr A`).
//!
//! - **IMDS v2**: `issuecredential` issues certificates from the authority's development CA
//!   (subject `CN={clientId}, DC={tenant}`) and registers each minted identity as a
//!   `tls_client_auth` client with certificate-bound tokens, so the authority's mTLS token
//!   endpoint — `{mtls_authentication_endpoint}/{tenant}/oauth2/v2.0/token`, where
//!   `mtls_authentication_endpoint` is the authority's base URL — accepts the minted
//!   certificate and binds the token to it. Registration is by subject DN, so a re-minted
//!   certificate is accepted at once and earlier ones keep working until they expire.
//! - **IMDS v1 / App Service**: unbound tokens signed by the authority
//!   ([`RunningAuthority::issue_token`]), with the identity's object id as `oid`;
//!   they verify against the authority's JWKS like any other token it issues.
//!
//! The identities are derived from the authority's CA, so they stay the same across
//! restarts of the same state directory: one system-assigned identity
//! ([`system_assigned_identity`]) and one user-assigned identity
//! ([`user_assigned_identity`]).
//!
//! ```no_run
//! use certbound_authority::{DevAuthority, AuthorityOptions, imds};
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let authority = DevAuthority::open_or_init("/tmp/certbound-authority", AuthorityOptions::default())?;
//! let running = authority.spawn("127.0.0.1:0".parse()?).await?;
//! let emulator = imds::spawn_emulator(&running, "127.0.0.1:0".parse()?).await?;
//! // AZURE_POD_IDENTITY_AUTHORITY_HOST = emulator.imds_base()
//! println!("{}", imds::ready_json(&running, &emulator));
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{Value, json};

pub use certbound_imds::emulator::{
    EmulatedIdentity, EmulatorConfig, IdentityType, IssuedToken, ManagedIdentityRegistration,
    RegistrationSink, RunningEmulator, TokenChannel, TokenIssuer, UnboundTokenRequest,
};

use crate::issue::{IssueRequest, LocalIssuer};
use crate::{AuthorityError, CertAuthMethod, ClientRegistration, DevAuthority, RunningAuthority};

/// Issues the emulator's unbound (IMDS v1 / App Service) tokens with the authority's key.
#[derive(Debug, Clone)]
pub struct AuthorityTokenIssuer {
    issuer: LocalIssuer,
}

impl AuthorityTokenIssuer {
    /// Wraps an authority's in-process issuer.
    pub fn new(issuer: LocalIssuer) -> Self {
        Self { issuer }
    }
}

impl TokenIssuer for AuthorityTokenIssuer {
    fn issue_token(&self, request: &UnboundTokenRequest) -> Result<IssuedToken, String> {
        let req =
            IssueRequest::new(&request.client_id, &request.resource).object_id(&request.object_id);
        let issued = self
            .issuer
            .issue_token(&req)
            .map_err(|e| e.description.to_string())?;
        Ok(IssuedToken::bearer(
            issued.access_token().to_owned(),
            issued.expires_in,
        ))
    }
}

/// A registration sink that registers every minted identity with `authority` as a
/// `tls_client_auth` client (CA-issued certificate, subject DN) with bound tokens and the
/// identity's object id as the `oid` of its tokens.
///
/// A registration that fails is logged (the token endpoint will then refuse the
/// certificate with `invalid_client`).
pub fn registration_sink(authority: DevAuthority) -> RegistrationSink {
    Arc::new(move |reg: ManagedIdentityRegistration| {
        let registration = ClientRegistration::with_certificate(
            &reg.client_id,
            reg.certificate.clone(),
            CertAuthMethod::TlsClientAuth,
        )
        .bound_tokens(true)
        .object_id(&reg.object_id);
        match authority.register(registration) {
            Ok(()) => tracing::info!(
                client_id = %reg.client_id,
                identity_type = reg.identity_type.as_str(),
                x5t_s256 = %reg.thumbprint.to_base64url(),
                "managed identity certificate registered"
            ),
            Err(e) => tracing::error!(
                client_id = %reg.client_id,
                error = %e,
                "cannot register a minted managed-identity certificate; the token endpoint will refuse it"
            ),
        }
    })
}

/// A GUID derived from the authority's CA and a label (stable per state directory).
fn derived_guid(authority: &DevAuthority, label: &str) -> String {
    certbound_core::derived_guid(&[
        b"certbound-imds-identity\0",
        authority.ca_cert().der(),
        label.as_bytes(),
    ])
}

fn derived_identity(authority: &DevAuthority, label: &str) -> EmulatedIdentity {
    let mut identity = EmulatedIdentity::new(derived_guid(authority, &format!("{label}/client")));
    identity.object_id = derived_guid(authority, &format!("{label}/object"));
    identity
}

/// The emulator's system-assigned identity for `authority` (stable per state directory).
pub fn system_assigned_identity(authority: &DevAuthority) -> EmulatedIdentity {
    derived_identity(authority, "system-assigned")
}

/// The emulator's user-assigned identity for `authority` (stable per state directory).
pub fn user_assigned_identity(authority: &DevAuthority) -> EmulatedIdentity {
    derived_identity(authority, "user-assigned/1")
}

/// The emulator configuration for `running`: its CA, tenant and base URL as
/// `mtls_authentication_endpoint`, tokens signed by it, minted identities registered
/// with it, and the identities of [`system_assigned_identity`] and
/// [`user_assigned_identity`]. Adjust it (certificate lifetime, more identities, an
/// IMDS v1-only host) before passing it to [`certbound_imds::emulator::spawn`].
pub fn emulator_config(running: &RunningAuthority) -> EmulatorConfig {
    let authority = running.authority();
    EmulatorConfig::new(
        authority.shared_ca(),
        authority.tenant(),
        running.endpoints().base.clone(),
        Arc::new(AuthorityTokenIssuer::new(running.local_issuer())),
        registration_sink(authority.clone()),
    )
    .with_system_assigned(system_assigned_identity(authority))
    .with_user_assigned(user_assigned_identity(authority))
}

/// Starts the emulator for `running` on `addr` (plain HTTP; port 0 picks a free port),
/// configured by [`emulator_config`].
pub async fn spawn_emulator(
    running: &RunningAuthority,
    addr: SocketAddr,
) -> Result<RunningEmulator, AuthorityError> {
    spawn_emulator_with(addr, emulator_config(running)).await
}

/// Starts the emulator with an adjusted [`emulator_config`].
pub async fn spawn_emulator_with(
    addr: SocketAddr,
    config: EmulatorConfig,
) -> Result<RunningEmulator, AuthorityError> {
    certbound_imds::emulator::spawn(addr, config)
        .await
        .map_err(|source| AuthorityError::Bind { addr, source })
}

/// The authority's ready line extended with the emulator: `imds_addr`, `imds_base` (the
/// value for `AZURE_POD_IDENTITY_AUTHORITY_HOST`), `identity_endpoint` and
/// `identity_header` (for App Service clients: `IDENTITY_ENDPOINT`, `IDENTITY_HEADER`;
/// the header is a local development secret) and the `managed_identities`.
pub fn ready_json(running: &RunningAuthority, emulator: &RunningEmulator) -> Value {
    let mut ready = running.ready_json();
    let authority = running.authority();
    let system = system_assigned_identity(authority);
    let user = user_assigned_identity(authority);
    if let Some(m) = ready.as_object_mut() {
        m.insert("imds_addr".into(), json!(emulator.addr.to_string()));
        m.insert("imds_base".into(), json!(emulator.imds_base()));
        m.insert(
            "identity_endpoint".into(),
            json!(emulator.identity_endpoint),
        );
        m.insert(
            "identity_header".into(),
            json!(emulator.identity_header.as_str()),
        );
        m.insert(
            "managed_identities".into(),
            json!({
                "system_assigned": {"client_id": system.client_id, "object_id": system.object_id},
                "user_assigned": [{
                    "client_id": user.client_id,
                    "object_id": user.object_id,
                    "resource_id": user.resource_id,
                }],
            }),
        );
    }
    ready
}
