//! Records as lines of text: one JSON object per line or CSV rows, with the fields resolved once
//! per input stream. Shared by the sinks that write files and objects (`file`, `s3`).
//!
//! ```text
//!  tuple ──RecordEncoder::encode──► buf: {"word":"a","count":3}\n   (jsonl)
//!                                        a,3\n                         (csv; header(): word,count\n)
//!        └─ a missing field, bytes that are not text ──► Err(reason): the record goes to `error`
//! ```

use std::io::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use topo_runtime::{StreamSchema, Tuple, Value};

use crate::connector::sink::encode_json;

/// How the `file` and `s3` sinks encode records.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// One JSON object per line, keyed by field name (`.jsonl`).
    #[default]
    Jsonl,
    /// Comma-separated values with a header line per file (`.csv`).
    Csv,
}

impl FileFormat {
    /// The file name extension of the format, without its dot.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Jsonl => "jsonl",
            FileFormat::Csv => "csv",
        }
    }
}

/// Which values of a tuple are written, resolved once per input stream.
#[derive(Debug)]
struct Resolved {
    schema: &'static StreamSchema,
    /// Index in the tuple of each written column, or why this stream's records cannot be written.
    indices: Result<Vec<usize>, String>,
}

/// Encodes tuples as records of a [`FileFormat`]: the written fields are fixed by the options
/// (`fields`), or are every field of each record (for CSV: the fields of the first record, which
/// later records must match).
#[derive(Debug)]
pub struct RecordEncoder {
    format: FileFormat,
    /// The columns are fixed by the options.
    fixed: bool,
    /// The written columns when fixed (`fields`, or a CSV file's first record).
    columns: Option<Vec<SmolStr>>,
    /// The CSV header line of `columns` (empty for JSON lines).
    header: Arc<Vec<u8>>,
    resolved: Option<Resolved>,
    /// Scratch space for one CSV cell.
    scratch: Vec<u8>,
    /// Quotes CSV cells (RFC 4180).
    csv: CsvOut,
}

impl RecordEncoder {
    /// An encoder writing `fields` (empty: every field) in `format`.
    pub fn new(format: FileFormat, fields: &[String]) -> RecordEncoder {
        let mut e = RecordEncoder {
            format,
            fixed: !fields.is_empty(),
            columns: None,
            header: Arc::new(Vec::new()),
            resolved: None,
            scratch: Vec::new(),
            csv: CsvOut::new(),
        };
        if !fields.is_empty() {
            e.set_columns(fields.iter().map(SmolStr::new).collect());
        }
        e
    }

    /// The CSV header line (with its newline) of the columns known so far; empty for JSON
    /// lines, and for CSV before the first record when the columns are not fixed.
    pub fn header(&self) -> &Arc<Vec<u8>> {
        &self.header
    }

    fn set_columns(&mut self, columns: Vec<SmolStr>) {
        if self.format == FileFormat::Csv {
            let mut header = Vec::new();
            let mut out = CsvOut::new();
            for (i, c) in columns.iter().enumerate() {
                out.cell(&mut header, i == 0, c.as_bytes());
            }
            out.end(&mut header);
            self.header = Arc::new(header);
        }
        self.columns = Some(columns);
    }

    /// The column indices for this input's stream, cached per stream.
    fn resolve(&mut self, input: &Tuple) -> Result<(), String> {
        let schema = input.schema();
        if self
            .resolved
            .as_ref()
            .is_some_and(|r| std::ptr::eq(r.schema, schema))
        {
            return Ok(());
        }
        if self.columns.is_none() && self.format == FileFormat::Csv {
            self.set_columns(schema.fields().to_vec());
        }
        let indices = match &self.columns {
            None => Ok((0..schema.fields().len()).collect()),
            Some(cols) => {
                let found: Result<Vec<usize>, String> = cols
                    .iter()
                    .map(|c| {
                        schema.index_of(c).ok_or_else(|| {
                            format!(
                                "the record has no field `{c}` (its fields: {}; written: {})",
                                schema.fields().join(", "),
                                cols.join(", ")
                            )
                        })
                    })
                    .collect();
                match found {
                    Ok(_) if !self.fixed && schema.fields().len() != cols.len() => Err(format!(
                        "the record's fields ({}) differ from the file's columns ({})",
                        schema.fields().join(", "),
                        cols.join(", ")
                    )),
                    other => other,
                }
            }
        };
        self.resolved = Some(Resolved { schema, indices });
        Ok(())
    }
    /// Appends `input` as one record (a JSON line, a CSV row) to `buf` and returns its size;
    /// on an error (a missing field, a value that cannot be written) `buf` is left as it was.
    pub fn encode(&mut self, buf: &mut Vec<u8>, input: &Tuple) -> Result<usize, String> {
        self.resolve(input)?;
        let Some(Resolved {
            indices: Ok(indices),
            ..
        }) = &self.resolved
        else {
            return Err(match &self.resolved {
                Some(Resolved {
                    indices: Err(e), ..
                }) => e.clone(),
                _ => "the record's fields could not be resolved".into(),
            });
        };
        let start = buf.len();
        let result = match self.format {
            FileFormat::Jsonl => encode_json(buf, input, Some(indices), self.columns.as_deref()),
            FileFormat::Csv => encode_csv(buf, &mut self.scratch, &mut self.csv, input, indices),
        };
        match result {
            Ok(()) => Ok(buf.len() - start),
            Err(e) => {
                buf.truncate(start);
                Err(e)
            }
        }
    }
}

