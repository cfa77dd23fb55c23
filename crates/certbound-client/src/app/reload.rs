//! Reload and retry once when the token endpoint rejects the credential (SPEC §3.6):
//! Entra's `AADSTS700027`, `AADSTS700024`, `AADSTS7000214`, `AADSTS1000502`, or
//! `invalid_client` from another server, for certificate and assertion credentials. Exactly
//! one retry per call, the second failure surfaces; reloads go through the process-wide
//! gate of [`crate::rotation`] (one per credential per 30 s, concurrent callers share it).

use std::sync::Arc;

use super::App;
use super::hot::HotEntry;
use crate::credential::ResolvedCredential;
use crate::error::ClientError;
use crate::header::{HeaderOptions, ProtocolScheme, TokenSource};

/// The Entra error codes that mean "this credential is not (or no longer) accepted".
const ENTRA_REJECTIONS: [&str; 4] = [
    "AADSTS700027",
    "AADSTS700024",
    "AADSTS7000214",
    "AADSTS1000502",
];

/// Whether `e` is a rejection of the client credential that a reload may fix.
pub(crate) fn is_credential_rejection(e: &ClientError, entra: bool) -> bool {
    let ClientError::TokenEndpoint {
        error, description, ..
    } = e
    else {
        return false;
    };
    if description
        .as_deref()
        .is_some_and(|d| ENTRA_REJECTIONS.iter().any(|c| d.contains(c)))
    {
        return true;
    }
    !entra && error.as_deref() == Some("invalid_client")
}

impl App {
    pub(crate) async fn token_slow(
        &self,
        scopes: &[impl AsRef<str>],
        scheme: ProtocolScheme,
        o: &HeaderOptions,
    ) -> Result<(Arc<HotEntry>, TokenSource), ClientError> {
        self.release_retired();
        let e = match self.token_slow_once(scopes, scheme, o).await {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        let credential = &self.inner.credential;
        if credential.managed_identity().is_some()
            || !is_credential_rejection(&e, self.inner.authority.is_entra())
            || !matches!(
                credential.resolve().await,
                Ok(ResolvedCredential::Certificate(_) | ResolvedCredential::Assertion(_))
            )
        {
            return Err(e);
        }
        tracing::warn!(credential = %credential.describe(), error = %e, "the token endpoint rejected the credential; reloading it and retrying once");
        crate::rotation::gated_reload(credential.as_ref()).await;
        self.release_retired();
        self.token_slow_once(scopes, scheme, o).await
    }

    /// Drops the pooled clients of certificates the credential no longer yields.
    fn release_retired(&self) {
        for t in self.inner.credential.take_retired() {
            self.inner.http.release(&t);
        }
    }
}
