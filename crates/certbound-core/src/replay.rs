//! The record of used proofs (DPoP `jti`s, SHR nonces): what refuses a replayed proof.
//!
//! Bounded and **fail-closed**: an entry lives until the proof it records could no longer be
//! accepted anyway (the proof window plus the future skew), and when the record is full of
//! such live entries a new proof is refused ([`ReplayCheck::Full`], answered 503) instead of
//! evicting one. An evicting cache (LRU, TinyLFU) lets an attacker who floods it with proofs of
//! their own push out — or keep out — the entry of a victim's captured proof, which can then be
//! replayed inside its window; the authority's assertion store follows the same rule.
//!
//! Written by hand (a sharded `HashMap` of SHA-256 digests to deadlines) because the cache
//! crates in use here (`moka`) evict by design, which is exactly what must not happen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;

/// Shards of the record: concurrent proofs rarely wait on one another.
const SHARDS: usize = 16;
/// Below this capacity one shard keeps the bound exact.
const SHARDED_FROM: u64 = 1024;

/// What [`ReplayCache::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayCheck {
    /// First use: recorded now.
    Fresh,
    /// Already used within its window: refuse the proof.
    Replayed,
    /// The record is full of live entries: refuse the proof for now (retryable), since
    /// forgetting a live entry would let that proof be replayed.
    Full,
}

/// A bounded, time-windowed, fail-closed record of used proofs (DPoP `jti`, SHR `nonce`).
/// Keys are SHA-256 digests, so hostile identifiers cannot bloat it beyond `capacity`
/// entries of 32 bytes (plus bookkeeping). Cheap to clone (shared).
///
/// The authority's token endpoint uses one for DPoP proofs too.
///
/// ```
/// use certbound_core::{ReplayCache, ReplayCheck};
/// let cache = ReplayCache::new(std::time::Duration::from_secs(65), 2);
/// assert!(cache.first_use("dpop", "jkt-1", "jti-1"));
/// assert!(!cache.first_use("dpop", "jkt-1", "jti-1"));
/// assert_eq!(cache.check("dpop", "jkt-2", "jti-1"), ReplayCheck::Fresh);
/// // Full of live entries: refused, never an eviction.
/// assert_eq!(cache.check("dpop", "jkt-3", "jti-1"), ReplayCheck::Full);
/// assert_eq!(cache.check("dpop", "jkt-1", "jti-1"), ReplayCheck::Replayed);
/// ```
#[derive(Clone)]
pub struct ReplayCache {
    inner: Arc<Inner>,
}

/// One shard: proof digest → the instant its entry may be forgotten.
type Shard = Mutex<HashMap<[u8; 32], Instant>>;

struct Inner {
    shards: Box<[Shard]>,
    per_shard: usize,
    ttl: Duration,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("entries", &self.len())
            .field("ttl", &self.inner.ttl)
            .finish()
    }
}

impl ReplayCache {
    /// Remembers each proof for `ttl` (at least the proof window plus the future skew), at
    /// most `capacity` live entries (at least 1).
    pub fn new(ttl: Duration, capacity: u64) -> Self {
        let capacity = capacity.max(1);
        let shards = if capacity < SHARDED_FROM { 1 } else { SHARDS };
        let per_shard = usize::try_from(capacity.div_ceil(shards as u64)).unwrap_or(usize::MAX);
        Self {
            inner: Arc::new(Inner {
                shards: (0..shards).map(|_| Mutex::new(HashMap::new())).collect(),
                per_shard,
                ttl: ttl.max(Duration::from_secs(1)),
            }),
        }
    }

