//! The `kinesis` spout against a real Kinesis-compatible server (kinesalite, address in
//! `TOPO_KINESIS_ENDPOINT`, default `http://127.0.0.1:4567`): every record of a 2-shard stream
//! read with replays of failed tuples, checkpoints of acked records and a restart from them, a
//! split shard (children read after the parent), undecodable JSON, a missing stream and an
//! unreachable endpoint. Every test uses streams and state directories of its own.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use topo_dsl::TopologyBuilder;
use topo_runtime::testing::CaptureBolt;
use topo_runtime::{BasicBolt, BasicCollector, BoltFactory, BoxError, TopologyHandle, Tuple};
use topo_spouts::{KinesisOptions, KinesisSpout, PayloadFormat, ReconnectOptions};
use topo_test_support::kinesis::{
    client, create_stream, delete_stream, endpoint, put, put_batched, wait_active,
};
use topo_test_support::unique;

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

/// Fails the first delivery of every k-th record (by the number in its data); records every
/// delivery as (shard, data).
#[derive(Clone)]
struct Flaky {
    every: usize,
    failed: Arc<Mutex<HashSet<String>>>,
    delivered: Arc<Mutex<Vec<(String, String)>>>,
}

impl Flaky {
    fn new(every: usize) -> Flaky {
        Flaky {
            every,
            failed: Arc::default(),
            delivered: Arc::default(),
        }
    }
    fn delivered(&self) -> Vec<(String, String)> {
        self.delivered.lock().expect("lock").clone()
    }
    fn data(&self) -> Vec<String> {
        let mut v: Vec<String> = self.delivered().into_iter().map(|(_, d)| d).collect();
        v.sort();
        v
    }
}

impl BasicBolt for Flaky {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let shard = input.str_field("shard")?.to_string();
        let data = input.str_field("data")?.to_string();
        let n: usize = data
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        if self.every > 0
            && n.is_multiple_of(self.every)
            && self.failed.lock().expect("lock").insert(data.clone())
        {
            return Err(format!("first delivery of {data} fails").into());
        }
        self.delivered.lock().expect("lock").push((shard, data));
        Ok(())
    }
}

fn run(spout: &KinesisSpout, parallelism: usize, bolt: &Flaky) -> TopologyHandle {
    let mut b = TopologyBuilder::new("kinesis-test");
    b.config_mut().max_spout_pending = Some(200);
    let s = spout.clone();
    b.set_spout("kinesis", move || s.clone(), parallelism);
    let f = bolt.clone();
    b.set_bolt("flaky", BoltFactory::basic(move || f.clone()), 2)
        .shuffle_grouping("kinesis");
    topo_runtime::submit(b.build().expect("a valid topology"))
}

/// The checkpoint files of a state directory: shard -> (sequence, ended).
fn checkpoints(dir: &std::path::Path) -> BTreeMap<String, (Option<String>, bool)> {
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
                    v["ended"] == true,
                ),
            );
        }
    }
    out
}

fn records(prefix: &str, range: std::ops::Range<usize>) -> Vec<(String, String)> {
    range
        .map(|i| (format!("key-{}", i % 17), format!("{prefix}-{i}")))
        .collect()
}

/// The last sequence number put to each shard.
fn last_per_shard(put: &[(String, String)]) -> BTreeMap<String, (Option<String>, bool)> {
    let mut m = BTreeMap::new();
    for (shard, seq) in put {
        m.insert(shard.clone(), (Some(seq.clone()), false));
    }
    m
}

