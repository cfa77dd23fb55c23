//! The client half: talking to IMDS (v2 certificate minting, v1 tokens) and to the App
//! Service identity endpoint.
//!
//! - [`ImdsClient`]: `getplatformmetadata`, `issuecredential`, the full [`ImdsClient::mint`]
//!   flow and IMDS v1 unbound tokens. Every request carries `Metadata: true`, bypasses
//!   proxies, has bounded timeouts and is retried once on 5xx/429/timeout (honouring
//!   `Retry-After` up to a cap).
//! - [`ManagedCertificateSource`]: a minted certificate kept in memory and re-minted shortly
//!   before it expires (single-flight).
//! - [`AppServiceClient`]: unbound tokens through `IDENTITY_ENDPOINT` / `IDENTITY_HEADER`.
//!
//! ```no_run
//! use certbound_imds::{ImdsClient, ManagedCertificateSource, ManagedIdentity};
//! # async fn run() -> Result<(), certbound_imds::ImdsError> {
//! let source = ManagedCertificateSource::new(ImdsClient::from_env()?, ManagedIdentity::SystemAssigned);
//! let minted = source.credential().await?;
//! println!("POST {} as {} with x5t#S256 {}",
//!     minted.token_endpoint(), minted.client_id(), minted.certified_key().thumbprint());
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use certbound_core::{Certificate, CertifiedKey, b64, now_unix};
use serde::Deserialize;
use url::Url;
use zeroize::Zeroizing;

use crate::csr::CertificateRequest;
use crate::error::{ImdsError, Result};

/// The IMDS address on every Azure VM.
pub const DEFAULT_IMDS_BASE: &str = "http://169.254.169.254";
/// The Azure SDKs' override of [`DEFAULT_IMDS_BASE`].
pub const IMDS_HOST_ENV: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
/// App Service: the identity endpoint URL.
pub const IDENTITY_ENDPOINT_ENV: &str = "IDENTITY_ENDPOINT";
/// App Service: the secret header value.
pub const IDENTITY_HEADER_ENV: &str = "IDENTITY_HEADER";
/// `cred-api-version` of the IMDS v2 credential endpoints.
pub(crate) const CRED_API_VERSION: &str = "2.0";
/// `api-version` of the IMDS v1 token endpoint.
pub(crate) const IMDS_V1_API_VERSION: &str = "2018-02-01";
/// `api-version` of the App Service identity endpoint.
pub(crate) const APP_SERVICE_API_VERSION: &str = "2019-08-01";
/// A certificate past its refresh time is still used, when re-minting fails, while it has at
/// least this many seconds left.
const STALE_GRACE_SECS: i64 = 30;
/// A minted certificate valid for less than this is never persisted (kept in memory only).
pub(crate) const PERSIST_MIN_LIFETIME_SECS: i64 = 24 * 3600;
/// The most bytes read from an IMDS or App Service response; a larger body is an error
/// ([`ImdsError::BodyTooLarge`]) and is not read further.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Which managed identity to use.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ManagedIdentity {
    /// The host's system-assigned identity.
    SystemAssigned,
    /// A user-assigned identity by client (application) id.
    ClientId(String),
    /// A user-assigned identity by object (principal) id.
    ObjectId(String),
    /// A user-assigned identity by Azure resource id.
    ResourceId(String),
}

impl ManagedIdentity {
    /// From the `ManagedIdentityClientId` configuration value: absent or empty means
    /// system-assigned, a value starting with `/` is a resource id, anything else a client id.
    pub fn from_config(client_id: Option<&str>) -> Self {
        match client_id.map(str::trim) {
            None | Some("") => Self::SystemAssigned,
            Some(v) if v.starts_with('/') => Self::ResourceId(v.to_string()),
            Some(v) => Self::ClientId(v.to_string()),
        }
    }
    /// Whether this is the system-assigned identity.
    pub fn is_system_assigned(&self) -> bool {
        matches!(self, Self::SystemAssigned)
    }
    /// The query parameter naming a user-assigned identity on IMDS v2 (`mi_res_id` for a
    /// resource id).
    fn imds_v2_param(&self) -> Option<(&'static str, &str)> {
        match self {
            Self::SystemAssigned => None,
            Self::ClientId(v) => Some(("client_id", v)),
            Self::ObjectId(v) => Some(("object_id", v)),
            Self::ResourceId(v) => Some(("mi_res_id", v)),
        }
    }
    /// IMDS v1 names a resource id `msi_res_id`.
    fn imds_v1_param(&self) -> Option<(&'static str, &str)> {
        match self {
            Self::ResourceId(v) => Some(("msi_res_id", v)),
            other => other.imds_v2_param(),
        }
    }
    /// App Service names an object id `principal_id`.
    fn app_service_param(&self) -> Option<(&'static str, &str)> {
        match self {
            Self::ObjectId(v) => Some(("principal_id", v)),
            other => other.imds_v2_param(),
        }
    }
}

