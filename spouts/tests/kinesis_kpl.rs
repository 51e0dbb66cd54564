//! KPL aggregated records through the `kinesis` spout and sink, against a real
//! Kinesis-compatible server (kinesalite, `TOPO_KINESIS_ENDPOINT`) and an independent
//! implementation of the format (the Python package `aws-kinesis-agg`, installed by
//! `scripts/services start`): aggregates it writes are read as user records, replayed and
//! checkpointed one by one, resumed inside an aggregate; aggregates the sink writes it takes
//! apart, each on the shard of its records.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use topo_dsl::TopologyBuilder;
use topo_runtime::testing::{CaptureBolt, VecSpout};
use topo_runtime::{
    BasicBolt, BasicCollector, BoltFactory, BoxError, TopologyHandle, Tuple, Values, values,
};
use topo_spouts::{
    BatchOptions, BatchSink, KinesisOptions, KinesisSinkOptions, KinesisSpout, KinesisWriter,
    ReconnectOptions, RetryOptions,
};
use topo_test_support::kinesis::{
    client, create_stream, delete_stream, endpoint, put_raw, read_raw, shards,
};
use topo_test_support::{kpl, unique};

/// The longest any wait here may take.
const WAIT: Duration = Duration::from_secs(60);

fn options(stream: &str, state: &std::path::Path) -> KinesisOptions {
    KinesisOptions {
        stream: stream.into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        state_dir: Some(state.to_path_buf()),
        stop_at_end: true,
        checkpoint_interval: Duration::from_millis(100),
        shard_refresh: Duration::from_millis(200),
        retry: ReconnectOptions {
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            attempts: Some(0),
            max_retries: None,
        },
        ..KinesisOptions::default()
    }
}

/// One delivery as the bolt saw it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Delivery {
    data: String,
    partition_key: String,
    sequence: String,
    sub_sequence: i64,
}

/// Fails the first delivery of the records whose data is in `fail_once`, and every delivery
/// of those in `fail_always`; records every other delivery.
#[derive(Clone, Default)]
struct Picky {
    fail_once: Arc<Mutex<Vec<String>>>,
    fail_always: Vec<String>,
    delivered: Arc<Mutex<Vec<Delivery>>>,
}

impl Picky {
    fn delivered(&self) -> Vec<Delivery> {
        let mut v = self.delivered.lock().expect("lock").clone();
        v.sort();
        v
    }
}

impl BasicBolt for Picky {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let data = input.str_field("data")?.to_string();
        if self.fail_always.contains(&data) {
            return Err(format!("{data} always fails").into());
        }
        {
            let mut once = self.fail_once.lock().expect("lock");
            if let Some(i) = once.iter().position(|d| *d == data) {
                once.swap_remove(i);
                return Err(format!("first delivery of {data} fails").into());
            }
        }
        let d = Delivery {
            data,
            partition_key: input.str_field("partition_key")?.to_string(),
            sequence: input.str_field("sequence")?.to_string(),
            sub_sequence: input.int_field("sub_sequence")?,
        };
        self.delivered.lock().expect("lock").push(d);
        Ok(())
    }
}

fn run(spout: &KinesisSpout, bolt: &Picky, errors: &CaptureBolt) -> TopologyHandle {
    let mut b = TopologyBuilder::new("kinesis-kpl");
    b.config_mut().max_spout_pending = Some(100);
    let s = spout.clone();
    b.set_spout("kinesis", move || s.clone(), 1);
    let p = bolt.clone();
    b.set_bolt("picky", BoltFactory::basic(move || p.clone()), 2)
        .shuffle_grouping("kinesis");
    b.set_bolt("errors", errors.factory(), 1)
        .shuffle_grouping_stream("kinesis", "error");
    topo_runtime::submit(b.build().expect("a valid topology"))
}

/// The checkpoint files of a state directory: shard -> (sequence, sub-sequence).
fn checkpoints(dir: &std::path::Path) -> BTreeMap<String, (Option<String>, Option<u64>)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).expect("state dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "json") {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).expect("read")).expect("json");
            out.insert(
                v["shard"].as_str().expect("shard").to_string(),
                (
                    v["sequence"].as_str().map(str::to_string),
                    v["sub_sequence"].as_u64(),
                ),
            );
        }
    }
    out
}

async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// User records (partition key, data) `u-0`.. with 13 keys.
fn user_records(prefix: &str, n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            (
                format!("key-{}", i % 13),
                format!("{prefix}-{i}").into_bytes(),
            )
        })
        .collect()
}

