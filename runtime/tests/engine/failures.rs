//! Failure isolation: a component that panics is replaced by a fresh instance (prepared or opened
//! again), the trees it held are failed so they can be replayed, the topology keeps running, and
//! the restarts and errors are counted.
//!
//! These tests panic on purpose; the panic messages in the test output are expected.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use topo_runtime::testing::VecSpout;
use topo_runtime::{
    BasicBolt, BasicCollector, Bolt, BoxError, OutputCollector, OutputDeclarer, Spout,
    SpoutCollector, TaskContext, TopologyBuilder, Tuple, values,
};

use crate::util::{Counter, Gate, Holder, config, lock, run_until_idle, wait_for, wait_idle};

/// Panics on every message divisible by 5 the first time any instance sees it; counts prepares.
struct Fragile {
    seen: Arc<Mutex<HashSet<i64>>>,
    prepares: Counter,
}

impl BasicBolt for Fragile {
    fn prepare(&mut self, _ctx: &TaskContext) -> Result<(), BoxError> {
        self.prepares.inc();
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let n = input.int_field("n")?;
        let first = lock(&self.seen).insert(n);
        if n % 5 == 0 && first {
            panic!("fragile bolt panics on message {n} (expected by the test)");
        }
        Ok(())
    }
}

// Guards: a basic bolt that panics fails only the panicking tuple's tree, is re-created and prepared again, and its replay is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_basic_bolt_is_replaced_and_its_tuple_replayed() {
    let spout = VecSpout::new(["n"], (0..20).map(|i| values![i]).collect());
    let seen: Arc<Mutex<HashSet<i64>>> = Arc::default();
    let prepares = Counter::default();
    let mut b = TopologyBuilder::new("fragile");
    b.config(config());
    b.set_spout("spout", spout.factory(), 1);
    let (s, p) = (seen.clone(), prepares.clone());
    b.set_bolt(
        "fragile",
        move || Fragile {
            seen: s.clone(),
            prepares: p.clone(),
        },
        1,
    )
    .shuffle_grouping("spout");
    let report = run_until_idle(b.build().expect("a valid topology")).await;

    let panicked: Vec<u32> = (0..20).map(|n| u32::from(n % 5 == 0)).collect();
    assert_eq!(spout.failed(), panicked, "each panicking tuple failed once");
    assert_eq!(
        spout.acked(),
        vec![1; 20],
        "and acked on replay, like the rest"
    );
    let bolt = report.metrics.component("fragile").expect("fragile");
    assert_eq!((bolt.restarts(), bolt.errors()), (4, 4));
    assert_eq!(
        prepares.get(),
        5,
        "prepared once, then again after each panic"
    );
    let s = report.metrics.component("spout").expect("spout");
    assert_eq!((s.acked(), s.failed(), s.timed_out()), (20, 4, 0));
}

/// Holds messages 0, 1 and 2 without acking; panics on message 3 the first time. Once it has
/// panicked, every instance acks each input at once. Counts prepares.
struct Hoarder {
    held: Vec<Tuple>,
    panicked: Gate,
    prepares: Counter,
}

impl Bolt for Hoarder {
    async fn prepare(&mut self, _ctx: &TaskContext) -> Result<(), BoxError> {
        self.prepares.inc();
        Ok(())
    }

    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        let n = input.int_field("n")?;
        if self.panicked.is_open() {
            out.ack(&input);
        } else if n == 3 {
            self.panicked.open();
            panic!(
                "hoarder panics holding {} tuples (expected by the test)",
                self.held.len()
            );
        } else {
            self.held.push(input);
        }
        Ok(())
    }
}

