//! Word-count benchmark: throughput, complete latency and peak memory of a
//! `lines -> split -> fields(word) -> count` topology over a ~50 MB text corpus.
//!
//! ```text
//! cargo bench -p topo-runtime --bench word_count -- --mode ack-off --parallelism 2
//! cargo bench -p topo-runtime --bench word_count -- --mode ack-on --parallelism 2 --runs 5
//! cargo bench -p topo-runtime --bench word_count -- --mode ack-on --parallelism 2 --rate 200000
//! cargo bench -p topo-runtime --bench word_count -- --mode baseline
//! cargo bench -p topo-runtime --bench word_count -- --help
//! ```
//!
//! One process runs one mode once, so the peak memory it reports (`VmHWM`, process-wide) belongs to
//! that mode. `--runs N` re-runs this binary N times as child processes and prints the median,
//! minimum and maximum of each figure.
//!
//! The topology: `lines` (1 spout task) -shuffle-> `split` (N tasks) -fields(word)-> `count`
//! (N tasks), on a [`LocalCluster`] of `--workers` threads (2 by default).
//!
//! - The corpus is built once from the plain-text files under `/usr/share/common-licenses` and
//!   `/usr/share/doc` (sorted path order; compressed, non-UTF-8 and NUL-containing files skipped)
//!   and cached in the cargo target directory. It is held in memory, leaked to `'static`, and the
//!   spout emits each line as a zero-copy `SmolStr::new_static` view (`--copy-lines` copies it
//!   instead), so the figures measure the runtime rather than a reader.
//! - The spout emits 16 lines per `next_tuple` call (`--lines-per-call`): every call costs the
//!   spout task's loop a notice-queue poll, a control check, clock reads and a flush check, and
//!   with one line per call that loop limits throughput (about 40% lower here); more than 16
//!   gains nothing. With acking on it stops early at `max_spout_pending`.
//! - `split` splits on ASCII whitespace and ASCII-lowercases each word into an inline `SmolStr`
//!   (no heap allocation for words of up to 23 bytes); `count` keeps a `HashMap<SmolStr, u64>`
//!   with foldhash.
//! - Wall time runs from `submit` until the last count task has ended (the topology is idle and
//!   stopped, so every word has been counted); words/s = words / wall time.
//!
//! Every run ends with a check against a naive single-threaded count of the same text (a
//! `HashMap<String, u64>` filled from `str::split_ascii_whitespace` + `to_ascii_lowercase`): the
//! total number of words, the number of distinct words, the sum over count tasks of their distinct
//! words (the fields grouping must send each word to exactly one task) and every word's count must
//! be equal, or the run fails.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smol_str::SmolStr;
use topo_runtime::TopologyBuilder;
use topo_runtime::{
    BasicBolt, BasicCollector, BoxError, Config, LocalCluster, OutputDeclarer, Spout,
    SpoutCollector, TaskContext, Tuple, Value, values,
};

/// Word counts, with a fast (non-DoS-resistant) hasher.
type Counts = HashMap<SmolStr, u64, foldhash::fast::RandomState>;

/// Longest string `SmolStr` keeps inline (no heap allocation).
const INLINE_CAP: usize = 23;

const USAGE: &str = "\
word_count benchmark

OPTIONS
  --mode MODE            baseline | ack-off | ack-on            (default ack-off)
  --parallelism N        tasks of split and of count            (default 1)
  --workers N            runtime worker threads                 (default 2)
  --rate LINES_PER_S     pace the spout with a token bucket     (default: unpaced)
  --lines-per-call N     lines emitted per next_tuple call      (default 16)
  --max-pending N|none   max_spout_pending (ack-on)             (default: Config default, 1000)
  --batch-size N         Config.batch_size                      (default: Config default, 256)
  --queue-capacity N     Config.queue_capacity                  (default: Config default, 8192)
  --copy-lines           copy each line into an owned string (one heap allocation per line
                         longer than 23 bytes) instead of emitting a zero-copy view of the corpus
  --lines N              use only the first N lines of the corpus
  --passes N             the spout emits the text N times       (default 1)
  --corpus-mb N          corpus size to build                   (default 50)
  --no-verify            skip the check against the naive count
  --runs N               run N times, each in its own process, and summarise
  --wait-idle            with --runs: before each run, wait (up to 2 min) until the other
                         processes use under 10% of the CPUs; re-run (up to N extra times) a
                         run during which they used over 5% of one CPU (plus 50 ms)
  --help