// Guards at-least-once over a 2-shard stream: with every 7th record failing its first delivery,
// every record is delivered, failures are replayed, and each shard's checkpoint ends at its last
// record; then a restart reads only what was put after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_of_two_shards_is_delivered_checkpointed_and_resumed_after() {
    const N: usize = 400;
    let c = client().await;
    let stream = unique("two");
    create_stream(&c, &stream, 2).await;
    let state = tempfile::tempdir().expect("temp dir");
    let first = records("r", 0..N);
    let put1 = put(&c, &stream, &first).await;
    assert_eq!(
        put1.iter().map(|p| &p.0).collect::<HashSet<_>>().len(),
        2,
        "the keys spread over both shards"
    );

    let spout = KinesisSpout::new(options(&stream, state.path())).expect("valid options");
    let bolt = Flaky::new(7);
    let handle = run(&spout, 2, &bolt);
    let m = handle.wait_until_idle(WAIT).await.expect("idle");
    let s = m.component("kinesis").expect("the spout's figures");
    let failures = (0..N).filter(|i| i % 7 == 0).count() as u64;
    assert_eq!(s.acked(), N as u64, "each record acked once");
    assert_eq!(s.failed(), failures, "every 7th record failed once");
    let mut want: Vec<String> = first.iter().map(|r| r.1.clone()).collect();
    want.sort();
    assert_eq!(
        bolt.data(),
        want,
        "every record delivered exactly once after replays"
    );
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(spout.counters().records(), N as u64);
    assert_eq!(
        checkpoints(state.path()),
        last_per_shard(&put1),
        "each shard checkpointed at its last record"
    );

    // Restart from the checkpoints: only the new records are read.
    let second = records("s", N..N + 50);
    let put2 = put(&c, &stream, &second).await;
    let spout = KinesisSpout::new(options(&stream, state.path())).expect("valid options");
    let bolt = Flaky::new(0);
    let handle = run(&spout, 1, &bolt);
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    let mut want: Vec<String> = second.iter().map(|r| r.1.clone()).collect();
    want.sort();
    assert_eq!(bolt.data(), want, "a restart resumes after the checkpoint");
    let mut all = put1.clone();
    all.extend(put2);
    assert_eq!(checkpoints(state.path()), last_per_shard(&all));
    delete_stream(&c, &stream).await;
}

// Guards resharding: records of a shard that is split are all read before any record of its
// children (per key order kept), and the parent's checkpoint says it ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_split_children_are_read_after_their_parent() {
    let c = client().await;
    let stream = unique("split");
    create_stream(&c, &stream, 1).await;
    let state = tempfile::tempdir().expect("temp dir");
    let before = records("p", 0..60);
    let put_before = put(&c, &stream, &before).await;
    let parent = put_before[0].0.clone();
    c.split_shard()
        .stream_name(&stream)
        .shard_to_split(&parent)
        // The middle of the 128-bit hash key range.
        .new_starting_hash_key("170141183460469231731687303715884105728")
        .send()
        .await
        .expect("split the shard");
    wait_active(&c, &stream).await;
    let after = records("c", 60..120);
    let put_after = put(&c, &stream, &after).await;
    assert!(
        put_after.iter().all(|p| p.0 != parent),
        "new records go to the children"
    );

    let spout = KinesisSpout::new(options(&stream, state.path())).expect("valid options");
    let bolt = Flaky::new(0);
    let handle = run(&spout, 2, &bolt);
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    let delivered = bolt.delivered();
    assert_eq!(delivered.len(), 120, "every record read once");
    let last_parent = delivered
        .iter()
        .rposition(|(s, _)| *s == parent)
        .expect("parent records");
    let first_child = delivered
        .iter()
        .position(|(s, _)| *s != parent)
        .expect("child records");
    assert!(
        last_parent < first_child,
        "every parent record before the first child record"
    );
    assert_eq!(spout.counters().shards_ended(), 1);
    let cps = checkpoints(state.path());
    assert_eq!(
        cps.get(&parent).map(|c| c.1),
        Some(true),
        "parent ended: {cps:?}"
    );
    assert_eq!(
        cps.len(),
        3,
        "parent and both children checkpointed: {cps:?}"
    );
    delete_stream(&c, &stream).await;
}

