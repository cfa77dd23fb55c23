//! Writing the state directory: atomic file replacement (private files mode 0600) and the
//! tenant-id rule (tenant ids become URL paths and directory names).

use std::path::Path;

use certbound_core::fs::write_private_file;

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
