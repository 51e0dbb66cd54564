//! `filter` and `map`: per-tuple expressions in [CEL](https://cel.dev) (the Common Expression
//! Language, evaluated with the `cel` crate, formerly `cel-interpreter`).
//!
//! ```text
//!                      ┌────────── filter ──────────┐
//! (any fields) ──────► │ expression true?           │──► default: the input values, unchanged
//!                      │ false → dropped (acked)    │──► error:   (reason, record)
//!                      └────────────────────────────┘
//!                      ┌─────────── map ────────────┐
//! (any fields) ──────► │ one expression per output  │──► default: the evaluated values
//!                      │ field                      │──► error:   (reason, record)
//!                      └────────────────────────────┘
//! ```
//!
//! Each expression is parsed once, when the bolt is built (a syntax error is reported then,
//! with the expression and the parser's message); each tuple is only evaluated.
//!
//! # Variables
//! Every field of the input tuple is a variable with the field's name:
//! `status >= 500 && path.startsWith("/api")`. The bolts need no input schema: an expression is
//! evaluated against whatever fields each tuple has. Values convert as:
//!
//! | topo [`Value`]      | CEL           | back to topo                                       |
//! |---------------------|---------------|----------------------------------------------------|
//! | `Null`              | `null`        | `Null`                                             |
//! | `Bool`              | `bool`        | `Bool`                                             |
//! | `Int`               | `int`         | `Int` (a `uint` too, or `Float` above `i64::MAX`)  |
//! | `Float`             | `double`      | `Float`                                            |
//! | `Str`               | `string`      | `Str`                                              |
//! | `Bytes`             | `bytes`       | `Bytes`                                            |
//! | `List`              | `list`        | `List`                                             |
//! | `Map`               | `map`         | `Map` (int/uint/bool keys become text)             |
//! | —                   | `timestamp`   | RFC 3339 text (`2024-01-02T03:04:05+00:00`)        |
//! | —                   | `duration`    | seconds as a `Float`                               |
//!
//! # Functions
//! The CEL standard library as implemented by the `cel` crate:
//! - operators: `== != < <= > >=`, `+ - * / %` (int with int, double with double — CEL does not
//!   mix them: write `duration * 1000.0` for a double field, or convert with `double(n)`),
//!   `&& || !`, `cond ? a : b`, `x in list`, `key in map`, indexing `l[0]`, `m["k"]`, `m.k`;
//! - `size(x)` / `x.size()` (string, bytes, list, map), `s.contains(t)`, `s.startsWith(t)`,
//!   `s.endsWith(t)`, `s.matches(regex)` (RE2-like syntax of the `regex` crate; the pattern is
//!   compiled at each call);
//! - conversions: `string(x)`, `int(x)`, `uint(x)`, `double(x)`, `bytes(s)`;
//! - `max(..)`, `min(..)`; macros `has(m.k)`, `l.all(x, p)`, `l.exists(x, p)`,
//!   `l.exists_one(x, p)`, `l.map(x, e)`, `l.filter(x, p)`;
//! - time: `timestamp("2024-01-02T03:04:05Z")`, `duration("1.5s")`, with `t.getHours()`,
//!   `getFullYear`, `getMonth`, `getDayOfWeek`, ... and timestamp/duration arithmetic.
//!
//! # Nulls and errors
//! A null field is CEL `null`: `f == null` and `f != null` test for it, and
//! `f != null ? f : 'default'` replaces it. Anything else applied to a null (arithmetic,
//! `size`, a method, an ordering comparison) is an evaluation error. A field the tuple does not
//! have is an error too (`Undeclared reference to 'x'`), as is a type mismatch (`1 + "a"`), a
//! division by zero or, for `filter`, a result that is not a bool. An evaluation error is never
//! dropped silently: the tuple goes to the `error` stream as `(reason, record)` — `reason`
//! names the expression and the error, `record` is the input as a [`Value::Map`] of field to
//! value — and the input is acked (replaying it would not fix it).

use std::collections::BTreeMap;
use std::sync::Arc;

use cel::objects::{Key, Map as CelMap};
use cel::{Context, Program, Value as Cel};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    BasicBolt, BasicCollector, BoxError, DEFAULT_STREAM, OutputDeclarer, Tuple, Value, Values,
};

/// The name of the stream rejected input goes to, with fields [`ERROR_FIELDS`].
pub use topo_runtime::ERROR_STREAM;

/// The fields of the [`ERROR_STREAM`]: why the evaluation failed, and the input record (a
/// [`Value::Map`] of field name to value).
pub const ERROR_FIELDS: [&str; 2] = ["reason", "record"];

