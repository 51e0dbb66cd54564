//! `s3`: delivers records to Amazon S3 (or an S3-compatible server) as objects of JSON lines or
//! CSV, compressed, under time partitions — what Kinesis Data Firehose does for a stream — and
//! acks each input only once the object holding it is stored.
//!
//! ```text
//!              ┌───────────────────────── s3 (BatchSink<S3Writer>) ──────────────────────────┐
//! input ─────► │ encode: JSON line / CSV row ── a missing field, a bad time_field ──────────────► error
//!              │   into the pending object of its time partition (partition = strftime of   │
//!              │   the record's `time_field`, else of the time it arrived, UTC)             │
//!              │   pending batch (inputs held) ── full / dry / old / finish                 │
//!              │        ▼  each partition's object: header (csv) + records, gzip / zstd     │
//!              │   PUT <prefix>/<partition>/<component>-<task>-<stamp>-<run>-<seq>.jsonl.gz  │
//!              │     (multipart upload, `part_size` parts, when larger than `part_size`)    │
//!              │    ├─ every object stored ────────────► ack every held input              │
//!              │    ├─ a failure: the objects not stored yet are put again (same names)     │
//!              │    │  after the back-off of `retry`                                        │
//!              │    └─ every try failed ────────────────► fail held (replay)                │
//!              │  exactly_once: staged (multipart, not completed) ── snapshot holds them    │
//!              │                completed when the checkpoint completes: visible once       │
//!              └────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Options:
//!
//! ```toml
//! [bolts.archive]
//! kind = "s3"
//! url = "s3://my-bucket/raw/sensors"     # the bucket, and the key prefix under it
//! # endpoint = "http://127.0.0.1:9000"   # an S3-compatible server; default: AWS's
//! # region = "eu-west-1"                 # default: AWS_REGION, else us-east-1
//! # access_key_id = "${S3_KEY_ID}"  secret_access_key = "${S3_SECRET}"
//! #                                      # default: the credential chain (AWS_ACCESS_KEY_ID, ...)
//! format = "jsonl"                       # or "csv" (a header line per object)
//! # fields = ["device", "temp"]          # written fields, in order; default: all
//! compression = "gzip"                   # or "zstd", "none"
//! partition = "dt=%Y-%m-%d/hour=%H"      # strftime (UTC) of the record's time
//! # time_field = "ts"                    # the record's time: ms since the epoch or RFC 3339;
//! #                                      # default: the time the sink received it
//! part_size = 8388608                    # an object larger than this is a multipart upload
//! batch = { max_records = 100000, max_bytes = 67108864, interval = "5s" }
//! retry = { attempts = 5, backoff = "100ms", max_backoff = "10s" }
//! ```
//!
//! # Objects
//! A batch becomes one object per time partition it holds, named
//! `<prefix>/<partition>/<component>-<task>-<stamp>-<run>-<seq>.<jsonl|csv>[.gz|.zst]`, where
//! `stamp` is the UTC time of the batch's first write (`20261206T193000Z`), `run` a random tag
//! of the task's run and `seq` counts the task's objects. A batch is written when it is full
//! (`batch.max_records` records, or `batch.max_bytes` bytes before compression), when its
//! oldest record has waited `batch.interval`, when the sink's input runs dry, and at the end of
//! input (see [`crate::connector::sink`]). An object over `part_size` bytes (compressed) is sent
//! as a multipart upload of `part_size` parts (S3's least part is 5 MiB); it becomes visible
//! whole, when the upload completes.
//!
//! # Delivery guarantee
//! At-least-once: an input is acked only after every object of its batch is stored. A failed
//! put is tried again after the back-off, for the objects not stored yet and under the same
//! names, so a retried object replaces itself instead of being stored twice. When every try
//! fails the batch's inputs are failed and replayed by their spouts, into new objects.
//!
//! # Exactly-once (`guarantee = "exactly_once"`)
//! Objects are published per checkpoint, in two phases, as the `file` sink's files are. A batch
//! written before a barrier is **staged**: each of its objects is uploaded as a multipart upload
//! whose parts are stored but which is not completed, so nothing is visible. The snapshot holds
//! the staged uploads (key, upload id, part ids). When the checkpoint completes, their uploads
//! are completed and the objects appear, each whole. A run restored from a checkpoint completes
//! the uploads that checkpoint holds (at its first idle moment); an upload completed before the
//! crash is recognised by its object and not made twice. Uploads staged after the checkpoint a
//! run resumes from are never completed: their records are sent again by the spouts (which
//! rewind to the checkpoint) into new objects, so a replay never makes a second visible copy.
//! Their parts stay in the bucket, invisible, until the bucket's lifecycle rule
//! `AbortIncompleteMultipartUpload` removes them: set one (a day is usual).
//!
//! With acking on, an object holds at most what the spouts keep in flight: a spout stops at
//! `max_spout_pending` unacked trees, and the sink writes when its input runs dry. For larger
//! objects raise `max_spout_pending` (and keep `batch.interval` plus the retries under
//! `message_timeout`).

