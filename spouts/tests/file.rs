//! The `file` spout on real files in temporary directories, in a real topology: appends,
//! rotation by rename and by copytruncate, new files in a watched directory, exclusion, bad
//! lines, replay of failed lines, checkpoints over acked lines only, restart from the
//! checkpoint, and several tasks.

use std::collections::{BTreeMap, HashSet};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use topo_dsl::TopologyBuilder;
use topo_runtime::testing::CaptureBolt;
use topo_runtime::{
    BasicBolt, BasicCollector, BoltFactory, BoxError, TopologyHandle, Tuple, Value,
};
use topo_spouts::{Encoding, FileOptions, FileSpout, StartAt};

/// The longest any wait here may take.
const WAIT: Duration = Duration::from_secs(20);

/// Options for tests: fast polling and checkpoints, state in `dir/state`.
fn options(dir: &Path, paths: &[&str]) -> FileOptions {
    FileOptions {
        paths: paths
            .iter()
            .map(|p| dir.join(p).to_string_lossy().into_owned())
            .collect(),
        poll_interval: Duration::from_millis(10),
        checkpoint_interval: Duration::from_millis(20),
        // Long enough for a test's write right after a rename to land in the followed file.
        rotate_wait: Duration::from_millis(500),
        state_dir: Some(dir.join("state")),
        ..FileOptions::default()
    }
}

/// Runs `spout` (with `parallelism` tasks) into a capture of its `default` and `error` streams.
fn run(spout: &FileSpout, sink: &CaptureBolt, parallelism: usize) -> TopologyHandle {
    let mut b = TopologyBuilder::new("file");
    let s = spout.clone();
    b.set_spout("lines", move || s.clone(), parallelism);
    b.set_bolt("sink", sink.factory(), 1)
        .shuffle_grouping("lines")
        .shuffle_grouping_stream("lines", "error");
    topo_runtime::submit(b.build().expect("a valid topology"))
}

/// The first field of every tuple captured on `stream`, as text.
fn lines(sink: &CaptureBolt, stream: &str) -> Vec<String> {
    sink.tuples()
        .iter()
        .filter(|c| c.stream == stream)
        .map(|c| text(&c.values[0]))
        .collect()
}

fn text(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        other => format!("{other:?}"),
    }
}

/// Waits (bounded) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Each line once.
fn dedup(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn append(path: &Path, text: &str) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    f.write_all(text.as_bytes()).expect("append");
}

/// `n` numbered lines with a prefix, and their text joined with `\n` (each line ended).
fn numbered(prefix: &str, range: std::ops::Range<usize>) -> (Vec<String>, String) {
    let lines: Vec<String> = range.map(|i| format!("{prefix} {i}")).collect();
    let mut text = lines.join("\n");
    text.push('\n');
    (lines, text)
}

/// The checkpointed offsets in a state directory, by the path recorded with them.
fn checkpoints(state: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(state) else {
        return out;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("task-") && name.ends_with(".json")) {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).expect("read checkpoint");
        let v: serde_json::Value = serde_json::from_str(&text).expect("checkpoint is JSON");
        for f in v["files"].as_array().expect("files") {
            out.insert(
                f["path"].as_str().expect("path").to_string(),
                f["offset"].as_u64().expect("offset"),
            );
        }
    }
    out
}

fn key(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

// Guards tailing: lines in the file at start and lines appended later arrive, each once, with
// their path and byte offset; a partial last line waits for its `\n`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appended_lines_are_followed_with_path_and_offset() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("app.log");
    let (first, text) = numbered("first", 0..100);
    append(&log, &text);
    let mut opts = options(dir.path(), &["*.log"]);
    opts.include_path = true;
    let spout = FileSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink, 1);

    until("the first lines", || sink.len() >= 100).await;
    let (second, text) = numbered("second", 0..100);
    append(&log, &text);
    append(&log, "half a li");
    until("the appended lines", || sink.len() >= 200).await;
    append(&log, "ne\n");
    until("the completed line", || sink.len() >= 201).await;

    let mut want = first.clone();
    want.extend(second);
    want.push("half a line".into());
    assert_eq!(lines(&sink, "default"), want, "in file order, each once");
    let content = std::fs::read(&log).expect("read");
    for t in sink.tuples() {
        let (Value::Str(line), Value::Str(path), Value::Int(offset)) =
            (&t.values[0], &t.values[1], &t.values[2])
        else {
            panic!("unexpected tuple {:?}", t.values);
        };
        assert_eq!(path.as_str(), key(&log));
        let at = *offset as usize;
        assert_eq!(
            &content[at..at + line.len()],
            line.as_bytes(),
            "offset of {line}"
        );
    }
    // Every line acked: the checkpoint reaches the end of the file.
    let end = content.len() as u64;
    until("the checkpoint at the end", || {
        checkpoints(&dir.path().join("state")).get(&key(&log)) == Some(&end)
    })
    .await;
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(spout.counters().files_opened(), 1);
}

