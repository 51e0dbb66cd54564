//! The sources of a topology: `${VAR}` substitution in the text, TOML parsing that keeps the
//! place of every key and value, the files of `include = [..]`, and `--set` overrides.
//!
//! ```text
//! text ──► substitute_env ──► DeTable::parse ──► toml::Table + key path → Pos
//!                                                 ├─► include = [..]: the same for each file, merged
//!                                                 └─► --set key.path=value: replaced, Pos::Set
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::Value;
use toml::de::{DeTable, DeValue};

use super::diagnostics::{Doc, Pos, describe};

/// Substitutes the environment in one file and parses it; its positions are recorded against
/// it. `None` (with the errors recorded) if it is not valid.
pub(super) fn parse_source(
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
pub(super) fn include(
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
pub(super) fn substitute_env(
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

pub(super) fn apply_override(
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
