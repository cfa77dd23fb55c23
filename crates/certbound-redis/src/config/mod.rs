//! Configuration of the Redis token cache: the `TokenCache:Redis` section of the JSON
//! configuration file (keys case-insensitive, environment overrides with `__` nesting),
//! or the same options through [`RedisCacheConfig::builder`].
//!
//! ```json
//! "TokenCache": {
//!   "Redis": {
//!     "ConnectionString": "redis://127.0.0.1:6379",
//!     "KeyPrefix": "certbound:",
//!     "EncryptionKey": "<base64 of 32 random bytes>",
//!     "EncryptionKeys": ["<older base64 keys, still accepted for reading>"],
//!     "Timeout": "250ms",
//!     "Cluster": false
//!   }
//! }
//! ```
//!
//! `ConnectionString` is a `redis://`/`rediss://` URL, several of them separated by commas (a
//! Redis Cluster's seed nodes), or a StackExchange.Redis-style string
//! (`host:6379,password=…,ssl=true,defaultDatabase=0`) as found in .NET configurations.
//! `Cluster: true` (or more than one node) selects Redis Cluster. `TlsCaCertificatePath`
//! (optional) names a PEM file of CA certificates trusted for `rediss://` instead of the
//! system roots.
//! `Timeout` bounds every Redis command: a number of milliseconds, `"250ms"`, `"1.5s"` or a
//! .NET `TimeSpan` (`"00:00:00.250"`).

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::crypto::{EncryptionKey, Keyring};
use crate::error::RedisConfigError;

/// Default bound on each Redis command.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default prefix of the Redis key names.
pub const DEFAULT_KEY_PREFIX: &str = "certbound:";
/// Default first wait before Redis is tried again after a failure (it doubles up to
/// [`DEFAULT_MAX_RETRY_INTERVAL`]).
pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Default longest wait between attempts while Redis is unavailable.
pub const DEFAULT_MAX_RETRY_INTERVAL: Duration = Duration::from_secs(10);

const SECTION: &str = "TokenCache:Redis";

/// Every key of `TokenCache:Redis` that [`RedisCacheConfig::from_section`] reads. Unknown
/// keys are reported (with the nearest of these) by the client's configuration loader,
/// `certbound_client::AppConfig::warnings`, which knows the same list.
pub const SECTION_KEYS: [&str; 8] = [
    "ConnectionString",
    "KeyPrefix",
    "EncryptionKey",
    "EncryptionKeys",
    "Timeout",
    "TlsCaCertificatePath",
    "RetryInterval",
    "Cluster",
];

/// Validated options of a [`crate::RedisTokenCache`]. `Debug` hides passwords and keys.
pub struct RedisCacheConfig {
    pub(crate) nodes: Vec<String>,
    pub(crate) cluster: bool,
    pub(crate) key_prefix: String,
    pub(crate) keyring: Keyring,
    pub(crate) timeout: Duration,
    pub(crate) retry_interval: Duration,
    pub(crate) max_retry_interval: Duration,
    /// PEM of the CA certificate(s) trusted for `rediss://` instead of the system roots.
    pub(crate) tls_ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for RedisCacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<String> = self.nodes.iter().map(|n| redact_url(n)).collect();
        f.debug_struct("RedisCacheConfig")
            .field("nodes", &nodes)
            .field("cluster", &self.cluster)
            .field("key_prefix", &self.key_prefix)
            .field("keyring", &self.keyring)
            .field("timeout", &self.timeout)
            .field("retry_interval", &self.retry_interval)
            .field("max_retry_interval", &self.max_retry_interval)
            .field(
                "tls_ca",
                &self
                    .tls_ca_pem
                    .as_ref()
                    .map(|p| format!("{} bytes of PEM", p.len())),
            )
            .finish()
    }
}

/// `redis://user:secret@host/` → `redis://user:<redacted>@host/`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<redacted>".into();
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let path = path.map(|p| format!("/{p}")).unwrap_or_default();
            format!("{scheme}://{user}:<redacted>@{host}{path}")
        }
        None => url.to_owned(),
    }
}

