//! The authority's state directory: what is in it, creating it on first run and
//! loading it on every later one.
//!
//! | file | holds | mode |
//! |---|---|---|
//! | `ca.pem` | the development CA certificate: the trust anchor of the authority's TLS and of `tls_client_auth` | 0644 |
//! | `ca.key` | the CA's private key (PKCS#8) | 0600 |
//! | `tls.pem` | the HTTPS server certificate (127.0.0.1, ::1, localhost), then the CA | 0644 |
//! | `tls.key` | its key | 0600 |
//! | `signing.key` | the token-signing key (P-256 for ES256, RSA-2048 for RS256/PS256) | 0600 |
//! | `authority.json` | tenant, signing algorithm and the client registry | 0600 |
//! | `assertion-jtis.log` | the client-assertion `jti`s seen and not yet expired (hashed), so none is accepted twice, also across restarts | 0600 |
//!
//! Every file is written atomically (a temporary file in the same directory, then a
//! rename), so a crash or a concurrent `certbound authority register` never leaves a
//! half-written file behind.

use std::path::{Path, PathBuf};
use std::time::Duration;

use certbound_core::ca::{DevCa, IssueSpec};
use certbound_core::{Certificate, CertifiedKey, JwsAlgorithm, KeyKind, PrivateKey};

use crate::error::AuthorityError;
use crate::layout::{check_tenant, write_atomic};
use crate::registry::StateFile;

/// The CA certificate file name.
pub(crate) const CA_CERT: &str = "ca.pem";
/// The CA key file name.
pub(crate) const CA_KEY: &str = "ca.key";
/// The TLS server certificate file name.
pub(crate) const TLS_CERT: &str = "tls.pem";
/// The TLS server key file name.
pub(crate) const TLS_KEY: &str = "tls.key";
/// The token-signing key file name.
pub(crate) const SIGNING_KEY: &str = "signing.key";
/// The registry file name.
pub(crate) const REGISTRY: &str = "authority.json";

/// Renew the TLS server certificate when it has less than this left.
const TLS_RENEW_BEFORE: i64 = 30 * 86400;

/// Everything loaded from the directory.
pub(crate) struct Loaded {
    pub dir: PathBuf,
    pub ca: DevCa,
    pub tls: CertifiedKey,
    pub signing_key: PrivateKey,
    pub file: StateFile,
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, AuthorityError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AuthorityError::io(path, "read", e)),
    }
}

fn load_key(path: &Path) -> Result<PrivateKey, AuthorityError> {
    let bytes = std::fs::read(path).map_err(|e| AuthorityError::io(path, "read", e))?;
    PrivateKey::from_pem(&bytes)
        .map_err(|e| AuthorityError::state(path, format!("unusable private key: {e}")))?
        .ok_or_else(|| AuthorityError::state(path, "holds no PEM private key"))
}

/// A fresh tenant id: a random (version 4) GUID.
pub(crate) fn new_tenant_id() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    certbound_core::guid_text(&b)
}

fn key_kind_for(alg: JwsAlgorithm) -> KeyKind {
    match alg {
        JwsAlgorithm::ES256 => KeyKind::EcP256,
        JwsAlgorithm::ES384 => KeyKind::EcP384,
        JwsAlgorithm::RS256 | JwsAlgorithm::PS256 => KeyKind::Rsa2048,
        // The authority signs with the four algorithms above; anything newer gets P-256.
        _ => KeyKind::EcP256,
    }
}

