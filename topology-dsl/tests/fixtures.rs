//! Topology files: every invalid fixture's exact messages, valid fixtures, `${VAR}`, `--set`,
//! and a TOML topology matching the same topology built in Rust.
//!
//! Regenerate the `.expected` files with `BLESS=1 cargo test -p topo-dsl --test fixtures`.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use topo_dsl::{FromOptions, Kind, Registry, Role, TopologyBuilder, load_file, load_str_with_env};
use topo_runtime::{
    BasicBolt, BasicCollector, BoxError, OutputDeclarer, Spout, SpoutCollector, TopologySpec, Tuple,
};

#[derive(Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct WordsOptions {
    /// how many
    #[serde(default)]
    count: u64,
    /// the words
    #[serde(default)]
    words: Vec<String>,
}

/// Options that need no checking are their own prototype.
macro_rules! unchecked {
    ($t:ty) => {
        impl FromOptions for $t {
            type Options = $t;
            fn from_options(options: $t) -> Result<Self, String> {
                Ok(options)
            }
        }
    };
}
unchecked!(WordsOptions);
unchecked!(NoOptions);
unchecked!(CountOptions);

struct Words(WordsOptions);

impl Spout for Words {
    type MessageId = ();
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["word"]);
    }
    async fn next_tuple(&mut self, _out: &mut SpoutCollector<'_, ()>) -> Result<(), BoxError> {
        let _ = (self.0.count, &self.0.words);
        Ok(())
    }
}

#[derive(Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NoOptions {}

struct Split;

impl BasicBolt for Split {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["word"]);
    }
    fn execute(&mut self, _t: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        Ok(())
    }
}

#[derive(Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
struct CountOptions {
    /// smallest count reported
    min: u64,
}

