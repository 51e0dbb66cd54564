//! The built-in component kinds, registered by name for topology files — one explicit list.

use topo_bolts::{Count, CountOptions, Split, SplitOptions};
use topo_dsl::registry::{OptionDoc, Registry};
use topo_spouts::{GeneratorOptions, GeneratorSpout};

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
    r.register_basic_bolt::<SplitOptions, Split>(
        "split",
        "one tuple per whitespace-separated token of a text field",
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
        ],
        |o: &SplitOptions| Split::new(o.clone()),
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
    r
}
