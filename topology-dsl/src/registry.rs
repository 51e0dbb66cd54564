//! The component registry: component kinds by name, so a topology file can say `kind = "split"`.
//!
//! Spouts and bolts have separate namespaces, as sources and sinks do in Vector: a `file` spout
//! (reading files) and a `file` bolt (writing them) can both exist, and a `[spouts.x]` table
//! only ever finds spout kinds.
//!
//! A kind is declared in one place, the file that implements it: a [`Kind`] made by
//! [`Kind::spout`], [`Kind::basic_bolt`] or [`Kind::bolt`] from a name, a one-line summary and a
//! *prototype* type implementing [`FromOptions`]. The prototype is built once from the options
//! when the topology file is loaded (so bad options are reported with their place in the file)
//! and turned into one component per task. The options struct describes itself: option names,
//! types, defaults and docs come from its doc comments and serde attributes through
//! [`schemars::JsonSchema`], for `topo components`, for `topo schema` (see
//! [`schema`](crate::schema)) and for the "did you mean" of a misspelt key. Options structs should
//! use `#[serde(deny_unknown_fields)]` so that misspelt keys are errors, and `#[serde(default)]`
//! (with `Serialize`, so the defaults are shown) for optional keys:
//!
//! ```text
//!  options struct ──JsonSchema──► Kind::options() (topo components), topo schema
//!        │ Deserialize
//!  [bolts.x] table ──parse──► FromOptions::from_options ──► prototype ──per task──► component
//! ```
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use topo_dsl::registry::{FromOptions, Kind, Registry, Role};
//! use topo_runtime::{BoxError, OutputDeclarer, Spout, SpoutCollector};
//!
//! /// Options of `one_word`.
//! #[derive(Clone, Deserialize, Serialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct OneWordOptions {
//!     /// the word
//!     word: String,
//! }
//!
//! #[derive(Clone)]
//! struct OneWord(String);
//! impl FromOptions for OneWord {
//!     type Options = OneWordOptions;
//!     fn from_options(o: OneWordOptions) -> Result<Self, String> {
//!         if o.word.is_empty() {
//!             return Err("word must not be empty".into());
//!         }
//!         Ok(OneWord(o.word))
//!     }
//! }
//! impl Spout for OneWord {
//!     type MessageId = ();
//!     fn declare_outputs(&self, out: &mut OutputDeclarer) {
//!         out.declare(["word"]);
//!     }
//!     async fn next_tuple(&mut self, _out: &mut SpoutCollector<'_, ()>) -> Result<(), BoxError> {
//!         Ok(())
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.add(Kind::spout("one_word", "emits one word", OneWord::clone));
//! let kind = registry.get(Role::Spout, "one_word").unwrap();
//! assert_eq!(kind.options()[0].name, "word");
//! assert_eq!(kind.options()[0].doc, "the word");
//! assert!(kind.options()[0].required);
//!
//! let table: toml::Value = toml::from_str("word = \"hi\"").unwrap();
//! assert!(registry.build(Role::Spout, "one_word", table).is_ok());
//! let bad: toml::Value = toml::from_str("wrd = \"hi\"").unwrap();
//! let err = registry.build(Role::Spout, "one_word", bad).err().unwrap();
//! assert_eq!(err.path, "wrd");
//! assert!(err.message.contains("unknown field `wrd`"));
//! let empty: toml::Value = toml::from_str("word = \"\"").unwrap();
//! let err = registry.build(Role::Spout, "one_word", empty).err().unwrap();
//! assert_eq!(err.message, "word must not be empty");
//! ```

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use topo_runtime::suggest::suggest;
use topo_runtime::topology::ComponentFactory;
use topo_runtime::{BasicBolt, Bolt, BoltFactory, Spout, SpoutFactory};

/// Whether a kind makes spouts or bolts: the runtime's one [`Role`].
pub use topo_runtime::Role;

/// The documentation of one option of a kind, read off its options struct's JSON Schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionDoc {
    /// The key.
    pub name: String,
    /// Its type, as text (`integer`, `string`, `duration`, `array of string`, `"a" | "b"`, ...).
    pub ty: String,
    /// Its default as a TOML-like value (`"word"`, `5`, `"100ms"`); empty when it has none
    /// that can be shown (then the doc says what happens without it).
    pub default: String,
    /// Whether the key must be given.
    pub required: bool,
    /// The field's doc comment.
    pub doc: String,
}

/// An options table that does not fit a kind's options struct, or an unknown kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionError {
    /// The key path inside the options (`words[2]`, `limits.max`); empty for the table itself
    /// or an unknown kind.
    pub path: String,
    /// What is wrong (`unknown field `cout`, expected `count` or `words``).
    pub message: String,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for OptionError {}

