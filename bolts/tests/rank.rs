//! `rolling_count` and `rankings`: the slot counter against a naive count over the last window
//! (paused time), intermediate rankings against a naive top N, the total merge of several
//! intermediate tasks against the top N of their union, ties, option errors, a trending
//! topology with parallelism 2 whose final ranking equals the naive top N of the whole input, and
//! resumes from checkpoints (intermediate and total rankings, rolling counts).

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use topo_bolts::{
    Rankings, RankingsOptions, RollingCount, RollingCountOptions, Split, SplitOptions,
};
use topo_dsl::TopologyBuilder;
use topo_runtime::testing::{BoltTester, CaptureBolt, Emitted, VecSpout};
use topo_runtime::{Config, LocalCluster, Value, Values, values};

fn rolling(toml_text: &str) -> RollingCount {
    let o: RollingCountOptions = toml::from_str(toml_text).expect("options");
    RollingCount::new(o).expect("valid options")
}

fn rankings(toml_text: &str) -> Rankings {
    let o: RankingsOptions = toml::from_str(toml_text).expect("options");
    Rankings::new(o).expect("valid options")
}

/// The naive top N: highest count first, ties by word; zero counts left out.
fn naive_top(counts: &HashMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts
        .iter()
        .filter(|(_, c)| **c > 0)
        .map(|(w, c)| (w.clone(), *c))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

/// The ranking of one `rankings` tuple as (word, count) pairs.
fn ranking_of(values: &Values) -> Vec<(String, u64)> {
    values[0]
        .as_list()
        .expect("a list")
        .iter()
        .map(|e| {
            let m = e.as_map().expect("a map");
            (
                m["word"].as_str().expect("word").to_string(),
                m["count"].as_i64().expect("count") as u64,
            )
        })
        .collect()
}

fn default_stream(e: &[Emitted]) -> Vec<&Emitted> {
    e.iter().filter(|t| t.stream == "default").collect()
}

// ---------------------------------------------------------------------------------------------
// rolling_count

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    // Guards: at every tick the emitted non-zero counts equal a naive count of the events in the
    // last `window` (window 5s, a tick every 1s, events at random times between ticks); objects
    // whose count fell to zero are emitted once with 0, then forgotten.
    #[test]
    fn slot_counter_equals_a_naive_count_over_the_window(
        events in prop::collection::vec((0u64..12, 1u64..1000, 0usize..5), 0..80),
    ) {
        let bolt = rolling("field = \"word\"\nwindow = \"5s\"\nemit_every = \"1s\"");
        let mut t = BoltTester::basic(move || bolt.clone(), ["word"]);
        t.pause_time();
        let now = t.now_millis();
        t.advance(Duration::from_millis((1000 - now.rem_euclid(1000)) as u64));
        let start = t.now_millis();
        let words = ["a", "b", "c", "d", "e"];
        // Events per second, in time order within the second.
        let mut per_second: Vec<Vec<(u64, usize)>> = vec![Vec::new(); 12];
        for &(s, ms, w) in &events {
            per_second[s as usize].push((ms, w));
        }
        let mut seen: Vec<(i64, &str)> = Vec::new();
        let mut zeroed: Vec<String> = Vec::new();
        for (s, evs) in per_second.iter_mut().enumerate() {
            evs.sort();
            let second_start = start + s as i64 * 1000;
            for &(ms, w) in evs.iter() {
                let at = second_start + ms as i64;
                t.advance(Duration::from_millis((at - t.now_millis()) as u64));
                let r = t.execute(values![words[w]]);
                prop_assert!(r.acked && r.emitted.is_empty());
                seen.push((at, words[w]));
            }
            let end = second_start + 1000;
            t.advance(Duration::from_millis((end - t.now_millis()) as u64));
            let r = t.tick();
            let mut naive: HashMap<String, u64> = HashMap::new();
            for &(at, w) in &seen {
                if at > end - 5000 && at <= end {
                    *naive.entry(w.to_string()).or_default() += 1;
                }
            }
            let mut got: HashMap<String, u64> = HashMap::new();
            for e in default_stream(&r.emitted) {
                prop_assert_eq!(e.values[2].as_i64(), Some(end), "window_end");
                let w = e.values[0].as_str().expect("word").to_string();
                let n = e.values[1].as_i64().expect("count") as u64;
                if n == 0 {
                    prop_assert!(!zeroed.contains(&w), "{} zeroed twice", w);
                    zeroed.push(w);
                } else {
                    zeroed.retain(|z| *z != w);
                    prop_assert!(got.insert(w, n).is_none(), "an object emitted twice");
                }
            }
            prop_assert_eq!(&got, &naive, "at second {}", s);
        }
        // After a whole window without events everything has been emitted as 0 and forgotten.
        for _ in 0..6 {
            t.advance(Duration::from_secs(1));
            t.tick();
        }
        t.advance(Duration::from_secs(1));
        prop_assert!(t.tick().emitted.is_empty());
    }
}

