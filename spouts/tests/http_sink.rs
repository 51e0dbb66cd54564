//! The `http` sink against a real HTTP server (axum on 127.0.0.1): exact bodies (NDJSON, JSON
//! array, gzip), headers, retries on 503/429 then success, rejection (400) to the `error` stream,
//! an unreachable endpoint, option errors — and, through a real topology with acking, the
//! endpoint killed mid-run and started again: every record arrives, every message is acked once.

use std::collections::{BTreeSet, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use topo_dsl::TopologyBuilder;
use topo_runtime::testing::{BoltTester, VecSpout};
use topo_runtime::{Config, LocalCluster, Value, Values, values};
use topo_spouts::{HttpEncoding, HttpSinkOptions, HttpWriter};

/// One request the server took.
#[derive(Clone, Debug)]
struct Request {
    content_type: String,
    content_encoding: Option<String>,
    authorization: Option<String>,
    /// The body, gunzipped when sent with `Content-Encoding: gzip`.
    body: String,
}

#[derive(Default)]
struct Shared {
    /// Requests answered 2xx.
    stored: Vec<Request>,
    /// Every request, answered or not.
    seen: usize,
    /// Answers to give before storing: (status, Retry-After, body).
    script: VecDeque<(u16, Option<&'static str>, &'static str)>,
    /// Time each request takes before it is answered.
    delay: Duration,
}

#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Shared>>);

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn stored(&self) -> Vec<Request> {
        self.lock().stored.clone()
    }
    /// Every record stored, in arrival order, as JSON objects.
    fn records(&self) -> Vec<serde_json::Value> {
        self.stored().iter().flat_map(records_of).collect()
    }
}

fn records_of(r: &Request) -> Vec<serde_json::Value> {
    if r.content_type == "application/json" {
        match serde_json::from_str(&r.body).expect("a JSON body") {
            serde_json::Value::Array(a) => a,
            other => panic!("not an array: {other}"),
        }
    } else {
        r.body
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }
}

async fn ingest(State(rec): State<Recorder>, headers: HeaderMap, body: Bytes) -> Response {
    let delay = rec.lock().delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_encoding = header("content-encoding");
    let body = if content_encoding.as_deref() == Some("gzip") {
        let mut s = String::new();
        if flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut s)
            .is_err()
        {
            return (StatusCode::BAD_REQUEST, "bad gzip").into_response();
        }
        s
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let mut shared = rec.lock();
    shared.seen += 1;
    if let Some((status, retry_after, text)) = shared.script.pop_front() {
        let status = StatusCode::from_u16(status).expect("status");
        return match retry_after {
            Some(secs) => (status, [("retry-after", secs)], text).into_response(),
            None => (status, text).into_response(),
        };
    }
    shared.stored.push(Request {
        content_type: header("content-type").unwrap_or_default(),
        content_encoding,
        authorization: header("authorization"),
        body,
    });
    StatusCode::NO_CONTENT.into_response()
}

/// An HTTP server on its own runtime; dropping it kills it (connections included).
struct Server {
    runtime: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
}

impl Server {
    fn start(rec: &Recorder, addr: SocketAddr) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("server runtime");
        // Rebinding the port of a server just killed can take a moment: bounded retries.
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match runtime.block_on(tokio::net::TcpListener::bind(addr)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("bind {addr}: {e}"),
            }
        };
        let addr = listener.local_addr().expect("addr");
        let app = Router::new()
            .route("/ingest", post(ingest))
            .with_state(rec.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        Server {
            runtime: Some(runtime),
            addr,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/ingest", self.addr)
    }

    /// Stops the server at once: every task, listener and connection is dropped.
    fn kill(mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

fn opts(url: &str) -> HttpSinkOptions {
    let mut o = HttpSinkOptions::new(url);
    o.batch.max_records = 3;
    o.retry.backoff = Duration::from_millis(1);
    o.retry.max_backoff = Duration::from_millis(5);
    o.timeout = Duration::from_secs(5);
    o
}

fn tester(o: HttpSinkOptions) -> BoltTester {
    let writer = HttpWriter::new(o).expect("valid options");
    BoltTester::full(move || writer.clone().into_sink(), ["id", "msg"])
}

fn rec(i: i64) -> Values {
    values![i, format!("record {i}")]
}

fn json(i: i64) -> serde_json::Value {
    serde_json::json!({"id": i, "msg": format!("record {i}")})
}

#[test]
fn ndjson_batches_arrive_exactly_and_acks_follow_the_answer() {
    let rec_ = Recorder::default();
    let server = Server::start(&rec_, local());
    let mut o = opts(&server.url());
    o.headers
        .insert("Authorization".into(), "Bearer secret".into());
    let mut t = tester(o);
    assert!(t.execute(rec(0)).acked_inputs.is_empty());
    assert!(t.execute(rec(1)).acked_inputs.is_empty());
    assert!(
        rec_.stored().is_empty(),
        "nothing sent before the batch is full"
    );
    assert_eq!(t.execute(rec(2)).acked_inputs, vec![0, 1, 2]);
    let stored = rec_.stored();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].content_type, "application/x-ndjson");
    assert_eq!(stored[0].content_encoding, None);
    assert_eq!(stored[0].authorization.as_deref(), Some("Bearer secret"));
    assert_eq!(
        stored[0].body,
        "{\"id\":0,\"msg\":\"record 0\"}\n{\"id\":1,\"msg\":\"record 1\"}\n{\"id\":2,\"msg\":\"record 2\"}\n"
    );
    t.execute(rec(3));
    assert_eq!(
        t.finish().acked_inputs,
        vec![3],
        "finish sends the last batch"
    );
    assert_eq!(rec_.records(), (0..4).map(json).collect::<Vec<_>>());
}

