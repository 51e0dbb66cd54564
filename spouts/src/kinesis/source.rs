//! `kinesis`: the records of an Amazon Kinesis data stream (or a Kinesis-compatible server such
//! as kinesalite), through the official AWS SDK for Rust; the acked contiguous sequence number of
//! each shard is checkpointed, so a restart resumes after it (at-least-once). In a run that
//! takes checkpoints the shards' sequence numbers go into the topology's checkpoints instead
//! (exactly-once with `guarantee = "exactly_once"`; see "Checkpoints").
//!
//! ```text
//!  Kinesis ◄── ListShards (every `shard_refresh`) ── coordinator task (one per spout task = worker)
//!    │           a worker reads the shards whose leases it holds: up to its fair share of the
//!    │           readable shards among the live workers (tasks of every process sharing the
//!    │           state directory), handing extra shards back when a worker joins and taking
//!    │           over those of a worker that is gone; a child shard is readable once its
//!    │           parents are ended and checkpointed (or trimmed away)
//!    │ GetShardIterator (checkpoint: AFTER_SEQUENCE_NUMBER, else `start_at`)
//!    │ GetRecords every `poll_interval` (≥ 200 ms: 5 reads/s per shard), back-off on
//!    ▼ throttling and errors, expired iterators renewed after the last record read
//!  reader task per shard: a KPL aggregate is taken apart into its user records (kpl.rs)
//!    ──► bounded channel (full: readers wait) ──► next_tuple drains ≤ 64
//!                                                                          │
//!  spout ──emit (shard, sequence, sub_sequence, partition_key, data[, fields..]) id (shard, n)──► bolts
//!    │   pending: id -> tuple; fail -> emitted again; ack -> per-shard acked prefix
//!    ├──emit_to "error" (reason, raw), unanchored (undecodable record, counted)
//!    └─ every `checkpoint_interval`: <state_dir>/shard-<shard id>.json  (last acked sequence
//!       number of the contiguous acked prefix (and its sub-sequence number when it ends inside
//!       a KPL aggregate), `ended` once SHARD_END is reached and acked;
//!       written to a temporary file, fsynced, renamed)
//! ```
//!
//! # Options
//! ```toml
//! [spouts.readings]
//! kind = "kinesis"
//! stream = "sensors"
//! # region = "us-east-1"          # default: the SDK's (AWS_REGION, profile), else us-east-1
//! # endpoint = "http://127.0.0.1:4567"   # a Kinesis-compatible server; default: AWS's
//! # access_key_id = "${KINESIS_KEY_ID}"   secret_access_key = "${KINESIS_SECRET}"
//! start_at = "trim_horizon"       # without a checkpoint: "trim_horizon" | "latest" |
//!                                 # "at_sequence_number" | "after_sequence_number" | "at_timestamp"
//! # sequence_number = "4959..."   # with at/after_sequence_number
//! # timestamp = "2026-01-01T00:00:00Z"   # with at_timestamp (RFC 3339)
//! payload = "utf8"                # "strict" | "bytes" | "json"
//! # fields = ["device", "temp"]   # json: keys of the object emitted as fields
//! poll_interval = "200ms"         # between GetRecords calls of one shard (at least 200ms)
//! max_records = 10000             # per GetRecords call (1..=10000; as the KCL)
//! checkpoint_interval = "1s"
//! shard_refresh = "10s"           # how often shards are listed again (resharding)
//! # state_dir = "/var/lib/topo/kinesis"  # default $TOPO_STATE_DIR (or .topo/state)/<topology>/<component>
//! retry = { backoff = "100ms", max_backoff = "10s", attempts = 0 }   # 0 = retry forever
//! stop_at_end = false             # true: each shard is read up to its current end, then the
//!                                 # spout is exhausted once all is acked (tests, `--until-idle`)
//! deaggregate = true              # KPL aggregated records -> one tuple per user record
//! ```
//! Without `access_key_id`/`secret_access_key`, credentials come from the SDK's default chain (environment `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY`, profiles, instance roles).
//!
//! # Output
//! The `default` stream carries (`shard`, `sequence`, `sub_sequence`, `partition_key`, `data`),
//! then with `payload = "json"` one field per name in `fields`. `data` is, by `payload`: `utf8` text
//! (invalid UTF-8 replaced by U+FFFD), `strict` text (not UTF-8: `error`), `bytes` (a Bytes
//! value) or `json` (the parsed document; with `fields`, an object is required).
//!
//! # KPL aggregated records
//! Producers using the Kinesis Producer Library (or the Kinesis Agent, or `kinesis` sinks with
//! `aggregation = true`) pack many user records into one Kinesis record (see `kpl.rs` for the
//! format). With `deaggregate = true` (the default, as in the KCL) the spout emits one tuple per
//! user record: its own `partition_key`, the Kinesis record's `sequence`, and its index in the
//! aggregate as `sub_sequence` (0 for a record that is not an aggregate). A record without the
//! format's magic bytes passes through as it is. A corrupt aggregate (its MD5 checksum does not
//! match, its protobuf does not decode, a table index points nowhere, or it holds no user
//! records) goes to the `error` stream whole, with the reason. Each user record is acked,
//! failed and replayed on its own. A checkpoint may fall inside an aggregate (the sequence
//! number and the sub-sequence number of its last acked user record, as the KCL's extended
//! sequence numbers): a restart then reads the aggregate again (AT_SEQUENCE_NUMBER) and skips
//! the user records the checkpoint covers. With `deaggregate = false` an aggregate is emitted
//! as one opaque record (`data`, `sub_sequence` 0).
//!
//! The `error` stream carries (`reason`, `raw`) for records that cannot be decoded (`raw`: the
//! first KiB, invalid UTF-8 replaced). Such a record counts as handled for the checkpoint, is
//! counted ([`KinesisCounters::malformed`]) and logged with `tracing::warn!` at most once a
//! second.
//!
//! # Delivery guarantee
//! At-least-once. Every emitted record is kept in memory until its tree is acked; a failed or
//! timed-out tree is emitted again (same id). Per shard, the spout tracks the records in the
//! order they were emitted and checkpoints the sequence number of the last record of the
//! contiguous acked prefix; after a restart reading resumes after it, so records emitted but
//! not acked before a crash are read again (duplicates are possible, losses are not). A shard
//! that reached SHARD_END (resharding) is checkpointed `ended` only once all its records are
//! acked, and its children are read only then: the order of a key is kept across a split or
//! merge. Proven by a soak (`tests/soak_kinesis.rs`): 20,000 records put while `topo run` (2
//! spout tasks) reads them into the durable `file` sink, one of 2 shards split midway and the
//! process killed with `SIGKILL` 10 times at random points, lose nothing (the parent and both
//! children read in full); every duplicate is a record after its shard's checkpoint at a kill.
//!
//! # Errors and limits of the service
//! GetRecords of one shard is called at most every `poll_interval` (the service allows 5 reads
//! a second per shard). `ProvisionedThroughputExceededException` and other failures (an
//! unreachable endpoint, a timeout) are retried after `retry.backoff`, doubling up to
//! `retry.max_backoff`; with `retry.attempts = n` a reader (or the shard listing) gives up after
//! `n` failures in a row (throttling does not count: it is always waited out), logs an error,
//! every reader of the task stops, and the spout is then exhausted once everything is acked
//! (so `topo run --until-idle` ends). An expired iterator (after 5 minutes) is renewed after
//! the last record read. A missing stream is reported as `stream "<name>" not found`. The last
//! error is kept in [`KinesisCounters::last_error`].
//!
//! # Several tasks and processes: shard leases
//! Every spout task is a worker: it registers a locked `worker-*.lock` file in the state
//! directory and reads a shard only while it holds the shard's `shard-<id>.lock` lock (see
//! `lease.rs`: `flock(2)` locks, dropped by the kernel when their process ends, however it
//! ends). Each `shard_refresh`, a worker counts the live workers, takes free shards up to its
//! fair share (readable shards / live workers, rounded up) and hands shards above it back: their
//! reader stops, the emitted records are let finish (acked, or `message_timeout`), the shard's
//! checkpoint is written, and only then is the lock released, so the next holder resumes after
//! the last acked record. Two processes running the same topology with the same state
//! directory (`TOPO_STATE_DIR`, or `state_dir`) therefore share a stream's shards, and one takes
//! the other's shards over within `shard_refresh` once it is killed
//! ([`KinesisCounters::shards_held`], [`KinesisCounters::shards_handed_back`]).
//!
//! # Checkpoints (exactly-once)
//! The spout rewinds ([`Spout::rewinds`]). In a run that takes checkpoints (`guarantee =
//! "exactly_once"`, or a bolt that keeps state):
//! - **Ownership without hand-backs**: each shard is read by one task, the one whose index is
//!   a stable hash of the shard id (FNV-1a) modulo the spout's parallelism; leases are still
//!   taken (another process sharing the state directory cannot read the shard at the same
//!   time) but never handed back during the run, so a shard's records are never read by two
//!   tasks between two checkpoints. Workers are not counted. Several processes sharing one
//!   stream's shards in one run is not supported in this mode.
//! - **Snapshot**: each task writes the shards it took (state part `positions`; checkpoints of
//!   earlier versions, without sub-sequence numbers, hold `shards` and are read too): the
//!   sequence number (and sub-sequence number) of the last record whose tuple the checkpoint covers — under exactly-once (acking
//!   off) the last record emitted, under at-least-once the end of the contiguous acked prefix —
//!   and `ended` once the shard's SHARD_END is covered.
//! - **Restore**: every task makes the shards' files the checkpoint's before its coordinator
//!   starts (the coordinator starts at the first `next_tuple`, after the restore): the files of
//!   every shard the checkpoint holds (from every old task, so a change of parallelism keeps
//!   them) are rewritten, and the files of shards it does not hold are removed. A shard then
//!   resumes AFTER_SEQUENCE_NUMBER of its checkpointed sequence, starts at `start_at`
//!   (TRIM_HORIZON by default) when the checkpoint holds none, and is not read again when it
//!   ended; children become readable once their parents' end is in a completed checkpoint (or
//!   acked by the same task).
//! - **The files** (`shard-<id>.json`) are written only when a checkpoint completes, with that
//!   checkpoint's positions; never every `checkpoint_interval`, on hand-back or at close. A run
//!   started `--fresh` resumes from them. With `stop_at_end` the spout ends once a completed
//!   checkpoint holds every shard's last position.
//!
//! # Known limits
//! - Leases live in the state directory: processes sharing a stream must share it (one host, or
//!   a file system with working `flock`, which excludes most NFS set-ups). A DynamoDB lease
//!   table (the KCL's, for workers on many hosts) is not implemented.
//! - Enhanced fan-out (SubscribeToShard) is not used: reads share the shard's 2 MiB/s.
//! - `latest` and `at_timestamp` apply only to shards without a checkpoint.
//! - While the topology holds the spout back (full channel) readers stop polling; an iterator
//!   unused for 5 minutes expires and is renewed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{Shard, ShardIteratorType};
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    BoxError, CheckpointId, Guarantee, OutputDeclarer, Restore, Snapshot, Spout, SpoutCollector,
    TaskContext, Value, Values, values,
};