// Guards rotation by rename: the old file is read to its end, including lines its writer
// appends after the spout has seen the rename and opened the new file (within `rotate_wait`),
// the new file at the same path from its start, each line once; the old file is released once
// it no longer matches, `rotate_wait` has passed, and it is read and acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_rename_reads_old_file_to_its_end_and_new_one_from_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("app.log");
    let (before, text) = numbered("before", 0..50);
    append(&log, &text);
    let mut opts = options(dir.path(), &["*.log"]);
    opts.rotate_wait = Duration::from_secs(2);
    let spout = FileSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink, 1);
    until("the first lines", || sink.len() >= 50).await;

    // The writer keeps its handle across the rename (as a logger does until it reopens).
    let mut old = OpenOptions::new().append(true).open(&log).expect("open");
    std::fs::rename(&log, dir.path().join("app.log.1")).expect("rename");
    let (after, text) = numbered("after", 0..50);
    append(&log, &text);
    // The spout has scanned since the rename: the old file no longer matches.
    until("the new file opened", || {
        spout.counters().files_opened() == 2
    })
    .await;
    let (late, text) = numbered("late in old file", 0..20);
    old.write_all(text.as_bytes()).expect("write");
    drop(old);

    until("every line", || sink.len() >= 120).await;
    until("the old file released", || {
        spout.counters().files_released() == 1
    })
    .await;
    let mut want = before;
    want.extend(late);
    want.extend(after);
    assert_eq!(sorted(lines(&sink, "default")), sorted(want));
    assert_eq!(spout.counters().files_opened(), 2);
    handle.stop(Duration::from_secs(5)).await;
    let cps = checkpoints(&dir.path().join("state"));
    assert_eq!(
        cps.len(),
        1,
        "the released file's checkpoint is dropped: {cps:?}"
    );
    assert_eq!(
        cps.get(&key(&log)),
        Some(&std::fs::metadata(&log).expect("stat").len())
    );
}

// Guards identity by device and inode: a file renamed to a name the globs still match is the
// same file (not read again from its start), its `path` field follows the new name, and the new
// file at the old path is read from its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_file_still_matched_is_not_read_twice() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("app.log");
    let rotated = dir.path().join("app.log.1");
    let (before, content) = numbered("before", 0..50);
    append(&log, &content);
    let mut opts = options(dir.path(), &["app.log*"]);
    opts.include_path = true;
    let spout = FileSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink, 1);
    until("the first lines", || sink.len() >= 50).await;

    std::fs::rename(&log, &rotated).expect("rename");
    let (after, content) = numbered("after", 0..30);
    append(&log, &content);
    until("the new file's lines", || sink.len() >= 80).await;
    // Written to the renamed file once the scan has seen both names.
    append(&rotated, "late\n");
    until("the late line", || sink.len() >= 81).await;

    let got = sink.tuples();
    let mut want = before;
    want.extend(after.iter().cloned());
    want.push("late".into());
    assert_eq!(
        sorted(got.iter().map(|c| text(&c.values[0])).collect()),
        sorted(want),
        "each line once"
    );
    let late = got.last().expect("the late line");
    assert_eq!(
        text(&late.values[1]),
        key(&rotated),
        "the path follows the rename"
    );
    assert_eq!(spout.counters().files_opened(), 2);
    assert_eq!(spout.counters().files_released(), 0);
    handle.stop(Duration::from_secs(5)).await;
    let cps = checkpoints(&dir.path().join("state"));
    assert_eq!(cps.len(), 2, "{cps:?}");
    assert_eq!(
        cps[&key(&rotated)],
        std::fs::metadata(&rotated).expect("stat").len()
    );
}