// Guards bad records: data that is not JSON goes to the `error` stream with its reason, is
// counted, and still counts as handled for the checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_json_goes_to_the_error_stream() {
    let c = client().await;
    let stream = unique("json");
    create_stream(&c, &stream, 1).await;
    let state = tempfile::tempdir().expect("temp dir");
    let recs: Vec<(String, String)> = vec![
        ("a".into(), r#"{"device":"d1","temp":20.5}"#.into()),
        ("a".into(), "{not json".into()),
        ("a".into(), r#"{"device":"d2","temp":21}"#.into()),
        ("a".into(), "[1,2]".into()),
    ];
    let put1 = put(&c, &stream, &recs).await;
    let mut opts = options(&stream, state.path());
    opts.payload = PayloadFormat::Json;
    opts.fields = vec!["device".into(), "temp".into()];
    let spout = KinesisSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let mut b = TopologyBuilder::new("kinesis-json");
    let s = spout.clone();
    b.set_spout("kinesis", move || s.clone(), 1);
    b.set_bolt("sink", sink.factory(), 1)
        .shuffle_grouping("kinesis")
        .shuffle_grouping_stream("kinesis", "error");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    let tuples = sink.tuples();
    let good: Vec<String> = tuples
        .iter()
        .filter(|t| t.stream == "default")
        .map(|t| t.values[5].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(good, ["d1", "d2"]);
    let errors: Vec<String> = tuples
        .iter()
        .filter(|t| t.stream == "error")
        .map(|t| t.values[0].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("not valid JSON"), "{errors:?}");
    assert!(errors[1].contains("expected an object"), "{errors:?}");
    assert_eq!(spout.counters().malformed(), 2);
    assert_eq!(checkpoints(state.path()), last_per_shard(&put1));
    delete_stream(&c, &stream).await;
}

// Guards a missing stream: the error names the stream, the spout retries and, with a limit,
// gives up and ends instead of crashing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stream_is_named_in_the_error() {
    let c = client().await;
    // The server must be up for this test to mean anything.
    c.list_streams().send().await.unwrap_or_else(|e| {
        panic!(
            "kinesalite not reachable at {}: {}",
            endpoint(),
            aws_sdk_kinesis::error::DisplayErrorContext(&e)
        )
    });
    let state = tempfile::tempdir().expect("temp dir");
    let stream = unique("missing");
    let mut opts = options(&stream, state.path());
    opts.retry.attempts = Some(3);
    let spout = KinesisSpout::new(opts).expect("valid options");
    let handle = run(&spout, 1, &Flaky::new(0));
    handle
        .wait_until_idle(WAIT)
        .await
        .expect("ends after its retries");
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(spout.counters().errors(), 3, "tried 3 times");
    let e = spout.counters().last_error().expect("an error");
    assert!(
        e.contains(&format!("stream {stream:?} not found")),
        "the error names the stream: {e}"
    );
}

// Guards an unreachable endpoint: clear error, retries with back-off, no crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_retried_then_given_up() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let state = tempfile::tempdir().expect("temp dir");
    let mut opts = options("s", state.path());
    opts.endpoint = Some(format!("http://127.0.0.1:{port}"));
    opts.retry.attempts = Some(4);
    let spout = KinesisSpout::new(opts).expect("valid options");
    let handle = run(&spout, 1, &Flaky::new(0));
    handle
        .wait_until_idle(WAIT)
        .await
        .expect("ends after its retries");
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(spout.counters().errors(), 4);
    let e = spout.counters().last_error().expect("an error");
    assert!(e.contains("endpoint unreachable"), "{e}");
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
}

/// Throttling, as Kinesis answers over 5 reads/s per shard.
const THROTTLED: &str =
    r#"{"__type":"ProvisionedThroughputExceededException","message":"Rate exceeded for shard"}"#;
/// An iterator older than 5 minutes, as Kinesis answers it.
const EXPIRED: &str = r#"{"__type":"ExpiredIteratorException","message":"Iterator expired."}"#;

