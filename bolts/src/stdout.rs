//! `stdout`: prints every tuple it receives, one line each, and acks it once the line is written.
//!
//! ```text
//! json:   {"word":"cow","count":3}
//! pretty: word=cow count=3
//! ```
//!
//! The line is written (and flushed) before the input is acked, so a tuple acked by this sink has
//! reached standard output. A failed write (a closed pipe) fails the input, so it is replayed.

use std::io::Write;

use serde::{Deserialize, Serialize};
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{BasicBolt, BasicCollector, BoxError, Tuple};

/// How the `stdout` sink writes a tuple.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum StdoutFormat {
    /// One JSON object per line, keyed by field name.
    #[default]
    Json,
    /// `field=value` pairs separated by spaces.
    Pretty,
}

/// Options of the `stdout` sink.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StdoutOptions {
    /// `json` (default) or `pretty`.
    pub format: StdoutFormat,
    /// Prefix each line with the source component and stream (`count:default `).
    pub show_source: bool,
}

/// The `stdout` sink.
pub struct Stdout {
    opts: StdoutOptions,
    line: String,
}

impl Stdout {
    /// A sink with these options.
    pub fn new(opts: StdoutOptions) -> Stdout {
        Stdout {
            opts,
            line: String::new(),
        }
    }

    /// The line printed for `input` (without the newline).
    pub fn format(&mut self, input: &Tuple) -> Result<&str, BoxError> {
        use std::fmt::Write as _;
        self.line.clear();
        if self.opts.show_source {
            let _ = write!(
                self.line,
                "{}:{} ",
                input.source_component(),
                input.stream()
            );
        }
        match self.opts.format {
            StdoutFormat::Json => {
                let map: serde_json::Map<String, serde_json::Value> = input
                    .fields()
                    .iter()
                    .zip(input.values())
                    .map(|(f, v)| Ok((f.to_string(), serde_json::to_value(v)?)))
                    .collect::<Result<_, serde_json::Error>>()?;
                self.line
                    .push_str(&serde_json::Value::Object(map).to_string());
            }
            StdoutFormat::Pretty => {
                for (i, (f, v)) in input.fields().iter().zip(input.values()).enumerate() {
                    if i > 0 {
                        self.line.push(' ');
                    }
                    let _ = write!(self.line, "{f}={v}");
                }
            }
        }
        Ok(&self.line)
    }
}

impl BasicBolt for Stdout {
    fn execute(&mut self, input: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let line = self.format(input)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
        Ok(())
    }
}

/// The `stdout` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::basic_bolt(
            "stdout",
            "prints each tuple as one line (JSON or field=value) and acks it once written",
            |o: &StdoutOptions| Stdout::new(o.clone()),
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components stdout`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.print]
kind = "stdout"
format = "json"           # or "pretty": field=value pairs
show_source = true
inputs = [{ from = "shaped" }, { from = "parsed", stream = "error" }]
"#;

impl FromOptions for StdoutOptions {
    type Options = StdoutOptions;
    fn from_options(options: StdoutOptions) -> Result<Self, String> {
        Ok(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use topo_runtime::{StreamSchema, TaskId, values};

    fn tuple() -> Tuple {
        let s = StreamSchema::intern("count", "default", &["word".into(), "count".into()], false);
        Tuple::new(s, TaskId(0), values!["cow", 3])
    }

    #[test]
    fn json_and_pretty_lines() {
        let mut json = Stdout::new(StdoutOptions::default());
        assert_eq!(
            json.format(&tuple()).unwrap(),
            r#"{"count":3,"word":"cow"}"#
        );
        let mut pretty = Stdout::new(StdoutOptions {
            format: StdoutFormat::Pretty,
            show_source: true,
        });
        assert_eq!(
            pretty.format(&tuple()).unwrap(),
            "count:default word=cow count=3"
        );
    }
}
