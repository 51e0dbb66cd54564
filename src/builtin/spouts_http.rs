//! The `http` ingest spout as a built-in kind (see [`topo_spouts::http`]); options
//! checked when the topology file is loaded.

use topo_dsl::registry::{OptionDoc, Registry};
use topo_spouts::{HttpOptions, HttpSpout};

use super::{Checked, TryFromOptions};

impl TryFromOptions<HttpOptions> for HttpSpout {
    fn try_from_options(options: HttpOptions) -> Result<Self, String> {
        HttpSpout::new(options)
    }
}

/// Registers `http` (spout).
pub(super) fn register(r: &mut Registry) {
    r.register_spout::<Checked<HttpSpout, HttpOptions>, HttpSpout>(
        "http",
        "records POSTed over HTTP (JSON, NDJSON, text lines, gzip); 200 only once acked downstream, 503 + Retry-After under backpressure, 400/413/415 with the reason; GET /health",
        vec![
            OptionDoc::new(
                "address",
                "host:port",
                "",
                "where to listen (required; the first task only); port 0 = any free port",
            ),
            OptionDoc::new("path", "string", "\"/\"", "the path records are POSTed to"),
            OptionDoc::new(
                "format",
                "auto | json | ndjson | text",
                "auto",
                "auto: by Content-Type (application/json, application/x-ndjson or jsonlines, text/plain; others 415); else that format whatever the Content-Type",
            ),
            OptionDoc::new(
                "fields",
                "list of strings",
                "",
                "JSON records: these top-level keys as the output fields (missing: null); unset = one field `record` (text: `line`)",
            ),
            OptionDoc::new(
                "max_body_bytes",
                "integer",
                "10485760",
                "largest body, also after gunzip; larger: 413",
            ),
            OptionDoc::new(
                "max_pending_records",
                "integer",
                "10000",
                "records accepted and not yet acked; a request that would exceed it: 503 with Retry-After",
            ),
            OptionDoc::new(
                "ack_timeout",
                "duration",
                "\"10s\"",
                "how long a request waits for its records' acks; then 503 (the client retries: duplicates possible, no loss)",
            ),
            OptionDoc::new(
                "auth_token",
                "string",
                "",
                "require `Authorization: Bearer <token>`, else 401; unset = no check",
            ),
        ],
        |c: &Checked<HttpSpout, HttpOptions>| c.0.clone(),
    );
}
