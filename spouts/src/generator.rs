//! `generator`: synthetic streams — sentences or IoT sensor readings — deterministic from a seed,
//! at a given rate or as fast as possible, with a count limit.
//!
//! ```text
//!  message numbers of task i of p: i, i+p, i+2p, ... (below `count`)   failed numbers first
//!        │                                                                   ▲
//!        ▼ pacing (with `rate`): rate/p per task, released every ~5 ms       │
//!  tuple(n) = f(seed, n)                                                     │ fail(n)
//!    sentences: one of `sentences` | a line of `text_file` | random `words`  │
//!    sensors:   (device_id, temperature, humidity, timestamp)                │
//!        │                                                                   │
//!        └──emit, message id n──► bolts ──── ack / fail ─────────────────────┘
//! ```
//!
//! # Options
//! ```toml
//! [spouts.source]
//! kind = "generator"
//! mode = "sentences"           # or "sensors"
//! count = 100000               # messages over all tasks; unset = without end
//! rate = 20000                 # messages per second over all tasks; unset = as fast as possible
//! seed = 7
//! # sentences mode: one of these three sources (default: Storm's five example sentences)
//! sentences = ["the cow jumped over the moon", "four score and seven years ago"]
//! # text_file = "corpus.txt"   # the non-empty lines of a file, read when the topology loads
//! # words = ["alpha", "beta"]  # random sentences of `words_per_sentence` (default 8) words
//! field = "sentence"           # the output field
//! # sensors mode
//! # devices = 10               # ids "sensor-0000" .. "sensor-0009"
//! # anomaly_rate = 0.01        # fraction of readings far above normal
//! # anomaly_length = 1         # consecutive readings of a device one anomaly lasts
//! # start_time = "2026-01-01T00:00:00Z"   # or epoch ms; default: the wall clock at start
//! ```
//!
//! # Output
//! - `sentences` mode: (`sentence`), the field named by `field`: with `sentences`, one of them
//!   chosen at random per message; with `text_file`, one of the file's non-empty lines (a `\r`
//!   before the `\n` dropped); with `words`, `words_per_sentence` words drawn at random, joined by
//!   spaces.
//! - `sensors` mode: (`device_id`, `temperature`, `humidity`, `timestamp`). Message `n` is a reading
//!   of device `n mod devices` (`"sensor-0007"`), so every device reports in turn. Each device has
//!   a base temperature (18–26 °C) and humidity (35–65 %) drawn from the seed; a reading adds noise
//!   (±1 °C, ±2 %), rounded to hundredths (floats). A device's readings form runs of
//!   `anomaly_length`; each run is, with probability `anomaly_rate`, an anomaly: its temperatures
//!   are 15–25 °C above the base (one offset per run, plus the noise). `timestamp` is the event
//!   time in epoch milliseconds (int): `start_time + n * 1000 / rate` (1 ms apart without `rate`),
//!   so it follows the generation schedule and is the same on every replay; without `start_time`
//!   the start is the wall clock when the first task of the spout opens.
//!
//! # Pacing
//! With `rate`, each of the `p` tasks emits `rate / p` new messages per second: a schedule from
//! the task's first call, released in batches of about 5 ms (at 20,000/s, 100 tuples per wake-up;
//! no per-tuple sleep and no busy loop). A task held back (backpressure, `max_spout_pending`)
//! catches up by at most one second of messages; beyond that the schedule moves on, so the rate
//! never bursts far above `rate`. Replays are emitted at once and do not count against `rate`.
//!
//! # Delivery guarantee
//! Message `n` always yields the same tuple (drawn from the seed and `n`), so a failed or timed
//! out message is emitted again, identical, with the same message id: **at-least-once, replays
//! identical tuples**. With several tasks, task `i` of `p` emits the messages `n ≡ i (mod p)`, so
//! the topology emits `count` messages in all whatever the parallelism. The spout is exhausted
//! (`topo run --until-idle` ends) once `count` messages are emitted and none waits for a replay.
//!
//! # Checkpoints
//! The spout rewinds (`rewinds() == true`): a checkpoint holds each task's next message number
//! and the numbers it has emitted but not seen acked, so a run resumed from a checkpoint emits
//! exactly the messages after it (exactly-once), or again those unacked (at-least-once). A
//! resume with another parallelism skips, per new task, the numbers the old tasks had emitted.
//!
//! # Known limits
//! - Without checkpoints (no stateful component, at-least-once), a restarted topology starts
//!   again from message 0.
//! - Without `start_time`, timestamps differ between runs (the wall clock); with it, runs are
//!   identical.
//! - `text_file` is read whole into memory, once.

use std::borrow::Cow;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use tokio::time::Instant;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    BoxError, OutputDeclarer, Restore, Snapshot, Spout, SpoutCollector, TaskContext, Value, Values,
    values,
};

/// The sentences of Storm's `RandomSentenceSpout`, used when none are given.
pub const DEFAULT_SENTENCES: [&str; 5] = [
    "the cow jumped over the moon",
    "an apple a day keeps the doctor away",
    "four score and seven years ago",
    "snow white and the seven dwarfs",
    "i am at two with nature",
];

/// The output fields of the `sensors` mode.
pub const SENSOR_FIELDS: [&str; 4] = ["device_id", "temperature", "humidity", "timestamp"];

/// Default number of devices in `sensors` mode.
const DEFAULT_DEVICES: u32 = 10;
/// Default fraction of anomalous readings in `sensors` mode.
const DEFAULT_ANOMALY_RATE: f64 = 0.01;
/// Default number of words of a sentence built from `words`.
const DEFAULT_WORDS_PER_SENTENCE: usize = 8;