struct Count(#[allow(dead_code)] u64);

impl BasicBolt for Count {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(["word", "count"]);
    }
    fn execute(&mut self, _t: &Tuple, _out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        Ok(())
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.add(Kind::spout("words", "emits words", |o: &WordsOptions| {
        Words(o.clone())
    }))
    .add(Kind::basic_bolt(
        "split",
        "splits sentences",
        |_: &NoOptions| Split,
    ))
    .add(Kind::basic_bolt(
        "count",
        "counts words",
        |o: &CountOptions| Count(o.min),
    ));
    r
}

fn fixtures(dir: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// `# set: key=value` lines at the top of a fixture are overrides.
fn overrides(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# set: "))
        .map(|s| {
            let (k, v) = s.split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn env(name: &str) -> Option<String> {
    match name {
        "TOPO_TEST_COUNT" => Some("7".into()),
        _ => None,
    }
}

#[test]
fn invalid_fixtures_report_exactly_the_expected_errors() {
    let registry = registry();
    let bless = std::env::var_os("BLESS").is_some();
    let files = fixtures("invalid");
    assert!(files.len() >= 20, "{} invalid fixtures", files.len());
    let mut failures = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_str().unwrap();
        let got = match load_str_with_env(&text, name, &registry, &overrides(&text), &env) {
            Ok(_) => "(loaded without errors)".to_string(),
            Err(d) => d.to_string(),
        } + "\n";
        let expected_path = path.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!("{name}:\n--- expected\n{expected}--- got\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_fixtures_load_and_validate() {
    let registry = registry();
    let files = fixtures("valid");
    assert!(!files.is_empty());
    for path in files {
        let spec =
            load_file(&path, &registry, &[]).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
        spec.validate()
            .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
    }
}

fn summary(spec: &TopologySpec) -> Vec<String> {
    spec.components
        .iter()
        .map(|c| {
            let role = c.factory.role();
            format!(
                "{role} {} x{} tick={:?} inputs={:?}",
                c.id, c.parallelism, c.tick_interval, c.inputs
            )
        })
        .collect()
}

#[test]
fn toml_topology_equals_the_builder_topology() {
    let registry = registry();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid/word_count.toml");
    let from_file = load_file(&path, &registry, &[]).unwrap();

    let mut b = TopologyBuilder::new("word-count");
    b.config_mut().worker_threads = 2;
    b.set_spout(
        "sentences",
        || {
            Words(WordsOptions {
                count: 1000,
                words: vec!["a".into(), "b".into()],
            })
        },
        1,
    );
    b.set_bolt("split", || Split, 2)
        .shuffle_grouping("sentences");
    b.set_bolt("count", || Count(0), 2)
        .fields_grouping("split", ["word"])
        .tick_interval(std::time::Duration::from_secs(1));
    let built = b.into_spec();

    assert_eq!(from_file.name, built.name);
    assert_eq!(from_file.config, built.config);
    assert_eq!(summary(&from_file), summary(&built));
}

#[test]
fn env_substitution() {
    let registry = registry();
    let text = "name = \"t-$${X}\"\n[spouts.s]\nkind = \"words\"\ncount = ${TOPO_TEST_COUNT}\nparallelism = ${TOPO_TEST_P:-3}\n";
    let spec = load_str_with_env(text, "t.toml", &registry, &[], &env).unwrap();
    assert_eq!(spec.name, "t-${X}");
    assert_eq!(spec.components[0].parallelism, 3);

    let err = load_str_with_env("name = \"${NOPE}\"", "t.toml", &registry, &[], &env)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "t.toml:1:9: environment variable \"NOPE\" is not set (use ${NOPE:-default} for a default)"
    );
}

#[test]
fn set_overrides() {
    let registry = registry();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid/word_count.toml");
    let set = |k: &str, v: &str| (k.to_string(), v.to_string());
    let spec = load_file(
        &path,
        &registry,
        &[
            set("config.ackers", "0"),
            set("bolts.count.parallelism", "4"),
            set("spouts.sentences.count", "10"),
            set("name", "renamed"),
            set("config.message_timeout", "5s"),
        ],
    )
    .unwrap();
    assert_eq!(spec.config.ackers, 0);
    assert_eq!(spec.name, "renamed");
    assert_eq!(
        spec.config.message_timeout,
        std::time::Duration::from_secs(5)
    );
    let count = spec.components.iter().find(|c| c.id == "count").unwrap();
    assert_eq!(count.parallelism, 4);

    let err = load_file(
        &path,
        &registry,
        &[set("spouts.sentences.count", "\"many\"")],
    )
    .unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert_eq!(err.0[0].file, "--set");
    assert_eq!(err.0[0].path, "spouts.sentences.count");
}

#[test]
fn diagnostics_as_json_and_registry_listing() {
    let registry = registry();
    let kinds: Vec<_> = registry.kinds().map(|k| (k.name(), k.role())).collect();
    assert_eq!(
        kinds,
        [
            ("words", Role::Spout),
            ("split", Role::Bolt),
            ("count", Role::Bolt)
        ]
    );
    assert_eq!(
        registry.get(Role::Bolt, "count").unwrap().options()[0].name,
        "min"
    );
    let err = load_str_with_env("name = 3\nfoo = 1\n", "x.toml", &registry, &[], &env).unwrap_err();
    let json: serde_json::Value = serde_json::from_str(&err.to_json()).unwrap();
    let list: HashMap<String, serde_json::Value> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["path"].as_str().unwrap().to_string(), d.clone()))
        .collect();
    assert_eq!(list["name"]["line"], 1);
    assert_eq!(list["foo"]["line"], 2);
    assert_eq!(list["foo"]["column"], 1);
    assert_eq!(list["foo"]["file"], "x.toml");
}

// A spout kind and a bolt kind may share a name (as a file source and a file sink do); each
// section finds its own, and each has its own example.
#[test]
fn a_spout_and_a_bolt_may_share_a_kind_name() {
    let mut registry = registry();
    registry.add(Kind::basic_bolt(
        "words",
        "a bolt named like the spout",
        |_: &NoOptions| Split,
    ));
    assert!(registry.example("words", "[bolts.w]\nkind = \"words\""));
    assert!(registry.example("words", "[spouts.w]\nkind = \"words\"\ncount = 1"));
    let named: Vec<_> = registry.named("words").map(|k| k.role()).collect();
    assert_eq!(named, [Role::Spout, Role::Bolt]);
    assert!(
        registry
            .get(Role::Bolt, "words")
            .unwrap()
            .example()
            .unwrap()
            .starts_with("[bolts.")
    );
    assert!(
        registry
            .get(Role::Spout, "words")
            .unwrap()
            .example()
            .unwrap()
            .starts_with("[spouts.")
    );
    let file = "name = \"t\"\n\
                [spouts.src]\nkind = \"words\"\ncount = 3\n\
                [bolts.w]\nkind = \"words\"\ninputs = [{ from = \"src\" }]\n";
    let spec =
        load_str_with_env(file, "t.toml", &registry, &[], &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.components.len(), 2);
    // The spout's options do not leak into the bolt of the same name, nor back.
    let bad = "name = \"t\"\n[spouts.src]\nkind = \"words\"\n[bolts.w]\nkind = \"words\"\ncount = 3\ninputs = [{ from = \"src\" }]\n";
    let err = load_str_with_env(bad, "t.toml", &registry, &[], &env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bolts.w.count: unknown field `count`"),
        "{err}"
    );
}

// `include = [..]` merges the components of other files, relative to the including file.
#[test]
fn includes_merge_components_from_other_files() {
    let registry = registry();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/include");
    let spec =
        load_file(format!("{dir}/main.toml"), &registry, &[]).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<_> = spec.components.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["sentences", "split", "count"]);
    assert_eq!(spec.components[1].parallelism, 2);
}

// Problems in and with included files name the included file and the place in it.
#[test]
fn include_errors_name_the_included_file() {
    let registry = registry();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/include");
    let err = load_file(format!("{dir}/bad_main.toml"), &registry, &[]).unwrap_err();
    let text = err.to_string().replace(&format!("{dir}/"), "");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "bad_main.toml:2:12: include[0]: cannot read the included file \"missing.toml\": No such file or directory (os error 2)",
            "bad_main.toml:2:58: include[3]: expected a file path, got integer 3",
            "with_name.toml:1:1: name: an included file holds only [spouts.<id>] and [bolts.<id>] tables; \"name\" belongs in the main file",
            "with_name.toml:5:7: bolts.count.min: invalid type: string \"zero\", expected u64",
            "dup.toml:1:8: bolts.split: component \"split\" is already defined at bad_main.toml:9:8",
        ]
    );
}

// `${..}` in a comment is prose: it is neither substituted nor an error, even next to strings
// holding `#`.
#[test]
fn comments_are_not_substituted() {
    let registry = registry();
    let text = "# uses ${UNSET_IN_COMMENT}\nname = \"a # ${N:-x}\" # ${ALSO_UNSET}\n[spouts.s]\nkind = \"words\" # '${X}'\ncount = ${N:-3}\nwords = ['#', \"\"\"\n# ${NOT_A_COMMENT:-y}\"\"\"]\n";
    let spec = load_str_with_env(text, "c.toml", &registry, &[], &|_| None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spec.name, "a # x");
}