Without any argument (as `cargo test --all-targets` runs it): a quick check on 2000 lines.
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Baseline,
    AckOff,
    AckOn,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline",
            Mode::AckOff => "ack-off",
            Mode::AckOn => "ack-on",
        }
    }
}

#[derive(Clone, Debug)]
struct Opts {
    mode: Mode,
    parallelism: usize,
    workers: usize,
    rate: Option<f64>,
    lines_per_call: usize,
    max_pending: Option<Option<usize>>,
    batch_size: Option<usize>,
    queue_capacity: Option<usize>,
    copy_lines: bool,
    lines: Option<usize>,
    passes: usize,
    corpus_mb: usize,
    verify: bool,
    runs: Option<usize>,
    wait_idle: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        mode: Mode::AckOff,
        parallelism: 1,
        workers: 2,
        rate: None,
        lines_per_call: 16,
        max_pending: None,
        batch_size: None,
        queue_capacity: None,
        copy_lines: false,
        lines: None,
        passes: 1,
        corpus_mb: 50,
        verify: true,
        runs: None,
        wait_idle: false,
    };
    let mut args = std::env::args().skip(1);
    fn num<T: std::str::FromStr>(flag: &str, v: Option<String>) -> Result<T, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{flag}: not a valid number: {v:?}"))
    }
    while let Some(a) = args.next() {
        match a.as_str() {
            // `cargo bench` passes `--bench` to every bench binary.
            "--bench" => {}
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--mode" => {
                o.mode = match args.next().as_deref() {
                    Some("baseline") => Mode::Baseline,
                    Some("ack-off") => Mode::AckOff,
                    Some("ack-on") => Mode::AckOn,
                    other => return Err(format!("--mode: unknown mode {other:?}\n\n{USAGE}")),
                }
            }
            "--parallelism" => o.parallelism = num(&a, args.next())?,
            "--workers" => o.workers = num(&a, args.next())?,
            "--rate" => o.rate = Some(num(&a, args.next())?),
            "--lines-per-call" => o.lines_per_call = num(&a, args.next())?,
            "--max-pending" => {
                o.max_pending = Some(match args.next() {
                    Some(v) if v == "none" => None,
                    v => Some(num(&a, v)?),
                })
            }
            "--batch-size" => o.batch_size = Some(num(&a, args.next())?),
            "--queue-capacity" => o.queue_capacity = Some(num(&a, args.next())?),
            "--copy-lines" => o.copy_lines = true,
            "--lines" => o.lines = Some(num(&a, args.next())?),
            "--passes" => o.passes = num(&a, args.next())?,
            "--corpus-mb" => o.corpus_mb = num(&a, args.next())?,
            "--no-verify" => o.verify = false,
            "--runs" => o.runs = Some(num(&a, args.next())?),
            "--wait-idle" => o.wait_idle = true,
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    if o.parallelism == 0 || o.workers == 0 || o.lines_per_call == 0 || o.passes == 0 {
        return Err(
            "--parallelism, --workers, --lines-per-call and --passes must be at least 1".into(),
        );
    }
    if o.rate.is_some_and(|r| r <= 0.0 || !r.is_finite()) {
        return Err("--rate must be a positive number of lines per second".into());
    }
    Ok(o)
}

// ------------------------------------------------------------------------------------------------
// Corpus

