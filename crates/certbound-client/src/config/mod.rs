//! Configuration: an appsettings-style JSON file (docs/configuration.md) with case-insensitive keys and
//! environment overrides (`AzureAd__ClientId`, `DownstreamApis__MyApi__BaseUrl`,
//! `AzureAd__ClientCredentials__0__CertificateDiskPath`).
//!
//! Errors name the file and the key path (`AzureAd.ClientCredentials[1].CertificateDiskPath`).
//! Keys certbound does not know in `AzureAd`, `ClientCredentials[i]`, `DownstreamApis.<name>`
//! (and its `AcquireTokenOptions`), `TokenCache` (and `TokenCache.Redis`) and `Sidecar` are
//! ignored but reported as [`ConfigWarning`]s ([`AppConfig::warnings`], also logged once
//! with `tracing`), each naming the key path and the nearest known key: a misspelt
//! `CertificatePasword` says so, instead of the wrong-password error that would follow.
//! Relative paths resolve against the configuration file's directory. Key order is kept:
//! "the first downstream API" is the first in the file.
//!
//! ```
//! use certbound_client::config::AppConfig;
//! let cfg = AppConfig::from_json_str(r#"{
//!   "azuread": { "instance": "https://login.microsoftonline.com/", "TENANTID": "contoso.onmicrosoft.com",
//!                "ClientId": "11111111-2222-3333-4444-555555555555",
//!                "ClientCredentials": [ { "SourceType": "ClientSecret", "ClientSecret": "s3cr3t" } ] },
//!   "DownstreamApis": { "Graph": { "BaseUrl": "https://graph.microsoft.com/v1.0/", "Scopes": ["https://graph.microsoft.com/.default"],
//!                                  "ProtocolScheme": "mtls_pop", "RequestAppToken": true } }
//! }"#).unwrap();
//! assert_eq!(cfg.azure_ad.tenant_id.as_deref(), Some("contoso.onmicrosoft.com"));
//! assert_eq!(cfg.downstream_apis[0].0, "Graph");
//! ```

//!
//! Layout: the schema (the typed sections below) lives here; the order-keeping JSON tree
//! and its typed reader in `node.rs`; the known keys and unknown-key warnings in
//! `keys.rs`; loading, environment overrides and validation in `load.rs`.

mod keys;
mod load;
mod node;
#[cfg(test)]
mod tests;

pub use keys::known_keys;
use keys::*;
pub(crate) use node::Node;
use node::*;

use std::fmt;
use std::path::PathBuf;

use crate::scheme::ProtocolScheme;
use crate::secret::Secret;

/// The whole configuration.
#[derive(Clone, Debug, Default)]
pub struct AppConfig {
    /// `AzureAd`: the app's identity and its credentials.
    pub azure_ad: AzureAdConfig,
    /// `DownstreamApis`, in file order.
    pub downstream_apis: Vec<(String, DownstreamApiConfig)>,
    /// `TokenCache`.
    pub token_cache: TokenCacheConfig,
    /// The file it was read from (for error messages).
    pub source_file: Option<PathBuf>,
    /// Unknown keys (see [`AppConfig::warnings`]).
    warnings: Vec<ConfigWarning>,
}

/// `AzureAd`.
#[derive(Clone, Debug, Default)]
pub struct AzureAdConfig {
    /// `Instance`, e.g. `https://login.microsoftonline.com/`.
    pub instance: Option<String>,
    /// `TenantId` (a GUID or domain; `common`/`organizations`/`consumers` cannot do mTLS PoP).
    pub tenant_id: Option<String>,
    /// `ClientId`.
    pub client_id: Option<String>,
    /// `Authority`: a full authority/issuer URL; overrides `Instance` + `TenantId`.
    pub authority: Option<String>,
    /// `AzureRegion` (Entra only), e.g. `westus2`.
    pub azure_region: Option<String>,
    /// `SendX5C`: put the certificate chain (`x5c`) in client assertions.
    pub send_x5c: bool,
    /// `ClientCredentials`, tried in order.
    pub client_credentials: Vec<CredentialDescription>,
    /// `AllowUnboundFallback`: when `MTLS_POP` cannot be honoured, fall back to an unbound
    /// bearer token (with a warning) instead of failing. Default: false.
    pub allow_unbound_fallback: bool,
    /// `HttpTimeoutSeconds`: per-request timeout for token and discovery requests (default 30).
    pub http_timeout_seconds: Option<u64>,
}

/// `TokenCache`.
#[derive(Clone, Debug, Default)]
pub struct TokenCacheConfig {
    /// `MaxEntries`: bound on the in-memory cache (default 10 000).
    pub max_entries: Option<u64>,
    /// `ExpiryMarginSeconds`: a token counts as expired this long before `exp` (default 300).
    pub expiry_margin_seconds: Option<u64>,
}

/// One `ClientCredentials` entry.
#[derive(Clone, Debug)]
pub struct CredentialDescription {
    /// `Skip: true` removes the entry.
    pub skip: bool,
    /// The key path (`AzureAd.ClientCredentials[0]`), for messages.
    pub key: String,
    /// What the entry is.
    pub source: CredentialSourceConfig,
}

