//! The word count as users run it: the built-in kinds through `topo run` and through the Rust
//! API, beside a hand-written loop (the one-core limit) and timely dataflow (the reference), on
//! the same corpus file, each run verified word by word.
//!
//! ```text
//!                      corpus file (benches/corpus.rs: /usr/share/{common-licenses,doc}, 50 MiB)
//!                                   │
//!  loop     one thread: read the file, split_whitespace, lowercase, HashMap (foldhash) ─┐
//!  timely   2 workers: each reads half the lines ─ split ─ exchange(hash(word)) ─ count ├─► counts
//!  toml-*   topo run benches/word_count_sink.toml --until-idle:                          │   file(s)
//!  api-*    the same topology built in Rust (TopologyBuilder + the kinds' options):      │     │
//!             file ─shuffle─► split ×2 ─fields(word)─► count ×2 ─shuffle─► file sink ×2 ─┘     │
//!                                                       verify against a naive count ◄────────┘
//! ```
//!
//! ```text
//! cargo bench -p topo --bench user_path                        # 5 runs of each mode, the table
//! cargo bench -p topo --bench user_path -- --runs 3 --modes timely,toml-eo,api-eo
//! cargo bench -p topo --bench user_path -- --rate 50000        # adds the paced mode (p99 latency)
//! cargo bench -p topo --bench user_path -- --wait-idle          # each run on an idle machine
//! cargo bench -p topo --bench user_path -- --help
//! ```
//!
//! Every run is a process of its own, started by this bench (the `topo` binary for the `toml`
//! modes, this bench's own executable re-run with `--child MODE` for the others), so its wall time
//! covers the whole process (start-up and exit included) and its peak RSS (`ru_maxrss` from
//! `wait4`) is its own. Runs alternate between the modes (run 1 of every mode, then run 2, ...),
//! so noise on a shared machine hits every mode alike.
//!
//! # Modes
//! - `loop`: one thread reads the file, splits it on whitespace (`str::split_whitespace`, as
//!   `split` does), lowercases each word as `split` with `lowercase = true` does (`str::to_lowercase`
//!   of a word holding an uppercase letter; an ASCII word in place) and counts in a `HashMap` with
//!   foldhash. What one core does with no framework at all.
//! - `timely`: timely dataflow, 2 workers in this process: each reads its half of the file's lines
//!   (by byte range, cut at line starts), splits and lowercases them like `loop`, exchanges the
//!   words by a hash, and counts them; the workers' counts are collected at the end.
//! - `toml-off`, `toml-alo`, `toml-eo`: `topo run benches/word_count_sink.toml --until-idle`, with
//!   acking off and no checkpoints (`--set config.ackers=0 --set config.checkpoint_interval=0s`),
//!   at-least-once (the defaults: acking, a checkpoint every second), exactly-once
//!   (`--set config.guarantee=exactly_once`). Each run with a fresh `TOPO_STATE_DIR`.
//! - `api-off`, `api-alo`, `api-eo`: the same topology and settings built in Rust with
//!   `TopologyBuilder` and the kinds' options structs (`FileSpout`, `Split`, `Count`,
//!   `FileWriter`), run on a `LocalCluster` until idle, then stopped, as `topo run --until-idle`
//!   does.
//! - `paced` (with `--rate`): `toml-alo` fed at a steady rate. The bench appends the corpus's
//!   first `rate × --paced-secs` lines to a file at `--rate` lines a second while the `file` spout
//!   tails it (`until_eof = false`; woken by the file's change events, its default); `topo run
//!   --http 127.0.0.1:0` serves `/api/metrics`, which the bench polls until every line is acked,
//!   then takes the spout's complete latency (emit to tree acked, over the whole run: p50, p99,
//!   max) and stops `topo` with SIGINT. Words/s is then the rate, not a limit.
//!
//! The default modes are `loop,timely,toml-off,toml-alo,toml-eo,api-alo`, plus `paced` with
//! `--rate`. The `loop`, `timely` and `api` runs use mimalloc, as the `topo` binary does.
//!
//! # Figures
//! Per mode, median [min–max] over the runs: words/s = the corpus's words / the wall time of the
//! whole process; that median as a share of the `timely` median of the same bench run; peak RSS;
//! the CPU the run used (user + system, of its wall time: 2.00 = both cores) and the CPU the
//! machine's other processes used meanwhile (a sign of a disturbed run).
//!
//! # Verification
//! Every run's counts are checked against a naive count of the same text (a `HashMap<String,
//! u64>` of `str::split_whitespace` + `str::to_lowercase`): the total number of words, the number
//! of distinct words and every word's count, or the bench exits non-zero naming the first
//! mismatch. `loop` and `timely` write `word count` lines (a word holds no whitespace); the
//! topologies' file sinks write JSON lines `{"word": .., "count": ..}`, and a word's count is the
//! largest count written for it, so the check holds whether `count` emits each update or only
//! the final counts.
//!
//! Without arguments (as `cargo test --benches` runs it), a quick check of every mode on the
//! first 2,000 lines of the corpus.

// The `topo` binary's allocator, with its options, so that the `loop`, `timely` and `api` runs
// (this executable) and the `toml` runs (the `topo` binary) differ in their code, not their malloc.
#[path = "../src/allocator.rs"]
mod allocator;

mod corpus;
mod machine;
use machine::{TICKS_PER_S, machine_busy_ticks, wait_until_idle};

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use smol_str::SmolStr;

/// Word counts with a fast hasher.
type Counts = HashMap<SmolStr, u64, foldhash::fast::RandomState>;

/// The topology file of the `toml` and `paced` modes: `${CORPUS}` is the file read,
/// `${COUNTS_DIR}` the directory the counts are written to.
const TOPOLOGY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/word_count_sink.toml");
/// The topology's name (the Rust API gives the same, so both keep their state alike).
const TOPOLOGY_NAME: &str = "word-count-sink";

const USAGE: &str = "\
user_path: the word count through the built-in kinds (topo run, Rust API) against a loop and timely

