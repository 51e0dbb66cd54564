//! Topology files: a TOML description of a topology, loaded into the same [`TopologySpec`] the
//! builder makes and checked by the same [`TopologySpec::validate`].
//!
//! ```text
//! file or text ──► source: ${VAR} substituted, TOML parsed (the place of every key and value
//!                  kept), include = [..] merged, --set overrides applied
//!              ──► load: the tables read into a TopologySpec, each kind and its options through
//!                  the Registry, then TopologySpec::validate
//!              ──► Ok(TopologySpec), or Err(Diagnostics): every problem, placed by diagnostics
//!                  at file:line:col with its key path, the bad value and what was expected
//! ```
//!
//! ```toml
//! name = "word-count"
//!
//! [config]                 # keys of topo_runtime::Config, plus default_parallelism
//! ackers = 1
//! message_timeout = "30s"  # durations are humantime strings: "250ms", "30s", "1m 30s"
//! max_spout_pending = 1000 # or "none" for no limit
//! worker_threads = 2
//! default_parallelism = 1  # for components without `parallelism`
//!
//! [spouts.sentences]
//! kind = "my_spout"        # a kind from the Registry
//! parallelism = 1
//! count = 1000             # every other key is an option of the kind
//!
//! [bolts.split]
//! kind = "split"
//! inputs = [ { from = "sentences" } ]   # stream "default", grouping "shuffle"
//!
//! [bolts.count]
//! kind = "count"
//! parallelism = 2
//! tick_interval = "1s"     # optional, bolts only
//! inputs = [ { from = "split", stream = "default", grouping = { fields = ["word"] } } ]
//! ```
//!
//! A grouping is a string (`"shuffle"`, `"all"`, `"global"`, `"none"`, `"local_or_shuffle"`,
//! `"direct"`) or a table (`{ fields = [..] }`, `{ partial_key = [..] }`, `{ direct = true }`).
//!
//! A big topology can be split over files: `include = ["bolts.toml", "sinks.toml"]` in the main
//! file (paths relative to it) merges the `[spouts.*]` and `[bolts.*]` tables of those files;
//! `name` and `[config]` stay in the main file, a component id may be defined only once, and
//! problems in an included file name that file and the place in it.
//!
//! Before parsing, `${VAR}` in the text (outside comments) is replaced by the environment variable `VAR` (an error
//! if it is unset), `${VAR:-default}` by `VAR` or `default`, and `$$` by `$`. (Columns reported
//! after a substitution on the same line refer to the substituted text.)
//!
//! Overrides (`--set key.path=value`) are applied after parsing and before any check: the value
//! is read as a TOML value when it parses as one (`4`, `true`, `["a"]`), else as a string
//! (`config.ackers=0`, `bolts.count.parallelism=4`, `spouts.sentences.count=10`).
//!
//! Every problem is reported at once, one line each, with file, line, column, key path, the bad
//! value and what was expected:
//!
//! ```text
//! word_count.toml:12:5: bolts.count.inputs[0].grouping.fields: field "wrd" is not declared by split's stream "default" (it declares: word); did you mean "word"?
//! ```
//!
//! A problem in an override is reported with the file `--set` and, as line, the override's
//! position (1 for the first). [`Diagnostics::to_json`] gives the same list for tools.
//!
//! ```
//! use serde::Deserialize;
//! use topo_dsl::{FromOptions, Kind, Registry, load_str};
//! use topo_runtime::{BoxError, OutputDeclarer, Spout, SpoutCollector};
//!
//! struct Numbers;
//! impl Spout for Numbers {
//!     type MessageId = ();
//!     fn declare_outputs(&self, out: &mut OutputDeclarer) {
//!         out.declare(["n"]);
//!     }
//!     async fn next_tuple(&mut self, _out: &mut SpoutCollector<'_, ()>) -> Result<(), BoxError> {
//!         Ok(())
//!     }
//! }
//! #[derive(Clone, Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct NumbersOptions {
//!     /// the last number
//!     #[serde(default)]
//!     max: u64,
//! }
//! impl FromOptions for NumbersOptions {
//!     type Options = Self;
//!     fn from_options(o: Self) -> Result<Self, String> {
//!         Ok(o)
//!     }
//! }
//!
//! let mut registry = Registry::new();
//! registry.add(Kind::spout("numbers", "counts up", |_: &NumbersOptions| Numbers));
//!
//! let text = "name = \"n\"\n[spouts.numbers]\nkind = \"numbers\"\nmax = 10\n";
//! let spec = load_str(text, "n.toml", &registry, &[]).unwrap();
//! assert_eq!(spec.components[0].id, "numbers");
//!
//! let set = [("spouts.numbers.mx".to_string(), "3".to_string())];
//! let err = load_str(text, "n.toml", &registry, &set).unwrap_err().to_string();
//! assert_eq!(
//!     err,
//!     "--set:1:1: spouts.numbers.mx: unknown field `mx`, expected `max`; did you mean \"max\"?"
//! );
//! ```

