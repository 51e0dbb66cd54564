//! The topology description and its one validation.
//!
//! A [`TopologySpec`] is what a user wrote — with the Rust builder ([`crate::builder`]) or a
//! topology file — and [`TopologySpec::validate`] is the only way to turn
//! it into a runnable [`Topology`]. Validation reports every problem at once, each naming its
//! component (and input), with the nearest valid name where one exists:
//!
//! ```text
//! bolt `count`, input 0 (from `split`): grouping field `wrd` is not a field of stream `default` of `split` (its fields: word); did you mean `word`?
//! cyclic dependency: count -> report -> count
//! ```

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use smol_str::SmolStr;

use crate::component::{BasicBolt, Bolt, Declared, Spout, StreamDecl};
use crate::config::Config;
use crate::grouping::Grouping;
use crate::role::Role;
use crate::suggest::{did_you_mean, suggest};
use crate::task::{BasicFn, BoltRunner, FullFn, SpoutFn, SpoutRunner};

/// Makes the instances of a spout component, one per task.
#[derive(Clone)]
pub struct SpoutFactory(pub(crate) Arc<dyn SpoutRunner>);

/// Makes the instances of a bolt component, one per task.
#[derive(Clone)]
pub struct BoltFactory(pub(crate) Arc<dyn BoltRunner>);

impl SpoutFactory {
    /// A factory calling `make` for each task (and once at validation, to read the declared
    /// outputs).
    pub fn new<S: Spout, F: Fn() -> S + Send + Sync + 'static>(make: F) -> SpoutFactory {
        SpoutFactory(Arc::new(SpoutFn(Arc::new(make))))
    }
}

impl BoltFactory {
    /// A factory for a [`BasicBolt`].
    pub fn basic<B: BasicBolt, F: Fn() -> B + Send + Sync + 'static>(make: F) -> BoltFactory {
        BoltFactory(Arc::new(BasicFn(Arc::new(make))))
    }

    /// A factory for a full [`Bolt`].
    pub fn full<B: Bolt, F: Fn() -> B + Send + Sync + 'static>(make: F) -> BoltFactory {
        BoltFactory(Arc::new(FullFn(Arc::new(make))))
    }
}

/// A spout or a bolt, with its factory.
#[derive(Clone)]
pub enum ComponentFactory {
    /// A source.
    Spout(SpoutFactory),
    /// A processing step.
    Bolt(BoltFactory),
}

impl ComponentFactory {
    /// Spout or bolt.
    pub fn role(&self) -> Role {
        match self {
            ComponentFactory::Spout(_) => Role::Spout,
            ComponentFactory::Bolt(_) => Role::Bolt,
        }
    }

    fn declare(&self) -> Result<Declared, String> {
        match self {
            ComponentFactory::Spout(f) => f.0.declare(),
            ComponentFactory::Bolt(f) => f.0.declare(),
        }
    }
}

/// One subscription of a bolt: the upstream component, its stream, and the grouping.
#[derive(Clone, Debug)]
pub struct InputSpec {
    /// The upstream component's id.
    pub component: SmolStr,
    /// The upstream stream (usually `default`).
    pub stream: SmolStr,
    /// How the stream's tuples are split over this bolt's tasks.
    pub grouping: Grouping,
}

/// One component as declared: id, parallelism, factory, inputs and tick interval.
#[derive(Clone)]
pub struct ComponentSpec {
    /// Unique id within the topology.
    pub id: SmolStr,
    /// How many tasks run this component.
    pub parallelism: usize,
    /// Makes the instances.
    pub factory: ComponentFactory,
    /// Subscriptions (bolts only).
    pub inputs: Vec<InputSpec>,
    /// Bolts: how often `tick` is called, if at all; unset = the interval the bolt asks for
    /// ([`BasicBolt::tick_interval`]), if any.
    pub tick_interval: Option<Duration>,
}

/// A topology as declared, not yet checked. [`validate`](TopologySpec::validate) it to run it.
#[derive(Clone)]
pub struct TopologySpec {
    /// The topology's name.
    pub name: SmolStr,
    /// Its settings.
    pub config: Config,
    /// Its components, in declaration order.
    pub components: Vec<ComponentSpec>,
}

/// A component of a validated topology, with its declared outputs.
#[derive(Clone)]
pub(crate) struct Component {
    pub(crate) spec: ComponentSpec,
    pub(crate) outputs: Vec<StreamDecl>,
    /// A bolt that keeps state, or a spout that can rewind.
    pub(crate) state: bool,
}

