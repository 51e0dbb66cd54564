//! `mqtt`: messages of MQTT topics (wildcards `+` and `#`), QoS 0 or 1, from a broker such as
//! Mosquitto, through the `rumqttc` client; a QoS 1 message is acknowledged to the broker only
//! once its tuple tree is acked.
//!
//! ```text
//!  broker ◄── connect (MQTT 3.1.1, reconnect with backoff), subscribe `topics` ──┐
//!    │ PUBLISH (QoS 0 / QoS 1, held by the broker until PUBACK)                   │
//!    ▼                                                                            │
//!  connection task: rumqttc event loop, manual acks                               │ PUBACK of a
//!    │ payload -> value (utf8 | strict | bytes | json), max_payload_bytes         │ QoS 1 message
//!    ▼                                                                            │ once its tree
//!  bounded channel (full: the event loop waits, so the broker holds messages)     │ is acked
//!    │ next_tuple drains ≤ 64                                                     │
//!    ▼                                                                            │
//!  spout ──emit (topic, payload[, fields..]) msg id n──► bolts ── ack(n) ─────────┘
//!    │      pending: n -> (tuple, PUBLISH); fail(n) -> emitted again
//!    └──emit_to "error" (reason, raw), unanchored; the message is acked to the broker
//! ```
//!
//! # Options
//! ```toml
//! [spouts.readings]
//! kind = "mqtt"
//! broker = "127.0.0.1:1883"        # host:port, or mqtt://host[:port] / tcp://host[:port];
//!                                  # mqtts://host[:port] for TLS (8883 by default)
//! # tls = { ca = "AmazonRootCA1.pem", cert = "device.pem.crt", key = "private.pem.key" }
//! topics = ["sensors/+/reading", "alerts/#"]
//! qos = 1                          # 0: at most once from the broker; 1: acked after the tree
//! # client_id = "ingest"           # default "topo-<topology>-<component>-<task>"
//! # clean_session = false          # default: false with qos 1, true with qos 0
//! keep_alive = "30s"
//! # username = "u"  password = "${MQTT_PASSWORD}"   # or password_file = "/run/secrets/mqtt"
//! payload = "utf8"                 # "strict" | "bytes" | "json"
//! # fields = ["device_id", "temperature"]   # json: keys of the object, as fields
//! max_payload_bytes = 1048576      # larger messages go to the `error` stream
//! reconnect = { backoff = "100ms", max_backoff = "10s", attempts = 0 }   # 0 = forever
//! # shared_group = "ingest"        # parallelism > 1: `$share/ingest/<topic>`, one task each
//! ```
//!
//! # Output
//! The `default` stream carries (`topic`, `payload`), then with `payload = "json"` one field per
//! name in `fields`. `topic` is the message's topic (text). `payload` is, by `payload`:
//! - `utf8`: text, invalid UTF-8 replaced by U+FFFD;
//! - `strict`: text; a payload that is not UTF-8 goes to `error`;
//! - `bytes`: the raw bytes (a Bytes value);
//! - `json`: the parsed document (an object is a map, numbers are ints or floats); each name in
//!   `fields` is that key of the object (null when absent). A payload that is not JSON, or not an
//!   object while `fields` is set, goes to `error`.
//!
//! The `error` stream carries (`reason`, `raw`): a payload over `max_payload_bytes`, invalid
//! UTF-8 (`strict`) or bad JSON (`json`); `raw` is the payload's first KiB (invalid UTF-8
//! replaced). Error tuples carry no message id, and the message is acknowledged to the broker at
//! once: a redelivery could not fix it. Each is counted ([`MqttCounters`]) and logged with
//! `tracing::warn!` at most once a second.
//!
//! # Delivery guarantee
//! - **QoS 1**: the spout keeps each emitted message in memory with its PUBLISH packet and sends
//!   the PUBACK only when the message's tuple tree is acked. A failed or timed-out tree is emitted
//!   again from memory (same message id) while the connection that brought it lasts. The broker
//!   keeps every message it has not seen acked: with `clean_session = false` (the default for
//!   QoS 1) the session outlives the connection, so after a reconnect, or a restart of the
//!   process with the same client id, the broker sends the unacked messages again (and queues
//!   those published meanwhile). A message from an earlier connection whose session the broker
//!   resumed is therefore neither acked (its redelivered copy will be) nor replayed from memory
//!   when it fails; if the broker did not resume the session, such a message is replayed from
//!   memory. **At-least-once across reconnects and restarts**, as long as the broker keeps the
//!   session (Mosquitto: `persistence true` to survive a broker restart).
//!   Proven by a soak (`tests/soak_mqtt.rs`): 20,000 QoS 1 messages through `topo run` into the
//!   durable `file` sink, with 10 `SIGKILL`s at random points and a restart with the same client
//!   id after each, lose nothing; a message comes out again only in the run right after a kill.
//! - **QoS 0**: the broker sends each message once and forgets it. The spout replays failed
//!   tuples from memory while the process lives (at-least-once within the process); messages in
//!   flight when the process or the connection ends, or published while disconnected, are lost.
//! - Duplicates are possible (a redelivery after a reconnect or restart of a message already
//!   processed but not yet acked to the broker): make downstream writes idempotent if that
//!   matters.
//!
//! # Connection
//! A failed connect, a refused one, or a lost connection is retried after `reconnect.backoff`,
//! doubling up to `reconnect.max_backoff`; a connection accepted resets the wait. With
//! `reconnect.attempts = n` the spout gives up after `n` failures in a row (an error is logged)
//! and is then exhausted once every tuple is acked, so `topo run --until-idle` ends; the
//! default, 0, retries forever. Connection errors are counted and logged at most once a second.
//! After each connection the spout subscribes to `topics` again.
//!
//! # Parallelism
//! Every task is one MQTT client with its own client id (`<client_id>-<task>` when
//! `client_id` is given and there are several tasks). With `shared_group`, each task
//! subscribes to `$share/<group>/<topic>` (MQTT 5 shared subscriptions, which Mosquitto 2 also
//! offers to MQTT 3.1.1 clients): the broker gives each message to one task of the group. Without
//! it every task receives every message (a warning says so when the parallelism is above 1).
//!
//! # Known limits
//! - MQTT 3.1.1 over TCP or TLS (`mqtts://`); no WebSocket, no MQTT 5 properties. QoS 2 is
//!   refused (use 1: the topology's acking already gives at-least-once).
//! - The broker bounds the QoS 1 messages in flight to one client (Mosquitto's
//!   `max_inflight_messages`, 20 by default); since a message stays in flight until its tree is
//!   acked, that bounds the throughput of one task to about that many per tree latency. Raise it
//!   in the broker's configuration, or add tasks with a `shared_group`. Beyond those in flight,
//!   Mosquitto queues at most `max_queued_messages` (1000 by default) per client and *drops* the
//!   rest, logging "Outgoing messages are being dropped": the spout never sees them. For bursts
//!   faster than the topology, raise both (e.g. `max_inflight_messages 1000`,
//!   `max_queued_messages 0` = unbounded). Mosquitto 2.0.11 keeps to `max_inflight_messages`
//!   only until the first PUBACK: each PUBACK then lets up to that many more messages out, so
//!   hundreds can be in flight to a spout that acks steadily, and at a reconnect the broker sends
//!   every one of them again (seen in its log with `log_type all`).
//! - While the client waits to hand a message to the full channel it sends no PUBACKs; a process
//!   killed then has up to `max_spout_pending` plus the channel's 1024 messages processed but not
//!   acked to the broker, which the broker delivers again after the restart (duplicates).
//! - MQTT 3.1.1 cannot tell the broker a maximum size: a larger message is still received whole
//!   (up to the protocol's 256 MiB) before it goes to `error`.
//! - PUBACKs follow the order in which trees complete, not the order of arrival (Mosquitto
//!   accepts that). A PUBACK queued in the very instant a connection drops may be sent on the next
//!   connection, where it acknowledges the redelivered copy of the same message.
//! - While the topology holds the spout back (a full channel) the client does not read from the
//!   broker; a stall longer than 1.5 × `keep_alive` makes the broker close the connection (then
//!   the spout reconnects, and the broker redelivers QoS 1 messages).
//! - Two processes running the same topology with the same client ids take each other's
//!   sessions over: give each its own `client_id`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use rumqttc::{
    AsyncClient, ClientError, ConnectionError, Event, Outgoing, Packet, Publish, QoS,
    SubscribeFilter, SubscribeReasonCode,
};
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    BoxError, OutputDeclarer, Spout, SpoutCollector, TaskContext, Value, Values, values,
};

