//! What every durable sink shares: batching, acking only after a durable write, retries with
//! back-off, and the `error` stream for records that can never be written.
//!
//! ```text
//!            ┌──────────────────────── BatchSink<W> ─────────────────────────┐
//! input ───► │ W::encode ──ok──► pending batch (inputs held, not yet acked)  │
//!            │     │                 │ full (max_records / max_bytes), or    │
//!            │     │                 │ no more input waiting (input_drained),│
//!            │     │                 │ or older than `interval` (tick), or   │
//!            │     │                 │ end of input (finish)                 │
//!            │     │                 ▼                                       │
//!            │     │           W::write ──ok──► ack every held input         │
//!            │     │                 │    └─ records the destination refused │
//!            │     │                 │       one by one (take_rejected) ─────────► error: (reason, record)
//!            │     │                 │ Retry: again after a back-off, up to  │
//!            │     │                 │ `retry.attempts` times, then          │
//!            │     │                 ├──────► fail every held input         │──► spouts replay
//!            │     │                 └ Reject: each record ─────────────────────► error: (reason, record)
//!            │     └─err (the record can never be written)──────────────────────► error: (reason, record)
//!            └───────────────────────────────────────────────────────────────┘
//! ```
//!
//! A sink acks an input only once the batch holding it is written durably (what "durable" means
//! is each writer's: fsync for files, a 2xx answer for HTTP, a committed transaction for
//! PostgreSQL, the server's reply for Redis). If the destination stays down through every retry,
//! the batch's inputs are failed, so their spouts replay them: nothing acked is lost, and a
//! record may be written more than once (at-least-once). While a batch is being retried the
//! sink takes no input, so backpressure reaches the spouts instead of memory growing.
//!
//! # When a batch is written
//! A batch is written as soon as one of these holds:
//! - it is **full**: `batch.max_records` records, or `batch.max_bytes` encoded bytes;
//! - the task's **input ran dry**: no more input is waiting in its queue
//!   ([`Bolt::input_drained`]);
//! - its oldest record is **old**: it has waited `batch.interval` (checked at the sink's tick);
//! - the **input ended** (the topology stops, or its sources are exhausted).
//!
//! So latency comes first when the sink is idle, and batches fill under load: while input
//! arrives faster than the sink writes, its queue is never empty, and a batch is written when
//! it is full (or old). Under a light, steady trickle a sink writes small batches, one per
//! moment its queue runs dry. Writing when the input runs dry is also what keeps a large batch
//! from stalling a topology with acking on: the spouts stop at `max_spout_pending` unacked trees,
//! so a batch larger than what those trees bring never fills, and would otherwise wait out
//! `batch.interval` every time.
//!
//! Options shared by every sink, as TOML tables:
//!
//! ```toml
//! [bolts.out.batch]
//! max_records = 500      # write when this many records are pending (`file`: 10000)
//! max_bytes = 1048576    # ... or when their encoded size reaches this
//! interval = "1s"        # ... or when the oldest pending record is this old
//!                        # (and always when no more input is waiting)
//!
//! [bolts.out.retry]
//! attempts = 5           # writes tried before the batch's inputs are failed
//! backoff = "100ms"      # first wait between tries; doubles each time
//! max_backoff = "10s"    # cap of the wait
//! ```
//!
//! # Exactly-once (`guarantee = "exactly_once"`)
//! Then no input is tracked: acking does nothing, and failing an input does not replay it.
//! Instead a checkpoint covers every record a sink received before its barrier (the spouts will
//! not send those again after a restore). At each barrier the runtime calls
//! [`Bolt::input_drained`] just before [`Bolt::snapshot`], so the pending batch is written (with
//! the usual retries) before the snapshot. Two rules keep a checkpoint from coming with lost
//! output:
//! - a batch whose every try failed is **kept**, not dropped: it is written again at the next
//!   flush (a full batch, a tick after `batch.interval`, the next idle moment);
//! - while a batch received before a barrier is unwritten, the sink **refuses the snapshot**, so
//!   that checkpoint fails (the next one succeeds once the write does).
//!
//! So when a checkpoint completes, everything its sinks received before its barrier is durable
//! (or, for a two-phase sink, pending and recorded in the snapshot). What that means for the
//! output depends on the writer: the `file` sink publishes per checkpoint (each record exactly
//! once, see [`crate::file::sink`]); the others write as they go, so records written after
//! the last completed checkpoint are written again when a run resumes from it: their output
//! is at-least-once, their state (upserts of absolute values) exact. A two-phase writer
//! implements [`BatchWriter::snapshot`], [`BatchWriter::restore`] and
//! [`BatchWriter::checkpoint_complete`].
//!
//! Hold times matter: under load an input waits for its batch, so `batch.interval` plus the
//! time spent retrying should stay well under the topology's `message_timeout` (30 s by
//! default), or its tree times out and is replayed while still pending here (written twice, not
//! lost).

