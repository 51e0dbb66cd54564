//! # topo-spouts
//!
//! topo's built-in sources, each a [`topo_runtime::Spout`] usable from topology files and Rust:
//!
//! ```text
//! source (Kafka, Kinesis, socket, file, feed, generator, ...) ──► spout task ──emit──► collector ──► bolts
//!                                  ▲                                    │
//!                                  └──── ack / fail (replay) ◄──────────┘
//! ```
//!
//! Each spout states its delivery guarantee: which failed tuples it can replay, and how.
//!
//! - [`generator`]: synthetic sentences, deterministic from a seed, replaying identical tuples.
//! - [`socket`]: lines over TCP, as a client (reconnecting with backoff) or a server of many
//!   clients; at-least-once while the process lives (unacked lines kept in memory).
//! - [`stdin`]: the lines of standard input; exhausted at end of input once every line is acked.

#![deny(missing_docs)]

pub mod generator;
pub mod socket;
pub mod stdin;

pub use generator::{GeneratorOptions, GeneratorSpout};
pub use socket::{
    Encoding, LineCounters, ReconnectOptions, SocketMode, SocketOptions, SocketSpout,
};
pub use stdin::{StdinOptions, StdinSpout};
