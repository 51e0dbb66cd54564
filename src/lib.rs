//! # topo
//!
//! A Storm-like stream-processing runtime. Declare a directed graph of **spouts** (sources) and
//! **bolts** (processing steps), run each as parallel tasks, route tuples between tasks by
//! grouping, and track every spout tuple's tree with XOR acking so failed or timed-out tuples are
//! replayed (at-least-once).
//!
//! This crate re-exports the public API: the runtime ([`topo_runtime`], with the Rust
//! [`TopologyBuilder`]) and topology files with their registry of kinds ([`topo_dsl`]).
//!
//! ```text
//! spout task -> collector -> grouping -> bounded queue -> bolt task -> collector -> ...
//!                    acks: bolt tasks -> acker tasks -> the emitting spout task
//! ```

#![deny(missing_docs)]

pub use topo_dsl::{file, registry};
pub use topo_runtime::*;

pub mod builtin;
pub mod checkpoints;
pub mod cli;
pub mod dashboard;
pub mod figures;
pub mod graph;
pub mod http;
pub mod logs;
pub mod process;
pub mod status;
pub mod tap;
pub mod top;

pub use builtin::builtin_registry;