/// The source of one credential (`SourceType` and its keys).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CredentialSourceConfig {
    /// `Path`: a PEM (certificate + key, or key next to it as `<name>.key`) or PFX file.
    Path {
        /// `CertificateDiskPath`, resolved against the config file's directory.
        path: PathBuf,
        /// `CertificatePassword` (PFX).
        password: Option<Secret>,
    },
    /// `Base64Encoded`: base64 of a PFX, or of PEM text.
    Base64Encoded {
        /// `Base64EncodedValue`.
        value: Secret,
        /// `CertificatePassword` (PFX).
        password: Option<Secret>,
    },
    /// `ClientSecret`.
    ClientSecret {
        /// `ClientSecret`.
        secret: Secret,
    },
    /// `SignedAssertionFilePath`: a file holding a client assertion JWT (workload identity),
    /// re-read when it changes.
    SignedAssertionFilePath {
        /// `SignedAssertionFileDiskPath`.
        path: PathBuf,
    },
    /// `ManagedCertificate`: a binding certificate minted by IMDS v2 (not supported yet).
    ManagedCertificate {
        /// `ManagedIdentityClientId` (user-assigned identity), if any.
        managed_identity_client_id: Option<String>,
    },
    /// `SignedAssertionFromManagedIdentity` (not supported yet).
    SignedAssertionFromManagedIdentity {
        /// `ManagedIdentityClientId`, if any.
        managed_identity_client_id: Option<String>,
        /// `TokenExchangeUrl`, if any.
        token_exchange_url: Option<String>,
    },
}

impl CredentialSourceConfig {
    /// The `SourceType` name.
    pub fn source_type(&self) -> &'static str {
        match self {
            Self::Path { .. } => "Path",
            Self::Base64Encoded { .. } => "Base64Encoded",
            Self::ClientSecret { .. } => "ClientSecret",
            Self::SignedAssertionFilePath { .. } => "SignedAssertionFilePath",
            Self::ManagedCertificate { .. } => "ManagedCertificate",
            Self::SignedAssertionFromManagedIdentity { .. } => "SignedAssertionFromManagedIdentity",
        }
    }
}

/// One `DownstreamApis` entry (the model the downstream HTTP client is built on).
#[derive(Clone, Debug, Default)]
pub struct DownstreamApiConfig {
    /// `BaseUrl`.
    pub base_url: Option<String>,
    /// `RelativePath`.
    pub relative_path: Option<String>,
    /// `HttpMethod` (default `Get`), upper-cased.
    pub http_method: String,
    /// `ProtocolScheme` (empty: Bearer).
    pub protocol_scheme: ProtocolScheme,
    /// `RequestAppToken`.
    pub request_app_token: bool,
    /// `Scopes`.
    pub scopes: Vec<String>,
    /// `AcceptHeader`.
    pub accept_header: Option<String>,
    /// `ExtraHeaderParameters`, in order.
    pub extra_header_parameters: Vec<(String, String)>,
    /// `ExtraQueryParameters`, in order.
    pub extra_query_parameters: Vec<(String, String)>,
    /// `AcquireTokenOptions`.
    pub acquire_token_options: AcquireTokenOptionsConfig,
    /// `AllowUnboundFallback` for this API (overrides `AzureAd.AllowUnboundFallback` when set).
    pub allow_unbound_fallback: Option<bool>,
}

/// `DownstreamApis.<name>.AcquireTokenOptions`.
#[derive(Clone, Debug, Default)]
pub struct AcquireTokenOptionsConfig {
    /// `Tenant`: acquire for another tenant than `AzureAd.TenantId`.
    pub tenant: Option<String>,
    /// `ForceRefresh`: bypass the cache.
    pub force_refresh: bool,
}

/// A key the configuration has but certbound does not know (docs/configuration.md): most often a
/// misspelling. It is ignored; the warning names where it is and the nearest known key.
/// It never holds a value from the configuration, only key names.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigWarning {
    /// The key path, known keys spelt canonically: `AzureAd.ClientCredentials[0].CertificatePasword`.
    pub path: String,
    /// The unknown key as written.
    pub key: String,
    /// The nearest known key in that place (`CertificatePassword`), when one is close.
    pub suggestion: Option<&'static str>,
    /// The environment variable that names the key (`AzureAd__ClientIdd`), when it does not
    /// come from the file.
    pub env_var: Option<String>,
    /// The configuration file.
    pub file: Option<PathBuf>,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.env_var, &self.file) {
            (Some(var), _) => write!(
                f,
                "environment variable `{}`: ",
                crate::error::shorten(var, 120)
            )?,
            (None, Some(file)) => write!(f, "{}: ", file.display())?,
            (None, None) => {}
        }
        write!(
            f,
            "unknown configuration key `{}` is ignored",
            crate::error::shorten(&self.path, 160)
        )?;
        match self.suggestion {
            Some(s) => write!(f, " (did you mean `{s}`?)"),
            None => Ok(()),
        }
    }
}
