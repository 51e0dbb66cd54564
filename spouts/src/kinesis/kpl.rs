//! The Kinesis Producer Library's aggregation format: many user records in one Kinesis record.
//! The `kinesis` spout takes aggregates apart ([`deaggregate`]), as the KCL does; the `kinesis`
//! sink builds them ([`Aggregator`]) with `aggregation = true`.
//!
//! ```text
//!  Kinesis record data:  F3 89 9A C2 │ AggregatedRecord (protobuf) │ MD5 of the protobuf (16 bytes)
//!  AggregatedRecord { partition_key_table: [pk..], explicit_hash_key_table: [ehk..],
//!                     records: [Record { partition_key_index, explicit_hash_key_index?, data, tags }] }
//! ```
//!
//! A record whose data does not start with the four magic bytes (or is too short to hold them,
//! a message and the checksum) is not an aggregate and passes through as it is. One that starts with them
//! but whose checksum or protobuf is wrong, or whose table indices point nowhere, is corrupt:
//! [`deaggregate`] says why, and the spout sends it to its `error` stream.
//!
//! The messages are declared with `prost`'s derive (the `.proto` of the format, written as Rust
//! structs); `prost` does the wire encoding, `md-5` the checksum.

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::Message;

/// The first four bytes of an aggregated record's data.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
/// The length of the MD5 checksum that ends an aggregated record's data.
const CHECKSUM_LEN: usize = 16;

/// The protobuf message of an aggregate (`AggregatedRecord` of the KPL's `messages.proto`).
#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    /// The partition keys of the user records, each once.
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    /// The explicit hash keys of the user records that have one, each once.
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    /// The user records, in the order they were added.
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

/// A user record inside an aggregate (`Record` of the KPL's `messages.proto`).
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    /// Index of its partition key in `partition_key_table`.
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    /// Index of its explicit hash key in `explicit_hash_key_table`, if it has one.
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    /// Its data.
    #[prost(bytes = "bytes", required, tag = "3")]
    pub data: Bytes,
    /// Tags (the KPL writes none; kept for the format's sake).
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// A tag of a user record (`Tag` of the KPL's `messages.proto`).
#[derive(Clone, PartialEq, Message)]
pub struct Tag {
    /// The tag's key.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// The tag's value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

/// One user record taken out of an aggregate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRecord {
    /// Its partition key.
    pub partition_key: String,
    /// Its explicit hash key, if the producer set one.
    pub explicit_hash_key: Option<String>,
    /// Its data (a slice of the aggregate's buffer, not a copy).
    pub data: Bytes,
}

/// Whether `data` has the form of an aggregate: the magic bytes, then a message and a checksum
/// (an empty message holds nothing: such a record is taken as plain, as the KPL's own
/// de-aggregators do).
pub fn is_aggregate(data: &[u8]) -> bool {
    data.len() > MAGIC.len() + CHECKSUM_LEN && data.starts_with(&MAGIC)
}

/// The user records of an aggregated record, in order; `Ok(None)` when `data` is not an
/// aggregate (it is then one plain record). A corrupt aggregate is an error that says what is
/// wrong with it.
pub fn deaggregate(data: &Bytes) -> Result<Option<Vec<UserRecord>>, String> {
    if !is_aggregate(data) {
        return Ok(None);
    }
    let body = data.slice(MAGIC.len()..data.len() - CHECKSUM_LEN);
    let checksum = &data[data.len() - CHECKSUM_LEN..];
    if Md5::digest(&body).as_slice() != checksum {
        return Err(format!(
            "is a corrupt KPL aggregate: the MD5 checksum of its {} bytes of protobuf does not match the last 16 bytes",
            body.len()
        ));
    }
    let agg = AggregatedRecord::decode(body)
        .map_err(|e| format!("is a corrupt KPL aggregate: its protobuf does not decode: {e}"))?;
    if agg.records.is_empty() {
        return Err("is a KPL aggregate holding no user records".into());
    }
    let n = agg.records.len();
    let mut out = Vec::with_capacity(n);
    for (i, r) in agg.records.into_iter().enumerate() {
        let pk = usize::try_from(r.partition_key_index)
            .ok()
            .and_then(|k| agg.partition_key_table.get(k))
            .ok_or_else(|| {
                format!(
                    "is a corrupt KPL aggregate: user record {i} of {n} names partition key {} of a table of {}",
                    r.partition_key_index,
                    agg.partition_key_table.len()
                )
            })?;
        let ehk = match r.explicit_hash_key_index {
            None => None,
            Some(k) => Some(
                usize::try_from(k)
                    .ok()
                    .and_then(|k| agg.explicit_hash_key_table.get(k))
                    .ok_or_else(|| {
                        format!(
                            "is a corrupt KPL aggregate: user record {i} of {n} names explicit hash key {k} of a table of {}",
                            agg.explicit_hash_key_table.len()
                        )
                    })?
                    .clone(),
            ),
        };
        out.push(UserRecord {
            partition_key: pk.clone(),
            explicit_hash_key: ehk,
            data: r.data,
        });
    }
    Ok(Some(out))
}

