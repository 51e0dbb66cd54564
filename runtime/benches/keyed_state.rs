//! Keyed-state benchmark: what a [`KeyedState`] costs the task per update, and the pause a
//! checkpoint costs it, at a given number of keys (500,000 = one `count` task of the 1 M-key run
//! of BENCHMARKS.md "State and exactly-once").
//!
//! ```text
//! cargo bench -p topo-runtime --bench keyed_state -- --keys 500000 --runs 5
//! ```
//!
//! One bolt holds a `KeyedState<SmolStr, i64>` of keys `k0`, `k1`, ... and is driven through
//! [`BoltTester`] (the runtime's real snapshot and checkpoint write). The bolt times its own work:
//! - `insert`: every key set once, into an empty state (ns per key);
//! - `update, first change`: every key incremented once (`get_mut`), in a shuffled order, right
//!   after a checkpoint: the first change of each key in a checkpoint interval (the key is noted
//!   as changed; a segment the checkpoint shared is taken back);
//! - `update, again`: every key incremented again in the same interval: the plain lookup;
//! - `paired`: the two update passes again, alternating with the same passes over one
//!   `hashbrown::HashMap` with the same bookkeeping (each entry's interval, the changed keys
//!   listed) — what a keyed state was before it was split into segments — 5 rounds a run: the
//!   two side by side on the same machine state, and the ratio of the two per round;
//! - `pause`: the time `snapshot` takes (`Snapshot::put_keyed`), for a whole snapshot, a delta of
//!   every key, a delta of a tenth of them, and one of 10,000.
//!
//! Each figure is the median over `--runs` runs in this process (each on a fresh state), with
//! the minimum and maximum. Without arguments (as `cargo test --all-targets` runs it): one quick
//! run on 20,000 keys. After the last checkpoint a restored instance must hold every key's
//! count, or the run fails.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smol_str::SmolStr;
use topo_runtime::testing::BoltTester;
use topo_runtime::{
    BasicBolt, BasicCollector, BoxError, KeyedState, OutputDeclarer, Restore, Snapshot, Tuple,
    values,
};

const USAGE: &str = "\
keyed_state benchmark

OPTIONS
  --keys N     keys in the state                     (default 500000)
  --runs N     runs, each on a fresh state           (default 5)
  --help

Without any argument (as `cargo test --all-targets` runs it): one run on 20000 keys.
";

/// What the bolt measured, by figure name, in order of first appearance.
type Log = Arc<Mutex<Vec<(String, Duration)>>>;

fn record(log: &Log, what: &str, took: Duration) {
    log.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((what.to_string(), took));
}

/// The bolt: its input is a command, `(op, n)`; it times its own work into the log.
struct Counter {
    keys: Arc<Vec<SmolStr>>,
    /// A shuffled visiting order of the keys.
    order: Arc<Vec<u32>>,
    counts: KeyedState<SmolStr, i64>,
    log: Log,
    /// What the next snapshot is called in the log.
    next_snapshot: String,
}

impl BasicBolt for Counter {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["done"]);
    }

    fn has_state(&self) -> bool {
        true
    }

    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let op = input.str_field("op")?;
        let n = input.field("n")?.as_i64().ok_or("n: an integer")? as usize;
        let start = Instant::now();
        match op {
            "insert" => {
                for k in self.keys.iter() {
                    self.counts.insert(k.clone(), 1);
                }
            }
            "update" => {
                // `n` keys of the shuffled order (all of them when n is their number).
                for &i in self.order.iter().take(n) {
                    let k = &self.keys[i as usize];
                    match self.counts.get_mut(k) {
                        Some(c) => *c += 1,
                        None => return Err(format!("key {k} missing").into()),
                    }
                }
            }
            "check" => {
                // After `insert`, two whole passes, and partial passes of `n` and of 10,000.
                let mut want = vec![3i64; self.keys.len()];
                for &i in self.order.iter().take(n) {
                    want[i as usize] += 1;
                }
                for &i in self.order.iter().take(10_000) {
                    want[i as usize] += 1;
                }
                if self.counts.len() != self.keys.len() {
                    return Err(format!("{} keys restored", self.counts.len()).into());
                }
                for (k, w) in self.keys.iter().zip(want) {
                    if self.counts.get(k) != Some(&w) {
                        return Err(format!("{k}: {:?}, not {w}", self.counts.get(k)).into());
                    }
                }
                return Ok(());
            }
            "name" => {
                // Names the next snapshot (no work timed).
                self.next_snapshot = input.str_field("what")?.to_string();
                return Ok(());
            }
            other => return Err(format!("unknown op {other}").into()),
        }
        let what = input.str_field("what")?;
        record(&self.log, what, start.elapsed());
        Ok(())
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        let start = Instant::now();
        snap.put_keyed("counts", &mut self.counts);
        record(&self.log, &self.next_snapshot, start.elapsed());
        Ok(())
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        from.keyed("counts", &mut self.counts)
    }
}

