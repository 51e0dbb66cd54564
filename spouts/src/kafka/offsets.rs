//! The Kafka spout's partition tracking: per assigned partition ([`Part`]) the records emitted
//! and held until acked, the contiguous handled prefix (an [`AckedPrefix`] of offsets) and the
//! commit point checked against it; per task ([`Parts`]) the partitions assigned, their slots
//! (a message id names its slot and offset) and the replays waiting for their time.
//!
//! ```text
//!  poll ──► Part::next ──emit──► held {offset: Held} ──ack──► handled ──► prefix.committed()
//!                                      │ fail: Parts::replay (due, slot, offset)      │
//!                                      └──────────── replayed later ◄─────────────────┘
//!  commit: Parts::to_commit ──► checked_commit_point (never past a held or unread offset)
//!  with checkpoints: snapshot (next, or the checked acked prefix) ──► committed when the
//!                    checkpoint completes; `Part::outstanding` caps reading past the prefix
//! ```

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;

use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use smol_str::SmolStr;
use tokio::time::Instant;
use topo_runtime::Values;

use super::rebalance::SpoutContext;
use super::source::KafkaCounters;
use crate::connector::acked::AckedPrefix;

/// What a held record needs to be produced to the dead-letter topic.
#[derive(Clone, Debug)]
pub(super) struct RawRecord {
    pub(super) key: Option<Vec<u8>>,
    pub(super) value: Option<Vec<u8>>,
    pub(super) headers: Vec<(String, Option<Vec<u8>>)>,
}

/// An emitted record, held until acked.
pub(super) struct Held {
    pub(super) values: Values,
    pub(super) failures: u32,
    /// With a dead-letter topic: the record as read.
    pub(super) raw: Option<RawRecord>,
}

/// One assigned partition.
///
/// Offsets below `next` have been read. Each is emitted and `held` until acked, or handled
/// otherwise (undecodable, dead-lettered, given up, absent from the broker); `prefix` tracks
/// the contiguous handled prefix from `origin`, and that is all that is ever committed.
pub(super) struct Part {
    /// Offsets handled (acked, undecodable, given up, absent); `None` until reading starts.
    pub(super) prefix: Option<AckedPrefix>,
    /// Where `prefix` starts.
    pub(super) origin: u64,
    /// How many offsets were handled since `origin`: the invariant behind every commit is
    /// `handled == commit point - origin + offsets handled past a gap`.
    pub(super) handled: u64,
    /// The offset after the last one read.
    pub(super) next: u64,
    /// The committed offset reading started from, when the group had one: the first record
    /// must be this one (a broker answering from further on is asked again from earlier).
    pub(super) start: Option<u64>,
    /// Emitted and not yet acked.
    pub(super) held: HashMap<u64, Held>,
    /// The offset last committed (or known committed).
    pub(super) committed: Option<u64>,
    /// Reading (re)started (assignment, seek) and no record has arrived since: the first one's
    /// offset is not yet known to follow the last one read.
    pub(super) fresh: bool,
    /// When reading last (re)started.
    pub(super) since: Instant,
    /// When a poll last brought records.
    pub(super) last_record: Instant,
    /// Offsets stepped back on the last re-read (0: none under way).
    pub(super) back: u64,
    /// The last poll reached the end of the partition.
    pub(super) at_end: bool,
    /// Not read while `max_uncommitted` offsets are uncommitted.
    pub(super) paused: bool,
}

