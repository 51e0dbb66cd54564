//! A crash-and-resume check shared by the stateful bolts' tests.
//!
//! A script of steps (inputs, clock moves, ticks, checkpoints) is run three ways, each tester on
//! a paused clock at the same absolute times:
//! 1. uninterrupted, to the end of input (`finish`);
//! 2. interrupted: the script to its last checkpoint, then `lost` more steps, then the tester is
//!    dropped (a crash); a fresh instance restored from that checkpoint replays every step after
//!    it and finishes. Its outputs (the run before the crash up to the checkpoint, then the
//!    restored run) must equal the uninterrupted run's, step by step;
//! 3. controls, so a restore that dropped state cannot pass: a fresh instance *not* restored
//!    replaying the same steps must give other outputs, and with two checkpoints or more, so
//!    must an instance restored from the first one.
//!
//! Outputs of one step are compared as sorted (stream, values) rows: the bolts emit the groups
//! of one window in no particular order, and results a restored instance emits are anchored
//! only to inputs since the restore.

#![allow(dead_code)]

use std::time::Duration;

use topo_runtime::Values;
use topo_runtime::testing::{BoltTester, Executed, TestCheckpoint};

/// One step of a script.
#[derive(Clone, Debug)]
pub enum Step {
    /// An input on the tester's input stream (component `__input`).
    In(Values),
    /// An input from `component`'s default stream with these fields.
    From(&'static str, &'static [&'static str], Values),
    /// Moves the clock to this many ms past the script's base time (a whole hour).
    At(i64),
    /// A tick.
    Tick,
    /// A checkpoint (`input_drained`, then the snapshot).
    Checkpoint,
}

/// The rows a step emitted: `stream: values`, sorted.
fn rows(e: &Executed) -> Vec<String> {
    let mut v: Vec<String> = e
        .emitted
        .iter()
        .map(|t| format!("{}: {:?}", t.stream, t.values))
        .collect();
    v.sort();
    v
}

/// Moves `t`'s paused clock to exactly `ms` (epoch ms).
fn goto(t: &mut BoltTester, ms: i64) {
    // The paused clock may lag a whole millisecond behind an advance (the runtime's timer
    // rounds to its millisecond ticks): advance again until it reads `ms`.
    for _ in 0..3 {
        let now = t.now_millis();
        assert!(now <= ms, "the clock is at {now}, past {ms}");
        if now == ms {
            return;
        }
        t.advance(Duration::from_millis((ms - now) as u64));
    }
    assert_eq!(
        t.now_millis(),
        ms,
        "the paused clock does not follow advances"
    );
}

/// Starts `t` on a paused clock at `ms`.
fn start(mut t: BoltTester, ms: i64) -> BoltTester {
    t.pause_time();
    goto(&mut t, ms);
    t
}

/// Runs `steps` on `t`; the outputs per step, and each checkpoint with the time it was taken.
fn run(
    t: &mut BoltTester,
    base: i64,
    steps: &[Step],
    checkpoints: &mut Vec<(TestCheckpoint, i64)>,
) -> Vec<Vec<String>> {
    steps
        .iter()
        .map(|s| match s {
            Step::In(v) => rows(&t.execute(v.clone())),
            Step::From(component, fields, v) => {
                rows(&t.execute_from(component, "default", fields.iter().copied(), v.clone()))
            }
            Step::At(ms) => {
                goto(t, base + ms);
                Vec::new()
            }
            Step::Tick => rows(&t.tick()),
            Step::Checkpoint => {
                let (c, e) = t.checkpoint().expect("a checkpoint");
                checkpoints.push((c, t.now_millis()));
                rows(&e)
            }
        })
        .collect()
}

/// Checks that a bolt restored from the last checkpoint of `steps` (after `lost` more steps
/// were run and lost with a crash) and given the steps after the checkpoint again emits exactly
/// what an uninterrupted run emits; see the module docs. `fresh` makes a tester of a new
/// instance, `restore` one restored from a checkpoint. Returns the uninterrupted run's outputs
/// (one entry per step, then `finish`), for the caller's own assertions.
pub fn check_resume(
    fresh: impl Fn() -> BoltTester,
    restore: impl Fn(&TestCheckpoint) -> BoltTester,
    steps: &[Step],
    lost: usize,
) -> Vec<Vec<String>> {
    let first = fresh();
    // A whole hour at least an hour ahead: every tester (starting at the real time) can move
    // its clock there, and windows aligned to the epoch line up alike in every run.
    let base = (first.now_millis() / 3_600_000 + 2) * 3_600_000;
    let cut = steps
        .iter()
        .rposition(|s| matches!(s, Step::Checkpoint))
        .expect("a script with a checkpoint");
    let tail = &steps[cut + 1..];
    assert!(lost <= tail.len(), "more steps lost than there are");

    // 1. Uninterrupted.
    let mut t = start(first, base);
    let mut expected = run(&mut t, base, steps, &mut Vec::new());
    expected.push(rows(&t.finish()));
    drop(t);

    // 2. Crash after the last checkpoint and `lost` more steps; restore; replay.
    let mut t = start(fresh(), base);
    let mut checkpoints = Vec::new();
    let mut got = run(&mut t, base, &steps[..=cut], &mut checkpoints);
    run(&mut t, base, &tail[..lost], &mut Vec::new());
    drop(t);
    let (last, at) = checkpoints.last().cloned().expect("the checkpoint taken");
    let mut back = start(restore(&last), at);
    got.extend(run(&mut back, base, tail, &mut Vec::new()));
    got.push(rows(&back.finish()));
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        let what = steps
            .get(i)
            .map_or("finish".to_string(), |s| format!("{s:?}"));
        assert_eq!(g, e, "step {i} ({what}): the resumed run differs");
    }
    assert_eq!(got.len(), expected.len());

    // 3. Controls: without the state, or with only the first checkpoint's, the replay differs.
    let tail_expected = &expected[cut + 1..];
    let mut bare = start(fresh(), at);
    let mut unrestored = run(&mut bare, base, tail, &mut Vec::new());
    unrestored.push(rows(&bare.finish()));
    assert_ne!(
        unrestored, tail_expected,
        "the steps after the checkpoint give the same outputs without the state: this script \
         cannot catch a restore that dropped it"
    );
    if checkpoints.len() > 1 {
        let mut older = start(restore(&checkpoints[0].0), at);
        let mut from_first = run(&mut older, base, tail, &mut Vec::new());
        from_first.push(rows(&older.finish()));
        assert_ne!(
            from_first, tail_expected,
            "restoring the first checkpoint gives the same outputs as the last: this script \
             cannot tell which checkpoint was restored"
        );
    }
    expected
}