/// Rounds of the paired comparison in each run.
const PAIRED_ROUNDS: usize = 5;

/// The reference of the paired figures: what a keyed state was before its segments — one hash
/// map (foldhash), each entry with the interval it last changed in, the changed keys listed.
#[derive(Debug)]
struct OneMap {
    map: hashbrown::HashMap<SmolStr, (i64, u32), foldhash::fast::RandomState>,
    changed: Vec<SmolStr>,
    epoch: u32,
}

impl OneMap {
    fn new(keys: &[SmolStr]) -> OneMap {
        let mut map = hashbrown::HashMap::default();
        for k in keys {
            map.insert(k.clone(), (1, 1));
        }
        OneMap {
            map,
            changed: Vec::new(),
            epoch: 1,
        }
    }

    /// A checkpoint: a new interval, the changed keys handed over.
    fn new_interval(&mut self) {
        self.epoch += 1;
        std::hint::black_box(std::mem::take(&mut self.changed));
    }

    /// Every key incremented once, in `order`, noted as changed once per interval.
    fn update_all(&mut self, keys: &[SmolStr], order: &[u32]) -> Result<(), String> {
        let epoch = self.epoch;
        for &i in order {
            let key = &keys[i as usize];
            let (k, (v, e)) = self
                .map
                .get_key_value_mut(key)
                .ok_or_else(|| format!("key {key} missing"))?;
            if *e != epoch {
                *e = epoch;
                self.changed.push(k.clone());
            }
            *v += 1;
        }
        Ok(())
    }
}

/// A shuffled order of `0..n` (xorshift, fixed seed).
fn shuffled(n: usize) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