#[test]
fn json_encoding_sends_one_array_per_batch() {
    let rec_ = Recorder::default();
    let server = Server::start(&rec_, local());
    let mut o = opts(&server.url());
    o.encoding = HttpEncoding::Json;
    let mut t = tester(o);
    for i in 0..5 {
        t.execute(rec(i));
    }
    assert_eq!(t.finish().acked_inputs, vec![3, 4]);
    let stored = rec_.stored();
    assert_eq!(stored.len(), 2);
    for r in &stored {
        assert_eq!(r.content_type, "application/json");
    }
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&stored[1].body).expect("json"),
        serde_json::json!([json(3), json(4)])
    );
    assert_eq!(rec_.records(), (0..5).map(json).collect::<Vec<_>>());
}

#[test]
fn gzip_bodies_are_decoded_by_the_server() {
    for encoding in [HttpEncoding::Ndjson, HttpEncoding::Json] {
        let rec_ = Recorder::default();
        let server = Server::start(&rec_, local());
        let mut o = opts(&server.url());
        o.gzip = true;
        o.encoding = encoding;
        let mut t = tester(o);
        for i in 0..4 {
            t.execute(rec(i));
        }
        t.finish();
        let stored = rec_.stored();
        assert!(
            stored
                .iter()
                .all(|r| r.content_encoding.as_deref() == Some("gzip"))
        );
        assert_eq!(rec_.records(), (0..4).map(json).collect::<Vec<_>>());
    }
}

#[test]
fn retries_on_503_then_succeeds_and_acks_once() {
    let rec_ = Recorder::default();
    rec_.lock().script = VecDeque::from([(503, None, "busy"), (503, None, "busy")]);
    let server = Server::start(&rec_, local());
    let mut t = tester(opts(&server.url()));
    t.execute(rec(0));
    t.execute(rec(1));
    let run = t.execute(rec(2));
    assert_eq!(run.acked_inputs, vec![0, 1, 2]);
    assert!(run.failed_inputs.is_empty());
    assert_eq!(run.errors, 0);
    assert_eq!(rec_.lock().seen, 3, "two refusals, then stored");
    assert_eq!(rec_.records(), (0..3).map(json).collect::<Vec<_>>());
    assert!(t.finish().acked_inputs.is_empty(), "acked once");
}

#[test]
fn retry_after_is_waited_for_up_to_max_backoff() {
    let rec_ = Recorder::default();
    rec_.lock().script = VecDeque::from([(429, Some("30"), "slow down")]);
    let server = Server::start(&rec_, local());
    let mut o = opts(&server.url());
    o.retry.max_backoff = Duration::from_millis(200);
    let mut t = tester(o);
    t.execute(rec(0));
    t.execute(rec(1));
    let started = Instant::now();
    let run = t.execute(rec(2));
    let waited = started.elapsed();
    assert_eq!(run.acked_inputs, vec![0, 1, 2]);
    assert!(
        waited >= Duration::from_millis(200),
        "Retry-After honoured: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(20),
        "capped by retry.max_backoff: {waited:?}"
    );
}

#[test]
fn a_destination_down_through_every_try_fails_the_inputs() {
    let rec_ = Recorder::default();
    rec_.lock().script = VecDeque::from([(500, None, "down"); 3]);
    let server = Server::start(&rec_, local());
    let mut o = opts(&server.url());
    o.retry.attempts = Some(3);
    let mut t = tester(o);
    t.execute(rec(0));
    t.execute(rec(1));
    let run = t.execute(rec(2));
    assert!(run.acked_inputs.is_empty());
    assert_eq!(
        run.failed_inputs,
        vec![0, 1, 2],
        "failed so the spout replays them"
    );
    assert_eq!(run.errors, 1);
    assert_eq!(rec_.lock().seen, 3);
    // The replays go through once the destination answers again.
    for i in 0..3 {
        t.execute(rec(i));
    }
    assert_eq!(rec_.records(), (0..3).map(json).collect::<Vec<_>>());
}