/// Most tuples emitted per `next_tuple` call.
const MAX_PER_CALL: u64 = 256;
/// With `rate`: a batch is this much time's worth of messages.
const BATCH_SPAN: Duration = Duration::from_millis(5);
/// With `rate`: the longest wait inside one `next_tuple` call (acks are delivered between calls).
const MAX_WAIT: Duration = Duration::from_millis(50);

/// What the generator emits.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum GeneratorMode {
    /// Sentences: from `sentences`, `text_file` or `words`.
    #[default]
    Sentences,
    /// Sensor readings (`device_id`, `temperature`, `humidity`, `timestamp`).
    Sensors,
}

/// The event time of the first sensor reading: epoch milliseconds or RFC 3339 text.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum StartTime {
    /// Milliseconds since the Unix epoch.
    Millis(i64),
    /// RFC 3339 text, e.g. `"2026-01-01T00:00:00Z"`.
    Text(String),
}

impl StartTime {
    /// The epoch milliseconds, or what is wrong with the text.
    pub fn millis(&self) -> Result<i64, String> {
        match self {
            StartTime::Millis(ms) => Ok(*ms),
            StartTime::Text(s) => {
                let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
                    format!(
                        "option `start_time` = {s:?}: {e}; expected epoch milliseconds or RFC 3339 text like \"2026-01-01T00:00:00Z\""
                    )
                })?;
                let d = t
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|_| format!("option `start_time` = {s:?}: before 1970"))?;
                Ok(d.as_millis() as i64)
            }
        }
    }
}

/// Options of the `generator` spout.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorOptions {
    /// `sentences`: one field of text; `sensors`: (device_id, temperature, humidity, timestamp).
    pub mode: GeneratorMode,
    /// Sentences mode: the sentences to draw from (default: Storm's five example sentences).
    pub sentences: Vec<String>,
    /// Sentences mode: draw from the non-empty lines of this file instead (read when the
    /// topology loads).
    pub text_file: Option<PathBuf>,
    /// Sentences mode: build random sentences from these words instead.
    pub words: Option<Vec<String>>,
    /// Sentences mode with `words`: words per sentence (default 8).
    pub words_per_sentence: Option<usize>,
    /// Messages to emit over all tasks; unset = without end.
    pub count: Option<u64>,
    /// Messages per second over all tasks, released in batches of ~5 ms; unset = as fast as
    /// possible.
    pub rate: Option<f64>,
    /// Seed of every random choice: message n is always the same tuple.
    pub seed: u64,
    /// Sentences mode: the name of the output field.
    pub field: String,
    /// Sensors mode: how many devices (default 10), ids `"sensor-0000"`..; message n is a
    /// reading of device n mod devices.
    pub devices: Option<u32>,
    /// Sensors mode: the fraction of readings 15-25 degrees above the device's normal, from 0 to
    /// 1 (default 0.01).
    pub anomaly_rate: Option<f64>,
    /// Sensors mode: consecutive readings of a device one anomaly lasts (default 1).
    pub anomaly_length: Option<u64>,
    /// Sensors mode: the timestamp of message 0, epoch ms or RFC 3339 text (default: the wall
    /// clock at start); message n is at start_time + n * 1000 / rate ms (1 ms apart without
    /// rate).
    pub start_time: Option<StartTime>,
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        GeneratorOptions {
            mode: GeneratorMode::Sentences,
            sentences: DEFAULT_SENTENCES.iter().map(|s| s.to_string()).collect(),
            text_file: None,
            words: None,
            words_per_sentence: None,
            count: None,
            rate: None,
            seed: 0,
            field: "sentence".to_string(),
            devices: None,
            anomaly_rate: None,
            anomaly_length: None,
            start_time: None,
        }
    }
}

impl GeneratorOptions {
    /// Checks the options without touching the file system; says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        if let Some(r) = self.rate
            && !(r.is_finite() && r > 0.0)
        {
            return Err(format!(
                "option `rate` = {r}: expected messages per second above 0 (unset = as fast as possible)"
            ));
        }
        let default_sentences = self
            .sentences
            .iter()
            .map(String::as_str)
            .eq(DEFAULT_SENTENCES);
        match self.mode {
            GeneratorMode::Sentences => {
                for (set, name) in [
                    (self.devices.is_some(), "devices"),
                    (self.anomaly_rate.is_some(), "anomaly_rate"),
                    (self.anomaly_length.is_some(), "anomaly_length"),
                    (self.start_time.is_some(), "start_time"),
                ] {
                    if set {
                        return Err(format!(
                            "option `{name}` applies to mode = \"sensors\" only; set `mode = \"sensors\"` or remove it"
                        ));
                    }
                }
                let sources = usize::from(!default_sentences)
                    + usize::from(self.text_file.is_some())
                    + usize::from(self.words.is_some());
                if sources > 1 {
                    return Err(
                        "options `sentences`, `text_file` and `words`: give only one of them"
                            .to_string(),
                    );
                }
                if self.sentences.is_empty() {
                    return Err("option `sentences` is empty: give at least one sentence".into());
                }
                if self.field.is_empty() {
                    return Err("option `field` is empty: expected a field name".to_string());
                }
                match &self.words {
                    Some(w) if w.is_empty() => {
                        return Err("option `words` is empty: give at least one word".to_string());
                    }
                    Some(_) => {}
                    None if self.words_per_sentence.is_some() => {
                        return Err(
                            "option `words_per_sentence` applies only with `words`".to_string()
                        );
                    }
                    None => {}
                }
                if self.words_per_sentence == Some(0) {
                    return Err("option `words_per_sentence` = 0: expected at least 1".to_string());
                }
            }
            GeneratorMode::Sensors => {
                for (set, name) in [
                    (!default_sentences, "sentences"),
                    (self.text_file.is_some(), "text_file"),
                    (self.words.is_some(), "words"),
                    (self.words_per_sentence.is_some(), "words_per_sentence"),
                    (self.field != "sentence", "field"),
                ] {
                    if set {
                        return Err(format!(
                            "option `{name}` applies to mode = \"sentences\" only (sensors have the fields device_id, temperature, humidity, timestamp)"
                        ));
                    }
                }
                if self.devices == Some(0) {
                    return Err("option `devices` = 0: expected at least 1".to_string());
                }
                if let Some(a) = self.anomaly_rate
                    && !(0.0..=1.0).contains(&a)
                {
                    return Err(format!(
                        "option `anomaly_rate` = {a}: expected a fraction from 0 to 1"
                    ));
                }
                if self.anomaly_length == Some(0) {
                    return Err("option `anomaly_length` = 0: expected at least 1".to_string());
                }
                if let Some(s) = &self.start_time {
                    s.millis()?;
                }
            }
        }
        Ok(())
    }
}

