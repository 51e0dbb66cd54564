//! `kafka`: the records of Apache Kafka topics (or of a Kafka-compatible broker such as tansu),
//! read through librdkafka (the `rdkafka` crate) as a member of a consumer group, or with the
//! partitions dealt out among the spout's tasks (`assignment = "static"`); each partition's
//! contiguous acked prefix is committed to the group, so a restart, or another member taking
//! the partition over, resumes after it (at-least-once). In a run that takes checkpoints the
//! read positions go into the checkpoints instead and the group is committed to only when a
//! checkpoint completes (exactly-once with `guarantee = "exactly_once"`; see "Checkpoints").
//!
//! ```text
//!  brokers ◄── consumer group `group` (subscribe: the partitions of `topic` are spread over
//!    │          every spout task of every process running the topology; a member joining or
//!    │          leaving rebalances them), or `assignment = "static"` (task i of n reads
//!    │          partitions i, i+n, ...; no membership)
//!    │  fetch (librdkafka's own threads) into one queue per partition; it stops fetching a
//!    ▼  partition whose queue is full (`queued.min.messages`, `queued.max.messages.kbytes`)
//!  next_tuple: poll ≤ 512 records from the queues of partitions with fewer than
//!    │  `max_uncommitted` offsets emitted but not committed
//!    │  check: the offset expected next? (past it right after a (re)start: read again from earlier)
//!    ├──► decode ──emit (topic, partition, offset, key, value, timestamp, headers[, fields..])
//!    │      │        id (slot, offset) ──► bolts
//!    │      └─undecodable──► emit_to "error" (reason, raw), committed past
//!    │  pending: (slot, offset) -> record; ack -> per-partition acked prefix
//!    │  fail -> emitted again after `retry.backoff` × 2^(failures-1) (≤ `retry.max_backoff`);
//!    │          after `retry.max_retries` failures -> `dead_letter_topic` (or the `error` stream)
//!    └─ commit the checked acked prefix: every `commit_interval` (async), on revoke and on
//!       close (sync)
//! ```
//!
//! # Options
//! ```toml
//! [spouts.lines]
//! kind = "kafka"
//! brokers = "127.0.0.1:9092"        # bootstrap servers, comma separated (required)
//! topic = "lines"                   # or topics = ["a", "b"]
//! # group = "my-app"                # default: "topo.<topology>.<component>"
//! # instance_id = "host-1"          # static membership: task i joins as "host-1-<i>"
//! assignment = "group"              # "group" | "static" (no membership: see below)
//! # partitions = [0, 1]             # static: the partitions this process reads (default all)
//! first_poll = "committed_else_earliest"   # "earliest" | "latest" | "committed_else_earliest"
//!                                          # | "committed_else_latest"
//! payload = "utf8"                  # the value: "utf8" | "strict" | "raw" | "json"
//! # fields = ["user", "action"]     # json: keys of the object emitted as fields
//! commit_interval = "1s"           # also at once when a partition at its cap can free half
//! max_uncommitted = 10000           # per partition: not read while this many are uncommitted
//! retry = { backoff = "100ms", max_backoff = "10s", max_retries = 0 }   # 0 = forever
//! # dead_letter_topic = "lines-dlt" # records failed max_retries times are produced here
//! # dead_letter_properties = { "compression.type" = "lz4" }   # its producer's librdkafka settings
//! stop_at_end = false               # true: the spout ends once every assigned partition is
//!                                   # read to its end and acked (tests, `--until-idle`)
//! [spouts.lines.properties]         # any librdkafka setting, passed through
//! "session.timeout.ms" = 10000
//! ```
//! `earliest` and `latest` ignore the committed offsets the first time this spout task is
//! assigned a partition (a re-assignment after a rebalance resumes from the committed offset);
//! the `committed_else_*` strategies resume from the committed offset and use the earliest or
//! latest offset only where the group has none.
//!
//! # Output
//! The `default` stream carries (`topic`, `partition`, `offset`, `key`, `value`, `timestamp`,
//! `headers`), then with `payload = "json"` one field per name in `fields`. `key` is text when
//! it is UTF-8, else bytes, and null when the record has none; `value` is, by `payload`: `utf8`
//! text (invalid UTF-8 replaced by U+FFFD), `strict` text (not UTF-8: `error`), `raw` bytes, or
//! `json` the parsed document (with `fields`, an object is required). `timestamp` is the
//! record's time in milliseconds since the Unix epoch (null if none); `headers` a map of header
//! name to text (null for a header without a value).
//!
//! The `error` stream carries (`reason`, `raw`): records that cannot be decoded (`raw`: the first
//! KiB of the value, invalid UTF-8 replaced), and, without `dead_letter_topic`, records that
//! failed `retry.max_retries` times. Such a record counts as handled: it is committed past,
//! counted ([`KafkaCounters::malformed`], [`KafkaCounters::gave_up`]) and logged at most once a
//! second; nothing vanishes silently.
//!
//! # Assignment
//! With `assignment = "group"` (the default) the spout's tasks subscribe as members of the
//! consumer group and the group's coordinator spreads the partitions over every task of every
//! process; a member joining, leaving or dying (after `session.timeout.ms`, 45 s by default)
//! moves them. With `assignment = "static"` there is no membership: task i of n reads the
//! i-th, (i+n)-th, ... of the topics' partitions (or of those in `partitions`), starting from
//! the group's committed offsets, and commits to the group as a member would, so monitoring
//! and a later switch back to `group` see the progress (Flink's and Spark's Kafka sources work
//! this way). A restarted process reads at once, whatever the broker thinks of the dead
//! process's members. Several processes of one topology must then each list their own
//! `partitions`; partitions added to a topic later are not picked up until a restart.
//!
//! # Delivery guarantee
//! Without checkpoints: at-least-once, and nothing is skipped. Kafka's auto-commit is off.
//! Every emitted record is kept in memory until its tree is acked; per partition the spout
//! commits the offset after the contiguous acked prefix, every `commit_interval`, synchronously when the partition is
//! revoked (rebalance) and when the spout closes. After a crash, or when another member takes
//! the partition over, reading resumes at the last committed offset: records emitted but not
//! committed are read again (duplicates are possible, losses are not), at most
//! `max_uncommitted` per partition, plus what the last commit before a crash covered if it had
//! not reached the broker. A failed tree is emitted again from memory after its back-off, so
//! other records of the partition keep flowing meanwhile (no seek, no stall); its offset holds
//! the commit point back until it is acked. A fail or ack for a partition no longer assigned to
//! the task is ignored (the new owner reads it again from the committed offset).
//!
//! What keeps it so:
//! - **Flow control without pause/resume.** Each partition has a queue of its own; one at its
//!   `max_uncommitted` cap is simply not polled (librdkafka stops fetching it once its queue is
//!   full) and is polled again once commits catch up. Pausing a partition instead drops what
//!   was fetched and fetches again from the next offset to read, which may lie inside a record
//!   batch (see tansu below).
//! - **The first record after reading (re)starts is checked.** Reading starts at the group's
//!   committed offset (asked for when the partition is assigned). When the first record to
//!   arrive after an assignment or a seek lies past the offset expected, the partition is read
//!   again from 1, 4, 16, ... offsets earlier ([`KafkaCounters::refetches`]); records already
//!   read are skipped when they come again. Only a gap that shows up between records read in
//!   sequence, or that stays when reading from as far back as the partition goes, is taken as
//!   offsets the broker does not have (compaction, transaction markers;
//!   [`KafkaCounters::absent`]). A partition that stays silent right after a (re)start though
//!   the broker's high watermark is past its position is read again from earlier in the same
//!   way.
//! - **Every commit point is checked.** Before an offset is committed, the spout checks that it
//!   is not past the next offset to read, that no emitted record below it awaits its ack, and
//!   that every offset below it (from where reading started) was counted as handled: acked,
//!   sent to `error`, dead-lettered or absent at the broker. A commit point that fails is not
//!   committed; it is counted ([`KafkaCounters::refused_commits`]) and logged as an error.
//!
//! Proven by tests against tansu with input produced in batches of many records, as
//! applications' clients do (`spouts/tests/kafka.rs`, `tests/cli_kafka.rs`,
//! `tests/soak_kafka.rs`): a partition stopped 200 times at its cap loses nothing; restarts from
//! a commit inside a record batch read every record from it; 200,000 records relayed with
//! `topo run` killed (`kill -9`) at 6 random moments and run to the end lose none.
//!
//! # Errors
//! An unreachable broker is retried by librdkafka for ever (its reconnect back-off); the spout
//! keeps running, logs `brokers <list> unreachable: ...` at most once a second and keeps it in
//! [`KafkaCounters::last_error`]. When the spout opens, the topics' metadata is fetched: a
//! missing topic is reported as `topic "<name>" not found at <brokers>` and the open is retried
//! by the runtime after a back-off. Bad options name the option and what was expected.
//!
//! # Checkpoints (exactly-once)
//! The spout rewinds ([`Spout::rewinds`]). In a run that takes checkpoints (`guarantee =
//! "exactly_once"`, or a bolt that keeps state):
//! - **Assignment without group membership**, whatever `assignment` says (as Flink's Kafka
//!   source): task i of n reads the i-th, (i+n)-th, ... partition of the topics (of one topic:
//!   the partitions p with p % n == i; `partitions` narrows the list as with `static`). The
//!   partitions are listed from the metadata when the task opens. Nothing waits for a group to
//!   form, so a run restarted after `kill -9` reads at once even from brokers that keep dead
//!   members (tansu 0.6 never expires them).
//! - **Snapshot**: per partition of the task the offset of the next record whose tuple the
//!   checkpoint does not cover, as state part `offsets`: under exactly-once (acking is off)
//!   the offset after the last record emitted; under at-least-once the end of the contiguous
//!   acked prefix (checked as a commit point is; a failing check fails the checkpoint). A
//!   partition not read yet is written as where it will start (an offset, or the beginning or
//!   end by `first_poll`).
//! - **Restore**: every old task's positions are read, and each task seeks the partitions of
//!   its share to theirs, so a change of the spout's parallelism keeps every partition's
//!   position. A partition of a checkpointed topic that the checkpoint does not list was added
//!   after it and is read from its beginning; a topic the checkpoint does not know starts as a
//!   run without a checkpoint does. Without a checkpoint to restore, a partition starts at the
//!   group's committed offset (`committed_else_*`), else by `first_poll`.
//! - **Commits**: the offsets of a checkpoint are committed to the group (asynchronously) only
//!   when that checkpoint completes (`checkpoint_complete`); never on acks, every
//!   `commit_interval`, or at close. The group's offsets therefore never run ahead of the
//!   state: monitoring sees the progress, and a run started `--fresh` resumes from them.
//!   `max_uncommitted` then bounds the records read past the acked prefix (memory), not the
//!   records read since the last commit.
//! - **Ending**: with `stop_at_end` the spout is exhausted once every partition is read to its
//!   end and a completed checkpoint's commit covers it.
//! - **New partitions** added to a topic during a run are not read until the next run; that run
//!   (restored from a checkpoint) reads them from their beginning.
//!
//! Proven by `tests/soak_exactly_once_kafka.rs`: a word count (kafka -> count -> file sink,
//! `guarantee = "exactly_once"`) over 200,000 words in 4 partitions, killed with `SIGKILL` 6
//! times at seeded points (each after a checkpoint of the run's own) and restarted with the
//! spout's parallelism alternating 2, 3, 1 and a consumer group of its own (so the positions
//! can only come from the checkpoint), ends with every word's count exact and the last group
//! committed at the end of every partition; `spouts/tests/kafka.rs` shows that nothing is
//! committed before a checkpoint completes and that a run restored from an older checkpoint
//! reads again exactly what follows it, though the group's offsets are further on.
//!
//! # Known limits
//! - Kafka transactions are not used: exactly-once holds for the topology's checkpointed state
//!   (and sinks that write by checkpoint), not for a `kafka` sink's output.
//! - `earliest`/`latest` are per task and per run: a restarted process resumes a partition
//!   from the group's committed offset only with the `committed_else_*` strategies.
//! - Records held for replay live in memory (bounded by `max_uncommitted` per partition), and
//!   librdkafka fetches ahead into each partition's queue: up to `max_uncommitted` records or
//!   8 MiB per partition (its `queued.min.messages` and `queued.max.messages.kbytes`, which
//!   `properties` may set otherwise).
//! - Kafka-compatible brokers differ. tansu 0.6, the broker the tests run against:
//!   - answers a fetch from inside a record batch with the next batch, or with nothing when it
//!     is the last one (the spout reads again from earlier: nothing is lost). A run restored
//!     from a checkpoint whose offsets lie inside large batches (a producer's 10,000 records)
//!     therefore steps back a few times and may read nothing from such a partition for a
//!     second or two;
//!   - answers ListOffsets with an end offset that lags behind batches of several records (the
//!     fetch answers' high watermarks, which the spout uses, are right);
//!   - drops a dynamic member that stopped heartbeating only once `session.timeout.ms` passed
//!     and another member joins: a process killed and restarted gets its partitions back after
//!     the session timeout (45 s by default; 6 s with `"session.timeout.ms" = 6000`);
//!   - drops static members (`instance_id`) every `session.timeout.ms` even while they
//!     heartbeat, so a group of static members rebalances again and again and a restarted
//!     process may read nothing for minutes: against tansu, use `assignment = "static"`
//!     instead. Apache Kafka has none of these limits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, base_consumer::PartitionQueue,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaRespErr;
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use tokio::time::Instant;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    BoxError, CheckpointId, Guarantee, OutputDeclarer, Restore, Snapshot, Spout, SpoutCollector,
    TaskContext, Value, Values, values,
};

