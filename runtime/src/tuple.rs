//! Tuples, the streams they travel on, and the task ids that send and receive them.
//!
//! A [`Tuple`] is a list of [`Values`] plus the [`StreamSchema`] of the stream it was emitted on
//! (source component, stream name, field names). Schemas are interned once per process, so a
//! tuple refers to its schema with a plain pointer: no reference count is touched when a tuple
//! crosses from one thread to another.
//!
//! For acking, a tuple carries its *anchors*: for each spout tuple tree it belongs to, the root id
//! of that tree and this tuple's own random 64-bit id within it (see [`crate::acker`]). Untracked
//! tuples (acking off, or a spout emit without a message id) carry none and cost nothing.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Mutex, OnceLock};

use smallvec::SmallVec;
use smol_str::SmolStr;

use crate::value::{Value, Values};

/// The name of the stream used when a component emits without naming one.
pub const DEFAULT_STREAM: &str = "default";

/// The stream every built-in component sends what it could not handle to: a malformed record,
/// a rejected write, a bad request. Its first field is always `reason` (why, as text); the others
/// carry the input as it came (`raw`, `record`, ...), so nothing is dropped without a trace.
/// Route it like any stream: `inputs = [{ from = "parse", stream = "error" }]`.
pub const ERROR_STREAM: &str = "error";

/// A task's id, unique within a running topology. Tasks of one component have consecutive ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct TaskId(pub u32);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a stream is: which component emits it, its name, its field names, and whether it is a
/// direct stream (the emitter names the receiving task).
///
/// Schemas are interned for the life of the process (one small allocation per distinct
/// declaration, however many topologies are run), so `&'static StreamSchema` is free to copy.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct StreamSchema {
    component: SmolStr,
    stream: SmolStr,
    fields: Box<[SmolStr]>,
    direct: bool,
}

impl StreamSchema {
    /// The interned schema for this declaration.
    pub fn intern(
        component: &str,
        stream: &str,
        fields: &[SmolStr],
        direct: bool,
    ) -> &'static StreamSchema {
        static SCHEMAS: OnceLock<Mutex<HashSet<&'static StreamSchema>>> = OnceLock::new();
        let candidate = StreamSchema {
            component: component.into(),
            stream: stream.into(),
            fields: fields.into(),
            direct,
        };
        // A poisoned lock only means another thread panicked while inserting; the set is intact.
        let mut set = SCHEMAS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = set.get(&candidate) {
            return existing;
        }
        let leaked: &'static StreamSchema = Box::leak(Box::new(candidate));
        set.insert(leaked);
        leaked
    }

    /// The component that emits this stream.
    pub fn component(&self) -> &str {
        &self.component
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The declared field names, in order.
    pub fn fields(&self) -> &[SmolStr] {
        &self.fields
    }

    /// Whether this is a direct stream.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// The position of a field, by name.
    pub fn index_of(&self, field: &str) -> Option<usize> {
        self.fields.iter().position(|f| f == field)
    }
}

/// For each tuple tree this tuple belongs to: (root id, this tuple's id in that tree).
pub(crate) type Anchors = SmallVec<[(u64, u64); 1]>;

/// One tuple: values in the order of its stream's fields, where it came from, and (when acking is
/// on) the trees it belongs to.
///
/// Cloning copies inline values and bumps reference counts of shared ones; it never copies string
/// or byte payloads.
#[derive(Clone)]
pub struct Tuple {
    values: Values,
    schema: &'static StreamSchema,
    source_task: TaskId,
    /// The trees this tuple belongs to; empty when it is not tracked.
    pub(crate) anchors: Anchors,
    /// Receive sequence number inside a full bolt's task, the key of its ack ledger; 0 = untracked.
    pub(crate) seq: u64,
}

/// A field could not be read from a tuple; the message names the field and what the stream has.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldError {
    /// The stream has no field of that name.
    #[error("stream `{stream}` of `{component}` has no field `{field}` (its fields: {})", fields.join(", "))]
    NoSuchField {
        /// The field asked for.
        field: SmolStr,
        /// The emitting component.
        component: SmolStr,
        /// The stream.
        stream: SmolStr,
        /// The fields the stream does declare.
        fields: Vec<SmolStr>,
    },
    /// The field exists but holds another type.
    #[error(
        "field `{field}` of stream `{stream}` of `{component}` is {actual}, expected {expected}"
    )]
    WrongType {
        /// The field.
        field: SmolStr,
        /// The emitting component.
        component: SmolStr,
        /// The stream.
        stream: SmolStr,
        /// The expected type.
        expected: &'static str,
        /// The type found.
        actual: &'static str,
    },
}

