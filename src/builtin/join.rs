//! The `join`, `rolling_count` and `rankings` kinds.

use topo_bolts::{Join, JoinOptions, Rankings, RankingsOptions, RollingCount, RollingCountOptions};
use topo_dsl::registry::{OptionDoc, Registry};

use super::{Checked, TryFromOptions};

impl TryFromOptions<JoinOptions> for Join {
    fn try_from_options(options: JoinOptions) -> Result<Self, String> {
        Join::new(options)
    }
}

impl TryFromOptions<RollingCountOptions> for RollingCount {
    fn try_from_options(options: RollingCountOptions) -> Result<Self, String> {
        RollingCount::new(options)
    }
}

impl TryFromOptions<RankingsOptions> for Rankings {
    fn try_from_options(options: RankingsOptions) -> Result<Self, String> {
        Rankings::new(options)
    }
}

/// Registers `join`, `rolling_count` and `rankings`.
pub(super) fn register(r: &mut Registry) {
    r.register_bolt::<Checked<Join, JoinOptions>, Join>(
        "join",
        "windowed stream-stream join on key fields (inner, left), choosing the output fields; bad or unknown-source tuples to the `error` stream",
        vec![
            OptionDoc::new("window", "duration", "\"10s\"", "tumbling processing-time window"),
            OptionDoc::new("slide", "duration", "", "sliding: a window ends every `slide` (must divide `window`); unset = tumbling"),
            OptionDoc::new("from", "{ source, key }", "", "the side the others join to: source = component id or \"component:stream\", key = list of fields (required)"),
            OptionDoc::new("join", "list of { source, key, type }", "", "joined sides: key fields matched in order to `from`'s; type = \"inner\" (default) | \"left\" (required)"),
            OptionDoc::new("select", "list of strings", "", "output fields: \"source.field\" or \"source.field as name\" (required)"),
            OptionDoc::new("anchoring", "auto | hold | receipt", "auto", "hold inputs until their window is joined (outputs anchored), or ack on arrival; auto = hold if window + slide <= message_timeout / 2"),
        ],
        |c: &Checked<Join, JoinOptions>| c.0.clone(),
    );
    r.register_basic_bolt::<Checked<RollingCount, RollingCountOptions>, RollingCount>(
        "rolling_count",
        "counts per object over a sliding window of slots; every `emit_every` emits (object, count, window_end)",
        vec![
            OptionDoc::new("field", "string", "\"word\"", "the field counted; also the first output field"),
            OptionDoc::new("window", "duration", "\"5m\"", "the window the counts cover (a multiple of `emit_every`)"),
            OptionDoc::new("emit_every", "duration", "\"1m\"", "how often counts are emitted and the window advances one slot"),
        ],
        |c: &Checked<RollingCount, RollingCountOptions>| c.0.clone(),
    );
    r.register_basic_bolt::<Checked<Rankings, RankingsOptions>, Rankings>(
        "rankings",
        "top-N rankings: intermediate (from counts, fields-grouped) or total (merges intermediate rankings, global); emits (rankings, at)",
        vec![
            OptionDoc::new("mode", "intermediate | total", "", "input (object, count) updates, or rankings of intermediate tasks (required)"),
            OptionDoc::new("top", "integer", "10", "how many objects a ranking holds"),
            OptionDoc::new("emit_every", "duration", "\"2s\"", "how often the ranking is emitted (also at end of input)"),
            OptionDoc::new("field", "string", "\"word\"", "the object field of the input and of each ranking entry"),
            OptionDoc::new("count_field", "string", "\"count\"", "the count field of the input (intermediate)"),
        ],
        |c: &Checked<Rankings, RankingsOptions>| c.0.clone(),
    );
}