use super::offsets::{Held, Part, Parts, RawRecord};
use super::rebalance::SpoutContext;
use super::{
    PropertyValue, SaslOptions, apply_properties, apply_settings, check_brokers, check_properties,
    check_topic, check_topics_exist, security_settings,
};
use crate::connector::counters;
use crate::connector::encoding::PayloadFormat;
use crate::connector::encoding::decode_payload;
use crate::connector::encoding::raw_prefix;
use crate::connector::retry::RetryOptions;
use crate::connector::tls::TlsOptions;
use crate::connector::warn::lock;
use crate::connector::{ERROR_STREAM, SOURCE_ERROR_FIELDS};

/// How many records `next_tuple` polls at most per call.
const POLL_PER_CALL: usize = 512;
/// How long a partition whose reading (re)started may stay silent below the broker's high
/// watermark before it is read again from earlier.
const STALLED: Duration = Duration::from_millis(300);
/// How long a partition at or past the broker's high watermark must stay silent to count as
/// read to its end when no end-of-partition event comes.
const QUIET: Duration = Duration::from_millis(500);
/// librdkafka's fetch-ahead limit per partition queue, in KiB (its default, 64 MiB, is meant
/// for one queue of all partitions).
const QUEUED_KBYTES: u32 = 8192;
/// How long librdkafka holds fetching back for a partition whose queue is full, in ms.
const FETCH_QUEUE_BACKOFF_MS: u32 = 20;
/// `Part::back` once stepping back further is not possible.
const GAVE_UP: u64 = u64::MAX;
/// The fields every record has, in order.
const BASE_FIELDS: [&str; 7] = [
    "topic",
    "partition",
    "offset",
    "key",
    "value",
    "timestamp",
    "headers",
];
/// librdkafka settings the spout owns: set through options, or not at all.
const OWNED_PROPERTIES: [(&str, &str); 7] = [
    ("group.instance.id", "use option `instance_id`"),
    ("bootstrap.servers", "use option `brokers`"),
    ("metadata.broker.list", "use option `brokers`"),
    ("group.id", "use option `group`"),
    (
        "enable.auto.commit",
        "the spout commits acked offsets itself (at-least-once)",
    ),
    (
        "enable.auto.offset.store",
        "the spout commits acked offsets itself (at-least-once)",
    ),
    (
        "enable.partition.eof",
        "the spout sets it for `stop_at_end`",
    ),
];

/// Where the spout starts reading a partition.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FirstPoll {
    /// The earliest offset, ignoring the committed one (first assignment of the task only).
    Earliest,
    /// The end of the partition, ignoring the committed offset (first assignment only).
    Latest,
    /// The committed offset of the group, else the earliest offset.
    #[default]
    CommittedElseEarliest,
    /// The committed offset of the group, else the end of the partition.
    CommittedElseLatest,
}

/// How the spout's tasks get their partitions.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Assignment {
    /// As members of the consumer group: the broker's group coordinator spreads the partitions
    /// over every task of every process and moves them when members come and go.
    #[default]
    Group,
    /// Without group membership: the spout's tasks deal the topics' partitions (or those in
    /// `partitions`) out among themselves, start from the group's committed offsets and commit
    /// to the group, as Flink's and Spark's Kafka sources do. Nothing waits for a group to
    /// form, so a restarted process reads at once, even on brokers that keep dead members
    /// (tansu). Every process reads the same partitions unless each lists its own.
    Static,
}

impl FirstPoll {
    /// Where a partition starts the first time this task is assigned it, whatever the group
    /// committed: `earliest` and `latest` only.
    pub(super) fn ignoring_commits(self) -> Option<Offset> {
        match self {
            FirstPoll::Earliest => Some(Offset::Beginning),
            FirstPoll::Latest => Some(Offset::End),
            _ => None,
        }
    }
    /// Where a partition starts when the group committed no offset for it.
    pub(super) fn without_commit(self) -> Offset {
        match self {
            FirstPoll::Latest | FirstPoll::CommittedElseLatest => Offset::End,
            _ => Offset::Beginning,
        }
    }
}

/// The former name of the `kafka` spout's `retry` options, now the one [`RetryOptions`] of every
/// connector: the wait before a failed record's replay doubles from `backoff` up to
/// `max_backoff`; after `attempts` failures of one record (`max_retries` + 1; unset or 0 =
/// replay for ever) it goes to the dead-letter topic (or the `error` stream) instead.
pub type KafkaRetry = RetryOptions;

