//! `kinesis`: puts records into an Amazon Kinesis data stream (or a Kinesis-compatible server
//! such as kinesalite) with PutRecords, through the official AWS SDK for Rust; each input is
//! acked only once the stream accepted its record.
//!
//! ```text
//!              ┌──────────────── kinesis (BatchSink<KinesisWriter>) ─────────────────┐
//! input ─────► │ encode: data (field `data_field`, or the tuple as a JSON object)    │
//!              │         partition key (field `partition_key_field`)  ──err──────────────► error
//!              │   pending batch (inputs held) ── full / dry / old / finish        │
//!              │        ▼   aggregation = true: the records of one shard packed     │
//!              │        ▼   into KPL aggregates of ≤ aggregation_max_bytes          │
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
//! aggregation = false                    # true: KPL aggregated records (see below)
//! aggregation_max_bytes = 51200          # the largest aggregate (≤ 1 MiB)
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
//! # Aggregation (KPL format)
//! With `aggregation = true` the sink packs many records into one Kinesis record in the
//! Kinesis Producer Library's aggregation format, which the KCL, AWS Lambda's Kinesis
//! integrations, Firehose and topo's own `kinesis` spout take apart again. A stream takes at
//! most 1,000 records a second per shard: small records packed into aggregates multiply what
//! a shard takes. At each write the batch's records are grouped by the shard their partition
//! key maps to (the MD5 of the key within the shards' hash key ranges, listed with ListShards
//! at most every 10 seconds) and packed, in order, into aggregates of at most
//! `aggregation_max_bytes`; each aggregate is put with the partition key of its first record
//! and that record's hash key as its explicit hash key, so it lands on the shard of its
//! records. A record too large for an aggregate of its own is put as it is. When the shards
//! cannot be listed, records are aggregated per partition key. A batch then holds up to
//! 100,000 records (`batch.max_records`; `batch.max_bytes` still at most 5 MiB). An aggregate
//! the service refuses is sent again whole; the inputs are acked once every aggregate holding
//! them is accepted.
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
//! - A record's own explicit hash key cannot be set (aggregates carry one of their own).

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
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema, Serialize)]
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
    /// Pack the records bound for one shard into KPL aggregated records (see `kpl.rs`).
    pub aggregation: bool,
    /// The largest aggregated record, in bytes (at most 1 MiB; the KPL's default is 51,200).
    pub aggregation_max_bytes: usize,
}
}

/// The KPL's default largest aggregated record (`AggregationMaxSize`).
pub const DEFAULT_AGGREGATION_MAX_BYTES: usize = 51_200;
/// Records per batch, at most, with aggregation (many user records go in one put entry).
pub const MAX_AGGREGATED_BATCH_RECORDS: usize = 100_000;
/// How long a shard map (ListShards) is used before it is listed again.
const SHARD_MAP_AGE: std::time::Duration = std::time::Duration::from_secs(10);

