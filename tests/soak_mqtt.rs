//! Soak of the `mqtt` spout: nothing lost, ever. Against the local Mosquitto (127.0.0.1:1883, or
//! `TOPO_MQTT_BROKER` = `host:port`), the test publishes N QoS 1 messages with its own client
//! while `topo run` (mqtt spout, QoS 1, `clean_session = false` -> durable `file` sink) receives
//! them, and kills the process with SIGKILL at seeded random points of its progress (distinct
//! messages output), restarting it with the same client id (the broker keeps its session and
//! redelivers what was not acked); a last run goes on until every message is out, then stops on
//! SIGINT. The sink's files, read by the test, must hold every message at least once; a message
//! comes out again only in the run right after a kill (never twice in one run), at most
//! [`PER_KILL`] of them per kill.
//!
//! The broker's limits are kept to, not changed: Mosquitto drops QoS 1 messages for a client
//! beyond `max_queued_messages` (1000 by default). The test publishes only while fewer than
//! [`AHEAD`] (500) messages are published but not yet in the output, and counts a message as
//! published once the broker's PUBACK is in, so fewer than 1000 wait in the spout's session
//! beyond those sent to it, even while no process runs.
//!
//! Seed: printed; `TOPO_SOAK_SEED=<seed> cargo test -p topo --test soak_mqtt` reproduces the
//! kill points.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use topo_test_support::soak::{SinkOutput, Soak, Tally, wait_for};
use topo_test_support::unique;

/// Messages published: far past Mosquitto's 20 in flight and 1000 queued per client, the
/// spout's channel (1024), max_spout_pending (100) and the sink's batches (100).
const N: usize = 20_000;
/// SIGKILLs during the run.
const KILLS: usize = 10;
/// Messages published (acked by the broker) at most ahead of the output: well under
/// Mosquitto's `max_queued_messages` (1000) less its `max_inflight_messages` (20).
const AHEAD: usize = 500;
/// `max_spout_pending` of the topology.
const MAX_PENDING: usize = 100;
/// The spout's channel between its MQTT client and the topology (`CHANNEL_CAPACITY` in
/// spouts/src/mqtt/source.rs).
const SPOUT_CHANNEL: usize = 1024;
/// The most messages a restart can repeat: those the killed process had output but not yet
/// acked to the broker. They are its pending trees (`max_spout_pending`) and the trees acked
/// whose PUBACK had not reached the broker: while the client waits to hand a message to the full
/// channel it sends no PUBACK, and the topology acks at most the channel's messages meanwhile.
/// (Mosquitto 2.0.11 does not hold the spout to `max_inflight_messages` once PUBACKs flow, and
/// sends every message not acked again at a reconnect, so the broker side sets no lower bound.)
const PER_KILL: usize = MAX_PENDING + SPOUT_CHANNEL;
/// The longest the whole soak may take.
const BUDGET: Duration = Duration::from_secs(100);

/// The broker: `TOPO_MQTT_BROKER` (`host:port`), default the local Mosquitto.
fn broker() -> (String, u16) {
    let addr = std::env::var("TOPO_MQTT_BROKER").unwrap_or_else(|_| "127.0.0.1:1883".into());
    let (host, port) = addr
        .rsplit_once(':')
        .expect("TOPO_MQTT_BROKER is host:port");
    (host.to_string(), port.parse().expect("a port"))
}

fn topology(topic: &str, client_id: &str, out: &Path) -> String {
    format!(
        r#"
name = "soak-mqtt"

[config]
max_spout_pending = {MAX_PENDING}
message_timeout = "300s"

[spouts.in]
kind = "mqtt"
broker = "mqtt://{host}:{port}"
topics = ["{topic}"]
qos = 1
clean_session = false
client_id = "{client_id}"
reconnect = {{ backoff = "20ms", max_backoff = "200ms" }}

[bolts.out]
kind = "file"
dir = "{out}"
prefix = "soak"
batch = {{ max_records = 100, interval = "5ms" }}
inputs = [{{ from = "in" }}]
"#,
        out = out.display(),
        host = broker().0,
        port = broker().1
    )
}

/// A QoS 1 publisher whose publications count once the broker has acked them (PUBACK).
struct Publisher {
    client: AsyncClient,
    acked: Arc<AtomicUsize>,
    sent: usize,
    _rt: tokio::runtime::Runtime,
}

impl Publisher {
    fn connect(id: &str, clean: bool) -> Publisher {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let (host, port) = broker();
        let mut o = MqttOptions::new(id, host, port);
        o.set_clean_session(clean);
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
        let acked = Arc::new(AtomicUsize::new(0));
        let connected = Arc::new(AtomicBool::new(false));
        let (a, c) = (acked.clone(), connected.clone());
        rt.spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => c.store(true, Relaxed),
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        a.fetch_add(1, Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        });
        wait_for(
            "the publisher to connect to 127.0.0.1:1883 (Mosquitto)",
            Duration::from_secs(10),
            || connected.load(Relaxed),
            String::new,
        );
        Publisher {
            client,
            acked,
            sent: 0,
            _rt: rt,
        }
    }

    fn publish(&mut self, topic: &str, payload: String) {
        self.client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .expect("publish");
        self.sent += 1;
    }

    /// Publishes what the window allows: messages `msg-<published>` up to N, while fewer than
    /// [`AHEAD`] are published beyond the `produced` output and fewer than 100 beyond what the
    /// broker acked (the `probes` sent before them not counted).
    fn publish_window(
        &mut self,
        topic: &str,
        published: &mut usize,
        produced: usize,
        probes: usize,
    ) {
        let acked = self.acked().saturating_sub(probes);
        while *published < N && *published < produced + AHEAD && *published < acked + 100 {
            self.publish(topic, format!("msg-{:05}", *published));
            *published += 1;
        }
    }

    /// Publications the broker acked.
    fn acked(&self) -> usize {
        self.acked.load(Relaxed)
    }
}