OPTIONS
  --runs N             runs of each mode, alternating between the modes       (default 5)
  --modes A,B,..       loop timely toml-off toml-alo toml-eo api-off api-alo api-eo paced
                       (default loop,timely,toml-off,toml-alo,toml-eo,api-alo, plus paced with --rate)
  --corpus PATH        the corpus file                              (default: built and cached)
  --corpus-mb N        the size of the corpus built                 (default 50)
  --lines N            use only the first N lines of the corpus
  --rate LINES_PER_S   the paced mode: at_least_once fed at this many lines a second
  --paced-secs S       how long the paced mode feeds lines           (default 10)
  --wait-idle          before each run, wait (up to 2 min) until the machine's CPUs are 90% idle
  --help

Without any argument (as `cargo test --benches` runs it): a quick check of every mode on 2000 lines.
";

// ------------------------------------------------------------------------------------------------
// Modes

/// What a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Loop,
    Timely,
    Toml(Guarantee),
    Api(Guarantee),
    Paced,
}

/// The settings a topology runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Guarantee {
    /// No acking, no checkpoints.
    Off,
    /// The defaults: acking, a checkpoint every second.
    AtLeastOnce,
    /// Aligned checkpoints every second, no acking.
    ExactlyOnce,
}

const ALL_MODES: [Mode; 9] = [
    Mode::Loop,
    Mode::Timely,
    Mode::Toml(Guarantee::Off),
    Mode::Toml(Guarantee::AtLeastOnce),
    Mode::Toml(Guarantee::ExactlyOnce),
    Mode::Api(Guarantee::Off),
    Mode::Api(Guarantee::AtLeastOnce),
    Mode::Api(Guarantee::ExactlyOnce),
    Mode::Paced,
];

const DEFAULT_MODES: [Mode; 6] = [
    Mode::Loop,
    Mode::Timely,
    Mode::Toml(Guarantee::Off),
    Mode::Toml(Guarantee::AtLeastOnce),
    Mode::Toml(Guarantee::ExactlyOnce),
    Mode::Api(Guarantee::AtLeastOnce),
];

impl Guarantee {
    fn suffix(self) -> &'static str {
        match self {
            Guarantee::Off => "off",
            Guarantee::AtLeastOnce => "alo",
            Guarantee::ExactlyOnce => "eo",
        }
    }

    /// The `topo run` options that select these settings.
    fn overrides(self) -> &'static [&'static str] {
        match self {
            Guarantee::Off => &[
                "--set",
                "config.ackers=0",
                "--set",
                "config.checkpoint_interval=0s",
            ],
            Guarantee::AtLeastOnce => &[],
            Guarantee::ExactlyOnce => &["--set", "config.guarantee=exactly_once"],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Guarantee::Off => "acking off, no checkpoints",
            Guarantee::AtLeastOnce => "at_least_once, 1 s checkpoints",
            Guarantee::ExactlyOnce => "exactly_once, 1 s checkpoints",
        }
    }
}

impl Mode {
    fn name(self) -> String {
        match self {
            Mode::Loop => "loop".into(),
            Mode::Timely => "timely".into(),
            Mode::Toml(g) => format!("toml-{}", g.suffix()),
            Mode::Api(g) => format!("api-{}", g.suffix()),
            Mode::Paced => "paced".into(),
        }
    }

    fn parse(name: &str) -> Option<Mode> {
        ALL_MODES.into_iter().find(|m| m.name() == name)
    }

