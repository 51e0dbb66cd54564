//! Topology files: a TOML description of a topology, loaded into the same [`TopologySpec`] the
//! builder makes and checked by the same [`TopologySpec::validate`].
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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use smol_str::SmolStr;
use toml::Value;
use toml::de::{DeTable, DeValue};
use topo_runtime::topology::{ComponentFactory, ComponentSpec, ErrorKind, InputSpec, suggest};
use topo_runtime::{
    BasicBolt, BasicCollector, BoltFactory, BoxError, Config, DEFAULT_STREAM, Grouping,
    OutputDeclarer, Spout, SpoutCollector, SpoutFactory, TopologySpec, Tuple, ValidationError,
};

use crate::registry::{Registry, Role};

/// One problem in a topology file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (as named to the loader), or `--set` for an override.
    pub file: String,
    /// 1-based line (for an override: its 1-based position among the overrides).
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The key path (`bolts.count.inputs[0].grouping.fields`); empty for the whole file.
    pub path: String,
    /// What is wrong, with the bad value and what was expected.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in a topology file; `Display` prints one per line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// The problems as a JSON array of `{file, line, column, path, message}`, for tools.
    pub fn to_json(&self) -> String {
        let list: Vec<serde_json::Value> = self
            .0
            .iter()
            .map(|d| {
                serde_json::json!({
                    "file": d.file,
                    "line": d.line,
                    "column": d.column,
                    "path": d.path,
                    "message": d.message,
                })
            })
            .collect();
        serde_json::to_string_pretty(&list).expect("JSON of strings and numbers")
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

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

/// Substitutes the environment in one file and parses it; its positions are recorded against
/// it. `None` (with the errors recorded) if it is not valid.
fn parse_source(
    doc: &mut Doc,
    name: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<(toml::Table, HashMap<String, Pos>)> {
    let text = match substitute_env(text, env) {
        Ok(t) => t,
        Err(errs) => {
            let f = doc.add_file(name, text);
            for (offset, msg) in errs {
                doc.push_at(Pos::Byte(f, offset), "", msg);
            }
            return None;
        }
    };
    let f = doc.add_file(name, &text);
    match DeTable::parse(&text) {
        Ok(t) => {
            let mut spans = HashMap::new();
            let table = convert_table(t.get_ref(), f, "", &mut spans);
            Some((table, spans))
        }
        Err(e) => {
            let offset = e.span().map_or(0, |s| s.start);
            doc.push_at(
                Pos::Byte(f, offset),
                "",
                format!("invalid TOML: {}", e.message().trim()),
            );
            None
        }
    }
}

/// Merges the components of the files listed in `include = [..]` into `root`. An included file
/// holds only `[spouts.*]` and `[bolts.*]` tables; a component id may be defined once.
fn include(
    doc: &mut Doc,
    root: &mut toml::Table,
    includes: Value,
    base: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) {
    let Value::Array(files) = includes else {
        let got = describe(&includes);
        doc.err(
            "include",
            format!("expected a list of file paths (include = [\"bolts.toml\"]), got {got}"),
        );
        return;
    };
    for (i, file) in files.iter().enumerate() {
        let at = format!("include[{i}]");
        let Value::String(rel) = file else {
            doc.err(&at, format!("expected a file path, got {}", describe(file)));
            continue;
        };
        let path = base.map_or_else(|| PathBuf::from(rel), |b| b.join(rel));
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                doc.err(
                    &at,
                    format!("cannot read the included file \"{name}\": {e}"),
                );
                continue;
            }
        };
        let Some((table, spans)) = parse_source(doc, &name, &text, env) else {
            continue;
        };
        for (key, value) in table {
            let (Some(Value::Table(components)), "spouts" | "bolts") = (Some(&value), key.as_str())
            else {
                let pos = spans
                    .get(&format!("{key}#key"))
                    .copied()
                    .unwrap_or(Pos::Byte(0, 0));
                doc.push_at(
                    pos,
                    &key,
                    format!(
                        "an included file holds only [spouts.<id>] and [bolts.<id>] tables; \"{key}\" belongs in the main file"
                    ),
                );
                continue;
            };
            let target = root
                .entry(key.clone())
                .or_insert_with(|| Value::Table(toml::Table::new()));
            let Value::Table(target) = target else {
                continue; // the main file's own error is reported by the loader
            };
            for (id, component) in components {
                let path = format!("{key}.{id}");
                if target.contains_key(id) {
                    let first = doc.pos_of(&format!("{path}#key"), false);
                    let here = spans
                        .get(&format!("{path}#key"))
                        .copied()
                        .unwrap_or(Pos::Byte(0, 0));
                    let message = format!(
                        "component \"{id}\" is already defined at {}",
                        doc.describe_pos(first)
                    );
                    doc.push_at(here, &path, message);
                    continue;
                }
                for (p, pos) in &spans {
                    if p == &path
                        || p.starts_with(&format!("{path}."))
                        || p.starts_with(&format!("{path}#"))
                    {
                        doc.spans.insert(p.clone(), *pos);
                    }
                }
                target.insert(id.clone(), component.clone());
            }
        }
    }
}

