//! The shared credential vocabulary — what a credential resolves to
//! ([`ResolvedCredential`]), the [`ClientCredential`] trait and the
//! [`ManagedIdentityCredential`] type — in a leaf module, so `credential` (loading the
//! configured credentials) and `managed` (the managed-identity credential) do not import
//! each other. Re-exported from both; the behaviour of `ManagedIdentityCredential` lives in
//! [`crate::managed`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use certbound_core::CertifiedKey;
use certbound_imds::{
    AppServiceClient, ImdsClient, ManagedCertificateSource, ManagedIdentity, MintedCredential,
};

use crate::cache::BoxFuture;
use crate::error::ClientError;
use crate::secret::Secret;

/// What a credential yields for one token request.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ResolvedCredential {
    /// A certificate with its private key: mTLS client authentication and binding, or a
    /// private-key JWT assertion for unbound requests.
    Certificate(CertifiedKey),
    /// A client secret (`client_secret_post`).
    Secret(Secret),
    /// A ready signed client assertion (`client_assertion`).
    Assertion(Secret),
    /// A certificate minted for a managed identity by IMDS v2, with the identity's client
    /// id and the token endpoint to present it to (docs/wire-formats.md (managed identity)).
    Minted(Arc<MintedCredential>),
}

impl ResolvedCredential {
    /// The certificate, if this is one.
    pub fn certificate(&self) -> Option<&CertifiedKey> {
        match self {
            Self::Certificate(c) => Some(c),
            Self::Minted(m) => Some(m.certified_key()),
            _ => None,
        }
    }
}

/// A source of client credentials. Object-safe; implement it to plug in other sources
/// (a managed identity that mints certificates, a key vault, …).
pub trait ClientCredential: Send + Sync + fmt::Debug {
    /// A short description for logs and errors (never the secret), e.g. `certificate from /etc/app.pem`.
    fn describe(&self) -> String;
    /// Whether [`resolve`](Self::resolve) yields a certificate with its key (needed for `MTLS_POP`).
    fn provides_certificate(&self) -> bool;
    /// The credential to use now.
    fn resolve(&self) -> BoxFuture<'_, Result<ResolvedCredential, ClientError>>;
    /// The managed identity behind this credential, if it is one: its tokens then come from
    /// the identity's own endpoints (the token endpoint IMDS names for bound tokens, IMDS v1
    /// or App Service for unbound ones) with the identity's client id.
    fn managed_identity(&self) -> Option<&ManagedIdentityCredential> {
        None
    }
    /// Changes when the certificate this credential yields may have changed, so cached
    /// bound headers are looked up again (a constant for fixed credentials). Cheap: it is
    /// read on every cache hit.
    fn generation(&self) -> u64 {
        0
    }
    /// Re-reads the credential's source after the token endpoint rejected it; true when
    /// what it yields changed. Called through a process-wide gate (one reload per
    /// credential per 30 s, concurrent callers share it). Fixed credentials: nothing to do.
    fn reload(&self) -> BoxFuture<'_, bool> {
        Box::pin(async { false })
    }
    /// The process-wide identity of the reloadable source (e.g. its path), `None` when the
    /// credential cannot be reloaded.
    fn reload_key(&self) -> Option<String> {
        None
    }
    /// The thumbprints of certificates this credential no longer yields (taken once), so
    /// their pooled clients can be dropped.
    fn take_retired(&self) -> Vec<certbound_core::Thumbprint> {
        Vec::new()
    }
}

/// A managed identity: certificates minted by IMDS v2 for bound tokens, IMDS v1 or App
/// Service tokens for unbound ones. See the [module docs](crate::managed).
pub struct ManagedIdentityCredential {
    pub(crate) identity: ManagedIdentity,
    pub(crate) certificates: ManagedCertificateSource,
    pub(crate) imds: ImdsClient,
    /// The App Service client and its endpoint.
    pub(crate) app_service: Option<(AppServiceClient, String)>,
    pub(crate) invalidations: AtomicU64,
}

impl fmt::Debug for ManagedIdentityCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityCredential")
            .field("identity", &self.identity)
            .field("imds", &self.imds.base_url().as_str())
            .field("app_service", &self.app_service.as_ref().map(|(_, e)| e))
            .field("mints", &self.certificates.mints())
            .finish()
    }
}