// Guards de-aggregation against an independent writer: aggregates made by aws-kinesis-agg,
// plain records and a corrupt aggregate in a 2-shard stream. Every user record is delivered
// once (after the replay of the failed ones) with its own partition key, and with the sequence
// and sub-sequence numbers aws-kinesis-agg itself gives it when reading the same stored
// records; the corrupt aggregate goes to `error` with the reason; each shard's checkpoint ends
// at its last record, not inside an aggregate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_from_aws_kinesis_agg_are_read_as_user_records() {
    let c = client().await;
    let stream = unique("kpl-read");
    create_stream(&c, &stream, 2).await;
    let state = tempfile::tempdir().expect("temp dir");

    let users = user_records("u", 300);
    let aggregated = kpl::aggregate(&users, 600);
    assert!(
        aggregated.len() > 4 && aggregated.len() < 30,
        "{} aggregates",
        aggregated.len()
    );
    let mut corrupt = kpl::aggregate(&user_records("c", 5), 51_200).remove(0);
    *corrupt.data.last_mut().expect("a checksum") ^= 0x55;
    let mut to_put: Vec<(String, Option<String>, Vec<u8>)> = Vec::new();
    for (i, a) in aggregated.iter().enumerate() {
        to_put.push((
            a.partition_key.clone(),
            a.explicit_hash_key.clone(),
            a.data.clone(),
        ));
        if i % 3 == 0 {
            to_put.push((format!("plain-{i}"), None, format!("p-{i}").into_bytes()));
        }
        if i == 2 {
            to_put.push((corrupt.partition_key.clone(), None, corrupt.data.clone()));
        }
    }
    let put = put_raw(&c, &stream, &to_put).await;

    let spout = KinesisSpout::new(options(&stream, state.path())).expect("valid options");
    let bolt = Picky {
        fail_once: Arc::new(Mutex::new(vec![
            "u-3".into(),
            "u-100".into(),
            "u-299".into(),
        ])),
        ..Picky::default()
    };
    let errors = CaptureBolt::new();
    let handle = run(&spout, &bolt, &errors);
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;

    // What aws-kinesis-agg reads from the same stored records.
    let stored = read_raw(&c, &stream).await;
    let theirs = kpl::deaggregate(
        &stored
            .iter()
            .filter(|r| r.data != corrupt.data)
            .map(|r| (r.sequence.clone(), r.partition_key.clone(), r.data.clone()))
            .collect::<Vec<_>>(),
    );
    let mut want: Vec<Delivery> = theirs
        .iter()
        .map(|u| Delivery {
            data: String::from_utf8(u.data.clone()).expect("utf-8"),
            partition_key: u.partition_key.clone(),
            sequence: u.sequence.clone(),
            sub_sequence: u.sub_sequence.unwrap_or(0) as i64,
        })
        .collect();
    want.sort();
    assert_eq!(want.len(), 300 + to_put.len() - aggregated.len() - 1);
    let got = bolt.delivered();
    assert_eq!(
        got, want,
        "each user record once, as aws-kinesis-agg reads it"
    );
    for d in got.iter().filter(|d| d.data.starts_with("u-")) {
        let i: usize = d.data[2..].parse().expect("a number");
        assert_eq!(d.partition_key, format!("key-{}", i % 13), "{d:?}");
    }
    assert_eq!(spout.counters().aggregates(), aggregated.len() as u64);
    assert_eq!(spout.counters().records(), want.len() as u64);

    let errors = errors.tuples();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let reason = errors[0].values[0].as_str().unwrap_or("");
    assert!(
        reason.contains("MD5") && reason.contains("corrupt KPL aggregate"),
        "{reason}"
    );
    assert_eq!(spout.counters().malformed(), 1);

    let mut last: BTreeMap<String, (Option<String>, Option<u64>)> = BTreeMap::new();
    for (shard, seq) in put {
        last.insert(shard, (Some(seq), None));
    }
    assert_eq!(
        checkpoints(state.path()),
        last,
        "each shard checkpointed at its last record"
    );
    delete_stream(&c, &stream).await;
}

