//! `kafka`: produces records to Apache Kafka topics (or a Kafka-compatible broker such as tansu)
//! through librdkafka (the `rdkafka` crate); each input is acked only once the broker confirmed
//! its record (the delivery report), and failed when the delivery fails.
//!
//! ```text
//!              ┌──────────────────────────── kafka ─────────────────────────────────┐
//! input ─────► │ encode: topic (fixed, or field `topic_field`)                      │
//!              │         key   (fixed `key`, field `key_field`, or none)            │
//!              │         value (field `value_field`, or the tuple as JSON) ──err────────► error
//!              │   send (librdkafka queue; batches by `linger` / `batch_size`, and  │
//!              │        sent at once when no more input is waiting)                 │
//!              │   input held until its delivery report ── at most `max_in_flight`  │
//!              │        (more: execute waits for reports: backpressure)             │
//!              │   delivery report (read at every execute and tick)                 │
//!              │     ├─ delivered ──────────────────────────► ack the input         │
//!              │     └─ failed (after librdkafka's retries,  ► fail the input        │──► spout replays
//!              │        within `delivery_timeout`)                                  │
//!              └────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Options:
//!
//! ```toml
//! [bolts.ship]
//! kind = "kafka"
//! brokers = "127.0.0.1:9092"      # bootstrap servers (required)
//! topic = "counts"                # or topic_field = "dest" (its text names the topic)
//! key_field = "word"              # or key = "fixed"; neither: records without a key
//! # value_field = "line"          # text or bytes as they are, other values as JSON;
//! #                               # default: the whole tuple as one JSON object
//! idempotent = true               # enable.idempotence (no duplicates from producer retries)
//! linger = "5ms"                  # linger.ms: how long records wait to be batched
//! batch_size = 10000              # batch.num.messages
//! delivery_timeout = "30s"        # message.timeout.ms: after it a record's delivery fails
//! max_in_flight = 10000           # inputs awaiting their delivery report, per task
//! # transactions = true           # refused: the tested broker has no transactions (see below)
//! [bolts.ship.properties]         # any librdkafka setting, passed through
//! "compression.type" = "lz4"
//! ```
//!
//! # Semantics
//! A record's value is the text or bytes of `value_field` (another value type is sent as its
//! JSON form), or, without `value_field`, the tuple as one JSON object keyed by field name. Its
//! key is `key`, or the value of `key_field` as text (bytes as they are), or none; its topic is
//! `topic` or the text of `topic_field`. A tuple without such a field, or whose topic field is not
//! a valid topic name, goes to the `error` stream as (`reason`, `record`) and is acked.
//!
//! Each input is acked when its delivery report says the broker stored the record (`acks=all`
//! by default) and failed when the report is an error (unreachable brokers past
//! `delivery_timeout`, a topic that does not exist, a record too large): its spout replays it,
//! so delivery is **at-least-once**. With `idempotent = true` (the default) librdkafka's own
//! retries do not write duplicates; a replay by the spout can. Delivery reports are read at
//! every `execute` and every tick (every 20 ms), so acks follow deliveries closely without
//! blocking the task; only when `max_in_flight` inputs are waiting does `execute` wait.
//!
//! When the sink opens, a fixed `topic` is looked up: a missing topic is reported as `topic
//! "<name>" not found at <brokers>` and the open retried after a back-off. Unreachable brokers are
//! logged as `brokers <list> unreachable: ...` (at most once a second) and retried by librdkafka.
//!
//! # When records are sent
//! librdkafka sends a partition's batch when it holds `batch_size` records, or when its oldest
//! record has waited `linger`. Besides, as soon as no more input is waiting for the sink (its
//! task's input ran dry, [`Bolt::input_drained`]), the sink has librdkafka send every record it
//! holds at once, whatever `linger`, and waits for their delivery reports (at most
//! `delivery_timeout`; input that arrives meanwhile waits in the queue). So records do not
//! wait out a long `linger` when the input pauses, nor when acking holds the spouts back at
//! `max_spout_pending`; under load the queue is never empty, and batches fill by `linger` and
//! `batch_size` as configured.
//!
//! # Exactly-once
//! Under `guarantee = "exactly_once"` no input is tracked, so a failed delivery cannot be
//! replayed by its spout: the sink produces that record again itself (after librdkafka's own
//! retries within `delivery_timeout`). At each checkpoint's barrier it sends everything at once
//! and waits until every record received before the barrier has a successful delivery report
//! (at most twice `delivery_timeout`); if some have none, it refuses the snapshot, so that
//! checkpoint fails instead of covering records not stored. So a completed checkpoint never
//! comes with lost output.
//!
//! The output itself is **at-least-once**: records produced after the last completed checkpoint
//! are produced again when a run resumes from it (the spouts replay them). Kafka transactions
//! (one per checkpoint, committed when it completes, read with `isolation.level =
//! read_committed`) would remove those repeats, but the broker this sink is tested with, tansu
//! 0.6, does not support them: `init_transactions` succeeds, yet committing fails with
//! `Transaction error: EndTxnRequest (KIP-98) not supported by broker`. The option
//! `transactions = true` is therefore refused with that explanation. The idempotent producer
//! (`idempotent = true`, the default; tansu accepts it) keeps librdkafka's own retries from
//! writing duplicates.
//!
//! # Known limits
//! - Kafka transactions are not used (see "Exactly-once"): a spout replay can write a record
//!   twice.
//! - Records are partitioned by librdkafka's default partitioner (by key hash; records without
//!   a key spread).
//! - tansu 0.6, a Kafka-compatible broker, stores batches of many records correctly (each
//!   record its own offset), but its ListOffsets answer (the end offsets tools show) lags behind
//!   the last batch; count what a topic holds by reading it to its end.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    Bolt, BoxError, OutputCollector, OutputDeclarer, Snapshot, TaskContext, Tuple, Value, values,
};