use crate::connector::counters;
pub use crate::connector::encoding::PayloadFormat;
use crate::connector::encoding::decode_payload;
use crate::connector::encoding::raw_prefix;
use crate::connector::retry::RetryOptions;
use crate::connector::tls::{TlsOptions, Verify};
use crate::connector::{ERROR_STREAM, SOURCE_ERROR_FIELDS};
use crate::socket::check_address;

/// How many records `next_tuple` emits at most per call.
const DRAIN_PER_CALL: usize = 64;
/// Capacity of the channel between the connection task and the spout.
const CHANNEL_CAPACITY: usize = 1024;
/// Capacity of the client's request channel (acks, subscriptions).
const REQUEST_CAPACITY: usize = 4096;
/// The largest MQTT packet (remaining length of 256 MiB plus the fixed header).
const MAX_MQTT_PACKET: usize = 268_435_460;
/// How long `close` waits for the DISCONNECT to be sent.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Options of the `mqtt` spout.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = mqtt_required)]
pub struct MqttOptions {
    /// `host:port`, or `mqtt://host[:port]` / `tcp://host[:port]` (port 1883 by default), or
    /// `mqtts://host[:port]` / `ssl://host[:port]` for TLS (port 8883 by default).
    pub broker: String,
    /// TLS of an `mqtts://` broker: `ca` (PEM; unset = the system's roots), `cert` and `key` (a
    /// client certificate, as AWS IoT Core and brokers with `require_certificate` want).
    pub tls: TlsOptions,
    /// Topic filters to subscribe to; `+` matches one level, `#` the rest.
    pub topics: Vec<String>,
    /// 0 or 1.
    pub qos: u8,
    /// The client id; default `topo-<topology>-<component>-<task>`.
    pub client_id: Option<String>,
    /// Whether the broker forgets the session at disconnect; default: false with QoS 1.
    pub clean_session: Option<bool>,
    /// Keep-alive interval (pings when idle).
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub keep_alive: Duration,
    /// User name, if the broker wants one.
    pub username: Option<String>,
    /// Password, with `username` (write `"${VAR}"` to take it from the environment).
    pub password: Option<String>,
    /// A file whose first line is the password (a mounted secret); or `password`.
    pub password_file: Option<std::path::PathBuf>,
    /// How a payload becomes a value.
    pub payload: PayloadFormat,
    /// With `payload = "json"`: keys of the object emitted as fields after `payload`.
    pub fields: Vec<String>,
    /// The largest payload accepted; larger ones go to the `error` stream.
    pub max_payload_bytes: usize,
    /// Waits between connection attempts, and when to give up.
    pub reconnect: RetryOptions,
    /// Subscribe as a shared subscription `$share/<group>/<topic>` (one task per message).
    pub shared_group: Option<String>,
}

