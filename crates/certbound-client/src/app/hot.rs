//! The hot, header-ready cache in front of the token cache, and the cache path of a
//! request (lookup, proactive refresh, remembering a fetched token).

use std::collections::HashMap;
use std::hash::Hasher as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use certbound_core::{CertifiedKey, Thumbprint};

use crate::cache::{CacheKey, CachedToken};
use crate::error::ClientError;
use crate::header::{AuthorizationHeader, HeaderOptions, HeaderParts, ProtocolScheme, TokenSource};

use super::{App, Route, managed_route};

impl App {
    pub(crate) fn hot_entry(
        &self,
        scopes: &[impl AsRef<str>],
        scheme: ProtocolScheme,
        tenant: Option<&str>,
    ) -> Option<Arc<HotEntry>> {
        let fp = fingerprint(scopes, scheme, tenant);
        let e = self.inner.hot.get(fp)?;
        if !e.matches(scopes, scheme, tenant) || e.generation != self.inner.credential.generation()
        {
            return None;
        }
        if scheme.signs_requests()
            && !e
                .token
                .binding_thumbprint
                .as_deref()
                .is_some_and(|t| self.inner.proof_key.has_thumbprint(t))
        {
            return None; // the proof key was rotated
        }
        // The coarse clock (one atomic load): expiry margins are minutes long.
        let now = certbound_core::coarse_now_unix();
        if now >= e.usable_until {
            return None;
        }
        if let Some(r) = e.token.refresh_on
            && now >= r
        {
            self.maybe_refresh(&e, now);
        }
        Some(e)
    }

    /// The hot entry (unless `force_refresh`), else the pluggable cache or the authority.
    /// The hot path takes a shard read lock and one reference count.
    pub(crate) async fn entry(
        &self,
        scopes: &[impl AsRef<str>],
        scheme: ProtocolScheme,
        o: &HeaderOptions,
    ) -> Result<(Arc<HotEntry>, TokenSource), ClientError> {
        if !o.force_refresh
            && let Some(e) = self.hot_entry(scopes, scheme, o.tenant.as_deref())
        {
            return Ok((e, TokenSource::Cache));
        }
        self.token_slow(scopes, scheme, o).await
    }

