//! Exactly-once windows across SIGKILLs: sensor readings (`generator`, sensors mode, a fixed
//! `start_time` and `count`) -> `window` (event time, tumbling, per device: count, sum, min and
//! max of the timestamp) -> `file` sink, with `guarantee = "exactly_once"`, killed at seeded
//! random points of its output (each run only after it completed a checkpoint of its own) and
//! started again on the same state directory, alternating the window's parallelism (2, 3, 1) so
//! that restores also move groups between tasks by key group; a last run reads to the end
//! (`--until-idle`).
//!
//! Every window of every device must be output, and every output of it (the sink is
//! at-least-once: a result emitted after the last checkpoint before a kill is emitted again by
//! the next run) must equal a naive computation exactly: a reading counted twice or lost, or a
//! window fired early or with part of its state, would show.
//!
//! Seed: printed; `TOPO_SOAK_SEED=<seed> cargo test -p topo --test soak_exactly_once_window`
//! reproduces the kill points.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use topo_test_support::soak::{SinkOutput, Soak};

/// Readings generated (message n: device n mod DEVICES, timestamp START + n ms).
const N: i64 = 300_000;
const DEVICES: i64 = 20;
/// The event time of message 0 (epoch ms).
const START: i64 = 1_767_225_600_000;
/// The window length in ms.
const LENGTH: i64 = 2_000;
/// Kills (each after a checkpoint of the run's own).
const KILLS: usize = 12;
/// The longest the whole soak may take.
const BUDGET: Duration = Duration::from_secs(120);

fn topology(dir: &Path) -> String {
    format!(
        r#"
name = "soak-eo-window"

[config]
guarantee = "exactly_once"
checkpoint_interval = "50ms"

[spouts.readings]
kind = "generator"
mode = "sensors"
devices = {DEVICES}
count = {N}
start_time = {START}
seed = 11
# One task: the watermark is the minimum over every upstream task, and with two tasks one
# emits the even readings (even devices) and the other the odd ones, so a window task given
# devices of one kind only by the fields grouping would hear from one task only and fire its
# windows at the end of input.
parallelism = 1

[bolts.per_device]
kind = "window"
length = "{LENGTH}ms"
time = "event"
timestamp = "timestamp"
group_by = ["device_id"]
aggregates = [
  {{ fn = "count", as = "n" }},
  {{ fn = "sum", field = "timestamp", as = "ts_sum" }},
  {{ fn = "min", field = "timestamp", as = "ts_min" }},
  {{ fn = "max", field = "timestamp", as = "ts_max" }},
]
parallelism = 2
inputs = [{{ from = "readings", grouping = {{ fields = ["device_id"] }} }}]

[bolts.out]
kind = "file"
dir = "{dir}/out"
prefix = "windows"
batch = {{ max_records = 200, interval = "10ms" }}
inputs = [{{ from = "per_device" }}]
"#,
        dir = dir.display()
    )
}

/// One window's result: (count, sum, min, max) of the timestamps.
type Result4 = (i64, i64, i64, i64);

/// The true result of every (window start, device).
fn truth() -> HashMap<(i64, String), Result4> {
    let mut out: HashMap<(i64, String), Result4> = HashMap::new();
    for n in 0..N {
        let ts = START + n;
        let start = ts.div_euclid(LENGTH) * LENGTH;
        let device = format!("sensor-{:04}", n % DEVICES);
        let e = out
            .entry((start, device))
            .or_insert((0, 0, i64::MAX, i64::MIN));
        e.0 += 1;
        e.1 += ts;
        e.2 = e.2.min(ts);
        e.3 = e.3.max(ts);
    }
    out
}

#[test]
fn exactly_once_event_time_windows_are_exact_after_kills_and_rescales() {
    let truth = truth();
    let total = truth.len();
    let mut soak = Soak::new(
        "soak_exactly_once_window",
        Path::new(env!("CARGO_BIN_EXE_topo")),
        BUDGET,
        KILLS,
        total,
        topology,
    )
    .env(
        "RUST_LOG",
        &std::env::var("TOPO_SOAK_LOG").unwrap_or_else(|_| "warn".into()),
    );
    println!("kill points (results output): {:?}", soak.kill_points());
    let parallelism = ["2", "3", "1"];
    let set = |run: usize| format!("bolts.per_device.parallelism={}", parallelism[run % 3]);
    let mut output = SinkOutput::new(&soak.out(), "device_id");
    let run = soak.kill_after_own_checkpoints(
        "soak-eo-window",
        |run| vec!["--set".into(), set(run)],
        || {
            output.poll();
            output.records().len()
        },
        |_, _, _| {},
    );
    soak.run_to_end(&["--until-idle", "--set", &set(run)]);
    output.poll();

    // Every output of a window must be its true result; every window must be output.
    let mut seen: HashMap<(i64, String), usize> = HashMap::new();
    let mut wrong = Vec::new();
    for r in output.records() {
        let field = |name: &str| {
            r[name]
                .as_i64()
                .unwrap_or_else(|| panic!("field {name} of {r} is not an int"))
        };
        let key = (
            field("window_start"),
            r["device_id"].as_str().expect("device_id").to_string(),
        );
        assert_eq!(field("window_end"), key.0 + LENGTH, "window end of {r}");
        let got = (
            field("n"),
            field("ts_sum"),
            field("ts_min"),
            field("ts_max"),
        );
        if truth.get(&key) != Some(&got) {
            wrong.push((key.clone(), got, truth.get(&key).copied()));
        }
        *seen.entry(key).or_default() += 1;
    }
    let mut missing: Vec<_> = truth.keys().filter(|k| !seen.contains_key(*k)).collect();
    missing.sort();
    let repeated = seen.values().filter(|n| **n > 1).count();
    println!(
        "{} results output for {total} windows ({repeated} output more than once), {} kills, {} \
         runs, {} torn tails, {:?}",
        output.records().len(),
        soak.killed(),
        run + 1,
        output.torn_tails(),
        soak.elapsed()
    );
    assert!(
        wrong.is_empty(),
        "{} results differ from the truth ((window, device), output, true): {:?}\n{}",
        wrong.len(),
        &wrong[..wrong.len().min(20)],
        soak.context("exactly-once windows")
    );
    assert!(
        missing.is_empty(),
        "{} of {total} windows never output: {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(20)],
        soak.context("exactly-once windows")
    );
    assert!(soak.killed() >= 10, "only {} kills", soak.killed());
}
