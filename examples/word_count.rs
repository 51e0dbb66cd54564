//! Word count, the "hello world" of stream processing (Storm's `WordCountTopology`).
//!
//! User story: count words in a stream of sentences, in parallel, without losing any — every
//! sentence is tracked by the acker and replayed if it fails.
//!
//! ```text
//! sentences (spout) --shuffle--> split (2 tasks) --fields(word)--> count (2 tasks)
//! ```
//!
//! Run it: `cargo run --release --example word_count [SENTENCES]` (default 100000).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use topo::{
    BasicBolt, BasicCollector, BoxError, LocalCluster, OutputDeclarer, Spout, SpoutCollector,
    TopologyBuilder, Tuple, values,
};

const SENTENCES: [&str; 5] = [
    "the cow jumped over the moon",
    "an apple a day keeps the doctor away",
    "four score and seven years ago",
    "snow white and the seven dwarfs",
    "i am at two with nature",
];

/// Emits `total` sentences, cycling through a fixed list, each tracked by its sequence number.
struct SentenceSpout {
    next: u64,
    total: u64,
    replays: Vec<u64>,
}

impl Spout for SentenceSpout {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["sentence"]);
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        let n = match self.replays.pop() {
            Some(n) => n,
            None if self.next < self.total => {
                self.next += 1;
                self.next - 1
            }
            None => return Ok(()),
        };
        out.emit(values![SENTENCES[(n % 5) as usize]], n);
        Ok(())
    }

    fn fail(&mut self, n: u64) {
        self.replays.push(n);
    }

    fn is_exhausted(&self) -> bool {
        self.next == self.total && self.replays.is_empty()
    }
}

/// Splits a sentence into words.
struct Split;

impl BasicBolt for Split {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["word"]);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        for word in input.str_field("sentence")?.split_whitespace() {
            out.emit(values![word]);
        }
        Ok(())
    }
}

/// Counts words; each task owns the words the fields grouping sends it.
struct Count {
    counts: HashMap<String, u64>,
    report: Arc<Mutex<HashMap<String, u64>>>,
}

impl BasicBolt for Count {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let word = input.str_field("word")?;
        match self.counts.get_mut(word) {
            Some(n) => *n += 1,
            None => {
                self.counts.insert(word.to_string(), 1);
            }
        }
        Ok(())
    }

    fn cleanup(&mut self) {
        let mut report = self.report.lock().unwrap_or_else(|e| e.into_inner());
        report.extend(self.counts.drain());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let total: u64 = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|e| format!("SENTENCES must be a number, got {n:?}: {e}"))?,
        None => 100_000,
    };
    let report = Arc::new(Mutex::new(HashMap::new()));

    let mut builder = TopologyBuilder::new("word-count");
    builder.set_spout(
        "sentences",
        move || SentenceSpout {
            next: 0,
            total,
            replays: Vec::new(),
        },
        1,
    );
    builder
        .set_bolt("split", || Split, 2)
        .shuffle_grouping("sentences");
    let counts = report.clone();
    builder
        .set_bolt(
            "count",
            move || Count {
                counts: HashMap::new(),
                report: counts.clone(),
            },
            2,
        )
        .fields_grouping("split", ["word"]);
    let topology = builder.build()?;

    let cluster = LocalCluster::new(topology.config().worker_threads)?;
    let handle = cluster.submit(topology);
    cluster.block_on(handle.wait_until_idle(Duration::from_secs(600)))?;
    let stopped = cluster.block_on(handle.stop(Duration::from_secs(10)));

    let mut counts: Vec<_> = report
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .into_iter()
        .collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    println!("top words of {total} sentences:");
    for (word, n) in counts.iter().take(10) {
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
