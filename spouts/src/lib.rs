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
//! This crate is the home of those connectors; it holds none yet.

#![deny(missing_docs)]
