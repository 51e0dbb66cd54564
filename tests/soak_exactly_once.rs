//! Exactly-once state across SIGKILLs: a word count (`file` spout -> `split` -> `count` ->
//! `file` sink) with `guarantee = "exactly_once"` over a file of N lines is killed at seeded
//! random points of its output and started again on the same state directory, alternating the
//! count's parallelism (2, 3, 1) so that restores also rescale keyed state by key group; a last
//! run reads to the end. The count's last output per word must equal a naive count of the file
//! exactly: a line counted twice, or not at all, would show.
//!
//! The same with `guarantee = "at_least_once"`: counts never go back to zero after a kill, and
//! end at or above the true counts.
//!
//! Seed: printed; `TOPO_SOAK_SEED=<seed> cargo test -p topo --test soak_exactly_once` reproduces
//! the kill points.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use topo_test_support::soak::{SinkOutput, Soak};

/// Lines in the input file (8 words each, from a vocabulary of VOCABULARY words).
const N: usize = 30_000;
const WORDS_PER_LINE: usize = 8;
const VOCABULARY: usize = 3_000;
/// The longest the whole soak may take.
const BUDGET: Duration = Duration::from_secs(150);

fn topology(dir: &Path, guarantee: &str) -> String {
    format!(
        r#"
name = "soak-eo"

[config]
guarantee = "{guarantee}"
checkpoint_interval = "50ms"
max_spout_pending = 500

[spouts.lines]
kind = "file"
paths = ["{dir}/in.txt"]
poll_interval = "10ms"
checkpoint_interval = "50ms"

[bolts.split]
kind = "split"
field = "line"
parallelism = 2
inputs = [{{ from = "lines" }}]

[bolts.count]
kind = "count"
parallelism = 2
inputs = [{{ from = "split", grouping = {{ fields = ["word"] }} }}]

[bolts.out]
kind = "file"
dir = "{dir}/out"
prefix = "counts"
batch = {{ max_records = 500, interval = "10ms" }}
inputs = [{{ from = "count" }}]
"#,
        dir = dir.display()
    )
}

/// Writes the input file; returns the true count of each word.
fn write_input(dir: &Path, seed: u64) -> HashMap<String, i64> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut truth: HashMap<String, i64> = HashMap::new();
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("in.txt")).expect("input"));
    for _ in 0..N {
        let line: Vec<String> = (0..WORDS_PER_LINE)
            .map(|_| format!("w{}", rng.usize(..VOCABULARY)))
            .collect();
        for w in &line {
            *truth.entry(w.clone()).or_default() += 1;
        }
        writeln!(f, "{}", line.join(" ")).expect("write input");
    }
    f.flush().expect("flush input");
    truth
}

/// Each word's highest count output so far.
fn last_counts(output: &SinkOutput) -> HashMap<String, i64> {
    let mut last: HashMap<String, i64> = HashMap::new();
    for r in output.records() {
        let word = r["word"].as_str().expect("a word").to_string();
        let n = r["count"].as_i64().expect("a count");
        let e = last.entry(word).or_default();
        *e = (*e).max(n);
    }
    last
}

/// Runs the soak with `guarantee`; returns the final counts, the true counts and the soak.
fn soak(
    test: &str,
    guarantee: &str,
    kills: usize,
) -> (HashMap<String, i64>, HashMap<String, i64>, Soak) {
    let total = N * WORDS_PER_LINE;
    let mut soak = Soak::new(
        test,
        Path::new(env!("CARGO_BIN_EXE_topo")),
        BUDGET,
        kills,
        total,
        |dir| topology(dir, guarantee),
    )
    .env(
        "RUST_LOG",
        &std::env::var("TOPO_SOAK_LOG").unwrap_or_else(|_| "warn".into()),
    );
    let truth = write_input(soak.dir(), soak.seed);
    println!("kill points (records output): {:?}", soak.kill_points());
    let parallelism = ["2", "3", "1"];
    let mut output = SinkOutput::new(&soak.out(), "word");
    let set = |run: usize| format!("bolts.count.parallelism={}", parallelism[run % 3]);
    let run = soak.kill_after_own_checkpoints(
        "soak-eo",
        |run| vec!["--set".into(), set(run)],
        || {
            output.poll();
            output.records().len()
        },
        |_, _, _| {},
    );
    soak.run_to_end(&[
        "--until-idle",
        "--set",
        "spouts.lines.until_eof=true",
        "--set",
        &set(run),
    ]);
    output.poll();
    let last = last_counts(&output);
    println!(
        "{test}: {} records output for {total} words, {} kills, {} torn tails",
        output.records().len(),
        soak.killed(),
        output.torn_tails()
    );
    (last, truth, soak)
}

#[test]
fn exactly_once_word_counts_are_exact_after_kills_and_rescales() {
    let (last, truth, soak) = soak("soak_exactly_once", "exactly_once", 20);
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
}

#[test]
fn at_least_once_counts_never_reset_and_reach_the_truth() {
    let (last, truth, soak) = soak("soak_exactly_once", "at_least_once", 5);
    let low: Vec<_> = truth
        .iter()
        .filter(|(w, n)| last.get(*w).is_none_or(|c| c < n))
        .collect();
    assert!(
        low.is_empty(),
        "{} words counted below the truth (a reset, or a loss): {:?}\n{}",
        low.len(),
        &low[..low.len().min(20)],
        soak.context("at-least-once counts")
    );
}