impl RedisCacheConfig {
    /// Starts a builder.
    ///
    /// ```
    /// use certbound_redis::{EncryptionKey, RedisCacheConfig};
    /// let config = RedisCacheConfig::builder()
    ///     .connection_string("redis://127.0.0.1:6379")
    ///     .key_prefix("myapp:tokens:")
    ///     .encryption_key(EncryptionKey::generate().unwrap())
    ///     .timeout(std::time::Duration::from_millis(200))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(config.key_prefix(), "myapp:tokens:");
    /// ```
    pub fn builder() -> RedisCacheConfigBuilder {
        RedisCacheConfigBuilder::default()
    }

    /// The prefix of every Redis key name.
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The bound on each Redis command.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether Redis Cluster is used.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Reads `TokenCache:Redis` from a whole configuration document (keys matched
    /// case-insensitively). `Ok(None)` when the document has no such section: no L2 cache.
    pub fn from_json(document: &Value) -> Result<Option<Self>, RedisConfigError> {
        let Some(section) = get_ci(document, "TokenCache").and_then(|t| get_ci(t, "Redis")) else {
            return Ok(None);
        };
        if section.is_null() {
            return Ok(None);
        }
        Self::from_section(section).map(Some)
    }

    /// Like [`from_json`](Self::from_json), after applying environment overrides
    /// (`TokenCache__Redis__EncryptionKey`, `TokenCache__Redis__EncryptionKeys__0`, …; names
    /// case-insensitive) from `vars`, e.g. `std::env::vars()`.
    pub fn from_json_with_env(
        document: &Value,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Option<Self>, RedisConfigError> {
        let mut doc = document.clone();
        apply_env_overrides(&mut doc, vars);
        Self::from_json(&doc)
    }

    /// Reads the `Redis` object itself (the value of `TokenCache:Redis`).
    pub fn from_section(section: &Value) -> Result<Self, RedisConfigError> {
        if !section.is_object() {
            return Err(RedisConfigError::invalid(SECTION, "must be a JSON object"));
        }
        let mut b = Self::builder();
        match get_ci(section, "ConnectionString") {
            Some(Value::String(s)) => b = b.connection_string(s),
            Some(_) => {
                return Err(RedisConfigError::invalid(
                    path("ConnectionString"),
                    "must be a string",
                ));
            }
            None => {}
        }
        match get_ci(section, "KeyPrefix") {
            Some(Value::String(s)) => b = b.key_prefix(s),
            Some(Value::Null) | None => {}
            Some(_) => {
                return Err(RedisConfigError::invalid(
                    path("KeyPrefix"),
                    "must be a string",
                ));
            }
        }
        match get_ci(section, "EncryptionKey") {
            Some(Value::String(s)) => {
                b.current = Some(EncryptionKey::from_base64_at(s, &path("EncryptionKey")));
            }
            Some(Value::Null) | None => {}
            Some(_) => {
                return Err(RedisConfigError::invalid(
                    path("EncryptionKey"),
                    "must be a base64 string",
                ));
            }
        }
        match get_ci(section, "EncryptionKeys") {
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{}:{i}", path("EncryptionKeys"));
                    let Value::String(s) = item else {
                        return Err(RedisConfigError::invalid(p, "must be a base64 string"));
                    };
                    b.older.push(EncryptionKey::from_base64_at(s, &p));
                }
            }
            Some(Value::String(s)) => {
                for (i, part) in s
                    .split([',', ';'])
                    .filter(|p| !p.trim().is_empty())
                    .enumerate()
                {
                    let p = format!("{}:{i}", path("EncryptionKeys"));
                    b.older.push(EncryptionKey::from_base64_at(part, &p));
                }
            }
            Some(Value::Null) | None => {}
            Some(_) => {
                return Err(RedisConfigError::invalid(
                    path("EncryptionKeys"),
                    "must be an array of base64 strings",
                ));
            }
        }
        if let Some(v) = get_ci(section, "Timeout") {
            b = b.timeout(parse_duration(v, &path("Timeout"))?);
        }
        match get_ci(section, "TlsCaCertificatePath") {
            Some(Value::String(s)) if !s.trim().is_empty() => b = b.tls_ca_certificate_path(s),
            Some(Value::String(_)) | Some(Value::Null) | None => {}
            Some(_) => {
                return Err(RedisConfigError::invalid(
                    path("TlsCaCertificatePath"),
                    "must be a file path",
                ));
            }
        }
        if let Some(v) = get_ci(section, "RetryInterval") {
            b = b.retry_interval(parse_duration(v, &path("RetryInterval"))?);
        }
        match get_ci(section, "Cluster") {
            Some(Value::Bool(c)) => b = b.cluster(*c),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" => b = b.cluster(true),
                "false" => b = b.cluster(false),
                _ => {
                    return Err(RedisConfigError::invalid(
                        path("Cluster"),
                        "must be true or false",
                    ));
                }
            },
            Some(Value::Null) | None => {}
            Some(_) => {
                return Err(RedisConfigError::invalid(
                    path("Cluster"),
                    "must be true or false",
                ));
            }
        }
        b.build()
    }
}

