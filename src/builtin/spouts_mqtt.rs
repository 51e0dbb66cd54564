//! The `mqtt` spout as a built-in kind (see [`topo_spouts::mqtt`]); options checked when the
//! topology file is loaded.

use topo_dsl::registry::{OptionDoc, Registry};
use topo_spouts::{MqttOptions, MqttSpout};

use super::{Checked, TryFromOptions};

impl TryFromOptions<MqttOptions> for MqttSpout {
    fn try_from_options(options: MqttOptions) -> Result<Self, String> {
        MqttSpout::new(options)
    }
}

/// Registers `mqtt`.
pub(super) fn register(r: &mut Registry) {
    let docs = vec![
        OptionDoc::new(
            "broker",
            "host:port | mqtt://host[:port]",
            "",
            "the broker (required); plain TCP, MQTT 3.1.1",
        ),
        OptionDoc::new(
            "topics",
            "list of topic filters",
            "",
            "what to subscribe to (required); `+` matches one level, `#` the rest",
        ),
        OptionDoc::new(
            "qos",
            "0 | 1",
            "1",
            "1: a message is acknowledged to the broker only once its tuple tree is acked (the broker redelivers the rest); 0: at most once from the broker",
        ),
        OptionDoc::new(
            "client_id",
            "string",
            "\"topo-<topology>-<component>-<task>\"",
            "the MQTT client id; `<client_id>-<task>` when there are several tasks. Keep it across restarts to resume the session",
        ),
        OptionDoc::new(
            "clean_session",
            "bool",
            "false with qos 1, true with qos 0",
            "false: the broker keeps the subscriptions and unacked QoS 1 messages across reconnects and restarts",
        ),
        OptionDoc::new(
            "keep_alive",
            "duration",
            "\"30s\"",
            "ping interval when idle",
        ),
        OptionDoc::new(
            "username",
            "string",
            "",
            "user name, if the broker wants one",
        ),
        OptionDoc::new(
            "password",
            "string",
            "",
            "password, with `username` (use ${ENV})",
        ),
        OptionDoc::new(
            "payload",
            "utf8 | strict | bytes | json",
            "utf8",
            "utf8: text, bad UTF-8 replaced; strict: bad UTF-8 to `error`; bytes: a Bytes value; json: the parsed document, bad JSON to `error`",
        ),
        OptionDoc::new(
            "fields",
            "list of strings",
            "[]",
            "payload = \"json\": keys of the object emitted as fields after (topic, payload); absent = null",
        ),
        OptionDoc::new(
            "max_payload_bytes",
            "integer",
            "1048576",
            "larger payloads go to the `error` stream (reason, raw) and are acked to the broker",
        ),
        OptionDoc::new(
            "reconnect.backoff",
            "duration",
            "\"100ms\"",
            "first wait after a failed or lost connection; doubles each time",
        ),
        OptionDoc::new(
            "reconnect.max_backoff",
            "duration",
            "\"10s\"",
            "longest wait between connection attempts",
        ),
        OptionDoc::new(
            "reconnect.attempts",
            "integer",
            "0",
            "failures in a row after which the spout gives up and ends; 0 = forever",
        ),
        OptionDoc::new(
            "shared_group",
            "string",
            "",
            "subscribe as `$share/<group>/<topic>`: each message to one task of the group (without it every task gets every message)",
        ),
    ];
    r.register_spout::<Checked<MqttSpout, MqttOptions>, MqttSpout>(
        "mqtt",
        "messages of MQTT topics (wildcards), QoS 0/1; a QoS 1 message is acked to the broker once its tuple tree is acked; reconnects with backoff; bad payloads to `error`",
        docs,
        |c: &Checked<MqttSpout, MqttOptions>| c.0.clone(),
    );
}