    /// Records `id` (a `jti` or nonce) of a proof made by the key `key_thumbprint`, in the
    /// namespace `kind`. Atomic: of concurrent calls with the same values exactly one gets
    /// [`ReplayCheck::Fresh`].
    pub fn check(&self, kind: &str, key_thumbprint: &str, id: &str) -> ReplayCheck {
        let mut ctx = digest::Context::new(&digest::SHA256);
        for part in [kind.as_bytes(), key_thumbprint.as_bytes(), id.as_bytes()] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        let mut h = [0u8; 32];
        h.copy_from_slice(ctx.finish().as_ref());
        let shard = &self.inner.shards[usize::from(h[0]) % self.inner.shards.len()];
        let now = Instant::now();
        let mut seen = shard.lock().unwrap_or_else(|p| p.into_inner());
        match seen.get(&h) {
            Some(until) if *until > now => return ReplayCheck::Replayed,
            Some(_) => {}
            None if seen.len() >= self.inner.per_shard => {
                seen.retain(|_, until| *until > now);
                if seen.len() >= self.inner.per_shard {
                    return ReplayCheck::Full;
                }
            }
            None => {}
        }
        seen.insert(h, now + self.inner.ttl);
        ReplayCheck::Fresh
    }

    /// [`check`](Self::check) as a yes/no: `true` only for a first use. A full record
    /// answers `false` too (fail closed); call `check` to tell the two apart.
    pub fn first_use(&self, kind: &str, key_thumbprint: &str, id: &str) -> bool {
        self.check(kind, key_thumbprint, id) == ReplayCheck::Fresh
    }

    /// Entries currently held (live or not yet pruned).
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_never_evicts_a_live_entry() {
        // The attack on an evicting cache: record the victim's proof, flood, replay it.
        let cache = ReplayCache::new(Duration::from_secs(60), 100);
        assert_eq!(cache.check("dpop", "victim", "v-1"), ReplayCheck::Fresh);
        let mut refused = 0;
        for i in 0..10_000 {
            match cache.check("dpop", "attacker", &format!("a-{i}")) {
                ReplayCheck::Fresh => {}
                ReplayCheck::Full => refused += 1,
                ReplayCheck::Replayed => panic!("a fresh jti counted as replayed"),
            }
        }
        assert_eq!(refused, 10_000 - 99, "the bound holds, by refusing");
        assert_eq!(cache.check("dpop", "victim", "v-1"), ReplayCheck::Replayed);
        assert!(cache.len() <= 100);
    }

    #[test]
    fn sharded_caches_hold_the_bound_and_refuse_rather_than_forget() {
        let cache = ReplayCache::new(Duration::from_secs(60), 4096);
        let mut fresh = Vec::new();
        for i in 0..20_000 {
            if cache.check("shr", "k", &i.to_string()) == ReplayCheck::Fresh {
                fresh.push(i);
            }
        }
        assert!(
            fresh.len() <= 4096 && fresh.len() >= 4096 - SHARDS,
            "{}",
            fresh.len()
        );
        for i in fresh {
            assert_eq!(
                cache.check("shr", "k", &i.to_string()),
                ReplayCheck::Replayed
            );
        }
    }

    #[test]
    fn expired_entries_make_room_and_may_be_used_again() {
        let cache = ReplayCache::new(Duration::from_secs(1), 1);
        assert_eq!(cache.check("dpop", "k", "1"), ReplayCheck::Fresh);
        assert_eq!(cache.check("dpop", "k", "2"), ReplayCheck::Full);
        // Age the entry past its window instead of sleeping.
        for shard in cache.inner.shards.iter() {
            for until in shard.lock().unwrap().values_mut() {
                *until = Instant::now() - Duration::from_millis(1);
            }
        }
        assert_eq!(cache.check("dpop", "k", "2"), ReplayCheck::Fresh);
        assert_eq!(cache.check("dpop", "k", "2"), ReplayCheck::Replayed);
    }

    #[test]
    fn namespaces_and_keys_separate_entries() {
        let cache = ReplayCache::new(Duration::from_secs(60), 10);
        assert!(cache.first_use("dpop", "k", "x"));
        assert!(cache.first_use("shr", "k", "x"));
        assert!(cache.first_use("dpop", "k2", "x"));
        // Length-prefixed parts: ("ab","c") is not ("a","bc").
        assert!(cache.first_use("dpop", "ab", "c"));
        assert!(cache.first_use("dpop", "a", "bc"));
        assert!(!cache.first_use("dpop", "k", "x"));
    }
}