/// Options of the `filter` bolt.
///
/// ```toml
/// [bolts.errors]
/// kind = "filter"
/// expression = 'status >= 500 && path.startsWith("/api")'
/// fields = ["status", "path", "duration"]
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterOptions {
    /// A CEL expression over the input fields that must evaluate to a bool: the tuple is kept
    /// when it is true. Required.
    pub expression: String,
    /// The fields of the `default` output stream, in order: a kept tuple's values of these
    /// fields, picked by name. Unset (or empty): the input passes through unchanged, and the
    /// output stream has the input stream's fields (every input of the filter must then have the
    /// same fields). The expression may use any input field, listed here or not.
    #[serde(default)]
    pub fields: Vec<String>,
}

impl FilterOptions {
    /// Options keeping tuples where `expression` is true, passing `fields` through.
    pub fn new<I, S>(expression: &str, fields: I) -> FilterOptions
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        FilterOptions {
            expression: expression.to_string(),
            fields: fields.into_iter().map(Into::into).collect(),
        }
    }
}

/// Options of the `map` bolt.
///
/// `fields` is a list of one-entry tables, `output name = "expression"`, in output order:
///
/// ```toml
/// [bolts.m]
/// kind = "map"
/// fields = [
///     { level = "status >= 500 ? 'error' : 'ok'" },
///     { path = "path" },
///     { ms = "duration * 1000.0" },
/// ]
/// ```
///
/// A single table is accepted too (`fields = { level = "...", path = "path" }`, or a
/// `[bolts.m.fields]` section), but its order is the order the configuration loader keeps:
/// with the `toml` crate's default (no `preserve_order` feature) keys come out sorted. Use the
/// list form when the output order matters.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapOptions {
    /// The output fields, in order: output field name → CEL expression over the input fields.
    /// A field is renamed with `new = "old"`; input fields not named here are dropped.
    /// Required, at least one.
    #[serde(deserialize_with = "ordered_fields")]
    #[schemars(schema_with = "ordered_fields_schema")]
    pub fields: IndexMap<String, String>,
}

/// What [`ordered_fields`] accepts.
fn ordered_fields_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "x-topo-type": "list of { name = \"expression\" }",
        "anyOf": [
            {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": { "type": "string" },
                    "minProperties": 1
                }
            },
            { "type": "object", "additionalProperties": { "type": "string" }, "minProperties": 1 }
        ]
    })
}

/// `fields` as a table, or a list of tables merged in order (a name given twice is an error).
fn ordered_fields<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<IndexMap<String, String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        One(IndexMap<String, String>),
        List(Vec<IndexMap<String, String>>),
    }
    let shape = Shape::deserialize(d).map_err(|_| {
        serde::de::Error::custom(
            "expected `fields` as a list of `{ name = \"expression\" }` tables, or a table of \
             name = \"expression\"",
        )
    })?;
    match shape {
        Shape::One(m) => Ok(m),
        Shape::List(list) => {
            let mut out = IndexMap::new();
            for (name, expr) in list.into_iter().flatten() {
                if out.contains_key(&name) {
                    return Err(serde::de::Error::custom(format_args!(
                        "output field `{name}` is given twice"
                    )));
                }
                out.insert(name, expr);
            }
            Ok(out)
        }
    }
}

/// One compiled expression and its source (for error messages).
#[derive(Clone)]
struct Compiled {
    source: String,
    program: Arc<Program>,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.source)
    }
}

fn compile(what: &str, source: &str) -> Result<Compiled, String> {
    if source.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    let program =
        Program::compile(source).map_err(|e| format!("{what} `{source}` does not parse: {e}"))?;
    Ok(Compiled {
        source: source.to_string(),
        program: Arc::new(program),
    })
}

/// The standard functions, registered once per bolt instance (not per tuple).
#[derive(Clone)]
struct Env(Arc<Context<'static>>);

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl Env {
    fn new() -> Env {
        Env(Arc::new(Context::default()))
    }

    /// Evaluates `expr` with the fields of `input` as variables.
    fn eval(&self, expr: &Compiled, input: &Tuple) -> Result<Cel, String> {
        let vars = TupleVars {
            fields: input.fields(),
            values: input.values(),
        };
        let mut ctx = self.0.new_inner_scope();
        ctx.set_variable_resolver(&vars);
        expr.program
            .execute(&ctx)
            .map_err(|e| format!("`{}` failed: {e}", expr.source))
    }
}

/// The input tuple's fields as CEL variables, converted when referenced.
struct TupleVars<'t> {
    fields: &'t [SmolStr],
    values: &'t [Value],
}

