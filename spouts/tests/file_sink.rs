//! The `file` sink through the runtime's real task driver ([`BoltTester`]): exact file contents
//! (JSON lines, CSV), batching, ack only after the write, rotation and `.part` names, gzip
//! members, write failures (retry, then fail for replay), recovery of files left by a dead
//! process, the `error` stream and option errors.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use topo_runtime::testing::BoltTester;
use topo_runtime::{Value, Values, values};
use topo_spouts::{FileFormat, FileSinkOptions, FileWriter};

const FIELDS: [&str; 3] = ["ts", "path", "status"];

fn opts(dir: &Path) -> FileSinkOptions {
    let mut o = FileSinkOptions::new(dir);
    o.prefix = "access".into();
    o.batch.max_records = 100;
    o.retry.backoff = Duration::from_millis(1);
    o.retry.max_backoff = Duration::from_millis(2);
    o
}

fn tester(o: FileSinkOptions) -> BoltTester {
    let writer = FileWriter::new(o).expect("valid options");
    BoltTester::full(move || writer.clone().into_sink(), FIELDS)
}

fn rec(i: i64) -> Values {
    values![1_700_000_000 + i, format!("/p/{i}"), 200 + i]
}

fn json_line(i: i64) -> String {
    format!(
        "{{\"ts\":{},\"path\":\"/p/{i}\",\"status\":{}}}\n",
        1_700_000_000 + i,
        200 + i
    )
}

/// File names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
        .collect();
    v.sort();
    v
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).expect("read file")
}

fn gunzip_all(path: &Path) -> String {
    let mut s = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_string(&mut s)
        .expect("gzip members");
    s
}

/// `<prefix>-<task>-<yyyymmddThhmmss>-<seq>.<ext>`: checks the shape, returns the seq.
fn seq_of(name: &str, prefix: &str, ext: &str) -> u64 {
    let rest = name
        .strip_prefix(&format!("{prefix}-0-"))
        .unwrap_or_else(|| panic!("{name}: prefix"));
    let rest = rest
        .strip_suffix(ext)
        .unwrap_or_else(|| panic!("{name}: extension {ext}"));
    let (stamp, seq) = rest.split_once('-').expect("stamp-seq");
    assert_eq!(stamp.len(), 15, "{name}");
    assert_eq!(&stamp[8..9], "T", "{name}");
    assert!(chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%S").is_ok());
    seq.parse().expect("seq")
}

#[test]
fn jsonl_is_exact_and_acks_follow_the_write() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("out/logs");
    let mut o = opts(&dir);
    o.batch.max_records = 3;
    let mut t = tester(o);
    assert!(dir.is_dir(), "the directory is created when the task opens");
    for i in 0..2 {
        let run = t.execute(rec(i));
        assert!(run.acked_inputs.is_empty() && run.failed_inputs.is_empty());
        assert!(run.emitted.is_empty());
    }
    assert!(
        names(&dir).is_empty(),
        "nothing written before the batch is full"
    );
    let run = t.execute(rec(2));
    assert_eq!(run.acked_inputs, vec![0, 1, 2]);
    let files = names(&dir);
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with(".jsonl.part"), "{files:?}");
    assert_eq!(
        read(&dir, &files[0]),
        (0..3).map(json_line).collect::<String>()
    );
    // The next record waits for the next batch; finish writes it and renames the file.
    assert!(t.execute(rec(3)).acked_inputs.is_empty());
    let end = t.finish();
    assert_eq!(end.acked_inputs, vec![3]);
    let files = names(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(seq_of(&files[0], "access", ".jsonl"), 0);
    assert_eq!(
        read(&dir, &files[0]),
        (0..4).map(json_line).collect::<String>()
    );
}

#[test]
fn jsonl_writes_the_chosen_fields_in_order() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut o = opts(tmp.path());
    o.fields = vec!["status".into(), "ts".into()];
    let mut t = tester(o);
    t.execute(values![5, "/a", 404]);
    t.execute(values![Value::Null, "/b", 1.5]);
    assert_eq!(t.finish().acked_inputs, vec![0, 1]);
    let files = names(tmp.path());
    assert_eq!(
        read(tmp.path(), &files[0]),
        "{\"status\":404,\"ts\":5}\n{\"status\":1.5,\"ts\":null}\n"
    );
}

