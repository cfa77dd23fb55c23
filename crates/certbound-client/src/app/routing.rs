//! Routing: whether a token request goes to the configured authority or to a managed
//! identity (IMDS v2 minted certificate, IMDS v1 / App Service).

use std::sync::Arc;

use certbound_core::CertifiedKey;

use crate::authority::Authority;
use crate::cache::CacheKey;
use crate::config::CredentialDescription;
use crate::credential::{ClientCredential, ResolvedCredential};
use crate::error::ClientError;
use crate::header::{HeaderOptions, ProtocolScheme};
use crate::managed::{ManagedIdentityCredential, MintedCredential};

/// Where a token request goes.
#[derive(Clone)]
pub(crate) enum Route {
    /// The configured authority's token endpoint, with the app's client id.
    Authority(Authority),
    /// The token endpoint named by IMDS v2, with the managed identity's client id (bound).
    Minted(Arc<MintedCredential>),
    /// IMDS v1 or App Service (unbound managed-identity token).
    ManagedIdentity,
}

/// The route, credential, binding certificate and cache key of a managed-identity request.
pub(crate) async fn managed_route(
    mi: &ManagedIdentityCredential,
    scopes: &[String],
    scheme: ProtocolScheme,
    o: &HeaderOptions,
) -> Result<
    (
        Route,
        Option<ResolvedCredential>,
        Option<CertifiedKey>,
        CacheKey,
    ),
    ClientError,
> {
    if let Some(t) = &o.tenant {
        return Err(ClientError::SchemeNotSatisfiable(format!(
            "a managed identity gets tokens in its own tenant; the tenant override `{}` does not apply to it",
            crate::error::shorten(t, 80)
        )));
    }
    if scheme.signs_requests() {
        return Err(ClientError::SchemeNotSatisfiable(format!(
            "{scheme} is not available with a managed identity; use MTLS_POP or Bearer"
        )));
    }
    if scheme.binds_certificate() {
        let minted = mi.minted().await?;
        let cert = minted.certified_key().clone();
        let key = CacheKey::new(
            minted.mtls_authentication_endpoint(),
            minted.tenant_id(),
            minted.client_id(),
            scopes,
            scheme.token_type(),
            Some(&cert.thumbprint()),
        );
        Ok((
            Route::Minted(minted.clone()),
            Some(ResolvedCredential::Minted(minted)),
            Some(cert),
            key,
        ))
    } else {
        let key = CacheKey::new(
            &mi.unbound_endpoint(),
            "managed-identity",
            &mi.identity_label(),
            scopes,
            scheme.token_type(),
            None,
        );
        Ok((Route::ManagedIdentity, None, None, key))
    }
}

/// When the credential that will be used is a managed identity, a label for it (the app's
/// client id then comes from IMDS).
pub(crate) fn managed_identity_label(
    credential: Option<&dyn ClientCredential>,
    descriptions: &[CredentialDescription],
) -> Option<String> {
    if let Some(c) = credential {
        return c.managed_identity().map(|m| m.identity_label());
    }
    match &descriptions.iter().find(|d| !d.skip)?.source {
        crate::config::CredentialSourceConfig::ManagedCertificate {
            managed_identity_client_id,
        } => Some(
            managed_identity_client_id
                .clone()
                .filter(|v| !v.trim().is_empty())
                .unwrap_or_else(|| "system-assigned-managed-identity".into()),
        ),
        _ => None,
    }
}
