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

    /// The [`stable_hash`](Value::stable_hash) of a [`Value::Str`] holding `s`, without building
    /// one (keyed state hashes its string keys so, at every snapshot).
    #[inline]
    pub fn str_stable_hash(s: &str, seed: u64) -> u64 {
        xxhash_rust::xxh3::xxh3_64_with_seed(s.as_bytes(), seed ^ 0x04)
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
            Value::Str(s) => Value::str_stable_hash(s, seed),
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

/// The stored form of [`Value`]: a tagged encoding that non-self-describing formats such as
/// postcard (the checkpoint format) can read back. [`Value`]'s own `Deserialize` asks the format
/// what comes next (`deserialize_any`), which only self-describing formats (JSON) can answer.
///
/// Each value is written as an enum variant — `Null`, `Bool`, `Int`, `Float`, `Str`, `Bytes`,
/// `List` or `Map`, in that order (postcard writes the variant's index) — with its payload;
/// lists and maps nest the same form. Use it on a field with
/// `#[serde(with = "topo_runtime::value::stored")]`, on a [`Values`] with
/// `#[serde(with = "topo_runtime::value::stored::values")]`, on a `Vec<Value>` with
/// `#[serde(with = "topo_runtime::value::stored::vec")]`, or wrap a value in [`StoredValue`].
///
/// ```
/// use topo_runtime::{Value, value::StoredValue};
/// let v = Value::from(vec![Value::from("a"), Value::Int(2), Value::Null]);
/// let bytes = postcard::to_stdvec(&StoredValue(v.clone())).unwrap();
/// let back: StoredValue = postcard::from_bytes(&bytes).unwrap();
/// assert_eq!(back.0, v);
/// ```
pub mod stored {
    use super::*;

    /// The borrowed form written: variant names and order are the stored format.
    #[derive(Serialize)]
    #[serde(rename = "Value")]
    enum Ref<'a> {
        Null,
        Bool(bool),
        Int(i64),
        Float(f64),
        Str(&'a str),
        Bytes(#[serde(serialize_with = "as_bytes")] &'a [u8]),
        List(#[serde(serialize_with = "list")] &'a [Value]),
        Map(#[serde(serialize_with = "map")] &'a BTreeMap<SmolStr, Value>),
    }

    /// The owned form read back; must mirror [`Ref`].
    #[derive(Deserialize)]
    #[serde(rename = "Value")]
    enum Owned {
        Null,
        Bool(bool),
        Int(i64),
        Float(f64),
        Str(SmolStr),
        Bytes(#[serde(deserialize_with = "byte_buf")] Vec<u8>),
        List(Vec<StoredValue>),
        Map(BTreeMap<SmolStr, StoredValue>),
    }

    fn as_bytes<S: Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    fn list<S: Serializer>(l: &&[Value], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(l.iter().map(Stored))
    }

    fn map<S: Serializer>(m: &&BTreeMap<SmolStr, Value>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(m.iter().map(|(k, v)| (k.as_str(), Stored(v))))
    }

    fn byte_buf<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }
        d.deserialize_byte_buf(V)
    }

    /// A borrowed value written in the stored form.
    struct Stored<'a>(&'a Value);

    impl Serialize for Stored<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, s)
        }
    }

    /// Writes `v` in the stored form.
    pub fn serialize<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Value::Null => Ref::Null,
            Value::Bool(b) => Ref::Bool(*b),
            Value::Int(i) => Ref::Int(*i),
            Value::Float(f) => Ref::Float(*f),
            Value::Str(t) => Ref::Str(t),
            Value::Bytes(b) => Ref::Bytes(b.as_ref()),
            Value::List(l) => Ref::List(l),
            Value::Map(m) => Ref::Map(m),
        }
        .serialize(s)
    }

    /// Reads a value written by [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        Ok(match Owned::deserialize(d)? {
            Owned::Null => Value::Null,
            Owned::Bool(b) => Value::Bool(b),
            Owned::Int(i) => Value::Int(i),
            Owned::Float(f) => Value::Float(f),
            Owned::Str(t) => Value::Str(t),
            Owned::Bytes(b) => Value::Bytes(Box::new(Bytes::from(b))),
            Owned::List(l) => Value::List(Arc::new(l.into_iter().map(|v| v.0).collect())),
            Owned::Map(m) => Value::Map(Arc::new(m.into_iter().map(|(k, v)| (k, v.0)).collect())),
        })
    }

    /// [`Values`] (a tuple's fields) in the stored form: a sequence of stored values.
    pub mod values {
        use super::*;

        /// Writes the values.
        pub fn serialize<S: Serializer>(v: &Values, s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(Stored))
        }

        /// Reads values written by [`serialize`].
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Values, D::Error> {
            let v: Vec<StoredValue> = Vec::deserialize(d)?;
            Ok(v.into_iter().map(|v| v.0).collect())
        }
    }

    /// A `Vec<Value>` in the stored form: a sequence of stored values.
    pub mod vec {
        use super::*;

        /// Writes the values.
        pub fn serialize<S: Serializer>(v: &[Value], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(Stored))
        }

        /// Reads values written by [`serialize`].
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
            let v: Vec<StoredValue> = Vec::deserialize(d)?;
            Ok(v.into_iter().map(|v| v.0).collect())
        }
    }
}

