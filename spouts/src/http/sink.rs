//! `http`: POSTs batches of records to an HTTP endpoint and acks each input only once the
//! endpoint answered 2xx for its batch.
//!
//! ```text
//!                 ┌──────────────── http (BatchSink<HttpWriter>) ────────────────┐
//! input ────────► │ encode: JSON object ──► pending batch (inputs held)          │
//!                 │                           │ full, dry, old, or finish        │
//!                 │                           ▼                                  │
//!                 │        POST url  (ndjson | json array, [gzip])               │
//!                 │          ├─ 2xx ───────────────────► ack every held input    │
//!                 │          ├─ 408 / 429 / 5xx / connection error / timeout:    │
//!                 │          │    wait Retry-After, retry with back-off; then ──► fail held (replay)
//!   error ◄────── │          └─ other status: each record (reason = status + body)│
//!                 └──────────────────────────────────────────────────────────────┘
//! ```
//!
//! A batch is written when it is full (`batch.max_records` records or `batch.max_bytes` bytes),
//! as soon as no more input is waiting for the sink (its task's input ran dry), when its oldest
//! record has waited `batch.interval`, and at the end of input. Under load the sink's queue is
//! never empty and batches fill; under a light trickle they are small, written one per pause in
//! the input. See [`crate::connector::sink`].
//!
//! Options:
//!
//! ```toml
//! [bolt.ship]
//! kind = "http"
//! url = "http://127.0.0.1:8080/ingest"
//! encoding = "ndjson"         # "ndjson" (one JSON object per line) | "json" (one JSON array)
//! headers = { Authorization = "Bearer x" }   # sent with every request
//! timeout = "10s"             # per request, connecting included
//! gzip = false                # gzip the body (Content-Encoding: gzip)
//! batch = { max_records = 500, max_bytes = 1048576, interval = "1s" }
//! retry = { attempts = 5, backoff = "100ms", max_backoff = "10s" }
//! ```
//!
//! # Semantics
//! Each record is a JSON object keyed by field name (values in their natural JSON shape). A batch
//! is one `POST`: `Content-Type: application/x-ndjson` with one object per line, or
//! `application/json` with one array of objects. The endpoint owns durability: a 2xx answer means
//! the batch is stored, and only then are its inputs acked.
//!
//! - 408, 429, 5xx, a refused or broken connection and a timeout are retried (the same body)
//!   after the back-off of `retry`; a `Retry-After: <seconds>` answer first waits that long
//!   (at most `retry.max_backoff`). When every try failed, the batch's inputs are failed and
//!   their spouts replay them.
//! - Any other answer (400, 401, 404, 413, ...) rejects the batch: every record goes to the
//!   `error` stream as `(reason, record)`, the reason holding the status and the first 200 bytes
//!   of the answer's body, and the inputs are acked (sending them again would be refused again).
//!
//! # Exactly-once
//! Under `guarantee = "exactly_once"` every batch received before a checkpoint's barrier has its
//! 2xx answer before the checkpoint is taken, or the checkpoint is refused (see
//! [`crate::connector::sink`], "Exactly-once"). Delivery stays **at-least-once**: batches sent
//! after the last completed checkpoint are sent again when a run resumes from it; an endpoint
//! that must not store duplicates needs a key in the records.
//!
//! # Known limits
//! - At-least-once: a batch whose 2xx answer was lost (a timeout after the endpoint stored it) is
//!   sent again; an endpoint that must not store duplicates needs a key in the records.
//! - The whole batch is refused or accepted together: one bad record in a batch answered 400
//!   sends the whole batch to `error`. Keep batches small if the endpoint validates per record.
//! - TLS uses rustls (no system OpenSSL). Without `tls` the Mozilla root certificates built in
//!   verify the server; with `tls`, its `ca` (or the system's roots when unset), and `cert` and
//!   `key` are sent to a server that asks for a client certificate.
//! - Redirects are followed (up to 10); a POST redirected with 301/302/303 becomes a GET, as in
//!   browsers, so point `url` at the final address.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{BoxError, TaskContext, Tuple};

use crate::connector::sink::encode_json;
use crate::connector::sink::{BatchOptions, BatchSink, BatchWriter, RetryOptions, WriteError};

/// How the `http` sink encodes a batch.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum HttpEncoding {
    /// One JSON object per line (`application/x-ndjson`).
    #[default]
    Ndjson,
    /// One JSON array of objects (`application/json`).
    Json,
}

