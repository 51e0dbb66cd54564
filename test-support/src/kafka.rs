//! What the Kafka tests share: the broker's address (`TOPO_KAFKA_BROKERS`, default
//! `127.0.0.1:9092`, tansu started by `scripts/services start`), topics of their own created with
//! the admin API, producing keyed records, reading a topic back, and the committed offsets of a
//! group. Every waiting loop is bounded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// The longest any wait here may take.
pub const WAIT: Duration = Duration::from_secs(90);

/// The broker's address.
pub fn brokers() -> String {
    std::env::var("TOPO_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// The Kafka endpoint over TLS of `scripts/services` (`socat-kafka-tls` in front of a second
/// broker, `tansu-tls`): `localhost:$TOPO_KAFKA_TLS_PORT` (9093), mutual TLS with the test
/// certificates of [`crate::tls`].
pub fn tls_brokers() -> String {
    let port = std::env::var("TOPO_KAFKA_TLS_PORT").unwrap_or_else(|_| "9093".into());
    format!("localhost:{port}")
}

/// librdkafka's settings for [`tls_brokers`], written here by hand (not by topo's options): TLS
/// with the test CA and the client certificate.
pub fn tls_settings() -> Vec<(&'static str, String)> {
    let file = |n: &str| crate::tls::file(n).display().to_string();
    vec![
        ("security.protocol", "ssl".to_string()),
        ("ssl.ca.location", file("ca.crt")),
        ("ssl.certificate.location", file("client.crt")),
        ("ssl.key.location", file("client.key")),
    ]
}

/// A client configuration for `brokers` with `settings`.
fn config_at(brokers: &str, settings: &[(&str, String)]) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers);
    for (k, v) in settings {
        c.set(*k, v);
    }
    c
}

/// Creates a topic of `partitions` partitions with the admin API; fails clearly when the broker
/// is not there.
pub async fn create_topic(name: &str, partitions: i32) {
    create_topic_at(&brokers(), &[], name, partitions).await
}

/// [`create_topic`] on other brokers, with client settings (e.g. [`tls_settings`]).
pub async fn create_topic_at(
    brokers: &str,
    settings: &[(&str, String)],
    name: &str,
    partitions: i32,
) {
    let admin: AdminClient<DefaultClientContext> = config_at(brokers, settings)
        .create()
        .expect("an admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let res = tokio::time::timeout(Duration::from_secs(30), admin.create_topics([&topic], &opts))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no Kafka broker answered at {brokers} within 30 s: run `scripts/services start` (tansu) or set TOPO_KAFKA_BROKERS"
            )
        })
        .unwrap_or_else(|e| panic!("cannot create topic {name} at {brokers}: {e}"));
    for r in res {
        if let Err((t, e)) = r {
            panic!("cannot create topic {t}: {e}");
        }
    }
    // Wait until the metadata shows every partition.
    let c: BaseConsumer = config_at(brokers, settings).create().expect("a consumer");
    let start = Instant::now();
    loop {
        let ok = c
            .fetch_metadata(Some(name), Duration::from_secs(5))
            .ok()
            .and_then(|md| {
                md.topics()
                    .iter()
                    .find(|t| t.name() == name)
                    .map(|t| t.error().is_none() && t.partitions().len() == partitions as usize)
            })
            .unwrap_or(false);
        if ok {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "topic {name} never showed its partitions"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain consumer (optionally of a group) for reading back and asking offsets.
pub fn consumer(group: Option<&str>) -> BaseConsumer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers())
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    c.set("group.id", group.unwrap_or("topo-test-reader"));
    c.create().expect("a consumer")
}

/// A producer for test input: one record per batch. tansu 0.6 returns nothing to a fetch that
/// starts inside a record batch (a consumer resuming from a committed offset in the middle of a
/// batch would see no records), so test input is written as batches of one record, and every
/// offset a spout commits or resumes from is the start of a batch.
pub fn producer() -> FutureProducer {
    producer_at(&brokers(), &[])
}

/// [`producer`] for other brokers, with client settings (e.g. [`tls_settings`]).
fn producer_at(brokers: &str, settings: &[(&str, String)]) -> FutureProducer {
    config_at(brokers, settings)
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("a producer")
}

/// Produces `(key, value)` records (keys hash to partitions) and waits for every delivery.
pub async fn produce(topic: &str, records: &[(String, String)]) {
    send_all(&producer(), topic, None, records).await;
}

/// [`produce`] to other brokers, with client settings (e.g. [`tls_settings`]).
pub async fn produce_at(
    brokers: &str,
    settings: &[(&str, String)],
    topic: &str,
    records: &[(String, String)],
) {
    send_all(&producer_at(brokers, settings), topic, None, records).await;
}

/// Sends `records` with `p` (to `partition` when given, else by key) and waits for every
/// delivery.
async fn send_all(
    p: &FutureProducer,
    topic: &str,
    partition: Option<i32>,
    records: &[(String, String)],
) {
    let mut futs = Vec::with_capacity(records.len());
    for (k, v) in records {
        let mut r = FutureRecord::to(topic).key(k).payload(v);
        if let Some(n) = partition {
            r = r.partition(n);
        }
        futs.push(
            p.send_result(r)
                .map_err(|(e, _)| e)
                .expect("enqueue a record"),
        );
    }
    for f in futs {
        tokio::time::timeout(WAIT, f)
            .await
            .expect("delivered in time")
            .expect("the producer lives")
            .expect("delivered");
    }
    let _ = p.flush(Duration::from_secs(10));
}