#[test]
fn csv_is_exact_with_header_and_quoting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut o = opts(tmp.path());
    o.format = FileFormat::Csv;
    let mut t = tester(o);
    t.execute(values![1, "/a,b", 200]);
    t.execute(values![Value::Null, "say \"hi\"\nnow", true]);
    t.execute(values![
        2.5,
        Value::from(vec![Value::from(1), Value::from("x")]),
        0
    ]);
    assert_eq!(t.finish().acked_inputs, vec![0, 1, 2]);
    let files = names(tmp.path());
    assert_eq!(files.len(), 1);
    assert_eq!(seq_of(&files[0], "access", ".csv"), 0);
    assert_eq!(
        read(tmp.path(), &files[0]),
        "ts,path,status\n1,\"/a,b\",200\n,\"say \"\"hi\"\"\nnow\",true\n2.5,\"[1,\"\"x\"\"]\",0\n"
    );
}

#[test]
fn a_record_lacking_a_chosen_field_goes_to_the_error_stream() {
    for format in [FileFormat::Csv, FileFormat::Jsonl] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut o = opts(tmp.path());
        o.format = format;
        o.fields = vec!["ts".into(), "host".into()];
        let mut t = tester(o);
        let run = t.execute(rec(0));
        assert!(
            run.acked,
            "{format:?}: a record that can never be written is acked"
        );
        assert_eq!(run.emitted.len(), 1);
        let e = &run.emitted[0];
        assert_eq!(e.stream, "error");
        assert!(e.anchored);
        assert_eq!(
            e.values[0].as_str(),
            Some(
                "the record has no field `host` (its fields: ts, path, status; written: ts, host)"
            )
        );
        let Value::Map(record) = &e.values[1] else {
            panic!("record is a map: {:?}", e.values[1]);
        };
        assert_eq!(record.get("path"), Some(&Value::from("/p/0")));
        assert!(t.finish().acked_inputs.is_empty());
        assert!(names(tmp.path()).is_empty(), "{format:?}: nothing written");
    }
}

#[test]
fn csv_bytes_that_are_not_text_go_to_the_error_stream_and_the_batch_stays_clean() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut o = opts(tmp.path());
    o.format = FileFormat::Csv;
    let mut t = tester(o);
    t.execute(values![1, "/a", 200]);
    let bad = t.execute(values![
        2,
        Value::Bytes(Box::new(bytes::Bytes::from_static(b"\xff\xfe"))),
        500
    ]);
    assert!(bad.acked);
    assert_eq!(bad.emitted[0].stream, "error");
    assert_eq!(
        bad.emitted[0].values[0].as_str(),
        Some("field `path` holds bytes that are not UTF-8 text")
    );
    t.execute(values![3, "/c", 201]);
    assert_eq!(t.finish().acked_inputs, vec![0, 2]);
    let files = names(tmp.path());
    assert_eq!(
        read(tmp.path(), &files[0]),
        "ts,path,status\n1,/a,200\n3,/c,201\n"
    );
}

#[test]
fn batches_by_max_bytes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut o = opts(tmp.path());
    // Each of rec(0..10) is 45 bytes: two fill a batch of 80.
    assert_eq!(json_line(0).len(), 45);
    o.batch.max_bytes = 80;
    let mut t = tester(o);
    let acks: Vec<Vec<usize>> = (0..5).map(|i| t.execute(rec(i)).acked_inputs).collect();
    assert_eq!(acks, vec![vec![], vec![0, 1], vec![], vec![2, 3], vec![]]);
    assert_eq!(t.finish().acked_inputs, vec![4]);
}

#[test]
fn batches_by_interval_on_paused_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut o = opts(tmp.path());
    o.batch.interval = Duration::from_secs(1);
    let mut t = tester(o);
    t.pause_time();
    t.execute(rec(0));
    t.advance(Duration::from_millis(600));
    t.execute(rec(1));
    assert!(t.tick().acked_inputs.is_empty(), "the oldest waited 600 ms");
    assert!(names(tmp.path()).is_empty());
    t.advance(Duration::from_millis(400));
    assert_eq!(t.tick().acked_inputs, vec![0, 1], "the oldest waited 1 s");
    let files = names(tmp.path());
    assert_eq!(read(tmp.path(), &files[0]), json_line(0) + &json_line(1));
    assert!(t.tick().acked_inputs.is_empty());
}

