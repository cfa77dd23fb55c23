//! The seen client-assertion `jti`s, kept until their `exp` and across restarts.
//!
//! Each accepted `jti` is appended to `DIR/assertion-jtis.log` (one line:
//! `EXP SHA256-OF-CLIENT-AND-JTI`, base64url) and the log is `fsync`ed before the
//! assertion is accepted, so a token is never answered for an assertion a crash could
//! forget. Concurrent assertions share one `fsync` (group commit: whoever finds no sync in
//! flight writes everything pending). Requests without an assertion never touch the log.
//!
//! Bounded: at most `capacity` unexpired entries; when full, expired ones are pruned and,
//! if it is still full, the new assertion is refused (`temporarily_unavailable`), never an
//! unexpired entry evicted. On open, and when the log has grown to several times the
//! capacity, it is rewritten with the live entries only (temp file, `fsync`, rename,
//! `fsync` of the directory). A write or `fsync` failure refuses the assertions of that
//! batch and every later one until the authority restarts.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

use certbound_core::b64;

use crate::error::AuthorityError;

/// The log file name in the authority's directory.
pub(crate) const JTI_LOG: &str = "assertion-jtis.log";
/// Default bound on remembered unexpired assertions.
pub(crate) const DEFAULT_CAPACITY: usize = 100_000;

/// Why an assertion's `jti` was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayError {
    /// Seen before and not yet expired.
    Replayed,
    /// `capacity` unexpired entries are held.
    Full,
    /// It could not be written durably.
    Unavailable,
}

type Key = [u8; 32];

struct State {
    seen: HashMap<Key, i64>,
    /// `None`: memory only (unit tests).
    file: Option<File>,
    /// Lines not yet written.
    pending: Vec<u8>,
    /// Entries appended to `pending` so far / made durable so far (counters).
    appended: u64,
    durable: u64,
    syncing: bool,
    /// The first entry of a batch that could not be made durable.
    broken: Option<u64>,
    /// Lines in the log file (live or not).
    records: usize,
}

/// The seen-`jti` store of one authority directory.
pub(crate) struct JtiStore {
    path: Option<PathBuf>,
    capacity: usize,
    /// Entries kept past `exp` (the clock skew assertions are accepted with).
    skew: i64,
    state: Mutex<State>,
    synced: Condvar,
}

impl std::fmt::Debug for JtiStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JtiStore")
            .field("path", &self.path)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// The stored key of an assertion: SHA-256 of the client id and `jti` (fixed size, and
/// the log holds no request text).
pub(crate) fn key_for(client_id: &str, jti: &str) -> Key {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(client_id.as_bytes());
    ctx.update(b"\0");
    ctx.update(jti.as_bytes());
    let mut k = [0u8; 32];
    k.copy_from_slice(ctx.finish().as_ref());
    k
}

fn line(key: &Key, exp: i64) -> String {
    format!("{exp} {}\n", b64::encode(key))
}

fn parse_line(l: &str) -> Option<(Key, i64)> {
    let (exp, key) = l.split_once(' ')?;
    let exp: i64 = exp.parse().ok()?;
    let bytes = b64::decode(key.trim_end()).ok()?;
    Some((<Key>::try_from(bytes.as_slice()).ok()?, exp))
}

impl JtiStore {
    /// A store that forgets on restart (tests of the bound and replay logic, and the
    /// fuzzing entry point `AssertionCheck`).
    pub(crate) fn in_memory(capacity: usize, skew: i64) -> Self {
        Self::with(None, None, HashMap::new(), capacity, skew)
    }

    fn with(
        path: Option<PathBuf>,
        file: Option<File>,
        seen: HashMap<Key, i64>,
        capacity: usize,
        skew: i64,
    ) -> Self {
        let records = seen.len();
        Self {
            path,
            capacity,
            skew,
            state: Mutex::new(State {
                seen,
                file,
                pending: Vec::new(),
                appended: 0,
                durable: 0,
                syncing: false,
                broken: None,
                records,
            }),
            synced: Condvar::new(),
        }
    }

