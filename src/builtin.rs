//! The built-in component kinds, registered by name for topology files — one explicit list.

use serde::Deserialize;
use topo_bolts::{
    Count, CountOptions, Filter, FilterOptions, Map, MapOptions, Parse, ParseOptions, Split,
    SplitOptions, Stdout, StdoutOptions,
};
use topo_dsl::registry::{OptionDoc, Registry};
use topo_spouts::{GeneratorOptions, GeneratorSpout};

mod join;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "kinesis")]
mod kinesis;
mod sentiment;
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
mod throttle;
mod window;

/// A registry holding every built-in kind. Add your own kinds to it and pass it to
/// [`cli::main_with`](crate::cli::main_with).
pub fn builtin_registry() -> Registry {
    let mut r = Registry::new();
    r.register_spout::<Checked<GeneratorSpout, GeneratorOptions>, GeneratorSpout>(
        "generator",
        "synthetic sentences or sensor readings, deterministic from a seed, at a rate or as fast as possible; replays identical tuples",
        vec![
            OptionDoc::new(
                "mode",
                "sentences | sensors",
                "sentences",
                "sentences: one field of text; sensors: (device_id, temperature, humidity, timestamp)",
            ),
            OptionDoc::new(
                "count",
                "integer",
                "",
                "messages to emit over all tasks; unset = without end",
            ),
            OptionDoc::new(
                "rate",
                "number",
                "",
                "messages per second over all tasks, released in batches of ~5 ms; unset = as fast as possible",
            ),
            OptionDoc::new(
                "seed",
                "integer",
                "0",
                "seed of every random choice: message n is always the same tuple",
            ),
            OptionDoc::new(
                "sentences",
                "list of strings",
                "Storm's five example sentences",
                "sentences mode: the sentences to draw from",
            ),
            OptionDoc::new(
                "text_file",
                "path",
                "",
                "sentences mode: draw from the non-empty lines of this file instead (read when the topology loads)",
            ),
            OptionDoc::new(
                "words",
                "list of strings",
                "",
                "sentences mode: build random sentences from these words instead",
            ),
            OptionDoc::new(
                "words_per_sentence",
                "integer",
                "8",
                "sentences mode with `words`: words per sentence",
            ),
            OptionDoc::new("field", "string", "\"sentence\"", "sentences mode: the output field"),
            OptionDoc::new(
                "devices",
                "integer",
                "10",
                "sensors mode: devices, ids \"sensor-0000\".. ; message n is a reading of device n mod devices",
            ),
            OptionDoc::new(
                "anomaly_rate",
                "number from 0 to 1",
                "0.01",
                "sensors mode: fraction of readings 15-25 degrees above the device's normal",
            ),
            OptionDoc::new(
                "anomaly_length",
                "integer",
                "1",
                "sensors mode: consecutive readings of a device one anomaly lasts",
            ),
            OptionDoc::new(
                "start_time",
                "epoch ms or RFC 3339 text",
                "the wall clock at start",
                "sensors mode: timestamp of message 0; message n is at start_time + n * 1000 / rate ms (1 ms apart without rate)",
            ),
        ],
        |c: &Checked<GeneratorSpout, GeneratorOptions>| c.0.clone(),
    );
    r.register_basic_bolt::<Checked<Split, SplitOptions>, Split>(
        "split",
        "one tuple per token of a text field (whitespace-separated or regex matches), optional lowercase and stop words",
        vec![
            OptionDoc::new(
                "field",
                "string",
                "\"sentence\"",
                "the input field holding the text",
            ),
            OptionDoc::new(
                "output",
                "string",
                "\"word\"",
                "the output field of each token",
            ),
            OptionDoc::new("lowercase", "bool", "false", "lowercase each token"),
            OptionDoc::new("pattern", "regex", "", "matches the tokens (e.g. \"[\\\\w']+\"); unset = split on whitespace"),
            OptionDoc::new("stop_words", "list of strings", "[]", "tokens to drop (after lowercasing)"),
        ],
        |c: &Checked<Split, SplitOptions>| c.0.clone(),
    );
    r.register_basic_bolt::<CountOptions, Count>(
        "count",
        "running count per key; emits (key, count) on every update",
        vec![OptionDoc::new(
            "field",
            "string",
            "\"word\"",
            "the field counted; also the first output field",
        )],
        |o: &CountOptions| Count::new(o.clone()),
    );
    r.register_basic_bolt::<CheckedParse, Parse>(
        "parse",
        "raw text to fields: json, csv, tsv, clf, combined, syslog, kv; malformed input to the `error` stream (reason, raw)",
        vec![
            OptionDoc::new("format", "json | csv | tsv | clf | combined | syslog | kv", "", "the input format (required)"),
            OptionDoc::new("field", "string", "\"line\"", "the input field holding the raw text or bytes"),
            OptionDoc::new("fields", "list of strings", "", "output fields: keys (json, dotted paths reach into objects), columns (csv, tsv) or keys (kv); clf, combined and syslog have fixed fields"),
            OptionDoc::new("header", "bool", "false", "csv/tsv: the first line names the columns"),
            OptionDoc::new("delimiter", "string", "whitespace", "kv: between pairs"),
            OptionDoc::new("separator", "string", "\"=\"", "kv: between key and value"),
        ],
        |p: &CheckedParse| p.0.clone(),
    );
    r.register_basic_bolt::<Checked<Filter, FilterOptions>, Filter>(
        "filter",
        "keeps tuples for which a CEL expression is true (e.g. status >= 500 && path.startsWith(\"/api\")); errors to the `error` stream",
        vec![
            OptionDoc::new("expression", "CEL expression", "", "evaluated per tuple with each input field as a variable (required)"),
            OptionDoc::new("fields", "list of strings", "the input's fields", "the fields of a kept tuple passed on, in order; unset = the input unchanged"),
        ],
        |c: &Checked<Filter, FilterOptions>| c.0.clone(),
    );
    r.register_basic_bolt::<Checked<Map, MapOptions>, Map>(
        "map",
        "computes output fields from CEL expressions over the input fields; errors to the `error` stream",
        vec![OptionDoc::new(
            "fields",
            "list of { name = \"expression\" }",
            "",
            "the output fields in order, each with its expression (required)",
        )],
        |c: &Checked<Map, MapOptions>| c.0.clone(),
    );
    r.register_basic_bolt::<StdoutOptions, Stdout>(
        "stdout",
        "prints each tuple as one line (JSON or field=value) and acks it once written",
        vec![
            OptionDoc::new(
                "format",
                "json | pretty",
                "json",
                "JSON object per line, or field=value pairs",
            ),
            OptionDoc::new(
                "show_source",
                "bool",
                "false",
                "prefix each line with the source component and stream",
            ),
        ],
        |o: &StdoutOptions| Stdout::new(o.clone()),
    );
    join::register(&mut r);
    window::register(&mut r);
    sinks_out::register(&mut r);
    #[cfg(any(feature = "postgres", feature = "redis"))]
    sinks_db::register(&mut r);
    spouts_file::register(&mut r);
    spouts_io::register(&mut r);
    #[cfg(feature = "feed")]
    spouts_feed::register(&mut r);
    sentiment::register(&mut r);
    #[cfg(feature = "http")]
    spouts_http::register(&mut r);
    #[cfg(feature = "mqtt")]
    spouts_mqtt::register(&mut r);
    #[cfg(feature = "kafka")]
    kafka::register(&mut r);
    #[cfg(feature = "kinesis")]
    kinesis::register(&mut r);
    throttle::register(&mut r);
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
        "generator",
        r#"
[spouts.sentences]
kind = "generator"
count = 100000            # then the spout is exhausted (`topo run --until-idle` ends)
rate = 20000              # per second over all tasks; unset = as fast as possible
seed = 7                  # message n is always the same tuple (replays are identical)
sentences = ["the cow jumped over the moon", "an apple a day keeps the doctor away"]
# or: text_file = "corpus.txt" (its non-empty lines), or: words = ["a", "b"], words_per_sentence = 8

# sensor readings instead: fields device_id, temperature, humidity, timestamp (epoch ms)
# [spouts.readings]  kind = "generator"  mode = "sensors"  rate = 20000  devices = 10
#   anomaly_rate = 0.01  anomaly_length = 200  start_time = "2026-01-01T00:00:00Z"
"#,
    ),
    (
        "split",
        r#"
[bolts.words]
kind = "split"
field = "sentence"
lowercase = true
pattern = "[\\w']+"       # tokens are the matches; unset = split on whitespace
stop_words = ["the", "a", "an"]
inputs = [{ from = "sentences" }]
"#,
    ),
    (
        "count",
        r#"
[bolts.counts]
kind = "count"
field = "word"
parallelism = 2
inputs = [{ from = "words", grouping = { fields = ["word"] } }]
"#,
    ),
    (
        "parse",
        r#"
[bolts.parsed]
kind = "parse"
format = "combined"       # fields: host ident user time method path protocol status bytes referer agent
field = "line"
inputs = [{ from = "access_log" }]

# malformed lines, with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "parsed", stream = "error" }]
"#,
    ),
    (
        "filter",
        r#"
[bolts.server_errors]
kind = "filter"
expression = 'status >= 500 && path.startsWith("/api")'
fields = ["host", "path", "status", "bytes"]   # unset = every input field, unchanged
inputs = [{ from = "parsed" }]
"#,
    ),
    (
        "map",
        r#"
[bolts.shaped]
kind = "map"
fields = [
  { path = "path" },
  { kb = "double(bytes) / 1024.0" },
  { slow = "status >= 500 ? 'error' : 'ok'" },
]
inputs = [{ from = "server_errors" }]
"#,
    ),
    (
        "stdout",
        r#"
[bolts.print]
kind = "stdout"
format = "json"           # or "pretty": field=value pairs
show_source = true
inputs = [{ from = "shaped" }, { from = "parsed", stream = "error" }]
"#,
    ),
    (
        "join",
        r#"
[bolts.enriched]
kind = "join"
window = "10s"            # tumbling; add slide = "5s" for sliding windows
from = { source = "orders", key = ["user_id"] }
join = [{ source = "users", key = ["id"], type = "left" }]
select = ["orders.order_id", "orders.amount", "users.name as customer"]
inputs = [{ from = "orders" }, { from = "users" }]
"#,
    ),
    (
        "rolling_count",
        r#"
[bolts.counts]
kind = "rolling_count"
field = "word"
window = "5m"             # counts over the last 5 minutes ...
emit_every = "1m"         # ... emitted every minute
parallelism = 2
inputs = [{ from = "words", grouping = { fields = ["word"] } }]
"#,
    ),
    (
        "rankings",
        r#"
[bolts.intermediate]
kind = "rankings"
mode = "intermediate"     # then a `mode = "total"` rankings bolt with the global grouping
top = 10
emit_every = "2s"
parallelism = 2
inputs = [{ from = "counts", grouping = { fields = ["word"] } }]
"#,
    ),
    (
        "window",
        r#"
[bolts.per_path]
kind = "window"
length = "1m"             # a duration, or a number of tuples (count windows)
slide = "10s"             # unset = tumbling
time = "event"            # or "processing" (the default)
timestamp = "ts"          # epoch milliseconds or RFC 3339 text
lag = "5s"                # allowed out-of-orderness; later tuples go to the `late` stream
group_by = ["path"]
aggregates = [
  { fn = "count", as = "hits" },
  { fn = "sum", field = "bytes", as = "bytes" },
  { fn = "avg", field = "ms", as = "mean_ms" },
  { fn = "approx_count_distinct", field = "user", as = "users" },
  { fn = "top_k", field = "status", k = 3, as = "top_statuses" },
]
inputs = [{ from = "parsed", grouping = { fields = ["path"] } }]
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
    (
        "sentiment",
        r#"
[bolts.mood]
kind = "sentiment"
field = "title"           # VADER: compound score from -1 to 1, label positive/negative/neutral
keep = ["fullname", "title"]
inputs = [{ from = "news" }]

# inputs without text (a null field), with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "mood", stream = "error" }]
"#,
    ),
];

/// `parse` options checked when the topology is loaded, so a bad combination is reported with
/// its place in the file rather than when a task starts.
#[derive(Clone, Deserialize)]
#[serde(try_from = "ParseOptions")]
struct CheckedParse(Parse);

impl TryFrom<ParseOptions> for CheckedParse {
    type Error = String;

    fn try_from(options: ParseOptions) -> Result<Self, String> {
        Parse::new(options).map(CheckedParse)
    }
}

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

impl TryFromOptions<GeneratorOptions> for GeneratorSpout {
    fn try_from_options(options: GeneratorOptions) -> Result<Self, String> {
        GeneratorSpout::try_new(options)
    }
}

impl TryFromOptions<SplitOptions> for Split {
    fn try_from_options(options: SplitOptions) -> Result<Self, String> {
        Split::new(options)
    }
}

impl TryFromOptions<FilterOptions> for Filter {
    fn try_from_options(options: FilterOptions) -> Result<Self, String> {
        Filter::new(options)
    }
}

impl TryFromOptions<MapOptions> for Map {
    fn try_from_options(options: MapOptions) -> Result<Self, String> {
        Map::new(options)
    }
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
