//! # topo-bolts
//!
//! topo's built-in processing steps and sinks, each a [`topo_runtime::BasicBolt`] (synchronous,
//! acked for you) or [`topo_runtime::Bolt`] (async, manual ack — for sinks that ack only after a
//! durable write):
//!
//! ```text
//! queue ──► bolt task ──execute──► filter / map / split / window / join / top-k / sink
//!                                     │ emit (anchored)            │ ack / fail
//!                                     ▼                            ▼
//!                                  collector ──► next bolts      acker
//! ```
//!
//! - [`expr`]: `filter` (keep tuples where a CEL expression is true) and `map` (output fields
//!   computed by CEL expressions over the input fields); failed evaluations to `error`.
//! - [`join`]: `join` (windowed stream-stream join on key fields, inner and left, choosing the
//!   output fields; holds or acks on receipt).
//! - [`file_sink`]: `file` (records to JSON-lines or CSV files in batches, fsync before ack,
//!   rotation by size and age with `.part` names until complete, optional gzip).
//! - [`http_sink`]: `http` (POSTs batches as NDJSON or a JSON array, optional gzip; 2xx acks,
//!   5xx/429/timeouts retried with back-off, other 4xx to the `error` stream).
//! - [`kafka_sink`]: `kafka` (produces to Kafka topics, topic and key fixed or from fields,
//!   idempotent producer; an input acked on its delivery report, failed on a delivery error).
//! - [`kinesis_sink`]: `kinesis` (PutRecords batches of ≤ 500 records / 5 MiB to an Amazon
//!   Kinesis stream; refused entries retried alone; an input acked once its record is accepted).
//! - [`parse`]: `parse` (raw text — JSON, CSV/TSV, access logs, syslog, key=value — to fields;
//!   malformed input to the `error` stream).
//! - [`postgres_sink`]: `postgres` (batches inserted or upserted into a table in one transaction
//!   each; inputs acked after the commit, bad rows to `error`).
//! - [`redis_sink`]: `redis` (batches of sorted-set, hash, string or list updates in one
//!   `MULTI`/`EXEC`; inputs acked after the server's reply).
//! - [`sink`]: what every durable sink shares — batching, ack after the write, retries with
//!   back-off ([`BatchSink`] around a [`BatchWriter`]).
//! - [`rank`]: `rolling_count` (counts per object over a sliding window of slots) and
//!   `rankings` (intermediate and total top-N, for trending topics).
//! - [`sentiment`]: `sentiment` (VADER's compound score and a positive/negative/neutral label
//!   of a text field; inputs without text to `error`).
//! - [`stdout`]: `stdout` (prints each tuple as a JSON or `field=value` line, acks once written).
//! - [`throttle`]: `throttle` (passes inputs on unchanged at most `rate` tuples per second per
//!   task, a token bucket with `burst`; the excess waits, so backpressure reaches upstream).
//! - [`window`]: `window` (count, sum, min, max, avg, distinct counts and top-k over tumbling or
//!   sliding windows, by duration or count, in processing or event time, per group; late tuples
//!   to `late`).
//! - [`words`]: `split` (text to tokens) and `count` (running counts per key).

#![deny(missing_docs)]

pub mod expr;
pub mod file_sink;
pub mod http_sink;
pub mod join;
pub mod kafka_sink;
pub mod kinesis_sink;
pub mod parse;
pub mod postgres_sink;
pub mod rank;
pub mod redis_sink;
pub mod sentiment;
pub mod sink;
pub mod stdout;
pub mod throttle;
pub mod window;
pub mod words;

pub use expr::{Filter, FilterOptions, Map, MapOptions};
pub use file_sink::{FileFormat, FileSinkOptions, FileWriter, RotateOptions};
pub use http_sink::{HttpEncoding, HttpSinkOptions, HttpWriter};
pub use join::{FromSide, Join, JoinOptions, JoinSide, JoinType};
pub use kafka_sink::{KafkaProperty, KafkaSink, KafkaSinkCounters, KafkaSinkOptions};
pub use kinesis_sink::{KinesisSink, KinesisSinkCounters, KinesisSinkOptions, KinesisWriter};
pub use parse::{Format, Parse, ParseOptions};
pub use postgres_sink::{
    PostgresColumns, PostgresMode, PostgresOptions, PostgresSink, PostgresWriter,
};
pub use rank::{RankMode, Rankings, RankingsOptions, RollingCount, RollingCountOptions};
pub use redis_sink::{RedisCommand, RedisOptions, RedisSink, RedisWriter};
pub use sentiment::{Sentiment, SentimentOptions};
pub use sink::{BatchOptions, BatchSink, BatchWriter, RetryOptions, WriteError};
pub use stdout::{Stdout, StdoutFormat, StdoutOptions};
pub use throttle::{Throttle, ThrottleOptions};
pub use window::{AggregateOptions, Anchoring, Extent, TimeMode, Window, WindowOptions};
pub use words::{Count, CountOptions, Split, SplitOptions};

/// Every processing kind of this crate, in the order `topo components` lists them: add them to
/// a [`topo_dsl::Registry`] with [`Registry::add`](topo_dsl::Registry::add).
pub fn kinds() -> Vec<topo_dsl::Kind> {
    [
        words::kinds(),
        parse::kinds(),
        expr::kinds(),
        stdout::kinds(),
        join::kinds(),
        rank::kinds(),
        sentiment::kinds(),
        throttle::kinds(),
        window::kinds(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
