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
//! - [`words`]: `split` (text to tokens) and `count` (running counts per key).

#![deny(missing_docs)]

pub mod words;

pub use words::{Count, CountOptions, Split, SplitOptions};