/// Options of the `http` sink (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkOptions {
    /// The `http://` or `https://` address batches are POSTed to. Required.
    pub url: String,
    /// `ndjson` (default) or `json`.
    #[serde(default)]
    pub encoding: HttpEncoding,
    /// Headers sent with every request (`Authorization`, ...).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How long one request may take, connecting included. Default 10 s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub timeout: Duration,
    /// Compress the body with gzip (`Content-Encoding: gzip`). Default false.
    #[serde(default)]
    pub gzip: bool,
    /// When a batch is sent.
    #[serde(default)]
    pub batch: BatchOptions,
    /// How a failed request is retried.
    #[serde(default)]
    pub retry: RetryOptions,
    /// TLS of an `https://` address: `ca` (PEM; unset = the system's roots), `cert` and `key` (a
    /// client certificate, sent when the server asks for one).
    #[serde(default)]
    pub tls: crate::connector::tls::TlsOptions,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl HttpSinkOptions {
    /// Options POSTing NDJSON to `url`, everything else at its default.
    pub fn new(url: impl Into<String>) -> HttpSinkOptions {
        HttpSinkOptions {
            url: url.into(),
            encoding: HttpEncoding::default(),
            headers: BTreeMap::new(),
            timeout: default_timeout(),
            gzip: false,
            batch: BatchOptions::default(),
            retry: RetryOptions::default(),
            tls: crate::connector::tls::TlsOptions::default(),
        }
    }
}

/// How much of a refusal's body goes into the `error` stream's reason.
const BODY_PREFIX: usize = 200;

/// The [`BatchWriter`] of the `http` sink. Wrap it with [`HttpWriter::into_sink`].
pub struct HttpWriter {
    opts: Arc<HttpSinkOptions>,
    client: reqwest::Client,
    url: reqwest::Url,
    headers: HeaderMap,
    /// Encoded records of the pending batch.
    buf: Vec<u8>,
    /// The request body of the pending batch, once built (kept for retries).
    body: Option<Bytes>,
}

impl Clone for HttpWriter {
    /// A writer with the same options and connection pool, and nothing pending (one per task).
    fn clone(&self) -> HttpWriter {
        HttpWriter {
            opts: self.opts.clone(),
            client: self.client.clone(),
            url: self.url.clone(),
            headers: self.headers.clone(),
            buf: Vec::new(),
            body: None,
        }
    }
}

impl HttpWriter {
    /// A writer with these options, or what is wrong with them (naming the option and value).
    pub fn new(opts: HttpSinkOptions) -> Result<HttpWriter, String> {
        opts.batch.check()?;
        opts.retry.check_sink("retry")?;
        let url = reqwest::Url::parse(&opts.url).map_err(|e| {
            format!(
                "option `url` is not a valid URL ({e}): {:?}",
                crate::connector::redact(&opts.url)
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(format!(
                "option `url` must be an http:// or https:// address with a host, got {:?}",
                crate::connector::redact(&opts.url)
            ));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &opts.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("option `headers`: {name:?} is not a valid header name"))?;
            let v = HeaderValue::from_str(value).map_err(|_| {
                format!("option `headers`: the value of {name:?} is not a valid header value")
            })?;
            headers.insert(n, v);
        }
        if opts.timeout.is_zero() {
            return Err("option `timeout` must be longer than 0s".into());
        }
        let mut builder = reqwest::Client::builder().timeout(opts.timeout);
        if opts.tls.is_set() {
            if url.scheme() != "https" {
                return Err(format!(
                    "option `tls` is for an https:// address, and `url` = {:?} is plain",
                    crate::connector::redact(&opts.url)
                ));
            }
            let mut config = opts
                .tls
                .load("tls")?
                .client_config(crate::connector::tls::Verify::Full)?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            builder = builder.use_preconfigured_tls(config);
        }
        let client = builder
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))?;
        Ok(HttpWriter {
            opts: Arc::new(opts),
            client,
            url,
            headers,
            buf: Vec::new(),
            body: None,
        })
    }

    /// The options.
    pub fn options(&self) -> &HttpSinkOptions {
        &self.opts
    }

    /// The sink: this writer inside a [`BatchSink`] with the options' batch and retry settings.
    pub fn into_sink(self) -> BatchSink<HttpWriter> {
        let batch = self.opts.batch.clone();
        let retry = self.opts.retry.clone();
        BatchSink::new(self, batch, retry)
    }

    /// The body of the pending batch: closes the JSON array, gzips (on a blocking thread).
    async fn build_body(&mut self) -> Result<Bytes, WriteError> {
        let mut raw = std::mem::take(&mut self.buf);
        if self.opts.encoding == HttpEncoding::Json {
            raw.push(b']');
        }
        if !self.opts.gzip {
            return Ok(Bytes::from(raw));
        }
        let joined = tokio::task::spawn_blocking(move || {
            let mut enc = GzEncoder::new(Vec::with_capacity(raw.len() / 4), Compression::default());
            enc.write_all(&raw)?;
            enc.finish()
        })
        .await;
        match joined {
            Ok(Ok(gz)) => Ok(Bytes::from(gz)),
            Ok(Err(e)) => Err(WriteError::Retry(e.into())),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(WriteError::Retry(e.into())),
        }
    }
}

