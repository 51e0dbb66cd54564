//! Field values: what a tuple carries.
//!
//! [`Value`] is a small, cheap-to-clone dynamic value. Short strings (up to 23 bytes, which covers
//! almost every word, key and identifier) are stored inline with no allocation; longer strings,
//! byte buffers, lists and maps are reference counted, so cloning a tuple for fan-out never copies
//! payload bytes.
//!
//! [`Values`] is the field list of one tuple; up to four fields live inline in the tuple itself.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;

/// The field list of one tuple, in the order of the stream's declared fields.
///
/// Up to four values are stored inline (no heap allocation); build one with [`values!`](crate::values).
pub type Values = smallvec::SmallVec<[Value; 4]>;

/// One field value of a tuple.
///
/// Serializes to the natural JSON shape (`null`, `true`, `42`, `1.5`, `"text"`, `[..]`, `{..}`);
/// bytes serialize as a byte string (an array of numbers in JSON).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    /// No value.
    #[default]
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// UTF-8 text; inline up to 23 bytes, shared beyond.
    Str(SmolStr),
    /// Raw bytes, shared (cloning never copies the buffer). Boxed so that every [`Value`] is
    /// 24 bytes: tuples stay small to move, and most tuples carry no bytes.
    Bytes(Box<Bytes>),
    /// An ordered list of values, shared.
    List(Arc<Vec<Value>>),
    /// A map from text keys to values, shared, ordered by key.
    Map(Arc<BTreeMap<SmolStr, Value>>),
}

impl Value {
    /// The name of this value's type, for error messages (`"int"`, `"string"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text, if this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// The integer, if this is an int.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number as a float, if this is an int or a float.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The boolean, if this is a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The bytes, if this is bytes or a string (its UTF-8 bytes).
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Str(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The elements, if this is a list.
    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The entries, if this is a map.
    pub fn as_map(&self) -> Option<&BTreeMap<SmolStr, Value>> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// A hash of this value that is the same in every process and every run, used by the fields
    /// and partial-key groupings so that one key always reaches the same task.
    ///
    /// Equal values hash equally; an int and a float of the same number do not (they are not equal).
    pub fn stable_hash(&self, seed: u64) -> u64 {
        use xxhash_rust::xxh3::xxh3_64_with_seed as h;
        match self {
            Value::Null => h(b"\0null", seed),
            Value::Bool(b) => h(&[1, *b as u8], seed),
            Value::Int(i) => h(&i.to_le_bytes(), seed ^ 0x02),
            Value::Float(f) => {
                // One hash for both zeros and for every NaN, as they compare/behave alike for keys.
                let bits = if *f == 0.0 {
                    0
                } else if f.is_nan() {
                    u64::MAX
                } else {
                    f.to_bits()
                };
                h(&bits.to_le_bytes(), seed ^ 0x03)
            }
            Value::Str(s) => h(s.as_bytes(), seed ^ 0x04),
            Value::Bytes(b) => h(b.as_ref(), seed ^ 0x05),
            Value::List(l) => l
                .iter()
                .fold(h(b"\x06list", seed), |acc, v| v.stable_hash(acc)),
            Value::Map(m) => m.iter().fold(h(b"\x07map", seed), |acc, (k, v)| {
                v.stable_hash(h(k.as_bytes(), acc))
            }),
        }
    }
}

impl fmt::Display for Value {
    /// Human-readable text: strings unquoted at top level, containers as JSON-like text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Str(s) => f.write_str(s),
            Value::Bytes(b) => write!(f, "{b:?}"),
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}", Nested(v))?;
                }
                f.write_str("]")
            }
            Value::Map(m) => {
                f.write_str("{")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{:?}: {}", k.as_str(), Nested(v))?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Displays a value inside a container: strings quoted, the rest as at top level.
struct Nested<'a>(&'a Value);

impl fmt::Display for Nested<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Value::Str(s) => write!(f, "{:?}", s.as_str()),
            other => write!(f, "{other}"),
        }
    }
}

macro_rules! from_impls {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl From<$t> for Value {
            fn from($v: $t) -> Self { $e }
        })*
    };
}

