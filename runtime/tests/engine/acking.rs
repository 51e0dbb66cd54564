//! Acking, end to end: a spout's tree completes exactly when every tuple in it is acked, fails at
//! once on an explicit fail, times out when a tuple is dropped, and with acking off is acked at
//! once; a shared tree acks or fails its messages together. A property test replays random
//! failures, with trees of one message and shared ones, until every message is acked exactly
//! once.
//!
//! To show that a tree has *not* completed, some tests send a probe message after it through the
//! same single tasks and the single acker: each task sends its acker messages in order, and
//! before the tuples it emits, so when the probe's tree completes, every ack of the earlier tree
//! sent before it has been applied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use topo_runtime::testing::VecSpout;
use topo_runtime::{
    BasicBolt, BasicCollector, Bolt, BoxError, Config, LocalCluster, OutputCollector,
    OutputDeclarer, TopologyBuilder, Tuple, values,
};

use crate::util::{
    Counter, Gate, Holder, config, int, lock, mix, run_until_idle, wait_blocking, wait_for,
    wait_idle,
};

/// Emits `fanout` children `(msg, child)` of each input, anchored to it (a basic bolt anchors).
struct Fan {
    fanout: i64,
}

impl BasicBolt for Fan {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["msg", "child"]);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let msg = input.int_field("msg")?;
        for child in 0..self.fanout {
            out.emit(values![msg, child]);
        }
        Ok(())
    }
}

/// Submits spout -> fan (5 children a message) -> a sink that holds what `hold` selects until
/// `release` opens, counting what it receives.
fn fan_out_holding(
    spout: &VecSpout,
    hold: fn(&Tuple) -> bool,
    release: &Gate,
    received: &Counter,
) -> topo_runtime::TopologyHandle {
    let mut b = TopologyBuilder::new("fan-out");
    b.config(config());
    b.set_spout("spout", spout.factory(), 1);
    b.set_bolt("fan", || Fan { fanout: 5 }, 1)
        .shuffle_grouping("spout");
    b.set_bolt("sink", Holder::factory(hold, release, received), 1)
        .shuffle_grouping("fan")
        .tick_interval(Duration::from_millis(5));
    topo_runtime::submit(b.build().expect("a valid topology"))
}

// Guards: a fan-out tree completes only when its last leaf is acked, and then at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_tree_completes_only_when_every_leaf_is_acked() {
    // Message 0 is the tree under test; message 1 is the probe.
    let spout = VecSpout::new(["msg"], vec![values![0], values![1]]);
    let release = Gate::default();
    let received = Counter::default();
    let hold_one_leaf = |t: &Tuple| int(t, 0) == 0 && int(t, 1) == 3;
    let handle = fan_out_holding(&spout, hold_one_leaf, &release, &received);

    // The sink publishes its ack count after sending the acks, so wait for that too.
    wait_for(&handle, "the probe's tree completes", |m| {
        spout.acked()[1] == 1 && m.component("sink").is_some_and(|s| s.acked() == 9)
    })
    .await;
    assert_eq!(received.get(), 10, "both trees reached the sink");
    assert_eq!(spout.acked()[0], 0, "tree 0 completed with a leaf held");

    release.open();
    wait_for(&handle, "tree 0 completes once its leaf is acked", |_| {
        spout.acked()[0] == 1
    })
    .await;
    let report = handle.stop(Duration::from_secs(5)).await;
    assert!(report.drained);
    assert_eq!(spout.acked(), [1, 1]);
    assert_eq!(spout.failed(), [0, 0]);
    let s = report.metrics.component("spout").expect("spout");
    assert_eq!((s.acked(), s.failed(), s.timed_out()), (2, 0, 0));
}

