//! The custom-bolt example works as README's "How to add a kind" promises: the kind is listed,
//! described from its options struct, part of `topo schema`, checked when the file loads, and
//! runs next to the built-in kinds.

use std::process::Command;

/// The example's binary, run from the repository's root with a state directory of its own (a
/// run resumes from the checkpoints of the last run of the same topology).
fn example() -> Command {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let state = std::env::temp_dir().join(format!("topo-shout-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&state);
    let mut c = Command::new(env!("CARGO_BIN_EXE_topo-example-custom-bolt"));
    c.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .env("TOPO_STATE_DIR", state);
    c
}

fn run(c: &mut Command) -> (i32, String, String) {
    let out = c.output().expect("the example runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// Guards that the kind is described from its options struct: doc comment, type and default.
#[test]
fn components_describes_shout_from_its_options() {
    let (code, stdout, stderr) = run(example().args(["components", "shout"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "shout (bolt): upper-cases a word and appends a suffix
  suffix : string = \"!\"
      appended to every word (at most 8 characters)

example:
  [bolts.shout]
  kind = \"shout\"
  suffix = \"!!\"
  inputs = [{ from = \"split\" }]
"
    );
}

// Guards that `topo schema` carries the user's kind, with its option.
#[test]
fn schema_includes_shout() {
    let (code, stdout, stderr) = run(example().arg("schema"));
    assert_eq!(code, 0, "{stderr}");
    let schema: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    let bolts = schema["definitions"]["bolt"]["allOf"]
        .as_array()
        .expect("the bolt kinds");
    let shout = bolts
        .iter()
        .map(|case| &case["then"])
        .find(|k| k["properties"]["kind"]["const"] == "shout")
        .expect("shout is a bolt kind of the schema");
    assert_eq!(shout["properties"]["suffix"]["type"], "string");
}

// Guards that the options are checked when the file loads, with the place in the file.
#[test]
fn a_bad_suffix_is_reported_where_it_is_written() {
    let dir = std::env::temp_dir().join(format!("topo-shout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("t.toml");
    std::fs::write(
        &file,
        "name = \"t\"\n[spouts.s]\nkind = \"generator\"\ncount = 1\n\n[bolts.w]\nkind = \"split\"\ninputs = [{ from = \"s\" }]\n\n[bolts.shout]\nkind = \"shout\"\nsuffix = \"!!!!!!!!!!\"\ninputs = [{ from = \"w\" }]\n",
    )
    .unwrap();
    let (code, _, stderr) = run(example().arg("validate").arg(&file));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "t.toml:10:1: bolts.shout: suffix \"!!!!!!!!!!\" is longer than 8 characters"
        ),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

// Guards that the user's kind runs between built-in ones and every tuple is acked.
#[test]
fn runs_next_to_builtin_kinds() {
    let (code, stdout, stderr) =
        run(example().args(["run", "examples/custom_bolt/topology.toml", "--until-idle"]));
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        last.contains("sentences") && last.contains("acked 1000 failed 0 timeout 0 pending 0"),
        "{stderr}"
    );
    assert!(last.contains("| shout "), "{stderr}");
}
