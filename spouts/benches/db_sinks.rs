//! Database sink benchmark: records/s, and records per CPU-second of this process and of the
//! server, of a `records -> sink` topology writing to the live PostgreSQL (upsert) or Redis
//! (zadd) server on this machine, acking on.
//!
//! ```text
//! cargo bench -p topo-spouts --bench db_sinks -- --sink postgres --records 200000 --batch 500
//! cargo bench -p topo-spouts --bench db_sinks -- --sink redis --records 200000 --batch 500
//! cargo bench -p topo-spouts --bench db_sinks -- --help
//! ```
//!
//! The topology: `records` (1 spout task, 16 records per `next_tuple` call, each tracked) -fields
//! (word)-> `sink` (`--parallelism` tasks, 1 by default) on a [`LocalCluster`] of `--workers`
//! threads (2). Record `i` is `(word = "w{i % distinct}", n = i)`, so each word is written many
//! times and its final value is its last `i`.
//!
//! - postgres: `mode = "upsert"` into a fresh table `topo_bench_<pid> (word text PRIMARY KEY, n
//!   bigint)` in database `test`, dropped at the end.
//! - redis: `zadd` of member `word` with score `n` into key `topo-bench:<pid>`, deleted at the end.
//!
//! Wall time runs from `submit` until every record is acked (the topology is idle). CPU time is
//! this process's (user + system, from `/proc/self/stat`) and the server's: the sink's PostgreSQL
//! backends (found by `application_name`) or the Redis server process (`INFO server`), read from
//! `/proc/<pid>/stat`. Every run ends with a check of the final state (row count and sum of `n`;
//! sorted-set size and sum of scores) and of the acks (every record acked, none failed), or it
//! fails.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use smol_str::{SmolStr, format_smolstr};
use topo_dsl::TopologyBuilder;
use topo_runtime::{BoxError, Config, LocalCluster, OutputDeclarer, Spout, SpoutCollector, values};
use topo_spouts::{PostgresOptions, PostgresSink, RedisOptions, RedisSink};

const USAGE: &str = "\
db_sinks benchmark

OPTIONS
  --sink postgres|redis   the sink measured                        (default postgres)
  --records N             records written                          (default 200000)
  --distinct N            distinct words (keys)                    (default 10000)
  --batch N               batch.max_records                        (default 500)
  --parallelism N         sink tasks                               (default 1)
  --workers N             runtime worker threads                   (default 2)
  --help

Without any argument (as `cargo test --all-targets` runs it): a quick check of both sinks on
2000 records.
";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sink {
    Postgres,
    Redis,
}

#[derive(Clone, Debug)]
struct Opts {
    sink: Sink,
    records: u64,
    distinct: u64,
    batch: usize,
    parallelism: usize,
    workers: usize,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        sink: Sink::Postgres,
        records: 200_000,
        distinct: 10_000,
        batch: 500,
        parallelism: 1,
        workers: 2,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--sink" => {
                o.sink = match value("--sink")?.as_str() {
                    "postgres" => Sink::Postgres,
                    "redis" => Sink::Redis,
                    other => {
                        return Err(format!("--sink: expected postgres or redis, got {other:?}"));
                    }
                }
            }
            "--records" => o.records = number(&value("--records")?, "--records")?,
            "--distinct" => o.distinct = number(&value("--distinct")?, "--distinct")?,
            "--batch" => o.batch = number(&value("--batch")?, "--batch")?,
            "--parallelism" => o.parallelism = number(&value("--parallelism")?, "--parallelism")?,
            "--workers" => o.workers = number(&value("--workers")?, "--workers")?,
            "--bench" => {}
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n\n{USAGE}")),
        }
    }
    if o.records == 0 || o.distinct == 0 || o.batch == 0 || o.parallelism == 0 || o.workers == 0 {
        return Err(
            "--records, --distinct, --batch, --parallelism and --workers must be at least 1".into(),
        );
    }
    Ok(o)
}

