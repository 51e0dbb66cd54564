//! The `http` spout against a real HTTP client (reqwest) over loopback: body formats, field
//! extraction, refusals with their reasons, backpressure, answers only after the ack, and
//! at-least-once delivery under injected bolt failures.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use topo_dsl::TopologyBuilder;
use topo_runtime::testing::CaptureBolt;
use topo_runtime::{
    BasicBolt, BasicCollector, Bolt, BoltFactory, BoxError, OutputCollector, TopologyHandle, Tuple,
    Value,
};
use topo_spouts::{HttpFormat, HttpOptions, HttpSpout};

/// The longest any wait here may take.
const WAIT: Duration = Duration::from_secs(20);

fn options() -> HttpOptions {
    HttpOptions {
        address: "127.0.0.1:0".into(),
        path: "/ingest".into(),
        ..HttpOptions::default()
    }
}

/// Waits (bounded) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A running spout: its handle, the base URL and a client.
struct Running {
    spout: HttpSpout,
    handle: TopologyHandle,
    url: String,
    client: reqwest::Client,
}

impl Running {
    /// POSTs `body` to the ingest path with this Content-Type; the status, headers and body.
    async fn post(&self, content_type: &str, body: impl Into<reqwest::Body>) -> Answer {
        let r = self
            .client
            .post(format!("{}/ingest", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("a response");
        Answer::of(r).await
    }
}

/// A response, read whole.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: serde_json::Value,
}

impl Answer {
    async fn of(r: reqwest::Response) -> Answer {
        let status = r.status();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ascii").to_string());
        let text = r.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        Answer {
            status,
            retry_after,
            body,
        }
    }

    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_default()
    }
}

/// Runs `spout` into `bolt` (its `default` and `error` streams), with `ackers` acker tasks,
/// and waits until it listens.
async fn start_with(spout: HttpSpout, bolt: BoltFactory, ackers: usize) -> Running {
    let mut b = TopologyBuilder::new("http");
    b.config_mut().ackers = ackers;
    let s = spout.clone();
    b.set_spout("ingest", move || s.clone(), 1);
    b.set_bolt("sink", bolt, 1)
        .shuffle_grouping("ingest")
        .shuffle_grouping_stream("ingest", "error");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    until("the server to listen", || spout.local_addr().is_some()).await;
    let url = format!("http://{}", spout.local_addr().expect("listening"));
    let running = Running {
        spout,
        handle,
        url,
        client: reqwest::Client::new(),
    };
    // Accepting once the spout task is active.
    until_healthy(&running).await;
    running
}

async fn start(opts: HttpOptions, sink: &CaptureBolt) -> Running {
    start_with(
        HttpSpout::new(opts).expect("valid options"),
        sink.factory(),
        1,
    )
    .await
}

async fn health(r: &Running) -> StatusCode {
    r.client
        .get(format!("{}/health", r.url))
        .send()
        .await
        .expect("a response")
        .status()
}

