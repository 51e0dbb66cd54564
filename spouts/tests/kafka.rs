//! The `kafka` spout against a real Kafka-compatible broker (tansu, address in
//! `TOPO_KAFKA_BROKERS`, default `127.0.0.1:9092`): every record of a 4-partition topic read by
//! two tasks of one group with replays of failed tuples and the group's offsets committed to
//! the end; undecodable JSON to the `error` stream and committed past; records failing every
//! try produced to the dead-letter topic; fetching paused at `max_uncommitted`; a missing topic
//! and an unreachable broker named. Every test uses topics and groups of its own.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use topo_dsl::TopologyBuilder;
use topo_runtime::testing::CaptureBolt;
use topo_runtime::{BasicBolt, BasicCollector, BoltFactory, BoxError, TopologyHandle, Tuple};
use topo_spouts::PayloadFormat;
use topo_spouts::{KafkaOptions, KafkaRetry, KafkaSpout};

use topo_test_support::kafka::*;
use topo_test_support::unique;

fn options(topic: &str, group: &str) -> KafkaOptions {
    KafkaOptions {
        brokers: brokers(),
        topic: Some(topic.into()),
        group: Some(group.into()),
        stop_at_end: true,
        commit_interval: Duration::from_millis(100),
        retry: KafkaRetry {
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            max_retries: Some(0),
            attempts: None,
        },
        ..KafkaOptions::default()
    }
}

/// Fails the first `times` deliveries of every k-th record (by the number in its value), or of
/// every record whose value starts with "poison"; records every delivered value.
#[derive(Clone)]
struct Flaky {
    every: usize,
    times: usize,
    failures: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    delivered: Arc<Mutex<Vec<String>>>,
}

impl Flaky {
    fn new(every: usize, times: usize) -> Flaky {
        Flaky {
            every,
            times,
            failures: Arc::default(),
            delivered: Arc::default(),
        }
    }
    fn values(&self) -> Vec<String> {
        let mut v = self.delivered.lock().expect("lock").clone();
        v.sort();
        v
    }
}

impl BasicBolt for Flaky {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let value = input.str_field("value")?.to_string();
        if value.starts_with("poison") {
            return Err(format!("{value} always fails").into());
        }
        let n: usize = value
            .rsplit('-')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        if self.every > 0 && n.is_multiple_of(self.every) {
            let mut f = self.failures.lock().expect("lock");
            let c = f.entry(value.clone()).or_insert(0);
            if *c < self.times {
                *c += 1;
                return Err(format!("delivery {} of {value} fails", *c).into());
            }
        }
        self.delivered.lock().expect("lock").push(value);
        Ok(())
    }
}

fn run(spout: &KafkaSpout, parallelism: usize, bolt: &Flaky) -> (TopologyHandle, CaptureBolt) {
    let mut b = TopologyBuilder::new("kafka-test");
    b.config_mut().max_spout_pending = Some(500);
    let s = spout.clone();
    b.set_spout("kafka", move || s.clone(), parallelism);
    let f = bolt.clone();
    b.set_bolt("flaky", BoltFactory::basic(move || f.clone()), 2)
        .shuffle_grouping("kafka");
    let errors = CaptureBolt::new();
    b.set_bolt("errors", errors.factory(), 1)
        .shuffle_grouping_stream("kafka", "error");
    (
        topo_runtime::submit(b.build().expect("a valid topology")),
        errors,
    )
}

fn records(prefix: &str, range: std::ops::Range<usize>) -> Vec<(String, String)> {
    range
        .map(|i| (format!("key-{}", i % 23), format!("{prefix}-{i}")))
        .collect()
}

