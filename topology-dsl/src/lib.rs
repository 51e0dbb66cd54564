//! # topo-dsl
//!
//! How users describe a topology. [`TopologyBuilder`] is the Rust way, in Storm's spelling; topology
//! files (TOML, see [`file`](mod@file), with component kinds from a [`Registry`]) are loaded into the same
//! [`TopologySpec`]. Both end in [`TopologySpec::validate`], the runtime's one validation, so a
//! topology written either way is checked by the same code and runs the same.
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
//! use topo_dsl::TopologyBuilder;
//! use topo_runtime::testing::{VecSpout, CaptureBolt};
//! use topo_runtime::values;
//!
//! let words = VecSpout::new(["word"], vec![values!["a"], values!["b"]]);
//! let sink = CaptureBolt::new();
//! let mut b = TopologyBuilder::new("demo");
//! b.set_spout("words", words.factory(), 1);
//! b.set_bolt("sink", sink.factory(), 2).fields_grouping("words", ["word"]);
//! let topology = b.build().expect("valid");
//! assert_eq!(topology.component_ids().collect::<Vec<_>>(), ["words", "sink"]);
//!
//! let mut bad = TopologyBuilder::new("bad");
//! bad.set_bolt("sink", CaptureBolt::new().factory(), 0).shuffle_grouping("wrods");
//! let err = bad.build().unwrap_err().to_string();
//! assert!(err.contains("bolt `sink`: parallelism must be at least 1, got 0"));
//! assert!(err.contains("input from unknown component `wrods`"));
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

use std::sync::Arc;
use std::time::Duration;

use smol_str::SmolStr;
use topo_runtime::topology::{ComponentFactory, ComponentSpec, InputSpec};
use topo_runtime::{
    BasicBolt, Bolt, BoltFactory, Config, CustomGroupingFactory, DEFAULT_STREAM, Grouping, Spout,
    SpoutFactory, Topology, TopologySpec, ValidationErrors,
};

/// Builds a topology: spouts, bolts and how bolts subscribe to streams.
pub struct TopologyBuilder {
    spec: TopologySpec,
}

/// Something that makes a spout per task: a closure returning a [`Spout`], or a [`SpoutFactory`].
pub trait IntoSpoutFactory<Marker> {
    /// The factory.
    fn into_spout_factory(self) -> SpoutFactory;
}

impl<F, S> IntoSpoutFactory<S> for F
where
    F: Fn() -> S + Send + Sync + 'static,
    S: Spout,
{
    fn into_spout_factory(self) -> SpoutFactory {
        SpoutFactory::new(self)
    }
}

impl IntoSpoutFactory<()> for SpoutFactory {
    fn into_spout_factory(self) -> SpoutFactory {
        self
    }
}

/// Something that makes a bolt per task: a closure returning a [`BasicBolt`] or a [`Bolt`], or a
/// [`BoltFactory`]. (The marker type only lets one `set_bolt` accept each of these.)
pub trait IntoBoltFactory<Marker> {
    /// The factory.
    fn into_bolt_factory(self) -> BoltFactory;
}

/// Marks a closure returning a [`BasicBolt`].
pub struct BasicMarker<B>(std::marker::PhantomData<B>);
/// Marks a closure returning a full [`Bolt`].
pub struct FullMarker<B>(std::marker::PhantomData<B>);

impl<F, B> IntoBoltFactory<BasicMarker<B>> for F
where
    F: Fn() -> B + Send + Sync + 'static,
    B: BasicBolt,
{
    fn into_bolt_factory(self) -> BoltFactory {
        BoltFactory::basic(self)
    }
}

impl<F, B> IntoBoltFactory<FullMarker<B>> for F
where
    F: Fn() -> B + Send + Sync + 'static,
    B: Bolt,
{
    fn into_bolt_factory(self) -> BoltFactory {
        BoltFactory::full(self)
    }
}

impl IntoBoltFactory<()> for BoltFactory {
    fn into_bolt_factory(self) -> BoltFactory {
        self
    }
}

impl TopologyBuilder {
    /// A builder for a topology named `name`, with default settings.
    pub fn new(name: &str) -> TopologyBuilder {
        TopologyBuilder {
            spec: TopologySpec {
                name: name.into(),
                config: Config::default(),
                components: Vec::new(),
            },
        }
    }

    /// Replaces the settings.
    pub fn config(&mut self, config: Config) -> &mut Self {
        self.spec.config = config;
        self
    }

    /// The settings, to change some of them.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.spec.config
    }

    /// Adds a spout running as `parallelism` tasks, each with an instance from `factory`.
    pub fn set_spout<M>(
        &mut self,
        id: &str,
        factory: impl IntoSpoutFactory<M>,
        parallelism: usize,
    ) -> &mut Self {
        self.spec.components.push(ComponentSpec {
            id: id.into(),
            parallelism,
            factory: ComponentFactory::Spout(factory.into_spout_factory()),
            inputs: Vec::new(),
            tick_interval: None,
        });
        self
    }

    /// Adds a bolt running as `parallelism` tasks; subscribe it to streams with the returned
    /// declarer (`.shuffle_grouping("spout")`, `.fields_grouping("split", ["word"])`, ...).
    pub fn set_bolt<M>(
        &mut self,
        id: &str,
        factory: impl IntoBoltFactory<M>,
        parallelism: usize,
    ) -> BoltDeclarer<'_> {
        self.spec.components.push(ComponentSpec {
            id: id.into(),
            parallelism,
            factory: ComponentFactory::Bolt(factory.into_bolt_factory()),
            inputs: Vec::new(),
            tick_interval: None,
        });
        let index = self.spec.components.len() - 1;
        BoltDeclarer {
            component: &mut self.spec.components[index],
        }
    }

    /// The topology as declared, unchecked.
    pub fn spec(&self) -> &TopologySpec {
        &self.spec
    }

    /// Takes the declared topology out, unchecked.
    pub fn into_spec(self) -> TopologySpec {
        self.spec
    }

    /// Validates the topology: every problem is reported at once.
    pub fn build(self) -> Result<Topology, ValidationErrors> {
        self.spec.validate()
    }
}

