//! End-to-end: how `topo run` stops a checkpointed window topology before its input ends.
//!
//! ```text
//! generator (sensors, 6000 readings at 2000/s, event-time timestamps) -> window (event time,
//!   1 s tumbling, per device: count, sum of timestamps) -> stdout (JSON lines: not transactional)
//! ```
//!
//! A stop by `--for` takes a savepoint and fires no open window (Flink's stop with a
//! savepoint); the run resumed from it (`--until-idle`) fires each window once, whole, so the
//! two runs' output together equals one uninterrupted run's. `--drain` ends the input at the
//! stop instead: the open windows fire with what they hold.

use std::path::Path;
use std::time::Duration;

use assert_cmd::Command;
use topo_test_support::temp_topology;

/// An upper bound for any single invocation; each takes a few seconds.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Readings per device and window: 2000 readings a second of event time, 4 devices.
const FULL: i64 = 500;

const TOPOLOGY: &str = r#"
name = "stop-windows"

[config]
guarantee = "exactly_once"
checkpoint_interval = "100ms"

[spouts.readings]
kind = "generator"
mode = "sensors"
devices = 4
count = 6000
rate = 2000
start_time = 1767225600000
seed = 7
# One task: the watermark then follows one ordered stream of timestamps (no late readings).
parallelism = 1

[bolts.per_device]
kind = "window"
length = "1s"
time = "event"
timestamp = "timestamp"
group_by = ["device_id"]
aggregates = [
  { fn = "count", as = "n" },
  { fn = "sum", field = "timestamp", as = "ts_sum" },
]
parallelism = 2
inputs = [{ from = "readings", grouping = { fields = ["device_id"] } }]

[bolts.out]
kind = "stdout"
inputs = [{ from = "per_device" }]
"#;

/// `topo -q run FILE ARGS..` with `state` as its state directory; its stdout lines (the window
/// results), after checking it exited 0.
fn run(file: &Path, state: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::cargo_bin("topo")
        .expect("the topo binary")
        .env("TOPO_STATE_DIR", state)
        .env_remove("RUST_LOG")
        .arg("-q")
        .arg("run")
        .arg(file)
        .args(args)
        .timeout(TIMEOUT)
        .output()
        .expect("topo runs");
    assert!(
        out.status.success(),
        "topo run {args:?}: {:?}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .map(str::to_string)
        .collect()
}

/// A result line's readings count (`n`).
fn readings(line: &str) -> i64 {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"));
    v["n"]
        .as_i64()
        .unwrap_or_else(|| panic!("{line:?} has no count `n`"))
}

fn sorted(mut lines: Vec<String>) -> Vec<String> {
    lines.sort();
    lines
}

// Guards "stop with a savepoint keeps windows open": `topo run --for` emits no partial window,
// and the resumed `--until-idle` run emits each window once, whole: together, exactly what one
// uninterrupted run emits.
#[test]
fn a_stopped_run_fires_no_partial_window_and_the_resumed_run_fires_each_once() {
    let file = temp_topology(TOPOLOGY);
    let states = tempfile::tempdir().expect("a temporary directory");

    let whole = sorted(run(
        file.path(),
        &states.path().join("whole"),
        &["--until-idle"],
    ));
    assert_eq!(whole.len(), 12, "4 devices x 3 windows: {whole:#?}");
    assert!(
        whole.iter().all(|l| readings(l) == FULL),
        "every window is full: {whole:#?}"
    );

    let state = states.path().join("stopped");
    let first = run(file.path(), &state, &["--for", "1500ms"]);
    assert!(
        first.len() < whole.len(),
        "the first run stopped before its input ended: {first:#?}"
    );
    for line in &first {
        assert!(
            whole.contains(line),
            "the stop fired a partial window: {line}\nwhole run: {whole:#?}"
        );
    }
    let rest = run(file.path(), &state, &["--until-idle"]);
    let both = sorted(first.into_iter().chain(rest).collect());
    assert_eq!(
        both, whole,
        "the stopped and the resumed run together emit each window once, whole"
    );
}

// Guards `--drain`: a stop by `--for` then ends the input, and the windows open at the stop
// fire with what they hold (exit 0).
#[test]
fn a_drained_stop_fires_the_open_windows() {
    let file = temp_topology(TOPOLOGY);
    let states = tempfile::tempdir().expect("a temporary directory");
    // A stop that lands exactly on a window boundary leaves nothing open: then try again (each
    // attempt has a state directory of its own, so it starts from the beginning).
    for attempt in 0..3 {
        let state = states.path().join(format!("drained-{attempt}"));
        let lines = run(file.path(), &state, &["--for", "1500ms", "--drain"]);
        assert!(
            lines.iter().all(|l| readings(l) <= FULL),
            "no window over-full: {lines:#?}"
        );
        if lines.iter().any(|l| readings(l) < FULL) {
            return;
        }
    }
    panic!("no drained stop fired an open window in 3 attempts");
}
