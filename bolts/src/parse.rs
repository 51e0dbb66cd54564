//! `parse`: turns a raw text (or UTF-8 bytes) field into typed fields.
//!
//! ```text
//!                      ┌─────────── parse ───────────┐
//! (line) ──execute──►  │ json / csv / tsv / clf /    │──► default: the parsed fields (anchored)
//!                      │ combined / syslog / kv      │──► error:   (reason, raw)
//!                      └─────────────────────────────┘
//! ```
//!
//! Malformed input is never dropped silently: it goes to the `error` stream as
//! `(reason, raw)` — `reason` says what is wrong (`invalid JSON at line 1 column 7: expected
//! value`, `CSV record has 3 columns, expected 4 (columns: a, b, c, d)`, ...) and `raw` is the
//! input field as received (null when the field is missing). The input is then acked: replaying
//! a malformed record would not fix it. A missing or non-text input field goes to `error` too.
//!
//! Output fields of each [`Format`]:
//!
//! | format     | output fields (in order)                                                      |
//! |------------|-------------------------------------------------------------------------------|
//! | `json`     | [`ParseOptions::fields`]: top-level keys (or dotted paths `a.b`); absent → null |
//! | `csv`/`tsv`| [`ParseOptions::fields`]: the columns (by position, or by header name)         |
//! | `kv`       | [`ParseOptions::fields`]: the keys; absent → null                              |
//! | `clf`      | `host, ident, user, timestamp, method, path, protocol, status, bytes`          |
//! | `combined` | the `clf` fields, then `referer, agent`                                        |
//! | `syslog`   | `facility, severity, timestamp, hostname, appname, procid, msgid, message`     |
//!
//! Typing:
//! - `json`: values keep their JSON type (numbers → int or float, booleans, null); nested
//!   objects and arrays become [`Value::Map`] and [`Value::List`].
//! - `csv`, `tsv`, `kv`: every value is text (CSV quoting is honoured; a `kv` value in double
//!   quotes loses them).
//! - `clf`, `combined`: `-` becomes null; `status` and `bytes` are ints; `timestamp` is RFC 3339
//!   text (`2000-10-10T13:55:36-07:00`); the request line `"GET /a HTTP/1.0"` is split into
//!   `method`, `path`, `protocol` (a missing part is null).
//! - `syslog`: RFC 5424 and RFC 3164 are detected (parsed with `syslog_loose`); `facility` and
//!   `severity` are their names (`daemon`, `err`), `timestamp` is RFC 3339 text (a 3164 timestamp
//!   has no year or zone: the current year and UTC are assumed), `procid` is an int when numeric;
//!   absent parts are null.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{BasicBolt, BasicCollector, BoxError, OutputDeclarer, Tuple, Value, values};

/// The name of the stream rejected input goes to, with fields [`ERROR_FIELDS`].
pub use topo_runtime::ERROR_STREAM;

/// The fields of the [`ERROR_STREAM`]: why the input was rejected, and the input as received.
pub const ERROR_FIELDS: [&str; 2] = ["reason", "raw"];

/// The output fields of the `clf` format.
pub const CLF_FIELDS: [&str; 9] = [
    "host",
    "ident",
    "user",
    "timestamp",
    "method",
    "path",
    "protocol",
    "status",
    "bytes",
];

/// The output fields of the `combined` format.
pub const COMBINED_FIELDS: [&str; 11] = [
    "host",
    "ident",
    "user",
    "timestamp",
    "method",
    "path",
    "protocol",
    "status",
    "bytes",
    "referer",
    "agent",
];

/// The output fields of the `syslog` format.
pub const SYSLOG_FIELDS: [&str; 8] = [
    "facility",
    "severity",
    "timestamp",
    "hostname",
    "appname",
    "procid",
    "msgid",
    "message",
];