use crate::connector::counters;
use crate::connector::sink::encode_json;
use crate::connector::sink::{exactly_once, record};
use crate::connector::{ERROR_STREAM, SINK_ERROR_FIELDS};

/// Why `transactions = true` is refused.
const TRANSACTIONS_UNAVAILABLE: &str = "option `transactions`: Kafka transactions are not available in this sink: the broker it is tested with (tansu 0.6) accepts InitProducerId but refuses EndTxn (\"EndTxnRequest (KIP-98) not supported by broker\"), so no transaction can commit. Leave it unset: under guarantee = \"exactly_once\" each record is produced once per run by the idempotent producer, and again only when a restore replays it (at-least-once)";

/// How often delivery reports are read while no input arrives.
const TICK: Duration = Duration::from_millis(20);

/// A librdkafka setting's value as written in TOML: the spout's [`PropertyValue`](crate::kafka::PropertyValue).
pub use super::PropertyValue as KafkaProperty;

/// librdkafka settings the sink sets from its options.
const OWNED_PROPERTIES: [(&str, &str); 7] = [
    ("bootstrap.servers", "use option `brokers`"),
    ("metadata.broker.list", "use option `brokers`"),
    ("enable.idempotence", "use option `idempotent`"),
    ("linger.ms", "use option `linger`"),
    ("queue.buffering.max.ms", "use option `linger`"),
    ("batch.num.messages", "use option `batch_size`"),
    ("message.timeout.ms", "use option `delivery_timeout`"),
];