/// A proxy in front of the Kinesis server that forwards the first `pass` GetRecords calls,
/// answers the next `refuse` with the error `answer` (HTTP 400, as Kinesis does), and forwards
/// every other request. Returns its endpoint and the count of refused calls.
async fn fault_proxy(pass: u64, refuse: u64, answer: &'static str) -> (String, Arc<AtomicU64>) {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};

    #[derive(Clone)]
    struct St {
        calls: Arc<AtomicU64>,
        pass: u64,
        refuse: u64,
        answer: &'static str,
        refused: Arc<AtomicU64>,
        http: reqwest::Client,
        upstream: String,
    }
    async fn handle(State(st): State<St>, headers: HeaderMap, body: Bytes) -> Response {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if target.ends_with(".GetRecords") {
            let call = st.calls.fetch_add(1, Relaxed);
            if (st.pass..st.pass + st.refuse).contains(&call) {
                st.refused.fetch_add(1, Relaxed);
                return (
                    StatusCode::BAD_REQUEST,
                    [("content-type", "application/x-amz-json-1.1")],
                    st.answer,
                )
                    .into_response();
            }
        }
        let mut req = st.http.post(&st.upstream).body(body);
        for (k, v) in &headers {
            if k != "host" && k != "content-length" {
                req = req.header(k.as_str(), v.as_bytes());
            }
        }
        match req.send().await {
            Ok(r) => {
                let status =
                    StatusCode::from_u16(r.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                let ct = r
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/x-amz-json-1.1")
                    .to_string();
                let body = r.bytes().await.unwrap_or_default();
                (status, [("content-type", ct)], body).into_response()
            }
            Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
        }
    }
    let refused = Arc::new(AtomicU64::new(0));
    let st = St {
        calls: Arc::new(AtomicU64::new(0)),
        pass,
        refuse,
        answer,
        refused: refused.clone(),
        http: reqwest::Client::new(),
        upstream: endpoint(),
    };
    let app = axum::Router::new().fallback(handle).with_state(st);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), refused)
}

// Guards throttling: GetRecords refused with ProvisionedThroughputExceededException is backed
// off and retried (counted), and every record still arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_reads_back_off_and_every_record_arrives() {
    let c = client().await;
    let stream = unique("throttle");
    create_stream(&c, &stream, 1).await;
    let state = tempfile::tempdir().expect("temp dir");
    let recs = records("t", 0..30);
    put(&c, &stream, &recs).await;
    let (proxy, refused) = fault_proxy(0, 3, THROTTLED).await;
    let mut opts = options(&stream, state.path());
    opts.endpoint = Some(proxy);
    let spout = KinesisSpout::new(opts).expect("valid options");
    let bolt = Flaky::new(0);
    let handle = run(&spout, 1, &bolt);
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(refused.load(Relaxed), 3, "the proxy throttled 3 reads");
    assert_eq!(
        spout.counters().throttled(),
        3,
        "each throttled read counted"
    );
    let mut want: Vec<String> = recs.iter().map(|r| r.1.clone()).collect();
    want.sort();
    assert_eq!(bolt.data(), want);
    delete_stream(&c, &stream).await;
}

// Guards iterator renewal: an iterator that expires mid-shard (Kinesis expires them after 5
// minutes) is replaced by one after the last record read: every record arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_iterator_is_renewed_after_the_last_record_read() {
    let c = client().await;
    let stream = unique("expired");
    create_stream(&c, &stream, 1).await;
    let state = tempfile::tempdir().expect("temp dir");
    let recs = records("e", 0..30);
    put(&c, &stream, &recs).await;
    // The first read brings 10 records; the second finds its iterator expired.
    let (proxy, refused) = fault_proxy(1, 1, EXPIRED).await;
    let mut opts = options(&stream, state.path());
    opts.endpoint = Some(proxy);
    opts.max_records = 10;
    let spout = KinesisSpout::new(opts).expect("valid options");
    let bolt = Flaky::new(0);
    let handle = run(&spout, 1, &bolt);
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(refused.load(Relaxed), 1, "the proxy expired one iterator");
    assert_eq!(
        spout.counters().expired_iterators(),
        1,
        "the expiry counted"
    );
    let mut want: Vec<String> = recs.iter().map(|r| r.1.clone()).collect();
    want.sort();
    assert_eq!(bolt.data(), want, "each record once, none lost or repeated");
    delete_stream(&c, &stream).await;
}

