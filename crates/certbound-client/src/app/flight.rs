//! Single-flight token requests, the throttle table and the fetch itself, for an
//! [`App`](crate::App): one request per cache key at a time, `Retry-After` remembered,
//! the route's endpoint, credential and binding resolved.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use certbound_core::CertifiedKey;
use futures::FutureExt as _;

use super::{App, Route};
use crate::acquire::{KeyBound, TokenRequest, request_token, unshare};
use crate::cache::{BoxFuture, CacheKey, CachedToken};
use crate::credential::ResolvedCredential;
use crate::error::ClientError;
use crate::header::ProtocolScheme;
use crate::managed::{ManagedIdentityCredential, MintedCredential};

impl App {
    pub(crate) async fn single_flight(
        &self,
        key: &CacheKey,
        scopes: &[String],
        scheme: ProtocolScheme,
        route: Route,
        resolved: Option<ResolvedCredential>,
        cert: Option<CertifiedKey>,
    ) -> Result<CachedToken, ClientError> {
        let fut = {
            let mut g = self
                .inner
                .inflight
                .lock()
                .map_err(|_| ClientError::Cache("in-flight table lock poisoned".into()))?;
            match g.get(key) {
                Some(f) => f.clone(),
                None => {
                    let app = self.clone();
                    let (key2, scopes) = (key.clone(), scopes.to_vec());
                    let handle = tokio::spawn(async move {
                        let r = app
                            .fetch(
                                &key2,
                                &scopes,
                                scheme,
                                &route,
                                resolved.as_ref(),
                                cert.as_ref(),
                            )
                            .await;
                        if let Ok(t) = &r
                            && let Err(e) = app.inner.cache.set(&key2, t).await
                        {
                            tracing::warn!(key = %key2, error = %e, "token cache store failed");
                        }
                        if let Err(ClientError::Throttled { retry_after, .. }) = &r
                            && let Ok(mut t) = app.inner.throttled.lock()
                        {
                            if t.len() >= 1024 {
                                let now = certbound_core::now_unix();
                                t.retain(|_, until| *until > now);
                            }
                            t.insert(
                                key2.clone(),
                                certbound_core::now_unix() + retry_after.as_secs() as i64,
                            );
                        }
                        if let Ok(mut g) = app.inner.inflight.lock() {
                            g.remove(&key2);
                        }
                        r.map_err(Arc::new)
                    });
                    let f: BoxFuture<'static, Result<CachedToken, Arc<ClientError>>> =
                        Box::pin(async move {
                            handle
                                .await
                                .unwrap_or_else(|_| Err(Arc::new(ClientError::Cancelled)))
                        });
                    let f = f.shared();
                    g.insert(key.clone(), f.clone());
                    f
                }
            }
        };
        fut.await.map_err(unshare)
    }

    pub(crate) async fn fetch(
        &self,
        key: &CacheKey,
        scopes: &[String],
        scheme: ProtocolScheme,
        route: &Route,
        resolved: Option<&ResolvedCredential>,
        cert: Option<&CertifiedKey>,
    ) -> Result<CachedToken, ClientError> {
        let inner = &self.inner;
        let authority = match route {
            Route::Authority(a) => a,
            Route::ManagedIdentity => return self.fetch_managed_unbound(key, scopes).await,
            Route::Minted(m) => return self.fetch_minted(key, scopes, m, resolved).await,
        };
        let Some(resolved) = resolved else {
            return Err(ClientError::Credential {
                what: inner.credential.describe(),
                message: "yielded no credential for the token request".into(),
            });
        };
        let endpoint = if authority.is_entra() {
            match cert {
                Some(_) => authority.mtls_token_endpoint()?,
                None => authority.entra_token_endpoint().unwrap_or_default(),
            }
        } else {
            let plain = inner.http.client_for(None)?;
            let ep = inner
                .discovery
                .get(authority, &plain, inner.policy.request_timeout)
                .await?;
            match cert {
                Some(_) => ep.for_mtls().to_owned(),
                None => ep.token_endpoint.clone(),
            }
        };
        let client = inner.http.client_for(cert)?;
        let key_bound = match scheme {
            ProtocolScheme::Pop => Some(KeyBound::Pop(&inner.proof_key)),
            ProtocolScheme::DPoP => Some(KeyBound::DPoP(&inner.proof_key, &inner.nonces)),
            _ => None,
        };
        let req = TokenRequest {
            endpoint: &endpoint,
            client_id: &inner.client_id,
            scopes,
            bound: cert,
            bearer_ok_for_bound: !authority.is_entra(),
            credential: resolved,
            send_x5c: inner.send_x5c,
            key_bound,
        };
        tracing::debug!(key = %key, endpoint = %endpoint, scheme = %scheme, bound = cert.is_some(), "requesting a token");
        let counter = &inner.requests;
        let r = request_token(&client, &req, &inner.policy, counter).await;
        match &r {
            Ok(t) => {
                tracing::info!(key = %key, token_type = %t.token_type, expires_on = t.expires_on, bound = t.binding_thumbprint.is_some(), "token acquired")
            }
            Err(e) => tracing::debug!(key = %key, error = %e, "token request failed"),
        }
        r
    }
}