#[test]
fn an_unreachable_endpoint_is_retried_then_fails_the_inputs() {
    // A port nothing listens on: bind one, then let it go.
    let addr = std::net::TcpListener::bind(local())
        .expect("bind")
        .local_addr()
        .expect("addr");
    let mut o = opts(&format!("http://{addr}/ingest"));
    o.retry.attempts = Some(2);
    o.batch.max_records = 1;
    let mut t = tester(o);
    let run = t.execute(rec(0));
    assert_eq!(run.failed_inputs, vec![0]);
    assert_eq!(run.errors, 1);
}

#[test]
fn a_400_sends_the_records_to_the_error_stream_and_acks_them() {
    let rec_ = Recorder::default();
    let long = "x".repeat(500);
    let long: &'static str = Box::leak(long.into_boxed_str());
    rec_.lock().script = VecDeque::from([(400, None, long)]);
    let server = Server::start(&rec_, local());
    let mut t = tester(opts(&server.url()));
    t.execute(rec(0));
    t.execute(rec(1));
    let run = t.execute(rec(2));
    assert_eq!(
        run.acked_inputs,
        vec![0, 1, 2],
        "replaying would be refused again"
    );
    assert_eq!(rec_.lock().seen, 1, "a refusal is not retried");
    assert_eq!(run.emitted.len(), 3);
    let reason = format!(
        "HTTP 400 Bad Request from {}: {}",
        server.url(),
        "x".repeat(200)
    );
    for (i, e) in run.emitted.iter().enumerate() {
        assert_eq!(e.stream, "error");
        assert!(e.anchored);
        assert_eq!(e.values[0].as_str(), Some(reason.as_str()));
        let Value::Map(m) = &e.values[1] else {
            panic!("record: {:?}", e.values[1]);
        };
        assert_eq!(m.get("id"), Some(&Value::from(i as i64)));
    }
    // The next batch is sent normally.
    for i in 3..6 {
        t.execute(rec(i));
    }
    assert_eq!(rec_.records(), (3..6).map(json).collect::<Vec<_>>());
}

fn option_error(toml_text: &str) -> String {
    let o: HttpSinkOptions = match toml::from_str(toml_text) {
        Ok(o) => o,
        Err(e) => return e.message().to_string(),
    };
    match HttpWriter::new(o) {
        Ok(_) => panic!("accepted: {toml_text}"),
        Err(e) => e,
    }
}

#[test]
fn option_errors_name_the_option_and_value() {
    assert_eq!(
        option_error("url = \"ftp://h/x\""),
        "option `url` must be an http:// or https:// address with a host, got \"ftp://h/x\""
    );
    assert_eq!(
        option_error("url = \"not a url\""),
        "option `url` is not a valid URL (relative URL without a base): \"not a url\""
    );
    assert_eq!(
        option_error("url = \"http://h/\"\nheaders = { \"a b\" = \"x\" }"),
        "option `headers`: \"a b\" is not a valid header name"
    );
    assert_eq!(
        option_error("url = \"http://h/\"\nheaders = { A = \"x\\ny\" }"),
        "option `headers`: the value of \"A\" is not a valid header value"
    );
    assert_eq!(
        option_error("url = \"http://h/\"\ntimeout = \"0s\""),
        "option `timeout` must be longer than 0s"
    );
    assert_eq!(
        option_error("url = \"http://h/\"\nbatch = { interval = \"0s\" }"),
        "option `batch.interval` must be longer than 0s"
    );
    assert!(option_error("url = \"http://h/\"\nencoding = \"xml\"").contains("unknown variant"));
    assert!(option_error("encoding = \"json\"").contains("missing field `url`"));
    assert!(option_error("url = \"http://h/\"\nretries = 3").contains("unknown field `retries`"));
}