use super::{describe, kinesis_options, kpl, lease};
use crate::connector::acked::AckedPrefix;
use crate::connector::counters;
use crate::connector::encoding::PayloadFormat;
use crate::connector::encoding::decode_payload;
use crate::connector::encoding::raw_prefix;
use crate::connector::retry::RetryOptions;
use crate::connector::state::state_dir;
use crate::connector::warn::lock;
use crate::connector::{ERROR_STREAM, SOURCE_ERROR_FIELDS};
use schemars::JsonSchema;

/// How many records `next_tuple` emits at most per call.
const DRAIN_PER_CALL: usize = 64;
/// Capacity of the channel between the readers and the spout.
const CHANNEL_CAPACITY: usize = 2048;

/// Where a shard without a checkpoint starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KinesisStart {
    /// The oldest record kept by the stream.
    #[default]
    TrimHorizon,
    /// Records put after the reader starts.
    Latest,
    /// The record with `sequence_number`.
    AtSequenceNumber,
    /// The record after `sequence_number`.
    AfterSequenceNumber,
    /// The first record at or after `timestamp`.
    AtTimestamp,
}

kinesis_options! {
/// Options of the `kinesis` spout.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema, Serialize)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = kinesis_required)]
pub struct KinesisOptions {
    /// Where a shard without a checkpoint starts.
    pub start_at: KinesisStart,
    /// The sequence number of `at_sequence_number` / `after_sequence_number`.
    pub sequence_number: Option<String>,
    /// The RFC 3339 time of `at_timestamp`.
    pub timestamp: Option<String>,
    /// How a record's data becomes a value.
    pub payload: PayloadFormat,
    /// With `payload = "json"`: keys of the object emitted as fields after `data`.
    pub fields: Vec<String>,
    /// The least time between two GetRecords calls of one shard.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub poll_interval: Duration,
    /// Records asked per GetRecords call.
    pub max_records: i32,
    /// How often the acked sequence numbers are written.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub checkpoint_interval: Duration,
    /// How often the shards are listed again.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub shard_refresh: Duration,
    /// Where checkpoints are kept; default `$TOPO_STATE_DIR/<topology>/<component>`.
    pub state_dir: Option<PathBuf>,
    /// Waits after failed calls, and when to give up.
    pub retry: RetryOptions,
    /// Read each shard to its current end, then stop (the spout becomes exhausted).
    pub stop_at_end: bool,
    /// Take KPL aggregated records apart into their user records (as the KCL does).
    pub deaggregate: bool,
}
}

impl Default for KinesisOptions {
    fn default() -> Self {
        KinesisOptions {
            stream: String::new(),
            region: None,
            endpoint: None,
            access_key_id: None,
            secret_access_key: None,
            start_at: KinesisStart::TrimHorizon,
            sequence_number: None,
            timestamp: None,
            payload: PayloadFormat::Utf8,
            fields: Vec::new(),
            poll_interval: Duration::from_millis(200),
            max_records: 10_000,
            checkpoint_interval: Duration::from_secs(1),
            shard_refresh: Duration::from_secs(10),
            state_dir: None,
            retry: RetryOptions::default(),
            stop_at_end: false,
            deaggregate: true,
        }
    }
}

counters! {
    /// Counts shared by every task of a spout (and its clones).
pub struct KinesisCounters {
        /// Records read and passed on as tuples (replays not counted); a KPL aggregate counts
        /// its user records.
        records,
        /// KPL aggregated records taken apart into their user records.
        aggregates,
        /// Records that could not be decoded, sent to the `error` stream.
        malformed,
        /// GetRecords calls that succeeded.
        get_records_calls,
        /// Calls refused with `ProvisionedThroughputExceededException` (then backed off).
        throttled,
        /// Shard iterators that expired and were renewed.
        expired_iterators,
        /// Checkpoint files written.
        checkpoints,
        /// Checkpoint files that could not be written.
        checkpoint_errors,
        /// Shards read to SHARD_END with every record acked.
        shards_ended,
        /// Shards whose leases the spout's tasks hold now (read, or ending).
        shards_held,
        /// Shards handed to another worker (which joined) since the start.
        shards_handed_back,
        ;
        log: crate::connector::warn::ErrorLog,
    }
}

impl KinesisCounters {
    /// Failed calls other than throttling (unreachable endpoint, missing stream, ...).
    pub fn errors(&self) -> u64 {
        self.log.count()
    }
    /// The text of the last failed call, if any.
    pub fn last_error(&self) -> Option<String> {
        self.log.last()
    }

    fn error(&self, component: &str, msg: String) {
        self.log.record(component, msg);
    }
}

/// A shard's checkpoint file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    shard: String,
    /// The last sequence number of the acked prefix (none: nothing acked yet).
    sequence: Option<String>,
    /// Set when the prefix ends inside a KPL aggregate: the index of its last acked user
    /// record; the aggregate's later user records are not acked yet.
    #[serde(default)]
    sub_sequence: Option<u64>,
    /// SHARD_END reached and every record acked.
    ended: bool,
}

/// A shard's position as checkpoints taken before sub-sequence numbers held it (state part
/// `shards`; postcard has no optional fields, so the new layout is a part of its own,
/// `positions`): read when restoring such a checkpoint.
#[derive(Clone, Debug, Deserialize)]
struct SavedBefore {
    shard: String,
    sequence: Option<String>,
    ended: bool,
}

