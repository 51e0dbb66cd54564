//! What the registry's kinds say about their options, and the JSON Schema of a whole topology
//! file (`topo schema`).
//!
//! ```text
//!  options struct (doc comments, serde attributes)
//!        │ #[derive(JsonSchema)]
//!        ▼
//!  Kind::options_schema ──option_docs──► Kind::options() ──► topo components KIND, README tables
//!        │
//!        └──topology_schema(registry)──► topo schema ──► editors (taplo / Even Better TOML),
//!                                                         tests validating examples/*.toml
//! ```
//!
//! The file schema is JSON Schema draft 7: the top-level keys, `[config]`, and for `[spouts.*]`
//! and `[bolts.*]` a union tagged by `kind`: one case per registered kind (`if` its `kind`,
//! `then` its schema), holding the component keys (`kind`, `parallelism`, `tick_interval`,
//! `inputs`) and that kind's options, closed to other keys where the options struct is.
//!
//! Options structs use the helpers here for types serde reads in its own way:
//! `#[schemars(schema_with = "topo_dsl::schema::duration")]` for a humantime duration
//! (`"250ms"`, `"1m 30s"`).

use schemars::generate::SchemaSettings;
use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

use crate::registry::{OptionDoc, Registry, Role};

/// The keyword an option's schema may carry to name its type for people (`duration`,
/// `CEL expression`) where the JSON type alone would say less.
pub const TYPE_NAME: &str = "x-topo-type";

/// The settings every schema here is generated with: JSON Schema draft 7, which the TOML
/// language servers in editors understand.
pub fn settings() -> SchemaSettings {
    SchemaSettings::draft07()
}

/// A humantime duration: `"250ms"`, `"30s"`, `"1m 30s"`.
pub fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": DURATION_PATTERN,
        "x-topo-type": "duration",
    })
}

/// Marks `fields` required in an options struct's schema, for options that serde fills with a
/// default (`#[serde(default)]` on the struct) but the component refuses to start without; use
/// it from a `#[schemars(transform = ...)]` function of the struct.
pub fn require(schema: &mut Schema, fields: &[&str]) {
    let object = schema.ensure_object();
    let required = object
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(list) = required {
        for f in fields {
            if !list.iter().any(|v| v == f) {
                list.push(Value::from(*f));
            }
        }
    }
    if let Some(Value::Object(props)) = object.get_mut("properties") {
        for f in fields {
            if let Some(Value::Object(p)) = props.get_mut(*f) {
                p.remove("default");
            }
        }
    }
}

/// What a humantime duration looks like: numbers each followed by a unit.
const DURATION_PATTERN: &str = r"^\s*([0-9]+\s*[a-zA-Zµ]+\s*)+$";

