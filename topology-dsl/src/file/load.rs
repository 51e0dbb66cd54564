//! Reading the parsed tables into a [`TopologySpec`]: the top-level keys, `[config]`, and each
//! component with its kind and options through the [`Registry`], its inputs and groupings; then
//! [`TopologySpec::validate`], whose errors are mapped back to the keys they come from.
//!
//! ```text
//! toml::Table ──► name, [config] ──► [spouts.*] / [bolts.*] in file order
//!                                      ├─► kind + options ──► Registry (or a placeholder)
//!                                      └─► inputs: from, stream, grouping
//!             ──► TopologySpec ──► validate ──► errors placed at the key they come from
//! ```

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use smol_str::SmolStr;
use toml::Value;
use topo_runtime::suggest::suggest;
use topo_runtime::topology::{ComponentFactory, ComponentSpec, ErrorKind, InputSpec};
use topo_runtime::{
    BasicBolt, BasicCollector, BoltFactory, BoxError, Config, DEFAULT_STREAM, Grouping, Guarantee,
    OutputDeclarer, Spout, SpoutCollector, SpoutFactory, TopologySpec, Tuple, ValidationError,
};

use super::diagnostics::{Doc, Pos, describe, unknown_key_message};
use crate::registry::{Registry, Role};

pub(crate) const TOP_KEYS: &[&str] = &["name", "config", "include", "spouts", "bolts"];
pub(crate) const CONFIG_KEYS: &[&str] = &[
    "ackers",
    "message_timeout",
    "max_spout_pending",
    "worker_threads",
    "queue_capacity",
    "batch_size",
    "default_parallelism",
    "guarantee",
    "checkpoint_interval",
    "checkpoint_dir",
    "checkpoints_retained",
    "max_parallelism",
    "alignment_buffer",
];
pub(crate) const COMPONENT_KEYS: &[&str] = &["kind", "parallelism", "tick_interval", "inputs"];
pub(crate) const INPUT_KEYS: &[&str] = &["from", "stream", "grouping"];
pub(crate) const GROUPING_NAMES: &[&str] = &[
    "shuffle",
    "fields",
    "partial_key",
    "all",
    "global",
    "none",
    "direct",
    "local_or_shuffle",
];

/// Where each component came from, to map validation errors back.
struct Origin {
    /// For each input: the fields of its grouping, if any.
    inputs: Vec<Option<(&'static str, Vec<SmolStr>)>>,
}

/// Reads the tables of a topology into a [`TopologySpec`], recording problems in `doc`.
pub(super) struct Loader<'a> {
    pub(super) doc: &'a mut Doc,
    pub(super) registry: &'a Registry,
    pub(super) broken_components: HashSet<SmolStr>,
    /// Inputs that could not be read, by (component, index); index `usize::MAX` when `inputs`
    /// itself could not be read.
    pub(super) broken_inputs: HashSet<(SmolStr, usize)>,
    /// The settings read, to show values in messages.
    pub(super) config: Config,
}

