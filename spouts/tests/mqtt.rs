//! The `mqtt` spout against the real Mosquitto broker on 127.0.0.1:1883: QoS 0 and 1, wildcard
//! and shared subscriptions, replay of failed tuples, PUBACK only after the tuple tree is acked
//! (shown by a restart with the same client id), bad payloads, lost connections and a broker that
//! cannot be reached. Every test uses topics and client ids of its own run.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Packet, QoS};
use topo_dsl::TopologyBuilder;
use topo_runtime::testing::CaptureBolt;
use topo_runtime::{
    BasicBolt, BasicCollector, Bolt, BoltFactory, BoxError, OutputCollector, TopologyHandle, Tuple,
    Value,
};
use topo_spouts::{MqttOptions, MqttSpout, PayloadFormat, ReconnectOptions};
use topo_test_support::unique;

/// The longest any wait here may take.
const WAIT: Duration = Duration::from_secs(20);
const BROKER: &str = "127.0.0.1:1883";

/// Waits (bounded) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn options(topics: &[String]) -> MqttOptions {
    MqttOptions {
        broker: BROKER.into(),
        topics: topics.to_vec(),
        // The default id is the same for every run of a topology: tests run at once need their own.
        client_id: Some(unique("client")),
        reconnect: ReconnectOptions {
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            attempts: Some(0),
            max_retries: None,
        },
        ..MqttOptions::default()
    }
}

/// A client publishing to the broker, counting the PUBACKs of its QoS 1 messages.
struct Publisher {
    client: AsyncClient,
    acked: Arc<AtomicU64>,
    sent_qos1: u64,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    async fn connect() -> Publisher {
        let mut o = rumqttc::MqttOptions::new(unique("pub"), "127.0.0.1", 1883);
        o.set_max_packet_size(1 << 22, 1 << 22);
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
        let acked = Arc::new(AtomicU64::new(0));
        let connected = Arc::new(AtomicBool::new(false));
        let (a, c) = (acked.clone(), connected.clone());
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => c.store(true, Relaxed),
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        a.fetch_add(1, Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => panic!("the test's publisher lost the broker: {e}"),
                }
            }
        });
        until("the publisher to connect", || connected.load(Relaxed)).await;
        Publisher {
            client,
            acked,
            sent_qos1: 0,
            task,
        }
    }

    async fn send(&mut self, topic: &str, payload: impl Into<Vec<u8>>, qos: QoS) {
        self.client
            .publish(topic, qos, false, payload)
            .await
            .expect("publish");
        if qos == QoS::AtLeastOnce {
            self.sent_qos1 += 1;
        }
    }

    /// Waits until the broker has acked every QoS 1 message (and so has every earlier QoS 0
    /// message of this connection too).
    async fn flush(&self) {
        let want = self.sent_qos1;
        until("the broker to ack what was published", || {
            self.acked.load(Relaxed) >= want
        })
        .await;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `spout` with `parallelism` tasks into `bolt`, which takes both its streams.
fn run(spout: &MqttSpout, parallelism: usize, bolt: BoltFactory) -> TopologyHandle {
    let mut b = TopologyBuilder::new("mqtt");
    b.config_mut().message_timeout = Duration::from_secs(60);
    let s = spout.clone();
    b.set_spout("mqtt", move || s.clone(), parallelism);
    b.set_bolt("sink", bolt, 1)
        .shuffle_grouping("mqtt")
        .shuffle_grouping_stream("mqtt", "error");
    topo_runtime::submit(b.build().expect("a valid topology"))
}

/// The values of field `i` of every tuple captured on `stream`, as text.
fn field(sink: &CaptureBolt, stream: &str, i: usize) -> Vec<String> {
    sink.tuples()
        .iter()
        .filter(|c| c.stream == stream)
        .map(|c| match &c.values[i] {
            Value::Str(s) => s.to_string(),
            other => format!("{other:?}"),
        })
        .collect()
}

fn set(v: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    v.into_iter().collect()
}

// Guards that QoS 0 and QoS 1 messages on topics matching `+` and `#` filters arrive with their
// topic, that other topics do not, and that each QoS 1 message is acked to the broker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_and_qos1_messages_on_wildcard_topics_arrive() {
    let p = unique("wild");
    let spout = MqttSpout::new(options(&[format!("{p}/+/temp"), format!("{p}/alerts/#")]))
        .expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, 1, sink.factory());
    until("two subscriptions", || spout.counters().subscribed() == 2).await;

    let mut publisher = Publisher::connect().await;
    let mut want = BTreeSet::new();
    for i in 0..20 {
        publisher
            .send(&format!("{p}/d1/temp"), format!("q1 {i}"), QoS::AtLeastOnce)
            .await;
        publisher
            .send(&format!("{p}/d2/temp"), format!("q0 {i}"), QoS::AtMostOnce)
            .await;
        publisher
            .send(
                &format!("{p}/d1/humidity"),
                format!("other {i}"),
                QoS::AtLeastOnce,
            )
            .await;
        want.insert(format!("q1 {i}"));
        want.insert(format!("q0 {i}"));
    }
    for i in 0..5 {
        publisher
            .send(
                &format!("{p}/alerts/a/b"),
                format!("alert {i}"),
                QoS::AtLeastOnce,
            )
            .await;
        want.insert(format!("alert {i}"));
    }
    publisher.flush().await;
    until("45 messages", || sink.len() >= 45).await;
    // Messages of one publisher arrive in order: once the last is here, any stray would be too.
    let payloads = field(&sink, "default", 1);
    assert_eq!(set(payloads.clone()), want);
    assert_eq!(
        payloads.len(),
        45,
        "no message twice, none of another topic"
    );
    let topics = set(field(&sink, "default", 0));
    assert_eq!(
        topics,
        set([
            format!("{p}/d1/temp"),
            format!("{p}/d2/temp"),
            format!("{p}/alerts/a/b")
        ])
    );
    // QoS 0 publications reach a QoS 1 subscription as QoS 0: only 25 PUBACKs are owed.
    until("25 PUBACKs", || spout.counters().acks_sent() == 25).await;
    assert_eq!(spout.counters().messages(), 45);
    handle.stop(Duration::from_secs(5)).await;
}