// Guards at-least-once over a 4-partition topic read by two tasks of one group: with every 7th
// record failing its first two deliveries, every record is delivered exactly once after
// replays, and the group's committed offsets reach the end of every partition; a second run
// of the same group reads only what was produced after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_of_four_partitions_is_delivered_and_committed_to_the_end() {
    const N: usize = 2000;
    let topic = unique("four");
    let group = unique("group");
    create_topic(&topic, 4).await;
    let first = records("r", 0..N);
    produce(&topic, &first).await;

    let spout = KafkaSpout::new(options(&topic, &group)).expect("valid options");
    let bolt = Flaky::new(7, 2);
    let (handle, _) = run(&spout, 2, &bolt);
    let m = handle.wait_until_idle(WAIT).await.expect("idle");
    let s = m.component("kafka").expect("the spout's figures");
    let failing = (0..N).filter(|i| i % 7 == 0).count() as u64;
    assert_eq!(s.acked(), N as u64, "each record acked once");
    assert_eq!(s.failed(), 2 * failing, "every 7th record failed twice");
    let mut want: Vec<String> = first.iter().map(|r| r.1.clone()).collect();
    want.sort();
    assert_eq!(
        bolt.values(),
        want,
        "every record delivered once after replays"
    );
    assert_eq!(spout.counters().replays(), 2 * failing);
    handle.stop(Duration::from_secs(10)).await;
    assert_eq!(
        committed(&group, &topic, 4),
        ends(&topic, 4),
        "the group committed the end of every partition"
    );

    // The same group again (as many members as before: tansu 0.6 does not complete a join of
    // fewer members than the group had): only the new records.
    let second = records("s", N..N + 100);
    produce(&topic, &second).await;
    let spout = KafkaSpout::new(options(&topic, &group)).expect("valid options");
    let bolt = Flaky::new(0, 0);
    let (handle, _) = run(&spout, 2, &bolt);
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(10)).await;
    let mut want: Vec<String> = second.iter().map(|r| r.1.clone()).collect();
    want.sort();
    assert_eq!(bolt.values(), want, "a restart resumes after the commits");
    assert_eq!(committed(&group, &topic, 4), ends(&topic, 4));
}

// Guards the fields and the `error` stream: JSON records become fields (key, headers,
// timestamp kept), undecodable ones go to `error` with the reason and are committed past.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_json_goes_to_the_error_stream_and_is_committed_past() {
    let topic = unique("json");
    let group = unique("group");
    create_topic(&topic, 1).await;
    let p = producer();
    for (i, v) in [
        r#"{"user":"ann","n":1}"#,
        "not json {",
        r#"{"user":"bob","n":2}"#,
        "[1,2]",
    ]
    .iter()
    .enumerate()
    {
        let key = format!("k{i}");
        p.send(
            rdkafka::producer::FutureRecord::to(&topic)
                .key(&key)
                .payload(*v)
                .headers(headers(&[("source", "test")])),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
    }
    let spout = KafkaSpout::new(KafkaOptions {
        payload: PayloadFormat::Json,
        fields: vec!["user".into(), "n".into()],
        ..options(&topic, &group)
    })
    .expect("valid options");

    let mut b = TopologyBuilder::new("kafka-json");
    let s = spout.clone();
    b.set_spout("kafka", move || s.clone(), 1);
    let good = CaptureBolt::new();
    b.set_bolt("good", good.factory(), 1)
        .shuffle_grouping("kafka");
    let bad = CaptureBolt::new();
    b.set_bolt("bad", bad.factory(), 1)
        .shuffle_grouping_stream("kafka", "error");
    let handle = topo_runtime::submit(b.build().expect("a valid topology"));
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(10)).await;

    // Fields: topic, partition, offset, key, value, timestamp, headers, user, n.
    let good = good.tuples();
    assert_eq!(good.len(), 2);
    let users: Vec<&str> = good
        .iter()
        .map(|t| t.values[7].as_str().expect("user"))
        .collect();
    assert_eq!(users, ["ann", "bob"]);
    assert_eq!(good[0].values[0].as_str(), Some(topic.as_str()));
    assert_eq!(good[0].values[2].as_i64(), Some(0));
    assert_eq!(good[0].values[3].as_str(), Some("k0"));
    assert_eq!(good[1].values[8].as_i64(), Some(2));
    assert!(good[0].values[5].as_i64().is_some(), "a timestamp");
    assert_eq!(
        good[0].values[6]
            .as_map()
            .and_then(|m| m.get("source"))
            .and_then(|v| v.as_str()),
        Some("test")
    );
    // Fields: reason, raw.
    let bad = bad.tuples();
    assert_eq!(bad.len(), 2, "both bad records reported");
    let reason = bad[0].values[0].as_str().expect("reason");
    assert!(
        reason.contains(&format!("{topic}/0@1")) && reason.contains("not valid JSON"),
        "{reason}"
    );
    assert_eq!(bad[0].values[1].as_str(), Some("not json {"));
    let reason = bad[1].values[0].as_str().expect("reason");
    assert!(reason.contains("expected an object"), "{reason}");
    assert_eq!(spout.counters().malformed(), 2);
    assert_eq!(committed(&group, &topic, 1), ends(&topic, 1));
}