#[test]
fn rotates_by_size_with_part_names_until_complete() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut o = opts(dir);
    o.batch.max_records = 2;
    // A file is full after two batches (90 bytes each).
    o.rotate.max_bytes = 150;
    let mut t = tester(o);
    t.execute(rec(0));
    t.execute(rec(1));
    let files = names(dir);
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with(".jsonl.part"), "{files:?}");
    t.execute(rec(2));
    t.execute(rec(3));
    let files = names(dir);
    assert_eq!(files.len(), 1);
    assert_eq!(
        seq_of(&files[0], "access", ".jsonl"),
        0,
        "renamed when full"
    );
    assert_eq!(
        read(dir, &files[0]),
        (0..4).map(json_line).collect::<String>()
    );
    for i in 4..7 {
        t.execute(rec(i));
    }
    let files = names(dir);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files.iter().any(|f| f.ends_with("-1.jsonl.part")),
        "{files:?}"
    );
    assert_eq!(t.finish().acked_inputs, vec![6]);
    let files = names(dir);
    assert_eq!(files.len(), 2, "{files:?}");
    let mut seqs: Vec<u64> = files
        .iter()
        .map(|f| seq_of(f, "access", ".jsonl"))
        .collect();
    seqs.sort();
    assert_eq!(seqs, vec![0, 1]);
    let second = files
        .iter()
        .find(|f| f.ends_with("-1.jsonl"))
        .expect("second file");
    assert_eq!(read(dir, second), (4..7).map(json_line).collect::<String>());
}

#[test]
fn rotates_by_age_while_idle_and_before_a_write() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut o = opts(dir);
    o.batch.max_records = 1;
    o.rotate.max_age = Duration::from_secs(10);
    let mut t = tester(o);
    t.pause_time();
    assert_eq!(t.execute(rec(0)).acked_inputs, vec![0]);
    t.advance(Duration::from_secs(9));
    t.tick();
    assert!(names(dir)[0].ends_with(".part"), "9 s old: still open");
    t.advance(Duration::from_secs(1));
    t.tick();
    let files = names(dir);
    assert_eq!(files.len(), 1);
    assert_eq!(
        seq_of(&files[0], "access", ".jsonl"),
        0,
        "renamed when idle"
    );

    // Age is checked before a write too: no tick between these two.
    assert_eq!(t.execute(rec(1)).acked_inputs, vec![1]);
    t.advance(Duration::from_secs(10));
    assert_eq!(t.execute(rec(2)).acked_inputs, vec![2]);
    let files = names(dir);
    assert_eq!(files.len(), 3, "{files:?}");
    let done: Vec<&String> = files.iter().filter(|f| f.ends_with("-1.jsonl")).collect();
    assert_eq!(done.len(), 1, "{files:?}");
    assert_eq!(read(dir, done[0]), json_line(1));
    assert!(files.iter().any(|f| f.ends_with("-2.jsonl.part")));
    t.finish();
    assert!(names(dir).iter().all(|f| !f.ends_with(".part")));
}

#[test]
fn gzip_writes_one_member_per_batch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut o = opts(dir);
    o.gzip = true;
    o.batch.max_records = 2;
    let mut t = tester(o);
    for i in 0..4 {
        t.execute(rec(i));
    }
    // Before any rename, every acked record decodes from the `.part` file.
    let part = names(dir);
    assert!(part[0].ends_with(".jsonl.gz.part"), "{part:?}");
    assert_eq!(
        gunzip_all(&dir.join(&part[0])),
        (0..4).map(json_line).collect::<String>()
    );
    t.execute(rec(4));
    assert_eq!(t.finish().acked_inputs, vec![4]);
    let files = names(dir);
    assert_eq!(files.len(), 1);
    assert_eq!(seq_of(&files[0], "access", ".jsonl.gz"), 0);
    let path = dir.join(&files[0]);
    assert_eq!(gunzip_all(&path), (0..5).map(json_line).collect::<String>());
    // A single-member decoder stops after the first batch: the batches are separate members.
    let mut first = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&path).expect("open"))
        .read_to_string(&mut first)
        .expect("first member");
    assert_eq!(first, json_line(0) + &json_line(1));
}

