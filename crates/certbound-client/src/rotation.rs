//! File-backed certificates that follow their files (SPEC §3.6), and the process-wide
//! reload gate used when the token endpoint rejects a credential.
//!
//! [`FileCertificateCredential`] holds the certificate loaded from a `Path` entry (PEM pair
//! or PFX). At most once per check interval (default 5 s) — on the acquisition path, via
//! [`ClientCredential::generation`] — it compares the files' identity (the path resolved
//! through symlinks, so a Kubernetes `..data` swap counts, modification time, size, inode)
//! and, when that changed, a hash of their content. New content is loaded whole: a pair
//! that does not load (truncated, key not matching the certificate, garbage, a directory)
//! keeps the previous certificate and is logged once. A new certificate bumps the
//! generation, so cached headers are looked up again under the new thumbprint's cache key.

use std::collections::HashMap;
use std::hash::Hasher as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use certbound_core::{CertifiedKey, Thumbprint};

use crate::cache::BoxFuture;
use crate::error::ClientError;
use crate::secret::Secret;
use crate::vocab::{ClientCredential, ResolvedCredential};

/// How often the files are checked on the acquisition path unless configured otherwise.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The least time between two reloads of one credential after rejections (process-wide).
pub const RELOAD_MIN_INTERVAL: Duration = Duration::from_secs(30);

/// What identifies the files' current state without reading them.
type Stamp = Vec<(Option<PathBuf>, Option<SystemTime>, u64, u64)>;

struct Loaded {
    cert: CertifiedKey,
    hash: u64,
    /// The certificate this one replaced (for falling back when the provider refuses it).
    previous: Option<CertifiedKey>,
}

#[derive(Default)]
struct Watch {
    stamp: Stamp,
    /// Content that failed to load or that the provider refused: not retried until it changes.
    skip_hash: Option<u64>,
    problem: Option<String>,
}

/// A certificate from a `Path` credential entry, re-read when its files change.
pub struct FileCertificateCredential {
    path: PathBuf,
    password: Option<Secret>,
    interval: Duration,
    started: Instant,
    /// Nanoseconds after `started` when the next check is due.
    next_check: AtomicU64,
    current: ArcSwap<Loaded>,
    watch: Mutex<Watch>,
    generation: AtomicU64,
    rotations: AtomicU64,
    reloads: AtomicU64,
    retired: Mutex<Vec<Thumbprint>>,
}