type MakeFn = dyn Fn(toml::Value) -> Result<ComponentFactory, OptionError> + Send + Sync;
type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// A component that can be made from an options table: the prototype a [`Kind`] builds once per
/// component when the topology file is loaded, and turns into one spout or bolt per task.
///
/// Often the component itself (cloned per task); for a sink, a checked writer that each task
/// wraps in its own batching.
pub trait FromOptions: Clone + Send + Sync + 'static {
    /// The options, as written in the component's table; they describe themselves
    /// (`JsonSchema`) for `topo components` and `topo schema`.
    type Options: DeserializeOwned + schemars::JsonSchema;

    /// Checks the options and builds the prototype, or says what is wrong with them (reported
    /// with the component's place in the file).
    fn from_options(options: Self::Options) -> Result<Self, String>;
}

/// One component kind: its name, role, summary, options and example, and how to build it.
#[derive(Clone)]
pub struct Kind {
    name: String,
    role: Role,
    description: String,
    schema: SchemaFn,
    field_order: fn() -> Vec<&'static str>,
    options: Arc<std::sync::OnceLock<Vec<OptionDoc>>>,
    example: Option<String>,
    make: Arc<MakeFn>,
}

impl Kind {
    fn new<P: FromOptions>(
        name: &str,
        role: Role,
        description: &str,
        factory: impl Fn(P) -> ComponentFactory + Send + Sync + 'static,
    ) -> Kind {
        Kind {
            name: name.into(),
            role,
            description: description.into(),
            schema: <P::Options as schemars::JsonSchema>::json_schema,
            field_order: crate::schema::field_order::<P::Options>,
            options: Arc::default(),
            example: None,
            make: Arc::new(move |v| {
                let options = parse_options::<P::Options>(v)?;
                let prototype = P::from_options(options).map_err(|message| OptionError {
                    path: String::new(),
                    message,
                })?;
                Ok(factory(prototype))
            }),
        }
    }

    /// A spout kind: the prototype `P` is built from the options once, and `make` turns it into
    /// each task's spout (`P::clone` when the prototype is the spout).
    pub fn spout<P: FromOptions, S: Spout>(
        name: &str,
        description: &str,
        make: impl Fn(&P) -> S + Send + Sync + 'static,
    ) -> Kind {
        let make = Arc::new(make);
        Kind::new(name, Role::Spout, description, move |p: P| {
            let make = make.clone();
            ComponentFactory::Spout(SpoutFactory::new(move || make(&p)))
        })
    }

    /// A [`BasicBolt`] kind (synchronous, acked for you); see [`Kind::spout`].
    pub fn basic_bolt<P: FromOptions, B: BasicBolt>(
        name: &str,
        description: &str,
        make: impl Fn(&P) -> B + Send + Sync + 'static,
    ) -> Kind {
        let make = Arc::new(make);
        Kind::new(name, Role::Bolt, description, move |p: P| {
            let make = make.clone();
            ComponentFactory::Bolt(BoltFactory::basic(move || make(&p)))
        })
    }

    /// A full [`Bolt`] kind (async, manual acks: sinks, windows, joins); see [`Kind::spout`].
    pub fn bolt<P: FromOptions, B: Bolt>(
        name: &str,
        description: &str,
        make: impl Fn(&P) -> B + Send + Sync + 'static,
    ) -> Kind {
        let make = Arc::new(make);
        Kind::new(name, Role::Bolt, description, move |p: P| {
            let make = make.clone();
            ComponentFactory::Bolt(BoltFactory::full(move || make(&p)))
        })
    }

    /// Adds the example `topo components` prints: a topology-file fragment, one `[spouts.x]` or
    /// `[bolts.x]` table using the kind (a test builds every built-in kind's example).
    pub fn with_example(mut self, example: &str) -> Kind {
        self.example = Some(example.trim().to_string());
        self
    }

    /// The kind's name, as written after `kind =`.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Spout or bolt.
    pub fn role(&self) -> Role {
        self.role
    }
    /// One line describing it.
    pub fn description(&self) -> &str {
        &self.description
    }
    /// Its options, in the order of the options struct, read off its JSON Schema.
    pub fn options(&self) -> &[OptionDoc] {
        self.options
            .get_or_init(|| crate::schema::option_docs(self.schema, &(self.field_order)()))
    }
    /// The JSON Schema of its options table, with nested types under `definitions` of
    /// `generator`.
    pub fn options_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        (self.schema)(generator)
    }
    /// A topology-file fragment showing the kind in use (`[bolts.x]` table with its options),
    /// if one was given.
    pub fn example(&self) -> Option<&str> {
        self.example.as_deref()
    }
    /// Builds a factory from an options table.
    pub fn build(&self, options: toml::Value) -> Result<ComponentFactory, OptionError> {
        (self.make)(options)
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kind")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("description", &self.description)
            .finish()
    }
}

