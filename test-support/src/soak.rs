//! What the soak tests (`tests/soak_*.rs`) share: a seeded random source for the kill points,
//! `topo run` child processes killed with SIGKILL and started again on the same state directory,
//! the soak under way ([`Soak`]: its directory, time budget, kill points and run going on), an
//! independent reader of the `file` sink's output directory, and the final tally (lost,
//! duplicates).
//!
//! ```text
//!  input (the test's own writer/client) ──► topo run (spout ─► file sink) ──► out/*.jsonl[.part]
//!        ▲ seeded kill points: SIGKILL when the output reaches them, restart     │
//!        └────────────── SinkOutput reads the files incrementally ◄──────────────┘
//! ```

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The environment variable that fixes a soak's seed (printed by every soak) to reproduce a run.
pub const SEED_ENV: &str = "TOPO_SOAK_SEED";

/// The seed of a soak: `TOPO_SOAK_SEED` when set, else a fresh random one; printed either way
/// with the command that reproduces the run.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var(SEED_ENV) {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{SEED_ENV}={s:?} is not a u64: {e}")),
        Err(_) => fastrand::u64(..),
    };
    println!("{test}: seed {seed} (reproduce: {SEED_ENV}={seed} cargo test -p topo --test {test})");
    seed
}

/// `kills` output counts in `lo..hi` at which a run is killed, drawn from `rng`, increasing and
/// at least `(hi - lo) / (4 * kills)` apart, so that each restarted run makes progress first.
pub fn kill_points(rng: &mut fastrand::Rng, kills: usize, lo: usize, hi: usize) -> Vec<usize> {
    assert!(kills > 0 && lo < hi);
    let gap = (hi - lo) / (4 * kills);
    let span = hi - lo - gap * kills;
    let mut points: Vec<usize> = (0..kills).map(|_| rng.usize(..span)).collect();
    points.sort_unstable();
    points
        .iter()
        .enumerate()
        .map(|(i, p)| lo + p + gap * (i + 1))
        .collect()
}