use std::sync::Arc;

use std::collections::VecDeque;

use object_store::aws::AmazonS3;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    BoxError, CheckpointId, Restore, Snapshot, StreamSchema, TaskContext, Tuple, Value, clock,
};

use super::{S3Connection, describe};
use crate::connector::counters;
use crate::connector::records::{FileFormat, RecordEncoder, check_fields};
use crate::connector::sink::{
    BatchDefaults, BatchOptions, BatchSink, BatchWriter, RetryOptions, WriteError, exactly_once,
};

/// The least size of a multipart upload's part (all but the last), S3's limit.
pub const MIN_PART_SIZE: usize = 5 << 20;
/// The largest part, S3's limit.
pub const MAX_PART_SIZE: usize = 5 << 30;

/// How the `s3` sink compresses its objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum S3Compression {
    /// No compression.
    None,
    /// gzip (`.gz`), at the default level.
    #[default]
    Gzip,
    /// Zstandard (`.zst`), at level 3.
    Zstd,
}

impl S3Compression {
    fn extension(self) -> &'static str {
        match self {
            S3Compression::None => "",
            S3Compression::Gzip => ".gz",
            S3Compression::Zstd => ".zst",
        }
    }

    /// `header` and then `body`, compressed (copied as they are with `None`).
    fn compress(self, header: &[u8], body: &[u8]) -> std::io::Result<Vec<u8>> {
        use std::io::Write;
        match self {
            S3Compression::None => Ok([header, body].concat()),
            S3Compression::Gzip => {
                let mut e = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::default(),
                );
                e.write_all(header)?;
                e.write_all(body)?;
                e.finish()
            }
            S3Compression::Zstd => {
                let mut e = zstd::stream::Encoder::new(Vec::with_capacity(body.len() / 4), 3)?;
                e.write_all(header)?;
                e.write_all(body)?;
                e.finish()
            }
        }
    }
}

/// The `s3` sink's batch defaults: 100,000 records, 64 MiB, 5 s.
#[derive(Clone, Debug, PartialEq, JsonSchema)]
pub struct S3Batch;

impl BatchDefaults for S3Batch {
    const MAX_RECORDS: usize = 100_000;
    const MAX_BYTES: usize = 64 << 20;
    const INTERVAL_MS: u64 = 5000;
}

/// Options of the `s3` sink (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = s3_required)]
pub struct S3SinkOptions {
    /// `s3://bucket` or `s3://bucket/prefix` (required).
    pub url: String,
    /// An S3-compatible server's URL; default: AWS's endpoint of the region.
    pub endpoint: Option<String>,
    /// The AWS region; default: `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// A static access key id (with `secret_access_key`); default: the credential chain.
    pub access_key_id: Option<String>,
    /// The secret of `access_key_id`.
    pub secret_access_key: Option<String>,
    /// `jsonl` (default) or `csv`.
    pub format: FileFormat,
    /// The fields written, in order. Empty (default): every field of each record (for `csv`:
    /// the fields of the first record).
    pub fields: Vec<String>,
    /// `gzip` (default), `zstd` or `none`.
    pub compression: S3Compression,
    /// The time partition of a record's object: a strftime pattern (UTC), to the second at
    /// the finest. Default `dt=%Y-%m-%d/hour=%H`.
    pub partition: String,
    /// The field holding a record's time (ms since the epoch, or RFC 3339 text); default: the
    /// time the sink receives the record.
    pub time_field: Option<String>,
    /// Objects larger than this (compressed) are multipart uploads of parts this large
    /// (5 MiB to 5 GiB). Default 8 MiB.
    pub part_size: usize,
    /// When a batch is written.
    pub batch: BatchOptions<S3Batch>,
    /// How failed puts are retried.
    pub retry: RetryOptions,
}

