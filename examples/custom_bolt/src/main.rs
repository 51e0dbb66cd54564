//! A team's own bolt, usable from topology files with the same `topo` command line.
//!
//! User story: we have our own processing step (here `shout`: upper-cases a word and appends a
//! suffix) and want to run it from TOML next to the built-in kinds, with `topo run`, `validate`,
//! `graph`, `components` and `schema` working as usual.
//!
//! A kind is one file to write and one line to register:
//! - the options struct describes itself (`Deserialize` reads it, `Serialize` shows its defaults,
//!   `JsonSchema` turns its doc comments into `topo components shout` and `topo schema`);
//! - [`FromOptions`] checks the options once, when the topology file loads, so a bad value is
//!   reported with its place in the file;
//! - `registry.add(Kind::basic_bolt(..))` in `main` registers it.
//!
//! This is a crate of its own, as a user's would be: it depends on `topo`, `serde` and
//! `schemars` only. Run it from the workspace root:
//! ```sh
//! cargo run -p topo-example-custom-bolt -- components shout
//! cargo run -p topo-example-custom-bolt -- run examples/custom_bolt/topology.toml --until-idle
//! ```

use serde::{Deserialize, Serialize};
use topo::registry::{FromOptions, Kind};
use topo::{BasicBolt, BasicCollector, BoxError, OutputDeclarer, Tuple, values};

/// Options of `shout`, as written in the topology file; unknown keys are errors.
#[derive(Clone, Debug, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
struct ShoutOptions {
    /// appended to every word (at most 8 characters)
    suffix: String,
}

impl Default for ShoutOptions {
    fn default() -> Self {
        ShoutOptions { suffix: "!".into() }
    }
}

/// Upper-cases the `word` field and appends the suffix.
#[derive(Clone)]
struct Shout {
    suffix: String,
}

impl FromOptions for Shout {
    type Options = ShoutOptions;

    fn from_options(options: ShoutOptions) -> Result<Self, String> {
        if options.suffix.chars().count() > 8 {
            return Err(format!(
                "suffix \"{}\" is longer than 8 characters",
                options.suffix
            ));
        }
        Ok(Shout {
            suffix: options.suffix,
        })
    }
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

/// Printed by `topo components shout`.
const EXAMPLE: &str = r#"
[bolts.shout]
kind = "shout"
suffix = "!!"
inputs = [{ from = "split" }]
"#;

fn main() -> std::process::ExitCode {
    let mut registry = topo::builtin_registry();
    registry.add(
        Kind::basic_bolt(
            "shout",
            "upper-cases a word and appends a suffix",
            Shout::clone,
        )
        .with_example(EXAMPLE),
    );
    topo::cli::main_with(registry)
}