use std::future::Future;
use std::time::Duration;

pub use crate::connector::retry::RetryOptions;
use crate::connector::retry::SINK_ATTEMPTS;
use crate::connector::{ERROR_STREAM, SINK_ERROR_FIELDS};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::ser::SerializeMap;
use smol_str::SmolStr;
use tokio::time::Instant;
use topo_runtime::{
    Bolt, BoxError, CheckpointId, Guarantee, OutputCollector, OutputDeclarer, Restore, Snapshot,
    TaskContext, Tuple, Value, values,
};

/// Whether this run is exactly-once: checkpoints are taken and `guarantee = "exactly_once"`.
/// Then no input is tracked, so failing one does not replay it: a sink must neither drop a
/// record it received before a barrier nor let a checkpoint complete before that record is
/// durable (or in its snapshot).
pub fn exactly_once(ctx: &TaskContext) -> bool {
    ctx.checkpointed() && ctx.config().guarantee == Guarantee::ExactlyOnce
}

/// When a sink writes its pending batch, besides whenever its input runs dry and at the end of
/// input (see the [module docs](self)).
///
/// `D` gives the sink's own default for `max_records`, which a `batch` table that leaves it out
/// gets: 500 for most sinks ([`StandardBatch`]; Kinesis allows at most 500 records per put), and
/// 10,000 for the `file` sink, whose unit cost is an fsync ([`crate::file::sink::FileBatch`]).
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(default, deny_unknown_fields, bound = "")]
// One schema definition per sink default: their `max_records` defaults differ.
#[schemars(rename = "BatchOptions_for_{D}")]
pub struct BatchOptions<D: BatchDefaults = StandardBatch> {
    /// Write when this many records are pending (at least 1).
    pub max_records: usize,
    /// Write when the pending records' encoded size reaches this many bytes.
    pub max_bytes: usize,
    /// Write when the oldest pending record has waited this long.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub interval: Duration,
    /// The sink's defaults, a type only: nothing is stored or read.
    #[serde(skip)]
    #[schemars(skip)]
    defaults: std::marker::PhantomData<D>,
}

/// A sink's own defaults for its [`BatchOptions`].
pub trait BatchDefaults:
    Clone + std::fmt::Debug + PartialEq + JsonSchema + Send + Sync + 'static
{
    /// The default `max_records`.
    const MAX_RECORDS: usize;
    /// The default `max_bytes`: 1 MiB unless the sink says otherwise.
    const MAX_BYTES: usize = 1 << 20;
    /// The default `interval`, in milliseconds: 1 s unless the sink says otherwise.
    const INTERVAL_MS: u64 = 1000;
}

/// The batch defaults of most sinks: 500 records, 1 MiB, 1 s.
#[derive(Clone, Debug, PartialEq, JsonSchema)]
pub struct StandardBatch;

impl BatchDefaults for StandardBatch {
    const MAX_RECORDS: usize = 500;
}

impl<D: BatchDefaults> Default for BatchOptions<D> {
    fn default() -> Self {
        BatchOptions::new(
            D::MAX_RECORDS,
            D::MAX_BYTES,
            Duration::from_millis(D::INTERVAL_MS),
        )
    }
}

impl<D: BatchDefaults> BatchOptions<D> {
    /// Write at `max_records` records, `max_bytes` encoded bytes, or when the oldest has waited
    /// `interval`.
    pub fn new(max_records: usize, max_bytes: usize, interval: Duration) -> Self {
        BatchOptions {
            max_records,
            max_bytes,
            interval,
            defaults: std::marker::PhantomData,
        }
    }

    /// Checks the values; the error names the option.
    pub fn check(&self) -> Result<(), String> {
        if self.max_records == 0 {
            return Err("option `batch.max_records` must be at least 1".into());
        }
        if self.max_bytes == 0 {
            return Err("option `batch.max_bytes` must be at least 1".into());
        }
        if self.interval.is_zero() {
            return Err("option `batch.interval` must be longer than 0s".into());
        }
        Ok(())
    }

