//! Helpers shared by the sink tests that run a topology against a live server: a gate that holds
//! tuples back until the test opens it, and a bounded wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use topo_runtime::{Bolt, BoxError, OutputCollector, OutputDeclarer, Tuple};

/// The longest a test waits for a condition.
pub const WAIT: Duration = Duration::from_secs(60);

/// Passes its first `free` tuples on at once and holds the rest (unacked) until the test opens
/// it; then passes them on, 16 per tick.
pub struct Gate {
    pub free: Arc<AtomicUsize>,
    pub open: tokio::sync::watch::Receiver<bool>,
    pub fields: Vec<&'static str>,
    pub held: Vec<Tuple>,
}

impl Gate {
    fn pass(input: &Tuple, out: &mut OutputCollector<'_>) {
        out.emit_anchored(&[input], input.values().into());
        out.ack(input);
    }
}

impl Bolt for Gate {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(self.fields.iter().copied());
    }

    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        let free = self
            .free
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if free || *self.open.borrow() {
            Gate::pass(&input, out);
        } else {
            self.held.push(input);
        }
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(5))
    }

    async fn tick(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        if *self.open.borrow() {
            // A few at a time, so the replay trickles in while the sink retries.
            let n = self.held.len().min(16);
            for t in self.held.drain(..n) {
                Gate::pass(&t, out);
            }
        }
        Ok(())
    }
}

/// Polls `condition` every 10 ms until it holds; panics naming `what` after [`WAIT`].
pub async fn wait_until(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < WAIT, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
