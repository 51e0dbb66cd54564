//! Wall-clock time that follows the runtime's clock: processing-time windows and sink flush
//! deadlines read it, so a test that pauses and advances tokio's clock
//! ([`BoltTester::pause_time`](crate::testing::BoltTester::pause_time)) moves them too.
//!
//! The epoch is read once per process; after that, time advances by the monotonic clock
//! (`tokio::time::Instant`), so it never goes backwards when the system clock is adjusted.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static BASE: OnceLock<(i64, std::time::Instant)> = OnceLock::new();

/// Milliseconds since the Unix epoch, advancing with the runtime's (possibly paused) clock.
pub fn now_millis() -> i64 {
    let (epoch_ms, at) = *BASE.get_or_init(|| {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        (ms, std::time::Instant::now())
    });
    let now = tokio::time::Instant::now().into_std();
    let elapsed = now.saturating_duration_since(at).as_millis() as i64;
    epoch_ms + elapsed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_paused_clock() {
        // The process-wide base is taken before this runtime's clock is paused (another test
        // may take it first, later than a clock paused here, and then the paused clock would
        // read as before the base for a moment).
        let _ = now_millis();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(async {
            let a = now_millis();
            tokio::time::advance(std::time::Duration::from_millis(1500)).await;
            let b = now_millis();
            // Whole milliseconds of a clock with nanosecond steps: 1499 or 1500.
            assert!((1499..=1500).contains(&(b - a)), "{}", b - a);
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            assert!((3_600_000..=3_601_500).contains(&(now_millis() - b)));
        });
    }
}
