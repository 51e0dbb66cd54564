//! Helpers shared by the sink tests that run a topology against a live server: a gate that holds
//! tuples back until the test opens it, a bounded wait, a run of word records to the end, and a
//! connection check that must be refused quickly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use topo_dsl::{IntoBoltFactory, TopologyBuilder};
use topo_runtime::testing::VecSpout;
use topo_runtime::{Bolt, BoxError, OutputCollector, OutputDeclarer, Tuple, values};

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

/// `total` records of the fields `word` and `n` (`"w<i>"`, `i`) from a spout of their own.
pub fn word_spout(total: usize) -> VecSpout {
    let records: Vec<_> = (0..total)
        .map(|i| values![format!("w{i}"), i as i64])
        .collect();
    VecSpout::new(["word", "n"], records)
}

/// A runtime of two worker threads, for a topology under test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Runs topology `name`: [`word_spout`]`(total)` ("records") into `bolt` (component `id`, 2
/// tasks, grouped by `word`), with at most 50 trees pending and 2 worker threads, until it is
/// idle (panics after [`WAIT`] with its figures); then stops it and checks that it drained and
/// that every record was acked once.
pub fn run_words_until_idle<M>(name: &str, id: &str, total: usize, bolt: impl IntoBoltFactory<M>) {
    let spout = word_spout(total);
    let mut b = TopologyBuilder::new(name);
    b.config_mut().max_spout_pending = Some(50);
    b.config_mut().worker_threads = 2;
    b.set_spout("records", spout.factory(), 1);
    b.set_bolt(id, bolt, 2).fields_grouping("records", ["word"]);
    let topology = b.build().expect("a valid topology");
    runtime().block_on(async {
        let handle = topo_runtime::submit(topology);
        if let Err(e) = handle.wait_until_idle(WAIT).await {
            panic!("not idle within {:?}: {:#?}", e.waited, e.metrics);
        }
        let report = handle.stop(Duration::from_secs(5)).await;
        assert!(report.drained, "{report:#?}");
    });
    assert_eq!(spout.acked(), vec![1; total], "every message acked once");
}

/// What a connection check that must be refused says: refused within 8 s (not hung), its error
/// as text (printed, for the test's log).
pub fn refused_quickly<E: std::fmt::Display>(
    check: impl std::future::Future<Output = Result<(), E>>,
) -> String {
    let started = std::time::Instant::now();
    let result = runtime().block_on(check);
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the check took {:?}: a refused connection must not hang",
        started.elapsed()
    );
    match result {
        Ok(()) => panic!("the connection was accepted"),
        Err(e) => {
            eprintln!("refused: {e}");
            e.to_string()
        }
    }
}