// Guards the dead-letter topic: a record failing every try is produced there after
// `max_retries` replays (with the reason and its origin in headers) and committed past; the
// other records are delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_failing_every_try_go_to_the_dead_letter_topic() {
    let topic = unique("dlq-in");
    let dlt = unique("dlq");
    let group = unique("group");
    create_topic(&topic, 2).await;
    create_topic(&dlt, 1).await;
    let mut input = records("ok", 0..50);
    input.push(("key-a".into(), "poison-1".into()));
    input.push(("key-b".into(), "poison-2".into()));
    produce(&topic, &input).await;
    let spout = KafkaSpout::new(KafkaOptions {
        dead_letter_topic: Some(dlt.clone()),
        retry: KafkaRetry {
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_retries: Some(2),
            attempts: None,
        },
        ..options(&topic, &group)
    })
    .expect("valid options");
    let bolt = Flaky::new(0, 0);
    let (handle, _) = run(&spout, 1, &bolt);
    let m = handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(10)).await;
    assert_eq!(
        m.component("kafka").expect("spout").failed(),
        6,
        "each poison record failed 1 + max_retries times"
    );
    assert_eq!(bolt.values().len(), 50);
    assert_eq!(spout.counters().dead_lettered(), 2);
    let mut dead = read_all(&dlt, 1);
    dead.sort_by(|a, b| a.value.cmp(&b.value));
    assert_eq!(
        dead.iter().map(|r| r.value.as_str()).collect::<Vec<_>>(),
        ["poison-1", "poison-2"]
    );
    assert_eq!(dead[0].key.as_deref(), Some("key-a"));
    let h: std::collections::HashMap<_, _> = dead[0].headers.iter().cloned().collect();
    assert_eq!(h.get("topo.topic"), Some(&topic));
    assert!(
        h.get("topo.error")
            .is_some_and(|e| e.contains("failed 3 times")),
        "{h:?}"
    );
    assert_eq!(committed(&group, &topic, 2), ends(&topic, 2));
}

// Guards the dead-letter producer over TLS: with `tls` (the test CA and client certificate)
// the spout reads from the TLS broker and its dead-letter producer, which takes the same
// settings, delivers the record failing every try there; an independent reader over TLS finds
// it in the dead-letter topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_go_over_tls_too() {
    use topo_test_support::tls;
    let (brokers, settings) = (tls_brokers(), tls_settings());
    let topic = unique("dlq-tls-in");
    let dlt = unique("dlq-tls");
    create_topic_at(&brokers, &settings, &topic, 1).await;
    create_topic_at(&brokers, &settings, &dlt, 1).await;
    let mut input = records("ok", 0..20);
    input.push(("key-a".into(), "poison-1".into()));
    produce_at(&brokers, &settings, &topic, &input).await;
    let spout = KafkaSpout::new(KafkaOptions {
        brokers: brokers.clone(),
        tls: Some(topo_spouts::connector::tls::TlsOptions {
            ca: Some(tls::file("ca.crt")),
            cert: Some(tls::file("client.crt")),
            key: Some(tls::file("client.key")),
        }),
        dead_letter_topic: Some(dlt.clone()),
        retry: KafkaRetry {
            backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_retries: Some(1),
            attempts: None,
        },
        ..options(&topic, &unique("group"))
    })
    .expect("valid options");
    let bolt = Flaky::new(0, 0);
    let (handle, _) = run(&spout, 1, &bolt);
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(10)).await;
    assert_eq!(bolt.values().len(), 20);
    assert_eq!(spout.counters().dead_lettered(), 1);
    let dead = tokio::task::spawn_blocking(move || read_all_at(&brokers, &settings, &dlt, 1))
        .await
        .expect("read back");
    assert_eq!(
        dead.iter().map(|r| r.value.as_str()).collect::<Vec<_>>(),
        ["poison-1"]
    );
}