/// Fails the first delivery of each payload, acks the next ones; records what it acked.
#[derive(Clone, Default)]
struct FailOnce {
    failed: Arc<Mutex<HashSet<String>>>,
    delivered: Arc<Mutex<Vec<String>>>,
}

impl BasicBolt for FailOnce {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let payload = input.values()[1].to_string();
        if self.failed.lock().expect("lock").insert(payload.clone()) {
            return Err(format!("first delivery of {payload} fails").into());
        }
        self.delivered.lock().expect("lock").push(payload);
        Ok(())
    }
}

// Guards that a failed tuple is emitted again from memory until acked, so every message is
// delivered at least once, and that each is acked to the broker once its tree completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_bolt_gets_every_message_at_least_once() {
    let p = unique("fail");
    let spout = MqttSpout::new(options(&[format!("{p}/#")])).expect("valid options");
    let bolt = FailOnce::default();
    let b = bolt.clone();
    let handle = run(&spout, 1, BoltFactory::basic(move || b.clone()));
    until("the subscription", || spout.counters().subscribed() == 1).await;

    let mut publisher = Publisher::connect().await;
    const N: usize = 100;
    for i in 0..N {
        publisher
            .send(&format!("{p}/x"), format!("m {i}"), QoS::AtLeastOnce)
            .await;
    }
    publisher.flush().await;
    until("every message delivered", || {
        bolt.delivered.lock().expect("lock").len() >= N
    })
    .await;
    let delivered = set(bolt.delivered.lock().expect("lock").clone());
    assert_eq!(delivered, set((0..N).map(|i| format!("m {i}"))));
    until("a PUBACK per message", || {
        spout.counters().acks_sent() == N as u64
    })
    .await;
    assert_eq!(
        spout.counters().messages(),
        N as u64,
        "replays come from memory"
    );
    handle.stop(Duration::from_secs(5)).await;
}