impl std::fmt::Debug for FileCertificateCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCertificateCredential")
            .field("path", &self.path)
            .field(
                "x5t#S256",
                &self.current.load().cert.thumbprint().to_base64url(),
            )
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl FileCertificateCredential {
    /// Loads `path` (PEM with the key inside or beside it as `<stem>.key`, or PFX with
    /// `password`); fails now when it does not load.
    pub fn open(path: impl Into<PathBuf>, password: Option<Secret>) -> Result<Self, ClientError> {
        let path = path.into();
        let (stamp, hash) = fingerprint(&path).map_err(|m| file_error(&path, m))?;
        let cert = load(&path, password.as_ref()).map_err(|m| file_error(&path, m))?;
        Ok(Self {
            path,
            password,
            interval: DEFAULT_CHECK_INTERVAL,
            started: Instant::now(),
            next_check: AtomicU64::new(0),
            current: ArcSwap::from_pointee(Loaded {
                cert,
                hash,
                previous: None,
            }),
            watch: Mutex::new(Watch {
                stamp,
                ..Watch::default()
            }),
            generation: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
            retired: Mutex::new(Vec::new()),
        })
    }

    /// How often the files are checked (`Duration::ZERO`: on every acquisition).
    pub fn with_check_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// The certificate in use now.
    pub fn certificate(&self) -> CertifiedKey {
        self.current.load().cert.clone()
    }

    /// How many times a new certificate was taken into use (rotations and fallbacks).
    pub fn rotations(&self) -> u64 {
        self.rotations.load(Ordering::Relaxed)
    }

    /// How many reloads a rejection by the token endpoint caused.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Why the files' latest content was not taken into use, if it was not.
    pub fn last_problem(&self) -> Option<String> {
        self.watch.lock().ok().and_then(|w| w.problem.clone())
    }

    /// Checks the files now (ignoring the interval); true when a new certificate was taken.
    pub fn check_now(&self) -> bool {
        let Ok(mut w) = self.watch.lock() else {
            return false;
        };
        self.check_locked(&mut w, false)
    }

    fn poll(&self) {
        let now = self.started.elapsed().as_nanos() as u64;
        if now < self.next_check.load(Ordering::Relaxed) {
            return;
        }
        let Ok(mut w) = self.watch.try_lock() else {
            return; // another caller is checking
        };
        self.next_check.store(
            now.saturating_add(self.interval.as_nanos() as u64),
            Ordering::Relaxed,
        );
        self.check_locked(&mut w, false);
    }

    fn check_locked(&self, w: &mut Watch, force: bool) -> bool {
        let stamp = match stamp_of(&self.path) {
            Ok(s) => s,
            Err(m) => {
                self.problem(w, None, m);
                return false;
            }
        };
        if stamp == w.stamp && !force {
            return false;
        }
        let (stamp, hash) = match fingerprint(&self.path) {
            Ok(x) => x,
            Err(m) => {
                self.problem(w, None, m);
                return false;
            }
        };
        w.stamp = stamp;
        let cur = self.current.load();
        if hash == cur.hash || w.skip_hash == Some(hash) {
            return false;
        }
        match load(&self.path, self.password.as_ref()) {
            Ok(cert) => {
                w.problem = None;
                w.skip_hash = None;
                if cert.thumbprint() == cur.cert.thumbprint() {
                    self.current.store(Arc::new(Loaded {
                        cert: cur.cert.clone(),
                        hash,
                        previous: cur.previous.clone(),
                    }));
                    return false;
                }
                self.switch(
                    cert,
                    hash,
                    Some(cur.cert.clone()),
                    "file-backed certificate rotated",
                );
                true
            }
            Err(m) => {
                self.problem(w, Some(hash), m);
                false
            }
        }
    }

    fn switch(
        &self,
        cert: CertifiedKey,
        hash: u64,
        previous: Option<CertifiedKey>,
        what: &'static str,
    ) {
        let old = self.current.load().cert.thumbprint();
        let new = cert.thumbprint();
        tracing::info!(
            path = %self.path.display(),
            old_x5t_s256 = %old.to_base64url(),
            new_x5t_s256 = %new.to_base64url(),
            "{what}"
        );
        self.current.store(Arc::new(Loaded {
            cert,
            hash,
            previous,
        }));
        if let Ok(mut r) = self.retired.lock() {
            r.push(old);
        }
        self.rotations.fetch_add(1, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Logs once per distinct problem; the previous certificate stays in use.
    fn problem(&self, w: &mut Watch, hash: Option<u64>, m: String) {
        let msg = format!("{}: {m}", self.path.display());
        if hash.is_some() {
            w.skip_hash = hash;
        }
        if w.problem.as_deref() != Some(msg.as_str()) {
            tracing::warn!(
                path = %self.path.display(),
                x5t_s256 = %self.current.load().cert.thumbprint().to_base64url(),
                problem = %m,
                "the certificate file does not load; keeping the previous certificate"
            );
            w.problem = Some(msg);
        }
    }

    /// After a rejection: take new file content if there is any; otherwise, if the
    /// certificate in use replaced one that is still valid, go back to that one (the new
    /// one may not be registered yet) until the files change again.
    fn reload_now(&self) -> bool {
        let Ok(mut w) = self.watch.lock() else {
            return false;
        };
        self.reloads.fetch_add(1, Ordering::Relaxed);
        if self.check_locked(&mut w, true) {
            return true;
        }
        let cur = self.current.load_full();
        let now = certbound_core::now_unix();
        match &cur.previous {
            Some(prev) if prev.leaf().not_after() > now => {
                tracing::warn!(
                    path = %self.path.display(),
                    refused_x5t_s256 = %cur.cert.thumbprint().to_base64url(),
                    "the token endpoint refused the new certificate; using the previous one while it is valid"
                );
                w.skip_hash = Some(cur.hash);
                self.switch(
                    prev.clone(),
                    0,
                    None,
                    "file-backed certificate fell back to the previous one",
                );
                true
            }
            _ => false,
        }
    }
}

impl ClientCredential for FileCertificateCredential {
    fn describe(&self) -> String {
        let c = self.current.load();
        format!(
            "certificate {} (x5t#S256 {}) from {}",
            c.cert.leaf().subject(),
            c.cert.thumbprint(),
            self.path.display()
        )
    }
    fn provides_certificate(&self) -> bool {
        true
    }
    fn resolve(&self) -> BoxFuture<'_, Result<ResolvedCredential, ClientError>> {
        self.poll();
        let c = self.certificate();
        Box::pin(async move {
            let now = certbound_core::now_unix();
            if c.leaf().not_after() < now {
                return Err(ClientError::Credential {
                    what: format!(
                        "certificate {} from {}",
                        c.leaf().subject(),
                        self.path.display()
                    ),
                    message: format!(
                        "expired at {}; renew it",
                        certbound_core::fmt_unix(c.leaf().not_after())
                    ),
                });
            }
            Ok(ResolvedCredential::Certificate(c))
        })
    }
    fn generation(&self) -> u64 {
        self.poll();
        self.generation.load(Ordering::Acquire)
    }
    fn reload(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move { self.reload_now() })
    }
    fn reload_key(&self) -> Option<String> {
        Some(format!("path:{}", self.path.display()))
    }
    fn take_retired(&self) -> Vec<Thumbprint> {
        self.retired
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default()
    }
}