    fn describe(self, rate: Option<f64>, paced_lines: Option<usize>) -> String {
        match self {
            Mode::Loop => "one thread, no framework".into(),
            Mode::Timely => "timely dataflow, 2 workers".into(),
            Mode::Toml(g) => format!("topo run, {}", g.describe()),
            Mode::Api(g) => format!("Rust API, {}", g.describe()),
            Mode::Paced => format!(
                "topo run, at_least_once, paced at {} lines/s (the first {} lines)",
                rate.map_or("?".into(), short),
                paced_lines.map_or("?".into(), |n| n.to_string())
            ),
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Options

#[derive(Clone, Debug)]
struct Opts {
    runs: usize,
    modes: Vec<Mode>,
    corpus: Option<PathBuf>,
    corpus_mb: usize,
    lines: Option<usize>,
    rate: Option<f64>,
    paced_secs: f64,
    wait_idle: bool,
}

/// A child run: `--child MODE --corpus PATH --out PATH`.
struct ChildArgs {
    mode: Mode,
    corpus: PathBuf,
    out: PathBuf,
}

enum Args {
    Bench(Opts),
    Child(ChildArgs),
    Launcher,
}

fn parse_args(args: Vec<String>) -> Result<Args, String> {
    let mut o = Opts {
        runs: 5,
        modes: Vec::new(),
        corpus: None,
        corpus_mb: 50,
        lines: None,
        rate: None,
        paced_secs: 10.0,
        wait_idle: false,
    };
    let mut child = None;
    let mut out = None;
    let mut it = args.into_iter();
    fn value(flag: &str, v: Option<String>) -> Result<String, String> {
        v.ok_or_else(|| format!("{flag} needs a value"))
    }
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = value(flag, v)?;
        v.parse()
            .map_err(|_| format!("{flag}: not a valid number: {v:?}"))
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            // `cargo bench` passes `--bench` to every bench binary.
            "--bench" => {}
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--runs" => o.runs = num(&a, it.next())?,
            "--modes" => {
                o.modes = value(&a, it.next())?
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(|m| {
                        Mode::parse(m)
                            .ok_or_else(|| format!("--modes: unknown mode {m:?}\n\n{USAGE}"))
                    })
                    .collect::<Result<_, _>>()?
            }
            "--corpus" => o.corpus = Some(PathBuf::from(value(&a, it.next())?)),
            "--corpus-mb" => o.corpus_mb = num(&a, it.next())?,
            "--lines" => o.lines = Some(num(&a, it.next())?),
            "--rate" => o.rate = Some(num(&a, it.next())?),
            "--paced-secs" => o.paced_secs = num(&a, it.next())?,
            "--wait-idle" => o.wait_idle = true,
            "--child" => {
                let m = value(&a, it.next())?;
                child =
                    Some(Mode::parse(&m).ok_or_else(|| format!("--child: unknown mode {m:?}"))?);
            }
            "--out" => out = Some(PathBuf::from(value(&a, it.next())?)),
            "--launcher" => return Ok(Args::Launcher),
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    if let Some(mode) = child {
        return Ok(Args::Child(ChildArgs {
            mode,
            corpus: o.corpus.ok_or("--child needs --corpus")?,
            out: out.ok_or("--child needs --out")?,
        }));
    }
    if o.runs == 0 || o.corpus_mb == 0 || o.lines == Some(0) {
        return Err("--runs, --corpus-mb and --lines must be at least 1".into());
    }
    if o.rate.is_some_and(|r| r <= 0.0 || !r.is_finite()) {
        return Err("--rate must be a positive number of lines per second".into());
    }
    if o.paced_secs <= 0.0 || !o.paced_secs.is_finite() {
        return Err("--paced-secs must be a positive number of seconds".into());
    }
    if o.modes.is_empty() {
        o.modes = DEFAULT_MODES.to_vec();
        if o.rate.is_some() {
            o.modes.push(Mode::Paced);
        }
    }
    if o.modes.contains(&Mode::Paced) && o.rate.is_none() {
        return Err("the paced mode needs --rate LINES_PER_S".into());
    }
    Ok(Args::Bench(o))
}

// ------------------------------------------------------------------------------------------------
// Tokens: what `split` with `lowercase = true` makes of a text

/// A word as `split` with `lowercase = true` emits it: `str::to_lowercase` when it holds an
/// uppercase letter, else the word itself (ASCII words without a copy).
#[inline]
fn lowercase(word: &str) -> Cow<'_, str> {
    if word.is_ascii() {
        if word.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(word.to_ascii_lowercase())
        } else {
            Cow::Borrowed(word)
        }
    } else if word.chars().any(char::is_uppercase) {
        Cow::Owned(word.to_lowercase())
    } else {
        Cow::Borrowed(word)
    }
}

/// [`lowercase`] into an inline `SmolStr` when it is short (no allocation up to 23 bytes).
#[inline]
fn lowercase_smol(word: &str) -> SmolStr {
    match lowercase(word) {
        Cow::Borrowed(w) => SmolStr::new(w),
        Cow::Owned(w) => SmolStr::from(w),
    }
}

/// The naive count the runs are checked against: every word of `text` (`split_whitespace`),
/// lowercased with `str::to_lowercase`, in a std `HashMap`.
fn naive_count(text: &str) -> HashMap<String, u64> {
    let mut naive: HashMap<String, u64> = HashMap::new();
    for word in text.split_whitespace() {
        *naive.entry(word.to_lowercase()).or_insert(0) += 1;
    }
    naive
}

// ------------------------------------------------------------------------------------------------
// Children: loop, timely, api

fn run_child(c: &ChildArgs) -> Result<(), Box<dyn std::error::Error>> {
    match c.mode {
        Mode::Loop => child_loop(&c.corpus, &c.out),
        Mode::Timely => child_timely(&c.corpus, &c.out),
        Mode::Api(g) => child_api(&c.corpus, &c.out, g),
        other => Err(format!(
            "mode {} does not run as a child of this bench",
            other.name()
        )
        .into()),
    }
}

/// Writes `word count` lines (not synced: the bench reads them from the page cache).
fn write_counts<'a>(
    out: &Path,
    counts: impl IntoIterator<Item = (&'a str, u64)>,
) -> std::io::Result<()> {
    let mut w = BufWriter::new(File::create(out)?);
    for (word, n) in counts {
        writeln!(w, "{word} {n}")?;
    }
    w.flush()
}

/// `loop`: the whole file, one thread.
fn child_loop(corpus: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(corpus)?;
    let mut counts: HashMap<Box<str>, u64, foldhash::fast::RandomState> = HashMap::default();
    // An ASCII word with an uppercase letter is lowercased here, without an allocation.
    let mut buf = String::new();
    for word in text.split_whitespace() {
        let owned;
        let word: &str = if word.is_ascii() {
            if word.bytes().any(|b| b.is_ascii_uppercase()) {
                buf.clear();
                buf.push_str(word);
                buf.make_ascii_lowercase();
                &buf
            } else {
                word
            }
        } else {
            owned = lowercase(word);
            &owned
        };
        match counts.get_mut(word) {
            Some(n) => *n += 1,
            None => {
                counts.insert(word.into(), 1);
            }
        }
    }
    write_counts(out, counts.iter().map(|(w, n)| (&**w, *n)))?;
    Ok(())
}

/// The lines of a file whose first byte lies in `[start, end)`: one worker's share.
struct RangeLines {
    reader: BufReader<File>,
    /// The offset of the next line.
    pos: u64,
    end: u64,
    buf: Vec<u8>,
}

impl RangeLines {
    /// Worker `index` of `peers`: the lines starting in its `1/peers` of the file's bytes.
    fn open(path: &Path, index: usize, peers: usize) -> std::io::Result<RangeLines> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let start = len * index as u64 / peers as u64;
        let end = len * (index as u64 + 1) / peers as u64;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut buf = Vec::new();
        let mut pos = start;
        if start > 0 {
            // The line holding byte `start - 1` belongs to the worker before (a line that starts
            // at `start` has `\n` there, and is ours).
            reader.seek(SeekFrom::Start(start - 1))?;
            pos = start - 1 + reader.read_until(b'\n', &mut buf)? as u64;
        }
        Ok(RangeLines {
            reader,
            pos,
            end,
            buf,
        })
    }
}

impl Iterator for RangeLines {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.pos >= self.end {
            return None;
        }
        self.buf.clear();
        let n = self.reader.read_until(b'\n', &mut self.buf).ok()?;
        if n == 0 {
            return None;
        }
        self.pos += n as u64;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        Some(String::from_utf8_lossy(&self.buf).into_owned())
    }
}

