//! One-line setup from a configuration file, with every layer the file asks for.
//!
//! [`App::from_config_file`](certbound_client::App::from_config_file) builds the client
//! with its in-memory cache. The functions here do the same and, when the file has a
//! `TokenCache.Redis` section, put the encrypted Redis L2 cache (`certbound-redis`) behind
//! the in-memory L1 — the client crate cannot do that itself without depending on the
//! Redis crate, which depends on it.

use std::path::Path;
use std::sync::Arc;

use certbound_client::{App, AppBuilder, AppConfig};

/// Why an app could not be set up from its configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The configuration file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] certbound_client::ConfigError),
    /// The `TokenCache.Redis` section is invalid.
    #[error("{file}: {source}")]
    Cache {
        /// The configuration file.
        file: String,
        /// What is wrong.
        source: certbound_redis::RedisConfigError,
    },
    /// Building the app failed (credentials, authority …).
    #[error(transparent)]
    Client(#[from] certbound_client::ClientError),
}

/// An [`AppBuilder`] for `config`, with the Redis L2 cache attached when configured.
/// Environment overrides (`TokenCache__Redis__ConnectionString` …) apply. Must be called
/// inside a Tokio runtime when Redis is configured.
pub fn app_builder(config: AppConfig) -> Result<AppBuilder, SetupError> {
    let l1 = config.token_cache.max_entries.unwrap_or(10_000);
    let raw = match &config.source_file {
        Some(p) => std::fs::read(p)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok()),
        None => None,
    };
    let file = config
        .source_file
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "configuration".into());
    let mut builder = AppBuilder::from_config(config);
    let doc = raw.unwrap_or_else(|| serde_json::json!({}));
    match certbound_redis::TieredCache::from_json_lazy(&doc, std::env::vars(), l1) {
        Ok(Some(cache)) => {
            tracing::info!("token cache: in-memory L1 with encrypted Redis L2");
            builder = builder.token_cache(Arc::new(cache));
        }
        Ok(None) => {}
        Err(source) => return Err(SetupError::Cache { file, source }),
    }
    Ok(builder)
}

/// Reads `path` (with environment overrides) and builds the app, Redis L2 included when
/// configured.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let app = certbound::app_from_config_file("appsettings.json")?;
/// let header = app
///     .authorization_header_for_app(&["api://orders/.default"], &certbound::HeaderOptions::mtls_pop())
///     .await?;
/// # drop(header); Ok(()) }
/// ```
pub fn app_from_config_file(path: impl AsRef<Path>) -> Result<App, SetupError> {
    let config = AppConfig::from_file(path)?;
    Ok(app_builder(config)?.build()?)
}