impl Default for MqttOptions {
    fn default() -> Self {
        MqttOptions {
            broker: String::new(),
            tls: TlsOptions::default(),
            topics: Vec::new(),
            qos: 1,
            client_id: None,
            clean_session: None,
            keep_alive: Duration::from_secs(30),
            username: None,
            password: None,
            password_file: None,
            payload: PayloadFormat::Utf8,
            fields: Vec::new(),
            max_payload_bytes: 1 << 20,
            reconnect: RetryOptions::default(),
            shared_group: None,
        }
    }
}

counters! {
    /// Counts of what the connections saw, shared by every task of a spout (and its clones).
pub struct MqttCounters {
        /// Messages received and passed on as tuples (replays not counted).
        messages,
        /// Payloads over `max_payload_bytes`, sent to the `error` stream.
        oversize,
        /// Payloads that were not UTF-8 (`strict`) or not the JSON expected (`json`), sent to `error`.
        malformed,
        /// Connections accepted by the broker.
        connections,
        /// Failed connection attempts and lost connections.
        connection_errors,
        /// Subscriptions the broker granted (one per topic filter and connection).
        subscribed,
        /// PUBACKs handed to the client (QoS 1 messages acknowledged to the broker).
        acks_sent,
        ;
        /// One warning a second at most.
        warn: crate::connector::warn::WarnLimit,
    }
}

impl MqttCounters {
    /// True at most once a second: whether a warning may be logged now.
    fn may_warn(&self) -> bool {
        self.warn.allow()
    }
}

/// The connection a message came with, and whether the broker resumed the session then.
#[derive(Debug, Default)]
struct Link {
    /// `generation << 1 | session_present` of the current connection (generation 0 = none yet).
    state: AtomicU64,
}

impl Link {
    fn set(&self, generation: u64, session_present: bool) {
        self.state
            .store(generation << 1 | u64::from(session_present), Relaxed);
    }
    fn generation(&self) -> u64 {
        self.state.load(Relaxed) >> 1
    }
    fn session_present(&self) -> bool {
        self.state.load(Relaxed) & 1 == 1
    }
}

/// What the connection task hands to the spout.
enum Item {
    /// A message's values; the PUBLISH (QoS 1) to acknowledge once the tree is acked.
    Message {
        values: Values,
        publish: Option<Publish>,
        generation: u64,
    },
    /// A bad message: (`reason`, `raw`); the PUBLISH to acknowledge at once (QoS 1).
    Error {
        values: Values,
        publish: Option<Publish>,
        generation: u64,
    },
}

/// An emitted message not yet acked.
struct Pending {
    values: Values,
    publish: Option<Publish>,
    generation: u64,
}