/// The builder of the corpus, shared with the `user_path` bench of `topo`.
#[path = "../../benches/corpus.rs"]
mod corpus;
/// The machine's CPU figures, shared with the `user_path` bench.
#[path = "../../benches/machine.rs"]
mod machine;
use machine::{TICKS_PER_S, machine_busy_ticks, wait_until_idle};

/// The corpus, from the cache or built (and cached). Leaked: it lives as long as the process, so
/// the spout can hand out `'static` views of its lines.
fn load_corpus(mb: usize) -> &'static str {
    Box::leak(corpus::load_or_build(mb).0.into_boxed_str())
}

/// The first `lines` lines of `text` (all of it if `None`).
fn first_lines(text: &'static str, lines: Option<usize>) -> &'static str {
    let Some(n) = lines else { return text };
    let mut end = 0;
    for _ in 0..n {
        match text[end..].find('\n') {
            Some(i) => end += i + 1,
            None => return text,
        }
    }
    &text[..end]
}

// ------------------------------------------------------------------------------------------------
// The work: split and count, shared by the bolts and the baseline

/// The ASCII-lowercase form of `word`, inline (no allocation) when it is at most 23 bytes long.
#[inline]
fn lowercase(word: &str) -> SmolStr {
    if !word.bytes().any(|b| b.is_ascii_uppercase()) {
        return SmolStr::new(word);
    }
    if word.len() > INLINE_CAP {
        return SmolStr::from(word.to_ascii_lowercase());
    }
    let mut buf = [0u8; INLINE_CAP];
    let buf = &mut buf[..word.len()];
    buf.copy_from_slice(word.as_bytes());
    buf.make_ascii_lowercase();
    // ASCII lowercasing maps ASCII bytes to ASCII bytes and leaves the others alone.
    SmolStr::new_inline(std::str::from_utf8(buf).expect("still UTF-8"))
}

#[inline]
fn count_word(counts: &mut Counts, word: &SmolStr) {
    match counts.get_mut(word.as_str()) {
        Some(n) => *n += 1,
        None => {
            counts.insert(word.clone(), 1);
        }
    }
}

/// Paces the spout: `rate` tokens (lines) a second, at most `burst` saved up.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(rate: f64, burst: f64) -> TokenBucket {
        TokenBucket {
            rate,
            burst,
            tokens: 0.0,
            last: Instant::now(),
        }
    }

    /// How many whole tokens are available now (at most `max`).
    fn available(&mut self, max: usize) -> usize {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        (self.tokens as usize).min(max)
    }

    fn consume(&mut self, n: usize) {
        self.tokens -= n as f64;
    }
}

/// Emits the text line by line, `passes` times. A line's message id (acking on) is its byte
/// offset in the text plus the pass times the text's length.
struct LineSpout {
    text: &'static str,
    pos: usize,
    passes_left: usize,
    lines_per_call: usize,
    copy_lines: bool,
    tracked: bool,
    max_pending: Option<usize>,
    bucket: Option<TokenBucket>,
    rate: Option<f64>,
    failed: Arc<AtomicU64>,
}

impl Spout for LineSpout {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["line"]);
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        self.max_pending = ctx.config().max_spout_pending;
        // Up to 5 ms of tokens saved: the runtime sleeps about 1 ms between calls that emit
        // nothing, and a bucket shallower than that sleep would lose rate.
        self.bucket = self
            .rate
            .map(|r| TokenBucket::new(r, (r * 0.005).max(self.lines_per_call as f64)));
        Ok(())
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        let mut n = self.lines_per_call;
        if let Some(b) = &mut self.bucket {
            n = b.available(n);
        }
        let mut sent = 0;
        while sent < n && !self.is_exhausted() {
            if self.pos >= self.text.len() {
                self.pos = 0;
                self.passes_left -= 1;
            }
            if self.tracked && self.max_pending.is_some_and(|m| out.pending() >= m) {
                break;
            }
            let rest = &self.text[self.pos..];
            let len = rest.find('\n').unwrap_or(rest.len());
            let line = &rest[..len];
            let offset = (self.passes_left * self.text.len() + self.pos) as u64;
            self.pos += len + 1;
            let line = if self.copy_lines {
                SmolStr::new(line)
            } else {
                SmolStr::new_static(line)
            };
            if self.tracked {
                out.emit(values![line], offset);
            } else {
                out.emit(values![line], None);
            }
            sent += 1;
        }
        if let Some(b) = &mut self.bucket {
            b.consume(sent);
        }
        Ok(())
    }

    fn fail(&mut self, _offset: u64) {
        // Not replayed: the run then fails its check, which is the point.
        self.failed.fetch_add(1, Relaxed);
    }

    fn is_exhausted(&self) -> bool {
        self.passes_left <= 1 && self.pos >= self.text.len()
    }
}

