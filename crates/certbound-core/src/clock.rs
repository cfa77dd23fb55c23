//! A coarse wall clock for hot paths.
//!
//! [`coarse_now_unix`] reads Unix seconds from an atomic that a background thread
//! (`certbound-clock`, started on first use) refreshes every 100 ms — one relaxed load
//! instead of a `clock_gettime` call. It lags the real clock by at most about 100 ms, which
//! is far below the minutes-long margins token expiry checks use. Where the thread cannot
//! be started, every call reads the system clock instead.
//!
//! ```
//! let coarse = certbound_core::coarse_now_unix();
//! assert!((coarse - certbound_core::now_unix()).abs() <= 5);
//! ```

use std::sync::Once;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// How often the background thread refreshes the clock.
pub const TICK: Duration = Duration::from_millis(100);

static NOW: AtomicI64 = AtomicI64::new(0);
static START: Once = Once::new();

/// Unix seconds, at most about [`TICK`] behind [`now_unix`](crate::now_unix).
pub fn coarse_now_unix() -> i64 {
    let v = NOW.load(Ordering::Relaxed);
    if v != 0 {
        return v;
    }
    START.call_once(start);
    crate::now_unix()
}

fn start() {
    let spawned = std::thread::Builder::new()
        .name("certbound-clock".into())
        .spawn(|| {
            loop {
                NOW.store(crate::now_unix(), Ordering::Relaxed);
                std::thread::sleep(TICK);
            }
        });
    if let Err(e) = spawned {
        // Stay at 0: every call then reads the system clock.
        tracing::debug!(error = %e, "cannot start the coarse clock thread; using the system clock");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_clock_follows_the_system_clock() {
        for _ in 0..3 {
            let coarse = coarse_now_unix();
            let precise = crate::now_unix();
            assert!((coarse - precise).abs() <= 5, "{coarse} vs {precise}");
            std::thread::sleep(TICK);
        }
        assert_ne!(NOW.load(Ordering::Relaxed), 0, "the clock thread runs");
    }
}
