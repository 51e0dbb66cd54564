//! `http`: an HTTP ingest endpoint (like Vector's `http_server` source or Fluentd's `in_http`):
//! clients POST JSON, NDJSON or text lines, and get `200` only once every record of their
//! request has been processed downstream, so a client that retries until `200` delivers every
//! record at least once.
//!
//! ```text
//!  client ── POST path (JSON | NDJSON | text, optionally gzip) ──► axum server (first task)
//!     ▲         401 bad token · 415 unknown type · 413 too big · 400 malformed (+ `error` stream)
//!     │         503 + Retry-After: over max_pending_records, or not accepting (stopping)
//!     │                                                   │ whole body parsed: all or nothing
//!     │                                                   ▼
//!     │                         batch (records, request countdown) ──► channel
//!     │                                                   │ next_tuple drains ≤ 256 records
//!     │                                                   ▼
//!     │   spout ──emit record, msg id n──► bolts      pending: n ─► (record, request)
//!     │     ▲                                  │       fail: emitted again while the request waits
//!     │     └──────────── ack / fail ◄─────────┘       ack: request countdown − 1
//!     └── 200 {"accepted": N} when the countdown reaches 0;  503 when ack_timeout passes first
//! ```
//!
//! # Options
//! ```toml
//! [spouts.ingest]
//! kind = "http"
//! address = "127.0.0.1:8080"      # listen here (required); port 0 = any free port
//! path = "/ingest"                # POST here; default "/"
//! format = "auto"                 # by Content-Type; or "json", "ndjson", "text" (any Content-Type)
//! fields = ["host", "status"]     # JSON records: these top-level keys as fields (missing: null)
//! max_body_bytes = 10485760       # larger bodies (also after gunzip): 413
//! max_pending_records = 10000     # records accepted and not yet acked; more: 503 + Retry-After
//! ack_timeout = "10s"             # then 503: the client retries (duplicates possible, no loss)
//! auth_token = "${INGEST_TOKEN}"  # require `Authorization: Bearer <token>`, else 401
//! # tls_cert = "server.pem"  tls_key = "server.key"   # serve HTTPS (PEM files)
//! # tls_client_ca = "clients-ca.pem"  # and require client certificates signed by this CA
//! ```
//!
//! With `format = "auto"` the body's `Content-Type` decides: `application/json` is one JSON
//! object or an array of objects; `application/x-ndjson`, `application/ndjson`,
//! `application/jsonlines`, `application/x-jsonlines` and `application/jsonl` are one object
//! per line (blank lines skipped); `text/plain` is one record per line. Anything else, or no
//! `Content-Type`, is answered `415`. A `charset` other than UTF-8 is refused too. A body with
//! `Content-Encoding: gzip` is decompressed first (`identity` is accepted as well; others: 415).
//!
//! # Output
//! The `default` stream carries, per record:
//! - with `fields`: those fields, each the value of that top-level key of the JSON object
//!   (`null` when absent; nested objects and arrays become map and list values);
//! - without `fields`, JSON records: one field `record`, the whole object as a map value;
//! - `format = "text"`: one field `line`, the line's text (a `\r` before the `\n` is dropped;
//!   a last line without `\n` counts; a body ending in `\n` has no empty last line);
//! - `format = "auto"` without `fields`: one field `record`, holding the object (JSON, NDJSON)
//!   or the line's text (`text/plain`). With `fields`, `text/plain` bodies are refused (415).
//!
//! The `error` stream carries (`reason`, `raw`) for each body refused as malformed (400) or too
//! large (413): the reason sent to the client, and the first KiB of the offending line or
//! record (of the body when there is no single one; empty when a `Content-Length` over the
//! limit was refused before reading). These tuples carry no message id; if they
//! come faster than the spout emits them, the surplus is counted (`errors_not_emitted`) rather
//! than queued. Every refusal is also counted ([`HttpCounters`]) and logged with
//! `tracing::warn!` at most once a second.
//!
//! # Responses
//! | status | when | body |
//! |---|---|---|
//! | 200 | every record of the request acked (with acking off: emitted) | `{"accepted": N}` |
//! | 400 | a malformed record (the reason names the line, or `$[i]` in a JSON array), bad gzip, bad UTF-8 | `{"error": "..."}` |
//! | 401 | `auth_token` set and no matching `Authorization: Bearer` header | `{"error": "..."}` |
//! | 413 | body (or decompressed body) over `max_body_bytes`, or more records than `max_pending_records` | `{"error": "..."}` |
//! | 415 | unknown `Content-Type` (auto), charset, or `Content-Encoding` | `{"error": "..."}` |
//! | 503 | over `max_pending_records`, `ack_timeout` passed, or the spout is not active (stopping) | `{"error": "..."}`, `Retry-After: 1` |
//!
//! A request is all or nothing: the whole body is read and parsed before anything is emitted,
//! so a 4xx means nothing of it was emitted and the client can fix the body and send it again.
//! `GET /health` answers `200 {"status":"ok"}` while the spout accepts requests and `503`
//! otherwise (no token needed; `path` may not be `/health`). Other paths: 404; other methods: 405.
//!
//! # Delivery guarantee
//! **At-least-once for clients that retry until they get `200`.** Each record is emitted with a
//! message id and kept in memory; a failed or timed-out record is emitted again (same id) while
//! its request waits. The response is `200` only once every record of the request is acked.
//! When `ack_timeout` passes first, the answer is `503` with `Retry-After: 1`, not `504`: the
//! cause is the same as for backpressure (the topology is not keeping up), and HTTP clients and
//! shippers (Vector, Fluent Bit, the Kinesis agent, most retry middlewares) treat `503` as
//! retryable and honour `Retry-After`. Records of that request may already have been processed,
//! so the retry can duplicate some: never lose any. Once a request has been answered non-200
//! (or its client hung up), its records still queued are dropped and its failed records are no
//! longer replayed (counted as `abandoned`; a hang-up also as `disconnects`): the client now
//! owns them. With acking off
//! (`ackers = 0`) a request is answered `200` once its records are emitted.
//! Records accepted but not yet acked when the process ends are not answered `200`, so a
//! retrying client sends them again; nothing is written to disk.
//!
//! `ack_timeout` should exceed the time a record normally takes through the topology; a record
//! whose tree times out (`message_timeout`) after the request's `ack_timeout` is not replayed
//! for it. Keep it below the clients' own timeout, so they see the `503` and its `Retry-After`.
//!
//! # Known limits
//! - The server runs in the first task only (one port cannot be bound twice); the other tasks
//!   of the component emit nothing. One task emits a few hundred thousand records a second.
//! - When the spout is deactivated or closed (`topo run` stopping), new requests get `503`, and
//!   requests whose records were not all emitted yet are answered `503` at once; requests whose
//!   records are all in flight still get their `200` while the topology drains.
//! - If the spout task restarts after an error, its waiting requests are answered `503` and
//!   the new instance listens again (with port 0: on a new port).
//! - The spout is never exhausted: `topo run --until-idle` does not end by itself; stop it
//!   with Ctrl-C (it drains) or `--for`.
//! - HTTP/1.1 only; HTTPS with `tls_cert` and `tls_key` (client certificates with
//!   `tls_client_ca`); no per-record metadata
//!   (headers, peer address) in the output.
//! - A body is held in memory whole while it is parsed (`max_body_bytes` bounds it); bodies
//!   over 256 KiB are parsed on a blocking thread so the server keeps answering.

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::connector::counters;
use crate::connector::encoding::{RAW_PREFIX, raw_prefix};
use crate::connector::{ERROR_STREAM, SOURCE_ERROR_FIELDS};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    BoxError, OutputDeclarer, Spout, SpoutCollector, TaskContext, Value, Values, values,
};