/// The broker address as (host, port, whether over TLS), or what is wrong with it.
fn parse_broker(broker: &str) -> Result<(String, u16, bool), String> {
    let shown = crate::connector::redact(broker);
    if shown != broker {
        return Err(format!(
            "option `broker` = {shown:?}: credentials do not go in the address; give them as `username` and `password` (e.g. password = \"${{MQTT_PASSWORD}}\")"
        ));
    }
    let bad = || {
        format!(
            "option `broker` = {broker:?}: expected \"host:port\", \"mqtt://host[:port]\" or \"mqtts://host[:port]\" (e.g. \"127.0.0.1:1883\")"
        )
    };
    let mut tls = false;
    let rest = if let Some((scheme, rest)) = broker.split_once("://") {
        match scheme {
            "mqtt" | "tcp" => {}
            "mqtts" | "ssl" => tls = true,
            "ws" | "wss" => {
                return Err(format!(
                    "option `broker` = {broker:?}: {scheme}:// is not supported (TCP only: mqtt:// or mqtts://)"
                ));
            }
            _ => return Err(bad()),
        }
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.is_empty() {
            return Err(bad());
        }
        if rest.rsplit_once(':').is_none() || rest.ends_with(']') {
            let host = rest.trim_start_matches('[').trim_end_matches(']');
            return Ok((host.to_string(), if tls { 8883 } else { 1883 }, tls));
        }
        rest
    } else {
        broker
    };
    check_address(rest).map_err(|_| bad())?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok((host.to_string(), port, tls))
}

/// Checks a topic filter (MQTT 3.1.1 §4.7).
fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("option `topics`: an empty topic filter".to_string());
    }
    if topic.len() > 65_535 || topic.contains('\0') {
        return Err(format!(
            "option `topics`: {topic:?} is not a valid topic filter"
        ));
    }
    let levels: Vec<&str> = topic.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err(format!(
                "option `topics`: {topic:?}: `#` must be a whole level and the last one (e.g. \"sensors/#\")"
            ));
        }
        if level.contains('+') && *level != "+" {
            return Err(format!(
                "option `topics`: {topic:?}: `+` must be a whole level (e.g. \"sensors/+/temp\")"
            ));
        }
    }
    Ok(())
}

/// The `mqtt` spout (see the module docs). Cloning gives a fresh, unopened spout with the same
/// options that shares the counters.
pub struct MqttSpout {
    opts: Arc<MqttOptions>,
    host: Arc<str>,
    port: u16,
    /// The TLS configuration of an `mqtts://` broker.
    tls: Option<Arc<rustls::ClientConfig>>,
    qos: QoS,
    counters: Arc<MqttCounters>,
    conn: Option<Connection>,
}

/// One task's connection: the client, its task, and the messages in flight.
struct Connection {
    client: AsyncClient,
    rx: flume::Receiver<Item>,
    link: Arc<Link>,
    task: JoinHandle<()>,
    cancel: CancellationToken,
    pending: HashMap<u64, Pending>,
    replay: VecDeque<u64>,
    /// PUBACKs the client's request channel had no room for; sent on the next call.
    unsent_acks: VecDeque<Publish>,
    next_id: u64,
    max_pending: usize,
    /// The connection task has ended (gave up) and the channel is empty.
    ended: bool,
}

impl Clone for MqttSpout {
    fn clone(&self) -> Self {
        MqttSpout {
            opts: self.opts.clone(),
            host: self.host.clone(),
            port: self.port,
            tls: self.tls.clone(),
            qos: self.qos,
            counters: self.counters.clone(),
            conn: None,
        }
    }
}

