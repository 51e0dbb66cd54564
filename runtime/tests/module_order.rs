//! Guards the runtime's module order: the dependency list in `src/lib.rs`'s module doc is what the
//! code does, and it has no circle.
//!
//! ```text
//! src/lib.rs doc: "tuple ─► value" ...   ◄── compared ──►   each src/*.rs: its `crate::…` uses
//!       └── each module's dependencies are listed above it (so there is no circle)
//! ```
//!
//! Only the code outside `#[cfg(test)]` modules counts, and not comments: a unit test may use
//! any module, and a doc link is no import. A module split over a directory (`src/task/`) counts
//! as one, all its files together.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// The documented order: each module with the modules it may use, top to bottom.
fn documented(lib: &str) -> Vec<(String, BTreeSet<String>)> {
    let block = lib
        .split("## Module dependencies")
        .nth(1)
        .and_then(|rest| rest.split("```text").nth(1))
        .and_then(|rest| rest.split("```").next())
        .expect("a text block under `## Module dependencies` in src/lib.rs");
    let mut order = Vec::new();
    for line in block.lines() {
        let line = line.trim_start_matches("//!").trim();
        if line.is_empty() {
            continue;
        }
        if let Some((name, deps)) = line.split_once('─') {
            let deps = deps.trim_start_matches(['─', '►', ' ']);
            let deps = deps.split("  ").next().unwrap_or("");
            let deps = if deps.starts_with("all of the above") {
                order.iter().map(|(m, _): &(String, _)| m.clone()).collect()
            } else {
                deps.split(',').map(|d| d.trim().to_string()).collect()
            };
            order.push((name.trim().to_string(), deps));
        } else {
            // The leaves: `a, b, c    leaves: use no other module`.
            let names = line.split("  ").next().unwrap_or("");
            for name in names.split(',') {
                order.push((name.trim().to_string(), BTreeSet::new()));
            }
        }
    }
    order
}

/// Which module each item re-exported at the crate root comes from (`pub use m::{A, B};`).
fn reexports(lib: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for part in lib.split("pub use ").skip(1) {
        let stmt = part.split(';').next().unwrap_or("");
        let Some((module, items)) = stmt.split_once("::") else {
            continue;
        };
        for item in items.trim_matches(['{', '}']).split(',') {
            let item = item.trim();
            if !item.is_empty() {
                out.insert(item.to_string(), module.trim().to_string());
            }
        }
    }
    out
}

/// A source file without its unit tests.
fn without_tests(src: &str) -> &str {
    src.split("#[cfg(test)]\nmod tests").next().unwrap_or(src)
}

/// The modules a module's code (its tests already cut; not its comments) names as `crate::…`.
fn used(
    code: &str,
    modules: &BTreeSet<String>,
    reexported: &HashMap<String, String>,
) -> BTreeSet<String> {
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut names = Vec::new();
    for part in code.split("crate::").skip(1) {
        if let Some(group) = part.strip_prefix('{') {
            // `use crate::{a::X, b::{Y, Z}, C}`: the first name of each top-level item.
            let mut depth = 0;
            let mut item = String::new();
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        names.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(ch);
            }
            names.push(item);
        } else {
            names.push(part.to_string());
        }
    }
    names
        .iter()
        .filter_map(|n| {
            let n = n.trim();
            let end = n
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(n.len());
            let name = &n[..end];
            if modules.contains(name) {
                Some(name.to_string())
            } else if name == "values" {
                Some("value".to_string()) // the `values!` macro
            } else {
                reexported.get(name).cloned()
            }
        })
        .collect()
}

#[test]
fn modules_use_only_the_modules_listed_above_them_in_lib_rs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(dir.join("lib.rs")).expect("src/lib.rs");
    let order = documented(&lib);
    let reexported = reexports(&lib);
    // A module is a file `src/m.rs`, or a directory `src/m/` (its `mod.rs` and submodules).
    let mut sources = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("src/") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_string();
        if path.is_dir() {
            let mut code = String::new();
            for file in std::fs::read_dir(&path).expect("a module directory") {
                let file = file.expect("an entry").path();
                if file.extension().is_some_and(|e| e == "rs") {
                    code += without_tests(&std::fs::read_to_string(&file).expect("a source"));
                }
            }
            sources.insert(name, code);
        } else if path.extension().is_some_and(|e| e == "rs") && name != "lib" {
            let src = std::fs::read_to_string(&path).expect("a source file");
            sources.insert(name, without_tests(&src).to_string());
        }
    }
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let listed: BTreeSet<String> = order.iter().map(|(m, _)| m.clone()).collect();
    assert_eq!(
        listed, modules,
        "src/lib.rs lists other modules than src/ holds"
    );

    let mut above = BTreeSet::new();
    for (module, allowed) in &order {
        for dep in allowed {
            assert!(
                above.contains(dep),
                "src/lib.rs lists `{module}` as using `{dep}`, which is not above it"
            );
        }
        let uses = used(&sources[module], &modules, &reexported);
        let uses: BTreeSet<String> = uses.into_iter().filter(|m| m != module).collect();
        let unlisted: Vec<_> = uses.difference(allowed).collect();
        assert!(
            unlisted.is_empty(),
            "`{module}` uses {unlisted:?}, which src/lib.rs does not list for it"
        );
        let unused: Vec<_> = allowed.difference(&uses).collect();
        assert!(
            unused.is_empty() || *allowed == above,
            "src/lib.rs lists {unused:?} for `{module}`, which it does not use"
        );
        above.insert(module.clone());
    }
}
