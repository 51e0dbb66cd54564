//! Checkpoints through the public API: a spout that rewinds and a keyed-state bolt written in
//! the test (the few lines a user writes), run, stopped with a savepoint and resumed; a
//! checkpoint directory that cannot be written does not stop processing, and checkpoints
//! recover once it can; exactly-once refuses a spout that cannot rewind; a checkpoint naming a
//! component the topology lost is refused unless allowed.
//!
//! Stops: a stop whose savepoint completes does not finish stateful bolts (the resumed run
//! fires what they hold, once); a drained stop and a stop whose savepoint fails finish every
//! bolt. Failures: under exactly-once a panic in any bolt, stateless ones included, stops the
//! run for a resume (under at-least-once it does not), and an error drops only its input.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use topo_runtime::{
    BasicBolt, BasicCollector, Bolt, BoxError, Config, Guarantee, KeyedState, OutputCollector,
    OutputDeclarer, Restore, RunOptions, Snapshot, Spout, SpoutCollector, StopMode, TaskContext,
    Topology, TopologyBuilder, Tuple, try_submit, values,
};

use crate::util::{Counter, config, lock, wait_for, wait_idle};

/// Emits 0, 1, ... below `end`, and only below what the test allows so far (`allowed`), so a
/// run can be stopped before its input ends; its position is its next number.
#[derive(Clone)]
struct Numbers {
    next: i64,
    end: i64,
    allowed: Arc<AtomicI64>,
}

impl Numbers {
    /// 0, 1, ... below `end`, all allowed.
    fn upto(end: i64) -> Numbers {
        Numbers::gated(end, &Arc::new(AtomicI64::new(i64::MAX)))
    }

    /// 0, 1, ... below `end` and below `allowed`.
    fn gated(end: i64, allowed: &Arc<AtomicI64>) -> Numbers {
        Numbers {
            next: 0,
            end,
            allowed: allowed.clone(),
        }
    }
}

impl Spout for Numbers {
    type MessageId = i64;
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["k", "n"]);
    }
    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, i64>) -> Result<(), BoxError> {
        let until = self.end.min(self.allowed.load(SeqCst));
        for _ in 0..64 {
            if self.next >= until {
                break;
            }
            out.emit(values![self.next % 10, self.next], self.next);
            self.next += 1;
        }
        Ok(())
    }
    fn is_exhausted(&self) -> bool {
        self.next >= self.end
    }
    fn rewinds(&self) -> bool {
        true
    }
    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        snap.put("next", &self.next);
        Ok(())
    }
    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        if let Some(next) = from.get::<i64>("next")? {
            self.next = next;
        }
        Ok(())
    }
}

/// Sums `n` per key `k` in keyed state; reports each new sum. Panics once at `panic_at`, if set.
/// Counts its `finish` calls.
struct Sum {
    sums: KeyedState<i64, i64>,
    seen: Arc<Mutex<HashMap<i64, i64>>>,
    panic_at: Option<(i64, Arc<std::sync::atomic::AtomicBool>)>,
    finished: Counter,
}

impl BasicBolt for Sum {
    fn has_state(&self) -> bool {
        true
    }
    fn execute(&mut self, t: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let (k, n) = (t.int_field("k")?, t.int_field("n")?);
        if let Some((at, done)) = &self.panic_at
            && n == *at
            && !done.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            panic!("a bug at {n}");
        }
        let sum = match self.sums.get_mut(&k) {
            Some(s) => {
                *s += n;
                *s
            }
            None => {
                self.sums.insert(k, n);
                n
            }
        };
        lock(&self.seen).insert(k, sum);
        Ok(())
    }
    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        snap.put_keyed("sums", &mut self.sums);
        Ok(())
    }
    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        from.keyed("sums", &mut self.sums)
    }
    fn finish(&mut self, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        self.finished.inc();
        // The final sums, also when the input ended before this run (a resumed run whose
        // checkpoint already holds every number has nothing to execute).
        let mut seen = lock(&self.seen);
        for (k, sum) in self.sums.iter() {
            seen.insert(*k, *sum);
        }
        Ok(())
    }
}

const END: i64 = 200_000;

