//! Join benchmark: throughput of the `join` bolt through a real topology.
//!
//! ```text
//! cargo bench -p topo-bolts --bench join
//! cargo bench -p topo-bolts --bench join -- --per-side 1000000 --keys 10000 --window 1s
//! cargo bench -p topo-bolts --bench join -- --hold          # acking on, inputs held per window
//! cargo bench -p topo-bolts --bench join -- --help
//! ```
//!
//! ```text
//! orders (1 spout task) ──shuffle──┐
//!                                  ├──► join (1 task, left join on key) ──► sink (counts rows)
//! users  (1 spout task) ──shuffle──┘
//! ```
//!
//! - Both spouts emit pre-built tuples (built before the clock starts, leaked to `'static`, 16
//!   per `next_tuple` call), so the figures measure the runtime and the join, not a generator.
//! - Keys come in rounds of `--keys` distinct keys: the `i`-th order and the `i`-th user have key
//!   `(i / keys, i % keys)` (a composite key), so every order matches exactly one user (1:1), and
//!   each round holds `--keys` keys.
//! - The join is a left join in tumbling windows of `--window` (processing time): an order whose
//!   user landed in another window gives a row with a null customer. The run reports how many
//!   rows matched.
//! - Default: acking off, `anchoring = "receipt"`. `--hold`: acking on, `anchoring = "hold"`
//!   (no `max_spout_pending`, which would cap throughput at that many tuples per window).
//! - Figures: wall time from submit until the topology is idle and stopped (the last window is
//!   joined at end of input); input tuples/s over the wall time; input tuples/s per core of the
//!   join task (tuples / the task's busy time); and tuples/s per core of the whole process
//!   (tuples / process CPU time, from `/proc/self/stat`).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use topo_bolts::{Join, JoinOptions};
use topo_dsl::TopologyBuilder;
use topo_runtime::{
    BasicBolt, BasicCollector, BoxError, Config, LocalCluster, OutputDeclarer, Spout,
    SpoutCollector, Tuple, Values, values,
};

const USAGE: &str = "\
join benchmark

OPTIONS
  --per-side N     tuples per input stream                 (default 500000)
  --keys N         distinct keys per round                 (default 10000)
  --window D       tumbling window (humantime)             (default 1s)
  --workers N      runtime worker threads                  (default 2)
  --hold           acking on, anchoring = \"hold\" (default: acking off, \"receipt\")
  --help           this text
";

struct Options {
    per_side: usize,
    keys: usize,
    window: String,
    workers: usize,
    hold: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut o = Options {
        per_side: 500_000,
        keys: 10_000,
        window: "1s".into(),
        workers: 2,
        hold: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--per-side" => {
                o.per_side = value("--per-side")?
                    .parse()
                    .map_err(|e| format!("--per-side: {e}"))?
            }
            "--keys" => {
                o.keys = value("--keys")?
                    .parse()
                    .map_err(|e| format!("--keys: {e}"))?
            }
            "--window" => o.window = value("--window")?,
            "--workers" => {
                o.workers = value("--workers")?
                    .parse()
                    .map_err(|e| format!("--workers: {e}"))?
            }
            "--hold" => o.hold = true,
            "--bench" => {}
            "--help" | "-h" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if o.keys == 0 || o.per_side == 0 {
        return Err("--keys and --per-side must be at least 1".into());
    }
    Ok(o)
}

/// Emits a pre-built list of tuples, 16 per call; tracked (message id = index) when acking.
struct ListSpout {
    tuples: &'static [Values],
    fields: [&'static str; 3],
    next: Arc<AtomicUsize>,
    tracked: bool,
}

impl Spout for ListSpout {
    type MessageId = usize;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(self.fields);
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, usize>) -> Result<(), BoxError> {
        for _ in 0..16 {
            let i = self.next.fetch_add(1, Relaxed);
            let Some(t) = self.tuples.get(i) else {
                break;
            };
            out.emit(t.clone(), self.tracked.then_some(i));
        }
        Ok(())
    }

    fn is_exhausted(&self) -> bool {
        self.next.load(Relaxed) >= self.tuples.len()
    }
}

/// Counts the joined rows, and those with a customer.
struct Sink {
    rows: Arc<AtomicU64>,
    matched: Arc<AtomicU64>,
}

impl BasicBolt for Sink {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        self.rows.fetch_add(1, Relaxed);
        if input.get(2).is_some_and(|v| !v.is_null()) {
            self.matched.fetch_add(1, Relaxed);
        }
        Ok(())
    }
}

