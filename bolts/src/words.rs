//! `split` and `count`: the word-count bolts.
//!
//! - `split` turns a text field into one tuple per token: whitespace-separated, or matches of a
//!   regular expression; optionally lowercased, with stop words dropped. A tuple whose field is
//!   missing or not text fails with the reason.
//! - `count` keeps a running count per key; fields-group its input on the key so each key is
//!   counted by one task. It emits `(key, count)` on every update (`emit = "update"`, the
//!   default), every `emit_every` for the keys changed since the last time (`emit = "tick"`), or
//!   once per key when the input ends (`emit = "finish"`): a final map of millions of words then
//!   costs one tuple per distinct word, not one per word.
//!
//! ```text
//! (word) ──► count ──► emit = "update": (word, n) per input
//!             │         emit = "tick":   (word, n) per changed word, every emit_every
//!             │         emit = "finish": (word, n) per word, at the end of input
//!             └─ counts (and, for "tick", the words not yet emitted) in every checkpoint
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    BasicBolt, BasicCollector, BoxError, Field, KeyedState, OutputDeclarer, Restore, Snapshot,
    Tuple, Value, values,
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
            "running count per key; emits (key, count) on every update, every tick for the changed keys, or at the end of input",
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
emit = "update"           # per input; "tick": changed words every emit_every; "finish": at the end
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
    /// The text field, found by position per stream.
    field: Field,
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
            field: Field::new(opts.field.as_str()),
            opts,
            pattern,
            stop_words,
        })
    }

    /// Emits `token` (lowercased when asked), unless it is a stop word.
    #[inline]
    fn emit_token(&self, token: &str, shape: Shape, out: &mut BasicCollector<'_>) {
        if !self.opts.lowercase || !(shape.upper_ascii || shape.non_ascii) {
            return self.emit_word(token, out);
        }
        if !shape.non_ascii {
            // ASCII with capitals: lowercased on the stack when it fits an inline string.
            let mut buf = [0u8; INLINE_WORD];
            if let Some(buf) = buf.get_mut(..token.len()) {
                buf.copy_from_slice(token.as_bytes());
                buf.make_ascii_lowercase();
                return self.emit_word(std::str::from_utf8(buf).expect("ASCII is UTF-8"), out);
            }
            return self.emit_word(&token.to_ascii_lowercase(), out);
        }
        if token.chars().any(char::is_uppercase) {
            self.emit_word(&token.to_lowercase(), out);
        } else {
            self.emit_word(token, out);
        }
    }

    #[inline]
    fn emit_word(&self, word: &str, out: &mut BasicCollector<'_>) {
        if self.stop_words.is_empty() || !self.stop_words.contains(word) {
            out.emit(values![word]);
        }
    }
}

/// The longest word `split` lowercases without a heap step: the longest string a [`Value`]
/// holds inline.
const INLINE_WORD: usize = 23;

/// What a token holds, as far as lowercasing it goes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Shape {
    /// An ASCII capital letter.
    upper_ascii: bool,
    /// A character beyond ASCII.
    non_ascii: bool,
}

impl Shape {
    fn of(token: &str) -> Shape {
        Shape {
            upper_ascii: token.bytes().any(|b| b.is_ascii_uppercase()),
            non_ascii: !token.is_ascii(),
        }
    }
}

/// The class of each byte for [`split_whitespace`], as bits: 0 a byte of a word, [`SPACE`]
/// ASCII whitespace, [`UPPER`] an ASCII capital, [`HIGH`] a byte beyond ASCII.
static BYTE_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => SPACE,
            b'A'..=b'Z' => UPPER,
            0x80..=0xff => HIGH,
            _ => 0,
        };
        b += 1;
    }
    t
};
const SPACE: u8 = 1;
const UPPER: u8 = 2;
const HIGH: u8 = 4;

/// The character beyond ASCII starting at byte `i` of `text` (a character boundary): whether it
/// is whitespace, and its length in bytes.
#[cold]
fn char_beyond_ascii(text: &str, i: usize) -> (bool, usize) {
    let c = text[i..].chars().next().expect("a char starts here");
    (c.is_whitespace(), c.len_utf8())
}