fn topology(dir: &Path, sum_tasks: usize, seen: &Arc<Mutex<HashMap<i64, i64>>>) -> Topology {
    topology_panicking(dir, sum_tasks, seen, None)
}

fn topology_panicking(
    dir: &Path,
    sum_tasks: usize,
    seen: &Arc<Mutex<HashMap<i64, i64>>>,
    panic_at: Option<(i64, Arc<std::sync::atomic::AtomicBool>)>,
) -> Topology {
    let mut b = TopologyBuilder::new("sums");
    b.config(Config {
        guarantee: Guarantee::ExactlyOnce,
        checkpoint_interval: std::time::Duration::from_millis(20),
        checkpoint_dir: Some(dir.to_path_buf()),
        ..config()
    });
    b.set_spout("numbers", || Numbers::upto(END), 1);
    let seen = seen.clone();
    b.set_bolt(
        "sum",
        move || Sum {
            sums: KeyedState::new(),
            seen: seen.clone(),
            panic_at: panic_at.clone(),
            finished: Counter::default(),
        },
        sum_tasks,
    )
    .fields_grouping("numbers", ["k"]);
    b.build().expect("a valid topology")
}

fn truth() -> HashMap<i64, i64> {
    let mut t = HashMap::new();
    for n in 0..END {
        *t.entry(n % 10).or_insert(0) += n;
    }
    t
}

// Guards "processing goes on": checkpoints that cannot be written are counted as failed while
// tuples keep flowing; once the directory can be written they complete, and a run resumed from
// the last one (with another parallelism) ends with exact sums.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoint_failures_do_not_stop_processing_and_recovery_follows() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ckpt = dir.path().join("ckpt");
    std::fs::create_dir_all(&ckpt).expect("the checkpoint directory");
    // A file where the data directory goes: every checkpoint's write fails.
    std::fs::write(ckpt.join("data"), b"in the way").expect("a blocking file");

    let seen = Arc::new(Mutex::new(HashMap::new()));
    let handle = try_submit(topology(&ckpt, 2, &seen), &RunOptions::default()).expect("starts");
    let failing = wait_for(&handle, "three failed checkpoints", |m| {
        m.checkpoints.as_ref().is_some_and(|c| c.failed >= 3)
    })
    .await;
    let executed =
        |m: &topo_runtime::MetricsSnapshot| m.component("sum").map_or(0, |c| c.executed());
    let before = executed(&failing);
    wait_for(&handle, "tuples processed while checkpoints fail", |m| {
        executed(m) > before
    })
    .await;
    assert_eq!(
        failing.checkpoints.as_ref().and_then(|c| c.last_id),
        None,
        "no checkpoint completed while the directory could not be written"
    );
    std::fs::remove_file(ckpt.join("data")).expect("unblock");
    wait_for(&handle, "a checkpoint completes again", |m| {
        m.checkpoints.as_ref().is_some_and(|c| c.completed >= 2)
    })
    .await;
    let report = handle.stop(std::time::Duration::from_secs(10)).await;
    assert!(report.drained, "{report:?}");

    // Resume with three tasks: the sums are split anew by key group.
    let resumed = Arc::new(Mutex::new(HashMap::new()));
    let handle = try_submit(topology(&ckpt, 3, &resumed), &RunOptions::default()).expect("resumes");
    assert!(
        handle
            .metrics()
            .checkpoints
            .and_then(|c| c.restored_id)
            .is_some(),
        "resumed from a checkpoint"
    );
    wait_idle(&handle).await;
    handle.stop(std::time::Duration::from_secs(10)).await;
    assert_eq!(*lock(&resumed), truth(), "exact sums after the resume");
}

// Guards "a failed instance never resets state": a stateful bolt that panics stops the topology
// with an error a resume repairs (what `topo run` does by itself), and the resumed run ends with
// exact sums.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_stateful_bolt_stops_the_run_and_a_resume_is_exact() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handle = try_submit(
        topology_panicking(dir.path(), 2, &seen, Some((150_000, once.clone()))),
        &RunOptions::default(),
    )
    .expect("starts");
    crate::util::wait_for(&handle, "the fatal error", |_| {
        handle.fatal_error().is_some()
    })
    .await;
    assert!(handle.resume_repairs(), "{:?}", handle.fatal_error());
    let why = handle.fatal_error().unwrap_or_default();
    assert!(
        why.contains("sum[") && why.contains("a bug at 150000"),
        "{why}"
    );
    handle.stop(std::time::Duration::from_secs(10)).await;

    let resumed = Arc::new(Mutex::new(HashMap::new()));
    let handle = try_submit(
        topology_panicking(dir.path(), 2, &resumed, Some((150_000, once))),
        &RunOptions::default(),
    )
    .expect("resumes");
    wait_idle(&handle).await;
    assert!(handle.fatal_error().is_none());
    handle.stop(std::time::Duration::from_secs(10)).await;
    assert_eq!(*lock(&resumed), truth(), "exact sums after the resume");
}

