//! Managed identity as a client credential (`SourceType: ManagedCertificate`, docs/wire-formats.md (managed identity)).
//!
//! [`ManagedIdentityCredential`] gets everything from the host's identity endpoints:
//!
//! - **bound tokens** (`MTLS_POP`): a certificate minted by **IMDS v2**
//!   ([`ManagedCertificateSource`]: platform metadata, an RSA key and an RSASSA-PSS-signed
//!   CSR, `issuecredential`), kept in memory and re-minted before it expires. The token
//!   request goes to the minted credential's token endpoint
//!   (`{mtls_authentication_endpoint}/{tenant_id}/oauth2/v2.0/token`) with the identity's
//!   `client_id` from IMDS — not `AzureAd.ClientId` — and `token_type=mtls_pop`, over mTLS
//!   with the minted certificate. The cache key carries the minted certificate's
//!   thumbprint, so a re-minted certificate gets its own token. A host with IMDS v1 only
//!   answers 404 to the platform-metadata request: binding is then impossible and the
//!   request fails with [`ClientError::ManagedIdentity`] (`mtls_pop_unavailable`).
//! - **unbound tokens** (`Bearer`): from the App Service identity endpoint when
//!   `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set, else from **IMDS v1**. These
//!   endpoints take one resource: the scope `X/.default` asks for resource `X`.
//!
//! The IMDS address is `AZURE_POD_IDENTITY_AUTHORITY_HOST` (default
//! `http://169.254.169.254`), as in the Azure SDKs.
//!
//! ```no_run
//! # async fn run() -> Result<(), certbound_client::ClientError> {
//! use std::sync::Arc;
//! use certbound_client::managed::{ImdsClient, ManagedIdentity, ManagedIdentityCredential};
//! use certbound_client::{App, HeaderOptions};
//! let imds = ImdsClient::new("http://127.0.0.1:50342").map_err(certbound_client::managed::imds_error)?;
//! let credential = ManagedIdentityCredential::new(imds, ManagedIdentity::SystemAssigned);
//! let app = App::builder()
//!     .client_id("my-app") // informational: the identity's client id comes from IMDS
//!     .authority("https://login.microsoftonline.com/contoso.onmicrosoft.com")
//!     .credential(Arc::new(credential))
//!     .build()?;
//! let h = app.authorization_header_for_app(&["api://orders/.default"], &HeaderOptions::mtls_pop()).await?;
//! assert!(h.binding().is_some()); // the minted certificate
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use certbound_imds::{
    AppServiceClient, ImdsClient, ImdsError, ManagedCertificateSource, ManagedIdentity,
    ManagedIdentityToken, MintedCredential, PlatformMetadata,
};

use crate::cache::{BoxFuture, CachedToken};
use crate::vocab::{ClientCredential, ResolvedCredential};

use crate::error::{ClientError, shorten};
use crate::secret::Secret;
pub use crate::vocab::ManagedIdentityCredential;

/// An [`ImdsError`] as a [`ClientError::ManagedIdentity`].
pub fn imds_error(e: ImdsError) -> ClientError {
    ClientError::ManagedIdentity {
        mtls_pop_unavailable: matches!(e, ImdsError::ImdsV1Only { .. }),
        message: e.to_string(),
    }
}

impl ManagedIdentityCredential {
    /// A managed identity reached through `imds` (IMDS v2 for certificates, IMDS v1 for
    /// unbound tokens).
    pub fn new(imds: ImdsClient, identity: ManagedIdentity) -> Self {
        Self {
            certificates: ManagedCertificateSource::new(imds.clone(), identity.clone()),
            identity,
            imds,
            app_service: None,
            invalidations: AtomicU64::new(0),
        }
    }

    /// Takes unbound tokens from an App Service identity endpoint (`IDENTITY_ENDPOINT`,
    /// with the `IDENTITY_HEADER` secret) instead of IMDS v1.
    pub fn with_app_service(
        mut self,
        endpoint: &str,
        identity_header: &str,
    ) -> Result<Self, ClientError> {
        let client = AppServiceClient::new(endpoint, identity_header).map_err(imds_error)?;
        self.app_service = Some((client, endpoint.to_owned()));
        Ok(self)
    }

    /// From the environment: IMDS at `AZURE_POD_IDENTITY_AUTHORITY_HOST` (default
    /// `http://169.254.169.254`), App Service when `IDENTITY_ENDPOINT` and
    /// `IDENTITY_HEADER` are both set. `managed_identity_client_id` is
    /// `ManagedIdentityClientId` (none: system-assigned; `/subscriptions/…`: a resource id).
    pub fn from_env(managed_identity_client_id: Option<&str>) -> Result<Self, ClientError> {
        Self::from_env_with(managed_identity_client_id, |k| std::env::var(k).ok())
    }