/// The distinct messages (not probes) in the output, read incrementally.
struct Seen(SinkOutput);

impl Seen {
    fn poll(&mut self) -> usize {
        self.0.poll();
        self.0
            .keys()
            .iter()
            .filter(|p| p.starts_with("msg-"))
            .count()
    }
}

// The soak: N QoS 1 messages, SIGKILLs during the run, a last run until all is out; every
// message comes out at least once, duplicates only from what the broker had in flight.
#[test]
fn mqtt_spout_loses_nothing_across_kills() {
    let topic = format!("topo-soak/{}/m", unique("mqtt"));
    let client_id = unique("mqtt-soak");
    let mut soak = Soak::new(
        "soak_mqtt",
        Path::new(env!("CARGO_BIN_EXE_topo")),
        BUDGET,
        KILLS,
        N,
        |dir| topology(&topic, &client_id, &dir.join("out")),
    );
    println!("kill points (messages output): {:?}", soak.kill_points());

    let mut publisher = Publisher::connect(&unique("mqtt-soak-pub"), true);
    let mut seen = Seen(SinkOutput::new(&soak.out(), "payload"));
    soak.start();
    // Until the spout has subscribed (and so holds a session) a message is not kept for it:
    // publish probes until one comes out.
    let mut probes = 0;
    wait_for(
        "the spout to subscribe (a probe message in the output)",
        Duration::from_secs(30),
        || {
            seen.poll();
            if seen.0.keys().iter().any(|p| p.starts_with("probe-")) {
                return true;
            }
            publisher.publish(&topic, format!("probe-{probes}"));
            probes += 1;
            std::thread::sleep(Duration::from_millis(40));
            false
        },
        || soak.runs.log_tail(),
    );
    let probes_sent = publisher.sent;

    let mut published = 0;
    let mut bounds = vec![0];
    while soak.killing() {
        let produced = seen.poll();
        soak.check_budget(format_args!(
            "{produced} messages output, {published} published"
        ));
        publisher.publish_window(&topic, &mut published, produced, probes_sent);
        if soak.kill_if_due(produced, 20) {
            seen.poll();
            bounds.push(seen.0.records().len());
            soak.start();
            continue;
        }
        soak.pause();
    }
    // The last run: every message published, then waited for in the output.
    let deadline = soak.left();
    let last = Instant::now();
    while last.elapsed() < deadline {
        let produced = seen.poll();
        publisher.publish_window(&topic, &mut published, produced, probes_sent);
        if produced == N {
            break;
        }
        soak.pause();
    }
    let status = soak.interrupt(Duration::from_secs(20));
    assert!(
        status.success(),
        "the last run: {status}\n{}",
        soak.runs.log_tail()
    );
    seen.poll();

    bounds.push(seen.0.records().len());
    let input: Vec<String> = (0..N).map(|i| format!("msg-{i:05}")).collect();
    let tally = Tally::of(
        &input,
        seen.0
            .records()
            .iter()
            .filter_map(|r| r["payload"].as_str())
            .filter(|p| !p.starts_with("probe-"))
            .map(str::to_string),
    );
    let context = soak.context(format_args!(
        "{published} published, {} acked by the broker; {tally:?}",
        publisher.acked().saturating_sub(probes_sent)
    ));
    tally.assert_nothing_lost(&context);
    // Where the duplicates are: run by run (the output of each run lies between two kills).
    let records = seen.0.records();
    let mut before: HashSet<&str> = HashSet::new();
    let mut repeated = Vec::new();
    for (run, w) in bounds.windows(2).enumerate() {
        let mut this_run: HashSet<&str> = HashSet::new();
        let mut again = 0;
        for p in records[w[0]..w[1]]
            .iter()
            .filter_map(|r| r["payload"].as_str())
        {
            assert!(
                this_run.insert(p),
                "run {} output {p} twice: a message is emitted once per connection\n{context}",
                run + 1
            );
            again += usize::from(before.contains(p));
        }
        before.extend(this_run);
        repeated.push(again);
    }
    assert_eq!(repeated[0], 0, "the first run repeats nothing\n{context}");
    for (kill, n) in repeated.iter().skip(1).enumerate() {
        assert!(
            *n <= PER_KILL,
            "the run after kill {} repeated {n} messages; a killed process holds at most {PER_KILL} not acked to the broker\n{context}",
            kill + 1
        );
    }
    soak.summary(
        format_args!("mqtt: messages {N}, kills {}", soak.killed()),
        &tally,
        format_args!(
            "per run after a kill: {:?}, bound {PER_KILL} each",
            &repeated[1..]
        ),
        seen.0.torn_tails(),
    );
    // Drop the spout's persistent session at the broker.
    drop(Publisher::connect(&client_id, true));
}