impl App {
    /// Where a route's tokens come from (for errors).
    pub(crate) fn route_url(&self, route: &Route) -> String {
        match route {
            Route::Authority(a) => a.url(),
            Route::Minted(m) => m.token_endpoint(),
            Route::ManagedIdentity => self
                .inner
                .credential
                .managed_identity()
                .map(ManagedIdentityCredential::unbound_endpoint)
                .unwrap_or_default(),
        }
    }

    /// An unbound managed-identity token from IMDS v1 or App Service.
    pub(crate) async fn fetch_managed_unbound(
        &self,
        key: &CacheKey,
        scopes: &[String],
    ) -> Result<CachedToken, ClientError> {
        let credential = &self.inner.credential;
        let mi = credential
            .managed_identity()
            .ok_or_else(|| ClientError::Credential {
                what: credential.describe(),
                message: "is not a managed identity".into(),
            })?;
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(key = %key, endpoint = %mi.unbound_endpoint(), "requesting an unbound managed-identity token");
        let r = mi.unbound_token(scopes).await;
        match &r {
            Ok(t) => {
                tracing::info!(key = %key, expires_on = t.expires_on, "managed-identity token acquired")
            }
            Err(e) => {
                tracing::debug!(key = %key, error = %e, "managed-identity token request failed")
            }
        }
        r
    }

    /// The step 4 of docs/wire-formats.md (IMDS v2) request: the minted credential's token endpoint and client id,
    /// `token_type=mtls_pop`, over mTLS with the minted certificate. A certificate the
    /// endpoint rejects (`invalid_client`) is forgotten, so the next request re-mints.
    pub(crate) async fn fetch_minted(
        &self,
        key: &CacheKey,
        scopes: &[String],
        minted: &MintedCredential,
        resolved: Option<&ResolvedCredential>,
    ) -> Result<CachedToken, ClientError> {
        let inner = &self.inner;
        let fallback;
        let resolved = match resolved {
            Some(r) => r,
            None => {
                fallback = ResolvedCredential::Certificate(minted.certified_key().clone());
                &fallback
            }
        };
        let endpoint = minted.token_endpoint();
        let client = inner.http.client_for(Some(minted.certified_key()))?;
        let req = TokenRequest {
            endpoint: &endpoint,
            client_id: minted.client_id(),
            scopes,
            bound: Some(minted.certified_key()),
            bearer_ok_for_bound: false,
            credential: resolved,
            send_x5c: inner.send_x5c,
            key_bound: None,
        };
        tracing::debug!(key = %key, endpoint = %endpoint, client_id = minted.client_id(), "requesting a token with the managed-identity certificate");
        let r = request_token(&client, &req, &inner.policy, &inner.requests).await;
        match &r {
            Ok(t) => {
                tracing::info!(key = %key, token_type = %t.token_type, expires_on = t.expires_on, bound = true, "token acquired with the managed-identity certificate")
            }
            Err(e) => {
                tracing::debug!(key = %key, error = %e, "token request with the managed-identity certificate failed");
                if e.code() == "invalid_client"
                    && let Some(mi) = inner.credential.managed_identity()
                {
                    tracing::warn!(endpoint = %endpoint, "the token endpoint rejected the managed-identity certificate; the next request mints a new one");
                    mi.invalidate().await;
                }
            }
        }
        r
    }
}
