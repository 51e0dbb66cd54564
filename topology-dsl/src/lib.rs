//! # topo-dsl
//!
//! How users describe a topology. [`TopologyBuilder`] is the Rust way, in Storm's spelling (it lives
//! in the runtime, beside the spec it builds, and is re-exported here); topology files (TOML, see
//! [`file`](mod@file), with component kinds from a [`Registry`]) are loaded into the same
//! [`TopologySpec`](topo_runtime::TopologySpec). Both end in
//! [`TopologySpec::validate`](topo_runtime::TopologySpec::validate), the runtime's one validation,
//! so a topology written either way is checked by the same code and runs the same.
//!
//! ```text
//! TopologyBuilder::set_spout / set_bolt(..).fields_grouping(..)   (or a topology file)
//!        │
//!        ▼
//!   TopologySpec ──validate()──► Topology ──LocalCluster::submit──► running tasks
//!                       └──► ValidationErrors (every problem, each naming its component)
//! ```
//!
//! ```
//! use topo_dsl::TopologyBuilder; // the runtime's builder, re-exported
//! use topo_runtime::testing::{CaptureBolt, VecSpout};
//!
//! let mut b = TopologyBuilder::new("demo");
//! b.set_spout("words", VecSpout::new(["word"], vec![]).factory(), 1);
//! b.set_bolt("sink", CaptureBolt::new().factory(), 2).shuffle_grouping("words");
//! assert!(b.build().is_ok());
//! ```

#![deny(missing_docs)]

pub mod file;
pub mod registry;
pub mod schema;

pub use file::{Diagnostic, Diagnostics, load_file, load_str, load_str_with_env};
pub use registry::{FromOptions, Kind, OptionDoc, OptionError, Registry, Role};
pub use schema::topology_schema;
/// Re-exported so options structs can derive `JsonSchema` through `topo_dsl::schemars`.
pub use schemars;
// The Rust builder lives beside the spec it builds, in the runtime; it is re-exported here so
// `topo_dsl::TopologyBuilder` keeps working.
pub use topo_runtime::builder::{
    BasicMarker, BoltDeclarer, FullMarker, IntoBoltFactory, IntoSpoutFactory, TopologyBuilder,
};