/// The format the input text is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per input; [`ParseOptions::fields`] picks the keys.
    Json,
    /// One comma-separated record per input (RFC 4180 quoting).
    Csv,
    /// One tab-separated record per input.
    Tsv,
    /// Common log format: `host ident user [timestamp] "request" status bytes`.
    Clf,
    /// Combined log format: common log format plus `"referer" "agent"`.
    Combined,
    /// A syslog line, RFC 5424 or RFC 3164 (detected).
    Syslog,
    /// `key=value` pairs; [`ParseOptions::fields`] picks the keys.
    Kv,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Clf => "clf",
            Format::Combined => "combined",
            Format::Syslog => "syslog",
            Format::Kv => "kv",
        }
    }
}

/// Options of the `parse` bolt.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParseOptions {
    /// The input field holding the raw text (a string, or bytes holding UTF-8). Default `line`.
    #[serde(default = "default_field")]
    pub field: String,
    /// The format of the text. Required.
    pub format: Format,
    /// The output fields, in order. For `json` and `kv`: the keys to extract (required). For
    /// `csv`/`tsv`: the column names (required); without `header` the record must have exactly
    /// these columns, with `header` these are the header columns to output. Must be empty for
    /// `clf`, `combined` and `syslog`, whose fields are fixed (see the module docs).
    #[serde(default)]
    pub fields: Vec<String>,
    /// `csv`/`tsv` only: the first input line this task sees is a header naming the columns; it
    /// is consumed (nothing is emitted for it) and `fields` picks columns by name.
    #[serde(default)]
    pub header: bool,
    /// `kv` only: the text between pairs; default: any run of whitespace.
    #[serde(default)]
    pub delimiter: Option<String>,
    /// `kv` only: the text between a key and its value; default `=`.
    #[serde(default = "default_separator")]
    pub separator: String,
}

fn default_field() -> String {
    "line".into()
}

fn default_separator() -> String {
    "=".into()
}

impl ParseOptions {
    /// Options reading `format` from the `line` field, with no output fields chosen.
    pub fn new(format: Format) -> ParseOptions {
        ParseOptions {
            field: default_field(),
            format,
            fields: Vec::new(),
            header: false,
            delimiter: None,
            separator: default_separator(),
        }
    }
}

/// The compiled parser of one format.
#[derive(Clone, Debug)]
enum Parser {
    Json,
    Csv { delimiter: u8 },
    Clf { re: Regex, combined: bool },
    Syslog,
    Kv,
}

/// The `parse` bolt: see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Parse {
    opts: ParseOptions,
    parser: Parser,
    /// The output field names.
    outputs: Vec<String>,
    /// `csv`/`tsv` with `header`: the header seen, or why it cannot serve (a requested column
    /// is missing: every later record is rejected with that reason); `None` until seen.
    header_map: Option<Result<Header, String>>,
}

/// A CSV/TSV header: how many columns a record has, and where each output field is.
#[derive(Clone, Debug)]
struct Header {
    columns: usize,
    picks: Vec<usize>,
}

/// A quoted string in a log line, with backslash escapes.
const QUOTED: &str = r#""((?:[^"\\]|\\.)*)""#;