/// Options of the `kafka` sink.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = kafka_sink_required)]
pub struct KafkaSinkOptions {
    /// Bootstrap servers, `host:port` separated by commas.
    pub brokers: String,
    /// The topic every record goes to (or `topic_field`).
    pub topic: Option<String>,
    /// The field whose text names each record's topic.
    pub topic_field: Option<String>,
    /// The field whose value is the record's key.
    pub key_field: Option<String>,
    /// A fixed key for every record.
    pub key: Option<String>,
    /// The field sent as the record's value; default: the tuple as a JSON object.
    pub value_field: Option<String>,
    /// The idempotent producer (no duplicates from librdkafka's retries).
    pub idempotent: bool,
    /// How long records wait to be batched (`linger.ms`).
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub linger: Duration,
    /// Records per batch at most (`batch.num.messages`).
    pub batch_size: usize,
    /// A record not delivered within this fails (`message.timeout.ms`).
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub delivery_timeout: Duration,
    /// Inputs awaiting their delivery report per task; more makes `execute` wait.
    pub max_in_flight: usize,
    /// Kafka transactions (one per checkpoint). Not available: setting it is an error that
    /// says why (see the module docs, "Exactly-once").
    pub transactions: bool,
    /// librdkafka settings passed through.
    pub properties: BTreeMap<String, KafkaProperty>,
    /// TLS to the brokers: `tls = {}` verifies them with the system's roots; `{ ca, cert, key }`
    /// with a CA file and a client certificate.
    pub tls: Option<crate::connector::tls::TlsOptions>,
    /// SASL authentication (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`, `OAUTHBEARER`); over TLS
    /// with `tls`.
    pub sasl: Option<crate::kafka::SaslOptions>,
}

impl Default for KafkaSinkOptions {
    fn default() -> Self {
        KafkaSinkOptions {
            brokers: String::new(),
            topic: None,
            topic_field: None,
            key_field: None,
            key: None,
            value_field: None,
            idempotent: true,
            linger: Duration::from_millis(5),
            batch_size: 10_000,
            delivery_timeout: Duration::from_secs(30),
            max_in_flight: 10_000,
            transactions: false,
            properties: BTreeMap::new(),
            tls: None,
            sasl: None,
        }
    }
}

fn topic_ok(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

impl KafkaSinkOptions {
    /// Checks the values; the error names the option.
    pub fn check(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err(
                "option `brokers`: expected the bootstrap servers, e.g. \"127.0.0.1:9092\"".into(),
            );
        }
        for b in self.brokers.split(',') {
            let b = b.trim();
            let ok = b
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(format!(
                    "option `brokers`: {b:?} is not host:port (e.g. \"127.0.0.1:9092\")"
                ));
            }
        }
        match (&self.topic, &self.topic_field) {
            (None, None) => {
                return Err(
                    "option `topic`: expected the topic to write to (or `topic_field`)".into(),
                );
            }
            (Some(_), Some(_)) => {
                return Err("options `topic` and `topic_field`: give one, not both".into());
            }
            (Some(t), None) if !topic_ok(t) => {
                return Err(format!(
                    "option `topic` = {t:?}: expected a topic name (1 to 249 of letters, digits, '.', '_', '-')"
                ));
            }
            (None, Some(f)) if f.is_empty() => {
                return Err("option `topic_field` is empty: expected a field name".into());
            }
            _ => {}
        }
        if self.key.is_some() && self.key_field.is_some() {
            return Err("options `key` and `key_field`: give one, not both".into());
        }
        for (name, v) in [
            ("key_field", &self.key_field),
            ("value_field", &self.value_field),
        ] {
            if v.as_deref() == Some("") {
                return Err(format!("option `{name}` is empty: expected a field name"));
            }
        }
        if self.batch_size == 0 || self.batch_size > 1_000_000 {
            return Err(format!(
                "option `batch_size` = {}: expected 1 to 1000000",
                self.batch_size
            ));
        }
        if self.linger > Duration::from_secs(900) {
            return Err("option `linger`: expected at most 900s".into());
        }
        if self.delivery_timeout < Duration::from_millis(100) {
            return Err("option `delivery_timeout`: expected at least 100ms".into());
        }
        if self.max_in_flight == 0 {
            return Err("option `max_in_flight` must be at least 1".into());
        }
        if self.transactions {
            return Err(TRANSACTIONS_UNAVAILABLE.into());
        }
        super::check_properties(&self.properties, &OWNED_PROPERTIES)?;
        self.security().map(drop)
    }

    /// The librdkafka settings of `tls` and `sasl` (see [`super::security_settings`]).
    pub fn security(&self) -> Result<Vec<(&'static str, String)>, String> {
        super::security_settings(
            self.tls.as_ref(),
            self.sasl.as_ref(),
            &[("properties", &self.properties)],
        )
    }
}

