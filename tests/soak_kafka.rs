//! Soak: nothing lost through `kill -9`, with the Kafka spout and sink against a real
//! Kafka-compatible broker (tansu, address in `TOPO_KAFKA_BROKERS`, default `127.0.0.1:9092`,
//! started by `scripts/services start`).
//!
//! 200,000 records in a 4-partition topic, produced the way applications' clients produce
//! them (batches of many records), are relayed by `topo run` (kafka spout with
//! `assignment = "static"` and `max_uncommitted = 2000`, so that every partition stops at its
//! cap again and again -> throttle at 8,000 records/s, so that a run is killed long before it
//! could read everything -> map -> kafka sink) into another topic. The process is killed with
//! SIGKILL at random moments (the seed is printed; set `TOPO_SOAK_SEED` to repeat a run),
//! started again each time with the same group, and finally run to the end (`--until-idle`,
//! `stop_at_end`). A plain consumer then reads the output topic to its end: every input record
//! must be there at least once; duplicates are counted and reported.

use std::time::{Duration, Instant};

use topo_test_support::kafka::*;
use topo_test_support::{soak, temp_topology, unique};

/// Records in the input topic.
const N: usize = 200_000;
/// Partitions of the input and output topics.
const PARTITIONS: i32 = 4;
/// Kills before the final run.
const KILLS: usize = 6;
/// The uncommitted cap of the relay's spout (per partition).
const MAX_UNCOMMITTED: usize = 2000;
/// The relay's pace per throttle task (2 tasks): 6 runs of at most a few seconds each read
/// well under the 200,000 records, so every kill lands mid-stream.
const RATE_PER_TASK: usize = 4000;
/// The longest one run may take.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// The relay: kafka spout (static assignment, a small cap) -> throttle -> map -> kafka sink.
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

[bolts.pace]
kind = "throttle"
rate = {RATE_PER_TASK}
parallelism = 2
inputs = [{{ from = "in" }}]

[bolts.relay]
kind = "map"
fields = [{{ key = "key" }}, {{ value = "value" }}]
parallelism = 2
inputs = [{{ from = "pace" }}]

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

/// Records written to the output so far (by the broker's end offsets, which tansu reports
/// lagging behind batches: a progress figure only).
fn written(output: &str) -> i64 {
    end_offsets(output, PARTITIONS).values().sum()
}

#[test]
fn kafka_relay_killed_at_random_points_loses_nothing() {
    let seed = soak::seed("soak_kafka");
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
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut runs = soak::Runs::in_dir(
        &assert_cmd::cargo::cargo_bin("topo"),
        file.path(),
        dir.path(),
    );

    // Each run is killed at a random moment 0.5 to 2.5 s after it first writes.
    let delays: Vec<Duration> = (0..KILLS)
        .map(|_| Duration::from_millis(rng.u64(500..2500)))
        .collect();
    println!("soak_kafka: kills {delays:?} after each run starts writing");
    for (i, delay) in delays.iter().enumerate() {
        let before = written(&output);
        let start = Instant::now();
        let mut run = runs.start();
        soak::wait_for(
            &format!("run {i} to write"),
            RUN_LIMIT,
            || written(&output) > before,
            || runs.log_tail(),
        );
        let writing = Instant::now();
        soak::wait_for(
            &format!("run {i} to reach its kill moment"),
            RUN_LIMIT,
            || writing.elapsed() >= *delay || !run.alive(),
            || runs.log_tail(),
        );
        run.kill9();
        println!(
            "soak_kafka: run {i} killed after {:.1} s, output {} records, committed {:?}",
            start.elapsed().as_secs_f64(),
            written(&output),
            committed(&group, &input, PARTITIONS)
        );
    }
    // The final run, to the end.
    runs.run_to_end(&["--until-idle"], RUN_LIMIT);

    // An independent reader: a plain consumer of the output topic, to its end.
    let got = read_all(&output, PARTITIONS);
    let tally = soak::Tally::of(
        &sent.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
        got.into_iter().map(|r| r.value),
    );
    println!(
        "soak_kafka: {N} records, {KILLS} kills, lost {}, duplicates {}, {:.1} s in all (seed {seed})",
        tally.lost,
        tally.duplicates,
        started.elapsed().as_secs_f64()
    );
    tally.assert_nothing_lost(&format!("seed {seed}\n{}", runs.log_tail()));
    // A restart reads again what was read but not committed: at most the cap per partition,
    // plus what the last commit before the kill covered if it had not reached the broker.
    let bound = KILLS * PARTITIONS as usize * 2 * MAX_UNCOMMITTED;
    assert!(
        tally.duplicates <= bound,
        "{} duplicates: more than the uncommitted window allows ({bound})",
        tally.duplicates
    );
    assert_eq!(
        committed(&group, &input, PARTITIONS),
        ends(&input, PARTITIONS),
        "the group committed the end of every partition"
    );
}
