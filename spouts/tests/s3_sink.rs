//! The `s3` sink against a real S3-compatible server (moto, `TOPO_S3_ENDPOINT`, default
//! `http://127.0.0.1:9010`), its objects read back with boto3: every input stored once under
//! its time partition and acked once; CSV with a header per object and zstd; a large object as a
//! multipart upload; records with a bad time to `error`; a missing bucket and an unreachable
//! endpoint fail the inputs (replayed) with an error naming them, and a bucket created later
//! takes the replays. Every test uses a bucket of its own.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use topo_dsl::TopologyBuilder;
use topo_runtime::testing::{CaptureBolt, VecSpout};
use topo_runtime::{BoltFactory, Values, values};
use topo_spouts::{
    BatchOptions, BatchSink, FileFormat, RetryOptions, S3Compression, S3SinkCounters,
    S3SinkOptions, S3Writer,
};
use topo_test_support::s3::{Object, create_bucket, endpoint, objects, unique_bucket};

const WAIT: Duration = Duration::from_secs(60);

fn options(bucket: &str) -> S3SinkOptions {
    S3SinkOptions {
        url: format!("s3://{bucket}/raw/sensors"),
        endpoint: Some(endpoint()),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        batch: BatchOptions::new(1000, 16 << 20, Duration::from_millis(200)),
        retry: RetryOptions {
            attempts: Some(3),
            max_retries: None,
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        },
        ..S3SinkOptions::default()
    }
}

/// Runs `inputs` (fields `fields`) from a VecSpout through the sink (2 tasks) until `done` says
/// so; returns the spout, the error tuples and the counters.
async fn run(
    opts: S3SinkOptions,
    fields: &[&str],
    inputs: Vec<Values>,
    done: impl Fn(&VecSpout, &CaptureBolt) -> bool,
) -> (VecSpout, CaptureBolt, Arc<S3SinkCounters>) {
    let writer = S3Writer::new(opts.clone()).expect("valid options");
    let counters = writer.counters().clone();
    let spout = VecSpout::new(fields.iter().copied(), inputs);
    let errors = CaptureBolt::new();
    let mut b = TopologyBuilder::new("s3-sink");
    b.config_mut().message_timeout = Duration::from_secs(30);
    b.set_spout("in", spout.factory(), 1);
    let (batch, retry) = (opts.batch.clone(), opts.retry.clone());
    b.set_bolt(
        "archive",
        BoltFactory::full(move || BatchSink::new(writer.fresh(), batch.clone(), retry.clone())),
        2,
    )
    .shuffle_grouping("in");
    b.set_bolt("errors", errors.factory(), 1)
        .shuffle_grouping_stream("archive", "error");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    let start = std::time::Instant::now();
    while !done(&spout, &errors) {
        assert!(start.elapsed() < WAIT, "timed out waiting for the run");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.stop(Duration::from_secs(5)).await;
    (spout, errors, counters)
}

fn all_acked(spout: &VecSpout, _: &CaptureBolt) -> bool {
    spout.all_acked()
}

/// An object's records: its bytes decompressed by its name's extension, as lines.
fn lines(o: &Object) -> Vec<String> {
    let mut text = String::new();
    if o.key.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(&o.data[..])
            .read_to_string(&mut text)
            .expect("gzip");
    } else if o.key.ends_with(".zst") {
        text = String::from_utf8(zstd::decode_all(&o.data[..]).expect("zstd")).expect("utf-8");
    } else {
        text = String::from_utf8(o.data.clone()).expect("utf-8");
    }
    text.lines().map(str::to_string).collect()
}

// Guards the main path: 3,000 readings whose `ts` falls in two hours are stored, gzip JSON
// lines, under `raw/sensors/dt=2026-12-06/hour=18` and `.../hour=19`, each reading in the
// object of its own hour exactly once; every input is acked once; the counters add up; the
// object names follow the documented pattern.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_input_is_stored_once_under_its_time_partition() {
    let bucket = unique_bucket("s3-main");
    create_bucket(&bucket);
    const N: usize = 3000;
    // 2026-12-06T18:59:00Z + i * 50 ms: the first 1,200 in hour 18, the rest in hour 19.
    let t0: i64 = 1_796_583_540_000;
    let inputs: Vec<Values> = (0..N)
        .map(|i| values![format!("dev-{}", i % 7), i as i64, t0 + 50 * i as i64])
        .collect();
    let mut opts = options(&bucket);
    opts.time_field = Some("ts".into());
    let (spout, errors, counters) = run(opts, &["device", "n", "ts"], inputs, all_acked).await;
    assert!(
        spout.acked().iter().all(|&n| n == 1),
        "each input acked once"
    );
    assert!(errors.tuples().is_empty(), "{:?}", errors.tuples());

    let stored = objects(&bucket, "raw/sensors/");
    assert!(!stored.is_empty());
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for o in &stored {
        let parts: Vec<&str> = o.key.split('/').collect();
        assert_eq!(parts.len(), 5, "{}", o.key);
        assert_eq!(
            &parts[..3],
            ["raw", "sensors", "dt=2026-12-06"],
            "{}",
            o.key
        );
        let name = parts[4];
        assert!(
            name.starts_with("archive-") && name.ends_with(".jsonl.gz"),
            "{name}"
        );
        for line in lines(o) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
            let n = v["n"].as_i64().expect("n");
            let hour = if n < 1200 { "hour=18" } else { "hour=19" };
            assert_eq!(parts[3], hour, "reading {n} in {}", o.key);
            assert_eq!(v["device"], format!("dev-{}", n % 7));
            *seen.entry(n).or_default() += 1;
        }
    }
    assert_eq!(seen.len(), N, "every reading stored");
    assert!(seen.values().all(|&c| c == 1), "each reading once");
    assert_eq!(counters.records(), N as u64);
    assert_eq!(counters.objects(), stored.len() as u64);
    assert_eq!(
        counters.bytes(),
        stored.iter().map(|o| o.data.len() as u64).sum::<u64>()
    );
    assert_eq!(counters.failures(), 0);
}