/// `timely`: 2 workers; lines split between them, words exchanged by hash, counted.
fn child_timely(corpus: &Path, out: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use std::cell::RefCell;
    use std::rc::Rc;
    use timely::container::CapacityContainerBuilder;
    use timely::dataflow::channels::pact::{Exchange, Pipeline};
    use timely::dataflow::operators::Operator;
    use timely::dataflow::operators::vec::ToStream;

    const WORKERS: usize = 2;
    let path = corpus.to_path_buf();
    let guards = timely::execute(timely::Config::process(WORKERS), move |worker| {
        let lines = RangeLines::open(&path, worker.index(), worker.peers())
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let counts = Rc::new(RefCell::new(Counts::default()));
        let sink = counts.clone();
        worker.dataflow::<u64, _, _>(move |scope| {
            lines
                .to_stream(scope)
                .unary::<CapacityContainerBuilder<Vec<SmolStr>>, _, _, _>(
                    Pipeline,
                    "split",
                    |_capability, _info| {
                        move |input, output| {
                            input.for_each(|cap, lines: &mut Vec<String>| {
                                let mut session = output.session(&cap);
                                for line in lines.drain(..) {
                                    for word in line.split_whitespace() {
                                        session.give(lowercase_smol(word));
                                    }
                                }
                            });
                        }
                    },
                )
                .sink(
                    Exchange::new(|word: &SmolStr| {
                        foldhash::fast::FixedState::default().hash_one(word.as_str())
                    }),
                    "count",
                    move |(input, _frontier)| {
                        let mut counts = sink.borrow_mut();
                        input.for_each(|_cap, words: &mut Vec<SmolStr>| {
                            for word in words.drain(..) {
                                *counts.entry(word).or_insert(0) += 1;
                            }
                        });
                    },
                );
        });
        while worker.has_dataflows() {
            worker.step_or_park(None);
        }
        std::mem::take(&mut *counts.borrow_mut())
    })?;
    let mut all = Vec::with_capacity(WORKERS);
    for r in guards.join() {
        all.push(r.map_err(|e| format!("a timely worker failed: {e}"))?);
    }
    write_counts(
        out,
        all.iter()
            .flat_map(|c| c.iter().map(|(w, n)| (w.as_str(), *n))),
    )?;
    Ok(())
}

