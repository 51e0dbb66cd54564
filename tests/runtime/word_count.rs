//! The word-count example's topology (`examples/word_count.rs`), built inline with a
//! deterministic spout: its counts must equal a plain count of the same sentences.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use topo::testing::VecSpout;
use topo::{BasicBolt, BasicCollector, BoxError, OutputDeclarer, TopologyBuilder, Tuple, values};

use topo_spouts::{GeneratorOptions, GeneratorSpout};

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

/// The final count of each word in what `count` emitted: its largest running count.
fn final_counts(captured: &[topo::testing::Captured]) -> HashMap<String, i64> {
    let mut out = HashMap::new();
    for c in captured {
        let n = c.values[1].as_i64().expect("a count");
        let e = out.entry(c.values[0].to_string()).or_insert(0);
        *e = n.max(*e);
    }
    out
}

// examples/word_count.toml and examples/word_count.rs are one topology: same components,
// parallelism and groupings, and the same counts on the same input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topology_file_and_the_rust_example_count_the_same() {
    let n = 3000;
    let example_counts = crate::word_count_example::Counts::default();
    let example = crate::word_count_example::topology(n, example_counts.clone());
    let example_spec = example.spec().clone();
    run_until_idle(example.build().expect("valid")).await;

    let registry = topo::builtin_registry();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/word_count.toml");
    let overrides = [("spouts.sentences.count".to_string(), n.to_string())];
    let mut spec = topo::file::load_file(path, &registry, &overrides).expect("a valid file");
    let shape = |s: &topo::TopologySpec| -> Vec<String> {
        s.components
            .iter()
            .filter(|c| c.id != "report")
            .map(|c| format!("{} x{} {:?}", c.id, c.parallelism, c.inputs))
            .collect()
    };
    assert_eq!(shape(&spec), shape(&example_spec));

    let sink = topo::testing::CaptureBolt::new();
    spec.components.push(topo::ComponentSpec {
        id: "report".into(),
        parallelism: 1,
        factory: topo::ComponentFactory::Bolt(sink.factory()),
        inputs: vec![topo::InputSpec {
            component: "count".into(),
            stream: topo::DEFAULT_STREAM.into(),
            grouping: topo::Grouping::Global,
        }],
        tick_interval: None,
    });
    run_until_idle(spec.validate().expect("valid")).await;

    let from_file = final_counts(&sink.tuples());
    let from_example = lock(&example_counts).clone();
    assert_eq!(from_file, from_example);
    assert_eq!(
        from_file.values().sum::<i64>(),
        (0..n)
            .map(|i| GeneratorSpout::new(GeneratorOptions::default())
                .sentence(i)
                .split_whitespace()
                .count() as i64)
            .sum::<i64>(),
        "every word of every sentence counted once"
    );
}