impl Default for S3SinkOptions {
    fn default() -> Self {
        S3SinkOptions {
            url: String::new(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            format: FileFormat::default(),
            fields: Vec::new(),
            compression: S3Compression::default(),
            partition: "dt=%Y-%m-%d/hour=%H".into(),
            time_field: None,
            part_size: 8 << 20,
            batch: BatchOptions::default(),
            retry: RetryOptions::default(),
        }
    }
}

impl S3SinkOptions {
    /// Where the bucket is and how to sign in.
    pub fn connection(&self) -> S3Connection<'_> {
        S3Connection {
            url: &self.url,
            endpoint: self.endpoint.as_deref(),
            region: self.region.as_deref(),
            access_key_id: self.access_key_id.as_deref(),
            secret_access_key: self.secret_access_key.as_deref(),
        }
    }

    /// Checks the values; the error names the option.
    pub fn check(&self) -> Result<(), String> {
        self.connection().check()?;
        check_fields(&self.fields)?;
        check_partition(&self.partition)?;
        if self.time_field.as_deref() == Some("") {
            return Err("option `time_field` is empty: expected a field name".into());
        }
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&self.part_size) {
            return Err(format!(
                "option `part_size` = {}: expected 5242880 (5 MiB) to 5368709120 (5 GiB), S3's part sizes",
                self.part_size
            ));
        }
        self.batch.check()?;
        self.retry.check_sink("retry")
    }
}

/// Checks a `partition` pattern: valid strftime, and a relative object path (no `..`, no
/// empty part).
fn check_partition(pattern: &str) -> Result<(), String> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(pattern).any(|i| matches!(i, Item::Error)) {
        return Err(format!(
            "option `partition` = {pattern:?}: not a valid strftime pattern (e.g. \"dt=%Y-%m-%d/hour=%H\")"
        ));
    }
    let sample = format_partition(pattern, 1_765_000_000);
    if sample.starts_with('/')
        || sample.ends_with('/')
        || sample
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(format!(
            "option `partition` = {pattern:?}: expected a relative path of non-empty parts (e.g. \"dt=%Y-%m-%d/hour=%H\"), got {sample:?}"
        ));
    }
    Ok(())
}

/// The partition path of a time (seconds since the epoch, UTC).
fn format_partition(pattern: &str, secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .format(pattern)
        .to_string()
}

counters! {
    /// Counts of one `s3` sink (shared by its tasks).
    pub struct S3SinkCounters {
        /// Objects stored.
        objects,
        /// Records in the objects stored.
        records,
        /// Bytes stored (compressed).
        bytes,
        /// Objects stored with a multipart upload.
        multipart,
        /// Puts that failed (then tried again, or the batch's inputs failed).
        failures,
        ;
        /// The text of the last failed put.
        last_error: std::sync::Mutex<Option<String>>,
    }
}

impl S3SinkCounters {
    /// The text of the last failed put, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// One object of the pending batch.
#[derive(Debug, Default)]
struct PendingObject {
    partition: String,
    /// Encoded records.
    buf: Vec<u8>,
    records: u64,
    /// Its key and compressed body, fixed at the first try so that a retry puts the same.
    ready: Option<(ObjectPath, bytes::Bytes)>,
}

/// An object uploaded but not completed yet (exactly-once): a multipart upload whose parts are
/// stored, made visible when the checkpoint covering it completes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Staged {
    key: String,
    upload: String,
    parts: Vec<String>,
    records: u64,
    bytes: u64,
}