/// The health-check path (GET).
pub const HEALTH_PATH: &str = "/health";

/// How many records `next_tuple` emits at most per call.
const DRAIN_PER_CALL: usize = 256;

/// Capacity of the channel of `error` tuples.
const ERROR_CHANNEL: usize = 1024;

/// Bodies larger than this are parsed on a blocking thread.
const PARSE_INLINE_MAX: usize = 256 * 1024;

/// The `Retry-After` of 503 answers, in seconds.
const RETRY_AFTER_SECS: &str = "1";

/// How request bodies are read.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum HttpFormat {
    /// By `Content-Type`: JSON, NDJSON or text lines; anything else is refused (415).
    #[default]
    Auto,
    /// One JSON object, or an array of objects, whatever the `Content-Type`.
    Json,
    /// One JSON object per line, whatever the `Content-Type`.
    Ndjson,
    /// One record per line of text, whatever the `Content-Type`.
    Text,
}

/// Options of the `http` spout.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = http_required)]
pub struct HttpOptions {
    /// `host:port` to listen on (required).
    pub address: String,
    /// The path records are POSTed to.
    pub path: String,
    /// How bodies are read.
    pub format: HttpFormat,
    /// JSON records: the top-level keys emitted as fields; `None`: one `record` field.
    pub fields: Option<Vec<String>>,
    /// The largest body accepted, in bytes (also after decompression).
    pub max_body_bytes: usize,
    /// Records accepted and not yet acked, over all requests; beyond it requests get 503.
    pub max_pending_records: usize,
    /// How long a request waits for its records' acks before it is answered 503.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub ack_timeout: Duration,
    /// When set, requests need `Authorization: Bearer <auth_token>`.
    pub auth_token: Option<String>,
    /// Serve HTTPS with this certificate (PEM, with its chain); needs `tls_key`.
    pub tls_cert: Option<std::path::PathBuf>,
    /// The private key (PEM) of `tls_cert`.
    pub tls_key: Option<std::path::PathBuf>,
    /// With `tls_cert`: clients must present a certificate signed by one of these authorities
    /// (PEM), as well as any `auth_token`.
    pub tls_client_ca: Option<std::path::PathBuf>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            address: String::new(),
            path: "/".to_string(),
            format: HttpFormat::Auto,
            fields: None,
            max_body_bytes: 10 << 20,
            max_pending_records: 10_000,
            ack_timeout: Duration::from_secs(10),
            auth_token: None,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
        }
    }
}