// Guards copytruncate: a file truncated in place is noticed (smaller than the read position),
// counted, and read again from 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copytruncate_is_detected_and_read_from_zero() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("app.log");
    let (before, text) = numbered("a line before the truncation", 0..100);
    append(&log, &text);
    let spout = FileSpout::new(options(dir.path(), &["app.log"])).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink, 1);
    until("the first lines", || sink.len() >= 100).await;

    std::fs::copy(&log, dir.path().join("app.log.1")).expect("copy");
    OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("open")
        .set_len(0)
        .expect("truncate");
    let (after, text) = numbered("after", 0..10);
    append(&log, &text);

    until("the lines after the truncation", || sink.len() >= 110).await;
    let mut want = before;
    want.extend(after);
    assert_eq!(lines(&sink, "default"), want);
    assert_eq!(spout.counters().truncations(), 1);
    let end = std::fs::metadata(&log).expect("stat").len();
    until("the checkpoint at the new end", || {
        checkpoints(&dir.path().join("state")).get(&key(&log)) == Some(&end)
    })
    .await;
    handle.stop(Duration::from_secs(5)).await;
}

// Guards directory watching: files created after start-up in a watched directory (a directory
// path and a glob), read from their start, except those matching `exclude`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_files_in_a_watched_directory_are_read_except_excluded() {
    let dir = tempfile::tempdir().expect("temp dir");
    let incoming = dir.path().join("incoming");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&incoming).expect("mkdir");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let mut opts = options(dir.path(), &["incoming", "logs/*.log"]);
    opts.exclude = vec!["**/*.tmp".into(), "**/skip-*".into()];
    opts.start_at = StartAt::End;
    // Present at start-up: with start_at = "end" its content is skipped.
    std::fs::write(incoming.join("existing"), "old\n").expect("write");
    let spout = FileSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink, 1);
    until("the start-up scan", || spout.counters().files_opened() == 1).await;

    // Files found later start at 0 even with start_at = "end".
    let mut want = Vec::new();
    for (name, n) in [("incoming/a.txt", 30), ("logs/b.log", 20)] {
        let (l, text) = numbered(name, 0..n);
        std::fs::write(dir.path().join(name), text).expect("write");
        want.extend(l);
    }
    for name in ["incoming/x.tmp", "incoming/skip-me", "logs/not-a-log.txt"] {
        std::fs::write(dir.path().join(name), "must not be read\n").expect("write");
    }
    // Written after the excluded files: once its lines are in, a scan has seen them all.
    let (l, text) = numbered("incoming/c", 0..10);
    std::fs::write(incoming.join("c"), text).expect("write");
    want.extend(l);
    until("the new files' lines", || sink.len() >= want.len()).await;
    assert_eq!(sorted(lines(&sink, "default")), sorted(want));
    assert_eq!(
        spout.counters().files_opened(),
        4,
        "excluded files are not opened"
    );
    handle.stop(Duration::from_secs(5)).await;
}

// Guards `watch`: with polling once an hour, an append, a new file, a file in a subdirectory of
// a `**` glob and a rotation by rename are all read, through the file system's change events
// alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_events_wake_the_spout_between_polls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    let deep = dir.path().join("deep/a/b");
    std::fs::create_dir_all(&logs).expect("mkdir");
    std::fs::create_dir_all(&deep).expect("mkdir");
    let log = logs.join("app.log");
    let (mut want, text) = numbered("start", 0..10);
    append(&log, &text);
    let mut opts = options(dir.path(), &["logs/*.log*", "deep/**/*.log"]);
    opts.poll_interval = Duration::from_secs(3600);
    assert!(opts.watch, "watching is the default");
    let spout = FileSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink, 1);
    until("the lines there at start-up", || sink.len() >= 10).await;

    let mut step = |what: &str, lines: Vec<String>| {
        want.extend(lines);
        (what.to_string(), want.len())
    };
    let (l, text) = numbered("appended", 0..10);
    append(&log, &text);
    let (what, n) = step("the appended lines", l);
    until(&what, || sink.len() >= n).await;

    let (l, text) = numbered("new file", 0..5);
    std::fs::write(logs.join("new.log"), text).expect("write");
    let (what, n) = step("a new file's lines", l);
    until(&what, || sink.len() >= n).await;

    let (l, text) = numbered("deep", 0..5);
    std::fs::write(deep.join("x.log"), text).expect("write");
    let (what, n) = step("a subdirectory's file", l);
    until(&what, || sink.len() >= n).await;

    // Rotation: the old file, still written to after its rename, and the new one.
    std::fs::rename(&log, logs.join("app.log.1")).expect("rename");
    let (mut l, text) = numbered("late in the old file", 0..3);
    append(&logs.join("app.log.1"), &text);
    let (l2, text) = numbered("rotated", 0..5);
    append(&log, &text);
    l.extend(l2);
    let (what, n) = step("both sides of a rotation", l);
    until(&what, || sink.len() >= n).await;

    assert_eq!(sorted(lines(&sink, "default")), sorted(want));
    assert_eq!(spout.counters().files_opened(), 4);
    handle.stop(Duration::from_secs(5)).await;
}