impl Default for KinesisSinkOptions {
    fn default() -> Self {
        KinesisSinkOptions {
            stream: String::new(),
            region: None,
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            partition_key_field: String::new(),
            data_field: None,
            batch: BatchOptions::default(),
            retry: RetryOptions::default(),
            aggregation: false,
            aggregation_max_bytes: DEFAULT_AGGREGATION_MAX_BYTES,
        }
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
        if !self.aggregation && self.batch.max_records > MAX_PUT_RECORDS {
            return Err(format!(
                "option `batch.max_records` = {}: expected at most 500 (the PutRecords limit; with `aggregation = true` up to {MAX_AGGREGATED_BATCH_RECORDS})",
                self.batch.max_records
            ));
        }
        if self.aggregation && self.batch.max_records > MAX_AGGREGATED_BATCH_RECORDS {
            return Err(format!(
                "option `batch.max_records` = {}: expected at most {MAX_AGGREGATED_BATCH_RECORDS} with `aggregation = true`",
                self.batch.max_records
            ));
        }
        if !(256..=MAX_RECORD_BYTES).contains(&self.aggregation_max_bytes) {
            return Err(format!(
                "option `aggregation_max_bytes` = {}: expected 256 to 1048576 (1 MiB, the record limit)",
                self.aggregation_max_bytes
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
        /// Records the stream accepted (with aggregation: user records).
        put,
        /// Aggregated records the stream accepted (`aggregation = true`).
        aggregates,
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
    /// Records encoded since the last write: (data, partition key).
    pending: Vec<(bytes::Bytes, SmolStr)>,
    /// Put entries not yet accepted (the records of `pending`, aggregated or not).
    entries: Vec<Entry>,
    /// With aggregation: the open shards' hash key ranges (empty: not known, records are
    /// aggregated by partition key), and when they were listed.
    shard_map: Vec<(u128, u128)>,
    listed_at: Option<std::time::Instant>,
    buf: Vec<u8>,
}

/// One entry of a PutRecords call: a record, or an aggregate of `records` user records.
#[derive(Clone, Debug)]
struct Entry {
    data: bytes::Bytes,
    key: SmolStr,
    /// An aggregate's explicit hash key: the hash key of its first user record, so that it
    /// lands on the shard its records were grouped for.
    hash_key: Option<String>,
    /// User records in it (1 for a plain record).
    records: usize,
}

impl Entry {
    fn size(&self) -> usize {
        self.data.len() + self.key.len() + self.hash_key.as_ref().map_or(0, String::len)
    }
}

/// The hash key Kinesis maps a partition key to: its MD5 as a 128-bit big-endian integer.
fn hash_key(partition_key: &str) -> u128 {
    use md5::{Digest, Md5};
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// Packs records into put entries: the records of one shard (by `shards`' hash key ranges; by
/// partition key when the map is unknown) into aggregates of at most `max_bytes`, in order. A
/// record too large for an aggregate of its own goes as a plain entry.
fn aggregate(
    records: Vec<(bytes::Bytes, SmolStr)>,
    shards: Option<&[(u128, u128)]>,
    max_bytes: usize,
) -> Vec<Entry> {
    use super::kpl::Aggregator;
    use std::collections::HashMap;
    let mut groups: HashMap<Group, (Aggregator, u128)> = HashMap::new();
    let mut order: Vec<Group> = Vec::new();
    let mut out = Vec::new();
    let finish = |a: &mut Aggregator, hash: u128, out: &mut Vec<Entry>| {
        let key = SmolStr::new(a.first_partition_key().unwrap_or_default());
        let records = a.len();
        out.push(Entry {
            data: bytes::Bytes::from(a.finish()),
            key,
            hash_key: Some(hash.to_string()),
            records,
        });
    };
    for (data, key) in records {
        let hash = hash_key(&key);
        let group = match shards {
            Some(ranges) if !ranges.is_empty() => Group::Shard(
                ranges
                    .iter()
                    .position(|(lo, hi)| (*lo..=*hi).contains(&hash))
                    .unwrap_or(usize::MAX),
            ),
            _ => Group::Key(key.clone()),
        };
        if Aggregator::new().size_with(&key, None, &data) > max_bytes {
            // After what its group holds so far: the order of a key is kept.
            if let Some((a, first)) = groups.get_mut(&group)
                && !a.is_empty()
            {
                finish(a, *first, &mut out);
            }
            out.push(Entry {
                data,
                key,
                hash_key: None,
                records: 1,
            });
            continue;
        }
        let (a, first) = groups.entry(group.clone()).or_insert_with(|| {
            order.push(group.clone());
            (Aggregator::new(), hash)
        });
        if !a.is_empty() && a.size_with(&key, None, &data) > max_bytes {
            finish(a, *first, &mut out);
        }
        if a.is_empty() {
            *first = hash;
        }
        a.add(&key, None, data);
    }
    for g in order {
        if let Some((a, first)) = groups.get_mut(&g)
            && !a.is_empty()
        {
            finish(a, *first, &mut out);
        }
    }
    out
}

/// What records are aggregated by: their shard (index in the map), or their partition key when
/// the shards are not known.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Group {
    Shard(usize),
    Key(SmolStr),
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
            entries: Vec::new(),
            shard_map: Vec::new(),
            listed_at: None,
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
            entries: Vec::new(),
            shard_map: Vec::new(),
            listed_at: None,
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
        let Some(client) = self.client.clone() else {
            return Err(WriteError::Retry("the sink is not open".into()));
        };
        if !self.pending.is_empty() {
            let records = std::mem::take(&mut self.pending);
            if self.opts.aggregation {
                self.list_shards(&client).await;
                let entries = aggregate(
                    records,
                    Some(&self.shard_map),
                    self.opts.aggregation_max_bytes,
                );
                self.entries.extend(entries);
            } else {
                self.entries
                    .extend(records.into_iter().map(|(data, key)| Entry {
                        data,
                        key,
                        hash_key: None,
                        records: 1,
                    }));
            }
        }
        let mut failed: Vec<Entry> = Vec::new();
        let mut first_error: Option<String> = None;
        let mut start = 0;
        while start < self.entries.len() {
            // One call: at most 500 records and 5 MiB.
            let mut end = start;
            let mut bytes = 0;
            while end < self.entries.len() && end - start < MAX_PUT_RECORDS {
                let n = self.entries[end].size();
                if end > start && bytes + n > MAX_PUT_BYTES {
                    break;
                }
                bytes += n;
                end += 1;
            }
            let chunk = &self.entries[start..end];
            let mut entries = Vec::with_capacity(chunk.len());
            for e in chunk {
                let entry = PutRecordsRequestEntry::builder()
                    .data(Blob::new(e.data.to_vec()))
                    .partition_key(e.key.as_str())
                    .set_explicit_hash_key(e.hash_key.clone())
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
                            self.counters.put.fetch_add(rec.records as u64, Relaxed);
                            if rec.hash_key.is_some() {
                                self.counters.aggregates.fetch_add(1, Relaxed);
                            }
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
            self.entries.clear();
            Ok(())
        } else {
            let n = failed.len();
            let total = self.entries.len();
            // Only the entries not accepted are sent on the next try.
            self.entries = failed;
            let what = if self.opts.aggregation {
                "entries"
            } else {
                "records"
            };
            let msg = format!(
                "{n} of {total} {what} not accepted by stream {:?}: {}",
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
        self.entries.clear();
    }
}

impl KinesisWriter {
    /// Lists the stream's open shards (their hash key ranges) when the map is older than
    /// [`SHARD_MAP_AGE`]. When the listing fails the map is emptied and records are aggregated
    /// by partition key until the next listing: always on the right shard, packed less.
    async fn list_shards(&mut self, client: &Client) {
        if self.listed_at.is_some_and(|t| t.elapsed() < SHARD_MAP_AGE) {
            return;
        }
        self.listed_at = Some(std::time::Instant::now());
        let mut ranges = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = match &token {
                Some(t) => client.list_shards().next_token(t),
                None => client.list_shards().stream_name(&self.opts.stream),
            };
            match req.send().await {
                Ok(out) => {
                    for s in out.shards() {
                        let open = s
                            .sequence_number_range()
                            .is_none_or(|r| r.ending_sequence_number().is_none());
                        let range = s.hash_key_range().and_then(|r| {
                            Some((
                                r.starting_hash_key().parse::<u128>().ok()?,
                                r.ending_hash_key().parse::<u128>().ok()?,
                            ))
                        });
                        if let (true, Some(range)) = (open, range) {
                            ranges.push(range);
                        }
                    }
                    match out.next_token() {
                        Some(t) => token = Some(t.to_string()),
                        None => break,
                    }
                }
                Err(e) => {
                    tracing::warn!(stream = %self.opts.stream, "cannot list the shards to aggregate by shard (aggregating by partition key): {}", describe(&e));
                    ranges.clear();
                    break;
                }
            }
        }
        self.shard_map = ranges;
    }
}

/// The `kinesis` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::bolt(
            "kinesis",
            "puts records into an Amazon Kinesis stream with PutRecords (≤ 500 records / 5 MiB a call), the partition key from a field, optionally packed per shard into KPL aggregates; refused entries retried with back-off; an input acked once its record is accepted",
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
# aggregation = true      # KPL aggregates: many small records per Kinesis record (per shard)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinesis::kpl::deaggregate;

    fn records(n: usize, keys: usize, len: usize) -> Vec<(bytes::Bytes, SmolStr)> {
        (0..n)
            .map(|i| {
                let mut data = format!("{i:08}").into_bytes();
                data.resize(len.max(8), b'.');
                (
                    bytes::Bytes::from(data),
                    SmolStr::new(format!("k{}", i % keys)),
                )
            })
            .collect()
    }

    /// The user records of entries, as (key, data), by entry.
    fn unpacked(entries: &[Entry]) -> Vec<Vec<(String, bytes::Bytes)>> {
        entries
            .iter()
            .map(|e| match deaggregate(&e.data).expect("a valid aggregate") {
                Some(users) => users
                    .into_iter()
                    .map(|u| (u.partition_key, u.data))
                    .collect(),
                None => vec![(e.key.to_string(), e.data.clone())],
            })
            .collect()
    }

    #[test]
    fn records_of_one_shard_share_aggregates_in_order() {
        // Two shards splitting the hash key space in half.
        let shards = [(0, u128::MAX / 2), (u128::MAX / 2 + 1, u128::MAX)];
        let input = records(1000, 37, 20);
        let entries = aggregate(input.clone(), Some(&shards), 4096);
        assert!(
            entries.len() < 30,
            "{} entries for 1000 records",
            entries.len()
        );
        let mut seen = Vec::new();
        for (e, users) in entries.iter().zip(unpacked(&entries)) {
            assert!(
                e.data.len() <= 4096,
                "an aggregate of {} bytes",
                e.data.len()
            );
            assert_eq!(e.records, users.len());
            let shard_of = |k: &str| {
                shards
                    .iter()
                    .position(|(lo, hi)| (*lo..=*hi).contains(&hash_key(k)))
            };
            let first = &users[0].0;
            assert_eq!(
                e.key,
                first.as_str(),
                "an aggregate's key is its first record's"
            );
            assert_eq!(e.hash_key, Some(hash_key(first).to_string()));
            for (k, _) in &users {
                assert_eq!(shard_of(k), shard_of(first), "one shard per aggregate");
            }
            seen.extend(users);
        }
        // Every record once, and each key's records in their order.
        assert_eq!(seen.len(), input.len());
        for key in 0..37 {
            let key = format!("k{key}");
            let want: Vec<_> = input
                .iter()
                .filter(|r| r.1 == key)
                .map(|r| r.0.clone())
                .collect();
            let got: Vec<_> = seen
                .iter()
                .filter(|r| r.0 == key)
                .map(|r| r.1.clone())
                .collect();
            assert_eq!(got, want, "order of {key}");
        }
    }

    #[test]
    fn without_a_shard_map_records_are_aggregated_per_key() {
        let entries = aggregate(records(100, 4, 10), Some(&[]), 51_200);
        assert_eq!(entries.len(), 4);
        for users in unpacked(&entries) {
            assert_eq!(users.len(), 25);
            assert!(users.iter().all(|u| u.0 == users[0].0));
        }
    }

    #[test]
    fn a_record_too_large_to_aggregate_goes_alone_after_its_group() {
        let mut input = records(3, 1, 10);
        input.insert(
            2,
            (bytes::Bytes::from(vec![b'x'; 2000]), SmolStr::new("k0")),
        );
        let entries = aggregate(input, None, 1000);
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].records, 2);
        assert_eq!(entries[1].hash_key, None, "the large record is plain");
        assert_eq!(entries[1].data.len(), 2000);
        assert_eq!(entries[2].records, 1);
    }

    #[test]
    fn aggregation_options_are_checked() {
        let base = KinesisSinkOptions {
            stream: "s".into(),
            partition_key_field: "k".into(),
            ..KinesisSinkOptions::default()
        };
        assert_eq!(base.aggregation_max_bytes, 51_200);
        let mut o = base.clone();
        o.batch.max_records = 5000;
        assert!(o.check().unwrap_err().contains("aggregation = true"));
        o.aggregation = true;
        assert_eq!(o.check(), Ok(()));
        o.aggregation_max_bytes = 2 << 20;
        assert!(o.check().unwrap_err().contains("aggregation_max_bytes"));
    }
}
