//! # topo-bolts
//!
//! topo's built-in processing steps and sinks, each a [`topo_runtime::BasicBolt`] (synchronous,
//! acked for you) or [`topo_runtime::Bolt`] (async, manual ack — for sinks that ack only after a
//! durable write):
//!
//! ```text
//! queue ──► bolt task ──execute──► filter / map / split / window / join / top-k / sink
//!                                     │ emit (anchored)            │ ack / fail
//!                                     ▼                            ▼
//!                                  collector ──► next bolts      acker
//! ```
//!
//! This crate is the home of those bolts; it holds none yet.

#![deny(missing_docs)]
