//! Files: the `file` spout ([`source`], tailing files and globs) and the `file` sink ([`sink`],
//! JSON-lines or CSV files written in batches).
//!
//! ```text
//!  files (globs, rotation) ──► FileSpout ──► bolts ──► FileWriter (BatchSink) ──► out/*.jsonl[.gz]
//! ```

pub mod sink;
pub mod source;
mod watch;

pub use sink::*;
pub use source::*;

/// The `file` spout and sink kinds, for the registry.
pub fn kinds() -> Vec<topo_dsl::Kind> {
    let mut kinds = source::kinds();
    kinds.extend(sink::kinds());
    kinds
}