/// What a checkpoint holds of one task: its staged objects by the checkpoint that covers them.
#[derive(Debug, Serialize, Deserialize)]
struct StagedObjects {
    task: u64,
    epochs: Vec<(CheckpointId, Vec<Staged>)>,
}

/// The name of the sink's part in a checkpoint.
const STAGED_PART: &str = "staged_objects";

/// The exactly-once side of a writer: objects staged since the last barrier, staged objects by
/// checkpoint, and those a restore found to complete.
#[derive(Debug, Default)]
struct TwoPhase {
    task: usize,
    parallelism: usize,
    sealed: Vec<Staged>,
    epochs: VecDeque<(CheckpointId, Vec<Staged>)>,
    /// Covered by the checkpoint restored: completed at the first chance (idle, a write, a
    /// completed checkpoint), and kept in every snapshot until then.
    restored: Vec<Staged>,
}

/// What storing an object did.
enum Stored {
    /// Put (in one request, or `multipart`), visible.
    Put { multipart: bool },
    /// Staged (exactly-once): its upload id and part ids.
    Staged(String, Vec<String>),
}

/// The [`BatchWriter`] of the `s3` sink. Wrap it with [`S3Writer::into_sink`].
pub struct S3Writer {
    opts: Arc<S3SinkOptions>,
    counters: Arc<S3SinkCounters>,
    store: Option<Arc<AmazonS3>>,
    /// Exactly-once: objects are staged at the barrier, completed with their checkpoint.
    two_phase: Option<TwoPhase>,
    prefix: String,
    records: RecordEncoder,
    /// The pending batch's objects, in the order their partitions first appeared.
    objects: Vec<PendingObject>,
    /// The last second seen and the index of its object in `objects`.
    last: Option<(i64, usize)>,
    /// `time_field`'s index, resolved per input stream.
    time_index: Option<(&'static StreamSchema, Option<usize>)>,
    /// `<component>-<task>`, set at open.
    name: String,
    /// A random tag of this run.
    run: String,
    seq: u64,
}

/// The `s3` sink bolt.
pub type S3Sink = BatchSink<S3Writer>;

impl S3Writer {
    /// A writer with these options, or what is wrong with them (naming the option).
    pub fn new(opts: S3SinkOptions) -> Result<S3Writer, String> {
        opts.check()?;
        let prefix = opts.connection().bucket_prefix()?.prefix;
        Ok(S3Writer {
            records: RecordEncoder::new(opts.format, &opts.fields),
            opts: Arc::new(opts),
            counters: Arc::default(),
            store: None,
            two_phase: None,
            prefix,
            objects: Vec::new(),
            last: None,
            time_index: None,
            name: String::new(),
            run: String::new(),
            seq: 0,
        })
    }

    /// The counters, shared with clones made by [`S3Writer::fresh`].
    pub fn counters(&self) -> &Arc<S3SinkCounters> {
        &self.counters
    }

    /// A new writer with the same options sharing the counters (one per task).
    pub fn fresh(&self) -> S3Writer {
        S3Writer {
            opts: self.opts.clone(),
            counters: self.counters.clone(),
            store: None,
            two_phase: None,
            prefix: self.prefix.clone(),
            records: RecordEncoder::new(self.opts.format, &self.opts.fields),
            objects: Vec::new(),
            last: None,
            time_index: None,
            name: String::new(),
            run: String::new(),
            seq: 0,
        }
    }

    /// A sink writing through this writer, with the batch and retry settings of its options.
    pub fn into_sink(self) -> S3Sink {
        let (batch, retry) = (self.opts.batch.clone(), self.opts.retry.clone());
        BatchSink::new(self, batch, retry)
    }

