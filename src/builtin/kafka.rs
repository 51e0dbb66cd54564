//! The `kafka` spout and the `kafka` sink as built-in kinds (see [`topo_spouts::kafka`] and
//! [`topo_spouts::kafka::sink`]); options checked when the topology file is loaded.

use topo_dsl::registry::{OptionDoc, Registry};
use topo_spouts::{KafkaOptions, KafkaSink, KafkaSinkOptions, KafkaSpout};

use super::{Checked, TryFromOptions};

impl TryFromOptions<KafkaOptions> for KafkaSpout {
    fn try_from_options(options: KafkaOptions) -> Result<Self, String> {
        KafkaSpout::new(options)
    }
}

impl TryFromOptions<KafkaSinkOptions> for KafkaSink {
    fn try_from_options(options: KafkaSinkOptions) -> Result<Self, String> {
        KafkaSink::new(options)
    }
}

fn brokers_doc() -> OptionDoc {
    OptionDoc::new(
        "brokers",
        "string",
        "",
        "bootstrap servers, host:port separated by commas (required), e.g. \"127.0.0.1:9092\"",
    )
}

fn properties_doc() -> OptionDoc {
    OptionDoc::new(
        "properties",
        "table of librdkafka settings",
        "{}",
        "passed through to librdkafka, e.g. { \"security.protocol\" = \"ssl\", \"session.timeout.ms\" = 10000 }",
    )
}

/// Registers the spout `kafka` and the bolt `kafka`.
pub(super) fn register(r: &mut Registry) {
    let docs = vec![
        brokers_doc(),
        OptionDoc::new("topic", "string", "", "the topic to read (or `topics`)"),
        OptionDoc::new("topics", "list of strings", "[]", "several topics to read"),
        OptionDoc::new(
            "group",
            "string",
            "\"topo.<topology>.<component>\"",
            "the consumer group: partitions are spread over every task of every process in it",
        ),
        OptionDoc::new(
            "instance_id",
            "string",
            "",
            "static membership: task i joins as group.instance.id \"<instance_id>-<i>\"; a restarted process takes its partitions back without a rebalance (each process its own id)",
        ),
        OptionDoc::new(
            "assignment",
            "group | static",
            "group",
            "group: partitions assigned by the consumer group's coordinator (rebalances); static: the spout's tasks deal the partitions out among themselves without group membership, start from the group's committed offsets and commit to it (a restart reads at once, even on brokers that keep dead members)",
        ),
        OptionDoc::new(
            "partitions",
            "list of integers",
            "[]",
            "assignment = \"static\": the partitions this process reads, of every topic; empty = all",
        ),
        OptionDoc::new(
            "first_poll",
            "earliest | latest | committed_else_earliest | committed_else_latest",
            "committed_else_earliest",
            "where a partition starts; earliest/latest ignore the committed offset on the task's first assignment",
        ),
        OptionDoc::new(
            "payload",
            "utf8 | strict | raw | json",
            "utf8",
            "how a record's value becomes the `value` field; bad UTF-8 (strict) or JSON (json) to `error`",
        ),
        OptionDoc::new(
            "fields",
            "list of strings",
            "[]",
            "payload = \"json\": keys of the object emitted as fields after (topic, partition, offset, key, value, timestamp, headers)",
        ),
        OptionDoc::new(
            "commit_interval",
            "duration",
            "\"1s\"",
            "how often each partition's contiguous acked prefix is committed (also on revoke and close, and at once when a partition at its cap can free half of it)",
        ),
        OptionDoc::new(
            "max_uncommitted",
            "integer",
            "10000",
            "per partition: the partition is not read while this many offsets are emitted but not committed",
        ),
        OptionDoc::new(
            "retry.backoff",
            "duration",
            "\"100ms\"",
            "wait before a failed tuple is emitted again; doubles with each failure of the record",
        ),
        OptionDoc::new(
            "retry.max_backoff",
            "duration",
            "\"10s\"",
            "longest wait before a replay",
        ),
        OptionDoc::new(
            "retry.max_retries",
            "integer",
            "0",
            "failures after which a record goes to `dead_letter_topic` (else the `error` stream); 0 = replay forever",
        ),
        OptionDoc::new(
            "dead_letter_topic",
            "string",
            "",
            "where records that failed max_retries times are produced (with topo.error/topic/partition/offset headers)",
        ),
        OptionDoc::new(
            "dead_letter_properties",
            "table of librdkafka settings",
            "{}",
            "settings of the dead-letter producer, passed through",
        ),
        OptionDoc::new(
            "stop_at_end",
            "bool",
            "false",
            "read every assigned partition to its end, then end once all is acked and committed (`topo run --until-idle`)",
        ),
        properties_doc(),
    ];
    r.register_spout::<Checked<KafkaSpout, KafkaOptions>, KafkaSpout>(
        "kafka",
        "records of Apache Kafka topics in a consumer group (partitions balanced over tasks and processes), each partition's contiguous acked prefix committed; failed records replayed with back-off, dead-letter topic after max retries; bad records to `error`",
        docs,
        |c: &Checked<KafkaSpout, KafkaOptions>| c.0.clone(),
    );

    let docs = vec![
        brokers_doc(),
        OptionDoc::new(
            "topic",
            "string",
            "",
            "the topic every record goes to (or `topic_field`)",
        ),
        OptionDoc::new(
            "topic_field",
            "string",
            "",
            "the field whose text names each record's topic",
        ),
        OptionDoc::new(
            "key_field",
            "string",
            "",
            "the field whose value is the key (text and bytes as they are, numbers as text, other values as JSON)",
        ),
        OptionDoc::new(
            "key",
            "string",
            "",
            "a fixed key; neither key nor key_field: records without a key",
        ),
        OptionDoc::new(
            "value_field",
            "string",
            "the whole tuple as a JSON object",
            "the field sent as the value (text or bytes as they are, other values as JSON)",
        ),
        OptionDoc::new(
            "idempotent",
            "bool",
            "true",
            "the idempotent producer (enable.idempotence): librdkafka's retries write no duplicates",
        ),
        OptionDoc::new(
            "linger",
            "duration",
            "\"5ms\"",
            "how long records wait to be batched (linger.ms)",
        ),
        OptionDoc::new(
            "batch_size",
            "integer",
            "10000",
            "records per batch at most (batch.num.messages)",
        ),
        OptionDoc::new(
            "delivery_timeout",
            "duration",
            "\"30s\"",
            "a record not delivered within this fails, and so does its input (message.timeout.ms)",
        ),
        OptionDoc::new(
            "max_in_flight",
            "integer",
            "10000",
            "inputs awaiting their delivery report per task; more makes the sink wait",
        ),
        properties_doc(),
    ];
    r.register_bolt::<Checked<KafkaSink, KafkaSinkOptions>, KafkaSink>(
        "kafka",
        "produces records to Kafka topics (topic and key fixed or from fields, idempotent producer, batched by linger); an input acked on its delivery report, failed on a delivery error",
        docs,
        |c: &Checked<KafkaSink, KafkaSinkOptions>| c.0.clone(),
    );
}