fn run(o: &Options) -> Result<(), BoxError> {
    let keys = o.keys as i64;
    let orders: Vec<Values> = (0..o.per_side as i64)
        .map(|i| values![i / keys, i % keys, i])
        .collect();
    let users: Vec<Values> = (0..o.per_side as i64)
        .map(|i| values![i / keys, i % keys, format!("user-{i}")])
        .collect();
    let orders: &'static [Values] = Vec::leak(orders);
    let users: &'static [Values] = Vec::leak(users);

    let opts: JoinOptions = toml::from_str(&format!(
        r#"
        window = "{}"
        anchoring = "{}"
        from = {{ source = "orders", key = ["round", "key"] }}
        join = [{{ source = "users", key = ["round", "key"], type = "left" }}]
        select = ["orders.key", "orders.amount", "users.name as customer"]
        "#,
        o.window,
        if o.hold { "hold" } else { "receipt" }
    ))?;
    let join = Join::new(opts)?;
    let config = Config {
        ackers: if o.hold { 1 } else { 0 },
        worker_threads: o.workers,
        max_spout_pending: None,
        message_timeout: Duration::from_secs(120),
        ..Config::default()
    };
    let rows = Arc::new(AtomicU64::new(0));
    let matched = Arc::new(AtomicU64::new(0));
    let mut b = TopologyBuilder::new("join-bench");
    b.config(config);
    let tracked = o.hold;
    let next = Arc::new(AtomicUsize::new(0));
    b.set_spout(
        "orders",
        move || ListSpout {
            tuples: orders,
            fields: ["round", "key", "amount"],
            next: next.clone(),
            tracked,
        },
        1,
    );
    let next = Arc::new(AtomicUsize::new(0));
    b.set_spout(
        "users",
        move || ListSpout {
            tuples: users,
            fields: ["round", "key", "name"],
            next: next.clone(),
            tracked,
        },
        1,
    );
    b.set_bolt("join", move || join.clone(), 1)
        .shuffle_grouping("orders")
        .shuffle_grouping("users");
    let (r, m) = (rows.clone(), matched.clone());
    b.set_bolt(
        "sink",
        move || Sink {
            rows: r.clone(),
            matched: m.clone(),
        },
        1,
    )
    .shuffle_grouping("join");
    let topology = b.build()?;

    let cluster = LocalCluster::new(o.workers)?;
    let cpu0 = Some(topo_test_support::cpu::own_cpu_seconds());
    let start = Instant::now();
    let handle = cluster.submit(topology);
    cluster
        .block_on(handle.wait_until_idle(Duration::from_secs(1800)))
        .map_err(|e| format!("the topology did not finish: {e}"))?;
    let stopped = cluster.block_on(handle.stop(Duration::from_secs(60)));
    let wall = start.elapsed().as_secs_f64();
    let cpu = match (cpu0, Some(topo_test_support::cpu::own_cpu_seconds())) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    if !stopped.drained {
        return Err("the stop did not drain".into());
    }
    let join_busy: f64 = stopped
        .metrics
        .component("join")
        .ok_or("no join metrics")?
        .tasks
        .iter()
        .map(|t| t.busy.as_secs_f64())
        .sum();
    let inputs = 2.0 * o.per_side as f64;
    let rows = rows.load(Relaxed);
    let matched = matched.load(Relaxed);
    if rows != o.per_side as u64 {
        return Err(format!(
            "{rows} rows for {} orders (a left join gives one each)",
            o.per_side
        )
        .into());
    }
    println!(
        "join bench: {} per side, {} keys per round, window {}, {} workers, {}",
        o.per_side,
        o.keys,
        o.window,
        o.workers,
        if o.hold {
            "acking on, hold"
        } else {
            "acking off, receipt"
        }
    );
    println!("  wall                 {wall:.3} s");
    println!(
        "  rows                 {rows} ({matched} matched, {:.2}%)",
        100.0 * matched as f64 / rows as f64
    );
    println!("  input tuples/s       {:.0} (wall)", inputs / wall);
    println!(
        "  per core of the join {:.0} input tuples/s (join task busy {join_busy:.3} s)",
        inputs / join_busy
    );
    if let Some(cpu) = cpu {
        println!(
            "  per core, process    {:.0} input tuples/s (process CPU {cpu:.3} s)",
            inputs / cpu
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