/// Component kinds by role and name, in registration order.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    kinds: Vec<Kind>,
}

/// Deserializes options, keeping the key path of the first problem.
fn parse_options<O: DeserializeOwned>(options: toml::Value) -> Result<O, OptionError> {
    let options = match options {
        toml::Value::Table(t) => toml::Value::Table(t),
        other => {
            return Err(OptionError {
                path: String::new(),
                message: format!("options must be a table, got {}", other.type_str()),
            });
        }
    };
    serde_path_to_error::deserialize(options).map_err(|e| {
        let mut path = String::new();
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => path.push_str(&format!("[{index}]")),
                serde_path_to_error::Segment::Map { key } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(key);
                }
                serde_path_to_error::Segment::Enum { variant } => {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(variant);
                }
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        OptionError {
            path,
            message: e.inner().message().trim().to_string(),
        }
    })
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    fn insert(&mut self, kind: Kind) {
        if let Some(k) = self
            .kinds
            .iter_mut()
            .find(|k| k.name == kind.name && k.role == kind.role)
        {
            *k = kind;
        } else {
            self.kinds.push(kind);
        }
    }

    /// Sets (or replaces) the example of a registered kind: a topology-file fragment (a `[spouts.x]` or
    /// `[bolts.x]` table) that `topo components <kind>` prints. The table's section says whether
    /// it is the spout or the bolt of that name. Returns false (and sets nothing) when no such
    /// kind is registered.
    pub fn example(&mut self, kind: &str, example: &str) -> bool {
        let role = match example.trim_start().split_once('.') {
            Some(("[spouts", _)) => Some(Role::Spout),
            Some(("[bolts", _)) => Some(Role::Bolt),
            _ => None,
        };
        let mut found = false;
        for k in self
            .kinds
            .iter_mut()
            .filter(|k| k.name == kind && role.is_none_or(|r| r == k.role))
        {
            k.example = Some(example.trim().to_string());
            found = true;
        }
        found
    }

    /// Adds a kind; one of the same role and name added earlier is replaced (a spout and a bolt
    /// of one name both stay).
    pub fn add(&mut self, kind: Kind) -> &mut Self {
        self.insert(kind);
        self
    }

    /// Every kind, in registration order.
    pub fn kinds(&self) -> impl Iterator<Item = &Kind> {
        self.kinds.iter()
    }

    /// The kind of this role named `kind`.
    pub fn get(&self, role: Role, kind: &str) -> Option<&Kind> {
        self.kinds.iter().find(|k| k.role == role && k.name == kind)
    }

    /// Every kind named `kind`: a spout, a bolt, both or none.
    pub fn named<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Kind> + 'a {
        self.kinds.iter().filter(move |k| k.name == kind)
    }

    /// The message for an unknown kind: the known kinds (of `role`, or all of them) and the
    /// nearest one.
    pub fn unknown_kind_message(&self, role: Option<Role>, kind: &str) -> String {
        let names = |r: Role| -> Vec<&str> {
            self.kinds
                .iter()
                .filter(|k| k.role == r)
                .map(|k| k.name.as_str())
                .collect()
        };
        let list = |names: &[&str]| {
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        };
        let (mut m, known) = match role {
            Some(r) => {
                let known = names(r);
                (
                    format!(
                        "unknown {r} kind \"{kind}\" (known {r} kinds: {})",
                        list(&known)
                    ),
                    known,
                )
            }
            None => {
                let (spouts, bolts) = (names(Role::Spout), names(Role::Bolt));
                let m = format!(
                    "unknown component kind \"{kind}\" (spouts: {}; bolts: {})",
                    list(&spouts),
                    list(&bolts)
                );
                (m, [spouts, bolts].concat())
            }
        };
        if let Some(s) = suggest(kind, known.iter().copied()) {
            m.push_str(&format!("; did you mean \"{s}\"?"));
        }
        m
    }

    /// Builds a component of the `role` kind named `kind` from its options table.
    pub fn build(
        &self,
        role: Role,
        kind: &str,
        options: toml::Value,
    ) -> Result<ComponentFactory, OptionError> {
        match self.get(role, kind) {
            Some(k) => k.build(options),
            None => Err(OptionError {
                path: String::new(),
                message: self.unknown_kind_message(Some(role), kind),
            }),
        }
    }
}