/// A bolt that acks every tuple and counts them.
struct Count(Arc<AtomicU64>);

impl BasicBolt for Count {
    fn execute(&mut self, _input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        self.0.fetch_add(1, Relaxed);
        Ok(())
    }
}

// Measures the spout against the local server: 50,000 records of a 2-shard stream (put
// beforehand, 500 a call) read, emitted and acked with 1 spout task. The figure is bounded by
// the server (kinesalite, one Node.js process) and by one GetRecords per shard per
// `poll_interval` (200 ms, Kinesis's 5 reads/s); it goes in BENCHMARKS.md.
// Run: cargo test --release -p topo-spouts --test kinesis -- --ignored --nocapture throughput
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn throughput() {
    const N: usize = 50_000;
    let c = client().await;
    let stream = unique("bench");
    create_stream(&c, &stream, 2).await;
    let records: Vec<(String, String)> = (0..N)
        .map(|i| (format!("dev-{}", i % 100), format!("reading {i}")))
        .collect();
    put_batched(&c, &stream, &records).await;
    let state = tempfile::tempdir().expect("temp dir");
    let spout = KinesisSpout::new(options(&stream, state.path())).expect("valid options");
    let count = Arc::new(AtomicU64::new(0));
    let mut b = TopologyBuilder::new("kinesis-throughput");
    let s = spout.clone();
    b.set_spout("in", move || s.clone(), 1);
    let n = count.clone();
    b.set_bolt("count", BoltFactory::basic(move || Count(n.clone())), 2)
        .shuffle_grouping("in");
    let start = std::time::Instant::now();
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    handle.wait_until_idle(WAIT).await.expect("idle");
    let secs = start.elapsed().as_secs_f64();
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(count.load(Relaxed), N as u64);
    println!(
        "kinesis spout: {N} records read, emitted and acked in {secs:.2}s: {:.0} records/s",
        N as f64 / secs
    );
    delete_stream(&c, &stream).await;
}

/// Waits (bounded) until `cond` holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The shards of the records a bolt got whose data starts with `prefix`.
fn shards_of(bolt: &Flaky, prefix: &str) -> HashSet<String> {
    bolt.delivered()
        .into_iter()
        .filter(|(_, d)| d.starts_with(prefix))
        .map(|(s, _)| s)
        .collect()
}

// Guards shard leases between workers sharing a state directory (as two processes of one
// topology do): a worker alone reads all 4 shards; a second one joining gets 2 of them, handed
// back by the first after their emitted records are acked; when the first stops, the second
// takes its shards over. Every record is delivered exactly once across both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_the_shards_hand_them_back_and_take_them_over() {
    let c = client().await;
    let stream = unique("share");
    create_stream(&c, &stream, 4).await;
    let state = tempfile::tempdir().expect("temp dir");
    let mut opts = options(&stream, state.path());
    opts.stop_at_end = false;

    let a_spout = KinesisSpout::new(opts.clone()).expect("valid options");
    let a_bolt = Flaky::new(0);
    let a = run(&a_spout, 1, &a_bolt);
    eventually("the first worker holds the 4 shards", || {
        a_spout.counters().shards_held() == 4
    })
    .await;
    let first = records("a", 0..200);
    put(&c, &stream, &first).await;
    eventually("the first records are read", || {
        a_bolt.delivered().len() >= 200
    })
    .await;

    let b_spout = KinesisSpout::new(opts.clone()).expect("valid options");
    let b_bolt = Flaky::new(0);
    let b = run(&b_spout, 1, &b_bolt);
    eventually("each worker holds 2 shards", || {
        a_spout.counters().shards_held() == 2 && b_spout.counters().shards_held() == 2
    })
    .await;
    assert_eq!(a_spout.counters().shards_handed_back(), 2);
    let second = records("b", 0..200);
    let put2 = put(&c, &stream, &second).await;
    assert_eq!(
        put2.iter().map(|p| &p.0).collect::<HashSet<_>>().len(),
        4,
        "the keys spread over the 4 shards"
    );
    eventually("the second records are read", || {
        a_bolt.delivered().len() + b_bolt.delivered().len() >= 400
    })
    .await;
    let (sa, sb) = (shards_of(&a_bolt, "b-"), shards_of(&b_bolt, "b-"));
    assert!(sa.is_disjoint(&sb), "a shard read by both: {sa:?} {sb:?}");
    assert_eq!((sa.len(), sb.len()), (2, 2), "{sa:?} {sb:?}");

    a.stop(Duration::from_secs(5)).await;
    eventually("the second worker took the 4 shards over", || {
        b_spout.counters().shards_held() == 4
    })
    .await;
    let third = records("c", 0..200);
    put(&c, &stream, &third).await;
    eventually("the third records are read", || {
        shards_of(&b_bolt, "c-").len() == 4
            && b_bolt
                .delivered()
                .iter()
                .filter(|(_, d)| d.starts_with("c-"))
                .count()
                >= 200
    })
    .await;
    b.stop(Duration::from_secs(5)).await;

    let mut got = a_bolt.data();
    got.extend(b_bolt.data());
    got.sort();
    let mut want: Vec<String> = first
        .iter()
        .chain(&second)
        .chain(&third)
        .map(|r| r.1.clone())
        .collect();
    want.sort();
    assert_eq!(
        got, want,
        "every record exactly once across the two workers"
    );
    delete_stream(&c, &stream).await;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints (exactly-once).