/// Reads the non-empty lines of `path`, or says which file failed and why.
fn read_lines(path: &PathBuf) -> Result<Vec<Value>, String> {
    let text = std::fs::read(path)
        .map_err(|e| format!("option `text_file` = {:?}: cannot read it: {e}", path))?;
    let text = String::from_utf8(text).map_err(|e| {
        format!(
            "option `text_file` = {:?}: not UTF-8 text (invalid byte at offset {})",
            path,
            e.utf8_error().valid_up_to()
        )
    })?;
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Value::Str(SmolStr::new(l)))
        .collect();
    if lines.is_empty() {
        return Err(format!(
            "option `text_file` = {:?}: the file has no non-empty line",
            path
        ));
    }
    Ok(lines)
}

/// One simulated device: its id value and base readings.
#[derive(Clone, Debug)]
struct Device {
    id: Value,
    temperature: f64,
    humidity: f64,
}

/// What a message number becomes, ready before the first emit.
#[derive(Clone, Debug)]
enum Source {
    /// One of these sentences.
    Sentences(Vec<Value>),
    /// `per_sentence` random words.
    Words {
        words: Vec<SmolStr>,
        per_sentence: usize,
    },
    /// Sensor readings.
    Sensors {
        devices: Vec<Device>,
        anomaly_rate: f64,
        anomaly_length: u64,
        /// Milliseconds between two messages' timestamps.
        interval_ms: f64,
    },
}

/// The per-message random generator: one stream per (seed, n).
fn rng(seed: u64, n: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Rounds to hundredths.
fn hundredths(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The schedule of a task with `rate`: how many new messages are due at an instant.
#[derive(Debug)]
struct Pacer {
    /// Messages per second of this task.
    per_second: f64,
    /// Messages per batch (about [`BATCH_SPAN`] of them, at least one).
    batch: u64,
    /// The first call.
    start: Option<Instant>,
    /// Slots of the schedule used: messages released, plus those skipped after falling behind.
    used: u64,
}

impl Pacer {
    fn new(per_second: f64) -> Pacer {
        Pacer {
            per_second,
            batch: ((per_second * BATCH_SPAN.as_secs_f64()) as u64).max(1),
            start: None,
            used: 0,
        }
    }

    /// How many new messages may be emitted at `now`; forgets a backlog of over a second.
    fn due(&mut self, now: Instant) -> u64 {
        let start = *self.start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start).as_secs_f64();
        // +1: the first message is due at the start.
        let slots = (elapsed * self.per_second) as u64 + 1;
        let due = slots.saturating_sub(self.used);
        let cap = (self.per_second.ceil() as u64).max(self.batch);
        if due > cap {
            self.used += due - cap;
            return cap;
        }
        due
    }

    /// `k` messages were emitted.
    fn took(&mut self, k: u64) {
        self.used += k;
    }

    /// When the next batch is due (the start if not started).
    fn next_batch_at(&self, now: Instant) -> Instant {
        let Some(start) = self.start else {
            return now;
        };
        // Slot `s` is due at start + s / rate; the batch is complete at its last slot.
        let last = self.used + self.batch - 1;
        start + Duration::from_secs_f64(last as f64 / self.per_second)
    }
}

/// The `generator` spout (see the module docs).
pub struct GeneratorSpout {
    opts: Arc<GeneratorOptions>,
    /// The lines of `text_file`, read once (at load with [`try_new`](Self::try_new), else at open).
    lines: Option<Arc<Vec<Value>>>,
    /// Sensors mode without `start_time`: the wall clock of the first task opened, shared.
    start: Arc<OnceLock<i64>>,
    source: Option<Source>,
    /// The next message number of this task.
    next: u64,
    /// Distance between this task's message numbers (the parallelism).
    step: u64,
    /// Failed messages waiting to be emitted again.
    replays: Vec<u64>,
    pacer: Option<Pacer>,
    /// With `rate`: calls in a row that found nothing due (see `next_tuple`).
    empty_calls: u8,
    max_pending: usize,
    /// With acking: the numbers emitted and not yet acked (what a checkpoint must replay).
    unacked: Option<HashSet<u64>>,
    /// After a resume with another parallelism: the old tasks' next numbers (by old index);
    /// a number below its old task's next was emitted before the checkpoint.
    emitted_before: Option<Vec<u64>>,
}

/// A task's position in a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    /// The next new message number.
    next: u64,
    /// Numbers to emit again: failed, or emitted and not acked at the checkpoint.
    replay: Vec<u64>,
}

