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

#![deny(missing_docs)]

pub mod generator;

pub use generator::{GeneratorOptions, GeneratorSpout};
