//! The built-in component kinds: each is declared beside its code (`kinds()` of its module in
//! `topo-spouts` or `topo-bolts`), and this registry adds them all, sources first. A kind whose
//! Cargo feature is off (`kafka`, `kinesis`, `mqtt`, `postgres`, `redis`, `http`, `feed`, `s3`) is not
//! built and not listed.

use topo_dsl::registry::Registry;

/// A registry holding every built-in kind. Add your own kinds to it and pass it to
/// [`cli::main_with`](crate::cli::main_with).
pub fn builtin_registry() -> Registry {
    let mut r = Registry::new();
    for kind in topo_spouts::kinds().into_iter().chain(topo_bolts::kinds()) {
        r.add(kind);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every built-in kind has an example, and each example's options build the kind.
    #[test]
    fn every_kind_has_an_example_that_builds() {
        let r = builtin_registry();
        for kind in r.kinds() {
            let example = kind
                .example()
                .unwrap_or_else(|| panic!("kind `{}` has no example", kind.name()));
            let doc: toml::Table = toml::from_str(example)
                .unwrap_or_else(|e| panic!("example of `{}`: {e}", kind.name()));
            let section = if kind.role() == topo_dsl::registry::Role::Spout {
                "spouts"
            } else {
                "bolts"
            };
            let tables = doc[section]
                .as_table()
                .expect("a [spouts.x] or [bolts.x] table");
            assert_eq!(
                tables.len(),
                1,
                "example of `{}`: one component",
                kind.name()
            );
            let mut options = tables
                .values()
                .next()
                .and_then(|v| v.as_table())
                .cloned()
                .expect("a table");
            assert_eq!(
                options
                    .remove("kind")
                    .and_then(|k| k.as_str().map(String::from))
                    .as_deref(),
                Some(kind.name())
            );
            for key in ["parallelism", "inputs", "tick_interval"] {
                options.remove(key);
            }
            if let Err(e) = r.build(kind.role(), kind.name(), toml::Value::Table(options)) {
                panic!("example of `{}` does not build: {e}", kind.name());
            }
        }
    }
}