impl Clone for GeneratorSpout {
    /// A fresh, unopened spout with the same options, file lines and start time.
    fn clone(&self) -> Self {
        GeneratorSpout {
            opts: self.opts.clone(),
            lines: self.lines.clone(),
            start: self.start.clone(),
            source: self.source.clone(),
            next: 0,
            step: 1,
            replays: Vec::new(),
            pacer: None,
            empty_calls: 0,
            max_pending: usize::MAX,
            unacked: None,
            emitted_before: None,
        }
    }
}

impl GeneratorSpout {
    /// A generator with these options, checked when it opens (a bad option fails `open`).
    /// [`try_new`](Self::try_new) checks them, and reads `text_file`, at once.
    pub fn new(opts: GeneratorOptions) -> GeneratorSpout {
        let mut g = GeneratorSpout {
            opts: Arc::new(opts),
            lines: None,
            start: Arc::default(),
            source: None,
            next: 0,
            step: 1,
            replays: Vec::new(),
            pacer: None,
            empty_calls: 0,
            max_pending: usize::MAX,
            unacked: None,
            emitted_before: None,
        };
        // Sentences are available before `open` (for [`sentence`](Self::sentence)).
        g.source = g.build_source().ok();
        g
    }

    /// A generator with these options, checked now, with `text_file` read now; or what is wrong.
    pub fn try_new(opts: GeneratorOptions) -> Result<GeneratorSpout, String> {
        opts.check()?;
        let mut g = GeneratorSpout::new(opts);
        if let Some(path) = &g.opts.text_file {
            g.lines = Some(Arc::new(read_lines(path)?));
        }
        g.source = Some(g.build_source()?);
        Ok(g)
    }

    /// The options.
    pub fn options(&self) -> &GeneratorOptions {
        &self.opts
    }

    /// Makes what message numbers become (reads `text_file` if not read yet).
    fn build_source(&mut self) -> Result<Source, String> {
        let o = &*self.opts;
        Ok(match o.mode {
            GeneratorMode::Sentences => {
                if let Some(words) = &o.words {
                    Source::Words {
                        words: words.iter().map(SmolStr::new).collect(),
                        per_sentence: o.words_per_sentence.unwrap_or(DEFAULT_WORDS_PER_SENTENCE),
                    }
                } else if let Some(path) = &o.text_file {
                    let lines = match &self.lines {
                        Some(l) => l.clone(),
                        None => {
                            let l = Arc::new(read_lines(path)?);
                            self.lines = Some(l.clone());
                            l
                        }
                    };
                    Source::Sentences(lines.to_vec())
                } else {
                    Source::Sentences(
                        o.sentences
                            .iter()
                            .map(|s| Value::Str(SmolStr::new(s)))
                            .collect(),
                    )
                }
            }
            GeneratorMode::Sensors => {
                let n = o.devices.unwrap_or(DEFAULT_DEVICES);
                let devices = (0..n)
                    .map(|d| {
                        let mut r = rng(o.seed ^ 0x5e45_0a5e_ba5e_0000, u64::from(d));
                        Device {
                            id: Value::Str(SmolStr::new(format!("sensor-{d:04}"))),
                            temperature: 18.0 + r.f64() * 8.0,
                            humidity: 35.0 + r.f64() * 30.0,
                        }
                    })
                    .collect();
                Source::Sensors {
                    devices,
                    anomaly_rate: o.anomaly_rate.unwrap_or(DEFAULT_ANOMALY_RATE),
                    anomaly_length: o.anomaly_length.unwrap_or(1),
                    interval_ms: o.rate.map_or(1.0, |r| 1000.0 / r),
                }
            }
        })
    }

    /// The sentence of message `n` (sentences mode; empty in sensors mode, or before `open`
    /// when `text_file` was not read yet).
    pub fn sentence(&self, n: u64) -> Cow<'_, str> {
        match &self.source {
            Some(Source::Sentences(s)) => {
                let i = rng(self.opts.seed, n).usize(..s.len().max(1));
                Cow::Borrowed(s.get(i).and_then(Value::as_str).unwrap_or(""))
            }
            Some(Source::Words {
                words,
                per_sentence,
            }) => {
                let mut r = rng(self.opts.seed, n);
                let mut out = String::with_capacity(per_sentence * 8);
                for k in 0..*per_sentence {
                    if k > 0 {
                        out.push(' ');
                    }
                    out.push_str(&words[r.usize(..words.len())]);
                }
                Cow::Owned(out)
            }
            _ => Cow::Borrowed(""),
        }
    }

    /// The tuple of message `n` (after `open`, or from [`try_new`](Self::try_new); sensors mode
    /// without `start_time` needs `open` for its start).
    pub fn tuple(&self, n: u64) -> Values {
        match &self.source {
            Some(Source::Sentences(s)) => {
                let i = rng(self.opts.seed, n).usize(..s.len().max(1));
                values![s.get(i).cloned().unwrap_or_default()]
            }
            Some(Source::Words { .. }) => values![self.sentence(n).into_owned()],
            Some(Source::Sensors {
                devices,
                anomaly_rate,
                anomaly_length,
                interval_ms,
            }) => {
                let count = devices.len() as u64;
                let d = (n % count) as usize;
                let device = &devices[d];
                // The run of readings of this device that `n` belongs to decides the anomaly.
                let run = (n / count) / anomaly_length;
                let mut run_rng = rng(self.opts.seed ^ 0xa0a1_0000_0000_0000 ^ d as u64, run);
                let offset = if run_rng.f64() < *anomaly_rate {
                    15.0 + run_rng.f64() * 10.0
                } else {
                    0.0
                };
                let mut r = rng(self.opts.seed, n);
                let temperature = device.temperature + offset + (r.f64() + r.f64() - 1.0);
                let humidity = device.humidity + 2.0 * (r.f64() + r.f64() - 1.0);
                let start = self.start_millis();
                let timestamp = start + (n as f64 * interval_ms) as i64;
                values![
                    device.id.clone(),
                    hundredths(temperature),
                    hundredths(humidity),
                    timestamp
                ]
            }
            None => Values::new(),
        }
    }

    /// The event time of message 0 (sensors mode).
    fn start_millis(&self) -> i64 {
        match self.opts.start_time.as_ref().map(StartTime::millis) {
            Some(Ok(ms)) => ms,
            _ => *self.start.get_or_init(topo_runtime::clock::now_millis),
        }
    }

    fn has_more(&self) -> bool {
        self.opts.count.is_none_or(|c| self.next < c)
    }

    /// Whether message `n` was emitted before the checkpoint this task resumed from, by an
    /// old task of another parallelism.
    fn emitted_before(&self, n: u64) -> bool {
        self.emitted_before
            .as_ref()
            .is_some_and(|old| n < old[(n % old.len() as u64) as usize])
    }

    /// Emits message `n` on the default stream.
    fn emit(&mut self, n: u64, out: &mut SpoutCollector<'_, u64>) {
        if let Some(u) = self.unacked.as_mut() {
            u.insert(n);
        }
        out.emit(self.tuple(n), n);
    }
}