impl Tuple {
    /// A tuple on `schema` with `values`, as emitted by `source_task`, not tracked.
    ///
    /// The runtime builds tuples itself when components emit; this constructor is for tests and
    /// harnesses (see [`crate::testing`]).
    pub fn new(schema: &'static StreamSchema, source_task: TaskId, values: Values) -> Tuple {
        Tuple {
            values,
            schema,
            source_task,
            anchors: Anchors::new(),
            seq: 0,
        }
    }

    /// Appends the tuple made of these parts to `buf`, written straight into its spare room: the
    /// values move once, with no whole tuple built on the stack and copied in (the emit path's
    /// per-tuple cost).
    #[inline(always)]
    pub(crate) fn push_new(
        buf: &mut Vec<Tuple>,
        schema: &'static StreamSchema,
        source_task: TaskId,
        values: Values,
        anchors: Anchors,
    ) {
        buf.reserve(1);
        let len = buf.len();
        let slot = buf.spare_capacity_mut()[0].as_mut_ptr();
        // SAFETY: `slot` points into the room reserved above, valid for writes and aligned; every
        // field is written before the length grows to cover it, and nothing reads it before.
        unsafe {
            std::ptr::addr_of_mut!((*slot).values).write(values);
            std::ptr::addr_of_mut!((*slot).schema).write(schema);
            std::ptr::addr_of_mut!((*slot).source_task).write(source_task);
            std::ptr::addr_of_mut!((*slot).anchors).write(anchors);
            std::ptr::addr_of_mut!((*slot).seq).write(0);
            buf.set_len(len + 1);
        }
    }

    /// The values, in field order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The tuple as one [`Value::Map`] of field name to value: the `record` field of an
    /// [`ERROR_STREAM`] tuple, so a rejected input travels whole with its reason.
    pub fn to_record(&self) -> Value {
        let map: std::collections::BTreeMap<SmolStr, Value> = self
            .fields()
            .iter()
            .cloned()
            .zip(self.values.iter().cloned())
            .collect();
        Value::from(map)
    }

    /// Takes the values out of the tuple.
    pub fn into_values(self) -> Values {
        self.values
    }

    /// The value at field position `i`.
    pub fn get(&self, i: usize) -> Option<&Value> {
        self.values.get(i)
    }

    /// The value of the field named `name`, or an error naming the fields the stream has.
    pub fn field(&self, name: &str) -> Result<&Value, FieldError> {
        self.schema
            .index_of(name)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| FieldError::NoSuchField {
                field: name.into(),
                component: self.schema.component.clone(),
                stream: self.schema.stream.clone(),
                fields: self.schema.fields.to_vec(),
            })
    }

    /// The text of the field named `name`; an error if it is missing or not a string.
    pub fn str_field(&self, name: &str) -> Result<&str, FieldError> {
        let v = self.field(name)?;
        v.as_str().ok_or_else(|| self.wrong_type(name, "string", v))
    }

    /// The integer in the field named `name`; an error if it is missing or not an int.
    pub fn int_field(&self, name: &str) -> Result<i64, FieldError> {
        let v = self.field(name)?;
        v.as_i64().ok_or_else(|| self.wrong_type(name, "int", v))
    }

    /// The number in the field named `name` as a float (ints convert); an error otherwise.
    pub fn float_field(&self, name: &str) -> Result<f64, FieldError> {
        let v = self.field(name)?;
        v.as_f64().ok_or_else(|| self.wrong_type(name, "float", v))
    }

    fn wrong_type(&self, name: &str, expected: &'static str, v: &Value) -> FieldError {
        FieldError::WrongType {
            field: name.into(),
            component: self.schema.component.clone(),
            stream: self.schema.stream.clone(),
            expected,
            actual: v.type_name(),
        }
    }

    /// The declared field names of this tuple's stream.
    pub fn fields(&self) -> &[SmolStr] {
        self.schema.fields()
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when the tuple has no values.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The stream this tuple was emitted on.
    pub fn stream(&self) -> &str {
        self.schema.stream()
    }

    /// The component that emitted this tuple.
    pub fn source_component(&self) -> &str {
        self.schema.component()
    }

    /// The task that emitted this tuple.
    pub fn source_task(&self) -> TaskId {
        self.source_task
    }

    /// The schema of this tuple's stream.
    pub fn schema(&self) -> &'static StreamSchema {
        self.schema
    }

    /// Whether this tuple belongs to at least one tracked tree (so acking it matters).
    pub fn is_tracked(&self) -> bool {
        !self.anchors.is_empty()
    }
}