/// kinesis (`parallelism` tasks) -> recorder, `guarantee = "exactly_once"`, checkpoints every
/// `interval` into `checkpoints`, started by `options` (the newest checkpoint, or one named).
fn run_checkpointed(
    spout: &KinesisSpout,
    parallelism: usize,
    bolt: &Flaky,
    checkpoints: &std::path::Path,
    interval: Duration,
    options: &topo_runtime::RunOptions,
) -> TopologyHandle {
    let mut b = TopologyBuilder::new("kinesis-eo");
    let s = spout.clone();
    b.set_spout("kinesis", move || s.clone(), parallelism);
    let f = bolt.clone();
    b.set_bolt("record", BoltFactory::basic(move || f.clone()), 2)
        .shuffle_grouping("kinesis");
    let config = topo_runtime::Config {
        guarantee: topo_runtime::Guarantee::ExactlyOnce,
        checkpoint_interval: interval,
        checkpoint_dir: Some(checkpoints.to_path_buf()),
        checkpoints_retained: 1000,
        max_spout_pending: Some(200),
        ..topo_runtime::Config::default()
    };
    let topology = b
        .build()
        .expect("a valid topology")
        .with_config(config)
        .expect("a valid config");
    topo_runtime::try_submit(topology, options).expect("the topology starts")
}

fn sorted_data(records: &[(String, String)]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|r| r.1.clone()).collect();
    v.sort();
    v
}

