//! Apache Kafka: the `kafka` spout ([`source`], with its partition tracking in `offsets` and its
//! consumer context, the rebalance callbacks, in `rebalance`) and
//! the `kafka` sink ([`sink`]). What both need of a client lives here: the checks of `brokers`,
//! topic names and passed-through librdkafka `properties`, applying those properties, the topic
//! check made when opening, the wording of client errors, and librdkafka's log lines forwarded to
//! `tracing`.
//!
//! ```text
//!  Kafka topics ──► KafkaSpout (consumer group member; offsets: acked prefix per partition,
//!                   committed; with checkpoints: partitions dealt out without membership,
//!                   positions in checkpoints, committed when one completes)
//!                   ──► bolts ──► KafkaSink (idempotent producer) ──► Kafka topics
//!        both: check_brokers / check_topic / check_properties ──► apply_properties ──► client
//!              ──► check_topics_exist; describe_client_error, forward_log
//! ```

mod offsets;
mod rebalance;
pub mod sink;
pub mod source;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde::{Deserialize, Serialize};

pub use sink::*;
pub use source::*;

/// The `kafka` spout and sink kinds, for the registry.
pub fn kinds() -> Vec<topo_dsl::Kind> {
    let mut kinds = source::kinds();
    kinds.extend(sink::kinds());
    kinds
}

/// The environment variable tests and examples read the brokers from.
pub const BROKERS_ENV: &str = "TOPO_KAFKA_BROKERS";

/// A librdkafka setting's value as written in TOML: text, a number or a boolean.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum PropertyValue {
    /// Text, passed as is.
    Text(String),
    /// An integer.
    Int(i64),
    /// A number with a fraction.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
}

impl std::fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PropertyValue::Text(s) => f.write_str(s),
            PropertyValue::Int(i) => write!(f, "{i}"),
            PropertyValue::Float(x) => write!(f, "{x}"),
            PropertyValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Checks a `brokers` option: `host:port` entries separated by commas.
pub fn check_brokers(brokers: &str) -> Result<(), String> {
    if brokers.trim().is_empty() {
        return Err(
            "option `brokers`: expected the bootstrap servers, e.g. \"127.0.0.1:9092\"".into(),
        );
    }
    for b in brokers.split(',') {
        let b = b.trim();
        let hp = b
            .strip_prefix("PLAINTEXT://")
            .or_else(|| b.strip_prefix("SSL://"))
            .unwrap_or(b);
        let ok = hp
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(format!(
                "option `brokers`: {b:?} is not host:port (e.g. \"127.0.0.1:9092\")"
            ));
        }
    }
    Ok(())
}

/// Checks a topic name as Kafka does (1 to 249 of `[A-Za-z0-9._-]`, not `.` or `..`).
pub fn check_topic(option: &str, topic: &str) -> Result<(), String> {
    if topic.is_empty()
        || topic.len() > 249
        || topic == "."
        || topic == ".."
        || !topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "option `{option}` = {topic:?}: expected a topic name (1 to 249 of letters, digits, '.', '_', '-')"
        ));
    }
    Ok(())
}

/// Checks passed-through properties: none of `owned`, every name non-empty.
pub fn check_properties(
    props: &BTreeMap<String, PropertyValue>,
    owned: &[(&str, &str)],
) -> Result<(), String> {
    for name in props.keys() {
        if name.trim().is_empty() {
            return Err("option `properties`: a property name is empty".into());
        }
        if let Some((_, why)) = owned.iter().find(|(n, _)| n == name) {
            return Err(format!(
                "option `properties`: {name:?} cannot be set here ({why})"
            ));
        }
    }
    Ok(())
}

/// The text of a client error, naming the brokers when they cannot be reached.
pub fn describe_client_error(brokers: &str, error: &KafkaError, reason: &str) -> String {
    let unreachable = matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
        )
    );
    if unreachable {
        format!("brokers {brokers} unreachable: {reason}")
    } else {
        format!("kafka client error ({error}): {reason}")
    }
}

/// Forwards librdkafka's log lines to `tracing`.
pub fn forward_log(component: &str, level: RDKafkaLogLevel, fac: &str, msg: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => tracing::error!(component, fac, "librdkafka: {msg}"),
        RDKafkaLogLevel::Warning => tracing::warn!(component, fac, "librdkafka: {msg}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(component, fac, "librdkafka: {msg}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(component, fac, "librdkafka: {msg}"),
    }
}

/// The metadata check done when opening: every topic exists (else its name and the brokers).
pub fn check_topics_exist<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    brokers: &str,
    topics: &[String],
    option: &str,
    timeout: Duration,
) -> Result<(), String> {
    for t in topics {
        let md = client.fetch_metadata(Some(t), timeout).map_err(|e| {
            if matches!(
                e.rdkafka_error_code(),
                Some(RDKafkaErrorCode::OperationTimedOut)
            ) {
                format!(
                    "brokers {brokers} unreachable: no metadata for topic {t:?} within {}",
                    humantime::format_duration(timeout)
                )
            } else {
                format!("cannot fetch the metadata of topic {t:?} from {brokers}: {e}")
            }
        })?;
        let found = md.topics().iter().find(|m| m.name() == t);
        let missing = match found {
            None => true,
            Some(m) => {
                m.error().is_some_and(|e| {
                    RDKafkaErrorCode::from(e) == RDKafkaErrorCode::UnknownTopicOrPartition
                }) || m.partitions().is_empty()
            }
        };
        if missing {
            return Err(format!(
                "topic {t:?} not found at {brokers}: create it, or fix option `{option}`"
            ));
        }
    }
    Ok(())
}

/// Applies `properties` to a librdkafka configuration.
pub fn apply_properties(config: &mut ClientConfig, props: &BTreeMap<String, PropertyValue>) {
    for (k, v) in props {
        config.set(k, v.to_string());
    }
}
