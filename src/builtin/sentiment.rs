//! The `sentiment` kind: VADER sentiment of a text field (see [`topo_bolts::sentiment`]).

use topo_bolts::{Sentiment, SentimentOptions};
use topo_dsl::registry::{OptionDoc, Registry};

use super::{Checked, TryFromOptions};

impl TryFromOptions<SentimentOptions> for Sentiment {
    fn try_from_options(options: SentimentOptions) -> Result<Self, String> {
        Sentiment::new(options)
    }
}

/// Registers the `sentiment` kind; its options are checked when the topology file is loaded.
pub(super) fn register(r: &mut Registry) {
    r.register_basic_bolt::<Checked<Sentiment, SentimentOptions>, Sentiment>(
        "sentiment",
        "VADER sentiment of a text field: emits (keep.., sentiment, label) with the compound score from -1 to 1 and positive/negative/neutral; inputs without text to `error`",
        vec![
            OptionDoc::new("field", "string", "\"text\"", "the input field holding the text"),
            OptionDoc::new(
                "keep",
                "list of strings",
                "[]",
                "input fields passed on, in order, before `sentiment` and `label`",
            ),
        ],
        |c: &Checked<Sentiment, SentimentOptions>| c.0.clone(),
    );
}