/// Calls `f` with each token of `text` separated by whitespace, and its [`Shape`]: the tokens of
/// [`str::split_whitespace`] (Unicode whitespace), in one pass over the bytes that also notes
/// what lowercasing needs. ASCII bytes take one table lookup each; a byte beyond ASCII decodes
/// its character to tell whether it is whitespace.
#[inline]
fn split_whitespace(text: &str, mut f: impl FnMut(&str, Shape)) {
    let bytes = text.as_bytes();
    let n = bytes.len();
    let mut i = 0;
    'tokens: loop {
        // Skip whitespace to the token's first byte.
        let start = loop {
            let Some(&b) = bytes.get(i) else {
                break 'tokens;
            };
            match BYTE_CLASS[b as usize] {
                SPACE => i += 1,
                HIGH => match char_beyond_ascii(text, i) {
                    (true, len) => i += len,
                    (false, _) => break i,
                },
                _ => break i,
            }
        };
        // The token's bytes, to the next whitespace; `seen` gathers their classes.
        let mut seen = 0u8;
        while i < n {
            let class = BYTE_CLASS[bytes[i] as usize];
            if class & (SPACE | HIGH) == 0 {
                seen |= class;
                i += 1;
            } else if class == SPACE {
                break;
            } else {
                match char_beyond_ascii(text, i) {
                    (true, _) => break,
                    (false, len) => {
                        seen |= HIGH;
                        i += len;
                    }
                }
            }
        }
        let shape = Shape {
            upper_ascii: seen & UPPER != 0,
            non_ascii: seen & HIGH != 0,
        };
        f(&text[start..i], shape);
    }
}

impl BasicBolt for Split {
    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare([self.opts.output.as_str()]);
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let text = self.field.str(input)?;
        match &self.pattern {
            Some(p) => {
                for m in p.find_iter(text) {
                    self.emit_token(m.as_str(), Shape::of(m.as_str()), out);
                }
            }
            None => {
                split_whitespace(text, |token, shape| self.emit_token(token, shape, out));
            }
        }
        Ok(())
    }
}

/// When the `count` bolt emits its counts.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CountEmit {
    /// `(key, count)` for every input, with the key's new count.
    #[default]
    Update,
    /// Every `emit_every`, `(key, count)` for each key counted since the last tick (and at the
    /// end of input, for those counted since the last tick).
    Tick,
    /// Once per key, `(key, count)`, when the input ends.
    Finish,
}

/// Options of the `count` bolt.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CountOptions {
    /// the field counted; also the first output field
    pub field: String,
    /// when counts are emitted: `update` (every input), `tick` (the keys counted since the last
    /// tick, every `emit_every`) or `finish` (every key once, at the end of input)
    pub emit: CountEmit,
    /// how often `emit = "tick"` emits
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub emit_every: Duration,
}

impl Default for CountOptions {
    fn default() -> Self {
        CountOptions {
            field: "word".into(),
            emit: CountEmit::Update,
            emit_every: Duration::from_secs(1),
        }
    }
}

/// The `count` bolt: a running count per value of one field. Its counts are checkpointed
/// (keyed by that value, so a fields grouping on the field lets a restore change the
/// parallelism).
pub struct Count {
    opts: CountOptions,
    field: Field,
    counts: KeyedState<SmolStr, i64>,
    /// `emit = "tick"`: the keys counted since the last tick, checkpointed with the counts (a
    /// resumed run emits them at its first tick).
    unsent: KeyedState<SmolStr, ()>,
    /// `emit = "finish"`: the next part of the counts to emit at the end.
    next_part: usize,
}

impl Count {
    /// A count bolt with these options.
    pub fn new(opts: CountOptions) -> Count {
        Count {
            field: Field::new(opts.field.as_str()),
            opts,
            counts: KeyedState::new(),
            unsent: KeyedState::new(),
            next_part: 0,
        }
    }

