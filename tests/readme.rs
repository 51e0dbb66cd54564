//! The README's kind tables list exactly the registered kinds, so they cannot drift from what
//! `topo components` prints.

use topo::registry::Role;

/// The kinds named (in backticks) in the first column of the README table whose header starts
/// with `header`.
fn table_kinds(readme: &str, header: &str) -> Vec<String> {
    let mut lines = readme.lines().skip_while(|l| !l.starts_with(header));
    assert!(lines.next().is_some(), "README has no table `{header}`");
    let mut kinds: Vec<String> = lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .flat_map(|row| {
            let first = row.split('|').nth(1).unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    kinds.sort();
    kinds
}

// Guards that each README table of kinds lists every registered kind of its role, and no other.
#[test]
fn readme_tables_list_the_registered_kinds() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let registry = topo::builtin_registry();
    for (role, header) in [
        (Role::Spout, "| spout kind |"),
        (Role::Bolt, "| bolt kind |"),
    ] {
        let mut registered: Vec<String> = registry
            .kinds()
            .filter(|k| k.role() == role)
            .map(|k| k.name().to_string())
            .collect();
        registered.sort();
        assert_eq!(
            table_kinds(&readme, header),
            registered,
            "README's `{header}` table against the registry"
        );
    }
}