// Guards the exactly-once precondition: a spout that cannot rewind is refused by validation,
// naming the component.
#[test]
fn exactly_once_refuses_a_spout_that_cannot_rewind() {
    let spout = topo_runtime::testing::VecSpout::new(["x"], vec![values![1]]);
    let mut b = TopologyBuilder::new("no-rewind");
    b.config(Config {
        guarantee: Guarantee::ExactlyOnce,
        ..config()
    });
    b.set_spout("lines", spout.factory(), 1);
    let err = b.build().expect_err("refused").to_string();
    assert!(
        err.contains("lines") && err.contains("rewind"),
        "names the spout and why: {err}"
    );
}

// Guards "never a silent reset": a checkpoint holding state of a component the topology no
// longer has is refused, naming it, unless --allow-missing-state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_a_removed_component_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let handle =
        try_submit(topology(dir.path(), 1, &seen), &RunOptions::default()).expect("starts");
    wait_for(&handle, "a checkpoint", |m| {
        m.checkpoints.as_ref().is_some_and(|c| c.completed >= 1)
    })
    .await;
    handle.stop(std::time::Duration::from_secs(10)).await;

    let renamed = || {
        let mut b = TopologyBuilder::new("sums");
        b.config(Config {
            guarantee: Guarantee::ExactlyOnce,
            checkpoint_dir: Some(dir.path().to_path_buf()),
            ..config()
        });
        b.set_spout("numbers", || Numbers::upto(END), 1);
        let seen = seen.clone();
        b.set_bolt(
            "total",
            move || Sum {
                sums: KeyedState::new(),
                seen: seen.clone(),
                panic_at: None,
                finished: Counter::default(),
            },
            1,
        )
        .fields_grouping("numbers", ["k"]);
        b.build().expect("a valid topology")
    };
    let err = try_submit(renamed(), &RunOptions::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("`sum`") && err.contains("--allow-missing-state"),
        "names the component and the escape: {err}"
    );
    let allowed = RunOptions {
        allow_missing_state: true,
        ..RunOptions::default()
    };
    let handle = try_submit(renamed(), &allowed).expect("allowed");
    handle.stop(std::time::Duration::from_secs(10)).await;
}

// ------------------------------------------------ stop with a savepoint, drained stops

/// What a [`Totals`] task did, in order: what the test checks against the checkpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Did {
    Snapshot(u64),
    Tick,
}

/// What the test reads of the `totals` and `out` bolts.
#[derive(Clone, Default)]
struct Seen {
    /// `(k, total)` as `out` received them.
    results: Arc<Mutex<Vec<(i64, i64)>>>,
    /// `finish` calls of `totals` (stateful) and of `out` (stateless).
    totals_finished: Counter,
    out_finished: Counter,
    /// Per `totals` task index: its snapshots and ticks.
    did: Arc<Mutex<HashMap<usize, Vec<Did>>>>,
}

/// Sums `n` per key `k` in keyed state, as a window holds its open windows: nothing is emitted
/// before `finish`, which emits every key's total. Ticks every millisecond (recorded).
struct Totals {
    sums: KeyedState<i64, i64>,
    task: usize,
    seen: Seen,
}