/// A field named once and found by position: the name is looked up the first time a tuple of a
/// stream comes, and that stream's position is kept for the tuples after it (streams are
/// interned, so telling them apart is one pointer compare). Components keep one per field they
/// read, instead of a name lookup per tuple.
///
/// ```
/// # use topo_runtime::{Field, StreamSchema, TaskId, Tuple, values};
/// let schema = StreamSchema::intern("words", "default", &["word".into(), "n".into()], false);
/// let mut n = Field::new("n");
/// let t = Tuple::new(schema, TaskId(0), values!["a", 2]);
/// assert_eq!(n.get(&t).unwrap().as_i64(), Some(2));
/// ```
#[derive(Clone, Debug)]
pub struct Field {
    name: SmolStr,
    /// The last stream seen and the field's position in it (`None`: it has no such field).
    seen: Option<(&'static StreamSchema, Option<usize>)>,
}

impl Field {
    /// The field named `name`.
    pub fn new(name: impl Into<SmolStr>) -> Field {
        Field {
            name: name.into(),
            seen: None,
        }
    }

    /// The field's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its position in `schema`, if the stream has it.
    #[inline]
    pub fn index_in(&mut self, schema: &'static StreamSchema) -> Option<usize> {
        match self.seen {
            Some((s, i)) if std::ptr::eq(s, schema) => i,
            _ => {
                let i = schema.index_of(&self.name);
                self.seen = Some((schema, i));
                i
            }
        }
    }

    /// Its value in `tuple`; the error of [`Tuple::field`] if the stream has no such field.
    #[inline]
    pub fn get<'t>(&mut self, tuple: &'t Tuple) -> Result<&'t Value, FieldError> {
        match self
            .index_in(tuple.schema)
            .and_then(|i| tuple.values.get(i))
        {
            Some(v) => Ok(v),
            None => tuple.field(&self.name),
        }
    }

    /// Its text in `tuple`; the error of [`Tuple::str_field`] if it is missing or not a string.
    #[inline]
    pub fn str<'t>(&mut self, tuple: &'t Tuple) -> Result<&'t str, FieldError> {
        let v = self.get(tuple)?;
        v.as_str()
            .ok_or_else(|| tuple.wrong_type(&self.name, "string", v))
    }
}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for (name, v) in self.schema.fields.iter().zip(self.values.iter()) {
            m.entry(&name.as_str(), v);
        }
        m.finish()?;
        write!(
            f,
            " from {}:{} task {}",
            self.schema.component, self.schema.stream, self.source_task
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;

    #[test]
    fn schemas_are_interned() {
        let a = StreamSchema::intern("split", "default", &["word".into()], false);
        let b = StreamSchema::intern("split", "default", &["word".into()], false);
        let c = StreamSchema::intern("split", "other", &["word".into()], false);
        assert!(std::ptr::eq(a, b));
        assert!(!std::ptr::eq(a, c));
    }

    #[test]
    fn fields_by_name_and_index_with_clear_errors() {
        let s = StreamSchema::intern("c", "default", &["word".into(), "n".into()], false);
        let t = Tuple::new(s, TaskId(3), values!["hi", 2]);
        assert_eq!(t.str_field("word").unwrap(), "hi");
        assert_eq!(t.int_field("n").unwrap(), 2);
        assert_eq!(t.get(1), Some(&Value::Int(2)));
        assert_eq!(
            t.field("count").unwrap_err().to_string(),
            "stream `default` of `c` has no field `count` (its fields: word, n)"
        );
        assert_eq!(
            t.int_field("word").unwrap_err().to_string(),
            "field `word` of stream `default` of `c` is string, expected int"
        );
        let mut n = Field::new("n");
        let mut missing = Field::new("count");
        assert_eq!(n.get(&t), Ok(&Value::Int(2)));
        assert_eq!(missing.get(&t), Err(t.field("count").unwrap_err()));
        let other = StreamSchema::intern("c", "other", &["n".into()], false);
        let u = Tuple::new(other, TaskId(3), values![5]);
        assert_eq!(
            n.get(&u),
            Ok(&Value::Int(5)),
            "another stream: found by name again"
        );
        assert_eq!(n.get(&t), Ok(&Value::Int(2)));
        assert_eq!(
            Field::new("word").str(&u).unwrap_err().to_string(),
            "stream `other` of `c` has no field `word` (its fields: n)"
        );
        assert_eq!(
            format!("{t:?}"),
            r#"{"word": Str("hi"), "n": Int(2)} from c:default task 3"#
        );
    }
}