/// `path` (absolute) relative to the current directory: `../..` up to the root, then `path`.
fn relative(path: &Path) -> PathBuf {
    let cwd = std::env::current_dir().expect("the current directory");
    let mut rel: PathBuf = cwd.components().skip(1).map(|_| "..").collect();
    rel.push(path.strip_prefix("/").expect("an absolute path"));
    rel
}

// Guards the change events of a relative glob: the events name files by absolute paths, the
// glob by relative ones; an append to a file found through `../../tmp/...` is read at once all
// the same (polling is once an hour here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_events_wake_the_spout_for_a_relative_glob() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("app.log");
    let (mut want, text) = numbered("start", 0..5);
    append(&log, &text);
    let mut opts = options(dir.path(), &[]);
    opts.paths = vec![
        relative(&dir.path().join("*.log"))
            .to_string_lossy()
            .into_owned(),
    ];
    opts.poll_interval = Duration::from_secs(3600);
    let spout = FileSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink, 1);
    until("the lines there at start-up", || sink.len() >= 5).await;

    let (l, text) = numbered("appended", 0..5);
    append(&log, &text);
    want.extend(l);
    until("the appended lines", || sink.len() >= want.len()).await;
    assert_eq!(sorted(lines(&sink, "default")), sorted(want));
    handle.stop(Duration::from_secs(5)).await;
}

// Guards the rotation race: a scan lists `app.log` and opens it a moment later; rotated in
// between, the path names the next file by then. Hundreds of rotations as fast as the writer can
// make them, with scans every millisecond and on every change event: each file is opened once and
// each line comes out exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_rotations_read_every_line_once() {
    const ROTATIONS: usize = 300;
    const LINES: usize = 20;
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let mut opts = options(dir.path(), &["logs/app.log*"]);
    opts.poll_interval = Duration::from_millis(1);
    let spout = FileSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink, 1);

    let want = tokio::task::spawn_blocking(move || {
        let mut want = Vec::new();
        for r in 0..ROTATIONS {
            let (lines, text) = numbered(&format!("file {r} line"), 0..LINES);
            append(&logs.join("app.log"), &text);
            want.extend(lines);
            std::fs::rename(logs.join("app.log"), logs.join(format!("app.log.{r}")))
                .expect("rotate");
        }
        want
    })
    .await
    .expect("the writer");
    until("every line", || sink.len() >= want.len()).await;
    handle.stop(Duration::from_secs(5)).await;

    assert_eq!(sorted(lines(&sink, "default")), sorted(want));
    assert_eq!(spout.counters().files_opened(), ROTATIONS as u64);
}

// Guards `start_at = "end"`: a file present at start-up without checkpoint is read only from
// its end; a fresh file from its start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_at_end_skips_existing_content() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("app.log");
    append(&log, "old 1\nold 2\n");
    let mut opts = options(dir.path(), &["*.log"]);
    opts.start_at = StartAt::End;
    let spout = FileSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink, 1);
    until("the file opened", || spout.counters().files_opened() == 1).await;
    append(&log, "new 1\n");
    until("the new line", || !sink.is_empty()).await;
    // Old lines, had they been read, would have come first.
    assert_eq!(lines(&sink, "default"), ["new 1"]);
    handle.stop(Duration::from_secs(5)).await;
}