impl BasicBolt for Totals {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["k", "total"]);
    }
    fn prepare(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        self.task = ctx.task_index();
        Ok(())
    }
    fn has_state(&self) -> bool {
        true
    }
    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(1))
    }
    fn execute(&mut self, t: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let (k, n) = (t.int_field("k")?, t.int_field("n")?);
        match self.sums.get_mut(&k) {
            Some(s) => *s += n,
            None => {
                self.sums.insert(k, n);
            }
        }
        Ok(())
    }
    fn tick(&mut self, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        self.did(Did::Tick);
        Ok(())
    }
    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        self.did(Did::Snapshot(snap.checkpoint_id()));
        snap.put_keyed("sums", &mut self.sums);
        Ok(())
    }
    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        from.keyed("sums", &mut self.sums)
    }
    fn finish(&mut self, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        self.seen.totals_finished.inc();
        for (k, total) in self.sums.iter() {
            out.emit(values![*k, *total]);
        }
        Ok(())
    }
}

impl Totals {
    fn did(&self, what: Did) {
        lock(&self.seen.did)
            .entry(self.task)
            .or_default()
            .push(what);
    }
}

/// A stateless sink: keeps what it receives; counts its `finish` calls.
struct Out {
    seen: Seen,
}

impl BasicBolt for Out {
    fn execute(&mut self, t: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        lock(&self.seen.results).push((t.int_field("k")?, t.int_field("total")?));
        Ok(())
    }
    fn finish(&mut self, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        self.seen.out_finished.inc();
        Ok(())
    }
}

/// How many numbers the stop tests emit in all.
const GATED_END: i64 = 20_000;
/// How many the first run of a stop test is allowed to emit.
const FIRST_PART: i64 = 5_000;

/// gated -> totals (2 tasks, by `k`) -> out, exactly-once, checkpoints every 20 ms into `dir`.
fn totals_topology(dir: &Path, allowed: &Arc<AtomicI64>, seen: &Seen) -> Topology {
    let mut b = TopologyBuilder::new("totals");
    b.config(Config {
        guarantee: Guarantee::ExactlyOnce,
        checkpoint_interval: Duration::from_millis(20),
        checkpoint_dir: Some(dir.to_path_buf()),
        ..config()
    });
    let allowed = allowed.clone();
    b.set_spout("gated", move || Numbers::gated(GATED_END, &allowed), 1);
    let s = seen.clone();
    b.set_bolt(
        "totals",
        move || Totals {
            sums: KeyedState::new(),
            task: 0,
            seen: s.clone(),
        },
        2,
    )
    .fields_grouping("gated", ["k"]);
    let s = seen.clone();
    b.set_bolt("out", move || Out { seen: s.clone() }, 1)
        .shuffle_grouping("totals");
    b.build().expect("a valid topology")
}

/// The totals per key of the numbers below `end`.
fn totals_below(end: i64) -> Vec<(i64, i64)> {
    let mut t: HashMap<i64, i64> = HashMap::new();
    for n in 0..end {
        *t.entry(n % 10).or_insert(0) += n;
    }
    let mut t: Vec<_> = t.into_iter().collect();
    t.sort_unstable();
    t
}

/// What `out` received, sorted.
fn results(seen: &Seen) -> Vec<(i64, i64)> {
    let mut r = lock(&seen.results).clone();
    r.sort_unstable();
    r
}

/// Starts the totals topology on `dir` with the first part of the input allowed, and waits
/// until `totals` has executed all of it and a checkpoint completed after that.
async fn first_part(dir: &Path, seen: &Seen) -> topo_runtime::TopologyHandle {
    let allowed = Arc::new(AtomicI64::new(FIRST_PART));
    let handle =
        try_submit(totals_topology(dir, &allowed, seen), &RunOptions::default()).expect("starts");
    wait_for(&handle, "the first part executed", |m| {
        m.component("totals")
            .is_some_and(|c| c.executed() == FIRST_PART as u64)
    })
    .await;
    assert!(!handle.is_idle(), "the input has not ended");
    handle
}

/// Resumes the totals topology on `dir` with the whole input allowed, runs it to the end and
/// stops it (the end of input: every bolt is finished). Says which checkpoint it resumed from.
async fn the_rest(dir: &Path, seen: &Seen) -> Option<u64> {
    let allowed = Arc::new(AtomicI64::new(GATED_END));
    let handle =
        try_submit(totals_topology(dir, &allowed, seen), &RunOptions::default()).expect("resumes");
    let restored = handle.metrics().checkpoints.and_then(|c| c.restored_id);
    wait_idle(&handle).await;
    let report = handle.stop(Duration::from_secs(10)).await;
    assert!(report.drained, "{report:?}");
    restored
}