/// `api-*`: the topology of `benches/word_count_sink.toml`, built in Rust through the built-in
/// kinds and their options, run until idle and stopped, as `topo run --until-idle` does.
fn child_api(
    corpus: &Path,
    out: &Path,
    guarantee: Guarantee,
) -> Result<(), Box<dyn std::error::Error>> {
    use topo::{LocalCluster, TopologyBuilder};
    use topo_bolts::words::{Count, CountEmit, CountOptions, Split, SplitOptions};
    use topo_spouts::file::{FileOptions, FileSinkOptions, FileSpout, FileWriter};

    let mut b = TopologyBuilder::new(TOPOLOGY_NAME);
    let config = b.config_mut();
    match guarantee {
        Guarantee::Off => {
            config.ackers = 0;
            config.checkpoint_interval = Duration::ZERO;
        }
        Guarantee::AtLeastOnce => {}
        Guarantee::ExactlyOnce => config.guarantee = topo::Guarantee::ExactlyOnce,
    }
    let lines = FileSpout::new(FileOptions {
        paths: vec![corpus.to_string_lossy().into_owned()],
        until_eof: true,
        ..FileOptions::default()
    })?;
    b.set_spout("lines", move || lines.clone(), 1);
    let split = Split::new(SplitOptions {
        field: "line".into(),
        lowercase: true,
        ..SplitOptions::default()
    })?;
    b.set_bolt("split", move || split.clone(), 2)
        .shuffle_grouping("lines");
    let counts = CountOptions {
        emit: CountEmit::Finish,
        ..CountOptions::default()
    };
    b.set_bolt("count", move || Count::new(counts.clone()), 2)
        .fields_grouping("split", ["word"]);
    let sink = FileWriter::new(FileSinkOptions::new(out))?;
    b.set_bolt("counts", move || sink.clone().into_sink(), 2)
        .shuffle_grouping("count");
    let topology = b.build()?;

    let cluster = LocalCluster::new(topology.config().worker_threads)?;
    let handle = cluster.try_submit(topology, &topo::RunOptions::default())?;
    cluster.block_on(async {
        // As `topo run --until-idle`: every 10 ms, has it failed, is it idle?
        loop {
            if let Some(e) = handle.fatal_error() {
                return Err(format!("the topology failed: {e}"));
            }
            if handle.is_idle() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })?;
    let report = cluster.block_on(handle.stop(Duration::from_secs(30)));
    if !report.drained {
        return Err(format!(
            "stop did not drain: {} trees abandoned, {} tasks aborted",
            report.abandoned_trees, report.aborted_tasks
        )
        .into());
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Running a child process

/// What one run measured.
#[derive(Clone, Debug, Default)]
struct Sample {
    secs: f64,
    maxrss_kib: u64,
    /// The child's CPU time (user + system), s.
    cpu_s: f64,
    /// CPU time the machine's other processes used during the run, s.
    other_cpu_s: f64,
    /// Paced: the spout's complete latency over the run.
    latency: Option<Latency>,
    /// Paced: lines per second the input file was written at.
    fed_lines_per_s: Option<f64>,
}

/// A spout's complete latency (emit to tree acked), µs.
#[derive(Clone, Copy, Debug, Default)]
struct Latency {
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
}

/// What the paced mode saw of the spout `lines`.
struct SpoutFigures {
    acked: u64,
    /// Failed and timed out.
    failed: u64,
    latency: Latency,
}

/// How a child process ended, as `wait4` tells.
struct Ended {
    status: i32,
    /// Peak RSS (`ru_maxrss`), KiB.
    maxrss_kib: u64,
    /// User + system CPU time, s.
    cpu_s: f64,
}

impl Ended {
    fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }

    fn describe(&self) -> String {
        if libc::WIFEXITED(self.status) {
            format!("exit code {}", libc::WEXITSTATUS(self.status))
        } else if libc::WIFSIGNALED(self.status) {
            format!("killed by signal {}", libc::WTERMSIG(self.status))
        } else {
            format!("wait status {}", self.status)
        }
    }
}

/// Waits for the child `pid` with `wait4`, for its status and resource use.
fn wait4(pid: u32) -> std::io::Result<Ended> {
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value (integers and timevals).
    let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `rusage` are valid for writes; `pid` is a child of this process
        // whose `std::process::Child` is never waited on.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut rusage) };
        if r == pid as libc::pid_t {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            return Ok(Ended {
                status,
                maxrss_kib: rusage.ru_maxrss as u64,
                cpu_s: tv(rusage.ru_utime) + tv(rusage.ru_stime),
            });
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A command for the launcher to start: stdin and stdout null, stderr to a file.
#[derive(serde::Serialize, serde::Deserialize)]
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, PathBuf)>,
    stderr: PathBuf,
}

/// `--launcher`: starts each command read from stdin (a JSON [`Launch`] a line), answers
/// `started PID`, waits for it and answers `ended STATUS MAXRSS_KIB CPU_S`.
///
/// The runs are started from this small process rather than from the bench: a process started
/// with `posix_spawn` (or `fork`) from a large one is charged, in its `ru_maxrss`, with the
/// starter's peak RSS at the time of its `exec`, and the bench holds the corpus and the naive
/// count (about 190 MiB).
fn launcher() -> Result<(), Box<dyn std::error::Error>> {
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let l: Launch = serde_json::from_str(&line?)?;
        let child = File::create(&l.stderr).and_then(|stderr| {
            Command::new(&l.program)
                .args(&l.args)
                .envs(l.env)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
        });
        match child {
            Err(e) => writeln!(out, "error cannot start {}: {e}", l.program.display())?,
            Ok(c) => {
                writeln!(out, "started {}", c.id())?;
                out.flush()?;
                let e = wait4(c.id())?;
                writeln!(out, "ended {} {} {}", e.status, e.maxrss_kib, e.cpu_s)?;
            }
        }
        out.flush()?;
    }
    Ok(())
}

/// The bench's side of the launcher process.
struct Launcher {
    process: std::process::Child,
    to: Option<std::process::ChildStdin>,
    from: BufReader<std::process::ChildStdout>,
}

impl Launcher {
    /// Starts the launcher: this executable with `--launcher`. Call before the bench grows.
    fn new() -> Result<Launcher, String> {
        let mut process = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
            .arg("--launcher")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the launcher: {e}"))?;
        let to = process.stdin.take();
        let from = BufReader::new(process.stdout.take().ok_or("no launcher stdout")?);
        Ok(Launcher { process, to, from })
    }

    fn answer(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.from.read_line(&mut line) {
            Ok(0) => Err("the launcher ended".into()),
            Ok(_) => Ok(line.trim_end().to_string()),
            Err(e) => Err(format!("reading from the launcher: {e}")),
        }
    }

    /// Starts `l`; its process id.
    fn start(&mut self, l: &Launch) -> Result<u32, String> {
        let to = self.to.as_mut().ok_or("the launcher is closed")?;
        let json = serde_json::to_string(l).map_err(|e| e.to_string())?;
        writeln!(to, "{json}")
            .and_then(|()| to.flush())
            .map_err(|e| format!("writing to the launcher: {e}"))?;
        let answer = self.answer()?;
        match answer.strip_prefix("started ") {
            Some(pid) => pid.parse().map_err(|_| format!("launcher: {answer}")),
            None => Err(answer),
        }
    }

    /// Waits for the process started last.
    fn wait(&mut self) -> Result<Ended, String> {
        let answer = self.answer()?;
        let bad = || format!("launcher: {answer}");
        let mut f = answer.strip_prefix("ended ").ok_or_else(bad)?.split(' ');
        let mut next = || f.next().ok_or_else(bad);
        Ok(Ended {
            status: next()?.parse().map_err(|_| bad())?,
            maxrss_kib: next()?.parse().map_err(|_| bad())?,
            cpu_s: next()?.parse().map_err(|_| bad())?,
        })
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        // Its stdin closed, the launcher ends.
        self.to = None;
        let _ = self.process.wait();
    }
}

/// The last 60 lines of a run's stderr.
fn last_lines(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// The command of one unpaced run writing its counts to `out`.
fn command(mode: Mode, corpus: &Path, out: &Path, state: &Path, stderr: &Path) -> Launch {
    let path = |p: &Path| p.to_string_lossy().into_owned();
    let mut env = vec![("TOPO_STATE_DIR".to_string(), state.to_path_buf())];
    let (program, args) = match mode {
        Mode::Toml(g) => {
            env.push(("CORPUS".into(), corpus.to_path_buf()));
            env.push(("COUNTS_DIR".into(), out.to_path_buf()));
            let mut args = vec!["run".to_string(), TOPOLOGY.into(), "--until-idle".into()];
            args.extend(g.overrides().iter().map(|s| s.to_string()));
            (PathBuf::from(env!("CARGO_BIN_EXE_topo")), args)
        }
        _ => (
            std::env::current_exe().unwrap_or_default(),
            vec![
                "--child".into(),
                mode.name(),
                "--corpus".into(),
                path(corpus),
                "--out".into(),
                path(out),
            ],
        ),
    };
    Launch {
        program,
        args,
        env,
        stderr: stderr.to_path_buf(),
    }
}

/// Runs one unpaced run in a child process; its counts land in `out`.
fn run_one(
    launcher: &mut Launcher,
    mode: Mode,
    corpus: &Path,
    dir: &Path,
    out: &Path,
) -> Result<Sample, String> {
    let stderr = dir.join("stderr.txt");
    let launch = command(mode, corpus, out, &dir.join("state"), &stderr);
    let busy0 = machine_busy_ticks();
    let start = Instant::now();
    launcher.start(&launch)?;
    let ended = launcher.wait()?;
    let secs = start.elapsed().as_secs_f64();
    let busy = (machine_busy_ticks().saturating_sub(busy0)) as f64 / TICKS_PER_S;
    if !ended.success() {
        return Err(format!(
            "{} failed ({}); its last output:\n{}",
            mode.name(),
            ended.describe(),
            last_lines(&stderr)
        ));
    }
    Ok(Sample {
        secs,
        maxrss_kib: ended.maxrss_kib,
        cpu_s: ended.cpu_s,
        other_cpu_s: (busy - ended.cpu_s).max(0.0),
        ..Sample::default()
    })
}

// ------------------------------------------------------------------------------------------------
// The paced mode

/// A GET of `path` from `addr`; the body of a 200 answer.
fn http_get(addr: &str, path: &str) -> Result<String, String> {
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("GET {path}: {e}"))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| format!("GET {path}: {e}"))?;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: no HTTP answer"))?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "GET {path}: {}",
            head.lines().next().unwrap_or_default()
        ));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(format!("GET {path}: a chunked answer"));
    }
    Ok(body.to_string())
}

