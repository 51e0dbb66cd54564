//! Soak of the `file` spout: nothing lost, ever. The test appends N lines to `app.log` while
//! `topo run` (file spout with 2 tasks -> durable `file` sink) reads it, rotates the log by rename
//! (`app.log` -> `app.log.<k>`, a new `app.log`) several times, and kills the process with SIGKILL
//! at seeded random points of its progress (distinct lines output), restarting it on the same
//! state directory each time; a last run reads to the end (`--until-idle`, `until_eof`). The
//! sink's files, read by the test, must hold every line at least once, each with the offset it was
//! written at; the duplicates must stay within the lines output beyond the checkpoints read back
//! after each kill (what a restart reads again). It runs twice: with small bounds (many more
//! batches and waits), and with the defaults a user gets.
//!
//! Seed: printed; `TOPO_SOAK_SEED=<seed> cargo test -p topo --test soak_file` reproduces the kill
//! and rotation points.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use topo_test_support::soak::{SinkOutput, Soak, kill_points};

/// Lines written: far past max_spout_pending (200; by default 1,000), the spout's 256 lines per
/// call and 64 KiB reads, the sink's batches (100; by default 10,000) and many checkpoint
/// intervals.
const N: usize = 100_000;
/// SIGKILLs during the run.
const KILLS: usize = 10;
/// Rotations by rename during the run.
const ROTATIONS: usize = 4;
/// Lines written at most ahead of the output (the writer keeps pace with the topology).
const AHEAD: usize = 20_000;
/// Lines appended per write.
const CHUNK: usize = 500;
/// The longest the whole soak may take.
const BUDGET: Duration = Duration::from_secs(90);

/// The small bounds of the first soak: far more batches, checkpoints and pending waits.
const SMALL_BOUNDS: (&str, &str) = (
    "max_spout_pending = 200",
    r#"batch = { max_records = 100, interval = "10ms" }"#,
);
/// The second soak's: the defaults (1,000 lines pending; the sink's batches of 10,000 records,
/// which the pending lines never fill, so each is written when the sink's input runs dry).
const DEFAULT_BOUNDS: (&str, &str) = ("", "");

fn topology(input: &Path, out: &Path, (config, batch): (&str, &str)) -> String {
    format!(
        r#"
name = "soak-file"

[config]
{config}
message_timeout = "300s"

[spouts.lines]
kind = "file"
parallelism = 2
paths = ["{input}/app.log*"]
include_path = true
poll_interval = "10ms"
checkpoint_interval = "50ms"

[bolts.out]
kind = "file"
dir = "{out}"
prefix = "soak"
{batch}
inputs = [{{ from = "lines" }}]
"#,
        input = input.display(),
        out = out.display()
    )
}

/// The log being written: appends lines, remembers where each went, rotates by rename.
struct Writer {
    dir: std::path::PathBuf,
    file: File,
    ino: u64,
    offset: u64,
    written: usize,
    rotated: usize,
    /// line text -> (inode, offset) of where it was written.
    at: HashMap<String, (u64, u64)>,
}

impl Writer {
    fn new(dir: &Path) -> Writer {
        let (file, ino) = Writer::create(dir);
        Writer {
            dir: dir.to_path_buf(),
            file,
            ino,
            offset: 0,
            written: 0,
            rotated: 0,
            at: HashMap::new(),
        }
    }

    fn create(dir: &Path) -> (File, u64) {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.join("app.log"))
            .expect("create app.log");
        let ino = file.metadata().expect("stat app.log").ino();
        (file, ino)
    }

    /// Appends up to `n` lines, in one write.
    fn write(&mut self, n: usize) {
        let mut text = String::new();
        for _ in 0..n.min(N - self.written) {
            let line = format!("line {:06} of the soak", self.written);
            self.at
                .insert(line.clone(), (self.ino, self.offset + text.len() as u64));
            text.push_str(&line);
            text.push('\n');
            self.written += 1;
        }
        self.file.write_all(text.as_bytes()).expect("append");
        self.offset += text.len() as u64;
    }

    /// `app.log` -> `app.log.<k>`, then a new, empty `app.log`.
    fn rotate(&mut self) {
        self.rotated += 1;
        std::fs::rename(
            self.dir.join("app.log"),
            self.dir.join(format!("app.log.{}", self.rotated)),
        )
        .expect("rotate");
        (self.file, self.ino) = Writer::create(&self.dir);
        self.offset = 0;
    }

    /// One step: a chunk, cut at the next rotation point, where the log is rotated.
    fn step(&mut self, rotations: &[usize]) {
        let next = rotations.get(self.rotated).copied().unwrap_or(N);
        self.write(CHUNK.min(next - self.written));
        if self.written == next && self.rotated < rotations.len() {
            self.rotate();
        }
    }
}

