//! Windowed count per key: throughput of the `window` bolt through a real topology.
//!
//! ```text
//! cargo bench -p topo-bolts --bench window -- --mode ack-off
//! cargo bench -p topo-bolts --bench window -- --mode ack-on --tuples 2000000
//! cargo bench -p topo-bolts --bench window -- --help
//! ```
//!
//! The topology: `source` (1 task, emitting pre-built tuples `(key)` over `--keys` distinct keys,
//! 16 per `next_tuple` call) -> `window` (1 task: tumbling 1 s processing-time windows, group by
//! `key`, `count`, `anchoring = "receipt"`), on a [`LocalCluster`] of `--workers` threads. The
//! window's results go nowhere (no subscriber), so the figures are those of windowing itself.
//!
//! Reported:
//! - `tuples_per_s`: tuples / wall time from submit until the window task has executed them all;
//! - `window_tuples_per_busy_s`: tuples / the window task's busy time — the bolt's throughput per
//!   core (its task runs on one thread at a time);
//! - `cpu_s`: the process's CPU time over the run (Linux `/proc/self/stat`), and
//!   `tuples_per_cpu_s`: tuples per second of CPU the whole topology used (spout, acker, window).
//!
//! The run checks that the window emitted one result per key per window and that the counts add
//! up to the input (results are counted by a tiny sink only with `--verify`, on by default).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use topo_bolts::{AggregateOptions, Anchoring, Extent, Window, WindowOptions};
use topo_dsl::TopologyBuilder;
use topo_runtime::{
    BasicBolt, BasicCollector, BoxError, Config, LocalCluster, OutputDeclarer, Spout,
    SpoutCollector, Tuple, Values, values,
};

const USAGE: &str = "\
window benchmark: windowed count per key

OPTIONS
  --mode MODE        ack-off | ack-on                      (default ack-off)
  --tuples N         tuples to emit                        (default 5000000)
  --keys N           distinct keys                         (default 10000)
  --workers N        runtime worker threads                (default 2)
  --max-pending N    max_spout_pending with ack-on         (default: Config default, 1000)
  --no-verify        no sink counting the results
  --help

Without any argument (as `cargo test --all-targets` runs it): a quick check on 200000 tuples.
";

struct Opts {
    ack: bool,
    tuples: usize,
    keys: usize,
    workers: usize,
    max_pending: Option<usize>,
    verify: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        ack: false,
        tuples: 5_000_000,
        keys: 10_000,
        workers: 2,
        max_pending: None,
        verify: true,
    };
    let smoke = std::env::args().len() == 1;
    if smoke {
        o.tuples = 200_000;
        o.ack = true;
    }
    let mut args = std::env::args().skip(1);
    fn num(flag: &str, v: Option<String>) -> Result<usize, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse()
            .map_err(|_| format!("{flag}: not a valid number: {v:?}"))
    }
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {}
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            "--mode" => {
                o.ack = match args.next().as_deref() {
                    Some("ack-off") => false,
                    Some("ack-on") => true,
                    other => return Err(format!("--mode: unknown mode {other:?}\n\n{USAGE}")),
                }
            }
            "--tuples" => o.tuples = num(&a, args.next())?,
            "--keys" => o.keys = num(&a, args.next())?.max(1),
            "--workers" => o.workers = num(&a, args.next())?.max(1),
            "--max-pending" => o.max_pending = Some(num(&a, args.next())?),
            "--no-verify" => o.verify = false,
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(o)
}

/// Emits pre-built tuples, 16 per call.
struct Source {
    tuples: Arc<Vec<Values>>,
    pos: usize,
    tracked: bool,
}

impl Spout for Source {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["key"]);
    }

    fn next_tuple(
        &mut self,
        out: &mut SpoutCollector<'_, u64>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        for _ in 0..16 {
            let Some(v) = self.tuples.get(self.pos) else {
                break;
            };
            out.emit(v.clone(), self.tracked.then_some(self.pos as u64));
            self.pos += 1;
        }
        std::future::ready(Ok(()))
    }

    fn is_exhausted(&self) -> bool {
        self.pos >= self.tuples.len()
    }
}

