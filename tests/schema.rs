//! `topo schema`: the JSON Schema of topology files accepts every example topology and rejects
//! the mistakes the loader rejects, so an editor using it flags them while the file is written.
//! (Checked by hand with taplo 0.9, `taplo check` on a file starting `#:schema ./topo.schema.json`:
//! it names the bad key or value and its line.)

use std::path::Path;

use assert_cmd::Command;

fn schema() -> serde_json::Value {
    let out = Command::cargo_bin("topo")
        .unwrap()
        .arg("schema")
        .assert()
        .success();
    serde_json::from_slice(&out.get_output().stdout).expect("topo schema prints JSON")
}

fn as_json(toml_text: &str) -> serde_json::Value {
    // As the loader reads it: `${VAR:-default}` with no variable set is the default.
    let text = topo::file::substitute(toml_text, &|_| None).expect("substitution");
    let value: toml::Value = toml::from_str(&text).expect("valid TOML");
    serde_json::to_value(value).expect("TOML as JSON")
}

/// The schema's complaints about a topology file, one line each.
fn problems(validator: &jsonschema::Validator, toml_text: &str) -> Vec<String> {
    validator
        .iter_errors(&as_json(toml_text))
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

// Guards that every example topology is valid against the schema (the editor shows no error on
// files `topo run` accepts).
#[test]
fn every_example_is_valid() {
    let validator = jsonschema::validator_for(&schema()).expect("a valid JSON Schema");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let p = problems(&validator, &text);
            assert!(p.is_empty(), "{}:\n{}", path.display(), p.join("\n"));
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} examples found");
}

// Guards that the mistakes a person makes while writing a file are rejected by the schema.
#[test]
fn mistakes_are_rejected() {
    let validator = jsonschema::validator_for(&schema()).expect("a valid JSON Schema");
    let base = "name = \"t\"\n[spouts.s]\nkind = \"generator\"\ncount = 10\n\n[bolts.w]\nkind = \"split\"\ninputs = [{ from = \"s\" }]\n";
    assert!(
        problems(&validator, base).is_empty(),
        "{:?}",
        problems(&validator, base)
    );
    let mistakes = [
        ("a misspelt option", base.replace("count = 10", "cout = 10")),
        (
            "an option of the wrong type",
            base.replace("count = 10", "count = \"ten\""),
        ),
        (
            "an unknown kind",
            base.replace("kind = \"split\"", "kind = \"splt\""),
        ),
        ("an unknown top-level key", format!("nmae = \"x\"\n{base}")),
        (
            "an unknown config key",
            format!("[config]\nackerz = 1\n{base}"),
        ),
        (
            "parallelism 0",
            base.replace("kind = \"split\"", "kind = \"split\"\nparallelism = 0"),
        ),
        (
            "tick_interval on a spout",
            base.replace("count = 10", "count = 10\ntick_interval = \"1s\""),
        ),
        (
            "an unknown grouping",
            base.replace(
                "{ from = \"s\" }",
                "{ from = \"s\", grouping = \"shufle\" }",
            ),
        ),
        (
            "an input without from",
            base.replace("{ from = \"s\" }", "{ stream = \"default\" }"),
        ),
        (
            "a bad duration",
            format!("[config]\nmessage_timeout = \"soon\"\n{base}"),
        ),
        (
            "a value outside an enum",
            base.replace("count = 10", "count = 10\nmode = \"poems\""),
        ),
        (
            "a component without kind",
            format!("{base}\n[bolts.c]\ninputs = [{{ from = \"w\" }}]\n"),
        ),
    ];
    // The kind's own schema is the one that speaks: the message names the bad key and value.
    let misspelt = problems(&validator, &base.replace("count = 10", "cout = 10")).join("\n");
    assert!(misspelt.contains("'cout' was unexpected"), "{misspelt}");
    let wrong_type =
        problems(&validator, &base.replace("count = 10", "count = \"ten\"")).join("\n");
    assert!(
        wrong_type.contains("/spouts/s/count") && wrong_type.contains("\"ten\""),
        "{wrong_type}"
    );
    for (what, text) in mistakes {
        assert!(
            !problems(&validator, &text).is_empty(),
            "{what} is accepted by the schema:\n{text}"
        );
    }
}

// Guards that every built-in kind is one case of its role's tagged union, with its options.
#[test]
fn every_kind_is_in_the_union_with_its_options() {
    let schema = schema();
    let registry = topo::builtin_registry();
    for kind in registry.kinds() {
        let union = &schema["definitions"][kind.role().as_str()]["allOf"];
        let alt = union
            .as_array()
            .unwrap()
            .iter()
            .map(|case| &case["then"])
            .find(|a| a["properties"]["kind"]["const"] == kind.name())
            .unwrap_or_else(|| panic!("{} {} missing", kind.role(), kind.name()));
        for option in kind.options() {
            assert!(
                alt["properties"].get(&option.name).is_some(),
                "{} {}: option {} missing",
                kind.role(),
                kind.name(),
                option.name
            );
        }
    }
}

// Guards that each sink's batch options show its own default for `max_records`, down to the
// shared definition an editor shows for the key itself.
#[test]
fn each_sink_shows_its_own_batch_default() {
    let schema = schema();
    let bolts = schema["definitions"]["bolt"]["allOf"].as_array().unwrap();
    let batch_of = |kind: &str| {
        let alt = bolts
            .iter()
            .map(|case| &case["then"])
            .find(|a| a["properties"]["kind"]["const"] == kind)
            .unwrap_or_else(|| panic!("bolt {kind} missing"));
        let batch = &alt["properties"]["batch"];
        let def = batch["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/definitions/"))
            .unwrap_or_else(|| panic!("{kind}: batch is not a reference: {batch}"));
        (
            batch["default"]["max_records"].clone(),
            schema["definitions"][def]["properties"]["max_records"]["default"].clone(),
        )
    };
    assert_eq!(batch_of("file"), (10_000.into(), 10_000.into()));
    assert_eq!(batch_of("s3"), (100_000.into(), 100_000.into()));
    for kind in ["http", "kinesis", "postgres", "redis"] {
        assert_eq!(batch_of(kind), (500.into(), 500.into()), "{kind}");
    }
}