// Guards: end of input emits the current counts without advancing the window.
#[test]
fn rolling_count_emits_its_counts_at_finish() {
    let bolt = rolling("window = \"2s\"\nemit_every = \"1s\"");
    let mut t = BoltTester::basic(move || bolt.clone(), ["word"]);
    t.execute_all([values!["x"], values!["y"], values!["x"], values![3]]);
    let r = t.finish();
    let mut got: Vec<(String, i64)> = r
        .emitted
        .iter()
        .map(|e| (e.values[0].to_string(), e.values[1].as_i64().expect("n")))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [("3".to_string(), 1), ("x".into(), 2), ("y".into(), 1)],
        "non-text objects are counted by their printed form"
    );
}

// Guards: a tuple without the counted field, or with a null, goes to the error stream.
#[test]
fn rolling_count_bad_input_to_the_error_stream() {
    let bolt = rolling("field = \"w\"");
    let mut t = BoltTester::basic(move || bolt.clone(), ["w"]);
    let r = t.execute(values![Value::Null]);
    assert!(r.acked && r.emitted.len() == 1 && r.emitted[0].stream == "error");
    let bolt = rolling("field = \"w\"");
    let mut t = BoltTester::basic(move || bolt.clone(), ["other"]);
    let r = t.execute(values!["a"]);
    assert!(r.acked && r.emitted[0].stream == "error", "{r:?}");
    assert!(t.finish().emitted.is_empty());
}

// ---------------------------------------------------------------------------------------------
// rankings

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    // Guards: after any sequence of (word, count) updates — latest count replaces, 0 removes,
    // ties included — the intermediate ranking is the naive top N of the latest counts.
    #[test]
    fn intermediate_equals_a_naive_top_n(
        batches in prop::collection::vec(
            prop::collection::vec((0usize..12, 0u64..6), 0..20), 1..5),
        top in 1usize..6,
    ) {
        let bolt = rankings(&format!("mode = \"intermediate\"\ntop = {top}"));
        let mut t = BoltTester::basic(move || bolt.clone(), ["word", "count"]);
        let mut latest: HashMap<String, u64> = HashMap::new();
        for batch in batches {
            for (w, n) in batch {
                let word = format!("w{w}");
                prop_assert!(t.execute(values![word.clone(), n]).acked);
                latest.insert(word, n);
            }
            let r = t.tick();
            let out = default_stream(&r.emitted);
            prop_assert_eq!(out.len(), 1);
            prop_assert_eq!(ranking_of(&out[0].values), naive_top(&latest, top));
        }
    }
}

// Guards: ties are broken by word, and the ranking is emitted even when empty, and at finish.
#[test]
fn ties_by_word_and_empty_rankings() {
    let bolt = rankings("mode = \"intermediate\"\ntop = 3");
    let mut t = BoltTester::basic(move || bolt.clone(), ["word", "count"]);
    let empty = t.tick();
    assert_eq!(ranking_of(&empty.emitted[0].values), []);
    assert!(empty.emitted[0].values[1].as_i64().is_some(), "at");
    t.execute_all([
        values!["d", 2],
        values!["b", 2],
        values!["c", 5],
        values!["a", 2],
    ]);
    let r = t.finish();
    assert_eq!(
        ranking_of(&r.emitted[0].values),
        [("c".to_string(), 5), ("a".into(), 2), ("b".into(), 2)]
    );
}

