//! `filter` benchmark: tuples per second, and per CPU-second, through a real topology
//! `records -> filter -> sink` with a CEL expression over access-log fields.
//!
//! ```text
//! cargo bench -p topo-bolts --bench filter
//! cargo bench -p topo-bolts --bench filter -- --tuples 4000000 --parallelism 2 --ackers 1
//! ```
//!
//! The spout cycles through 4096 pre-built records (host, path, status, bytes; about a fifth are
//! `/api` paths with status ≥ 500), emitting 16 per `next_tuple` call, so the figure measures the
//! expression and the runtime, not a reader. The filter keeps
//! `status >= 500 && path.startsWith("/api")`; the sink counts what it receives, and the run
//! checks that count against the same predicate evaluated in plain Rust over the same records.
//!
//! Figures: wall-clock tuples/s (from submit until every task has ended), and tuples per
//! CPU-second of the whole process (user + system time from `/proc/self/stat`), the "per core"
//! figure that does not depend on how many cores the machine lends the run.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use topo_bolts::{Filter, FilterOptions};
use topo_dsl::TopologyBuilder;
use topo_runtime::{
    BasicBolt, BasicCollector, BoxError, Config, LocalCluster, OutputDeclarer, Spout,
    SpoutCollector, Tuple, Values, values,
};

const USAGE: &str = "\
filter benchmark

OPTIONS
  --tuples N        records emitted in all              (default 2000000)
  --parallelism N   filter tasks                        (default 1)
  --ackers N        acker tasks; 0 = acking off         (default 0)
  --workers N       runtime worker threads              (default 2)
";

const EXPRESSION: &str = r#"status >= 500 && path.startsWith("/api")"#;

/// The records the spout cycles through, and how many of one cycle pass the filter.
fn records() -> (Vec<Values>, u64) {
    let mut rng = fastrand::Rng::with_seed(42);
    let paths = [
        "/api/orders",
        "/api/users",
        "/static/app.js",
        "/index.html",
        "/img/logo.png",
    ];
    let statuses = [200, 200, 200, 301, 404, 500, 502, 503];
    let mut out = Vec::with_capacity(4096);
    let mut pass = 0;
    for i in 0..4096 {
        let path = paths[rng.usize(..paths.len())];
        let status: i64 = statuses[rng.usize(..statuses.len())];
        if status >= 500 && path.starts_with("/api") {
            pass += 1;
        }
        out.push(values![
            format!("10.0.{}.{}", i / 256, i % 256),
            path,
            status,
            rng.i64(100..50_000)
        ]);
    }
    (out, pass)
}

struct Records {
    records: Arc<Vec<Values>>,
    left: u64,
    next: usize,
}

impl Spout for Records {
    type MessageId = ();

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["host", "path", "status", "bytes"]);
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, ()>) -> Result<(), BoxError> {
        for _ in 0..16 {
            if self.left == 0 {
                break;
            }
            self.left -= 1;
            out.emit(self.records[self.next].clone(), Some(()));
            self.next = (self.next + 1) % self.records.len();
        }
        Ok(())
    }

    fn is_exhausted(&self) -> bool {
        self.left == 0
    }
}

struct CountSink(Arc<AtomicU64>);

impl BasicBolt for CountSink {
    fn declare_outputs(&self, _out: &mut OutputDeclarer) {}

    fn execute(&mut self, _input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        self.0.fetch_add(1, Relaxed);
        Ok(())
    }
}

struct Opts {
    tuples: u64,
    parallelism: usize,
    ackers: usize,
    workers: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        tuples: 2_000_000,
        parallelism: 1,
        ackers: 0,
        workers: 2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<u64, String> {
            let v = args.next().ok_or(format!("{name} needs a value"))?;
            v.parse().map_err(|_| format!("{name}: not a number: {v}"))
        };
        match a.as_str() {
            "--tuples" => o.tuples = num("--tuples")?,
            "--parallelism" => o.parallelism = num("--parallelism")? as usize,
            "--ackers" => o.ackers = num("--ackers")? as usize,
            "--workers" => o.workers = num("--workers")? as usize,
            "--bench" => {}
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown option {other}\n\n{USAGE}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (records, pass_per_cycle) = records();
    let cycle = records.len() as u64;
    let expected = (o.tuples / cycle) * pass_per_cycle
        + records[..(o.tuples % cycle) as usize]
            .iter()
            .filter(|r| {
                r[2].as_i64().is_some_and(|s| s >= 500)
                    && r[1].as_str().is_some_and(|p| p.starts_with("/api"))
            })
            .count() as u64;
    let records = Arc::new(records);
    let filter = match Filter::new(FilterOptions {
        expression: EXPRESSION.into(),
        fields: vec![
            "host".into(),
            "path".into(),
            "status".into(),
            "bytes".into(),
        ],
    }) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let received = Arc::new(AtomicU64::new(0));
    let mut b = TopologyBuilder::new("filter-bench");
    let left = o.tuples;
    b.set_spout(
        "records",
        move || Records {
            records: records.clone(),
            left,
            next: 0,
        },
        1,
    );
    b.set_bolt("filter", move || filter.clone(), o.parallelism)
        .shuffle_grouping("records");
    let sink = received.clone();
    b.set_bolt("sink", move || CountSink(sink.clone()), 1)
        .shuffle_grouping("filter");
    let config = Config {
        ackers: o.ackers,
        ..Config::default()
    };
    let topology = match b.build().and_then(|t| t.with_config(config)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let cluster = match LocalCluster::new(o.workers) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let cpu0 = Duration::from_secs_f64(topo_test_support::cpu::own_cpu_seconds());
    let start = Instant::now();
    let handle = cluster.submit(topology);
    let report = cluster.block_on(async {
        if let Err(e) = handle.wait_until_idle(Duration::from_secs(600)).await {
            eprintln!("{e}");
        }
        handle.stop(Duration::from_secs(10)).await
    });
    let wall = start.elapsed();
    let cpu = Duration::from_secs_f64(topo_test_support::cpu::own_cpu_seconds()) - cpu0;
    let got = received.load(Relaxed);
    if got != expected || !report.drained {
        eprintln!("check failed: the sink received {got} tuples, expected {expected}; {report:?}");
        return ExitCode::FAILURE;
    }
    println!(
        "filter `{EXPRESSION}`: {} tuples ({} kept), parallelism {}, ackers {}: {:.2} M tuples/s wall, {:.2} M tuples per CPU-second ({:.2} s wall, {:.2} s CPU)",
        o.tuples,
        got,
        o.parallelism,
        o.ackers,
        o.tuples as f64 / wall.as_secs_f64() / 1e6,
        o.tuples as f64 / cpu.as_secs_f64().max(0.01) / 1e6,
        wall.as_secs_f64(),
        cpu.as_secs_f64()
    );
    ExitCode::SUCCESS
}