/// Where a value came from.
#[derive(Clone, Copy, Debug)]
enum Pos {
    /// A byte offset in the (substituted) text of a file (an index into `Doc::files`).
    Byte(usize, usize),
    /// The n-th override.
    Set(usize),
}

/// One file of a topology: the main file or an included one.
struct SourceFile {
    name: String,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    fn new(name: &str, text: &str) -> SourceFile {
        SourceFile {
            name: name.to_string(),
            text: text.to_string(),
            line_starts: std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        }
    }
}

struct Doc {
    /// The main file first, then included files in the order they are included.
    files: Vec<SourceFile>,
    /// Key path -> position of the value; `path#key` -> position of the key.
    spans: HashMap<String, Pos>,
    diags: Vec<Diagnostic>,
}

fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

impl Doc {
    /// Adds a file; returns its index for positions.
    fn add_file(&mut self, name: &str, text: &str) -> usize {
        self.files.push(SourceFile::new(name, text));
        self.files.len() - 1
    }

    /// `file:line:column` of a position, for messages that point at another place.
    fn describe_pos(&self, pos: Pos) -> String {
        let (file, line, column) = self.locate(pos);
        format!("{file}:{line}:{column}")
    }

    fn locate(&self, pos: Pos) -> (String, usize, usize) {
        match pos {
            Pos::Byte(f, offset) => {
                let Some(src) = self.files.get(f) else {
                    return (String::new(), 1, 1);
                };
                let offset = offset.min(src.text.len());
                let line = src.line_starts.partition_point(|&s| s <= offset).max(1);
                let start = src.line_starts[line - 1];
                let column = src
                    .text
                    .get(start..offset)
                    .map_or(offset - start, |t| t.chars().count())
                    + 1;
                (src.name.clone(), line, column)
            }
            Pos::Set(i) => ("--set".to_string(), i + 1, 1),
        }
    }

    fn pos_of(&self, mut path: &str, key: bool) -> Pos {
        if key && let Some(p) = self.spans.get(&format!("{path}#key")) {
            return *p;
        }
        loop {
            if let Some(p) = self.spans.get(path) {
                return *p;
            }
            match parent(path) {
                Some(p) => path = p,
                None => return Pos::Byte(0, 0),
            }
        }
    }

    fn push_at(&mut self, pos: Pos, path: &str, message: String) {
        let (file, line, column) = self.locate(pos);
        self.diags.push(Diagnostic {
            file,
            line,
            column,
            path: path.to_string(),
            message,
        });
    }

    /// An error about the value at `path`.
    fn err(&mut self, path: &str, message: String) {
        let pos = self.pos_of(path, false);
        self.push_at(pos, path, message);
    }

    /// An error about the key at `path` (unknown keys).
    fn key_err(&mut self, path: &str, message: String) {
        let pos = self.pos_of(path, true);
        self.push_at(pos, path, message);
    }