/// The `getplatformmetadata` answer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlatformMetadata {
    /// The compute unit id (`{"vmId":…,"vmssId":…}`), echoed into the CSR attribute.
    pub cu_id: serde_json::Value,
    /// The identity's client id (the CSR's CN).
    pub client_id: String,
    /// The tenant id (the CSR's DC).
    pub tenant_id: String,
    /// Where key attestation would be sent (Azure MAA); not used on Linux.
    #[serde(default)]
    pub attestation_endpoint: Option<String>,
}

#[derive(Deserialize)]
struct IssueCredentialResponse {
    client_id: String,
    tenant_id: String,
    certificate: String,
    #[serde(default)]
    identity_type: Option<String>,
    mtls_authentication_endpoint: String,
}

/// A certificate minted by IMDS v2, with its key and where to use it.
#[derive(Clone)]
pub struct MintedCredential {
    certified_key: CertifiedKey,
    client_id: String,
    tenant_id: String,
    identity_type: String,
    mtls_authentication_endpoint: String,
}

impl fmt::Debug for MintedCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedCredential")
            .field("client_id", &self.client_id)
            .field("tenant_id", &self.tenant_id)
            .field("identity_type", &self.identity_type)
            .field(
                "mtls_authentication_endpoint",
                &self.mtls_authentication_endpoint,
            )
            .field("certified_key", &self.certified_key)
            .finish()
    }
}

impl MintedCredential {
    /// The certificate (leaf) and its private key: the mTLS client credential.
    pub fn certified_key(&self) -> &CertifiedKey {
        &self.certified_key
    }
    /// The client id to send to the token endpoint (from `issuecredential`).
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
    /// The tenant id.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }
    /// `SystemAssigned` or `UserAssigned` (as IMDS reported it).
    pub fn identity_type(&self) -> &str {
        &self.identity_type
    }
    /// The mTLS authentication endpoint base (`https://…`).
    pub fn mtls_authentication_endpoint(&self) -> &str {
        &self.mtls_authentication_endpoint
    }
    /// `{mtls_authentication_endpoint}/{tenant_id}/oauth2/v2.0/token`: where to POST the
    /// `client_credentials` request with `token_type=mtls_pop` over mTLS.
    pub fn token_endpoint(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.mtls_authentication_endpoint.trim_end_matches('/'),
            self.tenant_id
        )
    }
    /// The form of the mTLS token request (step 4 of docs/wire-formats.md (IMDS v2)) for `resource` (an App ID URI or
    /// a scope already ending in `/.default`): `client_id`, `grant_type=client_credentials`,
    /// `scope={resource}/.default`, `token_type=mtls_pop`.
    pub fn token_request_form(&self, resource: &str) -> Vec<(&'static str, String)> {
        let scope = if resource.ends_with("/.default") {
            resource.to_string()
        } else {
            format!("{}/.default", resource.trim_end_matches('/'))
        };
        vec![
            ("client_id", self.client_id.clone()),
            ("grant_type", "client_credentials".into()),
            ("scope", scope),
            ("token_type", "mtls_pop".into()),
        ]
    }
    /// The certificate's end of validity (Unix seconds).
    pub fn not_after(&self) -> i64 {
        self.certified_key.leaf().not_after()
    }
    /// The certificate's lifetime in seconds.
    pub fn lifetime_secs(&self) -> i64 {
        let leaf = self.certified_key.leaf();
        leaf.not_after() - leaf.not_before()
    }
    /// When to re-mint: 5 minutes or 10 % of the lifetime (whichever is shorter) before
    /// expiry.
    pub fn refresh_at(&self) -> i64 {
        let margin = (self.lifetime_secs() / 10).clamp(0, 300);
        self.not_after() - margin
    }
    /// Whether it may be persisted across restarts: only certificates valid for 24 h or more.
    pub fn is_persistable(&self) -> bool {
        self.lifetime_secs() >= PERSIST_MIN_LIFETIME_SECS
    }
}