    /// Opens (or creates) `dir/assertion-jtis.log`, keeping the unexpired entries and
    /// rewriting the file with only those.
    pub(crate) fn open(
        dir: &Path,
        capacity: usize,
        skew: i64,
        now: i64,
    ) -> Result<Self, AuthorityError> {
        let path = dir.join(JTI_LOG);
        let mut seen = HashMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                // A torn last line (a crash during a write that was never acknowledged)
                // and any unreadable line are skipped.
                for l in String::from_utf8_lossy(&bytes).lines() {
                    if let Some((k, exp)) = parse_line(l)
                        && exp.saturating_add(skew) >= now
                    {
                        let e = seen.entry(k).or_insert(exp);
                        *e = (*e).max(exp);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AuthorityError::io(&path, "read", e)),
        }
        let file = rewrite(&path, &seen)?;
        Ok(Self::with(Some(path), Some(file), seen, capacity, skew))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `key` until `exp`, durably; fails if it is already there (and unexpired),
    /// if the store is full, or if it cannot be written.
    pub(crate) fn check_and_insert(&self, key: Key, exp: i64, now: i64) -> Result<(), ReplayError> {
        let mut g = self.lock();
        if g.broken.is_some() {
            return Err(ReplayError::Unavailable);
        }
        if let Some(&until) = g.seen.get(&key)
            && until.saturating_add(self.skew) >= now
        {
            return Err(ReplayError::Replayed);
        }
        if g.seen.len() >= self.capacity {
            let skew = self.skew;
            g.seen.retain(|_, until| until.saturating_add(skew) >= now);
            if g.seen.len() >= self.capacity {
                return Err(ReplayError::Full);
            }
        }
        g.seen.insert(key, exp);
        if g.file.is_none() {
            return Ok(());
        }
        g.pending.extend_from_slice(line(&key, exp).as_bytes());
        g.appended += 1;
        let mine = g.appended;
        loop {
            if g.durable >= mine {
                return Ok(());
            }
            if g.broken.is_some_and(|first| mine >= first) {
                return Err(ReplayError::Unavailable);
            }
            if g.syncing {
                g = self.synced.wait(g).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            // Lead: write and sync everything pending.
            let first = g.durable + 1;
            let target = g.appended;
            if g.records > 4 * self.capacity.max(256) {
                // Compact under the lock (rare): the live entries include the pending ones.
                let result = self.compact(&mut g, now);
                if result.is_ok() {
                    g.durable = target;
                } else {
                    g.broken = Some(first);
                }
                self.synced.notify_all();
                continue;
            }
            let buf = std::mem::take(&mut g.pending);
            let batch = usize::try_from(target - g.durable).unwrap_or(usize::MAX);
            let file = g.file.as_ref().and_then(|f| f.try_clone().ok());
            g.syncing = true;
            drop(g);
            let result = match file {
                Some(mut f) => f.write_all(&buf).and_then(|()| f.sync_data()),
                None => Err(std::io::Error::other("cannot share the log file handle")),
            };
            g = self.lock();
            g.syncing = false;
            match result {
                Ok(()) => {
                    g.durable = target;
                    g.records = g.records.saturating_add(batch);
                }
                Err(e) => {
                    tracing::error!(path = ?self.path, error = %e, "cannot write the client-assertion jti log; refusing client assertions until restart");
                    g.broken = Some(first);
                }
            }
            self.synced.notify_all();
        }
    }

    fn compact(&self, g: &mut State, now: i64) -> Result<(), AuthorityError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let skew = self.skew;
        g.seen.retain(|_, until| until.saturating_add(skew) >= now);
        let file = rewrite(path, &g.seen)?;
        g.file = Some(file);
        g.pending.clear();
        g.records = g.seen.len();
        Ok(())
    }

    /// Unexpired entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().seen.len()
    }
}

