//! Checkpoints through the public API: a spout that rewinds and a keyed-state bolt written in
//! the test (the few lines a user writes), run, stopped with a savepoint and resumed; a
//! checkpoint directory that cannot be written does not stop processing, and checkpoints
//! recover once it can; exactly-once refuses a spout that cannot rewind; a checkpoint naming a
//! component the topology lost is refused unless allowed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use topo_runtime::{
    BasicBolt, BasicCollector, BoxError, Config, Guarantee, KeyedState, OutputDeclarer, Restore,
    RunOptions, Snapshot, Spout, SpoutCollector, Topology, TopologyBuilder, Tuple, try_submit,
    values,
};

use crate::util::{config, lock, wait_for, wait_idle};

/// Emits 0, 1, ... below `end`; its position is its next number.
#[derive(Clone)]
struct Numbers {
    next: i64,
    end: i64,
}

impl Spout for Numbers {
    type MessageId = i64;
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["k", "n"]);
    }
    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, i64>) -> Result<(), BoxError> {
        for _ in 0..64 {
            if self.next >= self.end {
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
struct Sum {
    sums: KeyedState<i64, i64>,
    seen: Arc<Mutex<HashMap<i64, i64>>>,
    panic_at: Option<(i64, Arc<std::sync::atomic::AtomicBool>)>,
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
    b.set_spout("numbers", || Numbers { next: 0, end: END }, 1);
    let seen = seen.clone();
    b.set_bolt(
        "sum",
        move || Sum {
            sums: KeyedState::new(),
            seen: seen.clone(),
            panic_at: panic_at.clone(),
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
        b.set_spout("numbers", || Numbers { next: 0, end: END }, 1);
        let seen = seen.clone();
        b.set_bolt(
            "total",
            move || Sum {
                sums: KeyedState::new(),
                seen: seen.clone(),
                panic_at: None,
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