/// An unbound managed-identity access token (IMDS v1 or App Service).
#[derive(Clone)]
pub struct ManagedIdentityToken {
    access_token: Zeroizing<String>,
    /// Expiry, Unix seconds (never later than the token's own JWT `exp`).
    pub expires_on: i64,
    /// When to refresh proactively (from `refresh_in`), Unix seconds, when the endpoint said.
    pub refresh_on: Option<i64>,
    /// Usually `Bearer`.
    pub token_type: String,
    /// The resource the token is for, when the endpoint said.
    pub resource: Option<String>,
}

impl fmt::Debug for ManagedIdentityToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagedIdentityToken")
            .field(
                "access_token",
                &format_args!("<redacted, {} bytes>", self.access_token.len()),
            )
            .field("expires_on", &self.expires_on)
            .field("refresh_on", &self.refresh_on)
            .field("token_type", &self.token_type)
            .field("resource", &self.resource)
            .finish()
    }
}

impl ManagedIdentityToken {
    /// The access token (a secret: do not log it).
    pub fn access_token(&self) -> &str {
        &self.access_token
    }
}

/// Why an endpoint URL with `user:password@` is refused (the value itself is never shown).
const USERINFO_REASON: &str = "carries a user name or password (`user:password@host`); credentials never go in an endpoint URL";

/// Timeouts and retry policy shared by the IMDS and App Service clients.
#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    timeout: Duration,
    retry_delay: Duration,
    max_retry_after: Duration,
    clock: Clock,
}

/// A source of "now" in Unix seconds (replaceable in tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