impl MqttSpout {
    /// An MQTT spout with these options, or what is wrong with them.
    pub fn new(opts: MqttOptions) -> Result<MqttSpout, String> {
        let (host, port, over_tls) = parse_broker(&opts.broker)?;
        let tls = match (over_tls, opts.tls.is_set()) {
            (true, _) => Some(Arc::new(opts.tls.load("tls")?.client_config(Verify::Full)?)),
            (false, true) => {
                return Err(format!(
                    "option `tls` is for a TLS broker, and `broker` = {:?} is plain: write `mqtts://host:port`",
                    opts.broker
                ));
            }
            (false, false) => None,
        };
        if opts.topics.is_empty() {
            return Err(
                "option `topics` is empty: give at least one topic filter (e.g. [\"sensors/#\"])"
                    .to_string(),
            );
        }
        for t in &opts.topics {
            check_topic(t)?;
        }
        let qos = match opts.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            2 => {
                return Err("option `qos` = 2: not supported; use 1 (messages are acknowledged to the broker once their tuple tree is acked: at-least-once)".to_string());
            }
            q => return Err(format!("option `qos` = {q}: expected 0 or 1")),
        };
        if let Some(id) = &opts.client_id
            && (id.is_empty() || id.len() > 200)
        {
            return Err(format!(
                "option `client_id` = {id:?}: expected 1 to 200 characters"
            ));
        }
        if opts.keep_alive < Duration::from_secs(5) {
            return Err(format!(
                "option `keep_alive` = {:?}: expected at least 5s",
                humantime::format_duration(opts.keep_alive).to_string()
            ));
        }
        if (opts.password.is_some() || opts.password_file.is_some()) && opts.username.is_none() {
            return Err("option `password` needs `username`".to_string());
        }
        let mut opts = opts;
        if let Some(file) = &opts.password_file {
            if opts.password.is_some() {
                return Err("options `password` and `password_file`: give one".to_string());
            }
            opts.password = Some(crate::connector::secret_file("password_file", file)?);
        }
        if opts.max_payload_bytes == 0 || opts.max_payload_bytes > MAX_MQTT_PACKET {
            return Err(format!(
                "option `max_payload_bytes` = {}: expected from 1 to 268435455 (256 MiB, the MQTT limit)",
                opts.max_payload_bytes
            ));
        }
        if !opts.fields.is_empty() && opts.payload != PayloadFormat::Json {
            return Err("option `fields` applies only with payload = \"json\"".to_string());
        }
        let mut seen = std::collections::HashSet::new();
        for f in &opts.fields {
            if f.is_empty() || f == "topic" || f == "payload" || !seen.insert(f.as_str()) {
                return Err(format!(
                    "option `fields`: {f:?} is empty, repeated, or one of the fields `topic` and `payload`"
                ));
            }
        }
        if let Some(g) = &opts.shared_group
            && (g.is_empty() || g.contains(['/', '+', '#']))
        {
            return Err(format!(
                "option `shared_group` = {g:?}: expected a name without `/`, `+` or `#`"
            ));
        }
        opts.reconnect.check_reconnect("reconnect")?;
        Ok(MqttSpout {
            opts: Arc::new(opts),
            host: host.into(),
            port,
            tls,
            qos,
            counters: Arc::default(),
            conn: None,
        })
    }

    /// What the connections have seen so far, over every task of this spout and its clones.
    pub fn counters(&self) -> &MqttCounters {
        &self.counters
    }

    /// The client id of a task.
    fn client_id(&self, ctx: &TaskContext) -> String {
        match &self.opts.client_id {
            Some(id) if ctx.parallelism() > 1 => format!("{id}-{}", ctx.task_index()),
            Some(id) => id.clone(),
            None => format!(
                "topo-{}-{}-{}",
                ctx.topology(),
                ctx.component_id(),
                ctx.task_index()
            ),
        }
    }
}

/// Turns a PUBLISH into an item.
fn decode(
    p: Publish,
    generation: u64,
    opts: &MqttOptions,
    counters: &MqttCounters,
    source: &str,
) -> Item {
    let publish = (p.qos != QoS::AtMostOnce).then(|| Publish {
        // Only the packet id and QoS are needed for the PUBACK: keep neither topic nor payload.
        dup: p.dup,
        qos: p.qos,
        retain: p.retain,
        pkid: p.pkid,
        topic: String::new(),
        payload: Bytes::new(),
    });
    let error = |reason: String, raw: &[u8], publish: Option<Publish>| {
        if counters.may_warn() {
            tracing::warn!(source, topic = %p.topic, %reason, "message sent to the `error` stream");
        }
        Item::Error {
            values: values![reason, raw_prefix(raw)],
            publish,
            generation,
        }
    };
    let payload = &p.payload;
    if payload.len() > opts.max_payload_bytes {
        counters.oversize.fetch_add(1, Relaxed);
        return error(
            format!(
                "payload of {} bytes on topic {:?} is over max_payload_bytes = {}",
                payload.len(),
                p.topic,
                opts.max_payload_bytes
            ),
            payload,
            publish,
        );
    }
    let mut values = values![Value::Str(SmolStr::new(&p.topic))];
    match decode_payload(opts.payload, payload, &opts.fields) {
        Ok((value, extracted)) => {
            values.push(value);
            values.extend(extracted);
        }
        Err(e) => {
            counters.malformed.fetch_add(1, Relaxed);
            return error(
                format!("payload on topic {:?} {e}", p.topic),
                payload,
                publish,
            );
        }
    }
    counters.messages.fetch_add(1, Relaxed);
    Item::Message {
        values,
        publish,
        generation,
    }
}

/// Everything the connection task needs.
struct ConnTask {
    eventloop: rumqttc::EventLoop,
    client: AsyncClient,
    opts: Arc<MqttOptions>,
    filters: Vec<SubscribeFilter>,
    counters: Arc<MqttCounters>,
    link: Arc<Link>,
    tx: flume::Sender<Item>,
    cancel: CancellationToken,
    source: SmolStr,
}

