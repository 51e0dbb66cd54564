//! `split` and `count`: the word-count bolts.
//!
//! - `split` turns a text field into one tuple per token: whitespace-separated, or matches of a
//!   regular expression; optionally lowercased, with stop words dropped. A tuple whose field is
//!   missing or not text fails with the reason.
//! - `count` keeps a running count per key and emits `(key, count)` on every update; fields-group
//!   its input on the key so each key is counted by one task.

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    BasicBolt, BasicCollector, BoxError, KeyedState, OutputDeclarer, Restore, Snapshot, Tuple,
    values,
};

/// Options of the `split` bolt.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SplitOptions {
    /// The input field holding the text.
    pub field: String,
    /// The output field of each token.
    pub output: String,
    /// Lowercase each token (Unicode-aware).
    pub lowercase: bool,
    /// A regular expression matching the tokens (e.g. `"[\\w']+"` for words without
    /// punctuation); unset = tokens are separated by whitespace.
    pub pattern: Option<String>,
    /// Tokens to drop (compared after lowercasing, when `lowercase` is on).
    pub stop_words: Vec<String>,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            field: "sentence".into(),
            output: "word".into(),
            lowercase: false,
            pattern: None,
            stop_words: Vec::new(),
        }
    }
}

/// The `split` and `count` kinds, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::basic_bolt(
            "split",
            "one tuple per token of a text field (whitespace-separated or regex matches), optional lowercase and stop words",
            Split::clone,
        )
        .with_example(SPLIT_EXAMPLE),
        Kind::basic_bolt(
            "count",
            "running count per key; emits (key, count) on every update",
            |o: &CountOptions| Count::new(o.clone()),
        )
        .with_example(COUNT_EXAMPLE),
    ]
}

/// Printed by `topo components split`; built by the test of every kind's example.
const SPLIT_EXAMPLE: &str = r#"
[bolts.words]
kind = "split"
field = "sentence"
lowercase = true
pattern = "[\\w']+"       # tokens are the matches; unset = split on whitespace
stop_words = ["the", "a", "an"]
inputs = [{ from = "sentences" }]
"#;

/// Printed by `topo components count`.
const COUNT_EXAMPLE: &str = r#"
[bolts.counts]
kind = "count"
field = "word"
parallelism = 2
inputs = [{ from = "words", grouping = { fields = ["word"] } }]
"#;

impl FromOptions for Split {
    type Options = SplitOptions;
    fn from_options(options: SplitOptions) -> Result<Self, String> {
        Split::new(options)
    }
}

impl FromOptions for CountOptions {
    type Options = CountOptions;
    fn from_options(options: CountOptions) -> Result<Self, String> {
        Ok(options)
    }
}

/// The `split` bolt.
#[derive(Clone, Debug)]
pub struct Split {
    opts: SplitOptions,
    /// The compiled `pattern`, once.
    pattern: Option<regex::Regex>,
    stop_words: std::collections::HashSet<String>,
}

impl Split {
    /// A split bolt with these options; an error names a `pattern` that is not a valid regular
    /// expression.
    pub fn new(opts: SplitOptions) -> Result<Split, String> {
        let pattern =
            match &opts.pattern {
                Some(p) => Some(regex::Regex::new(p).map_err(|e| {
                    format!("option `pattern` is not a valid regular expression: {e}")
                })?),
                None => None,
            };
        let stop_words = opts.stop_words.iter().cloned().collect();
        Ok(Split {
            opts,
            pattern,
            stop_words,
        })
    }

    fn emit_token(&self, token: &str, out: &mut BasicCollector<'_>) {
        if self.opts.lowercase && token.chars().any(char::is_uppercase) {
            let lower = token.to_lowercase();
            if !self.stop_words.contains(&lower) {
                out.emit(values![lower]);
            }
        } else if !self.stop_words.contains(token) {
            out.emit(values![token]);
        }
    }
}

impl BasicBolt for Split {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare([self.opts.output.as_str()]);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let text = input.str_field(&self.opts.field)?;
        match &self.pattern {
            Some(p) => {
                for m in p.find_iter(text) {
                    self.emit_token(m.as_str(), out);
                }
            }
            None => {
                for token in text.split_whitespace() {
                    self.emit_token(token, out);
                }
            }
        }
        Ok(())
    }
}

/// Options of the `count` bolt.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CountOptions {
    /// the field counted; also the first output field
    pub field: String,
}

impl Default for CountOptions {
    fn default() -> Self {
        CountOptions {
            field: "word".into(),
        }
    }
}