impl Spout for GeneratorSpout {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        match self.opts.mode {
            GeneratorMode::Sentences => out.declare([self.opts.field.as_str()]),
            GeneratorMode::Sensors => out.declare(SENSOR_FIELDS),
        };
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        self.opts.check()?;
        self.source = Some(self.build_source()?);
        if self.opts.mode == GeneratorMode::Sensors {
            self.start_millis();
        }
        self.next = ctx.task_index() as u64;
        self.step = ctx.parallelism() as u64;
        self.pacer = self
            .opts
            .rate
            .map(|r| Pacer::new(r / ctx.parallelism() as f64));
        self.max_pending = ctx.config().max_spout_pending.unwrap_or(usize::MAX);
        self.unacked = ctx.config().acking().then(HashSet::new);
        Ok(())
    }

    fn rewinds(&self) -> bool {
        true
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        let mut replay = self.replays.clone();
        if let Some(u) = &self.unacked {
            replay.extend(u.iter().copied());
        }
        replay.sort_unstable();
        replay.dedup();
        snap.put(
            "position",
            &Position {
                next: self.next,
                replay,
            },
        );
        Ok(())
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        if let Some(p) = from.get::<Position>("position")? {
            self.next = p.next;
            self.replays = p.replay;
            self.replays.reverse();
            return Ok(());
        }
        let old: Vec<Position> = from.get_all("position")?;
        if old.is_empty() {
            return Ok(());
        }
        // Another parallelism: this task's numbers that an old task had not emitted yet.
        let (index, step) = (self.next, self.step);
        let lowest = old.iter().map(|p| p.next).min().unwrap_or(0);
        self.next = lowest - lowest % step + index;
        if self.next < lowest {
            self.next += step;
        }
        self.replays = old
            .iter()
            .flat_map(|p| p.replay.iter().copied())
            .filter(|n| n % step == index)
            .collect();
        self.replays.sort_unstable_by(|a, b| b.cmp(a));
        self.emitted_before = Some(old.iter().map(|p| p.next).collect());
        Ok(())
    }

    fn ack(&mut self, n: u64) {
        if let Some(u) = self.unacked.as_mut() {
            u.remove(&n);
        }
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        let max_pending = self.max_pending;
        let room = |out: &SpoutCollector<'_, u64>| out.pending() < max_pending;
        // Replays first, at once.
        if !self.replays.is_empty() {
            let mut k = 0;
            while k < MAX_PER_CALL && room(out) {
                let Some(n) = self.replays.pop() else { break };
                self.emit(n, out);
                k += 1;
            }
            return Ok(());
        }
        if !self.has_more() {
            return Ok(());
        }
        let mut budget = MAX_PER_CALL;
        if let Some(pacer) = &mut self.pacer {
            let now = Instant::now();
            let mut due = pacer.due(now);
            if due == 0 {
                // Return empty first: a round of calls that emitted nothing makes the runtime
                // send what it has buffered, so a batch is not held back while this task waits
                // for the next one (the first empty call may end a round that emitted).
                if self.empty_calls < 2 {
                    self.empty_calls += 1;
                    return Ok(());
                }
                let wake = pacer.next_batch_at(now).min(now + MAX_WAIT);
                tokio::time::sleep_until(wake).await;
                due = pacer.due(Instant::now());
            }
            budget = budget.min(due);
            self.empty_calls = 0;
        }
        let mut k = 0;
        while k < budget && self.has_more() && room(out) {
            let n = self.next;
            self.next += self.step;
            if self.emitted_before.is_some() && self.emitted_before(n) {
                continue;
            }
            self.emit(n, out);
            k += 1;
        }
        if let Some(pacer) = &mut self.pacer {
            pacer.took(k);
        }
        Ok(())
    }

    fn fail(&mut self, n: u64) {
        self.replays.push(n);
    }

    fn is_exhausted(&self) -> bool {
        !self.has_more() && self.replays.is_empty()
    }
}