impl Parse {
    /// A parse bolt with these options, or the reason they are invalid (naming the option):
    /// `json`, `kv`, `csv` and `tsv` need `fields` (no empty or duplicate names); `clf`,
    /// `combined` and `syslog` take no `fields`; `header` is for `csv`/`tsv` only; `delimiter`
    /// and a non-default `separator` are for `kv` only and must not be empty.
    pub fn new(opts: ParseOptions) -> Result<Parse, String> {
        let format = opts.format;
        let name = format.name();
        let fixed: Option<&[&str]> = match format {
            Format::Clf => Some(&CLF_FIELDS),
            Format::Combined => Some(&COMBINED_FIELDS),
            Format::Syslog => Some(&SYSLOG_FIELDS),
            _ => None,
        };
        if opts.field.is_empty() {
            return Err("option `field` must not be empty".into());
        }
        let outputs: Vec<String> = match fixed {
            Some(fixed) => {
                if !opts.fields.is_empty() {
                    return Err(format!(
                        "option `fields` is not allowed with format `{name}`: its output fields \
                         are fixed ({})",
                        fixed.join(", ")
                    ));
                }
                fixed.iter().map(|f| f.to_string()).collect()
            }
            None => {
                if opts.fields.is_empty() {
                    return Err(match format {
                        Format::Csv | Format::Tsv if opts.header => format!(
                            "format `{name}` with `header = true` needs option `fields`: the \
                             header columns to output"
                        ),
                        Format::Csv | Format::Tsv => format!(
                            "format `{name}` needs option `fields` (the column names) or \
                             `header = true` with `fields` naming the columns to output"
                        ),
                        _ => format!("format `{name}` needs option `fields`: the keys to extract"),
                    });
                }
                for (i, f) in opts.fields.iter().enumerate() {
                    if f.is_empty() {
                        return Err("option `fields` has an empty name".into());
                    }
                    if opts.fields[..i].contains(f) {
                        return Err(format!("option `fields` names `{f}` twice"));
                    }
                }
                opts.fields.clone()
            }
        };
        if opts.header && !matches!(format, Format::Csv | Format::Tsv) {
            return Err(format!(
                "option `header` is for formats `csv` and `tsv`, not `{name}`"
            ));
        }
        if format != Format::Kv {
            if opts.delimiter.is_some() {
                return Err(format!(
                    "option `delimiter` is for format `kv`, not `{name}`"
                ));
            }
            if opts.separator != "=" {
                return Err(format!(
                    "option `separator` is for format `kv`, not `{name}`"
                ));
            }
        }
        if opts.delimiter.as_deref() == Some("") {
            return Err("option `delimiter` must not be empty".into());
        }
        if opts.separator.is_empty() {
            return Err("option `separator` must not be empty".into());
        }
        let parser = match format {
            Format::Json => Parser::Json,
            Format::Csv => Parser::Csv { delimiter: b',' },
            Format::Tsv => Parser::Csv { delimiter: b'\t' },
            Format::Clf | Format::Combined => {
                let combined = format == Format::Combined;
                let mut re = format!(r"^(\S+) (\S+) (\S+) \[([^\]]+)\] {QUOTED} (\d{{3}}) (\d+|-)");
                if combined {
                    re.push_str(&format!(" {QUOTED} {QUOTED}"));
                }
                re.push_str(r"\s*$");
                let re = Regex::new(&re).map_err(|e| e.to_string())?;
                Parser::Clf { re, combined }
            }
            Format::Syslog => Parser::Syslog,
            Format::Kv => Parser::Kv,
        };
        Ok(Parse {
            opts,
            parser,
            outputs,
            header_map: None,
        })
    }

    /// The output fields of the `default` stream, in order.
    pub fn output_fields(&self) -> &[String] {
        &self.outputs
    }

    /// Parses one text; `Ok(None)` when the text was consumed without output (a CSV header).
    fn parse(&mut self, text: &str) -> Result<Option<Vec<Value>>, String> {
        match &self.parser {
            Parser::Json => self.parse_json(text).map(Some),
            Parser::Csv { delimiter } => {
                let delimiter = *delimiter;
                self.parse_csv(text, delimiter)
            }
            Parser::Clf { re, combined } => parse_clf(re, *combined, text).map(Some),
            Parser::Syslog => parse_syslog(text).map(Some),
            Parser::Kv => self.parse_kv(text).map(Some),
        }
    }

