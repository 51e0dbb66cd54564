//! The built-in component kinds, registered by name for topology files — one explicit list.

use serde::Deserialize;
use topo_bolts::{
    Count, CountOptions, Filter, FilterOptions, Map, MapOptions, Parse, ParseOptions, Split,
    SplitOptions, Stdout, StdoutOptions,
};
use topo_dsl::registry::{OptionDoc, Registry};
use topo_spouts::{GeneratorOptions, GeneratorSpout};

mod join;
mod sinks_db;
mod sinks_out;
mod spouts_io;
mod window;

/// A registry holding every built-in kind. Add your own kinds to it and pass it to
/// [`cli::main_with`](crate::cli::main_with).
pub fn builtin_registry() -> Registry {
    let mut r = Registry::new();
    r.register_spout::<GeneratorOptions, GeneratorSpout>(
        "generator",
        "synthetic sentences, deterministic from a seed; replays identical tuples",
        vec![
            OptionDoc::new(
                "sentences",
                "list of strings",
                "Storm's five example sentences",
                "the sentences to draw from",
            ),
            OptionDoc::new(
                "count",
                "integer",
                "",
                "messages to emit over all tasks; unset = without end",
            ),
            OptionDoc::new(
                "seed",
                "integer",
                "0",
                "seed of the choice of sentence per message",
            ),
            OptionDoc::new("field", "string", "\"sentence\"", "the output field"),
        ],
        |o: &GeneratorOptions| GeneratorSpout::new(o.clone()),
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
    sinks_db::register(&mut r);
    spouts_io::register(&mut r);
    for (kind, example) in EXAMPLES {
        r.example(kind, example);
    }
    r
}

/// A topology-file fragment per built-in kind, printed by `topo components <kind>` (each is
/// loaded by a test, so none goes stale).
const EXAMPLES: &[(&str, &str)] = &[
    (
        "generator",
        r#"
[spouts.sentences]
kind = "generator"
count = 100000            # then the spout is exhausted (`topo run --until-idle` ends)
seed = 7
sentences = ["the cow jumped over the moon", "an apple a day keeps the doctor away"]
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
        "stdin",
        r#"
[spouts.lines]
kind = "stdin"            # `cat access.log | topo run t.toml --until-idle` ends at end of input
max_line_bytes = 1048576
encoding = "lossy"
field = "line"
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
            if let Err(e) = r.build(kind.name(), toml::Value::Table(options)) {
                panic!("example of `{}` does not build: {e}", kind.name());
            }
        }
    }
}