/// Writes `seen` to `path` durably (temp file, fsync, rename, fsync of the directory) and
/// returns the file opened for appending.
fn rewrite(path: &Path, seen: &HashMap<Key, i64>) -> Result<File, AuthorityError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("log.tmp");
    let mut text = String::with_capacity(seen.len() * 56);
    for (k, exp) in seen {
        text.push_str(&line(k, *exp));
    }
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        #[cfg(unix)]
        File::open(dir)?.sync_all()?;
        Ok::<(), std::io::Error>(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(AuthorityError::io(path, "write", e));
    }
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .map_err(|e| AuthorityError::io(path, "open for appending", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_refuses_second_use_and_is_bounded() {
        let c = JtiStore::in_memory(2, 60);
        let (a, b, d) = ([1u8; 32], [2u8; 32], [3u8; 32]);
        assert_eq!(c.check_and_insert(a, 1000, 900), Ok(()));
        assert_eq!(c.check_and_insert(a, 1000, 900), Err(ReplayError::Replayed));
        assert_eq!(c.check_and_insert(b, 1000, 900), Ok(()));
        assert_eq!(c.check_and_insert(d, 1000, 900), Err(ReplayError::Full));
        // Full of unexpired entries: still refused, nothing evicted.
        assert_eq!(c.check_and_insert(a, 1000, 950), Err(ReplayError::Replayed));
        // Once the entries expire (exp + skew) they make room.
        assert_eq!(c.check_and_insert(d, 3000, 2000), Ok(()));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn log_survives_reopen_and_drops_expired_entries() {
        let dir = tempfile::tempdir().unwrap();
        let s = JtiStore::open(dir.path(), 10, 60, 1000).unwrap();
        assert_eq!(s.check_and_insert([1; 32], 1100, 1000), Ok(()));
        assert_eq!(s.check_and_insert([2; 32], 1010, 1000), Ok(()));
        drop(s);
        // A torn line from a crash is ignored.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(JTI_LOG))
            .unwrap();
        f.write_all(b"1200 AAAA").unwrap();
        drop(f);
        let s = JtiStore::open(dir.path(), 10, 60, 1000).unwrap();
        assert_eq!(
            s.check_and_insert([1; 32], 1100, 1000),
            Err(ReplayError::Replayed)
        );
        assert_eq!(
            s.check_and_insert([2; 32], 1010, 1000),
            Err(ReplayError::Replayed)
        );
        drop(s);
        // Later: the second expired and is gone from the rewritten file.
        let s = JtiStore::open(dir.path(), 10, 60, 1080).unwrap();
        assert_eq!(s.len(), 1);
        let text = std::fs::read_to_string(dir.path().join(JTI_LOG)).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains(&b64::encode([2u8; 32])));
    }

    #[test]
    fn log_is_compacted_when_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let s = JtiStore::open(dir.path(), 1, 0, 1000).unwrap();
        // Capacity 1: each entry expires before the next, so the log grows by one
        // line each time until it is compacted (past 4 × 256 lines).
        for i in 0..1500u32 {
            let mut k = [0u8; 32];
            k[..4].copy_from_slice(&i.to_be_bytes());
            let now = 1000 + i64::from(i) * 2;
            assert_eq!(s.check_and_insert(k, now + 1, now), Ok(()), "{i}");
        }
        let lines = std::fs::read_to_string(dir.path().join(JTI_LOG))
            .unwrap()
            .lines()
            .count();
        assert!(lines <= 4 * 256 + 1, "{lines}");
    }

    #[test]
    fn concurrent_inserts_are_all_durable() {
        let dir = tempfile::tempdir().unwrap();
        let s = JtiStore::open(dir.path(), 10_000, 60, 1000).unwrap();
        std::thread::scope(|scope| {
            for t in 0..8u8 {
                let s = &s;
                scope.spawn(move || {
                    for i in 0..40u8 {
                        let mut k = [0u8; 32];
                        k[0] = t;
                        k[1] = i;
                        assert_eq!(s.check_and_insert(k, 1100, 1000), Ok(()));
                    }
                });
            }
        });
        drop(s);
        let s = JtiStore::open(dir.path(), 10_000, 60, 1000).unwrap();
        assert_eq!(s.len(), 320);
        let mut k = [0u8; 32];
        k[0] = 7;
        k[1] = 39;
        assert_eq!(
            s.check_and_insert(k, 1100, 1000),
            Err(ReplayError::Replayed)
        );
    }

    #[test]
    fn a_failed_write_refuses_that_assertion_and_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = JtiStore::open(dir.path(), 10, 60, 1000).unwrap();
        assert_eq!(s.check_and_insert([1; 32], 1100, 1000), Ok(()));
        // Swap in a handle that cannot be written.
        s.lock().file = Some(File::open(dir.path().join(JTI_LOG)).unwrap());
        assert_eq!(
            s.check_and_insert([2; 32], 1100, 1000),
            Err(ReplayError::Unavailable)
        );
        assert_eq!(
            s.check_and_insert([3; 32], 1100, 1000),
            Err(ReplayError::Unavailable)
        );
        drop(s);
        let s = JtiStore::open(dir.path(), 10, 60, 1000).unwrap();
        assert_eq!(
            s.len(),
            1,
            "only the durable entry is there after a restart"
        );
    }
}