/// A producer configured the way applications' clients usually are: records linger (20 ms)
/// and go out in batches of many records, as confluent-kafka, the Java client and librdkafka
/// do by default. With tansu a fetch from inside such a batch answers from the next batch, so
/// a consumer that resumes mid-batch must cope with it.
pub fn batching_producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("a producer")
}

/// Produces `(key, value)` records with [`batching_producer`] (many records per batch) and
/// waits for every delivery.
pub async fn produce_batched(topic: &str, records: &[(String, String)]) {
    produce_batched_to(topic, None, records).await;
}

/// As [`produce_batched`], every record to `partition` when given.
pub async fn produce_batched_to(topic: &str, partition: Option<i32>, records: &[(String, String)]) {
    send_all(&batching_producer(), topic, partition, records).await;
}

/// Commits `offset` on partition `partition` of `topic` for the group (as a consumer that
/// stopped there would have).
pub fn commit_offset(group: &str, topic: &str, partition: i32, offset: i64) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
        .expect("a valid offset");
    consumer(Some(group))
        .commit(&tpl, rdkafka::consumer::CommitMode::Sync)
        .unwrap_or_else(|e| panic!("commit offset {offset} for group {group}: {e}"));
}

/// Produces raw values (no key).
pub async fn produce_raw(topic: &str, values: &[Vec<u8>]) {
    let p = producer();
    for v in values {
        let f = p
            .send_result(FutureRecord::<(), _>::to(topic).payload(v))
            .map_err(|(e, _)| e)
            .expect("enqueue a record");
        f.await.expect("the producer lives").expect("delivered");
    }
}

/// The high watermark (end offset) of each partition as the broker's ListOffsets answer gives
/// it: cheap, for progress checks. tansu 0.6 answers the base offset of the last record batch
/// plus one, so after batches of several records it lags behind the records there are; use
/// [`ends`] for the true ends.
pub fn end_offsets(topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let c = consumer(None);
    (0..partitions)
        .map(|p| {
            let (_, high) = c
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks");
            (p, high)
        })
        .collect()
}

/// The offsets a group committed for each partition (-1: none).
pub fn committed(group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let c = consumer(Some(group));
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    got.elements()
        .iter()
        .map(|e| {
            (
                e.partition(),
                match e.offset() {
                    Offset::Offset(o) => o,
                    _ => -1,
                },
            )
        })
        .collect()
}

/// Waits (bounded) until the group committed the end offset of every partition.
pub async fn wait_committed_to_end(group: &str, topic: &str, partitions: i32) {
    let want = ends(topic, partitions);
    let start = Instant::now();
    loop {
        let got = committed(group, topic, partitions);
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "group {group} committed {got:?}, the ends are {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One record read back.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Read {
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its key as text, if it has one.
    pub key: Option<String>,
    /// Its value as text (invalid UTF-8 replaced).
    pub value: String,
    /// Its headers (name, value as text).
    pub headers: Vec<(String, String)>,
}

/// Every record of a topic, up to the current end of each partition: read from the beginning
/// until every partition reports its end (the end-of-partition event of the fetch answers).
/// This does not rely on the broker's ListOffsets answer ([`end_offsets`]), which tansu 0.6
/// gives lagging behind batches of several records.
pub fn read_all(topic: &str, partitions: i32) -> Vec<Read> {
    read_all_at(&brokers(), &[], topic, partitions)
}

/// [`read_all`] from other brokers, with client settings (e.g. [`tls_settings`]).
pub fn read_all_at(
    brokers: &str,
    settings: &[(&str, String)],
    topic: &str,
    partitions: i32,
) -> Vec<Read> {
    let mut config = config_at(brokers, settings);
    config
        .set("group.id", "topo-test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true");
    let c: BaseConsumer = config.create().expect("a consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition");
    }
    c.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let mut ended = std::collections::BTreeSet::new();
    let start = Instant::now();
    while ended.len() < partitions as usize {
        assert!(
            start.elapsed() < WAIT,
            "reading {topic} back: no end of partition for {:?} within {WAIT:?}",
            (0..partitions)
                .filter(|p| !ended.contains(p))
                .collect::<Vec<_>>()
        );
        let m = match c.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
                continue;
            }
            Some(m) => m.expect("a record"),
        };
        ended.remove(&m.partition());
        out.push(Read {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    out
}

/// The end of each partition (the offset after its last record) as found by reading it to its
/// end ([`read_all`]), not as the broker's ListOffsets answer gives it ([`end_offsets`]).
pub fn ends(topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let mut ends: BTreeMap<i32, i64> = (0..partitions).map(|p| (p, 0)).collect();
    for r in read_all(topic, partitions) {
        let e = ends.entry(r.partition).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    ends
}

/// Headers for a test record.
pub fn headers(pairs: &[(&str, &str)]) -> OwnedHeaders {
    let mut h = OwnedHeaders::new();
    for (k, v) in pairs {
        h = h.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    h
}