// Guards "stop with a savepoint keeps windows open" (Flink's stop without --drain): a stop
// before the end of input whose savepoint completes does not finish the stateful bolt (no
// partial results are emitted) but does finish the stateless sink; the stateful bolt takes no
// tick after its savepoint snapshot; the run resumed from the savepoint emits each total once,
// whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_with_a_savepoint_does_not_finish_stateful_bolts_and_the_resume_fires_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let seen = Seen::default();
    let handle = first_part(dir.path(), &seen).await;
    let report = handle.stop(Duration::from_secs(10)).await;
    assert!(report.drained, "{report:?}");
    let savepoint = report
        .metrics
        .checkpoints
        .as_ref()
        .and_then(|c| c.last_id)
        .expect("the stop's savepoint completed");
    let manifest = topo_runtime::checkpoint::manifest::Checkpoints::new(Arc::new(
        topo_runtime::checkpoint::storage::LocalDir::new(dir.path()),
    ))
    .load(savepoint)
    .expect("the savepoint's manifest");
    assert!(
        manifest.savepoint,
        "the newest checkpoint is the stop's savepoint"
    );
    assert_eq!(seen.totals_finished.get(), 0, "stateful bolt finished");
    assert_eq!(seen.out_finished.get(), 1, "the stateless sink is finished");
    assert_eq!(results(&seen), [], "partial results emitted at the stop");
    for (task, did) in lock(&seen.did).iter() {
        let at = did
            .iter()
            .position(|d| *d == Did::Snapshot(savepoint))
            .unwrap_or_else(|| panic!("totals[{task}] took no part in the savepoint: {did:?}"));
        assert!(
            !did[at..].contains(&Did::Tick),
            "totals[{task}] ticked after its savepoint snapshot: {:?}",
            &did[at..]
        );
    }

    let restored = the_rest(dir.path(), &seen).await;
    assert_eq!(restored, Some(savepoint), "resumed from the savepoint");
    assert_eq!(
        seen.totals_finished.get(),
        2,
        "finished at the end of input"
    );
    assert_eq!(
        results(&seen),
        totals_below(GATED_END),
        "each total emitted once, whole"
    );
}

// Guards the drained stop (Flink's stop --drain, `topo run --drain`): a stop before the end of
// input in StopMode::Drain finishes every bolt (the stateful one emits what it holds) and ends
// in a final checkpoint taken after `finish`, from which the next run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_stop_finishes_stateful_bolts_and_its_final_checkpoint_follows_them() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let seen = Seen::default();
    let handle = first_part(dir.path(), &seen).await;
    let report = handle
        .stop_with(StopMode::Drain, Duration::from_secs(10))
        .await;
    assert!(report.drained, "{report:?}");
    assert_eq!(
        seen.totals_finished.get(),
        2,
        "every stateful task finished"
    );
    assert_eq!(seen.out_finished.get(), 1);
    assert_eq!(
        results(&seen),
        totals_below(FIRST_PART),
        "what was held, fired"
    );
    let last = report.metrics.checkpoints.as_ref().and_then(|c| c.last_id);

    lock(&seen.results).clear();
    let restored = the_rest(dir.path(), &seen).await;
    assert!(
        restored.is_some() && restored == last,
        "resumed from the final checkpoint"
    );
    assert_eq!(
        results(&seen),
        totals_below(GATED_END),
        "the state went on from the final checkpoint"
    );
}

// Guards "finish when nothing durable covers the state": a stop whose savepoint fails (the
// checkpoint directory cannot be written) finishes every bolt, stateful ones included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_whose_savepoint_fails_finishes_every_bolt() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    // A file where the data directory goes: every checkpoint's write fails.
    std::fs::write(dir.path().join("data"), b"in the way").expect("a blocking file");
    let seen = Seen::default();
    let handle = first_part(dir.path(), &seen).await;
    let report = handle.stop(Duration::from_secs(10)).await;
    assert!(report.drained, "{report:?}");
    let cp = report.metrics.checkpoints.expect("checkpoint figures");
    assert_eq!(cp.last_id, None, "no checkpoint completed: {cp:?}");
    assert_eq!(
        seen.totals_finished.get(),
        2,
        "every stateful task finished"
    );
    assert_eq!(seen.out_finished.get(), 1);
    assert_eq!(results(&seen), totals_below(FIRST_PART));
}