/// The documentation of every option of an options schema, in `order` (the struct's field
/// order; options it does not name follow in the schema's order).
pub(crate) fn option_docs(
    schema: fn(&mut SchemaGenerator) -> Schema,
    order: &[&str],
) -> Vec<OptionDoc> {
    let mut generator = settings().into_generator();
    let root = schema(&mut generator).to_value();
    let defs = generator.take_definitions(true);
    let root = resolve(&root, &defs);
    let required: Vec<&str> = root
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut docs: Vec<OptionDoc> = Vec::new();
    for (name, prop) in properties(root, &defs) {
        if docs.iter().any(|d| d.name == *name) {
            continue;
        }
        let shown = resolve(prop, &defs);
        docs.push(OptionDoc {
            name: name.clone(),
            ty: type_text(prop, &defs),
            default: prop
                .get("default")
                .or_else(|| shown.get("default"))
                .filter(|d| !d.is_null())
                .map(default_text)
                .unwrap_or_default(),
            required: required.contains(&name.as_str()),
            doc: prop
                .get("description")
                .or_else(|| shown.get("description"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        });
    }
    docs.sort_by_key(|d| {
        order
            .iter()
            .position(|f| *f == d.name)
            .unwrap_or(usize::MAX)
    });
    docs
}

/// The field names of a struct that serde reads, in declaration order (JSON objects here keep
/// their keys sorted, so the schema alone has lost it). serde's derive hands them to
/// `deserialize_struct`; a deserializer that only records them and stops gets them. Empty for
/// types read otherwise (maps, flattened structs).
pub(crate) fn field_order<O: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    use serde::de::value::Error;
    use serde::de::{Error as _, Visitor};

    struct Probe<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("not a struct"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            *self.0 = fields;
            Err(Error::custom("fields recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    let _ = O::deserialize(Probe(&mut fields));
    fields.to_vec()
}

/// The properties of an object schema, and of the alternatives and parts it is made of.
fn properties<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> Vec<(&'a String, &'a Value)> {
    let schema = resolve(schema, defs);
    let mut out: Vec<(&String, &Value)> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    for key in ["allOf", "oneOf", "anyOf"] {
        for part in schema
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.extend(properties(part, defs));
        }
    }
    out
}

/// A `$ref` into `definitions` followed (once; nested refs stay for `type_text`).
fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .rsplit('/')
            .next()
            .and_then(|name| defs.get(name))
            .unwrap_or(schema),
        None => schema,
    }
}

/// A schema's type for people: `integer`, `string`, `duration`, `array of string`,
/// `"a" | "b"`, `table`.
fn type_text(schema: &Value, defs: &Map<String, Value>) -> String {
    let s = resolve(schema, defs);
    if let Some(name) = s.get(TYPE_NAME).and_then(Value::as_str) {
        return name.to_string();
    }
    if let Some(c) = s.get("const") {
        return c.to_string();
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(" | ");
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let mut texts: Vec<String> = Vec::new();
            for alt in alts {
                if alt.get("type").and_then(Value::as_str) == Some("null") {
                    continue;
                }
                let t = type_text(alt, defs);
                if !texts.contains(&t) {
                    texts.push(t);
                }
            }
            return texts.join(" | ");
        }
    }
    let one = |t: &str| -> String {
        match t {
            "array" => match s.get("items") {
                Some(items) => format!("array of {}", type_text(items, defs)),
                None => "array".to_string(),
            },
            "object" => match (s.get("properties"), s.get("additionalProperties")) {
                (Some(Value::Object(p)), _) if !p.is_empty() => {
                    let keys: Vec<&str> = p.keys().map(String::as_str).collect();
                    format!("table {{ {} }}", keys.join(", "))
                }
                (_, Some(v @ Value::Object(_))) => format!("table of {}", type_text(v, defs)),
                _ => "table".to_string(),
            },
            other => other.to_string(),
        }
    };
    match s.get("type") {
        Some(Value::String(t)) => one(t),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .map(one)
            .collect::<Vec<_>>()
            .join(" | "),
        _ => "any".to_string(),
    }
}

/// A default value as a topology file would write it (JSON and TOML agree on these).
fn default_text(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() <= 60 {
        return text;
    }
    match v {
        Value::Array(items) => format!("[{} items]", items.len()),
        Value::Object(_) => "(a table)".to_string(),
        _ => format!("{}…", text.chars().take(57).collect::<String>()),
    }
}

/// The keys every component table may hold besides its kind's options, with their schemas.
fn component_keys(role: Role) -> Map<String, Value> {
    let mut keys = Map::new();
    keys.insert(
        "parallelism".into(),
        json!({
            "type": "integer",
            "minimum": 1,
            "description": "tasks running this component (default: config.default_parallelism)",
        }),
    );
    if role == Role::Bolt {
        keys.insert(
            "tick_interval".into(),
            json!({
                "$ref": "#/definitions/duration",
                "description": "a tick tuple is delivered to every task at this interval",
            }),
        );
        keys.insert(
            "inputs".into(),
            json!({
                "type": "array",
                "items": { "$ref": "#/definitions/input" },
                "description": "the streams this bolt subscribes to, each with its grouping",
            }),
        );
    }
    keys
}