    /// The second (UTC) a record belongs to: its `time_field`, else now.
    fn second_of(&mut self, input: &Tuple) -> Result<i64, String> {
        let Some(field) = &self.opts.time_field else {
            return Ok(clock::now_millis().div_euclid(1000));
        };
        let schema = input.schema();
        let index = match self.time_index {
            Some((s, i)) if std::ptr::eq(s, schema) => i,
            _ => {
                let i = schema.index_of(field);
                self.time_index = Some((schema, i));
                i
            }
        };
        let Some(i) = index else {
            return Err(format!("no field `{field}` (time_field)"));
        };
        match &input.values()[i] {
            Value::Int(ms) => Ok(ms.div_euclid(1000)),
            Value::Float(ms) if ms.is_finite() => Ok((ms / 1000.0).floor() as i64),
            Value::Str(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.timestamp())
                .map_err(|e| {
                    format!("field `{field}` (time_field) = {s:?} is not an RFC 3339 time: {e}")
                }),
            other => Err(format!(
                "field `{field}` (time_field) is a {}, expected ms since the epoch or RFC 3339 text",
                other.type_name()
            )),
        }
    }

    /// The index in `objects` of the pending object of second `secs`.
    fn object_of(&mut self, secs: i64) -> usize {
        if let Some((s, i)) = self.last
            && s == secs
        {
            return i;
        }
        let partition = format_partition(&self.opts.partition, secs);
        let i = match self.objects.iter().position(|o| o.partition == partition) {
            Some(i) => i,
            None => {
                self.objects.push(PendingObject {
                    partition,
                    ..PendingObject::default()
                });
                self.objects.len() - 1
            }
        };
        self.last = Some((secs, i));
        i
    }

    /// Fixes the key and body of each object not yet fixed.
    async fn prepare(&mut self) -> Result<(), WriteError> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let ext = format!(
            "{}{}",
            self.opts.format.extension(),
            self.opts.compression.extension()
        );
        let header = self.records.header().clone();
        for o in self.objects.iter_mut().filter(|o| o.ready.is_none()) {
            let key = [
                self.prefix.as_str(),
                o.partition.as_str(),
                &format!("{}-{stamp}-{}-{}.{ext}", self.name, self.run, self.seq),
            ]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
            self.seq += 1;
            let path = ObjectPath::parse(&key)
                .map_err(|e| WriteError::Reject(format!("object key {key:?}: {e}")))?;
            let compressed = match self.opts.compression {
                // Uncompressed and without a header line: the records as they are, no copy.
                S3Compression::None if header.is_empty() => std::mem::take(&mut o.buf),
                compression => {
                    // Compressed off the task's thread; the records come back with the result,
                    // so a failure leaves them pending for the next try.
                    let (buf, header) = (std::mem::take(&mut o.buf), header.clone());
                    let (buf, result) = tokio::task::spawn_blocking(move || {
                        let result = compression.compress(&header, &buf);
                        (buf, result)
                    })
                    .await
                    .map_err(|e| WriteError::Retry(format!("compressing: {e}").into()))?;
                    match result {
                        Ok(c) => c,
                        Err(e) => {
                            o.buf = buf;
                            return Err(WriteError::Retry(format!("compressing: {e}").into()));
                        }
                    }
                }
            };
            o.ready = Some((path, bytes::Bytes::from(compressed)));
        }
        Ok(())
    }

    /// Stages one object (exactly-once): a multipart upload of its parts, not completed.
    async fn stage(
        store: &AmazonS3,
        path: &ObjectPath,
        body: bytes::Bytes,
        part_size: usize,
    ) -> object_store::Result<(String, Vec<String>)> {
        let upload = store.create_multipart(path).await?;
        let mut parts = Vec::new();
        for (i, start) in (0..body.len().max(1)).step_by(part_size).enumerate() {
            let part = body.slice(start..(start + part_size).min(body.len()));
            match store
                .put_part(path, &upload, i, PutPayload::from(part))
                .await
            {
                Ok(p) => parts.push(p.content_id),
                Err(e) => {
                    let _ = store.abort_multipart(path, &upload).await;
                    return Err(e);
                }
            }
        }
        Ok((upload, parts))
    }