// Guards: the messages of a shared tree are acked together, only once every tuple of the tree is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_tree_completes_only_when_every_leaf_of_every_message_is_acked() {
    // Messages 0-3 share the first call's tree; message 4, in the next call, is the probe.
    let spout = VecSpout::new(["msg"], (0..5).map(|i| values![i]).collect()).shared_trees(4);
    let release = Gate::default();
    let received = Counter::default();
    let hold_one_leaf = |t: &Tuple| int(t, 0) == 1 && int(t, 1) == 3;
    let handle = fan_out_holding(&spout, hold_one_leaf, &release, &received);

    wait_for(&handle, "the probe's tree completes", |m| {
        spout.acked()[4] == 1 && m.component("sink").is_some_and(|s| s.acked() == 24)
    })
    .await;
    assert_eq!(received.get(), 25, "every tree reached the sink");
    assert_eq!(
        spout.acked(),
        [0, 0, 0, 0, 1],
        "the shared tree completed with a leaf held"
    );
    let pending = handle
        .metrics()
        .component("spout")
        .expect("spout")
        .pending();
    assert_eq!(pending, 4, "pending counts the shared tree's messages");

    release.open();
    wait_for(
        &handle,
        "the shared tree completes once its leaf is acked",
        |_| spout.acked() == [1; 5],
    )
    .await;
    let report = handle.stop(Duration::from_secs(5)).await;
    assert!(report.drained);
    assert_eq!(spout.failed(), [0; 5]);
    assert_eq!(spout.emitted(), 5);
    let s = report.metrics.component("spout").expect("spout");
    assert_eq!((s.acked(), s.failed(), s.timed_out()), (5, 0, 0));
}

/// Fails the first attempt of one message and acks everything else.
struct FailFirst {
    msg: i64,
    failed: Arc<Mutex<bool>>,
}

impl Bolt for FailFirst {
    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        let mut failed = lock(&self.failed);
        if int(&input, 0) == self.msg && !*failed {
            *failed = true;
            out.fail(&input);
        } else {
            out.ack(&input);
        }
        Ok(())
    }
}

/// Runs 8 messages through a bolt that fails message 2 once, `per_call` fresh messages a call
/// in shared trees; returns the spout's `(failed, acked, emitted)` and its metrics' `(acked,
/// failed, timed out)`.
fn fail_one_in_shared_trees(per_call: usize, config: Config) -> (Vec<u32>, u64, (u64, u64, u64)) {
    let spout = VecSpout::new(["msg"], (0..8).map(|i| values![i]).collect()).shared_trees(per_call);
    let failed = Arc::new(Mutex::new(false));
    let mut b = TopologyBuilder::new("shared-tree-fails");
    b.config(config);
    b.set_spout("spout", spout.factory(), 1);
    b.set_bolt(
        "fail-first",
        move || FailFirst {
            msg: 2,
            failed: failed.clone(),
        },
        2,
    )
    .shuffle_grouping("spout");
    let cluster = LocalCluster::new(2).expect("a runtime");
    let report = cluster.block_on(run_until_idle(b.build().expect("a valid topology")));
    assert_eq!(spout.acked(), [1; 8], "every message acked once in the end");
    let s = report.metrics.component("spout").expect("spout");
    (
        spout.failed(),
        spout.emitted(),
        (s.acked(), s.failed(), s.timed_out()),
    )
}

// Guards: one failed tuple fails every message of its shared tree and no other; they are replayed each in a tree of its own and acked once.
#[test]
fn a_failure_in_a_shared_tree_fails_its_messages_and_they_are_replayed() {
    // Calls of 4: messages 0-3 share a tree, 4-7 another; message 2 fails once.
    let (failed, emitted, metrics) = fail_one_in_shared_trees(4, config());
    assert_eq!(failed, [1, 1, 1, 1, 0, 0, 0, 0]);
    assert_eq!(
        emitted, 12,
        "the failed tree's 4 messages were emitted again"
    );
    assert_eq!(metrics, (8, 4, 0));
}

// Guards: a shared tree takes at most a sixteenth of max_spout_pending; a call's further messages go into further trees.
#[test]
fn a_shared_tree_takes_at_most_a_sixteenth_of_max_spout_pending() {
    // One call of 8 with max_spout_pending 32: trees of 2, so message 2 fails only 3 with it.
    let config = Config {
        max_spout_pending: Some(32),
        ..config()
    };
    let (failed, emitted, metrics) = fail_one_in_shared_trees(8, config);
    assert_eq!(failed, [0, 0, 1, 1, 0, 0, 0, 0]);
    assert_eq!(emitted, 10);
    assert_eq!(metrics, (8, 2, 0));
}

/// A full bolt that fails the inputs `fail` selects (explicitly) and acks the rest.
struct Failer {
    fail: fn(&Tuple) -> bool,
}

impl Bolt for Failer {
    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        if (self.fail)(&input) {
            out.fail(&input);
        } else {
            out.ack(&input);
        }
        Ok(())
    }
}