impl ConnTask {
    /// Polls the event loop: connects, subscribes, passes messages on, reconnects with backoff.
    async fn run(mut self) {
        let address = self.opts.broker.clone();
        let mut backoff = self.opts.reconnect.backoff;
        let mut failures = 0u32;
        let mut generation = 0u64;
        let mut closing = false;
        loop {
            let event = tokio::select! {
                _ = self.cancel.cancelled() => return,
                e = self.eventloop.poll() => e,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    generation += 1;
                    self.link.set(generation, ack.session_present);
                    self.counters.connections.fetch_add(1, Relaxed);
                    backoff = self.opts.reconnect.backoff;
                    failures = 0;
                    tracing::info!(
                        component = %self.source,
                        broker = %address,
                        session_present = ack.session_present,
                        "connected"
                    );
                    if let Err(e) = self.client.try_subscribe_many(self.filters.clone()) {
                        tracing::error!(component = %self.source, "cannot subscribe: {e}");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(s))) => {
                    for (code, filter) in s.return_codes.iter().zip(&self.filters) {
                        match code {
                            SubscribeReasonCode::Failure => tracing::error!(
                                component = %self.source,
                                topic = %filter.path,
                                "the broker refused the subscription"
                            ),
                            SubscribeReasonCode::Success(q) => {
                                self.counters.subscribed.fetch_add(1, Relaxed);
                                tracing::debug!(
                                    component = %self.source,
                                    topic = %filter.path,
                                    granted = ?q,
                                    "subscribed"
                                );
                            }
                        }
                    }
                }
                // Closing: not passed on, not acked; the broker keeps it (QoS 1).
                Ok(Event::Incoming(Packet::Publish(_))) if closing => {}
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let item = decode(p, generation, &self.opts, &self.counters, &self.source);
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        r = self.tx.send_async(item) => if r.is_err() { return },
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => closing = true,
                Ok(_) => {}
                // After our DISCONNECT the broker closes the connection once it has read every
                // packet before it (the PUBACKs): only then may a new session take over.
                Err(_) if closing => return,
                Err(e) => {
                    if matches!(e, ConnectionError::RequestsDone) {
                        return;
                    }
                    self.counters.connection_errors.fetch_add(1, Relaxed);
                    failures = failures.saturating_add(1);
                    if self.opts.reconnect.exhausted(failures, 0) {
                        tracing::error!(
                            component = %self.source,
                            broker = %address,
                            attempts = failures,
                            "cannot connect, giving up: {e}"
                        );
                        return;
                    }
                    if self.counters.may_warn() {
                        tracing::warn!(
                            component = %self.source,
                            broker = %address,
                            retry_in = %humantime::format_duration(backoff),
                            "connection failed or lost: {e}"
                        );
                    }
                    tokio::select! {
                        _ = self.cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = self.opts.reconnect.next_backoff(backoff);
                }
            }
        }
    }
}

impl Drop for Connection {
    /// An instance dropped without `close` (a restarted task) ends its connection, so that the
    /// next instance, with the same client id, is not taken over by it.
    fn drop(&mut self) {
        self.cancel.cancel();
        self.task.abort();
    }
}

impl Connection {
    /// Sends the PUBACK of a QoS 1 message of the current connection.
    fn send_ack(&mut self, publish: Publish, generation: u64, counters: &MqttCounters) {
        if generation != self.link.generation() {
            // An earlier connection's message: the broker redelivers it if it kept the session
            // (the copy is acked instead), else it has forgotten it.
            return;
        }
        match self.client.try_ack(&publish) {
            Ok(()) => {
                counters.acks_sent.fetch_add(1, Relaxed);
            }
            Err(ClientError::TryRequest(_)) => self.unsent_acks.push_back(publish),
            // The event loop is gone (closing): the broker keeps the message for the session.
            Err(_) => {}
        }
    }

    fn retry_acks(&mut self, counters: &MqttCounters) {
        while let Some(p) = self.unsent_acks.pop_front() {
            match self.client.try_ack(&p) {
                Ok(()) => {
                    counters.acks_sent.fetch_add(1, Relaxed);
                }
                Err(ClientError::TryRequest(_)) => {
                    self.unsent_acks.push_front(p);
                    return;
                }
                Err(_) => {}
            }
        }
    }