/// The checkpointed offset of each file (by inode), as the next run will read it: from every
/// task's checkpoint file, the newest entry of a file wins.
fn checkpoint(state: &Path) -> HashMap<u64, u64> {
    let mut newest: HashMap<u64, (u64, u64)> = HashMap::new();
    let dir = state.join("soak-file/lines");
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("task-") && name.ends_with(".json")) {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).expect("read a checkpoint");
        let v: serde_json::Value = serde_json::from_str(&text).expect("a JSON checkpoint");
        let written = v["written_ms"].as_u64().expect("written_ms");
        for f in v["files"].as_array().expect("files") {
            let ino = f["ino"].as_u64().expect("ino");
            let offset = f["offset"].as_u64().expect("offset");
            if newest.get(&ino).is_none_or(|(t, _)| *t <= written) {
                newest.insert(ino, (written, offset));
            }
        }
    }
    newest
        .into_iter()
        .map(|(ino, (_, off))| (ino, off))
        .collect()
}

// The soak: N lines, rotations and SIGKILLs during the run, a last run to the end; every line
// comes out at least once, duplicates only from what the checkpoints left to read again.
#[test]
fn file_spout_loses_nothing_across_rotations_and_kills() {
    soak("soak_file", SMALL_BOUNDS);
}

// The same with the bounds a user gets by default.
#[test]
fn file_spout_with_default_bounds_loses_nothing_across_rotations_and_kills() {
    soak("soak_file", DEFAULT_BOUNDS);
}

fn soak(test: &str, bounds: (&str, &str)) {
    let mut soak = Soak::new(
        test,
        Path::new(env!("CARGO_BIN_EXE_topo")),
        BUDGET,
        KILLS,
        N,
        |dir| topology(&dir.join("in"), &dir.join("out"), bounds),
    );
    let input = soak.dir().join("in");
    std::fs::create_dir(&input).expect("input dir");
    let mut rotations = kill_points(&mut soak.rng, ROTATIONS, N / 10, N * 19 / 20);
    rotations.dedup();
    println!(
        "kill points (distinct lines output): {:?}; rotations (lines written): {rotations:?}",
        soak.kill_points()
    );

    let mut writer = Writer::new(&input);
    let mut output = SinkOutput::new(&soak.out(), "line");
    // Output records beyond the checkpoint at each kill: what a restart may output again.
    let mut may_repeat = 0;
    // Per kill: the output so far, the checkpoint read back and what lies beyond it (a failure
    // prints them).
    let mut history = Vec::new();
    soak.start();
    while soak.killing() || writer.written < N {
        let produced = output.poll();
        soak.check_budget(format_args!(
            "{produced} records output, {} lines written",
            writer.written
        ));
        if writer.written < N && (writer.written < produced + AHEAD || !soak.killing()) {
            writer.step(&rotations);
        }
        if soak.kill_if_due(produced, 20) {
            output.poll();
            let cp = checkpoint(&soak.state());
            let beyond = output
                .keys()
                .iter()
                .filter_map(|line| writer.at.get(line))
                .filter(|(ino, off)| *off >= cp.get(ino).copied().unwrap_or(0))
                .count();
            may_repeat += beyond;
            let mut offsets: Vec<_> = cp.into_iter().collect();
            offsets.sort_unstable();
            history.push(format!(
                "kill {}: {} records output, checkpoint (inode, offset) {offsets:?}, {beyond} beyond it",
                soak.killed(),
                output.records().len()
            ));
            // Sometimes the log moves on while nothing reads it.
            if soak.rng.bool() {
                writer.step(&rotations);
            }
            if soak.killing() {
                soak.start();
            }
            continue;
        }
        soak.pause();
    }
    assert_eq!(writer.rotated, rotations.len(), "every rotation happened");
    soak.run_to_end(&["--until-idle", "--set", "spouts.lines.until_eof=true"]);
    output.poll();

    let input_lines: Vec<String> = (0..N).map(|i| format!("line {i:06} of the soak")).collect();
    for r in output.records() {
        let line = r["line"].as_str().expect("a line field");
        if let Some((_, off)) = writer.at.get(line) {
            assert_eq!(r["offset"].as_u64(), Some(*off), "the offset of {line:?}");
        }
    }
    let tally = output.tally(&input_lines);
    // Repeated lines by file: how many, and the range of their offsets.
    let mut times: HashMap<&str, usize> = HashMap::new();
    for r in output.records() {
        *times.entry(output.key_of(r)).or_default() += 1;
    }
    let mut repeated: HashMap<u64, (usize, u64, u64)> = HashMap::new();
    for (line, n) in times.into_iter().filter(|(_, n)| *n > 1) {
        if let Some(&(ino, off)) = writer.at.get(line) {
            let e = repeated.entry(ino).or_insert((0, u64::MAX, 0));
            *e = (e.0 + n - 1, e.1.min(off), e.2.max(off));
        }
    }
    let context = soak.context(format_args!(
        "{tally:?}\n{}\nrepeats by inode (repeats, first offset, last offset): {repeated:?}",
        history.join("\n")
    ));
    tally.assert_nothing_lost(&context);
    tally.assert_duplicates_within(
        may_repeat,
        "records output beyond the checkpoints at the kills",
        &context,
    );
    soak.summary(
        format_args!(
            "file: records {N}, kills {}, rotations {}",
            soak.killed(),
            writer.rotated
        ),
        &tally,
        format_args!("bound {may_repeat}"),
        output.torn_tails(),
    );
}