/// Adds up the counts the window emits.
struct Totals {
    results: Arc<AtomicU64>,
    counted: Arc<AtomicU64>,
}

impl BasicBolt for Totals {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        self.results.fetch_add(1, Relaxed);
        self.counted
            .fetch_add(input.int_field("n")?.max(0) as u64, Relaxed);
        Ok(())
    }
}

fn run(o: &Opts) -> Result<(), Box<dyn std::error::Error>> {
    let tuples: Arc<Vec<Values>> = Arc::new(
        (0..o.tuples)
            .map(|i| values![format!("k{}", i % o.keys)])
            .collect(),
    );
    let window = Window::new(WindowOptions {
        length: Some(Extent::Duration("1s".into())),
        group_by: vec!["key".into()],
        aggregates: vec![AggregateOptions::new("count", None, "n")],
        anchoring: Anchoring::Receipt,
        ..Default::default()
    })?;
    let defaults = Config::default();
    let config = Config {
        ackers: usize::from(o.ack),
        worker_threads: o.workers,
        max_spout_pending: o.max_pending.or(defaults.max_spout_pending),
        ..defaults
    };
    let mut b = TopologyBuilder::new("window-bench");
    b.config(config);
    let (src, tracked) = (tuples.clone(), o.ack);
    b.set_spout(
        "source",
        move || Source {
            tuples: src.clone(),
            pos: 0,
            tracked,
        },
        1,
    );
    b.set_bolt("window", move || window.clone(), 1)
        .shuffle_grouping("source");
    let results = Arc::new(AtomicU64::new(0));
    let counted = Arc::new(AtomicU64::new(0));
    if o.verify {
        let (r, c) = (results.clone(), counted.clone());
        b.set_bolt(
            "totals",
            move || Totals {
                results: r.clone(),
                counted: c.clone(),
            },
            1,
        )
        .shuffle_grouping("window");
    }
    let topology = b.build()?;
    let cluster = LocalCluster::new(o.workers)?;
    let n = o.tuples as u64;
    let cpu0 = Some(Duration::from_secs_f64(
        topo_test_support::cpu::own_cpu_seconds(),
    ));
    let start = Instant::now();
    let handle = cluster.submit(topology);
    let m = cluster
        .block_on(handle.wait_until(Duration::from_secs(600), |m| {
            m.component("window").is_some_and(|c| c.executed() >= n)
        }))
        .map_err(|e| format!("the window did not execute every tuple: {e}"))?;
    let wall = start.elapsed();
    let cpu = cpu0
        .zip(Some(Duration::from_secs_f64(
            topo_test_support::cpu::own_cpu_seconds(),
        )))
        .map(|(a, b)| b.saturating_sub(a));
    let busy: Duration = m
        .component("window")
        .map(|c| c.tasks.iter().map(|t| t.busy).sum())
        .unwrap_or_default();
    let stopped = cluster.block_on(handle.stop(Duration::from_secs(30)));
    if !stopped.drained {
        return Err("the stop did not drain".into());
    }
    if o.verify && counted.load(Relaxed) != n {
        return Err(format!(
            "the windows counted {} tuples of {n}",
            counted.load(Relaxed)
        )
        .into());
    }
    let per = |d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    println!(
        "RESULT mode={} tuples={n} keys={} workers={} secs={:.3} tuples_per_s={:.0} \
         window_busy_s={:.3} window_tuples_per_busy_s={:.0} cpu_s={} tuples_per_cpu_s={} results={}",
        if o.ack { "ack-on" } else { "ack-off" },
        o.keys,
        o.workers,
        wall.as_secs_f64(),
        per(wall),
        busy.as_secs_f64(),
        per(busy),
        cpu.map_or("n/a".into(), |c| format!("{:.2}", c.as_secs_f64())),
        cpu.map_or("n/a".into(), |c| format!("{:.0}", per(c))),
        results.load(Relaxed),
    );
    Ok(())
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