    fn emit(&mut self, out: &mut SpoutCollector<'_, u64>, counters: &MqttCounters) {
        self.retry_acks(counters);
        let mut n = 0;
        while n < DRAIN_PER_CALL && out.pending() < self.max_pending {
            let Some(id) = self.replay.pop_front() else {
                break;
            };
            if let Some(p) = self.pending.get(&id) {
                out.emit(p.values.clone(), id);
                n += 1;
            }
        }
        while n < DRAIN_PER_CALL && out.pending() < self.max_pending {
            match self.rx.try_recv() {
                Ok(Item::Message {
                    values,
                    publish,
                    generation,
                }) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.pending.insert(
                        id,
                        Pending {
                            values: values.clone(),
                            publish,
                            generation,
                        },
                    );
                    out.emit(values, id);
                }
                Ok(Item::Error {
                    values,
                    publish,
                    generation,
                }) => {
                    out.emit_to(ERROR_STREAM, values, None);
                    if let Some(p) = publish {
                        self.send_ack(p, generation, counters);
                    }
                }
                Err(flume::TryRecvError::Empty) => break,
                Err(flume::TryRecvError::Disconnected) => {
                    self.ended = true;
                    break;
                }
            }
            n += 1;
        }
    }
}

impl Spout for MqttSpout {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        let mut fields = vec!["topic", "payload"];
        fields.extend(self.opts.fields.iter().map(String::as_str));
        out.declare(fields);
        out.declare_stream(ERROR_STREAM, SOURCE_ERROR_FIELDS);
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        let source = SmolStr::from(ctx.component_id());
        let client_id = self.client_id(ctx);
        let mut mo = rumqttc::MqttOptions::new(client_id.clone(), &*self.host, self.port);
        mo.set_keep_alive(self.opts.keep_alive)
            .set_clean_session(
                self.opts
                    .clean_session
                    .unwrap_or(self.qos == QoS::AtMostOnce),
            )
            .set_manual_acks(true)
            .set_max_packet_size(MAX_MQTT_PACKET, 1 << 20)
            .set_request_channel_capacity(REQUEST_CAPACITY);
        if let Some(u) = &self.opts.username {
            mo.set_credentials(u.clone(), self.opts.password.clone().unwrap_or_default());
        }
        if let Some(config) = &self.tls {
            mo.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(config.clone()),
            ));
        }
        let (client, eventloop) = AsyncClient::new(mo, REQUEST_CAPACITY);
        let filters: Vec<SubscribeFilter> = self
            .opts
            .topics
            .iter()
            .map(|t| {
                let path = match &self.opts.shared_group {
                    Some(g) => format!("$share/{g}/{t}"),
                    None => t.clone(),
                };
                SubscribeFilter::new(path, self.qos)
            })
            .collect();
        if ctx.parallelism() > 1 && self.opts.shared_group.is_none() && ctx.task_index() == 0 {
            tracing::warn!(
                component = %source,
                parallelism = ctx.parallelism(),
                "every task subscribes to every topic and receives every message; set `shared_group` to share them"
            );
        }
        let (tx, rx) = flume::bounded(CHANNEL_CAPACITY);
        let link = Arc::new(Link::default());
        let cancel = CancellationToken::new();
        tracing::info!(component = %source, %client_id, broker = %self.opts.broker, "connecting");
        let task = crate::connector::warn::spawn(
            ConnTask {
                eventloop,
                client: client.clone(),
                opts: self.opts.clone(),
                filters,
                counters: self.counters.clone(),
                link: link.clone(),
                tx,
                cancel: cancel.clone(),
                source,
            }
            .run(),
        );
        self.conn = Some(Connection {
            client,
            rx,
            link,
            task,
            cancel,
            pending: HashMap::new(),
            replay: VecDeque::new(),
            unsent_acks: VecDeque::new(),
            // A random start: the ids the runtime fails to a restarted instance (its
            // predecessor's pending messages) then name none of this instance's messages.
            next_id: fastrand::u64(..u64::MAX / 2),
            max_pending: ctx.config().max_spout_pending.unwrap_or(usize::MAX),
            ended: false,
        });
        Ok(())
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        if let Some(c) = &mut self.conn {
            c.emit(out, &self.counters);
        }
        Ok(())
    }

    fn ack(&mut self, id: u64) {
        let Some(c) = &mut self.conn else { return };
        if let Some(p) = c.pending.remove(&id)
            && let Some(publish) = p.publish
        {
            c.send_ack(publish, p.generation, &self.counters);
        }
    }

    fn fail(&mut self, id: u64) {
        let Some(c) = &mut self.conn else { return };
        let Some(p) = c.pending.get(&id) else { return };
        let redelivered =
            p.publish.is_some() && p.generation != c.link.generation() && c.link.session_present();
        if redelivered {
            // The broker resumed the session and sent this message again: that copy carries it.
            c.pending.remove(&id);
        } else {
            c.replay.push_back(id);
        }
    }

    fn is_exhausted(&self) -> bool {
        self.conn
            .as_ref()
            .is_some_and(|c| c.ended && c.pending.is_empty())
    }

    async fn close(&mut self) {
        let Some(mut c) = self.conn.take() else {
            return;
        };
        // A clean DISCONNECT; unacked QoS 1 messages stay with the broker's session. Messages
        // still in the channel are dropped unacked (QoS 1: the broker keeps them).
        if c.client.try_disconnect().is_ok() {
            let deadline = tokio::time::sleep(CLOSE_WAIT);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    biased;
                    _ = &mut c.task => break,
                    _ = &mut deadline => break,
                    r = c.rx.recv_async() => if r.is_err() {
                        let _ = tokio::time::timeout(CLOSE_WAIT, &mut c.task).await;
                        break;
                    },
                }
            }
        }
        // Dropping `c` stops the connection task if it has not ended.
    }
}