counters! {
    /// What the server answered, shared by every task of a spout (and its clones).
pub struct HttpCounters {
        /// POST requests to the ingest path.
        requests,
        /// Requests answered 200.
        accepted,
        /// Records admitted for emission (each counted once; replays not counted).
        records,
        /// Records emitted again after a fail or time-out.
        replayed,
        /// Records dropped (not emitted, or not replayed) because their request had already been
        /// answered non-200 or its client had gone.
        abandoned,
        /// Requests answered 400 (malformed body).
        malformed,
        /// Requests answered 413 (body or record count too large).
        too_large,
        /// Requests answered 415 (content type, charset or encoding).
        unsupported,
        /// Requests answered 401.
        unauthorized,
        /// Requests answered 503 because `max_pending_records` would have been exceeded.
        overloaded,
        /// Requests answered 503 because `ack_timeout` passed before every record was acked.
        ack_timeouts,
        /// Requests answered 503 because the spout was not active (stopping, paused, restarted).
        unavailable,
        /// Requests whose client went away while they waited for their acks.
        disconnects,
        /// `error` tuples not emitted because they came faster than the spout emitted them.
        errors_not_emitted,
        ;
        /// One warning a second at most.
        warn: crate::connector::warn::WarnLimit,
    }
}

impl HttpCounters {
    /// True at most once a second: whether a warning may be logged now.
    fn may_warn(&self) -> bool {
        self.warn.allow()
    }
}

/// State shared by a spout, its clones and its server.
#[derive(Debug, Default)]
struct Shared {
    counters: HttpCounters,
    local_addr: OnceLock<SocketAddr>,
    /// Records admitted and not yet acked or dropped.
    in_flight: AtomicUsize,
    /// The spout is active: new requests are admitted.
    accepting: AtomicBool,
}

/// A request waiting for its records.
const WAITING: u8 = 0;
/// Every record was acked: answer 200.
const DONE: u8 = 1;
/// Answered non-200 (ack timeout) or the client left: its records are the client's again.
const ABANDONED: u8 = 2;
/// The spout stopped before emitting every record: answer 503.
const STOPPED: u8 = 3;

/// One request's countdown, shared by its handler and the spout.
#[derive(Debug)]
struct Request {
    /// Records not yet acked.
    remaining: AtomicUsize,
    /// WAITING, DONE, ABANDONED or STOPPED; leaves WAITING once.
    state: AtomicU8,
    /// Wakes the handler when the state leaves WAITING.
    done: Notify,
}

impl Request {
    fn waiting(&self) -> bool {
        self.state.load(Relaxed) == WAITING
    }

    /// Moves WAITING to `to` (waking the handler); false if the state had already changed.
    fn settle(&self, to: u8) -> bool {
        let ok = self
            .state
            .compare_exchange(WAITING, to, Relaxed, Relaxed)
            .is_ok();
        if ok {
            self.done.notify_one();
        }
        ok
    }
}

/// What a handler hands to the spout.
struct Batch {
    records: Vec<Values>,
    request: Arc<Request>,
}

/// How a spout's bodies become records, fixed by its options.
#[derive(Debug)]
struct Shape {
    format: HttpFormat,
    /// JSON records: the keys picked as fields.
    fields: Option<Vec<SmolStr>>,
    max_body_bytes: usize,
}

/// How one body is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BodyFormat {
    Json,
    Ndjson,
    Text,
}

/// A refusal: status and reason, and the raw text for the `error` stream (400 and 413; empty
/// when the body was not read).
struct Refusal {
    status: StatusCode,
    reason: String,
    raw: Option<String>,
}

impl Refusal {
    fn new(status: StatusCode, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
            raw: None,
        }
    }

    fn with_raw(mut self, raw: &[u8]) -> Refusal {
        self.raw = Some(raw_prefix(raw));
        self
    }
}

/// The first KiB of `bytes`, as text.
fn head(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(RAW_PREFIX)]
}

/// The record of a JSON object: the picked fields, or the whole object.
fn object_record(shape: &Shape, v: Value) -> Values {
    match &shape.fields {
        None => values![v],
        Some(fields) => {
            let map = v.as_map();
            fields
                .iter()
                .map(|f| map.and_then(|m| m.get(f)).cloned().unwrap_or(Value::Null))
                .collect()
        }
    }
}

/// A serde_json error's message without its " at line L column C" suffix.
fn json_message(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    msg.strip_suffix(&suffix).map(str::to_string).unwrap_or(msg)
}

/// Parses a whole body into records, or says which line or record is wrong.
fn parse_body(shape: &Shape, format: BodyFormat, body: &[u8]) -> Result<Vec<Values>, Refusal> {
    match format {
        BodyFormat::Json => parse_json(shape, body),
        BodyFormat::Ndjson => parse_lines(body, |n, line, out| {
            if line.iter().all(u8::is_ascii_whitespace) {
                return Ok(());
            }
            let v: Value = serde_json::from_slice(line).map_err(|e| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "line {n}, column {}: invalid JSON: {}",
                        e.column(),
                        json_message(&e)
                    ),
                )
                .with_raw(line)
            })?;
            if v.as_map().is_none() {
                return Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("line {n}: expected a JSON object, found {}", json_type(&v)),
                )
                .with_raw(line));
            }
            out.push(object_record(shape, v));
            Ok(())
        }),
        BodyFormat::Text => parse_lines(body, |n, line, out| match std::str::from_utf8(line) {
            Ok(s) => {
                out.push(values![s]);
                Ok(())
            }
            Err(e) => Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("line {n}: invalid UTF-8 after byte {}", e.valid_up_to()),
            )
            .with_raw(line)),
        }),
    }
}

