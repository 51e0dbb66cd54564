//! The built-in component kinds, registered by name for topology files — one explicit list.

use serde::Deserialize;
use topo_bolts::{
    Count, CountOptions, Filter, FilterOptions, Map, MapOptions, Parse, ParseOptions, Split,
    SplitOptions, Stdout, StdoutOptions,
};
use topo_dsl::registry::{OptionDoc, Registry};
use topo_spouts::{GeneratorOptions, GeneratorSpout};

mod sinks_out;

/// A registry holding every built-in kind. Add your own kinds to it and pass it to
/// [`cli::main_with`](crate::cli::main_with).
pub fn builtin_registry() -> Registry {
    let mut r = Registry::new();
    r.register_spout::<GeneratorOptions, GeneratorSpout>(
        "generator",
        "synthetic sentences, deterministic from a seed; replays identical tuples",
        vec![
            OptionDoc::new(
                "sentences",
                "list of strings",
                "Storm's five example sentences",
                "the sentences to draw from",
            ),
            OptionDoc::new(
                "count",
                "integer",
                "",
                "messages to emit over all tasks; unset = without end",
            ),
            OptionDoc::new(
                "seed",
                "integer",
                "0",
                "seed of the choice of sentence per message",
            ),
            OptionDoc::new("field", "string", "\"sentence\"", "the output field"),
        ],
        |o: &GeneratorOptions| GeneratorSpout::new(o.clone()),
    );
    r.register_basic_bolt::<Checked<Split, SplitOptions>, Split>(
        "split",
        "one tuple per token of a text field (whitespace-separated or regex matches), optional lowercase and stop words",
        vec![
            OptionDoc::new(
                "field",
                "string",
                "\"sentence\"",
                "the input field holding the text",
            ),
            OptionDoc::new(
                "output",
                "string",
                "\"word\"",
                "the output field of each token",
            ),
            OptionDoc::new("lowercase", "bool", "false", "lowercase each token"),
            OptionDoc::new("pattern", "regex", "", "matches the tokens (e.g. \"[\\\\w']+\"); unset = split on whitespace"),
            OptionDoc::new("stop_words", "list of strings", "[]", "tokens to drop (after lowercasing)"),
        ],
        |c: &Checked<Split, SplitOptions>| c.0.clone(),
    );
    r.register_basic_bolt::<CountOptions, Count>(
        "count",
        "running count per key; emits (key, count) on every update",
        vec![OptionDoc::new(
            "field",
            "string",
            "\"word\"",
            "the field counted; also the first output field",
        )],
        |o: &CountOptions| Count::new(o.clone()),
    );
    r.register_basic_bolt::<CheckedParse, Parse>(
        "parse",
        "raw text to fields: json, csv, tsv, clf, combined, syslog, kv; malformed input to the `error` stream (reason, raw)",
        vec![
            OptionDoc::new("format", "json | csv | tsv | clf | combined | syslog | kv", "", "the input format (required)"),
            OptionDoc::new("field", "string", "\"line\"", "the input field holding the raw text or bytes"),
            OptionDoc::new("fields", "list of strings", "", "output fields: keys (json, dotted paths reach into objects), columns (csv, tsv) or keys (kv); clf, combined and syslog have fixed fields"),
            OptionDoc::new("header", "bool", "false", "csv/tsv: the first line names the columns"),
            OptionDoc::new("delimiter", "string", "whitespace", "kv: between pairs"),
            OptionDoc::new("separator", "string", "\"=\"", "kv: between key and value"),
        ],
        |p: &CheckedParse| p.0.clone(),
    );
    r.register_basic_bolt::<Checked<Filter, FilterOptions>, Filter>(
        "filter",
        "keeps tuples for which a CEL expression is true (e.g. status >= 500 && path.startsWith(\"/api\")); errors to the `error` stream",
        vec![
            OptionDoc::new("expression", "CEL expression", "", "evaluated per tuple with each input field as a variable (required)"),
            OptionDoc::new("fields", "list of strings", "", "the input fields passed through, in order (required)"),
        ],
        |c: &Checked<Filter, FilterOptions>| c.0.clone(),
    );
    r.register_basic_bolt::<Checked<Map, MapOptions>, Map>(
        "map",
        "computes output fields from CEL expressions over the input fields; errors to the `error` stream",
        vec![OptionDoc::new(
            "fields",
            "list of { name = \"expression\" }",
            "",
            "the output fields in order, each with its expression (required)",
        )],
        |c: &Checked<Map, MapOptions>| c.0.clone(),
    );
    r.register_basic_bolt::<StdoutOptions, Stdout>(
        "stdout",
        "prints each tuple as one line (JSON or field=value) and acks it once written",
        vec![
            OptionDoc::new(
                "format",
                "json | pretty",
                "json",
                "JSON object per line, or field=value pairs",
            ),
            OptionDoc::new(
                "show_source",
                "bool",
                "false",
                "prefix each line with the source component and stream",
            ),
        ],
        |o: &StdoutOptions| Stdout::new(o.clone()),
    );
    sinks_out::register(&mut r);
    r
}

/// `parse` options checked when the topology is loaded, so a bad combination is reported with
/// its place in the file rather than when a task starts.
#[derive(Clone, Deserialize)]
#[serde(try_from = "ParseOptions")]
struct CheckedParse(Parse);

impl TryFrom<ParseOptions> for CheckedParse {
    type Error = String;

    fn try_from(options: ParseOptions) -> Result<Self, String> {
        Parse::new(options).map(CheckedParse)
    }
}

/// A bolt built from its options while the topology is loaded (expressions compiled once, errors
/// reported with their place in the file); each task gets a clone.
#[derive(Clone)]
struct Checked<B, O>(B, std::marker::PhantomData<fn() -> O>);

impl<'de, B, O> Deserialize<'de> for Checked<B, O>
where
    O: Deserialize<'de>,
    B: TryFromOptions<O>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let options = O::deserialize(d)?;
        B::try_from_options(options)
            .map(|b| Checked(b, std::marker::PhantomData))
            .map_err(serde::de::Error::custom)
    }
}

/// Builds a bolt from its options, or says what is wrong with them.
trait TryFromOptions<O>: Sized {
    fn try_from_options(options: O) -> Result<Self, String>;
}

impl TryFromOptions<SplitOptions> for Split {
    fn try_from_options(options: SplitOptions) -> Result<Self, String> {
        Split::new(options)
    }
}

impl TryFromOptions<FilterOptions> for Filter {
    fn try_from_options(options: FilterOptions) -> Result<Self, String> {
        Filter::new(options)
    }
}

impl TryFromOptions<MapOptions> for Map {
    fn try_from_options(options: MapOptions) -> Result<Self, String> {
        Map::new(options)
    }
}
