//! The `kinesis` sink against a real Kinesis-compatible server (kinesalite, address in
//! `TOPO_KINESIS_ENDPOINT`, default `http://127.0.0.1:4567`): every input put to a 2-shard
//! stream (read back with GetRecords) and acked once; batches over the PutRecords limits split;
//! inputs without a partition key to the `error` stream; a missing stream and an unreachable
//! endpoint fail the inputs (replayed) with an error naming them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use topo_dsl::TopologyBuilder;
use topo_runtime::testing::{CaptureBolt, VecSpout};
use topo_runtime::{BoltFactory, Value, Values, values};
use topo_spouts::{
    BatchOptions, BatchSink, KinesisSinkCounters, KinesisSinkOptions, KinesisWriter, RetryOptions,
};
use topo_test_support::kinesis::{client, create_stream, delete_stream, endpoint, read_all};
use topo_test_support::unique;

const WAIT: Duration = Duration::from_secs(60);

/// Every record of the stream as (partition key, data), sorted.
async fn keyed(c: &Client, stream: &str) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = read_all(c, stream)
        .await
        .into_iter()
        .map(|r| (r.partition_key, r.data))
        .collect();
    v.sort();
    v
}

/// Every input as (partition key, data), sorted: what the stream holds once each is put.
fn keyed_inputs(inputs: &[Values]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = inputs
        .iter()
        .map(|v| {
            (
                v[0].as_str().unwrap_or("").to_string(),
                v[1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn options(stream: &str) -> KinesisSinkOptions {
    KinesisSinkOptions {
        stream: stream.into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".into()),
        partition_key_field: "device".into(),
        data_field: Some("data".into()),
        batch: BatchOptions::new(500, 1 << 20, Duration::from_millis(50)),
        retry: RetryOptions {
            attempts: Some(3),
            max_retries: None,
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        },
        ..KinesisSinkOptions::default()
    }
}

/// Runs `inputs` from a VecSpout through the sink until every input is acked (or, with
/// `until_acked` false, until two fails); returns the spout, the error tuples and the counters.
async fn run(
    opts: KinesisSinkOptions,
    inputs: Vec<Values>,
    until_acked: bool,
) -> (VecSpout, CaptureBolt, Arc<KinesisSinkCounters>) {
    opts.check().expect("valid options");
    let writer = KinesisWriter::new(opts.clone());
    let counters = writer.counters().clone();
    let spout = VecSpout::new(["device", "data"], inputs);
    let errors = CaptureBolt::new();
    let mut b = TopologyBuilder::new("kinesis-sink");
    b.config_mut().message_timeout = Duration::from_secs(30);
    b.set_spout("in", spout.factory(), 1);
    let (batch, retry) = (opts.batch.clone(), opts.retry.clone());
    b.set_bolt(
        "out",
        BoltFactory::full(move || BatchSink::new(writer.fresh(), batch.clone(), retry.clone())),
        2,
    )
    .fields_grouping("in", ["device"]);
    b.set_bolt("errors", errors.factory(), 1)
        .shuffle_grouping_stream("out", "error");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    let start = std::time::Instant::now();
    if until_acked {
        while !spout.all_acked() {
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for every input to be acked"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    } else {
        while spout.failed().iter().sum::<u32>() < 2 {
            assert!(
                start.elapsed() < WAIT,
                "timed out waiting for failed inputs"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    handle.stop(Duration::from_secs(5)).await;
    (spout, errors, counters)
}

/// Checks a run in which every input is put: each input acked once, nothing on the error
/// stream, and the stream holding `want` (as [`keyed_inputs`] gives it), each record once.
async fn assert_each_put_once(
    c: &Client,
    stream: &str,
    spout: &VecSpout,
    errors: &CaptureBolt,
    want: Vec<(String, String)>,
) {
    assert!(
        spout.acked().iter().all(|&n| n == 1),
        "each input acked once"
    );
    assert!(errors.tuples().is_empty());
    assert_eq!(
        keyed(c, stream).await,
        want,
        "every record in the stream once"
    );
}

// Guards the sink's main path: every input is put to a 2-shard stream with its partition key,
// and acked exactly once; a batch bigger than one call's 5 MiB is split.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_input_is_put_and_acked_once() {
    let c = client().await;
    let stream = unique("all");
    create_stream(&c, &stream, 2).await;
    let mut inputs: Vec<Values> = (0..1000)
        .map(|i| values![format!("dev-{}", i % 13), format!("reading {i}")])
        .collect();
    // Six records of 900 KB of one key (one sink task): over 5 MiB together, so their batch
    // needs two PutRecords calls.
    let big = "x".repeat(900_000);
    for i in 0..6 {
        inputs.push(values!["big", format!("{big}{i}")]);
    }
    let want = keyed_inputs(&inputs);
    let mut opts = options(&stream);
    opts.batch.max_bytes = 5 << 20;
    let (spout, errors, _) = run(opts, inputs, true).await;
    assert!(spout.failed().iter().all(|&n| n == 0));
    assert_each_put_once(&c, &stream, &spout, &errors, want).await;
    delete_stream(&c, &stream).await;
}

// Guards bad input: a tuple whose partition key is missing or empty goes to `error` (acked), the
// others are put.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_without_a_partition_key_go_to_the_error_stream() {
    let c = client().await;
    let stream = unique("bad");
    create_stream(&c, &stream, 1).await;
    let inputs = vec![
        values!["d1", "ok 1"],
        values![Value::Null, "no key"],
        values!["", "empty key"],
        values!["d2", "ok 2"],
    ];
    let (spout, errors, _) = run(options(&stream), inputs, true).await;
    assert!(spout.acked().iter().all(|&n| n == 1));
    let reasons: Vec<String> = errors
        .tuples()
        .iter()
        .map(|t| t.values[0].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("is a null")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("0 characters")),
        "{reasons:?}"
    );
    assert_eq!(
        keyed(&c, &stream).await,
        [("d1".into(), "ok 1".into()), ("d2".into(), "ok 2".into())]
    );
    delete_stream(&c, &stream).await;
}

// Guards a missing stream: the inputs are failed (so replayed), never acked, and the error
// names the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stream_fails_the_inputs_with_its_name() {
    let c = client().await;
    c.list_streams()
        .send()
        .await
        .unwrap_or_else(|e| panic!("kinesalite not reachable at {}: {e}", endpoint()));
    let stream = unique("missing");
    let (spout, _, counters) = run(
        options(&stream),
        vec![values!["d1", "a"], values!["d2", "b"]],
        false,
    )
    .await;
    assert!(spout.acked().iter().all(|&n| n == 0), "nothing acked");
    let e = counters.last_error().expect("an error");
    assert!(e.contains(&format!("stream {stream:?} not found")), "{e}");
    assert!(counters.call_failures() >= 3, "retried");
}

// Guards an unreachable endpoint: the inputs are failed (replayed) after the retries, with a
// clear error naming the endpoint; no crash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_fails_the_inputs_with_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let mut opts = options("s");
    opts.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let (spout, _, counters) = run(opts, vec![values!["d1", "a"], values!["d2", "b"]], false).await;
    assert!(spout.acked().iter().all(|&n| n == 0), "nothing acked");
    let e = counters.last_error().expect("an error");
    assert!(e.contains("endpoint unreachable"), "{e}");
    assert!(counters.call_failures() >= 3, "retried");
}

#[test]
fn bad_options_name_the_option() {
    let base = options("s");
    let cases: Vec<(KinesisSinkOptions, &str)> = vec![
        (
            KinesisSinkOptions {
                stream: String::new(),
                ..base.clone()
            },
            "option `stream`",
        ),
        (
            KinesisSinkOptions {
                partition_key_field: String::new(),
                ..base.clone()
            },
            "option `partition_key_field`",
        ),
        (
            KinesisSinkOptions {
                batch: BatchOptions::new(501, base.batch.max_bytes, base.batch.interval),
                ..base.clone()
            },
            "option `batch.max_records` = 501",
        ),
        (
            KinesisSinkOptions {
                batch: BatchOptions::new(base.batch.max_records, 6 << 20, base.batch.interval),
                ..base.clone()
            },
            "option `batch.max_bytes`",
        ),
        (
            KinesisSinkOptions {
                endpoint: Some("localhost:4567".into()),
                ..base.clone()
            },
            "option `endpoint`",
        ),
        (
            KinesisSinkOptions {
                secret_access_key: None,
                ..base.clone()
            },
            "go together",
        ),
    ];
    for (o, want) in cases {
        let e = o.check().expect_err("refused");
        assert!(e.contains(want), "{e:?} should contain {want:?}");
    }
    assert!(base.check().is_ok());
}

/// A proxy in front of the Kinesis server that, in the first `calls` PutRecords requests,
/// passes on only every other record and answers the others `ProvisionedThroughputExceeded`
/// inside a successful reply (the partial failure Kinesis gives under load); every other
/// request is forwarded as it is. Returns its URL and the count of entries it refused.
async fn partial_failure_proxy(calls: u64) -> (String, Arc<AtomicU64>) {
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};

    #[derive(Clone)]
    struct St {
        left: Arc<AtomicU64>,
        refused: Arc<AtomicU64>,
        http: reqwest::Client,
        upstream: String,
    }
    async fn forward(
        st: &St,
        headers: &HeaderMap,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), String> {
        let mut req = st.http.post(&st.upstream).body(body);
        for (k, v) in headers {
            if k != "host" && k != "content-length" {
                req = req.header(k.as_str(), v.as_bytes());
            }
        }
        let r = req.send().await.map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        Ok((status, r.bytes().await.map_err(|e| e.to_string())?.to_vec()))
    }
    async fn handle(State(st): State<St>, headers: HeaderMap, body: Bytes) -> Response {
        let json = [("content-type", "application/x-amz-json-1.1")];
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let partial = target.ends_with(".PutRecords")
            && st
                .left
                .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
                .is_ok();
        if !partial {
            return match forward(&st, &headers, body.to_vec()).await {
                Ok((s, b)) => (
                    StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_GATEWAY),
                    json,
                    b,
                )
                    .into_response(),
                Err(e) => (StatusCode::BAD_GATEWAY, e).into_response(),
            };
        }
        let mut req: serde_json::Value = serde_json::from_slice(&body).expect("a JSON request");
        let records = req["Records"].as_array().cloned().unwrap_or_default();
        let kept: Vec<serde_json::Value> = records.iter().step_by(2).cloned().collect();
        req["Records"] = serde_json::Value::Array(kept);
        let (status, upstream) =
            match forward(&st, &headers, serde_json::to_vec(&req).expect("json")).await {
                Ok(r) => r,
                Err(e) => return (StatusCode::BAD_GATEWAY, e).into_response(),
            };
        if status != 200 {
            return (
                StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                json,
                upstream,
            )
                .into_response();
        }
        let up: serde_json::Value = serde_json::from_slice(&upstream).expect("a JSON reply");
        let mut accepted = up["Records"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter();
        let mut results = Vec::new();
        let mut failed = 0;
        for i in 0..records.len() {
            if i % 2 == 0 {
                results.push(accepted.next().unwrap_or_default());
            } else {
                failed += 1;
                results.push(serde_json::json!({
                    "ErrorCode": "ProvisionedThroughputExceededException",
                    "ErrorMessage": "Rate exceeded for shard"
                }));
            }
        }
        st.refused.fetch_add(failed, Relaxed);
        let reply = serde_json::json!({ "FailedRecordCount": failed, "Records": results });
        (
            StatusCode::OK,
            json,
            serde_json::to_vec(&reply).expect("json"),
        )
            .into_response()
    }
    let refused = Arc::new(AtomicU64::new(0));
    let st = St {
        left: Arc::new(AtomicU64::new(calls)),
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

// Guards per-entry failures: entries refused inside a successful PutRecords reply are sent
// again (alone, after a back-off) until accepted; each record lands once and each input is
// acked once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_refused_inside_a_reply_are_retried_alone() {
    let c = client().await;
    let stream = unique("partial");
    create_stream(&c, &stream, 2).await;
    let (proxy, refused) = partial_failure_proxy(2).await;
    let mut opts = options(&stream);
    opts.endpoint = Some(proxy);
    opts.retry.attempts = Some(5);
    let inputs: Vec<Values> = (0..40)
        .map(|i| values!["dev", format!("reading {i}")])
        .collect();
    let mut want: Vec<(String, String)> = inputs
        .iter()
        .map(|v| ("dev".to_string(), v[1].as_str().unwrap_or("").to_string()))
        .collect();
    want.sort();
    let (spout, errors, counters) = run(opts, inputs, true).await;
    assert!(
        spout.acked().iter().all(|&n| n == 1),
        "each input acked once"
    );
    assert!(
        spout.failed().iter().all(|&n| n == 0),
        "nothing failed: the retries succeeded"
    );
    assert!(errors.tuples().is_empty());
    assert!(refused.load(Relaxed) > 0);
    assert_eq!(
        counters.entry_failures(),
        refused.load(Relaxed),
        "each refused entry counted"
    );
    assert_eq!(
        keyed(&c, &stream).await,
        want,
        "each record in the stream exactly once"
    );
    delete_stream(&c, &stream).await;
}

// Measures the sink against the local server: 50,000 small records through 2 sink tasks into a
// 2-shard stream, each input acked once its record is accepted. The figure is bounded by the
// server (kinesalite, one Node.js process), not by the sink; it goes in BENCHMARKS.md.
// Run: cargo test --release -p topo-spouts --test kinesis_sink -- --ignored --nocapture throughput
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn throughput() {
    measure_throughput(false).await;
}

// The same with `aggregation = true` (batches of up to 5,000 records packed per shard into
// aggregates of the default 51,200 bytes).
// Run: cargo test --release -p topo-spouts --test kinesis_sink -- --ignored --nocapture throughput
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn throughput_aggregated() {
    measure_throughput(true).await;
}

async fn measure_throughput(aggregation: bool) {
    const N: usize = 50_000;
    let c = client().await;
    let stream = unique("bench");
    create_stream(&c, &stream, 2).await;
    let inputs: Vec<Values> = (0..N)
        .map(|i| values![format!("dev-{}", i % 100), format!("reading {i}")])
        .collect();
    let mut opts = options(&stream);
    opts.batch.interval = Duration::from_millis(200);
    if aggregation {
        opts.aggregation = true;
        opts.batch.max_records = 5000;
    }
    let start = std::time::Instant::now();
    let (spout, errors, counters) = run(opts, inputs, true).await;
    let secs = start.elapsed().as_secs_f64();
    assert!(spout.acked().iter().all(|&n| n == 1));
    assert!(errors.tuples().is_empty());
    let stored = read_all(&c, &stream).await.len();
    println!(
        "kinesis sink (aggregation {aggregation}): {N} records put and acked in {secs:.2}s: {:.0} records/s; {stored} Kinesis records stored ({} aggregates)",
        N as f64 / secs,
        counters.aggregates()
    );
    delete_stream(&c, &stream).await;
}

// Guards: a batch of 500 (the most PutRecords takes) with an interval of an hour never fills
// with 300 inputs; it is put each time the sink's input runs dry, so every input is in the
// stream and acked within the bound (the old behaviour waited out the hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_a_long_interval_is_put_when_the_input_runs_dry() {
    let c = client().await;
    let stream = unique("dry");
    create_stream(&c, &stream, 2).await;
    let inputs: Vec<Values> = (0..300)
        .map(|i| values![format!("dev-{}", i % 7), format!("reading {i}")])
        .collect();
    let want = keyed_inputs(&inputs);
    let mut opts = options(&stream);
    opts.batch.max_records = 500;
    opts.batch.max_bytes = 5 << 20;
    opts.batch.interval = Duration::from_secs(3600);
    let (spout, errors, _) = run(opts, inputs, true).await;
    assert_each_put_once(&c, &stream, &spout, &errors, want).await;
    delete_stream(&c, &stream).await;
}