// Guards: the total keeps the latest ranking per sending task (here one task): a newer ranking
// replaces the older; a malformed ranking goes to the error stream.
#[test]
fn total_keeps_the_latest_ranking_per_task() {
    let bolt = rankings("mode = \"total\"\ntop = 2");
    let mut t = BoltTester::basic(move || bolt.clone(), ["rankings", "at"]);
    let entry = |w: &str, n: i64| {
        let mut m = std::collections::BTreeMap::new();
        m.insert("word".into(), Value::from(w));
        m.insert("count".into(), Value::Int(n));
        Value::Map(std::sync::Arc::new(m))
    };
    let list = |e: Vec<Value>| Value::List(std::sync::Arc::new(e));
    t.execute(values![list(vec![entry("a", 9), entry("b", 1)]), 0]);
    t.execute(values![list(vec![entry("c", 3)]), 1]);
    let r = t.tick();
    assert_eq!(ranking_of(&r.emitted[0].values), [("c".to_string(), 3)]);
    let bad = t.execute(values![list(vec![Value::from("nope")]), 2]);
    assert!(bad.acked && bad.emitted[0].stream == "error", "{bad:?}");
}

// Guards: option errors name the option and value.
#[test]
fn option_errors() {
    let e = RollingCount::new(
        toml::from_str("window = \"90s\"\nemit_every = \"1m\"").expect("options"),
    )
    .expect_err("90s is not a multiple of 1m");
    assert!(
        e.contains("window") && e.contains("1m 30s") && e.contains("1m"),
        "{e}"
    );
    let e = Rankings::new(toml::from_str("top = 3").expect("options")).expect_err("no mode");
    assert!(e.contains("mode"), "{e}");
    let e = Rankings::new(toml::from_str("mode = \"total\"\ntop = 0").expect("options"))
        .expect_err("top 0");
    assert!(e.contains("top"), "{e}");
    assert!(toml::from_str::<RankingsOptions>("mode = \"sideways\"").is_err());
}

// ---------------------------------------------------------------------------------------------
// Topologies

fn config() -> Config {
    Config {
        checkpoint_dir: Some(fresh_checkpoint_dir()),
        worker_threads: 2,
        ..Config::default()
    }
}

// Guards: the total merge of several intermediate tasks (fields-grouped, so each word is ranked
// by one task) equals the naive top N of all latest counts.
#[test]
fn total_merges_several_intermediates() {
    let updates: Vec<Values> = (0..300u64)
        .map(|i| values![format!("w{}", (i * 7) % 41), (i * 13) % 17])
        .collect();
    let mut latest: HashMap<String, u64> = HashMap::new();
    for u in &updates {
        latest.insert(
            u[0].as_str().expect("w").into(),
            u[1].as_i64().expect("n") as u64,
        );
    }
    let spout = VecSpout::new(["word", "count"], updates);
    let capture = CaptureBolt::new();
    let inter = rankings("mode = \"intermediate\"\ntop = 7\nemit_every = \"1h\"");
    let total = rankings("mode = \"total\"\ntop = 7\nemit_every = \"1h\"");
    let mut b = TopologyBuilder::new("merge");
    b.config(config());
    b.set_spout("counts", spout.factory(), 1);
    b.set_bolt("inter", move || inter.clone(), 3)
        .fields_grouping("counts", ["word"]);
    b.set_bolt("total", move || total.clone(), 1)
        .global_grouping("inter");
    b.set_bolt("out", capture.factory(), 1)
        .shuffle_grouping("total");
    let got = run(b, &capture);
    assert!(spout.acked().iter().all(|&n| n == 1));
    assert_eq!(got, naive_top(&latest, 7));
}

/// Runs until idle, stops (flushing every bolt), and returns the last ranking captured.
fn run(b: TopologyBuilder, capture: &CaptureBolt) -> Vec<(String, u64)> {
    let cluster = LocalCluster::new(2).expect("runtime");
    let handle = cluster.submit(b.build().expect("valid topology"));
    cluster
        .block_on(handle.wait_until_idle(Duration::from_secs(20)))
        .expect("idle in time");
    let report = cluster.block_on(handle.stop(Duration::from_secs(5)));
    assert!(report.drained, "{report:#?}");
    let tuples = capture.tuples();
    assert_eq!(tuples.len(), 1, "one final ranking: {tuples:?}");
    ranking_of(&tuples[0].values)
}