/// Holds every input: never acks nor fails it.
#[derive(Clone, Default)]
struct Hold {
    held: Arc<Mutex<Vec<Tuple>>>,
}

impl Bolt for Hold {
    async fn execute(
        &mut self,
        input: Tuple,
        _out: &mut OutputCollector<'_>,
    ) -> Result<(), BoxError> {
        self.held.lock().expect("lock").push(input);
        Ok(())
    }
}

// Guards that a QoS 1 message is not acked to the broker before its tree is: messages held
// unacked when the topology stops come again to a new run with the same client id
// (clean_session = false), and once that run acks them they never come a third time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_qos1_messages_come_again_after_a_restart() {
    let p = unique("restart");
    let opts = MqttOptions {
        client_id: Some(unique("client")),
        ..options(&[format!("{p}/#")])
    };

    // Run 1: a bolt holds every tuple; stop with them unacked.
    let spout = MqttSpout::new(opts.clone()).expect("valid options");
    let hold = Hold::default();
    let h = hold.clone();
    let handle = run(&spout, 1, BoltFactory::full(move || h.clone()));
    until("the subscription", || spout.counters().subscribed() == 1).await;
    let mut publisher = Publisher::connect().await;
    let want = set((0..10).map(|i| format!("held {i}")));
    for m in &want {
        publisher
            .send(&format!("{p}/a"), m.clone(), QoS::AtLeastOnce)
            .await;
    }
    publisher.flush().await;
    until("10 held tuples", || {
        hold.held.lock().expect("lock").len() == 10
    })
    .await;
    handle.stop(Duration::from_millis(200)).await;
    assert_eq!(
        spout.counters().acks_sent(),
        0,
        "nothing acked to the broker"
    );
    hold.held.lock().expect("lock").clear();

    // Run 2, same client id: the broker sends the 10 again; the sink acks them.
    let spout = MqttSpout::new(opts.clone()).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, 1, sink.factory());
    until("the 10 messages again", || sink.len() >= 10).await;
    assert_eq!(set(field(&sink, "default", 1)), want);
    until("10 PUBACKs", || spout.counters().acks_sent() == 10).await;
    handle.stop(Duration::from_secs(5)).await;

    // Run 3: nothing comes again but a new message.
    let spout = MqttSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, 1, sink.factory());
    until("the subscription", || spout.counters().subscribed() == 1).await;
    publisher
        .send(&format!("{p}/a"), "new", QoS::AtLeastOnce)
        .await;
    publisher.flush().await;
    until("the new message", || !sink.is_empty()).await;
    assert_eq!(field(&sink, "default", 1), ["new"]);
    handle.stop(Duration::from_secs(5)).await;
}