#[test]
fn gzip_csv_has_the_header_in_each_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut o = opts(dir);
    o.gzip = true;
    o.format = FileFormat::Csv;
    o.batch.max_records = 2;
    o.rotate.max_bytes = 1;
    let mut t = tester(o);
    for i in 0..4 {
        t.execute(rec(i));
    }
    t.finish();
    let files = names(dir);
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        let i = seq_of(f, "access", ".csv.gz") as i64;
        let expected = format!(
            "ts,path,status\n{},/p/{},{}\n{},/p/{},{}\n",
            1_700_000_000 + 2 * i,
            2 * i,
            200 + 2 * i,
            1_700_000_001 + 2 * i,
            2 * i + 1,
            201 + 2 * i
        );
        assert_eq!(gunzip_all(&dir.join(f)), expected);
    }
}

#[test]
fn a_write_failure_is_retried_then_fails_the_inputs_for_replay() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: PathBuf = tmp.path().join("out");
    let mut o = opts(&dir);
    o.batch.max_records = 2;
    o.rotate.max_bytes = 1; // a new file for every batch
    o.retry.attempts = Some(3);
    let mut t = tester(o);
    t.execute(rec(0));
    assert_eq!(t.execute(rec(1)).acked_inputs, vec![0, 1]);
    let first = names(&dir);
    assert_eq!(first.len(), 1);
    // A file where the directory should be: the next file cannot be created.
    let moved = tmp.path().join("moved");
    std::fs::rename(&dir, &moved).expect("move dir");
    std::fs::write(&dir, b"not a directory").expect("file in its place");
    t.execute(rec(2));
    let run = t.execute(rec(3));
    assert!(run.acked_inputs.is_empty(), "{run:?}");
    assert_eq!(
        run.failed_inputs,
        vec![2, 3],
        "failed so the spout replays them"
    );
    assert_eq!(run.errors, 1, "the failed batch is logged and counted");
    // The destination is back: the replayed records are written.
    std::fs::remove_file(&dir).expect("remove file");
    std::fs::rename(&moved, &dir).expect("dir back");
    t.execute(rec(2));
    assert_eq!(t.execute(rec(3)).acked_inputs, vec![4, 5]);
    t.finish();
    let files = names(&dir);
    assert_eq!(files.len(), 2, "{files:?}");
    let all: String = files.iter().map(|f| read(&dir, f)).collect();
    assert_eq!(all, (0..4).map(json_line).collect::<String>());
}

#[test]
fn the_directory_missing_at_write_is_retried_and_the_batch_kept() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir: PathBuf = tmp.path().join("out");
    let mut o = opts(&dir);
    o.batch.max_records = 1;
    o.rotate.max_bytes = 1;
    o.retry.attempts = Some(2);
    let mut t = tester(o);
    std::fs::remove_dir(&dir).expect("remove dir");
    let run = t.execute(rec(0));
    assert_eq!(run.failed_inputs, vec![0]);
    std::fs::create_dir(&dir).expect("dir back");
    assert_eq!(t.execute(rec(0)).acked_inputs, vec![1]);
    let files = names(&dir);
    assert_eq!(read(&dir, &files[0]), json_line(0));
}

#[test]
fn part_files_left_by_a_dead_process_are_renamed_when_the_task_opens() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let left = "access-0-20260101T000000-0.jsonl.part";
    std::fs::write(dir.join(left), json_line(7)).expect("write");
    std::fs::write(dir.join("access-0-20260101T000000-1.jsonl.gz.part"), b"").expect("write");
    let others = [
        "access-1-20260101T000000-0.jsonl.part", // another task's
        "other-0-20260101T000000-0.jsonl.part",  // another sink's
        "access-0-notes.part",                   // not a sink's file name
    ];
    for o in others {
        std::fs::write(dir.join(o), b"x").expect("write");
    }
    let mut t = tester(opts(dir));
    let mut expected: Vec<String> = others.iter().map(|s| s.to_string()).collect();
    expected.push("access-0-20260101T000000-0.jsonl".into());
    expected.sort();
    assert_eq!(names(dir), expected, "renamed; the empty one removed");
    assert_eq!(read(dir, "access-0-20260101T000000-0.jsonl"), json_line(7));
    // New files never take an existing name.
    t.execute(rec(0));
    t.finish();
    assert_eq!(names(dir).len(), expected.len() + 1);
}