    fn parse_json(&self, text: &str) -> Result<Vec<Value>, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            let msg = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let msg = msg.strip_suffix(&suffix).unwrap_or(&msg);
            format!(
                "invalid JSON at line {} column {}: {msg}",
                e.line(),
                e.column()
            )
        })?;
        let Value::Map(map) = &value else {
            return Err(format!(
                "JSON value is {}, expected an object",
                article(value.type_name())
            ));
        };
        Ok(self
            .outputs
            .iter()
            .map(|f| json_lookup(map, f).cloned().unwrap_or(Value::Null))
            .collect())
    }

    fn parse_csv(&mut self, text: &str, delimiter: u8) -> Result<Option<Vec<Value>>, String> {
        let kind = if delimiter == b',' { "CSV" } else { "TSV" };
        let text = text.strip_suffix('\n').unwrap_or(text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(delimiter)
            .buffer_capacity(text.len().clamp(64, 8 * 1024))
            .from_reader(text.as_bytes());
        let mut records = reader.records();
        let record = match records.next() {
            None => return Err(format!("empty {kind} record")),
            Some(Err(e)) => return Err(format!("invalid {kind} record: {e}")),
            Some(Ok(r)) => r,
        };
        if records.next().is_some() {
            return Err(format!(
                "input holds more than one {kind} record (expected one record per line)"
            ));
        }
        if self.opts.header {
            match &self.header_map {
                None => {
                    let header: Vec<&str> = record.iter().collect();
                    let picks = self
                        .outputs
                        .iter()
                        .map(|f| {
                            header.iter().position(|h| h == f).ok_or_else(|| {
                                format!(
                                    "{kind} header has no column `{f}` (columns: {})",
                                    header.join(", ")
                                )
                            })
                        })
                        .collect::<Result<Vec<usize>, String>>();
                    let columns = header.len();
                    let seen = picks.map(|picks| Header { columns, picks });
                    let result = match &seen {
                        Ok(_) => Ok(None),
                        Err(e) => Err(e.clone()),
                    };
                    self.header_map = Some(seen);
                    return result;
                }
                Some(Err(e)) => return Err(e.clone()),
                Some(Ok(header)) => {
                    if record.len() != header.columns {
                        return Err(format!(
                            "{kind} record has {} columns, expected {} (as in the header)",
                            record.len(),
                            header.columns
                        ));
                    }
                    let picked = header.picks.iter().map(|&i| Value::from(&record[i]));
                    return Ok(Some(picked.collect()));
                }
            }
        }
        if record.len() != self.outputs.len() {
            return Err(format!(
                "{kind} record has {} columns, expected {} (columns: {})",
                record.len(),
                self.outputs.len(),
                self.outputs.join(", ")
            ));
        }
        Ok(Some(record.iter().map(Value::from).collect()))
    }

    fn parse_kv(&self, text: &str) -> Result<Vec<Value>, String> {
        let sep = self.opts.separator.as_str();
        let pairs: Vec<&str> = match self.opts.delimiter.as_deref() {
            None => text.split_whitespace().collect(),
            Some(d) => text
                .split(d)
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect(),
        };
        if pairs.is_empty() {
            return Err("no key/value pairs".into());
        }
        let mut found: Vec<Option<&str>> = vec![None; self.outputs.len()];
        for pair in pairs {
            let Some((key, value)) = pair.split_once(sep) else {
                return Err(format!("not a key{sep}value pair: `{pair}`"));
            };
            if key.is_empty() {
                return Err(format!("empty key in pair `{pair}`"));
            }
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if let Some(i) = self.outputs.iter().position(|f| f == key) {
                found[i] = Some(value);
            }
        }
        Ok(found.into_iter().map(Value::from).collect())
    }
}

fn article(type_name: &str) -> String {
    match type_name {
        "int" => format!("an {type_name}"),
        "null" => "null".into(),
        _ => format!("a {type_name}"),
    }
}

/// A top-level key, or else a dotted path into nested objects.
fn json_lookup<'a>(map: &'a BTreeMap<SmolStr, Value>, field: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(field) {
        return Some(v);
    }
    let mut parts = field.split('.');
    let mut cur = map.get(parts.next()?)?;
    for part in parts {
        cur = cur.as_map()?.get(part)?;
    }
    Some(cur)
}

/// `-` (the log formats' "no value") as null, anything else as text.
fn dash_null(s: &str) -> Value {
    if s == "-" {
        Value::Null
    } else {
        Value::from(s)
    }
}

