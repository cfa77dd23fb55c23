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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::error::ConfigError;
use crate::scheme::ProtocolScheme;
use crate::secret::Secret;

/// A JSON value that keeps object key order (for "the first downstream API").
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

impl<'de> serde::Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Node;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_none<E>(self) -> Result<Node, E> {
                Ok(Node::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
                Ok(Node::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
                Ok(Node::Number(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
                Ok(Node::Number(v.into()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
                serde_json::Number::from_f64(v)
                    .map(Node::Number)
                    .ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, v: &str) -> Result<Node, E> {
                Ok(Node::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Node, E> {
                Ok(Node::String(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Node::Array(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Node, A::Error> {
                let mut v: Vec<(String, Node)> = Vec::new();
                while let Some((k, x)) = a.next_entry::<String, Node>()? {
                    // Later duplicates (case-insensitively) win, like configuration providers do.
                    v.retain(|(o, _)| !o.eq_ignore_ascii_case(&k));
                    v.push((k, x));
                }
                Ok(Node::Object(v))
            }
        }
        d.deserialize_any(V)
    }
}

impl Node {
    fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Object(m) => m
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Number(_) => "a number",
            Node::String(_) => "a string",
            Node::Array(_) => "an array",
            Node::Object(_) => "an object",
        }
    }
    /// Sets `path` (segments, case-insensitive; numeric segments index arrays) to a string.
    fn set_path(&mut self, path: &[String], value: String) {
        let Some((first, rest)) = path.split_first() else {
            *self = Node::String(value);
            return;
        };
        if let (Node::Array(items), Ok(i)) = (&mut *self, first.parse::<usize>()) {
            while items.len() <= i {
                items.push(Node::Object(Vec::new()));
            }
            items[i].set_path(rest, value);
            return;
        }
        if !matches!(self, Node::Object(_)) {
            *self = if first.parse::<usize>().is_ok() {
                Node::Array(Vec::new())
            } else {
                Node::Object(Vec::new())
            };
            return self.set_path(path, value);
        }
        if let Node::Object(m) = self {
            if let Some((_, v)) = m.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(first)) {
                v.set_path(rest, value);
            } else {
                let mut n = Node::Null;
                n.set_path(rest, value);
                m.push((first.clone(), n));
            }
        }
    }
}

/// Reads typed values at key paths, producing errors that name the file and key.
struct Reader<'a> {
    file: Option<&'a Path>,
}

impl Reader<'_> {
    fn err(&self, key: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, key, msg)
    }
    fn string(&self, n: Option<&Node>, key: &str) -> Result<Option<String>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(None),
            Some(Node::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Node::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(Node::Number(x)) => Ok(Some(x.to_string())),
            Some(Node::Bool(b)) => Ok(Some(b.to_string())),
            Some(o) => Err(self.err(key, format!("expected a string, found {}", o.kind()))),
        }
    }
    /// A string whose value must not be echoed in errors.
    fn secret(&self, n: Option<&Node>, key: &str) -> Result<Option<Secret>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(None),
            Some(Node::String(s)) if s.is_empty() => Ok(None),
            Some(Node::String(s)) => Ok(Some(Secret::new(s.clone()))),
            Some(o) => Err(self.err(key, format!("expected a string, found {}", o.kind()))),
        }
    }
    fn boolean(&self, n: Option<&Node>, key: &str) -> Result<Option<bool>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(None),
            Some(Node::Bool(b)) => Ok(Some(*b)),
            Some(Node::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "true" | "1" | "yes" => Ok(Some(true)),
                "false" | "0" | "no" => Ok(Some(false)),
                _ => Err(self.err(
                    key,
                    format!(
                        "expected true or false, found `{}`",
                        crate::error::shorten(s, 40)
                    ),
                )),
            },
            Some(o) => Err(self.err(key, format!("expected true or false, found {}", o.kind()))),
        }
    }
    fn uint(&self, n: Option<&Node>, key: &str) -> Result<Option<u64>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(None),
            Some(Node::Number(x)) => x
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.err(key, "expected a non-negative integer")),
            Some(Node::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Node::String(s)) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| self.err(key, "expected a non-negative integer")),
            Some(o) => Err(self.err(
                key,
                format!("expected a non-negative integer, found {}", o.kind()),
            )),
        }
    }
    fn strings(&self, n: Option<&Node>, key: &str) -> Result<Vec<String>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(Vec::new()),
            // Env overrides and some hand-written files give a space-separated string.
            Some(Node::String(s)) => Ok(s.split_whitespace().map(str::to_owned).collect()),
            Some(Node::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, x)| self.string(Some(x), &format!("{key}[{i}]")).transpose())
                .collect(),
            Some(Node::Object(m)) => {
                // `Scopes__0`-style env overrides on a missing array produce an object.
                m.iter()
                    .map(|(k, x)| {
                        self.string(Some(x), &format!("{key}.{k}"))
                            .map(|s| s.unwrap_or_default())
                    })
                    .collect()
            }
            Some(o) => Err(self.err(
                key,
                format!("expected an array of strings, found {}", o.kind()),
            )),
        }
    }
    fn string_map(
        &self,
        n: Option<&Node>,
        key: &str,
    ) -> Result<Vec<(String, String)>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(Vec::new()),
            Some(Node::Object(m)) => m
                .iter()
                .map(|(k, v)| {
                    Ok((
                        k.clone(),
                        self.string(Some(v), &format!("{key}.{k}"))?
                            .unwrap_or_default(),
                    ))
                })
                .collect(),
            Some(o) => Err(self.err(
                key,
                format!("expected an object of strings, found {}", o.kind()),
            )),
        }
    }
    fn object<'n>(&self, n: Option<&'n Node>, key: &str) -> Result<Option<&'n Node>, ConfigError> {
        match n {
            None | Some(Node::Null) => Ok(None),
            Some(o @ Node::Object(_)) => Ok(Some(o)),
            Some(o) => Err(self.err(key, format!("expected an object, found {}", o.kind()))),
        }
    }
    fn path(
        &self,
        n: Option<&Node>,
        key: &str,
        base: Option<&Path>,
    ) -> Result<Option<PathBuf>, ConfigError> {
        Ok(self.string(n, key)?.map(|s| {
            let p = PathBuf::from(s);
            match base {
                Some(b) if p.is_relative() => b.join(p),
                _ => p,
            }
        }))
    }
}

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