/// The spout `lines`' figures in an `/api/metrics` body: (acked, failed + timed out, complete
/// latency), over its tasks (one).
fn spout_figures(body: &str) -> Result<SpoutFigures, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("/api/metrics is not JSON: {e}"))?;
    let lines = v["components"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == "lines"))
        .ok_or("/api/metrics has no component `lines`")?;
    let tasks = lines["tasks"]
        .as_array()
        .filter(|t| t.len() == 1)
        .ok_or("/api/metrics: `lines` should have one task")?;
    let t = &tasks[0];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let lat = &t["complete_latency"];
    Ok(SpoutFigures {
        acked: n(&t["acked"]),
        failed: n(&t["failed"]) + n(&t["timed_out"]),
        latency: Latency {
            p50_us: n(&lat["p50_us"]),
            p99_us: n(&lat["p99_us"]),
            max_us: n(&lat["max_us"]),
        },
    })
}

/// The paced run: `topo run` tails `input`, which this bench writes `text` to at `rate` lines a
/// second; once every line is acked, the spout's complete latency is read and `topo` is
/// stopped with SIGINT (a graceful stop). `count` emits every update, so the latency covers the
/// sink's durable write of each word's count; the counts land in `out`.
fn run_paced(
    launcher: &mut Launcher,
    text: &str,
    lines: usize,
    rate: f64,
    dir: &Path,
    out: &Path,
) -> Result<Sample, String> {
    let input = dir.join("input.txt");
    let file = File::create(&input).map_err(|e| format!("{}: {e}", input.display()))?;
    let stderr = dir.join("stderr.txt");
    let launch = Launch {
        program: PathBuf::from(env!("CARGO_BIN_EXE_topo")),
        args: [
            "run",
            TOPOLOGY,
            "--http",
            "127.0.0.1:0",
            "--set",
            "spouts.lines.until_eof=false",
            // The input never ends (SIGINT stops it, with a savepoint that keeps the counts for
            // a resumed run): each count goes to the sink as it changes.
            "--set",
            "bolts.count.emit=update",
        ]
        .map(String::from)
        .to_vec(),
        env: vec![
            ("CORPUS".into(), input.clone()),
            ("COUNTS_DIR".into(), out.to_path_buf()),
            ("TOPO_STATE_DIR".into(), dir.join("state")),
        ],
        stderr: stderr.clone(),
    };
    let busy0 = machine_busy_ticks();
    let start = Instant::now();
    let pid = launcher.start(&launch)?;
    let kill = |signal| {
        // SAFETY: kill(2) of the run's process, which has not been waited for yet.
        unsafe { libc::kill(pid as libc::pid_t, signal) };
    };
    let fed = feed(text, lines, rate, file, &stderr, start);
    let Ok(Fed {
        latency,
        lines_per_s,
        acked_at,
    }) = fed
    else {
        kill(libc::SIGKILL);
        let _ = launcher.wait();
        return Err(fed.err().unwrap_or_default());
    };
    kill(libc::SIGINT);
    let ended = launcher.wait()?;
    let busy = (machine_busy_ticks().saturating_sub(busy0)) as f64 / TICKS_PER_S;
    if !ended.success() {
        return Err(format!(
            "topo failed ({}); its last output:\n{}",
            ended.describe(),
            last_lines(&stderr)
        ));
    }
    Ok(Sample {
        secs: acked_at.as_secs_f64(),
        maxrss_kib: ended.maxrss_kib,
        cpu_s: ended.cpu_s,
        other_cpu_s: (busy - ended.cpu_s).max(0.0),
        latency: Some(latency),
        fed_lines_per_s: Some(lines_per_s),
    })
}

/// What [`feed`] measured.
struct Fed {
    latency: Latency,
    /// The rate the lines were written at.
    lines_per_s: f64,
    /// When the last line was acked, since the run's start.
    acked_at: Duration,
}