    /// The same limits, whatever defaults they were read with.
    pub fn limits(&self) -> BatchOptions {
        BatchOptions::new(self.max_records, self.max_bytes, self.interval)
    }
}

/// Why a batch was not written.
#[derive(Debug)]
pub enum WriteError {
    /// The destination is unreachable or busy (a refused connection, a timeout, HTTP 5xx or
    /// 429): try again after a back-off, and fail the inputs for replay if every try fails.
    Retry(BoxError),
    /// The destination refused these records and would refuse them again (HTTP 400, a
    /// constraint violation): every record of the batch goes to the `error` stream with this
    /// reason and its input is acked, since replaying it cannot succeed.
    Reject(String),
}

impl WriteError {
    /// The error as a [`BoxError`] (for a caller that only logs it).
    pub fn into_error(self) -> BoxError {
        match self {
            WriteError::Retry(e) => e,
            WriteError::Reject(reason) => reason.into(),
        }
    }
}

impl<E: Into<BoxError>> From<E> for WriteError {
    fn from(e: E) -> WriteError {
        WriteError::Retry(e.into())
    }
}

/// The destination-specific half of a sink: how records are encoded into a batch and how a
/// batch is written. [`BatchSink`] does the rest (holding, acking, retrying).
pub trait BatchWriter: Send + 'static {
    /// Connects, creates files, checks the destination. An error is logged and the task retries
    /// with a fresh instance after a back-off.
    fn open(&mut self, ctx: &TaskContext) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Adds one record to the pending batch and returns its encoded size in bytes. `Err(reason)`
    /// means this record can never be written (a missing field, a value of the wrong type); the
    /// record goes to the `error` stream and its input is acked.
    fn encode(&mut self, input: &Tuple) -> Result<usize, String>;

    /// Writes the pending batch durably. On `Ok` the batch is done and cleared. On
    /// [`WriteError::Retry`] the pending batch must be left as it was, ready to be written
    /// again; on [`WriteError::Reject`] it is dropped (see there).
    fn write(&mut self) -> impl Future<Output = Result<(), WriteError>> + Send;

    /// Drops the pending batch (every try failed; its inputs are failed and will be replayed).
    fn discard(&mut self);

    /// Called after a successful [`write`](BatchWriter::write): moves into `into` the records of
    /// that batch the destination refused one by one while it took the others (a constraint
    /// violation on one row, a command refused inside a transaction), each as its index in the
    /// batch (the order of `encode` calls) and the reason. They go to the `error` stream; every
    /// input of the batch is acked either way. By default there are none.
    fn take_rejected(&mut self, into: &mut Vec<(usize, String)>) {
        let _ = into;
    }

    /// Moves into `into` the records the destination refused outside [`write`](BatchWriter::write)
    /// — at a two-phase commit ([`checkpoint_complete`](BatchWriter::checkpoint_complete),
    /// [`idle`](BatchWriter::idle)) — each as (reason, record). They go to the `error` stream,
    /// unanchored. Called after each of those and after `write`. By default there are none.
    fn take_refused(&mut self, into: &mut Vec<(String, Value)>) {
        let _ = into;
    }

    /// Called now and then while idle (at the sink's tick): time-based housekeeping such as
    /// closing a file that has been open too long.
    fn idle(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }

    /// Releases connections and files; the pending batch has been written or discarded.
    fn close(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// A checkpoint is being taken; every batch received before its barrier was written (the
    /// sink refuses the checkpoint otherwise). A two-phase-commit writer records here what it
    /// wrote but has not published yet. By default nothing.
    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        let _ = snap;
        Ok(())
    }

    /// The run resumes from a checkpoint (after [`open`](BatchWriter::open)): a two-phase-commit
    /// writer publishes what that checkpoint covers and drops what was written after it.
    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        let _ = from;
        Ok(())
    }

    /// Checkpoint `id` completed: a two-phase-commit writer publishes what it wrote before that
    /// checkpoint's barrier. An error is logged; what was not published stays pending and is
    /// tried again at the next completed checkpoint (or at a restore).
    fn checkpoint_complete(
        &mut self,
        id: CheckpointId,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        let _ = id;
        async { Ok(()) }
    }
}