fn path(key: &str) -> String {
    format!("{SECTION}:{key}")
}

/// Builder of [`RedisCacheConfig`].
#[derive(Default)]
pub struct RedisCacheConfigBuilder {
    connection_string: Option<String>,
    cluster: Option<bool>,
    key_prefix: Option<String>,
    current: Option<Result<EncryptionKey, RedisConfigError>>,
    older: Vec<Result<EncryptionKey, RedisConfigError>>,
    timeout: Option<Duration>,
    retry_interval: Option<Duration>,
    max_retry_interval: Option<Duration>,
    tls_ca: Option<Result<Vec<u8>, RedisConfigError>>,
}

impl fmt::Debug for RedisCacheConfigBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCacheConfigBuilder")
            .field(
                "connection_string",
                &self.connection_string.as_deref().map(|_| "<redacted>"),
            )
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisCacheConfigBuilder {
    /// Where Redis is (see the module docs for the accepted forms). Required.
    pub fn connection_string(mut self, s: impl Into<String>) -> Self {
        self.connection_string = Some(s.into());
        self
    }

    /// Uses Redis Cluster (implied when several nodes are given).
    pub fn cluster(mut self, cluster: bool) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Prefix of every Redis key name (default `certbound:`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = Some(prefix.into());
        self
    }

    /// The key that seals new entries (and opens them). Required.
    pub fn encryption_key(mut self, key: EncryptionKey) -> Self {
        self.current = Some(Ok(key));
        self
    }

    /// An older key, kept so entries written before a rotation still open.
    pub fn older_key(mut self, key: EncryptionKey) -> Self {
        self.older.push(Ok(key));
        self
    }

    /// Bound on each Redis command, including connecting (default 250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// First wait before Redis is tried again after a failure (default 500 ms); it doubles
    /// on each further failure up to the maximum.
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = Some(interval);
        self
    }

    /// Longest wait between attempts while Redis is unavailable (default 10 s).
    pub fn max_retry_interval(mut self, interval: Duration) -> Self {
        self.max_retry_interval = Some(interval);
        self
    }

    /// Trusts the CA certificate(s) in this PEM file for `rediss://` connections, instead of
    /// the system roots (`TlsCaCertificatePath`).
    pub fn tls_ca_certificate_path(mut self, path: impl AsRef<std::path::Path>) -> Self {
        let p = path.as_ref();
        self.tls_ca = Some(
            std::fs::read(p)
                .map_err(|e| {
                    RedisConfigError::invalid(
                        "TokenCache:Redis:TlsCaCertificatePath",
                        format!("cannot read {}: {e}", p.display()),
                    )
                })
                .and_then(|pem| {
                    if String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                        Ok(pem)
                    } else {
                        Err(RedisConfigError::invalid(
                            "TokenCache:Redis:TlsCaCertificatePath",
                            format!("{} holds no PEM certificate", p.display()),
                        ))
                    }
                }),
        );
        self
    }

    /// Trusts the CA certificate(s) in this PEM text for `rediss://` connections.
    pub fn tls_ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_ca = Some(Ok(pem.into()));
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<RedisCacheConfig, RedisConfigError> {
        let cs = self.connection_string.ok_or_else(|| {
            RedisConfigError::missing(
                path("ConnectionString"),
                "set it to the Redis URL, e.g. redis://127.0.0.1:6379",
            )
        })?;
        let nodes = parse_connection_string(&cs)?;
        let cluster = self.cluster.unwrap_or(false) || nodes.len() > 1;
        let current = self.current.ok_or_else(|| {
            RedisConfigError::missing(
                path("EncryptionKey"),
                "every cached token is encrypted: set it to 32 random bytes in base64 (`openssl rand -base64 32`), the same on every replica",
            )
        })??;
        let mut keyring = Keyring::new(current);
        for k in self.older {
            keyring = keyring.with_older(k?);
        }
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return Err(RedisConfigError::invalid(
                path("Timeout"),
                "must be greater than zero",
            ));
        }
        let retry_interval = self.retry_interval.unwrap_or(DEFAULT_RETRY_INTERVAL);
        let max_retry_interval = self
            .max_retry_interval
            .unwrap_or(DEFAULT_MAX_RETRY_INTERVAL)
            .max(retry_interval);
        Ok(RedisCacheConfig {
            nodes,
            cluster,
            key_prefix: self.key_prefix.unwrap_or_else(|| DEFAULT_KEY_PREFIX.into()),
            keyring,
            timeout,
            retry_interval,
            max_retry_interval,
            tls_ca_pem: self.tls_ca.transpose()?,
        })
    }
}