/// The `mqtt` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::spout(
            "mqtt",
            "messages of MQTT topics (wildcards), QoS 0/1; a QoS 1 message is acked to the broker once its tuple tree is acked; reconnects with backoff; bad payloads to `error`",
            MqttSpout::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components mqtt`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
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
# TLS with a client certificate (AWS IoT Core): broker = "mqtts://<endpoint>:8883" and
# tls = { ca = "AmazonRootCA1.pem", cert = "device.pem.crt", key = "private.pem.key" }
# username = "ingest"  password_file = "/run/secrets/mqtt"   # or password = "${MQTT_PASSWORD}"

# bad payloads, with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "readings", stream = "error" }]
"#;

impl FromOptions for MqttSpout {
    type Options = MqttOptions;
    fn from_options(options: MqttOptions) -> Result<Self, String> {
        MqttSpout::new(options)
    }
}

/// `broker`, `topics` have serde defaults (so a missing one is reported by the component's own check, with the
/// expected form), but are required.
fn mqtt_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["broker", "topics"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses() {
        assert_eq!(
            parse_broker("127.0.0.1:1883"),
            Ok(("127.0.0.1".into(), 1883, false))
        );
        assert_eq!(
            parse_broker("mqtt://broker.local"),
            Ok(("broker.local".into(), 1883, false))
        );
        assert_eq!(parse_broker("tcp://h:1884/"), Ok(("h".into(), 1884, false)));
        assert_eq!(
            parse_broker("mqtts://iot.example"),
            Ok(("iot.example".into(), 8883, true))
        );
        assert_eq!(parse_broker("ssl://h:8884"), Ok(("h".into(), 8884, true)));
        assert_eq!(
            parse_broker("mqtts://[::1]"),
            Ok(("::1".into(), 8883, true))
        );
        for bad in [
            "",
            "localhost",
            "http://h:1",
            "h:99999",
            "mqtt://u@h:1",
            "mqtt://h:1/x",
        ] {
            assert!(parse_broker(bad).is_err(), "{bad}");
        }
        assert!(
            parse_broker("wss://h:443")
                .unwrap_err()
                .contains("not supported")
        );
    }

    #[test]
    fn topic_filters() {
        for ok in ["a", "a/+/b", "a/#", "#", "+", "$SYS/#"] {
            assert!(check_topic(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a/#/b", "a#", "a/b+", "a\0"] {
            assert!(check_topic(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_options_name_the_option() {
        let base = MqttOptions {
            broker: "127.0.0.1:1883".into(),
            topics: vec!["t/#".into()],
            ..Default::default()
        };
        let cases: Vec<(MqttOptions, &str)> = vec![
            (
                MqttOptions {
                    qos: 2,
                    ..base.clone()
                },
                "option `qos` = 2: not supported",
            ),
            (
                MqttOptions {
                    qos: 3,
                    ..base.clone()
                },
                "option `qos` = 3",
            ),
            (
                MqttOptions {
                    topics: vec![],
                    ..base.clone()
                },
                "option `topics` is empty",
            ),
            (
                MqttOptions {
                    fields: vec!["a".into()],
                    ..base.clone()
                },
                "applies only with payload = \"json\"",
            ),
            (
                MqttOptions {
                    payload: PayloadFormat::Json,
                    fields: vec!["topic".into()],
                    ..base.clone()
                },
                "option `fields`",
            ),
            (
                MqttOptions {
                    client_id: Some(String::new()),
                    ..base.clone()
                },
                "option `client_id`",
            ),
            (
                MqttOptions {
                    password: Some("p".into()),
                    ..base.clone()
                },
                "needs `username`",
            ),
            (
                MqttOptions {
                    shared_group: Some("a/b".into()),
                    ..base.clone()
                },
                "option `shared_group`",
            ),
            (
                MqttOptions {
                    max_payload_bytes: 0,
                    ..base.clone()
                },
                "option `max_payload_bytes` = 0",
            ),
        ];
        for (o, want) in cases {
            let e = MqttSpout::new(o).err().expect("refused");
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
        assert!(MqttSpout::new(base).is_ok());
    }
}