/// The JSON name of a value's type.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Int(_) | Value::Float(_) => "a number",
        Value::Str(_) => "a string",
        Value::List(_) => "an array",
        Value::Map(_) => "an object",
        Value::Bytes(_) => "bytes",
    }
}

/// Calls `each(line number from 1, line without its "\r\n" or "\n", records)` per line.
fn parse_lines(
    body: &[u8],
    mut each: impl FnMut(usize, &[u8], &mut Vec<Values>) -> Result<(), Refusal>,
) -> Result<Vec<Values>, Refusal> {
    let mut out = Vec::new();
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    if body.is_empty() {
        return Ok(out);
    }
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        each(i + 1, line, &mut out)?;
    }
    Ok(out)
}

/// Parses one JSON object or an array of objects, naming the record (`$[i]`) at fault.
fn parse_json(shape: &Shape, body: &[u8]) -> Result<Vec<Values>, Refusal> {
    let index = Cell::new(None::<usize>);
    let wrong = Cell::new(None::<String>);
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let top = TopLevel {
        shape,
        index: &index,
        wrong: &wrong,
        out: &mut out,
    };
    let r = top.deserialize(&mut de).and_then(|()| de.end());
    match r {
        Ok(()) => Ok(out),
        Err(e) => {
            let reason = match (wrong.take(), index.get()) {
                (Some(w), _) => w,
                (None, Some(i)) => format!(
                    "$[{i}]: invalid JSON at line {} column {}: {}",
                    e.line(),
                    e.column(),
                    json_message(&e)
                ),
                (None, None) if body.iter().all(u8::is_ascii_whitespace) => {
                    "empty body: expected a JSON object or an array of objects".to_string()
                }
                (None, None) => format!(
                    "invalid JSON at line {} column {}: {}",
                    e.line(),
                    e.column(),
                    json_message(&e)
                ),
            };
            Err(Refusal::new(StatusCode::BAD_REQUEST, reason).with_raw(head(body)))
        }
    }
}

/// Deserializes the top level of a JSON body into records.
struct TopLevel<'a> {
    shape: &'a Shape,
    /// The array index being read, when the body is an array.
    index: &'a Cell<Option<usize>>,
    /// A record that is not an object: the whole reason.
    wrong: &'a Cell<Option<String>>,
    out: &'a mut Vec<Values>,
}

impl<'de> DeserializeSeed<'de> for TopLevel<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TopLevel<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object or an array of objects")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let v = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        self.out.push(object_record(self.shape, v));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            self.index.set(Some(i));
            let Some(v) = seq.next_element::<Value>()? else {
                break;
            };
            if v.as_map().is_none() {
                self.wrong.set(Some(format!(
                    "$[{i}]: expected a JSON object, found {}",
                    json_type(&v)
                )));
                return Err(de::Error::custom("not an object"));
            }
            self.out.push(object_record(self.shape, v));
            i += 1;
        }
        self.index.set(None);
        Ok(())
    }
}

/// The handlers' state.
struct Server {
    shape: Arc<Shape>,
    opts: Arc<HttpOptions>,
    shared: Arc<Shared>,
    /// The token `Authorization: Bearer` must carry, when one is required.
    token: Option<Vec<u8>>,
    tx: flume::Sender<Batch>,
    errors: flume::Sender<Values>,
    source: SmolStr,
}

/// A JSON answer.
fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECS),
        );
    }
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