#[test]
fn an_existing_file_name_is_never_overwritten() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut o = opts(dir);
    o.batch.max_records = 1;
    o.rotate.max_bytes = 1;
    let mut t = tester(o);
    for i in 0..3 {
        t.execute(rec(i));
    }
    t.finish();
    // A second run in the same second starts again at seq 0 and must skip the taken names.
    let mut o = opts(dir);
    o.batch.max_records = 1;
    o.rotate.max_bytes = 1;
    let mut t = tester(o);
    for i in 3..6 {
        t.execute(rec(i));
    }
    t.finish();
    let files = names(dir);
    assert_eq!(files.len(), 6, "{files:?}");
    let mut all: Vec<String> = files.iter().map(|f| read(dir, f)).collect();
    all.sort();
    let mut expected: Vec<String> = (0..6).map(json_line).collect();
    expected.sort();
    assert_eq!(all, expected);
}

fn option_error(toml_text: &str) -> String {
    let o: FileSinkOptions = match toml::from_str(toml_text) {
        Ok(o) => o,
        Err(e) => return e.message().to_string(),
    };
    match FileWriter::new(o) {
        Ok(_) => panic!("accepted: {toml_text}"),
        Err(e) => e,
    }
}

#[test]
fn option_errors_name_the_option_and_value() {
    let cases = [
        (
            "dir = \"d\"\nbatch = { max_records = 0 }",
            "option `batch.max_records` must be at least 1",
        ),
        (
            "dir = \"d\"\nrotate = { max_bytes = 0 }",
            "option `rotate.max_bytes` must be at least 1, got 0",
        ),
        (
            "dir = \"d\"\nrotate = { max_age = \"0s\" }",
            "option `rotate.max_age` must be longer than 0s",
        ),
        (
            "dir = \"d\"\nprefix = \"a/b\"",
            "option `prefix` must be a non-empty file name part without `/`, `\\` or NUL, got \"a/b\"",
        ),
        (
            "dir = \"d\"\nfields = [\"a\", \"a\"]",
            "option `fields` names \"a\" twice",
        ),
        ("dir = \"\"", "option `dir` must name a directory, got \"\""),
        (
            "dir = \"d\"\nretry = { backoff = \"2s\", max_backoff = \"1s\" }",
            "option `retry.backoff` (2s) must not exceed `retry.max_backoff` (1s)",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(option_error(text), expected, "{text}");
    }
    assert!(option_error("dir = \"d\"\nformat = \"xml\"").contains("unknown variant `xml`"));
    assert!(option_error("dir = \"d\"\nrotation = {}").contains("unknown field `rotation`"));
    assert!(option_error("prefix = \"a\"").contains("missing field `dir`"));
    assert!(option_error("dir = \"d\"\nrotate = { max_age = \"soon\" }").contains("soon"));
}

/// Where the process killed in [`a_killed_process_loses_no_acked_record`] writes; set only in
/// that child process.
const CHILD_ENV: &str = "TOPO_FILE_SINK_KILL_CHILD";

/// A spout for the child process: emits ids 0, 1, 2, ... (one per call), logging each id to
/// `emitted.log` before emitting it and to `acked.log` when it is acked.
struct LoggedSpout {
    next: i64,
    emitted: std::fs::File,
    acked: std::fs::File,
}

impl topo_runtime::Spout for LoggedSpout {
    type MessageId = i64;

    fn declare_outputs(&self, out: &mut topo_runtime::OutputDeclarer) {
        out.declare(FIELDS);
    }

    async fn next_tuple(
        &mut self,
        out: &mut topo_runtime::SpoutCollector<'_, i64>,
    ) -> Result<(), topo_runtime::BoxError> {
        use std::io::Write;
        let i = self.next;
        self.next += 1;
        writeln!(self.emitted, "{i}")?;
        out.emit(rec(i), Some(i));
        Ok(())
    }

    fn ack(&mut self, i: i64) {
        use std::io::Write;
        writeln!(self.acked, "{i}").expect("log the ack");
    }
}

fn sink_options_for_kill(dir: &Path) -> FileSinkOptions {
    let mut o = FileSinkOptions::new(dir);
    o.prefix = "access".into();
    // Batches are written by age only (never full), so records are always pending.
    o.batch.max_records = 100_000;
    o.batch.interval = Duration::from_millis(50);
    o.rotate.max_bytes = 1 << 20;
    o
}

/// Not a test by itself: the child process of [`a_killed_process_loses_no_acked_record`]
/// (it returns at once unless that test started it). Runs a topology writing to the directory
/// it is given until it is killed (at most 60 s).
#[test]
fn child_process_writing_until_killed() {
    let Some(base) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let base = PathBuf::from(base);
    let logs = base.clone();
    let log = move |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(name))
            .expect("log file")
    };
    let writer = FileWriter::new(sink_options_for_kill(&base.join("out"))).expect("options");
    let mut b = topo_dsl::TopologyBuilder::new("killed");
    b.config_mut().max_spout_pending = Some(200);
    b.set_spout(
        "records",
        // Also called once when the topology is built (to read its outputs): that instance
        // opens the logs but never writes to them.
        move || LoggedSpout {
            next: 0,
            emitted: log("emitted.log"),
            acked: log("acked.log"),
        },
        1,
    );
    b.set_bolt("archive", move || writer.clone().into_sink(), 1)
        .shuffle_grouping("records");
    let cluster = topo_runtime::LocalCluster::new(2).expect("cluster");
    let handle = cluster.submit(b.build().expect("topology"));
    let _ = cluster.block_on(handle.wait_until_idle(Duration::from_secs(60)));
}

