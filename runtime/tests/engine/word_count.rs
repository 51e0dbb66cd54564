//! The word-count example's topology (`examples/word_count.rs`), built inline with a
//! deterministic spout and its own split and count bolts: its counts must equal a plain count of
//! the same sentences. (That the example itself and `examples/word_count.toml` count the same is
//! checked at the workspace root, in `tests/word_count.rs`: they use the connectors' generator.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use topo_runtime::testing::VecSpout;
use topo_runtime::{
    BasicBolt, BasicCollector, BoxError, OutputDeclarer, TopologyBuilder, Tuple, values,
};

use crate::util::{config, lock, mix, run_until_idle};

const VOCABULARY: [&str; 12] = [
    "the", "cow", "jumped", "over", "moon", "an", "apple", "a", "day", "seven", "snow", "dwarfs",
];

/// Sentences of 1 to 8 words drawn from the vocabulary, the same every run.
fn sentences(n: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let len = 1 + mix(&[i]) % 8;
            (0..len)
                .map(|j| VOCABULARY[(mix(&[i, j]) % VOCABULARY.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Splits a sentence into words (as the example's `Split`).
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

/// Counts words (as the example's `Count`); reports its task's counts at cleanup.
struct Count {
    counts: HashMap<String, u64>,
    reports: Arc<Mutex<Vec<HashMap<String, u64>>>>,
}

impl BasicBolt for Count {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        *self
            .counts
            .entry(input.str_field("word")?.to_string())
            .or_insert(0) += 1;
        Ok(())
    }

    fn cleanup(&mut self) {
        lock(&self.reports).push(std::mem::take(&mut self.counts));
    }
}

// Guards: the word-count topology (shuffle into split, fields by word into count) counts every word exactly, each word in one task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_counts_exactly_what_a_plain_count_does() {
    let input = sentences(300);
    let mut expected: HashMap<String, u64> = HashMap::new();
    for s in &input {
        for w in s.split_whitespace() {
            *expected.entry(w.to_string()).or_insert(0) += 1;
        }
    }

    let spout = VecSpout::new(["sentence"], input.iter().map(|s| values![s]).collect());
    let reports: Arc<Mutex<Vec<HashMap<String, u64>>>> = Arc::default();
    let mut b = TopologyBuilder::new("word-count");
    b.config(config());
    b.set_spout("sentences", spout.factory(), 1);
    b.set_bolt("split", || Split, 2)
        .shuffle_grouping("sentences");
    let r = reports.clone();
    b.set_bolt(
        "count",
        move || Count {
            counts: HashMap::new(),
            reports: r.clone(),
        },
        2,
    )
    .fields_grouping("split", ["word"]);
    let report = run_until_idle(b.build().expect("a valid topology")).await;

    assert_eq!(spout.acked(), vec![1; 300]);
    let reports = lock(&reports);
    assert_eq!(reports.len(), 2, "one report per count task");
    let mut counted: HashMap<String, u64> = HashMap::new();
    for task in reports.iter() {
        for (word, n) in task {
            assert!(
                counted.insert(word.clone(), *n).is_none(),
                "`{word}` was counted by two tasks"
            );
        }
    }
    assert_eq!(counted, expected);
    let words: u64 = expected.values().sum();
    let count = report.metrics.component("count").expect("count");
    assert_eq!(
        (count.executed(), count.acked(), count.failed()),
        (words, words, 0)
    );
}
