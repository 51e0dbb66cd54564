//! # topo-spouts
//!
//! topo's built-in sources, each a [`topo_runtime::Spout`] usable from topology files and Rust:
//!
//! ```text
//! source (Kafka, Kinesis, socket, file, feed, generator, ...) ──► spout task ──emit──► collector ──► bolts
//!                                  ▲                                    │
//!                                  └──── ack / fail (replay) ◄──────────┘
//! ```
//!
//! Each spout states its delivery guarantee: which failed tuples it can replay, and how.
//!
//! - [`feed`]: new submissions or comments of subreddits from a Reddit-compatible listing API,
//!   once each across polls and restarts (seen set persisted after acks); at-least-once within
//!   the listing's reach.
//! - [`file`](mod@file): tails files (appends, rotation, truncation) and watches directories through
//!   globs; a per-file checkpoint of the acked lines makes it at-least-once across restarts.
//! - [`generator`]: synthetic sentences or sensor readings, deterministic from a seed, at a rate
//!   or as fast as possible, replaying identical tuples.
//! - [`http_ingest`]: records POSTed over HTTP (JSON, NDJSON, text lines), answered `200` once
//!   acked downstream (`503` under backpressure), so retrying clients get at-least-once.
//! - [`kafka`]: records of Apache Kafka topics as a member of a consumer group (partitions
//!   balanced over tasks and processes), the contiguous acked prefix of each partition
//!   committed; failed records replayed with back-off, a dead-letter topic after `max_retries`.
//! - [`kinesis`]: records of an Amazon Kinesis stream (all shards, resharding followed), the
//!   acked sequence number of each shard checkpointed to a local file; at-least-once across
//!   restarts.
//! - [`mqtt`]: messages of MQTT topics (QoS 0/1, wildcards, shared subscriptions); a QoS 1
//!   message is acknowledged to the broker only once its tuple tree is acked.
//! - [`socket`]: lines over TCP, as a client (reconnecting with backoff) or a server of many
//!   clients; at-least-once while the process lives (unacked lines kept in memory).
//! - [`stdin`]: the lines of standard input; exhausted at end of input once every line is acked.

#![deny(missing_docs)]

pub mod feed;
pub mod file;
pub mod generator;
pub mod http_ingest;
pub mod kafka;
pub mod kinesis;
mod lease;
pub mod mqtt;
pub mod socket;
pub mod stdin;
mod warn;

pub use feed::{FeedCounters, FeedListing, FeedOptions, FeedSpout, OAuthOptions};
pub use file::{AckedPrefix, FileCounters, FileOptions, FileSpout, StartAt};
pub use generator::{GeneratorMode, GeneratorOptions, GeneratorSpout, StartTime};
pub use http_ingest::{HttpCounters, HttpFormat, HttpOptions, HttpSpout};
pub use kafka::{
    Assignment, FirstPoll, KafkaCounters, KafkaOptions, KafkaRetry, KafkaSpout, PropertyValue,
};
pub use kinesis::{KinesisCounters, KinesisOptions, KinesisSpout, KinesisStart};
pub use mqtt::{MqttCounters, MqttOptions, MqttSpout, PayloadFormat};
pub use socket::{
    Encoding, LineCounters, ReconnectOptions, SocketMode, SocketOptions, SocketSpout,
};
pub use stdin::{StdinOptions, StdinSpout};

/// The kinds of this crate that describe themselves, in the order `topo components` lists them:
/// add them to a [`topo_dsl::Registry`] with [`Registry::add`](topo_dsl::Registry::add).
pub fn kinds() -> Vec<topo_dsl::Kind> {
    [generator::kinds()].into_iter().flatten().collect()
}