/// A [`Value`] that serializes in the [`stored`] form (readable by postcard): for a value in a
/// container (`Vec<StoredValue>`, a map's keys or values) where `#[serde(with)]` cannot reach.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredValue(#[serde(with = "stored")] pub Value);

impl From<Value> for StoredValue {
    fn from(v: Value) -> Self {
        StoredValue(v)
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
    fn stored_values_round_trip_through_postcard() {
        let mut m = BTreeMap::new();
        m.insert(
            SmolStr::new("k"),
            Value::from(vec![Value::Int(-3), Value::Null]),
        );
        m.insert(SmolStr::new("b"), Value::from(vec![0u8, 255, 7]));
        let all = [
            Value::Null,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Float(-1.5),
            Value::Float(f64::INFINITY),
            Value::from("short"),
            Value::from("a string longer than twenty-three bytes, on the heap"),
            Value::from(Vec::<u8>::new()),
            Value::from(vec![
                Value::from("x"),
                Value::from(vec![Value::Bool(false)]),
            ]),
            Value::Map(Arc::new(m)),
        ];
        for v in &all {
            let bytes = postcard::to_stdvec(&StoredValue(v.clone())).expect("encode");
            let back: StoredValue = postcard::from_bytes(&bytes).expect("decode");
            assert_eq!(&back.0, v);
        }
        // NaN survives (compared by bits: NaN != NaN).
        let bytes = postcard::to_stdvec(&StoredValue(Value::Float(f64::NAN))).expect("encode");
        let back: StoredValue = postcard::from_bytes(&bytes).expect("decode");
        assert!(back.0.as_f64().is_some_and(f64::is_nan));

        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Row {
            #[serde(with = "stored::values")]
            fields: Values,
            #[serde(with = "stored::vec")]
            list: Vec<Value>,
            #[serde(with = "stored")]
            one: Value,
        }
        let row = Row {
            fields: values!["a", 1, 2.5, Option::<i64>::None, true],
            list: all.to_vec(),
            one: Value::from("one"),
        };
        let bytes = postcard::to_stdvec(&row).expect("encode");
        assert_eq!(postcard::from_bytes::<Row>(&bytes).expect("decode"), row);
        // Truncated input is an error, not a panic.
        assert!(postcard::from_bytes::<Row>(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn display_is_readable() {
        let list = Value::from(vec![Value::from("a"), Value::Int(2)]);
        assert_eq!(list.to_string(), r#"["a", 2]"#);
        assert_eq!(Value::from("hi").to_string(), "hi");
        assert_eq!(Value::Null.to_string(), "null");
    }
}