// Guards the uncommitted cap: with `max_uncommitted = 20` and a bolt that fails one record
// several times, the partition is paused (counted) and everything still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetching_pauses_at_the_uncommitted_cap_and_resumes() {
    let topic = unique("cap");
    let group = unique("group");
    create_topic(&topic, 1).await;
    let input = records("c", 0..300);
    produce(&topic, &input).await;
    let spout = KafkaSpout::new(KafkaOptions {
        max_uncommitted: 20,
        retry: KafkaRetry {
            backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            max_retries: Some(0),
            attempts: None,
        },
        ..options(&topic, &group)
    })
    .expect("valid options");
    let bolt = Flaky::new(10, 3);
    let (handle, _) = run(&spout, 1, &bolt);
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(10)).await;
    let got: HashSet<String> = bolt.values().into_iter().collect();
    assert_eq!(got.len(), 300, "every record delivered");
    assert!(
        spout.counters().pauses() > 0,
        "the cap paused the partition"
    );
    assert_eq!(committed(&group, &topic, 1), ends(&topic, 1));
}

/// Records the offset and value of every delivery, slowly (`pause` per tuple), so that the
/// spout outpaces it.
#[derive(Clone)]
struct Slow {
    pause: Duration,
    seen: Arc<Mutex<Vec<(i64, String)>>>,
}

impl Slow {
    fn new(pause: Duration) -> Slow {
        Slow {
            pause,
            seen: Arc::default(),
        }
    }
    /// Distinct (offset, value) pairs, and how many deliveries were duplicates.
    fn distinct(&self) -> (std::collections::BTreeMap<i64, String>, usize) {
        let seen = self.seen.lock().expect("lock");
        let distinct: std::collections::BTreeMap<i64, String> = seen.iter().cloned().collect();
        let dups = seen.len() - distinct.len();
        (distinct, dups)
    }
}

impl BasicBolt for Slow {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        if !self.pause.is_zero() {
            std::thread::sleep(self.pause);
        }
        let offset = input.int_field("offset")?;
        let value = input.str_field("value")?.to_string();
        self.seen.lock().expect("lock").push((offset, value));
        Ok(())
    }
}

fn run_slow(spout: &KafkaSpout, bolt: &Slow) -> TopologyHandle {
    let mut b = TopologyBuilder::new("kafka-test");
    b.config_mut().max_spout_pending = Some(1000);
    let s = spout.clone();
    b.set_spout("kafka", move || s.clone(), 1);
    let f = bolt.clone();
    b.set_bolt("slow", BoltFactory::basic(move || f.clone()), 1)
        .shuffle_grouping("kafka");
    topo_runtime::submit(b.build().expect("a valid topology"))
}

/// The record produced `i`-th to a one-partition topic, by its offset.
fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<(String, String)> {
    range
        .map(|i| (format!("key-{i}"), format!("{prefix}-{i}")))
        .collect()
}

// Guards against losing records when a partition stops being read at `max_uncommitted` and
// is read on once commits catch up, hundreds of times, with input produced in batches of many
// records as applications' clients do (a broker may answer a fetch from inside a batch with
// the next batch): every record arrives, the group commits the end, and no commit point ever
// passed an offset that was not emitted and acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_paused_hundreds_of_times_loses_nothing() {
    const N: usize = 20_000;
    const CAP: u64 = 100;
    let topic = unique("paused");
    let group = unique("group");
    create_topic(&topic, 1).await;
    let input = numbered("p", 0..N);
    produce_batched_to(&topic, Some(0), &input).await;
    let spout = KafkaSpout::new(KafkaOptions {
        max_uncommitted: CAP,
        commit_interval: Duration::from_millis(10),
        ..options(&topic, &group)
    })
    .expect("valid options");
    let bolt = Slow::new(Duration::from_micros(20));
    let handle = run_slow(&spout, &bolt);
    let idle = handle.wait_until_idle(WAIT).await;
    handle.stop(Duration::from_secs(10)).await;
    let c = spout.counters();
    let (got, dups) = bolt.distinct();
    eprintln!(
        "{N} records, cap {CAP}: {} distinct delivered, {dups} duplicates, {} pauses, {} re-reads from earlier, {} absent",
        got.len(),
        c.pauses(),
        c.refetches(),
        c.absent()
    );
    let missing: Vec<usize> = (0..N).filter(|i| !got.contains_key(&(*i as i64))).collect();
    assert!(
        missing.is_empty(),
        "{} records lost, the first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    for (offset, value) in &got {
        assert_eq!(
            value,
            &format!("p-{offset}"),
            "offset {offset} is its record"
        );
    }
    idle.expect("the spout ends once every record is acked");
    assert_eq!(c.refused_commits(), 0, "{:?}", c.last_error());
    assert_eq!(c.absent(), 0, "no offset is missing at the broker");
    assert!(
        c.pauses() >= 100,
        "the cap stopped the partition {} times (expected hundreds)",
        c.pauses()
    );
    assert_eq!(
        committed(&group, &topic, 1)[&0],
        N as i64,
        "committed to the end"
    );
}

