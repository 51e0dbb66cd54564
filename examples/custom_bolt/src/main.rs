//! A team's own bolt, usable from topology files with the same `topo` command line.
//!
//! User story: we have our own processing step (here `shout`: upper-cases a word and appends a
//! suffix) and want to run it from TOML next to the built-in kinds, with `topo run`, `validate`,
//! `graph` and `components` working as usual.
//!
//! This is a crate of its own, as a user's would be: it depends on `topo` and `serde` only.
//! Run it from the workspace root:
//! ```sh
//! cargo run -p topo-example-custom-bolt -- components shout
//! cargo run -p topo-example-custom-bolt -- run examples/custom_bolt/topology.toml --until-idle
//! ```

use serde::Deserialize;
use topo::registry::OptionDoc;
use topo::{BasicBolt, BasicCollector, BoxError, OutputDeclarer, Tuple, values};

/// Options of `shout`, as written in the topology file; unknown keys are errors.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ShoutOptions {
    /// Appended to every word.
    suffix: String,
}

impl Default for ShoutOptions {
    fn default() -> Self {
        ShoutOptions { suffix: "!".into() }
    }
}

/// Upper-cases the `word` field and appends the suffix.
struct Shout {
    suffix: String,
}

impl BasicBolt for Shout {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["word"]);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let word = input.str_field("word")?;
        out.emit(values![format!("{}{}", word.to_uppercase(), self.suffix)]);
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    let mut registry = topo::builtin_registry();
    registry.register_basic_bolt::<ShoutOptions, Shout>(
        "shout",
        "upper-cases a word and appends a suffix",
        vec![OptionDoc::new(
            "suffix",
            "string",
            "\"!\"",
            "appended to every word",
        )],
        |o: &ShoutOptions| Shout {
            suffix: o.suffix.clone(),
        },
    );
    topo::cli::main_with(registry)
}