/// What the value of a known key is, for the unknown-key check.
#[derive(Clone, Copy)]
enum Shape {
    /// A value (or an object whose keys are the user's, like `ExtraHeaderParameters`).
    Value,
    /// An object with known keys.
    Section(&'static Section),
    /// An array of such objects (or an object keyed by index, from environment overrides).
    Items(&'static Section),
    /// An object of user-named such objects (`DownstreamApis.<name>`).
    Named(&'static Section),
}

/// The known keys of one object.
struct Section {
    /// Its path in [`known_keys`] terms.
    path: &'static str,
    keys: &'static [(&'static str, Shape)],
    /// Other keys are normal here (the file's top level holds `Logging` and the like):
    /// only near misses of known keys are reported.
    open: bool,
}

const fn leaves<const N: usize>(names: [&'static str; N]) -> [(&'static str, Shape); N] {
    let mut out = [("", Shape::Value); N];
    let mut i = 0;
    while i < N {
        out[i].0 = names[i];
        i += 1;
    }
    out
}

const CREDENTIAL_KEYS: [(&str, Shape); 15] = leaves([
    "SourceType",
    "CertificateDiskPath",
    "CertificatePassword",
    "Base64EncodedValue",
    "ClientSecret",
    "SignedAssertionFileDiskPath",
    "ManagedIdentityClientId",
    "TokenExchangeUrl",
    "Skip",
    "SendCertificateOverMtls",
    "Pkcs11ModulePath",
    "Pkcs11TokenLabel",
    "Pkcs11KeyLabel",
    "Pkcs11PinFile",
    "Pkcs11Pin",
]);
static CREDENTIAL: Section = Section {
    path: "AzureAd.ClientCredentials[]",
    keys: &CREDENTIAL_KEYS,
    open: false,
};
static AZURE_AD: Section = Section {
    path: "AzureAd",
    keys: &[
        ("Instance", Shape::Value),
        ("TenantId", Shape::Value),
        ("ClientId", Shape::Value),
        ("Authority", Shape::Value),
        ("AzureRegion", Shape::Value),
        ("SendX5C", Shape::Value),
        ("ClientCredentials", Shape::Items(&CREDENTIAL)),
        ("AllowUnboundFallback", Shape::Value),
        ("MinBindingStrength", Shape::Value),
        ("HttpTimeoutSeconds", Shape::Value),
        ("ClientCapabilities", Shape::Value),
        ("ManagedIdentity", Shape::Value),
    ],
    open: false,
};
const ACQUIRE_TOKEN_OPTIONS_KEYS: [(&str, Shape); 2] = leaves(["Tenant", "ForceRefresh"]);
static ACQUIRE_TOKEN_OPTIONS: Section = Section {
    path: "DownstreamApis.*.AcquireTokenOptions",
    keys: &ACQUIRE_TOKEN_OPTIONS_KEYS,
    open: false,
};
static DOWNSTREAM_API: Section = Section {
    path: "DownstreamApis.*",
    keys: &[
        ("BaseUrl", Shape::Value),
        ("RelativePath", Shape::Value),
        ("HttpMethod", Shape::Value),
        ("ProtocolScheme", Shape::Value),
        ("RequestAppToken", Shape::Value),
        ("Scopes", Shape::Value),
        ("AcceptHeader", Shape::Value),
        ("ExtraHeaderParameters", Shape::Value),
        ("ExtraQueryParameters", Shape::Value),
        (
            "AcquireTokenOptions",
            Shape::Section(&ACQUIRE_TOKEN_OPTIONS),
        ),
        ("AllowUnboundFallback", Shape::Value),
        ("RequiresTlsRenegotiation", Shape::Value),
    ],
    open: false,
};
const REDIS_KEYS: [(&str, Shape); 8] = leaves([
    "ConnectionString",
    "KeyPrefix",
    "EncryptionKey",
    "EncryptionKeys",
    "Timeout",
    "TlsCaCertificatePath",
    "RetryInterval",
    "Cluster",
]);
static REDIS: Section = Section {
    path: "TokenCache.Redis",
    keys: &REDIS_KEYS,
    open: false,
};
static TOKEN_CACHE: Section = Section {
    path: "TokenCache",
    keys: &[
        ("MaxEntries", Shape::Value),
        ("ExpiryMarginSeconds", Shape::Value),
        ("Redis", Shape::Section(&REDIS)),
    ],
    open: false,
};
const SIDECAR_KEYS: [(&str, Shape); 1] = leaves(["AllowOverrides"]);
static SIDECAR: Section = Section {
    path: "Sidecar",
    keys: &SIDECAR_KEYS,
    open: false,
};
static ROOT: Section = Section {
    path: "",
    keys: &[
        ("AzureAd", Shape::Section(&AZURE_AD)),
        ("DownstreamApis", Shape::Named(&DOWNSTREAM_API)),
        ("TokenCache", Shape::Section(&TOKEN_CACHE)),
        ("Sidecar", Shape::Section(&SIDECAR)),
    ],
    open: true,
};
static SECTIONS_BY_PATH: [&Section; 8] = [
    &ROOT,
    &AZURE_AD,
    &CREDENTIAL,
    &DOWNSTREAM_API,
    &ACQUIRE_TOKEN_OPTIONS,
    &TOKEN_CACHE,
    &REDIS,
    &SIDECAR,
];

/// The keys certbound knows in one object of the configuration, spelt canonically:
/// `""` (the top level), `AzureAd`, `AzureAd.ClientCredentials[]`, `DownstreamApis.*`,
/// `DownstreamApis.*.AcquireTokenOptions`, `TokenCache`, `TokenCache.Redis`, `Sidecar`.
/// `None` for another path. (Other crates that read a section check their keys against it.)
pub fn known_keys(section: &str) -> Option<Vec<&'static str>> {
    SECTIONS_BY_PATH
        .iter()
        .find(|s| s.path == section)
        .map(|s| s.keys.iter().map(|(k, _)| *k).collect())
}