    /// [`ManagedIdentityCredential::from_env`] reading variables through `lookup`.
    pub fn from_env_with(
        managed_identity_client_id: Option<&str>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ClientError> {
        let imds = ImdsClient::from_env_with(&lookup).map_err(imds_error)?;
        let mut me = Self::new(
            imds,
            ManagedIdentity::from_config(managed_identity_client_id),
        );
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        match (get("IDENTITY_ENDPOINT"), get("IDENTITY_HEADER")) {
            (Some(endpoint), Some(header)) => {
                me = me.with_app_service(endpoint.trim(), &header)?;
            }
            (None, None) => {}
            _ => tracing::warn!(
                "only one of IDENTITY_ENDPOINT and IDENTITY_HEADER is set; App Service managed identity needs both, using IMDS for unbound tokens"
            ),
        }
        Ok(me)
    }

    /// The identity.
    pub fn identity(&self) -> &ManagedIdentity {
        &self.identity
    }
    /// The IMDS v2 certificate source.
    pub fn certificates(&self) -> &ManagedCertificateSource {
        &self.certificates
    }
    /// The IMDS client.
    pub fn imds(&self) -> &ImdsClient {
        &self.imds
    }

    /// The current minted certificate, minting or re-minting as needed.
    pub async fn minted(&self) -> Result<Arc<MintedCredential>, ClientError> {
        self.certificates.credential().await.map_err(imds_error)
    }

    /// Forgets the minted certificate: the next bound request mints a new one (and, its
    /// thumbprint being new, gets a new token).
    pub async fn invalidate(&self) {
        self.invalidations.fetch_add(1, Ordering::Relaxed);
        self.certificates.invalidate().await;
    }

    /// Changes whenever the binding certificate may have changed (a mint or an
    /// invalidation), so cached bound headers are re-checked.
    pub fn generation(&self) -> u64 {
        self.certificates
            .mints()
            .wrapping_add(self.invalidations.load(Ordering::Relaxed))
    }

    /// Which endpoint unbound tokens come from (for cache keys and logs).
    pub fn unbound_endpoint(&self) -> String {
        match &self.app_service {
            Some((_, endpoint)) => endpoint.clone(),
            None => format!(
                "{}metadata/identity/oauth2/token",
                self.imds.base_url().as_str()
            ),
        }
    }

    /// The identity as text for cache keys (`system-assigned`, `client_id=…`, …).
    pub fn identity_label(&self) -> String {
        match &self.identity {
            ManagedIdentity::SystemAssigned => "system-assigned".into(),
            ManagedIdentity::ClientId(v) => format!("client_id={v}"),
            ManagedIdentity::ObjectId(v) => format!("object_id={v}"),
            ManagedIdentity::ResourceId(v) => format!("mi_res_id={v}"),
        }
    }

    /// An unbound token for `scopes` (one resource: `X/.default` → `X`) from App Service
    /// or IMDS v1.
    pub async fn unbound_token(&self, scopes: &[String]) -> Result<CachedToken, ClientError> {
        let resource = resource_of(scopes)?;
        let token = match &self.app_service {
            Some((a, _)) => a.token(&self.identity, &resource).await,
            None => self.imds.imds_v1_token(&self.identity, &resource).await,
        }
        .map_err(imds_error)?;
        if !token.token_type.eq_ignore_ascii_case("bearer") {
            return Err(ClientError::TokenTypeMismatch {
                requested: "Bearer".into(),
                received: shorten(&token.token_type, 40),
            });
        }
        if !certbound_imds::wire::token_is_header_safe(token.access_token()) {
            return Err(ClientError::InvalidResponse {
                url: self.unbound_endpoint(),
                message: "the managed-identity access_token is too large or holds characters not allowed in an HTTP header".into(),
            });
        }
        let now = certbound_core::now_unix();
        // `expires_on` is already saturating and bounded by the JWT's `exp` (certbound-imds).
        let lifetime = token.expires_on.saturating_sub(now);
        if lifetime <= 0 {
            return Err(ClientError::InvalidResponse {
                url: self.unbound_endpoint(),
                message: "the managed-identity token is already expired".into(),
            });
        }
        let refresh_on = match token.refresh_on {
            Some(r) if r > now && r < token.expires_on => Some(r),
            _ => (lifetime >= 7200).then_some(now.saturating_add(lifetime / 2)),
        };
        let mut t = CachedToken::new(
            "Bearer",
            Secret::new(token.access_token()),
            token.expires_on,
            refresh_on,
            None,
        );
        t.acquired_on = now;
        Ok(t)
    }
}

/// When a minted certificate gets re-minted: 5 minutes or 10 % of its lifetime (whichever
/// is shorter) before it expires — the rule of [`MintedCredential::refresh_at`].
pub(crate) fn refresh_at(cert: &certbound_core::CertifiedKey) -> i64 {
    let leaf = cert.leaf();
    let lifetime = leaf.not_after() - leaf.not_before();
    leaf.not_after() - (lifetime / 10).clamp(0, 300)
}

/// The single resource IMDS and App Service take: `X/.default` → `X`; a scope without
/// `/.default` is used as the resource as it is.
pub(crate) fn resource_of(scopes: &[impl AsRef<str>]) -> Result<String, ClientError> {
    let scopes: Vec<&str> = scopes
        .iter()
        .map(|s| s.as_ref().trim())
        .filter(|s| !s.is_empty())
        .collect();
    match scopes.as_slice() {
        [] => Err(ClientError::NoScopes),
        [one] => {
            let r = one.strip_suffix("/.default").unwrap_or(one);
            if r.is_empty() {
                return Err(ClientError::ManagedIdentity {
                    mtls_pop_unavailable: false,
                    message: format!("scope `{}` names no resource", shorten(one, 80)),
                });
            }
            Ok(r.to_owned())
        }
        _ => Err(ClientError::ManagedIdentity {
            mtls_pop_unavailable: false,
            message: format!(
                "managed-identity tokens are for one resource; got {} scopes (use RESOURCE/.default)",
                scopes.len()
            ),
        }),
    }
}

impl ClientCredential for ManagedIdentityCredential {
    fn describe(&self) -> String {
        let who = match &self.identity {
            ManagedIdentity::SystemAssigned => "system-assigned managed identity".to_string(),
            _ => format!("user-assigned managed identity ({})", self.identity_label()),
        };
        format!(
            "{who}, certificate minted by IMDS v2 at {}",
            self.imds.base_url().as_str().trim_end_matches('/')
        )
    }
    fn provides_certificate(&self) -> bool {
        true
    }
    fn resolve(&self) -> BoxFuture<'_, Result<ResolvedCredential, ClientError>> {
        Box::pin(async move { self.minted().await.map(ResolvedCredential::Minted) })
    }
    fn managed_identity(&self) -> Option<&ManagedIdentityCredential> {
        Some(self)
    }
    fn generation(&self) -> u64 {
        ManagedIdentityCredential::generation(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_from_scopes() {
        assert_eq!(
            resource_of(&["https://management.azure.com/.default"]).unwrap(),
            "https://management.azure.com"
        );
        assert_eq!(resource_of(&["api://x"]).unwrap(), "api://x");
        assert!(resource_of(&["a/.default", "b/.default"]).is_err());
        assert!(resource_of(&["/.default"]).is_err());
        assert!(matches!(
            resource_of(&[" "] as &[&str]),
            Err(ClientError::NoScopes)
        ));
    }

    #[test]
    fn from_env_reads_the_imds_host_and_app_service() {
        let env = |k: &str| match k {
            "AZURE_POD_IDENTITY_AUTHORITY_HOST" => Some("http://127.0.0.1:1".to_string()),
            "IDENTITY_ENDPOINT" => Some("http://127.0.0.1:2/msi/token".to_string()),
            "IDENTITY_HEADER" => Some("not-so-secret-header".to_string()),
            _ => None,
        };
        let c = ManagedIdentityCredential::from_env_with(Some("uami"), env).unwrap();
        assert_eq!(c.imds().base_url().as_str(), "http://127.0.0.1:1/");
        assert_eq!(c.unbound_endpoint(), "http://127.0.0.1:2/msi/token");
        assert_eq!(c.identity(), &ManagedIdentity::ClientId("uami".into()));
        assert!(!format!("{c:?}").contains("not-so-secret-header"));
        assert!(c.describe().contains("user-assigned"));

        let c = ManagedIdentityCredential::from_env_with(None, |_| None).unwrap();
        assert_eq!(c.imds().base_url().as_str(), "http://169.254.169.254/");
        assert_eq!(
            c.unbound_endpoint(),
            "http://169.254.169.254/metadata/identity/oauth2/token"
        );
        assert!(c.describe().starts_with("system-assigned"));

        let bad =
            |k: &str| (k == "AZURE_POD_IDENTITY_AUTHORITY_HOST").then(|| "ftp://nope".to_string());
        let e = ManagedIdentityCredential::from_env_with(None, bad).unwrap_err();
        assert!(
            e.to_string().contains("AZURE_POD_IDENTITY_AUTHORITY_HOST"),
            "{e}"
        );
    }
}
