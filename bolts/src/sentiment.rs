//! `sentiment`: the VADER sentiment of a text field (Hutto & Gilbert, ICWSM-14), scored with the
//! `vader-sentimental` crate's lexicon and rules (negations, boosters, "but", punctuation and
//! capitals, emoji).
//!
//! ```text
//!  (.., text, ..) ──► polarity_scores(text) ──► (keep.., sentiment, label)
//!                              │ no such field / not text
//!                              └──► `error` stream (reason, raw)
//! ```
//!
//! # Options
//! ```toml
//! [bolts.mood]
//! kind = "sentiment"
//! field = "title"                  # the text scored
//! keep = ["fullname", "title"]     # input fields passed on, before the scores
//! ```
//!
//! # Output
//! The `default` stream carries the `keep` fields, then `sentiment` (VADER's compound score, a
//! float from -1, most negative, to 1, most positive) and `label`: `"positive"` from 0.05,
//! `"negative"` from -0.05 down, else `"neutral"` (VADER's usual thresholds). The `error` stream
//! carries (`reason`, `raw`) for an input without the field or whose value is not text (a null
//! title of a comment, say); `raw` is the value as JSON-like text. Either way the input is acked.
//!
//! # Known limits
//! - VADER's lexicon is English; other languages score mostly neutral.
//! - Scores are per text, with no context of earlier tuples.

use serde::{Deserialize, Serialize};
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{BasicBolt, BasicCollector, BoxError, OutputDeclarer, Tuple, Value, Values};
use vader_sentimental::SentimentIntensityAnalyzer;

/// The stream inputs that cannot be scored go to, with fields (`reason`, `raw`).
pub use topo_runtime::ERROR_STREAM;

/// The compound score from which a text is labelled positive (and, negated, negative).
pub const LABEL_THRESHOLD: f64 = 0.05;

/// Options of the `sentiment` bolt.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SentimentOptions {
    /// The input field holding the text.
    pub field: String,
    /// Input fields passed on, in order, before `sentiment` and `label`.
    pub keep: Vec<String>,
}

impl Default for SentimentOptions {
    fn default() -> Self {
        SentimentOptions {
            field: "text".to_string(),
            keep: Vec::new(),
        }
    }
}

/// The `sentiment` bolt (see the module docs).
#[derive(Clone)]
pub struct Sentiment {
    opts: SentimentOptions,
    analyzer: SentimentIntensityAnalyzer<'static>,
}

/// The label of a compound score.
pub fn label(compound: f64) -> &'static str {
    if compound >= LABEL_THRESHOLD {
        "positive"
    } else if compound <= -LABEL_THRESHOLD {
        "negative"
    } else {
        "neutral"
    }
}

impl Sentiment {
    /// A sentiment bolt with these options, or what is wrong with them.
    pub fn new(opts: SentimentOptions) -> Result<Sentiment, String> {
        if opts.field.is_empty() {
            return Err("option `field` is empty: expected the name of a text field".to_string());
        }
        for (i, k) in opts.keep.iter().enumerate() {
            if k.is_empty() {
                return Err(format!(
                    "option `keep[{i}]` is empty: expected a field name"
                ));
            }
            if k == "sentiment" || k == "label" {
                return Err(format!(
                    "option `keep[{i}]` = {k:?}: the bolt adds a field of that name; rename it upstream"
                ));
            }
            if opts.keep[..i].contains(k) {
                return Err(format!(
                    "option `keep[{i}]` = {k:?}: listed twice, expected each field once"
                ));
            }
        }
        Ok(Sentiment {
            opts,
            analyzer: SentimentIntensityAnalyzer::new(),
        })
    }

    /// VADER's compound score of `text`, from -1 to 1.
    pub fn score(&self, text: &str) -> f64 {
        self.analyzer.polarity_scores(text).compound
    }

    fn scored(&self, input: &Tuple) -> Result<Values, (String, String)> {
        let value = input.field(&self.opts.field).map_err(|e| {
            (
                format!("cannot score field `{}`: {e}", self.opts.field),
                String::new(),
            )
        })?;
        let Some(text) = value.as_str() else {
            return Err((
                format!(
                    "field `{}` is {}, expected text",
                    self.opts.field,
                    value.type_name()
                ),
                value.to_string(),
            ));
        };
        let compound = self.score(text);
        let mut out = Values::with_capacity(self.opts.keep.len() + 2);
        for k in &self.opts.keep {
            let v = input
                .field(k)
                .map_err(|e| (format!("cannot keep field `{k}`: {e}"), text.to_string()))?;
            out.push(v.clone());
        }
        out.push(Value::Float(compound));
        out.push(Value::from(label(compound)));
        Ok(out)
    }
}

