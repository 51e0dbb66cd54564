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
//!              ──► check_topics_exist; Failures::describe (client errors), forward_log
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

/// What a client context remembers to explain its errors: whether it speaks TLS, and the last
/// connection failure librdkafka logged (`FAIL`: "connection reset by peer in state
/// APIVERSION_QUERY", a refused TLS handshake), which its later "all brokers are down" error does
/// not repeat.
#[derive(Debug, Default)]
pub struct Failures {
    tls: bool,
    last: std::sync::Mutex<Option<String>>,
}

impl Failures {
    /// For a client whose connections are TLS (`tls`) or plain.
    pub fn new(tls: bool) -> Failures {
        Failures {
            tls,
            last: Default::default(),
        }
    }

    /// Notes a log line of librdkafka's (a connection failure is kept).
    pub fn note(&self, fac: &str, msg: &str) {
        if fac == "FAIL" {
            *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg.to_string());
        }
    }

    /// The text of a client error: the brokers, what happened, and for "all brokers are down"
    /// the last connection failure (with a hint when a plain client met a TLS listener).
    pub fn describe(&self, brokers: &str, error: &KafkaError, reason: &str) -> String {
        let code = error.rdkafka_error_code();
        match code {
            Some(RDKafkaErrorCode::SSL) => {
                return format!("TLS with brokers {brokers} failed: {reason}");
            }
            Some(RDKafkaErrorCode::Authentication) => {
                return format!("brokers {brokers} refused the authentication: {reason}");
            }
            _ => {}
        }
        let mut text = describe_client_error(brokers, error, reason);
        if code == Some(RDKafkaErrorCode::AllBrokersDown)
            && let Some(last) = self
                .last
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_deref()
        {
            text.push_str("; last failure: ");
            text.push_str(last);
            if !self.tls && last.contains("APIVERSION_QUERY") {
                text.push_str(" (if the brokers' listener is TLS, set the option `tls`)");
            }
        }
        text
    }
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

/// A SASL mechanism librdkafka authenticates with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
pub enum SaslMechanism {
    /// User name and password in clear (over TLS only, in practice).
    #[serde(rename = "PLAIN")]
    Plain,
    /// Salted challenge-response, SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// Salted challenge-response, SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// librdkafka's name of it (`sasl.mechanisms`).
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// SASL authentication with the brokers:
/// `sasl = { mechanism = "SCRAM-SHA-512", username = "u", password = "${KAFKA_PASSWORD}" }`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaslOptions {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// The password (write `"${VAR}"` to take it from the environment); or `password_file`.
    #[serde(default)]
    pub password: Option<String>,
    /// A file whose first line is the password (a mounted secret); or `password`.
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
}

/// Never shows the password.
impl std::fmt::Debug for SaslOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslOptions")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("password_file", &self.password_file)
            .finish()
    }
}

/// The librdkafka settings `tls` and `sasl` own: `properties` may not set them beside those
/// options.
const SECURITY_PROPERTIES: [&str; 9] = [
    "security.protocol",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.key.password",
];

/// The librdkafka settings of the `tls` and `sasl` options (checked: files read, the key against
/// its certificate, the password given once), in the order they are set:
///
/// | `tls` | `sasl` | `security.protocol` |
/// |---|---|---|
/// | – | – | (librdkafka's default: plaintext) |
/// | set | – | `ssl` (+ `ssl.ca.location`, `ssl.certificate.location`, `ssl.key.location`) |
/// | – | set | `sasl_plaintext` (+ `sasl.mechanisms`, `sasl.username`, `sasl.password`) |
/// | set | set | `sasl_ssl` |
///
/// `properties` (any of `props`, named by `option`) may not set these when either is given.
pub fn security_settings(
    tls: Option<&crate::connector::tls::TlsOptions>,
    sasl: Option<&SaslOptions>,
    props: &[(&str, &BTreeMap<String, PropertyValue>)],
) -> Result<Vec<(&'static str, String)>, String> {
    let mut out = Vec::new();
    if tls.is_none() && sasl.is_none() {
        return Ok(out);
    }
    for (option, props) in props {
        if let Some(name) = props
            .keys()
            .find(|k| SECURITY_PROPERTIES.contains(&k.as_str()))
        {
            return Err(format!(
                "option `{option}`: {name:?} cannot be set beside the options `tls` and `sasl`, which set it"
            ));
        }
    }
    let protocol = match (tls.is_some(), sasl.is_some()) {
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        _ => "sasl_ssl",
    };
    out.push(("security.protocol", protocol.to_string()));
    if let Some(t) = tls {
        // Read and parsed here for the early, named error; librdkafka reads the files itself.
        t.load("tls")?;
        let path = |p: &std::path::Path| p.display().to_string();
        if let Some(ca) = &t.ca {
            out.push(("ssl.ca.location", path(ca)));
        }
        if let (Some(cert), Some(key)) = (&t.cert, &t.key) {
            out.push(("ssl.certificate.location", path(cert)));
            out.push(("ssl.key.location", path(key)));
        }
    }
    if let Some(s) = sasl {
        if s.username.is_empty() {
            return Err("option `sasl.username` is empty".into());
        }
        let password = match (&s.password, &s.password_file) {
            (Some(p), None) => p.clone(),
            (None, Some(file)) => crate::connector::secret_file("sasl.password_file", file)?,
            (Some(_), Some(_)) => {
                return Err("options `sasl.password` and `sasl.password_file`: give one".into());
            }
            (None, None) => {
                return Err("option `sasl.password` (or `sasl.password_file`) is required".into());
            }
        };
        out.push(("sasl.mechanisms", s.mechanism.name().to_string()));
        out.push(("sasl.username", s.username.clone()));
        out.push(("sasl.password", password));
    }
    Ok(out)
}