    fn finish(&mut self) -> Diagnostics {
        let mut d = std::mem::take(&mut self.diags);
        // The main file first, then included files in include order, then overrides.
        let files: Vec<&str> = self.files.iter().map(|f| f.name.as_str()).collect();
        d.sort_by_key(|d| {
            let file = files
                .iter()
                .position(|f| *f == d.file)
                .unwrap_or(usize::MAX);
            (file, d.line, d.column)
        });
        Diagnostics(d)
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn convert_table(
    t: &DeTable<'_>,
    file: usize,
    path: &str,
    spans: &mut HashMap<String, Pos>,
) -> toml::Table {
    let mut out = toml::Table::new();
    for (k, v) in t.iter() {
        let p = join(path, k.get_ref());
        spans.insert(format!("{p}#key"), Pos::Byte(file, k.span().start));
        spans.insert(p.clone(), Pos::Byte(file, v.span().start));
        out.insert(
            k.get_ref().to_string(),
            convert(v.get_ref(), file, &p, spans),
        );
    }
    out
}

fn convert(v: &DeValue<'_>, file: usize, path: &str, spans: &mut HashMap<String, Pos>) -> Value {
    match v {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(Value::Integer)
            .unwrap_or_else(|_| Value::String(i.to_string())),
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .map(Value::Float)
            .unwrap_or_else(|_| Value::String(f.to_string())),
        DeValue::Boolean(b) => Value::Boolean(*b),
        DeValue::Datetime(d) => Value::Datetime(*d),
        DeValue::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, v)| {
                    let p = format!("{path}[{i}]");
                    spans.insert(p.clone(), Pos::Byte(file, v.span().start));
                    convert(v.get_ref(), file, &p, spans)
                })
                .collect(),
        ),
        DeValue::Table(t) => Value::Table(convert_table(t, file, path, spans)),
    }
}