// Guards CSV objects: chosen fields in order, a header line at the top of every object, zstd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_objects_have_a_header_each_and_zstd() {
    let bucket = unique_bucket("s3-csv");
    create_bucket(&bucket);
    let inputs: Vec<Values> = (0..500)
        .map(|i| values![format!("dev,{}", i % 3), i as i64, "unused"])
        .collect();
    let mut opts = options(&bucket);
    opts.format = FileFormat::Csv;
    opts.fields = vec!["n".into(), "device".into()];
    opts.compression = S3Compression::Zstd;
    opts.batch = BatchOptions::new(100, 1 << 20, Duration::from_millis(200));
    let (spout, errors, _) = run(opts, &["device", "n", "other"], inputs, all_acked).await;
    assert!(spout.acked().iter().all(|&n| n == 1));
    assert!(errors.tuples().is_empty());
    let stored = objects(&bucket, "raw/sensors/");
    assert!(
        stored.len() >= 5,
        "batches of at most 100: {}",
        stored.len()
    );
    let mut rows = Vec::new();
    for o in &stored {
        assert!(o.key.ends_with(".csv.zst"), "{}", o.key);
        let lines = lines(o);
        assert_eq!(lines[0], "n,device", "{}", o.key);
        rows.extend(lines[1..].iter().cloned());
    }
    rows.sort();
    let mut want: Vec<String> = (0..500).map(|i| format!("{i},\"dev,{}\"", i % 3)).collect();
    want.sort();
    assert_eq!(rows, want);
}

// Guards multipart uploads: records of 6 MiB of incompressible data with 5 MiB parts are each
// an object stored in two parts (its ETag says so), whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_object_is_a_multipart_upload() {
    let bucket = unique_bucket("s3-multi");
    create_bucket(&bucket);
    let mut rng = fastrand::Rng::with_seed(7);
    let noise: Vec<String> = (0..2)
        .map(|_| {
            (0..3 << 20)
                .map(|_| format!("{:02x}", rng.u8(..)))
                .collect()
        })
        .collect();
    let inputs: Vec<Values> = noise
        .iter()
        .enumerate()
        .map(|(i, n)| values![i as i64, n.clone()])
        .collect();
    let mut opts = options(&bucket);
    opts.compression = S3Compression::None;
    opts.part_size = 5 << 20;
    opts.batch = BatchOptions::new(100, 64 << 20, Duration::from_secs(20));
    let (spout, errors, counters) = run(opts, &["n", "noise"], inputs, all_acked).await;
    assert!(spout.acked().iter().all(|&n| n == 1));
    assert!(errors.tuples().is_empty());
    let stored = objects(&bucket, "raw/");
    assert!(!stored.is_empty());
    for o in &stored {
        assert!(
            o.data.len() > 5 << 20,
            "{} has {} bytes",
            o.key,
            o.data.len()
        );
        assert!(
            o.etag.ends_with("-2"),
            "a 2-part upload: {} {}",
            o.key,
            o.etag
        );
    }
    assert_eq!(counters.multipart(), stored.len() as u64);
    let mut got: Vec<(i64, String)> = stored
        .iter()
        .flat_map(lines)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(&l).expect("json");
            (
                v["n"].as_i64().expect("n"),
                v["noise"].as_str().expect("noise").to_string(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(i64, String)> = noise
        .into_iter()
        .enumerate()
        .map(|(i, n)| (i as i64, n))
        .collect();
    assert!(got == want, "every record once, whole");
}

// Guards records that cannot be placed: a missing `time_field`, text that is not RFC 3339, a
// value of another type each go to `error` with the reason; the others are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_with_a_bad_time_go_to_the_error_stream() {
    let bucket = unique_bucket("s3-bad");
    create_bucket(&bucket);
    let inputs = vec![
        values!["a", "2026-12-06T19:00:00Z"],
        values!["b", "yesterday"],
        values!["c", true],
        values!["d", 1_796_583_540_000i64],
    ];
    let mut opts = options(&bucket);
    opts.time_field = Some("ts".into());
    let (spout, errors, _) = run(opts, &["id", "ts"], inputs, all_acked).await;
    assert!(
        spout.acked().iter().all(|&n| n == 1),
        "bad records are acked too"
    );
    let mut reasons: Vec<String> = errors
        .tuples()
        .iter()
        .map(|t| t.values[0].as_str().unwrap_or("").to_string())
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("\"yesterday\" is not an RFC 3339 time"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("is a bool, expected ms since the epoch"),
        "{reasons:?}"
    );
    let keys: Vec<String> = objects(&bucket, "raw/")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert!(
        keys.iter().any(|k| k.contains("dt=2026-12-06/hour=19/")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.contains("dt=2026-12-06/hour=18/")),
        "{keys:?}"
    );
}