impl cel::context::VariableResolver for TupleVars<'_> {
    fn resolve(&self, variable: &str) -> Option<Cel> {
        self.fields
            .iter()
            .position(|f| f == variable)
            .and_then(|i| self.values.get(i))
            .map(to_cel)
    }
}

/// A topo value as a CEL value.
pub fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Null => Cel::Null,
        Value::Bool(b) => Cel::Bool(*b),
        Value::Int(i) => Cel::Int(*i),
        Value::Float(f) => Cel::Float(*f),
        Value::Str(s) => Cel::String(Arc::new(s.to_string())),
        Value::Bytes(b) => Cel::Bytes(Arc::new(b.to_vec())),
        Value::List(l) => Cel::List(Arc::new(l.iter().map(to_cel).collect())),
        Value::Map(m) => Cel::Map(CelMap {
            map: Arc::new(
                m.iter()
                    .map(|(k, v)| (Key::String(Arc::new(k.to_string())), to_cel(v)))
                    .collect(),
            ),
        }),
    }
}

/// A CEL value as a topo value; an error for values with no topo counterpart (functions,
/// opaque values).
pub fn from_cel(v: &Cel) -> Result<Value, String> {
    Ok(match v {
        Cel::Null => Value::Null,
        Cel::Bool(b) => Value::Bool(*b),
        Cel::Int(i) => Value::Int(*i),
        Cel::UInt(u) => Value::from(*u),
        Cel::Float(f) => Value::Float(*f),
        Cel::String(s) => Value::Str(SmolStr::new(s.as_str())),
        Cel::Bytes(b) => Value::from(b.to_vec()),
        Cel::List(l) => Value::List(Arc::new(
            l.iter().map(from_cel).collect::<Result<Vec<_>, _>>()?,
        )),
        Cel::Map(m) => {
            let mut out = BTreeMap::new();
            for (k, v) in m.map.iter() {
                let key = match k {
                    Key::String(s) => SmolStr::new(s.as_str()),
                    Key::Int(i) => SmolStr::new(i.to_string()),
                    Key::Uint(u) => SmolStr::new(u.to_string()),
                    Key::Bool(b) => SmolStr::new(b.to_string()),
                };
                out.insert(key, from_cel(v)?);
            }
            Value::Map(Arc::new(out))
        }
        Cel::Timestamp(t) => Value::Str(SmolStr::new(t.to_rfc3339())),
        Cel::Duration(d) => match d.num_nanoseconds() {
            Some(n) => Value::Float(n as f64 / 1e9),
            None => Value::Float(d.num_milliseconds() as f64 / 1e3),
        },
        other => return Err(format!("a {} has no field value", cel_type(other))),
    })
}

/// The CEL type name of a value, for error messages.
fn cel_type(v: &Cel) -> String {
    v.type_of().to_string()
}

fn emit_error(out: &mut BasicCollector<'_>, reason: String, input: &Tuple) {
    let mut vals = Values::new();
    vals.push(Value::from(reason));
    vals.push(input.to_record());
    out.emit_to(ERROR_STREAM, vals);
}

/// The `filter` bolt: see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Filter {
    expr: Compiled,
    fields: Vec<SmolStr>,
    env: Env,
}

impl Filter {
    /// A filter with these options, or why they are invalid: the expression does not compile
    /// (the error names the expression, with the parser's message), or `fields` has an empty
    /// or duplicate name.
    pub fn new(opts: FilterOptions) -> Result<Filter, String> {
        let expr = compile("option `expression`", &opts.expression)?;
        for (i, f) in opts.fields.iter().enumerate() {
            if f.is_empty() {
                return Err("option `fields` has an empty name".into());
            }
            if opts.fields[..i].contains(f) {
                return Err(format!("option `fields` names `{f}` twice"));
            }
        }
        Ok(Filter {
            expr,
            fields: opts.fields.iter().map(SmolStr::new).collect(),
            env: Env::new(),
        })
    }

    /// The output fields of the `default` stream, in order; empty when the input passes through
    /// unchanged.
    pub fn output_fields(&self) -> &[SmolStr] {
        &self.fields
    }

    /// The kept input's values of the declared fields, or why some are missing.
    fn pass_through(&self, input: &Tuple) -> Result<Values, String> {
        if self.fields.is_empty() || input.fields() == self.fields.as_slice() {
            return Ok(input.values().iter().cloned().collect());
        }
        self.fields
            .iter()
            .map(|f| {
                input.field(f).cloned().map_err(|_| {
                    format!(
                        "input has no field `{f}` to pass through (its fields: {})",
                        input.fields().join(", ")
                    )
                })
            })
            .collect()
    }