from_impls! {
    bool => |v| Value::Bool(v),
    i64 => |v| Value::Int(v),
    i32 => |v| Value::Int(v.into()),
    u32 => |v| Value::Int(v.into()),
    u16 => |v| Value::Int(v.into()),
    u8 => |v| Value::Int(v.into()),
    f64 => |v| Value::Float(v),
    f32 => |v| Value::Float(v.into()),
    &str => |v| Value::Str(SmolStr::new(v)),
    String => |v| Value::Str(SmolStr::from(v)),
    &String => |v| Value::Str(SmolStr::new(v)),
    SmolStr => |v| Value::Str(v),
    &SmolStr => |v| Value::Str(v.clone()),
    Bytes => |v| Value::Bytes(Box::new(v)),
    Vec<u8> => |v| Value::Bytes(Box::new(Bytes::from(v))),
    Vec<Value> => |v| Value::List(Arc::new(v)),
    BTreeMap<SmolStr, Value> => |v| Value::Map(Arc::new(v)),
}

impl From<u64> for Value {
    /// Values above `i64::MAX` become floats (the nearest one), as in JSON decoders.
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}

impl From<usize> for Value {
    /// Values above `i64::MAX` become floats (the nearest one).
    fn from(v: usize) -> Self {
        Value::from(v as u64)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    /// `None` becomes [`Value::Null`].
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// Builds a [`Values`] list, converting each argument with `Into<Value>`.
///
/// ```
/// use topo_runtime::{values, Value};
/// let v = values!["word", 3, 1.5, true];
/// assert_eq!(v[0], Value::from("word"));
/// assert_eq!(v.len(), 4);
/// ```
#[macro_export]
macro_rules! values {
    () => { $crate::Values::new() };
    ($($v:expr),+ $(,)?) => {{
        let mut vals = $crate::Values::new();
        $( vals.push($crate::Value::from($v)); )+
        vals
    }};
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(t) => s.serialize_str(t),
            Value::Bytes(b) => s.serialize_bytes(b.as_ref()),
            Value::List(l) => {
                let mut seq = s.serialize_seq(Some(l.len()))?;
                for v in l.iter() {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(m) => {
                let mut map = s.serialize_map(Some(m.len()))?;
                for (k, v) in m.iter() {
                    map.serialize_entry(k.as_str(), v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a null, bool, number, string, bytes, list or map")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(SmolStr::new(v)))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(SmolStr::from(v)))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(Box::new(Bytes::copy_from_slice(v))))
    }
    fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Value, E> {
        Ok(Value::Bytes(Box::new(Bytes::from(v))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::List(Arc::new(out)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<SmolStr, Value>()? {
            if out.insert(k.clone(), v).is_some() {
                return Err(de::Error::custom(format_args!("duplicate map key `{k}`")));
            }
        }
        Ok(Value::Map(Arc::new(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_inline_and_values_stay_small() {
        let v = Value::from("internationalization");
        match &v {
            Value::Str(s) => assert!(!s.is_heap_allocated()),
            other => panic!("expected a string, got {other:?}"),
        }
        assert!(
            std::mem::size_of::<Value>() <= 40,
            "{}",
            std::mem::size_of::<Value>()
        );
    }

    #[test]
    fn stable_hash_is_deterministic_and_separates_types() {
        assert_eq!(
            Value::from("a").stable_hash(7),
            Value::from("a").stable_hash(7)
        );
        assert_ne!(
            Value::from("a").stable_hash(7),
            Value::from("b").stable_hash(7)
        );
        assert_ne!(
            Value::Int(1).stable_hash(0),
            Value::Float(1.0).stable_hash(0)
        );
        assert_eq!(
            Value::Float(0.0).stable_hash(0),
            Value::Float(-0.0).stable_hash(0)
        );
        // xxh3 is a specified hash: a fixed figure guards against an accidental change between
        // releases, which would move keys between tasks of processes running different versions.
        assert_eq!(
            Value::from("the").stable_hash(0),
            xxhash_rust::xxh3::xxh3_64_with_seed(b"the", 4)
        );
    }

    #[test]
    fn values_macro_converts_each_argument() {
        let v = values!["x", 1, 2.5, false, Option::<i64>::None];
        assert_eq!(
            v.as_slice(),
            &[
                Value::from("x"),
                Value::Int(1),
                Value::Float(2.5),
                Value::Bool(false),
                Value::Null
            ]
        );
    }

    #[test]
    fn display_is_readable() {
        let list = Value::from(vec![Value::from("a"), Value::Int(2)]);
        assert_eq!(list.to_string(), r#"["a", 2]"#);
        assert_eq!(Value::from("hi").to_string(), "hi");
        assert_eq!(Value::Null.to_string(), "null");
    }
}