/// The must-show: the destination is killed while batches are pending, and started
/// again later on the same port. Every record reaches it at least once, every spout message is
/// acked exactly once, and the kill really made messages fail and be replayed.
#[test]
fn the_destination_killed_mid_run_loses_nothing() {
    const N: i64 = 600;
    let rec_ = Recorder::default();
    // Each request takes 2 ms, so the run lasts long enough to be cut in the middle.
    rec_.lock().delay = Duration::from_millis(2);
    let server = Server::start(&rec_, local());
    let addr = server.addr;

    let mut o = HttpSinkOptions::new(server.url());
    o.batch.max_records = 10;
    o.batch.interval = Duration::from_millis(20);
    o.retry.attempts = Some(3);
    o.retry.backoff = Duration::from_millis(10);
    o.retry.max_backoff = Duration::from_millis(40);
    o.timeout = Duration::from_secs(2);
    let writer = HttpWriter::new(o).expect("valid options");

    let spout = VecSpout::new(["id", "msg"], (0..N).map(rec).collect());
    let mut b = TopologyBuilder::new("http-kill");
    b.config_mut().max_spout_pending = Some(50);
    b.config_mut().worker_threads = 2;
    b.set_spout("source", spout.factory(), 1);
    b.set_bolt("ship", move || writer.clone().into_sink(), 2)
        .shuffle_grouping("source");
    let topology = b.build().expect("valid topology");
    let config: Config = topology.config().clone();
    assert!(config.acking());
    let cluster = LocalCluster::new(2).expect("cluster");
    let handle = cluster.submit(topology);

    // Some batches stored, then the server dies with the rest still to come.
    let some = wait_for(Duration::from_secs(20), || rec_.records().len() >= 100);
    assert!(some, "the server received batches");
    server.kill();
    let received_before = rec_.records().len();
    assert!(
        (received_before as i64) < N,
        "killed mid-run: {received_before} of {N} received"
    );
    // The sink's writes now fail through every try: messages are failed and replayed.
    // Stay down until replays have failed again too (several rounds of failed batches).
    let failed = wait_for(Duration::from_secs(20), || {
        spout.failed().iter().sum::<u32>() >= 60
    });
    assert!(failed, "messages failed while the destination was down");
    let before_restart = rec_.records().len();
    assert_eq!(before_restart, received_before, "nothing stored while down");

    let _server = Server::start(&rec_, addr);
    let idle = cluster.block_on(handle.wait_until_idle(Duration::from_secs(60)));
    assert!(idle.is_ok(), "the topology drained: {:?}", idle.err());
    cluster.block_on(handle.stop(Duration::from_secs(5)));

    let ids: BTreeSet<i64> = rec_
        .records()
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    let missing: Vec<i64> = (0..N).filter(|i| !ids.contains(i)).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    assert!(
        spout.acked().iter().all(|&n| n == 1),
        "every message acked exactly once: {:?}",
        spout.acked()
    );
    let failed: u32 = spout.failed().iter().sum();
    assert!(failed > 0);
    assert!(
        spout.emitted() >= N as u64 + failed as u64,
        "failed messages were replayed"
    );
    eprintln!(
        "received before the kill: {received_before}; failed: {failed}; emitted: {}; stored: {}",
        spout.emitted(),
        rec_.records().len()
    );
    for r in rec_.records() {
        let id = r["id"].as_i64().expect("id");
        assert_eq!(r, json(id), "records arrive intact");
    }
}

// Guards: with acking on and few trees pending, a batch of 20,000 with an interval of an hour
// never fills; it is POSTed each time the sink's input runs dry, so every record arrives and is
// acked within the bound (the old behaviour waited out the hour).
#[test]
fn a_big_batch_with_a_long_interval_is_posted_when_the_input_runs_dry() {
    const N: i64 = 600;
    const PENDING: usize = 50;
    let rec_ = Recorder::default();
    let server = Server::start(&rec_, local());
    let mut o = HttpSinkOptions::new(server.url());
    o.batch.max_records = 20_000;
    o.batch.interval = Duration::from_secs(3600);
    o.timeout = Duration::from_secs(5);
    let writer = HttpWriter::new(o).expect("valid options");
    let spout = VecSpout::new(["id", "msg"], (0..N).map(rec).collect());
    let mut b = TopologyBuilder::new("http-dry");
    b.config_mut().max_spout_pending = Some(PENDING);
    b.config_mut().worker_threads = 2;
    b.set_spout("source", spout.factory(), 1);
    b.set_bolt("ship", move || writer.clone().into_sink(), 2)
        .shuffle_grouping("source");
    let cluster = LocalCluster::new(2).expect("cluster");
    let handle = cluster.submit(b.build().expect("valid topology"));
    let idle = cluster.block_on(handle.wait_until_idle(Duration::from_secs(60)));
    assert!(idle.is_ok(), "not idle within 60 s: {:?}", idle.err());
    cluster.block_on(handle.stop(Duration::from_secs(5)));
    assert_eq!(
        spout.acked(),
        vec![1; N as usize],
        "every message acked once"
    );
    let mut ids: Vec<i64> = rec_
        .records()
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    ids.sort();
    assert_eq!(ids, (0..N).collect::<Vec<_>>(), "every record posted once");
    let requests = rec_.stored().len();
    assert!(
        (N as usize / PENDING..=N as usize).contains(&requests),
        "{requests} batches for {N} records, {PENDING} pending at most"
    );
}

/// Polls `cond` every 2 ms for at most `timeout`.
fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    cond()
}