fn file_error(path: &Path, m: String) -> ClientError {
    ClientError::Credential {
        what: format!("certificate file {}", path.display()),
        message: m,
    }
}

fn load(path: &Path, password: Option<&Secret>) -> Result<CertifiedKey, String> {
    CertifiedKey::load_path(path, password.map(Secret::expose)).map_err(|e| e.to_string())
}

/// The files a `Path` entry reads: the file, and a `<stem>.key` beside a PEM file.
fn files_of(path: &Path) -> Vec<PathBuf> {
    let mut v = vec![path.to_path_buf()];
    let sibling = path.with_extension("key");
    if sibling != path && sibling.exists() {
        v.push(sibling);
    }
    v
}

fn stamp_of(path: &Path) -> Result<Stamp, String> {
    files_of(path)
        .iter()
        .map(|p| {
            let meta =
                std::fs::metadata(p).map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
            if !meta.is_file() {
                return Err(format!("{} is not a regular file", p.display()));
            }
            #[cfg(unix)]
            let ino = std::os::unix::fs::MetadataExt::ino(&meta);
            #[cfg(not(unix))]
            let ino = 0;
            Ok((
                std::fs::canonicalize(p).ok(),
                meta.modified().ok(),
                meta.len(),
                ino,
            ))
        })
        .collect()
}

/// The stamp and a hash of the content (change detection, not a security check).
fn fingerprint(path: &Path) -> Result<(Stamp, u64), String> {
    let stamp = stamp_of(path)?;
    let mut h = std::hash::DefaultHasher::new();
    for p in files_of(path) {
        let bytes = std::fs::read(&p).map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
        h.write(&bytes);
        h.write_u8(0xff);
    }
    Ok((stamp, h.finish()))
}

type Gate = Arc<tokio::sync::Mutex<Option<Instant>>>;

static GATES: LazyLock<Mutex<HashMap<String, Gate>>> = LazyLock::new(Mutex::default);

/// Reloads `credential` after a rejection, at most once per [`RELOAD_MIN_INTERVAL`] per
/// credential in the process; concurrent callers wait for the one reload in progress.
pub(crate) async fn gated_reload(credential: &dyn ClientCredential) {
    let Some(key) = credential.reload_key() else {
        return;
    };
    let gate = match GATES.lock() {
        Ok(mut g) => g.entry(key.clone()).or_default().clone(),
        Err(_) => return,
    };
    let mut last = gate.lock().await;
    if last.is_some_and(|t| t.elapsed() < RELOAD_MIN_INTERVAL) {
        tracing::debug!(credential = %key, "credential reloaded less than 30 s ago; not reloading");
        return;
    }
    let changed = credential.reload().await;
    *last = Some(Instant::now());
    tracing::info!(credential = %key, changed, "credential reloaded after the token endpoint rejected it");
}