/// Compares in time independent of where the inputs differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Server {
    /// Counts and logs a refusal, sends 400/413 to the `error` stream, and answers it.
    fn refuse(&self, r: Refusal) -> Response {
        let c = &self.shared.counters;
        let counter = match r.status {
            StatusCode::BAD_REQUEST => &c.malformed,
            StatusCode::PAYLOAD_TOO_LARGE => &c.too_large,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => &c.unsupported,
            StatusCode::UNAUTHORIZED => &c.unauthorized,
            _ => &c.unavailable,
        };
        counter.fetch_add(1, Relaxed);
        if c.may_warn() {
            tracing::warn!(component = %self.source, status = r.status.as_u16(), reason = %r.reason, "request refused");
        }
        if matches!(
            r.status,
            StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE
        ) {
            let raw = r.raw.unwrap_or_default();
            if self
                .errors
                .try_send(values![r.reason.as_str(), raw])
                .is_err()
            {
                c.errors_not_emitted.fetch_add(1, Relaxed);
            }
        }
        answer(r.status, serde_json::json!({ "error": r.reason }))
    }

    /// The body format of a request, from the options and its `Content-Type`.
    fn body_format(&self, headers: &HeaderMap) -> Result<BodyFormat, Refusal> {
        match self.shape.format {
            HttpFormat::Json => return Ok(BodyFormat::Json),
            HttpFormat::Ndjson => return Ok(BodyFormat::Ndjson),
            HttpFormat::Text => return Ok(BodyFormat::Text),
            HttpFormat::Auto => {}
        }
        const EXPECTED: &str =
            "expected application/json, application/x-ndjson (or jsonlines) or text/plain";
        let Some(ct) = headers.get(header::CONTENT_TYPE) else {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("no Content-Type: {EXPECTED}"),
            ));
        };
        let text = ct.to_str().unwrap_or("");
        let mime: mime::Mime = text.parse().map_err(|_| {
            Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type {text:?} is not a media type: {EXPECTED}"),
            )
        })?;
        if let Some(cs) = mime.get_param(mime::CHARSET)
            && !cs.as_str().eq_ignore_ascii_case("utf-8")
            && !cs.as_str().eq_ignore_ascii_case("utf8")
        {
            return Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("charset {:?}: expected utf-8", cs.as_str()),
            ));
        }
        let essence = mime.essence_str().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Ok(BodyFormat::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonlines"
            | "application/x-jsonlines"
            | "application/jsonl" => Ok(BodyFormat::Ndjson),
            "text/plain" if self.shape.fields.is_some() => Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "text/plain: this endpoint has `fields`, so records must be JSON objects (application/json or application/x-ndjson)",
            )),
            "text/plain" => Ok(BodyFormat::Text),
            _ => Err(Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type {essence}: {EXPECTED}"),
            )),
        }
    }

    /// Reads the body, up to `max_body_bytes`, and decompresses it when gzipped.
    async fn read_body(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, Refusal> {
        let max = self.shape.max_body_bytes;
        let gzip = match headers.get(header::CONTENT_ENCODING) {
            None => false,
            Some(v) => match v
                .to_str()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
                .as_str()
            {
                "gzip" | "x-gzip" => true,
                "identity" | "" => false,
                other => {
                    return Err(Refusal::new(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        format!("Content-Encoding {other:?}: expected gzip or identity"),
                    ));
                }
            },
        };
        let too_large = || {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than max_body_bytes = {max}"),
            )
        };
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max as u64) {
            return Err(too_large());
        }
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(0) as usize);
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                Refusal::new(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {e}"),
                )
            })?;
            if buf.len() + chunk.len() > max {
                buf.extend_from_slice(
                    &chunk[..RAW_PREFIX.saturating_sub(buf.len()).min(chunk.len())],
                );
                return Err(too_large().with_raw(head(&buf)));
            }
            buf.extend_from_slice(&chunk);
        }
        let body = buf.freeze();
        if !gzip {
            return Ok(body);
        }
        let mut out = Vec::new();
        let read = flate2::read::MultiGzDecoder::new(&body[..])
            .take(max as u64 + 1)
            .read_to_end(&mut out);
        match read {
            Err(e) => Err(
                Refusal::new(StatusCode::BAD_REQUEST, format!("invalid gzip body: {e}"))
                    .with_raw(head(&body)),
            ),
            Ok(n) if n > max => Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("decompressed body larger than max_body_bytes = {max}"),
            )
            .with_raw(head(&out))),
            Ok(_) => Ok(Bytes::from(out)),
        }
    }

    /// Reserves room for `n` records, or says why not.
    fn admit(&self, n: usize) -> Result<(), Refusal> {
        let max = self.opts.max_pending_records;
        if n > max {
            return Err(Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{n} records in one request: more than max_pending_records = {max}; send smaller requests"
                ),
            ));
        }
        let admitted = self
            .shared
            .in_flight
            .fetch_update(Relaxed, Relaxed, |cur| (cur + n <= max).then_some(cur + n));
        match admitted {
            Ok(_) => Ok(()),
            Err(cur) => {
                self.shared.counters.overloaded.fetch_add(1, Relaxed);
                Err(Refusal::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "overloaded: {cur} records pending, max_pending_records = {max}; retry later"
                    ),
                ))
            }
        }
    }
}

/// Marks the request abandoned if its handler ends without an answer (the client hung up).
struct AbandonOnDrop<'a>(&'a Request, &'a HttpCounters);

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        if self.0.settle(ABANDONED) {
            self.1.disconnects.fetch_add(1, Relaxed);
        }
    }
}

/// POST on the ingest path.
async fn ingest(State(s): State<Arc<Server>>, headers: HeaderMap, body: Body) -> Response {
    let c = &s.shared.counters;
    c.requests.fetch_add(1, Relaxed);
    match ingest_records(&s, &headers, body).await {
        Ok(n) => {
            c.accepted.fetch_add(1, Relaxed);
            answer(StatusCode::OK, serde_json::json!({ "accepted": n }))
        }
        Err(r) if r.status == StatusCode::SERVICE_UNAVAILABLE => {
            // Counted where decided (overloaded, ack timeout, unavailable).
            if c.may_warn() {
                tracing::warn!(component = %s.source, reason = %r.reason, "request answered 503");
            }
            answer(r.status, serde_json::json!({ "error": r.reason }))
        }
        Err(r) => s.refuse(r),
    }
}