    /// Evaluates the expression on one input: `Ok(keep)`, or the reason it failed.
    fn keep(&self, input: &Tuple) -> Result<bool, String> {
        match self.env.eval(&self.expr, input)? {
            Cel::Bool(b) => Ok(b),
            other => Err(format!(
                "`{}` returned {}, expected a bool",
                self.expr.source,
                cel_type(&other)
            )),
        }
    }
}

impl BasicBolt for Filter {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        if self.fields.is_empty() {
            out.declare_pass_through(DEFAULT_STREAM);
        } else {
            out.declare(self.fields.iter().cloned());
        }
        out.declare_stream(ERROR_STREAM, ERROR_FIELDS);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        match self.keep(input) {
            Ok(true) => match self.pass_through(input) {
                Ok(vals) => out.emit(vals),
                Err(reason) => emit_error(out, reason, input),
            },
            Ok(false) => {}
            Err(reason) => emit_error(out, reason, input),
        }
        Ok(())
    }
}

/// The `map` bolt: see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Map {
    names: Vec<String>,
    exprs: Vec<Compiled>,
    env: Env,
}

impl Map {
    /// A map with these options, or why they are invalid: `fields` must name at least one
    /// output field, no name may be empty, and every expression must compile (the error names
    /// the field and the expression, with the parser's message).
    pub fn new(opts: MapOptions) -> Result<Map, String> {
        if opts.fields.is_empty() {
            return Err("option `fields` must name at least one output field".into());
        }
        let mut names = Vec::with_capacity(opts.fields.len());
        let mut exprs = Vec::with_capacity(opts.fields.len());
        for (name, source) in &opts.fields {
            if name.is_empty() {
                return Err("option `fields` has an empty name".into());
            }
            exprs.push(compile(&format!("field `{name}`: expression"), source)?);
            names.push(name.clone());
        }
        Ok(Map {
            names,
            exprs,
            env: Env::new(),
        })
    }

    /// The output fields of the `default` stream, in order.
    pub fn output_fields(&self) -> &[String] {
        &self.names
    }

    fn eval(&self, input: &Tuple) -> Result<Values, String> {
        let mut out = Values::with_capacity(self.exprs.len());
        for (name, expr) in self.names.iter().zip(&self.exprs) {
            let v = self
                .env
                .eval(expr, input)
                .map_err(|e| format!("field `{name}`: {e}"))?;
            out.push(from_cel(&v).map_err(|e| format!("field `{name}`: `{}`: {e}", expr.source))?);
        }
        Ok(out)
    }
}

impl BasicBolt for Map {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(self.names.iter().map(String::as_str));
        out.declare_stream(ERROR_STREAM, ERROR_FIELDS);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        match self.eval(input) {
            Ok(vals) => out.emit(vals),
            Err(reason) => emit_error(out, reason, input),
        }
        Ok(())
    }
}

/// The `filter` and `map` kinds, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::basic_bolt(
            "filter",
            "keeps tuples for which a CEL expression is true (e.g. status >= 500 && path.startsWith(\"/api\")); errors to the `error` stream",
            Filter::clone,
        )
        .with_example(FILTER_EXAMPLE),
        Kind::basic_bolt(
            "map",
            "computes output fields from CEL expressions over the input fields; errors to the `error` stream",
            Map::clone,
        )
        .with_example(MAP_EXAMPLE),
    ]
}

/// Printed by `topo components filter`; built by the test of every kind's example.
const FILTER_EXAMPLE: &str = r#"
[bolts.server_errors]
kind = "filter"
expression = 'status >= 500 && path.startsWith("/api")'
fields = ["host", "path", "status", "bytes"]   # unset = every input field, unchanged
inputs = [{ from = "parsed" }]
"#;

/// Printed by `topo components map`; built by the test of every kind's example.
const MAP_EXAMPLE: &str = r#"
[bolts.shaped]
kind = "map"
fields = [
  { path = "path" },
  { kb = "double(bytes) / 1024.0" },
  { slow = "status >= 500 ? 'error' : 'ok'" },
]
inputs = [{ from = "server_errors" }]
"#;

impl FromOptions for Filter {
    type Options = FilterOptions;
    fn from_options(options: FilterOptions) -> Result<Self, String> {
        Filter::new(options)
    }
}

impl FromOptions for Map {
    type Options = MapOptions;
    fn from_options(options: MapOptions) -> Result<Self, String> {
        Map::new(options)
    }
}
