//! How the sources turn bytes into a [`Value`]: the line encodings of `socket`, `stdin` and
//! `file` ([`Encoding`]), the payload formats of `kafka`, `kinesis` and `mqtt`
//! ([`PayloadFormat`]), and the reason given when bytes cannot be decoded (the `reason` of an
//! `error` tuple, whose `raw` is [`raw_prefix`] of the bytes).
//!
//! ```text
//!  bytes ──► utf8 / lossy: Str (U+FFFD for bad bytes)      ──► the value field (+ `fields`
//!        ├─► strict: Str, or "not UTF-8" ───────────────────┐    picked from a JSON object)
//!        ├─► bytes: Bytes                                    ├─► error: (reason, raw)
//!        └─► json: the document, or "not valid JSON" / ─────┘
//!                  "expected an object (for `fields`)"
//! ```

use std::fmt;

use bytes::Bytes;
use schemars::JsonSchema;
use serde::Deserialize;
use smol_str::SmolStr;
use topo_runtime::Value;

/// How many bytes of undecodable input the `raw` field of an `error` tuple keeps.
pub const RAW_PREFIX: usize = 1024;

/// The first [`RAW_PREFIX`] bytes of `bytes`, as text (invalid UTF-8 replaced): the `raw` field
/// of an `error` tuple.
pub fn raw_prefix(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(RAW_PREFIX)]).into_owned()
}

/// How a line's bytes become a value (`socket`, `stdin`, `file`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// A string; invalid UTF-8 is replaced by U+FFFD.
    #[default]
    Lossy,
    /// A string; a line that is not UTF-8 goes to the `error` stream.
    Strict,
    /// The raw bytes, as a Bytes value.
    Bytes,
}

/// How a payload becomes a value (`kafka`, `kinesis`, `mqtt`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// Text; invalid UTF-8 replaced by U+FFFD.
    #[default]
    Utf8,
    /// Text; a payload that is not UTF-8 goes to the `error` stream.
    Strict,
    /// The raw bytes, as a Bytes value (also written `raw`).
    #[serde(alias = "raw")]
    Bytes,
    /// A parsed JSON document; `fields` pick keys of an object.
    Json,
}

impl From<Encoding> for PayloadFormat {
    fn from(e: Encoding) -> PayloadFormat {
        match e {
            Encoding::Lossy => PayloadFormat::Utf8,
            Encoding::Strict => PayloadFormat::Strict,
            Encoding::Bytes => PayloadFormat::Bytes,
        }
    }
}

/// Why bytes could not be decoded. Displayed as the end of a sentence whose subject the
/// connector names: `format!("record {id} {e}")`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayloadError {
    /// `strict`: not UTF-8; the valid prefix's length.
    NotUtf8 {
        /// Bytes before the first invalid one.
        valid_up_to: usize,
    },
    /// `json`: not a JSON document; the parser's message.
    NotJson(String),
    /// `json` with `fields`: a document that is not an object; its JSON type.
    NotObject(&'static str),
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadError::NotUtf8 { valid_up_to } => {
                write!(f, "is not UTF-8 (invalid byte at offset {valid_up_to})")
            }
            PayloadError::NotJson(e) => write!(f, "is not valid JSON: {e}"),
            PayloadError::NotObject(t) => {
                write!(f, "is a JSON {t}, expected an object (for `fields`)")
            }
        }
    }
}

impl PayloadError {
    /// The reason of a line that is not UTF-8, as the line sources word it: `invalid UTF-8
    /// after byte N` (the other errors as displayed).
    pub fn line_reason(&self) -> String {
        match self {
            PayloadError::NotUtf8 { valid_up_to } => {
                format!("invalid UTF-8 after byte {valid_up_to}")
            }
            other => other.to_string(),
        }
    }
}

/// Bytes a value can be made of: borrowed ones are copied for a Bytes value, shared ones
/// ([`Bytes`]) are not.
pub trait PayloadBytes {
    /// The bytes.
    fn as_slice(&self) -> &[u8];
    /// The bytes as a [`Bytes`] value.
    fn into_bytes(self) -> Bytes;
}

