//! `kinesis`: puts records into an Amazon Kinesis data stream (or a Kinesis-compatible server
//! such as kinesalite) with PutRecords, through the official AWS SDK for Rust; each input is
//! acked only once the stream accepted its record.
//!
//! ```text
//!              ┌──────────────── kinesis (BatchSink<KinesisWriter>) ─────────────────┐
//! input ─────► │ encode: data (field `data_field`, or the tuple as a JSON object)    │
//!              │         partition key (field `partition_key_field`)  ──err──────────────► error
//!              │   pending batch (inputs held) ── full / dry / old / finish        │
//!              │        ▼                                                           │
//!              │  PutRecords in calls of ≤ 500 records and ≤ 5 MiB                   │
//!              │    ├─ every entry accepted ─────────────► ack every held input      │
//!              │    ├─ some entries failed (throttled, internal): only those are     │
//!              │    │  sent again after the back-off of `retry`                      │
//!              │    ├─ unreachable / throttled call: the same, whole                 │
//!              │    └─ every try failed ─────────────────► fail held (replay)        │
//!              └─────────────────────────────────────────────────────────────────────┘
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
//! [bolts.ship]
//! kind = "kinesis"
//! stream = "out"
//! # region = "us-east-1"                 # default: the SDK's, else us-east-1
//! # endpoint = "http://127.0.0.1:4567"   # a Kinesis-compatible server
//! # access_key_id = "${KINESIS_KEY_ID}"  secret_access_key = "${KINESIS_SECRET}"
//! #                                      # default: the SDK's credential chain
//! partition_key_field = "device"         # its value (text or number) is the partition key
//! # data_field = "data"                  # text or bytes sent as they are; default: the
//! #                                      # whole tuple as one JSON object
//! batch = { max_records = 500, max_bytes = 1048576, interval = "1s" }
//! retry = { attempts = 5, backoff = "100ms", max_backoff = "10s" }
//! ```
//!
//! # Semantics
//! A record's data is the text or bytes of `data_field` (another value type is sent as its JSON
//! form), or, without `data_field`, the tuple as one JSON object keyed by field name. The
//! partition key is the value of `partition_key_field` as text (1 to 256 characters). A tuple
//! without that field, with an empty or too long key, or with data over 1 MiB goes to the
//! `error` stream as (`reason`, `record`) and is acked.
//!
//! A batch is put with PutRecords calls of at most 500 records and 5 MiB. Entries the service
//! refuses inside a successful call (`ProvisionedThroughputExceededException`,
//! `InternalFailure`) are kept and sent again after the back-off; entries accepted are not sent
//! again. A call that fails whole (unreachable endpoint, throttled, missing stream) is retried
//! the same way. When `retry.attempts` tries did not get every record accepted, every input of
//! the batch is failed so that its spout replays it: **at-least-once** (records accepted before
//! the failure are written again by the replay).
//!
//! # Exactly-once
//! Under `guarantee = "exactly_once"` every record received before a checkpoint's barrier is
//! accepted by the stream before the checkpoint is taken, or the checkpoint is refused (see
//! [`crate::connector::sink`], "Exactly-once"); a batch whose every try failed is kept and put
//! again, not dropped. Delivery stays **at-least-once**: records put after the last completed
//! checkpoint are put again when a run resumes from it (Kinesis has no transactions; readers
//! that must not see duplicates de-duplicate by a key in the record).
//!
//! # Known limits
//! - Order: a record retried after a partial failure lands after records of the same key put
//!   in the meantime (Kinesis' own PutRecords has the same property); use one key per ordered
//!   sequence and `max_records = 1` if strict order matters.
//! - No aggregation (KPL format) and no explicit hash keys.

use std::sync::Arc;

use aws_sdk_kinesis::Client;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{BoxError, TaskContext, Tuple, Value};

use super::{describe, kinesis_options};
use crate::connector::counters;
use crate::connector::sink::encode_json;
use crate::connector::sink::{BatchOptions, BatchSink, BatchWriter, RetryOptions, WriteError};
use schemars::JsonSchema;

/// Records per PutRecords call, at most (the service's limit).
pub const MAX_PUT_RECORDS: usize = 500;
/// Bytes per PutRecords call, at most (data and partition keys; the service's limit).
pub const MAX_PUT_BYTES: usize = 5 << 20;
/// Bytes of one record's data and key, at most (the service's limit).
pub const MAX_RECORD_BYTES: usize = 1 << 20;

kinesis_options! {
/// Options of the `kinesis` sink.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema, Serialize)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = kinesis_sink_required)]
pub struct KinesisSinkOptions {
    /// The field whose value is the partition key.
    pub partition_key_field: String,
    /// The field sent as the record's data; default: the tuple as a JSON object.
    pub data_field: Option<String>,
    /// When a batch is written (`max_records` at most 500).
    pub batch: BatchOptions,
    /// How failed puts are retried.
    pub retry: RetryOptions,
}
}