// Guards bad input: an oversize line (longer than one read) and a line of invalid UTF-8
// (strict) go to the `error` stream, counted; the lines around them arrive; and the checkpoint
// moves past them (they are handled), to the end of the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_and_invalid_lines_go_to_error_and_the_checkpoint_passes_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("app.log");
    let mut input = b"first\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 200_000));
    input.extend(b"\nbad \xff\xfe byte\nsecond\r\nexactly 16 bytes\n");
    input.extend(b"seventeen bytes!!\nshort\nend, no \\n");
    std::fs::write(&log, &input).expect("write");
    let mut opts = options(dir.path(), &["app.log"]);
    opts.max_line_bytes = 16;
    opts.encoding = Encoding::Strict;
    opts.until_eof = true;
    let spout = FileSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink, 1);
    handle.wait_until_idle(WAIT).await.expect("idle");
    assert_eq!(
        lines(&sink, "default"),
        [
            "first",
            "second",
            "exactly 16 bytes",
            "short",
            "end, no \\n"
        ]
    );
    let mut errors: Vec<(String, String)> = sink
        .tuples()
        .iter()
        .filter(|c| c.stream == "error")
        .map(|c| (text(&c.values[0]), text(&c.values[1])))
        .collect();
    errors.sort();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(errors[0].0.starts_with("invalid UTF-8"), "{errors:?}");
    assert_eq!(errors[0].1, "bad \u{fffd}\u{fffd} byte");
    assert_eq!(errors[1].0, "line longer than max_line_bytes = 16");
    assert_eq!(errors[1].1, "seventeen bytes!!", "raw ends with its line");
    assert_eq!(errors[2].1, "x".repeat(1024), "raw keeps the first KiB");
    assert_eq!(spout.counters().oversize(), 2);
    assert_eq!(spout.counters().invalid_utf8(), 1);
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(
        checkpoints(&dir.path().join("state")).get(&key(&log)),
        Some(&(input.len() as u64)),
        "every line handled: the checkpoint is the end of the file"
    );
}

/// Fails the first delivery of every k-th line; records every delivery; can block lines from
/// some index on (they fail every time).
#[derive(Clone)]
struct Flaky {
    every: usize,
    fail_from: usize,
    failed: Arc<Mutex<HashSet<String>>>,
    delivered: Arc<Mutex<Vec<String>>>,
    /// Each delivery's other fields, when the spout adds them (`include_path`): the line, its
    /// path and its offset.
    places: Arc<Mutex<Vec<(String, Value, Value)>>>,
}

impl Flaky {
    fn new(every: usize, fail_from: usize) -> Flaky {
        Flaky {
            every,
            fail_from,
            failed: Arc::default(),
            delivered: Arc::default(),
            places: Arc::default(),
        }
    }
    fn delivered(&self) -> Vec<String> {
        self.delivered.lock().expect("lock").clone()
    }
}

/// The number at the end of "line N".
fn number(line: &str) -> usize {
    line.rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a numbered line")
}

impl BasicBolt for Flaky {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let line = text(&input.values()[0]);
        let i = number(&line);
        if i >= self.fail_from {
            return Err(format!("{line} is blocked").into());
        }
        if let [_, path, offset] = input.values() {
            self.places
                .lock()
                .expect("lock")
                .push((line.clone(), path.clone(), offset.clone()));
        }
        if i.is_multiple_of(self.every) && self.failed.lock().expect("lock").insert(line.clone()) {
            return Err(format!("first delivery of {line} fails").into());
        }
        self.delivered.lock().expect("lock").push(line);
        Ok(())
    }
}

/// Acks every tuple.
struct Discard;

impl BasicBolt for Discard {
    fn execute(&mut self, _input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        Ok(())
    }
}

fn run_flaky(spout: &FileSpout, bolt: &Flaky) -> TopologyHandle {
    let mut b = TopologyBuilder::new("file-replay");
    b.config_mut().max_spout_pending = Some(100);
    let s = spout.clone();
    b.set_spout("lines", move || s.clone(), 1);
    let f = bolt.clone();
    b.set_bolt("flaky", BoltFactory::basic(move || f.clone()), 2)
        .shuffle_grouping("lines");
    topo_runtime::submit(b.build().expect("a valid topology"))
}