impl PayloadBytes for &[u8] {
    fn as_slice(&self) -> &[u8] {
        self
    }
    fn into_bytes(self) -> Bytes {
        Bytes::copy_from_slice(self)
    }
}

impl PayloadBytes for Bytes {
    fn as_slice(&self) -> &[u8] {
        self
    }
    fn into_bytes(self) -> Bytes {
        self
    }
}

impl PayloadBytes for &Bytes {
    fn as_slice(&self) -> &[u8] {
        self
    }
    fn into_bytes(self) -> Bytes {
        self.clone()
    }
}

/// Decodes `data` as `format` says: the value, and the values of `fields` picked from it (a
/// JSON object's keys, `Null` when absent; empty when `fields` is).
pub fn decode_payload<P: PayloadBytes, F: AsRef<str>>(
    format: PayloadFormat,
    data: P,
    fields: &[F],
) -> Result<(Value, Vec<Value>), PayloadError> {
    let value = match format {
        // Valid text (nearly all) takes the faster check; the lossy pass only repairs bad bytes.
        PayloadFormat::Utf8 => match std::str::from_utf8(data.as_slice()) {
            Ok(s) => Value::Str(SmolStr::new(s)),
            Err(_) => Value::Str(SmolStr::new(String::from_utf8_lossy(data.as_slice()))),
        },
        PayloadFormat::Strict => match std::str::from_utf8(data.as_slice()) {
            Ok(s) => Value::Str(SmolStr::new(s)),
            Err(e) => {
                return Err(PayloadError::NotUtf8 {
                    valid_up_to: e.valid_up_to(),
                });
            }
        },
        PayloadFormat::Bytes => Value::from(data.into_bytes()),
        PayloadFormat::Json => serde_json::from_slice::<Value>(data.as_slice())
            .map_err(|e| PayloadError::NotJson(e.to_string()))?,
    };
    if fields.is_empty() {
        return Ok((value, Vec::new()));
    }
    let Some(map) = value.as_map() else {
        return Err(PayloadError::NotObject(value.type_name()));
    };
    let picked = fields
        .iter()
        .map(|f| map.get(f.as_ref()).cloned().unwrap_or(Value::Null))
        .collect();
    Ok((value, picked))
}

/// Decodes a line as `encoding` says (never JSON).
pub fn decode_line<P: PayloadBytes>(encoding: Encoding, line: P) -> Result<Value, PayloadError> {
    decode_payload::<P, &str>(encoding.into(), line, &[]).map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_decodes_or_says_why_not() {
        let bad: &[u8] = b"ab\xffc";
        assert_eq!(
            decode_payload::<_, &str>(PayloadFormat::Utf8, bad, &[])
                .unwrap()
                .0,
            Value::from("ab\u{fffd}c")
        );
        let e = decode_payload::<_, &str>(PayloadFormat::Strict, bad, &[]).unwrap_err();
        assert_eq!(e.to_string(), "is not UTF-8 (invalid byte at offset 2)");
        assert_eq!(e.line_reason(), "invalid UTF-8 after byte 2");
        assert_eq!(
            decode_line(Encoding::Bytes, bad).unwrap(),
            Value::from(Bytes::from_static(b"ab\xffc"))
        );
        let (doc, picked) =
            decode_payload(PayloadFormat::Json, &b"{\"a\":1}"[..], &["a", "b"]).unwrap();
        assert!(doc.as_map().is_some());
        assert_eq!(picked, vec![Value::Int(1), Value::Null]);
        let e = decode_payload(PayloadFormat::Json, &b"[1]"[..], &["a"]).unwrap_err();
        assert!(e.to_string().contains("expected an object"), "{e}");
        let e = decode_payload::<_, &str>(PayloadFormat::Json, &b"{"[..], &[]).unwrap_err();
        assert!(e.to_string().starts_with("is not valid JSON"), "{e}");
    }
}
