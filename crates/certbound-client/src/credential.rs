//! Client credentials: what authenticates the app to the authority, and — for certificates —
//! the key a token is bound to.
//!
//! A credential is anything implementing [`ClientCredential`]: it *resolves*, per token
//! request, to a certificate with its key, a client secret or a signed client assertion.
//! Sources whose material changes over time (a workload-identity assertion file that is
//! rotated; a managed-identity certificate minted by IMDS v2, see [`crate::managed`])
//! resolve anew each time.
//!
//! [`load_first`] turns the configured `ClientCredentials` into one credential: entries are
//! tried in order, `Skip: true` entries are ignored, the first that loads wins, and why the
//! others failed is logged (never their secrets).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use certbound_core::CertifiedKey;

use crate::cache::BoxFuture;
use crate::config::{CredentialDescription, CredentialSourceConfig};
use crate::error::ClientError;
use crate::secret::Secret;

pub use crate::vocab::{ClientCredential, ResolvedCredential};

/// A fixed certificate with its key.
#[derive(Debug, Clone)]
pub struct CertificateCredential {
    cert: CertifiedKey,
    origin: String,
}

impl CertificateCredential {
    /// Wraps a loaded certificate; `origin` says where it came from (for logs).
    pub fn new(cert: CertifiedKey, origin: impl Into<String>) -> Self {
        Self {
            cert,
            origin: origin.into(),
        }
    }
    /// The certificate.
    pub fn certificate(&self) -> &CertifiedKey {
        &self.cert
    }
}

impl ClientCredential for CertificateCredential {
    fn describe(&self) -> String {
        format!(
            "certificate {} (x5t#S256 {}) from {}",
            self.cert.leaf().subject(),
            self.cert.thumbprint(),
            self.origin
        )
    }
    fn provides_certificate(&self) -> bool {
        true
    }
    fn resolve(&self) -> BoxFuture<'_, Result<ResolvedCredential, ClientError>> {
        let c = self.cert.clone();
        Box::pin(async move {
            // Expiry can happen while the process runs: say so instead of a TLS failure.
            let now = certbound_core::now_unix();
            if c.leaf().not_after() < now {
                return Err(ClientError::Credential {
                    what: format!("certificate {}", c.leaf().subject()),
                    message: format!(
                        "expired at {}; renew it",
                        certbound_core::fmt_unix(c.leaf().not_after())
                    ),
                });
            }
            Ok(ResolvedCredential::Certificate(c))
        })
    }
}

/// A client secret.
#[derive(Debug, Clone)]
pub struct SecretCredential {
    secret: Secret,
}

impl SecretCredential {
    /// Wraps a secret.
    pub fn new(secret: Secret) -> Self {
        Self { secret }
    }
}

impl ClientCredential for SecretCredential {
    fn describe(&self) -> String {
        "client secret".into()
    }
    fn provides_certificate(&self) -> bool {
        false
    }
    fn resolve(&self) -> BoxFuture<'_, Result<ResolvedCredential, ClientError>> {
        let s = self.secret.clone();
        Box::pin(async move { Ok(ResolvedCredential::Secret(s)) })
    }
}

/// A signed client assertion read from a file (Kubernetes workload identity), re-read when
/// the file's modification time or size changes.
#[derive(Debug)]
pub struct AssertionFileCredential {
    path: PathBuf,
    state: Mutex<Option<(Option<SystemTime>, u64, Secret)>>,
}

impl AssertionFileCredential {
    /// A credential reading `path`; fails now if the file is missing or empty.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, ClientError> {
        let me = Self {
            path: path.into(),
            state: Mutex::new(None),
        };
        me.read()?;
        Ok(me)
    }

    fn read(&self) -> Result<Secret, ClientError> {
        let err = |m: String| ClientError::Credential {
            what: format!("signed assertion file {}", self.path.display()),
            message: m,
        };
        let meta = std::fs::metadata(&self.path).map_err(|e| err(format!("cannot read: {e}")))?;
        let stamp = (meta.modified().ok(), meta.len());
        if let Ok(g) = self.state.lock()
            && let Some((m, l, s)) = g.as_ref()
            && (*m, *l) == stamp
            && m.is_some()
        {
            return Ok(s.clone());
        }
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| err(format!("cannot read: {e}")))?;
        let t = text.trim();
        if t.is_empty() {
            return Err(err("is empty".into()));
        }
        if t.split('.').count() != 3 {
            return Err(err(
                "does not hold a compact JWT (three dot-separated parts)".into(),
            ));
        }
        let s = Secret::new(t);
        if let Ok(mut g) = self.state.lock() {
            *g = Some((stamp.0, stamp.1, s.clone()));
        }
        tracing::debug!(path = %self.path.display(), "signed assertion file (re)read");
        Ok(s)
    }
}