/// The must-show for files: the process is killed (SIGKILL) while records are pending
/// in an unwritten batch. Every record acked before the kill is in the files (recovered from
/// `.part` when the sink opens again); the records pending at the kill, replayed as a durable
/// source would, are written too — nothing is lost.
#[test]
fn a_killed_process_loses_no_acked_record() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path();
    let out = base.join("out");
    let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "child_process_writing_until_killed",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, base)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the child");
    let ids = |name: &str| -> Vec<i64> {
        std::fs::read_to_string(base.join(name))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    };
    // Let it write a few batches, then kill it without warning while a batch is pending: not
    // in the instant after a write, when every emitted record may just have been acked.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let acked = ids("acked.log").len();
        if acked >= 1000 && ids("emitted.log").len() >= acked + 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill");
    child.wait().expect("reap");
    let acked: std::collections::BTreeSet<i64> = ids("acked.log").into_iter().collect();
    let emitted: std::collections::BTreeSet<i64> = ids("emitted.log").into_iter().collect();
    assert!(
        acked.len() >= 1000,
        "the child acked {} records",
        acked.len()
    );
    let pending: Vec<i64> = emitted.difference(&acked).copied().collect();
    assert!(
        !pending.is_empty(),
        "records were pending (emitted, not yet written) when the process died"
    );
    assert!(
        names(&out).iter().any(|f| f.ends_with(".part")),
        "the current file was still being written: {:?}",
        names(&out)
    );

    // The sink opens again on the same directory (same task index): `.part` files are recovered.
    let mut t = tester(sink_options_for_kill(&out));
    let files = names(&out);
    assert!(files.iter().all(|f| !f.ends_with(".part")), "{files:?}");
    let written = |dir: &Path| -> (std::collections::BTreeSet<i64>, usize) {
        let mut seen = std::collections::BTreeSet::new();
        let mut torn = 0;
        for f in names(dir) {
            let text = read(dir, &f);
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            for (k, line) in lines.iter().enumerate() {
                match serde_json::from_str::<serde_json::Value>(line.trim_end()) {
                    Ok(v) => {
                        seen.insert(v["ts"].as_i64().expect("ts") - 1_700_000_000);
                    }
                    // Only the last line of a file can be torn (cut by the kill mid-write).
                    Err(e) => {
                        assert_eq!(k, lines.len() - 1, "{f}: a broken line inside: {e}");
                        torn += 1;
                    }
                }
            }
        }
        (seen, torn)
    };
    let (seen, torn) = written(&out);
    let lost: Vec<&i64> = acked.iter().filter(|i| !seen.contains(i)).collect();
    assert!(lost.is_empty(), "acked but not in the files: {lost:?}");

    // Replay what was pending, as the source would, and finish.
    for &i in &pending {
        t.execute(rec(i));
    }
    assert_eq!(t.finish().acked_inputs.len(), pending.len());
    let (seen, _) = written(&out);
    let missing: Vec<&i64> = emitted.iter().filter(|i| !seen.contains(i)).collect();
    assert!(missing.is_empty(), "never written: {missing:?}");
    assert!(names(&out).iter().all(|f| !f.ends_with(".part")));
    eprintln!(
        "acked before the kill: {}; pending at the kill: {}; torn tails: {torn}; files: {}",
        acked.len(),
        pending.len(),
        names(&out).len()
    );
}

