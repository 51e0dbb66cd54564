//! The built-in component kinds, registered by name for topology files — one explicit list.

use serde::Deserialize;
use topo_dsl::registry::Registry;

#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "kinesis")]
mod kinesis;
#[cfg(any(feature = "postgres", feature = "redis"))]
mod sinks_db;
mod sinks_out;
#[cfg(feature = "feed")]
mod spouts_feed;
mod spouts_file;
#[cfg(feature = "http")]
mod spouts_http;
mod spouts_io;
#[cfg(feature = "mqtt")]
mod spouts_mqtt;

/// A registry holding every built-in kind. Add your own kinds to it and pass it to
/// [`cli::main_with`](crate::cli::main_with).
pub fn builtin_registry() -> Registry {
    let mut r = Registry::new();
    for kind in topo_spouts::kinds() {
        r.add(kind);
    }
    for kind in topo_bolts::kinds() {
        r.add(kind);
    }
    sinks_out::register(&mut r);
    #[cfg(any(feature = "postgres", feature = "redis"))]
    sinks_db::register(&mut r);
    spouts_file::register(&mut r);
    spouts_io::register(&mut r);
    #[cfg(feature = "feed")]
    spouts_feed::register(&mut r);
    #[cfg(feature = "http")]
    spouts_http::register(&mut r);
    #[cfg(feature = "mqtt")]
    spouts_mqtt::register(&mut r);
    #[cfg(feature = "kafka")]
    kafka::register(&mut r);
    #[cfg(feature = "kinesis")]
    kinesis::register(&mut r);
    for (kind, example) in EXAMPLES {
        r.example(kind, example);
    }
    r
}

/// A topology-file fragment per built-in kind, printed by `topo components <kind>` (each is
/// loaded by a test, so none goes stale).
const EXAMPLES: &[(&str, &str)] = &[
    (
        "kafka",
        r#"
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
# output: topic, partition, offset, key, value, timestamp, headers

# undecodable records, with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "lines", stream = "error" }]
"#,
    ),
    (
        "kafka",
        r#"
[bolts.ship]
kind = "kafka"
brokers = "127.0.0.1:9092"
topic = "counts"             # or topic_field = "dest"
key_field = "word"           # or key = "fixed"; neither: no key
# value_field = "line"       # unset: the whole tuple as one JSON object
idempotent = true
linger = "5ms"
batch_size = 10000
delivery_timeout = "30s"     # then the record's input is failed (and replayed)
properties = { "compression.type" = "lz4" }
inputs = [{ from = "lines" }]
"#,
    ),
    (
        "kinesis",
        r#"
[spouts.readings]
kind = "kinesis"
stream = "sensors"
endpoint = "http://127.0.0.1:4567"   # a Kinesis-compatible server; unset = AWS (region, credential chain)
region = "us-east-1"
start_at = "trim_horizon" # without a checkpoint; or "latest", "at_timestamp" (+ timestamp), ...
payload = "json"          # or "utf8", "strict", "bytes"
fields = ["device_id", "temperature"]   # output: shard, sequence, partition_key, data, device_id, temperature
checkpoint_interval = "1s"   # acked sequence number per shard under state_dir (default .topo/state/<topology>/<component>)
retry = { backoff = "100ms", max_backoff = "10s", attempts = 0 }   # 0 = retry forever
# stop_at_end = true      # read to the current end, then end (`topo run --until-idle`)

# undecodable records, with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "readings", stream = "error" }]
"#,
    ),
    (
        "kinesis",
        r#"
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
"#,
    ),
    (
        "postgres",
        r#"
[bolts.store]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/test"
table = "word_counts"     # must exist: CREATE TABLE word_counts (word text PRIMARY KEY, count bigint)
columns = ["word", "count"]
mode = "upsert"           # or "insert"
key = ["word"]
batch = { max_records = 500, interval = "1s" }      # one transaction per batch, acked after commit
retry = { attempts = 5, backoff = "100ms", max_backoff = "10s" }
inputs = [{ from = "counts", grouping = { fields = ["word"] } }]
"#,
    ),
    (
        "redis",
        r#"
[bolts.board]
kind = "redis"
url = "redis://127.0.0.1:6379/0"
command = "zadd"          # zincrby, hset, hincrby, set, incrby, rpush
key = "leaderboard:{region}"   # {field} takes the tuple's value
member = "word"
value = "count"
ttl = "1d"
inputs = [{ from = "counts", grouping = { fields = ["word"] } }]
"#,
    ),
    (
        "file",
        r#"
[bolts.archive]
kind = "file"
dir = "out/logs"          # files <prefix>-<task>-<UTC time>-<seq>.jsonl.gz; ".part" while written
prefix = "access"
format = "jsonl"          # or "csv" (a header line per file)
gzip = true               # one gzip member per batch: every acked record is readable
rotate = { max_bytes = 134217728, max_age = "1h" }
batch = { max_records = 500, interval = "1s" }      # appended and fsynced, then acked
inputs = [{ from = "server_errors" }]
"#,
    ),
    (
        "http",
        r#"
[bolts.ship]
kind = "http"
url = "http://127.0.0.1:8080/ingest"
encoding = "ndjson"       # or "json": one array per batch
headers = { Authorization = "Bearer ${INGEST_TOKEN:-dev}" }
timeout = "10s"
retry = { attempts = 5, backoff = "100ms", max_backoff = "10s" }   # 408/429/5xx retried; other 4xx to `error`
inputs = [{ from = "shaped" }]
"#,
    ),
    (
        "socket",
        r#"
[spouts.lines]
kind = "socket"
mode = "client"           # read from `nc -lk 9999`; or "server": listen (fields line, peer)
address = "127.0.0.1:9999"
max_line_bytes = 1048576  # longer lines go to the `error` stream (reason, raw)
encoding = "lossy"        # or "strict" (bad UTF-8 to `error`) or "bytes"
reconnect = { backoff = "100ms", max_backoff = "10s", attempts = 0 }   # 0 = retry forever

# bad lines, with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "lines", stream = "error" }]
"#,
    ),
    (
        "http",
        r#"
[spouts.ingest]
kind = "http"
address = "127.0.0.1:8080"  # curl -H 'Content-Type: application/x-ndjson' --data-binary @events.ndjson localhost:8080/ingest
path = "/ingest"
format = "auto"           # by Content-Type: application/json, application/x-ndjson, text/plain
fields = ["host", "status", "path"]   # top-level keys of each JSON object; unset = one field `record`
max_body_bytes = 10485760 # larger: 413
max_pending_records = 10000   # more in flight: 503 + Retry-After
ack_timeout = "10s"       # 200 only once every record is acked; after this, 503 (the client retries)
auth_token = "${INGEST_TOKEN:-dev}"   # Authorization: Bearer <token>, else 401

# refused bodies (400, 413), with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "ingest", stream = "error" }]
"#,
    ),
    (
        "file",
        r#"
[spouts.logs]
kind = "file"
paths = ["/var/log/app/*.log", "/var/log/app/*.log.1"]   # globs; keep rotated names matched
exclude = ["**/debug*"]
start_at = "beginning"    # or "end": skip what a file found at start-up already holds
poll_interval = "250ms"
checkpoint_interval = "1s"   # acked offsets per file under state_dir (default .topo/state/<topology>/<component>)
include_path = true       # fields: line, path, offset
# until_eof = true        # read what is there, then end (`topo run --until-idle`)
"#,
    ),
    (
        "mqtt",
        r#"
[spouts.readings]
kind = "mqtt"
broker = "mqtt://127.0.0.1:1883"
topics = ["sensors/+/reading"]   # `+` one level, `#` the rest
qos = 1                   # PUBACK once the tuple tree is acked; unacked ones come again
client_id = "ingest"      # keep it across restarts: the broker resumes the session
payload = "json"          # or "utf8", "strict", "bytes"
fields = ["device_id", "temperature"]   # output: topic, payload, device_id, temperature
max_payload_bytes = 65536 # larger ones to the `error` stream (reason, raw)
reconnect = { backoff = "100ms", max_backoff = "10s", attempts = 0 }   # 0 = retry forever
# shared_group = "ingest" # parallelism > 1: each message to one task

# bad payloads, with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "readings", stream = "error" }]
"#,
    ),
    (
        "stdin",
        r#"
[spouts.lines]
kind = "stdin"            # `cat access.log | topo run t.toml --until-idle` ends at end of input
max_line_bytes = 1048576
encoding = "lossy"
field = "line"
"#,
    ),
    (
        "feed",
        r#"
[spouts.news]
kind = "feed"
subreddits = ["worldnews", "news+politics"]   # "a+b": one multireddit
listing = "submissions"   # or "comments"
user_agent = "linux:my-news-app:v1.0 (by /u/me)"
poll_interval = "5s"      # polls that bring nothing back off up to max_poll_interval
max_poll_interval = "16s"
# oauth = { client_id = "...", client_secret = "..." }   # then oauth.reddit.com
# state_dir = "state/news"  # seen fullnames, written after acks; a restart emits each item once
max_items = 0             # 0 = without end; n = end after n new items

# bad responses and items, with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "news", stream = "error" }]
"#,
    ),
];

