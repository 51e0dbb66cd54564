//! # topo-runtime
//!
//! The engine of topo: tuples, the [`Spout`] / [`BasicBolt`] / [`Bolt`] traits users implement,
//! parallel tasks, groupings, XOR acking, backpressure and metrics.
//!
//! ## The flow, and where each arrow lives
//!
//! ```text
//!  spout task ─emit─► collector ─route─► batch ─flush─► bounded queue ─► bolt task ─emit─► ...
//! (task/spout.rs)   (collector.rs)  (grouping.rs)     (collector.rs)  (task/bolt.rs)
//!      ▲                    │                                                │
//!      │                    └──── init ───► acker task ◄──── ack / fail ─────┘
//!      └──── ack(msg) / fail(msg) ◄─────── (acker.rs)
//! ```
//!
//! ## Layout, in data-flow order
//! - [`value`]: [`Value`] and [`Values`] — what a tuple carries.
//! - [`tuple`](mod@tuple): [`Tuple`], [`StreamSchema`], [`TaskId`].
//! - [`component`]: the traits users implement and their lifecycle contracts.
//! - [`role`](mod@role): [`Role`], spout or bolt — the one spelling of a component's role.
//! - [`collector`]: where components emit; anchoring, batching, backpressure.
//! - [`grouping`]: the one place that picks the target task(s) of a tuple.
//! - [`acker`]: Storm's XOR tree tracking.
//! - [`checkpoint`]: aligned barrier checkpoints — the barriers in the queues, the coordinator,
//!   the manifests and where the files are stored.
//! - [`state`]: what components write into a checkpoint and read back ([`Snapshot`],
//!   [`Restore`], [`KeyedState`]).
//! - `task` (internal): the spout and bolt task loops (`task/spout.rs`, `task/bolt.rs`), failure
//!   isolation and restarts.
//! - [`topology`]: the declared topology and its one validation.
//! - [`builder`]: [`TopologyBuilder`], the Rust way to declare one (Storm's spelling).
//! - [`cluster`]: wiring, [`TopologyHandle`], [`LocalCluster`].
//! - [`metrics`]: exact per-task counters and latency histograms.
//! - [`tap`]: sampled copies of the tuples leaving or entering a component, for a person watching.
//! - [`config`]: topology settings.
//! - [`clock`]: wall-clock milliseconds that follow the runtime's (pausable) clock.
//! - [`suggest`](mod@suggest): the nearest valid name to a typo, for every "unknown …" message.
//! - [`testing`]: run one bolt on given tuples, or a small topology, and capture what happens.
//!
//! ## Module dependencies
//!
//! No circle: each module uses (`use crate::…`) only modules above it in this order, so each can
//! be read knowing only those. (Unit tests inside a module may use any.)
//!
//! ```text
//!  value, config, clock, suggest, role   leaves: use no other module
//!  tuple      ─► value
//!  metrics    ─► role, tuple
//!  grouping   ─► metrics, tuple, value
//!  acker      ─► metrics, tuple
//!  checkpoint ─► config, metrics, tuple
//!  state      ─► checkpoint, grouping, value
//!  tap        ─► clock, suggest, tuple, value
//!  collector  ─► acker, checkpoint, grouping, metrics, tap, tuple, value
//!  component  ─► checkpoint, collector, config, state, tuple
//!  task       ─► acker, checkpoint, collector, component, config, metrics, state, tuple  (loops)
//!  topology   ─► component, config, grouping, role, suggest, task   (holds the task starters)
//!  builder    ─► component, config, grouping, topology, tuple
//!  cluster    ─► acker, checkpoint, collector, component, config, grouping, metrics, state, tap, task, topology, tuple
//!  testing    ─► all of the above
//! ```

#![deny(missing_docs)]

pub mod acker;
pub mod builder;
pub mod checkpoint;
pub mod clock;
pub mod cluster;
pub mod collector;
pub mod component;
pub mod config;
pub mod grouping;
pub mod metrics;
pub mod role;
pub mod state;
pub mod suggest;
pub mod tap;
mod task;
pub mod testing;
pub mod topology;
pub mod tuple;
pub mod value;

pub use builder::{BoltDeclarer, TopologyBuilder};
pub use checkpoint::CheckpointId;
pub use cluster::{
    LocalCluster, MetricsReader, RunOptions, StartError, StopMode, StopReport, TopologyHandle,
    WaitTimeout, submit, takes_checkpoints, try_submit,
};
pub use collector::{BasicCollector, EmitError, OutputCollector, SpoutCollector};
pub use component::{BasicBolt, Bolt, BoxError, OutputDeclarer, Spout, StreamDecl, TaskContext};
pub use config::{Config, Guarantee};
pub use grouping::{CustomGrouping, CustomGroupingFactory, Grouping};
pub use metrics::{
    CheckpointMetrics, CheckpointSnapshot, ComponentSnapshot, EdgeSnapshot, LATENCY_BOUNDS_US,
    LatencySummary, MetricsSnapshot, TaskSnapshot,
};
pub use role::Role;
pub use state::{KeyedState, Restore, Snapshot, StateKey};
pub use tap::{Direction, TapError, TapEvent, TapFormat, TapOptions, TapReceiver};
pub use topology::{
    BoltFactory, ComponentFactory, ComponentSpec, InputSpec, SpoutFactory, Topology, TopologySpec,
    ValidationError, ValidationErrors,
};
pub use tuple::{DEFAULT_STREAM, ERROR_STREAM, Field, FieldError, StreamSchema, TaskId, Tuple};
pub use value::{Value, Values};