// Guards the resume point inside an aggregate (the KCL's extended sequence number): with the
// 7th of 10 user records failing every time, the checkpoint stops at the aggregate's sequence
// number and sub-sequence 5; a restart reads the aggregate again and delivers only user records
// 6 to 9 and the record after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_inside_an_aggregate_after_its_last_acked_user_record() {
    let c = client().await;
    let stream = unique("kpl-resume");
    create_stream(&c, &stream, 1).await;
    let state = tempfile::tempdir().expect("temp dir");
    let aggregated = kpl::aggregate(&user_records("u", 10), 51_200);
    assert_eq!(aggregated.len(), 1);
    let a = &aggregated[0];
    let put = put_raw(
        &c,
        &stream,
        &[
            (
                a.partition_key.clone(),
                a.explicit_hash_key.clone(),
                a.data.clone(),
            ),
            ("after".into(), None, b"p-after".to_vec()),
        ],
    )
    .await;

    let spout = KinesisSpout::new(options(&stream, state.path())).expect("valid options");
    let bolt = Picky {
        fail_always: vec!["u-6".into()],
        ..Picky::default()
    };
    let errors = CaptureBolt::new();
    let handle = run(&spout, &bolt, &errors);
    eventually("every record but u-6 is delivered", || {
        bolt.delivered().len() == 10
    })
    .await;
    let want = BTreeMap::from([(put[0].0.clone(), (Some(put[0].1.clone()), Some(5)))]);
    eventually(
        "the checkpoint holds user record 5 of the aggregate",
        || checkpoints(state.path()) == want,
    )
    .await;
    handle.stop(Duration::from_millis(300)).await;
    assert_eq!(checkpoints(state.path()), want);

    let spout = KinesisSpout::new(options(&stream, state.path())).expect("valid options");
    let bolt = Picky::default();
    let handle = run(&spout, &bolt, &errors);
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    let got: Vec<(String, i64)> = bolt
        .delivered()
        .into_iter()
        .map(|d| (d.data, d.sub_sequence))
        .collect();
    assert_eq!(
        got,
        [
            ("p-after".to_string(), 0),
            ("u-6".into(), 6),
            ("u-7".into(), 7),
            ("u-8".into(), 8),
            ("u-9".into(), 9)
        ]
    );
    assert_eq!(
        checkpoints(state.path()),
        BTreeMap::from([(put[1].0.clone(), (Some(put[1].1.clone()), None))])
    );
    assert!(errors.tuples().is_empty());
    delete_stream(&c, &stream).await;
}

// Guards `deaggregate = false`: an aggregate is one opaque record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_deaggregation_an_aggregate_is_one_record() {
    let c = client().await;
    let stream = unique("kpl-off");
    create_stream(&c, &stream, 1).await;
    let state = tempfile::tempdir().expect("temp dir");
    let a = kpl::aggregate(&user_records("u", 10), 51_200).remove(0);
    put_raw(
        &c,
        &stream,
        &[(a.partition_key.clone(), None, a.data.clone())],
    )
    .await;
    let mut opts = options(&stream, state.path());
    opts.deaggregate = false;
    opts.payload = topo_spouts::PayloadFormat::Bytes;
    let spout = KinesisSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let mut b = TopologyBuilder::new("kinesis-kpl-off");
    let s = spout.clone();
    b.set_spout("kinesis", move || s.clone(), 1);
    b.set_bolt("sink", sink.factory(), 1)
        .shuffle_grouping("kinesis");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    let tuples = sink.tuples();
    assert_eq!(tuples.len(), 1);
    assert_eq!(tuples[0].values[4].as_bytes(), Some(&a.data[..]));
    assert_eq!(spout.counters().aggregates(), 0);
    delete_stream(&c, &stream).await;
}

fn sink_options(stream: &str) -> KinesisSinkOptions {
    KinesisSinkOptions {
        stream: stream.into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        partition_key_field: "device".into(),
        data_field: Some("data".into()),
        batch: BatchOptions::new(5000, 1 << 20, Duration::from_millis(50)),
        retry: RetryOptions {
            attempts: Some(3),
            max_retries: None,
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        },
        aggregation: true,
        aggregation_max_bytes: 4096,
    }
}