impl From<SavedBefore> for Saved {
    fn from(s: SavedBefore) -> Saved {
        Saved {
            shard: s.shard,
            sequence: s.sequence,
            sub_sequence: None,
            ended: s.ended,
        }
    }
}

/// The checkpoint state of one task, shared by the spout, the coordinator and the writer.
#[derive(Debug, Default)]
struct Store {
    shards: HashMap<String, Saved>,
    dirty: HashSet<String>,
}

/// Where a record (or a user record of a KPL aggregate) sits in its shard: what a checkpoint
/// after it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Position {
    sequence: SmolStr,
    /// A user record of an aggregate other than its last: its index (resume inside the
    /// aggregate, after it). `None`: the whole Kinesis record is covered.
    sub: Option<u64>,
}

/// Where a reader starts: after `sequence`, or inside its aggregate after user record `sub`.
type ResumeAt = Option<(String, Option<u64>)>;

/// What the readers hand to the spout.
enum Item {
    Record {
        shard: u32,
        at: Position,
        values: Values,
    },
    Error {
        shard: u32,
        at: Position,
        values: Values,
    },
    /// The shard reached SHARD_END: every record of it was sent before this.
    End { shard: u32 },
    /// The shard goes to another worker: every record of it was sent before this; the lease
    /// is dropped once they are acked and checkpointed.
    Release { shard: u32, lease: lease::Lease },
}

/// Per-shard tracking in the spout.
struct Track {
    id: String,
    next: u64,
    prefix: AckedPrefix,
    /// Positions of emitted records from ordinal `prefix.committed()` on.
    sequences: VecDeque<Position>,
    ended: bool,
    /// Handed to another worker: its acks no longer move the checkpoint.
    released: bool,
}

/// What a run that takes checkpoints keeps: the positions written into checkpoints not yet
/// complete, written to the shards' files when they complete.
struct Checkpointed {
    /// Acking is off: every emitted record is covered by the next checkpoint.
    exactly_once: bool,
    /// (this task's index, the parallelism).
    owner: (usize, usize),
    /// Where the shards this task owns start (their files when the run began, after a
    /// restore the checkpoint's): written into every checkpoint for the shards not taken yet,
    /// so that a checkpoint taken before the coordinator took a shard keeps its position.
    baseline: HashMap<String, Saved>,
    /// Positions of checkpoints not yet complete, oldest first.
    pending: crate::connector::state::PendingPositions<Vec<Saved>>,
    /// The last write of a completed checkpoint's positions.
    writing: Option<JoinHandle<()>>,
}

/// The spout task that reads a shard in a run that takes checkpoints: a stable hash of the
/// shard id (FNV-1a) modulo the parallelism.
fn owner_of(shard: &str, tasks: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in shard.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % tasks.max(1) as u64) as usize
}

/// The `shard-*.json` files of a state directory, with what each holds (if it reads).
fn shard_files(dir: &Path) -> io::Result<Vec<(PathBuf, Option<Saved>)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        let is_shard = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".json"));
        if is_shard {
            let shard = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Saved>(&b).ok());
            out.push((path, shard));
        }
    }
    Ok(out)
}

/// The positions of the shards a task owns, by shard id.
fn owned(
    saved: impl IntoIterator<Item = Saved>,
    (task, tasks): (usize, usize),
) -> HashMap<String, Saved> {
    saved
        .into_iter()
        .filter(|s| owner_of(&s.shard, tasks) == task)
        .map(|s| (s.shard.clone(), s))
        .collect()
}

/// A shard being handed back: its lease goes once its emitted records are acked, or at
/// `deadline`.
struct Releasing {
    shard: u32,
    lease: lease::Lease,
    deadline: tokio::time::Instant,
}

/// The `kinesis` spout (see the module docs). Cloning gives a fresh, unopened spout with the
/// same options that shares the counters.
pub struct KinesisSpout {
    opts: Arc<KinesisOptions>,
    counters: Arc<KinesisCounters>,
    run: Option<Running>,
}

impl Clone for KinesisSpout {
    fn clone(&self) -> Self {
        KinesisSpout {
            opts: self.opts.clone(),
            counters: self.counters.clone(),
            run: None,
        }
    }
}

struct Running {
    rx: flume::Receiver<Item>,
    shard_names: Arc<Mutex<Vec<String>>>,
    tracks: Vec<Option<Track>>,
    pending: HashMap<(u32, u64), Values>,
    replay: VecDeque<(u32, u64)>,
    store: Arc<Mutex<Store>>,
    dir: PathBuf,
    cancel: CancellationToken,
    /// The coordinator, once started.
    task: Option<JoinHandle<()>>,
    /// With checkpoints the coordinator starts at the first `next_tuple`, after a restore has
    /// set the shards' positions.
    deferred: Option<(Arc<Shared>, lease::Worker)>,
    /// With checkpoints (see [`Checkpointed`]); `None` without.
    ck: Option<Checkpointed>,
    max_pending: usize,
    last_checkpoint: tokio::time::Instant,
    ended: bool,
    releasing: Vec<Releasing>,
    /// How long a shard handed back may wait for its emitted records' acks.
    drain_timeout: Duration,
    /// The leases of the shards read (shared with the coordinator).
    leases: Arc<Mutex<HashMap<String, lease::Lease>>>,
    counters: Arc<KinesisCounters>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = &self.task {
            t.abort();
        }
        // After the last checkpoint (`close`): the shards are free for other workers.
        let held = std::mem::take(&mut *lock(&self.leases));
        self.counters
            .shards_held
            .fetch_sub(held.len() as u64, Relaxed);
    }
}

impl KinesisSpout {
    /// A Kinesis spout with these options, or what is wrong with them.
    pub fn new(opts: KinesisOptions) -> Result<KinesisSpout, String> {
        opts.connection().check()?;
        opts.retry.check("retry")?;
        match opts.start_at {
            KinesisStart::AtSequenceNumber | KinesisStart::AfterSequenceNumber
                if opts.sequence_number.as_deref().is_none_or(str::is_empty) =>
            {
                return Err("option `start_at` = \"at_sequence_number\" / \"after_sequence_number\" needs `sequence_number`".into());
            }
            KinesisStart::AtTimestamp => {
                let t = opts.timestamp.as_deref().unwrap_or("");
                humantime::parse_rfc3339_weak(t).map_err(|e| {
                    format!("option `timestamp` = {t:?}: expected an RFC 3339 time such as \"2026-01-01T00:00:00Z\" ({e})")
                })?;
            }
            _ => {}
        }
        if opts.sequence_number.is_some()
            && !matches!(
                opts.start_at,
                KinesisStart::AtSequenceNumber | KinesisStart::AfterSequenceNumber
            )
        {
            return Err("option `sequence_number` applies only with start_at = \"at_sequence_number\" or \"after_sequence_number\"".into());
        }
        if opts.timestamp.is_some() && opts.start_at != KinesisStart::AtTimestamp {
            return Err("option `timestamp` applies only with start_at = \"at_timestamp\"".into());
        }
        if !opts.fields.is_empty() && opts.payload != PayloadFormat::Json {
            return Err("option `fields` applies only with payload = \"json\"".into());
        }
        let mut seen = HashSet::new();
        for f in &opts.fields {
            if f.is_empty()
                || ["shard", "sequence", "sub_sequence", "partition_key", "data"]
                    .contains(&f.as_str())
                || !seen.insert(f.as_str())
            {
                return Err(format!(
                    "option `fields`: {f:?} is empty, repeated, or one of the fields shard, sequence, sub_sequence, partition_key, data"
                ));
            }
        }
        if opts.poll_interval < Duration::from_millis(200) {
            return Err(format!(
                "option `poll_interval` = {:?}: expected at least 200ms (Kinesis allows 5 GetRecords calls a second per shard)",
                humantime::format_duration(opts.poll_interval).to_string()
            ));
        }
        if !(1..=10_000).contains(&opts.max_records) {
            return Err(format!(
                "option `max_records` = {}: expected 1 to 10000",
                opts.max_records
            ));
        }
        if opts.checkpoint_interval.is_zero() || opts.shard_refresh.is_zero() {
            return Err(
                "options `checkpoint_interval` and `shard_refresh` must be longer than 0s".into(),
            );
        }
        if opts
            .state_dir
            .as_ref()
            .is_some_and(|d| d.as_os_str().is_empty())
        {
            return Err("option `state_dir` is empty: expected a directory".into());
        }
        let r = &opts.retry;
        if r.backoff.is_zero() || r.max_backoff < r.backoff {
            return Err(
                "option `retry`: `backoff` must be more than 0s and at most `max_backoff`".into(),
            );
        }
        Ok(KinesisSpout {
            opts: Arc::new(opts),
            counters: Arc::default(),
            run: None,
        })
    }