impl KinesisSinkOptions {
    /// Checks the values; the error names the option.
    pub fn check(&self) -> Result<(), String> {
        self.connection().check()?;
        if self.partition_key_field.is_empty() {
            return Err("option `partition_key_field`: expected the name of the field holding the partition key".into());
        }
        if self.data_field.as_deref() == Some("") {
            return Err("option `data_field` is empty: expected a field name".into());
        }
        self.batch.check()?;
        if self.batch.max_records > MAX_PUT_RECORDS {
            return Err(format!(
                "option `batch.max_records` = {}: expected at most 500 (the PutRecords limit)",
                self.batch.max_records
            ));
        }
        if self.batch.max_bytes > MAX_PUT_BYTES {
            return Err(format!(
                "option `batch.max_bytes` = {}: expected at most 5242880 (5 MiB, the PutRecords limit)",
                self.batch.max_bytes
            ));
        }
        self.retry.check_sink("retry")
    }
}

counters! {
    /// Counts of one sink (shared by its tasks).
    pub struct KinesisSinkCounters {
        /// Records the stream accepted.
        put,
        /// Entries refused inside successful PutRecords calls (sent again).
        entry_failures,
        /// PutRecords calls that failed whole.
        call_failures,
        ;
        /// The text of the last failed try.
        last_error: std::sync::Mutex<Option<String>>,
    }
}

impl KinesisSinkCounters {
    /// The text of the last failed try, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The writer half of the `kinesis` sink.
pub struct KinesisWriter {
    opts: Arc<KinesisSinkOptions>,
    counters: Arc<KinesisSinkCounters>,
    client: Option<Client>,
    /// Entries not yet accepted: (data, partition key).
    pending: Vec<(bytes::Bytes, SmolStr)>,
    buf: Vec<u8>,
}

/// The `kinesis` sink bolt.
pub type KinesisSink = BatchSink<KinesisWriter>;

impl KinesisWriter {
    /// A writer with these options (check them first with [`KinesisSinkOptions::check`]).
    pub fn new(opts: KinesisSinkOptions) -> KinesisWriter {
        KinesisWriter {
            opts: Arc::new(opts),
            counters: Arc::default(),
            client: None,
            pending: Vec::new(),
            buf: Vec::new(),
        }
    }

    /// The counters, shared with clones made by [`KinesisWriter::fresh`].
    pub fn counters(&self) -> &Arc<KinesisSinkCounters> {
        &self.counters
    }

    /// A sink writing through this writer, with the batch and retry settings of its options.
    pub fn into_sink(self) -> KinesisSink {
        let (batch, retry) = (self.opts.batch.clone(), self.opts.retry.clone());
        BatchSink::new(self, batch, retry)
    }

    /// A new writer with the same options sharing the counters (one per task).
    pub fn fresh(&self) -> KinesisWriter {
        KinesisWriter {
            opts: self.opts.clone(),
            counters: self.counters.clone(),
            client: None,
            pending: Vec::new(),
            buf: Vec::new(),
        }
    }
}

impl Clone for KinesisWriter {
    /// A fresh, unopened writer with the same options, sharing the counters.
    fn clone(&self) -> Self {
        self.fresh()
    }
}

/// A `kinesis` sink with these options, or what is wrong with them.
pub fn kinesis_sink(opts: KinesisSinkOptions) -> Result<KinesisSink, String> {
    opts.check()?;
    let (batch, retry) = (opts.batch.clone(), opts.retry.clone());
    Ok(BatchSink::new(KinesisWriter::new(opts), batch, retry))
}

fn key_text(v: &Value) -> Option<SmolStr> {
    match v {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(SmolStr::new(i.to_string())),
        Value::Float(f) => Some(SmolStr::new(f.to_string())),
        Value::Bool(b) => Some(SmolStr::new(if *b { "true" } else { "false" })),
        _ => None,
    }
}

impl BatchWriter for KinesisWriter {
    async fn open(&mut self, _ctx: &TaskContext) -> Result<(), BoxError> {
        self.client = Some(self.opts.connection().client().await);
        Ok(())
    }

    fn encode(&mut self, input: &Tuple) -> Result<usize, String> {
        let kf = &self.opts.partition_key_field;
        let key = input
            .field(kf)
            .map_err(|_| format!("no field `{kf}` (partition_key_field)"))?;
        let key = key_text(key).ok_or_else(|| {
            format!(
                "field `{kf}` (partition_key_field) is a {}, expected text or a number",
                key.type_name()
            )
        })?;
        if key.is_empty() || key.chars().count() > 256 {
            return Err(format!(
                "field `{kf}` (partition_key_field) has {} characters, expected 1 to 256",
                key.chars().count()
            ));
        }
        let data = match &self.opts.data_field {
            Some(df) => match input
                .field(df)
                .map_err(|_| format!("no field `{df}` (data_field)"))?
            {
                Value::Str(s) => bytes::Bytes::copy_from_slice(s.as_bytes()),
                Value::Bytes(b) => (**b).clone(),
                other => serde_json::to_vec(other)
                    .map(bytes::Bytes::from)
                    .map_err(|e| format!("field `{df}` cannot be encoded as JSON: {e}"))?,
            },
            None => {
                self.buf.clear();
                encode_json(&mut self.buf, input, None, None)?;
                while self.buf.last() == Some(&b'\n') {
                    self.buf.pop();
                }
                bytes::Bytes::copy_from_slice(&self.buf)
            }
        };
        let size = data.len() + key.len();
        if size > MAX_RECORD_BYTES {
            return Err(format!(
                "record of {size} bytes (data and partition key) is over the Kinesis limit of 1 MiB"
            ));
        }
        self.pending.push((data, key));
        Ok(size)
    }

