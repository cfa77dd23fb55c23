//! The registry file on disk: reloaded when it changes, updated under a lock.

use super::*;

/// What identifies a version of the registry file: rename-into-place changes the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) modified: Option<SystemTime>,
    pub(super) len: u64,
    pub(super) ino: u64,
}

pub(super) fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        ino,
    })
}

/// The registry as the running authority holds it, re-read when the file changes.
#[derive(Debug)]
pub(crate) struct Registry {
    pub(super) path: PathBuf,
    pub(super) current: RwLock<(Option<Stamp>, Arc<Clients>)>,
    /// Serialises read-modify-write of the file within this process.
    pub(super) write_lock: Mutex<()>,
}

impl Registry {
    pub(crate) fn new(path: PathBuf, file: &StateFile) -> Self {
        let st = stamp(&path);
        Self {
            path,
            current: RwLock::new((st, Arc::new(Clients::from_file(file)))),
            write_lock: Mutex::new(()),
        }
    }

    /// The current clients, re-reading the file first when it changed since last time
    /// (one `stat` per call). An unreadable or invalid file keeps the previous registry.
    pub(crate) fn clients(&self) -> Arc<Clients> {
        let now = stamp(&self.path);
        if let Ok(cur) = self.current.read()
            && cur.0 == now
        {
            return cur.1.clone();
        }
        let loaded = std::fs::read(&self.path)
            .map_err(|e| e.to_string())
            .and_then(|b| StateFile::parse(&b, &self.path).map_err(|e| e.to_string()));
        match loaded {
            Ok(f) => {
                let clients = Arc::new(Clients::from_file(&f));
                tracing::info!(clients = clients.len(), "registry reloaded");
                if let Ok(mut cur) = self.current.write() {
                    *cur = (now, clients.clone());
                }
                clients
            }
            Err(e) => {
                tracing::warn!(problem = %e, "cannot reload the registry; keeping the previous one");
                match self.current.write() {
                    Ok(mut cur) => {
                        cur.0 = now;
                        cur.1.clone()
                    }
                    Err(p) => p.into_inner().1.clone(),
                }
            }
        }
    }

    /// Adds or replaces a client in the file and in memory.
    pub(crate) fn register(&self, rec: ClientRecord) -> Result<(), AuthorityError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        upsert_in_file(&self.path, rec)?;
        // Next `clients()` sees the new stamp and reloads.
        let _ = self.clients();
        Ok(())
    }
}

/// Read-modify-write of the registry file (atomic replace), under an exclusive advisory
/// lock on `<file>.lock` so concurrent registrations — from this process, a running
/// `authority serve`, or several `authority register` commands — never lose one another's
/// entries. (The lock is released when the file handle drops, also on error or panic.)
pub(crate) fn upsert_in_file(path: &Path, rec: ClientRecord) -> Result<(), AuthorityError> {
    let lock_path = lock_path_for(path);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| AuthorityError::io(&lock_path, "open the registry lock file", e))?;
    lock.lock()
        .map_err(|e| AuthorityError::io(&lock_path, "lock", e))?;
    let bytes = std::fs::read(path).map_err(|e| AuthorityError::io(path, "read", e))?;
    let mut f = StateFile::parse(&bytes, path)?;
    f.upsert(rec);
    let written = crate::layout::write_atomic(path, &f.to_json()?, true);
    drop(lock);
    written
}

/// `authority.json` → `authority.json.lock` (next to it).
pub(super) fn lock_path_for(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    path.with_file_name(name)
}

impl From<CertAuthMethod> for AuthMethod {
    fn from(m: CertAuthMethod) -> Self {
        use CertAuthMethod as C;
        match m {
            C::SelfSignedTlsClientAuth => Self::SelfSignedTlsClientAuth,
            C::TlsClientAuth => Self::TlsClientAuth,
            C::PrivateKeyJwt => Self::PrivateKeyJwt,
        }
    }
}