// Guards exactly-once with the kinesis spout: the shards' files are written only when a
// checkpoint completes (none while no checkpoint does; the stop's savepoint writes them); a run
// restored from a checkpoint, with another spout parallelism, reads exactly what follows it
// after each shard's sequence number; and a run restored from that same older checkpoint again
// (the files now ahead of it) reads the same records once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_run_reads_exactly_what_follows_its_checkpoint() {
    let c = client().await;
    let stream = unique("eo");
    create_stream(&c, &stream, 2).await;
    let state = tempfile::tempdir().expect("temp dir");
    let ck = tempfile::tempdir().expect("temp dir");
    let first = records("a", 0..200);
    put_batched(&c, &stream, &first).await;
    let mut opts = options(&stream, state.path());
    opts.stop_at_end = false;

    // No checkpoint during the run: no shard file.
    let spout = KinesisSpout::new(opts.clone()).expect("valid options");
    let bolt = Flaky::new(0);
    let handle = run_checkpointed(
        &spout,
        2,
        &bolt,
        ck.path(),
        Duration::from_secs(3600),
        &Default::default(),
    );
    eventually("the first 200 records", || bolt.delivered().len() >= 200).await;
    // Several polls later (more than one `checkpoint_interval` of the spout's own, 100 ms).
    let calls = spout.counters().get_records_calls();
    eventually("more GetRecords calls", || {
        spout.counters().get_records_calls() >= calls + 6
    })
    .await;
    assert!(
        checkpoints(state.path()).is_empty(),
        "no shard file without a completed checkpoint"
    );
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(bolt.data(), sorted_data(&first), "each record once");
    let savepoint = *topo_test_support::soak::checkpoint_ids(ck.path())
        .last()
        .expect("the stop's savepoint");
    let files = checkpoints(state.path());
    assert_eq!(
        files.len(),
        2,
        "both shards' files written by the savepoint: {files:?}"
    );

    // Restored (newest checkpoint, one spout task): only the new records.
    let second = records("b", 200..300);
    put_batched(&c, &stream, &second).await;
    let mut opts = options(&stream, state.path());
    opts.stop_at_end = true;
    let spout = KinesisSpout::new(opts.clone()).expect("valid options");
    let bolt = Flaky::new(0);
    let handle = run_checkpointed(
        &spout,
        1,
        &bolt,
        ck.path(),
        Duration::from_millis(20),
        &Default::default(),
    );
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(
        bolt.data(),
        sorted_data(&second),
        "what follows the checkpoint"
    );

    // Restored from the savepoint again, the files ahead of it: the same records once more.
    let spout = KinesisSpout::new(opts).expect("valid options");
    let bolt = Flaky::new(0);
    let handle = run_checkpointed(
        &spout,
        3,
        &bolt,
        ck.path(),
        Duration::from_millis(20),
        &topo_runtime::RunOptions {
            from_checkpoint: Some(savepoint.to_string()),
            ..Default::default()
        },
    );
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(
        bolt.data(),
        sorted_data(&second),
        "rewound to the savepoint: what follows it, once"
    );
    delete_stream(&c, &stream).await;
}

// Guards resharding with checkpoints: shards are owned by task (no hand-backs), a child is read
// once its parent's end is in a completed checkpoint (its file, written then, says so), every
// record is read once, parent records before child records, and each shard's file ends as the
// last checkpoint holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_checkpoints_children_are_read_after_their_parent_once() {
    let c = client().await;
    let stream = unique("eo-split");
    create_stream(&c, &stream, 1).await;
    let state = tempfile::tempdir().expect("temp dir");
    let ck = tempfile::tempdir().expect("temp dir");
    let before = records("p", 0..60);
    let put_before = put(&c, &stream, &before).await;
    let parent = put_before[0].0.clone();
    c.split_shard()
        .stream_name(&stream)
        .shard_to_split(&parent)
        .new_starting_hash_key("170141183460469231731687303715884105728")
        .send()
        .await
        .expect("split the shard");
    wait_active(&c, &stream).await;
    let after = records("c", 60..120);
    put(&c, &stream, &after).await;

    let spout = KinesisSpout::new(options(&stream, state.path())).expect("valid options");
    let bolt = Flaky::new(0);
    let handle = run_checkpointed(
        &spout,
        2,
        &bolt,
        ck.path(),
        Duration::from_millis(20),
        &Default::default(),
    );
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    let delivered = bolt.delivered();
    assert_eq!(delivered.len(), 120, "every record read once");
    let last_parent = delivered
        .iter()
        .rposition(|(s, _)| *s == parent)
        .expect("parent records");
    let first_child = delivered
        .iter()
        .position(|(s, _)| *s != parent)
        .expect("child records");
    assert!(
        last_parent < first_child,
        "every parent record before the first child record"
    );
    let cps = checkpoints(state.path());
    assert_eq!(
        cps.get(&parent).map(|c| c.1),
        Some(true),
        "parent ended: {cps:?}"
    );
    assert_eq!(cps.len(), 3, "parent and both children: {cps:?}");
    delete_stream(&c, &stream).await;
}
