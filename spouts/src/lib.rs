//! # topo-spouts: the edge
//!
//! Every connector of topo to an external system, its sources ([`topo_runtime::Spout`]s) and
//! its sinks (bolts that write out and ack only after the write), one module per system, over a
//! shared connector layer ([`connector`]):
//!
//! ```text
//!  external system ──► source (spout task) ──emit──► bolts (topo-bolts: processing) ──► sink ──► external system
//!                          ▲                            │                               │
//!                          └──── ack / fail (replay) ◄──┴─────────── ack after the write┘
//! ```
//!
//! Each source states its delivery guarantee: which failed tuples it can replay, and how. Each
//! sink acks an input only once its record is durably written (or accepted by the system).
//!
//! - [`feed`]: new submissions or comments of subreddits from a Reddit-compatible listing API,
//!   once each across polls and restarts (seen set persisted after acks); at-least-once within
//!   the listing's reach.
//! - [`file`](mod@file): the `file` spout tails files (appends, rotation, truncation) and watches
//!   directories through globs; a per-file checkpoint of the acked lines makes it at-least-once
//!   across restarts. The `file` sink writes JSON-lines or CSV files in batches, fsync before
//!   ack, rotation by size and age with `.part` names until complete, optional gzip.
//! - [`generator`]: synthetic sentences or sensor readings, deterministic from a seed, at a rate
//!   or as fast as possible, replaying identical tuples.
//! - [`http`]: the `http` spout receives records POSTed over HTTP (JSON, NDJSON, text lines),
//!   answered `200` once acked downstream (`503` under backpressure); the `http` sink POSTs
//!   batches as NDJSON or a JSON array (2xx acks, 5xx/429/timeouts retried with back-off, other
//!   4xx to the `error` stream).
//! - [`kafka`]: the `kafka` spout reads Apache Kafka topics as a member of a consumer group
//!   (partitions balanced over tasks and processes), the contiguous acked prefix of each
//!   partition committed; failed records replayed with back-off, a dead-letter topic after
//!   `max_retries`. The `kafka` sink produces to topics (idempotent producer; an input acked on
//!   its delivery report).
//! - [`kinesis`]: the `kinesis` spout reads an Amazon Kinesis stream (all shards, resharding
//!   followed), the acked sequence number of each shard checkpointed to a local file; the
//!   `kinesis` sink writes PutRecords batches (refused entries retried alone).
//! - [`mqtt`]: messages of MQTT topics (QoS 0/1, wildcards, shared subscriptions); a QoS 1
//!   message is acknowledged to the broker only once its tuple tree is acked.
//! - [`postgres`]: the `postgres` sink, batches inserted or upserted into a table in one
//!   transaction each; inputs acked after the commit, bad rows to `error`.
//! - [`mod@redis`]: the `redis` sink, batches of sorted-set, hash, string or list updates in one
//!   `MULTI`/`EXEC`; inputs acked after the server's reply.
//! - [`s3`]: the `s3` sink, objects of JSON lines or CSV (gzip, zstd) under time partitions
//!   in S3 or an S3-compatible store; inputs acked once their object is stored.
//! - [`socket`]: lines over TCP, as a client (reconnecting with backoff) or a server of many
//!   clients; at-least-once while the process lives (unacked lines kept in memory).
//! - [`stdin`]: the lines of standard input; exhausted at end of input once every line is acked.
//! - [`connector`]: what the connectors share — the durable sinks' batching and retries, the
//!   warning limiter.

//!
//! ## Cargo features
//!
//! One per external system, all on by default: `kafka`, `kinesis`, `mqtt`, `postgres`, `redis`,
//! `http` (ingest spout and sink), `feed`, `s3`. Each brings its connectors and their heavy
//! dependencies (librdkafka, the AWS SDK, ...); files, sockets, standard input, the generator
//! and the connector layer are always there.

#![deny(missing_docs)]

pub mod connector;
#[cfg(feature = "feed")]
pub mod feed;
pub mod file;
pub mod generator;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "kinesis")]
pub mod kinesis;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "s3")]
pub mod s3;
pub mod socket;
pub mod stdin;

pub use connector::acked::AckedPrefix;
pub use connector::encoding::{Encoding, PayloadFormat};
pub use connector::retry::RetryOptions;
pub use connector::sink::{
    BatchDefaults, BatchOptions, BatchSink, BatchWriter, StandardBatch, WriteError,
};
pub use connector::state::STATE_DIR_ENV;
#[cfg(feature = "feed")]
pub use feed::{FeedCounters, FeedListing, FeedOptions, FeedSpout, OAuthOptions};
pub use file::{
    FileCounters, FileFormat, FileOptions, FileSinkOptions, FileSpout, FileWriter, RotateOptions,
    StartAt,
};
pub use generator::{GeneratorMode, GeneratorOptions, GeneratorSpout, StartTime};
#[cfg(feature = "http")]
pub use http::{
    HttpCounters, HttpEncoding, HttpFormat, HttpOptions, HttpSinkOptions, HttpSpout, HttpWriter,
};
#[cfg(feature = "kafka")]
pub use kafka::{
    Assignment, FirstPoll, KafkaCounters, KafkaOptions, KafkaProperty, KafkaRetry, KafkaSink,
    KafkaSinkCounters, KafkaSinkOptions, KafkaSpout, PropertyValue, SaslMechanism, SaslOptions,
};
#[cfg(feature = "kinesis")]
pub use kinesis::{
    KinesisCounters, KinesisOptions, KinesisSink, KinesisSinkCounters, KinesisSinkOptions,
    KinesisSpout, KinesisStart, KinesisWriter,
};
#[cfg(feature = "mqtt")]
pub use mqtt::{MqttCounters, MqttOptions, MqttSpout};
#[cfg(feature = "postgres")]
pub use postgres::{PostgresColumns, PostgresMode, PostgresOptions, PostgresSink, PostgresWriter};
#[cfg(feature = "redis")]
pub use redis::{RedisCommand, RedisOptions, RedisSink, RedisWriter};
#[cfg(feature = "s3")]
pub use s3::{S3Compression, S3Connection, S3Sink, S3SinkCounters, S3SinkOptions, S3Writer};
pub use socket::{LineCounters, ReconnectOptions, SocketMode, SocketOptions, SocketSpout};
pub use stdin::{StdinOptions, StdinSpout};

/// Every kind of this crate (of the features built), system by system, in the order
/// `topo components` lists them:
/// add them to a [`topo_dsl::Registry`] with [`Registry::add`](topo_dsl::Registry::add).
pub fn kinds() -> Vec<topo_dsl::Kind> {
    let mut kinds = generator::kinds();
    kinds.extend(file::kinds());
    kinds.extend(socket::kinds());
    kinds.extend(stdin::kinds());
    #[cfg(feature = "feed")]
    kinds.extend(feed::kinds());
    #[cfg(feature = "http")]
    kinds.extend(http::kinds());
    #[cfg(feature = "mqtt")]
    kinds.extend(mqtt::source::kinds());
    #[cfg(feature = "kafka")]
    kinds.extend(kafka::kinds());
    #[cfg(feature = "kinesis")]
    kinds.extend(kinesis::kinds());
    #[cfg(feature = "postgres")]
    kinds.extend(postgres::kinds());
    #[cfg(feature = "redis")]
    kinds.extend(redis::kinds());
    #[cfg(feature = "s3")]
    kinds.extend(s3::kinds());
    kinds
}