/// Opens `dir`, creating whatever is missing.
pub(crate) fn open_or_init(
    dir: &Path,
    tenant: Option<&str>,
    signing_alg: JwsAlgorithm,
) -> Result<Loaded, AuthorityError> {
    if let Some(t) = tenant {
        check_tenant(t)?;
    }
    if dir.exists() && !dir.is_dir() {
        return Err(AuthorityError::state(dir, "exists and is not a directory"));
    }
    if !dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            b.mode(0o700);
        }
        b.create(dir)
            .map_err(|e| AuthorityError::io(dir, "create the directory", e))?;
    }

    // Absolute paths from here on: they end up in ready lines and messages.
    let dir = &std::fs::canonicalize(dir).map_err(|e| AuthorityError::io(dir, "resolve", e))?;

    // Settings and registry.
    let reg_path = dir.join(REGISTRY);
    let file = match read_opt(&reg_path)? {
        Some(bytes) => {
            let f = StateFile::parse(&bytes, &reg_path)?;
            if let Some(t) = tenant
                && t != f.tenant
            {
                return Err(AuthorityError::state(
                    &reg_path,
                    format!(
                        "this directory was initialised for tenant `{}`, not `{t}`; drop --tenant or use a new directory",
                        f.tenant
                    ),
                ));
            }
            f
        }
        None => {
            let f = StateFile::new(
                tenant.map(str::to_owned).unwrap_or_else(new_tenant_id),
                signing_alg,
            );
            write_atomic(&reg_path, &f.to_json()?, true)?;
            f
        }
    };

    // The development CA.
    let ca_cert_path = dir.join(CA_CERT);
    let ca_key_path = dir.join(CA_KEY);
    let ca = match (read_opt(&ca_cert_path)?, read_opt(&ca_key_path)?) {
        (Some(c), Some(_)) => {
            let key_pem = std::fs::read_to_string(&ca_key_path)
                .map_err(|e| AuthorityError::io(&ca_key_path, "read", e))?;
            let cert_pem = String::from_utf8(c)
                .map_err(|_| AuthorityError::state(&ca_cert_path, "is not PEM text"))?;
            DevCa::from_pem(&cert_pem, &key_pem, &ca_cert_path.display().to_string())?
        }
        (None, None) => {
            let ca = DevCa::generate("certbound development CA")?;
            write_atomic(&ca_key_path, ca.key().to_pkcs8_pem().as_bytes(), true)?;
            write_atomic(&ca_cert_path, ca.cert().to_pem().as_bytes(), false)?;
            ca
        }
        (Some(_), None) => {
            return Err(AuthorityError::state(
                &ca_key_path,
                "is missing while ca.pem exists; restore it, or remove ca.pem to create a new CA (clients must then trust the new ca.pem)",
            ));
        }
        (None, Some(_)) => {
            return Err(AuthorityError::state(
                &ca_cert_path,
                "is missing while ca.key exists; restore it, or remove ca.key to create a new CA",
            ));
        }
    };

    let tls = load_or_issue_tls(dir, &ca)?;

    // The token-signing key.
    let sk_path = dir.join(SIGNING_KEY);
    let signing_key = if sk_path.exists() {
        let k = load_key(&sk_path)?;
        if !k.supports(file.signing_alg) {
            return Err(AuthorityError::state(
                &sk_path,
                format!(
                    "is a {} key, which cannot sign {} (the algorithm in {REGISTRY})",
                    k.describe(),
                    file.signing_alg
                ),
            ));
        }
        k
    } else {
        let k = PrivateKey::generate(key_kind_for(file.signing_alg))
            .map_err(|e| AuthorityError::state(&sk_path, format!("cannot generate: {e}")))?;
        write_atomic(&sk_path, k.to_pkcs8_pem().as_bytes(), true)?;
        k
    };

    Ok(Loaded {
        dir: dir.clone(),
        ca,
        tls,
        signing_key,
        file,
    })
}

/// Loads the TLS server identity, issuing a new one when it is missing, was not issued
/// by this CA, or expires within 30 days.
fn load_or_issue_tls(dir: &Path, ca: &DevCa) -> Result<CertifiedKey, AuthorityError> {
    let cert_path = dir.join(TLS_CERT);
    let key_path = dir.join(TLS_KEY);
    if cert_path.exists() && key_path.exists() {
        let bytes =
            std::fs::read(&cert_path).map_err(|e| AuthorityError::io(&cert_path, "read", e))?;
        let chain = Certificate::all_from_pem(&bytes, &cert_path.display().to_string())?;
        let key = load_key(&key_path)?;
        let usable = chain.first().is_some_and(|leaf| {
            leaf.issuer() == ca.cert().subject()
                && leaf.not_after() - certbound_core::now_unix() > TLS_RENEW_BEFORE
                && leaf.public_key_bytes() == key.public_key_bytes()
        });
        if usable {
            return Ok(CertifiedKey::new(
                chain,
                key,
                &cert_path.display().to_string(),
            )?);
        }
        tracing::info!(path = %cert_path.display(), "renewing the authority's TLS certificate");
    }
    let spec = IssueSpec::server("certbound authority", &["127.0.0.1", "::1", "localhost"])
        .valid_for(Duration::from_secs(397 * 86400));
    let id = ca.issue_certified_key(&spec, KeyKind::EcP256)?;
    write_atomic(&key_path, id.key().to_pkcs8_pem().as_bytes(), true)?;
    let pem: String = id.chain().iter().map(|c| c.to_pem()).collect();
    write_atomic(&cert_path, pem.as_bytes(), false)?;
    Ok(id)
}
