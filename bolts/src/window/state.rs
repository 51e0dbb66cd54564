//! The per-task state of the `window` bolt: open duration windows by start (with the event-time
//! watermarks), count windows per group, and the results emitted when windows fire.
//!
//! ```text
//! tuple ──► DurationState::add ──► each window containing it ──► Group: accumulators (+ held)
//!       └─► CountGroup::add ──► running accumulators (tumbling) or the last `length` values
//! clock / watermark / end of input ──► fire_until / flush ──► one result per window and group
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::hash::{Hash, Hasher};

use topo_runtime::{OutputCollector, TaskId, Tuple, Value, Values};

use super::aggregate::{Acc, same};
use super::{FastMap, Plan, Shape};

/// Per-task window state.
#[derive(Clone)]
pub(super) enum State {
    Duration(DurationState),
    Count(FastMap<GroupKey, CountGroup>),
}

/// The values of the `group_by` fields of a tuple: hashed with [`Value::stable_hash`], equal when
/// the values are equal (NaN equal to NaN, so such a group is one group).
#[derive(Clone, Debug)]
pub(super) struct GroupKey(pub(super) Values);

impl PartialEq for GroupKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && self.0.iter().zip(&other.0).all(|(a, b)| same(a, b))
    }
}
impl Eq for GroupKey {}
impl Hash for GroupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for v in &self.0 {
            state.write_u64(v.stable_hash(0));
        }
    }
}

/// The per-source-task watermarks of event time.
#[derive(Clone, Default)]
pub(super) struct Watermarks {
    /// Largest timestamp seen from each upstream task.
    max_seen: Vec<(TaskId, i64)>,
    current: Option<i64>,
}

impl Watermarks {
    /// Records a timestamp from `task`; returns the watermark (never lower than before).
    pub(super) fn observe(&mut self, task: TaskId, ts: i64, lag: i64) -> i64 {
        match self.max_seen.iter_mut().find(|(t, _)| *t == task) {
            Some((_, m)) => *m = (*m).max(ts),
            None => self.max_seen.push((task, ts)),
        }
        let low = self
            .max_seen
            .iter()
            .map(|(_, m)| m.saturating_sub(lag))
            .min()
            .unwrap_or(i64::MIN);
        let wm = self.current.map_or(low, |c| c.max(low));
        self.current = Some(wm);
        wm
    }
}

/// One window's state for one group: accumulators, and (hold) the inputs whose last window this
/// is, with their times.
#[derive(Clone)]
struct Group {
    accs: Vec<Acc>,
    held: Vec<(i64, Tuple)>,
}

/// Duration windows: open windows by start.
#[derive(Clone)]
pub(super) struct DurationState {
    windows: BTreeMap<i64, FastMap<GroupKey, Group>>,
    /// Every window ending at or before this has fired.
    pub(super) fired_until: i64,
    pub(super) watermarks: Watermarks,
}

impl Default for DurationState {
    fn default() -> Self {
        DurationState {
            windows: BTreeMap::new(),
            fired_until: i64::MIN,
            watermarks: Watermarks::default(),
        }
    }
}

impl DurationState {
    /// Adds a tuple at `time` to each of its windows that has not fired.
    pub(super) fn add(
        &mut self,
        plan: &Plan,
        time: i64,
        key: GroupKey,
        input: &Tuple,
        agg_idx: &[Option<usize>],
        hold: bool,
    ) {
        let Shape::Duration { length, slide } = plan.shape else {
            return;
        };
        let last_start = time.div_euclid(slide) * slide;
        let mut start = last_start;
        let mut first = true;
        while start.saturating_add(length) > time {
            if start.saturating_add(length) <= self.fired_until {
                break;
            }
            let groups = self.windows.entry(start).or_default();
            let group = match groups.get_mut(&key) {
                Some(g) => g,
                None => groups.entry(key.clone()).or_insert_with(|| Group {
                    accs: plan.aggs.iter().map(|a| Acc::new(a.kind)).collect(),
                    held: Vec::new(),
                }),
            };
            for (acc, i) in group.accs.iter_mut().zip(agg_idx) {
                acc.add(i.and_then(|i| input.get(i)).unwrap_or(&Value::Null));
            }
            if hold && first {
                group.held.push((time, input.clone()));
            }
            first = false;
            start = match start.checked_sub(slide) {
                Some(s) => s,
                None => break,
            };
        }
    }

    /// Fires every window whose end is at or before `until`, in order of end.
    pub(super) fn fire_until(
        &mut self,
        plan: &Plan,
        until: i64,
        hold: bool,
        out: &mut OutputCollector<'_>,
    ) {
        let Shape::Duration { length, .. } = plan.shape else {
            return;
        };
        while let Some(entry) = self.windows.first_entry() {
            let start = *entry.key();
            let end = start.saturating_add(length);
            if end > until {
                break;
            }
            let groups = entry.remove();
            for (key, group) in &groups {
                let vals = result_values(start, end, key, &group.accs);
                if hold {
                    // Every input of this window and group: those whose last window this is, and
                    // those held by later windows that still contain this one's span.
                    let mut anchors: Vec<&Tuple> = group.held.iter().map(|(_, t)| t).collect();
                    for (_, later) in self.windows.range(start.saturating_add(1)..end) {
                        if let Some(g) = later.get(key) {
                            anchors.extend(g.held.iter().filter(|(t, _)| *t < end).map(|(_, t)| t));
                        }
                    }
                    out.emit_anchored(&anchors, vals);
                } else {
                    out.emit(vals);
                }
            }
            for group in groups.values() {
                for (_, t) in &group.held {
                    out.ack(t);
                }
            }
        }
        if until > self.fired_until {
            self.fired_until = until;
        }
    }
}

