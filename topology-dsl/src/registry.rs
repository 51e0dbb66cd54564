//! The component registry: component kinds by name, so a topology file can say `kind = "split"`.
//!
//! Spouts and bolts have separate namespaces, as sources and sinks do in Vector: a `file` spout
//! (reading files) and a `file` bolt (writing them) can both exist, and a `[spouts.x]` table
//! only ever finds spout kinds. Each kind is a spout or a bolt, with a one-line description, documented options and a
//! constructor from its options struct. Options are deserialized from the component's table in
//! the topology file (every key except `kind`, `parallelism`, `tick_interval` and `inputs`).
//! Options structs should use `#[serde(deny_unknown_fields)]` so that misspelt keys are errors,
//! and `#[serde(default)]` for optional keys:
//!
//! ```
//! use serde::Deserialize;
//! use topo_dsl::registry::{OptionDoc, Registry, Role};
//! use topo_runtime::{BoxError, OutputDeclarer, Spout, SpoutCollector};
//!
//! struct OneWord(String);
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
//! #[derive(Clone, Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct WordsOptions {
//!     word: String,
//! }
//!
//! let mut registry = Registry::new();
//! registry.register_spout(
//!     "one_word",
//!     "emits one word",
//!     vec![OptionDoc::new("word", "string", "(required)", "the word")],
//!     |o: &WordsOptions| OneWord(o.word.clone()),
//! );
//! let table: toml::Value = toml::from_str("word = \"hi\"").unwrap();
//! assert!(registry.build(Role::Spout, "one_word", table).is_ok());
//! let bad: toml::Value = toml::from_str("wrd = \"hi\"").unwrap();
//! let err = registry.build(Role::Spout, "one_word", bad).err().unwrap();
//! assert_eq!(err.path, "wrd");
//! assert!(err.message.contains("unknown field `wrd`"));
//! ```

use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use topo_runtime::suggest::suggest;
use topo_runtime::topology::ComponentFactory;
use topo_runtime::{BasicBolt, Bolt, BoltFactory, Spout, SpoutFactory};

/// Whether a kind makes spouts or bolts: the runtime's one [`Role`].
pub use topo_runtime::Role;

/// The documentation of one option of a kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OptionDoc {
    /// The key.
    pub name: String,
    /// Its type, as text (`integer`, `string`, `array of strings`, ...).
    pub ty: String,
    /// Its default, as text (`(required)` when there is none).
    pub default: String,
    /// One line of documentation.
    pub doc: String,
}

impl OptionDoc {
    /// An option's documentation.
    pub fn new(name: &str, ty: &str, default: &str, doc: &str) -> OptionDoc {
        OptionDoc {
            name: name.into(),
            ty: ty.into(),
            default: default.into(),
            doc: doc.into(),
        }
    }
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

/// One registered component kind.
#[derive(Clone)]
pub struct Kind {
    name: String,
    role: Role,
    description: String,
    options: Vec<OptionDoc>,
    example: Option<String>,
    make: Arc<MakeFn>,
}

impl Kind {
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
    /// Its options.
    pub fn options(&self) -> &[OptionDoc] {
        &self.options
    }
    /// A topology-file fragment showing the kind in use (`[bolts.x]` table with its options),
    /// if one was given with [`Registry::example`].
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
            .field("options", &self.options)
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

    /// Sets the example of a registered kind: a topology-file fragment (a `[spouts.x]` or
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

    /// Registers a kind whose options `O` are turned into a component factory by `factory`.
    fn register_with<O>(
        &mut self,
        kind: &str,
        description: &str,
        options_doc: Vec<OptionDoc>,
        role: Role,
        factory: impl Fn(O) -> ComponentFactory + Send + Sync + 'static,
    ) -> &mut Self
    where
        O: DeserializeOwned + 'static,
    {
        self.insert(Kind {
            name: kind.into(),
            role,
            description: description.into(),
            options: options_doc,
            example: None,
            make: Arc::new(move |v| Ok(factory(parse_options(v)?))),
        });
        self
    }

    /// Registers a spout kind: `make` builds one spout instance (per task) from the options.
    /// Registering a spout name again replaces the earlier spout kind (a bolt of that name stays).
    pub fn register_spout<O, S>(
        &mut self,
        kind: &str,
        description: &str,
        options_doc: Vec<OptionDoc>,
        make: impl Fn(&O) -> S + Send + Sync + 'static,
    ) -> &mut Self
    where
        O: DeserializeOwned + Clone + Send + Sync + 'static,
        S: Spout,
    {
        let make = Arc::new(make);
        self.register_with(
            kind,
            description,
            options_doc,
            Role::Spout,
            move |opts: O| {
                let make = make.clone();
                ComponentFactory::Spout(SpoutFactory::new(move || make(&opts)))
            },
        )
    }

    /// Registers a [`BasicBolt`] kind.
    pub fn register_basic_bolt<O, B>(
        &mut self,
        kind: &str,
        description: &str,
        options_doc: Vec<OptionDoc>,
        make: impl Fn(&O) -> B + Send + Sync + 'static,
    ) -> &mut Self
    where
        O: DeserializeOwned + Clone + Send + Sync + 'static,
        B: BasicBolt,
    {
        let make = Arc::new(make);
        self.register_with(
            kind,
            description,
            options_doc,
            Role::Bolt,
            move |opts: O| {
                let make = make.clone();
                ComponentFactory::Bolt(BoltFactory::basic(move || make(&opts)))
            },
        )
    }

    /// Registers a full [`Bolt`] kind.
    pub fn register_bolt<O, B>(
        &mut self,
        kind: &str,
        description: &str,
        options_doc: Vec<OptionDoc>,
        make: impl Fn(&O) -> B + Send + Sync + 'static,
    ) -> &mut Self
    where
        O: DeserializeOwned + Clone + Send + Sync + 'static,
        B: Bolt,
    {
        let make = Arc::new(make);
        self.register_with(
            kind,
            description,
            options_doc,
            Role::Bolt,
            move |opts: O| {
                let make = make.clone();
                ComponentFactory::Bolt(BoltFactory::full(move || make(&opts)))
            },
        )
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
