//! Lifecycle: a graceful stop drains what is queued and calls each component's close/cleanup
//! once; a stop whose deadline passes fails what is left and says so; ticks arrive on time,
//! whether the bolt is idle or busy with input.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use topo_runtime::testing::VecSpout;
use topo_runtime::{
    BasicBolt, BasicCollector, Bolt, BoxError, Config, OutputCollector, OutputDeclarer, Spout,
    SpoutCollector, TaskContext, TopologyBuilder, Tuple, values,
};

use crate::util::{
    Counter, Gate, Holder, Napper, busy_wait, config, lock, run_until_idle, wait_for,
};

/// Calls into a spout's lifecycle, counted.
#[derive(Clone, Default)]
struct Calls {
    opens: Counter,
    activates: Counter,
    deactivates: Counter,
    closes: Counter,
    emitted: Counter,
}

/// An endless spout of tracked messages (acked at once when acking is off), counting its calls.
struct Endless {
    next: u64,
    calls: Calls,
}

impl Spout for Endless {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["n"]);
    }

    async fn open(&mut self, _ctx: &TaskContext) -> Result<(), BoxError> {
        self.calls.opens.inc();
        Ok(())
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        out.emit(values![self.next], self.next);
        self.next += 1;
        self.calls.emitted.inc();
        Ok(())
    }

    fn activate(&mut self) {
        self.calls.activates.inc();
    }

    fn deactivate(&mut self) {
        self.calls.deactivates.inc();
    }

    async fn close(&mut self) {
        self.calls.closes.inc();
    }
}

// Guards: stop processes every tuple still queued when it is called, then calls deactivate and close on the spout and cleanup on each bolt task, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_drains_queued_tuples_and_calls_close_and_cleanup() {
    const BACKLOG: usize = 256;
    let calls = Calls::default();
    let executed = Counter::default();
    let cleanups = Counter::default();
    let mut b = TopologyBuilder::new("drain");
    b.config(Config {
        ackers: 0,
        queue_capacity: 1024,
        batch_size: 16,
        ..config()
    });
    let c = calls.clone();
    b.set_spout(
        "spout",
        move || Endless {
            next: 0,
            calls: c.clone(),
        },
        1,
    );
    // About 8 tuples a millisecond per task: far slower than the spout.
    b.set_bolt("sink", Napper::factory(8, &executed, &cleanups), 2)
        .shuffle_grouping("spout");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));

    wait_for(&handle, "a backlog builds up", |m| {
        m.component("sink").expect("sink").queue_len() >= BACKLOG
    })
    .await;
    let report = handle.stop(Duration::from_secs(10)).await;

    assert!(report.drained, "{report:#?}");
    assert_eq!((report.abandoned_trees, report.aborted_tasks), (0, 0));
    assert_eq!(
        executed.get(),
        calls.emitted.get(),
        "every emitted tuple was processed"
    );
    let spout = report.metrics.component("spout").expect("spout");
    let sink = report.metrics.component("sink").expect("sink");
    assert_eq!(spout.emitted(), sink.executed());
    assert_eq!(sink.executed(), executed.get());
    assert_eq!(sink.queue_len(), 0);
    assert_eq!(spout.acked(), spout.emitted(), "acking off: acked at emit");
    assert_eq!(calls.opens.get(), 1);
    assert_eq!(calls.activates.get(), 1);
    assert_eq!(calls.deactivates.get(), 1);
    assert_eq!(calls.closes.get(), 1);
    assert_eq!(cleanups.get(), 2, "cleanup once per sink task");
}

// Guards: a stop whose drain deadline passes while a bolt holds tuples reports drained == false with the abandoned trees, and fails them to the spout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_past_its_deadline_fails_and_reports_abandoned_trees() {
    let spout = VecSpout::new(["n"], (0..5).map(|i| values![i]).collect()).without_replay();
    let never = Gate::default();
    let received = Counter::default();
    let mut b = TopologyBuilder::new("abandon");
    b.config(config());
    b.set_spout("spout", spout.factory(), 1);
    b.set_bolt("sink", Holder::factory(|_| true, &never, &received), 1)
        .shuffle_grouping("spout");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    wait_for(&handle, "the sink holds every tuple", |_| {
        received.get() == 5
    })
    .await;

    let report = handle.stop(Duration::from_millis(200)).await;
    assert!(!report.drained, "{report:#?}");
    assert_eq!(report.abandoned_trees, 5);
    assert_eq!(spout.failed(), [1; 5], "the spout saw fail for each");
    assert_eq!(spout.acked(), [0; 5]);
    let s = report.metrics.component("spout").expect("spout");
    assert_eq!((s.failed(), s.timed_out(), s.pending()), (5, 0, 0));
}

/// Counts ticks; at each, records how many inputs it had executed so far. Spends `cost` of CPU
/// per input.
struct Ticker {
    cost: Duration,
    executed: u64,
    ticks: Arc<Mutex<Vec<u64>>>,
}