    /// What the readers have seen so far, over every task of this spout and its clones.
    pub fn counters(&self) -> &KinesisCounters {
        &self.counters
    }

    /// The state directory of a component: `state_dir` if set, else
    /// `$TOPO_STATE_DIR/<topology>/<component>` (`TOPO_STATE_DIR` defaulting to `.topo/state`).
    pub fn state_dir_for(&self, topology: &str, component: &str) -> PathBuf {
        state_dir(self.opts.state_dir.as_deref(), topology, component)
    }
}

/// The file of a shard's checkpoint.
fn shard_file(dir: &Path, shard: &str) -> PathBuf {
    let safe: String = shard
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    dir.join(format!("shard-{safe}.json"))
}

/// Replaces `path` with `bytes`: a fresh temporary file, fsynced, renamed, directory fsynced.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "json.{}-{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Relaxed)
    ));
    let result = (|| -> io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads a shard's checkpoint, if there is one.
fn load_saved(dir: &Path, shard: &str) -> Result<Option<Saved>, String> {
    let path = shard_file(dir, shard);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            format!(
                "checkpoint {} is not valid ({e}); fix or delete it (deleting it re-reads the shard from `start_at`)",
                path.display()
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read the checkpoint {}: {e}", path.display())),
    }
}

/// Writes the dirty checkpoints of `store`.
fn flush_store(store: &Mutex<Store>, dir: &Path, counters: &KinesisCounters) {
    let todo: Vec<Saved> = {
        let mut s = lock(store);
        let dirty: Vec<String> = s.dirty.drain().collect();
        dirty
            .iter()
            .filter_map(|id| s.shards.get(id).cloned())
            .collect()
    };
    for saved in todo {
        let path = shard_file(dir, &saved.shard);
        let bytes = serde_json::to_vec(&saved).unwrap_or_default();
        match write_atomic(&path, &bytes) {
            Ok(()) => {
                counters.checkpoints.fetch_add(1, Relaxed);
            }
            Err(e) => {
                counters.checkpoint_errors.fetch_add(1, Relaxed);
                lock(store).dirty.insert(saved.shard.clone());
                if counters.log.warn.allow() {
                    tracing::warn!(path = %path.display(), "cannot write the checkpoint: {e}");
                }
            }
        }
    }
}

/// What the coordinator and readers share.
struct Shared {
    client: Client,
    opts: Arc<KinesisOptions>,
    counters: Arc<KinesisCounters>,
    store: Arc<Mutex<Store>>,
    dir: PathBuf,
    tx: flume::Sender<Item>,
    cancel: CancellationToken,
    component: SmolStr,
    endpoint_text: String,
    /// A reader gave up (`retry.attempts` failures in a row): the spout ends.
    gave_up: std::sync::atomic::AtomicBool,
    /// The leases this worker holds, by shard id; the spout drops them once it closed.
    leases: Arc<Mutex<HashMap<String, lease::Lease>>>,
    /// With checkpoints: (this task's index, the parallelism). Each shard then has one owner
    /// task ([`owner_of`]) and is never handed back during the run.
    owner: Option<(usize, usize)>,
}

impl Shared {
    /// Sleeps `d` unless cancelled; false when cancelled.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    /// Every shard of the stream (all pages).
    async fn list_shards(&self) -> Result<Vec<Shard>, String> {
        let mut shards = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let req = self.client.list_shards();
            let req = match &token {
                Some(t) => req.next_token(t),
                None => req.stream_name(&self.opts.stream),
            };
            let out = req.send().await.map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception())
                {
                    format!(
                        "stream {:?} not found at {} (ListShards): create it, or fix option `stream`",
                        self.opts.stream, self.endpoint_text
                    )
                } else {
                    format!(
                        "ListShards of stream {:?} at {} failed: {}",
                        self.opts.stream,
                        self.endpoint_text,
                        describe(&e)
                    )
                }
            })?;
            shards.extend(out.shards().iter().cloned());
            match out.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(shards),
            }
        }
    }

    /// Whether a parent shard is done: ended in a checkpoint (this task's or on disk), or no
    /// longer listed (trimmed away).
    fn parent_done(&self, parent: &str, listed: &HashSet<&str>) -> bool {
        if !listed.contains(parent) {
            return true;
        }
        if let Some(s) = lock(&self.store).shards.get(parent) {
            return s.ended;
        }
        matches!(load_saved(&self.dir, parent), Ok(Some(s)) if s.ended)
    }
}

