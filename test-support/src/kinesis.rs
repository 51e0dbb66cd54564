//! A Kinesis-compatible server for tests: kinesalite at `TOPO_KINESIS_ENDPOINT` (default
//! `http://127.0.0.1:4567`), started by `scripts/services start`. Calls that fail panic with
//! what went wrong: these are test helpers.

use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::DisplayErrorContext;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, Shard, ShardIteratorType};

/// The longest a helper waits for the server.
const WAIT: Duration = Duration::from_secs(90);

/// The server's address.
pub fn endpoint() -> String {
    std::env::var("TOPO_KINESIS_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4567".into())
}

/// A client of the server (region us-east-1, any credentials do).
pub async fn client() -> Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await;
    Client::new(&conf)
}

/// Creates a stream of `shards` shards and waits until it is active; says how to start the
/// server when it is not there.
pub async fn create_stream(c: &Client, name: &str, shards: i32) {
    let start = Instant::now();
    loop {
        let Err(e) = c
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send()
            .await
        else {
            break;
        };
        // Over the server's shard limit while other tests hold streams: wait for them.
        if e.as_service_error()
            .is_some_and(|s| s.is_limit_exceeded_exception())
            && start.elapsed() < WAIT
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        panic!(
            "cannot create a Kinesis stream at {} ({}): run `scripts/services start`, or set TOPO_KINESIS_ENDPOINT",
            endpoint(),
            DisplayErrorContext(&e)
        );
    }
    wait_active(c, name).await;
}

/// Waits until a stream is active (after creation or a reshard).
pub async fn wait_active(c: &Client, name: &str) {
    let start = Instant::now();
    loop {
        let d = c
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .expect("describe the stream");
        if d.stream_description_summary()
            .is_some_and(|s| s.stream_status().as_str() == "ACTIVE")
        {
            return;
        }
        assert!(start.elapsed() < WAIT, "stream {name} never became active");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Deletes a stream (a test's last step; errors ignored).
pub async fn delete_stream(c: &Client, name: &str) {
    let _ = c.delete_stream().stream_name(name).send().await;
}

/// Puts `records` (partition key, data) one call each, in order; returns the shard and
/// sequence number of each.
pub async fn put(c: &Client, stream: &str, records: &[(String, String)]) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(records.len());
    for (key, data) in records {
        let r = c
            .put_record()
            .stream_name(stream)
            .partition_key(key)
            .data(Blob::new(data.as_bytes().to_vec()))
            .send()
            .await
            .expect("put a record");
        out.push((r.shard_id().to_string(), r.sequence_number().to_string()));
    }
    out
}

/// Puts records (partition key, explicit hash key, data) one by one with PutRecord; returns
/// each one's (shard, sequence number).
pub async fn put_raw(
    c: &Client,
    stream: &str,
    records: &[(String, Option<String>, Vec<u8>)],
) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(records.len());
    for (key, hash_key, data) in records {
        let r = c
            .put_record()
            .stream_name(stream)
            .partition_key(key)
            .set_explicit_hash_key(hash_key.clone())
            .data(Blob::new(data.clone()))
            .send()
            .await
            .expect("put a record");
        out.push((r.shard_id().to_string(), r.sequence_number().to_string()));
    }
    out
}

/// Puts `records` (partition key, data) with PutRecords, 500 a call; panics if the server
/// refuses any.
pub async fn put_batched(c: &Client, stream: &str, records: &[(String, String)]) {
    for chunk in records.chunks(500) {
        let entries = chunk
            .iter()
            .map(|(key, data)| {
                PutRecordsRequestEntry::builder()
                    .partition_key(key)
                    .data(Blob::new(data.as_bytes().to_vec()))
                    .build()
                    .expect("an entry")
            })
            .collect();
        let out = c
            .put_records()
            .stream_name(stream)
            .set_records(Some(entries))
            .send()
            .await
            .expect("put records");
        assert_eq!(out.failed_record_count(), Some(0), "every record accepted");
    }
}

/// One record of a stream.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    /// The shard it is in.
    pub shard: String,
    /// Its partition key.
    pub partition_key: String,
    /// Its data, as text (invalid UTF-8 replaced).
    pub data: String,
}

/// The shards of a stream (one ListShards call: a test's streams have few).
pub async fn shards(c: &Client, stream: &str) -> Vec<Shard> {
    c.list_shards()
        .stream_name(stream)
        .send()
        .await
        .expect("list shards")
        .shards()
        .to_vec()
}

/// Every record of every shard, shard by shard in stream order.
pub async fn read_all(c: &Client, stream: &str) -> Vec<Record> {
    read_raw(c, stream)
        .await
        .into_iter()
        .map(|r| Record {
            shard: r.shard,
            partition_key: r.partition_key,
            data: String::from_utf8_lossy(&r.data).into_owned(),
        })
        .collect()
}

/// One record of a stream, as it is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    /// The shard it is in.
    pub shard: String,
    /// Its sequence number.
    pub sequence: String,
    /// Its partition key.
    pub partition_key: String,
    /// Its data.
    pub data: Vec<u8>,
}

/// Every record of every shard as stored, shard by shard in stream order.
pub async fn read_raw(c: &Client, stream: &str) -> Vec<RawRecord> {
    let mut out = Vec::new();
    for s in shards(c, stream).await {
        let mut it = c
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(s.shard_id())
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator()
            .map(str::to_string);
        while let Some(i) = it {
            let r = c
                .get_records()
                .shard_iterator(i)
                .send()
                .await
                .expect("get records");
            for rec in r.records() {
                out.push(RawRecord {
                    shard: s.shard_id().to_string(),
                    sequence: rec.sequence_number().to_string(),
                    partition_key: rec.partition_key().to_string(),
                    data: rec.data().as_ref().to_vec(),
                });
            }
            if r.records().is_empty() {
                break;
            }
            it = r.next_shard_iterator().map(str::to_string);
        }
    }
    out
}