// Guards a restart from a committed offset inside a record batch, in the middle of a partition
// and inside its last batch (where tansu answers nothing at all): every record from the
// committed offset on arrives, and none before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_a_commit_inside_a_record_batch_loses_nothing() {
    const WAVE: usize = 2000;
    let topic = unique("midbatch");
    create_topic(&topic, 1).await;
    for w in 0..3 {
        produce_batched_to(&topic, Some(0), &numbered("m", w * WAVE..(w + 1) * WAVE)).await;
    }
    let n = 3 * WAVE;
    for at in [WAVE + WAVE / 2, n - 7] {
        let group = unique("group");
        commit_offset(&group, &topic, 0, at as i64);
        let spout = KafkaSpout::new(options(&topic, &group)).expect("valid options");
        let bolt = Slow::new(Duration::ZERO);
        let handle = run_slow(&spout, &bolt);
        let idle = handle.wait_until_idle(WAIT).await;
        handle.stop(Duration::from_secs(10)).await;
        let (got, dups) = bolt.distinct();
        eprintln!(
            "from offset {at}: {} distinct, {dups} duplicates, {} re-reads from earlier",
            got.len(),
            spout.counters().refetches()
        );
        let want: Vec<i64> = (at as i64..n as i64).collect();
        let have: Vec<i64> = got.keys().copied().collect();
        assert_eq!(
            have, want,
            "every record from offset {at} on, and none before"
        );
        idle.expect("the spout ends");
        assert_eq!(spout.counters().refused_commits(), 0);
        assert_eq!(committed(&group, &topic, 1)[&0], n as i64);
    }
}