/// Packs user records into one aggregated record, as the KPL does: each partition key and
/// explicit hash key is stored once, and [`size`](Aggregator::size) is the exact size of the
/// record's data so far, so a caller can stop before a limit.
#[derive(Debug, Default)]
pub struct Aggregator {
    message: AggregatedRecord,
    /// Bytes of `message` when encoded.
    encoded: usize,
    keys: std::collections::HashMap<String, u64>,
    hash_keys: std::collections::HashMap<String, u64>,
}

impl Aggregator {
    /// An empty aggregate.
    pub fn new() -> Self {
        Aggregator::default()
    }

    /// User records added so far.
    pub fn len(&self) -> usize {
        self.message.records.len()
    }

    /// Whether no user record was added.
    pub fn is_empty(&self) -> bool {
        self.message.records.is_empty()
    }

    /// The partition key of the first user record: the aggregate's own, as the KPL sends it.
    pub fn first_partition_key(&self) -> Option<&str> {
        self.message.partition_key_table.first().map(String::as_str)
    }

    /// The size of the aggregated record's data with these records (magic, protobuf and
    /// checksum).
    pub fn size(&self) -> usize {
        MAGIC.len() + self.encoded + CHECKSUM_LEN
    }

    /// What [`size`](Aggregator::size) would be with this user record added.
    pub fn size_with(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data: &[u8],
    ) -> usize {
        let (added, _) = self.cost(partition_key, explicit_hash_key, data.len());
        self.size() + added
    }

    /// Bytes a user record adds, and the record (without its data) as it would be stored.
    fn cost(
        &self,
        partition_key: &str,
        explicit_hash_key: Option<&str>,
        data_len: usize,
    ) -> (usize, Record) {
        use prost::encoding::{encoded_len_varint, key_len};
        let mut added = 0;
        let pk_index = match self.keys.get(partition_key) {
            Some(&i) => i,
            None => {
                added += key_len(1)
                    + encoded_len_varint(partition_key.len() as u64)
                    + partition_key.len();
                self.keys.len() as u64
            }
        };
        let ehk_index = explicit_hash_key.map(|h| match self.hash_keys.get(h) {
            Some(&i) => i,
            None => {
                added += key_len(2) + encoded_len_varint(h.len() as u64) + h.len();
                self.hash_keys.len() as u64
            }
        });
        let record = Record {
            partition_key_index: pk_index,
            explicit_hash_key_index: ehk_index,
            data: Bytes::new(),
            tags: Vec::new(),
        };
        // The record without its data, plus the data field (tag 3, length, bytes). A required
        // bytes field is encoded even when empty, so `record` already counts tag 3 with length 0.
        let inner = record.encoded_len() - (key_len(3) + 1)
            + key_len(3)
            + encoded_len_varint(data_len as u64)
            + data_len;
        added += key_len(3) + encoded_len_varint(inner as u64) + inner;
        (added, record)
    }

    /// Adds a user record.
    pub fn add(&mut self, partition_key: &str, explicit_hash_key: Option<&str>, data: Bytes) {
        let (added, mut record) = self.cost(partition_key, explicit_hash_key, data.len());
        if !self.keys.contains_key(partition_key) {
            self.keys
                .insert(partition_key.to_string(), record.partition_key_index);
            self.message
                .partition_key_table
                .push(partition_key.to_string());
        }
        if let Some(h) = explicit_hash_key
            && !self.hash_keys.contains_key(h)
        {
            self.hash_keys
                .insert(h.to_string(), self.hash_keys.len() as u64);
            self.message.explicit_hash_key_table.push(h.to_string());
        }
        record.data = data;
        self.message.records.push(record);
        self.encoded += added;
    }