// Guards the sink's aggregation against an independent reader: 3,000 inputs over 60 keys into a
// 3-shard stream. Far fewer Kinesis records are stored than inputs, each at most
// `aggregation_max_bytes`; aws-kinesis-agg takes every input out of them exactly once, with its
// partition key, each key's records in input order; and every user record sits on the shard
// its partition key maps to (the aggregates are grouped by shard).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregates_the_sink_writes_are_read_by_aws_kinesis_agg_on_the_right_shards() {
    const N: usize = 3000;
    let c = client().await;
    let stream = unique("kpl-write");
    create_stream(&c, &stream, 3).await;
    let inputs: Vec<Values> = (0..N)
        .map(|i| values![format!("dev-{}", i % 60), format!("reading {i}")])
        .collect();
    let opts = sink_options(&stream);
    opts.check().expect("valid options");
    let writer = KinesisWriter::new(opts.clone());
    let counters = writer.counters().clone();
    let spout = VecSpout::new(["device", "data"], inputs);
    let mut b = TopologyBuilder::new("kinesis-kpl-sink");
    b.set_spout("in", spout.factory(), 1);
    let (batch, retry) = (opts.batch.clone(), opts.retry.clone());
    b.set_bolt(
        "out",
        BoltFactory::full(move || BatchSink::new(writer.fresh(), batch.clone(), retry.clone())),
        2,
    )
    .fields_grouping("in", ["device"]);
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    eventually("every input is acked", || spout.all_acked()).await;
    handle.stop(Duration::from_secs(5)).await;
    assert!(
        spout.acked().iter().all(|&n| n == 1),
        "each input acked once"
    );
    assert_eq!(counters.put(), N as u64);

    let stored = read_raw(&c, &stream).await;
    assert!(
        stored.len() < N / 20,
        "{} Kinesis records for {N} inputs",
        stored.len()
    );
    assert_eq!(counters.aggregates(), stored.len() as u64);
    assert!(
        stored
            .iter()
            .all(|r| r.data.len() + r.partition_key.len() <= 4096 + 64)
    );
    let theirs = kpl::deaggregate(
        &stored
            .iter()
            .map(|r| (r.sequence.clone(), r.partition_key.clone(), r.data.clone()))
            .collect::<Vec<_>>(),
    );
    assert_eq!(theirs.len(), N, "every input once");
    assert!(
        theirs.iter().all(|u| u.sub_sequence.is_some()),
        "all aggregated"
    );
    // Each key's readings in input order.
    let mut per_key: HashMap<String, Vec<usize>> = HashMap::new();
    for u in &theirs {
        let data = String::from_utf8(u.data.clone()).expect("utf-8");
        let i: usize = data["reading ".len()..].parse().expect("a number");
        assert_eq!(u.partition_key, format!("dev-{}", i % 60));
        per_key.entry(u.partition_key.clone()).or_default().push(i);
    }
    assert_eq!(per_key.len(), 60);
    for (k, v) in &per_key {
        assert!(v.windows(2).all(|w| w[0] < w[1]), "{k} out of order: {v:?}");
        assert_eq!(v.len(), N / 60);
    }
    // Each user record on its key's shard: the MD5 of the key within the shard's range.
    let ranges: HashMap<String, (u128, u128)> = shards(&c, &stream)
        .await
        .iter()
        .map(|s| {
            let r = s.hash_key_range().expect("a range");
            (
                s.shard_id().to_string(),
                (
                    r.starting_hash_key().parse().expect("u128"),
                    r.ending_hash_key().parse().expect("u128"),
                ),
            )
        })
        .collect();
    let shard_of_sequence: HashMap<&str, &str> = stored
        .iter()
        .map(|r| (r.sequence.as_str(), r.shard.as_str()))
        .collect();
    let hashes = md5_of(per_key.keys());
    for u in &theirs {
        let hash = hashes[&u.partition_key];
        let (lo, hi) = ranges[shard_of_sequence[u.sequence.as_str()]];
        assert!(
            (lo..=hi).contains(&hash),
            "{} on the wrong shard",
            u.partition_key
        );
    }
    delete_stream(&c, &stream).await;
}

/// The hash key of each partition key (its MD5 as a big-endian integer), computed by Python's
/// standard library, independently of topo.
fn md5_of<'a>(keys: impl Iterator<Item = &'a String>) -> HashMap<String, u128> {
    let keys: Vec<&String> = keys.collect();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sys, hashlib\nfor k in sys.argv[1:]: print(int(hashlib.md5(k.encode()).hexdigest(), 16))")
        .args(&keys)
        .output()
        .expect("python3");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let hashes: Vec<u128> = text
        .lines()
        .map(|l| l.parse().expect("an integer"))
        .collect();
    assert_eq!(
        hashes.len(),
        keys.len(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    keys.into_iter().cloned().zip(hashes).collect()
}