counters! {
    /// Counts of one sink (shared by its tasks).
pub struct KafkaSinkCounters {
        /// Records the brokers confirmed.
        delivered,
        /// Records whose delivery failed (their inputs failed).
        failed,
        /// Client errors (unreachable brokers, ...).
        errors,
        ;
        last_error: std::sync::Mutex<Option<String>>,
        warn: std::sync::Mutex<Option<std::time::Instant>>,
    }
}

impl KafkaSinkCounters {
    /// The text of the last error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn error(&self, component: &str, msg: String) {
        self.errors.fetch_add(1, Relaxed);
        let now = std::time::Instant::now();
        let mut last = self.warn.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            *last = Some(now);
            tracing::warn!(component, "{msg}");
        }
        drop(last);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
    }
}

/// A delivery report: the input's id and the outcome.
type Report = (u64, Result<(), String>);

/// The producer's context: delivery reports into a channel the bolt reads.
struct SinkContext {
    tx: tokio::sync::mpsc::UnboundedSender<Report>,
    counters: Arc<KafkaSinkCounters>,
    component: SmolStr,
    brokers: String,
    /// What explains the client's errors.
    failures: super::Failures,
    /// The `OAUTHBEARER` login, if `sasl` asks for it.
    oauth: Option<Arc<super::OAuthLogin>>,
}

impl ClientContext for SinkContext {
    super::answer_token_refreshes!();

    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        self.failures.note(fac, msg);
        super::forward_log(&self.component, level, fac, msg);
    }
    fn error(&self, error: KafkaError, reason: &str) {
        let msg = self.failures.describe(&self.brokers, &error, reason);
        self.counters.error(&self.component, msg);
    }
}

impl ProducerContext for SinkContext {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, id: Box<u64>) {
        let outcome = match result {
            Ok(_) => Ok(()),
            Err((e, m)) => Err(format!(
                "delivery of a record to topic {:?} failed: {e}",
                m.topic()
            )),
        };
        let _ = self.tx.send((*id, outcome));
    }
}

/// The `kafka` sink bolt (see the module docs). Cloning gives a fresh, unprepared sink with
/// the same options that shares the counters.
pub struct KafkaSink {
    opts: Arc<KafkaSinkOptions>,
    counters: Arc<KafkaSinkCounters>,
    run: Option<SinkRun>,
}

impl Clone for KafkaSink {
    fn clone(&self) -> Self {
        KafkaSink {
            opts: self.opts.clone(),
            counters: self.counters.clone(),
            run: None,
        }
    }
}

struct SinkRun {
    producer: Arc<ThreadedProducer<SinkContext>>,
    rx: tokio::sync::mpsc::UnboundedReceiver<Report>,
    /// Inputs whose record awaits its delivery report, by id.
    held: HashMap<u64, Tuple>,
    next_id: u64,
    /// Records were sent since librdkafka was last told to send everything at once.
    unsent: bool,
    component: SmolStr,
    buf: Vec<u8>,
    /// Exactly-once: a failed delivery is produced again (failing the input would drop it),
    /// and a checkpoint waits for every delivery report before its barrier.
    exactly_once: bool,
    /// Exactly-once: inputs whose delivery failed, to produce again.
    resend: Vec<Tuple>,
}

/// Has librdkafka send every record it queues now, whatever `linger.ms`, and waits up to
/// `timeout` for them to be delivered or failed; false if some were still undecided then.
///
/// This calls `rd_kafka_flush` with the whole timeout: the producer counts as flushing, so its
/// batches are sent at once, for as long as the call lasts. (rdkafka's `Producer::flush` calls it
/// repeatedly with no timeout, so the flushing state lasts an instant and the broker threads,
/// woken asynchronously, may not see it and keep lingering.) The delivery reports are handed to
/// the producer's polling thread, as always.
fn send_now(p: &ThreadedProducer<SinkContext>, timeout: Duration) -> bool {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the handle is the producer's own, valid while `p` is borrowed; librdkafka allows
    // `rd_kafka_flush` from any thread, alongside the polling thread's `rd_kafka_poll`.
    let err = unsafe { rdkafka::bindings::rd_kafka_flush(p.client().native_ptr(), ms) };
    err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
}

