//! Authorities: where tokens come from.
//!
//! - **Entra ID** hosts (`login.microsoftonline.com`, `.us`, `login.usgovcloudapi.net`,
//!   `login.chinacloudapi.cn`, `login.partner.microsoftonline.cn`, any other `login.X`):
//!   endpoints are computed, with the mTLS host mapping, optional region and the tenant rule
//!   of docs/wire-formats.md (Entra ID) (`common`/`organizations`/`consumers` cannot do mTLS PoP).
//! - **Any other host**: endpoints come from discovery (`{authority}/.well-known/openid-configuration`,
//!   else `/.well-known/oauth-authorization-server`), using `mtls_endpoint_aliases.token_endpoint`
//!   for mTLS (docs/wire-formats.md (RFC 8705 servers)). Discovery is fetched once per authority and cached (single-flight).
//!
//! ```
//! use certbound_client::Authority;
//! let a = Authority::parse("https://login.microsoftonline.com/contoso.onmicrosoft.com", Some("westus2")).unwrap();
//! assert_eq!(a.mtls_token_endpoint().unwrap(),
//!            "https://westus2.mtlsauth.microsoft.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
//! assert!(Authority::parse("https://login.microsoftonline.com/common", None).unwrap().mtls_token_endpoint().is_err());
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::config::AzureAdConfig;
use crate::error::{ClientError, shorten};

/// Known Entra login hosts and their mTLS hosts (docs/wire-formats.md (Entra ID)).
const ENTRA_HOSTS: [(&str, &str); 5] = [
    ("login.microsoftonline.com", "mtlsauth.microsoft.com"),
    ("login.microsoftonline.us", "mtlsauth.microsoftonline.us"),
    ("login.usgovcloudapi.net", "mtlsauth.microsoftonline.us"),
    (
        "login.partner.microsoftonline.cn",
        "mtlsauth.partner.microsoftonline.cn",
    ),
    (
        "login.chinacloudapi.cn",
        "mtlsauth.partner.microsoftonline.cn",
    ),
];

/// Tenants that name no single tenant.
const MULTI_TENANT: [&str; 3] = ["common", "organizations", "consumers"];

/// The mTLS host for an Entra login host, with an optional region prefix; `None` when the
/// host is not an Entra login host.
pub(crate) fn mtls_host_for(login_host: &str, region: Option<&str>) -> Option<String> {
    let host = login_host.trim_end_matches('.').to_ascii_lowercase();
    let base = ENTRA_HOSTS
        .iter()
        .find(|(h, _)| *h == host)
        .map(|(_, m)| (*m).to_string())
        .or_else(|| {
            host.strip_prefix("login.")
                .filter(|rest| rest.contains('.'))
                .map(|rest| format!("mtlsauth.{rest}"))
        })?;
    Some(match region.map(str::trim).filter(|r| !r.is_empty()) {
        Some(r) => format!("{}.{base}", r.to_ascii_lowercase()),
        None => base,
    })
}

/// Whether a host is an Entra login host (known, or `login.X`).
pub(crate) fn is_entra_host(host: &str) -> bool {
    mtls_host_for(host, None).is_some()
}

/// An authority: an Entra tenant or a generic OAuth/OIDC issuer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority {
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    Entra {
        host: String,
        tenant: String,
        region: Option<String>,
    },
    Generic {
        url: String,
        tenant: String,
        tenant_template: Option<(String, String)>,
    },
}

impl Authority {
    /// From `AzureAd`: `Authority`, else `Instance` + `TenantId` (+ `/v2.0` for non-Entra hosts).
    pub fn from_config(
        ad: &AzureAdConfig,
        file: Option<&std::path::Path>,
    ) -> Result<Self, ClientError> {
        let region = ad.azure_region.as_deref();
        if let Some(a) = &ad.authority {
            if certbound_imds::wire::text_has_userinfo(a) {
                return Err(crate::error::ConfigError::new(
                    file,
                    "AzureAd.Authority",
                    USERINFO_REASON,
                )
                .into());
            }
            return Self::parse(a, region);
        }
        let instance = ad.instance.as_deref().ok_or_else(|| {
            crate::error::ConfigError::new(
                file,
                "AzureAd.Instance",
                "missing: set Instance and TenantId, or Authority",
            )
        })?;
        let tenant = ad.tenant_id.as_deref().ok_or_else(|| {
            crate::error::ConfigError::new(
                file,
                "AzureAd.TenantId",
                "missing: set Instance and TenantId, or Authority",
            )
        })?;
        if certbound_imds::wire::text_has_userinfo(instance) {
            return Err(
                crate::error::ConfigError::new(file, "AzureAd.Instance", USERINFO_REASON).into(),
            );
        }
        let inst = Url::parse(instance).map_err(|e| {
            crate::error::ConfigError::new(
                file,
                "AzureAd.Instance",
                format!("not a valid URL: {e}"),
            )
        })?;
        let host = inst.host_str().unwrap_or_default().to_string();
        if is_entra_host(&host) {
            return Self::parse(
                &format!("{}/{tenant}", instance.trim_end_matches('/')),
                region,
            );
        }
        let url = format!("{}/{tenant}/v2.0", instance.trim_end_matches('/'));
        let mut a = Self::parse(&url, region)?;
        if let Kind::Generic {
            tenant_template, ..
        } = &mut a.kind
        {
            *tenant_template = Some((instance.trim_end_matches('/').to_string(), "/v2.0".into()));
        }
        Ok(a)
    }

