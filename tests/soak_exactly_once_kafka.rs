//! Exactly-once with the Kafka spout across SIGKILLs: a word count (`kafka` spout -> `count`
//! -> `file` sink) with `guarantee = "exactly_once"` over a topic of N words (several
//! partitions, produced beforehand by an independent producer in batches of many records) is
//! killed at seeded random points of its output, each time only after the run completed a
//! checkpoint of its own, and started again on the same state directory, alternating the
//! spout's parallelism (2, 3, 1) so that restores also deal the partitions' checkpointed
//! offsets out anew. Each run uses a consumer group of its own, so that where it reads from
//! can only come from the restored checkpoint (the group's committed offsets, which follow
//! completed checkpoints, would otherwise hide a restore that does nothing). A last run reads
//! the topic to its end (`stop_at_end`, `--until-idle`). Each word's last count must equal a
//! naive count of the produced words exactly: a word read twice, or not at all, would show. The
//! last run's group must end committed at the end of every partition (committed only when
//! checkpoints complete).
//!
//! Against tansu (`TOPO_KAFKA_BROKERS`, default `127.0.0.1:9092`). Seed: printed;
//! `TOPO_SOAK_SEED=<seed> cargo test -p topo --test soak_exactly_once_kafka` reproduces the
//! kill points.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use topo_test_support::kafka::{committed, create_topic, ends, produce_batched};
use topo_test_support::soak::{SinkOutput, Soak};
use topo_test_support::unique;

/// Words in the topic.
const N: usize = 200_000;
/// Distinct words.
const VOCABULARY: usize = 2_000;
/// Partitions of the topic.
const PARTITIONS: i32 = 4;
/// Kills before the last run.
const KILLS: usize = 6;
/// The longest the whole soak may take.
const BUDGET: Duration = Duration::from_secs(120);
/// The spout's parallelism, run after run.
const SPOUT_PARALLELISM: [&str; 3] = ["2", "3", "1"];

fn topology(dir: &Path, topic: &str, group: &str) -> String {
    format!(
        r#"
name = "soak-eo-kafka"

[config]
guarantee = "exactly_once"
checkpoint_interval = "50ms"
max_spout_pending = 2000

[spouts.words]
kind = "kafka"
brokers = "{brokers}"
topic = "{topic}"
group = "{group}"
parallelism = 2

[bolts.count]
kind = "count"
field = "value"
parallelism = 2
inputs = [{{ from = "words", grouping = {{ fields = ["value"] }} }}]

[bolts.out]
kind = "file"
dir = "{dir}/out"
prefix = "counts"
batch = {{ max_records = 500, interval = "10ms" }}
inputs = [{{ from = "count" }}]
"#,
        brokers = topo_test_support::kafka::brokers(),
        dir = dir.display()
    )
}

/// Each word's highest count output so far.
fn last_counts(output: &SinkOutput) -> HashMap<String, i64> {
    let mut last: HashMap<String, i64> = HashMap::new();
    for r in output.records() {
        let word = r["value"].as_str().expect("a word").to_string();
        let n = r["count"].as_i64().expect("a count");
        let e = last.entry(word).or_default();
        *e = (*e).max(n);
    }
    last
}

#[test]
fn kafka_word_counts_are_exact_after_kills_and_spout_rescales() {
    let topic = unique("eo-words");
    let group = unique("eo-group");
    let mut soak = Soak::new(
        "soak_exactly_once_kafka",
        Path::new(env!("CARGO_BIN_EXE_topo")),
        BUDGET,
        KILLS,
        N,
        |dir| topology(dir, &topic, &group),
    )
    .env(
        "RUST_LOG",
        &std::env::var("TOPO_SOAK_LOG").unwrap_or_else(|_| "warn".into()),
    );
    // The input, produced once by a producer of its own, and its naive count.
    let mut rng = fastrand::Rng::with_seed(soak.seed);
    let words: Vec<(String, String)> = (0..N)
        .map(|i| (format!("k{i}"), format!("w{}", rng.usize(..VOCABULARY))))
        .collect();
    let mut truth: HashMap<String, i64> = HashMap::new();
    for (_, w) in &words {
        *truth.entry(w.clone()).or_default() += 1;
    }
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        create_topic(&topic, PARTITIONS).await;
        produce_batched(&topic, &words).await;
    });
    println!("kill points (records output): {:?}", soak.kill_points());

    let mut output = SinkOutput::new(&soak.out(), "value");
    let set = |run: usize| {
        format!(
            "spouts.words.parallelism={}",
            SPOUT_PARALLELISM[run % SPOUT_PARALLELISM.len()]
        )
    };
    let group_of = |run: usize| format!("{group}-{run}");
    let set_group = |run: usize| format!("spouts.words.group={}", group_of(run));
    let run = soak.kill_after_own_checkpoints(
        "soak-eo-kafka",
        |run| vec!["--set".into(), set(run), "--set".into(), set_group(run)],
        || {
            output.poll();
            output.records().len()
        },
        |run, produced, checkpoint| {
            println!(
                "run {run} killed at {produced} records output, checkpoint {checkpoint}, its group committed {:?}",
                committed(&group_of(run), &topic, PARTITIONS)
            )
        },
    );
    soak.run_to_end(&[
        "--until-idle",
        "--set",
        "spouts.words.stop_at_end=true",
        "--set",
        &set(run),
        "--set",
        &set_group(run),
    ]);
    output.poll();
    let last = last_counts(&output);
    println!(
        "soak_exactly_once_kafka: {} records output for {N} words, {} kills, {} torn tails, {:.1} s (seed {})",
        output.records().len(),
        soak.killed(),
        output.torn_tails(),
        soak.elapsed().as_secs_f64(),
        soak.seed
    );
    let mut wrong: Vec<(String, i64, i64)> = truth
        .iter()
        .filter(|(w, n)| last.get(*w) != Some(n))
        .map(|(w, n)| (w.clone(), *n, last.get(w).copied().unwrap_or(0)))
        .collect();
    wrong.sort();
    assert!(
        wrong.is_empty() && last.len() == truth.len(),
        "{} of {} words counted wrong (word, true, counted): {:?}\n{}",
        wrong.len(),
        truth.len(),
        &wrong[..wrong.len().min(20)],
        soak.context("exactly-once counts")
    );
    assert_eq!(
        committed(&group_of(run), &topic, PARTITIONS),
        ends(&topic, PARTITIONS),
        "the group committed the end of every partition (when the last checkpoint completed)"
    );
}
