//! `generator`: a synthetic stream of sentences, deterministic from a seed, with a count limit.
//!
//! Message `n` always carries the same sentence (chosen from the seed and `n`), so a failed
//! message is replayed exactly: **delivery: at-least-once, replays identical tuples**. With
//! several tasks, task `i` of `p` emits the messages `n ≡ i (mod p)`, so the topology emits
//! `count` messages in all whatever the parallelism.

use serde::Deserialize;
use topo_runtime::{BoxError, OutputDeclarer, Spout, SpoutCollector, TaskContext, values};

/// The sentences of Storm's `RandomSentenceSpout`, used when none are given.
pub const DEFAULT_SENTENCES: [&str; 5] = [
    "the cow jumped over the moon",
    "an apple a day keeps the doctor away",
    "four score and seven years ago",
    "snow white and the seven dwarfs",
    "i am at two with nature",
];

/// Options of the `generator` spout.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneratorOptions {
    /// The sentences to draw from (default: Storm's five example sentences).
    pub sentences: Vec<String>,
    /// How many messages to emit over all tasks; unset = without end.
    pub count: Option<u64>,
    /// Seed of the choice of sentence per message.
    pub seed: u64,
    /// The name of the output field.
    pub field: String,
}

impl Default for GeneratorOptions {
    fn default() -> Self {
        GeneratorOptions {
            sentences: DEFAULT_SENTENCES.iter().map(|s| s.to_string()).collect(),
            count: None,
            seed: 0,
            field: "sentence".to_string(),
        }
    }
}

/// The `generator` spout (see the module docs).
pub struct GeneratorSpout {
    opts: GeneratorOptions,
    /// The next message number of this task.
    next: u64,
    /// Distance between this task's message numbers (the parallelism).
    step: u64,
    /// Failed messages waiting to be emitted again.
    replays: Vec<u64>,
}

impl GeneratorSpout {
    /// A generator with these options.
    pub fn new(opts: GeneratorOptions) -> GeneratorSpout {
        GeneratorSpout {
            opts,
            next: 0,
            step: 1,
            replays: Vec::new(),
        }
    }

    /// The sentence of message `n`.
    pub fn sentence(&self, n: u64) -> &str {
        let len = self.opts.sentences.len().max(1) as u64;
        let i = fastrand::Rng::with_seed(self.opts.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .u64(..len);
        self.opts
            .sentences
            .get(i as usize)
            .map_or("", String::as_str)
    }

    fn has_more(&self) -> bool {
        self.opts.count.is_none_or(|c| self.next < c)
    }
}

impl Spout for GeneratorSpout {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare([self.opts.field.as_str()]);
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        if self.opts.sentences.is_empty() {
            return Err("option `sentences` is empty: give at least one sentence".into());
        }
        self.next = ctx.task_index() as u64;
        self.step = ctx.parallelism() as u64;
        Ok(())
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        let n = match self.replays.pop() {
            Some(n) => n,
            None if self.has_more() => {
                self.next += self.step;
                self.next - self.step
            }
            None => return Ok(()),
        };
        out.emit(values![self.sentence(n)], n);
        Ok(())
    }

    fn fail(&mut self, n: u64) {
        self.replays.push(n);
    }

    fn is_exhausted(&self) -> bool {
        !self.has_more() && self.replays.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use topo_runtime::testing::CaptureBolt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn emits_count_messages_over_all_tasks_deterministically() {
        let opts = GeneratorOptions {
            count: Some(100),
            seed: 7,
            ..Default::default()
        };
        let sink = CaptureBolt::new();
        let mut b = topo_dsl::TopologyBuilder::new("gen");
        let o = opts.clone();
        b.set_spout("gen", move || GeneratorSpout::new(o.clone()), 3);
        b.set_bolt("sink", sink.factory(), 1)
            .shuffle_grouping("gen");
        let handle = topo_runtime::submit(b.build().expect("valid"));
        handle
            .wait_until_idle(Duration::from_secs(10))
            .await
            .expect("idle");
        handle.stop(Duration::from_secs(5)).await;
        let mut got: Vec<String> = sink
            .tuples()
            .iter()
            .map(|c| c.values[0].to_string())
            .collect();
        let g = GeneratorSpout::new(opts);
        let mut want: Vec<String> = (0..100).map(|n| g.sentence(n).to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }
}