/// Checks, reads and parses a request, hands its records to the spout and waits for their
/// acks; the number of records, or the refusal.
async fn ingest_records(
    s: &Arc<Server>,
    headers: &HeaderMap,
    body: Body,
) -> Result<usize, Refusal> {
    let unavailable = |s: &Server| {
        s.shared.counters.unavailable.fetch_add(1, Relaxed);
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not accepting records now (the topology is stopping or paused); retry later",
        )
    };
    if !s.shared.accepting.load(Relaxed) {
        return Err(unavailable(s));
    }
    if let Some(want) = &s.token {
        match headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()) {
            None => {
                return Err(Refusal::new(
                    StatusCode::UNAUTHORIZED,
                    "missing Authorization: Bearer token",
                ));
            }
            Some(got) => {
                // The scheme is case-insensitive (RFC 9110); the token is compared as is.
                let (scheme, token) = got.split_at(got.len().min(7));
                if !scheme.eq_ignore_ascii_case(b"bearer ") || !same_secret(token, want) {
                    return Err(Refusal::new(
                        StatusCode::UNAUTHORIZED,
                        "wrong Authorization: expected Bearer and the configured token",
                    ));
                }
            }
        }
    }
    let format = s.body_format(headers)?;
    let body = s.read_body(headers, body).await?;
    let records = if body.len() <= PARSE_INLINE_MAX {
        parse_body(&s.shape, format, &body)?
    } else {
        let shape = s.shape.clone();
        tokio::task::spawn_blocking(move || parse_body(&shape, format, &body))
            .await
            .map_err(|e| {
                Refusal::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("parsing failed: {e}"),
                )
            })??
    };
    let n = records.len();
    if n == 0 {
        return Ok(0);
    }
    s.admit(n)?;
    s.shared.counters.records.fetch_add(n as u64, Relaxed);
    let request = Arc::new(Request {
        remaining: AtomicUsize::new(n),
        state: AtomicU8::new(WAITING),
        done: Notify::new(),
    });
    if s.tx
        .send(Batch {
            records,
            request: request.clone(),
        })
        .is_err()
    {
        // The spout is gone.
        s.shared.in_flight.fetch_sub(n, Relaxed);
        return Err(unavailable(s));
    }
    let guard = AbandonOnDrop(&request, &s.shared.counters);
    let waited = tokio::time::timeout(s.opts.ack_timeout, request.done.notified()).await;
    if waited.is_err() && request.settle(ABANDONED) {
        s.shared.counters.ack_timeouts.fetch_add(1, Relaxed);
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not every record was acked within ack_timeout = {}; some may have been processed: retry the request",
                humantime::format_duration(s.opts.ack_timeout)
            ),
        ));
    }
    drop(guard);
    match request.state.load(Relaxed) {
        DONE => Ok(n),
        _ => Err(unavailable(s)),
    }
}

/// GET /health.
async fn health(State(s): State<Arc<Server>>) -> Response {
    if s.shared.accepting.load(Relaxed) {
        answer(StatusCode::OK, serde_json::json!({ "status": "ok" }))
    } else {
        answer(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "unavailable" }),
        )
    }
}

/// The spout side: drains batches, numbers the records, keeps each until it is acked.
struct Ingest {
    rx: flume::Receiver<Batch>,
    errors: flume::Receiver<Values>,
    /// The batch being emitted.
    current: Option<(std::vec::IntoIter<Values>, Arc<Request>)>,
    /// Emitted, not yet acked.
    pending: HashMap<u64, (Values, Arc<Request>), foldhash::fast::RandomState>,
    /// Failed, to be emitted again, oldest first.
    replay: VecDeque<u64>,
    next_id: u64,
    max_pending: usize,
    shared: Arc<Shared>,
}

impl Ingest {
    /// Emits `error` tuples, replays, then new records, up to [`DRAIN_PER_CALL`] and
    /// `max_spout_pending`.
    fn emit(&mut self, out: &mut SpoutCollector<'_, u64>) {
        let mut n = 0;
        while n < DRAIN_PER_CALL {
            let Ok(e) = self.errors.try_recv() else { break };
            out.emit_to(ERROR_STREAM, e, None);
            n += 1;
        }
        while n < DRAIN_PER_CALL && out.pending() < self.max_pending {
            let Some(id) = self.replay.pop_front() else {
                break;
            };
            let Some((values, request)) = self.pending.get(&id) else {
                continue;
            };
            if request.waiting() {
                out.emit(values.clone(), id);
                self.shared.counters.replayed.fetch_add(1, Relaxed);
                n += 1;
            } else {
                self.pending.remove(&id);
                self.drop_records(1);
            }
        }
        while n < DRAIN_PER_CALL && out.pending() < self.max_pending {
            let Some((records, request)) = &mut self.current else {
                match self.rx.try_recv() {
                    Ok(b) => self.current = Some((b.records.into_iter(), b.request)),
                    Err(_) => break,
                }
                continue;
            };
            if !request.waiting() {
                let left = records.len();
                self.current = None;
                self.drop_records(left);
                continue;
            }
            let Some(values) = records.next() else {
                self.current = None;
                continue;
            };
            let id = self.next_id;
            self.next_id += 1;
            self.pending.insert(id, (values.clone(), request.clone()));
            out.emit(values, id);
            n += 1;
        }
    }

    /// `n` admitted records will not be emitted (again): free their room.
    fn drop_records(&self, n: usize) {
        self.shared.in_flight.fetch_sub(n, Relaxed);
        self.shared.counters.abandoned.fetch_add(n as u64, Relaxed);
    }

