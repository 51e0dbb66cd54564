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
//! A topology file names its components' kinds; each kind is declared beside its code (a
//! [`Kind`] built from a [`FromOptions`] prototype whose options struct describes itself), and
//! [`schema`] turns the registry's kinds into `topo components` docs and the JSON Schema of the
//! file format (`topo schema`):
//!
//! ```text
//!  [bolts.x] kind = "split" ──file::load──► Registry::build ──► FromOptions::from_options ──► ComponentSpec
//!  options struct (JsonSchema) ──► Kind::options (topo components), schema::topology_schema (topo schema)
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
/// The schema crate options structs derive `JsonSchema` from, re-exported for kinds written
/// outside this workspace.
pub use schemars;
// The Rust builder lives beside the spec it builds, in the runtime; it is re-exported here so
// `topo_dsl::TopologyBuilder` keeps working.
pub use topo_runtime::builder::{
    BasicMarker, BoltDeclarer, FullMarker, IntoBoltFactory, IntoSpoutFactory, TopologyBuilder,
};
