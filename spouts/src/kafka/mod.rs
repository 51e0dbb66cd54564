//! Apache Kafka: the `kafka` spout ([`source`], with its partition tracking in `offsets` and its
//! consumer context, the rebalance callbacks, in `rebalance`) and
//! the `kafka` sink ([`sink`]). What both need of a client lives here: the checks of `brokers`,
//! topic names and passed-through librdkafka `properties`, applying those properties, the `tls`
//! and `sasl` options (librdkafka settings, and the `OAUTHBEARER` login answering librdkafka's
//! token refreshes), the topic check made when opening, the wording of client errors, and
//! librdkafka's log lines forwarded to `tracing`.
//!
//! ```text
//!  Kafka topics ──► KafkaSpout (consumer group member; offsets: acked prefix per partition,
//!                   committed; with checkpoints: partitions dealt out without membership,
//!                   positions in checkpoints, committed when one completes)
//!                   ──► bolts ──► KafkaSink (idempotent producer) ──► Kafka topics
//!        both: check_brokers / check_topic / check_properties ──► apply_properties ──► client
//!              security_settings (tls, sasl) ──► apply_settings ──► client
//!              OAuthLogin (sasl OAUTHBEARER) ◄── the client context's token refresh
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
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
pub enum SaslMechanism {
    /// User name and password in clear (over TLS only, in practice).
    #[serde(rename = "PLAIN")]
    Plain,
    /// Salted challenge-response, SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// Salted challenge-response, SHA-512.
    #[default]
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
    /// OAuth 2 bearer tokens, fetched from `token_endpoint` with the client credentials grant
    /// (OIDC) whenever librdkafka asks for one (at start, and before a token expires). No SASL
    /// extensions are sent (rdkafka's token hook has none).
    #[serde(rename = "OAUTHBEARER")]
    OAuthBearer,
}

impl SaslMechanism {
    /// librdkafka's name of it (`sasl.mechanisms`).
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// SASL authentication with the brokers:
/// `sasl = { mechanism = "SCRAM-SHA-512", username = "u", password = "${KAFKA_PASSWORD}" }`, or
/// `sasl = { mechanism = "OAUTHBEARER", token_endpoint = "https://idp/oauth2/token",
/// client_id = "app", client_secret = "${KAFKA_CLIENT_SECRET}", scope = "kafka" }`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaslOptions {
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512` or `OAUTHBEARER`.
    pub mechanism: SaslMechanism,
    /// The user name (`PLAIN`, `SCRAM-*`).
    #[serde(default)]
    pub username: String,
    /// The password (write `"${VAR}"` to take it from the environment); or `password_file`.
    #[serde(default)]
    pub password: Option<String>,
    /// A file whose first line is the password (a mounted secret); or `password`.
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// `OAUTHBEARER`: the identity provider's token endpoint (`https://...`).
    #[serde(default)]
    pub token_endpoint: Option<String>,
    /// `OAUTHBEARER`: the client id of the client credentials grant.
    #[serde(default)]
    pub client_id: Option<String>,
    /// `OAUTHBEARER`: the client secret (write `"${VAR}"`); or `client_secret_file`.
    #[serde(default)]
    pub client_secret: Option<String>,
    /// `OAUTHBEARER`: a file whose first line is the client secret; or `client_secret`.
    #[serde(default)]
    pub client_secret_file: Option<std::path::PathBuf>,
    /// `OAUTHBEARER`: the scope asked for (unset: none).
    #[serde(default)]
    pub scope: Option<String>,
    /// `OAUTHBEARER`: the PEM file of the authorities that verify an `https://` token endpoint
    /// (unset: the system's roots).
    #[serde(default)]
    pub token_endpoint_ca: Option<std::path::PathBuf>,
}

/// Never shows the password or the client secret.
impl std::fmt::Debug for SaslOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("SaslOptions")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("password_file", &self.password_file)
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &hidden(&self.client_secret))
            .field("client_secret_file", &self.client_secret_file)
            .field("scope", &self.scope)
            .field("token_endpoint_ca", &self.token_endpoint_ca)
            .finish()
    }
}