// Guards replay under injected bolt failures: every 7th line fails its first delivery (and with
// it the lines sharing its tree); every line is delivered, each acked once, a replayed line
// carries the same path and offset as its first delivery, and the checkpoint ends at the end of
// the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_lines_are_replayed_until_every_line_is_acked() {
    const N: usize = 2000;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("app.log");
    let (sent, text) = numbered("line", 0..N);
    append(&log, &text);
    let mut opts = options(dir.path(), &["app.log"]);
    opts.until_eof = true;
    opts.include_path = true;
    let spout = FileSpout::new(opts).expect("valid options");
    let bolt = Flaky::new(7, usize::MAX);
    let handle = run_flaky(&spout, &bolt);
    let m = handle.wait_until_idle(WAIT).await.expect("idle");
    let c = m.component("lines").expect("the spout's figures");
    // The new lines of a call share a tree: a line that fails fails the lines of its tree, and
    // each of them is emitted again in a tree of its own (and then succeeds).
    let failures = N.div_ceil(7) as u64;
    assert_eq!(c.acked(), N as u64, "each line acked exactly once");
    assert!(c.failed() >= failures, "{} failed", c.failed());
    assert_eq!(
        c.emitted(),
        N as u64 + c.failed(),
        "failed lines emitted again, once"
    );
    let delivered = bolt.delivered();
    assert_eq!(
        delivered.len() as u64,
        N as u64 + c.failed() - failures,
        "the lines that succeeded in a failed tree are delivered again"
    );
    assert_eq!(sorted(dedup(delivered)), sorted(sent.clone()));
    // Every delivery, first or replayed, names the file and the line's first byte.
    let starts: BTreeMap<String, i64> = sent
        .iter()
        .scan(0i64, |at, l| {
            let start = *at;
            *at += l.len() as i64 + 1;
            Some((l.clone(), start))
        })
        .collect();
    let places = bolt.places.lock().expect("lock").clone();
    assert_eq!(
        places.len() as u64,
        c.emitted(),
        "every delivery has its place"
    );
    for (line, path, offset) in places {
        assert_eq!(path, Value::from(key(&log)), "{line}'s path");
        assert_eq!(offset, Value::Int(starts[&line]), "{line}'s offset");
    }
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(
        checkpoints(&dir.path().join("state")).get(&key(&log)),
        Some(&(text.len() as u64))
    );
}

// Guards checkpoints over acked lines only and resumption: a first run whose bolt never acks
// the lines from 600 on stops with its checkpoint at line 600; a second run (the same state
// directory) reads exactly the lines from 600 on — none acked before, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resubmitted_topology_resumes_at_the_acked_prefix() {
    const N: usize = 1000;
    const BLOCKED: usize = 600;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("app.log");
    let (sent, text) = numbered("line", 0..N);
    append(&log, &text);
    let offset_of = |i: usize| -> u64 { sent[..i].iter().map(|l| l.len() as u64 + 1).sum() };

    let spout = FileSpout::new(options(dir.path(), &["app.log"])).expect("valid options");
    let first = Flaky::new(usize::MAX, BLOCKED);
    let handle = run_flaky(&spout, &first);
    until("the lines before the blocked one", || {
        first.delivered().len() >= BLOCKED
    })
    .await;
    until("the checkpoint at the blocked line", || {
        checkpoints(&dir.path().join("state")).get(&key(&log)) == Some(&offset_of(BLOCKED))
    })
    .await;
    handle.stop(Duration::from_millis(200)).await;
    assert_eq!(
        checkpoints(&dir.path().join("state")).get(&key(&log)),
        Some(&offset_of(BLOCKED)),
        "the checkpoint does not pass the un-acked line"
    );
    // Lines before the blocked one that shared its tree were delivered again, alone.
    assert_eq!(
        sorted(dedup(first.delivered())),
        sorted(sent[..BLOCKED].to_vec())
    );

    let mut opts = options(dir.path(), &["app.log"]);
    opts.until_eof = true;
    let spout = FileSpout::new(opts).expect("valid options");
    let second = Flaky::new(usize::MAX, usize::MAX);
    let handle = run_flaky(&spout, &second);
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(
        sorted(second.delivered()),
        sorted(sent[BLOCKED..].to_vec()),
        "exactly the lines after the checkpoint"
    );
    assert_eq!(
        checkpoints(&dir.path().join("state")).get(&key(&log)),
        Some(&(text.len() as u64))
    );
}