    /// Makes staged objects visible (completes their uploads). An upload the store no longer
    /// knows was completed before (by a run that died before its next snapshot) when its
    /// object exists. Stops at the first failure and returns the objects not completed.
    async fn complete(&self, staged: Vec<Staged>) -> Result<(), (Vec<Staged>, String)> {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(store) = self.store.clone() else {
            return Err((staged, "the sink is not open".into()));
        };
        let mut rest = staged.into_iter();
        while let Some(s) = rest.next() {
            let path = ObjectPath::from(s.key.as_str());
            let parts = s
                .parts
                .iter()
                .map(|p| PartId {
                    content_id: p.clone(),
                })
                .collect();
            let done = match store.complete_multipart(&path, &s.upload, parts).await {
                Ok(_) => Ok(()),
                Err(e) => match store.head(&path).await {
                    Ok(_) => Ok(()),
                    Err(_) => Err(e),
                },
            };
            match done {
                Ok(()) => {
                    self.counters.objects.fetch_add(1, Relaxed);
                    self.counters.records.fetch_add(s.records, Relaxed);
                    self.counters.bytes.fetch_add(s.bytes, Relaxed);
                    if s.parts.len() > 1 {
                        self.counters.multipart.fetch_add(1, Relaxed);
                    }
                }
                Err(e) => {
                    let conn = self.opts.connection();
                    let msg = self.failure(format!(
                        "completing the upload of {} failed: {}",
                        conn.locate(&s.key),
                        describe(&e, &conn)
                    ));
                    let mut left = vec![s];
                    left.extend(rest);
                    return Err((left, msg));
                }
            }
        }
        Ok(())
    }

    /// Counts a failed call and keeps its text as the last error; returns the text.
    fn failure(&self, msg: String) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        self.counters.failures.fetch_add(1, Relaxed);
        *self
            .counters
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(msg.clone());
        msg
    }

    /// Completes the objects a restore found, if any.
    async fn complete_restored(&mut self) -> Result<(), BoxError> {
        let restored = match self.two_phase.as_mut() {
            Some(tp) if !tp.restored.is_empty() => std::mem::take(&mut tp.restored),
            _ => return Ok(()),
        };
        if let Err((left, msg)) = self.complete(restored).await {
            if let Some(tp) = self.two_phase.as_mut() {
                tp.restored = left;
            }
            return Err(msg.into());
        }
        Ok(())
    }

    /// Stores one object: one PUT, or a multipart upload when it is larger than a part.
    async fn put(
        store: &dyn ObjectStore,
        path: &ObjectPath,
        body: bytes::Bytes,
        part_size: usize,
    ) -> object_store::Result<bool> {
        if body.len() <= part_size {
            store.put(path, PutPayload::from(body)).await?;
            return Ok(false);
        }
        let mut upload = store.put_multipart(path).await?;
        let mut parts = Ok(());
        for start in (0..body.len()).step_by(part_size) {
            let part = body.slice(start..(start + part_size).min(body.len()));
            if let Err(e) = upload.put_part(PutPayload::from(part)).await {
                parts = Err(e);
                break;
            }
        }
        match parts {
            Ok(()) => match upload.complete().await {
                Ok(_) => Ok(true),
                Err(e) => {
                    let _ = upload.abort().await;
                    Err(e)
                }
            },
            Err(e) => {
                let _ = upload.abort().await;
                Err(e)
            }
        }
    }
}

impl Clone for S3Writer {
    /// A fresh, unopened writer with the same options, sharing the counters.
    fn clone(&self) -> Self {
        self.fresh()
    }
}

/// An `s3` sink with these options, or what is wrong with them.
pub fn s3_sink(opts: S3SinkOptions) -> Result<S3Sink, String> {
    Ok(S3Writer::new(opts)?.into_sink())
}

