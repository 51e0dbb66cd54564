//! File-sink benchmark: records/s, and records per CPU-second, of a `records -> file` topology
//! writing access-log-like records as JSON lines (fsync per batch), with or without gzip.
//!
//! ```text
//! cargo bench -p topo-spouts --bench file_sink -- --records 2000000
//! cargo bench -p topo-spouts --bench file_sink -- --records 2000000 --gzip
//! cargo bench -p topo-spouts --bench file_sink -- --records 2000000 --sink null
//! cargo bench -p topo-spouts --bench file_sink -- --help
//! ```
//!
//! The topology: `records` (1 spout task, 16 records per `next_tuple` call, each with a message
//! id, acking on) -shuffle-> `out` (1 task): the `file` sink (`--sink file`, default) or a sink
//! that acks every record at once and writes nothing (`--sink null`, the baseline: spout, acker
//! and transport only). On a [`LocalCluster`] of `--workers` threads (2 by default).
//!
//! - A record is `(ts, host, path, status, bytes)`: two ints, two short strings and an int —
//!   about 90 bytes as a JSON line.
//! - The sink writes batches of `--batch` records (500 by default), fsyncing each; files rotate
//!   at 64 MiB; they go to a fresh directory under the cargo target directory (`--dir` to choose),
//!   removed at the end (also after a failure) unless `--keep`.
//! - Wall time runs from `submit` until the topology is idle (every record acked, so written
//!   and synced). CPU time is the process's user + system time over the same span (all threads),
//!   so records per CPU-second is the cost of the whole pipeline on one core; the sink's own
//!   share is the difference with `--sink null`.
//! - Every run ends with a check: the files hold exactly the records emitted (count and the sum
//!   of `ts`), read back (through gzip with `--gzip`), or the run fails.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use topo_dsl::TopologyBuilder;
use topo_runtime::{
    Bolt, BoxError, LocalCluster, OutputCollector, OutputDeclarer, Spout, SpoutCollector, Tuple,
    values,
};
use topo_spouts::{FileSinkOptions, FileWriter};

const USAGE: &str = "\
file_sink benchmark

OPTIONS
  --records N        records to write                          (default 1000000)
  --gzip             gzip the files (one member per batch)
  --batch N          batch.max_records                         (default 500)
  --sink file|null   the file sink, or a sink that only acks   (default file)
  --workers N        runtime worker threads                    (default 2)
  --dir PATH         where the files go (default: a fresh directory in the target directory)
  --keep             keep the files
  --help

Without any argument (as `cargo test --all-targets` runs it): a quick check on 20000 records.
";

#[derive(Clone, Debug)]
struct Opts {
    records: u64,
    gzip: bool,
    batch: usize,
    null: bool,
    workers: usize,
    dir: Option<PathBuf>,
    keep: bool,
}

fn parse_args() -> Result<Opts, String> {
    let mut o = Opts {
        records: 1_000_000,
        gzip: false,
        batch: 500,
        null: false,
        workers: 2,
        dir: None,
        keep: false,
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
            "--records" => o.records = num(&a, args.next())?,
            "--gzip" => o.gzip = true,
            "--batch" => o.batch = num(&a, args.next())?,
            "--sink" => {
                o.null = match args.next().as_deref() {
                    Some("file") => false,
                    Some("null") => true,
                    other => return Err(format!("--sink: file or null, got {other:?}")),
                }
            }
            "--workers" => o.workers = num(&a, args.next())?,
            "--dir" => o.dir = Some(args.next().ok_or("--dir needs a value")?.into()),
            "--keep" => o.keep = true,
            other => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
        }
    }
    if o.records == 0 || o.batch == 0 || o.workers == 0 {
        return Err("--records, --batch and --workers must be at least 1".into());
    }
    Ok(o)
}

/// Emits `total` records, 16 per call, each tracked by its index; counts acks.
struct Records {
    next: u64,
    total: u64,
    acked: Arc<AtomicU64>,
}

const HOSTS: [&str; 4] = ["10.0.0.7", "10.0.0.9", "127.0.0.1", "192.168.1.20"];
const PATHS: [&str; 4] = [
    "/index.html",
    "/api/orders",
    "/missing.html",
    "/img/logo.png",
];

impl Spout for Records {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["ts", "host", "path", "status", "bytes"]);
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        for _ in 0..16 {
            if self.next >= self.total {
                break;
            }
            let i = self.next;
            self.next += 1;
            let k = (i % 4) as usize;
            out.emit(
                values![
                    1_700_000_000_000i64 + i as i64,
                    HOSTS[k],
                    PATHS[(i / 4 % 4) as usize],
                    [200i64, 404, 503, 304][k],
                    (i % 10_000) as i64
                ],
                Some(i),
            );
        }
        Ok(())
    }

    fn ack(&mut self, _: u64) {
        self.acked.fetch_add(1, Relaxed);
    }

    fn fail(&mut self, i: u64) {
        // A failed record is emitted again (the benchmark expects none).
        eprintln!("record {i} failed");
    }

    fn is_exhausted(&self) -> bool {
        self.next >= self.total
    }
}