fn number<T: std::str::FromStr>(s: &str, name: &str) -> Result<T, String> {
    s.parse()
        .map_err(|_| format!("{name}: expected a number, got {s:?}"))
}

/// What the spout tasks share: the next record, and acks and fails.
struct Counters {
    next: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
}

/// Emits records `0..records`, 16 per call, tracked by their index.
struct Records {
    total: u64,
    distinct: u64,
    shared: Arc<Counters>,
    words: Arc<Vec<SmolStr>>,
    replay: VecDeque<u64>,
}

impl Spout for Records {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["word", "n"]);
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        for _ in 0..16 {
            let i = match self.replay.pop_front() {
                Some(i) => i,
                None => {
                    let i = self.shared.next.fetch_add(1, Relaxed);
                    if i >= self.total {
                        return Ok(());
                    }
                    i
                }
            };
            let word = self.words[(i % self.distinct) as usize].clone();
            out.emit(values![word, i as i64], i);
        }
        Ok(())
    }

    fn ack(&mut self, _id: u64) {
        self.shared.acked.fetch_add(1, Relaxed);
    }

    fn fail(&mut self, id: u64) {
        self.shared.failed.fetch_add(1, Relaxed);
        self.replay.push_back(id);
    }

    fn is_exhausted(&self) -> bool {
        self.replay.is_empty() && self.shared.next.load(Relaxed) >= self.total
    }
}

/// The server side of a run: set up, CPU readings, checks, clean-up.
enum Server {
    Postgres {
        rt: tokio::runtime::Runtime,
        client: tokio_postgres::Client,
        table: String,
        app: String,
    },
    Redis {
        rt: tokio::runtime::Runtime,
        conn: redis::aio::MultiplexedConnection,
        key: String,
        pid: String,
    },
}

const PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const REDIS_URL: &str = "redis://127.0.0.1:6379/0";