/// The secret of an option given inline (`name`) or in a file (`name_file`), exactly one.
fn one_secret(
    name: &str,
    inline: &Option<String>,
    file: &Option<std::path::PathBuf>,
) -> Result<String, String> {
    match (inline, file) {
        (Some(p), None) => Ok(p.clone()),
        (None, Some(f)) => crate::connector::secret_file(&format!("sasl.{name}_file"), f),
        (Some(_), Some(_)) => Err(format!(
            "options `sasl.{name}` and `sasl.{name}_file`: give one"
        )),
        (None, None) => Err(format!(
            "option `sasl.{name}` (or `sasl.{name}_file`) is required"
        )),
    }
}

/// The librdkafka settings `tls` and `sasl` own: `properties` may not set them beside those
/// options.
const SECURITY_PROPERTIES: [&str; 16] = [
    "security.protocol",
    "sasl.oauthbearer.method",
    "sasl.oauthbearer.client.id",
    "sasl.oauthbearer.client.secret",
    "sasl.oauthbearer.token.endpoint.url",
    "sasl.oauthbearer.scope",
    "sasl.oauthbearer.config",
    "enable.sasl.oauthbearer.unsecure.jwt",
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
        out.push(("sasl.mechanisms", s.mechanism.name().to_string()));
        if s.mechanism == SaslMechanism::OAuthBearer {
            // Checked here; the tokens come from the client's context (`OAuthLogin`).
            OAuthLogin::new(s)?;
        } else {
            let oauth = [
                ("token_endpoint", s.token_endpoint.is_some()),
                ("client_id", s.client_id.is_some()),
                ("client_secret", s.client_secret.is_some()),
                ("client_secret_file", s.client_secret_file.is_some()),
                ("scope", s.scope.is_some()),
            ];
            if let Some((name, _)) = oauth.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "option `sasl.{name}` is for mechanism = \"OAUTHBEARER\", and `sasl.mechanism` = {:?}",
                    s.mechanism.name()
                ));
            }
            if s.username.is_empty() {
                return Err("option `sasl.username` is empty or missing".into());
            }
            let password = one_secret("password", &s.password, &s.password_file)?;
            out.push(("sasl.username", s.username.clone()));
            out.push(("sasl.password", password));
        }
    }
    Ok(out)
}

/// The `OAUTHBEARER` login of a Kafka client: the client credentials of `sasl`, and the token
/// request librdkafka's refresh events are answered with (see [`LoginContext`]).
///
/// ```text
///  librdkafka: token needed (start, 80% of its lifetime) ──► context.generate_oauth_token
///       ──► OAuthLogin::token ── POST token_endpoint (client credentials) ──► IdP
///       ◄── access token, expiry, principal (client_id) ◄──┘
/// ```
pub struct OAuthLogin {
    token_endpoint: String,
    client_id: String,
    client_secret: String,
    scope: Option<String>,
    client: reqwest::Client,
    /// Token requests made so far (answered or not).
    requests: std::sync::atomic::AtomicU64,
}

/// How long a token request may take.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(10);

impl OAuthLogin {
    /// The login of `sasl` when its mechanism is `OAUTHBEARER` (checked: endpoint, id, secret),
    /// else `None`.
    pub fn of(sasl: Option<&SaslOptions>) -> Result<Option<std::sync::Arc<OAuthLogin>>, String> {
        match sasl {
            Some(s) if s.mechanism == SaslMechanism::OAuthBearer => {
                Ok(Some(std::sync::Arc::new(OAuthLogin::new(s)?)))
            }
            _ => Ok(None),
        }
    }