// Guards: an explicit fail reaches the spout at once (not at the message timeout) and counts as failed, not timed out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_fail_reaches_the_spout_long_before_the_timeout() {
    let spout = VecSpout::new(["msg"], (0..5).map(|i| values![i]).collect()).without_replay();
    let mut b = TopologyBuilder::new("explicit-fail");
    b.config(Config {
        message_timeout: Duration::from_secs(30),
        ..config()
    });
    b.set_spout("spout", spout.factory(), 1);
    b.set_bolt(
        "failer",
        || Failer {
            fail: |t| int(t, 0) == 2,
        },
        2,
    )
    .shuffle_grouping("spout");
    let start = Instant::now();
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    let failed_within = handle
        .wait_until(Duration::from_secs(5), |m| {
            m.component("spout").is_some_and(|s| s.failed() >= 1)
        })
        .await;
    assert!(
        failed_within.is_ok(),
        "no fail within 5 s of start (timeout is 30 s)"
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    let report = {
        wait_idle(&handle).await;
        handle.stop(Duration::from_secs(5)).await
    };
    assert_eq!(spout.failed(), [0, 0, 1, 0, 0]);
    assert_eq!(spout.acked(), [1, 1, 0, 1, 1]);
    let s = report.metrics.component("spout").expect("spout");
    assert_eq!((s.acked(), s.failed(), s.timed_out()), (4, 1, 0));
    let f = report.metrics.component("failer").expect("failer");
    assert_eq!((f.acked(), f.failed()), (4, 1));
}

// Guards: a tuple a bolt never acks fails at the spout after the message timeout (not before), counted as timed out, not failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_tuple_times_out_and_counts_as_timed_out() {
    let spout = VecSpout::new(["msg"], (0..4).map(|i| values![i]).collect()).without_replay();
    let (failed, acked, metrics) = hold_message_1_past_the_timeout(&spout, 1).await;
    assert_eq!(failed, [0, 1, 0, 0]);
    assert_eq!(acked, [1, 0, 1, 1]);
    assert_eq!(metrics, (3, 0, 1));
}

// Guards: a dropped tuple times out its whole shared tree: each of its messages is failed and counted as timed out, the other tree is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_tuple_times_out_every_message_of_its_shared_tree() {
    // Calls of 2: messages 0-1 share a tree, 2-3 another.
    let spout = VecSpout::new(["msg"], (0..4).map(|i| values![i]).collect())
        .without_replay()
        .shared_trees(2);
    let (failed, acked, metrics) = hold_message_1_past_the_timeout(&spout, 2).await;
    assert_eq!(failed, [1, 1, 0, 0]);
    assert_eq!(acked, [0, 0, 1, 1]);
    assert_eq!(metrics, (2, 0, 2));
}

/// Runs the spout into a sink that never acks message 1, with a 500 ms message timeout, until
/// `timed_out` messages timed out (not before the timeout) and the run is idle; returns the
/// spout's fails and acks per message and its metrics' `(acked, failed, timed out)`.
async fn hold_message_1_past_the_timeout(
    spout: &VecSpout,
    timed_out: u64,
) -> (Vec<u32>, Vec<u32>, (u64, u64, u64)) {
    let timeout = Duration::from_millis(500);
    let never = Gate::default();
    let received = Counter::default();
    let mut b = TopologyBuilder::new("timeout");
    b.config(Config {
        message_timeout: timeout,
        ..config()
    });
    b.set_spout("spout", spout.factory(), 1);
    b.set_bolt(
        "sink",
        Holder::factory(|t| int(t, 0) == 1, &never, &received),
        1,
    )
    .shuffle_grouping("spout");
    let start = Instant::now();
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    wait_for(&handle, "message 1 times out", |m| {
        m.component("spout")
            .is_some_and(|s| s.timed_out() == timed_out)
    })
    .await;
    assert!(
        start.elapsed() >= timeout,
        "timed out after {:?}, before the {timeout:?} timeout",
        start.elapsed()
    );
    wait_idle(&handle).await;
    let report = handle.stop(Duration::from_secs(5)).await;
    let s = report.metrics.component("spout").expect("spout");
    (
        spout.failed(),
        spout.acked(),
        (s.acked(), s.failed(), s.timed_out()),
    )
}

/// Joins `a` and `b`: holds the first to arrive; when both are in, emits one `ab` anchored to both
/// and acks both. Any other input is passed on anchored to itself, and acked.
#[derive(Default)]
struct Join {
    waiting: Vec<Tuple>,
}