impl Part {
    pub(super) fn new(start: Option<u64>) -> Part {
        Part {
            prefix: None,
            origin: 0,
            handled: 0,
            next: 0,
            start,
            held: HashMap::new(),
            committed: None,
            fresh: true,
            since: Instant::now(),
            last_record: Instant::now(),
            back: 0,
            at_end: false,
            paused: false,
        }
    }
    /// Starts the prefix at `offset`, where reading begins.
    pub(super) fn begin(&mut self, offset: u64) {
        self.prefix = Some(AckedPrefix::new(offset));
        self.origin = offset;
        self.next = offset;
    }
    /// The offset to commit: after the contiguous handled prefix.
    pub(super) fn commit_point(&self) -> Option<u64> {
        self.prefix.as_ref().map(AckedPrefix::committed)
    }
    /// Where reading is: the offset expected next.
    pub(super) fn position(&self) -> Option<u64> {
        if self.prefix.is_some() {
            Some(self.next)
        } else {
            self.start
        }
    }
    /// Offsets read but not (known to be) committed: from the last commit, or from where
    /// reading started while none was made.
    pub(super) fn uncommitted(&self) -> u64 {
        match (&self.prefix, self.committed) {
            (None, _) => 0,
            (Some(_), Some(c)) => self.next.saturating_sub(c),
            (Some(_), None) => self.next.saturating_sub(self.origin),
        }
    }
    /// Offsets that hold reading back at `max_uncommitted`: those not committed, or in a run
    /// that takes checkpoints (it commits only when a checkpoint completes) those read past
    /// the contiguous acked prefix, so that the cap bounds memory and not throughput.
    pub(super) fn outstanding(&self, checkpointed: bool) -> u64 {
        if checkpointed {
            self.commit_point()
                .map_or(0, |c| self.next.saturating_sub(c))
        } else {
            self.uncommitted()
        }
    }
    /// The offsets `[from, to)` are handled (each exactly once).
    pub(super) fn handle(&mut self, from: u64, to: u64) {
        if let Some(p) = &mut self.prefix {
            p.ack(from, to);
            self.handled += to - from;
        }
    }
    pub(super) fn handled(&mut self, offset: u64) {
        self.handle(offset, offset + 1);
    }
    /// The commit point, checked: it never passes an offset not read, an emitted offset not
    /// yet acked, or an offset not handled. `Err` says which rule it would break.
    pub(super) fn checked_commit_point(&self) -> Option<Result<u64, String>> {
        let p = self.prefix.as_ref()?;
        let c = p.committed();
        if c > self.next {
            return Some(Err(format!(
                "commit point {c} is past the next offset to read, {}",
                self.next
            )));
        }
        if let Some(o) = self.held.keys().copied().filter(|o| *o < c).min() {
            return Some(Err(format!(
                "commit point {c} is past offset {o}, emitted and not yet acked"
            )));
        }
        let counted = (c - self.origin) + p.ahead_len();
        if counted != self.handled {
            return Some(Err(format!(
                "commit point {c} covers {counted} offsets from {} but {} were handled",
                self.origin, self.handled
            )));
        }
        Some(Ok(c))
    }
}

/// Partition state shared by the spout and the rebalance callback (which runs inside `poll`).
#[derive(Default)]
pub(super) struct Parts {
    /// Slot index -> (topic, partition); a message id names the slot.
    pub(super) slots: Vec<(SmolStr, i32)>,
    pub(super) slot_of: HashMap<(SmolStr, i32), u32>,
    /// The partitions assigned now.
    pub(super) live: HashMap<u32, Part>,
    /// Queues of partitions assigned since the spout last polled, for it to take.
    pub(super) incoming: Vec<(u32, PartitionQueue<SpoutContext>)>,
    /// Partitions this task was ever assigned (for `earliest`/`latest`).
    pub(super) started: HashSet<u32>,
    /// Failed records waiting for their replay time: (due, slot, offset).
    pub(super) replay: BTreeSet<(Instant, u32, u64)>,
    /// An assignment has been received since the spout opened.
    pub(super) assigned_once: bool,
    /// Between a revocation and the next assignment.
    pub(super) rebalancing: bool,
}

impl Parts {
    pub(super) fn slot(&mut self, topic: &str, partition: i32) -> u32 {
        if let Some(s) = self.slot_of.get(&(SmolStr::new(topic), partition)) {
            return *s;
        }
        let s = self.slots.len() as u32;
        self.slots.push((SmolStr::new(topic), partition));
        self.slot_of.insert((SmolStr::new(topic), partition), s);
        s
    }

    /// Offsets to commit of the given slots: those whose commit point moved, or with `all`
    /// every one (a final, synchronous commit that must not rely on one still in flight). A
    /// commit point that fails [`Part::checked_commit_point`] is not committed: it is counted
    /// and logged as an error.
    pub(super) fn to_commit(
        &self,
        slots: impl Iterator<Item = u32>,
        all: bool,
        counters: &KafkaCounters,
        component: &str,
    ) -> Vec<(u32, u64)> {
        slots
            .filter_map(|s| {
                let p = self.live.get(&s)?;
                match p.checked_commit_point()? {
                    Ok(c) => (all || p.committed != Some(c)).then_some((s, c)),
                    Err(why) => {
                        let (t, n) = &self.slots[s as usize];
                        counters.refused_commits.fetch_add(1, Relaxed);
                        counters
                            .log
                            .record_error(component, format!("not committing {t}/{n}: {why}"));
                        None
                    }
                }
            })
            .collect()
    }

    pub(super) fn tpl(&self, offsets: &[(u32, u64)]) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (s, off) in offsets {
            let (t, p) = &self.slots[*s as usize];
            let _ = tpl.add_partition_offset(t, *p, Offset::Offset(*off as i64));
        }
        tpl
    }
}