    fn new(s: &SaslOptions) -> Result<OAuthLogin, String> {
        if !s.username.is_empty() || s.password.is_some() || s.password_file.is_some() {
            return Err("options `sasl.username` and `sasl.password` are not for mechanism = \"OAUTHBEARER\": give `token_endpoint`, `client_id` and `client_secret`".into());
        }
        let endpoint = s.token_endpoint.as_deref().ok_or(
            "option `sasl.token_endpoint` is required with mechanism = \"OAUTHBEARER\" (the identity provider's token URL)",
        )?;
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(format!(
                "option `sasl.token_endpoint` = {endpoint:?}: expected an https:// (or http://) URL"
            ));
        }
        let client_id = match s.client_id.as_deref() {
            Some(id) if !id.is_empty() => id,
            _ => {
                return Err(
                    "option `sasl.client_id` is required with mechanism = \"OAUTHBEARER\"".into(),
                );
            }
        };
        let client_secret = one_secret("client_secret", &s.client_secret, &s.client_secret_file)?;
        let mut client = reqwest::Client::builder()
            .timeout(TOKEN_TIMEOUT)
            // Each request runs on a runtime of its own (see `token`): no connection outlives it.
            .pool_max_idle_per_host(0);
        if let Some(ca) = &s.token_endpoint_ca {
            let tls = crate::connector::tls::TlsOptions {
                ca: Some(ca.clone()),
                ..Default::default()
            };
            let config = tls
                .load("sasl")
                .map_err(|e| e.replace("`sasl.ca`", "`sasl.token_endpoint_ca`"))?
                .client_config(crate::connector::tls::Verify::Full)?;
            client = client.use_preconfigured_tls(config);
        }
        Ok(OAuthLogin {
            token_endpoint: endpoint.to_string(),
            client_id: client_id.to_string(),
            client_secret,
            scope: s.scope.clone(),
            client: client
                .build()
                .map_err(|e| format!("option `sasl`: cannot make an HTTP client: {e}"))?,
            requests: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A fresh token from the endpoint, as librdkafka takes it. Blocks the calling thread (a
    /// client's poll, once an expiry or so) for at most 10 s: the request runs on a thread and
    /// runtime of its own, as librdkafka may ask from inside a runtime.
    pub fn token(&self) -> Result<rdkafka::client::OAuthToken, String> {
        let started = std::time::SystemTime::now();
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let fetched = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| {
                            format!("cannot start a runtime for the token request: {e}")
                        })?;
                    let credentials = crate::connector::oauth::ClientCredentials {
                        token_url: &self.token_endpoint,
                        client_id: &self.client_id,
                        client_secret: &self.client_secret,
                        scope: self.scope.as_deref(),
                        option: "sasl",
                    };
                    rt.block_on(crate::connector::oauth::fetch_token(
                        &self.client,
                        credentials,
                    ))
                    .map_err(|e| e.reason)
                })
                .join()
                .map_err(|_| "the token request panicked".to_string())?
        })?;
        let expiry = started + fetched.lifetime;
        let lifetime_ms = expiry
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        Ok(rdkafka::client::OAuthToken {
            token: fetched.access,
            principal_name: self.client_id.clone(),
            lifetime_ms,
        })
    }
}

impl OAuthLogin {
    /// Token requests made so far, answered or not.
    pub fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A token for librdkafka's refresh event, from `login`; an error (reported by librdkafka as
/// the client's authentication failure) when the client has no `OAUTHBEARER` login.
pub(crate) fn oauth_token(
    login: Option<&OAuthLogin>,
) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
    match login {
        Some(l) => l.token().map_err(Into::into),
        None => Err("an OAUTHBEARER token is needed: set `sasl = { mechanism = \"OAUTHBEARER\", token_endpoint = ..., client_id = ..., client_secret = ... }` rather than `properties`".into()),
    }
}

/// In a `ClientContext` impl whose context has a field `oauth: Option<Arc<OAuthLogin>>`:
/// librdkafka's token refreshes answered by that login.
macro_rules! answer_token_refreshes {
    () => {
        const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

        fn generate_oauth_token(
            &self,
            _config: Option<&str>,
        ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
            crate::kafka::oauth_token(self.oauth.as_deref())
        }
    };
}
pub(crate) use answer_token_refreshes;

