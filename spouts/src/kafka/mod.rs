//! Apache Kafka: the `kafka` spout ([`source`]) and the `kafka` sink ([`sink`]), sharing the
//! client settings (brokers, librdkafka properties) and the topic checks.
//!
//! ```text
//!  Kafka topics ──► KafkaSpout (consumer group member) ──► bolts ──► KafkaSink (producer) ──► Kafka topics
//! ```

pub mod sink;
pub mod source;

pub use sink::*;
pub use source::*;
