//! A limit of one warning a second, shared by the spouts' counters: a flood of bad input is
//! counted in full but logged at a readable pace; and [`ErrorLog`], the errors of a connector
//! counted, the last one kept, logged under that limit.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

/// Lets a warning through at most once a second, from any thread.
#[derive(Debug, Default)]
pub(crate) struct WarnLimit {
    /// Milliseconds since `epoch` (plus 1000) of the last warning let through; 0 = none yet.
    last_ms: AtomicU64,
    epoch: OnceLock<Instant>,
}

impl WarnLimit {
    /// True at most once a second: whether a warning may be logged now.
    pub(crate) fn allow(&self) -> bool {
        let epoch = *self.epoch.get_or_init(Instant::now);
        // +1000 so that the first warning (last = 0) is always allowed.
        let now = epoch.elapsed().as_millis() as u64 + 1000;
        let last = self.last_ms.load(Relaxed);
        now >= last + 1000
            && self
                .last_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
    }
}

/// Spawns a connector's background task inside the current span, so what it logs names the
/// component and task it works for (every task of a topology runs in a `task` span).
pub(crate) fn spawn<F>(fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    use tracing::Instrument;
    tokio::spawn(fut.in_current_span())
}

/// Locks `m`, taking the data of a poisoned lock as it is (counters stay readable after a panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connector's errors: each counted, the last one kept, logged at most once a second (the
/// limit `warn` is shared with the connector's other warnings).
#[derive(Debug, Default)]
#[cfg_attr(not(any(feature = "kafka", feature = "kinesis")), allow(dead_code))]
pub(crate) struct ErrorLog {
    count: AtomicU64,
    last: Mutex<Option<String>>,
    /// The warning limit of the connector.
    pub(crate) warn: WarnLimit,
}

#[cfg_attr(not(any(feature = "kafka", feature = "kinesis")), allow(dead_code))]
impl ErrorLog {
    /// Counts `msg`, logs it unless a warning went out less than a second ago, keeps it as the
    /// last error.
    pub(crate) fn record(&self, component: &str, msg: String) {
        self.count.fetch_add(1, Relaxed);
        if self.warn.allow() {
            tracing::warn!(component, "{msg}");
        }
        *lock(&self.last) = Some(msg);
    }

    /// As [`record`](ErrorLog::record), but logged at error level every time: for what must
    /// never happen (a broken invariant), which is rare by nature and must not be hidden.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn record_error(&self, component: &str, msg: String) {
        self.count.fetch_add(1, Relaxed);
        tracing::error!(component, "{msg}");
        *lock(&self.last) = Some(msg);
    }

    /// Errors recorded.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The last error recorded, if any.
    pub(crate) fn last(&self) -> Option<String> {
        lock(&self.last).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_warning_passes_and_the_next_within_a_second_does_not() {
        let w = WarnLimit::default();
        assert!(w.allow());
        assert!(!w.allow());
        assert!(!w.allow());
    }

    #[test]
    fn every_error_is_counted_and_the_last_kept() {
        let log = ErrorLog::default();
        assert_eq!((log.count(), log.last()), (0, None));
        log.record("c", "first".into());
        log.record("c", "second".into());
        assert_eq!(log.count(), 2);
        assert_eq!(log.last().as_deref(), Some("second"));
    }
}
