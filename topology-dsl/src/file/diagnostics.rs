//! Problems in a topology file and where they are: [`Diagnostic`] (one problem at
//! `file:line:col`, with its key path), [`Diagnostics`] (all of them), and the document that
//! maps each key path to its place in the main file, an included file or an override.
//!
//! ```text
//! key path (bolts.count.parallelism) ──► Pos: byte offset in a file, or the n-th --set
//!                                     ──► file:line:col ──► Diagnostic ──► Diagnostics (sorted)
//! ```

use std::collections::HashMap;
use std::fmt;

use toml::Value;
use topo_runtime::suggest::suggest;

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

/// Where a value came from.
#[derive(Clone, Copy, Debug)]
pub(super) enum Pos {
    /// A byte offset in the (substituted) text of a file (an index into `Doc::files`).
    Byte(usize, usize),
    /// The n-th override.
    Set(usize),
}

/// One file of a topology: the main file or an included one.
pub(super) struct SourceFile {
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

/// A topology being loaded: its files, where each key path is, and the problems found so far.
pub(super) struct Doc {
    /// The main file first, then included files in the order they are included.
    pub(super) files: Vec<SourceFile>,
    /// Key path -> position of the value; `path#key` -> position of the key.
    pub(super) spans: HashMap<String, Pos>,
    pub(super) diags: Vec<Diagnostic>,
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
    pub(super) fn add_file(&mut self, name: &str, text: &str) -> usize {
        self.files.push(SourceFile::new(name, text));
        self.files.len() - 1
    }

    /// `file:line:column` of a position, for messages that point at another place.
    pub(super) fn describe_pos(&self, pos: Pos) -> String {
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

    pub(super) fn pos_of(&self, mut path: &str, key: bool) -> Pos {
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

    pub(super) fn push_at(&mut self, pos: Pos, path: &str, message: String) {
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
    pub(super) fn err(&mut self, path: &str, message: String) {
        let pos = self.pos_of(path, false);
        self.push_at(pos, path, message);
    }

    /// An error about the key at `path` (unknown keys).
    pub(super) fn key_err(&mut self, path: &str, message: String) {
        let pos = self.pos_of(path, true);
        self.push_at(pos, path, message);
    }

    pub(super) fn finish(&mut self) -> Diagnostics {
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

pub(super) fn describe(v: &Value) -> String {
    match v {
        Value::Table(_) => "a table".to_string(),
        Value::Array(a) if a.len() > 8 => format!("an array of {} elements", a.len()),
        _ => format!("{} {v}", v.type_str()),
    }
}

pub(super) fn unknown_key_message(key: &str, expected: &[&str]) -> String {
    let mut m = format!(
        "unknown key \"{key}\" (expected one of: {})",
        expected.join(", ")
    );
    if let Some(s) = suggest(key, expected.iter().copied()) {
        m.push_str(&format!("; did you mean \"{s}\"?"));
    }
    m
}