impl BatchWriter for HttpWriter {
    async fn open(&mut self, _ctx: &TaskContext) -> Result<(), BoxError> {
        Ok(())
    }

    fn encode(&mut self, input: &Tuple) -> Result<usize, String> {
        let start = self.buf.len();
        if self.opts.encoding == HttpEncoding::Json {
            self.buf.push(if start == 0 { b'[' } else { b',' });
        }
        match encode_json(&mut self.buf, input, None, None) {
            Ok(()) => Ok(self.buf.len() - start),
            Err(e) => {
                self.buf.truncate(start);
                Err(e)
            }
        }
    }

    async fn write(&mut self) -> Result<(), WriteError> {
        let body = match &self.body {
            Some(b) => b.clone(),
            None => {
                if self.buf.is_empty() {
                    return Ok(());
                }
                let b = self.build_body().await?;
                self.body = Some(b.clone());
                b
            }
        };
        let content_type = match self.opts.encoding {
            HttpEncoding::Ndjson => "application/x-ndjson",
            HttpEncoding::Json => "application/json",
        };
        let mut request = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, content_type)
            .body(body);
        if self.opts.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let mut response = request.send().await.map_err(|e| {
            WriteError::Retry(format!("POST {}: {}", self.url, error_chain(&e)).into())
        })?;
        let status = response.status();
        if status.is_success() {
            // Read the answer so the connection can be reused; the batch is stored either way.
            let _ = response.bytes().await;
            self.body = None;
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut prefix = Vec::new();
        while prefix.len() < BODY_PREFIX {
            match response.chunk().await {
                Ok(Some(chunk)) => prefix.extend_from_slice(&chunk),
                _ => break,
            }
        }
        prefix.truncate(BODY_PREFIX);
        let reason = format!(
            "HTTP {status} from {}: {}",
            self.url,
            String::from_utf8_lossy(&prefix)
        );
        let code = status.as_u16();
        if code == 408 || code == 429 || status.is_server_error() {
            if let Some(wait) = retry_after {
                tokio::time::sleep(wait.min(self.opts.retry.max_backoff)).await;
            }
            Err(WriteError::Retry(reason.into()))
        } else {
            self.body = None;
            Err(WriteError::Reject(reason))
        }
    }

    fn discard(&mut self) {
        self.buf.clear();
        self.body = None;
    }
}

/// An error with its causes (`error sending request: connection refused`).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// The `http` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::bolt(
            "http",
            "POSTs batches of records (NDJSON or a JSON array), acking on 2xx; 408/429/5xx and connection errors retried with back-off, other answers to the `error` stream",
            |w: &HttpWriter| w.clone().into_sink(),
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components http`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.ship]
kind = "http"
url = "http://127.0.0.1:8080/ingest"
encoding = "ndjson"       # or "json": one array per batch
headers = { Authorization = "Bearer ${INGEST_TOKEN:-dev}" }
timeout = "10s"
retry = { attempts = 5, backoff = "100ms", max_backoff = "10s" }   # 408/429/5xx retried; other 4xx to `error`
# tls = { ca = "ca.pem", cert = "client.pem", key = "client.key" }   # https://: the CA, a client certificate
inputs = [{ from = "shaped" }]
"#;

impl FromOptions for HttpWriter {
    type Options = HttpSinkOptions;
    fn from_options(options: HttpSinkOptions) -> Result<Self, String> {
        HttpWriter::new(options)
    }
}