/// Emits, in order: a record on `default` (ts, path, status), the same fields in another order on
/// `reordered`, a record lacking `status` on `short`, and one with an extra field on `wide`.
struct ThreeStreams {
    sent: bool,
}

impl topo_runtime::Spout for ThreeStreams {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut topo_runtime::OutputDeclarer) {
        out.declare(FIELDS);
        out.declare_stream("reordered", ["status", "ts", "path"]);
        out.declare_stream("short", ["ts", "path"]);
        out.declare_stream("wide", ["ts", "path", "status", "host"]);
    }

    async fn next_tuple(
        &mut self,
        out: &mut topo_runtime::SpoutCollector<'_, u64>,
    ) -> Result<(), topo_runtime::BoxError> {
        if !self.sent {
            self.sent = true;
            out.emit(values![1, "/a", 200], Some(0));
            out.emit_to("reordered", values![404, 2, "/b"], Some(1));
            out.emit_to("short", values![3, "/c"], Some(2));
            out.emit_to("wide", values![4, "/d", 200, "h"], Some(3));
        }
        Ok(())
    }

    fn is_exhausted(&self) -> bool {
        self.sent
    }
}

#[test]
fn csv_columns_come_from_the_first_record_and_other_field_sets_go_to_error() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut o = opts(tmp.path());
    o.format = FileFormat::Csv;
    o.batch.interval = Duration::from_millis(10);
    let writer = FileWriter::new(o).expect("options");
    let errors = topo_runtime::testing::CaptureBolt::new();
    let mut b = topo_dsl::TopologyBuilder::new("csv-columns");
    b.set_spout("records", || ThreeStreams { sent: false }, 1);
    b.set_bolt("archive", move || writer.clone().into_sink(), 1)
        .shuffle_grouping("records")
        .shuffle_grouping_stream("records", "reordered")
        .shuffle_grouping_stream("records", "short")
        .shuffle_grouping_stream("records", "wide");
    b.set_bolt("errors", errors.factory(), 1)
        .shuffle_grouping_stream("archive", "error");
    let cluster = topo_runtime::LocalCluster::new(2).expect("cluster");
    let handle = cluster.submit(b.build().expect("topology"));
    cluster
        .block_on(handle.wait_until_idle(Duration::from_secs(20)))
        .expect("idle");
    cluster.block_on(handle.stop(Duration::from_secs(5)));
    let files = names(tmp.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        read(tmp.path(), &files[0]),
        "ts,path,status\n1,/a,200\n2,/b,404\n",
        "columns matched by name"
    );
    let mut reasons: Vec<String> = errors
        .tuples()
        .iter()
        .map(|t| t.values[0].as_str().expect("reason").to_string())
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "the record has no field `status` (its fields: ts, path; written: ts, path, status)",
            "the record's fields (ts, path, status, host) differ from the file's columns (ts, path, status)"
        ]
    );
}

// Guards: a batch far from full is written, and its inputs acked, as soon as the task's input
// runs dry — not at `batch.interval`; with nothing pending, a dry input writes nothing.
#[test]
fn a_batch_is_written_when_the_input_runs_dry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut o = opts(tmp.path());
    o.batch.max_records = 20_000;
    o.batch.interval = Duration::from_secs(3600);
    let mut t = tester(o);
    for i in 0..3 {
        assert!(t.execute(rec(i)).acked_inputs.is_empty());
    }
    assert!(names(tmp.path()).is_empty(), "nothing written yet");
    let run = t.input_drained();
    assert_eq!(run.acked_inputs, vec![0, 1, 2]);
    assert_eq!(run.errors, 0);
    let files = names(tmp.path());
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        read(tmp.path(), &files[0]),
        (0..3).map(json_line).collect::<String>()
    );
    let again = t.input_drained();
    assert!(again.acked_inputs.is_empty() && again.failed_inputs.is_empty());
    assert_eq!(names(tmp.path()), files, "nothing pending, nothing written");
    assert_eq!(
        read(tmp.path(), &files[0]),
        (0..3).map(json_line).collect::<String>()
    );
    assert!(t.execute(rec(3)).acked_inputs.is_empty());
    assert_eq!(t.input_drained().acked_inputs, vec![3]);
    assert_eq!(t.finish().acked_inputs, Vec::<usize>::new());
}