/// Sets `settings` on a librdkafka configuration.
pub fn apply_settings(config: &mut ClientConfig, settings: &[(&'static str, String)]) {
    for (k, v) in settings {
        config.set(*k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::tls::TlsOptions;

    fn sasl(mechanism: SaslMechanism, password: Option<&str>) -> SaslOptions {
        SaslOptions {
            mechanism,
            username: "app".into(),
            password: password.map(String::from),
            password_file: None,
        }
    }

    // Guards the mapping of `tls` and `sasl` onto librdkafka's settings, and the checks around it.
    #[test]
    fn tls_and_sasl_become_librdkafka_settings() {
        let none = BTreeMap::new();
        assert!(security_settings(None, None, &[]).unwrap().is_empty());
        let system_roots = TlsOptions::default();
        assert_eq!(
            security_settings(Some(&system_roots), None, &[]).unwrap(),
            vec![("security.protocol", "ssl".to_string())]
        );
        let scram = sasl(SaslMechanism::ScramSha512, Some("pw"));
        assert_eq!(
            security_settings(None, Some(&scram), &[("properties", &none)]).unwrap(),
            vec![
                ("security.protocol", "sasl_plaintext".to_string()),
                ("sasl.mechanisms", "SCRAM-SHA-512".to_string()),
                ("sasl.username", "app".to_string()),
                ("sasl.password", "pw".to_string()),
            ]
        );
        let both = security_settings(
            Some(&system_roots),
            Some(&sasl(SaslMechanism::Plain, Some("p"))),
            &[],
        )
        .unwrap();
        assert_eq!(both[0], ("security.protocol", "sasl_ssl".to_string()));
        assert_eq!(both[1], ("sasl.mechanisms", "PLAIN".to_string()));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let from_file = SaslOptions {
            password_file: Some(file.clone()),
            ..sasl(SaslMechanism::ScramSha256, None)
        };
        let settings = security_settings(None, Some(&from_file), &[]).unwrap();
        assert!(settings.contains(&("sasl.password", "from-a-file".to_string())));

        let e = security_settings(None, Some(&sasl(SaslMechanism::Plain, None)), &[]).unwrap_err();
        assert!(e.contains("`sasl.password`"), "{e}");
        let twice = SaslOptions {
            password_file: Some(file),
            ..sasl(SaslMechanism::Plain, Some("x"))
        };
        assert!(
            security_settings(None, Some(&twice), &[])
                .unwrap_err()
                .contains("give one")
        );
        let missing = SaslOptions {
            password_file: Some(dir.path().join("nope")),
            ..sasl(SaslMechanism::Plain, None)
        };
        let e = security_settings(None, Some(&missing), &[]).unwrap_err();
        assert!(
            e.contains("`sasl.password_file`") && e.contains("nope"),
            "{e}"
        );
        let props = BTreeMap::from([(
            "security.protocol".to_string(),
            PropertyValue::Text("ssl".into()),
        )]);
        let e =
            security_settings(Some(&system_roots), None, &[("properties", &props)]).unwrap_err();
        assert!(
            e.contains("option `properties`") && e.contains("security.protocol"),
            "{e}"
        );
        // Without `tls` and `sasl`, `properties` may set them as before.
        assert!(
            security_settings(None, None, &[("properties", &props)])
                .unwrap()
                .is_empty()
        );
        let shown = format!("{:?}", sasl(SaslMechanism::Plain, Some("hidden-pw")));
        assert!(!shown.contains("hidden-pw"), "{shown}");
    }
}