impl Bolt for Join {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["key"]);
    }

    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        let key = input.str_field("key")?.to_string();
        if key == "a" || key == "b" {
            self.waiting.push(input);
            if let [x, y] = self.waiting.as_slice() {
                out.emit_anchored(&[x, y], values!["ab"]);
                out.ack(x);
                out.ack(y);
                self.waiting.clear();
            }
        } else {
            out.emit_anchored(&[&input], values![key]);
            out.ack(&input);
        }
        Ok(())
    }
}

// Guards: a tuple anchored to two inputs joins both trees: neither completes until it is acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_anchoring_joins_two_trees_until_the_joined_tuple_is_acked() {
    // `a` and `b` are joined; `probe` passes through after them.
    let spout = VecSpout::new(["key"], vec![values!["a"], values!["b"], values!["probe"]]);
    let release = Gate::default();
    let received = Counter::default();
    let mut b = TopologyBuilder::new("join");
    b.config(config());
    b.set_spout("spout", spout.factory(), 1);
    b.set_bolt("join", Join::default, 1)
        .global_grouping("spout");
    b.set_bolt(
        "sink",
        Holder::factory(
            |t| t.str_field("key").is_ok_and(|k| k == "ab"),
            &release,
            &received,
        ),
        1,
    )
    .global_grouping("join")
    .tick_interval(Duration::from_millis(5));
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));

    wait_for(&handle, "the probe's tree completes", |_| {
        spout.acked()[2] == 1
    })
    .await;
    assert_eq!(received.get(), 2, "the joined tuple and the probe");
    assert_eq!(
        spout.acked(),
        [0, 0, 1],
        "a and b completed while their joined tuple was held"
    );

    release.open();
    wait_for(&handle, "both joined trees complete", |_| {
        spout.acked() == [1, 1, 1]
    })
    .await;
    let report = handle.stop(Duration::from_secs(5)).await;
    assert!(report.drained);
    assert_eq!(spout.failed(), [0, 0, 0]);
}

/// A basic bolt failing (returning `Err`) every odd input and passing the even ones on.
struct OddFails;

impl BasicBolt for OddFails {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["msg"]);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let msg = input.int_field("msg")?;
        if msg % 2 == 1 {
            return Err(format!("odd message {msg}").into());
        }
        out.emit(values![msg]);
        Ok(())
    }
}

// Guards: with zero ackers the spout's emits are acked at once, whatever the bolts do, and nothing is failed or replayed.
//
// It runs on a LocalCluster and waits from the test thread: a spout that spins when idle with
// acking off (see `regressions`) would starve the runtime's timers and hang an async test.
#[test]
fn with_acking_off_the_spout_acks_at_once_and_never_replays() {
    let spout = VecSpout::new(["msg"], (0..50).map(|i| values![i]).collect());
    let never = Gate::default();
    let received = Counter::default();
    let mut b = TopologyBuilder::new("acking-off");
    b.config(Config {
        ackers: 0,
        ..config()
    });
    b.set_spout("spout", spout.factory(), 1);
    b.set_bolt("odd-fails", || OddFails, 2)
        .shuffle_grouping("spout");
    // Holds everything it gets forever: with acking on, no tree could complete.
    b.set_bolt("sink", Holder::factory(|_| true, &never, &received), 1)
        .shuffle_grouping("odd-fails");
    let cluster = LocalCluster::new(2).expect("a runtime");
    let handle = cluster.submit(b.build().expect("a valid topology"));
    wait_blocking("the spout is idle", || handle.is_idle());
    let report = cluster.block_on(handle.stop(Duration::from_secs(5)));
    assert!(report.drained, "{report:#?}");

    assert_eq!(spout.acked(), vec![1; 50]);
    assert_eq!(spout.failed(), vec![0; 50]);
    assert_eq!(spout.emitted(), 50, "nothing replayed");
    assert_eq!(received.get(), 25, "the even messages reached the sink");
    let m = &report.metrics;
    let s = m.component("spout").expect("spout");
    assert_eq!(
        (s.acked(), s.failed(), s.timed_out(), s.pending()),
        (50, 0, 0, 0)
    );
    let odd = m.component("odd-fails").expect("odd-fails");
    assert_eq!((odd.executed(), odd.failed()), (50, 25));
    assert!(
        m.components.iter().all(|c| !c.id.starts_with("__")),
        "no acker runs with acking off"
    );
}

/// How a random topology misbehaves: children per message and which processing attempts fail,
/// all derived from a seed, so a replay of a message can succeed where its first attempt failed.
#[derive(Clone, Copy, Debug)]
struct Chaos {
    seed: u64,
    max_fanout: u64,
    fail_percent: u64,
}

