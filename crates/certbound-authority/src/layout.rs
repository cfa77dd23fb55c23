//! Writing the state directory: atomic file replacement (private files mode 0600) and the
//! tenant-id rule (tenant ids become URL paths and directory names).

use std::path::Path;

use crate::error::AuthorityError;

/// Writes `bytes` to `path` atomically; `private` files get mode 0600.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), AuthorityError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let mut nonce = [0u8; 6];
    let _ = aws_lc_rs::rand::fill(&mut nonce);
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        certbound_core::b64::encode(nonce)
    ));
    let res = if private {
        write_private_file(&tmp, bytes)
    } else {
        std::fs::write(&tmp, bytes)
    };
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(AuthorityError::io(path, "write", e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        AuthorityError::io(path, "write (rename into place)", e)
    })
}

/// Tenant ids appear in URL paths: letters, digits, `-`, `.`, `_`; 1 to 64 characters.
pub(crate) fn check_tenant(t: &str) -> Result<(), AuthorityError> {
    let ok = !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._".contains(&c))
        && t != "."
        && t != "..";
    if ok {
        Ok(())
    } else {
        Err(AuthorityError::Options(
            "tenant ids may hold only letters, digits, `-`, `.` and `_` (1 to 64 characters)"
                .into(),
        ))
    }
}

/// Writes a file readable only by its owner (mode 0600 on Unix), e.g. for keys.
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}