/// A [`Bolt`] that batches records for a [`BatchWriter`] and acks each input only once the batch
/// holding it is written; see the [module docs](self).
pub struct BatchSink<W> {
    writer: W,
    batch: BatchOptions,
    retry: RetryOptions,
    held: Vec<Tuple>,
    rejected: Vec<(usize, String)>,
    bytes: usize,
    oldest: Option<Instant>,
    component: SmolStr,
    /// Exactly-once ([`exactly_once`]): a batch is never dropped after failed tries, and a
    /// checkpoint is refused while a batch is unwritten.
    exactly_once: bool,
    /// Why the last write failed, while the batch is still unwritten (exactly-once).
    unwritten: Option<String>,
    /// Records the writer refused at a commit ([`BatchWriter::take_refused`]).
    refused: Vec<(String, Value)>,
}

impl<W: BatchWriter> BatchSink<W> {
    /// A sink writing through `writer` with these batch and retry settings (checked by the
    /// caller with [`BatchOptions::check`] and [`RetryOptions::check`]).
    pub fn new<D: BatchDefaults>(
        writer: W,
        batch: BatchOptions<D>,
        retry: RetryOptions,
    ) -> BatchSink<W> {
        BatchSink {
            writer,
            batch: batch.limits(),
            retry,
            held: Vec::new(),
            rejected: Vec::new(),
            bytes: 0,
            oldest: None,
            component: SmolStr::default(),
            exactly_once: false,
            unwritten: None,
            refused: Vec::new(),
        }
    }

    /// Sends the records the writer refused at a commit to the `error` stream.
    fn emit_refused(&mut self, out: &mut OutputCollector<'_>) {
        self.writer.take_refused(&mut self.refused);
        for (reason, record) in self.refused.drain(..) {
            out.emit_to(ERROR_STREAM, &[], values![reason, record]);
        }
    }

    /// The writer (for tests and inspection).
    pub fn writer(&self) -> &W {
        &self.writer
    }

    /// Writes the pending batch with retries; acks its inputs, or fails them all if every try
    /// failed (and returns that error, so it is logged and counted).
    async fn flush(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        if self.held.is_empty() {
            return Ok(());
        }
        let mut wait = self.retry.backoff;
        let mut attempt = 1;
        let result = loop {
            match self.writer.write().await {
                Ok(()) => break Ok(()),
                Err(WriteError::Retry(e)) if attempt < self.retry.attempts_or(SINK_ATTEMPTS) => {
                    tracing::warn!(
                        component = %self.component,
                        records = self.held.len(),
                        attempt,
                        error = %e,
                        "sink write failed; retrying in {}",
                        humantime::format_duration(wait)
                    );
                    tokio::time::sleep(wait).await;
                    wait = self.retry.next_backoff(wait);
                    attempt += 1;
                }
                Err(e) => break Err(e),
            }
        };
        if let (true, Err(WriteError::Retry(e))) = (self.exactly_once, &result) {
            // No input is tracked: failing the inputs would drop their records. Keep the batch
            // (the writer left it as it was) and write it again later; until then the sink
            // refuses checkpoints, so none covers a record that is not written.
            self.oldest = Some(Instant::now());
            let why = format!(
                "sink write failed {attempt} times; its {} records stay pending and are written again: {e}",
                self.held.len()
            );
            self.unwritten = Some(why.clone());
            return Err(why.into());
        }
        self.unwritten = None;
        self.emit_refused(out);
        // `held` is cleared, not replaced, so its capacity serves the next batch.
        let held = &self.held;
        self.bytes = 0;
        self.oldest = None;
        let outcome = match result {
            Ok(()) => {
                self.writer.take_rejected(&mut self.rejected);
                for (i, reason) in self.rejected.drain(..) {
                    if let Some(t) = held.get(i) {
                        out.emit_to(ERROR_STREAM, &[t], values![reason, record(t)]);
                    }
                }
                for t in held {
                    out.ack(t);
                }
                Ok(())
            }
            Err(WriteError::Reject(reason)) => {
                self.writer.discard();
                for t in held {
                    out.emit_to(ERROR_STREAM, &[t], values![reason.as_str(), record(t)]);
                    out.ack(t);
                }
                Ok(())
            }
            Err(WriteError::Retry(e)) => {
                self.writer.discard();
                for t in held {
                    out.fail(t);
                }
                Err(format!(
                    "sink write failed {attempt} times; failed its {} inputs so they are replayed: {e}",
                    held.len()
                )
                .into())
            }
        };
        self.held.clear();
        outcome
    }
}