/// One processing step: (stage, message, child); the fan stage uses child -1.
type Step = (u64, i64, i64);

/// What the chaos bolts did: attempts and successes per step.
#[derive(Default)]
struct Record {
    attempts: HashMap<Step, u64>,
    done: HashMap<Step, u64>,
}

impl Chaos {
    fn fanout(&self, msg: i64) -> i64 {
        (mix(&[self.seed, 1, msg as u64]) % (self.max_fanout + 1)) as i64
    }

    /// Runs one attempt of `step`: fails (an `Err`) as the seed says for this attempt number.
    fn attempt(&self, record: &Mutex<Record>, step: Step) -> Result<(), BoxError> {
        let mut r = lock(record);
        let n = r.attempts.entry(step).or_insert(0);
        let attempt = *n;
        *n += 1;
        let roll = mix(&[self.seed, 2, step.0, step.1 as u64, step.2 as u64, attempt]) % 100;
        if roll < self.fail_percent {
            return Err(format!("chaos: step {step:?} attempt {attempt} fails").into());
        }
        *r.done.entry(step).or_insert(0) += 1;
        Ok(())
    }
}

/// Emits the message's children, then succeeds or fails as chaos says.
struct ChaosFan {
    chaos: Chaos,
    record: Arc<Mutex<Record>>,
}

impl BasicBolt for ChaosFan {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["msg", "child"]);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let msg = input.int_field("msg")?;
        for child in 0..self.chaos.fanout(msg) {
            out.emit(values![msg, child]);
        }
        self.chaos.attempt(&self.record, (0, msg, -1))
    }
}

/// Processes a child: succeeds or fails as chaos says.
struct ChaosLeaf {
    chaos: Chaos,
    record: Arc<Mutex<Record>>,
}

impl BasicBolt for ChaosLeaf {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let step = (1, input.int_field("msg")?, input.int_field("child")?);
        self.chaos.attempt(&self.record, step)
    }
}

proptest! {
    // Few, fast cases; a failing case can take a whole wait, so shrinking is bounded in time.
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    })]

    // Guards: at-least-once under random fan-out and random bolt failures: a replaying spout sees each message acked exactly once, and every tuple of its tree was processed at least once.
    #[test]
    fn random_failures_are_replayed_until_each_message_is_acked_exactly_once(
        seed in any::<u64>(),
        spouts in 1usize..=2,
        messages in 1i64..40,
        max_fanout in 0u64..4,
        fail_percent in 0u64..40,
        shared in 0usize..=3,
    ) {
        let chaos = Chaos { seed, max_fanout, fail_percent };
        let record: Arc<Mutex<Record>> = Arc::default();
        let spout = VecSpout::new(["msg"], (0..messages).map(|m| values![m]).collect());
        // 1-3: fresh messages share a tree per call of up to that many.
        let spout = if shared > 0 { spout.shared_trees(shared) } else { spout };
        let mut b = TopologyBuilder::new("chaos");
        b.config(config());
        b.set_spout("spout", spout.factory(), spouts);
        let r = record.clone();
        b.set_bolt("fan", move || ChaosFan { chaos, record: r.clone() }, 2)
            .shuffle_grouping("spout");
        let r = record.clone();
        b.set_bolt("leaf", move || ChaosLeaf { chaos, record: r.clone() }, 3)
            .fields_grouping("fan", ["msg"]);
        let topology = b.build().expect("a valid topology");

        let cluster = LocalCluster::new(2).expect("a runtime");
        let report = cluster.block_on(run_until_idle(topology));

        prop_assert_eq!(spout.acked(), vec![1; messages as usize]);
        let record = lock(&record);
        for msg in 0..messages {
            prop_assert!(record.done.get(&(0, msg, -1)).is_some_and(|&n| n >= 1), "message {} never fanned out", msg);
            for child in 0..chaos.fanout(msg) {
                prop_assert!(
                    record.done.get(&(1, msg, child)).is_some_and(|&n| n >= 1),
                    "child {} of message {} acked without being processed", child, msg
                );
            }
        }
        let s = report.metrics.component("spout").expect("spout");
        prop_assert_eq!(s.acked(), messages as u64);
        prop_assert_eq!(s.failed(), spout.failed().iter().map(|&n| u64::from(n)).sum::<u64>());
        prop_assert_eq!(s.timed_out(), 0);
    }
}