// ------------------------------------------------ failures of stateless bolts

/// A stateless bolt passing `(k, n)` on; panics the first time any instance sees `panic_at`
/// (if set), and fails (returns an error for) every `n` that `refuse` names.
struct Relay {
    panic_at: Option<(i64, Arc<std::sync::atomic::AtomicBool>)>,
    refuse: fn(i64) -> bool,
}

impl BasicBolt for Relay {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["k", "n"]);
    }
    fn execute(&mut self, t: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let (k, n) = (t.int_field("k")?, t.int_field("n")?);
        if let Some((at, done)) = &self.panic_at
            && n == *at
            && !done.swap(true, SeqCst)
        {
            panic!("a bug at {n}");
        }
        if (self.refuse)(n) {
            return Err(format!("refused {n}").into());
        }
        out.emit(values![k, n]);
        Ok(())
    }
}

/// numbers -> relay (2 tasks, stateless) -> sum (2 tasks, keyed state, `finish` counted in
/// `sum_finished`), checkpoints every 20 ms into `dir`.
fn relay_topology(
    dir: &Path,
    guarantee: Guarantee,
    seen: &Arc<Mutex<HashMap<i64, i64>>>,
    panic_at: Option<(i64, Arc<std::sync::atomic::AtomicBool>)>,
    refuse: fn(i64) -> bool,
    sum_finished: &Counter,
) -> Topology {
    let mut b = TopologyBuilder::new("relayed");
    b.config(Config {
        guarantee,
        checkpoint_interval: Duration::from_millis(20),
        checkpoint_dir: Some(dir.to_path_buf()),
        ..config()
    });
    b.set_spout("numbers", || Numbers::upto(END), 1);
    b.set_bolt(
        "relay",
        move || Relay {
            panic_at: panic_at.clone(),
            refuse,
        },
        2,
    )
    .shuffle_grouping("numbers");
    let (seen, finished) = (seen.clone(), sum_finished.clone());
    b.set_bolt(
        "sum",
        move || Sum {
            sums: KeyedState::new(),
            seen: seen.clone(),
            panic_at: None,
            finished: finished.clone(),
        },
        2,
    )
    .fields_grouping("relay", ["k"]);
    b.build().expect("a valid topology")
}

// Guards "any bolt failure is fatal under exactly-once": a stateless bolt that panics loses the
// input it was executing (nothing is tracked, so nothing replays it); the run stops with an
// error a resume repairs, naming the bolt, and the run resumed from the newest checkpoint ends
// with exact sums.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_stateless_bolt_under_exactly_once_stops_the_run_and_a_resume_is_exact() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let never = |_| false;
    let once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let panic_at = Some((150_000, once.clone()));
    let finished = Counter::default();
    let topology = relay_topology(
        dir.path(),
        Guarantee::ExactlyOnce,
        &seen,
        panic_at.clone(),
        never,
        &finished,
    );
    let handle = try_submit(topology, &RunOptions::default()).expect("starts");
    wait_for(&handle, "the fatal error", |_| {
        handle.fatal_error().is_some()
    })
    .await;
    assert!(handle.resume_repairs(), "{:?}", handle.fatal_error());
    let why = handle.fatal_error().unwrap_or_default();
    assert!(
        why.contains("relay[") && why.contains("a bug at 150000") && why.contains("exactly-once"),
        "{why}"
    );
    handle.stop(Duration::from_secs(10)).await;
    assert_eq!(
        finished.get(),
        0,
        "the stateful bolt is not finished: the resumed run goes on with its state"
    );

    let resumed = Arc::new(Mutex::new(HashMap::new()));
    let topology = relay_topology(
        dir.path(),
        Guarantee::ExactlyOnce,
        &resumed,
        panic_at,
        never,
        &finished,
    );
    let handle = try_submit(topology, &RunOptions::default()).expect("resumes");
    wait_idle(&handle).await;
    assert_eq!(handle.fatal_error(), None);
    handle.stop(Duration::from_secs(10)).await;
    assert_eq!(finished.get(), 2, "finished at the end of input");
    assert_eq!(*lock(&resumed), truth(), "exact sums after the resume");
}

