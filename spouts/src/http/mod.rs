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
