//! `certbound cert new`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use certbound_authority::{Authority, AuthorityOptions};
use certbound_core::ca::{self, IssueSpec};
use certbound_core::{CertifiedKey, KeyKind};

use super::CertNewArgs;

fn key_kind(s: &str) -> anyhow::Result<KeyKind> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "ec-p256" | "p256" | "p-256" | "ec" => KeyKind::EcP256,
        "ec-p384" | "p384" | "p-384" => KeyKind::EcP384,
        "rsa2048" | "rsa" | "rsa-2048" => KeyKind::Rsa2048,
        "rsa3072" | "rsa-3072" => KeyKind::Rsa3072,
        _ => anyhow::bail!("--key-type `{s}`: expected ec-p256, ec-p384, rsa2048 or rsa3072"),
    })
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Generates a key and a certificate (self-signed, or issued by the authority's CA).
pub async fn new(args: CertNewArgs) -> anyhow::Result<()> {
    let kind = key_kind(&args.key_type)?;
    if args.days == 0 || args.days > 3650 {
        anyhow::bail!("--days must be between 1 and 3650");
    }
    if args.cn.is_empty() || args.cn.len() > 64 {
        anyhow::bail!("--cn must be 1 to 64 characters");
    }
    let spec =
        IssueSpec::client(&args.cn).valid_for(Duration::from_secs(u64::from(args.days) * 86400));
    let cred: CertifiedKey = match &args.ca_dir {
        Some(dir) => {
            let authority = Authority::open_or_init(dir, AuthorityOptions::default())
                .with_context(|| format!("authority directory {}", dir.display()))?;
            authority.ca().issue_certified_key(&spec, kind)?
        }
        None => ca::self_signed_certified_key(&spec, kind)?,
    };
    if let Some(parent) = args.out.parent()
        && !parent.as_os_str().is_empty()
        && !parent.is_dir()
    {
        anyhow::bail!("--out: directory {} does not exist", parent.display());
    }
    let pem_path = with_suffix(&args.out, ".pem");
    let key_path = with_suffix(&args.out, ".key");
    let pem: String = cred.chain().iter().map(|c| c.to_pem()).collect();
    std::fs::write(&pem_path, pem)
        .with_context(|| format!("cannot write {}", pem_path.display()))?;
    certbound_core::write_private_file(&key_path, cred.key().to_pkcs8_pem().as_bytes())
        .with_context(|| format!("cannot write {}", key_path.display()))?;
    let pfx_path = match &args.pfx {
        Some(password) => {
            let p = with_suffix(&args.out, ".pfx");
            let bytes = cred.to_pkcs12(password)?;
            certbound_core::write_private_file(&p, &bytes)
                .with_context(|| format!("cannot write {}", p.display()))?;
            Some(p.display().to_string())
        }
        None => None,
    };
    let leaf = cred.leaf();
    let out = serde_json::json!({
        "cert": pem_path.display().to_string(),
        "key": key_path.display().to_string(),
        "pfx": pfx_path,
        "subject": leaf.subject(),
        "issuer": leaf.issuer(),
        "not_after": leaf.not_after(),
        "key_type": cred.key().describe(),
        "x5t#S256": leaf.thumbprint().to_base64url(),
        "x5t": leaf.x5t_sha1(),
    });
    println!("{out}");
    Ok(())
}