/// Options of the `kafka` spout.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = kafka_required)]
pub struct KafkaOptions {
    /// Bootstrap servers, `host:port` separated by commas.
    pub brokers: String,
    /// The topic to read (or use `topics`).
    pub topic: Option<String>,
    /// Several topics to read.
    pub topics: Vec<String>,
    /// The consumer group; default `topo.<topology>.<component>`.
    pub group: Option<String>,
    /// Static group membership: task `i` joins as `group.instance.id` `<instance_id>-<i>`, so a
    /// process restarted with the same id takes its partitions back without a rebalance. Each
    /// process of a group needs an id of its own.
    pub instance_id: Option<String>,
    /// How the tasks get their partitions: as members of the group, or `static`ally.
    pub assignment: Assignment,
    /// With `assignment = "static"`: the partitions this process reads (of every topic);
    /// empty = all.
    pub partitions: Vec<i32>,
    /// Where a partition starts.
    pub first_poll: FirstPoll,
    /// How a record's value becomes the `value` field (`raw` is an alias of `bytes`).
    pub payload: PayloadFormat,
    /// With `payload = "json"`: keys of the object emitted as fields after `headers`.
    pub fields: Vec<String>,
    /// How often acked offsets are committed (and at once when a partition at its
    /// `max_uncommitted` cap can free half of it by committing).
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub commit_interval: Duration,
    /// Per partition, how many offsets may be emitted but not committed before fetching pauses.
    pub max_uncommitted: u64,
    /// How failed tuples are retried.
    pub retry: RetryOptions,
    /// Where records that failed `retry.max_retries` times are produced.
    pub dead_letter_topic: Option<String>,
    /// librdkafka settings of the dead-letter producer, passed through.
    pub dead_letter_properties: BTreeMap<String, PropertyValue>,
    /// Read every assigned partition to its end, then end (the spout becomes exhausted).
    pub stop_at_end: bool,
    /// librdkafka settings passed through (`"session.timeout.ms" = 10000`).
    pub properties: BTreeMap<String, PropertyValue>,
    /// TLS to the brokers (the consumer's and the dead-letter producer's connections):
    /// `tls = {}` verifies them with the system's roots; `{ ca, cert, key }` with a CA file and
    /// a client certificate.
    pub tls: Option<TlsOptions>,
    /// SASL authentication (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER`); over TLS
    /// with `tls`.
    pub sasl: Option<SaslOptions>,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            brokers: String::new(),
            topic: None,
            topics: Vec::new(),
            group: None,
            instance_id: None,
            assignment: Assignment::default(),
            partitions: Vec::new(),
            first_poll: FirstPoll::default(),
            payload: PayloadFormat::Utf8,
            fields: Vec::new(),
            commit_interval: Duration::from_secs(1),
            max_uncommitted: 10_000,
            retry: RetryOptions::default(),
            dead_letter_topic: None,
            dead_letter_properties: BTreeMap::new(),
            stop_at_end: false,
            properties: BTreeMap::new(),
            tls: None,
            sasl: None,
        }
    }
}

impl KafkaOptions {
    /// The topics to subscribe to.
    pub fn topic_list(&self) -> Vec<String> {
        let mut t: Vec<String> = self.topic.iter().cloned().collect();
        t.extend(self.topics.iter().cloned());
        t
    }
}

counters! {
    /// Counts shared by every task of a spout (and its clones).
pub struct KafkaCounters {
        /// Records polled and emitted for the first time (replays not counted).
        records,
        /// Records that could not be decoded, sent to the `error` stream.
        malformed,
        /// Failed tuples emitted again.
        replays,
        /// Records produced to the dead-letter topic.
        dead_lettered,
        /// Records given up on without a dead-letter topic (sent to the `error` stream).
        gave_up,
        /// Commits of acked offsets that succeeded.
        commits,
        /// Commits that failed (retried at the next commit).
        commit_errors,
        /// Assignments and revocations seen by the tasks.
        rebalances,
        /// Times a partition reached `max_uncommitted` and stopped being read until commits caught
        /// up.
        pauses,
        /// Times a partition was read again from an earlier offset because the broker answered
        /// from past the offset asked for (or not at all) right after reading started there.
        refetches,
        /// Offsets the broker does not have (compacted away, transaction markers), skipped once
        /// reading from before them showed the gap.
        absent,
        /// Commits refused because the commit point would have passed an offset that was not
        /// emitted and acked (or otherwise handled). Always 0 unless there is a bug; each one is
        /// also logged as an error.
        refused_commits,
        ;
        log: crate::connector::warn::ErrorLog,
    }
}

impl KafkaCounters {
    /// Errors reported by the client (unreachable brokers, missing topics, ...).
    pub fn errors(&self) -> u64 {
        self.log.count()
    }
    /// The text of the last error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.log.last()
    }

    pub(super) fn error(&self, component: &str, msg: String) {
        self.log.record(component, msg);
    }
}

/// The low and high watermarks of a partition as the consumer last saw them in a fetch
/// answer (no request is made); `None` while unknown.
fn watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Option<(u64, u64)> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer lives as long as `consumer`; the topic is a valid C string
    // and the out-pointers point at locals.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR && low >= 0 && high >= 0)
        .then_some((low as u64, high as u64))
}

/// The `kafka` spout (see the module docs). Cloning gives a fresh, unopened spout with the same
/// options that shares the counters.
pub struct KafkaSpout {
    opts: Arc<KafkaOptions>,
    /// The librdkafka settings of `tls` and `sasl`.
    security: Arc<[(&'static str, String)]>,
    counters: Arc<KafkaCounters>,
    run: Option<Running>,
}

impl Clone for KafkaSpout {
    fn clone(&self) -> Self {
        KafkaSpout {
            opts: self.opts.clone(),
            security: self.security.clone(),
            counters: self.counters.clone(),
            run: None,
        }
    }
}

struct Running {
    consumer: Arc<BaseConsumer<SpoutContext>>,
    parts: Arc<Mutex<Parts>>,
    dlq: Option<FutureProducer<super::LoginContext>>,
    /// Dead-letter deliveries under way: (slot, offset, delivery).
    dlq_pending: Vec<(u32, u64, DeliveryFuture)>,
    /// Records given up on (no dead-letter topic), to emit on the `error` stream.
    gave_up: Vec<Values>,
    /// The queue of each assigned partition (taken from `Parts::incoming`).
    queues: Vec<(u32, PartitionQueue<SpoutContext>)>,
    /// Which queue is polled first next time.
    turn: usize,
    component: SmolStr,
    max_pending: usize,
    last_commit: Instant,
    /// With checkpoints (see [`Checkpointed`]); `None` without.
    ck: Option<Checkpointed>,
}

/// Where a partition's reading starts, as written into a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
enum Position {
    /// At this offset: the next record whose tuple the checkpoint does not cover.
    At(u64),
    /// At the partition's first offset (nothing of it was read).
    Beginning,
    /// At the partition's end when reading starts (`latest`, nothing of it was read).
    End,
}

impl Position {
    fn offset(self) -> Offset {
        match self {
            Position::At(o) => Offset::Offset(o as i64),
            Position::Beginning => Offset::Beginning,
            Position::End => Offset::End,
        }
    }
}

/// One partition's position in a checkpoint (the state part `offsets`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
struct SavedOffset {
    topic: String,
    partition: i32,
    at: Position,
}

/// What a run that takes checkpoints keeps: the task's partitions (dealt out without group
/// membership), where each starts, and the positions of the checkpoints not yet complete.
struct Checkpointed {
    /// Under exactly-once every emitted tuple is covered by the next checkpoint; under
    /// at-least-once only the contiguous acked prefix is.
    exactly_once: bool,
    /// The partitions this task reads, in order.
    share: Vec<(String, i32)>,
    /// Where each of them starts (the group's committed offset, a restored checkpoint's, or
    /// `first_poll`'s).
    starts: HashMap<(String, i32), Position>,
    /// The partitions have been assigned to the consumer (done by the first `next_tuple`,
    /// after a restore has set the starts).
    assigned: bool,
    /// Positions written into checkpoints not yet complete, oldest first.
    pending: crate::connector::state::PendingPositions<Vec<SavedOffset>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // A queue holds the consumer; the consumer's context holds queues not yet taken.
        self.queues.clear();
        lock(&self.parts).incoming.clear();
    }
}

impl KafkaSpout {
    /// A Kafka spout with these options, or what is wrong with them.
    pub fn new(opts: KafkaOptions) -> Result<KafkaSpout, String> {
        check_brokers(&opts.brokers)?;
        let topics = opts.topic_list();
        if topics.is_empty() {
            return Err("option `topic`: expected the topic to read (or `topics`, a list)".into());
        }
        for t in &topics {
            check_topic(
                if opts.topics.contains(t) {
                    "topics"
                } else {
                    "topic"
                },
                t,
            )?;
        }
        if topics.iter().collect::<HashSet<_>>().len() != topics.len() {
            return Err("options `topic`/`topics`: a topic is named twice".into());
        }
        if opts.group.as_deref().is_some_and(|g| g.trim().is_empty()) {
            return Err("option `group` is empty: expected a consumer group id".into());
        }
        if opts
            .instance_id
            .as_deref()
            .is_some_and(|g| g.trim().is_empty())
        {
            return Err("option `instance_id` is empty: expected an id of this process in the group, e.g. \"host-1\"".into());
        }
        if opts.assignment == Assignment::Static && opts.instance_id.is_some() {
            return Err("option `instance_id` is a group member's id: it does not apply with assignment = \"static\"".into());
        }
        if opts.assignment == Assignment::Group && !opts.partitions.is_empty() {
            return Err("option `partitions` applies only with assignment = \"static\" (a group's coordinator assigns the partitions)".into());
        }
        if let Some(p) = opts.partitions.iter().find(|p| **p < 0) {
            return Err(format!(
                "option `partitions`: {p} is not a partition number (0 or more)"
            ));
        }
        if opts.partitions.iter().collect::<HashSet<_>>().len() != opts.partitions.len() {
            return Err("option `partitions`: a partition is listed twice".into());
        }
        if let Some(t) = &opts.dead_letter_topic {
            check_topic("dead_letter_topic", t)?;
            if topics.contains(t) {
                return Err(format!(
                    "option `dead_letter_topic` = {t:?} is a topic the spout reads"
                ));
            }
        }
        opts.retry.check("retry")?;
        if opts.dead_letter_topic.is_some() && opts.retry.attempts_or(0) == 0 {
            return Err("option `dead_letter_topic` needs `retry.max_retries` (at least 1, or `retry.attempts` at least 2): with 0 records are replayed for ever".into());
        }
        if !opts.fields.is_empty() && opts.payload != PayloadFormat::Json {
            return Err("option `fields` applies only with payload = \"json\"".into());
        }
        let mut seen = HashSet::new();
        for f in &opts.fields {
            if f.is_empty() || BASE_FIELDS.contains(&f.as_str()) || !seen.insert(f.as_str()) {
                return Err(format!(
                    "option `fields`: {f:?} is empty, repeated, or one of the fields {}",
                    BASE_FIELDS.join(", ")
                ));
            }
        }
        if opts.commit_interval.is_zero() {
            return Err("option `commit_interval` must be longer than 0s".into());
        }
        if opts.max_uncommitted == 0 {
            return Err("option `max_uncommitted` must be at least 1".into());
        }
        let r = &opts.retry;
        if r.backoff.is_zero() || r.max_backoff < r.backoff {
            return Err(
                "option `retry`: `backoff` must be more than 0s and at most `max_backoff`".into(),
            );
        }
        check_properties(&opts.properties, &OWNED_PROPERTIES)?;
        check_properties(
            &opts.dead_letter_properties,
            &[
                ("bootstrap.servers", "use option `brokers`"),
                ("metadata.broker.list", "use option `brokers`"),
            ],
        )
        .map_err(|e| e.replace("`properties`", "`dead_letter_properties`"))?;
        if !opts.dead_letter_properties.is_empty() && opts.dead_letter_topic.is_none() {
            return Err(
                "option `dead_letter_properties` applies only with `dead_letter_topic`".into(),
            );
        }
        let security = security_settings(
            opts.tls.as_ref(),
            opts.sasl.as_ref(),
            &[
                ("properties", &opts.properties),
                ("dead_letter_properties", &opts.dead_letter_properties),
            ],
        )?;
        Ok(KafkaSpout {
            security: security.into(),
            opts: Arc::new(opts),
            counters: Arc::default(),
            run: None,
        })
    }