impl BatchWriter for S3Writer {
    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        self.store = Some(self.opts.connection().store()?);
        self.two_phase = exactly_once(ctx).then(|| TwoPhase {
            task: ctx.task_index(),
            parallelism: ctx.parallelism(),
            ..TwoPhase::default()
        });
        self.name = format!("{}-{}", ctx.component_id(), ctx.task_index());
        self.run = format!("{:08x}", fastrand::u32(..));
        self.seq = 0;
        Ok(())
    }

    fn encode(&mut self, input: &Tuple) -> Result<usize, String> {
        let secs = self.second_of(input)?;
        let i = self.object_of(secs);
        let o = &mut self.objects[i];
        let n = self.records.encode(&mut o.buf, input)?;
        o.records += 1;
        Ok(n)
    }

    async fn write(&mut self) -> Result<(), WriteError> {
        use std::sync::atomic::Ordering::Relaxed;
        self.last = None;
        self.objects.retain(|o| o.records > 0);
        if self.objects.is_empty() {
            return Ok(());
        }
        let Some(store) = self.store.clone() else {
            return Err(WriteError::Retry("the sink is not open".into()));
        };
        self.prepare().await?;
        while let Some(o) = self.objects.first() {
            let Some((path, body)) = &o.ready else {
                break;
            };
            let part_size = self.opts.part_size;
            let (verb, result) = if self.two_phase.is_some() {
                let staged = S3Writer::stage(&store, path, body.clone(), part_size).await;
                (
                    "staging",
                    staged.map(|(upload, parts)| Stored::Staged(upload, parts)),
                )
            } else {
                let put = S3Writer::put(store.as_ref(), path, body.clone(), part_size).await;
                ("storing", put.map(|multipart| Stored::Put { multipart }))
            };
            match result {
                Ok(Stored::Staged(upload, parts)) => {
                    let staged = Staged {
                        key: path.to_string(),
                        upload,
                        parts,
                        records: o.records,
                        bytes: body.len() as u64,
                    };
                    if let Some(tp) = self.two_phase.as_mut() {
                        tp.sealed.push(staged);
                    }
                }
                Ok(Stored::Put { multipart }) => {
                    self.counters.objects.fetch_add(1, Relaxed);
                    self.counters.records.fetch_add(o.records, Relaxed);
                    self.counters.bytes.fetch_add(body.len() as u64, Relaxed);
                    if multipart {
                        self.counters.multipart.fetch_add(1, Relaxed);
                    }
                }
                Err(e) => {
                    let conn = self.opts.connection();
                    let msg = self.failure(format!(
                        "{verb} {} ({} records) failed: {}",
                        conn.locate(path.as_ref()),
                        o.records,
                        describe(&e, &conn)
                    ));
                    return Err(WriteError::Retry(msg.into()));
                }
            }
            self.objects.remove(0);
        }
        Ok(())
    }

    fn discard(&mut self) {
        self.objects.clear();
        self.last = None;
    }

    async fn idle(&mut self) -> Result<(), BoxError> {
        self.complete_restored().await
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        let Some(tp) = self.two_phase.as_mut() else {
            return Ok(());
        };
        let id = snap.checkpoint_id();
        if !tp.sealed.is_empty() {
            tp.epochs.push_back((id, std::mem::take(&mut tp.sealed)));
        }
        // Objects found at the restore and not completed yet are still this task's to complete.
        let mut epochs: Vec<(CheckpointId, Vec<Staged>)> = Vec::new();
        if !tp.restored.is_empty() {
            epochs.push((0, tp.restored.clone()));
        }
        epochs.extend(tp.epochs.iter().cloned());
        snap.put(
            STAGED_PART,
            &StagedObjects {
                task: tp.task as u64,
                epochs,
            },
        );
        Ok(())
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        let Some(tp) = self.two_phase.as_mut() else {
            return Ok(());
        };
        // Every old task's objects: with another parallelism, this task completes those of the
        // old tasks whose index modulo the parallelism is its own.
        for s in from.get_all::<StagedObjects>(STAGED_PART)? {
            if s.task as usize % tp.parallelism.max(1) == tp.task {
                tp.restored
                    .extend(s.epochs.into_iter().flat_map(|(_, staged)| staged));
            }
        }
        Ok(())
    }

    async fn checkpoint_complete(&mut self, id: CheckpointId) -> Result<(), BoxError> {
        self.complete_restored().await?;
        let mut due = Vec::new();
        if let Some(tp) = self.two_phase.as_mut() {
            while tp.epochs.front().is_some_and(|(c, _)| *c <= id) {
                if let Some((_, staged)) = tp.epochs.pop_front() {
                    due.extend(staged);
                }
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        if let Err((left, msg)) = self.complete(due).await {
            // Tried again at the next completed checkpoint (or at a restore).
            if let Some(tp) = self.two_phase.as_mut() {
                tp.epochs.push_front((id, left));
            }
            return Err(msg.into());
        }
        Ok(())
    }
}

/// The `s3` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::bolt(
            "s3",
            "delivers records to S3 or an S3-compatible store as JSON-lines or CSV objects, gzip/zstd, under time partitions (strftime of the record's time), multipart when large; an input acked once its object is stored",
            |w: &S3Writer| w.clone().into_sink(),
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components s3`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.archive]
kind = "s3"
url = "s3://sensor-archive/raw"
endpoint = "http://127.0.0.1:9010"   # an S3-compatible server; unset = AWS (region, credential chain)
region = "us-east-1"
format = "jsonl"          # or "csv"
compression = "gzip"      # or "zstd", "none"
partition = "dt=%Y-%m-%d/hour=%H"
# time_field = "ts"       # partition by the record's time (ms since the epoch, RFC 3339)
batch = { max_records = 100000, max_bytes = 67108864, interval = "5s" }
inputs = [{ from = "readings" }]
"#;

impl FromOptions for S3Writer {
    type Options = S3SinkOptions;
    fn from_options(options: S3SinkOptions) -> Result<Self, String> {
        S3Writer::new(options)
    }
}

/// `url` has a serde default (so a missing one is reported by the component's own check, with
/// the expected form), but is required.
fn s3_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["url"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_strftime_of_the_second() {
        // 2026-12-06T19:30:05Z
        let t = 1_796_585_405;
        assert_eq!(
            format_partition("dt=%Y-%m-%d/hour=%H", t),
            "dt=2026-12-06/hour=19"
        );
        assert_eq!(format_partition("%Y/%m/%d/%H%M%S", t), "2026/12/06/193005");
    }

    #[test]
    fn bad_options_name_the_option() {
        let base = S3SinkOptions {
            url: "s3://bucket/x".into(),
            ..S3SinkOptions::default()
        };
        assert_eq!(base.check(), Ok(()));
        let cases: Vec<(S3SinkOptions, &str)> = vec![
            (
                S3SinkOptions {
                    url: String::new(),
                    ..base.clone()
                },
                "option `url`",
            ),
            (
                S3SinkOptions {
                    partition: "dt=%Q".into(),
                    ..base.clone()
                },
                "option `partition` = \"dt=%Q\": not a valid strftime",
            ),
            (
                S3SinkOptions {
                    partition: "/dt=%Y".into(),
                    ..base.clone()
                },
                "expected a relative path",
            ),
            (
                S3SinkOptions {
                    partition: "a//%Y".into(),
                    ..base.clone()
                },
                "expected a relative path",
            ),
            (
                S3SinkOptions {
                    part_size: 1 << 20,
                    ..base.clone()
                },
                "option `part_size` = 1048576",
            ),
            (
                S3SinkOptions {
                    fields: vec!["a".into(), "a".into()],
                    ..base.clone()
                },
                "option `fields` names \"a\" twice",
            ),
            (
                S3SinkOptions {
                    time_field: Some(String::new()),
                    ..base.clone()
                },
                "option `time_field`",
            ),
        ];
        for (o, want) in cases {
            let e = o.check().unwrap_err();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }

    #[test]
    fn compression_round_trips() {
        let body = b"{\"a\":1}\n".repeat(1000);
        for c in [
            S3Compression::None,
            S3Compression::Gzip,
            S3Compression::Zstd,
        ] {
            let packed = c.compress(b"", &body).unwrap();
            let back = match c {
                S3Compression::None => packed.clone(),
                S3Compression::Gzip => {
                    use std::io::Read;
                    let mut out = Vec::new();
                    flate2::read::GzDecoder::new(&packed[..])
                        .read_to_end(&mut out)
                        .unwrap();
                    out
                }
                S3Compression::Zstd => zstd::decode_all(&packed[..]).unwrap(),
            };
            assert_eq!(back, body, "{c:?}");
            if c != S3Compression::None {
                assert!(packed.len() < body.len() / 10, "{c:?}: {}", packed.len());
            }
        }
    }
}