impl Server {
    fn start(sink: Sink) -> Result<Server, String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        match sink {
            Sink::Postgres => {
                let client = rt.block_on(async {
                    let (client, conn) = tokio_postgres::connect(PG_URL, tokio_postgres::NoTls)
                        .await
                        .map_err(|e| {
                            format!(
                                "PostgreSQL at 127.0.0.1:5432 is not reachable ({e}); start it with \
                                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
                            )
                        })?;
                    tokio::spawn(conn);
                    Ok::<_, String>(client)
                })?;
                let table = format!("topo_bench_{}", std::process::id());
                rt.block_on(client.batch_execute(&format!(
                    "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (word text PRIMARY KEY, n bigint NOT NULL)"
                )))
                .map_err(|e| format!("create {table}: {e}"))?;
                Ok(Server::Postgres {
                    rt,
                    client,
                    app: format!("topo-bench-{}", std::process::id()),
                    table,
                })
            }
            Sink::Redis => {
                let conn = rt.block_on(async {
                    let client = redis::Client::open(REDIS_URL).map_err(|e| e.to_string())?;
                    client.get_multiplexed_async_connection().await.map_err(|e| {
                        format!(
                            "Redis at 127.0.0.1:6379 is not reachable ({e}); start it with \
                             `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" --appendonly no`"
                        )
                    })
                })?;
                let mut c = conn.clone();
                let info: String = rt
                    .block_on(redis::cmd("INFO").arg("server").query_async(&mut c))
                    .map_err(|e| e.to_string())?;
                let pid = info
                    .lines()
                    .find_map(|l| l.strip_prefix("process_id:"))
                    .unwrap_or("")
                    .trim()
                    .to_string();
                let key = format!("topo-bench:{}", std::process::id());
                rt.block_on(redis::cmd("DEL").arg(&key).query_async::<()>(&mut c))
                    .map_err(|e| e.to_string())?;
                Ok(Server::Redis { rt, conn, key, pid })
            }
        }
    }

    /// CPU seconds used so far by the server processes serving the sink.
    fn cpu(&self) -> Option<f64> {
        match self {
            Server::Postgres {
                rt, client, app, ..
            } => {
                let rows = rt
                    .block_on(client.query(
                        "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                        &[app],
                    ))
                    .ok()?;
                let pids: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
                if pids.is_empty() {
                    return None;
                }
                pids.iter()
                    .map(|p| topo_test_support::cpu::cpu_seconds(&p.to_string()))
                    .sum()
            }
            Server::Redis { pid, .. } => topo_test_support::cpu::cpu_seconds(pid),
        }
    }

    /// Checks the final state: every word with its last `n`.
    fn check(&self, o: &Opts) -> Result<(), String> {
        let words = o.distinct.min(o.records);
        // Word w's last record is the largest i < records with i % distinct == w.
        let expected_sum: i128 = (0..words)
            .map(|w| {
                let last = (o.records - 1 - w) / o.distinct * o.distinct + w;
                last as i128
            })
            .sum();
        match self {
            Server::Postgres {
                rt, client, table, ..
            } => {
                let row = rt
                    .block_on(
                        client
                            .query_one(&format!("SELECT count(*), sum(n)::text FROM {table}"), &[]),
                    )
                    .map_err(|e| e.to_string())?;
                let (count, sum): (i64, String) = (row.get(0), row.get(1));
                if count as u64 != words || sum != expected_sum.to_string() {
                    return Err(format!(
                        "table holds {count} rows summing to {sum}; expected {words} rows summing to {expected_sum}"
                    ));
                }
            }
            Server::Redis { rt, conn, key, .. } => {
                let mut c = conn.clone();
                let scores: Vec<(String, f64)> = rt
                    .block_on(
                        redis::cmd("ZRANGE")
                            .arg(key)
                            .arg(0)
                            .arg(-1)
                            .arg("WITHSCORES")
                            .query_async(&mut c),
                    )
                    .map_err(|e| e.to_string())?;
                let sum: i128 = scores.iter().map(|(_, s)| *s as i128).sum();
                if scores.len() as u64 != words || sum != expected_sum {
                    return Err(format!(
                        "sorted set holds {} members summing to {sum}; expected {words} summing to {expected_sum}",
                        scores.len()
                    ));
                }
            }
        }
        Ok(())
    }

    fn clean_up(&self) {
        match self {
            Server::Postgres {
                rt, client, table, ..
            } => {
                let _ = rt.block_on(client.batch_execute(&format!("DROP TABLE IF EXISTS {table}")));
            }
            Server::Redis { rt, conn, key, .. } => {
                let mut c = conn.clone();
                let _ = rt.block_on(redis::cmd("DEL").arg(key).query_async::<()>(&mut c));
            }
        }
    }
}

fn run(o: &Opts) -> Result<(), String> {
    let server = Server::start(o.sink)?;
    let result = run_on(o, &server);
    server.clean_up();
    result
}

fn run_on(o: &Opts, server: &Server) -> Result<(), String> {
    let shared = Arc::new(Counters {
        next: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let words: Arc<Vec<SmolStr>> =
        Arc::new((0..o.distinct).map(|w| format_smolstr!("w{w}")).collect());
    let mut b = TopologyBuilder::new("db-sinks-bench");
    b.config(Config {
        worker_threads: o.workers,
        ..Config::default()
    });
    let s = shared.clone();
    let (total, distinct) = (o.records, o.distinct);
    b.set_spout(
        "records",
        move || Records {
            total,
            distinct,
            shared: s.clone(),
            words: words.clone(),
            replay: VecDeque::new(),
        },
        1,
    );
    match server {
        Server::Postgres { table, app, .. } => {
            let options: PostgresOptions = toml::from_str(&format!(
                "url = \"{PG_URL}\"\ntable = \"{table}\"\ncolumns = [\"word\", \"n\"]\nmode = \"upsert\"\nkey = [\"word\"]\n\
                 application_name = \"{app}\"\nbatch = {{ max_records = {}, interval = \"100ms\" }}",
                o.batch
            ))
            .map_err(|e| e.to_string())?;
            let sink = PostgresSink::new(options)?;
            b.set_bolt("sink", move || sink.bolt(), o.parallelism)
                .fields_grouping("records", ["word"]);
        }
        Server::Redis { key, .. } => {
            let options: RedisOptions = toml::from_str(&format!(
                "url = \"{REDIS_URL}\"\ncommand = \"zadd\"\nkey = \"{key}\"\nmember = \"word\"\nvalue = \"n\"\n\
                 batch = {{ max_records = {}, interval = \"100ms\" }}",
                o.batch
            ))
            .map_err(|e| e.to_string())?;
            let sink = RedisSink::new(options)?;
            b.set_bolt("sink", move || sink.bolt(), o.parallelism)
                .fields_grouping("records", ["word"]);
        }
    }
    let topology = b.build().map_err(|e| format!("{e:?}"))?;
    let cluster = LocalCluster::new(o.workers).map_err(|e| e.to_string())?;
    let server_cpu_before = match server {
        Server::Redis { .. } => server.cpu(),
        // The sink's backends start with the topology; their CPU before it is ~0.
        Server::Postgres { .. } => Some(0.0),
    };
    let cpu_before = topo_test_support::cpu::cpu_seconds("self").unwrap_or(0.0);
    let start = Instant::now();
    let handle = cluster.submit(topology);
    cluster
        .block_on(handle.wait_until_idle(Duration::from_secs(1800)))
        .map_err(|e| format!("not idle within {:?}", e.waited))?;
    let wall = start.elapsed();
    let cpu = topo_test_support::cpu::cpu_seconds("self").unwrap_or(0.0) - cpu_before;
    let server_cpu = match (server.cpu(), server_cpu_before) {
        (Some(after), Some(before)) => Some(after - before),
        _ => None,
    };
    let stopped = cluster.block_on(handle.stop(Duration::from_secs(60)));
    if !stopped.drained {
        return Err("the topology did not drain".into());
    }
    let (acked, failed) = (shared.acked.load(Relaxed), shared.failed.load(Relaxed));
    if acked != o.records {
        return Err(format!(
            "{acked} of {} records acked ({failed} failed)",
            o.records
        ));
    }
    server.check(o)?;
    let rate = o.records as f64 / wall.as_secs_f64();
    let name = match o.sink {
        Sink::Postgres => "postgres upsert",
        Sink::Redis => "redis zadd",
    };
    println!(
        "{name}: {} records ({} distinct keys), batch {}, {} sink task(s), {} workers: {:.3} s wall, {:.0} records/s",
        o.records,
        o.distinct,
        o.batch,
        o.parallelism,
        o.workers,
        wall.as_secs_f64(),
        rate
    );
    println!(
        "  this process: {cpu:.2} CPU-s = {:.0} records per CPU-second",
        o.records as f64 / cpu.max(0.01)
    );
    match server_cpu {
        Some(s) => println!(
            "  server: {s:.2} CPU-s = {:.0} records per CPU-second; both: {:.0} records per CPU-second",
            o.records as f64 / s.max(0.01),
            o.records as f64 / (s + cpu).max(0.01)
        ),
        None => println!("  server CPU: not readable"),
    }
    println!("  every record acked ({failed} failed and replayed); final state checked");
    Ok(())
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs bench targets with no
    // argument at all: then check both sinks quickly.
    let smoke_test = std::env::args().len() == 1;
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runs = if smoke_test {
        eprintln!("no arguments: smoke test of both sinks on 2000 records (see --help)");
        vec![
            Opts {
                sink: Sink::Postgres,
                records: 2000,
                distinct: 300,
                ..opts.clone()
            },
            Opts {
                sink: Sink::Redis,
                records: 2000,
                distinct: 300,
                ..opts
            },
        ]
    } else {
        vec![opts]
    };
    for o in &runs {
        if let Err(e) = run(o) {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