// Guards that at-least-once keeps its rule: there a stateless bolt's panic fails its input to
// the spout (which may replay it), and the run goes on with a fresh instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_stateless_bolt_under_at_least_once_does_not_stop_the_run() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let topology = relay_topology(
        dir.path(),
        Guarantee::AtLeastOnce,
        &seen,
        Some((150_000, once.clone())),
        |_| false,
        &Counter::default(),
    );
    let handle = try_submit(topology, &RunOptions::default()).expect("starts");
    let m = wait_idle(&handle).await;
    assert!(once.load(SeqCst), "the relay panicked");
    assert_eq!(handle.fatal_error(), None);
    assert_eq!(m.component("relay").map(|c| c.restarts()), Some(1));
    handle.stop(Duration::from_secs(10)).await;
}

// Guards what an error means under exactly-once: the input's outcome, counted and logged, not
// replayed and not fatal; the run goes on, and every other input counts once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_under_exactly_once_drops_its_input_and_the_run_goes_on() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let refuse = |n: i64| n % 1000 == 7;
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let topology = relay_topology(
        dir.path(),
        Guarantee::ExactlyOnce,
        &seen,
        None,
        refuse,
        &Counter::default(),
    );
    let handle = try_submit(topology, &RunOptions::default()).expect("starts");
    // Nothing is tracked: the spout is idle once it has emitted all; the relay may still be
    // executing.
    let m = wait_for(&handle, "the relay executed every input", |m| {
        m.component("relay")
            .is_some_and(|c| c.executed() == END as u64)
    })
    .await;
    assert_eq!(handle.fatal_error(), None);
    let relay = m.component("relay").expect("relay");
    assert_eq!(relay.errors(), (END / 1000) as u64, "each refusal counted");
    assert_eq!(relay.restarts(), 0);
    handle.stop(Duration::from_secs(10)).await;
    let mut want = HashMap::new();
    for n in (0..END).filter(|n| !refuse(*n)) {
        *want.entry(n % 10).or_insert(0) += n;
    }
    assert_eq!(*lock(&seen), want, "every other input counted once");
}

/// A stateful full bolt that holds every input un-acked until its next tick (every 5 ms), as a
/// processing-time window holds its inputs until it fires.
struct HoldUntilTick {
    held: Vec<Tuple>,
}

impl Bolt for HoldUntilTick {
    fn has_state(&self) -> bool {
        true
    }
    fn tick_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(5))
    }
    async fn execute(
        &mut self,
        input: Tuple,
        _out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        self.held.push(input);
        Ok(())
    }
    async fn tick(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        for t in self.held.drain(..) {
            out.ack(&t);
        }
        Ok(())
    }
}

// Guards that under at-least-once a stop with a savepoint still lets ticks complete the trees
// a stateful bolt holds (the stop waits for them): it drains, rather than waiting out its
// deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_at_least_once_a_stop_with_a_savepoint_lets_ticks_complete_held_trees() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let allowed = Arc::new(AtomicI64::new(FIRST_PART));
    let mut b = TopologyBuilder::new("held");
    b.config(Config {
        guarantee: Guarantee::AtLeastOnce,
        checkpoint_interval: Duration::from_millis(20),
        checkpoint_dir: Some(dir.path().to_path_buf()),
        ..config()
    });
    let a = allowed.clone();
    b.set_spout("gated", move || Numbers::gated(GATED_END, &a), 1);
    b.set_bolt("hold", || HoldUntilTick { held: Vec::new() }, 2)
        .fields_grouping("gated", ["k"]);
    let handle =
        try_submit(b.build().expect("a valid topology"), &RunOptions::default()).expect("starts");
    wait_for(&handle, "the first part executed", |m| {
        m.component("hold")
            .is_some_and(|c| c.executed() == FIRST_PART as u64)
    })
    .await;
    let report = handle.stop(Duration::from_secs(10)).await;
    assert!(report.drained, "the held trees completed: {report:?}");
    assert!(
        report
            .metrics
            .checkpoints
            .as_ref()
            .is_some_and(|c| c.last_id.is_some()),
        "the stop's savepoint completed"
    );
}