/// Lists shards; takes the leases of readable shards up to this worker's fair share (a shard is
/// readable once its parents are done) and starts a reader for each; hands shards above the
/// fair share back (see [`super::lease`]).
async fn coordinate(
    shared: Arc<Shared>,
    shard_names: Arc<Mutex<Vec<String>>>,
    worker: lease::Worker,
) {
    let opts = shared.opts.clone();
    // Running readers: shard id -> (task, index in `shard_names`).
    let mut readers: HashMap<String, (JoinHandle<()>, u32)> = HashMap::new();
    // Shards ended and checkpointed as such (by any worker).
    let mut done: HashSet<String> = HashSet::new();
    let mut failures = 0u32;
    let mut backoff = opts.retry.backoff;
    loop {
        readers.retain(|_, (r, _)| !r.is_finished());
        if shared.gave_up.load(Relaxed) {
            // A shard cannot be read: stop every reader, so that the spout ends.
            for (r, _) in readers.values() {
                r.abort();
            }
            return;
        }
        let shards = match shared.list_shards().await {
            Ok(shards) => shards,
            Err(e) => {
                shared.counters.error(&shared.component, e.clone());
                failures = failures.saturating_add(1);
                if opts.retry.exhausted(failures, 0) {
                    tracing::error!(component = %shared.component, attempts = failures, "giving up: {e}");
                    for (r, _) in readers.values() {
                        r.abort();
                    }
                    return;
                }
                if !shared.sleep(backoff).await {
                    return;
                }
                backoff = opts.retry.next_backoff(backoff);
                continue;
            }
        };
        failures = 0;
        backoff = opts.retry.backoff;
        let listed: HashSet<&str> = shards.iter().map(|s| s.shard_id()).collect();
        let mut waiting = false;
        let mut readable: Vec<&Shard> = Vec::new();
        for s in &shards {
            let id = s.shard_id();
            if done.contains(id) {
                continue;
            }
            if let Some((task, tasks)) = shared.owner
                && owner_of(id, tasks) != task
            {
                continue;
            }
            match load_saved(&shared.dir, id) {
                Err(e) => {
                    shared.counters.error(&shared.component, e);
                    waiting = true;
                    continue;
                }
                Ok(Some(saved)) if saved.ended => {
                    // Ended here or by another worker: a lease kept for it can go.
                    if lock(&shared.leases).remove(id).is_some() {
                        shared.counters.shards_held.fetch_sub(1, Relaxed);
                    }
                    lock(&shared.store).shards.insert(id.to_string(), saved);
                    done.insert(id.to_string());
                    continue;
                }
                Ok(_) => {}
            }
            let parents_done = [s.parent_shard_id(), s.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .all(|p| shared.parent_done(p, &listed));
            if parents_done {
                readable.push(s);
            } else {
                waiting = true;
            }
        }
        let live = if shared.owner.is_some() {
            1
        } else {
            worker.live_workers(&shared.dir).unwrap_or_else(|e| {
                shared.counters.error(
                    &shared.component,
                    format!("cannot list the workers in {}: {e}", shared.dir.display()),
                );
                1
            })
        };
        // With checkpoints every owned shard is read and none is handed back.
        let fair = if shared.owner.is_some() {
            usize::MAX
        } else {
            lease::fair_share(readable.len(), live)
        };
        let mut held = {
            let leases = lock(&shared.leases);
            readable
                .iter()
                .filter(|s| leases.contains_key(s.shard_id()))
                .count()
        };
        // A worker about to end (stop_at_end, nothing left) takes any shard nobody reads.
        let want = if opts.stop_at_end && readers.is_empty() {
            usize::MAX
        } else {
            fair
        };
        for s in &readable {
            let id = s.shard_id();
            if held >= want {
                break;
            }
            if lock(&shared.leases).contains_key(id) {
                continue;
            }
            let lease = match lease::try_take(&shard_file(&shared.dir, id).with_extension("lock")) {
                Ok(Some(l)) => l,
                Ok(None) => continue, // another worker reads it
                Err(e) => {
                    shared.counters.error(
                        &shared.component,
                        format!(
                            "cannot take the lease of shard {id} in {}: {e}",
                            shared.dir.display()
                        ),
                    );
                    continue;
                }
            };
            // The checkpoint as the last holder left it.
            let saved = match load_saved(&shared.dir, id) {
                Ok(s) => s,
                Err(e) => {
                    shared.counters.error(&shared.component, e);
                    waiting = true;
                    continue;
                }
            };
            if let Some(saved) = saved.as_ref().filter(|s| s.ended) {
                lock(&shared.store)
                    .shards
                    .insert(id.to_string(), saved.clone());
                done.insert(id.to_string());
                continue;
            }
            let index = {
                let mut names = lock(&shard_names);
                names.push(id.to_string());
                (names.len() - 1) as u32
            };
            let after: ResumeAt = saved
                .as_ref()
                .and_then(|s| s.sequence.clone().map(|q| (q, s.sub_sequence)));
            lock(&shared.store).shards.insert(
                id.to_string(),
                saved.unwrap_or(Saved {
                    shard: id.to_string(),
                    ..Saved::default()
                }),
            );
            lock(&shared.leases).insert(id.to_string(), lease);
            shared.counters.shards_held.fetch_add(1, Relaxed);
            held += 1;
            tracing::info!(component = %shared.component, shard = id, resume_after = ?after, workers = live, "reading shard");
            readers.insert(
                id.to_string(),
                (
                    crate::connector::warn::spawn(read_shard(
                        shared.clone(),
                        index,
                        id.to_string(),
                        after,
                    )),
                    index,
                ),
            );
        }
        // Above the fair share (another worker joined): hand shards back. Their readers stop
        // now; the spout hands each lease back once the shard's emitted records are acked
        // and checkpointed (or after `message_timeout`).
        if held > fair {
            let extra: Vec<String> = readers.keys().take(held - fair).cloned().collect();
            for id in extra {
                let Some((reader, index)) = readers.remove(&id) else {
                    continue;
                };
                reader.abort();
                let Some(lease) = lock(&shared.leases).remove(&id) else {
                    continue;
                };
                shared.counters.shards_held.fetch_sub(1, Relaxed);
                shared.counters.shards_handed_back.fetch_add(1, Relaxed);
                tracing::info!(component = %shared.component, shard = %id, workers = live, fair_share = fair, "handing shard back");
                if shared
                    .tx
                    .send_async(Item::Release {
                        shard: index,
                        lease,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        if opts.stop_at_end && !waiting && readers.values().all(|(r, _)| r.is_finished()) {
            return;
        }
        // Wait for the next listing; with stop_at_end, check more often for finished readers.
        let wait = if opts.stop_at_end {
            opts.shard_refresh.min(Duration::from_millis(200))
        } else {
            opts.shard_refresh
        };
        if !shared.sleep(wait).await {
            return;
        }
    }
}

/// The iterator of a shard: after `after` (at it when the position is inside an aggregate:
/// the reader skips the user records already covered), else at `start_at`.
async fn get_iterator(
    shared: &Shared,
    shard: &str,
    after: Option<(&str, Option<u64>)>,
) -> Result<String, String> {
    let o = &shared.opts;
    let mut req = shared
        .client
        .get_shard_iterator()
        .stream_name(&o.stream)
        .shard_id(shard);
    req = match after {
        Some((seq, None)) => req
            .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
            .starting_sequence_number(seq),
        Some((seq, Some(_))) => req
            .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
            .starting_sequence_number(seq),
        None => match o.start_at {
            KinesisStart::TrimHorizon => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
            KinesisStart::Latest => req.shard_iterator_type(ShardIteratorType::Latest),
            KinesisStart::AtSequenceNumber => req
                .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                .starting_sequence_number(o.sequence_number.clone().unwrap_or_default()),
            KinesisStart::AfterSequenceNumber => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(o.sequence_number.clone().unwrap_or_default()),
            KinesisStart::AtTimestamp => {
                let t = humantime::parse_rfc3339_weak(o.timestamp.as_deref().unwrap_or(""))
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                req.shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(DateTime::from(t))
            }
        },
    };
    match req.send().await {
        Ok(out) => out
            .shard_iterator()
            .map(str::to_string)
            .ok_or_else(|| format!("GetShardIterator of shard {shard} returned no iterator")),
        Err(e) => {
            if e.as_service_error()
                .is_some_and(|s| s.is_provisioned_throughput_exceeded_exception())
            {
                shared.counters.throttled.fetch_add(1, Relaxed);
            }
            Err(format!(
                "GetShardIterator of shard {shard} of stream {:?} at {} failed: {}",
                o.stream,
                shared.endpoint_text,
                describe(&e)
            ))
        }
    }
}

/// Reads one shard until SHARD_END (or its current end with `stop_at_end`).
async fn read_shard(shared: Arc<Shared>, index: u32, shard: String, mut after: ResumeAt) {
    let o = shared.opts.clone();
    let counters = &shared.counters;
    let mut failures = 0u32;
    let mut backoff = o.retry.backoff;
    let mut iterator: Option<String> = None;
    let mut next_call = tokio::time::Instant::now();
    loop {
        // A failure (or throttling) waits `backoff`, doubling; gives up after `attempts`.
        let fail = |msg: String, failures: &mut u32| -> bool {
            counters.error(&shared.component, msg.clone());
            *failures = failures.saturating_add(1);
            if o.retry.exhausted(*failures, 0) {
                tracing::error!(component = %shared.component, shard = %shard, "giving up: {msg}");
                shared.gave_up.store(true, Relaxed);
                return false;
            }
            true
        };
        let it = match &iterator {
            Some(it) => it.clone(),
            None => match get_iterator(
                &shared,
                &shard,
                after.as_ref().map(|(q, sub)| (q.as_str(), *sub)),
            )
            .await
            {
                Ok(it) => it,
                Err(e) => {
                    if !fail(e, &mut failures) || !shared.sleep(backoff).await {
                        return;
                    }
                    backoff = o.retry.next_backoff(backoff);
                    continue;
                }
            },
        };
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = tokio::time::sleep_until(next_call) => {}
        }
        next_call = tokio::time::Instant::now() + o.poll_interval;
        let result = shared
            .client
            .get_records()
            .shard_iterator(&it)
            .limit(o.max_records)
            .send()
            .await;
        let mut out = match result {
            Ok(out) => out,
            Err(e) => {
                let service = e.as_service_error();
                if service.is_some_and(|s| s.is_expired_iterator_exception()) {
                    counters.expired_iterators.fetch_add(1, Relaxed);
                    iterator = None;
                    continue;
                }
                if service.is_some_and(|s| s.is_provisioned_throughput_exceeded_exception()) {
                    counters.throttled.fetch_add(1, Relaxed);
                    if counters.log.warn.allow() {
                        tracing::warn!(component = %shared.component, shard = %shard, retry_in = %humantime::format_duration(backoff), "throttled (ProvisionedThroughputExceeded); backing off");
                    }
                    if !shared.sleep(backoff).await {
                        return;
                    }
                    backoff = o.retry.next_backoff(backoff);
                    continue;
                }
                let msg = format!(
                    "GetRecords of shard {shard} of stream {:?} at {} failed: {}",
                    o.stream,
                    shared.endpoint_text,
                    describe(&e)
                );
                // The iterator may be bad after an error: get a new one after the last record.
                iterator = None;
                if !fail(msg, &mut failures) || !shared.sleep(backoff).await {
                    return;
                }
                backoff = o.retry.next_backoff(backoff);
                continue;
            }
        };
        failures = 0;
        backoff = o.retry.backoff;
        counters.get_records_calls.fetch_add(1, Relaxed);
        let records = std::mem::take(&mut out.records);
        let read = records.len();
        for r in records {
            let sequence = SmolStr::new(r.sequence_number());
            // Resuming inside an aggregate: its user records up to `sub` are covered.
            let covered = match &after {
                Some((q, Some(sub))) if *q == r.sequence_number => Some(*sub),
                _ => None,
            };
            let key = SmolStr::new(r.partition_key());
            let data = bytes::Bytes::from(r.data.into_inner());
            let d = Decoder {
                index,
                shard: &shard,
                opts: &o,
                counters,
                component: &shared.component,
            };
            // A plain record (or a corrupt aggregate) is one item, with no Vec to allocate; an
            // aggregate's user records are many.
            let (one, many): (Option<Item>, Vec<Item>) =
                match o.deaggregate.then(|| kpl::deaggregate(&data)) {
                    None | Some(Ok(None)) => (
                        Some(d.decode(sequence.clone(), None, 0, key, &data)),
                        Vec::new(),
                    ),
                    Some(Err(reason)) => (
                        Some(d.error(
                            Position {
                                sequence: sequence.clone(),
                                sub: None,
                            },
                            format!("record {sequence} of shard {shard} {reason}"),
                            &data,
                        )),
                        Vec::new(),
                    ),
                    Some(Ok(Some(users))) => {
                        counters.aggregates.fetch_add(1, Relaxed);
                        let last = users.len() as u64 - 1;
                        let many = users
                            .into_iter()
                            .zip(0u64..)
                            .filter(|(_, i)| covered.is_none_or(|c| *i > c))
                            .map(|(u, i)| {
                                let sub = (i < last).then_some(i);
                                d.decode(
                                    sequence.clone(),
                                    sub,
                                    i,
                                    SmolStr::new(&u.partition_key),
                                    &u.data,
                                )
                            })
                            .collect();
                        (None, many)
                    }
                };
            for item in one.into_iter().chain(many) {
                tokio::select! {
                    _ = shared.cancel.cancelled() => return,
                    res = shared.tx.send_async(item) => if res.is_err() { return },
                }
            }
            after = Some((sequence.to_string(), None));
        }
        match out.next_shard_iterator() {
            None => {
                let _ = shared.tx.send_async(Item::End { shard: index }).await;
                return;
            }
            Some(next) => iterator = Some(next.to_string()),
        }
        if o.stop_at_end && read == 0 && out.millis_behind_latest().unwrap_or(0) == 0 {
            return;
        }
    }
}

/// Turns records into items: what a reader knows of its shard and the spout's options.
struct Decoder<'a> {
    index: u32,
    shard: &'a str,
    opts: &'a KinesisOptions,
    counters: &'a KinesisCounters,
    component: &'a str,
}

impl Decoder<'_> {
    /// The item of a record (or a user record of an aggregate: `sub` is its position when it
    /// is not the aggregate's last, `sub_sequence` its index).
    fn decode(
        &self,
        sequence: SmolStr,
        sub: Option<u64>,
        sub_sequence: u64,
        key: SmolStr,
        data: &[u8],
    ) -> Item {
        let at = Position {
            sequence: sequence.clone(),
            sub,
        };
        let mut values = values![
            Value::Str(SmolStr::new(self.shard)),
            Value::Str(sequence.clone()),
            Value::Int(sub_sequence as i64),
            Value::Str(key)
        ];
        match decode_payload(self.opts.payload, data, &self.opts.fields) {
            Ok((value, extracted)) => {
                values.push(value);
                values.extend(extracted);
            }
            Err(e) => {
                let whose = if sub.is_some() || sub_sequence > 0 {
                    format!("user record {sub_sequence} of ")
                } else {
                    String::new()
                };
                return self.error(
                    at,
                    format!("{whose}record {sequence} of shard {} {e}", self.shard),
                    data,
                );
            }
        }
        self.counters.records.fetch_add(1, Relaxed);
        Item::Record {
            shard: self.index,
            at,
            values,
        }
    }

    /// The item of a record that cannot be decoded: to the `error` stream, counted and logged.
    fn error(&self, at: Position, reason: String, data: &[u8]) -> Item {
        self.counters.malformed.fetch_add(1, Relaxed);
        if self.counters.log.warn.allow() {
            tracing::warn!(component = self.component, shard = self.shard, %reason, "record sent to the `error` stream");
        }
        Item::Error {
            shard: self.index,
            at,
            values: values![reason, raw_prefix(data)],
        }
    }
}

impl Running {
    fn track(&mut self, shard: u32) -> Option<&mut Track> {
        let i = shard as usize;
        if self.tracks.len() <= i {
            self.tracks.resize_with(i + 1, || None);
        }
        if self.tracks[i].is_none() {
            let id = lock(&self.shard_names).get(i).cloned()?;
            self.tracks[i] = Some(Track {
                id,
                next: 0,
                prefix: AckedPrefix::new(0),
                sequences: VecDeque::new(),
                ended: false,
                released: false,
            });
        }
        self.tracks[i].as_mut()
    }

    /// Marks `(shard, n)` acked and moves the shard's checkpoint when the prefix grows.
    fn acked(&mut self, shard: u32, n: u64, counters: &KinesisCounters) {
        let Some(t) = self.tracks.get_mut(shard as usize).and_then(Option::as_mut) else {
            return;
        };
        if t.released {
            return;
        }
        let before = t.prefix.committed();
        t.prefix.ack(n, n + 1);
        let after = t.prefix.committed();
        if after == before {
            return;
        }
        let mut last = None;
        for _ in before..after {
            last = t.sequences.pop_front();
        }
        let mut store = lock(&self.store);
        let id = t.id.clone();
        let saved = store.shards.entry(id.clone()).or_insert_with(|| Saved {
            shard: id.clone(),
            ..Saved::default()
        });
        if let Some(p) = last {
            saved.sequence = Some(p.sequence.to_string());
            saved.sub_sequence = p.sub;
        }
        if t.ended && after == t.next && !saved.ended {
            saved.ended = true;
            counters.shards_ended.fetch_add(1, Relaxed);
        }
        store.dirty.insert(id);
    }

    fn emit(&mut self, out: &mut SpoutCollector<'_, (u32, u64)>, counters: &KinesisCounters) {
        let mut n = 0;
        while n < DRAIN_PER_CALL && out.pending() < self.max_pending {
            let Some(id) = self.replay.pop_front() else {
                break;
            };
            if let Some(v) = self.pending.get(&id) {
                out.emit(v.clone(), id);
                n += 1;
            }
        }
        while n < DRAIN_PER_CALL && out.pending() < self.max_pending {
            match self.rx.try_recv() {
                Ok(Item::Record { shard, at, values }) => {
                    let Some(t) = self.track(shard) else { continue };
                    let id = (shard, t.next);
                    t.next += 1;
                    t.sequences.push_back(at);
                    self.pending.insert(id, values.clone());
                    out.emit(values, id);
                }
                Ok(Item::Error { shard, at, values }) => {
                    out.emit_to(ERROR_STREAM, values, None);
                    let Some(t) = self.track(shard) else { continue };
                    let ord = t.next;
                    t.next += 1;
                    t.sequences.push_back(at);
                    self.acked(shard, ord, counters);
                }
                Ok(Item::End { shard }) => {
                    let Some(t) = self.track(shard) else { continue };
                    t.ended = true;
                    if t.prefix.committed() == t.next {
                        let id = t.id.clone();
                        let mut store = lock(&self.store);
                        if let Some(s) = store.shards.get_mut(&id)
                            && !s.ended
                        {
                            s.ended = true;
                            counters.shards_ended.fetch_add(1, Relaxed);
                            store.dirty.insert(id);
                        }
                    }
                }
                Ok(Item::Release { shard, lease }) => {
                    self.releasing.push(Releasing {
                        shard,
                        lease,
                        deadline: tokio::time::Instant::now() + self.drain_timeout,
                    });
                }
                Err(flume::TryRecvError::Empty) => break,
                Err(flume::TryRecvError::Disconnected) => {
                    self.ended = true;
                    break;
                }
            }
            n += 1;
        }
    }
}

impl Running {
    /// Hands back the leases of shards whose emitted records are all acked (or whose drain
    /// time is up): the shard's last checkpoint is written, then the lock is released, so the
    /// next holder resumes after the last acked record. Records still un-acked at the
    /// deadline are forgotten here and read again by the next holder.
    async fn hand_back(&mut self, counters: &Arc<KinesisCounters>) {
        let now = tokio::time::Instant::now();
        let mut i = 0;
        while i < self.releasing.len() {
            let shard = self.releasing[i].shard;
            let drained = self
                .tracks
                .get(shard as usize)
                .and_then(Option::as_ref)
                .is_none_or(|t| t.prefix.committed() == t.next);
            if !drained && now < self.releasing[i].deadline {
                i += 1;
                continue;
            }
            let Releasing { lease, .. } = self.releasing.swap_remove(i);
            self.pending.retain(|id, _| id.0 != shard);
            self.replay.retain(|id| id.0 != shard);
            let Some(id) = lock(&self.shard_names).get(shard as usize).cloned() else {
                continue;
            };
            if let Some(t) = self.tracks.get_mut(shard as usize).and_then(Option::as_mut) {
                t.released = true;
            }
            let saved = {
                let mut store = lock(&self.store);
                store.dirty.remove(&id);
                store.shards.remove(&id)
            };
            if let Some(saved) = saved {
                let path = shard_file(&self.dir, &id);
                let bytes = serde_json::to_vec(&saved).unwrap_or_default();
                let counters = counters.clone();
                let _ = tokio::task::spawn_blocking(move || match write_atomic(&path, &bytes) {
                    Ok(()) => {
                        counters.checkpoints.fetch_add(1, Relaxed);
                    }
                    Err(e) => {
                        counters.checkpoint_errors.fetch_add(1, Relaxed);
                        tracing::warn!(path = %path.display(), "cannot write the checkpoint of a shard handed back: {e}");
                    }
                })
                .await;
            }
            tracing::info!(shard = %id, drained, "shard handed back");
            drop(lease);
        }
    }
}

impl Spout for KinesisSpout {
    type MessageId = (u32, u64);

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        let mut fields = vec!["shard", "sequence", "sub_sequence", "partition_key", "data"];
        fields.extend(self.opts.fields.iter().map(String::as_str));
        out.declare(fields);
        out.declare_stream(ERROR_STREAM, SOURCE_ERROR_FIELDS);
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        let dir = self.state_dir_for(ctx.topology(), ctx.component_id());
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
        let worker = lease::Worker::register(&dir).map_err(|e| {
            format!(
                "cannot register a worker in the state directory {}: {e}",
                dir.display()
            )
        })?;
        let client = self.opts.connection().client().await;
        let (tx, rx) = flume::bounded(CHANNEL_CAPACITY);
        let store = Arc::new(Mutex::new(Store::default()));
        let leases = Arc::new(Mutex::new(HashMap::new()));
        let cancel = CancellationToken::new();
        let component = SmolStr::from(ctx.component_id());
        let shared = Arc::new(Shared {
            client,
            opts: self.opts.clone(),
            counters: self.counters.clone(),
            store: store.clone(),
            dir: dir.clone(),
            tx,
            cancel: cancel.clone(),
            component: component.clone(),
            endpoint_text: self
                .opts
                .endpoint
                .clone()
                .unwrap_or_else(|| "the AWS endpoint".into()),
            gave_up: std::sync::atomic::AtomicBool::new(false),
            leases: leases.clone(),
            owner: ctx
                .checkpointed()
                .then(|| (ctx.task_index(), ctx.parallelism())),
        });
        let shard_names = Arc::new(Mutex::new(Vec::new()));
        tracing::info!(component = %component, stream = %self.opts.stream, state_dir = %dir.display(), "kinesis spout open");
        let (task, deferred, ck) = if ctx.checkpointed() {
            let owner = (ctx.task_index(), ctx.parallelism());
            let files = shard_files(&dir)
                .map_err(|e| format!("cannot list the shard files in {}: {e}", dir.display()))?;
            let ck = Checkpointed {
                exactly_once: ctx.config().guarantee == Guarantee::ExactlyOnce,
                owner,
                baseline: owned(files.into_iter().filter_map(|(_, s)| s), owner),
                pending: Default::default(),
                writing: None,
            };
            (None, Some((shared, worker)), Some(ck))
        } else {
            let task =
                crate::connector::warn::spawn(coordinate(shared, shard_names.clone(), worker));
            (Some(task), None, None)
        };
        self.run = Some(Running {
            rx,
            shard_names,
            tracks: Vec::new(),
            pending: HashMap::new(),
            replay: VecDeque::new(),
            store,
            dir,
            cancel,
            task,
            deferred,
            ck,
            max_pending: ctx.config().max_spout_pending.unwrap_or(usize::MAX),
            last_checkpoint: tokio::time::Instant::now(),
            ended: false,
            releasing: Vec::new(),
            drain_timeout: ctx.config().message_timeout,
            leases,
            counters: self.counters.clone(),
        });
        Ok(())
    }

    async fn next_tuple(
        &mut self,
        out: &mut SpoutCollector<'_, (u32, u64)>,
    ) -> Result<(), BoxError> {
        let Some(r) = &mut self.run else {
            return Ok(());
        };
        if let Some((shared, worker)) = r.deferred.take() {
            r.task = Some(crate::connector::warn::spawn(coordinate(
                shared,
                r.shard_names.clone(),
                worker,
            )));
        }
        r.emit(out, &self.counters);
        if !r.releasing.is_empty() {
            r.hand_back(&self.counters).await;
        }
        let due = r.last_checkpoint.elapsed() >= self.opts.checkpoint_interval;
        let idle_end = r.ended && r.pending.is_empty();
        // With checkpoints the files are written only when a checkpoint completes.
        if r.ck.is_none() && (due || idle_end) {
            r.last_checkpoint = tokio::time::Instant::now();
            if !lock(&r.store).dirty.is_empty() {
                let (store, dir, counters) =
                    (r.store.clone(), r.dir.clone(), self.counters.clone());
                let _ =
                    tokio::task::spawn_blocking(move || flush_store(&store, &dir, &counters)).await;
            }
        }
        Ok(())
    }

    fn ack(&mut self, id: (u32, u64)) {
        let Some(r) = &mut self.run else { return };
        if r.pending.remove(&id).is_some() {
            r.acked(id.0, id.1, &self.counters);
        }
    }

    fn fail(&mut self, id: (u32, u64)) {
        let Some(r) = &mut self.run else { return };
        if r.pending.contains_key(&id) {
            r.replay.push_back(id);
        }
    }

    fn is_exhausted(&self) -> bool {
        self.run.as_ref().is_some_and(|r| {
            r.ended
                && r.pending.is_empty()
                && r.releasing.is_empty()
                && lock(&r.store).dirty.is_empty()
                && r.ck
                    .as_ref()
                    .is_none_or(|ck| ck.writing.as_ref().is_none_or(JoinHandle::is_finished))
        })
    }

    fn rewinds(&self) -> bool {
        true
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        let Some(r) = &mut self.run else {
            return Ok(());
        };
        let Some(ck) = &mut r.ck else {
            return Ok(());
        };
        // The shards this task owns where they started, overlaid with those it took (their
        // acked prefix, as the store has it), ...
        let mut shards: HashMap<String, Saved> = ck.baseline.clone();
        shards.extend(lock(&r.store).shards.clone());
        if ck.exactly_once {
            // ... under exactly-once up to the last record emitted, acked or not.
            for t in r.tracks.iter().flatten().filter(|t| !t.released) {
                let s = shards.entry(t.id.clone()).or_insert_with(|| Saved {
                    shard: t.id.clone(),
                    ..Saved::default()
                });
                if let Some(last) = t.sequences.back() {
                    s.sequence = Some(last.sequence.to_string());
                    s.sub_sequence = last.sub;
                }
                s.ended |= t.ended;
            }
        }
        let mut saved: Vec<Saved> = shards.into_values().collect();
        saved.sort_by(|a, b| a.shard.cmp(&b.shard));
        snap.put("positions", &saved);
        ck.pending.taken(snap.checkpoint_id(), saved);
        Ok(())
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        let Some(r) = &mut self.run else {
            return Ok(());
        };
        let Some(ck) = &mut r.ck else {
            return Ok(());
        };
        // The shards' files are made the checkpoint's, by every task alike (the same content),
        // before any coordinator reads them: every shard of every old task, and no file of a
        // shard the checkpoint does not hold (read from `start_at`, as new).
        let mut saved: HashMap<String, Saved> = HashMap::new();
        let mut lists = from.get_all::<Vec<Saved>>("positions")?;
        if lists.is_empty() {
            lists = from
                .get_all::<Vec<SavedBefore>>("shards")?
                .into_iter()
                .map(|l| l.into_iter().map(Saved::from).collect())
                .collect();
        }
        for list in lists {
            for s in list {
                let e = saved.entry(s.shard.clone()).or_insert_with(|| s.clone());
                if s.ended || (!e.ended && e.sequence.is_none()) {
                    *e = s;
                }
            }
        }
        let files = shard_files(&r.dir).map_err(|e| {
            format!(
                "kinesis spout: cannot list the shard files in {}: {e}",
                r.dir.display()
            )
        })?;
        for (path, shard) in files {
            if shard.is_none_or(|s| !saved.contains_key(&s.shard)) {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(format!(
                            "kinesis spout: cannot remove {} (not in checkpoint {}): {e}",
                            path.display(),
                            from.checkpoint_id()
                        )
                        .into());
                    }
                    _ => {}
                }
            }
        }
        for s in saved.values() {
            let path = shard_file(&r.dir, &s.shard);
            let bytes = serde_json::to_vec(s).unwrap_or_default();
            write_atomic(&path, &bytes).map_err(|e| {
                format!(
                    "kinesis spout: cannot write {} from checkpoint {}: {e}",
                    path.display(),
                    from.checkpoint_id()
                )
            })?;
        }
        tracing::info!(
            checkpoint = from.checkpoint_id(),
            shards = saved.len(),
            "kinesis spout restored"
        );
        ck.baseline = owned(saved.into_values(), ck.owner);
        Ok(())
    }

    fn checkpoint_complete(&mut self, id: CheckpointId) {
        let Some(r) = &mut self.run else {
            return;
        };
        let Some(ck) = &mut r.ck else {
            return;
        };
        let Some(saved) = ck.pending.completed(id) else {
            return;
        };
        {
            // What the checkpoint holds as the store has it is written: no longer dirty.
            let mut store = lock(&r.store);
            for s in &saved {
                if store.shards.get(&s.shard) == Some(s) {
                    store.dirty.remove(&s.shard);
                }
            }
        }
        let dir = r.dir.clone();
        let counters = self.counters.clone();
        let previous = ck.writing.take();
        // In order: a slow write must not land after a newer one.
        ck.writing = Some(crate::connector::warn::spawn(async move {
            if let Some(p) = previous {
                let _ = p.await;
            }
            let _ = tokio::task::spawn_blocking(move || {
                for s in saved {
                    let path = shard_file(&dir, &s.shard);
                    let bytes = serde_json::to_vec(&s).unwrap_or_default();
                    match write_atomic(&path, &bytes) {
                        Ok(()) => {
                            counters.checkpoints.fetch_add(1, Relaxed);
                        }
                        Err(e) => {
                            counters.checkpoint_errors.fetch_add(1, Relaxed);
                            if counters.log.warn.allow() {
                                tracing::warn!(path = %path.display(), "cannot write the position of checkpoint {id}: {e}");
                            }
                        }
                    }
                }
            })
            .await;
        }));
    }

    async fn close(&mut self) {
        let Some(mut r) = self.run.take() else { return };
        r.cancel.cancel();
        if let Some(ck) = &mut r.ck {
            // The files hold the last completed checkpoint's positions: nothing more.
            if let Some(w) = ck.writing.take() {
                let _ = w.await;
            }
            return;
        }
        let (store, dir, counters) = (r.store.clone(), r.dir.clone(), self.counters.clone());
        let _ = tokio::task::spawn_blocking(move || flush_store(&store, &dir, &counters)).await;
    }
}