/// Why a spout that cannot rewind is refused under exactly-once.
pub const CANNOT_REWIND: &str = "guarantee = \"exactly_once\" needs every spout to rewind to a checkpointed position (kafka, kinesis, file, generator and feed can); this one cannot, so after a crash its input would be lost or repeated. Use guarantee = \"at_least_once\" for this topology";

/// Gives each pass-through stream the fields of its component's inputs, upstream first; reports
/// inputs whose fields differ. Inputs that do not resolve (unknown, or in a cycle) are reported
/// elsewhere; their pass-through streams are left with no fields.
fn resolve_pass_through(
    components: &[ComponentSpec],
    outputs: &mut HashMap<SmolStr, Vec<StreamDecl>>,
) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    loop {
        let mut resolved: Vec<(SmolStr, Vec<SmolStr>)> = Vec::new();
        for c in components {
            let Some(streams) = outputs.get(&c.id) else {
                continue;
            };
            if !streams.iter().any(|s| s.pass_through) {
                continue;
            }
            let mut inputs: Vec<(SmolStr, Vec<SmolStr>)> = Vec::new();
            let mut ready = true;
            for input in &c.inputs {
                let upstream = outputs
                    .get(&input.component)
                    .and_then(|ss| ss.iter().find(|s| s.name == input.stream));
                match upstream {
                    Some(s) if s.pass_through => ready = false,
                    Some(s) => inputs.push((
                        format!("{}:{}", input.component, input.stream).into(),
                        s.fields.clone(),
                    )),
                    None => {}
                }
            }
            if !ready {
                continue;
            }
            let fields = inputs.first().map(|(_, f)| f.clone()).unwrap_or_default();
            if inputs.iter().any(|(_, f)| *f != fields) {
                for s in streams.iter().filter(|s| s.pass_through) {
                    errors.push(ValidationError::new(
                        Some((c, None)),
                        ErrorKind::PassThroughMismatch {
                            stream: s.name.clone(),
                            inputs: inputs.clone(),
                        },
                    ));
                }
            }
            resolved.push((c.id.clone(), fields));
        }
        if resolved.is_empty() {
            break;
        }
        for (id, fields) in resolved {
            if let Some(streams) = outputs.get_mut(&id) {
                for s in streams.iter_mut().filter(|s| s.pass_through) {
                    s.fields = fields.clone();
                    s.pass_through = false;
                }
            }
        }
    }
    // What is left is in a cycle (reported as such).
    for streams in outputs.values_mut() {
        for s in streams.iter_mut() {
            s.pass_through = false;
        }
    }
    errors
}

/// A validated, runnable topology. Made only by [`TopologySpec::validate`].
#[derive(Clone)]
pub struct Topology {
    pub(crate) name: SmolStr,
    pub(crate) config: Config,
    pub(crate) components: Vec<Component>,
}

impl Topology {
    /// The topology's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces settings after validation (for example a command line override); the new
    /// settings are checked the same way.
    pub fn with_config(mut self, config: Config) -> Result<Topology, ValidationErrors> {
        let errors: Vec<_> = config
            .problems()
            .into_iter()
            .map(|(key, message)| ValidationError::new(None, ErrorKind::Config { key, message }))
            .collect();
        if !errors.is_empty() {
            return Err(ValidationErrors(errors));
        }
        self.config = config;
        Ok(self)
    }

    /// The component ids, in declaration order.
    pub fn component_ids(&self) -> impl Iterator<Item = &str> {
        self.components.iter().map(|c| c.spec.id.as_str())
    }

    /// The output streams a component declared.
    pub fn outputs(&self, component: &str) -> Option<&[StreamDecl]> {
        self.components
            .iter()
            .find(|c| c.spec.id == component)
            .map(|c| c.outputs.as_slice())
    }

    /// A component as declared.
    pub fn component(&self, id: &str) -> Option<&ComponentSpec> {
        self.components
            .iter()
            .find(|c| c.spec.id == id)
            .map(|c| &c.spec)
    }
}

impl fmt::Debug for ComponentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.factory.role().as_str())
            .field("id", &self.id)
            .field("parallelism", &self.parallelism)
            .field("inputs", &self.inputs)
            .field("tick_interval", &self.tick_interval)
            .finish()
    }
}