    /// Emits `(key, count)` for every key counted since the last call, and forgets them.
    fn emit_unsent(&mut self, out: &mut BasicCollector<'_>) {
        for (key, ()) in self.unsent.iter() {
            if let Some(n) = self.counts.get(key) {
                out.emit(values![key.clone(), *n]);
            }
        }
        self.unsent.clear();
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
        if self.opts.emit == CountEmit::Tick {
            snap.put_keyed("unsent", &mut self.unsent);
        }
        Ok(())
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        // A key counted by two old tasks (an input not grouped by the field) adds up.
        from.keyed_merge("counts", &mut self.counts, |a, b| a + b)?;
        if self.opts.emit == CountEmit::Tick {
            from.keyed_merge("unsent", &mut self.unsent, |(), ()| ())?;
        }
        Ok(())
    }

    fn execute(&mut self, input: &Tuple, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        let value = self.field.get(input)?;
        let text;
        let (key, input_str) = match value {
            Value::Str(s) => (s.as_str(), Some(s)),
            other => {
                text = other.to_string();
                (text.as_str(), None)
            }
        };
        // Looked up by `&str`: a known key (most inputs) builds no `SmolStr`; a new one keeps the
        // input's (a long word's text is shared, not copied).
        let (stored, n) = self.counts.get_or_insert_with(key, |k| {
            (input_str.cloned().unwrap_or_else(|| SmolStr::new(k)), 0)
        });
        *n += 1;
        match self.opts.emit {
            CountEmit::Update => out.emit(values![stored.clone(), *n]),
            CountEmit::Tick => {
                self.unsent
                    .get_or_insert_with(key, |_| (stored.clone(), ()));
            }
            CountEmit::Finish => {}
        }
        Ok(())
    }

    fn tick_interval(&self) -> Option<Duration> {
        (self.opts.emit == CountEmit::Tick).then_some(self.opts.emit_every)
    }

