//! The acked-prefix tracker of the sources that resume from a position: the `file` spout (byte
//! offsets of lines), the `kafka` spout (offsets of a partition) and the `kinesis` spout (records
//! of a shard). Acks arrive in any order; what may be checkpointed or committed is the end of the
//! longest run acked from the start.
//!
//! ```text
//!  positions   [0,10) [10,25) [25,30) [30,50)
//!  acked          ✓       ·       ✓      ✓      committed() = 10, waiting() = 2
//!  ack [10,25) ───────────────────────────────► committed() = 50, waiting() = 0
//! ```

use std::collections::VecDeque;

/// The end of the longest acked prefix of a source's positions, from acks in any order.
///
/// Records are ranges `[start, end)` that follow one another without gaps (a file's lines as byte
/// ranges, a partition's offsets `[o, o + 1)`, a shard's records by index); the tracker starts
/// at the position reading started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedPrefix {
    /// Every byte before this is acked.
    committed: u64,
    /// Acked ranges after a gap, `(start, end)`, ascending by start. Acks come nearly in
    /// order (trees complete about as they were emitted), so a new range goes at or near the
    /// back and the prefix takes ranges off the front: no tree to rebalance per ack.
    ahead: VecDeque<(u64, u64)>,
}

impl AckedPrefix {
    /// A tracker whose prefix ends at `start` (where reading begins).
    pub fn new(start: u64) -> AckedPrefix {
        AckedPrefix {
            committed: start,
            ahead: VecDeque::new(),
        }
    }

    /// The range `[start, end)` is acked (or otherwise handled).
    pub fn ack(&mut self, start: u64, end: u64) {
        if end <= self.committed {
            return;
        }
        if start > self.committed {
            // After a gap: kept in order of start, a range acked twice once. Acks come mostly
            // in order: a range after every waiting one goes to the back without a search.
            if self.ahead.back().is_none_or(|&(s, _)| s < start) {
                self.ahead.push_back((start, end));
                return;
            }
            let at = self.ahead.partition_point(|&(s, _)| s < start);
            match self.ahead.get_mut(at) {
                Some(r) if r.0 == start => r.1 = end,
                _ => self.ahead.insert(at, (start, end)),
            }
            return;
        }
        self.committed = end;
        // The ranges the prefix now reaches (or overlaps) join it.
        while let Some(&(s, e)) = self.ahead.front() {
            if s > self.committed {
                break;
            }
            self.ahead.pop_front();
            self.committed = self.committed.max(e);
        }
    }

    /// The end of the acked prefix: where reading resumes after a restart.
    pub fn committed(&self) -> u64 {
        self.committed
    }

    /// How many acked ranges wait for an earlier one.
    pub fn waiting(&self) -> usize {
        self.ahead.len()
    }

    /// How many positions the acked ranges after a gap cover.
    pub fn ahead_len(&self) -> u64 {
        self.ahead.iter().map(|&(s, e)| e - s).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Guards the acked prefix: in-order acks advance it, an ack after a gap waits until the gap
    // is acked, and then the prefix jumps over every waiting range.
    #[test]
    fn acked_prefix_advances_only_over_contiguous_acks() {
        let mut t = AckedPrefix::new(100);
        // Lines [100,110) [110,125) [125,130) [130,150) [150,151).
        t.ack(110, 125);
        t.ack(130, 150);
        assert_eq!(t.committed(), 100, "a gap at 100 holds the prefix");
        assert_eq!(t.waiting(), 2);
        t.ack(100, 110);
        assert_eq!(t.committed(), 125, "jumps over the waiting [110,125)");
        assert_eq!(t.waiting(), 1);
        t.ack(150, 151);
        assert_eq!(t.committed(), 125);
        t.ack(125, 130);
        assert_eq!(t.committed(), 151);
        assert_eq!(t.waiting(), 0);
        // A stale ack (before the prefix) changes nothing.
        t.ack(100, 110);
        assert_eq!(t.committed(), 151);
    }

    // Guards the acked prefix against every order of acks of a run of lines: the prefix is
    // always the end of the longest acked run from the start.
    #[test]
    fn acked_prefix_is_the_longest_acked_run_in_any_order() {
        let ends: Vec<u64> = (1..=40).map(|i| i * 7 + (i % 3)).collect();
        let ranges: Vec<(u64, u64)> = ends
            .iter()
            .enumerate()
            .map(|(i, &e)| (if i == 0 { 0 } else { ends[i - 1] }, e))
            .collect();
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..200 {
            let mut order: Vec<usize> = (0..ranges.len()).collect();
            rng.shuffle(&mut order);
            let mut t = AckedPrefix::new(0);
            let mut acked = vec![false; ranges.len()];
            for &i in &order {
                t.ack(ranges[i].0, ranges[i].1);
                acked[i] = true;
                let run = acked.iter().take_while(|a| **a).count();
                let want = if run == 0 { 0 } else { ranges[run - 1].1 };
                assert_eq!(t.committed(), want, "order {order:?}");
            }
            assert_eq!(t.waiting(), 0);
        }
    }
}