/// The JSON Schema (draft 7) of a topology file whose kinds are those of `registry`.
pub fn topology_schema(registry: &Registry) -> Value {
    let mut generator = settings().into_generator();
    let mut alternatives = |role: Role| -> Vec<Value> {
        registry
            .kinds()
            .filter(|k| k.role() == role)
            .map(|k| {
                let options = k.options_schema(&mut generator).to_value();
                kind_schema(k.name(), k.description(), role, options)
            })
            .collect()
    };
    let spouts = alternatives(Role::Spout);
    let bolts = alternatives(Role::Bolt);
    let mut definitions = generator.take_definitions(true);
    let duration = duration(&mut settings().into_generator()).to_value();
    definitions.insert("duration".into(), duration);
    definitions.insert(
        Role::Spout.as_str().into(),
        tagged_union(Role::Spout, spouts),
    );
    definitions.insert(Role::Bolt.as_str().into(), tagged_union(Role::Bolt, bolts));
    definitions.insert("input".into(), input_schema());
    definitions.insert("grouping".into(), grouping_schema());
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "topo topology file",
        "description": "A topology for `topo run`: spouts, bolts, their options and how tuples flow between them.",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "name": { "type": "string", "description": "the topology's name (logs, metrics, state directories)" },
            "include": {
                "type": "array",
                "items": { "type": "string" },
                "description": "files (relative to this one) whose [spouts.*] and [bolts.*] tables are merged in",
            },
            "config": config_schema(),
            "spouts": {
                "type": "object",
                "additionalProperties": { "$ref": "#/definitions/spout" },
                "description": "the sources, by component id",
            },
            "bolts": {
                "type": "object",
                "additionalProperties": { "$ref": "#/definitions/bolt" },
                "description": "the processing steps and sinks, by component id",
            },
        },
        "definitions": definitions,
    })
}

/// The kinds of a role as a union tagged by `kind`: `kind` must name one of them, and the
/// table is then checked against that kind's schema alone (`if` / `then`), so a checker says
/// "`lowercas` was unexpected" rather than "matches none of 25 alternatives".
fn tagged_union(role: Role, kinds: Vec<Value>) -> Value {
    let names: Vec<Value> = kinds
        .iter()
        .map(|k| k["properties"]["kind"]["const"].clone())
        .collect();
    let cases: Vec<Value> = kinds
        .into_iter()
        .map(|k| {
            json!({
                "if": { "properties": { "kind": { "const": k["properties"]["kind"]["const"] } }, "required": ["kind"] },
                "then": k,
            })
        })
        .collect();
    json!({
        "type": "object",
        "required": ["kind"],
        "properties": { "kind": { "enum": names, "description": format!("the {role} kind (`topo components` lists them)") } },
        "allOf": cases,
    })
}

/// One kind's alternative of the tagged union: its `kind`, the component keys and its options.
fn kind_schema(name: &str, description: &str, role: Role, options: Value) -> Value {
    let mut props = Map::new();
    props.insert(
        "kind".into(),
        json!({ "const": name, "description": description }),
    );
    props.extend(component_keys(role));
    let mut required = vec![Value::from("kind")];
    let mut rest = Map::new();
    // Closed (no other keys) only where the options are: `deny_unknown_fields`.
    let mut closed = false;
    if let Value::Object(mut o) = options {
        closed = o.get("additionalProperties") == Some(&Value::Bool(false));
        if let Some(Value::Object(p)) = o.remove("properties") {
            for (k, v) in p {
                props.entry(k).or_insert(v);
            }
        }
        if let Some(Value::Array(r)) = o.remove("required") {
            required.extend(r);
        }
        for key in ["allOf", "oneOf", "anyOf"] {
            if let Some(v) = o.remove(key) {
                rest.insert(key.into(), v);
            }
        }
    }
    let mut schema = json!({
        "type": "object",
        "title": format!("{name} ({role})"),
        "properties": props,
        "required": required,
    });
    if closed && rest.is_empty() {
        schema["additionalProperties"] = Value::Bool(false);
    } else if !rest.is_empty() {
        // Options made of alternatives (serde `flatten` or `untagged`): their keys cannot be
        // closed here without repeating them, so only the alternatives' own checks apply.
        schema.as_object_mut().expect("object").extend(rest);
    }
    schema
}

