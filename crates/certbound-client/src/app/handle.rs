//! [`HeaderHandle`]: a prepared header source for one set of scopes and options.

use std::fmt;
use std::sync::Arc;

use crate::error::ClientError;
use crate::header::{AuthorizationHeader, HeaderOptions, HeaderParts, TokenSource};

use super::{App, signs_every_request};

/// A prepared header source for one set of scopes and options; see [`App::header_handle`].
#[derive(Clone)]
pub struct HeaderHandle {
    pub(crate) inner: Arc<HandleInner>,
}

pub(crate) struct HandleInner {
    pub(crate) app: App,
    pub(crate) scopes: Box<[String]>,
    pub(crate) options: HeaderOptions,
    pub(crate) slot: arc_swap::ArcSwap<Slot>,
}

/// What a handle remembers: the header and until when it may be served without a lookup.
pub(crate) struct Slot {
    pub(crate) header: AuthorizationHeader,
    /// `min(usable_until, refresh_on)` of the cache entry.
    pub(crate) fresh_until: i64,
    pub(crate) generation: u64,
}

impl Slot {
    pub(crate) fn empty() -> Self {
        Self {
            header: HeaderParts {
                value: Box::from(""),
                dpop: None,
                scheme_len: 0,
                binding: None,
                binding_thumbprint: None,
                expires_on: 0,
            }
            .into_header(TokenSource::Cache),
            fresh_until: i64::MIN,
            generation: 0,
        }
    }
}

/// A borrowed cache-hit header from [`HeaderHandle::cached`]: no reference count is taken.
/// Use it and drop it; do not hold it across an `.await`.
pub struct HeaderRef(arc_swap::Guard<Arc<Slot>>);

impl std::ops::Deref for HeaderRef {
    type Target = AuthorizationHeader;
    fn deref(&self) -> &AuthorizationHeader {
        &self.0.header
    }
}

impl fmt::Debug for HeaderRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Debug for HeaderHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderHandle")
            .field("scopes", &self.inner.scopes)
            .field("scheme", &self.inner.options.scheme)
            .field("tenant", &self.inner.options.tenant)
            .finish_non_exhaustive()
    }
}

impl HeaderHandle {
    /// The header: the remembered entry while it is fresh (not past its refresh point or
    /// expiry margin, same credential generation), else what
    /// [`App::authorization_header_for_app`] gives (cache, then authority).
    pub async fn get(&self) -> Result<AuthorizationHeader, ClientError> {
        if let Some(h) = self.cached() {
            return Ok((*h).clone());
        }
        self.fill(false).await
    }

    /// The remembered header, borrowed, when it is fresh — the cheapest cache hit (one
    /// `ArcSwap` load, no reference count); `None` when [`get`](Self::get) has to look further.
    ///
    /// ```no_run
    /// # async fn run(h: certbound_client::HeaderHandle) -> Result<(), certbound_client::ClientError> {
    /// let value: String = match h.cached() {
    ///     Some(hit) => hit.value().to_owned(),
    ///     None => h.get().await?.value().to_owned(),
    /// };
    /// # Ok(()) }
    /// ```
    pub fn cached(&self) -> Option<HeaderRef> {
        let i = &self.inner;
        let slot = i.slot.load();
        let now = certbound_core::coarse_now_unix();
        (now < slot.fresh_until && slot.generation == i.app.inner.credential.generation())
            .then(|| HeaderRef(slot))
    }

    /// Asks the authority for a new token now (like `force_refresh`) and remembers it.
    pub async fn refresh(&self) -> Result<AuthorizationHeader, ClientError> {
        self.fill(true).await
    }

    /// The scopes (trimmed, sorted, deduplicated).
    pub fn scopes(&self) -> &[String] {
        &self.inner.scopes
    }

    pub(crate) async fn fill(&self, force: bool) -> Result<AuthorizationHeader, ClientError> {
        let i = &self.inner;
        let app = &i.app;
        let scheme = app.effective_scheme(&i.options)?;
        if scheme.signs_requests() {
            return Err(signs_every_request(scheme));
        }
        if !scheme.uses_token() {
            return app.header_for(&i.scopes, scheme, &i.options).await;
        }
        let (entry, source) = if force {
            let o = HeaderOptions {
                force_refresh: true,
                ..i.options.clone()
            };
            app.entry(&i.scopes, scheme, &o).await?
        } else {
            app.entry(&i.scopes, scheme, &i.options).await?
        };
        i.slot.store(Arc::new(Slot {
            header: entry.header.clone(),
            fresh_until: entry
                .usable_until
                .min(entry.token.refresh_on.unwrap_or(i64::MAX)),
            generation: entry.generation,
        }));
        let mut h = entry.header.clone();
        h.source = source;
        Ok(h)
    }
}