    /// Parses an authority URL. Entra hosts take the first path segment as the tenant.
    pub fn parse(url: &str, region: Option<&str>) -> Result<Self, ClientError> {
        let bad = |m: &str| ClientError::Authority {
            authority: shorten(&certbound_imds::wire::redact_userinfo(url), 200),
            message: m.into(),
        };
        if certbound_imds::wire::text_has_userinfo(url) {
            return Err(bad(USERINFO_REASON));
        }
        let u = Url::parse(url.trim()).map_err(|e| bad(&format!("not a valid URL: {e}")))?;
        if u.scheme() != "https" {
            return Err(bad("must use https"));
        }
        let host = u
            .host_str()
            .ok_or_else(|| bad("has no host"))?
            .to_ascii_lowercase();
        if is_entra_host(&host) {
            let tenant = u
                .path_segments()
                .and_then(|mut s| s.next())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    bad("names no tenant: use https://login.microsoftonline.com/<tenant>")
                })?
                .to_string();
            let host = match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            };
            return Ok(Self {
                kind: Kind::Entra {
                    host,
                    tenant,
                    region: region.map(str::to_string).filter(|r| !r.trim().is_empty()),
                },
            });
        }
        let text = u.as_str().trim_end_matches('/').to_string();
        // The tenant of a generic authority: the first path segment, when there is one.
        let tenant = u
            .path_segments()
            .and_then(|mut s| s.next())
            .unwrap_or_default()
            .to_string();
        Ok(Self {
            kind: Kind::Generic {
                url: text,
                tenant,
                tenant_template: None,
            },
        })
    }

    /// Whether this is an Entra ID authority.
    pub fn is_entra(&self) -> bool {
        matches!(self.kind, Kind::Entra { .. })
    }

    /// The tenant (Entra), or the first path segment of a generic authority.
    pub fn tenant(&self) -> &str {
        match &self.kind {
            Kind::Entra { tenant, .. } | Kind::Generic { tenant, .. } => tenant,
        }
    }

    /// The authority URL (`https://login.microsoftonline.com/<tenant>` or the issuer URL).
    pub fn url(&self) -> String {
        match &self.kind {
            Kind::Entra { host, tenant, .. } => format!("https://{host}/{tenant}"),
            Kind::Generic { url, .. } => url.clone(),
        }
    }

    /// The same authority for another tenant.
    pub fn with_tenant(&self, tenant: &str) -> Result<Self, ClientError> {
        let tenant = tenant.trim();
        if tenant.is_empty() || tenant.contains(['/', '?', '#']) {
            return Err(ClientError::Authority {
                authority: self.url(),
                message: format!("invalid tenant `{}`", shorten(tenant, 60)),
            });
        }
        match &self.kind {
            Kind::Entra { host, region, .. } => {
                Ok(Self { kind: Kind::Entra { host: host.clone(), tenant: tenant.into(), region: region.clone() } })
            }
            Kind::Generic { tenant_template: Some((prefix, suffix)), .. } => {
                let mut a = Self::parse(&format!("{prefix}/{tenant}{suffix}"), None)?;
                if let Kind::Generic { tenant_template, .. } = &mut a.kind {
                    *tenant_template = Some((prefix.clone(), suffix.clone()));
                }
                Ok(a)
            }
            Kind::Generic { url, tenant: t, .. } if t == tenant => Ok(Self::parse(url, None)?),
            Kind::Generic { url, .. } => Err(ClientError::Authority {
                authority: url.clone(),
                message: "a tenant override needs AzureAd.Instance + AzureAd.TenantId (not a fixed Authority URL)".into(),
            }),
        }
    }

    /// Entra only: the token endpoint for unbound requests (regional when a region is set).
    pub fn entra_token_endpoint(&self) -> Option<String> {
        match &self.kind {
            Kind::Entra {
                host,
                tenant,
                region,
            } => {
                let h = match region {
                    Some(r) if host == "login.microsoftonline.com" => {
                        format!("{r}.login.microsoft.com")
                    }
                    Some(r) => format!("{r}.{host}"),
                    None => host.clone(),
                };
                Some(format!("https://{h}/{tenant}/oauth2/v2.0/token"))
            }
            Kind::Generic { .. } => None,
        }
    }

    /// Entra only: the mTLS PoP token endpoint (errors for multi-tenant authorities or generic hosts).
    pub fn mtls_token_endpoint(&self) -> Result<String, ClientError> {
        match &self.kind {
            Kind::Entra {
                host,
                tenant,
                region,
            } => {
                if MULTI_TENANT.iter().any(|m| m.eq_ignore_ascii_case(tenant)) {
                    return Err(ClientError::Authority {
                        authority: self.url(),
                        message: format!(
                            "mTLS PoP needs a specific tenant; `{tenant}` is not one (set AzureAd.TenantId to the tenant id or domain)"
                        ),
                    });
                }
                let (h, port) = match host.split_once(':') {
                    Some((h, p)) => (h, format!(":{p}")),
                    None => (host.as_str(), String::new()),
                };
                let m =
                    mtls_host_for(h, region.as_deref()).ok_or_else(|| ClientError::Authority {
                        authority: self.url(),
                        message: "no mTLS host for this login host".into(),
                    })?;
                Ok(format!("https://{m}{port}/{tenant}/oauth2/v2.0/token"))
            }
            Kind::Generic { url, .. } => Err(ClientError::Authority {
                authority: url.clone(),
                message: "not an Entra authority: its mTLS endpoint comes from discovery".into(),
            }),
        }
    }

    /// The discovery URLs to try, in order.
    pub fn discovery_urls(&self) -> Vec<String> {
        let base = self.url();
        let mut v = vec![
            format!("{base}/.well-known/openid-configuration"),
            format!("{base}/.well-known/oauth-authorization-server"),
        ];
        if let Ok(u) = Url::parse(&base) {
            let path = u.path().trim_end_matches('/');
            if !path.is_empty() {
                let origin = u.origin().ascii_serialization();
                v.push(format!(
                    "{origin}/.well-known/oauth-authorization-server{path}"
                ));
            }
        }
        v
    }
}