    /// The aggregated record's data (magic, protobuf, checksum); the aggregator is empty again.
    pub fn finish(&mut self) -> Vec<u8> {
        let message = std::mem::take(&mut self.message);
        self.keys.clear();
        self.hash_keys.clear();
        self.encoded = 0;
        let mut out = Vec::with_capacity(MAGIC.len() + message.encoded_len() + CHECKSUM_LEN);
        out.extend_from_slice(&MAGIC);
        message
            .encode(&mut out)
            .expect("a Vec grows to hold what is encoded");
        let checksum = Md5::digest(&out[MAGIC.len()..]);
        out.extend_from_slice(&checksum);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aggregate(records: &[(&str, Option<&str>, &[u8])]) -> Bytes {
        let mut a = Aggregator::new();
        for (pk, ehk, data) in records {
            let before = a.size_with(pk, *ehk, data);
            a.add(pk, *ehk, Bytes::copy_from_slice(data));
            assert_eq!(a.size(), before, "size_with predicts size after add");
        }
        let size = a.size();
        let out = a.finish();
        assert_eq!(out.len(), size, "size is the exact length of the data");
        assert!(a.is_empty());
        Bytes::from(out)
    }

    #[test]
    fn user_records_come_back_in_order_with_their_keys() {
        let data = aggregate(&[
            ("a", None, b"one"),
            ("b", Some("340282366920938463463374607431768211455"), b""),
            ("a", None, &[0xff; 300]),
        ]);
        let out = deaggregate(&data).unwrap().unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].partition_key, "a");
        assert_eq!(&out[0].data[..], b"one");
        assert_eq!(out[1].partition_key, "b");
        assert_eq!(
            out[1].explicit_hash_key.as_deref(),
            Some("340282366920938463463374607431768211455")
        );
        assert_eq!(&out[1].data[..], b"");
        assert_eq!(out[2].partition_key, "a");
        assert_eq!(out[2].explicit_hash_key, None);
        assert_eq!(&out[2].data[..], &[0xff; 300][..]);
    }

    #[test]
    fn a_partition_key_is_stored_once() {
        let mut a = Aggregator::new();
        a.add("key", None, Bytes::from_static(b"x"));
        let one = a.size();
        a.add("key", None, Bytes::from_static(b"x"));
        // A second record of the same key adds only the record itself (tag, length, index, data).
        assert!(a.size() - one < "key".len() + 6, "{} -> {}", one, a.size());
        let data = Bytes::from(a.finish());
        let msg = AggregatedRecord::decode(data.slice(4..data.len() - 16)).unwrap();
        assert_eq!(msg.partition_key_table, ["key"]);
        assert_eq!(msg.records.len(), 2);
    }

    #[test]
    fn plain_records_pass_through() {
        assert_eq!(deaggregate(&Bytes::from_static(b"{\"t\":1}")), Ok(None));
        assert_eq!(deaggregate(&Bytes::new()), Ok(None));
        // The magic bytes alone, too short for a checksum: a plain record.
        assert_eq!(deaggregate(&Bytes::from_static(&MAGIC)), Ok(None));
    }

    #[test]
    fn corrupt_aggregates_say_why() {
        let good = aggregate(&[("a", None, b"one"), ("b", None, b"two")]);
        let mut bad_sum = good.to_vec();
        *bad_sum.last_mut().unwrap() ^= 1;
        let e = deaggregate(&Bytes::from(bad_sum)).unwrap_err();
        assert!(e.contains("MD5"), "{e}");

        // Valid checksum over bytes that are not the message.
        let mut junk = MAGIC.to_vec();
        let body = [0x1a, 0x05, 0x08];
        junk.extend_from_slice(&body);
        junk.extend_from_slice(&Md5::digest(body));
        let e = deaggregate(&Bytes::from(junk)).unwrap_err();
        assert!(e.contains("protobuf"), "{e}");

        // A record naming a partition key the table does not have.
        let msg = AggregatedRecord {
            partition_key_table: vec!["a".into()],
            explicit_hash_key_table: vec![],
            records: vec![Record {
                partition_key_index: 3,
                explicit_hash_key_index: None,
                data: Bytes::from_static(b"x"),
                tags: vec![],
            }],
        };
        let mut out = MAGIC.to_vec();
        let body = msg.encode_to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&Md5::digest(&body));
        let e = deaggregate(&Bytes::from(out)).unwrap_err();
        assert!(e.contains("partition key 3 of a table of 1"), "{e}");

        // A key table but no user records.
        let body = AggregatedRecord {
            partition_key_table: vec!["a".into()],
            ..AggregatedRecord::default()
        }
        .encode_to_vec();
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&body);
        out.extend_from_slice(&Md5::digest(&body));
        let e = deaggregate(&Bytes::from(out)).unwrap_err();
        assert!(e.contains("no user records"), "{e}");
        // The magic bytes and the checksum of nothing: too short to hold a message, plain.
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&Md5::digest([]));
        assert_eq!(deaggregate(&Bytes::from(out)), Ok(None));
    }
}