// Guards that with payload = "json" an object's keys become fields, that bad JSON and a
// non-object go to the `error` stream with the reason and raw payload, and that those are acked
// to the broker (a later run with the same session gets nothing again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_goes_to_the_error_stream_and_is_acked() {
    let p = unique("json");
    let opts = MqttOptions {
        client_id: Some(unique("client")),
        payload: PayloadFormat::Json,
        fields: vec!["device_id".into(), "temperature".into()],
        ..options(&[format!("{p}/#")])
    };
    let spout = MqttSpout::new(opts.clone()).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, 1, sink.factory());
    until("the subscription", || spout.counters().subscribed() == 1).await;
    let mut publisher = Publisher::connect().await;
    for payload in [
        r#"{"device_id":"d1","temperature":21.5,"extra":true}"#,
        r#"{"device_id":"d2"#,
        r#"[1,2,3]"#,
        r#"{"temperature":7}"#,
    ] {
        publisher
            .send(&format!("{p}/r"), payload, QoS::AtLeastOnce)
            .await;
    }
    publisher.flush().await;
    until("4 tuples", || sink.len() >= 4).await;
    let good: Vec<Vec<Value>> = sink
        .tuples()
        .iter()
        .filter(|c| c.stream == "default")
        .map(|c| c.values.to_vec())
        .collect();
    assert_eq!(good.len(), 2);
    assert_eq!(good[0][2], Value::from("d1"));
    assert_eq!(good[0][3], Value::Float(21.5));
    assert!(
        good[0][1].as_map().is_some(),
        "payload is the parsed object"
    );
    assert_eq!(good[1][2], Value::Null, "absent key");
    assert_eq!(good[1][3], Value::Int(7));
    let reasons = field(&sink, "error", 0);
    let raws = field(&sink, "error", 1);
    assert_eq!(reasons.len(), 2);
    assert!(reasons[0].contains("not valid JSON"), "{reasons:?}");
    assert!(reasons[1].contains("expected an object"), "{reasons:?}");
    assert_eq!(raws, [r#"{"device_id":"d2"#, "[1,2,3]"]);
    assert_eq!(spout.counters().malformed(), 2);
    until("4 PUBACKs", || spout.counters().acks_sent() == 4).await;
    handle.stop(Duration::from_secs(5)).await;

    let spout = MqttSpout::new(opts).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, 1, sink.factory());
    until("the subscription", || spout.counters().subscribed() == 1).await;
    publisher
        .send(&format!("{p}/r"), r#"{"device_id":"d3"}"#, QoS::AtLeastOnce)
        .await;
    publisher.flush().await;
    until("the new message", || !sink.is_empty()).await;
    assert_eq!(
        sink.len(),
        1,
        "the bad messages were acked: not sent again: {:?}",
        sink.tuples()
    );
    handle.stop(Duration::from_secs(5)).await;
}

// Guards that a payload over max_payload_bytes goes to `error` (reason, first KiB), is counted
// and acked, and that the connection goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_payload_goes_to_the_error_stream() {
    let p = unique("big");
    let spout = MqttSpout::new(MqttOptions {
        max_payload_bytes: 100,
        ..options(&[format!("{p}/#")])
    })
    .expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, 1, sink.factory());
    until("the subscription", || spout.counters().subscribed() == 1).await;
    let mut publisher = Publisher::connect().await;
    publisher
        .send(&format!("{p}/a"), "x".repeat(5000), QoS::AtLeastOnce)
        .await;
    publisher
        .send(&format!("{p}/a"), "small", QoS::AtLeastOnce)
        .await;
    publisher.flush().await;
    until("2 tuples", || sink.len() >= 2).await;
    assert_eq!(field(&sink, "default", 1), ["small"]);
    let reasons = field(&sink, "error", 0);
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].contains("5000 bytes") && reasons[0].contains("max_payload_bytes = 100"),
        "{reasons:?}"
    );
    assert_eq!(field(&sink, "error", 1)[0], "x".repeat(1024));
    assert_eq!(spout.counters().oversize(), 1);
    until("2 PUBACKs", || spout.counters().acks_sent() == 2).await;
    assert_eq!(spout.counters().connections(), 1);
    handle.stop(Duration::from_secs(5)).await;
}

// Guards that a broker that cannot be reached does not crash anything: each attempt is counted,
// and after `reconnect.attempts` the spout gives up and the topology becomes idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_retried_then_given_up() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = closed.local_addr().expect("addr").to_string();
    drop(closed);
    let spout = MqttSpout::new(MqttOptions {
        broker: format!("mqtt://{address}"),
        reconnect: ReconnectOptions {
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            attempts: Some(3),
            max_retries: None,
        },
        ..options(&["t/#".to_string()])
    })
    .expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, 1, sink.factory());
    handle
        .wait_until_idle(WAIT)
        .await
        .expect("idle once given up");
    assert_eq!(spout.counters().connection_errors(), 3);
    assert_eq!(spout.counters().connections(), 0);
    assert!(sink.is_empty());
    handle.stop(Duration::from_secs(5)).await;
}