fn result_values(start: i64, end: i64, key: &GroupKey, accs: &[Acc]) -> Values {
    let mut vals = Values::with_capacity(2 + key.0.len() + accs.len());
    vals.push(Value::Int(start));
    vals.push(Value::Int(end));
    vals.extend(key.0.iter().cloned());
    vals.extend(accs.iter().map(Acc::result));
    vals
}

/// One entry of a sliding count window: arrival time, the aggregated values, and (hold) the
/// input until no later window contains it.
#[derive(Clone)]
pub(super) struct Entry {
    ms: i64,
    values: Values,
    pub(super) input: Option<Tuple>,
}

/// One group of count windows.
#[derive(Clone)]
pub(super) struct CountGroup {
    /// Tuples since the last result.
    since: usize,
    /// Tumbling: running accumulators, first and last arrival, held inputs.
    accs: Vec<Acc>,
    first_ms: i64,
    last_ms: i64,
    held: Vec<Tuple>,
    /// Sliding: the last `length` entries.
    pub(super) buf: VecDeque<Entry>,
}

impl CountGroup {
    pub(super) fn new(plan: &Plan, length: usize) -> CountGroup {
        let sliding = matches!(plan.shape, Shape::Count { slide, .. } if slide < length);
        CountGroup {
            since: 0,
            accs: plan.aggs.iter().map(|a| Acc::new(a.kind)).collect(),
            first_ms: 0,
            last_ms: 0,
            held: Vec::new(),
            buf: if sliding {
                VecDeque::with_capacity(length.min(4096))
            } else {
                VecDeque::new()
            },
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn add(
        &mut self,
        plan: &Plan,
        length: usize,
        slide: usize,
        ms: i64,
        key: &GroupKey,
        input: &Tuple,
        agg_idx: &[Option<usize>],
        hold: bool,
        out: &mut OutputCollector<'_>,
    ) {
        let value = |i: &Option<usize>| i.and_then(|i| input.get(i)).unwrap_or(&Value::Null);
        self.since += 1;
        if slide == length {
            if self.since == 1 {
                self.first_ms = ms;
            }
            self.last_ms = ms;
            for (acc, i) in self.accs.iter_mut().zip(agg_idx) {
                acc.add(value(i));
            }
            if hold {
                self.held.push(input.clone());
            }
            if self.since == length {
                self.flush(plan, length, slide, key, hold, out);
            }
        } else {
            if self.buf.len() == length
                && let Some(old) = self.buf.pop_front()
                && let Some(t) = old.input
            {
                out.ack(&t);
            }
            self.buf.push_back(Entry {
                ms,
                values: agg_idx.iter().map(|i| value(i).clone()).collect(),
                input: hold.then(|| input.clone()),
            });
            if self.since == slide {
                self.flush(plan, length, slide, key, hold, out);
                // Entries the next result will no longer cover are done: ack them now.
                let drop = (self.buf.len() + slide).saturating_sub(length);
                for e in self.buf.iter_mut().take(drop) {
                    if let Some(t) = e.input.take() {
                        out.ack(&t);
                    }
                }
            }
        }
    }

    /// Emits the current window of this group, if it received tuples since the last result.
    pub(super) fn flush(
        &mut self,
        plan: &Plan,
        length: usize,
        slide: usize,
        key: &GroupKey,
        hold: bool,
        out: &mut OutputCollector<'_>,
    ) {
        if self.since == 0 {
            return;
        }
        self.since = 0;
        if slide == length {
            let vals = result_values(self.first_ms, self.last_ms, key, &self.accs);
            if hold {
                let anchors: Vec<&Tuple> = self.held.iter().collect();
                out.emit_anchored(&anchors, vals);
                for t in self.held.drain(..) {
                    out.ack(&t);
                }
            } else {
                out.emit(vals);
            }
            for (acc, a) in self.accs.iter_mut().zip(&plan.aggs) {
                *acc = Acc::new(a.kind);
            }
        } else {
            let mut accs: Vec<Acc> = plan.aggs.iter().map(|a| Acc::new(a.kind)).collect();
            for e in &self.buf {
                for (acc, v) in accs.iter_mut().zip(&e.values) {
                    acc.add(v);
                }
            }
            let first = self.buf.front().map_or(0, |e| e.ms);
            let last = self.buf.back().map_or(0, |e| e.ms);
            let vals = result_values(first, last, key, &accs);
            if hold {
                let anchors: Vec<&Tuple> =
                    self.buf.iter().filter_map(|e| e.input.as_ref()).collect();
                out.emit_anchored(&anchors, vals);
            } else {
                out.emit(vals);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_is_the_slowest_task_and_never_goes_back() {
        let mut w = Watermarks::default();
        assert_eq!(w.observe(TaskId(1), 100, 10), 90);
        assert_eq!(w.observe(TaskId(2), 50, 10), 90);
        assert_eq!(w.observe(TaskId(2), 95, 10), 90);
        assert_eq!(w.observe(TaskId(2), 120, 10), 90);
        assert_eq!(w.observe(TaskId(1), 200, 10), 110);
    }
}