/// One run on a fresh state; the figures (ns per key for passes, ms for pauses).
fn run(keys: &Arc<Vec<SmolStr>>, order: &Arc<Vec<u32>>) -> Result<Vec<(String, f64)>, String> {
    let n = keys.len();
    let log: Log = Arc::default();
    let make = {
        let (keys, order, log) = (keys.clone(), order.clone(), log.clone());
        move || Counter {
            keys: keys.clone(),
            order: order.clone(),
            counts: KeyedState::new(),
            log: log.clone(),
            next_snapshot: String::new(),
        }
    };
    let mut t = BoltTester::basic(make.clone(), ["op", "n", "what"]);
    let cmd = |t: &mut BoltTester, op: &str, count: usize, what: &str| -> Result<(), String> {
        let r = t.execute(values![op, count as i64, what]);
        if r.acked {
            Ok(())
        } else {
            Err(format!("{op} {count} failed"))
        }
    };
    let checkpoint = |t: &mut BoltTester, what: &str| {
        cmd(t, "name", 0, what)?;
        t.checkpoint().map(|(c, _)| c)
    };
    cmd(&mut t, "insert", n, "insert")?;
    checkpoint(&mut t, "pause: whole snapshot")?;
    cmd(&mut t, "update", n, "update, first change")?;
    cmd(&mut t, "update", n, "update, again")?;
    checkpoint(&mut t, "pause: delta of every key")?;
    cmd(&mut t, "update", n / 10, "-")?;
    checkpoint(&mut t, "pause: delta of a tenth")?;
    cmd(&mut t, "update", 10_000.min(n), "-")?;
    let last = checkpoint(&mut t, "pause: delta of 10,000")?;

    // A restored instance holds every key's count: 1 + 2 whole passes + the partial ones.
    drop(t);
    let mut back = BoltTester::restore_basic(make, ["op", "n", "what"], &last);
    cmd(&mut back, "check", n / 10, "-")?;

    // Paired with the reference, pass by pass: one map with the same bookkeeping.
    let mut reference = OneMap::new(keys);
    for _ in 0..PAIRED_ROUNDS {
        checkpoint(&mut back, "-")?;
        reference.new_interval();
        let start = Instant::now();
        reference.update_all(keys, order)?;
        record(&log, "paired: one map, first change", start.elapsed());
        cmd(&mut back, "update", n, "paired: update, first change")?;
        let start = Instant::now();
        reference.update_all(keys, order)?;
        record(&log, "paired: one map, again", start.elapsed());
        cmd(&mut back, "update", n, "paired: update, again")?;
    }
    std::hint::black_box(&reference);

    let figures = log.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(figures
        .into_iter()
        .filter(|(w, _)| w != "-")
        .map(|(w, d)| {
            let v = if w.starts_with("pause") {
                d.as_secs_f64() * 1e3
            } else {
                d.as_secs_f64() * 1e9 / n as f64
            };
            (w, v)
        })
        .collect())
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut keys_n = 500_000usize;
    let mut runs = 5usize;
    let mut quick = true;
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Option<usize> {
            let v = args.next().and_then(|v| v.parse().ok());
            if v.is_none() {
                eprintln!("{name} needs a number\n\n{USAGE}");
            }
            v
        };
        match a.as_str() {
            "--keys" => match num("--keys") {
                Some(v) if v > 0 => keys_n = v,
                _ => return ExitCode::FAILURE,
            },
            "--runs" => match num("--runs") {
                Some(v) if v > 0 => runs = v,
                _ => return ExitCode::FAILURE,
            },
            "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            // `cargo bench` passes `--bench`.
            "--bench" => continue,
            other => {
                eprintln!("unknown argument {other}\n\n{USAGE}");
                return ExitCode::FAILURE;
            }
        }
        quick = false;
    }
    if quick {
        keys_n = 20_000;
        runs = 1;
    }
    let keys: Arc<Vec<SmolStr>> = Arc::new((0..keys_n).map(|i| format!("k{i}").into()).collect());
    let order = Arc::new(shuffled(keys_n));
    let mut all: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..runs {
        match run(&keys, &order) {
            Ok(figures) => {
                for (w, v) in figures {
                    match all.iter_mut().find(|(x, _)| *x == w) {
                        Some((_, vs)) => vs.push(v),
                        None => all.push((w, vec![v])),
                    }
                }
            }
            Err(e) => {
                eprintln!("run failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // The paired passes, round by round: the keyed state's time over the reference's (robust to
    // a machine whose speed drifts between rounds).
    let mut ratios = Vec::new();
    for what in ["first change", "again"] {
        let of = |name: String| {
            all.iter()
                .find(|(w, _)| *w == name)
                .map(|(_, vs)| vs.clone())
                .unwrap_or_default()
        };
        let ours = of(format!("paired: update, {what}"));
        let reference = of(format!("paired: one map, {what}"));
        let rs: Vec<f64> = ours.iter().zip(&reference).map(|(a, b)| a / b).collect();
        ratios.push((format!("paired: update / one map, {what}"), rs));
    }
    println!("keyed_state: {keys_n} keys, {runs} runs; median [min-max]");
    for (w, mut vs) in all.into_iter().chain(ratios) {
        if vs.is_empty() {
            continue;
        }
        vs.sort_by(f64::total_cmp);
        let unit = if w.starts_with("pause") {
            "ms"
        } else if w.contains(" / ") {
            "x"
        } else {
            "ns/key"
        };
        println!(
            "  {w:<40} {:>9.3} {unit} [{:.3}-{:.3}]",
            vs[vs.len() / 2],
            vs[0],
            vs[vs.len() - 1]
        );
    }
    ExitCode::SUCCESS
}
