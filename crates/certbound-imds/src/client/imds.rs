//! The IMDS client: managed-identity tokens (v1) and minted binding certificates (v2).

use super::*;

/// A client for the Azure Instance Metadata Service (or the certbound emulator).
#[derive(Clone)]
pub struct ImdsClient {
    pub(super) base: Url,
    pub(super) http: Http,
}

impl fmt::Debug for ImdsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImdsClient")
            .field("base", &self.base.as_str())
            .field("timeout", &self.http.timeout)
            .finish_non_exhaustive()
    }
}

impl ImdsClient {
    /// The IMDS at `AZURE_POD_IDENTITY_AUTHORITY_HOST` when set, else `http://169.254.169.254`.
    pub fn from_env() -> Result<Self> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// [`ImdsClient::from_env`] reading variables through `lookup` (for tests and embedders).
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        match lookup(IMDS_HOST_ENV) {
            Some(v) if !v.trim().is_empty() => Self::parse_base(v.trim(), IMDS_HOST_ENV),
            _ => Self::parse_base(DEFAULT_IMDS_BASE, "the default"),
        }
    }

    /// An IMDS at `base` (`http://host:port`, scheme optional as in the Azure SDKs).
    pub fn new(base: &str) -> Result<Self> {
        Self::parse_base(base, "configuration")
    }

    fn parse_base(value: &str, origin: &'static str) -> Result<Self> {
        let with_scheme = if value.contains("://") {
            value.to_string()
        } else {
            format!("http://{value}")
        };
        let bad = |reason: String| ImdsError::BadEndpoint {
            value: crate::wire::redact_userinfo(value),
            origin,
            reason,
        };
        if crate::wire::text_has_userinfo(&with_scheme) {
            return Err(bad(USERINFO_REASON.into()));
        }
        let base = Url::parse(&with_scheme).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host().is_none() {
            return Err(bad("expected http://host[:port]".into()));
        }
        Ok(Self {
            base,
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
    /// Cap on an honoured `Retry-After` (default 10 s).
    pub fn with_max_retry_after(mut self, cap: Duration) -> Self {
        self.http.max_retry_after = cap;
        self
    }
    /// Replaces the clock (Unix seconds) used for token expiry and certificate refresh.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.http.clock = clock;
        self
    }
    /// The base address in use.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut u = self.base.clone();
        u.set_path(path);
        {
            let mut q = u.query_pairs_mut();
            q.clear();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        u
    }

    /// `GET /metadata/identity/getplatformmetadata?cred-api-version=2.0`.
    ///
    /// Requires a `server` header on the answer; 404 is [`ImdsError::ImdsV1Only`].
    pub async fn platform_metadata(&self, identity: &ManagedIdentity) -> Result<PlatformMetadata> {
        let mut query = vec![("cred-api-version", CRED_API_VERSION)];
        query.extend(identity.imds_v2_param());
        let url = self.url("/metadata/identity/getplatformmetadata", &query);
        let endpoint = without_query(&url);
        let resp = self
            .http
            .send(&endpoint, || {
                self.http.client.get(url.clone()).header("Metadata", "true")
            })
            .await?;
        // MSAL's check: a genuine IMDS names itself in `server` (e.g. `IMDS/150.870.65.1854`).
        match resp.headers().get(reqwest::header::SERVER) {
            None => return Err(ImdsError::MissingServerHeader { endpoint }),
            Some(v) => {
                let server = String::from_utf8_lossy(v.as_bytes()).to_string();
                if !server.to_ascii_uppercase().contains("IMDS") {
                    return Err(ImdsError::NotImds { endpoint, server });
                }
            }
        }
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(ImdsError::ImdsV1Only { endpoint });
        }
        let v = read_json(&endpoint, resp).await?;
        let meta: PlatformMetadata =
            serde_json::from_value(v).map_err(|e| ImdsError::MalformedResponse {
                endpoint: endpoint.clone(),
                reason: format!("not platform metadata ({e})"),
            })?;
        if meta.client_id.is_empty() || meta.tenant_id.is_empty() || !meta.cu_id.is_object() {
            return Err(ImdsError::MalformedResponse {
                endpoint,
                reason: "empty clientId/tenantId or a cuId that is not an object".into(),
            });
        }
        Ok(meta)
    }

    /// `POST /metadata/identity/issuecredential?cred-api-version=2.0` with the CSR; checks that
    /// the returned certificate is for the CSR's key and returns it with that key.
    ///
    /// `identity` adds the same user-assigned selector as `getplatformmetadata` (MSAL does).
    pub async fn issue_credential(
        &self,
        identity: &ManagedIdentity,
        request: CertificateRequest,
        attestation_token: Option<&str>,
    ) -> Result<MintedCredential> {
        let mut query = vec![("cred-api-version", CRED_API_VERSION)];
        query.extend(identity.imds_v2_param());
        let url = self.url("/metadata/identity/issuecredential", &query);
        let endpoint = without_query(&url);
        let mut body = serde_json::json!({ "csr": request.to_base64() });
        if let Some(t) = attestation_token {
            body["attestation_token"] = serde_json::Value::String(t.to_string());
        }
        let resp = self
            .http
            .send(&endpoint, || {
                self.http
                    .client
                    .post(url.clone())
                    .header("Metadata", "true")
                    .json(&body)
            })
            .await?;
        let v = read_json(&endpoint, resp).await?;
        let bad = |reason: String| ImdsError::MalformedResponse {
            endpoint: endpoint.clone(),
            reason,
        };
        let r: IssueCredentialResponse = serde_json::from_value(v)
            .map_err(|e| bad(format!("not an issuecredential answer ({e})")))?;
        let der = b64::decode_std_lenient(&r.certificate)
            .map_err(|e| bad(format!("`certificate` is not base64 ({e})")))?;
        let cert = Certificate::from_der(der, "issuecredential certificate")?;
        let (key, _) = request.into_parts();
        if cert.public_key_bytes() != key.public_key_bytes() {
            return Err(ImdsError::CertificateForAnotherKey {
                subject: cert.subject().to_string(),
                thumbprint: cert.thumbprint().to_base64url(),
            });
        }
        if crate::wire::text_has_userinfo(&r.mtls_authentication_endpoint) {
            return Err(bad(format!(
                "`mtls_authentication_endpoint` {USERINFO_REASON}"
            )));
        }
        let mtls = Url::parse(&r.mtls_authentication_endpoint)
            .map_err(|e| bad(format!("`mtls_authentication_endpoint` is not a URL ({e})")))?;
        if mtls.scheme() != "https" {
            return Err(bad(format!(
                "`mtls_authentication_endpoint` {} is not https",
                r.mtls_authentication_endpoint
            )));
        }
        if r.client_id.is_empty() || r.tenant_id.is_empty() {
            return Err(bad("empty `client_id` or `tenant_id`".into()));
        }
        let certified_key = CertifiedKey::new(vec![cert], key, "issuecredential certificate")?;
        Ok(MintedCredential {
            certified_key,
            client_id: r.client_id,
            tenant_id: r.tenant_id,
            identity_type: r.identity_type.unwrap_or_default(),
            mtls_authentication_endpoint: r.mtls_authentication_endpoint,
        })
    }

    /// The whole IMDS v2 flow: platform metadata, an RSA-2048 key and PSS-signed CSR,
    /// `issuecredential`. (No key attestation: there is no KeyGuard on Linux, and IMDS accepts
    /// unattested CSRs.)
    pub async fn mint(&self, identity: &ManagedIdentity) -> Result<MintedCredential> {
        let meta = self.platform_metadata(identity).await?;
        let request = tokio::task::spawn_blocking(move || {
            CertificateRequest::generate(&meta.client_id, &meta.tenant_id, &meta.cu_id)
        })
        .await
        .map_err(|e| {
            ImdsError::Csr(
                format!("key generation task failed: {e}"),
                Some(Box::new(e)),
            )
        })??;
        self.issue_credential(identity, request, None).await
    }

    /// An unbound token from IMDS v1:
    /// `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=…`.
    pub async fn imds_v1_token(
        &self,
        identity: &ManagedIdentity,
        resource: &str,
    ) -> Result<ManagedIdentityToken> {
        let mut query = vec![("api-version", IMDS_V1_API_VERSION), ("resource", resource)];
        query.extend(identity.imds_v1_param());
        let url = self.url("/metadata/identity/oauth2/token", &query);
        let endpoint = without_query(&url);
        let resp = self
            .http
            .send(&endpoint, || {
                self.http.client.get(url.clone()).header("Metadata", "true")
            })
            .await?;
        let v = read_json(&endpoint, resp).await?;
        parse_token(&endpoint, &v, (self.http.clock)())
    }
}
