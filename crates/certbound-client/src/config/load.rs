//! Loading: reading the file, applying environment overrides (`AzureAd__ClientId` …),
//! resolving relative paths and validating every section.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::AppConfig;
use crate::error::ConfigError;
use crate::scheme::ProtocolScheme;

use super::{
    AcquireTokenOptionsConfig, ConfigWarning, CredentialDescription, CredentialSourceConfig,
    DownstreamApiConfig, Node, Reader, SECTIONS, unknown_keys_note, warnings_for,
};

impl AppConfig {
    /// Reads a file and applies environment overrides (`AzureAd__ClientId` …).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::from_file_with_env(path, std::env::vars())
    }

    /// Reads a file and applies the given `(name, value)` environment overrides.
    pub fn from_file_with_env(
        path: impl AsRef<Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(
                Some(path),
                "",
                format!("cannot read the configuration file: {e}"),
            )
        })?;
        let base = path.parent().map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        });
        Self::parse(&text, Some(path), base, env)
    }

    /// Parses JSON text (no environment overrides; relative paths stay relative).
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        Self::parse(text, None, None, std::iter::empty())
    }

    /// Parses JSON text with environment overrides; relative paths resolve against `base_dir`.
    pub fn parse(
        text: &str,
        file: Option<&Path>,
        base_dir: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut root: Node = serde_json::from_str(text).map_err(|e| {
            ConfigError::new(
                file,
                "",
                format!(
                    "not valid JSON at line {} column {}: {}",
                    e.line(),
                    e.column(),
                    e.classify_label()
                ),
            )
        })?;
        if !matches!(root, Node::Object(_)) {
            return Err(ConfigError::new(file, "", "expected a JSON object"));
        }
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| {
                let first = k.split("__").next().unwrap_or("");
                k.contains("__") && SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(first))
            })
            .collect();
        overrides.sort();
        let mut warnings = warnings_for(&root, file, None);
        for (k, v) in overrides {
            let segs: Vec<String> = k.split("__").map(str::to_owned).collect();
            // The variable's own path, checked alone (its value is never looked at).
            let mut alone = Node::Null;
            alone.set_path(&segs, String::new());
            warnings.extend(warnings_for(&alone, file, Some(&k)));
            root.set_path(&segs, v);
        }
        for w in &warnings {
            tracing::warn!(target: "certbound_client::config", "{w}");
        }
        match Self::from_node(&root, file, base_dir) {
            Ok(mut cfg) => {
                cfg.warnings = warnings;
                Ok(cfg)
            }
            // A misspelt key is often why something else is missing: say so in the error.
            Err(mut e) => {
                e.message.push_str(&unknown_keys_note(&warnings));
                Err(e)
            }
        }
    }

    /// The keys of the file and of the environment overrides that certbound does not know
    /// (ignored; each also logged once as a `tracing` warning when the file was read).
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    fn from_node(
        root: &Node,
        file: Option<&Path>,
        base: Option<&Path>,
    ) -> Result<Self, ConfigError> {
        let r = Reader { file };
        let mut cfg = AppConfig {
            source_file: file.map(Path::to_path_buf),
            ..Default::default()
        };
        if let Some(ad) = r.object(root.get("AzureAd"), "AzureAd")? {
            let a = &mut cfg.azure_ad;
            a.instance = r.string(ad.get("Instance"), "AzureAd.Instance")?;
            a.tenant_id = r.string(ad.get("TenantId"), "AzureAd.TenantId")?;
            a.client_id = r.string(ad.get("ClientId"), "AzureAd.ClientId")?;
            a.authority = r.string(ad.get("Authority"), "AzureAd.Authority")?;
            a.azure_region = r.string(ad.get("AzureRegion"), "AzureAd.AzureRegion")?;
            a.send_x5c = r
                .boolean(ad.get("SendX5C"), "AzureAd.SendX5C")?
                .unwrap_or(false);
            a.allow_unbound_fallback = r
                .boolean(
                    ad.get("AllowUnboundFallback"),
                    "AzureAd.AllowUnboundFallback",
                )?
                .unwrap_or(false);
            a.http_timeout_seconds =
                r.uint(ad.get("HttpTimeoutSeconds"), "AzureAd.HttpTimeoutSeconds")?;
            match ad.get("ClientCredentials") {
                None | Some(Node::Null) => {}
                Some(Node::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        let key = format!("AzureAd.ClientCredentials[{i}]");
                        a.client_credentials
                            .push(parse_credential(&r, item, &key, base)?);
                    }
                }
                Some(Node::Object(m)) => {
                    // Env-only arrays (`AzureAd__ClientCredentials__0__…`) arrive as objects.
                    for (k, item) in m {
                        let key = format!("AzureAd.ClientCredentials[{k}]");
                        a.client_credentials
                            .push(parse_credential(&r, item, &key, base)?);
                    }
                }
                Some(o) => {
                    return Err(r.err(
                        "AzureAd.ClientCredentials",
                        format!("expected an array, found {}", o.kind()),
                    ));
                }
            }
        }
        if let Some(Node::Object(apis)) = r.object(root.get("DownstreamApis"), "DownstreamApis")? {
            for (name, api) in apis {
                let key = format!("DownstreamApis.{name}");
                cfg.downstream_apis
                    .push((name.clone(), parse_api(&r, api, &key)?));
            }
        }
        if let Some(tc) = r.object(root.get("TokenCache"), "TokenCache")? {
            cfg.token_cache.max_entries = r.uint(tc.get("MaxEntries"), "TokenCache.MaxEntries")?;
            cfg.token_cache.expiry_margin_seconds = r.uint(
                tc.get("ExpiryMarginSeconds"),
                "TokenCache.ExpiryMarginSeconds",
            )?;
        }
        Ok(cfg)
    }

    /// A downstream API by name (case-insensitive).
    pub fn downstream_api(&self, name: &str) -> Option<&DownstreamApiConfig> {
        self.downstream_apis
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, a)| a)
    }

    /// The downstream APIs as a map (lower-cased names), for lookups.
    pub fn downstream_api_map(&self) -> BTreeMap<String, &DownstreamApiConfig> {
        self.downstream_apis
            .iter()
            .map(|(n, a)| (n.to_ascii_lowercase(), a))
            .collect()
    }

    pub(crate) fn err(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(self.source_file.as_deref(), key, msg)
    }
}