// Guards: a full bolt that panics fails every input it still held (not only the current one), then a fresh instance goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_full_bolt_fails_every_tuple_it_held() {
    let spout = VecSpout::new(["n"], (0..10).map(|i| values![i]).collect());
    let panicked = Gate::default();
    let prepares = Counter::default();
    let mut b = TopologyBuilder::new("hoarder");
    b.config(config());
    b.set_spout("spout", spout.factory(), 1);
    let (g, p) = (panicked.clone(), prepares.clone());
    b.set_bolt(
        "hoarder",
        move || Hoarder {
            held: Vec::new(),
            panicked: g.clone(),
            prepares: p.clone(),
        },
        1,
    )
    .shuffle_grouping("spout");
    let report = run_until_idle(b.build().expect("a valid topology")).await;

    assert_eq!(spout.failed(), [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(spout.acked(), vec![1; 10]);
    let bolt = report.metrics.component("hoarder").expect("hoarder");
    assert_eq!((bolt.restarts(), bolt.errors()), (1, 1));
    assert_eq!(bolt.failed(), 4, "the 3 held inputs and the panicking one");
    assert_eq!(prepares.get(), 2);
    let s = report.metrics.component("spout").expect("spout");
    assert_eq!((s.acked(), s.failed(), s.timed_out()), (10, 4, 0));
}

/// What every instance of a [`Flaky`] spout shares: messages to (re)send, outcomes, and calls.
struct SpoutLog {
    queue: Mutex<VecDeque<u64>>,
    acked: Mutex<Vec<u32>>,
    failed: Mutex<Vec<u32>>,
    opens: Counter,
    panicked: Gate,
}

/// Emits messages from the shared queue (one per call), replays failed ones, and panics once,
/// in `next_tuple`, as soon as 3 of its trees are pending.
struct Flaky {
    log: Arc<SpoutLog>,
}

impl Spout for Flaky {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["n"]);
    }

    async fn open(&mut self, _ctx: &TaskContext) -> Result<(), BoxError> {
        self.log.opens.inc();
        Ok(())
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        if out.pending() >= 3 && !self.log.panicked.is_open() {
            self.log.panicked.open();
            panic!("flaky spout panics with 3 trees pending (expected by the test)");
        }
        let next = lock(&self.log.queue).pop_front();
        if let Some(n) = next {
            out.emit(values![n], n);
        }
        Ok(())
    }

    fn ack(&mut self, n: u64) {
        lock(&self.log.acked)[n as usize] += 1;
    }

    fn fail(&mut self, n: u64) {
        lock(&self.log.failed)[n as usize] += 1;
        lock(&self.log.queue).push_back(n);
    }

    fn is_exhausted(&self) -> bool {
        lock(&self.log.queue).is_empty()
    }
}

// Guards: a spout that panics is re-created and opened again, the trees the old instance had pending are failed to the new one, and all is finally acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_spout_is_reopened_and_gets_its_pending_trees_failed() {
    let log = Arc::new(SpoutLog {
        queue: Mutex::new((0..10).collect()),
        acked: Mutex::new(vec![0; 10]),
        failed: Mutex::new(vec![0; 10]),
        opens: Counter::default(),
        panicked: Gate::default(),
    });
    let release = Gate::default();
    let received = Counter::default();
    let mut b = TopologyBuilder::new("flaky-spout");
    b.config(config());
    let shared = log.clone();
    b.set_spout(
        "spout",
        move || Flaky {
            log: shared.clone(),
        },
        1,
    );
    // Holds every tuple until released, so the trees stay pending across the panic.
    b.set_bolt("sink", Holder::factory(|_| true, &release, &received), 1)
        .shuffle_grouping("spout")
        .tick_interval(Duration::from_millis(5));
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));

    wait_for(
        &handle,
        "the pending trees are failed after the panic",
        |_| lock(&log.failed).iter().sum::<u32>() == 3,
    )
    .await;
    assert_eq!(
        *lock(&log.failed),
        [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
        "the 3 trees pending at the panic were failed"
    );
    assert_eq!(log.opens.get(), 2, "opened again after the panic");
    // Counted before the new instance is opened, so a snapshot taken now includes it.
    let m = handle.metrics();
    assert_eq!(m.component("spout").expect("spout").restarts(), 1);

    release.open();
    wait_idle(&handle).await;
    let report = handle.stop(Duration::from_secs(5)).await;
    assert!(report.drained);
    assert_eq!(*lock(&log.acked), vec![1; 10]);
    assert_eq!(*lock(&log.failed), [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]);
    let s = report.metrics.component("spout").expect("spout");
    assert_eq!((s.restarts(), s.errors()), (1, 1));
    assert_eq!((s.acked(), s.failed(), s.timed_out()), (10, 3, 0));
}