/// Splits a line into lowercase words.
struct Split;

impl BasicBolt for Split {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["word"]);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        for word in input.str_field("line")?.split_ascii_whitespace() {
            out.emit(values![lowercase(word)]);
        }
        Ok(())
    }
}

/// What the count tasks hand over when they end.
#[derive(Default)]
struct CountReport {
    counts: Vec<Counts>,
    ended: Vec<Instant>,
}

/// Counts the words the fields grouping sends this task.
struct Count {
    counts: Counts,
    report: Arc<Mutex<CountReport>>,
}

impl BasicBolt for Count {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        match input.field("word")? {
            Value::Str(word) => {
                count_word(&mut self.counts, word);
                Ok(())
            }
            other => Err(format!("word is {}, not a string", other.type_name()).into()),
        }
    }

    fn cleanup(&mut self) {
        let ended = Instant::now();
        let mut r = self.report.lock().unwrap_or_else(|e| e.into_inner());
        r.ended.push(ended);
        r.counts.push(std::mem::take(&mut self.counts));
    }
}

// ------------------------------------------------------------------------------------------------
// Running

/// CPU time used by this process (`/proc/self/stat` utime + stime), in clock ticks.
fn own_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

/// The process's peak resident set size (`VmHWM`), in KiB.
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// What one run measured.
struct Outcome {
    elapsed: Duration,
    counts: Vec<Counts>,
    fields: Vec<(&'static str, String)>,
}

#[inline(never)] // a frame of its own in profiles
fn run_baseline(text: &str, passes: usize) -> Outcome {
    let start = Instant::now();
    let mut counts = Counts::default();
    for _ in 0..passes {
        for line in text.split('\n') {
            for word in line.split_ascii_whitespace() {
                count_word(&mut counts, &lowercase(word));
            }
        }
    }
    Outcome {
        elapsed: start.elapsed(),
        counts: vec![counts],
        fields: Vec::new(),
    }
}

fn run_topology(o: &Opts, text: &'static str) -> Result<Outcome, Box<dyn std::error::Error>> {
    let defaults = Config::default();
    let config = Config {
        ackers: usize::from(o.mode == Mode::AckOn),
        max_spout_pending: o.max_pending.unwrap_or(defaults.max_spout_pending),
        worker_threads: o.workers,
        batch_size: o.batch_size.unwrap_or(defaults.batch_size),
        queue_capacity: o.queue_capacity.unwrap_or(defaults.queue_capacity),
        ..defaults
    };
    let failed = Arc::new(AtomicU64::new(0));
    let report = Arc::new(Mutex::new(CountReport::default()));

    let mut b = TopologyBuilder::new("word-count-bench");
    b.config(config.clone());
    let (tracked, passes, lines_per_call, copy_lines, rate, spout_failed) = (
        o.mode == Mode::AckOn,
        o.passes,
        o.lines_per_call,
        o.copy_lines,
        o.rate,
        failed.clone(),
    );
    b.set_spout(
        "lines",
        move || LineSpout {
            text,
            pos: 0,
            passes_left: passes,
            lines_per_call,
            copy_lines,
            tracked,
            max_pending: None,
            bucket: None,
            rate,
            failed: spout_failed.clone(),
        },
        1,
    );
    b.set_bolt("split", || Split, o.parallelism)
        .shuffle_grouping("lines");
    let r = report.clone();
    b.set_bolt(
        "count",
        move || Count {
            counts: Counts::default(),
            report: r.clone(),
        },
        o.parallelism,
    )
    .fields_grouping("split", ["word"]);
    let topology = b.build()?;

    let cluster = LocalCluster::new(config.worker_threads)?;
    let start = Instant::now();
    let handle = cluster.submit(topology);
    cluster
        .block_on(handle.wait_until_idle(Duration::from_secs(1800)))
        .map_err(|e| format!("the topology did not finish: {e}"))?;
    let idle = start.elapsed();
    let stopped = cluster.block_on(handle.stop(Duration::from_secs(60)));
    let report = std::mem::take(&mut *report.lock().unwrap_or_else(|e| e.into_inner()));
    // Every word is counted once the last count task has drained its queue and ended.
    let ended = report.ended.iter().max().ok_or("no count task reported")?;
    let elapsed = ended.duration_since(start);
    if !stopped.drained {
        return Err(format!(
            "stop did not drain: {} trees abandoned, {} tasks aborted",
            stopped.abandoned_trees, stopped.aborted_tasks
        )
        .into());
    }

    let m = &stopped.metrics;
    let mut fields = Vec::new();
    let spout = m.component("lines").ok_or("no spout metrics")?;
    let lat = spout.tasks[0].complete_latency;
    fields.push(("idle_s", format!("{:.3}", idle.as_secs_f64())));
    fields.push(("spout_emitted", spout.emitted().to_string()));
    fields.push(("spout_failed", failed.load(Relaxed).to_string()));
    fields.push(("spout_timed_out", spout.timed_out().to_string()));
    fields.push(("p50_us", lat.p50_us.to_string()));
    fields.push(("p99_us", lat.p99_us.to_string()));
    fields.push(("max_us", lat.max_us.to_string()));
    for c in &m.components {
        let busy: Duration = c.tasks.iter().map(|t| t.busy).sum();
        let bp: Duration = c.tasks.iter().map(|t| t.backpressure).sum();
        eprintln!(
            "  {:<8} tasks {} emitted {:>10} executed {:>10} acked {:>10} failed {} busy {:>8.3}s backpressure {:>8.3}s",
            c.id,
            c.tasks.len(),
            c.emitted(),
            c.executed(),
            c.acked(),
            c.failed(),
            busy.as_secs_f64(),
            bp.as_secs_f64()
        );
    }
    if spout.failed() > 0 || spout.timed_out() > 0 {
        return Err(format!(
            "{} lines failed, {} timed out",
            spout.failed(),
            spout.timed_out()
        )
        .into());
    }
    Ok(Outcome {
        elapsed,
        counts: report.counts,
        fields,
    })
}

/// Checks the counts against a naive single-threaded count of the same text (`passes` times).
fn verify(text: &str, passes: u64, counts: &[Counts]) -> Result<(u64, usize), String> {
    let start = Instant::now();
    let mut naive: HashMap<String, u64> = HashMap::new();
    for word in text.split_ascii_whitespace() {
        *naive.entry(word.to_ascii_lowercase()).or_insert(0) += 1;
    }
    for n in naive.values_mut() {
        *n *= passes;
    }
    let naive_total: u64 = naive.values().sum();
    let total: u64 = counts.iter().flat_map(|c| c.values()).sum();
    let distinct_sum: usize = counts.iter().map(|c| c.len()).sum();
    let mut merged: HashMap<&str, u64> = HashMap::with_capacity(naive.len());
    for c in counts {
        for (w, n) in c {
            *merged.entry(w.as_str()).or_insert(0) += n;
        }
    }
    if total != naive_total {
        return Err(format!("total words {total}, naive count {naive_total}"));
    }
    if merged.len() != naive.len() {
        return Err(format!(
            "distinct words {}, naive count {}",
            merged.len(),
            naive.len()
        ));
    }
    if distinct_sum != naive.len() {
        return Err(format!(
            "count tasks hold {distinct_sum} words together, but there are {} distinct words: \
             the fields grouping sent a word to two tasks",
            naive.len()
        ));
    }
    if let Some((w, n)) = naive
        .iter()
        .find(|(w, n)| merged.get(w.as_str()) != Some(n))
    {
        return Err(format!(
            "word {w:?}: counted {:?}, naive count {n}",
            merged.get(w.as_str())
        ));
    }
    eprintln!(
        "verified against the naive count in {:.2}s: {naive_total} words, {} distinct",
        start.elapsed().as_secs_f64(),
        naive.len()
    );
    Ok((naive_total, naive.len()))
}

fn run_once(o: &Opts) -> Result<(), Box<dyn std::error::Error>> {
    let corpus = load_corpus(o.corpus_mb);
    let text = first_lines(corpus, o.lines);
    let lines = text.split_terminator('\n').count() * o.passes;
    let words = text.split_ascii_whitespace().count() * o.passes;
    eprintln!(
        "text: {:.1} MiB, {} lines, {} words; {} pass(es)",
        text.len() as f64 / (1 << 20) as f64,
        lines / o.passes,
        words / o.passes,
        o.passes
    );
    eprintln!(
        "sizes: Value {} B, Values {} B, Tuple {} B",
        std::mem::size_of::<Value>(),
        std::mem::size_of::<topo_runtime::Values>(),
        std::mem::size_of::<Tuple>()
    );
    let hwm_before = vm_hwm_kib();
    let (machine0, own0) = (machine_busy_ticks(), own_busy_ticks());
    let outcome = match o.mode {
        Mode::Baseline => run_baseline(text, o.passes),
        Mode::AckOff | Mode::AckOn => run_topology(o, text)?,
    };
    // CPU time other processes used during the run (includes the stop and the thread start-up;
    // 10 ms resolution): a sign that the figures were disturbed.
    let own_cpu = own_busy_ticks().saturating_sub(own0) as f64 / TICKS_PER_S;
    let other_cpu =
        (machine_busy_ticks().saturating_sub(machine0) as f64 / TICKS_PER_S - own_cpu).max(0.0);
    let hwm = vm_hwm_kib();
    let secs = outcome.elapsed.as_secs_f64();
    if o.verify {
        verify(text, o.passes as u64, &outcome.counts)?;
    }
    let mut line = format!(
        "RESULT mode={} parallelism={} workers={} rate={} lines_per_call={} max_pending={} \
         batch={} copy_lines={} passes={} bytes={} lines={lines} words={words} secs={secs:.4} \
         words_per_s={:.0} lines_per_s={:.0} vmhwm_kib={hwm} vmhwm_before_run_kib={hwm_before} \
         own_cpu_s={own_cpu:.2} other_cpu_s={other_cpu:.2} cpu_util={:.2}",
        o.mode.name(),
        o.parallelism,
        o.workers,
        o.rate.map_or("none".to_string(), |r| format!("{r:.0}")),
        o.lines_per_call,
        match o.max_pending {
            None => "default".to_string(),
            Some(None) => "none".to_string(),
            Some(Some(n)) => n.to_string(),
        },
        o.batch_size
            .map_or("default".to_string(), |b| b.to_string()),
        o.copy_lines,
        o.passes,
        text.len(),
        words as f64 / secs,
        lines as f64 / secs,
        // Of the CPUs the run could use: one thread for the baseline, the workers otherwise.
        own_cpu
            / secs
            / if o.mode == Mode::Baseline {
                1.0
            } else {
                o.workers as f64
            },
    );
    for (k, v) in &outcome.fields {
        line.push_str(&format!(" {k}={v}"));
    }
    println!("{line}");
    Ok(())
}

/// Runs this binary `runs` times (without `--runs`) and prints median, min and max of the figures.
fn run_many(runs: usize, wait_idle: bool) -> Result<(), Box<dyn std::error::Error>> {
    let exe = std::env::current_exe()?;
    let mut args: Vec<String> = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        if a == "--runs" {
            it.next();
        } else if a != "--bench" && a != "--wait-idle" {
            args.push(a);
        }
    }
    let mut results: Vec<Vec<(String, String)>> = Vec::new();
    let mut attempts = 0;
    let mut disturbed = 0;
    while results.len() < runs {
        let i = results.len();
        attempts += 1;
        if wait_idle {
            wait_until_idle();
        }
        let mut child = Command::new(&exe)
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no child stdout")?;
        let mut result = None;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("[run {}/{runs}] {line}", i + 1);
            if let Some(rest) = line.strip_prefix("RESULT ") {
                result = Some(
                    rest.split_whitespace()
                        .filter_map(|kv| kv.split_once('='))
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                );
            }
        }
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("run {} failed: {status}", i + 1).into());
        }
        let result: Vec<(String, String)> = result.ok_or("a run printed no RESULT line")?;
        let get = |k: &str| {
            result
                .iter()
                .find(|(rk, _)| rk == k)
                .and_then(|(_, v)| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        // Over 5% of one CPU, beyond the 10 ms resolution of the figures and the odd daemon.
        let disturbed_by = get("other_cpu_s") - 0.05 * get("secs");
        if wait_idle && disturbed_by > 0.05 && attempts < 2 * runs {
            disturbed += 1;
            println!(
                "[run {}/{runs}] disturbed: other processes used {:.2} s of CPU; running it again",
                i + 1,
                get("other_cpu_s")
            );
            continue;
        }
        results.push(result);
    }
    let keys = [
        "words_per_s",
        "lines_per_s",
        "secs",
        "p50_us",
        "p99_us",
        "max_us",
        "vmhwm_kib",
        "vmhwm_before_run_kib",
        "other_cpu_s",
        "cpu_util",
    ];
    let first = &results[0];
    let fixed: Vec<String> = first
        .iter()
        .filter(|(k, _)| {
            [
                "mode",
                "parallelism",
                "workers",
                "rate",
                "lines_per_call",
                "max_pending",
                "batch",
                "copy_lines",
                "passes",
                "words",
            ]
            .contains(&k.as_str())
        })
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut out = format!(
        "SUMMARY runs={runs} discarded_disturbed={disturbed} {}",
        fixed.join(" ")
    );
    for k in keys {
        let mut vals: Vec<f64> = results
            .iter()
            .filter_map(|r| r.iter().find(|(rk, _)| rk == k))
            .filter_map(|(_, v)| v.parse().ok())
            .collect();
        if vals.is_empty() {
            continue;
        }
        vals.sort_by(f64::total_cmp);
        let n = vals.len();
        let median = if n % 2 == 1 {
            vals[n / 2]
        } else {
            (vals[n / 2 - 1] + vals[n / 2]) / 2.0
        };
        out.push_str(&format!(
            " {k}={} [{}..{}]",
            fmt_num(median),
            fmt_num(vals[0]),
            fmt_num(vals[n - 1])
        ));
    }
    println!("{out}");
    std::io::stdout().flush()?;
    Ok(())
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 || v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test` (e.g. `--all-targets`) runs bench targets with no
    // argument at all: then only check, quickly, that the topology counts right.
    let smoke_test = std::env::args().len() == 1;
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let opts = if smoke_test {
        eprintln!("no arguments: smoke test on 2000 lines (see --help for the benchmark)");
        Opts {
            mode: Mode::AckOn,
            parallelism: 2,
            lines: Some(2000),
            ..opts
        }
    } else {
        opts
    };
    let result = match opts.runs {
        Some(n) if n > 0 => run_many(n, opts.wait_idle),
        _ => run_once(&opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