// Guards a missing bucket: the puts fail, the inputs are failed (replayed by the spout) and the
// error names the bucket and what to do; once the bucket exists the replays are stored and
// every input is acked, each reading stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_fails_the_inputs_until_it_exists() {
    let bucket = unique_bucket("s3-late");
    let inputs: Vec<Values> = (0..50).map(|i| values![i as i64]).collect();
    let opts = options(&bucket);
    let made = std::sync::atomic::AtomicBool::new(false);
    let (spout, _, counters) = run(opts, &["n"], inputs, |spout, _| {
        if !made.load(std::sync::atomic::Ordering::Relaxed)
            && spout.failed().iter().sum::<u32>() >= 2
        {
            create_bucket(&bucket);
            made.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        spout.all_acked()
    })
    .await;
    let error = counters.last_error().expect("an error was kept");
    assert!(
        error.contains(&format!("bucket {bucket:?} not found")) && error.contains("create it"),
        "{error}"
    );
    assert!(spout.acked().iter().all(|&n| n == 1));
    assert_eq!(
        stored_numbers(&bucket),
        (0..50).collect::<Vec<i64>>(),
        "each input stored once"
    );
}

// Guards an unreachable endpoint: the inputs are failed for replay, and the error names the
// object and the endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_fails_the_inputs() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let mut opts = options("nowhere");
    opts.endpoint = Some(format!("http://{addr}"));
    let inputs: Vec<Values> = (0..10).map(|i| values![i as i64]).collect();
    let (_, _, counters) = run(opts, &["n"], inputs, |spout, _| {
        spout.failed().iter().sum::<u32>() >= 2
    })
    .await;
    let error = counters.last_error().expect("an error was kept");
    assert!(
        error.contains("s3://nowhere/raw/sensors/") && error.contains(&addr.to_string()),
        "{error}"
    );
    assert!(counters.failures() >= 3);
}

#[test]
fn bad_options_name_the_option() {
    for (o, want) in [
        (
            S3SinkOptions {
                url: "bucket/x".into(),
                ..S3SinkOptions::default()
            },
            "option `url` = \"bucket/x\": expected s3://bucket",
        ),
        (
            S3SinkOptions {
                endpoint: Some("localhost:9000".into()),
                ..options("b-ok")
            },
            "option `endpoint`",
        ),
        (
            S3SinkOptions {
                partition: "%Y/%".into(),
                ..options("b-ok")
            },
            "option `partition`",
        ),
    ] {
        let e = S3Writer::new(o).err().expect("refused");
        assert!(e.contains(want), "{want:?} not in {e:?}");
    }
}