/// The ids of the completed checkpoints in a topology's checkpoint directory (`chk-<id>.json`
/// manifests), oldest first, read independently of the runtime.
pub fn checkpoint_ids(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("chk-")?
                .strip_suffix(".json")?
                .parse()
                .ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// The id of the newest completed checkpoint of `topology` under the state directory `state`
/// (`$TOPO_STATE_DIR`), 0 when there is none: a soak kills a run only once this has moved past
/// where it was when the run started, so that every run makes progress.
pub fn newest_checkpoint(state: &Path, topology: &str) -> u64 {
    checkpoint_ids(&state.join(topology).join("checkpoints"))
        .last()
        .copied()
        .unwrap_or(0)
}

/// Writes `lines` to `path`, one a line: a soak's input file.
pub fn write_lines(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(
        File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    );
    for line in lines {
        writeln!(f, "{line}").expect("write a line of input");
    }
    f.flush().expect("flush the input");
}

/// Polls `cond` every 10 ms until it holds; panics after `timeout` with `what` and `context()`.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One soak under way: its seed and the random source drawn from it, its time budget, its
/// temporary directory (the topology file `soak.toml`, the sink's `out/`, the state directory
/// `state/`, the runs' log `topo.log`), its runs, the run going on and its kill points.
pub struct Soak {
    /// The seed (printed by [`Soak::new`]).
    pub seed: u64,
    /// The random source of the kill points, then of the test's own choices.
    pub rng: fastrand::Rng,
    /// The runs of the soak's topology.
    pub runs: Runs,
    kills: Vec<usize>,
    killed: usize,
    child: Option<Running>,
    started: Instant,
    budget: Duration,
    dir: tempfile::TempDir,
}

impl Soak {
    /// Starts the soak of test binary `test` (its [`seed`] printed): writes `topology(dir)` (of
    /// the soak's temporary directory) to `soak.toml`, prepares runs of it by `bin` and draws
    /// `kills` kill points from the output counts of `n / 20 .. n * 4 / 5` ([`kill_points`]).
    /// The soak may take `budget` in all, counted from now.
    pub fn new(
        test: &str,
        bin: &Path,
        budget: Duration,
        kills: usize,
        n: usize,
        topology: impl FnOnce(&Path) -> String,
    ) -> Soak {
        let started = Instant::now();
        let seed = seed(test);
        let mut rng = fastrand::Rng::with_seed(seed);
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("soak.toml");
        std::fs::write(&file, topology(dir.path())).expect("write the topology");
        let runs = Runs::in_dir(bin, &file, dir.path());
        let kills = kill_points(&mut rng, kills, n / 20, n * 4 / 5);
        Soak {
            seed,
            rng,
            runs,
            kills,
            killed: 0,
            child: None,
            started,
            budget,
            dir,
        }
    }

    /// Sets an environment variable of every run.
    pub fn env(mut self, key: &str, value: &str) -> Soak {
        self.runs = self.runs.env(key, value);
        self
    }

    /// The soak's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The sink's output directory: `out/` of the temporary directory.
    pub fn out(&self) -> PathBuf {
        self.dir().join("out")
    }

    /// The runs' state directory: `state/` of the temporary directory.
    pub fn state(&self) -> PathBuf {
        self.dir().join("state")
    }

    /// The kill points: output counts at which a run is killed, increasing.
    pub fn kill_points(&self) -> &[usize] {
        &self.kills
    }

    /// How many runs were killed so far.
    pub fn killed(&self) -> usize {
        self.killed
    }

    /// Whether kill points are left.
    pub fn killing(&self) -> bool {
        self.killed < self.kills.len()
    }

    /// Starts a run (the run going on).
    pub fn start(&mut self) {
        self.child = Some(self.runs.start());
    }

    /// Starts a run of `topo run <extra..>` (the run going on).
    pub fn start_with(&mut self, extra: &[&str]) {
        self.child = Some(self.runs.start_with(extra));
    }

    /// The kill loop of an exactly-once soak. Starts run 0 with `topo run <args(0)..>`; then,
    /// until every kill point is used, reads the output count with `progress()` and kills the
    /// run going on at its due point ([`kill_if_due`](Soak::kill_if_due)) — only once that run
    /// has completed a checkpoint of its own ([`newest_checkpoint`] of `topology` moved past
    /// where it was), so that every run makes progress and a kill falls anywhere after that.
    /// After each kill `killed(run, count, checkpoint)` is called and run `run + 1` is started
    /// with `args(run + 1)`. Returns the index of the next run (the last one, to the end).
    pub fn kill_after_own_checkpoints(
        &mut self,
        topology: &str,
        args: impl Fn(usize) -> Vec<String>,
        mut progress: impl FnMut() -> usize,
        mut killed: impl FnMut(usize, usize, u64),
    ) -> usize {
        let start = |soak: &mut Soak, run: usize| {
            let extra = args(run);
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            soak.start_with(&extra);
        };
        let mut run = 0;
        start(self, run);
        let mut since = newest_checkpoint(&self.state(), topology);
        while self.killing() {
            let produced = progress();
            self.check_budget(format_args!("{produced} output, run {run}"));
            if newest_checkpoint(&self.state(), topology) > since && self.kill_if_due(produced, 30)
            {
                since = newest_checkpoint(&self.state(), topology);
                killed(run, produced, since);
                run += 1;
                if self.killing() {
                    start(self, run);
                }
                continue;
            }
            self.pause();
        }
        run
    }

    /// Panics when the soak is over its time budget, saying `progress`, the kills so far, the
    /// seed and the end of the runs' log.
    pub fn check_budget(&self, progress: impl std::fmt::Display) {
        assert!(
            self.started.elapsed() < self.budget,
            "soak over its time budget: {progress}, {} kills; seed {}\n{}",
            self.killed,
            self.seed,
            self.runs.log_tail()
        );
    }

    /// When the output count `produced` has reached the next kill point: waits a random
    /// `0..max_pause_ms` ms, kills the run going on with SIGKILL and returns true (no run goes on
    /// then). Else returns false.
    pub fn kill_if_due(&mut self, produced: usize, max_pause_ms: u64) -> bool {
        if !self.killing() || produced < self.kills[self.killed] {
            return false;
        }
        std::thread::sleep(Duration::from_millis(self.rng.u64(..max_pause_ms)));
        self.child.take().expect("a run going on to kill").kill9();
        self.killed += 1;
        true
    }

    /// Between two rounds of a soak's loop: panics if the run going on (if any) has ended on its
    /// own, then sleeps 5 ms.
    pub fn pause(&mut self) {
        if let Some(child) = &mut self.child {
            assert!(
                child.alive(),
                "topo ended on its own; seed {}\n{}",
                self.seed,
                self.runs.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }

    /// Stops the run going on with SIGINT ([`Running::interrupt`]); its exit status.
    pub fn interrupt(&mut self, timeout: Duration) -> std::process::ExitStatus {
        self.child
            .take()
            .expect("a run going on to stop")
            .interrupt(timeout)
    }

    /// Runs `topo run <extra..>` to its end within what is left of the budget
    /// ([`Runs::run_to_end`]).
    pub fn run_to_end(&mut self, extra: &[&str]) {
        let left = self.left();
        self.runs.run_to_end(extra, left);
    }

    /// What is left of the time budget.
    pub fn left(&self) -> Duration {
        self.budget.saturating_sub(self.started.elapsed())
    }

    /// The time since the soak started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Prints the soak's summary: `SOAK <head>, runs <n>, lost <n>, duplicates <n> (<bound>),
    /// torn tails <torn_tails>, <seconds>s, seed <seed>`.
    pub fn summary(
        &self,
        head: impl std::fmt::Display,
        tally: &Tally,
        bound: impl std::fmt::Display,
        torn_tails: usize,
    ) {
        println!(
            "SOAK {head}, runs {}, lost {}, duplicates {} ({bound}), torn tails {torn_tails}, {:.1}s, seed {}",
            self.runs.started(),
            tally.lost,
            tally.duplicates,
            self.elapsed().as_secs_f64(),
            self.seed
        );
    }

    /// The context of a failure: the seed, `what`, and the end of the runs' log.
    pub fn context(&self, what: impl std::fmt::Display) -> String {
        format!("seed {}; {what}\n{}", self.seed, self.runs.log_tail())
    }
}

/// `topo run` child processes of one soak: each run is started with the same topology file,
/// state directory and environment, its standard error appended to `<log>`.
pub struct Runs {
    bin: PathBuf,
    topology: PathBuf,
    state: PathBuf,
    log: PathBuf,
    env: Vec<(String, String)>,
    started: usize,
}

impl Runs {
    /// Runs of `bin run <topology>` with `TOPO_STATE_DIR=<state>`, standard error to `log`.
    pub fn new(bin: &Path, topology: &Path, state: &Path, log: &Path) -> Runs {
        Runs {
            bin: bin.to_path_buf(),
            topology: topology.to_path_buf(),
            state: state.to_path_buf(),
            log: log.to_path_buf(),
            env: Vec::new(),
            started: 0,
        }
    }

    /// Runs of `bin run <topology>` whose state directory (`state/`) and log (`topo.log`) are
    /// in `dir`.
    pub fn in_dir(bin: &Path, topology: &Path, dir: &Path) -> Runs {
        Runs::new(bin, topology, &dir.join("state"), &dir.join("topo.log"))
    }

    /// Sets an environment variable of every run.
    pub fn env(mut self, key: &str, value: &str) -> Runs {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// How many runs were started.
    pub fn started(&self) -> usize {
        self.started
    }

    fn command(&mut self, extra: &[&str]) -> Command {
        self.started += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open the log file");
        use std::io::Write;
        let mut header = &log;
        let _ = writeln!(header, "==== run {} {extra:?}", self.started);
        let mut cmd = Command::new(&self.bin);
        cmd.env("TOPO_STATE_DIR", &self.state)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("run")
            .args(extra)
            .arg(&self.topology)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        cmd
    }

    /// Starts a run that goes on until killed (or stopped).
    pub fn start(&mut self) -> Running {
        self.start_with(&[])
    }

    /// Starts `topo run <extra..>`, which goes on until killed (or stopped).
    pub fn start_with(&mut self, extra: &[&str]) -> Running {
        Running(self.command(extra).spawn().expect("start topo"))
    }

    /// Runs `topo run <extra..>` to its end (at most `timeout`, then it is killed and this
    /// panics); panics if it fails.
    pub fn run_to_end(&mut self, extra: &[&str], timeout: Duration) {
        let mut child = Running(self.command(extra).spawn().expect("start topo"));
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.0.try_wait().expect("poll topo") {
                break status;
            }
            if start.elapsed() > timeout {
                child.kill9();
                panic!(
                    "the last run did not end within {timeout:?}; its log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "the last run failed ({status}); its log:\n{}",
            self.log_tail()
        );
    }

    /// The last 4 KiB of the runs' standard error.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let cut = text.len().saturating_sub(4096);
        let cut = (cut..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text[cut..].to_string()
    }
}

/// A running `topo run` child process; killed (SIGKILL) and reaped if dropped while it runs, so
/// that a failing soak leaves no process behind.
pub struct Running(Child);

impl Running {
    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        self.0.try_wait().expect("poll topo").is_none()
    }

    /// Kills the process with SIGKILL (no chance to clean up) and reaps it; panics if it had
    /// already ended (a soak kills running processes only).
    pub fn kill9(&mut self) {
        if let Some(status) = self.0.try_wait().expect("poll topo") {
            panic!("topo ended on its own before the kill: {status}");
        }
        self.0.kill().expect("SIGKILL topo");
        self.0.wait().expect("reap topo");
    }

    /// Sends SIGINT (a clean stop: drain, then exit) and waits up to `timeout` for the exit
    /// status; panics if the process does not end by then (it is then killed).
    pub fn interrupt(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.0.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) has no memory-safety preconditions; `pid` is our own child.
        let rc = unsafe { libc::kill(pid, libc::SIGINT) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("poll topo") {
                return status;
            }
            if start.elapsed() > timeout {
                self.kill9();
                panic!("topo did not stop within {timeout:?} of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// An independent reader of a `file` sink's directory of JSON-lines files (`*.jsonl`, and the
/// `*.jsonl.part` being written): reads each file incrementally, complete lines only, following
/// a `.part` file when it is renamed to its final name; tells the records apart by one text field.
pub struct SinkOutput {
    dir: PathBuf,
    key: String,
    /// Bytes consumed so far per file (keyed by its final name: without `.part`).
    read: HashMap<String, u64>,
    records: Vec<serde_json::Value>,
    keys: HashSet<String>,
}

impl SinkOutput {
    /// A reader of `dir` (which may not exist yet) whose records are told apart by their text
    /// field `key`.
    pub fn new(dir: &Path, key: &str) -> SinkOutput {
        SinkOutput {
            dir: dir.to_path_buf(),
            key: key.to_string(),
            read: HashMap::new(),
            records: Vec::new(),
            keys: HashSet::new(),
        }
    }

    /// Reads what was appended since the last call; returns how many distinct records (by key)
    /// are there in all: the progress of a run, which repeats do not count.
    pub fn poll(&mut self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return self.keys.len();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".jsonl") || n.ends_with(".jsonl.part"))
            .collect();
        names.sort();
        for name in names {
            let key = name.trim_end_matches(".part").to_string();
            let from = self.read.get(&key).copied().unwrap_or(0);
            // Renamed meanwhile (`.part` to final): read under the other name next time.
            let Ok(mut f) = File::open(self.dir.join(&name)) else {
                continue;
            };
            let mut buf = Vec::new();
            f.seek(SeekFrom::Start(from)).expect("seek");
            f.read_to_end(&mut buf).expect("read an output file");
            let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            for line in buf[..end].split(|&b| b == b'\n') {
                let v: serde_json::Value = serde_json::from_slice(line).unwrap_or_else(|e| {
                    panic!(
                        "{name}: a complete line that is not JSON ({e}): {:?}",
                        String::from_utf8_lossy(line)
                    )
                });
                let k = v[&self.key].as_str().unwrap_or_else(|| {
                    panic!(
                        "{name}: a record without the text field {:?}: {v}",
                        self.key
                    )
                });
                if !self.keys.contains(k) {
                    self.keys.insert(k.to_string());
                }
                self.records.push(v);
            }
            self.read.insert(key, from + end as u64 + 1);
        }
        self.keys.len()
    }

    /// The key of `record` (its text field `key`).
    pub fn key_of<'a>(&self, record: &'a serde_json::Value) -> &'a str {
        record[&self.key].as_str().unwrap_or_default()
    }

    /// The distinct keys read so far.
    pub fn keys(&self) -> &HashSet<String> {
        &self.keys
    }

    /// Every complete record read so far, in file order.
    pub fn records(&self) -> &[serde_json::Value] {
        &self.records
    }

    /// The tally of the records read so far (by their keys) against `input`.
    pub fn tally(&self, input: &[String]) -> Tally {
        Tally::of(
            input,
            self.records.iter().map(|r| self.key_of(r).to_string()),
        )
    }

    /// Bytes after the last complete line of each file: the torn tails of writes cut by a kill
    /// (the sink acks only after its fsync, so no acked record is in one). Call after [`poll`].
    ///
    /// [`poll`]: SinkOutput::poll
    pub fn torn_tails(&self) -> usize {
        let mut torn = 0;
        for (key, read) in &self.read {
            let path = self.dir.join(key);
            let len = std::fs::metadata(&path)
                .or_else(|_| std::fs::metadata(path.with_extension("jsonl.part")))
                .map(|m| m.len())
                .unwrap_or(*read);
            if len > *read {
                torn += 1;
            }
        }
        torn
    }
}

/// What came out of a soak, against what went in.
#[derive(Debug)]
pub struct Tally {
    /// Input records.
    pub records: usize,
    /// Input records never seen in the output.
    pub lost: usize,
    /// The first (in input order) of the lost records, up to 10.
    pub first_missing: Vec<String>,
    /// Output records beyond the first of each input record.
    pub duplicates: usize,
    /// Output records that are no input record at all.
    pub unexpected: Vec<String>,
}

impl Tally {
    /// Compares the keys of the output records with the input keys (each once, in input order).
    pub fn of(input: &[String], output: impl IntoIterator<Item = String>) -> Tally {
        let wanted: HashSet<&str> = input.iter().map(String::as_str).collect();
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut unexpected = Vec::new();
        for key in output {
            if wanted.contains(key.as_str()) {
                *seen.entry(key).or_default() += 1;
            } else if unexpected.len() < 10 {
                unexpected.push(key);
            }
        }
        let missing: Vec<&String> = input.iter().filter(|k| !seen.contains_key(*k)).collect();
        Tally {
            records: input.len(),
            lost: missing.len(),
            first_missing: missing.iter().take(10).map(|s| s.to_string()).collect(),
            duplicates: seen.values().map(|n| n - 1).sum(),
            unexpected,
        }
    }

    /// Panics if there are more duplicates than `bound`, the `what` that may come out again.
    pub fn assert_duplicates_within(&self, bound: usize, what: &str, context: &str) {
        assert!(
            self.duplicates <= bound,
            "{} duplicates, more than the {bound} {what}\n{context}",
            self.duplicates
        );
    }

    /// Panics unless nothing was lost and nothing foreign came out.
    pub fn assert_nothing_lost(&self, context: &str) {
        assert!(
            self.unexpected.is_empty(),
            "records that were never input: {:?}\n{context}",
            self.unexpected
        );
        assert!(
            self.lost == 0,
            "{} of {} records lost; the first: {:?}\n{context}",
            self.lost,
            self.records,
            self.first_missing
        );
    }
}

/// The names of the files a `file` sink published in `dir`, sorted: its regular files, without
/// the `.pending/` directory where an exactly-once sink keeps what no completed checkpoint
/// covers yet (see the `file` sink's docs). Empty if `dir` does not exist.
pub fn published_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}