fn parse_clf(re: &Regex, combined: bool, text: &str) -> Result<Vec<Value>, String> {
    let name = if combined {
        "not a combined log format line (expected `host ident user [time] \"request\" status \
         bytes \"referer\" \"agent\"`)"
    } else {
        "not a common log format line (expected `host ident user [time] \"request\" status bytes`)"
    };
    let caps = re.captures(text).ok_or_else(|| name.to_string())?;
    let timestamp = DateTime::parse_from_str(&caps[4], "%d/%b/%Y:%H:%M:%S %z")
        .map_err(|e| format!("invalid timestamp `{}`: {e}", &caps[4]))?;
    let request = &caps[5];
    let mut parts = request.split_whitespace();
    let (method, path, protocol) = if request == "-" {
        (None, None, None)
    } else {
        let method = parts.next();
        let path = parts.next();
        let protocol = parts.next();
        if parts.next().is_some() {
            return Err(format!("invalid request line `{request}`"));
        }
        (method, path, protocol)
    };
    let status: i64 = caps[6]
        .parse()
        .map_err(|_| format!("invalid status `{}`", &caps[6]))?;
    let bytes = match &caps[7] {
        "-" => Value::Null,
        b => Value::Int(b.parse().map_err(|_| format!("invalid byte count `{b}`"))?),
    };
    let mut out = vec![
        dash_null(&caps[1]),
        dash_null(&caps[2]),
        dash_null(&caps[3]),
        Value::from(timestamp.to_rfc3339()),
        Value::from(method),
        Value::from(path),
        Value::from(protocol),
        Value::Int(status),
        bytes,
    ];
    if combined {
        out.push(dash_null(&caps[8]));
        out.push(dash_null(&caps[9]));
    }
    Ok(out)
}

fn parse_syslog(text: &str) -> Result<Vec<Value>, String> {
    use syslog_loose::{ProcId, Variant};
    let year = Utc::now().year();
    let msg =
        syslog_loose::parse_message_with_year_exact_tz(text, |_| year, Some(Utc), Variant::Either)
            .map_err(|_| "not a syslog line (neither RFC 5424 nor RFC 3164)".to_string())?;
    if msg.facility.is_none() && msg.timestamp.is_none() {
        return Err("not a syslog line: no <priority> and no timestamp".into());
    }
    let procid = match msg.procid {
        None => Value::Null,
        Some(ProcId::PID(p)) => Value::from(p),
        Some(ProcId::Name(n)) => Value::from(n),
    };
    Ok(vec![
        Value::from(msg.facility.map(|f| f.as_str())),
        Value::from(msg.severity.map(|s| s.as_str())),
        Value::from(msg.timestamp.map(|t| t.to_rfc3339())),
        Value::from(msg.hostname),
        Value::from(msg.appname),
        procid,
        Value::from(msg.msgid),
        Value::from(msg.msg),
    ])
}

impl BasicBolt for Parse {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(self.outputs.iter().map(String::as_str));
        out.declare_stream(ERROR_STREAM, ERROR_FIELDS);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let raw = match input.field(&self.opts.field) {
            Ok(v) => v,
            Err(e) => {
                out.emit_to(ERROR_STREAM, values![e.to_string(), Value::Null]);
                return Ok(());
            }
        };
        let text = match raw {
            Value::Str(s) => s.as_str(),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => s,
                Err(e) => {
                    let reason = format!("field `{}` is not valid UTF-8: {e}", self.opts.field);
                    out.emit_to(ERROR_STREAM, values![reason, raw.clone()]);
                    return Ok(());
                }
            },
            other => {
                let reason = format!(
                    "field `{}` is {}, expected a string or bytes",
                    self.opts.field,
                    article(other.type_name())
                );
                out.emit_to(ERROR_STREAM, values![reason, raw.clone()]);
                return Ok(());
            }
        };
        match self.parse(text) {
            Ok(Some(vals)) => out.emit(vals.into_iter().collect()),
            Ok(None) => {}
            Err(reason) => out.emit_to(ERROR_STREAM, values![reason, raw.clone()]),
        }
        Ok(())
    }
}

/// The `parse` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::basic_bolt(
            "parse",
            "raw text to fields: json, csv, tsv, clf, combined, syslog, kv; malformed input to the `error` stream (reason, raw)",
            Parse::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components parse`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.parsed]
kind = "parse"
format = "combined"       # fields: host ident user time method path protocol status bytes referer agent
field = "line"
inputs = [{ from = "access_log" }]

# malformed lines, with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "parsed", stream = "error" }]
"#;

impl FromOptions for Parse {
    type Options = ParseOptions;
    fn from_options(options: ParseOptions) -> Result<Self, String> {
        Parse::new(options)
    }
}