/// Levenshtein distance of two keys, ASCII case-insensitively (keys are compared so).
fn key_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The known key nearest to `key`, when it is close enough to be what was meant: a few
/// edits away (more for longer keys) or, outside `strict`, one containing the other
/// (`Password` → `CertificatePassword`).
fn nearest(key: &str, known: &[(&'static str, Shape)], strict: bool) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    known
        .iter()
        .filter_map(|(k, _)| {
            let d = key_distance(key, k);
            let close = if strict {
                d <= 2 && d < k.len() / 2
            } else {
                let kl = k.to_ascii_lowercase();
                d <= (k.len() / 3).clamp(1, 3)
                    || (lower.len() >= 4 && (kl.contains(&lower) || lower.contains(&kl)))
            };
            close.then_some((d, *k))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Reports the unknown keys of `node` (an object described by `section`) under `path`.
fn unknown_keys(
    node: &Node,
    section: &Section,
    path: &str,
    out: &mut Vec<(String, String, Option<&'static str>)>,
) {
    let Node::Object(entries) = node else {
        return;
    };
    for (key, value) in entries {
        let known = section
            .keys
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key));
        let child = |name: &str| {
            if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        };
        match known {
            None => {
                let suggestion = nearest(key, section.keys, section.open);
                if !section.open || suggestion.is_some() {
                    out.push((child(key), key.clone(), suggestion));
                }
            }
            Some((_, Shape::Value)) => {}
            Some((name, Shape::Section(s))) => unknown_keys(value, s, &child(name), out),
            Some((name, Shape::Items(s))) => match value {
                Node::Array(items) => {
                    for (i, item) in items.iter().enumerate() {
                        unknown_keys(item, s, &format!("{}[{i}]", child(name)), out);
                    }
                }
                Node::Object(items) => {
                    for (i, item) in items {
                        unknown_keys(item, s, &format!("{}[{i}]", child(name)), out);
                    }
                }
                _ => {}
            },
            Some((name, Shape::Named(s))) => {
                if let Node::Object(items) = value {
                    for (n, item) in items {
                        unknown_keys(item, s, &format!("{}.{n}", child(name)), out);
                    }
                }
            }
        }
    }
}

/// The unknown keys of a whole document (from `file`, or set by the environment variable
/// `env_var`), as warnings.
fn warnings_for(root: &Node, file: Option<&Path>, env_var: Option<&str>) -> Vec<ConfigWarning> {
    let mut found = Vec::new();
    unknown_keys(root, &ROOT, "", &mut found);
    found
        .into_iter()
        .map(|(path, key, suggestion)| ConfigWarning {
            path,
            key,
            suggestion,
            env_var: env_var.map(str::to_owned),
            file: file.map(Path::to_path_buf),
        })
        .collect()
}

/// `; note: …` naming the first few unknown keys, for an error that they may explain.
fn unknown_keys_note(warnings: &[ConfigWarning]) -> String {
    const SHOWN: usize = 3;
    let mut note = String::new();
    for w in warnings.iter().take(SHOWN) {
        let brief = ConfigWarning {
            file: None,
            ..w.clone()
        };
        note.push_str("; note: ");
        note.push_str(&brief.to_string());
    }
    if warnings.len() > SHOWN {
        note.push_str(&format!(
            "; and {} more unknown keys",
            warnings.len() - SHOWN
        ));
    }
    note
}

const SECTIONS: [&str; 3] = ["AzureAd", "DownstreamApis", "TokenCache"];

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

fn parse_credential(
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

fn parse_api(r: &Reader<'_>, n: &Node, key: &str) -> Result<DownstreamApiConfig, ConfigError> {
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

trait ClassifyLabel {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn case_insensitive_keys_env_overrides_and_relative_paths() {
        let text = r#"{"AZUREAD":{"clientid":"a","ClientCredentials":[{"sourcetype":"path","certificatediskpath":"certs/app.pem"},
            {"SourceType":"ClientSecret","ClientSecret":"x","Skip":true}]},
            "DownstreamApis":{"Zeta":{"Scopes":["s1"]},"Alpha":{"BaseUrl":"https://a.example/"}}}"#;
        let cfg = AppConfig::parse(
            text,
            Some(Path::new("/etc/app/appsettings.json")),
            Some(Path::new("/etc/app")),
            env(&[
                ("AzureAd__ClientId", "from-env"),
                ("DownstreamApis__Zeta__ProtocolScheme", "MTLS-POP"),
                ("DownstreamApis__Zeta__RequestAppToken", "true"),
                ("AzureAd__ClientCredentials__1__Skip", "false"),
                ("PATH", "/bin"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.azure_ad.client_id.as_deref(), Some("from-env"));
        assert_eq!(cfg.downstream_apis[0].0, "Zeta", "file order is kept");
        assert_eq!(
            cfg.downstream_apis[0].1.protocol_scheme,
            ProtocolScheme::MtlsPop
        );
        assert!(cfg.downstream_apis[0].1.request_app_token);
        match &cfg.azure_ad.client_credentials[0].source {
            CredentialSourceConfig::Path { path, .. } => {
                assert_eq!(path, Path::new("/etc/app/certs/app.pem"))
            }
            other => panic!("{other:?}"),
        }
        assert!(!cfg.azure_ad.client_credentials[1].skip);
    }

    #[test]
    fn errors_name_file_and_key_path_without_secrets() {
        let text = r#"{"AzureAd":{"ClientCredentials":[{"SourceType":"ClientSecret","ClientSecret":"topsecret"},{"SourceType":"Path"}]}}"#;
        let e = AppConfig::parse(text, Some(Path::new("conf.json")), None, []).unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("conf.json")
                && s.contains("AzureAd.ClientCredentials[1].CertificateDiskPath"),
            "{s}"
        );
        let e = AppConfig::from_json_str(
            r#"{"AzureAd":{"ClientCredentials":[{"SourceType":"KeyVault"}]}}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("AzureAd.ClientCredentials[0].SourceType")
                && e.to_string().contains("KeyVault")
        );
        let e =
            AppConfig::from_json_str(r#"{"DownstreamApis":{"A":{"ProtocolScheme":"Kerberos"}}}"#)
                .unwrap_err();
        assert!(
            e.to_string().contains("DownstreamApis.A.ProtocolScheme"),
            "{e}"
        );
        let e = AppConfig::from_json_str(r#"{"AzureAd":{"SendX5C":"maybe"}}"#).unwrap_err();
        assert!(e.to_string().contains("AzureAd.SendX5C"));
        let e = AppConfig::from_json_str("{ nope").unwrap_err();
        assert!(e.to_string().contains("not valid JSON"));
        let cfg = AppConfig::from_json_str(r#"{"AzureAd":{"ClientCredentials":[{"SourceType":"ClientSecret","ClientSecret":"topsecret"}]}}"#).unwrap();
        assert!(!format!("{cfg:?}").contains("topsecret"));
    }

    #[test]
    fn full_downstream_model() {
        let cfg = AppConfig::from_json_str(r#"{"DownstreamApis":{"Api":{"BaseUrl":"https://api.example/","RelativePath":"v1/me",
          "HttpMethod":"post","ProtocolScheme":"","RequestAppToken":true,"Scopes":["api://x/.default"],"AcceptHeader":"application/json",
          "ExtraHeaderParameters":{"X-A":"1"},"ExtraQueryParameters":{"q":"2"},
          "AcquireTokenOptions":{"Tenant":"other","ForceRefresh":true}}}}"#).unwrap();
        let a = cfg.downstream_api("api").unwrap();
        assert_eq!(a.http_method, "POST");
        assert_eq!(a.protocol_scheme, ProtocolScheme::Bearer);
        assert_eq!(
            a.extra_header_parameters,
            vec![("X-A".to_string(), "1".to_string())]
        );
        assert_eq!(a.extra_query_parameters[0].1, "2");
        assert_eq!(a.acquire_token_options.tenant.as_deref(), Some("other"));
        assert!(a.acquire_token_options.force_refresh);
    }

    fn warned(cfg: &AppConfig) -> Vec<(String, Option<&'static str>)> {
        cfg.warnings()
            .iter()
            .map(|w| (w.path.clone(), w.suggestion))
            .collect()
    }

    #[test]
    fn misspelt_keys_are_reported_with_their_path_and_the_nearest_key() {
        let text = r#"{
          "azuread": { "ClientIdd": "a", "Tenant": "t", "ClientCredential": [],
            "ClientCredentials": [
              { "SourceType": "Path", "CertificateDiskPath": "a.pfx", "CertificatePasword": "hunter2-secret" },
              { "SourceType": "ClientSecret", "clientsecret": "x", "Secret": "also-secret", "Zzzzzzzz": 1 } ] },
          "DownstreamApis": { "Graph": { "BaseUri": "https://g.example/", "Scope": ["s"],
              "AcquireTokenOptions": { "ForceRefesh": true, "tenant": "x" },
              "ExtraHeaderParameters": { "Anything-Goes": "1" } } },
          "TokenCache": { "MaxEntry": 5, "Redis": { "ConnectionStrin": "redis://h:1", "keyprefix": "p" } },
          "Sidecar": { "AllowOverride": true },
          "Logging": { "LogLevel": {} }, "AllowedHosts": "*", "AzureAdd": {}, "AzureAdB2C": {}
        }"#;
        let cfg = AppConfig::parse(text, Some(Path::new("app.json")), None, []).unwrap();
        let w = warned(&cfg);
        let expect: &[(&str, Option<&str>)] = &[
            ("AzureAd.ClientIdd", Some("ClientId")),
            ("AzureAd.Tenant", Some("TenantId")),
            ("AzureAd.ClientCredential", Some("ClientCredentials")),
            (
                "AzureAd.ClientCredentials[0].CertificatePasword",
                Some("CertificatePassword"),
            ),
            ("AzureAd.ClientCredentials[1].Secret", Some("ClientSecret")),
            ("AzureAd.ClientCredentials[1].Zzzzzzzz", None),
            ("DownstreamApis.Graph.BaseUri", Some("BaseUrl")),
            ("DownstreamApis.Graph.Scope", Some("Scopes")),
            (
                "DownstreamApis.Graph.AcquireTokenOptions.ForceRefesh",
                Some("ForceRefresh"),
            ),
            ("TokenCache.MaxEntry", Some("MaxEntries")),
            ("TokenCache.Redis.ConnectionStrin", Some("ConnectionString")),
            ("Sidecar.AllowOverride", Some("AllowOverrides")),
            // The top level holds other sections (Logging …): only near misses are reported.
            ("AzureAdd", Some("AzureAd")),
        ];
        let got: Vec<(&str, Option<&str>)> = w.iter().map(|(p, s)| (p.as_str(), *s)).collect();
        assert_eq!(got, expect);
        let line = cfg.warnings()[3].to_string();
        assert_eq!(
            line,
            "app.json: unknown configuration key `AzureAd.ClientCredentials[0].CertificatePasword` is ignored (did you mean `CertificatePassword`?)"
        );
        for w in cfg.warnings() {
            let t = w.to_string();
            assert!(!t.contains("hunter2") && !t.contains("also-secret"), "{t}");
        }
    }

    #[test]
    fn every_documented_key_is_known() {
        // docs/configuration.md, including keys certbound does not act on yet: none of them warns.
        let text = r#"{
          "AzureAd": { "Instance": "https://login.microsoftonline.com/", "TenantId": "t", "ClientId": "c",
            "Authority": "https://a.example/", "AzureRegion": "westus2", "SendX5C": true,
            "AllowUnboundFallback": false, "MinBindingStrength": "Hardware", "HttpTimeoutSeconds": 5,
            "ClientCapabilities": ["cp1"], "ManagedIdentity": {},
            "ClientCredentials": [
              { "SourceType": "Path", "CertificateDiskPath": "a.pem", "CertificatePassword": "p",
                "SendCertificateOverMtls": true, "Skip": false },
              { "SourceType": "Base64Encoded", "Base64EncodedValue": "AAAA" },
              { "SourceType": "ClientSecret", "ClientSecret": "s" },
              { "SourceType": "SignedAssertionFilePath", "SignedAssertionFileDiskPath": "/t" },
              { "SourceType": "ManagedCertificate", "ManagedIdentityClientId": "m" },
              { "SourceType": "SignedAssertionFromManagedIdentity", "ManagedIdentityClientId": "m",
                "TokenExchangeUrl": "api://AzureADTokenExchange" },
              { "SourceType": "ClientSecret", "ClientSecret": "s", "Pkcs11ModulePath": "/m.so", "Pkcs11TokenLabel": "t",
                "Pkcs11KeyLabel": "k", "Pkcs11PinFile": "/p", "Pkcs11Pin": "1234", "Skip": true } ] },
          "DownstreamApis": { "A": { "BaseUrl": "https://a.example/", "RelativePath": "x", "HttpMethod": "Get",
              "ProtocolScheme": "MTLS_POP", "RequestAppToken": true, "Scopes": ["s"], "AcceptHeader": "a/b",
              "ExtraHeaderParameters": {}, "ExtraQueryParameters": {}, "AllowUnboundFallback": true,
              "RequiresTlsRenegotiation": true,
              "AcquireTokenOptions": { "Tenant": "t", "ForceRefresh": false } } },
          "TokenCache": { "MaxEntries": 1, "ExpiryMarginSeconds": 1, "Redis": { "ConnectionString": "redis://h",
              "KeyPrefix": "p", "EncryptionKey": "k", "EncryptionKeys": [], "Timeout": "1s",
              "TlsCaCertificatePath": "ca.pem", "RetryInterval": "1s", "Cluster": false } },
          "Sidecar": { "AllowOverrides": false }
        }"#;
        let cfg = AppConfig::from_json_str(text).unwrap();
        assert_eq!(cfg.warnings(), &[], "{:?}", cfg.warnings());
    }

    #[test]
    fn environment_overrides_that_name_unknown_keys_are_reported() {
        let cfg = AppConfig::parse(
            r#"{"AzureAd":{"ClientId":"a"}}"#,
            None,
            None,
            env(&[
                ("AzureAd__ClientIdd", "secret-value-1"),
                ("AzureAd__ClientCredentials__0__SourceType", "ClientSecret"),
                ("AzureAd__ClientCredentials__0__ClientSecret", "s"),
                (
                    "AzureAd__ClientCredentials__0__CertificatePasword",
                    "secret-value-2",
                ),
                ("DownstreamApis__Api__AcquireTokenOptions__Tennant", "x"),
                ("TokenCache__Redis__KeyPrefx", "x"),
                ("TokenCache__Redis__ConnectionString", "redis://h"),
                ("AzureAd__TenantId", "t"),
                ("Unrelated__Thing", "x"),
            ]),
        )
        .unwrap();
        let got: Vec<(String, Option<&str>, Option<String>)> = cfg
            .warnings()
            .iter()
            .map(|w| (w.path.clone(), w.suggestion, w.env_var.clone()))
            .collect();
        let e = |p: &str, s: &'static str, v: &str| (p.to_owned(), Some(s), Some(v.to_owned()));
        assert_eq!(
            got,
            vec![
                e(
                    "AzureAd.ClientCredentials[0].CertificatePasword",
                    "CertificatePassword",
                    "AzureAd__ClientCredentials__0__CertificatePasword"
                ),
                e("AzureAd.ClientIdd", "ClientId", "AzureAd__ClientIdd"),
                e(
                    "DownstreamApis.Api.AcquireTokenOptions.Tennant",
                    "Tenant",
                    "DownstreamApis__Api__AcquireTokenOptions__Tennant"
                ),
                e(
                    "TokenCache.Redis.KeyPrefx",
                    "KeyPrefix",
                    "TokenCache__Redis__KeyPrefx"
                ),
            ]
        );
        let text: String = cfg.warnings().iter().map(|w| w.to_string()).collect();
        assert!(
            text.contains("environment variable `AzureAd__ClientIdd`"),
            "{text}"
        );
        assert!(!text.contains("secret-value"), "{text}");
    }

    #[test]
    fn an_error_mentions_the_unknown_keys_that_may_explain_it() {
        let e = AppConfig::parse(
            r#"{"AzureAd":{"ClientCredentials":[{"SorceType":"Path","CertificateDiskPath":"a.pem","Pasword":"pw-secret"}]}}"#,
            Some(Path::new("app.json")),
            None,
            [],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("AzureAd.ClientCredentials[0].SourceType: missing"),
            "{e}"
        );
        assert!(
            e.contains("note: unknown configuration key `AzureAd.ClientCredentials[0].SorceType` is ignored (did you mean `SourceType`?)"),
            "{e}"
        );
        assert!(e.contains("`AzureAd.ClientCredentials[0].Pasword`"), "{e}");
        assert!(!e.contains("pw-secret") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn suggestions_are_near_misses_only() {
        let keys = &CREDENTIAL_KEYS;
        assert_eq!(
            nearest("certificatepasword", keys, false),
            Some("CertificatePassword")
        );
        assert_eq!(
            nearest("CertificatePassWord", keys, false),
            Some("CertificatePassword")
        );
        assert_eq!(
            nearest("Password", keys, false),
            Some("CertificatePassword")
        );
        assert_eq!(nearest("SourceTyp", keys, false), Some("SourceType"));
        assert_eq!(
            nearest("Pkcs11KeyLable", keys, false),
            Some("Pkcs11KeyLabel")
        );
        assert_eq!(nearest("Colour", keys, false), None);
        assert_eq!(nearest("", keys, false), None);
        assert_eq!(nearest("€€", keys, false), None);
        assert_eq!(key_distance("kitten", "SITTING"), 3);
        assert_eq!(key_distance("", "abc"), 3);
        assert_eq!(key_distance("Straße", "strasse"), 2);
        assert_eq!(known_keys("TokenCache.Redis").map(|k| k.len()), Some(8));
        assert!(
            known_keys("AzureAd.ClientCredentials[]").is_some_and(|k| k.contains(&"Pkcs11PinFile"))
        );
        assert_eq!(known_keys("Nope"), None);
    }
}
