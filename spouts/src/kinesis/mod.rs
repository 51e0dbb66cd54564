//! Amazon Kinesis: the `kinesis` spout ([`source`]) and the `kinesis` sink ([`sink`]), sharing
//! the connection to the service (region, endpoint, credentials) and its client.
//!
//! ```text
//!  Kinesis stream ──► KinesisSpout (shards leased among workers) ──► bolts ──► KinesisSink (PutRecords) ──► Kinesis stream
//! ```

mod lease;
pub mod sink;
pub mod source;

pub use sink::*;
pub use source::*;