/// The `count` bolt: a running count per value of one field. Its counts are checkpointed
/// (keyed by that value, so a fields grouping on the field lets a restore change the
/// parallelism).
pub struct Count {
    opts: CountOptions,
    counts: KeyedState<SmolStr, i64>,
}

impl Count {
    /// A count bolt with these options.
    pub fn new(opts: CountOptions) -> Count {
        Count {
            opts,
            counts: KeyedState::new(),
        }
    }
}

impl BasicBolt for Count {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare([self.opts.field.as_str(), "count"]);
    }

    fn has_state(&self) -> bool {
        true
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        snap.put_keyed("counts", &mut self.counts);
        Ok(())
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        // A key counted by two old tasks (an input not grouped by the field) adds up.
        from.keyed_merge("counts", &mut self.counts, |a, b| a + b)
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let value = input.field(&self.opts.field)?;
        let key: SmolStr = match value.as_str() {
            Some(s) => s.into(),
            None => value.to_string().into(),
        };
        let n = match self.counts.get_mut(&key) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                self.counts.insert(key.clone(), 1);
                1
            }
        };
        out.emit(values![key, n]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use topo_runtime::testing::BoltTester;

    // Guards count's state: a checkpoint, a crash (the instance dropped) and a restore go on
    // counting from the checkpointed counts, through a second, incremental checkpoint.
    #[test]
    fn count_resumes_from_a_checkpoint() {
        let make = || Count::new(CountOptions::default());
        let mut t = BoltTester::basic(make, ["word"]);
        for w in ["a", "b", "a"] {
            t.execute(values![w]);
        }
        let (first, _) = t.checkpoint().expect("a checkpoint");
        t.execute(values!["b"]);
        t.execute(values!["c"]);
        let (second, _) = t.checkpoint().expect("an incremental checkpoint");
        t.execute(values!["a"]); // after the checkpoint: lost with the crash
        drop(t);

        let count_of = |t: &mut BoltTester, w: &str| -> i64 {
            let run = t.execute(values![w]);
            run.emitted[0].values[1].as_i64().expect("a count")
        };
        let mut back = BoltTester::restore_basic(make, ["word"], &second);
        assert_eq!(count_of(&mut back, "a"), 3);
        assert_eq!(count_of(&mut back, "b"), 3);
        assert_eq!(count_of(&mut back, "c"), 2);
        let mut older = BoltTester::restore_basic(make, ["word"], &first);
        assert_eq!(count_of(&mut older, "b"), 2);
        assert_eq!(count_of(&mut older, "c"), 1);
    }

    #[test]
    fn split_emits_each_token_and_fails_without_text() {
        let opts = SplitOptions {
            lowercase: true,
            ..Default::default()
        };
        let split = Split::new(opts).expect("valid options");
        let mut t = BoltTester::basic(move || split.clone(), ["sentence"]);
        let run = t.execute(values!["The cow  jumped"]);
        assert!(run.acked);
        let words: Vec<_> = run
            .emitted
            .iter()
            .map(|e| e.values[0].to_string())
            .collect();
        assert_eq!(words, ["the", "cow", "jumped"]);
        assert!(run.emitted.iter().all(|e| e.anchored));
        let bad = t.execute(values![42]);
        assert!(bad.failed && bad.errors == 1);
    }

    #[test]
    fn split_by_pattern_with_stop_words() {
        let opts = SplitOptions {
            lowercase: true,
            pattern: Some(r"[\w']+".into()),
            stop_words: vec!["the".into(), "a".into()],
            ..Default::default()
        };
        let split = Split::new(opts).expect("valid options");
        let mut t = BoltTester::basic(move || split.clone(), ["sentence"]);
        let run = t.execute(values!["The cow's moon, a (big) one!"]);
        let words: Vec<_> = run
            .emitted
            .iter()
            .map(|e| e.values[0].to_string())
            .collect();
        assert_eq!(words, ["cow's", "moon", "big", "one"]);
        let bad = Split::new(SplitOptions {
            pattern: Some("(".into()),
            ..Default::default()
        });
        assert!(
            bad.unwrap_err()
                .starts_with("option `pattern` is not a valid regular expression")
        );
    }

    #[test]
    fn count_emits_running_counts() {
        let mut t = BoltTester::basic(|| Count::new(CountOptions::default()), ["word"]);
        let runs = t.execute_all([values!["a"], values!["b"], values!["a"]]);
        let out: Vec<_> = runs.iter().map(|r| r.emitted[0].values.to_vec()).collect();
        assert_eq!(
            out,
            [
                values!["a", 1].to_vec(),
                values!["b", 1].to_vec(),
                values!["a", 2].to_vec()
            ]
        );
    }
}