/// Checks a `fields` option: names not empty, none twice; the error names the option.
pub fn check_fields(fields: &[String]) -> Result<(), String> {
    for (i, f) in fields.iter().enumerate() {
        if f.is_empty() {
            return Err("option `fields` has an empty field name".into());
        }
        if fields[..i].contains(f) {
            return Err(format!("option `fields` names {f:?} twice"));
        }
    }
    Ok(())
}

/// Writes csv straight into a byte buffer, with the `csv-core` writer: `,` between cells, `\n`
/// after each record, a cell quoted only when it needs it (RFC 4180). No allocation per record.
#[derive(Clone, Debug)]
struct CsvOut(csv_core::Writer);

impl CsvOut {
    fn new() -> CsvOut {
        CsvOut(
            csv_core::WriterBuilder::new()
                .terminator(csv_core::Terminator::Any(b'\n'))
                .build(),
        )
    }

    /// Appends one cell; `first` for the first cell of a record.
    fn cell(&mut self, buf: &mut Vec<u8>, first: bool, cell: &[u8]) {
        let start = buf.len();
        // The most it can take: the previous cell's closing quote, a delimiter, two quotes and
        // every byte doubled.
        buf.resize(start + 2 * cell.len() + 4, 0);
        let mut n = 0;
        if !first {
            n += self.0.delimiter(&mut buf[start..]).1;
        }
        n += self.0.field(cell, &mut buf[start + n..]).2;
        buf.truncate(start + n);
    }

    /// Ends the record.
    fn end(&mut self, buf: &mut Vec<u8>) {
        let start = buf.len();
        buf.resize(start + 4, 0);
        let n = self.0.terminator(&mut buf[start..]).1;
        buf.truncate(start + n);
    }
}

/// Appends one CSV row of the values at `indices` (all of it, or nothing on an error).
fn encode_csv(
    buf: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    csv: &mut CsvOut,
    input: &Tuple,
    indices: &[usize],
) -> Result<(), String> {
    let values = input.values();
    let start = buf.len();
    for (k, &i) in indices.iter().enumerate() {
        scratch.clear();
        // Writing to a Vec cannot fail.
        match &values[i] {
            Value::Null => {}
            Value::Bool(b) => scratch.extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Int(n) => {
                let _ = write!(scratch, "{n}");
            }
            Value::Float(x) => {
                let _ = write!(scratch, "{x}");
            }
            Value::Str(s) => scratch.extend_from_slice(s.as_bytes()),
            Value::Bytes(b) => {
                if std::str::from_utf8(b).is_err() {
                    *csv = CsvOut::new();
                    buf.truncate(start);
                    return Err(format!(
                        "field `{}` holds bytes that are not UTF-8 text",
                        input.fields()[i]
                    ));
                }
                scratch.extend_from_slice(b);
            }
            v @ (Value::List(_) | Value::Map(_)) => {
                if let Err(e) = serde_json::to_writer(&mut *scratch, v) {
                    *csv = CsvOut::new();
                    buf.truncate(start);
                    return Err(format!(
                        "field `{}` cannot be written as JSON: {e}",
                        input.fields()[i]
                    ));
                }
            }
        }
        csv.cell(buf, k == 0, scratch);
    }
    csv.end(buf);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting() {
        let mut out = CsvOut::new();
        let mut b = Vec::new();
        out.cell(&mut b, true, b"plain");
        out.cell(&mut b, false, b"a,\"b\"\nc");
        out.cell(&mut b, false, b"");
        out.end(&mut b);
        out.cell(&mut b, true, b"x y");
        out.end(&mut b);
        assert_eq!(b, b"plain,\"a,\"\"b\"\"\nc\",\nx y\n");
    }
}
