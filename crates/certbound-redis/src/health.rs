//! Redis availability: a small circuit breaker so an outage costs one bounded attempt per
//! retry interval (not one per call), is logged once when it starts and once when it ends.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a call may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Redis is healthy: go ahead.
    Go,
    /// Redis is down and this call is the one that probes it.
    Probe,
    /// Redis is down: skip it.
    Skip,
}

#[derive(Debug)]
struct State {
    down_since: Option<Instant>,
    next_probe: Instant,
    backoff: Duration,
    probing: bool,
    skipped_in_outage: u64,
    last_error: String,
}

#[derive(Debug)]
pub(crate) struct Health {
    state: Mutex<State>,
    initial: Duration,
    max: Duration,
    target: String,
}

impl Health {
    pub(crate) fn new(initial: Duration, max: Duration, target: String) -> Self {
        Self {
            state: Mutex::new(State {
                down_since: None,
                next_probe: Instant::now(),
                backoff: initial,
                probing: false,
                skipped_in_outage: 0,
                last_error: String::new(),
            }),
            initial,
            max,
            target,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means another thread panicked mid-update of plain data.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn is_up(&self) -> bool {
        self.lock().down_since.is_none()
    }

    pub(crate) fn admit(&self) -> Admit {
        let mut s = self.lock();
        if s.down_since.is_none() {
            return Admit::Go;
        }
        if !s.probing && Instant::now() >= s.next_probe {
            s.probing = true;
            return Admit::Probe;
        }
        s.skipped_in_outage += 1;
        Admit::Skip
    }

    /// Redis answered.
    pub(crate) fn success(&self, admit: Admit) {
        let mut s = self.lock();
        if admit == Admit::Probe {
            s.probing = false;
        }
        if let Some(since) = s.down_since.take() {
            tracing::info!(
                target: "certbound_redis",
                redis = %self.target,
                outage_ms = since.elapsed().as_millis() as u64,
                calls_without_redis = s.skipped_in_outage,
                "Redis token cache recovered; using the distributed cache again"
            );
            s.backoff = self.initial;
            s.skipped_in_outage = 0;
        }
    }

    /// Redis failed (down, slow, refused, protocol garbage).
    pub(crate) fn failure(&self, admit: Admit, error: &str) {
        let mut s = self.lock();
        let now = Instant::now();
        match (s.down_since, admit) {
            (None, _) => {
                tracing::warn!(
                    target: "certbound_redis",
                    redis = %self.target,
                    error = %error,
                    retry_in_ms = self.initial.as_millis() as u64,
                    "Redis token cache unavailable; serving tokens from memory and the authority until it returns (logged once per outage)"
                );
                s.down_since = Some(now);
                s.backoff = self.initial;
                s.next_probe = now + self.initial;
                s.last_error = error.to_owned();
            }
            (Some(_), Admit::Probe) => {
                s.probing = false;
                s.backoff = (s.backoff * 2).min(self.max);
                s.next_probe = now + s.backoff;
                if s.last_error != error {
                    tracing::debug!(target: "certbound_redis", error = %error, "Redis still unavailable");
                    s.last_error = error.to_owned();
                }
            }
            // An in-flight call that started before the outage was noticed.
            (Some(_), _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_probe_per_interval_then_recovery() {
        let h = Health::new(
            Duration::from_millis(0),
            Duration::from_millis(0),
            "t".into(),
        );
        assert_eq!(h.admit(), Admit::Go);
        h.failure(Admit::Go, "refused");
        assert!(!h.is_up());
        // Zero interval: the next call probes; while it runs, others skip.
        assert_eq!(h.admit(), Admit::Probe);
        assert_eq!(h.admit(), Admit::Skip);
        h.failure(Admit::Probe, "refused");
        assert_eq!(h.admit(), Admit::Probe);
        h.success(Admit::Probe);
        assert!(h.is_up());
        assert_eq!(h.admit(), Admit::Go);
    }

    #[test]
    fn long_interval_skips() {
        let h = Health::new(
            Duration::from_secs(3600),
            Duration::from_secs(3600),
            "t".into(),
        );
        h.failure(Admit::Go, "timeout");
        for _ in 0..100 {
            assert_eq!(h.admit(), Admit::Skip);
        }
    }
}
