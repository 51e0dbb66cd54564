//! Soak: nothing lost through `kill -9`, with the Kafka spout and sink against a real
//! Kafka-compatible broker (tansu, address in `TOPO_KAFKA_BROKERS`, default `127.0.0.1:9092`,
//! started by `scripts/services start`).
//!
//! 200,000 records in a 4-partition topic, produced the way applications' clients produce
//! them (batches of many records), are relayed by `topo run` (kafka spout with
//! `assignment = "static"` and `max_uncommitted = 2000`, so that every partition stops at its
//! cap again and again -> map -> kafka sink) into another topic. The process is killed with
//! SIGKILL at random moments (the seed is printed; set `TOPO_SOAK_SEED` to repeat a run),
//! started again each time with the same group, and finally run to the end (`--until-idle`,
//! `stop_at_end`). A plain consumer then reads the output topic to its end: every input record
//! must be there at least once; duplicates are counted and reported.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use topo_test_support::kafka::*;
use topo_test_support::{temp_topology, unique};

/// Records in the input topic.
const N: usize = 200_000;
/// Partitions of the input and output topics.
const PARTITIONS: i32 = 4;
/// Kills before the final run.
const KILLS: usize = 6;
/// The uncommitted cap of the relay's spout (per partition).
const MAX_UNCOMMITTED: usize = 2000;
/// The longest one run may take.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The relay: kafka spout (default options, static assignment) -> map -> kafka sink.
fn relay(input: &str, output: &str, group: &str) -> tempfile::NamedTempFile {
    temp_topology(&format!(
        r#"
name = "kafka-soak"

[spouts.in]
kind = "kafka"
brokers = "{brokers}"
topic = "{input}"
group = "{group}"
assignment = "static"
max_uncommitted = {MAX_UNCOMMITTED}
stop_at_end = true
parallelism = 2

[bolts.relay]
kind = "map"
fields = [{{ key = "key" }}, {{ value = "value" }}]
parallelism = 2
inputs = [{{ from = "in" }}]

[bolts.out]
kind = "kafka"
brokers = "{brokers}"
topic = "{output}"
key_field = "key"
value_field = "value"
inputs = [{{ from = "relay" }}]
"#,
        brokers = brokers()
    ))
}

fn topo(file: &std::path::Path, log: &std::fs::File) -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("topo"));
    cmd.env("RUST_LOG", "info")
        .args(["run", "--quiet", "--until-idle"])
        .arg(file)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log.try_clone().expect("the log file"));
    cmd
}

/// Records written to the output so far (by the broker's end offsets).
fn written(output: &str) -> i64 {
    end_offsets(output, PARTITIONS).values().sum()
}

fn log_tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[test]
fn kafka_relay_killed_at_random_points_loses_nothing() {
    let seed: u64 = std::env::var("TOPO_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    eprintln!("kafka soak: seed {seed} (TOPO_SOAK_SEED={seed} repeats these kill points)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let started = Instant::now();
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let input = unique("soak-in");
    let output = unique("soak-out");
    let group = unique("soak-group");
    let sent: Vec<(String, String)> = (0..N)
        .map(|i| (format!("key-{}", i % 97), format!("soak-{i}")))
        .collect();
    rt.block_on(async {
        create_topic(&input, PARTITIONS).await;
        create_topic(&output, PARTITIONS).await;
        produce_batched(&input, &sent).await;
    });
    let file = relay(&input, &output, &group);
    let log = tempfile::NamedTempFile::new().expect("a log file");

    // Each run is killed at a random moment 0.5 to 2.5 s after it first writes.
    let delays: Vec<Duration> = (0..KILLS)
        .map(|_| Duration::from_millis(rng.u64(500..2500)))
        .collect();
    eprintln!("kafka soak: kills {delays:?} after each run starts writing");
    for (i, delay) in delays.iter().enumerate() {
        let before = written(&output);
        let mut child = topo(file.path(), log.as_file())
            .spawn()
            .expect("spawn topo");
        let start = Instant::now();
        let mut writing: Option<Instant> = None;
        loop {
            let n = written(&output);
            if writing.is_none() && n > before {
                writing = Some(Instant::now());
            }
            if writing.is_some_and(|w| w.elapsed() >= *delay) {
                break;
            }
            if let Some(status) = child.try_wait().expect("poll topo") {
                panic!(
                    "run {i} ended ({status}) before it was killed, {n} records written; its log:\n{}",
                    log_tail(log.path())
                );
            }
            if start.elapsed() > RUN_LIMIT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "run {i} wrote nothing in {RUN_LIMIT:?}; its log:\n{}",
                    log_tail(log.path())
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.kill().expect("kill -9 topo");
        child.wait().expect("reap topo");
        eprintln!(
            "kafka soak: run {i} killed after {:.1} s, output {} records, committed {:?}",
            start.elapsed().as_secs_f64(),
            written(&output),
            committed(&group, &input, PARTITIONS)
        );
    }

    // The final run, to the end.
    let start = Instant::now();
    let mut child = topo(file.path(), log.as_file())
        .spawn()
        .expect("spawn topo");
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll topo") {
            break status;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the final run did not end within {RUN_LIMIT:?} ({} records written); its log:\n{}",
                written(&output),
                log_tail(log.path())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "the final run failed ({status}); its log:\n{}",
        log_tail(log.path())
    );

    // An independent reader: a plain consumer of the output topic.
    let got = read_all(&output, PARTITIONS);
    let mut times: HashMap<&str, usize> = HashMap::with_capacity(N);
    for r in &got {
        *times.entry(r.value.as_str()).or_insert(0) += 1;
    }
    let lost: Vec<&str> = sent
        .iter()
        .map(|(_, v)| v.as_str())
        .filter(|v| !times.contains_key(v))
        .collect();
    let duplicates = got.len() - (N - lost.len());
    eprintln!(
        "kafka soak: {N} records, {KILLS} kills, lost {}, duplicates {duplicates}, {:.1} s in all (seed {seed})",
        lost.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        lost.is_empty(),
        "{} records lost (seed {seed}), the first {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    // A restart reads again what was read but not committed: at most the cap per partition,
    // plus what the last commit before the kill covered if it had not reached the broker.
    let bound = KILLS * PARTITIONS as usize * 2 * MAX_UNCOMMITTED;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates: more than the uncommitted window allows ({bound})"
    );
    assert!(
        got.iter().all(|r| r.value.starts_with("soak-")),
        "only relayed records in the output"
    );
    assert_eq!(
        committed(&group, &input, PARTITIONS),
        ends(&input, PARTITIONS),
        "the group committed the end of every partition"
    );
}