// Guards an inode reused by another file: a checkpoint whose fingerprint does not match the
// file now at that device and inode is not used; the file is read from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_of_another_file_is_not_applied() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("app.log");
    let (_, text) = numbered("original", 0..50);
    append(&log, &text);
    let mut opts = options(dir.path(), &["app.log"]);
    opts.until_eof = true;
    let spout = FileSpout::new(opts.clone()).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink, 1);
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(sink.len(), 50);

    // Same inode, other content (what a reused inode looks like to the spout).
    let (replaced, text) = numbered("replacement, a longer line than before", 0..60);
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .expect("open")
        .write_all(text.as_bytes())
        .expect("write");
    let spout = FileSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink, 1);
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(lines(&sink, "default"), replaced);
}

// Guards several tasks: each file is read by exactly one task (every line once), and each task
// keeps its own checkpoint file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_tasks_share_the_files_without_overlap() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut want = Vec::new();
    let mut files: Vec<PathBuf> = Vec::new();
    for f in 0..8 {
        let path = dir.path().join(format!("f{f}.log"));
        let (l, text) = numbered(&format!("file {f} line"), 0..100);
        append(&path, &text);
        want.extend(l);
        files.push(path);
    }
    let mut opts = options(dir.path(), &["*.log"]);
    opts.until_eof = true;
    let spout = FileSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, &sink, 3);
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(
        sorted(lines(&sink, "default")),
        sorted(want),
        "each line once"
    );
    assert_eq!(spout.counters().files_opened(), 8);
    let cps = checkpoints(&dir.path().join("state"));
    assert_eq!(cps.len(), 8, "{cps:?}");
    for f in &files {
        assert_eq!(cps[&key(f)], std::fs::metadata(f).expect("stat").len());
    }
    let task_files = std::fs::read_dir(dir.path().join("state"))
        .expect("state dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert!(task_files >= 2, "tasks write their own checkpoint files");
}

// Guards that bad options are refused with a message naming the option and the value.
#[test]
fn bad_options_are_named() {
    let ok = FileOptions {
        paths: vec!["/tmp/*.log".into()],
        ..FileOptions::default()
    };
    let bad = [
        (FileOptions::default(), "option `paths` is empty"),
        (
            FileOptions {
                paths: vec!["/var/log/[a-".into()],
                ..ok.clone()
            },
            "`paths[0]` = \"/var/log/[a-\"",
        ),
        (
            FileOptions {
                exclude: vec!["*.gz".into(), "***".into()],
                ..ok.clone()
            },
            "`exclude[1]` = \"***\"",
        ),
        (
            FileOptions {
                max_line_bytes: 0,
                ..ok.clone()
            },
            "`max_line_bytes` = 0",
        ),
        (
            FileOptions {
                poll_interval: Duration::ZERO,
                ..ok.clone()
            },
            "`poll_interval` = \"0s\"",
        ),
        (
            FileOptions {
                include_path: true,
                field: "path".into(),
                ..ok.clone()
            },
            "`field` = \"path\"",
        ),
    ];
    for (opts, want) in bad {
        let err = FileSpout::new(opts).err().expect("refused");
        assert!(err.contains(want), "{err:?} should name {want}");
    }
    assert!(FileSpout::new(ok).is_ok());
}

// Measures the lines per second the spout reads and emits into a sink that acks each line.
// Run: cargo test --release -p topo-spouts --test file -- --ignored --nocapture throughput
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn throughput() {
    const N: usize = 1_000_000;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("big.log");
    let mut text = String::with_capacity(N * 80);
    for i in 0..N {
        text.push_str(&format!(
            "127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] \"GET /a/{i} HTTP/1.0\" 200 2326\n"
        ));
    }
    std::fs::write(&log, &text).expect("write");
    let mut opts = options(dir.path(), &["big.log"]);
    opts.until_eof = true;
    opts.checkpoint_interval = Duration::from_secs(1);
    let spout = FileSpout::new(opts).expect("valid options");
    let mut b = TopologyBuilder::new("file-throughput");
    let s = spout.clone();
    b.set_spout("lines", move || s.clone(), 1);
    b.set_bolt("sink", BoltFactory::basic(|| Discard), 2)
        .shuffle_grouping("lines");
    let start = Instant::now();
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    handle
        .wait_until_idle(Duration::from_secs(300))
        .await
        .expect("idle");
    let secs = start.elapsed().as_secs_f64();
    handle.stop(Duration::from_secs(5)).await;
    println!(
        "file spout: {N} lines ({} MB) read, emitted and acked in {secs:.2}s: {:.0} lines/s",
        text.len() / 1_000_000,
        N as f64 / secs
    );
}