/// The `generator` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::spout(
            "generator",
            "synthetic sentences or sensor readings, deterministic from a seed, at a rate or as fast as possible; replays identical tuples",
            GeneratorSpout::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components generator`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[spouts.sentences]
kind = "generator"
count = 100000            # then the spout is exhausted (`topo run --until-idle` ends)
rate = 20000              # per second over all tasks; unset = as fast as possible
seed = 7                  # message n is always the same tuple (replays are identical)
sentences = ["the cow jumped over the moon", "an apple a day keeps the doctor away"]
# or: text_file = "corpus.txt" (its non-empty lines), or: words = ["a", "b"], words_per_sentence = 8

# sensor readings instead: fields device_id, temperature, humidity, timestamp (epoch ms)
# [spouts.readings]  kind = "generator"  mode = "sensors"  rate = 20000  devices = 10
#   anomaly_rate = 0.01  anomaly_length = 200  start_time = "2026-01-01T00:00:00Z"
"#;

impl FromOptions for GeneratorSpout {
    type Options = GeneratorOptions;
    fn from_options(options: GeneratorOptions) -> Result<Self, String> {
        GeneratorSpout::try_new(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use topo_runtime::testing::CaptureBolt;

    /// Runs a generator with these options and `parallelism` tasks until idle; the tuples received.
    async fn run(opts: GeneratorOptions, parallelism: usize) -> Vec<Values> {
        let sink = CaptureBolt::new();
        let mut b = topo_dsl::TopologyBuilder::new("gen");
        let spout = GeneratorSpout::try_new(opts).expect("valid options");
        b.set_spout("gen", move || spout.clone(), parallelism);
        b.set_bolt("sink", sink.factory(), 1)
            .shuffle_grouping("gen");
        let handle = topo_runtime::submit(b.build().expect("valid"));
        handle
            .wait_until_idle(Duration::from_secs(20))
            .await
            .expect("idle");
        handle.stop(Duration::from_secs(5)).await;
        sink.tuples().into_iter().map(|c| c.values).collect()
    }

    fn sorted_strings(tuples: &[Values]) -> Vec<String> {
        let mut v: Vec<String> = tuples.iter().map(|t| format!("{t:?}")).collect();
        v.sort();
        v
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn emits_count_messages_over_all_tasks_deterministically() {
        let opts = GeneratorOptions {
            count: Some(100),
            seed: 7,
            ..Default::default()
        };
        let got = run(opts.clone(), 3).await;
        let g = GeneratorSpout::new(opts);
        let mut got: Vec<String> = got.iter().map(|v| v[0].to_string()).collect();
        let mut want: Vec<String> = (0..100).map(|n| g.sentence(n).to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sensor_readings_are_deterministic_whatever_the_parallelism() {
        let opts = GeneratorOptions {
            mode: GeneratorMode::Sensors,
            count: Some(500),
            seed: 3,
            devices: Some(7),
            start_time: Some(StartTime::Text("2026-01-01T00:00:00Z".into())),
            rate: Some(1_000_000.0),
            ..Default::default()
        };
        let one = run(opts.clone(), 1).await;
        let three = run(opts.clone(), 3).await;
        assert_eq!(one.len(), 500);
        assert_eq!(sorted_strings(&one), sorted_strings(&three));
        // Message n: device n mod 7, timestamp start + n / rate (1 µs apart: whole ms).
        let g = GeneratorSpout::try_new(opts).expect("valid");
        let t = g.tuple(123);
        assert_eq!(t[0].as_str(), Some("sensor-0004"));
        assert_eq!(t[3], Value::Int(1_767_225_600_000));
        assert_eq!(g.tuple(2500)[3], Value::Int(1_767_225_600_002));
        assert_eq!(g.tuple(123), t, "a replay is identical");
        let ids: std::collections::BTreeSet<String> =
            one.iter().map(|v| v[0].to_string()).collect();
        assert_eq!(ids.len(), 7);
    }

    #[test]
    fn a_different_seed_gives_other_readings() {
        let mk = |seed| {
            GeneratorSpout::try_new(GeneratorOptions {
                mode: GeneratorMode::Sensors,
                seed,
                start_time: Some(StartTime::Millis(0)),
                ..Default::default()
            })
            .expect("valid")
        };
        let (a, b) = (mk(1), mk(2));
        assert!((0..20).any(|n| a.tuple(n) != b.tuple(n)));
        assert_eq!(a.tuple(5), mk(1).tuple(5));
    }

    #[test]
    fn anomalies_are_about_the_given_fraction_and_far_above_normal() {
        for (rate, length) in [(0.05, 1), (0.1, 20)] {
            let g = GeneratorSpout::try_new(GeneratorOptions {
                mode: GeneratorMode::Sensors,
                seed: 11,
                devices: Some(5),
                anomaly_rate: Some(rate),
                anomaly_length: Some(length),
                start_time: Some(StartTime::Millis(0)),
                ..Default::default()
            })
            .expect("valid");
            let n = 200_000;
            let mut hot = 0u64;
            for i in 0..n {
                let t = g.tuple(i);
                let temperature = t[1].as_f64().expect("a float");
                let humidity = t[2].as_f64().expect("a float");
                assert!((33.0..=67.0).contains(&humidity), "{humidity}");
                // Normal readings: 17–27 °C; anomalies: 15–25 above a base of 18–26, so over 32.
                if temperature > 30.0 {
                    assert!(temperature >= 32.0, "{temperature}");
                    hot += 1;
                } else {
                    assert!((17.0..=27.0).contains(&temperature), "{temperature}");
                }
            }
            let fraction = hot as f64 / n as f64;
            assert!(
                (rate * 0.8..rate * 1.2).contains(&fraction),
                "anomaly_rate {rate}, length {length}: {fraction}"
            );
        }
        let none = GeneratorSpout::try_new(GeneratorOptions {
            mode: GeneratorMode::Sensors,
            anomaly_rate: Some(0.0),
            start_time: Some(StartTime::Millis(0)),
            ..Default::default()
        })
        .expect("valid");
        assert!((0..10_000).all(|n| none.tuple(n)[1].as_f64().is_some_and(|t| t < 28.0)));
    }

    #[test]
    fn runs_of_anomalies_last_anomaly_length_readings_of_a_device() {
        let g = GeneratorSpout::try_new(GeneratorOptions {
            mode: GeneratorMode::Sensors,
            devices: Some(3),
            anomaly_rate: Some(0.3),
            anomaly_length: Some(10),
            start_time: Some(StartTime::Millis(0)),
            ..Default::default()
        })
        .expect("valid");
        // Device 1's readings are n = 1, 4, 7, ...; each run of 10 is all hot or all normal.
        let hot: Vec<bool> = (0..300)
            .map(|k| g.tuple(1 + 3 * k)[1].as_f64().is_some_and(|t| t > 30.0))
            .collect();
        for run in hot.chunks(10) {
            assert!(run.iter().all(|&h| h == run[0]), "{run:?}");
        }
        assert!(hot.contains(&true) && hot.contains(&false));
    }

    #[test]
    fn words_build_sentences_of_the_given_length() {
        let g = GeneratorSpout::try_new(GeneratorOptions {
            sentences: DEFAULT_SENTENCES.iter().map(|s| s.to_string()).collect(),
            words: Some(vec!["alpha".into(), "beta".into(), "gamma".into()]),
            words_per_sentence: Some(4),
            seed: 9,
            ..Default::default()
        })
        .expect("valid");
        let s = g.sentence(17).into_owned();
        assert_eq!(s.split(' ').count(), 4);
        assert!(
            s.split(' ')
                .all(|w| ["alpha", "beta", "gamma"].contains(&w))
        );
        assert_eq!(g.tuple(17)[0].as_str(), Some(s.as_str()));
        assert!((0..50).any(|n| g.sentence(n) != g.sentence(0)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn text_file_lines_are_the_sentences() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("corpus.txt");
        std::fs::write(&path, "first line\r\n\n   \nsecond line\nthird\n").expect("write");
        let opts = GeneratorOptions {
            text_file: Some(path),
            count: Some(300),
            ..Default::default()
        };
        let got = run(opts, 2).await;
        let seen: std::collections::BTreeSet<String> =
            got.iter().map(|v| v[0].to_string()).collect();
        assert_eq!(got.len(), 300);
        assert_eq!(
            seen.into_iter().collect::<Vec<_>>(),
            ["first line", "second line", "third"]
        );
    }

    #[test]
    fn text_file_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope.txt");
        let e = GeneratorSpout::try_new(GeneratorOptions {
            text_file: Some(missing.clone()),
            ..Default::default()
        })
        .err()
        .expect("an error");
        assert!(
            e.contains("text_file") && e.contains("nope.txt") && e.contains("cannot read"),
            "{e}"
        );
        let empty = dir.path().join("empty.txt");
        std::fs::write(&empty, "\n  \n\n").expect("write");
        let e = GeneratorSpout::try_new(GeneratorOptions {
            text_file: Some(empty),
            ..Default::default()
        })
        .err()
        .expect("an error");
        assert!(
            e.contains("empty.txt") && e.contains("no non-empty line"),
            "{e}"
        );
        let binary = dir.path().join("bin.dat");
        std::fs::write(&binary, b"ok\n\xff\xfe\n").expect("write");
        let e = GeneratorSpout::try_new(GeneratorOptions {
            text_file: Some(binary),
            ..Default::default()
        })
        .err()
        .expect("an error");
        assert!(e.contains("bin.dat") && e.contains("not UTF-8"), "{e}");
    }

    #[test]
    fn bad_options_are_refused_with_the_option_named() {
        let cases: Vec<(GeneratorOptions, &str)> = vec![
            (
                GeneratorOptions {
                    rate: Some(0.0),
                    ..Default::default()
                },
                "option `rate` = 0",
            ),
            (
                GeneratorOptions {
                    devices: Some(3),
                    ..Default::default()
                },
                "option `devices` applies to mode = \"sensors\"",
            ),
            (
                GeneratorOptions {
                    mode: GeneratorMode::Sensors,
                    anomaly_rate: Some(1.5),
                    ..Default::default()
                },
                "option `anomaly_rate` = 1.5",
            ),
            (
                GeneratorOptions {
                    mode: GeneratorMode::Sensors,
                    field: "x".into(),
                    ..Default::default()
                },
                "option `field` applies to mode = \"sentences\"",
            ),
            (
                GeneratorOptions {
                    mode: GeneratorMode::Sensors,
                    start_time: Some(StartTime::Text("yesterday".into())),
                    ..Default::default()
                },
                "option `start_time` = \"yesterday\"",
            ),
            (
                GeneratorOptions {
                    sentences: vec!["a".into()],
                    words: Some(vec!["b".into()]),
                    ..Default::default()
                },
                "give only one of them",
            ),
            (
                GeneratorOptions {
                    sentences: vec![],
                    ..Default::default()
                },
                "option `sentences` is empty",
            ),
            (
                GeneratorOptions {
                    words_per_sentence: Some(3),
                    ..Default::default()
                },
                "applies only with `words`",
            ),
        ];
        for (opts, want) in cases {
            let e = GeneratorSpout::try_new(opts.clone())
                .err()
                .unwrap_or_else(|| panic!("accepted: {opts:?}"));
            assert!(e.contains(want), "{e:?} should contain {want:?}");
        }
    }

    /// Fails the first delivery of each message (by its values), acks the next.
    #[derive(Clone, Default)]
    struct FailFirst {
        seen: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
        delivered: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl topo_runtime::BasicBolt for FailFirst {
        fn execute(
            &mut self,
            input: &topo_runtime::Tuple,
            _out: &mut topo_runtime::BasicCollector<'_>,
        ) -> Result<(), BoxError> {
            let key = format!("{:?}", input.values());
            if self.seen.lock().expect("lock").insert(key.clone()) {
                return Err("first delivery fails".into());
            }
            self.delivered.lock().expect("lock").push(key);
            Ok(())
        }
    }

    // Guards that a failed message is emitted again identical: every reading is delivered,
    // and what is delivered is exactly the readings of messages 0..count.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_messages_are_replayed_identical() {
        let opts = GeneratorOptions {
            mode: GeneratorMode::Sensors,
            count: Some(300),
            start_time: Some(StartTime::Millis(1_000)),
            ..Default::default()
        };
        let bolt = FailFirst::default();
        let b2 = bolt.clone();
        let mut b = topo_dsl::TopologyBuilder::new("gen-replay");
        let spout = GeneratorSpout::try_new(opts).expect("valid");
        let g = spout.clone();
        b.set_spout("gen", move || spout.clone(), 2);
        b.set_bolt(
            "flaky",
            topo_runtime::BoltFactory::basic(move || b2.clone()),
            1,
        )
        .shuffle_grouping("gen");
        let handle = topo_runtime::submit(b.build().expect("valid"));
        handle
            .wait_until_idle(Duration::from_secs(20))
            .await
            .expect("idle");
        handle.stop(Duration::from_secs(5)).await;
        let mut got = bolt.delivered.lock().expect("lock").clone();
        got.sort();
        let mut want: Vec<String> = (0..300).map(|n| format!("{:?}", g.tuple(n))).collect();
        want.sort();
        assert_eq!(got, want);
    }

    /// Counts its inputs.
    #[derive(Clone, Default)]
    struct CountSink(std::sync::Arc<std::sync::atomic::AtomicU64>);

    impl topo_runtime::BasicBolt for CountSink {
        fn execute(
            &mut self,
            _input: &topo_runtime::Tuple,
            _out: &mut topo_runtime::BasicCollector<'_>,
        ) -> Result<(), BoxError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
    }

    /// Throughput of sensor readings into a counting sink (fields grouping on device_id, acking
    /// on): `cargo test --release -p topo-spouts --lib -- --ignored --nocapture throughput`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "a measurement: run it in release mode"]
    async fn sensors_throughput_into_a_counting_sink() {
        const N: u64 = 2_000_000;
        let sink = CountSink::default();
        let s2 = sink.clone();
        let mut b = topo_dsl::TopologyBuilder::new("gen-throughput");
        let spout = GeneratorSpout::try_new(GeneratorOptions {
            mode: GeneratorMode::Sensors,
            count: Some(N),
            start_time: Some(StartTime::Millis(0)),
            ..Default::default()
        })
        .expect("valid");
        b.set_spout("gen", move || spout.clone(), 1);
        b.set_bolt(
            "count",
            topo_runtime::BoltFactory::basic(move || s2.clone()),
            1,
        )
        .fields_grouping("gen", ["device_id"]);
        let start = std::time::Instant::now();
        let handle = topo_runtime::submit(b.build().expect("valid"));
        handle
            .wait_until_idle(Duration::from_secs(120))
            .await
            .expect("idle");
        let secs = start.elapsed().as_secs_f64();
        handle.stop(Duration::from_secs(5)).await;
        let n = sink.0.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(n, N);
        println!(
            "generator sensors -> counting sink: {N} tuples in {secs:.2} s = {:.0} tuples/s",
            N as f64 / secs
        );
    }

    /// Paused tokio time: the clock moves only when every task waits, so the count of tuples
    /// emitted by a virtual instant is exact up to one batch, whatever the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn rate_paces_the_stream_in_virtual_time() {
        let sink = CaptureBolt::new();
        let mut b = topo_dsl::TopologyBuilder::new("gen-rate");
        let spout = GeneratorSpout::try_new(GeneratorOptions {
            mode: GeneratorMode::Sensors,
            rate: Some(2000.0),
            start_time: Some(StartTime::Millis(0)),
            ..Default::default()
        })
        .expect("valid");
        b.set_spout("gen", move || spout.clone(), 2);
        b.set_bolt("sink", sink.factory(), 1)
            .shuffle_grouping("gen");
        let handle = topo_runtime::submit(b.build().expect("valid"));
        let start = Instant::now();
        let mut seen = Vec::new();
        for secs in 1..=3u64 {
            tokio::time::sleep_until(start + Duration::from_secs(secs)).await;
            seen.push(sink.len());
        }
        handle.stop(Duration::from_secs(5)).await;
        // 2000/s over 2 tasks: 2000 more each second, give or take a batch of 5 ms per task
        // (the tasks start a few virtual milliseconds after `start`).
        for (i, &n) in seen.iter().enumerate() {
            let want = 2000 * (i + 1);
            assert!(
                (want - 20..=want + 20).contains(&n),
                "after {}s: {n} tuples, expected about {want} ({seen:?})",
                i + 1
            );
        }
    }
}