impl ClientCredential for AssertionFileCredential {
    fn describe(&self) -> String {
        format!("signed assertion file {}", self.path.display())
    }
    fn provides_certificate(&self) -> bool {
        false
    }
    fn resolve(&self) -> BoxFuture<'_, Result<ResolvedCredential, ClientError>> {
        Box::pin(async move { self.read().map(ResolvedCredential::Assertion) })
    }
}

/// A certificate loading error as text; a PFX that does not open when the entry names no
/// `CertificatePassword` says that the password is missing (not "wrong password, or damaged").
fn pfx_message(e: &certbound_core::CertError, has_password: bool, key: &str) -> String {
    if !has_password && matches!(e.kind, certbound_core::CertErrorKind::Pkcs12) {
        format!(
            "{}: the PFX/PKCS#12 is password-protected and {key} has no CertificatePassword; \
             add \"CertificatePassword\" to the entry (or set the environment variable \
             {}__CertificatePassword)",
            e.source_name,
            key.replace(['.', '['], "__").replace(']', "")
        )
    } else {
        e.to_string()
    }
}

/// Loads one configured credential entry.
pub(crate) fn load_one(
    desc: &CredentialDescription,
) -> Result<Arc<dyn ClientCredential>, ClientError> {
    let key = &desc.key;
    Ok(match &desc.source {
        CredentialSourceConfig::Path { path, password } => {
            // Probe with the loader's typed error first (for the PFX password message).
            CertifiedKey::load_path(path, password.as_ref().map(Secret::expose)).map_err(|e| {
                ClientError::Credential {
                    what: format!("{key} (Path)"),
                    message: pfx_message(&e, password.is_some(), key),
                }
            })?;
            Arc::new(crate::rotation::FileCertificateCredential::open(
                path.clone(),
                password.clone(),
            )?)
        }
        CredentialSourceConfig::Base64Encoded { value, password } => {
            let src = format!("{key}.Base64EncodedValue");
            let c = CertifiedKey::from_base64(
                value.expose(),
                password.as_ref().map(Secret::expose),
                &src,
            )
            .map_err(|e| ClientError::Credential {
                what: format!("{key} (Base64Encoded)"),
                message: pfx_message(&e, password.is_some(), key),
            })?;
            Arc::new(CertificateCredential::new(c, src))
        }
        CredentialSourceConfig::ClientSecret { secret } => {
            Arc::new(SecretCredential::new(secret.clone()))
        }
        CredentialSourceConfig::SignedAssertionFilePath { path } => {
            Arc::new(AssertionFileCredential::open(path.clone())?)
        }
        CredentialSourceConfig::ManagedCertificate {
            managed_identity_client_id,
        } => Arc::new(
            crate::managed::ManagedIdentityCredential::from_env(
                managed_identity_client_id.as_deref(),
            )
            .map_err(|e| ClientError::Credential {
                what: format!("{key} (ManagedCertificate)"),
                message: e.to_string(),
            })?,
        ),
        other @ CredentialSourceConfig::SignedAssertionFromManagedIdentity { .. } => {
            return Err(ClientError::NotSupportedYet {
                source_type: other.source_type().into(),
                key: key.clone(),
            });
        }
    })
}

/// Tries the entries in order (skipping `Skip: true`); the first that loads wins.
pub(crate) fn load_first(
    descs: &[CredentialDescription],
) -> Result<Arc<dyn ClientCredential>, ClientError> {
    let mut tried = Vec::new();
    for d in descs {
        if d.skip {
            tracing::debug!(credential = %d.key, source_type = d.source.source_type(), "skipped (Skip: true)");
            continue;
        }
        match load_one(d) {
            Ok(c) => {
                if tried.is_empty() {
                    tracing::info!(credential = %d.key, source_type = d.source.source_type(), what = %c.describe(), "client credential loaded");
                } else {
                    tracing::warn!(credential = %d.key, source_type = d.source.source_type(), what = %c.describe(), skipped = %tried.join("; "), "client credential loaded after earlier entries failed");
                }
                return Ok(c);
            }
            Err(e) => {
                tracing::info!(credential = %d.key, source_type = d.source.source_type(), reason = %e, "client credential not usable; trying the next");
                // One prefix per error: a credential error already names its entry.
                let reason = match &e {
                    ClientError::Credential { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                tried.push(format!("{} ({}): {reason}", d.key, d.source.source_type()));
            }
        }
    }
    if tried.is_empty() {
        tried.push("AzureAd.ClientCredentials is empty (or every entry has Skip: true)".into());
    }
    Err(ClientError::NoUsableCredential { tried })
}