// Measures the sink against the local server: 200,000 readings (~80 bytes of JSON each) through
// 2 sink tasks with `max_spout_pending` 20,000, each input acked once its object is stored;
// prints records/s, the objects stored and their mean size. The figure goes in BENCHMARKS.md.
// Run: cargo test --release -p topo-spouts --test s3_sink -- --ignored --nocapture throughput
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn throughput() {
    for compression in [
        S3Compression::Gzip,
        S3Compression::Zstd,
        S3Compression::None,
    ] {
        const N: usize = 200_000;
        let bucket = unique_bucket("s3-bench");
        create_bucket(&bucket);
        let t0: i64 = 1_796_583_540_000;
        let inputs: Vec<Values> = (0..N)
            .map(|i| {
                values![
                    format!("sensor-{:04}", i % 10),
                    20.0 + (i % 97) as f64 / 10.0,
                    t0 + i as i64
                ]
            })
            .collect();
        let mut opts = options(&bucket);
        opts.compression = compression;
        opts.time_field = Some("ts".into());
        opts.batch = BatchOptions::new(100_000, 64 << 20, Duration::from_secs(5));
        let writer = S3Writer::new(opts.clone()).expect("valid options");
        let counters = writer.counters().clone();
        let spout = VecSpout::new(["device", "temperature", "ts"], inputs);
        let mut b = TopologyBuilder::new("s3-bench");
        b.config_mut().max_spout_pending = Some(20_000);
        b.set_spout("in", spout.factory(), 1);
        let (batch, retry) = (opts.batch.clone(), opts.retry.clone());
        b.set_bolt(
            "archive",
            BoltFactory::full(move || BatchSink::new(writer.fresh(), batch.clone(), retry.clone())),
            2,
        )
        .shuffle_grouping("in");
        let start = std::time::Instant::now();
        let handle = topo_runtime::submit(b.build().expect("a valid topology"));
        while !spout.all_acked() {
            assert!(start.elapsed() < WAIT * 2, "timed out");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let secs = start.elapsed().as_secs_f64();
        handle.stop(Duration::from_secs(5)).await;
        assert_eq!(counters.records(), N as u64);
        println!(
            "s3 sink ({compression:?}): {N} records stored and acked in {secs:.2}s: {:.0} records/s; {} objects, {:.0} records and {:.1} KiB each on average",
            N as f64 / secs,
            counters.objects(),
            N as f64 / counters.objects() as f64,
            counters.bytes() as f64 / counters.objects() as f64 / 1024.0
        );
    }
}

/// The numbers (field `n`) of every record stored under `raw/`, sorted.
fn stored_numbers(bucket: &str) -> Vec<i64> {
    let mut ns: Vec<i64> = objects(bucket, "raw/")
        .iter()
        .flat_map(lines)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(&l).expect("json")["n"]
                .as_i64()
                .expect("n")
        })
        .collect();
    ns.sort();
    ns
}

// Guards exactly-once: objects written before a barrier are staged (multipart uploads not
// completed: invisible) and appear only when their checkpoint completes; a task restored from a
// checkpoint whose objects were completed before the crash does not make them again, and one
// restored from a checkpoint whose completion the crash prevented completes them once, however
// often it is restored.
#[test]
fn exactly_once_objects_appear_with_their_checkpoint_and_once() {
    use topo_runtime::testing::BoltTester;
    let bucket = unique_bucket("s3-eo");
    create_bucket(&bucket);
    let mut opts = options(&bucket);
    opts.batch = BatchOptions::new(2, 1 << 20, Duration::from_secs(3600));
    let writer = S3Writer::new(opts.clone()).expect("valid options");
    let make = move || BatchSink::new(writer.fresh(), opts.batch.clone(), opts.retry.clone());
    let config = topo_runtime::Config {
        guarantee: topo_runtime::Guarantee::ExactlyOnce,
        ..topo_runtime::Config::default()
    };

    let mut first = BoltTester::full_with(make.clone(), ["n"], config.clone(), None);
    first.execute_all([values![1i64], values![2i64], values![3i64]]);
    assert!(
        stored_numbers(&bucket).is_empty(),
        "a full batch is staged, not visible"
    );
    let (one, _) = first.checkpoint().expect("checkpoint 1");
    assert!(
        stored_numbers(&bucket).is_empty(),
        "visible only once the checkpoint completes"
    );
    first.execute_all([values![4i64]]);
    let done = first.checkpoint_complete(one.id());
    assert_eq!(done.errors, 0);
    assert_eq!(
        stored_numbers(&bucket),
        [1, 2, 3],
        "checkpoint 1's records, not the one after"
    );

    // A crash after checkpoint 1 completed: the restored task completes nothing twice.
    let mut second = BoltTester::full_with(make.clone(), ["n"], config.clone(), Some(&one));
    assert_eq!(second.tick().errors, 0);
    assert_eq!(stored_numbers(&bucket), [1, 2, 3]);
    // The spout replays 4; checkpoint 2 is taken and the process dies before it completes.
    second.execute_all([values![4i64], values![5i64]]);
    let (two, _) = second.checkpoint().expect("checkpoint 2");
    drop(second);
    assert_eq!(stored_numbers(&bucket), [1, 2, 3]);

    // Restored from checkpoint 2 (complete, its objects staged): completed at the first idle
    // moment, once; restored from it again, nothing is added.
    let mut third = BoltTester::full_with(make.clone(), ["n"], config.clone(), Some(&two));
    assert_eq!(third.tick().errors, 0);
    assert_eq!(stored_numbers(&bucket), [1, 2, 3, 4, 5]);
    let mut fourth = BoltTester::full_with(make, ["n"], config, Some(&two));
    assert_eq!(fourth.tick().errors, 0);
    assert_eq!(stored_numbers(&bucket), [1, 2, 3, 4, 5], "each record once");
}