async fn until_healthy(r: &Running) {
    let start = Instant::now();
    while health(r).await != StatusCode::OK {
        assert!(start.elapsed() < WAIT, "timed out waiting for /health");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The values captured on `stream`.
fn captured(sink: &CaptureBolt, stream: &str) -> Vec<Vec<Value>> {
    sink.tuples()
        .iter()
        .filter(|c| c.stream == stream)
        .map(|c| c.values.to_vec())
        .collect()
}

fn json(v: serde_json::Value) -> Value {
    serde_json::from_value(v).expect("a value")
}

// Guards the auto format: a JSON object, a JSON array, NDJSON (blank line, CRLF) and text lines
// each become records, every request answered 200 with its count once its records are acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_object_array_ndjson_and_text_become_records() {
    let sink = CaptureBolt::new();
    let r = start(options(), &sink).await;

    let a = r
        .post("application/json", r#"{"a": 1, "b": {"c": [true, null]}}"#)
        .await;
    assert_eq!(
        (a.status, a.body["accepted"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{a:?}"
    );
    let a = r
        .post(
            "application/json; charset=utf-8",
            r#"[{"n": 1}, {"n": 2}, {"n": 3}]"#,
        )
        .await;
    assert_eq!(
        (a.status, a.body["accepted"].as_u64()),
        (StatusCode::OK, Some(3)),
        "{a:?}"
    );
    let a = r
        .post(
            "application/x-ndjson",
            "{\"m\": \"x\"}\r\n\n{\"m\": \"y\"}\n",
        )
        .await;
    assert_eq!(
        (a.status, a.body["accepted"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{a:?}"
    );
    let a = r
        .post("text/plain", "first line\r\nsecond line\n\nlast")
        .await;
    assert_eq!(
        (a.status, a.body["accepted"].as_u64()),
        (StatusCode::OK, Some(4)),
        "{a:?}"
    );
    let a = r.post("application/jsonlines", "").await;
    assert_eq!(
        (a.status, a.body["accepted"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{a:?}"
    );

    // Every request was answered after its acks, so everything is captured by now.
    let got: Vec<Value> = captured(&sink, "default")
        .into_iter()
        .map(|mut v| v.remove(0))
        .collect();
    let want = vec![
        json(serde_json::json!({"a": 1, "b": {"c": [true, null]}})),
        json(serde_json::json!({"n": 1})),
        json(serde_json::json!({"n": 2})),
        json(serde_json::json!({"n": 3})),
        json(serde_json::json!({"m": "x"})),
        json(serde_json::json!({"m": "y"})),
        Value::from("first line"),
        Value::from("second line"),
        Value::from(""),
        Value::from("last"),
    ];
    assert_eq!(got, want);
    let c = r.spout.counters();
    assert_eq!((c.requests(), c.accepted(), c.records()), (5, 5, 10));
    assert_eq!(r.spout.pending_records(), 0);
    r.handle.stop(Duration::from_secs(5)).await;
}

// Guards `fields`: the named top-level keys become the fields, a missing key is null, nested
// values stay maps and lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_pick_top_level_keys_and_missing_ones_are_null() {
    let sink = CaptureBolt::new();
    let r = start(
        HttpOptions {
            fields: Some(vec!["host".into(), "status".into(), "tags".into()]),
            ..options()
        },
        &sink,
    )
    .await;
    let body = r#"{"host": "a", "status": 500, "tags": ["x"], "other": 1}
{"status": 200}
"#;
    let a = r.post("application/x-ndjson", body).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let a = r
        .post("application/json", r#"[{"host": "b", "tags": {"k": "v"}}]"#)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    // Text cannot give fields.
    let a = r.post("text/plain", "a line").await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{a:?}");
    assert!(a.error().contains("`fields`"), "{a:?}");

    assert_eq!(
        captured(&sink, "default"),
        vec![
            vec![
                Value::from("a"),
                Value::Int(500),
                json(serde_json::json!(["x"]))
            ],
            vec![Value::Null, Value::Int(200), Value::Null],
            vec![
                Value::from("b"),
                Value::Null,
                json(serde_json::json!({"k": "v"}))
            ],
        ]
    );
    r.handle.stop(Duration::from_secs(5)).await;
}

// Guards that a malformed body is refused whole with 400 and a reason naming the line or the
// record, that nothing of it is emitted, that each refusal reaches the `error` stream with the
// raw record and is counted, and that good requests still pass afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_400_with_the_place_and_nothing_is_emitted() {
    let sink = CaptureBolt::new();
    let r = start(options(), &sink).await;

    let a = r
        .post(
            "application/x-ndjson",
            "{\"ok\": 1}\n{\"ok\": 2}\n{\"bad\": tru}\n{\"ok\": 4}\n",
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{a:?}");
    assert!(
        a.error().starts_with("line 3, column 12: invalid JSON"),
        "{a:?}"
    );
    let a = r
        .post("application/x-ndjson", "{\"ok\": 1}\n[1, 2]\n")
        .await;
    assert_eq!(a.error(), "line 2: expected a JSON object, found an array");
    let a = r
        .post("application/json", r#"[{"ok": 1}, {"ok": 2}, "three"]"#)
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{a:?}");
    assert_eq!(a.error(), "$[2]: expected a JSON object, found a string");
    let a = r
        .post("application/json", "[{\"ok\": 1},\n {\"ok\": 2,}]")
        .await;
    assert!(
        a.error()
            .starts_with("$[1]: invalid JSON at line 2 column 11:"),
        "{a:?}"
    );
    let a = r.post("application/json", "42").await;
    assert!(
        a.error()
            .contains("expected a JSON object or an array of objects"),
        "{a:?}"
    );
    let a = r.post("application/json", "{\"a\": 1} {\"b\": 2}").await;
    assert!(a.error().contains("trailing characters"), "{a:?}");
    let a = r.post("application/json", "").await;
    assert!(a.error().starts_with("empty body"), "{a:?}");
    let a = r.post("text/plain", &b"fine\nnot \xff utf-8\n"[..]).await;
    assert_eq!(a.error(), "line 2: invalid UTF-8 after byte 4");
    assert_eq!(r.spout.counters().malformed(), 8);

    // Nothing of a refused request was emitted; a good request still goes through.
    let a = r.post("application/json", r#"{"ok": "after"}"#).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    until("the error tuples", || captured(&sink, "error").len() == 8).await;
    assert_eq!(
        captured(&sink, "default"),
        vec![vec![json(serde_json::json!({"ok": "after"}))]]
    );
    let errors = captured(&sink, "error");
    assert_eq!(
        errors[0],
        vec![
            Value::from("line 3, column 12: invalid JSON: expected ident"),
            Value::from("{\"bad\": tru}")
        ]
    );
    assert_eq!(errors[7][1], Value::from("not \u{fffd} utf-8"));
    assert_eq!(r.spout.pending_records(), 0);
    r.handle.stop(Duration::from_secs(5)).await;
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("compress");
    e.finish().expect("compress")
}

// Guards `max_body_bytes`: a larger body, a chunked one without Content-Length, and a gzip body
// that grows past it when decompressed are refused with 413; a body at the limit and a gzipped
// body within it pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_are_413_and_gzip_is_decompressed() {
    let sink = CaptureBolt::new();
    let r = start(
        HttpOptions {
            max_body_bytes: 1000,
            format: HttpFormat::Text,
            ..options()
        },
        &sink,
    )
    .await;

    let a = r.post("text/plain", "x".repeat(1001)).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{a:?}");
    assert_eq!(a.error(), "body larger than max_body_bytes = 1000");
    // Streamed (chunked), so the size is only known while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b'y'; 100])).collect();
    let a = r
        .post(
            "text/plain",
            reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)),
        )
        .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{a:?}");
    let bomb = gzip(&vec![b'z'; 100_000]);
    assert!(bomb.len() < 1000);
    let a = r
        .client
        .post(format!("{}/ingest", r.url))
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .expect("a response");
    let a = Answer::of(a).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{a:?}");
    assert_eq!(
        a.error(),
        "decompressed body larger than max_body_bytes = 1000"
    );
    assert_eq!(r.spout.counters().too_large(), 3);

    let exact = "a".repeat(1000);
    let a = r.post("text/plain", exact.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let lines: Vec<String> = (0..300).map(|i| format!("line {i}")).collect();
    let text = lines.join("\n");
    assert!(text.len() > 1000);
    let a = r
        .client
        .post(format!("{}/ingest", r.url))
        .header("content-encoding", "gzip")
        .body(gzip(text.as_bytes()))
        .send()
        .await
        .expect("a response");
    let a = Answer::of(a).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{a:?}");
    let small: Vec<String> = (0..50).map(|i| format!("l{i}")).collect();
    let a = r
        .client
        .post(format!("{}/ingest", r.url))
        .header("content-encoding", "gzip")
        .body(gzip(small.join("\n").as_bytes()))
        .send()
        .await
        .expect("a response");
    let a = Answer::of(a).await;
    assert_eq!(
        (a.status, a.body["accepted"].as_u64()),
        (StatusCode::OK, Some(50)),
        "{a:?}"
    );
    let got: Vec<Value> = captured(&sink, "default")
        .into_iter()
        .map(|mut v| v.remove(0))
        .collect();
    let mut want = vec![Value::from(exact)];
    want.extend(small.iter().map(|s| Value::from(s.as_str())));
    assert_eq!(got, want);

    let a = r
        .client
        .post(format!("{}/ingest", r.url))
        .header("content-encoding", "gzip")
        .body("not gzip at all")
        .send()
        .await
        .expect("a response");
    let a = Answer::of(a).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{a:?}");
    assert!(a.error().starts_with("invalid gzip body"), "{a:?}");
    until("the error tuples", || captured(&sink, "error").len() == 5).await;
    r.handle.stop(Duration::from_secs(5)).await;
}

// Guards 415 for an unknown or missing Content-Type, a non-UTF-8 charset and an unknown
// Content-Encoding, each reason saying what was expected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_content_types_and_encodings_are_415() {
    let sink = CaptureBolt::new();
    let r = start(options(), &sink).await;
    let a = r.post("application/xml", "<a/>").await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{a:?}");
    assert!(
        a.error()
            .starts_with("Content-Type application/xml: expected application/json"),
        "{a:?}"
    );
    let a = r.post("text/plain; charset=iso-8859-1", "x").await;
    assert_eq!(a.error(), "charset \"iso-8859-1\": expected utf-8");
    let a = Answer::of(
        r.client
            .post(format!("{}/ingest", r.url))
            .body("{}")
            .send()
            .await
            .expect("a response"),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{a:?}");
    assert!(a.error().starts_with("no Content-Type"), "{a:?}");
    let a = Answer::of(
        r.client
            .post(format!("{}/ingest", r.url))
            .header("content-type", "application/json")
            .header("content-encoding", "br")
            .body("{}")
            .send()
            .await
            .expect("a response"),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{a:?}");
    assert_eq!(
        a.error(),
        "Content-Encoding \"br\": expected gzip or identity"
    );
    assert_eq!(r.spout.counters().unsupported(), 4);
    // Other paths and methods.
    let s = r
        .client
        .get(format!("{}/ingest", r.url))
        .send()
        .await
        .expect("a response");
    assert_eq!(s.status(), StatusCode::METHOD_NOT_ALLOWED);
    let s = r
        .client
        .post(format!("{}/other", r.url))
        .send()
        .await
        .expect("a response");
    assert_eq!(s.status(), StatusCode::NOT_FOUND);
    assert!(sink.is_empty());
    r.handle.stop(Duration::from_secs(5)).await;
}

// Guards `auth_token`: no or a wrong Authorization header is 401 (with WWW-Authenticate), the
// right token (scheme in any case) passes, and /health needs no token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_token_are_401() {
    let sink = CaptureBolt::new();
    let r = start(
        HttpOptions {
            auth_token: Some("s3cret".into()),
            ..options()
        },
        &sink,
    )
    .await;
    let a = r.post("application/json", "{}").await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{a:?}");
    assert_eq!(a.error(), "missing Authorization: Bearer token");
    for wrong in ["Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "s3cret"] {
        let resp = r
            .client
            .post(format!("{}/ingest", r.url))
            .header("content-type", "application/json")
            .header("authorization", wrong)
            .body("{}")
            .send()
            .await
            .expect("a response");
        assert_eq!(
            resp.headers().get("www-authenticate").map(|v| v.as_bytes()),
            Some(&b"Bearer"[..])
        );
        let a = Answer::of(resp).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{wrong}: {a:?}");
    }
    for right in ["Bearer s3cret", "bearer s3cret"] {
        let a = Answer::of(
            r.client
                .post(format!("{}/ingest", r.url))
                .header("content-type", "application/json")
                .header("authorization", right)
                .body(r#"{"ok": true}"#)
                .send()
                .await
                .expect("a response"),
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{right}: {a:?}");
    }
    assert_eq!(r.spout.counters().unauthorized(), 5);
    assert_eq!(sink.len(), 2);
    assert_eq!(health(&r).await, StatusCode::OK);
    r.handle.stop(Duration::from_secs(5)).await;
}

/// Holds every tuple until the gate opens, then acks it; records what it was given.
#[derive(Clone)]
struct Gated {
    gate: tokio::sync::watch::Receiver<bool>,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Gated {
    fn new() -> (tokio::sync::watch::Sender<bool>, Gated) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (
            tx,
            Gated {
                gate: rx,
                seen: Arc::default(),
            },
        )
    }

    fn seen(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }
}

impl Bolt for Gated {
    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        self.seen
            .lock()
            .expect("lock")
            .push(input.values()[0].clone());
        self.gate.wait_for(|open| *open).await?;
        out.ack(&input);
        Ok(())
    }
}

fn gated_factory(g: &Gated) -> BoltFactory {
    let g = g.clone();
    BoltFactory::full(move || g.clone())
}

// Guards that a request is answered only once its records are acked: while the bolt holds the
// record the response has not come, and it comes (200) when the bolt lets it go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_waits_for_the_ack() {
    let (gate, bolt) = Gated::new();
    let r = start_with(
        HttpSpout::new(options()).expect("valid options"),
        gated_factory(&bolt),
        1,
    )
    .await;
    let r = Arc::new(r);
    let r2 = r.clone();
    let request = tokio::spawn(async move {
        r2.post("application/x-ndjson", "{\"a\":1}\n{\"a\":2}\n")
            .await
    });
    // The bolt holds the first record (its task takes no other input meanwhile).
    until("the bolt to hold a record", || bolt.seen() == 1).await;
    assert_eq!(r.spout.pending_records(), 2);
    assert!(!request.is_finished(), "answered before the ack");
    gate.send(true).expect("the bolt listens");
    let a = request.await.expect("the request ran");
    assert_eq!(
        (a.status, a.body["accepted"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{a:?}"
    );
    assert_eq!(bolt.seen(), 2);
    assert_eq!(r.spout.pending_records(), 0);
    let r = Arc::into_inner(r).expect("the only owner");
    r.handle.stop(Duration::from_secs(5)).await;
}

// Guards backpressure: with `max_pending_records` records waiting, another request is refused
// with 503 and Retry-After (and one larger than the limit with 413); once the bolt acks, the
// waiting request gets 200 and a new one passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_pending_records_is_503_with_retry_after() {
    let (gate, bolt) = Gated::new();
    let r = start_with(
        HttpSpout::new(HttpOptions {
            max_pending_records: 10,
            ..options()
        })
        .expect("valid options"),
        gated_factory(&bolt),
        1,
    )
    .await;
    let r = Arc::new(r);
    let r2 = r.clone();
    let body: String = (0..8).map(|i| format!("{{\"i\":{i}}}\n")).collect();
    let first = tokio::spawn(async move { r2.post("application/x-ndjson", body).await });
    until("8 records pending", || r.spout.pending_records() == 8).await;

    let a = r
        .post("application/json", r#"[{"i":8},{"i":9},{"i":10}]"#)
        .await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{a:?}");
    assert_eq!(a.retry_after.as_deref(), Some("1"));
    assert!(
        a.error()
            .starts_with("overloaded: 8 records pending, max_pending_records = 10"),
        "{a:?}"
    );
    let eleven = format!("[{}]", ["{}"; 11].join(","));
    let a = r.post("application/json", eleven).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{a:?}");
    assert!(a.error().contains("max_pending_records = 10"), "{a:?}");
    assert_eq!(r.spout.counters().overloaded(), 1);
    assert!(!first.is_finished());

    gate.send(true).expect("the bolt listens");
    let a = first.await.expect("the request ran");
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let a = r
        .post("application/json", r#"[{"i":8},{"i":9},{"i":10}]"#)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    // 8 + 3 records, and the `error` tuple of the 413.
    assert_eq!(bolt.seen(), 12);
    let r = Arc::into_inner(r).expect("the only owner");
    r.handle.stop(Duration::from_secs(5)).await;
}

// Guards `ack_timeout`: a request whose records are not acked in time is answered 503 with
// Retry-After and a reason; the client's retry is answered 200 once the bolt acks; the held
// record is delivered too (at least once: a duplicate, never a loss).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_timeout_answers_503_and_the_retry_gets_200() {
    let (gate, bolt) = Gated::new();
    let r = start_with(
        HttpSpout::new(HttpOptions {
            ack_timeout: Duration::from_millis(300),
            ..options()
        })
        .expect("valid options"),
        gated_factory(&bolt),
        1,
    )
    .await;
    let a = r.post("application/json", r#"{"id": "r1"}"#).await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{a:?}");
    assert_eq!(a.retry_after.as_deref(), Some("1"));
    assert!(a.error().contains("ack_timeout = 300ms"), "{a:?}");
    assert_eq!(r.spout.counters().ack_timeouts(), 1);
    until("the record to reach the bolt", || bolt.seen() == 1).await;

    // The client retries; the bolt lets go meanwhile.
    let r = Arc::new(r);
    let r2 = r.clone();
    let retry = tokio::spawn(async move { r2.post("application/json", r#"{"id": "r1"}"#).await });
    until("the retry to be pending", || r.spout.pending_records() == 2).await;
    gate.send(true).expect("the bolt listens");
    let a = retry.await.expect("the retry ran");
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    until("every record acked", || r.spout.pending_records() == 0).await;
    assert_eq!(bolt.seen(), 2, "delivered twice: once per request");
    let r = Arc::into_inner(r).expect("the only owner");
    r.handle.stop(Duration::from_secs(5)).await;
}

// Guards acking off (ackers = 0): a request is answered once its records are emitted, even
// while the bolt still holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_acking_off_the_answer_comes_once_emitted() {
    let (gate, bolt) = Gated::new();
    let r = start_with(
        HttpSpout::new(options()).expect("valid options"),
        gated_factory(&bolt),
        0,
    )
    .await;
    let a = r.post("application/json", r#"[{"a":1},{"a":2}]"#).await;
    assert_eq!(
        (a.status, a.body["accepted"].as_u64()),
        (StatusCode::OK, Some(2)),
        "{a:?}"
    );
    assert_eq!(r.spout.pending_records(), 0);
    until("the bolt to hold a record", || bolt.seen() == 1).await;
    gate.send(true).expect("the bolt listens");
    until("both records", || bolt.seen() == 2).await;
    r.handle.stop(Duration::from_secs(5)).await;
}

// Guards the stopped state: a deactivated spout answers 503 (and /health 503), and accepts
// again once activated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_spout_answers_503() {
    let sink = CaptureBolt::new();
    let r = start(options(), &sink).await;
    r.handle.deactivate();
    let start = Instant::now();
    while health(&r).await != StatusCode::SERVICE_UNAVAILABLE {
        assert!(start.elapsed() < WAIT, "timed out waiting for deactivation");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let a = r.post("application/json", "{}").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{a:?}");
    assert_eq!(a.retry_after.as_deref(), Some("1"));
    assert!(a.error().starts_with("not accepting records now"), "{a:?}");
    assert_eq!(r.spout.counters().unavailable(), 1);
    r.handle.activate();
    until_healthy(&r).await;
    let a = r.post("application/json", "{}").await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(sink.len(), 1);
    r.handle.stop(Duration::from_secs(5)).await;
}

/// Fails every `k`-th tuple it sees (counting all), each record at most once; records every
/// delivery it acks.
#[derive(Clone)]
struct FailEveryK {
    k: usize,
    seen: Arc<AtomicUsize>,
    failed: Arc<Mutex<HashSet<String>>>,
    delivered: Arc<Mutex<HashMap<String, usize>>>,
}

impl BasicBolt for FailEveryK {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let id = input.values()[0].to_string();
        let n = self.seen.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_multiple_of(self.k) && self.failed.lock().expect("lock").insert(id.clone()) {
            return Err(format!("injected failure of {id}").into());
        }
        *self.delivered.lock().expect("lock").entry(id).or_default() += 1;
        Ok(())
    }
}

// Guards at-least-once under injected failures: with a bolt failing every 7th tuple it sees,
// concurrent clients over keep-alive connections get 200 for every request, and every record
// of every request is delivered (and acked) at least once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_is_delivered_at_least_once_under_injected_failures() {
    let bolt = FailEveryK {
        k: 7,
        seen: Arc::default(),
        failed: Arc::default(),
        delivered: Arc::default(),
    };
    let b = bolt.clone();
    let spout = HttpSpout::new(HttpOptions {
        fields: Some(vec!["id".into()]),
        ..options()
    })
    .expect("valid options");
    let r = Arc::new(start_with(spout, BoltFactory::basic(move || b.clone()), 1).await);

    const CLIENTS: usize = 6;
    const REQUESTS: usize = 25;
    const RECORDS: usize = 20;
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let r = r.clone();
        clients.push(tokio::spawn(async move {
            for q in 0..REQUESTS {
                let body: String = (0..RECORDS)
                    .map(|i| format!("{{\"id\": \"c{c}-q{q}-r{i}\"}}\n"))
                    .collect();
                let a = r.post("application/x-ndjson", body).await;
                assert_eq!(a.status, StatusCode::OK, "{a:?}");
                assert_eq!(a.body["accepted"].as_u64(), Some(RECORDS as u64));
            }
        }));
    }
    for c in clients {
        c.await.expect("a client ran");
    }
    let total = CLIENTS * REQUESTS * RECORDS;
    let delivered = bolt.delivered.lock().expect("lock").clone();
    assert_eq!(delivered.len(), total, "every record delivered");
    assert!(delivered.values().all(|&n| n >= 1));
    let failed = bolt.failed.lock().expect("lock").len();
    // Every 7th tuple seen fails unless it is a replay of a record failed already.
    assert!(failed >= total / 8, "failures were injected: {failed}");
    let c = r.spout.counters();
    assert_eq!(c.accepted(), (CLIENTS * REQUESTS) as u64);
    assert_eq!(
        c.replayed(),
        failed as u64,
        "each failed record emitted again"
    );
    assert_eq!(c.records(), total as u64);
    assert_eq!(r.spout.pending_records(), 0);
    let r = Arc::into_inner(r).expect("the only owner");
    let m = r.handle.stop(Duration::from_secs(5)).await;
    let ingest = m.metrics.component("ingest").expect("the spout's figures");
    assert_eq!(ingest.acked(), total as u64);
    assert_eq!(ingest.failed(), failed as u64);
}

// Guards that bad options are refused with a message naming the option and the value.
#[test]
fn bad_options_are_named() {
    let bad = [
        (
            HttpOptions {
                address: "nohost".into(),
                ..options()
            },
            "`address` = \"nohost\"",
        ),
        (
            HttpOptions {
                path: "ingest".into(),
                ..options()
            },
            "`path` = \"ingest\"",
        ),
        (
            HttpOptions {
                path: "/health".into(),
                ..options()
            },
            "`path` = \"/health\"",
        ),
        (
            HttpOptions {
                path: "/{x}".into(),
                ..options()
            },
            "`path` = \"/{x}\"",
        ),
        (
            HttpOptions {
                max_body_bytes: 0,
                ..options()
            },
            "`max_body_bytes` = 0",
        ),
        (
            HttpOptions {
                max_pending_records: 0,
                ..options()
            },
            "`max_pending_records` = 0",
        ),
        (
            HttpOptions {
                ack_timeout: Duration::ZERO,
                ..options()
            },
            "`ack_timeout`",
        ),
        (
            HttpOptions {
                auth_token: Some(String::new()),
                ..options()
            },
            "`auth_token` is empty",
        ),
        (
            HttpOptions {
                auth_token: Some("a\nb".into()),
                ..options()
            },
            "`auth_token`",
        ),
        (
            HttpOptions {
                format: HttpFormat::Text,
                fields: Some(vec!["a".into()]),
                ..options()
            },
            "`fields`: only for JSON",
        ),
        (
            HttpOptions {
                fields: Some(vec!["a".into(), "a".into()]),
                ..options()
            },
            "`fields[1]` = \"a\"",
        ),
    ];
    for (opts, want) in bad {
        let err = HttpSpout::new(opts).err().expect("refused");
        assert!(err.contains(want), "{err:?} should name {want}");
    }
}

/// Counts the records it is given (the `default` stream), and the `error` tuples apart.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>, Arc<AtomicUsize>);

impl BasicBolt for Counting {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let n = if input.stream() == "default" {
            &self.0
        } else {
            &self.1
        };
        n.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

// Throughput over keep-alive connections with NDJSON batches, acked downstream. Run with
// `cargo test --release -p topo-spouts --test http_ingest -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run explicitly with --release"]
async fn throughput_of_ndjson_batches_over_keep_alive() {
    let counting = Counting::default();
    let c = counting.clone();
    let spout = HttpSpout::new(HttpOptions {
        max_pending_records: 100_000,
        ..options()
    })
    .expect("valid options");
    let r = Arc::new(start_with(spout, BoltFactory::basic(move || c.clone()), 1).await);
    const CLIENTS: usize = 8;
    const BATCH: usize = 500;
    const BATCHES: usize = 200;
    let body: Arc<String> = Arc::new(
        (0..BATCH)
            .map(|i| format!("{{\"host\":\"web-{}\",\"status\":200,\"path\":\"/api/items/{i}\",\"ms\":{}}}\n", i % 16, i % 97))
            .collect(),
    );
    let start = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (r, body) = (r.clone(), body.clone());
        clients.push(tokio::spawn(async move {
            for _ in 0..BATCHES {
                let a = r
                    .post("application/x-ndjson", body.as_str().to_owned())
                    .await;
                assert_eq!(a.status, StatusCode::OK, "{a:?}");
            }
        }));
    }
    for c in clients {
        c.await.expect("a client ran");
    }
    let secs = start.elapsed().as_secs_f64();
    let total = CLIENTS * BATCH * BATCHES;
    assert_eq!(counting.0.load(Ordering::Relaxed), total);
    println!(
        "{total} records in {} requests of {BATCH} over {CLIENTS} keep-alive connections: {secs:.2} s, {:.0} records/s, {:.0} requests/s",
        CLIENTS * BATCHES,
        total as f64 / secs,
        (CLIENTS * BATCHES) as f64 / secs
    );
    let r = Arc::into_inner(r).expect("the only owner");
    r.handle.stop(Duration::from_secs(5)).await;
}

// Guards a client that hangs up (or an ack timeout, whichever the server sees first): its
// records still queued in the spout are dropped, not emitted, and their room is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_a_request_given_up_are_dropped_not_emitted() {
    let (gate, bolt) = Gated::new();
    let spout = HttpSpout::new(HttpOptions {
        ack_timeout: Duration::from_secs(1),
        ..options()
    })
    .expect("valid options");
    let mut b = TopologyBuilder::new("http");
    // One record in flight at a time: the others wait in the spout.
    b.config_mut().max_spout_pending = Some(1);
    let s = spout.clone();
    b.set_spout("ingest", move || s.clone(), 1);
    b.set_bolt("sink", gated_factory(&bolt), 1)
        .shuffle_grouping("ingest");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    until("the server to listen", || spout.local_addr().is_some()).await;
    let url = format!("http://{}/ingest", spout.local_addr().expect("listening"));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .expect("a client");
    let mut sent = None;
    let start = Instant::now();
    while sent.is_none() {
        let r = client
            .post(&url)
            .header("content-type", "application/json")
            .body(r#"[{"a":1},{"a":2},{"a":3}]"#)
            .send()
            .await;
        match r {
            // Not yet active.
            Ok(r) if r.status() == StatusCode::SERVICE_UNAVAILABLE => {}
            Ok(r) => panic!("answered {} while the bolt holds the record", r.status()),
            Err(e) => sent = Some(e),
        }
        assert!(start.elapsed() < WAIT, "no request got through");
    }
    assert!(sent.is_some_and(|e| e.is_timeout()));
    until("the server to give the request up", || {
        spout.counters().disconnects() + spout.counters().ack_timeouts() == 1
    })
    .await;
    assert_eq!(bolt.seen(), 1);
    gate.send(true).expect("the bolt listens");
    until("the room to be freed", || spout.pending_records() == 0).await;
    assert_eq!(spout.counters().abandoned(), 2);
    assert_eq!(bolt.seen(), 1, "the queued records were not emitted");
    handle.stop(Duration::from_secs(5)).await;
}

// Guards a stop while a request waits on a record the topology cannot finish: the stop ends
// (after its drain timeout) and the request is answered 503, not left hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_answers_a_waiting_request_503() {
    let (_gate, bolt) = Gated::new();
    let r = start_with(
        HttpSpout::new(options()).expect("valid options"),
        gated_factory(&bolt),
        1,
    )
    .await;
    let (client, url) = (r.client.clone(), format!("{}/ingest", r.url));
    let request = tokio::spawn(async move {
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .body(r#"{"a":1}"#)
            .send()
            .await
            .expect("a response");
        Answer::of(resp).await
    });
    until("the bolt to hold the record", || bolt.seen() == 1).await;
    let report = r.handle.stop(Duration::from_millis(300)).await;
    let a = request.await.expect("the request ran");
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE, "{a:?}");
    assert_eq!(a.retry_after.as_deref(), Some("1"));
    assert_eq!(r.spout.counters().unavailable(), 1);
    assert_eq!(r.spout.pending_records(), 0);
    assert_eq!(
        health_after_stop(&r.client, &r.url).await,
        None,
        "the server is closed"
    );
    drop(report);
}

/// The status of /health, or None when nothing answers.
async fn health_after_stop(client: &reqwest::Client, url: &str) -> Option<StatusCode> {
    let start = Instant::now();
    loop {
        match client.get(format!("{url}/health")).send().await {
            Err(_) => return None,
            Ok(r) if start.elapsed() > WAIT => return Some(r.status()),
            // The server may still finish its last connections.
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

// Guards bodies over 256 KiB (parsed on a blocking thread): every record arrives, and
// a bad line deep inside is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_body_is_parsed_whole() {
    let counting = Counting::default();
    let c = counting.clone();
    let spout = HttpSpout::new(HttpOptions {
        fields: Some(vec!["i".into()]),
        ..options()
    })
    .expect("valid options");
    let r = start_with(spout, BoltFactory::basic(move || c.clone()), 1).await;
    const N: usize = 6000;
    let body: String = (0..N)
        .map(|i| format!("{{\"i\": {i}, \"pad\": \"{}\"}}\n", "p".repeat(40)))
        .collect();
    assert!(body.len() > 256 * 1024);
    let a = r.post("application/x-ndjson", body.clone()).await;
    assert_eq!(
        (a.status, a.body["accepted"].as_u64()),
        (StatusCode::OK, Some(N as u64)),
        "{a:?}"
    );
    assert_eq!(counting.0.load(Ordering::Relaxed), N);
    let bad = body.replacen("{\"i\": 5000,", "{\"i\": 5000", 1);
    let a = r.post("application/x-ndjson", bad).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{a:?}");
    assert!(a.error().starts_with("line 5001, column"), "{a:?}");
    until("the error tuple", || {
        counting.1.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(
        counting.0.load(Ordering::Relaxed),
        N,
        "nothing of it emitted"
    );
    r.handle.stop(Duration::from_secs(5)).await;
}

/// An `http` spout serving HTTPS with the test server certificate (and requiring client
/// certificates of the test CA when `client_ca`), into a capture: the capture, the running
/// topology and the port.
async fn serve_https(client_ca: bool) -> (CaptureBolt, TopologyHandle, u16) {
    use topo_test_support::tls;
    let sink = CaptureBolt::new();
    let spout = HttpSpout::new(HttpOptions {
        tls_cert: Some(tls::file("server.crt")),
        tls_key: Some(tls::file("server.key")),
        tls_client_ca: client_ca.then(|| tls::file("ca.crt")),
        ..options()
    })
    .expect("valid options");
    let mut b = TopologyBuilder::new("https");
    let s = spout.clone();
    b.set_spout("ingest", move || s.clone(), 1);
    b.set_bolt("sink", sink.factory(), 1)
        .shuffle_grouping("ingest");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    until("the server to listen", || spout.local_addr().is_some()).await;
    let port = spout.local_addr().expect("listening").port();
    (sink, handle, port)
}

/// A client trusting the test CA, presenting no certificate.
fn trusting_client() -> reqwest::Client {
    let pem = std::fs::read(topo_test_support::tls::file("ca.crt")).expect("the CA");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client")
}

/// Sends `records` (one field `n`) through an `http` sink with `opts`, off the caller's runtime
/// (the tester runs one of its own): how many inputs were acked, and how many failed.
async fn deliver(
    opts: topo_spouts::HttpSinkOptions,
    records: std::ops::Range<i64>,
) -> (usize, usize) {
    let writer = topo_spouts::HttpWriter::new(opts).expect("valid options");
    tokio::task::spawn_blocking(move || {
        let mut t =
            topo_runtime::testing::BoltTester::full(move || writer.clone().into_sink(), ["n"]);
        let runs = t.execute_all(records.map(|n| topo_runtime::values![n]));
        let fin = t.finish();
        let all = || runs.iter().chain([&fin]);
        let acked = all().map(|r| r.acked_inputs.len()).sum();
        let failed = all().map(|r| r.failed_inputs.len()).sum();
        (acked, failed)
    })
    .await
    .expect("the sink ran")
}

// Guards HTTPS (`tls_cert`, `tls_key`): the spout serves its certificate to a client trusting
// the test CA, and records POSTed over TLS are emitted; plain HTTP to the port and a client
// without the CA are refused (errors, not hangs); the `http` sink with `tls = { ca }` delivers
// its batches to it over TLS (sink to spout, end to end); a key that is not the certificate's
// is refused at validation, naming both options.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_certificate_serves_tls_only() {
    use topo_test_support::tls;
    let (sink, handle, port) = serve_https(false).await;
    let trusting = trusting_client();
    let url = format!("https://localhost:{port}");
    let start = Instant::now();
    loop {
        let ok = trusting.get(format!("{url}/health")).send().await;
        if ok.is_ok_and(|r| r.status() == StatusCode::OK) {
            break;
        }
        assert!(start.elapsed() < WAIT, "/health over TLS");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = trusting
        .post(format!("{url}/ingest"))
        .header("content-type", "application/x-ndjson")
        .body("{\"n\":1}\n{\"n\":2}\n")
        .send()
        .await
        .expect("a response over TLS");
    assert_eq!(r.status(), StatusCode::OK);
    until("2 records over TLS", || sink.len() >= 2).await;

    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/health"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP to the TLS port: {plain:?}");
    let untrusted = reqwest::Client::new()
        .get(format!("{url}/health"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(untrusted.is_err(), "a client without the CA");

    // The http sink, trusting the test CA, to the spout over TLS.
    let mut o = topo_spouts::HttpSinkOptions::new(format!("{url}/ingest"));
    o.tls.ca = Some(tls::file("ca.crt"));
    let (acked, _) = deliver(o, 3..6).await;
    assert_eq!(acked, 3, "every record delivered over TLS and acked");
    until("5 records", || sink.len() >= 5).await;
    handle.stop(Duration::from_secs(5)).await;

    let e = HttpSpout::new(HttpOptions {
        tls_cert: Some(tls::file("server.crt")),
        tls_key: Some(tls::file("client.key")),
        ..options()
    })
    .err()
    .expect("refused");
    assert!(
        e.contains("`tls_cert`") && e.contains("`tls_key`") && e.contains("not the certificate's"),
        "{e}"
    );
    let mut o = topo_spouts::HttpSinkOptions::new("http://127.0.0.1:1/x");
    o.tls.ca = Some(tls::file("ca.crt"));
    let e = topo_spouts::HttpWriter::new(o).err().expect("refused");
    assert!(e.contains("`tls`") && e.contains("https://"), "{e}");
}

// Guards client certificates over HTTPS (`tls_client_ca` on the spout; `tls.cert`, `tls.key` on
// the `http` sink): the sink presenting a certificate of the CA delivers its batches and they are
// acked; a client without a certificate and a sink whose certificate another CA signed are
// refused (errors, not hangs), and the refused sink fails its inputs for replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_client_certificates_admits_only_certified_clients() {
    use topo_test_support::tls;
    let (sink, handle, port) = serve_https(true).await;
    let url = format!("https://localhost:{port}/ingest");
    let refused = trusting_client()
        .post(&url)
        .header("content-type", "application/x-ndjson")
        .body("{\"n\":0}\n")
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a client without a certificate: {refused:?}"
    );

    // 3 records through an http sink presenting `cert` and `key`.
    let with_certificate = |cert: &str, key: &str| {
        let mut o = topo_spouts::HttpSinkOptions::new(url.clone());
        o.tls.ca = Some(tls::file("ca.crt"));
        o.tls.cert = Some(tls::file(cert));
        o.tls.key = Some(tls::file(key));
        o.retry.attempts = Some(2);
        o.retry.backoff = Duration::from_millis(10);
        deliver(o, 1..4)
    };
    let (acked, failed) = with_certificate("client.crt", "client.key").await;
    assert_eq!(
        (acked, failed),
        (3, 0),
        "delivered with the CA's client certificate"
    );
    until("3 records", || sink.len() >= 3).await;

    let (acked, failed) = with_certificate("other-client.crt", "other-client.key").await;
    assert_eq!(
        (acked, failed),
        (0, 3),
        "a certificate of another CA is refused"
    );
    assert_eq!(sink.len(), 3, "nothing more emitted");
    handle.stop(Duration::from_secs(5)).await;

    let e = HttpSpout::new(HttpOptions {
        tls_client_ca: Some(tls::file("ca.crt")),
        ..options()
    })
    .err()
    .expect("refused");
    assert!(e.contains("`tls_client_ca` needs `tls_cert`"), "{e}");
}