/// The gzip members (one per batch written) of a file, and its records.
fn members_and_lines(path: &Path) -> (usize, usize) {
    let data = std::fs::read(path).expect("read file");
    let mut rest: &[u8] = &data;
    let (mut members, mut lines) = (0, 0);
    while !rest.is_empty() {
        let mut d = flate2::bufread::GzDecoder::new(rest);
        let mut s = String::new();
        d.read_to_string(&mut s).expect("a gzip member");
        rest = d.into_inner();
        members += 1;
        lines += s.lines().count();
    }
    (members, lines)
}

/// Runs `n` records through a gzip file sink with acking on and `max_spout_pending` trees at
/// most, to the end (idle, then stopped); returns the batches written (gzip members) and the
/// records in the files. Panics if the topology is not idle within 60 s.
fn run_to_the_end(n: i64, max_spout_pending: usize, max_records: usize) -> (usize, usize) {
    use topo_dsl::TopologyBuilder;
    use topo_runtime::LocalCluster;
    use topo_runtime::testing::VecSpout;

    let tmp = tempfile::tempdir().expect("tempdir");
    let mut o = opts(tmp.path());
    o.gzip = true;
    o.batch.max_records = max_records;
    o.batch.interval = Duration::from_secs(3600);
    let writer = FileWriter::new(o).expect("valid options");
    let spout = VecSpout::new(FIELDS, (0..n).map(rec).collect());
    let mut b = TopologyBuilder::new("file-dry");
    b.config_mut().max_spout_pending = Some(max_spout_pending);
    b.config_mut().worker_threads = 2;
    b.set_spout("source", spout.factory(), 1);
    b.set_bolt("out", move || writer.clone().into_sink(), 1)
        .shuffle_grouping("source");
    let topology = b.build().expect("valid topology");
    assert!(topology.config().acking());
    let cluster = LocalCluster::new(2).expect("cluster");
    let handle = cluster.submit(topology);
    let idle = cluster.block_on(handle.wait_until_idle(Duration::from_secs(60)));
    assert!(
        idle.is_ok(),
        "batch.max_records = {max_records}: not idle within 60 s with batch.interval = 1h: {:?}",
        idle.err().map(|e| e.waited)
    );
    let report = cluster.block_on(handle.stop(Duration::from_secs(5)));
    assert!(report.drained, "{report:#?}");
    assert_eq!(
        spout.acked(),
        vec![1; n as usize],
        "every record acked once"
    );
    assert!(spout.failed().iter().all(|&f| f == 0), "nothing failed");
    let (mut members, mut lines) = (0, 0);
    for name in names(tmp.path()) {
        assert!(name.ends_with(".jsonl.gz"), "{name}: complete files only");
        let (m, l) = members_and_lines(&tmp.path().join(&name));
        members += m;
        lines += l;
    }
    (members, lines)
}

// The must-show: with acking on, the spout stops at `max_spout_pending` unacked trees,
// so a batch of 20,000 never fills; it is written each time the sink's input runs dry, and the
// run ends as one with small batches does instead of waiting out `batch.interval` (an hour here,
// so the old behaviour could not finish within the bound).
#[test]
fn a_big_batch_with_acking_on_finishes_as_a_small_batch_does() {
    const N: i64 = 3000;
    const PENDING: usize = 50;
    let (big_writes, big_lines) = run_to_the_end(N, PENDING, 20_000);
    let (small_writes, small_lines) = run_to_the_end(N, PENDING, 10);
    eprintln!("batches written: {big_writes} (max_records 20000), {small_writes} (max_records 10)");
    assert_eq!(big_lines, N as usize, "every record written once");
    assert_eq!(small_lines, N as usize, "every record written once");
    // A batch holds at most what the pending trees brought; never fewer records than one.
    let fewest = N as usize / PENDING;
    assert!(
        (fewest..=N as usize).contains(&big_writes),
        "{big_writes} batches for {N} records, {PENDING} pending at most"
    );
    assert!(
        (N as usize / 10..=N as usize).contains(&small_writes),
        "{small_writes} batches of at most 10 for {N} records"
    );
}
