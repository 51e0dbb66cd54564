//! The `kinesis` spout and the `kinesis` sink as built-in kinds (see [`topo_spouts::kinesis`]
//! and [`topo_spouts::kinesis::sink`]); options checked when the topology file is loaded.

use topo_dsl::registry::{OptionDoc, Registry};
use topo_spouts::{BatchSink, KinesisOptions, KinesisSinkOptions, KinesisSpout, KinesisWriter};

use super::{Checked, TryFromOptions};

impl TryFromOptions<KinesisOptions> for KinesisSpout {
    fn try_from_options(options: KinesisOptions) -> Result<Self, String> {
        KinesisSpout::new(options)
    }
}

impl TryFromOptions<KinesisSinkOptions> for KinesisWriter {
    fn try_from_options(options: KinesisSinkOptions) -> Result<Self, String> {
        options.check()?;
        Ok(KinesisWriter::new(options))
    }
}

/// Options both kinds share: where the stream is and how to sign in.
fn connection_docs() -> Vec<OptionDoc> {
    vec![
        OptionDoc::new("stream", "string", "", "the stream's name (required)"),
        OptionDoc::new(
            "region",
            "string",
            "the SDK's (AWS_REGION, profile), else \"us-east-1\"",
            "the AWS region",
        ),
        OptionDoc::new(
            "endpoint",
            "http(s) URL",
            "AWS's endpoint of the region",
            "a Kinesis-compatible server, e.g. \"http://127.0.0.1:4567\" (kinesalite)",
        ),
        OptionDoc::new(
            "access_key_id",
            "string",
            "",
            "static credentials with `secret_access_key` (use ${ENV}); unset = the SDK's default credential chain",
        ),
        OptionDoc::new(
            "secret_access_key",
            "string",
            "",
            "the secret of `access_key_id`",
        ),
    ]
}

/// Registers the spout `kinesis` and the bolt `kinesis`.
pub(super) fn register(r: &mut Registry) {
    let mut docs = connection_docs();
    docs.extend([
        OptionDoc::new(
            "start_at",
            "trim_horizon | latest | at_sequence_number | after_sequence_number | at_timestamp",
            "trim_horizon",
            "where a shard without a checkpoint starts",
        ),
        OptionDoc::new(
            "sequence_number",
            "string",
            "",
            "with start_at = at/after_sequence_number",
        ),
        OptionDoc::new(
            "timestamp",
            "RFC 3339 time",
            "",
            "with start_at = at_timestamp",
        ),
        OptionDoc::new(
            "payload",
            "utf8 | strict | bytes | json",
            "utf8",
            "how a record's data becomes the `data` field; bad UTF-8 (strict) or JSON (json) to `error`",
        ),
        OptionDoc::new(
            "fields",
            "list of strings",
            "[]",
            "payload = \"json\": keys of the object emitted as fields after (shard, sequence, partition_key, data)",
        ),
        OptionDoc::new(
            "poll_interval",
            "duration",
            "\"200ms\"",
            "least time between GetRecords calls of one shard (at least 200ms: 5 reads/s per shard)",
        ),
        OptionDoc::new(
            "max_records",
            "integer",
            "10000",
            "records per GetRecords call (1..=10000), at most 10 MiB a call",
        ),
        OptionDoc::new(
            "checkpoint_interval",
            "duration",
            "\"1s\"",
            "how often each shard's last acked sequence number (contiguous prefix) is written",
        ),
        OptionDoc::new(
            "shard_refresh",
            "duration",
            "\"10s\"",
            "how often shards are listed again (resharding: children read once their parents ended and are checkpointed)",
        ),
        OptionDoc::new(
            "state_dir",
            "path",
            "$TOPO_STATE_DIR (or .topo/state)/<topology>/<component>",
            "where the checkpoints (shard-<id>.json) are kept; shared by the spout's tasks",
        ),
        OptionDoc::new(
            "retry.backoff",
            "duration",
            "\"100ms\"",
            "first wait after a failed or throttled call; doubles each time",
        ),
        OptionDoc::new(
            "retry.max_backoff",
            "duration",
            "\"10s\"",
            "longest wait between tries",
        ),
        OptionDoc::new(
            "retry.attempts",
            "integer",
            "0",
            "failures in a row after which a shard's reader (or the listing) gives up; 0 = forever",
        ),
        OptionDoc::new(
            "stop_at_end",
            "bool",
            "false",
            "read each shard to its current end, then end (`topo run --until-idle`)",
        ),
    ]);
    r.register_spout::<Checked<KinesisSpout, KinesisOptions>, KinesisSpout>(
        "kinesis",
        "records of an Amazon Kinesis stream (every shard, resharding followed), each shard's acked sequence number checkpointed and resumed from; throttling backed off; bad records to `error`",
        docs,
        |c: &Checked<KinesisSpout, KinesisOptions>| c.0.clone(),
    );

    let mut docs = connection_docs();
    docs.extend([
        OptionDoc::new(
            "partition_key_field",
            "string",
            "",
            "the field whose value (text or number) is the partition key (required)",
        ),
        OptionDoc::new(
            "data_field",
            "string",
            "the whole tuple as a JSON object",
            "the field sent as the record's data (text or bytes as they are, other values as JSON)",
        ),
        OptionDoc::new(
            "batch.max_records",
            "integer",
            "500",
            "put when this many records are pending (at most 500)",
        ),
        OptionDoc::new(
            "batch.max_bytes",
            "integer",
            "1048576",
            "... or when their size reaches this (at most 5 MiB)",
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
            "tries before the batch's inputs are failed (and replayed); refused entries are retried alone",
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
    ]);
    r.register_bolt::<Checked<KinesisWriter, KinesisSinkOptions>, BatchSink<KinesisWriter>>(
        "kinesis",
        "puts records into an Amazon Kinesis stream with PutRecords (≤ 500 records / 5 MiB a call), the partition key from a field; refused entries retried with back-off; an input acked once its record is accepted",
        docs,
        |c: &Checked<KinesisWriter, KinesisSinkOptions>| c.0.clone().into_sink(),
    );
}