/// One encoded record.
struct Encoded {
    topic: SmolStr,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
}

fn bytes_of(v: &Value, what: &str) -> Result<Vec<u8>, String> {
    Ok(match v {
        Value::Str(s) => s.as_bytes().to_vec(),
        Value::Bytes(b) => b.to_vec(),
        other => serde_json::to_vec(other)
            .map_err(|e| format!("{what} cannot be encoded as JSON: {e}"))?,
    })
}

impl KafkaSink {
    /// A Kafka sink with these options, or what is wrong with them.
    pub fn new(opts: KafkaSinkOptions) -> Result<KafkaSink, String> {
        opts.check()?;
        Ok(KafkaSink {
            opts: Arc::new(opts),
            counters: Arc::default(),
            run: None,
        })
    }

    /// The counters, shared by every task of this sink and its clones.
    pub fn counters(&self) -> &Arc<KafkaSinkCounters> {
        &self.counters
    }

    /// The record of an input, or why it cannot be written.
    fn encode(&self, input: &Tuple, buf: &mut Vec<u8>) -> Result<Encoded, String> {
        let o = &self.opts;
        let topic = match (&o.topic, &o.topic_field) {
            (Some(t), _) => SmolStr::new(t),
            (None, Some(f)) => match input
                .field(f)
                .map_err(|_| format!("no field `{f}` (topic_field)"))?
            {
                Value::Str(s) if topic_ok(s) => s.clone(),
                other => {
                    return Err(format!(
                        "field `{f}` (topic_field) = {other:?} is not a topic name (1 to 249 of letters, digits, '.', '_', '-')"
                    ));
                }
            },
            (None, None) => return Err("no topic".into()),
        };
        let key = match (&o.key, &o.key_field) {
            (Some(k), _) => Some(k.as_bytes().to_vec()),
            (None, Some(f)) => match input
                .field(f)
                .map_err(|_| format!("no field `{f}` (key_field)"))?
            {
                Value::Null => None,
                Value::Int(i) => Some(i.to_string().into_bytes()),
                v => Some(bytes_of(v, &format!("field `{f}` (key_field)"))?),
            },
            (None, None) => None,
        };
        let value = match &o.value_field {
            Some(f) => bytes_of(
                input
                    .field(f)
                    .map_err(|_| format!("no field `{f}` (value_field)"))?,
                &format!("field `{f}` (value_field)"),
            )?,
            None => {
                buf.clear();
                encode_json(buf, input, None, None)?;
                while buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                buf.clone()
            }
        };
        Ok(Encoded { topic, key, value })
    }

    /// Acks or fails the inputs whose delivery report arrived; waits for one when `wait`.
    async fn reports(
        &mut self,
        out: &mut OutputCollector<'_>,
        wait: Option<Duration>,
    ) -> Result<(), BoxError> {
        let Some(r) = &mut self.run else {
            return Ok(());
        };
        if let Some(d) = wait {
            match tokio::time::timeout(d, r.rx.recv()).await {
                Ok(Some(report)) => settle(r, &self.counters, out, report),
                Ok(None) => return Err("the producer's delivery channel closed".into()),
                Err(_) => {}
            }
        }
        while let Ok(report) = r.rx.try_recv() {
            settle(r, &self.counters, out, report);
        }
        Ok(())
    }
}

