//! The word-count example: `examples/word_count.rs` (the Rust builder, with the generator spout
//! and the split and count bolts of `topo-spouts` and `topo-bolts`) and
//! `examples/word_count.toml` (the same topology as a file, through the built-in registry) are one
//! topology.
//!
//! ```text
//! examples/word_count.rs ──topology(n)──► spec ─┐ same components, parallelism, groupings
//! examples/word_count.toml ──load_file──► spec ─┘ and the same counts on the same sentences
//! ```
//!
//! This lives here, not with the engine's own tests in `runtime/tests/`, because it needs the
//! connectors and the registry of built-in kinds.

use std::collections::HashMap;

use topo_spouts::{GeneratorOptions, GeneratorSpout};

/// The engine tests' helpers (bounded waits, a run until idle).
#[path = "../runtime/tests/engine/util.rs"]
#[allow(dead_code)]
mod util;

/// The word-count example itself, for its `topology` function.
#[path = "../examples/word_count.rs"]
#[allow(dead_code)]
mod word_count_example;

use util::{lock, run_until_idle};

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
    let example_counts = word_count_example::Counts::default();
    let mut example = word_count_example::topology(n, example_counts.clone());
    // Runs of their own: not resumed from the checkpoints of an earlier run.
    let example_state = tempfile::tempdir().expect("a temporary directory");
    example.config_mut().checkpoint_dir = Some(example_state.path().to_path_buf());
    let example_spec = example.spec().clone();
    run_until_idle(example.build().expect("valid")).await;

    let registry = topo::builtin_registry();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/word_count.toml");
    let overrides = [("spouts.sentences.count".to_string(), n.to_string())];
    let mut spec = topo::file::load_file(path, &registry, &overrides).expect("a valid file");
    // A run of its own: not resumed from the checkpoints of an earlier one.
    let state = tempfile::tempdir().expect("a temporary directory");
    spec.config.checkpoint_dir = Some(state.path().to_path_buf());
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
