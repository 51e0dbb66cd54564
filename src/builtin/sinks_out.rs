//! The `file` and `http` sinks as built-in kinds: options checked when the topology file is
//! loaded, one writer per task.

use topo_dsl::registry::{OptionDoc, Registry};
use topo_spouts::{BatchSink, FileSinkOptions, FileWriter};
#[cfg(feature = "http")]
use topo_spouts::{HttpSinkOptions, HttpWriter};

use super::{Checked, TryFromOptions};

/// The options every durable sink shares (`batch.*`, `retry.*`).
fn shared_docs() -> Vec<OptionDoc> {
    vec![
        OptionDoc::new(
            "batch.max_records",
            "integer",
            "500",
            "write when this many records are pending",
        ),
        OptionDoc::new(
            "batch.max_bytes",
            "integer",
            "1048576",
            "... or when their encoded size reaches this",
        ),
        OptionDoc::new(
            "batch.interval",
            "duration",
            "\"1s\"",
            "... or when the oldest pending record is this old",
        ),
        OptionDoc::new(
            "retry.attempts",
            "integer",
            "5",
            "writes tried before the batch's inputs are failed (and replayed)",
        ),
        OptionDoc::new(
            "retry.backoff",
            "duration",
            "\"100ms\"",
            "first wait between tries; doubles each time",
        ),
        OptionDoc::new(
            "retry.max_backoff",
            "duration",
            "\"10s\"",
            "longest wait between tries",
        ),
    ]
}

/// Registers `file` and `http`.
pub(super) fn register(r: &mut Registry) {
    let mut file_docs = vec![
        OptionDoc::new(
            "dir",
            "path",
            "",
            "the directory written to, created if missing (required)",
        ),
        OptionDoc::new(
            "prefix",
            "string",
            "\"part\"",
            "file names: <prefix>-<task>-<yyyymmddThhmmss>-<seq>.jsonl|.csv[.gz]; `.part` while written",
        ),
        OptionDoc::new(
            "format",
            "jsonl | csv",
            "jsonl",
            "a JSON object per line, or CSV with a header line per file",
        ),
        OptionDoc::new(
            "fields",
            "list of strings",
            "[]",
            "the fields written, in order; empty = every field (csv: the first record's)",
        ),
        OptionDoc::new(
            "gzip",
            "bool",
            "false",
            "gzip the files, one member per batch",
        ),
        OptionDoc::new(
            "rotate.max_bytes",
            "integer",
            "134217728",
            "start a new file once the current one is this big on disk",
        ),
        OptionDoc::new(
            "rotate.max_age",
            "duration",
            "\"1h\"",
            "... or once it has been open this long",
        ),
    ];
    file_docs.extend(shared_docs());
    r.register_bolt::<Checked<FileWriter, FileSinkOptions>, BatchSink<FileWriter>>(
        "file",
        "writes records to JSON-lines or CSV files in batches, acking after fsync; rotation by size and age, optional gzip; records lacking a field to the `error` stream",
        file_docs,
        |c: &Checked<FileWriter, FileSinkOptions>| c.0.clone().into_sink(),
    );

    #[cfg(feature = "http")]
    let mut http_docs = vec![
        OptionDoc::new(
            "url",
            "string",
            "",
            "the http:// or https:// address batches are POSTed to (required)",
        ),
        OptionDoc::new(
            "encoding",
            "ndjson | json",
            "ndjson",
            "a JSON object per line, or one JSON array per batch",
        ),
        OptionDoc::new(
            "headers",
            "table of strings",
            "{}",
            "headers sent with every request (e.g. Authorization)",
        ),
        OptionDoc::new(
            "timeout",
            "duration",
            "\"10s\"",
            "how long one request may take",
        ),
        OptionDoc::new(
            "gzip",
            "bool",
            "false",
            "gzip the body (Content-Encoding: gzip)",
        ),
    ];
    #[cfg(feature = "http")]
    http_docs.extend(shared_docs());
    #[cfg(feature = "http")]
    r.register_bolt::<Checked<HttpWriter, HttpSinkOptions>, BatchSink<HttpWriter>>(
        "http",
        "POSTs batches of records (NDJSON or a JSON array), acking on 2xx; 408/429/5xx and connection errors retried with back-off, other answers to the `error` stream",
        http_docs,
        |c: &Checked<HttpWriter, HttpSinkOptions>| c.0.clone().into_sink(),
    );
}

impl TryFromOptions<FileSinkOptions> for FileWriter {
    fn try_from_options(options: FileSinkOptions) -> Result<Self, String> {
        FileWriter::new(options)
    }
}

#[cfg(feature = "http")]
impl TryFromOptions<HttpSinkOptions> for HttpWriter {
    fn try_from_options(options: HttpSinkOptions) -> Result<Self, String> {
        HttpWriter::new(options)
    }
}