    /// The options.
    pub fn options(&self) -> &KafkaOptions {
        &self.opts
    }

    /// What the tasks have seen so far, over every task of this spout and its clones.
    pub fn counters(&self) -> &KafkaCounters {
        &self.counters
    }

    /// The consumer group of a component: `group` if set, else `topo.<topology>.<component>`.
    pub fn group_for(&self, topology: &str, component: &str) -> String {
        self.opts
            .group
            .clone()
            .unwrap_or_else(|| format!("topo.{topology}.{component}"))
    }
}

/// The partitions a task reads with `assignment = "static"`: every partition of every topic
/// (or those listed in `partitions`), in topic order then partition order, dealt out to the
/// spout's tasks in turn.
fn static_share<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    brokers: &str,
    opts: &KafkaOptions,
    task: usize,
    tasks: usize,
) -> Result<Vec<(String, i32)>, String> {
    let mut all = Vec::new();
    for t in opts.topic_list() {
        let md = client
            .fetch_metadata(Some(&t), Duration::from_secs(10))
            .map_err(|e| {
                format!("cannot fetch the partitions of topic {t:?} from {brokers}: {e}")
            })?;
        let mut ids: Vec<i32> = md
            .topics()
            .iter()
            .filter(|m| m.name() == t)
            .flat_map(|m| m.partitions().iter().map(|p| p.id()))
            .collect();
        ids.sort_unstable();
        if !opts.partitions.is_empty() {
            if let Some(p) = opts.partitions.iter().find(|p| !ids.contains(p)) {
                return Err(format!(
                    "option `partitions`: topic {t:?} has no partition {p} (it has {})",
                    ids.len()
                ));
            }
            ids.retain(|p| opts.partitions.contains(p));
        }
        all.extend(ids.into_iter().map(|p| (t.clone(), p)));
    }
    Ok(all
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % tasks.max(1) == task)
        .map(|(_, tp)| tp)
        .collect())
}