// Guards that a lost connection is resumed and loses nothing the broker accepted: another
// client takes the spout's session over (the broker drops the spout's connection and sends that
// client the messages, which it never acks), then goes away; the spout reconnects with the same
// session and gets every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_connection_is_resumed_and_nothing_is_lost() {
    let p = unique("lost");
    let client_id = unique("client");
    let spout = MqttSpout::new(MqttOptions {
        client_id: Some(client_id.clone()),
        ..options(&[format!("{p}/#")])
    })
    .expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, 1, sink.factory());
    until("the subscription", || spout.counters().subscribed() == 1).await;
    let mut publisher = Publisher::connect().await;
    let mut want = BTreeSet::new();
    for i in 0..20 {
        publisher
            .send(&format!("{p}/a"), format!("before {i}"), QoS::AtLeastOnce)
            .await;
        want.insert(format!("before {i}"));
    }
    publisher.flush().await;
    until("the first 20", || sink.len() >= 20).await;

    // The intruder: same client id, persistent session, never acks what it gets.
    let mut o = rumqttc::MqttOptions::new(client_id, "127.0.0.1", 1883);
    o.set_clean_session(false).set_manual_acks(true);
    let (_intruder, mut eventloop) = AsyncClient::new(o, 10);
    let got = Arc::new(AtomicU64::new(0));
    let g = got.clone();
    let intruder = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    g.fetch_add(1, Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    });
    until("the spout to lose its connection", || {
        spout.counters().connection_errors() >= 1
    })
    .await;
    for i in 0..50 {
        publisher
            .send(&format!("{p}/a"), format!("during {i}"), QoS::AtLeastOnce)
            .await;
        want.insert(format!("during {i}"));
    }
    publisher.flush().await;
    intruder.abort();
    for i in 0..20 {
        publisher
            .send(&format!("{p}/a"), format!("after {i}"), QoS::AtLeastOnce)
            .await;
        want.insert(format!("after {i}"));
    }
    publisher.flush().await;
    until("every message", || {
        set(field(&sink, "default", 1)).len() >= want.len()
    })
    .await;
    assert_eq!(set(field(&sink, "default", 1)), want);
    assert!(spout.counters().connections() >= 2);
    handle.stop(Duration::from_secs(5)).await;
}

// Guards that with `shared_group` the tasks share one subscription: each message reaches one
// task, not every task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_group_gives_each_message_to_one_task() {
    let p = unique("shared");
    let spout = MqttSpout::new(MqttOptions {
        shared_group: Some(unique("group")),
        ..options(&[format!("{p}/#")])
    })
    .expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, 2, sink.factory());
    until("two subscriptions", || spout.counters().subscribed() == 2).await;
    let mut publisher = Publisher::connect().await;
    const N: usize = 100;
    for i in 0..N {
        publisher
            .send(&format!("{p}/a"), format!("m {i}"), QoS::AtLeastOnce)
            .await;
    }
    publisher.flush().await;
    until("100 messages", || sink.len() >= N).await;
    // A last message: once it is here, a duplicate of an earlier one would be too.
    publisher
        .send(&format!("{p}/a"), "last", QoS::AtLeastOnce)
        .await;
    publisher.flush().await;
    until("the last message", || {
        field(&sink, "default", 1).iter().any(|m| m == "last")
    })
    .await;
    let payloads = field(&sink, "default", 1);
    assert_eq!(payloads.len(), N + 1, "each message once");
    assert_eq!(set(payloads).len(), N + 1);
    handle.stop(Duration::from_secs(5)).await;
}