/// The paced run's side of the bench: waits for `topo`'s HTTP address on its stderr, writes the
/// first `lines` lines of `text` to `file` at `rate` lines a second (every millisecond, the lines
/// due by then), then polls `/api/metrics` until every line is acked. The spout's complete
/// latency, the rate the lines were written at, and when the last was acked.
fn feed(
    text: &str,
    lines: usize,
    rate: f64,
    mut file: File,
    stderr: &Path,
    start: Instant,
) -> Result<Fed, String> {
    // The address is on the line `live figures: http://ADDR/metrics ...`.
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = loop {
        let out = std::fs::read_to_string(stderr).unwrap_or_default();
        let found = out
            .lines()
            .filter(|l| l.starts_with("live figures:"))
            .find_map(|l| l.split("http://").nth(1)?.split('/').next());
        if let Some(addr) = found {
            break addr.to_string();
        }
        if Instant::now() > deadline {
            return Err(format!(
                "topo did not print its HTTP address within 60 s; its output:\n{}",
                last_lines(stderr)
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    };

    let ends: Vec<usize> = text
        .split_inclusive('\n')
        .take(lines)
        .scan(0, |end, line| {
            *end += line.len();
            Some(*end)
        })
        .collect();
    let from = Instant::now();
    let (mut written, mut written_bytes) = (0, 0);
    while written < lines {
        let due = ((from.elapsed().as_secs_f64() * rate) as usize).min(lines);
        if due > written {
            let end = ends[due - 1];
            file.write_all(&text.as_bytes()[written_bytes..end])
                .map_err(|e| format!("writing the input: {e}"))?;
            (written, written_bytes) = (due, end);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let fed_lines_per_s = lines as f64 / from.elapsed().as_secs_f64();
    if !text[..written_bytes].ends_with('\n') {
        // The spout holds a last line without `\n` until the file is finished, which a tailed
        // file never is.
        file.write_all(b"\n")
            .map_err(|e| format!("writing the input: {e}"))?;
    }
    drop(file);

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let SpoutFigures {
            acked,
            failed,
            latency,
        } = spout_figures(&http_get(&addr, "/api/metrics")?)?;
        if failed > 0 {
            return Err(format!("{failed} lines failed or timed out"));
        }
        if acked == lines as u64 {
            return Ok(Fed {
                latency,
                lines_per_s: fed_lines_per_s,
                acked_at: start.elapsed(),
            });
        }
        if acked > lines as u64 {
            return Err(format!("{acked} lines acked, {lines} written"));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{acked} of {lines} lines acked 120 s after the last was written; topo's output:\n{}",
                last_lines(stderr)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------------------------------------------------------------
// Verification

/// The expected counts: the naive count, also sorted by word (the first mismatch is the
/// first in that order).
struct Expected {
    counts: HashMap<String, u64>,
    sorted: Vec<(String, u64)>,
    total: u64,
}

impl Expected {
    fn of(text: &str) -> Expected {
        let counts = naive_count(text);
        let mut sorted: Vec<(String, u64)> = counts.iter().map(|(w, n)| (w.clone(), *n)).collect();
        sorted.sort_unstable();
        let total = counts.values().sum();
        Expected {
            counts,
            sorted,
            total,
        }
    }
}

/// Reads what a run wrote: `word count` lines (`loop`, `timely`: each word once) or the
/// topology's JSON lines in `out` (a word's largest count).
fn read_counts(mode: Mode, out: &Path) -> Result<HashMap<String, u64>, String> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    match mode {
        Mode::Loop | Mode::Timely => {
            let text =
                std::fs::read_to_string(out).map_err(|e| format!("{}: {e}", out.display()))?;
            for line in text.lines() {
                let (word, n) = line
                    .rsplit_once(' ')
                    .ok_or_else(|| format!("bad line {line:?}"))?;
                let n: u64 = n.parse().map_err(|_| format!("bad line {line:?}"))?;
                if counts.insert(word.to_string(), n).is_some() {
                    return Err(format!(
                        "word {word:?} is listed twice (counted by two workers)"
                    ));
                }
            }
        }
        _ => {
            #[derive(serde::Deserialize)]
            struct Record<'a> {
                #[serde(borrow)]
                word: Cow<'a, str>,
                count: u64,
            }
            let entries = std::fs::read_dir(out).map_err(|e| format!("{}: {e}", out.display()))?;
            let mut files = 0;
            for entry in entries {
                let path = entry.map_err(|e| e.to_string())?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default();
                if !path.is_file() || name.starts_with('.') {
                    continue;
                }
                if !name.ends_with(".jsonl") {
                    return Err(format!("unexpected file in the sink's directory: {name}"));
                }
                files += 1;
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                for line in text.lines() {
                    let r: Record = serde_json::from_str(line)
                        .map_err(|e| format!("{name}: bad record {line:?}: {e}"))?;
                    match counts.get_mut(r.word.as_ref()) {
                        Some(n) => *n = (*n).max(r.count),
                        None => {
                            counts.insert(r.word.into_owned(), r.count);
                        }
                    }
                }
            }
            if files == 0 {
                return Err(format!("no file written in {}", out.display()));
            }
        }
    }
    Ok(counts)
}

/// Checks the counts against the naive count: totals, distinct words, every word.
fn verify(counts: &HashMap<String, u64>, expected: &Expected) -> Result<(), String> {
    let total: u64 = counts.values().sum();
    let mut problems = Vec::new();
    if total != expected.total {
        problems.push(format!(
            "total words {total}, naive count {}",
            expected.total
        ));
    }
    if counts.len() != expected.counts.len() {
        problems.push(format!(
            "distinct words {}, naive count {}",
            counts.len(),
            expected.counts.len()
        ));
    }
    let first = expected
        .sorted
        .iter()
        .find(|(w, n)| counts.get(w) != Some(n))
        .map(|(w, n)| {
            format!(
                "first mismatch: word {w:?} counted {}, naive count {n}",
                counts.get(w).map_or("never".to_string(), |c| c.to_string())
            )
        })
        .or_else(|| {
            let mut extra: Vec<&String> = counts
                .keys()
                .filter(|w| !expected.counts.contains_key(*w))
                .collect();
            extra.sort_unstable();
            extra
                .first()
                .map(|w| format!("first mismatch: word {w:?} counted, not in the naive count"))
        });
    problems.extend(first);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

// ------------------------------------------------------------------------------------------------
// The bench

/// `n` in short form: `999`, `12.3 k`, `4.56 M`.
fn short(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.1} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

/// `median [min–max]` of `v`, each formatted by `f`.
fn spread(v: &[f64], f: impl Fn(f64) -> String) -> String {
    let (lo, hi) = min_max(v);
    format!("{} [{}–{}]", f(median(v)), f(lo), f(hi))
}

/// The corpus file the runs read, the text, and the directory that lives as long as the bench
/// (holding a shortened copy with `--lines`).
fn prepare_corpus(o: &Opts, scratch: &Path) -> Result<(PathBuf, String), String> {
    let (text, path) = match &o.corpus {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|e| format!("--corpus {}: {e}", p.display()))?,
            p.clone(),
        ),
        None => {
            let (text, path) = corpus::load_or_build(o.corpus_mb);
            (
                text,
                path.ok_or("the corpus could not be written to the target directory")?,
            )
        }
    };
    match o.lines {
        None => Ok((path, text)),
        Some(n) => {
            let end = text
                .split_inclusive('\n')
                .take(n)
                .map(str::len)
                .sum::<usize>();
            let part = text[..end].to_string();
            let path = scratch.join(format!("corpus-{n}-lines.txt"));
            std::fs::write(&path, &part).map_err(|e| format!("{}: {e}", path.display()))?;
            Ok((path, part))
        }
    }
}

fn bench(o: &Opts) -> Result<(), String> {
    // Before the corpus and the naive count make this process large (see `launcher`).
    let mut launcher = Launcher::new()?;
    let scratch = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let (corpus, text) = prepare_corpus(o, scratch.path())?;
    let t = Instant::now();
    let expected = Expected::of(&text);
    let lines = text.split_inclusive('\n').count();
    eprintln!(
        "corpus: {} — {:.1} MiB, {lines} lines, {} words, {} distinct (naive count in {:.2} s)",
        corpus.display(),
        text.len() as f64 / (1 << 20) as f64,
        expected.total,
        expected.counts.len(),
        t.elapsed().as_secs_f64()
    );
    // The paced mode feeds the first `rate × paced_secs` lines.
    let paced = o.rate.map(|rate| {
        let n = ((rate * o.paced_secs) as usize).clamp(1, lines);
        let end: usize = text.split_inclusive('\n').take(n).map(str::len).sum();
        (rate, n, Expected::of(&text[..end]))
    });
    eprintln!("topo: {}", env!("CARGO_BIN_EXE_topo"));
    eprintln!(
        "modes: {} — {} runs each, alternating",
        o.modes
            .iter()
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", "),
        o.runs
    );

    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); o.modes.len()];
    for run in 1..=o.runs {
        for (i, &mode) in o.modes.iter().enumerate() {
            if o.wait_idle {
                wait_until_idle();
            }
            let dir = tempfile::tempdir_in(scratch.path()).map_err(|e| e.to_string())?;
            let out = match mode {
                Mode::Loop | Mode::Timely => dir.path().join("counts.txt"),
                _ => dir.path().join("out"),
            };
            let (sample, expected, words) = match mode {
                Mode::Paced => {
                    let (rate, n, ref exp) =
                        *paced.as_ref().ok_or("the paced mode needs --rate")?;
                    let s = run_paced(&mut launcher, &text, n, rate, dir.path(), &out)
                        .map_err(|e| format!("{} run {run}: {e}", mode.name()))?;
                    (s, exp, exp.total)
                }
                _ => {
                    let s = run_one(&mut launcher, mode, &corpus, dir.path(), &out)
                        .map_err(|e| format!("run {run}: {e}"))?;
                    (s, &expected, expected.total)
                }
            };
            let counts = read_counts(mode, &out)
                .map_err(|e| format!("{} run {run}: reading its counts: {e}", mode.name()))?;
            verify(&counts, expected)
                .map_err(|e| format!("{} run {run}: wrong counts: {e}", mode.name()))?;
            let mut line = format!(
                "[run {run}/{}] {:<9} {:>9} words/s  {:>6.2} s  peak RSS {:>4} MiB  CPU {:.2}  others' CPU {:.2}",
                o.runs,
                mode.name(),
                short(words as f64 / sample.secs),
                sample.secs,
                sample.maxrss_kib >> 10,
                sample.cpu_s / sample.secs,
                sample.other_cpu_s / sample.secs,
            );
            if let (Some(l), Some(fed)) = (sample.latency, sample.fed_lines_per_s) {
                let _ = write!(
                    line,
                    "  fed {} lines/s, complete latency p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
                    short(fed),
                    l.p50_us as f64 / 1e3,
                    l.p99_us as f64 / 1e3,
                    l.max_us as f64 / 1e3
                );
            }
            eprintln!("{line}  verified");
            samples[i].push(sample);
        }
    }

    let words_per_s = |i: usize| -> Vec<f64> {
        let words = match o.modes[i] {
            Mode::Paced => paced.as_ref().map_or(0, |p| p.2.total),
            _ => expected.total,
        } as f64;
        samples[i].iter().map(|s| words / s.secs).collect()
    };
    let timely = o
        .modes
        .iter()
        .position(|m| *m == Mode::Timely)
        .map(|i| median(&words_per_s(i)));
    let mib = |k: f64| format!("{:.0}", k / 1024.0);
    let two = |v: f64| format!("{v:.2}");
    let ms = |us: f64| format!("{:.2}", us / 1e3);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "\n{} words ({} distinct), {} runs of each mode, median [min–max]\n",
        expected.total,
        expected.counts.len(),
        o.runs
    );
    let _ = writeln!(
        table,
        "| mode | what | words/s | vs timely | peak RSS, MiB | CPU (2.00 = 2 cores) | others' CPU | complete latency p99, ms |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|---|");
    for (i, &mode) in o.modes.iter().enumerate() {
        let s = &samples[i];
        let wps = words_per_s(i);
        let ratio = match (mode, timely) {
            (Mode::Paced, _) | (_, None) => "–".to_string(),
            (_, Some(t)) => format!("{:.0}%", 100.0 * median(&wps) / t),
        };
        let rss: Vec<f64> = s.iter().map(|s| s.maxrss_kib as f64).collect();
        let cpu: Vec<f64> = s.iter().map(|s| s.cpu_s / s.secs).collect();
        let others: Vec<f64> = s.iter().map(|s| s.other_cpu_s / s.secs).collect();
        let p99: Vec<f64> = s
            .iter()
            .filter_map(|s| s.latency.map(|l| l.p99_us as f64))
            .collect();
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            mode.name(),
            mode.describe(o.rate, paced.as_ref().map(|p| p.1)),
            spread(&wps, short),
            ratio,
            spread(&rss, mib),
            spread(&cpu, two),
            spread(&others, two),
            if p99.is_empty() {
                "–".to_string()
            } else {
                spread(&p99, ms)
            }
        );
    }
    println!("{table}");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; `cargo test --benches` runs a bench with no argument: then
    // only check, quickly, that every mode counts right.
    let smoke_test = args.is_empty();
    let parsed = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let result = match parsed {
        Args::Child(c) => run_child(&c).map_err(|e| e.to_string()),
        Args::Launcher => launcher().map_err(|e| e.to_string()),
        Args::Bench(o) => {
            let o = if smoke_test {
                eprintln!(
                    "no arguments: a quick check of every mode on 2000 lines (--help for the bench)"
                );
                Opts {
                    runs: 1,
                    lines: Some(2000),
                    rate: Some(2000.0),
                    paced_secs: 0.5,
                    modes: ALL_MODES.to_vec(),
                    ..o
                }
            } else {
                o
            };
            bench(&o)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