    /// Starts one background refresh for an entry past its `refresh_on` (at most one every 30 s).
    pub(crate) fn maybe_refresh(&self, e: &Arc<HotEntry>, now: i64) {
        let next = e.next_refresh_try.load(Ordering::Relaxed);
        if now < next
            || e.next_refresh_try
                .compare_exchange(next, now + 30, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let app = self.clone();
        let e = e.clone();
        rt.spawn(async move {
            let opts = HeaderOptions {
                scheme: e.scheme,
                request_app_token: true,
                tenant: e.tenant.as_deref().map(str::to_owned),
                force_refresh: true,
                allow_unbound_fallback: None,
            };
            match app.token_slow(&e.scopes, e.scheme, &opts).await {
                Ok(_) => tracing::debug!(key = %e.key, "proactive refresh done"),
                Err(err) => tracing::warn!(key = %e.key, error = %err, "proactive refresh failed; serving the cached token"),
            }
        });
    }

    pub(crate) async fn token_slow_once(
        &self,
        scopes: &[impl AsRef<str>],
        scheme: ProtocolScheme,
        o: &HeaderOptions,
    ) -> Result<(Arc<HotEntry>, TokenSource), ClientError> {
        let mut sorted: Vec<String> = scopes
            .iter()
            .map(|s| s.as_ref().trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() {
            return Err(ClientError::NoScopes);
        }
        // Read before resolving: an entry made from a certificate that was rotated away
        // meanwhile then carries the old generation and is not served.
        let generation = self.inner.credential.generation();
        let (route, resolved, cert, key) = match self.inner.credential.managed_identity() {
            Some(mi) => managed_route(mi, &sorted, scheme, o).await?,
            None => {
                let authority = match &o.tenant {
                    Some(t) => self.inner.authority.with_tenant(t)?,
                    None => self.inner.authority.clone(),
                };
                let resolved = self.inner.credential.resolve().await?;
                let cert = if scheme.binds_certificate() {
                    Some(resolved.certificate().cloned().ok_or_else(|| {
                        ClientError::SchemeNotSatisfiable(format!(
                            "MTLS_POP needs a certificate; {} yielded none",
                            self.inner.credential.describe()
                        ))
                    })?)
                } else {
                    None
                };
                let key = CacheKey::new(
                    &authority.url(),
                    authority.tenant(),
                    &self.inner.client_id,
                    &sorted,
                    scheme.token_type(),
                    self.binding_for(scheme, cert.as_ref()).as_ref(),
                );
                (Route::Authority(authority), Some(resolved), cert, key)
            }
        };
        let tp = self.binding_for(scheme, cert.as_ref());
        let now = certbound_core::now_unix();
        if !o.force_refresh {
            match self.inner.cache.get(&key).await {
                Ok(Some(t)) if self.usable(&t, tp.as_ref(), now) => {
                    let e = self.remember_at(
                        generation,
                        sorted,
                        scheme,
                        o.tenant.as_deref(),
                        key,
                        t,
                        cert,
                    );
                    if e.token.refresh_on.is_some_and(|r| now >= r) {
                        self.maybe_refresh(&e, now);
                    }
                    return Ok((e, TokenSource::Cache));
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(key = %key, error = %err, "token cache lookup failed; asking the authority")
                }
            }
        }
        if let Some(until) = self
            .inner
            .throttled
            .lock()
            .ok()
            .and_then(|g| g.get(&key).copied())
            && now < until
        {
            return Err(ClientError::Throttled {
                url: self.route_url(&route),
                retry_after: Duration::from_secs((until - now) as u64),
            });
        }
        let token = self
            .single_flight(&key, &sorted, scheme, route, resolved, cert.clone())
            .await?;
        let e = self.remember_at(
            generation,
            sorted,
            scheme,
            o.tenant.as_deref(),
            key,
            token,
            cert,
        );
        Ok((e, TokenSource::IdentityProvider))
    }

    /// What a token for `scheme` is bound to: the certificate's thumbprint (`MTLS_POP`), the
    /// proof key's (`Pop`, `DPoP`: a rotated key never finds the old key's tokens), or nothing.
    pub(crate) fn binding_for(
        &self,
        scheme: ProtocolScheme,
        cert: Option<&CertifiedKey>,
    ) -> Option<Thumbprint> {
        match cert {
            Some(c) => Some(c.thumbprint()),
            None if scheme.signs_requests() => {
                Thumbprint::from_base64url(&self.inner.proof_key.thumbprint())
            }
            None => None,
        }
    }

    pub(crate) fn usable(&self, t: &CachedToken, binding: Option<&Thumbprint>, now: i64) -> bool {
        if now >= t.expires_on - self.inner.margin {
            return false;
        }
        match (binding, &t.binding_thumbprint) {
            (None, None) => true,
            (Some(b), Some(tb)) => Thumbprint::from_base64url(tb).is_some_and(|x| x.ct_eq(b)),
            _ => false,
        }
    }

    #[cfg(test)]
    pub(crate) fn remember(
        &self,
        scopes: Vec<String>,
        scheme: ProtocolScheme,
        tenant: Option<&str>,
        key: CacheKey,
        token: CachedToken,
        cert: Option<CertifiedKey>,
    ) -> Arc<HotEntry> {
        let generation = self.inner.credential.generation();
        self.remember_at(generation, scopes, scheme, tenant, key, token, cert)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn remember_at(
        &self,
        generation: u64,
        scopes: Vec<String>,
        scheme: ProtocolScheme,
        tenant: Option<&str>,
        key: CacheKey,
        token: CachedToken,
        cert: Option<CertifiedKey>,
    ) -> Arc<HotEntry> {
        let value =
            format!("{} {}", token.token_type, token.access_token.expose()).into_boxed_str();
        let header = HeaderParts {
            value,
            dpop: None,
            scheme_len: token.token_type.len(),
            binding_thumbprint: cert.as_ref().map(CertifiedKey::thumbprint),
            binding: cert,
            expires_on: token.expires_on,
        }
        .into_header(TokenSource::Cache);
        // A bound header is only useful while its certificate can still be presented (rotating
        // sources such as managed identity mint a new one before the old expires).
        let minted = self.inner.credential.managed_identity().is_some();
        let cert_until = header.binding().map_or(i64::MAX, |c| {
            let until = c.leaf().not_after() - 60;
            // A minted certificate is re-minted from its refresh point on: stop serving the
            // header then, so the next request picks up the new certificate (and token).
            if minted {
                until.min(crate::managed::refresh_at(c))
            } else {
                until
            }
        });
        let usable_until = (token.expires_on - self.inner.margin).min(cert_until);
        let fp = fingerprint(&scopes, scheme, tenant);
        let e = Arc::new(HotEntry {
            scopes: scopes.into_iter().map(String::into_boxed_str).collect(),
            scheme,
            tenant: tenant.map(Into::into),
            usable_until,
            next_refresh_try: AtomicI64::new(0),
            generation,
            header,
            token,
            key,
        });
        self.inner.hot.insert(fp, e.clone());
        e
    }
}

/// The hot, header-ready cache entry.
pub(crate) struct HotEntry {
    pub(crate) scopes: Box<[Box<str>]>,
    pub(crate) scheme: ProtocolScheme,
    pub(crate) tenant: Option<Box<str>>,
    pub(crate) usable_until: i64,
    pub(crate) next_refresh_try: AtomicI64,
    /// The credential's generation when the entry was made.
    pub(crate) generation: u64,
    pub(crate) header: AuthorizationHeader,
    pub(crate) token: CachedToken,
    pub(crate) key: CacheKey,
}

impl HotEntry {
    pub(crate) fn matches(
        &self,
        scopes: &[impl AsRef<str>],
        scheme: ProtocolScheme,
        tenant: Option<&str>,
    ) -> bool {
        if self.scheme != scheme || self.tenant.as_deref() != tenant {
            return false;
        }
        let mut n = 0;
        for s in scopes {
            let s = s.as_ref().trim();
            if s.is_empty() {
                continue;
            }
            n += 1;
            if self.scopes.binary_search_by(|x| (**x).cmp(s)).is_err() {
                return false;
            }
        }
        // Set equality without allocating: every requested scope is in the (sorted) entry, and
        // every entry scope was requested (a request may repeat or reorder scopes).
        n >= self.scopes.len()
            && self
                .scopes
                .iter()
                .all(|x| scopes.iter().any(|s| s.as_ref().trim() == &**x))
    }
}

/// Order-insensitive fingerprint of the request (scheme, tenant, scopes).
pub(crate) fn fingerprint(
    scopes: &[impl AsRef<str>],
    scheme: ProtocolScheme,
    tenant: Option<&str>,
) -> u64 {
    let mut acc: u64 = match scheme {
        ProtocolScheme::Bearer => 0x9e37_79b9_7f4a_7c15,
        ProtocolScheme::MtlsPop => 0xc2b2_ae3d_27d4_eb4f,
        ProtocolScheme::Pop => 0x1656_67b1_9e37_79f9,
        ProtocolScheme::DPoP => 0x27d4_eb2f_1656_67c5,
        ProtocolScheme::Mtls => 0x85eb_ca77_c2b2_ae63,
        // `ProtocolScheme` is non-exhaustive (certbound-core): any later scheme by its name.
        _ => fx(scheme.as_str().as_bytes()),
    };
    for s in scopes {
        let s = s.as_ref().trim();
        if !s.is_empty() {
            acc = acc.wrapping_add(fx(s.as_bytes()));
        }
    }
    if let Some(t) = tenant {
        acc ^= fx(t.as_bytes()).rotate_left(17);
    }
    acc
}

/// Fx hashing (`rustc-hash`: fast; collisions are checked by `HotEntry::matches`).
pub(crate) fn fx(bytes: &[u8]) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(bytes);
    h.finish()
}

pub(crate) const SHARDS: usize = 16;

pub(crate) type Shard = RwLock<HashMap<u64, Arc<HotEntry>, rustc_hash::FxBuildHasher>>;

/// Sharded map fingerprint → header-ready entry, bounded.
pub(crate) struct HotCache {
    pub(crate) shards: [Shard; SHARDS],
    pub(crate) per_shard: usize,
}

impl HotCache {
    pub(crate) fn new(max_entries: u64) -> Self {
        Self {
            shards: std::array::from_fn(|_| RwLock::default()),
            per_shard: ((max_entries as usize) / SHARDS).max(4),
        }
    }
    pub(crate) fn shard(&self, fp: u64) -> &Shard {
        &self.shards[(fp >> 60) as usize % SHARDS]
    }
    pub(crate) fn get(&self, fp: u64) -> Option<Arc<HotEntry>> {
        self.shard(fp).read().ok()?.get(&fp).cloned()
    }
    pub(crate) fn insert(&self, fp: u64, e: Arc<HotEntry>) {
        let Ok(mut g) = self.shard(fp).write() else {
            return;
        };
        if g.len() >= self.per_shard && !g.contains_key(&fp) {
            let now = certbound_core::now_unix();
            g.retain(|_, v| v.usable_until > now);
            if g.len() >= self.per_shard
                && let Some(victim) = g
                    .iter()
                    .min_by_key(|(_, v)| v.usable_until)
                    .map(|(k, _)| *k)
            {
                g.remove(&victim);
            }
        }
        g.insert(fp, e);
    }
}
