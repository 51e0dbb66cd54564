//! Name suggestions: the nearest valid name to a likely typo, for every "unknown …" message.
//!
//! ```text
//! unknown name ──suggest(name, valid names)──► Some(nearest) ──did_you_mean──► "; did you mean `split`?"
//!                                          └─► None (nothing near enough) ──► ""
//! ```
//!
//! Used wherever a name is looked up: component ids and grouping fields in validation, tapped
//! components, and (in `topo-dsl`) kinds, option keys and streams of topology files.

use smol_str::SmolStr;

/// The candidate nearest to `name`, if it is near enough to be a likely typo.
///
/// Near enough: a few edits for its length (`spilt` → `split`), or a similar spelling that
/// shares the start (`splitter` → `split`, `workers` → `worker_threads`: Jaro-Winkler
/// similarity ≥ 0.85).
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<SmolStr> {
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| {
            let edits = strsim::damerau_levenshtein(name, c);
            let similar = strsim::jaro_winkler(name, c);
            let near = edits <= (name.len().max(c.len()) / 3).max(1) || similar >= 0.85;
            (near, edits, c)
        })
        .filter(|(near, _, _)| *near)
        .min_by_key(|(_, edits, _)| *edits)
        .map(|(_, _, c)| c.into())
}

/// `; did you mean `s`?` for a suggestion, nothing without one: the tail of an error message.
pub fn did_you_mean(suggestion: &Option<SmolStr>) -> String {
    suggestion
        .as_ref()
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let ids = ["split", "count", "sentences"];
        assert_eq!(suggest("spilt", ids).as_deref(), Some("split"));
        assert_eq!(suggest("sentence", ids).as_deref(), Some("sentences"));
        assert_eq!(
            suggest("workers", ["worker_threads", "ackers"]).as_deref(),
            Some("worker_threads")
        );
        assert_eq!(suggest("splitter", ids).as_deref(), Some("split"));
        assert_eq!(suggest("report", ids), None);
        assert_eq!(suggest("x", ids), None);
    }

    #[test]
    fn did_you_mean_is_empty_without_a_suggestion() {
        assert_eq!(
            did_you_mean(&Some("split".into())),
            "; did you mean `split`?"
        );
        assert_eq!(did_you_mean(&None), "");
    }
}