mod diagnostics;
pub(crate) mod load;
mod source;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use toml::Value;
use topo_runtime::{Config, TopologySpec};

pub use self::diagnostics::{Diagnostic, Diagnostics};
use self::diagnostics::{Doc, Pos};
use self::load::Loader;
use self::source::{apply_override, include, parse_source};
use crate::registry::Registry;

/// A topology file's text after `${VAR}`, `${VAR:-default}` and `$$` substitution with the
/// variables `env` gives: the text the loader parses, and what a check against `topo schema`
/// must see. An error lists every bad or unset reference.
pub fn substitute(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    source::substitute_env(text, env).map_err(|e| e.into_iter().map(|(_, m)| m).collect())
}

/// Loads the topology file at `path` (see [`load_str`]).
pub fn load_file(
    path: impl AsRef<Path>,
    registry: &Registry,
    overrides: &[(String, String)],
) -> Result<TopologySpec, Diagnostics> {
    let path = path.as_ref();
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load_main(&text, &name, path.parent(), registry, overrides, &|var| {
            std::env::var(var).ok()
        }),
        Err(e) => Err(Diagnostics(vec![Diagnostic {
            file: name,
            line: 1,
            column: 1,
            path: String::new(),
            message: format!("cannot read the file: {e}"),
        }])),
    }
}

/// Loads a topology from `text` (named `origin` in messages), with components from `registry`
/// and `overrides` (`("bolts.count.parallelism", "4")`) applied; the environment is read for
/// `${VAR}`. The spec returned has passed [`TopologySpec::validate`].
pub fn load_str(
    text: &str,
    origin: &str,
    registry: &Registry,
    overrides: &[(String, String)],
) -> Result<TopologySpec, Diagnostics> {
    load_str_with_env(text, origin, registry, overrides, &|name| {
        std::env::var(name).ok()
    })
}

/// [`load_str`] with `env` in place of the process environment.
pub fn load_str_with_env(
    text: &str,
    origin: &str,
    registry: &Registry,
    overrides: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TopologySpec, Diagnostics> {
    load_main(text, origin, None, registry, overrides, env)
}

/// Loads a main file whose includes are relative to `base` (the current directory if `None`).
fn load_main(
    text: &str,
    origin: &str,
    base: Option<&Path>,
    registry: &Registry,
    overrides: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<TopologySpec, Diagnostics> {
    let mut doc = Doc {
        files: Vec::new(),
        spans: HashMap::new(),
        diags: Vec::new(),
    };
    let Some((table, spans)) = parse_source(&mut doc, origin, text, env) else {
        return Err(doc.finish());
    };
    doc.spans.extend(spans);
    let mut root = table;
    doc.spans.insert(String::new(), Pos::Byte(0, 0));
    if let Some(includes) = root.remove("include") {
        include(&mut doc, &mut root, includes, base, env);
    }
    let mut root = Value::Table(root);
    for (i, (key, value)) in overrides.iter().enumerate() {
        if let Err(msg) = apply_override(&mut root, key, value, i, &mut doc.spans) {
            doc.diags.push(Diagnostic {
                file: "--set".into(),
                line: i + 1,
                column: 1,
                path: key.clone(),
                message: msg,
            });
        }
    }
    let spec = Loader {
        doc: &mut doc,
        registry,
        broken_components: HashSet::new(),
        broken_inputs: HashSet::new(),
        config: Config::default(),
    }
    .load(&root);
    if doc.diags.is_empty() {
        Ok(spec)
    } else {
        Err(doc.finish())
    }
}
