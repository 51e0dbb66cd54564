//! The `kafka` sink against a real Kafka-compatible broker (tansu, address in
//! `TOPO_KAFKA_BROKERS`, default `127.0.0.1:9092`): every input produced to a 3-partition topic
//! with its key (read back) and acked once, on its delivery report; the topic chosen per tuple
//! from a field; inputs without the key field to the `error` stream; a missing topic named; an
//! unreachable broker failing the inputs (replayed) with an error naming it.

use std::sync::Arc;
use std::time::Duration;

use topo_dsl::TopologyBuilder;
use topo_runtime::testing::{CaptureBolt, VecSpout};
use topo_runtime::{BoltFactory, Values, values};
use topo_spouts::{KafkaSink, KafkaSinkCounters, KafkaSinkOptions};

use topo_test_support::kafka::*;
use topo_test_support::unique;

fn options(topic: &str) -> KafkaSinkOptions {
    KafkaSinkOptions {
        brokers: brokers(),
        topic: Some(topic.into()),
        key_field: Some("device".into()),
        value_field: Some("data".into()),
        ..KafkaSinkOptions::default()
    }
}

enum Until {
    Acked,
    Failed(u32),
    Error(&'static str),
}

/// Runs `inputs` from a VecSpout through the sink until `until`; returns the spout, the error
/// tuples and the counters.
async fn run(
    opts: KafkaSinkOptions,
    inputs: Vec<Values>,
    until: Until,
) -> (VecSpout, CaptureBolt, Arc<KafkaSinkCounters>) {
    let sink = KafkaSink::new(opts).expect("valid options");
    let counters = sink.counters().clone();
    let spout = VecSpout::new(["device", "data", "dest"], inputs);
    let errors = CaptureBolt::new();
    let mut b = TopologyBuilder::new("kafka-sink");
    b.config_mut().message_timeout = Duration::from_secs(30);
    b.set_spout("in", spout.factory(), 1);
    b.set_bolt("out", BoltFactory::full(move || sink.clone()), 2)
        .fields_grouping("in", ["device"]);
    b.set_bolt("errors", errors.factory(), 1)
        .shuffle_grouping_stream("out", "error");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    let start = std::time::Instant::now();
    loop {
        let done = match &until {
            Until::Acked => spout.all_acked(),
            Until::Failed(n) => spout.failed().iter().sum::<u32>() >= *n,
            Until::Error(text) => counters.last_error().is_some_and(|e| e.contains(text)),
        };
        if done {
            break;
        }
        assert!(
            start.elapsed() < WAIT,
            "timed out; last error {:?}",
            counters.last_error()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.stop(Duration::from_secs(10)).await;
    (spout, errors, counters)
}

// Guards the sink's main path: every input is produced with its key to a 3-partition topic and
// acked exactly once; a record without the key field goes to `error` (and is acked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_input_is_produced_with_its_key_and_acked_once() {
    let topic = unique("sink");
    create_topic(&topic, 3).await;
    let mut inputs: Vec<Values> = (0..1000)
        .map(|i| values![format!("dev-{}", i % 13), format!("reading {i}"), ""])
        .collect();
    inputs.push(values![topo_runtime::Value::Null, "no key", ""]);
    let (spout, errors, counters) = run(options(&topic), inputs.clone(), Until::Acked).await;
    assert!(
        spout.acked().iter().all(|&n| n == 1),
        "each input acked once"
    );
    assert_eq!(counters.delivered(), 1001);
    let mut got: Vec<(String, String)> = read_all(&topic, 3)
        .into_iter()
        .map(|r| (r.key.unwrap_or_default(), r.value))
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = inputs
        .iter()
        .map(|v| {
            (
                v[0].as_str().unwrap_or("").to_string(),
                v[1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    want.sort();
    let missing: Vec<&(String, String)> = want.iter().filter(|w| !got.contains(w)).collect();
    assert!(
        missing.is_empty() && got.len() == want.len(),
        "{} records read back of {}; ends {:?}; missing {:?}",
        got.len(),
        want.len(),
        end_offsets(&topic, 3),
        &missing[..missing.len().min(10)]
    );
    // A null key is a record without a key, not an error.
    assert!(errors.is_empty(), "{:?}", errors.tuples());
    // One key, one partition.
    let reads = read_all(&topic, 3);
    for k in ["dev-1", "dev-7"] {
        let parts: std::collections::HashSet<i32> = reads
            .iter()
            .filter(|r| r.key.as_deref() == Some(k))
            .map(|r| r.partition)
            .collect();
        assert_eq!(parts.len(), 1, "key {k} in one partition");
    }
}

// Guards the topic taken from a field, and a bad one sent to the `error` stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_topic_comes_from_a_field() {
    let a = unique("a");
    let b = unique("b");
    create_topic(&a, 1).await;
    create_topic(&b, 1).await;
    let inputs: Vec<Values> = vec![
        values!["d1", "to a", a.as_str()],
        values!["d2", "to b", b.as_str()],
        values!["d3", "to a again", a.as_str()],
        values!["d4", "nowhere", "bad topic!"],
    ];
    let opts = KafkaSinkOptions {
        topic: None,
        topic_field: Some("dest".into()),
        ..options(&a)
    };
    let (spout, errors, _) = run(opts, inputs, Until::Acked).await;
    assert!(spout.acked().iter().all(|&n| n == 1));
    let mut va: Vec<String> = read_all(&a, 1).into_iter().map(|r| r.value).collect();
    va.sort();
    let vb: Vec<String> = read_all(&b, 1).into_iter().map(|r| r.value).collect();
    assert_eq!(va, ["to a", "to a again"]);
    assert_eq!(vb, ["to b"]);
    let errors = errors.tuples();
    assert_eq!(errors.len(), 1);
    let reason = errors[0].values[0].as_str().expect("reason");
    assert!(
        reason.contains("field `dest` (topic_field)") && reason.contains("not a topic name"),
        "{reason}"
    );
}

// Guards a missing topic: the sink names it and the brokers (and takes no input meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_named() {
    let topic = unique("missing");
    let want = format!("topic {topic:?} not found at {}", brokers());
    let inputs = vec![values!["d", "x", ""]];
    let want: &'static str = Box::leak(want.into_boxed_str());
    let (spout, _, _) = run(options(&topic), inputs, Until::Error(want)).await;
    assert!(!spout.all_acked(), "nothing acked without the topic");
}

// Guards an unreachable broker: deliveries fail after `delivery_timeout`, the inputs are failed
// (and replayed), and the error names the brokers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_fails_the_inputs() {
    let opts = KafkaSinkOptions {
        brokers: "127.0.0.1:1".into(),
        // A topic field: no metadata check at open, so the deliveries themselves fail.
        topic: None,
        topic_field: Some("dest".into()),
        delivery_timeout: Duration::from_millis(500),
        ..options("unused")
    };
    let inputs = vec![
        values!["d1", "x", "somewhere"],
        values!["d2", "y", "somewhere"],
    ];
    let (spout, _, counters) = run(opts, inputs, Until::Failed(2)).await;
    assert!(spout.acked().iter().all(|&n| n == 0), "nothing acked");
    assert!(counters.failed() >= 2);
    assert!(counters.errors() > 0);
    let start = std::time::Instant::now();
    while !counters
        .last_error()
        .is_some_and(|e| e.contains("brokers 127.0.0.1:1 unreachable") || e.contains("timed out"))
    {
        assert!(start.elapsed() < WAIT, "{:?}", counters.last_error());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// Guards: with a `linger` of ten minutes and batches of up to 10,000 records, the records of a
// few hundred inputs are sent as soon as the sink's input runs dry, not after `linger`: every
// input is delivered and acked within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_sent_when_the_input_runs_dry_whatever_the_linger() {
    let topic = unique("dry");
    create_topic(&topic, 1).await;
    let n = 300u64;
    let inputs: Vec<Values> = (0..n)
        .map(|i| values![format!("dev-{}", i % 7), format!("reading {i}"), ""])
        .collect();
    let opts = KafkaSinkOptions {
        linger: Duration::from_secs(600),
        // librdkafka wants `message.timeout.ms` above `linger.ms`.
        delivery_timeout: Duration::from_secs(900),
        batch_size: 10_000,
        ..options(&topic)
    };
    let (spout, errors, counters) = run(opts, inputs, Until::Acked).await;
    assert!(
        spout.acked().iter().all(|&n| n == 1),
        "each input acked once"
    );
    assert!(spout.failed().iter().all(|&n| n == 0), "nothing failed");
    assert!(errors.is_empty(), "{:?}", errors.tuples());
    assert_eq!(counters.delivered(), n);
    let mut got: Vec<String> = read_all(&topic, 1).into_iter().map(|r| r.value).collect();
    got.sort();
    let mut want: Vec<String> = (0..n).map(|i| format!("reading {i}")).collect();
    want.sort();
    assert_eq!(got, want, "every record in the topic, once");
}

// Guards TLS to the brokers (`tls = { ca, cert, key }`), against the Kafka endpoint that requires
// client certificates: the sink produces every input over TLS (read back by a consumer configured
// by hand, not by topo's options), and the `kafka` spout reads them over TLS; a server
// certificate of an unknown CA and a plain connection to the TLS port fail the inputs with an
// error naming the brokers, within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_the_brokers_with_a_client_certificate() {
    use topo_spouts::KafkaOptions;
    use topo_test_support::tls;
    let topic = unique("tls");
    let brokers = tls_brokers();
    create_topic_at(&brokers, &tls_settings(), &topic, 2).await;
    let tls_of = |ca: &str| {
        Some(topo_spouts::connector::tls::TlsOptions {
            ca: Some(tls::file(ca)),
            cert: Some(tls::file("client.crt")),
            key: Some(tls::file("client.key")),
        })
    };
    let inputs: Vec<Values> = (0..200)
        .map(|i| values![format!("dev-{}", i % 7), format!("reading {i}"), ""])
        .collect();
    let opts = KafkaSinkOptions {
        brokers: brokers.clone(),
        tls: tls_of("ca.crt"),
        ..options(&topic)
    };
    let (spout, _, counters) = run(opts, inputs.clone(), Until::Acked).await;
    assert!(
        spout.acked().iter().all(|&n| n == 1),
        "each input acked once"
    );
    assert_eq!(counters.delivered(), 200);
    let settings = tls_settings();
    let read = tokio::task::spawn_blocking({
        let (b, t) = (brokers.clone(), topic.clone());
        move || read_all_at(&b, &settings, &t, 2)
    })
    .await
    .expect("read back");
    let mut got: Vec<String> = read.into_iter().map(|r| r.value).collect();
    got.sort();
    let mut want: Vec<String> = inputs
        .iter()
        .map(|v| v[1].as_str().unwrap_or("").to_string())
        .collect();
    want.sort();
    assert_eq!(got, want);

    // The spout over TLS, to the end of the topic.
    let source = topo_spouts::KafkaSpout::new(KafkaOptions {
        brokers: brokers.clone(),
        topics: vec![topic.clone()],
        group: Some(unique("tls-group")),
        stop_at_end: true,
        tls: tls_of("ca.crt"),
        ..KafkaOptions::default()
    })
    .expect("valid options");
    let sink = CaptureBolt::new();
    let mut b = TopologyBuilder::new("kafka-tls-read");
    b.set_spout("in", move || source.clone(), 1);
    b.set_bolt("out", sink.factory(), 1).shuffle_grouping("in");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    let start = std::time::Instant::now();
    while sink.len() < 200 {
        assert!(
            start.elapsed() < WAIT,
            "{} of 200 read over TLS",
            sink.len()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handle.stop(Duration::from_secs(10)).await;

    // A server certificate of an unknown CA; a plain connection to the TLS port: the client's
    // error (it keeps trying) names the brokers and says why.
    let unreachable: &'static str =
        Box::leak(format!("brokers {brokers} unreachable").into_boxed_str());
    for (tls_options, why) in [
        (tls_of("other-ca.crt"), "certificate verify failed"),
        (None, unreachable),
    ] {
        let opts = KafkaSinkOptions {
            brokers: brokers.clone(),
            tls: tls_options,
            topic: None,
            topic_field: Some("dest".into()),
            ..options(&topic)
        };
        let inputs = vec![values!["d1", "x", topic.clone()]];
        let (spout, _, counters) = run(opts, inputs, Until::Error(why)).await;
        assert!(
            spout.acked().iter().all(|&n| n == 0),
            "{why}: nothing acked"
        );
        let error = counters.last_error().unwrap_or_default();
        assert!(error.contains(&format!("brokers {brokers}")), "{error}");
    }
}