    fn ack(&mut self, id: u64) {
        if let Some((_, request)) = self.pending.remove(&id) {
            self.shared.in_flight.fetch_sub(1, Relaxed);
            if request.remaining.fetch_sub(1, Relaxed) == 1 {
                request.settle(DONE);
            }
        }
    }

    fn fail(&mut self, id: u64) {
        let live = match self.pending.get(&id) {
            None => return,
            Some((_, request)) => request.waiting(),
        };
        if live {
            self.replay.push_back(id);
        } else {
            self.pending.remove(&id);
            self.drop_records(1);
        }
    }

    /// Answers 503 to the requests whose records were not all emitted yet and drops those.
    fn stop_queued(&mut self) {
        if let Some((records, request)) = self.current.take() {
            request.settle(STOPPED);
            self.drop_records(records.len());
        }
        while let Ok(b) = self.rx.try_recv() {
            b.request.settle(STOPPED);
            self.drop_records(b.records.len());
        }
    }

    /// Answers 503 to every waiting request and drops every record.
    fn stop_all(&mut self) {
        self.stop_queued();
        for (_, (_, request)) in self.pending.drain() {
            request.settle(STOPPED);
            self.shared.in_flight.fetch_sub(1, Relaxed);
            self.shared.counters.abandoned.fetch_add(1, Relaxed);
        }
        self.replay.clear();
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// The `http` spout (see the module docs). Cloning gives a fresh, unopened spout with the same
/// options that shares the counters and the bound address.
pub struct HttpSpout {
    opts: Arc<HttpOptions>,
    /// The server's TLS configuration (`tls_cert`, `tls_key`, `tls_client_ca`), if it serves
    /// HTTPS.
    tls: Option<Arc<crate::connector::tls::ServerConfig>>,
    shape: Arc<Shape>,
    shared: Arc<Shared>,
    ingest: Option<Ingest>,
    /// Stops the server when the spout is closed or dropped.
    stop: Option<DropGuard>,
}

impl Clone for HttpSpout {
    fn clone(&self) -> Self {
        HttpSpout {
            opts: self.opts.clone(),
            tls: self.tls.clone(),
            shape: self.shape.clone(),
            shared: self.shared.clone(),
            ingest: None,
            stop: None,
        }
    }
}

impl HttpSpout {
    /// An http spout with these options, or what is wrong with them.
    pub fn new(opts: HttpOptions) -> Result<HttpSpout, String> {
        crate::socket::check_address(&opts.address)?;
        let p = &opts.path;
        let path_ok = p.starts_with('/')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
            && !p.contains("//");
        if !path_ok {
            return Err(format!(
                "option `path` = {p:?}: expected an absolute path of letters, digits and - . _ ~ (e.g. \"/ingest\")"
            ));
        }
        if p == HEALTH_PATH {
            return Err(format!(
                "option `path` = {p:?}: {HEALTH_PATH} is the health check; choose another path"
            ));
        }
        if opts.max_body_bytes == 0 || opts.max_body_bytes > 1 << 30 {
            return Err(format!(
                "option `max_body_bytes` = {}: expected from 1 to 1073741824 (1 GiB)",
                opts.max_body_bytes
            ));
        }
        if opts.max_pending_records == 0 {
            return Err("option `max_pending_records` = 0: expected at least 1".to_string());
        }
        if opts.ack_timeout.is_zero() {
            return Err("option `ack_timeout` = \"0s\": expected more than zero".to_string());
        }
        if opts.auth_token.as_deref() == Some("") {
            return Err(
                "option `auth_token` is empty: expected a token, or leave the option out"
                    .to_string(),
            );
        }
        if let Some(t) = &opts.auth_token
            && HeaderValue::from_str(&format!("Bearer {t}")).is_err()
        {
            return Err(
                "option `auth_token`: expected visible ASCII characters (it is sent in a header)"
                    .to_string(),
            );
        }
        if let Some(fields) = &opts.fields {
            if opts.format == HttpFormat::Text {
                return Err("option `fields`: only for JSON records; format = \"text\" emits one field `line`".to_string());
            }
            if fields.is_empty() {
                return Err("option `fields` = []: expected at least one key, or leave the option out (one field `record`)".to_string());
            }
            for (i, f) in fields.iter().enumerate() {
                if f.is_empty() {
                    return Err(format!("option `fields[{i}]` is empty: expected a key"));
                }
                if fields[..i].contains(f) {
                    return Err(format!("option `fields[{i}]` = {f:?}: listed twice"));
                }
            }
        }
        let tls = crate::connector::tls::server_options(
            opts.tls_cert.as_deref(),
            opts.tls_key.as_deref(),
            opts.tls_client_ca.as_deref(),
            &[b"http/1.1"],
        )?
        .map(Arc::new);
        Ok(HttpSpout {
            tls,
            shape: Arc::new(Shape {
                format: opts.format,
                fields: opts
                    .fields
                    .as_ref()
                    .map(|f| f.iter().map(SmolStr::new).collect()),
                max_body_bytes: opts.max_body_bytes,
            }),
            opts: Arc::new(opts),
            shared: Arc::default(),
            ingest: None,
            stop: None,
        })
    }

    /// What the server has answered so far, over every task of this spout and its clones.
    pub fn counters(&self) -> &HttpCounters {
        &self.shared.counters
    }

    /// The address listened on, once the first task is open (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr.get().copied()
    }

    /// Records admitted and not yet acked (or dropped), over every request.
    pub fn pending_records(&self) -> usize {
        self.shared.in_flight.load(Relaxed)
    }
}

impl Spout for HttpSpout {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        match (&self.opts.fields, self.opts.format) {
            (Some(fields), _) => out.declare(fields.iter().map(String::as_str)),
            (None, HttpFormat::Text) => out.declare(["line"]),
            (None, _) => out.declare(["record"]),
        };
        out.declare_stream(ERROR_STREAM, SOURCE_ERROR_FIELDS);
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        let source = SmolStr::from(ctx.component_id());
        if ctx.task_index() != 0 {
            tracing::info!(
                component = %source,
                task_index = ctx.task_index(),
                "the http server runs in the first task only; this task emits nothing"
            );
            return Ok(());
        }
        let listener = TcpListener::bind(self.opts.address.as_str())
            .await
            .map_err(|e| format!("cannot listen on {:?}: {e}", self.opts.address))?;
        let addr = listener.local_addr()?;
        tracing::info!(component = %source, %addr, path = %self.opts.path, "listening for HTTP requests");
        let _ = self.shared.local_addr.set(addr);
        let (tx, rx) = flume::unbounded();
        let (err_tx, err_rx) = flume::bounded(ERROR_CHANNEL);
        self.ingest = Some(Ingest {
            rx,
            errors: err_rx,
            current: None,
            pending: HashMap::default(),
            replay: VecDeque::new(),
            next_id: 0,
            max_pending: ctx.config().max_spout_pending.unwrap_or(usize::MAX),
            shared: self.shared.clone(),
        });
        let server = Arc::new(Server {
            shape: self.shape.clone(),
            opts: self.opts.clone(),
            shared: self.shared.clone(),
            token: self.opts.auth_token.as_ref().map(|t| t.as_bytes().to_vec()),
            tx,
            errors: err_tx,
            source: source.clone(),
        });
        let app = Router::new()
            .route(&self.opts.path, post(ingest))
            .route(HEALTH_PATH, get(health))
            .with_state(server);
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let tls = self.tls.clone();
        crate::connector::warn::spawn(async move {
            let served =
                crate::connector::tls::serve(listener, app, tls, stop.cancelled_owned()).await;
            if let Err(e) = served {
                tracing::error!(component = %source, "http server failed: {e}");
            }
        });
        self.stop = Some(cancel.drop_guard());
        Ok(())
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        if let Some(i) = &mut self.ingest {
            i.emit(out);
        }
        Ok(())
    }