/// Acks every input at once and writes nothing: the baseline.
struct NullSink;

impl Bolt for NullSink {
    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        out.ack(&input);
        Ok(())
    }
}

/// Reads back every file in `dir`: (records, sum of ts).
fn read_back(dir: &Path, gzip: bool) -> Result<(u64, i128), String> {
    let mut n = 0u64;
    let mut sum = 0i128;
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path.display().to_string();
        if name.ends_with(".part") {
            return Err(format!("{name}: still a .part file after the run"));
        }
        let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
        let reader: Box<dyn Read> = if gzip {
            Box::new(flate2::read::MultiGzDecoder::new(file))
        } else {
            Box::new(file)
        };
        for line in BufReader::new(reader).lines() {
            let line = line.map_err(|e| format!("{name}: {e}"))?;
            let v: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| format!("{name}: {e}: {line}"))?;
            sum += v["ts"].as_i64().ok_or("a record without ts")? as i128;
            n += 1;
        }
    }
    Ok((n, sum))
}

fn run(o: &Opts) -> Result<(), String> {
    let dir = match &o.dir {
        Some(d) => d.clone(),
        None => target_dir().join(format!("file-sink-bench-{}", std::process::id())),
    };
    let _cleanup = Cleanup((!o.keep).then(|| dir.clone()));
    let acked = Arc::new(AtomicU64::new(0));
    let mut b = TopologyBuilder::new("file-sink-bench");
    b.config_mut().worker_threads = o.workers;
    let (total, a) = (o.records, acked.clone());
    b.set_spout(
        "records",
        move || Records {
            next: 0,
            total,
            acked: a.clone(),
        },
        1,
    );
    if o.null {
        b.set_bolt("out", || NullSink, 1)
            .shuffle_grouping("records");
    } else {
        let mut fo = FileSinkOptions::new(&dir);
        fo.prefix = "bench".into();
        fo.gzip = o.gzip;
        fo.batch.max_records = o.batch;
        fo.batch.max_bytes = 64 << 20;
        fo.rotate.max_bytes = 64 << 20;
        let writer = FileWriter::new(fo)?;
        b.set_bolt("out", move || writer.clone().into_sink(), 1)
            .shuffle_grouping("records");
    }
    let topology = b.build().map_err(|e| format!("{e:?}"))?;
    let cluster = LocalCluster::new(o.workers).map_err(|e| e.to_string())?;
    let cpu0 = Duration::from_secs_f64(topo_test_support::cpu::own_cpu_seconds());
    let t0 = Instant::now();
    let handle = cluster.submit(topology);
    cluster
        .block_on(handle.wait_until_idle(Duration::from_secs(600)))
        .map_err(|e| format!("not idle: {e}"))?;
    let wall = t0.elapsed();
    let cpu = Duration::from_secs_f64(topo_test_support::cpu::own_cpu_seconds()) - cpu0;
    let report = cluster.block_on(handle.stop(Duration::from_secs(10)));
    if !report.drained {
        return Err(format!("stop did not drain: {report:?}"));
    }
    let n = o.records;
    if acked.load(Relaxed) != n {
        return Err(format!("acked {} of {n}", acked.load(Relaxed)));
    }
    let label = if o.null {
        "null sink".to_string()
    } else {
        format!(
            "file jsonl batch {}{}",
            o.batch,
            if o.gzip { " gzip" } else { "" }
        )
    };
    println!(
        "{label}: {n} records in {:.2} s wall, {:.2} s CPU: {:.0} records/s, {:.0} records per CPU-second",
        wall.as_secs_f64(),
        cpu.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        n as f64 / cpu.as_secs_f64()
    );
    if !o.null {
        let bytes: u64 = std::fs::read_dir(&dir)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        let (read, sum) = read_back(&dir, o.gzip)?;
        let expected: i128 = (0..n as i128).map(|i| 1_700_000_000_000 + i).sum();
        if read != n || sum != expected {
            return Err(format!(
                "the files hold {read} records (ts sum {sum}), expected {n} (ts sum {expected})"
            ));
        }
        println!(
            "  checked: {read} records read back; {:.1} MB on disk ({:.1} bytes/record)",
            bytes as f64 / 1e6,
            bytes as f64 / n as f64
        );
    }
    Ok(())
}

/// The cargo target directory (a bench binary lives in `<target>/<profile>/deps/`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// Removes the output directory when the run ends, however it ends.
struct Cleanup(Option<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn main() -> ExitCode {
    let smoke_test = std::env::args().len() == 1;
    let mut opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if smoke_test {
        eprintln!("no arguments: smoke test on 20000 records (see --help for the benchmark)");
        opts.records = 20_000;
    }
    let mut result = run(&opts);
    if smoke_test && result.is_ok() {
        opts.gzip = true;
        result = run(&opts);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