/// Where each partition of `share` starts in a run that takes checkpoints when no checkpoint
/// is restored: the group's committed offset (with the `committed_else_*` strategies), else the
/// beginning or the end by `first_poll`.
fn fresh_starts(
    consumer: &BaseConsumer<SpoutContext>,
    opts: &KafkaOptions,
    share: &[(String, i32)],
) -> Result<HashMap<(String, i32), Position>, String> {
    let default = match opts.first_poll.without_commit() {
        Offset::End => Position::End,
        _ => Position::Beginning,
    };
    let mut starts: HashMap<(String, i32), Position> =
        share.iter().map(|k| (k.clone(), default)).collect();
    if opts.first_poll.ignoring_commits().is_some() || share.is_empty() {
        return Ok(starts);
    }
    let mut tpl = TopicPartitionList::new();
    for (t, p) in share {
        tpl.add_partition(t, *p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .map_err(|e| {
            format!(
                "cannot read the committed offsets of the consumer group from {}: {e}",
                opts.brokers
            )
        })?;
    for el in committed.elements() {
        if let Offset::Offset(c) = el.offset()
            && c >= 0
        {
            starts.insert(
                (el.topic().to_string(), el.partition()),
                Position::At(c as u64),
            );
        }
    }
    Ok(starts)
}

/// Assigns a checkpointed run's partitions to the consumer (no group membership), each at its
/// start.
async fn assign_share(
    consumer: &Arc<BaseConsumer<SpoutContext>>,
    ck: &mut Checkpointed,
    counters: &KafkaCounters,
    component: &SmolStr,
) -> Result<(), BoxError> {
    let fixed: HashMap<(String, i32), Offset> = ck
        .share
        .iter()
        .map(|k| {
            let at = ck.starts.get(k).copied().unwrap_or(Position::Beginning);
            (k.clone(), at.offset())
        })
        .collect();
    let share = ck.share.clone();
    let c = consumer.clone();
    let names = tokio::task::spawn_blocking(move || {
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &share {
            tpl.add_partition(t, *p);
        }
        let names = c.context().take(&c, &mut tpl, Some(&fixed));
        c.assign(&tpl)
            .map_err(|e| format!("cannot assign {names:?}: {e}"))?;
        Ok::<_, String>(names)
    })
    .await
    .map_err(|e| format!("partition assignment: {e}"))?
    .inspect_err(|e| counters.error(component, e.clone()))?;
    ck.assigned = true;
    tracing::info!(component = %component, partitions = ?names, starts = ?ck.starts, "kafka partitions assigned (checkpointed run)");
    Ok(())
}

/// The text of a key: UTF-8 text, else bytes; null when absent.
fn key_value(key: Option<&[u8]>) -> Value {
    match key {
        None => Value::Null,
        Some(k) => match std::str::from_utf8(k) {
            Ok(s) => Value::Str(SmolStr::new(s)),
            Err(_) => Value::from(bytes::Bytes::copy_from_slice(k)),
        },
    }
}

/// Decodes a record into its field values, or the reason it cannot be.
fn decode(m: &BorrowedMessage<'_>, opts: &KafkaOptions, topic: &SmolStr) -> Result<Values, String> {
    let data = m.payload().unwrap_or_default();
    let what = || format!("record {}/{}@{}", m.topic(), m.partition(), m.offset());
    let (value, extracted) =
        decode_payload(opts.payload, data, &opts.fields).map_err(|e| format!("{} {e}", what()))?;
    let headers = match m.headers() {
        None => Value::Map(Arc::default()),
        Some(h) => Value::Map(Arc::new(
            h.iter()
                .map(|Header { key, value }| {
                    (
                        SmolStr::new(key),
                        value.map_or(Value::Null, |v| {
                            Value::Str(SmolStr::new(String::from_utf8_lossy(v)))
                        }),
                    )
                })
                .collect(),
        )),
    };
    let mut values = values![
        Value::Str(topic.clone()),
        Value::Int(m.partition() as i64),
        Value::Int(m.offset()),
        key_value(m.key()),
        value,
        m.timestamp().to_millis().map_or(Value::Null, Value::Int),
        headers
    ];
    values.extend(extracted);
    Ok(values)
}

fn raw_record(m: &BorrowedMessage<'_>) -> RawRecord {
    RawRecord {
        key: m.key().map(<[u8]>::to_vec),
        value: m.payload().map(<[u8]>::to_vec),
        headers: m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

impl Running {
    /// Handles one record polled from the queue of `slot`: emit it, send it to `error`, or,
    /// when it is not the offset expected, read the partition again from earlier. Returns
    /// whether the partition may be read on (it is below its uncommitted cap).
    fn on_record(
        &self,
        slot: u32,
        m: &BorrowedMessage<'_>,
        opts: &KafkaOptions,
        counters: &KafkaCounters,
        out: &mut SpoutCollector<'_, (u32, u64)>,
    ) -> bool {
        let Ok(offset) = u64::try_from(m.offset()) else {
            return true;
        };
        let mut parts = lock(&self.parts);
        let topic = parts.slots[slot as usize].0.clone();
        let Some(part) = parts.live.get_mut(&slot) else {
            // A record of a partition revoked meanwhile: its new owner reads it.
            return false;
        };
        part.at_end = false;
        if part.prefix.is_none() {
            match part.start {
                Some(start) => part.begin(start),
                None => {
                    // `earliest`/`latest`, or no committed offset: reading starts here.
                    part.begin(offset);
                    part.fresh = false;
                }
            }
        }
        if offset < part.next {
            // Read before (reading again from an earlier offset): from here on, what comes
            // follows on from records already read.
            part.fresh = false;
            part.back = 0;
            return true;
        }
        if offset > part.next {
            if part.fresh {
                // The first record since reading (re)started is past the offset asked for. A
                // broker may answer a fetch from inside a record batch with the next batch
                // (tansu does): read again from earlier, where the batch begins. The record
                // comes again.
                let gap = (part.next, offset);
                drop(parts);
                if self.refetch(slot, counters) {
                    return true;
                }
                parts = lock(&self.parts);
                let Some(p) = parts.live.get_mut(&slot) else {
                    return false;
                };
                self.absent(p, gap, &topic, slot, counters);
                return self.emit_record(parts, slot, &topic, offset, m, opts, counters, out);
            }
            // A gap after records read in sequence: offsets the broker does not have
            // (compaction, transaction markers).
            let gap = (part.next, offset);
            self.absent(part, gap, &topic, slot, counters);
        }
        self.emit_record(parts, slot, &topic, offset, m, opts, counters, out)
    }

    /// Offsets `[gap.0, gap.1)` of a partition are not at the broker: handled, counted.
    fn absent(
        &self,
        part: &mut Part,
        gap: (u64, u64),
        topic: &str,
        slot: u32,
        counters: &KafkaCounters,
    ) {
        counters.absent.fetch_add(gap.1 - gap.0, Relaxed);
        tracing::debug!(component = %self.component, topic, slot, from = gap.0, to = gap.1, "offsets absent at the broker");
        part.handle(gap.0, gap.1);
    }

    /// Emits the record at `offset`, the one expected next (or sends it to `error`). Returns
    /// whether the partition is still below its uncommitted cap.
    #[allow(clippy::too_many_arguments)]
    fn emit_record(
        &self,
        mut parts: std::sync::MutexGuard<'_, Parts>,
        slot: u32,
        topic: &SmolStr,
        offset: u64,
        m: &BorrowedMessage<'_>,
        opts: &KafkaOptions,
        counters: &KafkaCounters,
        out: &mut SpoutCollector<'_, (u32, u64)>,
    ) -> bool {
        let Some(part) = parts.live.get_mut(&slot) else {
            return false;
        };
        part.fresh = false;
        part.back = 0;
        part.next = offset + 1;
        match decode(m, opts, topic) {
            Ok(values) => {
                counters.records.fetch_add(1, Relaxed);
                let raw = self.dlq.is_some().then(|| raw_record(m));
                part.held.insert(
                    offset,
                    Held {
                        values: values.clone(),
                        failures: 0,
                        raw,
                    },
                );
                out.emit(values, (slot, offset));
            }
            Err(reason) => {
                counters.malformed.fetch_add(1, Relaxed);
                if counters.log.warn.allow() {
                    tracing::warn!(component = %self.component, %reason, "record sent to the `error` stream");
                }
                part.handled(offset);
                let data = m.payload().unwrap_or_default();
                out.emit_to(ERROR_STREAM, values![reason, raw_prefix(data)], None);
            }
        }
        if part.outstanding(self.ck.is_some()) >= opts.max_uncommitted && !part.paused {
            part.paused = true;
            counters.pauses.fetch_add(1, Relaxed);
        }
        !part.paused
    }

    /// Reads a partition again from before its position, stepping back 1, 4, 16, ... offsets
    /// (never below the partition's first offset), because the broker answered from past the
    /// position or not at all. Records already read are skipped when they come again. Returns
    /// `false` once stepping back further is not possible: what the broker sends is then taken
    /// as it is.
    fn refetch(&self, slot: u32, counters: &KafkaCounters) -> bool {
        let mut parts = lock(&self.parts);
        let (topic, partition) = parts.slots[slot as usize].clone();
        let Some(part) = parts.live.get_mut(&slot) else {
            return true;
        };
        let Some(pos) = part.position() else {
            return false;
        };
        let low = watermarks(&self.consumer, &topic, partition).map_or(0, |(low, _)| low);
        let from = |back: u64| pos.saturating_sub(back).max(low.min(pos));
        if part.back == GAVE_UP || (part.back > 0 && from(part.back) == low.min(pos)) {
            part.back = GAVE_UP;
            return false;
        }
        let back = if part.back == 0 { 1 } else { part.back * 4 };
        let target = from(back);
        if target >= pos {
            part.back = GAVE_UP;
            return false;
        }
        part.back = back;
        part.fresh = true;
        part.since = Instant::now();
        drop(parts);
        counters.refetches.fetch_add(1, Relaxed);
        tracing::debug!(component = %self.component, %topic, partition, position = pos, from = target, "reading again from an earlier offset");
        if let Err(e) = self.consumer.seek(
            &topic,
            partition,
            Offset::Offset(target as i64),
            Duration::ZERO,
        ) {
            counters.error(
                &self.component,
                format!("cannot read {topic}/{partition} again from offset {target}: {e}"),
            );
        }
        true
    }

    /// Polls the queue of every partition below its uncommitted cap, up to `POLL_PER_CALL`
    /// records in all, starting with a different partition each call.
    fn poll_partitions(
        &mut self,
        opts: &KafkaOptions,
        counters: &KafkaCounters,
        out: &mut SpoutCollector<'_, (u32, u64)>,
    ) {
        {
            let mut parts = lock(&self.parts);
            let incoming = std::mem::take(&mut parts.incoming);
            for (slot, q) in incoming {
                self.queues.retain(|(s, _)| *s != slot);
                self.queues.push((slot, q));
            }
            let live = &parts.live;
            self.queues.retain(|(s, _)| live.contains_key(s));
        }
        let count = self.queues.len();
        if count == 0 {
            return;
        }
        self.turn = (self.turn + 1) % count;
        let mut n = 0;
        for i in 0..count {
            let (slot, queue) = &self.queues[(self.turn + i) % count];
            let slot = *slot;
            let checkpointed = self.ck.is_some();
            let readable = match lock(&self.parts).live.get_mut(&slot) {
                Some(p) if p.outstanding(checkpointed) < opts.max_uncommitted => {
                    p.paused = false;
                    true
                }
                _ => false,
            };
            if !readable {
                continue;
            }
            let mut empty = false;
            let before = n;
            while n < POLL_PER_CALL && out.pending() < self.max_pending {
                match queue.poll(Duration::ZERO) {
                    None => {
                        empty = true;
                        break;
                    }
                    Some(Ok(m)) => {
                        n += 1;
                        if !self.on_record(slot, &m, opts, counters, out) {
                            break;
                        }
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {
                        // Not while reading again from earlier: records are on their way.
                        if let Some(p) = lock(&self.parts).live.get_mut(&slot)
                            && (!p.fresh || p.back == 0)
                        {
                            p.at_end = true;
                        }
                    }
                    Some(Err(e)) => {
                        counters.error(&self.component, format!("kafka consumer: {e}"));
                        break;
                    }
                }
            }
            if n > before
                && let Some(p) = lock(&self.parts).live.get_mut(&slot)
            {
                p.last_record = Instant::now();
            }
            if empty {
                self.check_quiet(slot, counters);
            }
        }
    }

    /// A partition whose queue is empty: at its end by the broker's high watermark, or stuck
    /// right after reading (re)started at an offset the broker does not answer from (tansu,
    /// inside the last record batch), and then read again from earlier.
    fn check_quiet(&self, slot: u32, counters: &KafkaCounters) {
        let (topic, partition, pos, fresh, since, quiet, back) = {
            let parts = lock(&self.parts);
            let Some(p) = parts.live.get(&slot) else {
                return;
            };
            let Some(pos) = p.position() else {
                return;
            };
            let (t, n) = parts.slots[slot as usize].clone();
            (t, n, pos, p.fresh, p.since, p.last_record, p.back)
        };
        let Some((_, high)) = watermarks(&self.consumer, &topic, partition) else {
            return;
        };
        if high <= pos {
            // By the broker's own account there is nothing after the position; its end of
            // partition event may not come when its high watermark lags what was read.
            if quiet.elapsed() >= QUIET
                && since.elapsed() >= QUIET
                && let Some(p) = lock(&self.parts).live.get_mut(&slot)
            {
                p.at_end = true;
            }
            return;
        }
        if fresh && back != GAVE_UP && since.elapsed() >= STALLED && !self.refetch(slot, counters) {
            counters.error(
                &self.component,
                format!(
                    "{topic}/{partition}: the broker sends nothing from offset {pos} though its high watermark is {high}"
                ),
            );
        }
    }

    /// Emits failed records whose back-off has passed.
    fn replay_due(&mut self, out: &mut SpoutCollector<'_, (u32, u64)>, counters: &KafkaCounters) {
        let now = Instant::now();
        let mut parts = lock(&self.parts);
        while out.pending() < self.max_pending {
            let Some(&(due, slot, offset)) = parts.replay.first() else {
                break;
            };
            if due > now {
                break;
            }
            parts.replay.pop_first();
            if let Some(h) = parts.live.get(&slot).and_then(|p| p.held.get(&offset)) {
                counters.replays.fetch_add(1, Relaxed);
                out.emit(h.values.clone(), (slot, offset));
            }
        }
    }

    /// Moves finished dead-letter deliveries: delivered offsets are handled.
    fn poll_dead_letters(&mut self, opts: &KafkaOptions, counters: &KafkaCounters) {
        use futures_util::FutureExt;
        if self.dlq_pending.is_empty() {
            return;
        }
        let mut still = Vec::new();
        for (slot, offset, mut fut) in self.dlq_pending.drain(..) {
            match (&mut fut).now_or_never() {
                None => still.push((slot, offset, fut)),
                Some(Ok(Ok(_))) => {
                    counters.dead_lettered.fetch_add(1, Relaxed);
                    let mut parts = lock(&self.parts);
                    if let Some(p) = parts.live.get_mut(&slot) {
                        p.held.remove(&offset);
                        p.handled(offset);
                    }
                }
                Some(r) => {
                    let why = match r {
                        Ok(Err((e, _))) => e.to_string(),
                        _ => "the producer was dropped".into(),
                    };
                    counters.error(
                        &self.component,
                        format!(
                            "cannot produce to dead-letter topic {:?}: {why}; trying again after {}",
                            opts.dead_letter_topic.as_deref().unwrap_or(""),
                            humantime::format_duration(opts.retry.max_backoff)
                        ),
                    );
                    let mut parts = lock(&self.parts);
                    if parts
                        .live
                        .get(&slot)
                        .is_some_and(|p| p.held.contains_key(&offset))
                    {
                        // Replayed as a failed tuple once more: it comes back here.
                        parts.replay.insert((
                            Instant::now() + opts.retry.max_backoff,
                            slot,
                            offset,
                        ));
                    }
                }
            }
        }
        self.dlq_pending = still;
    }

    /// Commits moved commit points of every live partition (`Async`, or `Sync` when ending).
    fn commit(&self, mode: CommitMode, counters: &KafkaCounters) -> Result<(), String> {
        let (offsets, tpl) = {
            let parts = lock(&self.parts);
            let offsets =
                parts.to_commit(parts.live.keys().copied(), false, counters, &self.component);
            let tpl = parts.tpl(&offsets);
            (offsets, tpl)
        };
        if offsets.is_empty() {
            return Ok(());
        }
        match self.consumer.commit(&tpl, mode) {
            Ok(()) => {
                if matches!(mode, CommitMode::Sync) {
                    counters.commits.fetch_add(1, Relaxed);
                }
                let mut parts = lock(&self.parts);
                for (slot, off) in offsets {
                    if let Some(p) = parts.live.get_mut(&slot) {
                        p.committed = Some(off);
                    }
                }
                Ok(())
            }
            Err(e) => {
                counters.commit_errors.fetch_add(1, Relaxed);
                let msg = format!("commit of acked offsets failed: {e}");
                counters.error(&self.component, msg.clone());
                Err(msg)
            }
        }
    }

    /// A partition stopped at its uncommitted cap has at least half of its window acked past
    /// its last commit: committing now lets it be read on.
    fn window_to_free(&self, opts: &KafkaOptions) -> bool {
        if self.ck.is_some() {
            return false;
        }
        let half = (opts.max_uncommitted / 2).max(1);
        lock(&self.parts).live.values().any(|p| {
            p.paused
                && p.commit_point()
                    .is_some_and(|c| c.saturating_sub(p.committed.unwrap_or(p.origin)) >= half)
        })
    }

    /// Every assigned partition read to its end, every record handled and committed.
    fn drained(&self) -> bool {
        let parts = lock(&self.parts);
        parts.assigned_once
            && !parts.rebalancing
            && parts.replay.is_empty()
            && self.dlq_pending.is_empty()
            && parts.live.values().all(|p| {
                p.at_end && p.held.is_empty() && p.committed == p.commit_point().or(p.committed)
            })
    }
}

impl Spout for KafkaSpout {
    type MessageId = (u32, u64);

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        let mut fields: Vec<&str> = BASE_FIELDS.to_vec();
        fields.extend(self.opts.fields.iter().map(String::as_str));
        out.declare(fields);
        out.declare_stream(ERROR_STREAM, SOURCE_ERROR_FIELDS);
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        let o = &self.opts;
        let component = SmolStr::from(ctx.component_id());
        let group = self.group_for(ctx.topology(), ctx.component_id());
        let parts = Arc::new(Mutex::new(Parts::default()));
        let oauth = super::OAuthLogin::of(o.sasl.as_ref())?;
        let oauth_login = oauth.clone();
        let context = SpoutContext {
            oauth: oauth.clone(),
            parts: parts.clone(),
            consumer: OnceLock::new(),
            first_poll: o.first_poll,
            counters: self.counters.clone(),
            component: component.clone(),
            brokers: o.brokers.clone(),
            failures: super::Failures::new(o.tls.is_some()),
        };
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &o.brokers)
            .set("group.id", &group)
            .set(
                "client.id",
                format!("topo-{}-{}", ctx.component_id(), ctx.task_index()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set(
                "auto.offset.reset",
                match o.first_poll.without_commit() {
                    Offset::End => "latest",
                    _ => "earliest",
                },
            );
        if let Some(id) = &o.instance_id {
            config.set("group.instance.id", format!("{id}-{}", ctx.task_index()));
        }
        // Each partition has a queue of its own, and librdkafka's fetch-ahead limits apply to
        // each (not to all together, as with one queue): a partition needs no more records
        // ahead than it may read before its cap, and a few MiB keep it busy. `properties` may
        // set other values.
        config
            .set(
                "queued.min.messages",
                o.max_uncommitted.clamp(1, 10_000_000).to_string(),
            )
            .set("queued.max.messages.kbytes", QUEUED_KBYTES.to_string())
            // A full queue holds fetching back this long (librdkafka: 1 s, which with these
            // limits would stall a partition after every cap).
            .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS.to_string());
        apply_properties(&mut config, &o.properties);
        apply_settings(&mut config, &self.security);
        let consumer: BaseConsumer<SpoutContext> = config
            .create_with_context(context)
            .map_err(|e| format!("cannot create the Kafka consumer: {e}"))?;
        let consumer = Arc::new(consumer);
        let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
        if let Some(login) = oauth_login {
            // A consumer answers librdkafka's token refresh when it is polled: the first token,
            // without which nothing reaches a broker, is fetched now.
            let c = consumer.clone();
            tokio::task::spawn_blocking(move || {
                let start = Instant::now();
                while login.requests() == 0 && start.elapsed() < Duration::from_secs(15) {
                    let _ = c.poll(Duration::from_millis(100));
                }
            })
            .await
            .map_err(|e| format!("OAUTHBEARER login: {e}"))?;
        }
        // The topics must exist: a missing one is named (and the open retried).
        let topics = o.topic_list();
        {
            let (c, brokers, topics) = (consumer.clone(), o.brokers.clone(), topics.clone());
            let option = if o.topic.is_some() { "topic" } else { "topics" };
            tokio::task::spawn_blocking(move || {
                check_topics_exist(
                    c.client(),
                    &brokers,
                    &topics,
                    option,
                    Duration::from_secs(10),
                )
            })
            .await
            .map_err(|e| format!("metadata check: {e}"))?
            .inspect_err(|e| self.counters.error(&component, e.clone()))?;
        }
        let ck = if ctx.checkpointed() {
            // No group membership: the partitions are dealt out among the tasks (a broker that
            // keeps dead members, as tansu does, cannot hold them back), and each starts where
            // the restored checkpoint says (see `restore`), else at the group's committed offset.
            let (c, brokers, opts) = (consumer.clone(), o.brokers.clone(), self.opts.clone());
            let (task, tasks) = (ctx.task_index(), ctx.parallelism());
            let (share, starts) = tokio::task::spawn_blocking(move || {
                let share = static_share(c.client(), &brokers, &opts, task, tasks)?;
                let starts = fresh_starts(&c, &opts, &share)?;
                Ok::<_, String>((share, starts))
            })
            .await
            .map_err(|e| format!("partition assignment: {e}"))?
            .inspect_err(|e| self.counters.error(&component, e.clone()))?;
            Some(Checkpointed {
                exactly_once: ctx.config().guarantee == Guarantee::ExactlyOnce,
                share,
                starts,
                assigned: false,
                pending: Default::default(),
            })
        } else {
            None
        };
        match o.assignment {
            _ if ck.is_some() => {}
            Assignment::Group => {
                let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                consumer
                    .subscribe(&names)
                    .map_err(|e| format!("cannot subscribe to {names:?}: {e}"))?;
            }
            Assignment::Static => {
                let (c, brokers, opts) = (consumer.clone(), o.brokers.clone(), self.opts.clone());
                let (task, tasks) = (ctx.task_index(), ctx.parallelism());
                let names = tokio::task::spawn_blocking(move || {
                    let mine = static_share(c.client(), &brokers, &opts, task, tasks)?;
                    let mut tpl = TopicPartitionList::new();
                    for (t, p) in &mine {
                        tpl.add_partition(t, *p);
                    }
                    let names = c.context().take(&c, &mut tpl, None);
                    c.assign(&tpl)
                        .map_err(|e| format!("cannot assign {names:?}: {e}"))?;
                    Ok::<_, String>(names)
                })
                .await
                .map_err(|e| format!("static assignment: {e}"))?
                .inspect_err(|e| self.counters.error(&component, e.clone()))?;
                tracing::info!(component = %component, partitions = ?names, "kafka partitions assigned (static)");
            }
        }
        let dlq = match &o.dead_letter_topic {
            None => None,
            Some(_) => {
                let mut pc = ClientConfig::new();
                pc.set("bootstrap.servers", &o.brokers)
                    .set("enable.idempotence", "true");
                apply_properties(&mut pc, &o.dead_letter_properties);
                apply_settings(&mut pc, &self.security);
                Some(
                    pc.create_with_context(super::LoginContext { oauth })
                        .map_err(|e| format!("cannot create the dead-letter producer: {e}"))?,
                )
            }
        };
        tracing::info!(component = %component, topics = ?topics, group = %group, brokers = %o.brokers, "kafka spout open");
        self.run = Some(Running {
            consumer,
            parts,
            dlq,
            dlq_pending: Vec::new(),
            gave_up: Vec::new(),
            queues: Vec::new(),
            turn: 0,
            component,
            max_pending: ctx.config().max_spout_pending.unwrap_or(usize::MAX),
            last_commit: Instant::now(),
            ck,
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
        if let Some(ck) = &mut r.ck
            && !ck.assigned
        {
            assign_share(&r.consumer, ck, &self.counters, &r.component).await?;
        }
        let opts = &*self.opts;
        let counters = &*self.counters;
        r.poll_dead_letters(opts, counters);
        for v in r.gave_up.drain(..) {
            out.emit_to(ERROR_STREAM, v, None);
        }
        r.replay_due(out, counters);
        // The common queue carries rebalances, commit results and client errors; records
        // come through each partition's own queue. The rebalance callback runs inside poll:
        // no lock held here.
        for _ in 0..POLL_PER_CALL {
            let consumer = r.consumer.clone();
            match consumer.poll(Duration::ZERO) {
                None => break,
                Some(Ok(m)) => {
                    // Not expected once every queue is split off; handled all the same.
                    let slot = lock(&r.parts).slot(m.topic(), m.partition());
                    let _ = r.on_record(slot, &m, opts, counters, out);
                }
                Some(Err(KafkaError::PartitionEOF(_))) => {}
                Some(Err(e)) => {
                    counters.error(&r.component, format!("kafka consumer: {e}"));
                    break;
                }
            }
        }
        r.poll_partitions(opts, counters, out);
        // Every `commit_interval`, and at once when a partition at its cap could free half of
        // its window by committing: the cap bounds what a restart reads again, not throughput.
        // With checkpoints, offsets are committed only when a checkpoint completes.
        if r.ck.is_none()
            && (r.last_commit.elapsed() >= opts.commit_interval || r.window_to_free(opts))
        {
            r.last_commit = Instant::now();
            let _ = r.commit(CommitMode::Async, counters);
        }
        if opts.stop_at_end && r.ck.is_none() {
            // Once everything is read and acked, commit for sure before reporting the end.
            // (With checkpoints, the end is committed by the checkpoint that covers it.)
            let all_read = {
                let parts = lock(&r.parts);
                parts.assigned_once
                    && !parts.rebalancing
                    && parts.replay.is_empty()
                    && parts.live.values().all(|p| p.at_end && p.held.is_empty())
            };
            if all_read && !r.drained() {
                let consumer = r.consumer.clone();
                let (offsets, tpl) = {
                    let parts = lock(&r.parts);
                    let offsets =
                        parts.to_commit(parts.live.keys().copied(), false, counters, &r.component);
                    let tpl = parts.tpl(&offsets);
                    (offsets, tpl)
                };
                if !offsets.is_empty() {
                    let res = tokio::task::spawn_blocking(move || {
                        consumer.commit(&tpl, CommitMode::Sync)
                    })
                    .await;
                    match res {
                        Ok(Ok(())) => {
                            counters.commits.fetch_add(1, Relaxed);
                            let mut parts = lock(&r.parts);
                            for (slot, off) in offsets {
                                if let Some(p) = parts.live.get_mut(&slot) {
                                    p.committed = Some(off);
                                }
                            }
                        }
                        Ok(Err(e)) => {
                            counters.commit_errors.fetch_add(1, Relaxed);
                            counters.error(&r.component, format!("commit failed: {e}"));
                        }
                        Err(e) => counters.error(&r.component, format!("commit: {e}")),
                    }
                }
            }
        }
        Ok(())
    }

    fn ack(&mut self, id: (u32, u64)) {
        let Some(r) = &mut self.run else { return };
        let mut parts = lock(&r.parts);
        if let Some(p) = parts.live.get_mut(&id.0)
            && p.held.remove(&id.1).is_some()
        {
            p.handled(id.1);
        }
    }

    fn fail(&mut self, id: (u32, u64)) {
        let Some(r) = &mut self.run else { return };
        let opts = &*self.opts;
        let mut parts = lock(&r.parts);
        let Some((topic, partition)) = parts.slots.get(id.0 as usize).cloned() else {
            return;
        };
        let Some(part) = parts.live.get_mut(&id.0) else {
            // No longer assigned: the new owner reads it again from the committed offset.
            return;
        };
        let Some(held) = part.held.get_mut(&id.1) else {
            return;
        };
        held.failures += 1;
        let failures = held.failures;
        let raw = held.raw.clone();
        if !opts.retry.exhausted(failures, 0) {
            let wait = opts
                .retry
                .backoff
                .saturating_mul(1u32 << (failures - 1).min(20))
                .min(opts.retry.max_backoff);
            parts.replay.insert((Instant::now() + wait, id.0, id.1));
            return;
        }
        let reason = format!(
            "record {topic}/{partition}@{} failed {failures} times (retry: at most {} tries)",
            id.1,
            opts.retry.attempts_or(0)
        );
        match (&r.dlq, &opts.dead_letter_topic) {
            (Some(producer), Some(dlt)) => {
                let Some(raw) = raw else { return };
                drop(parts);
                let mut headers = OwnedHeaders::new();
                for (k, v) in &raw.headers {
                    headers = headers.insert(Header {
                        key: k,
                        value: v.as_deref(),
                    });
                }
                let offset_text = id.1.to_string();
                let partition_text = partition.to_string();
                headers = headers
                    .insert(Header {
                        key: "topo.error",
                        value: Some(reason.as_bytes()),
                    })
                    .insert(Header {
                        key: "topo.topic",
                        value: Some(topic.as_bytes()),
                    })
                    .insert(Header {
                        key: "topo.partition",
                        value: Some(partition_text.as_bytes()),
                    })
                    .insert(Header {
                        key: "topo.offset",
                        value: Some(offset_text.as_bytes()),
                    });
                let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(dlt).headers(headers);
                if let Some(k) = &raw.key {
                    rec = rec.key(k.as_slice());
                }
                if let Some(v) = &raw.value {
                    rec = rec.payload(v.as_slice());
                }
                match producer.send_result(rec) {
                    Ok(fut) => r.dlq_pending.push((id.0, id.1, fut)),
                    Err((e, _)) => {
                        self.counters.error(
                            &r.component,
                            format!("cannot produce to dead-letter topic {dlt:?}: {e}"),
                        );
                        lock(&r.parts).replay.insert((
                            Instant::now() + opts.retry.max_backoff,
                            id.0,
                            id.1,
                        ));
                    }
                }
            }
            _ => {
                self.counters.gave_up.fetch_add(1, Relaxed);
                if self.counters.log.warn.allow() {
                    tracing::warn!(component = %r.component, %reason, "record sent to the `error` stream");
                }
                let Some(part) = parts.live.get_mut(&id.0) else {
                    return;
                };
                let raw = part
                    .held
                    .remove(&id.1)
                    .map(|h| h.values)
                    .and_then(|v| v.get(4).cloned())
                    .map(|v| match v {
                        Value::Str(s) => s.to_string(),
                        other => serde_json::to_string(&other).unwrap_or_default(),
                    })
                    .unwrap_or_default();
                part.handled(id.1);
                r.gave_up.push(values![reason, raw]);
            }
        }
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
        let parts = lock(&r.parts);
        let mut saved = Vec::with_capacity(ck.share.len());
        for key in &ck.share {
            let planned = ck.starts.get(key).copied().unwrap_or(Position::Beginning);
            let part = parts
                .slot_of
                .get(&(SmolStr::new(&key.0), key.1))
                .and_then(|s| parts.live.get(s))
                .filter(|_| ck.assigned);
            let at = match part {
                None => planned,
                Some(p) if p.prefix.is_none() => p.start.map_or(planned, Position::At),
                // Acking is off: every emitted tuple is before the barrier.
                Some(p) if ck.exactly_once => Position::At(p.next),
                Some(p) => match p.checked_commit_point() {
                    Some(Ok(c)) => Position::At(c),
                    Some(Err(why)) => {
                        return Err(format!(
                            "kafka spout: no checkpoint position for {}/{}: {why}",
                            key.0, key.1
                        )
                        .into());
                    }
                    None => planned,
                },
            };
            saved.push(SavedOffset {
                topic: key.0.clone(),
                partition: key.1,
                at,
            });
        }
        drop(parts);
        snap.put("offsets", &saved);
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
        // Every old task's positions: the partitions are dealt out anew when the parallelism
        // changed, and this task keeps those of its share.
        let mut saved: HashMap<(String, i32), Position> = HashMap::new();
        let mut topics: HashSet<String> = HashSet::new();
        for list in from.get_all::<Vec<SavedOffset>>("offsets")? {
            for s in list {
                topics.insert(s.topic.clone());
                saved.insert((s.topic, s.partition), s.at);
            }
        }
        for key in &ck.share {
            match saved.get(key) {
                Some(at) => {
                    ck.starts.insert(key.clone(), *at);
                }
                // A partition of a known topic absent from the checkpoint was added after it:
                // all of it follows the checkpoint.
                None if topics.contains(&key.0) => {
                    ck.starts.insert(key.clone(), Position::Beginning);
                }
                // A topic the checkpoint does not know (added to the options): as a fresh start.
                None => {}
            }
        }
        tracing::info!(component = %r.component, checkpoint = from.checkpoint_id(), starts = ?ck.starts, "kafka spout restored");
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
        // The group gets the positions of the completed checkpoint, never more.
        let mut tpl = TopicPartitionList::new();
        let mut parts = lock(&r.parts);
        for s in &saved {
            let Position::At(o) = s.at else { continue };
            let _ = tpl.add_partition_offset(&s.topic, s.partition, Offset::Offset(o as i64));
            if let Some(slot) = parts
                .slot_of
                .get(&(SmolStr::new(&s.topic), s.partition))
                .copied()
                && let Some(p) = parts.live.get_mut(&slot)
            {
                p.committed = Some(o);
            }
        }
        drop(parts);
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = r.consumer.commit(&tpl, CommitMode::Async) {
            self.counters.commit_errors.fetch_add(1, Relaxed);
            self.counters.error(
                &r.component,
                format!("commit of checkpoint {id}'s offsets failed: {e}"),
            );
            let mut parts = lock(&r.parts);
            for p in parts.live.values_mut() {
                p.committed = None;
            }
        }
    }

    fn is_exhausted(&self) -> bool {
        self.opts.stop_at_end && self.run.as_ref().is_some_and(Running::drained)
    }

    async fn close(&mut self) {
        let Some(mut r) = self.run.take() else { return };
        let counters = self.counters.clone();
        // The queues hold the consumer: let them go first, so that it closes below.
        r.queues.clear();
        lock(&r.parts).incoming.clear();
        let consumer = r.consumer.clone();
        // With checkpoints the group's offsets are those of the last completed checkpoint:
        // committing further would run ahead of the state.
        let (offsets, tpl) = if r.ck.is_some() {
            (Vec::new(), TopicPartitionList::new())
        } else {
            let parts = lock(&r.parts);
            let offsets =
                parts.to_commit(parts.live.keys().copied(), true, &counters, &r.component);
            let tpl = parts.tpl(&offsets);
            (offsets, tpl)
        };
        if let Some(p) = &r.dlq {
            use rdkafka::producer::Producer;
            let p = p.clone();
            let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(5))).await;
        }
        let component = r.component.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if !offsets.is_empty() {
                match consumer.commit(&tpl, CommitMode::Sync) {
                    Ok(()) => {
                        counters.commits.fetch_add(1, Relaxed);
                    }
                    Err(e) => {
                        counters.commit_errors.fetch_add(1, Relaxed);
                        counters.error(&component, format!("commit on close failed: {e}"));
                    }
                }
            }
            // Leave the group now, so that other members take the partitions at once.
            consumer.unsubscribe();
            drop(consumer);
            drop(r);
        })
        .await;
    }
}

/// The `kafka` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::spout(
            "kafka",
            "records of Apache Kafka topics in a consumer group (partitions balanced over tasks and processes), each partition's contiguous acked prefix committed; failed records replayed with back-off, dead-letter topic after max retries; bad records to `error`",
            KafkaSpout::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components kafka`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[spouts.lines]
kind = "kafka"
brokers = "127.0.0.1:9092"   # bootstrap servers
topic = "lines"              # or topics = ["a", "b"]
# group = "my-app"           # default "topo.<topology>.<component>": every task and process shares the partitions
first_poll = "committed_else_earliest"   # or "earliest", "latest", "committed_else_latest"
payload = "utf8"             # or "strict", "raw", "json" (+ fields = ["user", "action"])
commit_interval = "1s"       # the contiguous acked prefix of each partition is committed
max_uncommitted = 10000      # per partition: fetching pauses at this many uncommitted offsets
retry = { backoff = "100ms", max_backoff = "10s", max_retries = 5 }
dead_letter_topic = "lines-dlt"   # records failed 5 times go there (unset: the `error` stream)
# stop_at_end = true         # read every partition to its end, then end (`topo run --until-idle`)
properties = { "session.timeout.ms" = 10000 }   # any librdkafka setting
# tls = {}                   # TLS with the system's roots; or { ca = "ca.pem", cert = "client.pem", key = "client.key" }
# sasl = { mechanism = "SCRAM-SHA-512", username = "app", password = "${KAFKA_PASSWORD}" }   # or PLAIN, SCRAM-SHA-256
# sasl = { mechanism = "OAUTHBEARER", token_endpoint = "https://idp/oauth2/token", client_id = "app", client_secret = "${KAFKA_CLIENT_SECRET}", scope = "kafka" }
# output: topic, partition, offset, key, value, timestamp, headers

# undecodable records, with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "lines", stream = "error" }]
"#;

impl FromOptions for KafkaSpout {
    type Options = KafkaOptions;
    fn from_options(options: KafkaOptions) -> Result<Self, String> {
        KafkaSpout::new(options)
    }
}

/// `brokers` has a serde default (so a missing one is reported by the component's own check, with the
/// expected form), but is required.
fn kafka_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["brokers"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> KafkaOptions {
        KafkaOptions {
            brokers: "127.0.0.1:9092".into(),
            topic: Some("t".into()),
            ..Default::default()
        }
    }

    #[test]
    fn bad_options_name_the_option() {
        let cases: Vec<(KafkaOptions, &str)> = vec![
            (
                KafkaOptions {
                    brokers: String::new(),
                    ..base()
                },
                "option `brokers`",
            ),
            (
                KafkaOptions {
                    brokers: "localhost".into(),
                    ..base()
                },
                "\"localhost\" is not host:port",
            ),
            (
                KafkaOptions {
                    topic: None,
                    ..base()
                },
                "option `topic`",
            ),
            (
                KafkaOptions {
                    topic: Some("a b".into()),
                    ..base()
                },
                "option `topic` = \"a b\"",
            ),
            (
                KafkaOptions {
                    dead_letter_topic: Some("dlt".into()),
                    ..base()
                },
                "needs `retry.max_retries`",
            ),
            (
                KafkaOptions {
                    fields: vec!["a".into()],
                    ..base()
                },
                "applies only with payload",
            ),
            (
                KafkaOptions {
                    max_uncommitted: 0,
                    ..base()
                },
                "option `max_uncommitted`",
            ),
            (
                KafkaOptions {
                    properties: [("enable.auto.commit".to_string(), PropertyValue::Bool(true))]
                        .into(),
                    ..base()
                },
                "\"enable.auto.commit\" cannot be set here",
            ),
        ];
        for (o, want) in cases {
            let e = KafkaSpout::new(o).err().expect("refused");
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
        assert!(KafkaSpout::new(base()).is_ok());
    }

    #[test]
    fn gaps_and_acks_move_the_commit_point() {
        let mut p = Part::new(Some(10));
        p.begin(10);
        p.next = 13;
        assert_eq!(p.commit_point(), Some(10));
        p.handled(11);
        assert_eq!(p.commit_point(), Some(10));
        p.handled(10);
        assert_eq!(p.commit_point(), Some(12));
        assert_eq!(
            p.uncommitted(),
            3,
            "nothing committed yet: read since the start"
        );
        p.committed = Some(12);
        assert_eq!(p.uncommitted(), 1);
        assert_eq!(p.checked_commit_point(), Some(Ok(12)));
    }

    fn held() -> Held {
        Held {
            values: values![1],
            failures: 0,
            raw: None,
        }
    }

    #[test]
    fn the_commit_point_never_passes_an_offset_not_emitted_and_acked() {
        let mut p = Part::new(Some(0));
        p.begin(0);
        p.next = 5;
        for o in 0..5 {
            p.held.insert(o, held());
        }
        p.held.remove(&0);
        p.handled(0);
        assert_eq!(p.checked_commit_point(), Some(Ok(1)));
        // Offsets 1..3 marked handled while still held (emitted, not acked): refused.
        p.prefix.as_mut().expect("begun").ack(1, 3);
        p.handled += 2;
        let e = p
            .checked_commit_point()
            .expect("begun")
            .expect_err("refused");
        assert!(e.contains("offset 1, emitted and not yet acked"), "{e}");
        // A range handled without being counted (never read, never emitted): refused.
        let mut q = Part::new(Some(0));
        q.begin(0);
        q.next = 10;
        q.prefix.as_mut().expect("begun").ack(0, 4);
        let e = q
            .checked_commit_point()
            .expect("begun")
            .expect_err("refused");
        assert!(
            e.contains("covers 4 offsets from 0 but 0 were handled"),
            "{e}"
        );
        // Past what was read: refused.
        let mut r = Part::new(None);
        r.begin(0);
        r.handle(0, 3);
        r.next = 2;
        let e = r
            .checked_commit_point()
            .expect("begun")
            .expect_err("refused");
        assert!(e.contains("past the next offset to read"), "{e}");
    }

    #[test]
    fn refused_commit_points_are_counted_and_not_committed() {
        let mut parts = Parts::default();
        let slot = parts.slot("t", 0);
        let mut p = Part::new(Some(0));
        p.begin(0);
        p.next = 3;
        p.held.insert(1, held());
        p.prefix.as_mut().expect("begun").ack(0, 2);
        p.handled += 2;
        parts.live.insert(slot, p);
        let counters = KafkaCounters::default();
        assert!(
            parts
                .to_commit([slot].into_iter(), true, &counters, "c")
                .is_empty()
        );
        assert_eq!(counters.refused_commits(), 1);
        assert!(
            counters
                .last_error()
                .expect("logged")
                .contains("not committing t/0")
        );
    }
}