impl fmt::Debug for TopologySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TopologySpec")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("components", &self.components)
            .finish()
    }
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology")
            .field("name", &self.name)
            .field("config", &self.config)
            .field(
                "components",
                &self.components.iter().map(|c| &c.spec).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// What is wrong, in one [`ValidationError`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A setting is out of range.
    Config {
        /// The setting.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The topology has no spout.
    NoSpout,
    /// A component id is empty.
    EmptyId,
    /// A component id starts with `__`, which the runtime keeps for its own components.
    ReservedId,
    /// Two components share an id.
    DuplicateId,
    /// Parallelism 0.
    ZeroParallelism,
    /// A spout was given inputs.
    SpoutWithInputs,
    /// `guarantee = "exactly_once"`, but this spout cannot rewind to a checkpointed position.
    CannotRewind,
    /// The parallelism is over the number of key groups (`max_parallelism`).
    OverMaxParallelism {
        /// The topology's `max_parallelism`.
        max: usize,
    },
    /// A bolt has no inputs.
    BoltWithoutInputs,
    /// Calling the factory to read the declared outputs panicked.
    DeclarePanicked(String),
    /// A stream is declared twice.
    DuplicateStream(SmolStr),
    /// A stream declares a field twice.
    DuplicateField {
        /// The stream.
        stream: SmolStr,
        /// The field.
        field: SmolStr,
    },
    /// An input names a component that does not exist.
    UnknownComponent {
        /// The name given.
        name: SmolStr,
        /// The nearest existing id.
        suggestion: Option<SmolStr>,
    },
    /// An input names a stream its component does not declare.
    UnknownStream {
        /// The upstream component.
        upstream: SmolStr,
        /// The stream named.
        stream: SmolStr,
        /// The streams it declares.
        declared: Vec<SmolStr>,
    },
    /// A fields or partial-key grouping names a field the stream does not declare.
    UnknownField {
        /// The upstream component.
        upstream: SmolStr,
        /// The stream.
        stream: SmolStr,
        /// The field named.
        field: SmolStr,
        /// The stream's fields.
        declared: Vec<SmolStr>,
        /// The nearest declared field.
        suggestion: Option<SmolStr>,
    },
    /// A fields or partial-key grouping with no fields.
    NoGroupingFields,
    /// A direct grouping on a stream that is not direct, or another grouping on a direct stream.
    DirectMismatch {
        /// The stream.
        stream: SmolStr,
        /// Whether the stream is direct.
        stream_is_direct: bool,
    },
    /// The components form a cycle.
    Cycle(Vec<SmolStr>),
    /// A pass-through stream's inputs do not all have the same fields.
    PassThroughMismatch {
        /// The pass-through stream.
        stream: SmolStr,
        /// Each input (`component:stream`) with its fields.
        inputs: Vec<(SmolStr, Vec<SmolStr>)>,
    },
}

impl ErrorKind {
    /// The message of a [`ErrorKind::PassThroughMismatch`], shared by every error format.
    pub fn pass_through_message(stream: &str, inputs: &[(SmolStr, Vec<SmolStr>)]) -> String {
        let list: Vec<String> = inputs
            .iter()
            .map(|(from, fields)| format!("{from} has ({})", fields.join(", ")))
            .collect();
        format!(
            "stream `{stream}` passes its input through, so its inputs must have the same fields, but {}",
            list.join(" and ")
        )
    }
}

/// One problem with a topology, naming where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationError {
    /// The component, when the problem belongs to one.
    pub component: Option<SmolStr>,
    /// Spout or bolt, when `component` is set.
    pub role: Option<Role>,
    /// The index of the input, when the problem is in one of the component's inputs.
    pub input: Option<usize>,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl ValidationError {
    fn new(at: Option<(&ComponentSpec, Option<usize>)>, kind: ErrorKind) -> ValidationError {
        ValidationError {
            component: at.map(|(c, _)| c.id.clone()),
            role: at.map(|(c, _)| c.factory.role()),
            input: at.and_then(|(_, i)| i),
            kind,
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.component {
            write!(f, "{} `{c}`", self.role.map_or("component", Role::as_str))?;
            if let Some(i) = self.input {
                write!(f, ", input {i}")?;
            }
            f.write_str(": ")?;
        }
        match &self.kind {
            ErrorKind::Config { key, message } => write!(f, "config `{key}` {message}"),
            ErrorKind::NoSpout => f.write_str("the topology has no spout"),
            ErrorKind::EmptyId => f.write_str("component id is empty"),
            ErrorKind::ReservedId => {
                f.write_str("ids starting with `__` are reserved for the runtime")
            }
            ErrorKind::DuplicateId => f.write_str("id is used by more than one component"),
            ErrorKind::ZeroParallelism => f.write_str("parallelism must be at least 1, got 0"),
            ErrorKind::SpoutWithInputs => f.write_str("a spout cannot have inputs"),
            ErrorKind::CannotRewind => f.write_str(CANNOT_REWIND),
            ErrorKind::OverMaxParallelism { max } => write!(
                f,
                "parallelism is over max_parallelism ({max}), the number of key groups state is split into; raise max_parallelism (before the first checkpoint: it cannot change later)"
            ),
            ErrorKind::BoltWithoutInputs => f.write_str("a bolt needs at least one input"),
            ErrorKind::DeclarePanicked(m) => write!(f, "declaring its outputs panicked: {m}"),
            ErrorKind::DuplicateStream(s) => write!(f, "stream `{s}` is declared more than once"),
            ErrorKind::DuplicateField { stream, field } => {
                write!(
                    f,
                    "stream `{stream}` declares field `{field}` more than once"
                )
            }
            ErrorKind::UnknownComponent { name, suggestion } => {
                write!(
                    f,
                    "input from unknown component `{name}`{}",
                    did_you_mean(suggestion)
                )
            }
            ErrorKind::UnknownStream {
                upstream,
                stream,
                declared,
            } => {
                let list = if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                };
                write!(
                    f,
                    "`{upstream}` declares no stream `{stream}` (its streams: {list})"
                )
            }
            ErrorKind::UnknownField {
                upstream,
                stream,
                field,
                declared,
                suggestion,
            } => write!(
                f,
                "grouping field `{field}` is not a field of stream `{stream}` of `{upstream}` (its fields: {}){}",
                declared.join(", "),
                did_you_mean(suggestion)
            ),
            ErrorKind::NoGroupingFields => {
                f.write_str("a fields or partial_key grouping needs at least one field")
            }
            ErrorKind::PassThroughMismatch { stream, inputs } => {
                f.write_str(&ErrorKind::pass_through_message(stream, inputs))
            }
            ErrorKind::DirectMismatch {
                stream,
                stream_is_direct: true,
            } => {
                write!(
                    f,
                    "stream `{stream}` is direct and needs the direct grouping"
                )
            }
            ErrorKind::DirectMismatch {
                stream,
                stream_is_direct: false,
            } => {
                write!(
                    f,
                    "the direct grouping needs a direct stream, but `{stream}` is not direct"
                )
            }
            ErrorKind::Cycle(path) => write!(f, "cyclic dependency: {}", path.join(" -> ")),
        }
    }
}

/// Every problem found in a topology.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "the topology is invalid ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationErrors {}

impl TopologySpec {
    /// Checks everything and returns the runnable topology, or every problem found.
    pub fn validate(self) -> Result<Topology, ValidationErrors> {
        let mut errors: Vec<ValidationError> = self
            .config
            .problems()
            .into_iter()
            .map(|(key, message)| ValidationError::new(None, ErrorKind::Config { key, message }))
            .collect();
        let err = |c: &ComponentSpec, input: Option<usize>, kind| {
            ValidationError::new(Some((c, input)), kind)
        };

        if !self
            .components
            .iter()
            .any(|c| matches!(c.factory, ComponentFactory::Spout(_)))
        {
            errors.push(ValidationError::new(None, ErrorKind::NoSpout));
        }

        // Ids, parallelism, inputs present or absent, and declarations.
        let mut seen = HashSet::new();
        let mut outputs: HashMap<SmolStr, Vec<StreamDecl>> = HashMap::new();
        let mut default_ticks: HashMap<SmolStr, Duration> = HashMap::new();
        let mut stateful: HashSet<SmolStr> = HashSet::new();
        let exactly_once = self.config.guarantee == crate::config::Guarantee::ExactlyOnce;
        for c in &self.components {
            if c.id.is_empty() {
                errors.push(err(c, None, ErrorKind::EmptyId));
            } else if c.id.starts_with("__") {
                errors.push(err(c, None, ErrorKind::ReservedId));
            }
            if !seen.insert(c.id.as_str()) {
                errors.push(err(c, None, ErrorKind::DuplicateId));
            }
            if c.parallelism == 0 {
                errors.push(err(c, None, ErrorKind::ZeroParallelism));
            }
            if c.parallelism > self.config.max_parallelism {
                errors.push(err(
                    c,
                    None,
                    ErrorKind::OverMaxParallelism {
                        max: self.config.max_parallelism,
                    },
                ));
            }
            match (&c.factory, c.inputs.is_empty()) {
                (ComponentFactory::Spout(_), false) => {
                    errors.push(err(c, None, ErrorKind::SpoutWithInputs))
                }
                (ComponentFactory::Bolt(_), true) => {
                    errors.push(err(c, None, ErrorKind::BoltWithoutInputs))
                }
                _ => {}
            }
            match c.factory.declare() {
                Ok(Declared {
                    streams,
                    tick,
                    state,
                }) => {
                    if let Some(tick) = tick {
                        default_ticks.insert(c.id.clone(), tick);
                    }
                    if state {
                        stateful.insert(c.id.clone());
                    }
                    if exactly_once && !state && matches!(c.factory, ComponentFactory::Spout(_)) {
                        errors.push(err(c, None, ErrorKind::CannotRewind));
                    }
                    let mut names = HashSet::new();
                    for s in &streams {
                        if !names.insert(s.name.as_str()) {
                            errors.push(err(c, None, ErrorKind::DuplicateStream(s.name.clone())));
                        }
                        let mut fields = HashSet::new();
                        for fld in &s.fields {
                            if !fields.insert(fld.as_str()) {
                                errors.push(err(
                                    c,
                                    None,
                                    ErrorKind::DuplicateField {
                                        stream: s.name.clone(),
                                        field: fld.clone(),
                                    },
                                ));
                            }
                        }
                    }
                    outputs.entry(c.id.clone()).or_insert(streams);
                }
                Err(m) => errors.push(err(c, None, ErrorKind::DeclarePanicked(m))),
            }
        }

        errors.extend(resolve_pass_through(&self.components, &mut outputs));

        // Inputs: component, stream, grouping fields, direct or not.
        let ids: Vec<&str> = self.components.iter().map(|c| c.id.as_str()).collect();
        for c in &self.components {
            for (i, input) in c.inputs.iter().enumerate() {
                let Some(streams) = outputs.get(input.component.as_str()) else {
                    if ids.contains(&input.component.as_str()) {
                        continue; // its declaration failed; reported above
                    }
                    let suggestion = suggest(&input.component, ids.iter().copied());
                    errors.push(err(
                        c,
                        Some(i),
                        ErrorKind::UnknownComponent {
                            name: input.component.clone(),
                            suggestion,
                        },
                    ));
                    continue;
                };
                let Some(stream) = streams.iter().find(|s| s.name == input.stream) else {
                    errors.push(err(
                        c,
                        Some(i),
                        ErrorKind::UnknownStream {
                            upstream: input.component.clone(),
                            stream: input.stream.clone(),
                            declared: streams.iter().map(|s| s.name.clone()).collect(),
                        },
                    ));
                    continue;
                };
                let is_direct_grouping = matches!(input.grouping, Grouping::Direct);
                if stream.direct != is_direct_grouping {
                    errors.push(err(
                        c,
                        Some(i),
                        ErrorKind::DirectMismatch {
                            stream: stream.name.clone(),
                            stream_is_direct: stream.direct,
                        },
                    ));
                }
                if let Some(fields) = input.grouping.fields() {
                    if fields.is_empty() {
                        errors.push(err(c, Some(i), ErrorKind::NoGroupingFields));
                    }
                    for field in fields {
                        if !stream.fields.contains(field) {
                            errors.push(err(
                                c,
                                Some(i),
                                ErrorKind::UnknownField {
                                    upstream: input.component.clone(),
                                    stream: stream.name.clone(),
                                    field: field.clone(),
                                    declared: stream.fields.clone(),
                                    suggestion: suggest(
                                        field,
                                        stream.fields.iter().map(|f| f.as_str()),
                                    ),
                                },
                            ));
                        }
                    }
                }
            }
        }

        for cycle in cycles(&self.components) {
            errors.push(ValidationError::new(None, ErrorKind::Cycle(cycle)));
        }

        if !errors.is_empty() {
            return Err(ValidationErrors(errors));
        }
        let components = self
            .components
            .into_iter()
            .map(|mut spec| {
                let outputs = outputs.remove(&spec.id).unwrap_or_default();
                if spec.tick_interval.is_none() {
                    spec.tick_interval = default_ticks.get(&spec.id).copied();
                }
                let state = stateful.contains(&spec.id);
                Component {
                    spec,
                    outputs,
                    state,
                }
            })
            .collect();
        Ok(Topology {
            name: self.name,
            config: self.config,
            components,
        })
    }
}

/// One cycle per strongly connected group of components, as a path that returns to its start.
fn cycles(components: &[ComponentSpec]) -> Vec<Vec<SmolStr>> {
    use petgraph::graph::DiGraph;
    let mut g = DiGraph::<&str, ()>::new();
    let nodes: HashMap<&str, _> = components
        .iter()
        .map(|c| (c.id.as_str(), g.add_node(c.id.as_str())))
        .collect();
    for c in components {
        for input in &c.inputs {
            if let (Some(&from), Some(&to)) = (
                nodes.get(input.component.as_str()),
                nodes.get(c.id.as_str()),
            ) {
                g.update_edge(from, to, ());
            }
        }
    }
    let mut out = Vec::new();
    for scc in petgraph::algo::tarjan_scc(&g) {
        let start = *scc.iter().min_by_key(|n| n.index()).unwrap_or(&scc[0]);
        if scc.len() == 1 && g.find_edge(start, start).is_none() {
            continue;
        }
        // Walk inside the group back to the start (breadth first, so the cycle is short).
        let members: HashSet<_> = scc.iter().copied().collect();
        let mut prev = HashMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut end = None;
        'search: while let Some(n) = queue.pop_front() {
            for m in g.neighbors(n) {
                if m == start {
                    end = Some(n);
                    break 'search;
                }
                if members.contains(&m) && !prev.contains_key(&m) {
                    prev.insert(m, n);
                    queue.push_back(m);
                }
            }
        }
        let mut path = vec![start];
        let mut n = end.unwrap_or(start);
        let mut back = Vec::new();
        while n != start {
            back.push(n);
            n = prev[&n];
        }
        path.extend(back.into_iter().rev());
        path.push(start);
        out.push(path.into_iter().map(|n| SmolStr::new(g[n])).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{CaptureBolt, VecSpout};

    fn bolt(id: &str, inputs: &[&str]) -> ComponentSpec {
        ComponentSpec {
            id: id.into(),
            parallelism: 1,
            factory: ComponentFactory::Bolt(CaptureBolt::new().factory()),
            inputs: inputs
                .iter()
                .map(|from| InputSpec {
                    component: (*from).into(),
                    stream: crate::DEFAULT_STREAM.into(),
                    grouping: Grouping::Shuffle,
                })
                .collect(),
            tick_interval: None,
        }
    }

    #[test]
    fn each_cycle_is_printed_as_a_closed_path() {
        let spout = ComponentSpec {
            id: "s".into(),
            parallelism: 1,
            factory: ComponentFactory::Spout(VecSpout::new(["v"], vec![]).factory()),
            inputs: vec![],
            tick_interval: None,
        };
        let components = vec![
            spout,
            bolt("a", &["s", "c"]),
            bolt("b", &["a"]),
            bolt("c", &["b"]),
            bolt("d", &["d"]),
        ];
        let found = cycles(&components);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found.contains(&vec!["a".into(), "b".into(), "c".into(), "a".into()]),
            "{found:?}"
        );
        assert!(found.contains(&vec!["d".into(), "d".into()]), "{found:?}");
    }

    #[test]
    fn capture_bolts_declare_nothing_so_subscribing_to_them_is_an_error() {
        let spec = TopologySpec {
            name: "t".into(),
            config: Config::default(),
            components: vec![
                ComponentSpec {
                    id: "s".into(),
                    parallelism: 1,
                    factory: ComponentFactory::Spout(VecSpout::new(["v"], vec![]).factory()),
                    inputs: vec![],
                    tick_interval: None,
                },
                bolt("sink", &["s"]),
                bolt("after", &["sink"]),
            ],
        };
        let errors = spec.validate().unwrap_err();
        assert_eq!(
            errors.0.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            ["bolt `after`, input 0: `sink` declares no stream `default` (its streams: none)"]
        );
    }
}