// Guards the `strict` and `bytes` payload modes: a payload that is not UTF-8 goes to `error` in
// strict mode, and arrives untouched as a Bytes value in bytes mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_and_bytes_payloads() {
    let p = unique("enc");
    let strict = MqttSpout::new(MqttOptions {
        payload: PayloadFormat::Strict,
        ..options(&[format!("{p}/#")])
    })
    .expect("valid options");
    let bytes = MqttSpout::new(MqttOptions {
        payload: PayloadFormat::Bytes,
        ..options(&[format!("{p}/#")])
    })
    .expect("valid options");
    let (strict_sink, bytes_sink) = (CaptureBolt::new(), CaptureBolt::new());
    let h1 = run(&strict, 1, strict_sink.factory());
    let h2 = run(&bytes, 1, bytes_sink.factory());
    until("the subscriptions", || {
        strict.counters().subscribed() == 1 && bytes.counters().subscribed() == 1
    })
    .await;
    let mut publisher = Publisher::connect().await;
    publisher
        .send(&format!("{p}/a"), "héllo", QoS::AtLeastOnce)
        .await;
    publisher
        .send(&format!("{p}/a"), b"ok\xff\xfe".to_vec(), QoS::AtLeastOnce)
        .await;
    publisher.flush().await;
    until("2 tuples each", || {
        strict_sink.len() >= 2 && bytes_sink.len() >= 2
    })
    .await;

    assert_eq!(field(&strict_sink, "default", 1), ["héllo"]);
    let reasons = field(&strict_sink, "error", 0);
    assert_eq!(reasons.len(), 1);
    assert!(
        reasons[0].contains("not UTF-8 (invalid byte at offset 2)"),
        "{reasons:?}"
    );
    assert_eq!(field(&strict_sink, "error", 1), ["ok\u{fffd}\u{fffd}"]);
    assert_eq!(strict.counters().malformed(), 1);

    let raw: Vec<Vec<u8>> = bytes_sink
        .tuples()
        .iter()
        .map(|c| c.values[1].as_bytes().expect("a Bytes value").to_vec())
        .collect();
    assert_eq!(raw, [b"h\xc3\xa9llo".to_vec(), b"ok\xff\xfe".to_vec()]);
    until("4 PUBACKs", || {
        strict.counters().acks_sent() + bytes.counters().acks_sent() == 4
    })
    .await;
    h1.stop(Duration::from_secs(5)).await;
    h2.stop(Duration::from_secs(5)).await;
}

// Guards that without `shared_group` every task subscribes on its own and gets every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_shared_group_every_task_gets_every_message() {
    let p = unique("unshared");
    let spout = MqttSpout::new(options(&[format!("{p}/#")])).expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, 2, sink.factory());
    until("two subscriptions", || spout.counters().subscribed() == 2).await;
    let mut publisher = Publisher::connect().await;
    for i in 0..10 {
        publisher
            .send(&format!("{p}/a"), format!("m {i}"), QoS::AtLeastOnce)
            .await;
    }
    publisher.flush().await;
    until("20 tuples", || sink.len() >= 20).await;
    let mut payloads = field(&sink, "default", 1);
    payloads.sort();
    let mut want: Vec<String> = (0..10)
        .flat_map(|i| [format!("m {i}"), format!("m {i}")])
        .collect();
    want.sort();
    assert_eq!(payloads, want);
    handle.stop(Duration::from_secs(5)).await;
}

/// Publishes `messages` (QoS 1) to `topic` on the TLS listener with `mosquitto_pub` (an
/// independent client), with the test CA, the client certificate and the `topo` user.
fn publish_over_tls(topic: &str, messages: &[String]) {
    use topo_test_support::tls;
    for m in messages {
        let out = std::process::Command::new("mosquitto_pub")
            .args(["-h", "localhost", "-p", &tls::mqtt_port().to_string()])
            .arg("--cafile")
            .arg(tls::file("ca.crt"))
            .arg("--cert")
            .arg(tls::file("client.crt"))
            .arg("--key")
            .arg(tls::file("client.key"))
            .args([
                "-u",
                tls::USER,
                "-P",
                tls::PASSWORD,
                "-q",
                "1",
                "-t",
                topic,
                "-m",
                m,
            ])
            .output()
            .expect("mosquitto_pub runs");
        assert!(out.status.success(), "mosquitto_pub: {out:?}");
    }
}

