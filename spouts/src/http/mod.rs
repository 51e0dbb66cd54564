//! HTTP: the `http` ingest spout ([`source`], a server receiving POSTed records) and the `http`
//! sink ([`sink`], a client POSTing batches).
//!
//! ```text
//!  clients ──POST──► HttpSpout ──► bolts ──► HttpWriter (BatchSink) ──POST──► an HTTP endpoint
//! ```

pub mod sink;
pub mod source;

pub use sink::*;
pub use source::*;

/// The `http` spout and sink kinds, for the registry.
pub fn kinds() -> Vec<topo_dsl::Kind> {
    let mut kinds = source::kinds();
    kinds.extend(sink::kinds());
    kinds
}