    fn ack(&mut self, id: u64) {
        if let Some(i) = &mut self.ingest {
            i.ack(id);
        }
    }

    fn fail(&mut self, id: u64) {
        if let Some(i) = &mut self.ingest {
            i.fail(id);
        }
    }

    fn activate(&mut self) {
        if self.ingest.is_some() {
            self.shared.accepting.store(true, Relaxed);
        }
    }

    fn deactivate(&mut self) {
        if let Some(i) = &mut self.ingest {
            self.shared.accepting.store(false, Relaxed);
            i.stop_queued();
        }
    }

    async fn close(&mut self) {
        if let Some(i) = &mut self.ingest {
            self.shared.accepting.store(false, Relaxed);
            i.stop_all();
        }
        // Dropping the guard cancels the token: the server stops accepting connections.
        self.stop = None;
    }
}

/// The `http` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::spout(
            "http",
            "records POSTed over HTTP (JSON, NDJSON, text lines, gzip); 200 only once acked downstream, 503 + Retry-After under backpressure, 400/413/415 with the reason; GET /health",
            HttpSpout::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components http`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[spouts.ingest]
kind = "http"
address = "127.0.0.1:8080"  # curl -H 'Content-Type: application/x-ndjson' --data-binary @events.ndjson localhost:8080/ingest
path = "/ingest"
format = "auto"           # by Content-Type: application/json, application/x-ndjson, text/plain
fields = ["host", "status", "path"]   # top-level keys of each JSON object; unset = one field `record`
max_body_bytes = 10485760 # larger: 413
max_pending_records = 10000   # more in flight: 503 + Retry-After
ack_timeout = "10s"       # 200 only once every record is acked; after this, 503 (the client retries)
auth_token = "${INGEST_TOKEN:-dev}"   # Authorization: Bearer <token>, else 401
# tls_cert = "server.pem"   # serve HTTPS: the certificate (PEM, with its chain) and its key
# tls_key = "server.key"
# tls_client_ca = "clients-ca.pem"   # and require client certificates signed by this CA

# refused bodies (400, 413), with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "ingest", stream = "error" }]
"#;

impl FromOptions for HttpSpout {
    type Options = HttpOptions;
    fn from_options(options: HttpOptions) -> Result<Self, String> {
        HttpSpout::new(options)
    }
}

/// `address` has a serde default (so a missing one is reported by the component's own check, with the
/// expected form), but is required.
fn http_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["address"]);
}