/// `[config]`: the settings a topology file may give.
fn config_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "description": "settings of the run",
        "properties": {
            "ackers": { "type": "integer", "minimum": 0, "default": 1,
                "description": "acker tasks; 0 turns acking off (spout tuples are acked at once)" },
            "message_timeout": { "$ref": "#/definitions/duration", "default": "30s",
                "description": "a tuple tree not complete by then fails (timed out) and is replayed" },
            "max_spout_pending": {
                "anyOf": [ { "type": "integer", "minimum": 0 }, { "const": "none" } ],
                "default": 1000,
                "description": "un-acked messages per spout task before the spout is paused; \"none\": no limit" },
            "worker_threads": { "type": "integer", "minimum": 1,
                "description": "threads running the tasks (default: the number of cores)" },
            "queue_capacity": { "type": "integer", "minimum": 1, "default": 8192,
                "description": "tuples per task queue" },
            "batch_size": { "type": "integer", "minimum": 1, "default": 256,
                "description": "tuples per transfer batch between tasks" },
            "default_parallelism": { "type": "integer", "minimum": 1, "default": 1,
                "description": "tasks of a component without `parallelism`" },
            "guarantee": { "enum": ["at_least_once", "exactly_once"], "default": "at_least_once",
                "description": "at_least_once: acking and replays, state checkpointed (a replay may count twice); exactly_once: aligned checkpoints, each input affects state once (every spout must rewind)" },
            "checkpoint_interval": { "$ref": "#/definitions/duration", "default": "1s",
                "description": "how often a checkpoint is started (exactly_once, or a component keeps state); \"0s\": none" },
            "checkpoint_dir": { "type": "string",
                "description": "where checkpoints are kept (default: $TOPO_STATE_DIR/<topology>/checkpoints, TOPO_STATE_DIR defaulting to .topo/state)" },
            "checkpoints_retained": { "type": "integer", "minimum": 1, "default": 3,
                "description": "completed checkpoints kept; older ones are deleted" },
            "max_parallelism": { "type": "integer", "minimum": 1, "maximum": 65535, "default": 128,
                "description": "key groups keyed state is split into: the most tasks a stateful component can be rescaled to from a checkpoint" },
            "alignment_buffer": { "type": "integer", "minimum": 0, "default": 1000000,
                "description": "tuples a task holds back while aligning a checkpoint's barriers; past it the checkpoint is declined" },
        },
    })
}

/// One entry of a bolt's `inputs`.
fn input_schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["from"],
        "properties": {
            "from": { "type": "string", "description": "the component id emitting the stream" },
            "stream": { "type": "string", "default": "default", "description": "the stream subscribed to" },
            "grouping": { "$ref": "#/definitions/grouping" },
        },
    })
}