    fn tick(&mut self, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        if self.opts.emit == CountEmit::Tick {
            self.emit_unsent(out);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut BasicCollector<'_>) -> Result<(), BoxError> {
        match self.opts.emit {
            CountEmit::Update => {}
            CountEmit::Tick => self.emit_unsent(out),
            // A part at a time, in `finish_next`.
            CountEmit::Finish => {}
        }
        Ok(())
    }

    fn finish_next(&mut self, out: &mut BasicCollector<'_>) -> Result<bool, BoxError> {
        if self.opts.emit != CountEmit::Finish {
            return Ok(false);
        }
        for (key, n) in self.counts.iter_part(self.next_part) {
            out.emit(values![key.clone(), *n]);
        }
        self.next_part += 1;
        Ok(self.next_part < self.counts.parts())
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
        let words = words_of(&run);
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
        let words = words_of(&run);
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

    /// The words a run of `split` emitted, in order.
    fn words_of(run: &topo_runtime::testing::Executed) -> Vec<String> {
        run.emitted
            .iter()
            .map(|e| e.values[0].to_string())
            .collect()
    }

    fn emitted(run: &topo_runtime::testing::Executed) -> Vec<(String, i64)> {
        let mut out: Vec<_> = run
            .emitted
            .iter()
            .map(|e| {
                (
                    e.values[0].to_string(),
                    e.values[1].as_i64().expect("a count"),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn counted(words: &[(&str, i64)]) -> Vec<(String, i64)> {
        words.iter().map(|(w, n)| (w.to_string(), *n)).collect()
    }

    // Guards `emit = "finish"`: nothing per input, every key once with its total at the end.
    #[test]
    fn count_emits_each_key_once_at_finish() {
        let opts = CountOptions {
            emit: CountEmit::Finish,
            ..Default::default()
        };
        let mut t = BoltTester::basic(move || Count::new(opts.clone()), ["word"]);
        for w in ["a", "b", "a", "c", "a"] {
            let run = t.execute(values![w]);
            assert!(run.acked && run.emitted.is_empty());
        }
        assert!(t.tick().emitted.is_empty(), "no ticks in this mode");
        let end = t.finish();
        assert_eq!(emitted(&end), counted(&[("a", 3), ("b", 1), ("c", 1)]));

        // Many keys go out a part at a time: each once, with its count.
        let opts = CountOptions {
            emit: CountEmit::Finish,
            ..Default::default()
        };
        let mut t = BoltTester::basic(move || Count::new(opts.clone()), ["word"]);
        for i in 0..3000 {
            t.execute(values![format!("w{}", i % 1000)]);
        }
        let mut want: Vec<_> = (0..1000).map(|i| (format!("w{i}"), 3)).collect();
        want.sort();
        assert_eq!(emitted(&t.finish()), want);
    }

    // Guards `emit = "tick"`: each tick emits the keys counted since the last one, with their
    // running totals; a checkpoint keeps the keys not yet emitted, so a resumed run emits them.
    #[test]
    fn count_emits_changed_keys_per_tick_and_keeps_them_across_a_restore() {
        let opts = CountOptions {
            emit: CountEmit::Tick,
            emit_every: Duration::from_millis(250),
            ..Default::default()
        };
        let make = move || Count::new(opts.clone());
        assert_eq!(make().tick_interval(), Some(Duration::from_millis(250)));
        let mut t = BoltTester::basic(make.clone(), ["word"]);
        for w in ["a", "b", "a"] {
            assert!(t.execute(values![w]).emitted.is_empty());
        }
        assert_eq!(emitted(&t.tick()), counted(&[("a", 2), ("b", 1)]));
        assert!(t.tick().emitted.is_empty(), "nothing counted since");
        t.execute(values!["b"]);
        t.execute(values!["c"]);
        let (chk, _) = t.checkpoint().expect("a checkpoint");
        drop(t);
        let mut back = BoltTester::restore_basic(make, ["word"], &chk);
        back.execute(values!["a"]);
        assert_eq!(
            emitted(&back.tick()),
            counted(&[("a", 3), ("b", 2), ("c", 1)])
        );
        back.execute(values!["c"]);
        assert_eq!(emitted(&back.finish()), counted(&[("c", 2)]));
    }

    // Guards split's lowercasing: ASCII on the stack (short words), long and non-ASCII words
    // through `to_lowercase`, unchanged words as they are; stop words match the lowercased word.
    #[test]
    fn split_lowercases_every_kind_of_word() {
        let long = "Pneumonoultramicroscopicsilicovolcanoconiosis";
        let opts = SplitOptions {
            lowercase: true,
            stop_words: vec!["the".into(), "straße".into()],
            ..Default::default()
        };
        let split = Split::new(opts).expect("valid options");
        let mut t = BoltTester::basic(move || split.clone(), ["sentence"]);
        let line = format!("THE Cow ÉTÉ été {long} STRASSE Straße word\u{2003}Ünïcode");
        let run = t.execute(values![line]);
        let words = words_of(&run);
        assert_eq!(
            words,
            [
                "cow".to_string(),
                "été".into(),
                "été".into(),
                long.to_lowercase(),
                "strasse".into(),
                "word".into(),
                "ünïcode".into(),
            ]
        );
        let same = Split::new(SplitOptions::default()).expect("valid options");
        let mut t = BoltTester::basic(move || same.clone(), ["sentence"]);
        let run = t.execute(values!["Keep THE Case"]);
        let words = words_of(&run);
        assert_eq!(words, ["Keep", "THE", "Case"]);
    }

    // Guards the one-pass splitter: the same tokens as `str::split_whitespace` on every kind of
    // whitespace and text, and the shape of each.
    #[test]
    fn the_splitter_cuts_where_split_whitespace_does() {
        let texts = [
            "",
            "   ",
            "one",
            " lead and trail ",
            "tab\tnew\nline\r\nvt\x0bff\x0c",
            "nbsp\u{a0}nel\u{85}ideo\u{3000}em\u{2003}line\u{2028}end",
            "Ünïcode ÉTÉ été naïve MiXeD straße ß 日本語 テキスト",
            "zero\u{200b}width is not space",
            "\u{3000}lead\u{a0}\u{a0}trail\u{2029}",
            "é\u{85}É a\u{1680}B \u{202f}",
            "UPPER lower Mixed123 \x1c\x1f are not spaces",
        ];
        for text in texts {
            let mut got = Vec::new();
            split_whitespace(text, |t, shape| {
                assert_eq!(shape, Shape::of(t), "shape of {t:?}");
                got.push(t.to_string());
            });
            let want: Vec<_> = text.split_whitespace().map(str::to_string).collect();
            assert_eq!(got, want, "tokens of {text:?}");
        }
    }
}