// Guards: the trending-topics topology (spout -> split -> rolling_count[fields, 2 tasks] ->
// rankings intermediate[fields, 2 tasks] -> rankings total[global]) ends with the naive top N
// of the whole input (the window holds all of it; end of input flushes each stage in turn).
#[test]
fn trending_topology_ends_with_the_naive_top_n() {
    let sentences: Vec<Values> = (0..400u64)
        .map(|i| {
            let words: Vec<String> = (0..(1 + i % 5))
                .map(|j| format!("t{}", (i * 31 + j * 7) % 23 + (i % 3) * (j % 2)))
                .collect();
            values![words.join(" ")]
        })
        .collect();
    let mut naive: HashMap<String, u64> = HashMap::new();
    for s in &sentences {
        for w in s[0].as_str().expect("text").split_whitespace() {
            *naive.entry(w.to_string()).or_default() += 1;
        }
    }
    let spout = VecSpout::new(["sentence"], sentences);
    let capture = CaptureBolt::new();
    let split = Split::new(SplitOptions::default()).expect("split");
    let counts = rolling("window = \"1h\"\nemit_every = \"1h\"");
    let inter = rankings("mode = \"intermediate\"\ntop = 8\nemit_every = \"1h\"");
    let total = rankings("mode = \"total\"\ntop = 8\nemit_every = \"1h\"");
    let mut b = TopologyBuilder::new("trending");
    b.config(config());
    b.set_spout("sentences", spout.factory(), 1);
    b.set_bolt("split", move || split.clone(), 2)
        .shuffle_grouping("sentences");
    b.set_bolt("counts", move || counts.clone(), 2)
        .fields_grouping("split", ["word"]);
    b.set_bolt("inter", move || inter.clone(), 2)
        .fields_grouping("counts", ["word"]);
    b.set_bolt("total", move || total.clone(), 1)
        .global_grouping("inter");
    b.set_bolt("out", capture.factory(), 1)
        .shuffle_grouping("total");
    let got = run(b, &capture);
    assert!(spout.acked().iter().all(|&n| n == 1));
    assert_eq!(got, naive_top(&naive, 8));
    assert_eq!(got.len(), 8);
}

/// A fresh checkpoint directory of this test process (the bolt is stateful: its topology takes
/// checkpoints, and a run must not resume from another test's or another run's).
fn fresh_checkpoint_dir() -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "topo-bolts-{}-{}-{n}",
        env!("CARGO_CRATE_NAME"),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

// ---------------------------------------------------------------------------------------------
// Checkpoints: a crash after a checkpoint, a fresh instance restored from it and the inputs
// since replayed give exactly the outputs of an uninterrupted run (see `support`).

mod support;

use support::{Step, check_resume};

fn resume_basic<B: topo_runtime::BasicBolt + Clone + Send + Sync + 'static>(
    bolt: B,
    fields: &'static [&'static str],
    steps: &[Step],
    lost: usize,
) -> Vec<Vec<String>> {
    let again = bolt.clone();
    check_resume(
        move || {
            let b = bolt.clone();
            BoltTester::basic(move || b.clone(), fields.iter().copied())
        },
        move |c| {
            let b = again.clone();
            BoltTester::restore_basic(move || b.clone(), fields.iter().copied(), c)
        },
        steps,
        lost,
    )
}

fn words(ws: &str) -> Vec<Step> {
    ws.split_whitespace()
        .map(|w| Step::In(values![w]))
        .collect()
}

fn rolling_steps(second_checkpoint: bool) -> Vec<Step> {
    let tick = |s: &mut Vec<Step>, at: i64| s.extend([Step::At(at), Step::Tick]);
    let mut s = words("a b a c");
    tick(&mut s, 1_000);
    s.extend(words("a d b"));
    tick(&mut s, 2_000);
    s.extend(words("c a"));
    s.push(Step::Checkpoint);
    s.extend(words("d d"));
    tick(&mut s, 3_000);
    tick(&mut s, 4_000);
    s.extend(words("e a"));
    // `b` fell out of the window: emitted with 0 and forgotten (a removed key).
    tick(&mut s, 5_000);
    if second_checkpoint {
        s.push(Step::Checkpoint);
    }
    s.extend(words("e c"));
    tick(&mut s, 6_000);
    s.extend(words("c"));
    tick(&mut s, 7_000);
    s.extend(words("a b"));
    s
}