mod parse;

use parse::{apply_env_overrides, get_ci, parse_connection_string, parse_duration};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    #[test]
    fn the_client_configuration_knows_every_key_read_here() {
        // Unknown-key warnings for TokenCache.Redis come from the client's loader.
        let mut known = certbound_client::config::known_keys("TokenCache.Redis").unwrap();
        let mut here = SECTION_KEYS.to_vec();
        known.sort_unstable();
        here.sort_unstable();
        assert_eq!(known, here);
        // And every key from_section reads is in SECTION_KEYS (this file's get_ci calls).
        let src = include_str!("mod.rs");
        let prod = src.split("#[cfg(test)]").next().unwrap_or(src);
        let mut read = 0;
        for part in prod.split("get_ci(section, \"").skip(1) {
            let key = part.split('"').next().unwrap_or_default();
            assert!(
                SECTION_KEYS.contains(&key),
                "{key} is read but not in SECTION_KEYS"
            );
            read += 1;
        }
        assert!(read >= SECTION_KEYS.len(), "found only {read} reads");
        let doc = json!({"TokenCache": {"Redis": {"ConnectionString": "redis://h:1", "EncryptionKey": K1,
            "KeyPrefix": "p:", "Timeout": 100, "RetryInterval": 100, "Cluster": false}}});
        let cfg = certbound_client::AppConfig::from_json_str(&doc.to_string()).unwrap();
        assert!(cfg.warnings().is_empty(), "{:?}", cfg.warnings());
    }

    #[test]
    fn reads_section_case_insensitively() {
        let doc = json!({ "tokencache": { "REDIS": {
            "connectionstring": "redis://127.0.0.1:6390/2", "keyPrefix": "svc:",
            "EncryptionKey": K1, "EncryptionKeys": [K2], "Timeout": "00:00:00.300" } } });
        let c = RedisCacheConfig::from_json(&doc).unwrap().unwrap();
        assert_eq!(c.nodes, vec!["redis://127.0.0.1:6390/2"]);
        assert_eq!(c.key_prefix, "svc:");
        assert_eq!(c.timeout, Duration::from_millis(300));
        assert_eq!(c.keyring.older_ids().len(), 1);
        assert!(!c.cluster);
    }

    #[test]
    fn absent_section_is_no_cache() {
        assert!(
            RedisCacheConfig::from_json(&json!({"AzureAd": {}}))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn errors_name_the_key_and_hide_values() {
        let doc = json!({"TokenCache": {"Redis": {"ConnectionString": "redis://h:1"}}});
        let e = RedisCacheConfig::from_json(&doc).unwrap_err().to_string();
        assert!(
            e.contains("TokenCache:Redis:EncryptionKey") && e.contains("openssl"),
            "{e}"
        );
        let doc = json!({"TokenCache": {"Redis": {"EncryptionKey": K1}}});
        let e = RedisCacheConfig::from_json(&doc).unwrap_err().to_string();
        assert!(e.contains("ConnectionString"), "{e}");
        let doc = json!({"TokenCache": {"Redis": {"ConnectionString": "redis://h:1",
            "EncryptionKey": K1, "EncryptionKeys": [K2, "c2hvcnQ="]}}});
        let e = RedisCacheConfig::from_json(&doc).unwrap_err().to_string();
        assert!(
            e.contains("EncryptionKeys:1") && e.contains("32 bytes"),
            "{e}"
        );
        assert!(!e.contains("c2hvcnQ"), "{e}");
        let doc = json!({"TokenCache": {"Redis": {"ConnectionString": "redis://h:1",
            "EncryptionKey": K1, "Timeout": "soon"}}});
        let e = RedisCacheConfig::from_json(&doc).unwrap_err().to_string();
        assert!(e.contains("Timeout"), "{e}");
        let doc = json!({"TokenCache": {"Redis": {"ConnectionString": "http://user:hunter2@h:1",
            "EncryptionKey": K1}}});
        let e = RedisCacheConfig::from_json(&doc).unwrap_err().to_string();
        assert!(
            e.contains("ConnectionString") && !e.contains("hunter2"),
            "{e}"
        );
    }

    #[test]
    fn environment_overrides() {
        let doc = json!({"TokenCache": {"Redis": {"ConnectionString": "redis://h:1", "EncryptionKey": K1}}});
        let vars = vec![
            (
                "TOKENCACHE__REDIS__CONNECTIONSTRING".to_owned(),
                "redis://other:7000".to_owned(),
            ),
            (
                "TokenCache__Redis__EncryptionKeys__0".to_owned(),
                K2.to_owned(),
            ),
            ("TokenCache__Redis__Timeout".to_owned(), "1.5s".to_owned()),
            ("AzureAd__ClientId".to_owned(), "ignored".to_owned()),
        ];
        let c = RedisCacheConfig::from_json_with_env(&doc, vars)
            .unwrap()
            .unwrap();
        assert_eq!(c.nodes, vec!["redis://other:7000"]);
        assert_eq!(c.keyring.older_ids().len(), 1);
        assert_eq!(c.timeout, Duration::from_millis(1500));
        // A section entirely from the environment.
        let vars = vec![
            (
                "TokenCache__Redis__ConnectionString".to_owned(),
                "redis://h:1".to_owned(),
            ),
            ("TokenCache__Redis__EncryptionKey".to_owned(), K1.to_owned()),
        ];
        assert!(
            RedisCacheConfig::from_json_with_env(&json!({}), vars)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn stackexchange_and_cluster_forms() {
        let c = RedisCacheConfig::builder()
            .connection_string(
                "cache.local:6380,password=p@ss:w,ssl=True,defaultDatabase=3,abortConnect=false",
            )
            .encryption_key(EncryptionKey::from_base64(K1).unwrap())
            .build()
            .unwrap();
        assert_eq!(c.nodes, vec!["rediss://:p%40ss%3Aw@cache.local:6380/3"]);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("p%40ss") && !dbg.contains("AAECAw"), "{dbg}");
        let c = RedisCacheConfig::builder()
            .connection_string("redis://a:7000,redis://b:7001")
            .encryption_key(EncryptionKey::from_base64(K1).unwrap())
            .build()
            .unwrap();
        assert!(c.cluster);
        assert_eq!(c.nodes.len(), 2);
    }

    #[test]
    fn durations() {
        let d = |v: Value| parse_duration(&v, "x");
        assert_eq!(d(json!(250)).unwrap(), Duration::from_millis(250));
        assert_eq!(d(json!("250ms")).unwrap(), Duration::from_millis(250));
        assert_eq!(d(json!("2s")).unwrap(), Duration::from_secs(2));
        assert_eq!(
            d(json!("00:01:00.5")).unwrap(),
            Duration::from_millis(60_500)
        );
        assert!(d(json!(-1)).is_err());
        assert!(d(json!("1:2")).is_err());
        assert!(d(json!(true)).is_err());
    }

    #[test]
    fn redacts_urls() {
        assert_eq!(
            redact_url("redis://u:pw@h:1/0"),
            "redis://u:<redacted>@h:1/0"
        );
        assert_eq!(redact_url("redis://:pw@h:1"), "redis://:<redacted>@h:1");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        assert_eq!(
            redact_url("redis://ü:pä€@hö:1/0@x"),
            "redis://ü:<redacted>@hö:1/0@x"
        );
        assert_eq!(redact_url("redis://h:1/a@b"), "redis://h:1/a@b");
        assert_eq!(redact_url("h€:1"), "<redacted>");
    }
}
