//! The binding certificate of a managed identity, minted once and renewed before it expires.

use super::*;

/// A managed-identity certificate credential: minted through IMDS v2 on first use, kept in
/// memory (never written to disk) and re-minted when [`MintedCredential::refresh_at`] has
/// passed. Concurrent callers share one mint (single-flight). If re-minting fails while the
/// current certificate is still valid (30 s or more left), the current one keeps being used.
pub struct ManagedCertificateSource {
    pub(super) client: ImdsClient,
    pub(super) identity: ManagedIdentity,
    pub(super) current: tokio::sync::Mutex<Option<Arc<MintedCredential>>>,
    pub(super) mints: AtomicU64,
}

impl fmt::Debug for ManagedCertificateSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedCertificateSource")
            .field("imds", &self.client.base.as_str())
            .field("identity", &self.identity)
            .field("mints", &self.mints())
            .finish_non_exhaustive()
    }
}

impl ManagedCertificateSource {
    /// A source for `identity` minting through `client`.
    pub fn new(client: ImdsClient, identity: ManagedIdentity) -> Self {
        Self {
            client,
            identity,
            current: tokio::sync::Mutex::new(None),
            mints: AtomicU64::new(0),
        }
    }

    /// The identity this source mints for.
    pub fn identity(&self) -> &ManagedIdentity {
        &self.identity
    }

    /// The current credential, minting (or re-minting, when near expiry) as needed.
    pub async fn credential(&self) -> Result<Arc<MintedCredential>> {
        let mut slot = self.current.lock().await;
        let now = (self.client.http.clock)();
        if let Some(c) = slot.as_ref()
            && now < c.refresh_at()
        {
            return Ok(c.clone());
        }
        let minted = match self.client.mint(&self.identity).await {
            Ok(m) => Arc::new(m),
            Err(e) => {
                // Past the refresh point but not yet expired: keep using the current
                // certificate (with a little slack for the token request) and retry next time.
                if let Some(c) = slot.as_ref()
                    && now + STALE_GRACE_SECS < c.not_after()
                {
                    tracing::warn!(error = %e, not_after = c.not_after(),
                        "re-minting the managed-identity certificate failed; using the current one until it expires");
                    return Ok(c.clone());
                }
                return Err(e);
            }
        };
        self.mints.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            client_id = minted.client_id(),
            x5t = %minted.certified_key().thumbprint(),
            not_after = minted.not_after(),
            persistable = minted.is_persistable(),
            "minted a managed-identity certificate through IMDS v2"
        );
        *slot = Some(minted.clone());
        Ok(minted)
    }

    /// The current certificate and key.
    pub async fn certified_key(&self) -> Result<CertifiedKey> {
        Ok(self.credential().await?.certified_key().clone())
    }
    /// `{mtls_authentication_endpoint}/{tenant_id}/oauth2/v2.0/token` of the current credential.
    pub async fn token_endpoint(&self) -> Result<String> {
        Ok(self.credential().await?.token_endpoint())
    }
    /// The client id to present at the token endpoint.
    pub async fn client_id(&self) -> Result<String> {
        Ok(self.credential().await?.client_id().to_string())
    }
    /// Forgets the current certificate so the next call re-mints (e.g. after the token
    /// endpoint rejected it).
    pub async fn invalidate(&self) {
        *self.current.lock().await = None;
    }
    /// How many certificates this source has minted.
    pub fn mints(&self) -> u64 {
        self.mints.load(Ordering::Relaxed)
    }
}