pub(crate) fn parse_credential(
    r: &Reader<'_>,
    n: &Node,
    key: &str,
    base: Option<&Path>,
) -> Result<CredentialDescription, ConfigError> {
    if !matches!(n, Node::Object(_)) {
        return Err(r.err(key, format!("expected an object, found {}", n.kind())));
    }
    let k = |name: &str| format!("{key}.{name}");
    let skip = r.boolean(n.get("Skip"), &k("Skip"))?.unwrap_or(false);
    let st = r
        .string(n.get("SourceType"), &k("SourceType"))?
        .ok_or_else(|| r.err(&k("SourceType"), "missing; expected Path, Base64Encoded, ClientSecret, SignedAssertionFilePath, ManagedCertificate or SignedAssertionFromManagedIdentity"))?;
    let password = r.secret(n.get("CertificatePassword"), &k("CertificatePassword"))?;
    let mi = r.string(
        n.get("ManagedIdentityClientId"),
        &k("ManagedIdentityClientId"),
    )?;
    let source = match st.to_ascii_lowercase().as_str() {
        "path" => CredentialSourceConfig::Path {
            path: r
                .path(
                    n.get("CertificateDiskPath"),
                    &k("CertificateDiskPath"),
                    base,
                )?
                .ok_or_else(|| {
                    r.err(
                        &k("CertificateDiskPath"),
                        "missing; the path of a PEM or PFX file",
                    )
                })?,
            password,
        },
        "base64encoded" => CredentialSourceConfig::Base64Encoded {
            value: r
                .secret(n.get("Base64EncodedValue"), &k("Base64EncodedValue"))?
                .ok_or_else(|| {
                    r.err(
                        &k("Base64EncodedValue"),
                        "missing; base64 of a PFX or of PEM text",
                    )
                })?,
            password,
        },
        "clientsecret" => CredentialSourceConfig::ClientSecret {
            secret: r
                .secret(n.get("ClientSecret"), &k("ClientSecret"))?
                .ok_or_else(|| r.err(&k("ClientSecret"), "missing or empty"))?,
        },
        "signedassertionfilepath" => CredentialSourceConfig::SignedAssertionFilePath {
            path: r
                .path(
                    n.get("SignedAssertionFileDiskPath"),
                    &k("SignedAssertionFileDiskPath"),
                    base,
                )?
                .ok_or_else(|| {
                    r.err(
                        &k("SignedAssertionFileDiskPath"),
                        "missing; the file holding the signed assertion",
                    )
                })?,
        },
        "managedcertificate" => CredentialSourceConfig::ManagedCertificate {
            managed_identity_client_id: mi,
        },
        "signedassertionfrommanagedidentity" => {
            CredentialSourceConfig::SignedAssertionFromManagedIdentity {
                managed_identity_client_id: mi,
                token_exchange_url: r.string(n.get("TokenExchangeUrl"), &k("TokenExchangeUrl"))?,
            }
        }
        _ => {
            return Err(r.err(
                &k("SourceType"),
                format!("unknown source type `{}`; expected Path, Base64Encoded, ClientSecret, SignedAssertionFilePath, ManagedCertificate or SignedAssertionFromManagedIdentity", crate::error::shorten(&st, 60)),
            ));
        }
    };
    Ok(CredentialDescription {
        skip,
        key: key.to_owned(),
        source,
    })
}