// Guards: rolling_count resumes with every object's count per slot, the current slot first.
#[test]
fn rolling_count_resumes_from_a_checkpoint() {
    let bolt = rolling("field = \"word\"\nwindow = \"3s\"\nemit_every = \"1s\"");
    resume_basic(bolt, &["word"], &rolling_steps(false), 5);
}

// Guards: a second (incremental) checkpoint restores its counts; an object forgotten between
// the two checkpoints stays forgotten.
#[test]
fn rolling_count_second_checkpoint_restores_the_second() {
    let bolt = rolling("field = \"word\"\nwindow = \"3s\"\nemit_every = \"1s\"");
    let out = resume_basic(bolt, &["word"], &rolling_steps(true), 3);
    assert!(
        out.iter()
            .flatten()
            .any(|r| r.contains("Str(\"b\"), Int(0)")),
        "the script forgets an object between the checkpoints: {out:#?}"
    );
}

fn ranking_steps(second_checkpoint: bool) -> Vec<Step> {
    let up = |w: &str, n: i64| Step::In(values![w, n]);
    let mut s = vec![up("a", 3), up("b", 5), up("c", 1), up("d", 4)];
    s.extend([Step::At(2_000), Step::Tick]);
    s.extend([up("c", 6), up("a", 4)]);
    s.push(Step::Checkpoint);
    s.extend([up("b", 0), up("e", 2)]); // b removed
    s.extend([Step::At(4_000), Step::Tick]);
    if second_checkpoint {
        s.push(Step::Checkpoint);
    }
    s.extend([up("d", 9), up("f", 1)]);
    s.extend([Step::At(6_000), Step::Tick]);
    s.extend([up("c", 0), up("d", 0)]);
    s.extend([Step::At(8_000), Step::Tick]);
    s
}

// Guards: an intermediate ranking resumes with the latest count of every object.
#[test]
fn rankings_resume_from_a_checkpoint() {
    let bolt = rankings("mode = \"intermediate\"\ntop = 3");
    resume_basic(bolt, &["word", "count"], &ranking_steps(false), 4);
}

// Guards: a second (incremental) checkpoint restores its counts; an object removed between the
// two checkpoints (count 0) stays removed.
#[test]
fn rankings_second_checkpoint_restores_the_second() {
    let bolt = rankings("mode = \"intermediate\"\ntop = 3");
    resume_basic(bolt, &["word", "count"], &ranking_steps(true), 2);
}

/// A `rankings` tuple of an intermediate task: these (word, count) entries, highest first.
fn ranking_tuple(entries: &[(&str, i64)]) -> Values {
    let list: Vec<Value> = entries
        .iter()
        .map(|(w, n)| {
            let mut m = std::collections::BTreeMap::new();
            m.insert("word".into(), Value::from(*w));
            m.insert("count".into(), Value::Int(*n));
            Value::Map(std::sync::Arc::new(m))
        })
        .collect();
    values![Value::List(std::sync::Arc::new(list)), 0]
}

/// Sends intermediate task `task`'s ranking to a total ranking under test.
fn send_ranking(t: &mut BoltTester, task: usize, entries: &[(&str, i64)]) {
    let run = t.execute_from_task("intermediate", task, ranking_tuple(entries));
    assert!(run.acked && run.emitted.is_empty(), "{run:?}");
}

/// The total ranking a tick emits.
fn total_now(t: &mut BoltTester) -> Vec<(String, u64)> {
    let r = t.tick();
    let out = default_stream(&r.emitted);
    assert_eq!(out.len(), 1, "{r:?}");
    ranking_of(&out[0].values)
}

fn pairs(v: &[(&str, u64)]) -> Vec<(String, u64)> {
    v.iter().map(|(w, n)| (w.to_string(), *n)).collect()
}

