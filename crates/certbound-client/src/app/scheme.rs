//! Scheme policy: which [`ProtocolScheme`] a request is served with.

use std::sync::atomic::Ordering;

use crate::error::ClientError;
use crate::header::{HeaderOptions, ProtocolScheme};

use super::App;

impl App {
    /// Applies the scheme rules: `MTLS_POP` needs an app token and a certificate credential;
    /// `Pop`/`DPoP` an app token from the app's own credential (not a managed identity);
    /// `MTLS` a certificate. A bound scheme that cannot be honoured falls back to Bearer
    /// (with a warning) only when the unbound fallback is allowed.
    pub(crate) fn effective_scheme(
        &self,
        o: &HeaderOptions,
    ) -> Result<ProtocolScheme, ClientError> {
        if o.scheme == ProtocolScheme::Mtls {
            if !self.inner.credential.provides_certificate() {
                return Err(ClientError::SchemeNotSatisfiable(
                    self.certificate_needed("MTLS"),
                ));
            }
            return Ok(o.scheme);
        }
        if !o.scheme.is_bound() {
            return Ok(o.scheme);
        }
        let problem = if !o.request_app_token {
            Some(format!(
                "{} needs RequestAppToken: true (only app tokens can be bound)",
                o.scheme
            ))
        } else if o.scheme.signs_requests() {
            self.inner.credential.managed_identity().map(|_| {
                format!(
                    "{} tokens are bound to the app's proof key, which a managed identity cannot present to its token endpoint; use MTLS_POP (the minted certificate) or Bearer",
                    o.scheme
                )
            })
        } else if !self.inner.credential.provides_certificate() {
            Some(self.certificate_needed("MTLS_POP"))
        } else {
            None
        };
        match problem {
            None => Ok(o.scheme),
            Some(p)
                if o.allow_unbound_fallback
                    .unwrap_or(self.inner.allow_unbound_fallback) =>
            {
                if !self.inner.warned_fallback.swap(true, Ordering::Relaxed) {
                    tracing::warn!(problem = %p, scheme = %o.scheme, "AllowUnboundFallback: using an UNBOUND bearer token instead of the bound scheme");
                }
                Ok(ProtocolScheme::Bearer)
            }
            Some(p) => Err(ClientError::SchemeNotSatisfiable(format!(
                "{p}; or opt in to AllowUnboundFallback to accept an unbound bearer token"
            ))),
        }
    }
}

/// A header for a scheme that signs each request was asked for without the request.
pub(crate) fn signs_every_request(scheme: ProtocolScheme) -> ClientError {
    ClientError::SchemeNotSatisfiable(format!(
        "{scheme} signs every request: use App::authorization_header_for_request(scopes, options, method, url)"
    ))
}
