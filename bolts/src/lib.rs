//! # topo-bolts
//!
//! topo's built-in processing steps, each a [`topo_runtime::BasicBolt`] (synchronous, acked for
//! you) or [`topo_runtime::Bolt`] (async, manual ack). The sinks, which write to external
//! systems, live with their connectors in `topo-spouts`, the edge:
//!
//! ```text
//! queue ──► bolt task ──execute──► filter / map / split / window / join / top-k / print
//!                                     │ emit (anchored)            │ ack / fail
//!                                     ▼                            ▼
//!                                  collector ──► next bolts      acker
//! ```
//!
//! - [`expr`]: `filter` (keep tuples where a CEL expression is true) and `map` (output fields
//!   computed by CEL expressions over the input fields); failed evaluations to `error`.
//! - [`join`]: `join` (windowed stream-stream join on key fields, inner and left, choosing the
//!   output fields; holds or acks on receipt).
//! - [`parse`]: `parse` (raw text — JSON, CSV/TSV, access logs, syslog, key=value — to fields;
//!   malformed input to the `error` stream).
//! - [`rank`]: `rolling_count` (counts per object over a sliding window of slots) and
//!   `rankings` (intermediate and total top-N, for trending topics).
//! - [`sentiment`]: `sentiment` (VADER's compound score and a positive/negative/neutral label
//!   of a text field; inputs without text to `error`).
//! - [`stdout`]: `stdout` (prints each tuple as a JSON or `field=value` line, acks once written).
//! - [`throttle`]: `throttle` (passes inputs on unchanged at most `rate` tuples per second per
//!   task, a token bucket with `burst`; the excess waits, so backpressure reaches upstream).
//! - [`window`]: `window` (count, sum, min, max, avg, distinct counts and top-k over tumbling or
//!   sliding windows, by duration or count, in processing or event time, per group; late tuples
//!   to `late`).
//! - [`words`]: `split` (text to tokens) and `count` (running counts per key).

#![deny(missing_docs)]

pub mod expr;
pub mod join;
pub mod parse;
pub mod rank;
pub mod sentiment;
pub mod stdout;
pub mod throttle;
pub mod window;
pub mod words;

pub use expr::{Filter, FilterOptions, Map, MapOptions};
pub use join::{FromSide, Join, JoinOptions, JoinSide, JoinType};
pub use parse::{Format, Parse, ParseOptions};
pub use rank::{RankMode, Rankings, RankingsOptions, RollingCount, RollingCountOptions};
pub use sentiment::{Sentiment, SentimentOptions};
pub use stdout::{Stdout, StdoutFormat, StdoutOptions};
pub use throttle::{Throttle, ThrottleOptions};
pub use window::{AggregateOptions, Anchoring, Extent, TimeMode, Window, WindowOptions};
pub use words::{Count, CountEmit, CountOptions, Split, SplitOptions};

/// Every processing kind of this crate, in the order `topo components` lists them: add them to
/// a [`topo_dsl::Registry`] with [`Registry::add`](topo_dsl::Registry::add).
pub fn kinds() -> Vec<topo_dsl::Kind> {
    [
        words::kinds(),
        parse::kinds(),
        expr::kinds(),
        stdout::kinds(),
        join::kinds(),
        rank::kinds(),
        sentiment::kinds(),
        throttle::kinds(),
        window::kinds(),
    ]
    .into_iter()
    .flatten()
    .collect()
}