/// The test's options for the TLS listener: `mqtts://`, the `topo` user with `password`, and the
/// `tls` table given (parsed from TOML, as a topology file gives it).
fn tls_options(topic: &str, tls_table: &str, password: &str) -> MqttOptions {
    use topo_test_support::tls;
    let text = format!(
        "broker = \"mqtts://localhost:{}\"\nusername = \"{}\"\npassword = \"{password}\"\ntls = {tls_table}",
        tls::mqtt_port(),
        tls::USER,
    );
    let parsed: MqttOptions = toml::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    MqttOptions {
        broker: parsed.broker,
        username: parsed.username,
        password: parsed.password,
        tls: parsed.tls,
        ..options(&[topic.to_string()])
    }
}

// Guards TLS (`mqtts://`) against the broker's listener that requires client certificates (as
// AWS IoT Core does): with the test CA and the client certificate, QoS 1 messages published by
// `mosquitto_pub` arrive; a server certificate of an unknown CA, a client certificate of an
// unknown CA and a wrong password are each refused (connection errors counted, no connection
// accepted, nothing received) within a bounded wait, not hung.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_a_client_certificate_receives_and_wrong_certificates_are_refused() {
    use topo_test_support::tls;
    let topic = unique("tls");
    let file = |name: &str| tls::file(name).display().to_string();
    let good = format!(
        "{{ ca = \"{}\", cert = \"{}\", key = \"{}\" }}",
        file("ca.crt"),
        file("client.crt"),
        file("client.key")
    );
    // The password from a file (a mounted secret), as `password_file` reads it.
    let secret = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(secret.path(), format!("{}\n", tls::PASSWORD)).expect("written");
    let spout = MqttSpout::new(MqttOptions {
        password: None,
        password_file: Some(secret.path().to_path_buf()),
        ..tls_options(&topic, &good, "unused")
    })
    .expect("valid options");
    let sink = CaptureBolt::new();
    let handle = run(&spout, 1, sink.factory());
    until("the subscription over TLS", || {
        spout.counters().subscribed() == 1
    })
    .await;
    let want: Vec<String> = (0..10).map(|i| format!("reading {i}")).collect();
    let published = want.clone();
    let t = topic.clone();
    tokio::task::spawn_blocking(move || publish_over_tls(&t, &published))
        .await
        .expect("published");
    until("10 messages over TLS", || sink.len() >= 10).await;
    assert_eq!(set(field(&sink, "default", 1)), set(want));
    handle.stop(Duration::from_secs(5)).await;

    let wrong = [
        (
            format!(
                "{{ ca = \"{}\", cert = \"{}\", key = \"{}\" }}",
                file("other-ca.crt"),
                file("client.crt"),
                file("client.key")
            ),
            tls::PASSWORD,
            "a server certificate of an unknown CA",
        ),
        (
            format!(
                "{{ ca = \"{}\", cert = \"{}\", key = \"{}\" }}",
                file("ca.crt"),
                file("other-client.crt"),
                file("other-client.key")
            ),
            tls::PASSWORD,
            "a client certificate of an unknown CA",
        ),
        (good.clone(), "not-the-password", "a wrong password"),
    ];
    for (table, password, what) in wrong {
        let spout = MqttSpout::new(tls_options(&topic, &table, password)).expect("valid options");
        let sink = CaptureBolt::new();
        let handle = run(&spout, 1, sink.factory());
        until(what, || spout.counters().connection_errors() >= 2).await;
        assert_eq!(
            spout.counters().connections(),
            0,
            "{what}: a connection was accepted"
        );
        assert_eq!(sink.len(), 0, "{what}");
        handle.stop(Duration::from_secs(5)).await;
    }
}

// Guards the TLS options' checks: `tls` with a plain broker, and a missing CA file, name the
// option.
#[test]
fn tls_options_need_an_mqtts_broker_and_readable_files() {
    let mut o = options(&["a/b".to_string()]);
    o.tls.ca = Some("/no/such/ca.pem".into());
    let e = MqttSpout::new(o.clone()).err().expect("refused");
    assert!(e.contains("`tls`") && e.contains("mqtts://"), "{e}");
    o.broker = "mqtts://localhost:8883".into();
    let e = MqttSpout::new(o).err().expect("refused");
    assert!(
        e.contains("`tls.ca`") && e.contains("/no/such/ca.pem"),
        "{e}"
    );
}