/// The context of a client that needs nothing but its `OAUTHBEARER` login (the `kafka` spout's
/// dead-letter producer).
#[derive(Clone, Default)]
pub struct LoginContext {
    /// The login, when `sasl.mechanism` is `OAUTHBEARER`.
    pub oauth: Option<std::sync::Arc<OAuthLogin>>,
}

impl ClientContext for LoginContext {
    answer_token_refreshes!();
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
            ..SaslOptions::default()
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

    // Guards OAUTHBEARER: the mechanism set for librdkafka, the login's credentials (the secret
    // from a file too), the options of one kind of mechanism refused with the other, nothing
    // secret shown.
    #[test]
    fn oauthbearer_is_checked_and_becomes_a_login() {
        let oauth = SaslOptions {
            mechanism: SaslMechanism::OAuthBearer,
            token_endpoint: Some("https://idp.example/oauth2/token".into()),
            client_id: Some("topo-app".into()),
            client_secret: Some("s3cret".into()),
            scope: Some("kafka".into()),
            ..SaslOptions::default()
        };
        assert_eq!(
            security_settings(Some(&TlsOptions::default()), Some(&oauth), &[]).unwrap(),
            vec![
                ("security.protocol", "sasl_ssl".to_string()),
                ("sasl.mechanisms", "OAUTHBEARER".to_string()),
            ]
        );
        let login = OAuthLogin::of(Some(&oauth)).unwrap().expect("a login");
        assert_eq!(login.token_endpoint, "https://idp.example/oauth2/token");
        assert_eq!(
            (login.client_id.as_str(), login.client_secret.as_str()),
            ("topo-app", "s3cret")
        );
        assert!(
            OAuthLogin::of(Some(&sasl(SaslMechanism::Plain, Some("p"))))
                .unwrap()
                .is_none()
        );
        let shown = format!("{oauth:?}");
        assert!(!shown.contains("s3cret"), "{shown}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "from-a-file\n").unwrap();
        let from_file = SaslOptions {
            client_secret: None,
            client_secret_file: Some(file),
            ..oauth.clone()
        };
        let login = OAuthLogin::of(Some(&from_file)).unwrap().expect("a login");
        assert_eq!(login.client_secret, "from-a-file");

        let cases = [
            (
                SaslOptions {
                    token_endpoint: None,
                    ..oauth.clone()
                },
                "`sasl.token_endpoint` is required",
            ),
            (
                SaslOptions {
                    token_endpoint: Some("idp.example/token".into()),
                    ..oauth.clone()
                },
                "`sasl.token_endpoint` = \"idp.example/token\"",
            ),
            (
                SaslOptions {
                    client_id: None,
                    ..oauth.clone()
                },
                "`sasl.client_id` is required",
            ),
            (
                SaslOptions {
                    client_secret: None,
                    ..oauth.clone()
                },
                "`sasl.client_secret` (or `sasl.client_secret_file`) is required",
            ),
            (
                SaslOptions {
                    username: "u".into(),
                    ..oauth.clone()
                },
                "`sasl.username` and `sasl.password` are not for mechanism = \"OAUTHBEARER\"",
            ),
            (
                SaslOptions {
                    client_id: Some("x".into()),
                    ..sasl(SaslMechanism::ScramSha256, Some("pw"))
                },
                "`sasl.client_id` is for mechanism = \"OAUTHBEARER\"",
            ),
            (
                SaslOptions {
                    token_endpoint_ca: Some("/nonexistent/idp-ca.pem".into()),
                    ..oauth.clone()
                },
                "option `sasl.token_endpoint_ca` = /nonexistent/idp-ca.pem",
            ),
        ];
        for (options, want) in cases {
            let e = security_settings(None, Some(&options), &[]).unwrap_err();
            assert!(e.contains(want), "{e:?} should say {want}");
        }
        let props = BTreeMap::from([(
            "sasl.oauthbearer.client.id".to_string(),
            PropertyValue::Text("other".into()),
        )]);
        let e = security_settings(None, Some(&oauth), &[("properties", &props)]).unwrap_err();
        assert!(e.contains("sasl.oauthbearer.client.id"), "{e}");
    }
}