fn settle(
    r: &mut SinkRun,
    counters: &KafkaSinkCounters,
    out: &mut OutputCollector<'_>,
    (id, outcome): Report,
) {
    let Some(t) = r.held.remove(&id) else { return };
    match outcome {
        Ok(()) => {
            counters.delivered.fetch_add(1, Relaxed);
            out.ack(&t);
        }
        Err(e) => {
            counters.failed.fetch_add(1, Relaxed);
            counters.error(&r.component, e);
            if r.exactly_once {
                r.resend.push(t);
            } else {
                out.fail(&t);
            }
        }
    }
}

impl Bolt for KafkaSink {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare_stream(ERROR_STREAM, SINK_ERROR_FIELDS);
    }

    async fn prepare(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        let o = &self.opts;
        let component = SmolStr::from(ctx.component_id());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let context = SinkContext {
            tx,
            counters: self.counters.clone(),
            component: component.clone(),
            brokers: o.brokers.clone(),
            failures: super::Failures::new(o.tls.is_some()),
            oauth: super::OAuthLogin::of(o.sasl.as_ref())?,
        };
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &o.brokers)
            .set(
                "client.id",
                format!("topo-{}-{}", ctx.component_id(), ctx.task_index()),
            )
            .set("enable.idempotence", o.idempotent.to_string())
            .set("linger.ms", o.linger.as_millis().to_string())
            .set("batch.num.messages", o.batch_size.to_string())
            .set(
                "message.timeout.ms",
                o.delivery_timeout.as_millis().to_string(),
            );
        crate::kafka::apply_properties(&mut config, &o.properties);
        crate::kafka::apply_settings(&mut config, &o.security()?);
        let producer: ThreadedProducer<SinkContext> = config
            .create_with_context(context)
            .map_err(|e| format!("cannot create the Kafka producer: {e}"))?;
        let producer = Arc::new(producer);
        if let Some(topic) = o.topic.clone() {
            let (p, brokers) = (producer.clone(), o.brokers.clone());
            tokio::task::spawn_blocking(move || {
                crate::kafka::check_topics_exist(
                    p.client(),
                    &brokers,
                    std::slice::from_ref(&topic),
                    "topic",
                    Duration::from_secs(10),
                )
            })
            .await
            .map_err(|e| format!("metadata check: {e}"))?
            .inspect_err(|e| self.counters.error(&component, e.clone()))?;
        }
        tracing::info!(component = %component, brokers = %o.brokers, topic = ?o.topic, "kafka sink open");
        self.run = Some(SinkRun {
            producer,
            rx,
            held: HashMap::new(),
            next_id: 0,
            unsent: false,
            component,
            buf: Vec::new(),
            exactly_once: exactly_once(ctx),
            resend: Vec::new(),
        });
        Ok(())
    }

    async fn execute(
        &mut self,
        input: Tuple,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        let Some(mut buf) = self.run.as_mut().map(|r| std::mem::take(&mut r.buf)) else {
            out.fail(&input);
            return Err("the sink is not prepared".into());
        };
        let encoded = self.encode(&input, &mut buf);
        let Some(r) = &mut self.run else {
            return Ok(());
        };
        r.buf = buf;
        let rec = match encoded {
            Ok(rec) => rec,
            Err(reason) => {
                out.emit_to(ERROR_STREAM, &[&input], values![reason, record(&input)]);
                out.ack(&input);
                return Ok(());
            }
        };
        self.produce(input, rec, out).await
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(TICK)
    }

    async fn tick(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        self.reports(out, None).await?;
        self.resend(out).await
    }

    async fn input_drained(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        if !self.run.as_ref().is_some_and(|r| r.exactly_once) {
            return self.send_held(out).await;
        }
        // Exactly-once: this may be a checkpoint's barrier, which covers every record received
        // before it: wait until each has its delivery report (failed ones produced again), for
        // at most twice `delivery_timeout`; the snapshot is refused if some are still open.
        let deadline = tokio::time::Instant::now() + self.opts.delivery_timeout * 2;
        loop {
            self.resend(out).await?;
            self.send_held(out).await?;
            let open = self
                .run
                .as_ref()
                .is_some_and(|r| !r.held.is_empty() || !r.resend.is_empty());
            if !open || tokio::time::Instant::now() >= deadline {
                return Ok(());
            }
            self.reports(out, Some(Duration::from_millis(50))).await?;
        }
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        let Some(r) = self.run.as_ref().filter(|r| r.exactly_once) else {
            // With acking, held inputs are tracked: a record not delivered is replayed.
            return Ok(());
        };
        let open = r.held.len() + r.resend.len();
        if open > 0 {
            return Err(format!(
                "{open} records received before checkpoint {}'s barrier have no successful delivery report yet",
                snap.checkpoint_id()
            )
            .into());
        }
        Ok(())
    }

    async fn finish(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        self.resend(out).await?;
        self.finish_held(out).await
    }

    async fn cleanup(&mut self) {
        if let Some(r) = self.run.take() {
            let p = r.producer.clone();
            let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(5))).await;
        }
    }
}