// Guards the report of a missing topic: the spout names it and the brokers, and keeps
// retrying instead of crashing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_named() {
    let topic = unique("missing");
    let spout = KafkaSpout::new(options(&topic, &unique("group"))).expect("valid options");
    let bolt = Flaky::new(0, 0);
    let (handle, _) = run(&spout, 1, &bolt);
    let want = format!("topic {topic:?} not found at {}", brokers());
    let start = std::time::Instant::now();
    while !spout
        .counters()
        .last_error()
        .is_some_and(|e| e.contains(&want))
    {
        assert!(
            start.elapsed() < WAIT,
            "no error naming the topic: {:?}",
            spout.counters().last_error()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.stop(Duration::from_secs(5)).await;
}

// Guards an unreachable broker: the error names the brokers, and the spout keeps retrying
// (the topology stops cleanly afterwards).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_named_and_retried() {
    let spout = KafkaSpout::new(KafkaOptions {
        brokers: "127.0.0.1:1".into(),
        ..options("nowhere", &unique("group"))
    })
    .expect("valid options");
    let bolt = Flaky::new(0, 0);
    let (handle, _) = run(&spout, 1, &bolt);
    let start = std::time::Instant::now();
    while spout.counters().errors() < 2
        || !spout
            .counters()
            .last_error()
            .is_some_and(|e| e.contains("brokers 127.0.0.1:1 unreachable"))
    {
        assert!(
            start.elapsed() < WAIT,
            "no error naming the broker: {:?}",
            spout.counters().last_error()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.stop(Duration::from_secs(5)).await;
}

// ---------------------------------------------------------------------------------------------
// Checkpoints (exactly-once).

/// kafka (`parallelism` tasks) -> recorder, `guarantee = "exactly_once"`, checkpoints every
/// `interval` into `checkpoints`, started by `options` (the newest checkpoint, or one named).
fn run_checkpointed(
    spout: &KafkaSpout,
    parallelism: usize,
    bolt: &Flaky,
    checkpoints: &std::path::Path,
    interval: Duration,
    options: &topo_runtime::RunOptions,
) -> TopologyHandle {
    let mut b = TopologyBuilder::new("kafka-eo");
    let s = spout.clone();
    b.set_spout("kafka", move || s.clone(), parallelism);
    let f = bolt.clone();
    b.set_bolt("record", BoltFactory::basic(move || f.clone()), 2)
        .shuffle_grouping("kafka");
    let config = topo_runtime::Config {
        guarantee: topo_runtime::Guarantee::ExactlyOnce,
        checkpoint_interval: interval,
        checkpoint_dir: Some(checkpoints.to_path_buf()),
        checkpoints_retained: 1000,
        max_spout_pending: Some(500),
        ..topo_runtime::Config::default()
    };
    let topology = b
        .build()
        .expect("a valid topology")
        .with_config(config)
        .expect("a valid config");
    topo_runtime::try_submit(topology, options).expect("the topology starts")
}

fn sorted_values(records: &[(String, String)]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|r| r.1.clone()).collect();
    v.sort();
    v
}

// Guards exactly-once with the kafka spout: the group's offsets are committed only when a
// checkpoint completes (none while no checkpoint does; the stop's savepoint commits the ends);
// a run restored from a checkpoint with another spout parallelism reads exactly what follows
// it; and a run restored from that same older checkpoint again (the group's offsets now ahead
// of it) reads the same records once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_run_reads_exactly_what_follows_its_checkpoint() {
    let topic = unique("eo");
    let group = unique("eo-group");
    create_topic(&topic, 4).await;
    let first = records("a", 0..2000);
    produce_batched(&topic, &first).await;
    let ck = tempfile::tempdir().expect("temp dir");
    let mut opts = options(&topic, &group);
    opts.stop_at_end = false;

    // No checkpoint during the run: nothing committed.
    let spout = KafkaSpout::new(opts.clone()).expect("valid options");
    let bolt = Flaky::new(0, 0);
    let handle = run_checkpointed(
        &spout,
        2,
        &bolt,
        ck.path(),
        Duration::from_secs(3600),
        &Default::default(),
    );
    let start = std::time::Instant::now();
    while bolt.values().len() < first.len() {
        assert!(
            start.elapsed() < WAIT,
            "timed out waiting for the first records"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        committed(&group, &topic, 4).values().all(|c| *c < 0),
        "nothing committed without a completed checkpoint"
    );
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(bolt.values(), sorted_values(&first), "each record once");
    let savepoint = *topo_test_support::soak::checkpoint_ids(ck.path())
        .last()
        .expect("the stop's savepoint");
    wait_committed_to_end(&group, &topic, 4).await;

    // Restored (newest checkpoint, 3 spout tasks): only the new records.
    let second = records("b", 2000..3000);
    produce_batched(&topic, &second).await;
    let mut opts = options(&topic, &group);
    opts.stop_at_end = true;
    let spout = KafkaSpout::new(opts.clone()).expect("valid options");
    let bolt = Flaky::new(0, 0);
    let handle = run_checkpointed(
        &spout,
        3,
        &bolt,
        ck.path(),
        Duration::from_millis(20),
        &Default::default(),
    );
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(
        bolt.values(),
        sorted_values(&second),
        "what follows the checkpoint"
    );
    assert_eq!(committed(&group, &topic, 4), ends(&topic, 4));

    // Restored from the savepoint again (1 task), the group ahead of it: the same records.
    let spout = KafkaSpout::new(opts).expect("valid options");
    let bolt = Flaky::new(0, 0);
    let handle = run_checkpointed(
        &spout,
        1,
        &bolt,
        ck.path(),
        Duration::from_millis(20),
        &topo_runtime::RunOptions {
            from_checkpoint: Some(savepoint.to_string()),
            ..Default::default()
        },
    );
    handle.wait_until_idle(WAIT).await.expect("idle");
    handle.stop(Duration::from_secs(5)).await;
    assert_eq!(
        bolt.values(),
        sorted_values(&second),
        "rewound to the savepoint: what follows it, once"
    );
}
