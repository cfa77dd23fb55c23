//! `certbound cert new`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use certbound_authority::{AuthorityOptions, DevAuthority};
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

/// The output files of one `cert new`: opened up front; the ones this run created are
/// removed again unless [`Outputs::done`] is reached.
#[derive(Default)]
struct Outputs {
    files: Vec<(PathBuf, std::fs::File)>,
    created: Vec<PathBuf>,
    finished: bool,
}

impl Outputs {
    /// Opens `path` for writing: a new file (never following or replacing what is there),
    /// or with `force` the existing one, truncated. `private` files get mode 0600.
    fn open(&mut self, path: &Path, private: bool, force: bool) -> anyhow::Result<()> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true);
        if force {
            opts.create(true).truncate(true);
        } else {
            opts.create_new(true);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            opts.mode(if private { 0o600 } else { 0o644 });
        }
        let existed = force && std::fs::symlink_metadata(path).is_ok();
        let file = match opts.open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
                "{} already exists; refusing to overwrite it (pass --force to replace it, or choose another --out)",
                path.display()
            ),
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot create {}", path.display()))
                );
            }
        };
        #[cfg(unix)]
        if private {
            // A replaced (--force) file keeps its old mode otherwise.
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot restrict {} to mode 0600", path.display()))?;
        }
        if !existed {
            self.created.push(path.to_path_buf());
        }
        self.files.push((path.to_path_buf(), file));
        Ok(())
    }

    fn write(&mut self, i: usize, bytes: &[u8]) -> anyhow::Result<()> {
        use std::io::Write as _;
        let Some((path, file)) = self.files.get_mut(i) else {
            anyhow::bail!("internal error: output file {i} was not opened");
        };
        file.write_all(bytes)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))
    }

    fn done(mut self) {
        self.finished = true;
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        if !self.finished {
            for p in &self.created {
                let _ = std::fs::remove_file(p);
            }
        }
    }
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
    let spec = if args.server {
        let mut names: Vec<&str> = vec!["127.0.0.1", "localhost"];
        for san in &args.san {
            if san.is_empty() || san.len() > 253 || san.chars().any(|c| c.is_whitespace()) {
                anyhow::bail!("--san {san:?}: give a DNS name or an IP address");
            }
            if !names.contains(&san.as_str()) {
                names.push(san);
            }
        }
        IssueSpec::server(&args.cn, &names)
    } else {
        IssueSpec::client(&args.cn)
    }
    .valid_for(Duration::from_secs(u64::from(args.days) * 86400));
    let cred: CertifiedKey = match &args.ca_dir {
        Some(dir) => {
            super::authority::require_initialised(dir, "--ca-dir")?;
            let authority = DevAuthority::open_or_init(dir, AuthorityOptions::default())
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
    let pfx_path = args.pfx.as_ref().map(|_| with_suffix(&args.out, ".pfx"));
    // Every file is opened (created, unless --force) before anything is written: an existing
    // PREFIX.key may be a registered identity's private key.
    let mut files = Outputs::default();
    files.open(&pem_path, false, args.force)?;
    files.open(&key_path, true, args.force)?;
    if let Some(p) = &pfx_path {
        files.open(p, true, args.force)?;
    }
    let pem: String = cred.chain().iter().map(|c| c.to_pem()).collect();
    files.write(0, pem.as_bytes())?;
    files.write(1, cred.key().to_pkcs8_pem().as_bytes())?;
    if let Some(password) = &args.pfx {
        let bytes = cred.to_pkcs12(password)?;
        files.write(2, &bytes)?;
    }
    files.done();
    let pfx_path = pfx_path.map(|p| p.display().to_string());
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
    outln!("{out}")?;
    Ok(())
}