/// A grouping: a name, or a table for the groupings that take fields.
fn grouping_schema() -> Value {
    json!({
        "description": "which task(s) of the bolt receive each tuple (default: shuffle)",
        "oneOf": [
            { "enum": ["shuffle", "all", "global", "none", "local_or_shuffle", "direct"] },
            { "type": "object", "additionalProperties": false, "required": ["fields"],
              "properties": { "fields": { "type": "array", "items": { "type": "string" }, "minItems": 1,
                  "description": "one task per key: a stable hash of these fields" } } },
            { "type": "object", "additionalProperties": false, "required": ["partial_key"],
              "properties": { "partial_key": { "type": "array", "items": { "type": "string" }, "minItems": 1,
                  "description": "the less loaded of two tasks per key" } } },
            { "type": "object", "additionalProperties": false, "required": ["direct"],
              "properties": { "direct": { "const": true } } },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::load::{COMPONENT_KEYS, CONFIG_KEYS, GROUPING_NAMES, INPUT_KEYS, TOP_KEYS};

    fn keys(v: &Value) -> Vec<&str> {
        let mut k: Vec<&str> = v
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .collect();
        k.sort_unstable();
        k
    }

    fn sorted<'a>(k: &[&'a str]) -> Vec<&'a str> {
        let mut k = k.to_vec();
        k.sort_unstable();
        k
    }

    // Guards that the schema names exactly the keys the loader reads, so neither can drift.
    #[test]
    fn the_schema_has_the_loaders_keys() {
        let s = topology_schema(&Registry::new());
        assert_eq!(keys(&s["properties"]), sorted(TOP_KEYS));
        assert_eq!(
            keys(&s["properties"]["config"]["properties"]),
            sorted(CONFIG_KEYS)
        );
        assert_eq!(
            keys(&s["definitions"]["input"]["properties"]),
            sorted(INPUT_KEYS)
        );
        let bolt_keys = component_keys(Role::Bolt);
        let mut component: Vec<&str> = bolt_keys
            .keys()
            .map(String::as_str)
            .chain(["kind"])
            .collect();
        component.sort_unstable();
        assert_eq!(component, sorted(COMPONENT_KEYS));
        let grouping = &s["definitions"]["grouping"]["oneOf"];
        let mut names: Vec<&str> = grouping[0]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for table in grouping.as_array().unwrap()[1..].iter() {
            names.extend(keys(&table["properties"]));
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names, sorted(GROUPING_NAMES));
    }

    /// Options of a test kind.
    #[derive(Clone, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
    #[serde(default, deny_unknown_fields)]
    struct Opts {
        /// how long to wait
        #[serde(with = "humantime_serde_like")]
        #[schemars(schema_with = "duration")]
        wait: std::time::Duration,
        /// the mode
        mode: Mode,
        /// where, if anywhere
        place: Option<String>,
        /// the names
        names: Vec<String>,
    }

    /// Durations as humantime text, for the test options.
    mod humantime_serde_like {
        pub fn serialize<S: serde::Serializer>(
            d: &std::time::Duration,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            s.serialize_str(&humantime::format_duration(*d).to_string())
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<std::time::Duration, D::Error> {
            let s = <String as serde::Deserialize>::deserialize(d)?;
            humantime::parse_duration(&s).map_err(serde::de::Error::custom)
        }
    }

    #[derive(Clone, Copy, Default, serde::Deserialize, serde::Serialize, schemars::JsonSchema)]
    #[serde(rename_all = "lowercase")]
    enum Mode {
        /// fast
        #[default]
        Fast,
        /// slow
        Slow,
    }

    impl Default for Opts {
        fn default() -> Self {
            Opts {
                wait: std::time::Duration::from_millis(250),
                mode: Mode::Fast,
                place: None,
                names: vec!["a".into()],
            }
        }
    }

    impl crate::registry::FromOptions for Opts {
        type Options = Opts;
        fn from_options(o: Opts) -> Result<Self, String> {
            Ok(o)
        }
    }

    // Guards that option docs come from the struct: names in order, types, defaults, docs.
    #[test]
    fn option_docs_read_the_options_struct() {
        let kind = crate::registry::Kind::spout("t", "test", |_: &Opts| NoSpout);
        let docs: Vec<(&str, &str, &str, bool, &str)> = kind
            .options()
            .iter()
            .map(|o| {
                (
                    o.name.as_str(),
                    o.ty.as_str(),
                    o.default.as_str(),
                    o.required,
                    o.doc.as_str(),
                )
            })
            .collect();
        assert_eq!(
            docs,
            [
                ("wait", "duration", "\"250ms\"", false, "how long to wait"),
                ("mode", "\"fast\" | \"slow\"", "\"fast\"", false, "the mode"),
                ("place", "string", "", false, "where, if anywhere"),
                ("names", "array of string", "[\"a\"]", false, "the names"),
            ]
        );
    }

    struct NoSpout;
    impl topo_runtime::Spout for NoSpout {
        type MessageId = ();
        fn declare_outputs(&self, out: &mut topo_runtime::OutputDeclarer) {
            out.declare(["x"]);
        }
        async fn next_tuple(
            &mut self,
            _out: &mut topo_runtime::SpoutCollector<'_, ()>,
        ) -> Result<(), topo_runtime::BoxError> {
            Ok(())
        }
    }
}
