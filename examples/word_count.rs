//! Word count, the "hello world" of stream processing (Storm's `WordCountTopology`).
//!
//! User story: count words in a stream of sentences, in parallel, without losing any — every
//! sentence is tracked by the acker and replayed if it fails.
//!
//! ```text
//! sentences (generator) --shuffle--> split (2 tasks) --fields(word)--> count (2 tasks) --global--> report
//! ```
//!
//! The first three components are the built-in kinds, so this is the same topology as
//! `examples/word_count.toml` (plus `report`, a bolt written here, which keeps the latest count of
//! each word for printing).
//!
//! Run it: `cargo run --release --example word_count [SENTENCES]` (default 100000).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use topo::{BasicBolt, BasicCollector, BoxError, LocalCluster, TopologyBuilder, Tuple};
use topo_bolts::{Count, CountOptions, Split, SplitOptions};
use topo_spouts::{GeneratorOptions, GeneratorSpout};

/// The latest count of each word, filled by the `report` bolt.
pub type Counts = Arc<Mutex<HashMap<String, i64>>>;

/// Keeps the latest `(word, count)` it receives.
struct Report {
    counts: Counts,
}

impl BasicBolt for Report {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let word = input.str_field("word")?;
        let n = input.int_field("count")?;
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let entry = counts.entry(word.to_string()).or_default();
        *entry = (*entry).max(n);
        Ok(())
    }
}

/// The word-count topology over `sentences` generated sentences, reporting into `counts`.
pub fn topology(sentences: u64, counts: Counts) -> TopologyBuilder {
    let generator = GeneratorOptions {
        count: Some(sentences),
        ..GeneratorOptions::default()
    };
    let split = Split::new(SplitOptions::default()).expect("the default split options are valid");
    let mut builder = TopologyBuilder::new("word-count");
    builder.set_spout(
        "sentences",
        move || GeneratorSpout::new(generator.clone()),
        1,
    );
    builder
        .set_bolt("split", move || split.clone(), 2)
        .shuffle_grouping("sentences");
    builder
        .set_bolt("count", || Count::new(CountOptions::default()), 2)
        .fields_grouping("split", ["word"]);
    builder
        .set_bolt(
            "report",
            move || Report {
                counts: counts.clone(),
            },
            1,
        )
        .global_grouping("count");
    builder
}

#[allow(dead_code)] // the end-to-end tests include this file for `topology`
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: u64 = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|e| format!("SENTENCES must be a number, got {n:?}: {e}"))?,
        None => 100_000,
    };
    let counts = Counts::default();
    let topology = topology(total, counts.clone()).build()?;

    let cluster = LocalCluster::new(topology.config().worker_threads)?;
    let handle = cluster.submit(topology);
    cluster.block_on(handle.wait_until_idle(Duration::from_secs(600)))?;
    let stopped = cluster.block_on(handle.stop(Duration::from_secs(10)));

    let mut top: Vec<_> = counts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .into_iter()
        .collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("top words of {total} sentences:");
    for (word, n) in top.iter().take(10) {
        println!("{n:>10}  {word}");
    }
    let m = &stopped.metrics;
    let spout = m.component("sentences").ok_or("no spout metrics")?;
    println!(
        "acked {} sentences ({} failed, {} timed out) in {:.2?}; complete latency p50 {} µs, p99 {} µs",
        spout.acked(),
        spout.failed(),
        spout.timed_out(),
        m.uptime,
        spout.tasks[0].complete_latency.p50_us,
        spout.tasks[0].complete_latency.p99_us,
    );
    Ok(())
}