impl KafkaSink {
    /// Exactly-once: produces again the inputs whose delivery failed.
    async fn resend(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        let again = match &mut self.run {
            Some(r) if !r.resend.is_empty() => std::mem::take(&mut r.resend),
            _ => return Ok(()),
        };
        for input in again {
            let Some(mut buf) = self.run.as_mut().map(|r| std::mem::take(&mut r.buf)) else {
                return Ok(());
            };
            let encoded = self.encode(&input, &mut buf);
            if let Some(r) = &mut self.run {
                r.buf = buf;
            }
            match encoded {
                Ok(rec) => self.produce(input, rec, out).await?,
                Err(reason) => {
                    out.emit_to(ERROR_STREAM, &[&input], values![reason, record(&input)]);
                }
            }
        }
        Ok(())
    }

    /// Hands one record to librdkafka; the input is held until its delivery report.
    async fn produce(
        &mut self,
        input: Tuple,
        rec: Encoded,
        out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        let Some(r) = &mut self.run else {
            return Ok(());
        };
        let id = r.next_id;
        r.next_id += 1;
        loop {
            let Some(r) = &mut self.run else {
                return Ok(());
            };
            let mut br: BaseRecord<'_, [u8], [u8], Box<u64>> =
                BaseRecord::with_opaque_to(&rec.topic, Box::new(id)).payload(&rec.value[..]);
            if let Some(k) = &rec.key {
                br = br.key(&k[..]);
            }
            match r.producer.send(br) {
                Ok(()) => {
                    r.held.insert(id, input);
                    r.unsent = true;
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // librdkafka's queue is full: wait for deliveries to make room.
                    self.reports(out, Some(Duration::from_millis(100))).await?;
                }
                Err((e, _)) => {
                    let msg = format!(
                        "cannot produce a record to topic {:?}: {e}",
                        rec.topic.as_str()
                    );
                    self.counters.failed.fetch_add(1, Relaxed);
                    self.counters.error(&r.component, msg);
                    if r.exactly_once {
                        r.resend.push(input);
                    } else {
                        out.fail(&input);
                    }
                    break;
                }
            }
        }
        self.reports(out, None).await?;
        while self
            .run
            .as_ref()
            .is_some_and(|r| r.held.len() >= self.opts.max_in_flight)
        {
            self.reports(out, Some(Duration::from_millis(100))).await?;
        }
        Ok(())
    }

    /// Has librdkafka send what it holds now rather than after `linger`, and reads the reports.
    async fn send_held(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        let Some(r) = &mut self.run else {
            return Ok(());
        };
        if !std::mem::take(&mut r.unsent) {
            return Ok(());
        }
        let p = r.producer.clone();
        let timeout = self.opts.delivery_timeout + TICK * 50;
        let all_decided = tokio::task::spawn_blocking(move || send_now(&p, timeout))
            .await
            .map_err(|e| format!("sending the pending records: {e}"))?;
        if !all_decided {
            // Reports still missing are read at the next execute or tick; the inputs stay held.
            tracing::debug!(
                component = %r.component,
                "records still without a delivery report after the flush"
            );
        }
        self.reports(out, None).await
    }

