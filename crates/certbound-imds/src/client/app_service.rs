//! The App Service / Functions managed-identity endpoint (`IDENTITY_ENDPOINT`).

use super::*;

/// Unbound tokens from the App Service identity endpoint (`IDENTITY_ENDPOINT` with the
/// `X-IDENTITY-HEADER` secret, `api-version=2019-08-01`).
#[derive(Clone)]
pub struct AppServiceClient {
    pub(super) endpoint: Url,
    pub(super) header: Zeroizing<String>,
    pub(super) http: Http,
}

impl fmt::Debug for AppServiceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppServiceClient")
            .field("endpoint", &self.endpoint.as_str())
            .field("identity_header", &"<redacted>")
            .finish()
    }
}

impl AppServiceClient {
    /// From `IDENTITY_ENDPOINT` and `IDENTITY_HEADER`.
    pub fn from_env() -> Result<Self> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// [`AppServiceClient::from_env`] reading variables through `lookup`.
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let ep = lookup(IDENTITY_ENDPOINT_ENV).filter(|v| !v.is_empty());
        let hd = lookup(IDENTITY_HEADER_ENV).filter(|v| !v.is_empty());
        match (ep, hd) {
            (Some(e), Some(h)) => Self::new(&e, &h),
            (e, h) => Err(ImdsError::AppServiceNotConfigured {
                missing: [
                    (e.is_none(), IDENTITY_ENDPOINT_ENV),
                    (h.is_none(), IDENTITY_HEADER_ENV),
                ]
                .iter()
                .filter(|(m, _)| *m)
                .map(|(_, n)| *n)
                .collect::<Vec<_>>()
                .join(", "),
            }),
        }
    }

    /// An App Service identity endpoint and its secret header value.
    pub fn new(endpoint: &str, identity_header: &str) -> Result<Self> {
        let bad = |reason: String| ImdsError::BadEndpoint {
            value: crate::wire::redact_userinfo(endpoint),
            origin: IDENTITY_ENDPOINT_ENV,
            reason,
        };
        if crate::wire::text_has_userinfo(endpoint) {
            return Err(bad(USERINFO_REASON.into()));
        }
        let url = Url::parse(endpoint).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(bad("expected http(s)://host[:port]/path".into()));
        }
        Ok(Self {
            endpoint: url,
            header: Zeroizing::new(identity_header.to_string()),
            http: Http::new()?,
        })
    }

    /// Per-attempt request timeout (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.http.timeout = timeout;
        self
    }
    /// Delay before the single retry when the server gives no `Retry-After` (default 500 ms).
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.http.retry_delay = delay;
        self
    }

    /// `GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=…` with `X-IDENTITY-HEADER`.
    pub async fn token(
        &self,
        identity: &ManagedIdentity,
        resource: &str,
    ) -> Result<ManagedIdentityToken> {
        let mut url = self.endpoint.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("api-version", APP_SERVICE_API_VERSION);
            q.append_pair("resource", resource);
            if let Some((k, v)) = identity.app_service_param() {
                q.append_pair(k, v);
            }
        }
        let endpoint = without_query(&url);
        let resp = self
            .http
            .send(&endpoint, || {
                self.http
                    .client
                    .get(url.clone())
                    .header("X-IDENTITY-HEADER", self.header.as_str())
            })
            .await?;
        let v = read_json(&endpoint, resp).await?;
        parse_token(&endpoint, &v, (self.http.clock)())
    }
}