// Guards: a total ranking checkpoints each intermediate task's latest ranking: restored into a
// new instance (after a crash that lost a later ranking), fed the same rankings again, its
// merged top N equals an uninterrupted instance's at every tick — including a word only the
// restored ranking of a task that sends nothing after the restore still carries. When the
// intermediate component's parallelism changed, the stored rankings are dropped (they would be
// given to the wrong tasks): the new tasks' next rankings make the total, as for a fresh
// instance.
#[test]
fn total_resumes_with_each_intermediate_tasks_latest_ranking() {
    let bolt = rankings("mode = \"total\"\ntop = 3\nemit_every = \"1h\"");
    let make = move || bolt.clone();
    let fields = ["rankings", "at"];
    let two = [("intermediate", 2)];

    let mut t = BoltTester::basic_with_upstream(make.clone(), fields, &two, None);
    send_ranking(&mut t, 0, &[("a", 9), ("b", 5), ("c", 1)]);
    send_ranking(&mut t, 1, &[("d", 7), ("e", 6), ("f", 2)]);
    send_ranking(&mut t, 0, &[("a", 10), ("b", 5), ("c", 4)]); // replaces task 0's first
    let before = total_now(&mut t);
    assert_eq!(before, pairs(&[("a", 10), ("d", 7), ("e", 6)]));
    let (checkpoint, _) = t.checkpoint().expect("a checkpoint");
    assert_eq!(checkpoint.parts(), ["rankings"]);

    // The crashed instance saw one more ranking after the checkpoint: lost with it.
    let mut crashed = BoltTester::basic_with_upstream(make.clone(), fields, &two, None);
    send_ranking(&mut crashed, 0, &[("a", 10), ("b", 5), ("c", 4)]);
    send_ranking(&mut crashed, 1, &[("d", 7), ("e", 6), ("f", 2)]);
    let (lost_checkpoint, _) = crashed.checkpoint().expect("a checkpoint");
    send_ranking(&mut crashed, 1, &[("z", 99)]);
    drop(crashed);

    for from in [&checkpoint, &lost_checkpoint] {
        let mut back = BoltTester::basic_with_upstream(make.clone(), fields, &two, Some(from));
        assert_eq!(total_now(&mut back), before, "right after the restore");
        // The same later rankings to both: task 1 moves on, task 0 sends nothing more (its
        // words come from the checkpoint only).
        let mut uninterrupted_t = BoltTester::basic_with_upstream(make.clone(), fields, &two, None);
        send_ranking(&mut uninterrupted_t, 0, &[("a", 10), ("b", 5), ("c", 4)]);
        send_ranking(&mut uninterrupted_t, 1, &[("d", 7), ("e", 6), ("f", 2)]);
        for ranking in [
            &[("d", 12), ("g", 8), ("e", 6)][..],
            &[("g", 11), ("d", 3)][..],
            &[][..],
        ] {
            send_ranking(&mut back, 1, ranking);
            send_ranking(&mut uninterrupted_t, 1, ranking);
            let got = total_now(&mut back);
            assert_eq!(got, total_now(&mut uninterrupted_t), "after {ranking:?}");
        }
        // The last ranking of task 1 was empty: only task 0's restored words are left.
        assert_eq!(
            total_now(&mut back),
            pairs(&[("a", 10), ("b", 5), ("c", 4)])
        );

        // Control: an instance not restored has none of task 0's words.
        let mut bare = BoltTester::basic_with_upstream(make.clone(), fields, &two, None);
        send_ranking(&mut bare, 1, &[("g", 11), ("d", 3)]);
        assert_eq!(total_now(&mut bare), pairs(&[("g", 11), ("d", 3)]));
    }

    // Intermediate parallelism 2 -> 3: the stored rankings name tasks of the old layout, so
    // they are dropped; the total is the new tasks' rankings, as for a fresh instance.
    let three = [("intermediate", 3)];
    let mut rescaled =
        BoltTester::basic_with_upstream(make.clone(), fields, &three, Some(&checkpoint));
    assert_eq!(total_now(&mut rescaled), [], "old tasks' rankings dropped");
    let mut fresh = BoltTester::basic_with_upstream(make.clone(), fields, &three, None);
    let new_rankings: [&[(&str, i64)]; 3] =
        [&[("a", 10), ("c", 4)], &[("d", 7)], &[("b", 5), ("e", 6)]];
    for (task, ranking) in new_rankings.into_iter().enumerate() {
        send_ranking(&mut rescaled, task, ranking);
        send_ranking(&mut fresh, task, ranking);
        assert_eq!(
            total_now(&mut rescaled),
            total_now(&mut fresh),
            "after task {task}"
        );
    }
    assert_eq!(
        total_now(&mut rescaled),
        pairs(&[("a", 10), ("d", 7), ("e", 6)])
    );
}