impl Ticker {
    fn factory(
        cost: Duration,
        ticks: &Arc<Mutex<Vec<u64>>>,
    ) -> impl Fn() -> Ticker + Send + Sync + 'static {
        let ticks = ticks.clone();
        move || Ticker {
            cost,
            executed: 0,
            ticks: ticks.clone(),
        }
    }
}

impl BasicBolt for Ticker {
    fn execute(&mut self, _input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        busy_wait(self.cost);
        self.executed += 1;
        Ok(())
    }

    fn tick(&mut self, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        lock(&self.ticks).push(self.executed);
        Ok(())
    }
}

// Guards: a bolt's tick interval is honoured both when it has no input and while it works through a backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticks_arrive_when_idle_and_while_busy() {
    const BACKLOG: u64 = 200;
    let idle_ticks: Arc<Mutex<Vec<u64>>> = Arc::default();
    let busy_ticks: Arc<Mutex<Vec<u64>>> = Arc::default();
    let quiet = VecSpout::new(["n"], Vec::new());
    let backlog = VecSpout::new(["n"], (0..BACKLOG).map(|i| values![i]).collect()).untracked();
    let mut b = TopologyBuilder::new("ticks");
    // Small batches: a tick can only come between two batches.
    b.config(Config {
        batch_size: 4,
        ..config()
    });
    b.set_spout("quiet", quiet.factory(), 1);
    b.set_spout("backlog", backlog.factory(), 1);
    b.set_bolt("idle", Ticker::factory(Duration::ZERO, &idle_ticks), 1)
        .shuffle_grouping("quiet")
        .tick_interval(Duration::from_millis(10));
    // 200 inputs at 500 µs each: about 100 ms of work, queued long before it is done.
    b.set_bolt(
        "busy",
        Ticker::factory(Duration::from_micros(500), &busy_ticks),
        1,
    )
    .shuffle_grouping("backlog")
    .tick_interval(Duration::from_millis(10));
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));

    wait_for(&handle, "3 idle ticks and the backlog done", |m| {
        lock(&idle_ticks).len() >= 3 && m.component("busy").expect("busy").executed() == BACKLOG
    })
    .await;
    let report = handle.stop(Duration::from_secs(5)).await;
    assert!(report.drained);

    assert!(
        lock(&idle_ticks).iter().all(|&n| n == 0),
        "the idle bolt had no input"
    );
    // Ticks at three different points of progress through the backlog: ticks and work interleave.
    let busy = lock(&busy_ticks).clone();
    let during: BTreeSet<u64> = busy
        .iter()
        .copied()
        .filter(|&n| n > 0 && n < BACKLOG)
        .collect();
    assert!(
        during.len() >= 3,
        "ticks at only {} points while the backlog was processed: {busy:?}",
        during.len()
    );
}

/// Counts `prepare` and `cleanup` calls of a basic bolt.
struct CountedBasic {
    prepares: Counter,
    cleanups: Counter,
}

impl BasicBolt for CountedBasic {
    fn prepare(&mut self, _ctx: &TaskContext) -> Result<(), BoxError> {
        self.prepares.inc();
        Ok(())
    }

    fn execute(&mut self, _input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        Ok(())
    }

    fn cleanup(&mut self) {
        self.cleanups.inc();
    }
}

/// Counts `prepare` and `cleanup` calls of a full bolt.
struct CountedFull {
    prepares: Counter,
    cleanups: Counter,
}

impl Bolt for CountedFull {
    async fn prepare(&mut self, _ctx: &TaskContext) -> Result<(), BoxError> {
        self.prepares.inc();
        Ok(())
    }

    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        out.ack(&input);
        Ok(())
    }

    async fn cleanup(&mut self) {
        self.cleanups.inc();
    }
}

// Guards: the bolt lifecycle contract (prepare once, then cleanup once at the end) holds for every task, also one that never receives a tuple.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bolt_task_is_prepared_and_cleaned_up_even_without_input() {
    let spout = VecSpout::new(["n"], (0..10).map(|i| values![i]).collect());
    let basic = (Counter::default(), Counter::default());
    let full = (Counter::default(), Counter::default());
    let mut b = TopologyBuilder::new("lifecycle");
    b.config(config());
    b.set_spout("spout", spout.factory(), 1);
    let (p, c) = basic.clone();
    // Global grouping: only the lowest of the 3 tasks receives tuples.
    b.set_bolt(
        "basic",
        move || CountedBasic {
            prepares: p.clone(),
            cleanups: c.clone(),
        },
        3,
    )
    .global_grouping("spout");
    let (p, c) = full.clone();
    b.set_bolt(
        "full",
        move || CountedFull {
            prepares: p.clone(),
            cleanups: c.clone(),
        },
        3,
    )
    .global_grouping("spout");
    run_until_idle(b.build().expect("a valid topology")).await;

    assert_eq!(spout.acked(), vec![1; 10]);
    assert_eq!(
        (basic.0.get(), basic.1.get()),
        (3, 3),
        "basic bolt: (prepares, cleanups) over 3 tasks"
    );
    assert_eq!(
        (full.0.get(), full.1.get()),
        (3, 3),
        "full bolt: (prepares, cleanups) over 3 tasks"
    );
}