impl Loader<'_> {
    fn usize_at(&mut self, path: &str, v: &Value) -> Option<usize> {
        match v {
            Value::Integer(i) if *i >= 0 => Some(*i as usize),
            _ => {
                self.doc.err(
                    path,
                    format!("expected a non-negative integer, got {}", describe(v)),
                );
                None
            }
        }
    }

    fn duration_at(&mut self, path: &str, v: &Value) -> Option<Duration> {
        match v {
            Value::String(s) => match humantime::parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.doc.err(
                        path,
                        format!(
                            "invalid duration \"{s}\": {e}; expected a duration such as \"250ms\" or \"30s\""
                        ),
                    );
                    None
                }
            },
            _ => {
                self.doc.err(
                    path,
                    format!(
                        "expected a duration string such as \"250ms\" or \"30s\", got {}",
                        describe(v)
                    ),
                );
                None
            }
        }
    }

    fn string_at<'v>(&mut self, path: &str, v: &'v Value) -> Option<&'v str> {
        match v {
            Value::String(s) => Some(s),
            _ => {
                self.doc
                    .err(path, format!("expected a string, got {}", describe(v)));
                None
            }
        }
    }

    /// Components in document order: (role, id, table path).
    fn ordered<'v>(&self, root: &'v toml::Table) -> Vec<(Role, &'v String, &'v Value)> {
        let mut out = Vec::new();
        for (role, key) in [(Role::Spout, "spouts"), (Role::Bolt, "bolts")] {
            if let Some(Value::Table(t)) = root.get(key) {
                for (id, v) in t {
                    out.push((role, id, v));
                }
            }
        }
        let order = |role: Role, id: &str| match self
            .doc
            .spans
            .get(&format!("{}s.{id}#key", role.as_str()))
        {
            Some(Pos::Byte(f, b)) => (0, *f, *b),
            Some(Pos::Set(i)) => (1, 0, *i),
            None => (2, 0, 0),
        };
        out.sort_by_key(|(role, id, _)| order(*role, id));
        out
    }

    pub(super) fn load(mut self, root: &Value) -> TopologySpec {
        let mut spec = TopologySpec {
            name: SmolStr::default(),
            config: Config::default(),
            components: Vec::new(),
        };
        let Value::Table(root) = root else {
            unreachable!("a TOML document is a table")
        };
        for (key, _) in root.iter() {
            if !TOP_KEYS.contains(&key.as_str()) {
                self.doc.key_err(key, unknown_key_message(key, TOP_KEYS));
            }
        }
        match root.get("name") {
            Some(v) => {
                if let Some(s) = self.string_at("name", v) {
                    spec.name = s.into();
                }
            }
            None => self.doc.err(
                "",
                "missing key \"name\" (the topology's name, like name = \"word-count\")".into(),
            ),
        }
        let mut default_parallelism = 1;
        if let Some(config) = root.get("config") {
            default_parallelism = self.config(config, &mut spec.config);
        }
        for key in ["spouts", "bolts"] {
            if let Some(v) = root.get(key)
                && !v.is_table()
            {
                self.doc.err(
                    key,
                    format!(
                        "expected a table of components ([{key}.<id>]), got {}",
                        describe(v)
                    ),
                );
            }
        }
        self.config = spec.config.clone();
        let mut origins: HashMap<(SmolStr, Role), Origin> = HashMap::new();
        for (role, id, table) in self.ordered(root) {
            let path = format!("{}s.{id}", role.as_str());
            let (component, origin) = self.component(role, id, &path, table, default_parallelism);
            origins.insert((component.id.clone(), role), origin);
            spec.components.push(component);
        }
        if let Err(errors) = spec.clone().validate() {
            for e in errors.0 {
                self.validation_error(&e, &origins);
            }
        }
        spec
    }

    /// Reads `[config]`; returns default_parallelism.
    fn config(&mut self, v: &Value, config: &mut Config) -> usize {
        let mut default_parallelism = 1;
        let Value::Table(t) = v else {
            self.doc.err(
                "config",
                format!("expected a table of settings, got {}", describe(v)),
            );
            return default_parallelism;
        };
        for (key, v) in t {
            let path = format!("config.{key}");
            match key.as_str() {
                "ackers" => {
                    if let Some(n) = self.usize_at(&path, v) {
                        config.ackers = n;
                    }
                }
                "worker_threads" => {
                    if let Some(n) = self.usize_at(&path, v) {
                        config.worker_threads = n;
                    }
                }
                "queue_capacity" => {
                    if let Some(n) = self.usize_at(&path, v) {
                        config.queue_capacity = n;
                    }
                }
                "batch_size" => {
                    if let Some(n) = self.usize_at(&path, v) {
                        config.batch_size = n;
                    }
                }
                "max_spout_pending" => match v {
                    Value::String(s) if s == "none" => config.max_spout_pending = None,
                    Value::Integer(i) if *i >= 0 => config.max_spout_pending = Some(*i as usize),
                    _ => self.doc.err(
                        &path,
                        format!(
                            "expected a non-negative integer or \"none\", got {}",
                            describe(v)
                        ),
                    ),
                },
                "message_timeout" => {
                    if let Some(d) = self.duration_at(&path, v) {
                        config.message_timeout = d;
                    }
                }
                "guarantee" => match v.as_str() {
                    Some("at_least_once") => config.guarantee = Guarantee::AtLeastOnce,
                    Some("exactly_once") => config.guarantee = Guarantee::ExactlyOnce,
                    _ => self.doc.err(
                        &path,
                        format!(
                            "expected \"at_least_once\" or \"exactly_once\", got {}",
                            describe(v)
                        ),
                    ),
                },
                "checkpoint_interval" => {
                    if let Some(d) = self.duration_at(&path, v) {
                        config.checkpoint_interval = d;
                    }
                }
                "checkpoint_dir" => match v.as_str() {
                    Some(d) if !d.is_empty() => config.checkpoint_dir = Some(d.into()),
                    _ => self.doc.err(
                        &path,
                        format!("expected a directory path, got {}", describe(v)),
                    ),
                },
                "checkpoints_retained" => {
                    if let Some(n) = self.usize_at(&path, v) {
                        config.checkpoints_retained = n;
                    }
                }
                "max_parallelism" => {
                    if let Some(n) = self.usize_at(&path, v) {
                        config.max_parallelism = n;
                    }
                }
                "alignment_buffer" => {
                    if let Some(n) = self.usize_at(&path, v) {
                        config.alignment_buffer = n;
                    }
                }
                "default_parallelism" => {
                    if let Some(n) = self.usize_at(&path, v) {
                        if n == 0 {
                            self.doc.err(&path, "must be at least 1, got 0".into());
                        } else {
                            default_parallelism = n;
                        }
                    }
                }
                _ => self
                    .doc
                    .key_err(&path, unknown_key_message(key, CONFIG_KEYS)),
            }
        }
        default_parallelism
    }

    fn component(
        &mut self,
        role: Role,
        id: &str,
        path: &str,
        v: &Value,
        default_parallelism: usize,
    ) -> (ComponentSpec, Origin) {
        let mut spec = ComponentSpec {
            id: id.into(),
            parallelism: default_parallelism,
            factory: placeholder(role),
            inputs: Vec::new(),
            tick_interval: None,
        };
        let mut origin = Origin { inputs: Vec::new() };
        let Value::Table(t) = v else {
            self.doc.err(
                path,
                format!(
                    "expected a table with the component's kind and options, got {}",
                    describe(v)
                ),
            );
            self.broken_components.insert(spec.id.clone());
            return (spec, origin);
        };
        let mut options = toml::Table::new();
        for (key, v) in t {
            let p = format!("{path}.{key}");
            match key.as_str() {
                "kind" => {}
                "parallelism" => {
                    if let Some(n) = self.usize_at(&p, v) {
                        spec.parallelism = n;
                    }
                }
                "tick_interval" => {
                    if role == Role::Spout {
                        self.doc
                            .key_err(&p, "tick_interval applies to bolts only".into());
                    } else if let Some(d) = self.duration_at(&p, v) {
                        spec.tick_interval = Some(d);
                    }
                }
                "inputs" => self.inputs(id, &p, v, &mut spec, &mut origin),
                _ => {
                    options.insert(key.clone(), v.clone());
                }
            }
        }
        let kind_path = format!("{path}.kind");
        let factory = match t.get("kind") {
            None => {
                let known: Vec<&str> = self
                    .registry
                    .kinds()
                    .filter(|k| k.role() == role)
                    .map(|k| k.name())
                    .collect();
                self.doc.key_err(
                    path,
                    format!(
                        "missing key \"kind\" (the {role}'s kind, one of: {})",
                        known.join(", ")
                    ),
                );
                None
            }
            Some(k) => match self.string_at(&kind_path, k) {
                None => None,
                Some(kind) => match self.registry.get(role, kind) {
                    None => {
                        let msg = match self.registry.named(kind).next() {
                            Some(other) => format!(
                                "kind \"{kind}\" is a {}, it cannot be used in [{}s]",
                                other.role(),
                                role
                            ),
                            None => self.registry.unknown_kind_message(Some(role), kind),
                        };
                        self.doc.err(&kind_path, msg);
                        None
                    }
                    Some(k) => match k.build(Value::Table(options)) {
                        Ok(f) => Some(f),
                        Err(e) => {
                            let mut message = e.message.clone();
                            let opt_path = if e.path.is_empty() {
                                path.to_string()
                            } else {
                                format!("{path}.{}", e.path)
                            };
                            if let Some(field) = message
                                .strip_prefix("unknown field `")
                                .and_then(|r| r.split('`').next())
                            {
                                let field = field.to_string();
                                // The fields serde expects (`expected `a` or `b``), the
                                // documented options, and the component keys.
                                let expected = message.split('`').skip(3).step_by(2);
                                let names: Vec<&str> = k
                                    .options()
                                    .iter()
                                    .map(|o| o.name.as_str())
                                    .chain(expected)
                                    .chain(COMPONENT_KEYS.iter().copied())
                                    .collect();
                                if let Some(s) = suggest(&field, names) {
                                    message.push_str(&format!("; did you mean \"{s}\"?"));
                                }
                                self.doc.key_err(&opt_path, message);
                            } else {
                                self.doc.err(&opt_path, message);
                            }
                            None
                        }
                    },
                },
            },
        };
        match factory {
            Some(f) => spec.factory = f,
            None => {
                self.broken_components.insert(spec.id.clone());
            }
        }
        (spec, origin)
    }

    fn inputs(
        &mut self,
        id: &str,
        path: &str,
        v: &Value,
        spec: &mut ComponentSpec,
        origin: &mut Origin,
    ) {
        let Value::Array(items) = v else {
            self.doc.err(
                path,
                format!(
                    "expected an array of inputs like [{{ from = \"spout\" }}], got {}",
                    describe(v)
                ),
            );
            self.broken_inputs.insert((id.into(), usize::MAX));
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let p = format!("{path}[{i}]");
            let mut ok = true;
            let mut input = InputSpec {
                component: SmolStr::default(),
                stream: DEFAULT_STREAM.into(),
                grouping: Grouping::Shuffle,
            };
            let Value::Table(t) = item else {
                self.doc.err(
                    &p,
                    format!(
                        "expected an input table like {{ from = \"spout\" }}, got {}",
                        describe(item)
                    ),
                );
                self.broken_inputs.insert((id.into(), i));
                spec.inputs.push(input);
                origin.inputs.push(None);
                continue;
            };
            for key in t.keys() {
                if !INPUT_KEYS.contains(&key.as_str()) {
                    self.doc
                        .key_err(&format!("{p}.{key}"), unknown_key_message(key, INPUT_KEYS));
                }
            }
            match t.get("from") {
                Some(v) => match self.string_at(&format!("{p}.from"), v) {
                    Some(s) => input.component = s.into(),
                    None => ok = false,
                },
                None => {
                    self.doc.err(
                        &p,
                        "missing key \"from\" (the upstream component's id)".into(),
                    );
                    ok = false;
                }
            }
            if let Some(v) = t.get("stream") {
                match self.string_at(&format!("{p}.stream"), v) {
                    Some(s) => input.stream = s.into(),
                    None => ok = false,
                }
            }
            let mut fields = None;
            if let Some(v) = t.get("grouping") {
                match self.grouping(&format!("{p}.grouping"), v) {
                    Some(g) => {
                        fields = g.fields().map(|f| {
                            let key = if matches!(g, Grouping::Fields(_)) {
                                "fields"
                            } else {
                                "partial_key"
                            };
                            (key, f.to_vec())
                        });
                        input.grouping = g;
                    }
                    None => ok = false,
                }
            }
            if !ok {
                self.broken_inputs.insert((id.into(), i));
            }
            spec.inputs.push(input);
            origin.inputs.push(fields);
        }
    }

    fn field_list(&mut self, path: &str, v: &Value) -> Option<Vec<SmolStr>> {
        let Value::Array(a) = v else {
            self.doc.err(
                path,
                format!("expected an array of field names, got {}", describe(v)),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, f) in a.iter().enumerate() {
            match f {
                Value::String(s) => out.push(SmolStr::new(s)),
                _ => {
                    self.doc.err(
                        &format!("{path}[{i}]"),
                        format!("expected a field name (a string), got {}", describe(f)),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn grouping(&mut self, path: &str, v: &Value) -> Option<Grouping> {
        match v {
            Value::String(s) => match s.as_str() {
                "shuffle" => Some(Grouping::Shuffle),
                "all" => Some(Grouping::All),
                "global" => Some(Grouping::Global),
                "none" => Some(Grouping::None),
                "direct" => Some(Grouping::Direct),
                "local_or_shuffle" => Some(Grouping::LocalOrShuffle),
                "fields" | "partial_key" => {
                    self.doc.err(
                        path,
                        format!(
                            "the {s} grouping needs its fields: grouping = {{ {s} = [\"field\", ...] }}"
                        ),
                    );
                    None
                }
                _ => {
                    let mut m = format!(
                        "unknown grouping \"{s}\" (expected one of: {})",
                        GROUPING_NAMES.join(", ")
                    );
                    if let Some(sg) = suggest(s, GROUPING_NAMES.iter().copied()) {
                        m.push_str(&format!("; did you mean \"{sg}\"?"));
                    }
                    self.doc.err(path, m);
                    None
                }
            },
            Value::Table(t) => {
                let mut result = None;
                let mut ok = true;
                for (key, v) in t {
                    let p = format!("{path}.{key}");
                    let g = match key.as_str() {
                        "fields" => self.field_list(&p, v).map(Grouping::Fields),
                        "partial_key" => self.field_list(&p, v).map(Grouping::PartialKey),
                        "direct" => match v {
                            Value::Boolean(true) => Some(Grouping::Direct),
                            _ => {
                                self.doc
                                    .err(&p, format!("expected true, got {}", describe(v)));
                                None
                            }
                        },
                        _ => {
                            self.doc.key_err(
                                &p,
                                unknown_key_message(key, &["fields", "partial_key", "direct"]),
                            );
                            None
                        }
                    };
                    match g {
                        Some(g) if result.is_none() => result = Some(g),
                        Some(_) => {
                            self.doc.err(
                                path,
                                "a grouping table has exactly one key (fields, partial_key or direct)".into(),
                            );
                            ok = false;
                        }
                        None => ok = false,
                    }
                }
                if t.is_empty() {
                    self.doc.err(
                        path,
                        "empty grouping table (expected { fields = [..] }, { partial_key = [..] } or { direct = true })".into(),
                    );
                }
                if ok { result } else { None }
            }
            _ => {
                self.doc.err(
                    path,
                    format!("expected a grouping name or table, got {}", describe(v)),
                );
                None
            }
        }
    }

    fn validation_error(
        &mut self,
        e: &ValidationError,
        origins: &HashMap<(SmolStr, Role), Origin>,
    ) {
        let role = match e.role {
            Some(Role::Spout) => Role::Spout,
            _ => Role::Bolt,
        };
        let base = match &e.component {
            Some(c) => format!("{}s.{c}", role.as_str()),
            None => String::new(),
        };
        let origin = e
            .component
            .as_ref()
            .and_then(|c| origins.get(&(c.clone(), role)));
        let input_path = e.input.map(|i| format!("{base}.inputs[{i}]"));
        if let (Some(c), Some(i)) = (&e.component, e.input)
            && self.broken_inputs.contains(&(c.clone(), i))
        {
            return;
        }
        let upstream_broken = |up: &SmolStr| self.broken_components.contains(up);
        let (path, locate, message) = match &e.kind {
            ErrorKind::Config { key, message } => {
                let p = format!("config.{key}");
                let c = &self.config;
                let got = match *key {
                    "message_timeout" => format!("{:?}", c.message_timeout),
                    "max_spout_pending" => format!("{:?}", c.max_spout_pending.unwrap_or(0)),
                    "worker_threads" => c.worker_threads.to_string(),
                    "batch_size" => c.batch_size.to_string(),
                    "queue_capacity" => c.queue_capacity.to_string(),
                    "ackers" => c.ackers.to_string(),
                    "max_parallelism" => c.max_parallelism.to_string(),
                    "checkpoints_retained" => c.checkpoints_retained.to_string(),
                    _ => String::new(),
                };
                let message = match *key {
                    "max_spout_pending" => {
                        "must be at least 1 (or \"none\" for no limit), got 0".to_string()
                    }
                    _ if message.contains("got") || got.is_empty() => message.clone(),
                    _ => format!("{message}, got {got}"),
                };
                (p.clone(), p, message)
            }
            ErrorKind::NoSpout => (
                String::new(),
                String::new(),
                "the topology has no spout (add a [spouts.<id>] table)".into(),
            ),
            ErrorKind::EmptyId => (base.clone(), base.clone(), "component id is empty".into()),
            ErrorKind::ReservedId => (
                base.clone(),
                base.clone(),
                "ids starting with \"__\" are reserved for the runtime".into(),
            ),
            ErrorKind::DuplicateId => {
                let other = match role {
                    Role::Spout => "bolts",
                    Role::Bolt => "spouts",
                };
                let id = e.component.clone().unwrap_or_default();
                (
                    base.clone(),
                    format!("{base}#key"),
                    format!(
                        "id \"{id}\" is also used by {other}.{id}; component ids must be unique"
                    ),
                )
            }
            ErrorKind::ZeroParallelism => {
                let p = format!("{base}.parallelism");
                (p.clone(), p, "must be at least 1, got 0".into())
            }
            ErrorKind::CannotRewind => (
                base.clone(),
                format!("{base}.kind"),
                topo_runtime::topology::CANNOT_REWIND.into(),
            ),
            ErrorKind::OverMaxParallelism { max } => {
                let p = format!("{base}.parallelism");
                (
                    p.clone(),
                    p,
                    format!(
                        "is over max_parallelism ({max}), the number of key groups state is split into; raise [config] max_parallelism (before the first checkpoint: it cannot change later)"
                    ),
                )
            }
            ErrorKind::SpoutWithInputs => {
                let p = format!("{base}.inputs");
                (
                    p.clone(),
                    format!("{p}#key"),
                    "a spout cannot have inputs (move it to [bolts] or remove inputs)".into(),
                )
            }
            ErrorKind::BoltWithoutInputs
                if e.component
                    .as_ref()
                    .is_some_and(|c| self.broken_inputs.contains(&(c.clone(), usize::MAX))) =>
            {
                return;
            }
            ErrorKind::BoltWithoutInputs => (
                base.clone(),
                format!("{base}#key"),
                "a bolt needs at least one input: inputs = [{ from = \"<component>\" }]".into(),
            ),
            ErrorKind::DeclarePanicked(m) => (
                base.clone(),
                base.clone(),
                format!("declaring its outputs panicked: {m}"),
            ),
            ErrorKind::DuplicateStream(s) => (
                base.clone(),
                base.clone(),
                format!("stream \"{s}\" is declared more than once"),
            ),
            ErrorKind::PassThroughMismatch { stream, inputs } => (
                format!("{base}.inputs"),
                format!("{base}.inputs"),
                ErrorKind::pass_through_message(stream, inputs),
            ),
            ErrorKind::DuplicateField { stream, field } => (
                base.clone(),
                base.clone(),
                format!("stream \"{stream}\" declares field \"{field}\" more than once"),
            ),
            ErrorKind::UnknownComponent { name, suggestion } => {
                let p = format!("{}.from", input_path.clone().unwrap_or_default());
                let mut m = format!("unknown component \"{name}\"");
                if let Some(s) = suggestion {
                    m.push_str(&format!("; did you mean \"{s}\"?"));
                }
                (p.clone(), p, m)
            }
            ErrorKind::UnknownStream {
                upstream,
                stream,
                declared,
            } => {
                if upstream_broken(upstream) {
                    return;
                }
                let p = format!("{}.stream", input_path.clone().unwrap_or_default());
                let list = if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                };
                let mut m =
                    format!("{upstream} declares no stream \"{stream}\" (it declares: {list})");
                if let Some(s) = suggest(stream, declared.iter().map(|s| s.as_str())) {
                    m.push_str(&format!("; did you mean \"{s}\"?"));
                }
                (p.clone(), p, m)
            }
            ErrorKind::UnknownField {
                upstream,
                stream,
                field,
                declared,
                suggestion,
            } => {
                if upstream_broken(upstream) {
                    return;
                }
                let (key, index) = origin
                    .and_then(|o| e.input.and_then(|i| o.inputs.get(i)))
                    .and_then(|f| f.as_ref())
                    .map(|(k, fs)| (*k, fs.iter().position(|f| f == field)))
                    .unwrap_or(("fields", None));
                let p = format!("{}.grouping.{key}", input_path.clone().unwrap_or_default());
                let locate = match index {
                    Some(j) => format!("{p}[{j}]"),
                    None => p.clone(),
                };
                let mut m = format!(
                    "field \"{field}\" is not declared by {upstream}'s stream \"{stream}\" (it declares: {})",
                    declared.join(", ")
                );
                if let Some(s) = suggestion {
                    m.push_str(&format!("; did you mean \"{s}\"?"));
                }
                (p, locate, m)
            }
            ErrorKind::NoGroupingFields => {
                let key = origin
                    .and_then(|o| e.input.and_then(|i| o.inputs.get(i)))
                    .and_then(|f| f.as_ref())
                    .map_or("fields", |(k, _)| *k);
                let p = format!("{}.grouping.{key}", input_path.clone().unwrap_or_default());
                (
                    p.clone(),
                    p,
                    format!("the {key} grouping needs at least one field, got []"),
                )
            }
            ErrorKind::DirectMismatch {
                stream,
                stream_is_direct,
            } => {
                let p = format!("{}.grouping", input_path.clone().unwrap_or_default());
                let m = if *stream_is_direct {
                    format!("stream \"{stream}\" is direct and needs grouping = \"direct\"")
                } else {
                    format!(
                        "the direct grouping needs a direct stream, but \"{stream}\" is not direct"
                    )
                };
                (p.clone(), p, m)
            }
            ErrorKind::Cycle(path) => {
                let first = path.first().cloned().unwrap_or_default();
                let role = origins
                    .keys()
                    .find(|(id, _)| *id == first)
                    .map_or(Role::Bolt, |(_, r)| *r);
                let p = format!("{}s.{first}", role.as_str());
                (
                    p.clone(),
                    format!("{p}#key"),
                    format!("cyclic dependency: {}", path.join(" -> ")),
                )
            }
        };
        let key = locate.ends_with("#key");
        let locate = locate.trim_end_matches("#key");
        let pos = self.doc.pos_of(locate, key);
        self.doc.push_at(pos, &path, message);
    }
}

/// Stands in for a component whose kind or options are wrong, so the graph is still checked.
struct Placeholder;

impl Spout for Placeholder {
    type MessageId = ();
    fn declare_outputs(&self, _out: &mut OutputDeclarer) {}
    async fn next_tuple(&mut self, _out: &mut SpoutCollector<'_, ()>) -> Result<(), BoxError> {
        Ok(())
    }
}

impl BasicBolt for Placeholder {
    fn execute(&mut self, _input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        Ok(())
    }
}

fn placeholder(role: Role) -> ComponentFactory {
    match role {
        Role::Spout => ComponentFactory::Spout(SpoutFactory::new(|| Placeholder)),
        Role::Bolt => ComponentFactory::Bolt(BoltFactory::basic(|| Placeholder)),
    }
}
