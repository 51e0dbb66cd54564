//! Helpers shared by the tests: settings, bounded waits, and small components whose behaviour the
//! test controls (hold tuples until released, count calls).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use topo_runtime::{
    Bolt, BoxError, Config, MetricsSnapshot, OutputCollector, StopReport, Topology, TopologyHandle,
    Tuple,
};

/// The longest a test waits for something that should take milliseconds. Generous, so a loaded
/// machine slows a test down but does not fail it.
pub const WAIT: Duration = Duration::from_secs(20);

/// Default settings for a test topology on the 2-thread test runtime.
pub fn config() -> Config {
    Config {
        worker_threads: 2,
        ..Config::default()
    }
}

/// Locks a mutex, ignoring poisoning (a panicking component is part of some tests).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits (bounded by [`WAIT`]) until `condition` holds for the topology's metrics; panics with
/// `what` and the last metrics otherwise.
pub async fn wait_for(
    handle: &TopologyHandle,
    what: &str,
    condition: impl FnMut(&MetricsSnapshot) -> bool,
) -> MetricsSnapshot {
    match handle.wait_until(WAIT, condition).await {
        Ok(m) => m,
        Err(e) => panic!(
            "{what}: not within {:?}; metrics: {:#?}",
            e.waited, e.metrics
        ),
    }
}

/// Waits (bounded by [`WAIT`]) until every spout is exhausted with no tree pending.
pub async fn wait_idle(handle: &TopologyHandle) -> MetricsSnapshot {
    match handle.wait_until_idle(WAIT).await {
        Ok(m) => m,
        Err(e) => panic!("not idle within {:?}; metrics: {:#?}", e.waited, e.metrics),
    }
}

/// Waits (bounded by [`WAIT`]) on the calling thread, outside any runtime, until `condition`
/// holds; panics with `what` otherwise. For tests that must not depend on the runtime's timers.
pub fn wait_blocking(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < WAIT, "{what}: not within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs a topology on the current runtime until it is idle, then stops it, asserting the stop
/// drained everything.
pub async fn run_until_idle(topology: Topology) -> StopReport {
    let handle = topo_runtime::submit(topology);
    wait_idle(&handle).await;
    let report = handle.stop(Duration::from_secs(5)).await;
    assert!(report.drained, "the stop did not drain: {report:#?}");
    report
}

/// Spins for `d`: a deliberately slow component that does not yield the thread.
pub fn busy_wait(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

/// A seeded, well-mixed hash of some numbers (splitmix64 steps), for deterministic "random"
/// choices in components.
pub fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x243f_6a88_85a3_08d3, |acc, &p| {
        let mut z = (acc ^ p).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// A counter shared between the test and its components.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, SeqCst);
    }
    /// The count now.
    pub fn get(&self) -> u64 {
        self.0.load(SeqCst)
    }
}

/// A switch the test flips to let a component go on.
#[derive(Clone, Debug, Default)]
pub struct Gate(Arc<AtomicBool>);

impl Gate {
    /// Lets the component go on.
    pub fn open(&self) {
        self.0.store(true, SeqCst);
    }
    /// Whether the test opened the gate.
    pub fn is_open(&self) -> bool {
        self.0.load(SeqCst)
    }
}

/// A full bolt (a sink) that acks at once every input except those `hold` selects, which it keeps
/// un-acked until `release` opens; then it acks them at its next tick or input. Give it a tick
/// interval so a release is noticed without input.
pub struct Holder {
    hold: fn(&Tuple) -> bool,
    release: Gate,
    received: Counter,
    held: Vec<Tuple>,
}

impl Holder {
    /// A factory for `set_bolt`: every task holds what `hold` selects until `release` opens, and
    /// counts its inputs in `received`.
    pub fn factory(
        hold: fn(&Tuple) -> bool,
        release: &Gate,
        received: &Counter,
    ) -> impl Fn() -> Holder + Send + Sync + 'static {
        let (release, received) = (release.clone(), received.clone());
        move || Holder {
            hold,
            release: release.clone(),
            received: received.clone(),
            held: Vec::new(),
        }
    }

    fn release_if_open(&mut self, out: &mut OutputCollector<'_>) {
        if self.release.is_open() {
            for t in self.held.drain(..) {
                out.ack(&t);
            }
        }
    }
}

impl Bolt for Holder {
    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        self.received.inc();
        if (self.hold)(&input) {
            self.held.push(input);
        } else {
            out.ack(&input);
        }
        self.release_if_open(out);
        Ok(())
    }

    async fn tick(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        self.release_if_open(out);
        Ok(())
    }
}

/// The `i`-th field of a tuple as an integer (the tests' tuples carry integers).
pub fn int(t: &Tuple, i: usize) -> i64 {
    t.get(i)
        .and_then(|v| v.as_i64())
        .unwrap_or_else(|| panic!("field {i} of {t:?} is not an int"))
}

/// A slow sink that does not hog a worker thread: a full bolt that acks each input and naps for a
/// millisecond after every `every` inputs. Counts its inputs and its cleanups.
pub struct Napper {
    every: u64,
    seen: u64,
    executed: Counter,
    cleanups: Counter,
}

impl Napper {
    /// A factory for `set_bolt`.
    pub fn factory(
        every: u64,
        executed: &Counter,
        cleanups: &Counter,
    ) -> impl Fn() -> Napper + Send + Sync + 'static {
        let (executed, cleanups) = (executed.clone(), cleanups.clone());
        move || Napper {
            every,
            seen: 0,
            executed: executed.clone(),
            cleanups: cleanups.clone(),
        }
    }
}

impl Bolt for Napper {
    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        out.ack(&input);
        self.executed.inc();
        self.seen += 1;
        if self.seen.is_multiple_of(self.every) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(())
    }

    async fn cleanup(&mut self) {
        self.cleanups.inc();
    }
}