pub(crate) fn parse_api(
    r: &Reader<'_>,
    n: &Node,
    key: &str,
) -> Result<DownstreamApiConfig, ConfigError> {
    if !matches!(n, Node::Object(_)) {
        return Err(r.err(key, format!("expected an object, found {}", n.kind())));
    }
    let k = |name: &str| format!("{key}.{name}");
    let scheme_text = r
        .string(n.get("ProtocolScheme"), &k("ProtocolScheme"))?
        .unwrap_or_default();
    let protocol_scheme = scheme_text
        .parse::<ProtocolScheme>()
        .map_err(|e| r.err(&k("ProtocolScheme"), e.to_string()))?;
    let ato = match r.object(n.get("AcquireTokenOptions"), &k("AcquireTokenOptions"))? {
        Some(o) => AcquireTokenOptionsConfig {
            tenant: r.string(o.get("Tenant"), &k("AcquireTokenOptions.Tenant"))?,
            force_refresh: r
                .boolean(
                    o.get("ForceRefresh"),
                    &k("AcquireTokenOptions.ForceRefresh"),
                )?
                .unwrap_or(false),
        },
        None => AcquireTokenOptionsConfig::default(),
    };
    let base_url = r.string(n.get("BaseUrl"), &k("BaseUrl"))?;
    if let Some(u) = &base_url {
        url::Url::parse(u)
            .map_err(|e| r.err(&k("BaseUrl"), format!("not a valid absolute URL: {e}")))?;
    }
    Ok(DownstreamApiConfig {
        base_url,
        relative_path: r.string(n.get("RelativePath"), &k("RelativePath"))?,
        http_method: r
            .string(n.get("HttpMethod"), &k("HttpMethod"))?
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase(),
        protocol_scheme,
        request_app_token: r
            .boolean(n.get("RequestAppToken"), &k("RequestAppToken"))?
            .unwrap_or(false),
        scopes: r.strings(n.get("Scopes"), &k("Scopes"))?,
        accept_header: r.string(n.get("AcceptHeader"), &k("AcceptHeader"))?,
        extra_header_parameters: r
            .string_map(n.get("ExtraHeaderParameters"), &k("ExtraHeaderParameters"))?,
        extra_query_parameters: r
            .string_map(n.get("ExtraQueryParameters"), &k("ExtraQueryParameters"))?,
        acquire_token_options: ato,
        allow_unbound_fallback: r
            .boolean(n.get("AllowUnboundFallback"), &k("AllowUnboundFallback"))?,
    })
}

pub(crate) trait ClassifyLabel {
    fn classify_label(&self) -> &'static str;
}
impl ClassifyLabel for serde_json::Error {
    fn classify_label(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "read error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "unexpected end of file",
        }
    }
}