/// Replaces `${VAR}`, `${VAR:-default}` and `$$`; errors are (byte offset, message).
fn substitute_env(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Vec<(usize, String)>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    let comments = comment_spans(text);
    let in_comment = |at: usize| comments.iter().any(|&(start, end)| start <= at && at < end);
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if in_comment(offset + i) {
            // Comments are left as they are: `${..}` there is prose, not a reference.
            out.push('$');
            offset += i + 1;
            rest = after;
        } else if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            offset += i + 2;
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            match body.find('}') {
                Some(end) => {
                    let inner = &body[..end];
                    let (name, default) = match inner.split_once(":-") {
                        Some((n, d)) => (n, Some(d)),
                        None => (inner, None),
                    };
                    let valid = !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !valid {
                        errors.push((
                            offset + i,
                            format!("invalid variable reference \"${{{inner}}}\" (expected ${{NAME}} or ${{NAME:-default}}; write $$ for a literal $)"),
                        ));
                    } else {
                        match (env(name), default) {
                            (Some(v), _) => out.push_str(&v),
                            (None, Some(d)) => out.push_str(d),
                            (None, None) => errors.push((
                                offset + i,
                                format!("environment variable \"{name}\" is not set (use ${{{name}:-default}} for a default)"),
                            )),
                        }
                    }
                    offset += i + 2 + end + 1;
                    rest = &body[end + 1..];
                }
                None => {
                    errors.push((
                        offset + i,
                        "unclosed \"${\" (expected ${NAME}; write $$ for a literal $)".to_string(),
                    ));
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            offset += i + 1;
            rest = after;
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The byte ranges of the TOML comments in `text` (a `#` outside strings, to the end of its
/// line), so that substitution leaves them alone.
fn comment_spans(text: &str) -> Vec<(usize, usize)> {
    #[derive(PartialEq)]
    enum In {
        Code,
        Basic,
        Literal,
        MultiBasic,
        MultiLiteral,
    }
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut state = In::Code;
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        match state {
            In::Code => {
                if rest.starts_with(b"#") {
                    let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
                    spans.push((i, end));
                    i = end;
                    continue;
                } else if rest.starts_with(b"\"\"\"") {
                    state = In::MultiBasic;
                    i += 3;
                    continue;
                } else if rest.starts_with(b"'''") {
                    state = In::MultiLiteral;
                    i += 3;
                    continue;
                } else if rest[0] == b'"' {
                    state = In::Basic;
                } else if rest[0] == b'\'' {
                    state = In::Literal;
                }
            }
            In::Basic | In::MultiBasic if rest[0] == b'\\' => {
                i += 2;
                continue;
            }
            In::Basic if rest[0] == b'"' || rest[0] == b'\n' => state = In::Code,
            In::Literal if rest[0] == b'\'' || rest[0] == b'\n' => state = In::Code,
            In::MultiBasic if rest.starts_with(b"\"\"\"") => {
                state = In::Code;
                i += 3;
                continue;
            }
            In::MultiLiteral if rest.starts_with(b"'''") => {
                state = In::Code;
                i += 3;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    spans
}

enum Seg {
    Key(String),
    Index(usize),
}

fn parse_set_path(key: &str) -> Option<Vec<Seg>> {
    let mut segs = Vec::new();
    for part in key.split('.') {
        let (name, mut idx) = match part.find('[') {
            Some(b) => (&part[..b], &part[b..]),
            None => (part, ""),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return None;
        }
        segs.push(Seg::Key(name.to_string()));
        while !idx.is_empty() {
            let close = idx.find(']')?;
            let n: usize = idx[1..close].parse().ok()?;
            segs.push(Seg::Index(n));
            idx = &idx[close + 1..];
            if !idx.is_empty() && !idx.starts_with('[') {
                return None;
            }
        }
    }
    Some(segs)
}

fn apply_override(
    root: &mut Value,
    key: &str,
    value: &str,
    index: usize,
    spans: &mut HashMap<String, Pos>,
) -> Result<(), String> {
    let segs = parse_set_path(key).ok_or_else(|| {
        format!("invalid --set path \"{key}\" (expected keys separated by dots, like bolts.count.parallelism)")
    })?;
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(value.to_string()));
    let mut cur = root;
    let mut path = String::new();
    let last = segs.len() - 1;
    for (n, seg) in segs.iter().enumerate() {
        let here = path.clone();
        match seg {
            Seg::Key(k) => {
                path = join(&path, k);
                let Value::Table(t) = cur else {
                    return Err(format!(
                        "cannot set \"{key}\": \"{here}\" is {}, not a table",
                        cur.type_str()
                    ));
                };
                if n == last {
                    t.insert(k.clone(), parsed);
                    spans.retain(|p, _| !(p.starts_with(&path) && p.len() > path.len()));
                    spans.insert(path.clone(), Pos::Set(index));
                    spans.insert(format!("{path}#key"), Pos::Set(index));
                    return Ok(());
                }
                if !t.contains_key(k) {
                    spans.insert(path.clone(), Pos::Set(index));
                    spans.insert(format!("{path}#key"), Pos::Set(index));
                }
                cur = t
                    .entry(k.clone())
                    .or_insert_with(|| Value::Table(toml::Table::new()));
            }
            Seg::Index(i) => {
                path = format!("{path}[{i}]");
                let Value::Array(a) = cur else {
                    return Err(format!(
                        "cannot set \"{key}\": \"{here}\" is {}, not an array",
                        cur.type_str()
                    ));
                };
                let len = a.len();
                let Some(slot) = a.get_mut(*i) else {
                    return Err(format!(
                        "cannot set \"{key}\": \"{here}\" has {len} element{}",
                        if len == 1 { "" } else { "s" }
                    ));
                };
                if n == last {
                    *slot = parsed;
                    spans.retain(|p, _| !(p.starts_with(&path) && p.len() > path.len()));
                    spans.insert(path.clone(), Pos::Set(index));
                    return Ok(());
                }
                cur = slot;
            }
        }
    }
    Ok(())
}

fn describe(v: &Value) -> String {
    match v {
        Value::Table(_) => "a table".to_string(),
        Value::Array(a) if a.len() > 8 => format!("an array of {} elements", a.len()),
        _ => format!("{} {v}", v.type_str()),
    }
}

fn unknown_key_message(key: &str, expected: &[&str]) -> String {
    let mut m = format!(
        "unknown key \"{key}\" (expected one of: {})",
        expected.join(", ")
    );
    if let Some(s) = suggest(key, expected.iter().copied()) {
        m.push_str(&format!("; did you mean \"{s}\"?"));
    }
    m
}

pub(crate) const TOP_KEYS: &[&str] = &["name", "config", "include", "spouts", "bolts"];
pub(crate) const CONFIG_KEYS: &[&str] = &[
    "ackers",
    "message_timeout",
    "max_spout_pending",
    "worker_threads",
    "queue_capacity",
    "batch_size",
    "default_parallelism",
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

struct Loader<'a> {
    doc: &'a mut Doc,
    registry: &'a Registry,
    broken_components: HashSet<SmolStr>,
    /// Inputs that could not be read, by (component, index); index `usize::MAX` when `inputs`
    /// itself could not be read.
    broken_inputs: HashSet<(SmolStr, usize)>,
    /// The settings read, to show values in messages.
    config: Config,
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

    fn load(mut self, root: &Value) -> TopologySpec {
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
            Some("spout") => Role::Spout,
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