/// Subscribes a bolt to streams; returned by [`TopologyBuilder::set_bolt`].
///
/// Each grouping has a form for the `default` stream and a `_stream` form naming the stream.
pub struct BoltDeclarer<'a> {
    component: &'a mut ComponentSpec,
}

fn fields<I, S>(f: I) -> Vec<SmolStr>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    f.into_iter().map(|s| SmolStr::new(s.as_ref())).collect()
}

impl BoltDeclarer<'_> {
    /// Subscribes to `stream` of `component` with any grouping.
    pub fn grouping(&mut self, component: &str, stream: &str, grouping: Grouping) -> &mut Self {
        self.component.inputs.push(InputSpec {
            component: component.into(),
            stream: stream.into(),
            grouping,
        });
        self
    }

    /// Calls `tick` on this bolt every `interval`.
    pub fn tick_interval(&mut self, interval: Duration) -> &mut Self {
        self.component.tick_interval = Some(interval);
        self
    }

    /// Load-aware even split of the default stream.
    pub fn shuffle_grouping(&mut self, component: &str) -> &mut Self {
        self.grouping(component, DEFAULT_STREAM, Grouping::Shuffle)
    }
    /// Load-aware even split of a named stream.
    pub fn shuffle_grouping_stream(&mut self, component: &str, stream: &str) -> &mut Self {
        self.grouping(component, stream, Grouping::Shuffle)
    }

    /// Split of the default stream by a hash of `fields`: one key, one task.
    pub fn fields_grouping<I, S>(&mut self, component: &str, fields_: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.grouping(component, DEFAULT_STREAM, Grouping::Fields(fields(fields_)))
    }
    /// Split of a named stream by a hash of `fields`.
    pub fn fields_grouping_stream<I, S>(
        &mut self,
        component: &str,
        stream: &str,
        fields_: I,
    ) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.grouping(component, stream, Grouping::Fields(fields(fields_)))
    }

    /// Each key of the default stream to the less loaded of two tasks.
    pub fn partial_key_grouping<I, S>(&mut self, component: &str, fields_: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.grouping(
            component,
            DEFAULT_STREAM,
            Grouping::PartialKey(fields(fields_)),
        )
    }
    /// Each key of a named stream to the less loaded of two tasks.
    pub fn partial_key_grouping_stream<I, S>(
        &mut self,
        component: &str,
        stream: &str,
        fields_: I,
    ) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.grouping(component, stream, Grouping::PartialKey(fields(fields_)))
    }

    /// Every task receives every tuple of the default stream.
    pub fn all_grouping(&mut self, component: &str) -> &mut Self {
        self.grouping(component, DEFAULT_STREAM, Grouping::All)
    }
    /// Every task receives every tuple of a named stream.
    pub fn all_grouping_stream(&mut self, component: &str, stream: &str) -> &mut Self {
        self.grouping(component, stream, Grouping::All)
    }

    /// The whole default stream goes to the lowest task.
    pub fn global_grouping(&mut self, component: &str) -> &mut Self {
        self.grouping(component, DEFAULT_STREAM, Grouping::Global)
    }
    /// The whole named stream goes to the lowest task.
    pub fn global_grouping_stream(&mut self, component: &str, stream: &str) -> &mut Self {
        self.grouping(component, stream, Grouping::Global)
    }

    /// "Don't care" on the default stream (shuffle).
    pub fn none_grouping(&mut self, component: &str) -> &mut Self {
        self.grouping(component, DEFAULT_STREAM, Grouping::None)
    }
    /// "Don't care" on a named stream (shuffle).
    pub fn none_grouping_stream(&mut self, component: &str, stream: &str) -> &mut Self {
        self.grouping(component, stream, Grouping::None)
    }

    /// The emitter picks the task (`emit_direct`) on a direct stream.
    pub fn direct_grouping(&mut self, component: &str, stream: &str) -> &mut Self {
        self.grouping(component, stream, Grouping::Direct)
    }

    /// Prefer tasks in this process, else shuffle (in one process: shuffle), default stream.
    pub fn local_or_shuffle_grouping(&mut self, component: &str) -> &mut Self {
        self.grouping(component, DEFAULT_STREAM, Grouping::LocalOrShuffle)
    }
    /// Prefer tasks in this process, else shuffle, named stream.
    pub fn local_or_shuffle_grouping_stream(&mut self, component: &str, stream: &str) -> &mut Self {
        self.grouping(component, stream, Grouping::LocalOrShuffle)
    }

    /// A user grouping on a named stream.
    pub fn custom_grouping(
        &mut self,
        component: &str,
        stream: &str,
        grouping: impl CustomGroupingFactory,
    ) -> &mut Self {
        self.grouping(component, stream, Grouping::Custom(Arc::new(grouping)))
    }
}