    async fn write(&mut self) -> Result<(), WriteError> {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(client) = &self.client else {
            return Err(WriteError::Retry("the sink is not open".into()));
        };
        let mut failed: Vec<(bytes::Bytes, SmolStr)> = Vec::new();
        let mut first_error: Option<String> = None;
        let mut start = 0;
        while start < self.pending.len() {
            // One call: at most 500 records and 5 MiB.
            let mut end = start;
            let mut bytes = 0;
            while end < self.pending.len() && end - start < MAX_PUT_RECORDS {
                let n = self.pending[end].0.len() + self.pending[end].1.len();
                if end > start && bytes + n > MAX_PUT_BYTES {
                    break;
                }
                bytes += n;
                end += 1;
            }
            let chunk = &self.pending[start..end];
            let mut entries = Vec::with_capacity(chunk.len());
            for (data, key) in chunk {
                let entry = PutRecordsRequestEntry::builder()
                    .data(Blob::new(data.to_vec()))
                    .partition_key(key.as_str())
                    .build()
                    .map_err(|e| WriteError::Reject(format!("bad record: {e}")))?;
                entries.push(entry);
            }
            let result = client
                .put_records()
                .stream_name(&self.opts.stream)
                .set_records(Some(entries))
                .send()
                .await;
            match result {
                Ok(out) => {
                    let results = out.records();
                    for (i, rec) in chunk.iter().enumerate() {
                        let refused = results.get(i).is_none_or(|r| r.error_code().is_some());
                        if refused {
                            self.counters.entry_failures.fetch_add(1, Relaxed);
                            if first_error.is_none() {
                                let r = results.get(i);
                                first_error = Some(format!(
                                    "{}: {}",
                                    r.and_then(|r| r.error_code()).unwrap_or("no result"),
                                    r.and_then(|r| r.error_message()).unwrap_or("")
                                ));
                            }
                            failed.push(rec.clone());
                        } else {
                            self.counters.put.fetch_add(1, Relaxed);
                        }
                    }
                }
                Err(e) => {
                    self.counters.call_failures.fetch_add(1, Relaxed);
                    let msg = if e
                        .as_service_error()
                        .is_some_and(|s| s.is_resource_not_found_exception())
                    {
                        format!(
                            "stream {:?} not found{}: create it, or fix option `stream`",
                            self.opts.stream,
                            self.opts
                                .endpoint
                                .as_deref()
                                .map(|e| format!(" at {e}"))
                                .unwrap_or_default()
                        )
                    } else {
                        format!(
                            "PutRecords to stream {:?} failed: {}",
                            self.opts.stream,
                            describe(&e)
                        )
                    };
                    first_error.get_or_insert(msg);
                    failed.extend_from_slice(chunk);
                }
            }
            start = end;
        }
        if failed.is_empty() {
            self.pending.clear();
            Ok(())
        } else {
            let n = failed.len();
            let total = self.pending.len();
            // Only the records not accepted are sent on the next try.
            self.pending = failed;
            let msg = format!(
                "{n} of {total} records not accepted by stream {:?}: {}",
                self.opts.stream,
                first_error.unwrap_or_default()
            );
            *self
                .counters
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(msg.clone());
            Err(WriteError::Retry(msg.into()))
        }
    }

    fn discard(&mut self) {
        self.pending.clear();
    }
}

/// The `kinesis` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::bolt(
            "kinesis",
            "puts records into an Amazon Kinesis stream with PutRecords (≤ 500 records / 5 MiB a call), the partition key from a field; refused entries retried with back-off; an input acked once its record is accepted",
            |w: &KinesisWriter| w.clone().into_sink(),
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components kinesis`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.ship]
kind = "kinesis"
stream = "sensors-out"
endpoint = "http://127.0.0.1:4567"
region = "us-east-1"
partition_key_field = "device_id"
# data_field = "line"     # unset: the whole tuple as one JSON object
batch = { max_records = 500, max_bytes = 1048576, interval = "1s" }
retry = { attempts = 5, backoff = "100ms", max_backoff = "10s" }
inputs = [{ from = "readings" }]
"#;

impl FromOptions for KinesisWriter {
    type Options = KinesisSinkOptions;
    fn from_options(options: KinesisSinkOptions) -> Result<Self, String> {
        options.check()?;
        Ok(KinesisWriter::new(options))
    }
}

/// `stream` has a serde default (so a missing one is reported by the component's own check, with the
/// expected form), but is required.
fn kinesis_sink_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["stream"]);
}