/// The `kinesis` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::spout(
            "kinesis",
            "records of an Amazon Kinesis stream (every shard, resharding followed; KPL aggregates taken apart into user records), each shard's acked sequence number checkpointed and resumed from; throttling backed off; bad records to `error`",
            KinesisSpout::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components kinesis`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[spouts.readings]
kind = "kinesis"
stream = "sensors"
endpoint = "http://127.0.0.1:4567"   # a Kinesis-compatible server; unset = AWS (region, credential chain)
region = "us-east-1"
start_at = "trim_horizon" # without a checkpoint; or "latest", "at_timestamp" (+ timestamp), ...
payload = "json"          # or "utf8", "strict", "bytes"
fields = ["device_id", "temperature"]   # output: shard, sequence, sub_sequence, partition_key, data, device_id, temperature
checkpoint_interval = "1s"   # acked sequence number per shard under state_dir (default .topo/state/<topology>/<component>)
retry = { backoff = "100ms", max_backoff = "10s", attempts = 0 }   # 0 = retry forever
# stop_at_end = true      # read to the current end, then end (`topo run --until-idle`)
# deaggregate = true      # KPL aggregated records: one tuple per user record (sub_sequence: its index)

# undecodable records, with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "readings", stream = "error" }]
"#;

impl FromOptions for KinesisSpout {
    type Options = KinesisOptions;
    fn from_options(options: KinesisOptions) -> Result<Self, String> {
        KinesisSpout::new(options)
    }
}

/// `stream` has a serde default (so a missing one is reported by the component's own check, with the
/// expected form), but is required.
fn kinesis_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["stream"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> KinesisOptions {
        KinesisOptions {
            stream: "s".into(),
            ..Default::default()
        }
    }

    // Without credentials the SDK reports a dispatch failure; the text says what is missing
    // instead of calling the endpoint unreachable.
    #[test]
    fn missing_credentials_are_named_as_such() {
        use aws_credential_types::provider::error::CredentialsError;
        use aws_sdk_kinesis::error::SdkError;
        use aws_sdk_kinesis::operation::get_records::GetRecordsError;
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        let cause = CredentialsError::not_loaded("no provider found a key");
        let e = SdkError::<GetRecordsError, HttpResponse>::dispatch_failure(ConnectorError::other(
            Box::new(cause),
            None,
        ));
        let text = describe(&e);
        assert!(
            text.starts_with("no AWS credentials could be loaded: set AWS_ACCESS_KEY_ID"),
            "{text}"
        );
        assert!(text.contains("no provider found a key"), "{text}");
        let e = SdkError::<GetRecordsError, HttpResponse>::dispatch_failure(ConnectorError::io(
            Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        ));
        assert!(
            describe(&e).starts_with("endpoint unreachable"),
            "{}",
            describe(&e)
        );
    }

    #[test]
    fn bad_options_name_the_option() {
        let cases: Vec<(KinesisOptions, &str)> = vec![
            (
                KinesisOptions {
                    stream: String::new(),
                    ..base()
                },
                "option `stream`",
            ),
            (
                KinesisOptions {
                    endpoint: Some("127.0.0.1:4567".into()),
                    ..base()
                },
                "option `endpoint`",
            ),
            (
                KinesisOptions {
                    start_at: KinesisStart::AtSequenceNumber,
                    ..base()
                },
                "needs `sequence_number`",
            ),
            (
                KinesisOptions {
                    start_at: KinesisStart::AtTimestamp,
                    timestamp: Some("yesterday".into()),
                    ..base()
                },
                "option `timestamp`",
            ),
            (
                KinesisOptions {
                    poll_interval: Duration::from_millis(50),
                    ..base()
                },
                "option `poll_interval`",
            ),
            (
                KinesisOptions {
                    max_records: 0,
                    ..base()
                },
                "option `max_records`",
            ),
            (
                KinesisOptions {
                    fields: vec!["a".into()],
                    ..base()
                },
                "applies only with payload",
            ),
        ];
        for (o, want) in cases {
            let e = KinesisSpout::new(o).err().expect("refused");
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
        assert!(KinesisSpout::new(base()).is_ok());
    }

    #[test]
    fn shard_files_are_safe_names() {
        let p = shard_file(Path::new("/d"), "shardId-000000000001/../x");
        assert_eq!(p, Path::new("/d/shard-shardId-000000000001____x.json"));
    }
}