impl Http {
    fn new() -> Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(2))
            .build()
            .map_err(|e| ImdsError::Unreachable {
                endpoint: "(client setup)".into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            client,
            timeout: Duration::from_secs(10),
            retry_delay: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(10),
            clock: Arc::new(now_unix),
        })
    }

    /// Sends `build()` and retries once on 5xx, 429 or a timeout.
    async fn send(
        &self,
        endpoint: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let last = attempt >= 2;
            match build().timeout(self.timeout).send().await {
                Ok(resp) => {
                    let s = resp.status();
                    let retryable =
                        s.is_server_error() || s == reqwest::StatusCode::TOO_MANY_REQUESTS;
                    if retryable && !last {
                        let wait =
                            retry_wait(retry_after(&resp), self.retry_delay, self.max_retry_after);
                        tracing::debug!(
                            endpoint,
                            status = s.as_u16(),
                            ?wait,
                            "retrying managed-identity request"
                        );
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    return Ok(resp);
                }
                Err(e) if e.is_timeout() => {
                    if !last {
                        tracing::debug!(endpoint, "managed-identity request timed out; retrying");
                        tokio::time::sleep(self.retry_delay).await;
                        continue;
                    }
                    return Err(ImdsError::Timeout {
                        endpoint: endpoint.to_string(),
                        timeout_ms: self.timeout.as_millis(),
                    });
                }
                Err(e) => {
                    return Err(ImdsError::Unreachable {
                        endpoint: endpoint.to_string(),
                        reason: error_chain(&e),
                    });
                }
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// The wait before the retry: the server's `Retry-After` capped at `cap`, else `default`.
fn retry_wait(retry_after: Option<Duration>, default: Duration, cap: Duration) -> Duration {
    retry_after.map_or(default, |d| d.min(cap))
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Reads a body and checks the status; non-2xx becomes [`ImdsError::Status`] with the
/// `error`/`error_description` (never the whole body).
pub(super) async fn read_json(
    endpoint: &str,
    resp: reqwest::Response,
) -> Result<serde_json::Value> {
    let status = resp.status();
    let body = crate::wire::read_body_capped(resp, MAX_RESPONSE_BYTES)
        .await
        .map_err(|e| match e {
            crate::wire::BodyError::TooLarge { limit } => ImdsError::BodyTooLarge {
                endpoint: endpoint.to_string(),
                limit,
            },
            crate::wire::BodyError::Read(e) => ImdsError::Unreachable {
                endpoint: endpoint.to_string(),
                reason: error_chain(&e),
            },
        })?;
    if !status.is_success() {
        return Err(ImdsError::Status {
            endpoint: endpoint.to_string(),
            status: status.as_u16(),
            detail: error_detail(&body),
        });
    }
    serde_json::from_slice(&body).map_err(|e| ImdsError::MalformedResponse {
        endpoint: endpoint.to_string(),
        reason: format!("not JSON ({e})"),
    })
}

fn error_detail(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let pick = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let parts: Vec<String> = ["error", "error_description", "message"]
            .iter()
            .filter_map(|k| pick(k))
            .collect();
        if !parts.is_empty() {
            return parts.join(": ");
        }
    }
    let text: String = String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    if text.is_empty() {
        "(empty body)".into()
    } else {
        text
    }
}

fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// Parses `expires_on` (Unix seconds as a number or a string), else `expires_in`, both
/// saturating, and never later than the token's own JWT `exp`; `refresh_in` likewise. The
/// token must be fit for an `Authorization` header (visible ASCII only).
fn parse_token(endpoint: &str, v: &serde_json::Value, now: i64) -> Result<ManagedIdentityToken> {
    let bad = |reason: &str| ImdsError::MalformedResponse {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    let int = |k: &str| v.get(k).and_then(crate::wire::seconds);
    let token = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no `access_token`"))?;
    if !crate::wire::token_is_header_safe(token) {
        return Err(bad(
            "the `access_token` is too large or holds characters not allowed in an HTTP header (CR, LF, spaces, controls)",
        ));
    }
    let expires_on = int("expires_on")
        .or_else(|| int("expires_in").map(|s| now.saturating_add(s)))
        .ok_or_else(|| bad("no numeric `expires_on` or `expires_in`"))?;
    let expires_on = crate::wire::token_expiry(token, expires_on);
    let refresh_on = int("refresh_in")
        .filter(|r| *r > 0)
        .map(|r| now.saturating_add(r))
        .filter(|r| *r < expires_on);
    Ok(ManagedIdentityToken {
        access_token: Zeroizing::new(token.to_string()),
        expires_on,
        refresh_on,
        token_type: v
            .get("token_type")
            .and_then(|t| t.as_str())
            .unwrap_or("Bearer")
            .to_string(),
        resource: v
            .get("resource")
            .and_then(|t| t.as_str())
            .map(str::to_string),
    })
}

mod app_service;
mod imds;
mod source;

pub use app_service::*;
pub use imds::*;
pub use source::*;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let (d, cap) = (Duration::from_millis(500), Duration::from_secs(10));
        assert_eq!(retry_wait(None, d, cap), d);
        assert_eq!(
            retry_wait(Some(Duration::from_secs(3)), d, cap),
            Duration::from_secs(3)
        );
        assert_eq!(retry_wait(Some(Duration::from_secs(3600)), d, cap), cap);
        assert_eq!(retry_wait(Some(Duration::ZERO), d, cap), Duration::ZERO);
    }

    #[test]
    fn identity_from_config() {
        assert_eq!(
            ManagedIdentity::from_config(None),
            ManagedIdentity::SystemAssigned
        );
        assert_eq!(
            ManagedIdentity::from_config(Some(" ")),
            ManagedIdentity::SystemAssigned
        );
        assert_eq!(
            ManagedIdentity::from_config(Some("abc")),
            ManagedIdentity::ClientId("abc".into())
        );
        assert!(matches!(
            ManagedIdentity::from_config(Some("/subscriptions/x")),
            ManagedIdentity::ResourceId(_)
        ));
    }

    #[test]
    fn token_parsing_and_redaction() {
        let v = serde_json::json!({"access_token": "s3cr3t-token", "expires_on": "1700000000", "token_type": "Bearer"});
        let t = parse_token("e", &v, 0).unwrap();
        assert_eq!(t.expires_on, 1_700_000_000);
        assert_eq!(t.access_token(), "s3cr3t-token");
        assert!(!format!("{t:?}").contains("s3cr3t"));
        let v = serde_json::json!({"access_token": "x", "expires_in": 60});
        assert_eq!(parse_token("e", &v, 100).unwrap().expires_on, 160);
        assert!(parse_token("e", &serde_json::json!({"expires_on": 1}), 0).is_err());
        assert!(parse_token("e", &serde_json::json!({"access_token": "x"}), 0).is_err());
    }

    #[test]
    fn base_address_forms() {
        assert_eq!(
            ImdsClient::new("127.0.0.1:9").unwrap().base_url().as_str(),
            "http://127.0.0.1:9/"
        );
        assert!(ImdsClient::new("ftp://x").is_err());
        let c = AppServiceClient::new("http://127.0.0.1:1/msi/token", "topsecret").unwrap();
        assert!(!format!("{c:?}").contains("topsecret"));
    }

    #[test]
    fn error_detail_never_dumps_long_bodies() {
        let d = error_detail(br#"{"error":"invalid_request","error_description":"bad"}"#);
        assert_eq!(d, "invalid_request: bad");
        assert_eq!(error_detail(&[b'a'; 1000]).len(), 200);
    }
}
