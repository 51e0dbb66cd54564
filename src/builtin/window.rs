//! The `window` kind: windowed aggregates (see [`topo_bolts::window`]).

use topo_bolts::{Window, WindowOptions};
use topo_dsl::registry::{OptionDoc, Registry};

use super::{Checked, TryFromOptions};

impl TryFromOptions<WindowOptions> for Window {
    fn try_from_options(options: WindowOptions) -> Result<Self, String> {
        Window::new(options)
    }
}

/// Registers the `window` kind; its options are checked when the topology file is loaded.
pub(super) fn register(r: &mut Registry) {
    r.register_bolt::<Checked<Window, WindowOptions>, Window>(
        "window",
        "aggregates over tumbling or sliding windows, by duration or count, in processing or event time, per group; emits (window_start, window_end, group_by.., aggregates..); late tuples to `late`, bad ones to `error`",
        vec![
            OptionDoc::new("length", "duration | integer", "", "window length: a duration (\"1m\") or a count of tuples (100) (required)"),
            OptionDoc::new("slide", "duration | integer", "length (tumbling)", "how often a window starts; same kind as length, at most length"),
            OptionDoc::new("time", "processing | event", "processing", "the arrival clock, or the `timestamp` field with watermarks (duration windows only)"),
            OptionDoc::new("timestamp", "string", "", "event time: the field with epoch milliseconds (int) or RFC 3339 text (required with time = \"event\")"),
            OptionDoc::new("lag", "duration", "\"0s\"", "event time: allowed out-of-orderness; the watermark is the slowest upstream task's latest timestamp minus lag"),
            OptionDoc::new("group_by", "list of strings", "[]", "fields whose distinct combinations get their own results"),
            OptionDoc::new("aggregates", "list of { fn, field, k, as }", "", "fn = count | sum | min | max | avg | count_distinct | approx_count_distinct | top_k (with k); `field` for all but count; `as` names the output field (at least one)"),
            OptionDoc::new("anchoring", "auto | hold | receipt", "auto", "hold inputs until their last window fires (results anchored), or ack on receipt (results unanchored); auto holds only processing-time duration windows within half the message timeout"),
        ],
        |c: &Checked<Window, WindowOptions>| c.0.clone(),
    );
}