    /// Waits for every held input's report (delivered, or failed by `delivery_timeout`).
    async fn finish_held(&mut self, out: &mut OutputCollector<'_>) -> Result<(), BoxError> {
        // Every held input gets its report: delivered, or failed by `delivery_timeout`.
        let deadline = tokio::time::Instant::now() + self.opts.delivery_timeout + TICK * 50;
        if let Some(r) = &self.run {
            let p = r.producer.clone();
            let _ = tokio::task::spawn_blocking(move || p.poll(Duration::ZERO)).await;
        }
        while self.run.as_ref().is_some_and(|r| !r.held.is_empty())
            && tokio::time::Instant::now() < deadline
        {
            self.reports(out, Some(Duration::from_millis(50))).await?;
        }
        if let Some(r) = &mut self.run {
            let left: Vec<Tuple> = r.held.drain().map(|(_, t)| t).collect();
            for t in &left {
                out.fail(t);
            }
            if !left.is_empty() {
                return Err(format!(
                    "{} records had no delivery report at the end; their inputs are failed",
                    left.len()
                )
                .into());
            }
        }
        Ok(())
    }
}

/// The `kafka` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::bolt(
            "kafka",
            "produces records to Kafka topics (topic and key fixed or from fields, idempotent producer, batched by linger); an input acked on its delivery report, failed on a delivery error",
            KafkaSink::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components kafka`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.ship]
kind = "kafka"
brokers = "127.0.0.1:9092"
topic = "counts"             # or topic_field = "dest"
key_field = "word"           # or key = "fixed"; neither: no key
# value_field = "line"       # unset: the whole tuple as one JSON object
idempotent = true
linger = "5ms"
batch_size = 10000
delivery_timeout = "30s"     # then the record's input is failed (and replayed)
properties = { "compression.type" = "lz4" }
# tls = { ca = "ca.pem" }    # and sasl = { mechanism, username, password }, as the kafka spout
inputs = [{ from = "lines" }]
"#;

impl FromOptions for KafkaSink {
    type Options = KafkaSinkOptions;
    fn from_options(options: KafkaSinkOptions) -> Result<Self, String> {
        KafkaSink::new(options)
    }
}

/// `brokers` has a serde default (so a missing one is reported by the component's own check, with the
/// expected form), but is required.
fn kafka_sink_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["brokers"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> KafkaSinkOptions {
        KafkaSinkOptions {
            brokers: "127.0.0.1:9092".into(),
            topic: Some("out".into()),
            ..Default::default()
        }
    }

    #[test]
    fn bad_options_name_the_option() {
        let cases: Vec<(KafkaSinkOptions, &str)> = vec![
            (
                KafkaSinkOptions {
                    brokers: "nohost".into(),
                    ..base()
                },
                "option `brokers`",
            ),
            (
                KafkaSinkOptions {
                    topic: None,
                    ..base()
                },
                "option `topic`",
            ),
            (
                KafkaSinkOptions {
                    topic_field: Some("t".into()),
                    ..base()
                },
                "give one, not both",
            ),
            (
                KafkaSinkOptions {
                    topic: Some("bad topic".into()),
                    ..base()
                },
                "option `topic` = \"bad topic\"",
            ),
            (
                KafkaSinkOptions {
                    key: Some("k".into()),
                    key_field: Some("f".into()),
                    ..base()
                },
                "options `key` and `key_field`",
            ),
            (
                KafkaSinkOptions {
                    batch_size: 0,
                    ..base()
                },
                "option `batch_size`",
            ),
            (
                KafkaSinkOptions {
                    properties: [("linger.ms".to_string(), KafkaProperty::Int(5))].into(),
                    ..base()
                },
                "\"linger.ms\" cannot be set here (use option `linger`)",
            ),
            (
                KafkaSinkOptions {
                    transactions: true,
                    ..base()
                },
                "EndTxnRequest (KIP-98) not supported by broker",
            ),
        ];
        for (o, want) in cases {
            let e = KafkaSink::new(o).err().expect("refused");
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
        assert!(KafkaSink::new(base()).is_ok());
    }
}