/// The input as a [`Value::Map`] of field name to value (the `record` of an `error` stream):
/// [`Tuple::to_record`].
pub fn record(input: &Tuple) -> Value {
    input.to_record()
}

impl<W: BatchWriter> Bolt for BatchSink<W> {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare_stream(ERROR_STREAM, SINK_ERROR_FIELDS);
    }

    async fn prepare(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        self.component = ctx.component_id().into();
        self.exactly_once = exactly_once(ctx);
        self.writer.open(ctx).await
    }

    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        match self.writer.encode(&input) {
            Ok(n) => {
                self.bytes += n;
                self.oldest.get_or_insert_with(Instant::now);
                self.held.push(input);
                if self.held.len() >= self.batch.max_records || self.bytes >= self.batch.max_bytes {
                    self.flush(out).await?;
                }
                Ok(())
            }
            Err(reason) => {
                out.emit_to(ERROR_STREAM, &[&input], values![reason, record(&input)]);
                out.ack(&input);
                Ok(())
            }
        }
    }

    fn tick_interval(&self) -> Option<Duration> {
        // Often enough that a batch waits at most ~1.25 × `interval`.
        Some((self.batch.interval / 4).max(Duration::from_millis(5)))
    }

    async fn tick(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        if self
            .oldest
            .is_some_and(|t| t.elapsed() >= self.batch.interval)
        {
            self.flush(out).await?;
        }
        if self.held.is_empty() {
            let idle = self.writer.idle().await;
            self.emit_refused(out);
            idle?;
        }
        Ok(())
    }

    async fn input_drained(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        // No more input is waiting: write now rather than wait for a batch that may never fill.
        // `flush` returns at once when nothing is pending.
        self.flush(out).await
    }

    async fn finish(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        self.flush(out).await
    }

    async fn cleanup(&mut self) {
        self.writer.close().await;
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        // `input_drained` ran just before: the batch was written, unless every try failed.
        if !self.held.is_empty() {
            return Err(format!(
                "{} records received before checkpoint {}'s barrier are not written yet{}",
                self.held.len(),
                snap.checkpoint_id(),
                match &self.unwritten {
                    Some(why) => format!(" ({why})"),
                    None => String::new(),
                }
            )
            .into());
        }
        self.writer.snapshot(snap)
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        self.writer.restore(from)
    }

    async fn checkpoint_complete(
        &mut self,
        id: CheckpointId,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        let done = self.writer.checkpoint_complete(id).await;
        self.emit_refused(out);
        done
    }
}

/// One record as a JSON object: the chosen values under their names.
struct JsonRecord<'a> {
    input: &'a Tuple,
    /// The written fields' indices; `None` = every field.
    indices: Option<&'a [usize]>,
    names: Option<&'a [SmolStr]>,
}

impl serde::Serialize for JsonRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let fields = self.input.fields();
        let values = self.input.values();
        let Some(indices) = self.indices else {
            let mut map = s.serialize_map(Some(values.len()))?;
            for (name, v) in fields.iter().zip(values) {
                map.serialize_entry(name.as_str(), v)?;
            }
            return map.end();
        };
        let mut map = s.serialize_map(Some(indices.len()))?;
        for (k, &i) in indices.iter().enumerate() {
            let name = match self.names {
                Some(n) => &n[k],
                None => &fields[i],
            };
            map.serialize_entry(name.as_str(), &values[i])?;
        }
        map.end()
    }
}

/// Appends one JSON object and a newline (the records of the `file` sink's `jsonl`, of the
/// `http` sink's bodies, the values of the `kafka` and `kinesis` sinks): the fields at `indices` (every field when `None`),
/// named by `names`, else by the tuple's fields.
pub(crate) fn encode_json(
    buf: &mut Vec<u8>,
    input: &Tuple,
    indices: Option<&[usize]>,
    names: Option<&[SmolStr]>,
) -> Result<(), String> {
    serde_json::to_writer(
        &mut *buf,
        &JsonRecord {
            input,
            indices,
            names,
        },
    )
    .map_err(|e| format!("the record cannot be written as JSON: {e}"))?;
    buf.push(b'\n');
    Ok(())
}