impl BasicBolt for Sentiment {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare(
            self.opts
                .keep
                .iter()
                .map(String::as_str)
                .chain(["sentiment", "label"]),
        );
        out.declare_stream(ERROR_STREAM, ["reason", "raw"]);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        match self.scored(input) {
            Ok(values) => out.emit(values),
            Err((reason, raw)) => {
                let mut values = Values::new();
                values.push(Value::from(reason));
                values.push(Value::from(raw));
                out.emit_to(ERROR_STREAM, values);
            }
        }
        Ok(())
    }
}

/// The `sentiment` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::basic_bolt(
            "sentiment",
            "VADER sentiment of a text field: emits (keep.., sentiment, label) with the compound score from -1 to 1 and positive/negative/neutral; inputs without text to `error`",
            Sentiment::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components sentiment`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.mood]
kind = "sentiment"
field = "title"           # VADER: compound score from -1 to 1, label positive/negative/neutral
keep = ["fullname", "title"]
inputs = [{ from = "news" }]

# inputs without text (a null field), with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "mood", stream = "error" }]
"#;

impl FromOptions for Sentiment {
    type Options = SentimentOptions;
    fn from_options(options: SentimentOptions) -> Result<Self, String> {
        Sentiment::new(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use topo_runtime::testing::BoltTester;
    use topo_runtime::values;

    fn tester(opts: SentimentOptions) -> BoltTester {
        BoltTester::basic(
            move || Sentiment::new(opts.clone()).expect("valid options"),
            ["id", "title"],
        )
    }

    #[test]
    fn scores_and_labels_titles_and_keeps_fields() {
        let mut t = tester(SentimentOptions {
            field: "title".into(),
            keep: vec!["id".into()],
        });
        let good = t.execute(values![
            "a",
            "Peace deal brings hope and relief to a grateful city"
        ]);
        let bad = t.execute(values![
            "b",
            "Deadly attack kills dozens, leaving families devastated"
        ]);
        let flat = t.execute(values!["c", "Parliament meets on Tuesday"]);
        let not_good = t.execute(values!["d", "The talks were not good"]);
        for run in [&good, &bad, &flat, &not_good] {
            assert!(run.acked);
            assert_eq!(run.emitted.len(), 1);
        }
        let score = |run: &topo_runtime::testing::Executed| match &run.emitted[0].values[1] {
            Value::Float(f) => *f,
            other => panic!("not a float: {other:?}"),
        };
        assert_eq!(good.emitted[0].values[0], Value::from("a"));
        assert!(score(&good) > 0.5, "{}", score(&good));
        assert_eq!(good.emitted[0].values[2], Value::from("positive"));
        assert!(score(&bad) < -0.5, "{}", score(&bad));
        assert_eq!(bad.emitted[0].values[2], Value::from("negative"));
        assert_eq!(score(&flat), 0.0);
        assert_eq!(flat.emitted[0].values[2], Value::from("neutral"));
        assert!(score(&not_good) < 0.0, "negation: {}", score(&not_good));
    }

    #[test]
    fn a_missing_or_non_text_field_goes_to_error() {
        let mut t = tester(SentimentOptions {
            field: "title".into(),
            keep: vec![],
        });
        let run = t.execute(values!["a", Value::Null]);
        assert!(run.acked);
        assert_eq!(run.emitted.len(), 1);
        assert_eq!(run.emitted[0].stream, ERROR_STREAM);
        assert_eq!(
            run.emitted[0].values[0],
            Value::from("field `title` is null, expected text")
        );
        let mut t = tester(SentimentOptions {
            field: "body".into(),
            keep: vec![],
        });
        let run = t.execute(values!["a", "text"]);
        assert_eq!(run.emitted[0].stream, ERROR_STREAM);
        assert!(
            run.emitted[0].values[0].to_string().contains("`body`"),
            "{:?}",
            run.emitted[0].values
        );
    }

    #[test]
    fn bad_options_are_named() {
        let err = |o| Sentiment::new(o).err().expect("refused");
        assert!(
            err(SentimentOptions {
                field: String::new(),
                keep: vec![]
            })
            .contains("`field` is empty")
        );
        assert!(
            err(SentimentOptions {
                field: "t".into(),
                keep: vec!["label".into()]
            })
            .contains("`keep[0]` = \"label\"")
        );
        assert!(
            err(SentimentOptions {
                field: "t".into(),
                keep: vec!["a".into(), "a".into()]
            })
            .contains("listed twice")
        );
    }
}