/// Endpoints learnt from discovery (the authority metadata's `issuer`, `token_endpoint` and mTLS alias).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredEndpoints {
    /// `issuer`.
    pub issuer: String,
    /// `token_endpoint`.
    pub token_endpoint: String,
    /// `mtls_endpoint_aliases.token_endpoint`, when advertised.
    pub mtls_token_endpoint: Option<String>,
}

impl DiscoveredEndpoints {
    /// The endpoint to use for mTLS requests (RFC 8705 §5: the alias when present).
    pub fn for_mtls(&self) -> &str {
        self.mtls_token_endpoint
            .as_deref()
            .unwrap_or(&self.token_endpoint)
    }
}

#[derive(Deserialize)]
struct Metadata {
    issuer: Option<String>,
    token_endpoint: Option<String>,
    #[serde(default)]
    mtls_endpoint_aliases: Option<Aliases>,
}
#[derive(Deserialize)]
struct Aliases {
    token_endpoint: Option<String>,
}

/// Discovery results per authority URL, fetched once (single-flight) and kept.
#[derive(Default, Debug)]
pub(crate) struct DiscoveryCache {
    cells: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<DiscoveredEndpoints>>>>,
}

impl DiscoveryCache {
    pub(crate) async fn get(
        &self,
        authority: &Authority,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<DiscoveredEndpoints, ClientError> {
        let url = authority.url();
        let cell = {
            let mut g = self
                .cells
                .lock()
                .map_err(|_| ClientError::Cache("discovery cache lock poisoned".into()))?;
            if g.len() > 256 {
                g.retain(|_, c| c.initialized());
            }
            g.entry(url.clone()).or_default().clone()
        };
        cell.get_or_try_init(|| discover(authority, client, timeout))
            .await
            .cloned()
    }
}

async fn discover(
    authority: &Authority,
    client: &reqwest::Client,
    timeout: Duration,
) -> Result<DiscoveredEndpoints, ClientError> {
    let urls = authority.discovery_urls();
    let mut problems = Vec::new();
    for u in &urls {
        match fetch_metadata(client, u, timeout).await {
            Ok(m) => {
                let fail = |msg: String| ClientError::Discovery {
                    url: u.clone(),
                    message: msg,
                };
                let issuer = m
                    .issuer
                    .ok_or_else(|| fail("the metadata has no `issuer`".into()))?;
                if certbound_imds::wire::text_has_userinfo(&issuer) {
                    return Err(fail(format!("the metadata's `issuer` {USERINFO_REASON}")));
                }
                if issuer.trim_end_matches('/') != authority.url().trim_end_matches('/') {
                    return Err(fail(format!(
                        "the metadata's issuer `{}` is not the configured authority `{}` (set AzureAd.Authority to the issuer)",
                        shorten(&issuer, 200),
                        authority.url()
                    )));
                }
                let token_endpoint = m
                    .token_endpoint
                    .ok_or_else(|| fail("the metadata has no `token_endpoint`".into()))?;
                check_https(&token_endpoint).map_err(|e| fail(format!("token_endpoint {e}")))?;
                let mtls = m.mtls_endpoint_aliases.and_then(|a| a.token_endpoint);
                if let Some(t) = &mtls {
                    check_https(t)
                        .map_err(|e| fail(format!("mtls_endpoint_aliases.token_endpoint {e}")))?;
                }
                tracing::debug!(authority = %authority.url(), metadata = %u, token_endpoint = %token_endpoint, mtls_token_endpoint = ?mtls, "discovered endpoints");
                return Ok(DiscoveredEndpoints {
                    issuer,
                    token_endpoint,
                    mtls_token_endpoint: mtls,
                });
            }
            Err((e, fatal)) => {
                problems.push(format!("{u}: {e}"));
                if fatal {
                    // A transport failure (TLS trust, connection refused) is the same for every
                    // metadata URL on this host: report it once.
                    break;
                }
            }
        }
    }
    Err(ClientError::Discovery {
        url: authority.url(),
        message: problems.join("; "),
    })
}

/// Why an endpoint URL with `user:password@` is refused (the URL itself is never shown).
pub(crate) const USERINFO_REASON: &str = "carries a user name or password (`user:password@host`); credentials never go in an endpoint URL";

fn check_https(u: &str) -> Result<(), String> {
    if certbound_imds::wire::text_has_userinfo(u) {
        return Err(USERINFO_REASON.into());
    }
    match Url::parse(u) {
        Ok(p) if p.scheme() == "https" => Ok(()),
        Ok(_) => Err(format!("`{}` is not https", shorten(u, 200))),
        Err(e) => Err(format!("`{}` is not a URL: {e}", shorten(u, 200))),
    }
}

/// Fetches one metadata document (one retry on 5xx/timeout). The error's flag says whether
/// the failure is about the host (transport, TLS) rather than this URL.
async fn fetch_metadata(
    client: &reqwest::Client,
    url: &str,
    timeout: Duration,
) -> Result<Metadata, (String, bool)> {
    let mut last = (String::new(), false);
    for attempt in 0..2 {
        let r = tokio::time::timeout(timeout, async {
            let resp = client
                .get(url)
                .header(http::header::USER_AGENT, crate::transport::USER_AGENT)
                .header("accept", "application/json")
                .send()
                .await?;
            let status = resp.status();
            let body =
                crate::acquire::read_capped(resp, crate::acquire::MAX_RESPONSE_BYTES).await?;
            Ok::<_, reqwest::Error>((status, body))
        })
        .await;
        match r {
            Err(_) => last = (format!("timed out after {timeout:?}"), true),
            Ok(Err(e)) => {
                let fatal = e.is_connect() || e.is_timeout();
                last = (crate::acquire::describe_reqwest(&e), fatal);
                if !fatal {
                    return Err(last);
                }
            }
            Ok(Ok((s, Err(limit)))) => {
                return Err((
                    format!("HTTP {s} with a body larger than {limit} bytes; stopped reading it"),
                    false,
                ));
            }
            Ok(Ok((s, Ok(body)))) if s.is_success() => {
                return serde_json::from_slice(&body)
                    .map_err(|e| (format!("not valid metadata JSON: {e}"), false));
            }
            Ok(Ok((s, _))) if s.is_server_error() => last = (format!("HTTP {s}"), false),
            Ok(Ok((s, Ok(body)))) => {
                // A certbound development authority says which tenant it serves: the same
                // answer for every metadata URL on this host, so reported once.
                let said: Option<String> = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .filter(|v| v["tenant"].is_string())
                    .and_then(|v| v["error_description"].as_str().map(|d| shorten(d, 400)));
                return Err(match said {
                    Some(d) => (format!("HTTP {s}: {d}"), true),
                    None => (format!("HTTP {s}"), false),
                });
            }
        }
        if attempt == 0 {
            tracing::debug!(url, problem = %last.0, "discovery failed; retrying once");
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    #[test]
    fn mtls_host_of_a_national_cloud() {
        assert_eq!(
            super::mtls_host_for("login.microsoftonline.us", None).as_deref(),
            Some("mtlsauth.microsoftonline.us")
        );
    }

    use super::*;

    #[test]
    fn mtls_host_mapping_table() {
        let cases = [
            ("login.microsoftonline.com", None, "mtlsauth.microsoft.com"),
            (
                "login.microsoftonline.com",
                Some("westus2"),
                "westus2.mtlsauth.microsoft.com",
            ),
            (
                "LOGIN.MICROSOFTONLINE.COM",
                Some("EastUS"),
                "eastus.mtlsauth.microsoft.com",
            ),
            (
                "login.microsoftonline.us",
                None,
                "mtlsauth.microsoftonline.us",
            ),
            (
                "login.usgovcloudapi.net",
                None,
                "mtlsauth.microsoftonline.us",
            ),
            (
                "login.usgovcloudapi.net",
                Some("usgovvirginia"),
                "usgovvirginia.mtlsauth.microsoftonline.us",
            ),
            (
                "login.partner.microsoftonline.cn",
                None,
                "mtlsauth.partner.microsoftonline.cn",
            ),
            (
                "login.chinacloudapi.cn",
                None,
                "mtlsauth.partner.microsoftonline.cn",
            ),
            (
                "login.sovcloud-identity.fr",
                None,
                "mtlsauth.sovcloud-identity.fr",
            ),
            (
                "login.microsoftonline.com",
                Some(""),
                "mtlsauth.microsoft.com",
            ),
        ];
        for (host, region, want) in cases {
            assert_eq!(
                mtls_host_for(host, region).as_deref(),
                Some(want),
                "{host} {region:?}"
            );
        }
        assert_eq!(mtls_host_for("idp.example.com", None), None);
        assert_eq!(mtls_host_for("login.localhost", None), None);
        assert_eq!(mtls_host_for("127.0.0.1", None), None);
    }

    #[test]
    fn tenant_rule_and_endpoints() {
        for t in ["common", "organizations", "Consumers"] {
            let a =
                Authority::parse(&format!("https://login.microsoftonline.com/{t}"), None).unwrap();
            let e = a.mtls_token_endpoint().unwrap_err();
            assert!(e.to_string().contains("specific tenant"), "{e}");
            assert!(
                a.entra_token_endpoint().is_some(),
                "bearer still works for {t}"
            );
        }
        let a = Authority::parse("https://login.microsoftonline.us/t1/", None).unwrap();
        assert_eq!(
            a.mtls_token_endpoint().unwrap(),
            "https://mtlsauth.microsoftonline.us/t1/oauth2/v2.0/token"
        );
        assert_eq!(
            a.entra_token_endpoint().unwrap(),
            "https://login.microsoftonline.us/t1/oauth2/v2.0/token"
        );
        let r =
            Authority::parse("https://login.microsoftonline.com/t1", Some("westeurope")).unwrap();
        assert_eq!(
            r.entra_token_endpoint().unwrap(),
            "https://westeurope.login.microsoft.com/t1/oauth2/v2.0/token"
        );
        assert_eq!(a.with_tenant("t2").unwrap().tenant(), "t2");
        assert!(Authority::parse("https://login.microsoftonline.com/", None).is_err());
        assert!(Authority::parse("http://idp.example/", None).is_err());
    }

    #[test]
    fn generic_authority_discovery_urls_and_tenant_override() {
        let ad = AzureAdConfig {
            instance: Some("https://127.0.0.1:8443/".into()),
            tenant_id: Some("t1".into()),
            ..Default::default()
        };
        let a = Authority::from_config(&ad, None).unwrap();
        assert!(!a.is_entra());
        assert_eq!(a.url(), "https://127.0.0.1:8443/t1/v2.0");
        assert_eq!(
            a.discovery_urls(),
            vec![
                "https://127.0.0.1:8443/t1/v2.0/.well-known/openid-configuration".to_string(),
                "https://127.0.0.1:8443/t1/v2.0/.well-known/oauth-authorization-server".to_string(),
                "https://127.0.0.1:8443/.well-known/oauth-authorization-server/t1/v2.0".to_string(),
            ]
        );
        assert_eq!(
            a.with_tenant("t2").unwrap().url(),
            "https://127.0.0.1:8443/t2/v2.0"
        );
        let fixed = Authority::parse("https://idp.example/oidc", None).unwrap();
        assert!(fixed.with_tenant("other").is_err());
        assert!(fixed.mtls_token_endpoint().is_err());
    }
}