/// A bolt built from its options while the topology is loaded (expressions compiled once, errors
/// reported with their place in the file); each task gets a clone.
#[derive(Clone)]
struct Checked<B, O>(B, std::marker::PhantomData<fn() -> O>);

impl<'de, B, O> Deserialize<'de> for Checked<B, O>
where
    O: Deserialize<'de>,
    B: TryFromOptions<O>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let options = O::deserialize(d)?;
        B::try_from_options(options)
            .map(|b| Checked(b, std::marker::PhantomData))
            .map_err(serde::de::Error::custom)
    }
}

/// Builds a bolt from its options, or says what is wrong with them.
trait TryFromOptions<O>: Sized {
    fn try_from_options(options: O) -> Result<Self, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every built-in kind has an example, and each example's options build the kind.
    #[test]
    fn every_kind_has_an_example_that_builds() {
        let r = builtin_registry();
        for kind in r.kinds() {
            let example = kind
                .example()
                .unwrap_or_else(|| panic!("kind `{}` has no example", kind.name()));
            let doc: toml::Table = toml::from_str(example)
                .unwrap_or_else(|e| panic!("example of `{}`: {e}", kind.name()));
            let section = if kind.role() == topo_dsl::registry::Role::Spout {
                "spouts"
            } else {
                "bolts"
            };
            let tables = doc[section]
                .as_table()
                .expect("a [spouts.x] or [bolts.x] table");
            assert_eq!(
                tables.len(),
                1,
                "example of `{}`: one component",
                kind.name()
            );
            let mut options = tables
                .values()
                .next()
                .and_then(|v| v.as_table())
                .cloned()
                .expect("a table");
            assert_eq!(
                options
                    .remove("kind")
                    .and_then(|k| k.as_str().map(String::from))
                    .as_deref(),
                Some(kind.name())
            );
            for key in ["parallelism", "inputs", "tick_interval"] {
                options.remove(key);
            }
            if let Err(e) = r.build(kind.role(), kind.name(), toml::Value::Table(options)) {
                panic!("example of `{}` does not build: {e}", kind.name());
            }
        }
    }
}
