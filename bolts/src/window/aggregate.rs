//! The aggregate functions of the `window` bolt: one accumulator per aggregate, window and
//! group, fed each value and asked for the result when the window fires.
//!
//! ```text
//! value ──► Acc::add ──► count | sum | min/max | avg | distinct set | Hll | top-k counts
//! window fires ──► Acc::result ──► int, float, null, or a list of {value, count} maps
//! ```

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use cardinality_estimator::CardinalityEstimator;
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use topo_runtime::Value;

use super::FastMap;

/// The aggregate functions.
pub(super) const FUNCTIONS: [&str; 8] = [
    "count",
    "sum",
    "min",
    "max",
    "avg",
    "count_distinct",
    "approx_count_distinct",
    "top_k",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AggKind {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    CountDistinct,
    ApproxCountDistinct,
    TopK(usize),
}

impl AggKind {
    pub(super) fn numeric(self) -> bool {
        matches!(
            self,
            AggKind::Sum | AggKind::Min | AggKind::Max | AggKind::Avg
        )
    }
}

/// Value equality for grouping and distinct counts: as `==`, but NaN equals NaN.
pub(super) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => a == b,
    }
}

/// One value as a hash-set member (see [`GroupKey`](super::state::GroupKey)); stored in the
/// [`stored`](topo_runtime::value::stored) form.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Distinct(#[serde(with = "topo_runtime::value::stored")] Value);

impl PartialEq for Distinct {
    fn eq(&self, other: &Self) -> bool {
        same(&self.0, &other.0)
    }
}
impl Eq for Distinct {}
impl Hash for Distinct {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0.stable_hash(0));
    }
}

/// A total order on values, for `top_k` ties: null < bool < numbers (ints and floats by value)
/// < text < bytes < lists < maps; lists and maps element by element.
pub fn value_order(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Int(_) | Value::Float(_) => 2,
            Value::Str(_) => 3,
            Value::Bytes(_) => 4,
            Value::List(_) => 5,
            Value::Map(_) => 6,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Int(x), Value::Int(y)) => x.cmp(y),
        (Value::Int(_) | Value::Float(_), Value::Int(_) | Value::Float(_)) => {
            let (x, y) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
            // Equal as floats: an int sorts before the float of the same number.
            x.total_cmp(&y)
                .then_with(|| matches!(b, Value::Int(_)).cmp(&matches!(a, Value::Int(_))))
        }
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        (Value::Bytes(x), Value::Bytes(y)) => x.as_ref().as_ref().cmp(y.as_ref().as_ref()),
        (Value::List(x), Value::List(y)) => {
            for (p, q) in x.iter().zip(y.iter()) {
                let o = value_order(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Map(x), Value::Map(y)) => {
            for ((kp, p), (kq, q)) in x.iter().zip(y.iter()) {
                let o = kp.cmp(kq).then_with(|| value_order(p, q));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A number being summed, or the current min/max.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(super) enum Num {
    None,
    Int(i64),
    Float(f64),
}

impl Num {
    fn value(self) -> Value {
        match self {
            Num::None => Value::Null,
            Num::Int(i) => Value::Int(i),
            Num::Float(f) => Value::Float(f),
        }
    }
    fn as_f64(self) -> f64 {
        match self {
            Num::None => 0.0,
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// One aggregate's running state for one window and group; checkpointed as it is (a
/// `count_distinct` set and `top_k` counts by value, `approx_count_distinct` its registers).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) enum Acc {
    Count(i64),
    Sum(Num),
    /// The best value so far (min or max), and whether a float was seen.
    Extreme {
        best: Num,
        float: bool,
        max: bool,
    },
    Avg {
        sum: f64,
        n: u64,
    },
    Distinct(HashSet<Distinct, foldhash::fast::RandomState>),
    Approx(Hll),
    TopK(FastMap<Distinct, i64>, usize),
}

impl Acc {
    pub(super) fn new(kind: AggKind) -> Acc {
        match kind {
            AggKind::Count => Acc::Count(0),
            AggKind::Sum => Acc::Sum(Num::None),
            AggKind::Min => Acc::Extreme {
                best: Num::None,
                float: false,
                max: false,
            },
            AggKind::Max => Acc::Extreme {
                best: Num::None,
                float: false,
                max: true,
            },
            AggKind::Avg => Acc::Avg { sum: 0.0, n: 0 },
            AggKind::CountDistinct => Acc::Distinct(HashSet::default()),
            AggKind::ApproxCountDistinct => Acc::Approx(Hll::default()),
            AggKind::TopK(k) => Acc::TopK(FastMap::default(), k),
        }
    }

    /// Adds one value (`Null` for `count`, which has no field). Types were checked before.
    pub(super) fn add(&mut self, v: &Value) {
        match self {
            Acc::Count(n) => *n += 1,
            Acc::Sum(s) => {
                *s = match (*s, v) {
                    (_, Value::Null) => *s,
                    (Num::None, Value::Int(i)) => Num::Int(*i),
                    (Num::None, Value::Float(f)) => Num::Float(*f),
                    (Num::Int(a), Value::Int(i)) => match a.checked_add(*i) {
                        Some(x) => Num::Int(x),
                        None => Num::Float(a as f64 + *i as f64),
                    },
                    (Num::Int(a), Value::Float(f)) => Num::Float(a as f64 + f),
                    (Num::Float(a), Value::Int(i)) => Num::Float(a + *i as f64),
                    (Num::Float(a), Value::Float(f)) => Num::Float(a + f),
                    _ => *s,
                }
            }
            Acc::Extreme { best, float, max } => {
                let n = match v {
                    Value::Int(i) => Num::Int(*i),
                    Value::Float(f) if !f.is_nan() => {
                        *float = true;
                        Num::Float(*f)
                    }
                    _ => return,
                };
                let better = match (*best, n) {
                    (Num::None, _) => true,
                    (Num::Int(a), Num::Int(b)) => {
                        if *max {
                            b > a
                        } else {
                            b < a
                        }
                    }
                    (a, b) => {
                        if *max {
                            b.as_f64() > a.as_f64()
                        } else {
                            b.as_f64() < a.as_f64()
                        }
                    }
                };
                if better {
                    *best = n;
                }
            }
            Acc::Avg { sum, n } => {
                if let Some(x) = v.as_f64() {
                    *sum += x;
                    *n += 1;
                }
            }
            Acc::Distinct(set) => {
                if !v.is_null() {
                    set.insert(Distinct(v.clone()));
                }
            }
            Acc::Approx(h) => {
                if !v.is_null() {
                    h.insert(v.stable_hash(HLL_SEED));
                }
            }
            Acc::TopK(counts, _) => {
                if !v.is_null() {
                    *counts.entry(Distinct(v.clone())).or_insert(0) += 1;
                }
            }
        }
    }

    /// Adds another accumulator of the same aggregate (the same window and group, restored from
    /// two old tasks): the result is that of every value added to either.
    pub(super) fn merge(&mut self, other: Acc) {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::Sum(a), Acc::Sum(b)) => {
                let mut acc = Acc::Sum(*a);
                acc.add(&b.value());
                if let Acc::Sum(n) = acc {
                    *a = n;
                }
            }
            (
                Acc::Extreme { best, float, max },
                Acc::Extreme {
                    best: b, float: f, ..
                },
            ) => {
                let mut acc = Acc::Extreme {
                    best: *best,
                    float: *float || f,
                    max: *max,
                };
                acc.add(&b.value());
                if let Acc::Extreme {
                    best: x, float: y, ..
                } = acc
                {
                    *best = x;
                    *float = y || f;
                }
            }
            (Acc::Avg { sum, n }, Acc::Avg { sum: s, n: m }) => {
                *sum += s;
                *n += m;
            }
            (Acc::Distinct(a), Acc::Distinct(b)) => a.extend(b),
            (Acc::Approx(a), Acc::Approx(b)) => a.0.merge(&b.0),
            (Acc::TopK(a, _), Acc::TopK(b, _)) => {
                for (v, n) in b {
                    *a.entry(v).or_insert(0) += n;
                }
            }
            _ => {}
        }
    }

    pub(super) fn result(&self) -> Value {
        match self {
            Acc::Count(n) => Value::Int(*n),
            Acc::Sum(s) => s.value(),
            Acc::Extreme { best, float, .. } => match best {
                Num::None => Value::Null,
                b if *float => Value::Float(b.as_f64()),
                b => b.value(),
            },
            Acc::Avg { sum, n } => {
                if *n == 0 {
                    Value::Null
                } else {
                    Value::Float(sum / *n as f64)
                }
            }
            Acc::Distinct(set) => Value::from(set.len()),
            Acc::Approx(h) => Value::Int(h.estimate().round() as i64),
            Acc::TopK(counts, k) => {
                let mut all: Vec<(&Value, i64)> = counts.iter().map(|(d, n)| (&d.0, *n)).collect();
                all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| value_order(a.0, b.0)));
                let top: Vec<Value> = all
                    .into_iter()
                    .take(*k)
                    .map(|(v, n)| {
                        let mut m = BTreeMap::new();
                        m.insert(SmolStr::new_static("value"), v.clone());
                        m.insert(SmolStr::new_static("count"), Value::Int(n));
                        Value::Map(Arc::new(m))
                    })
                    .collect();
                Value::List(Arc::new(top))
            }
        }
    }
}

const HLL_SEED: u64 = 0x686c_6c5f_7365_6564;
/// An approximate distinct count: HyperLogLog++ from Cloudflare's `cardinality-estimator`, with
/// 2¹⁴ registers, fed the 64-bit [`Value::stable_hash`] of each value.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Hll(CardinalityEstimator<u64, std::hash::DefaultHasher, 14, 6>);

impl Hll {
    /// Adds a 64-bit hash of a value.
    pub fn insert(&mut self, hash: u64) {
        self.0.insert_hash(hash);
    }

    /// The estimated number of distinct hashes inserted.
    pub fn estimate(&self) -> f64 {
        self.0.estimate() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hll_is_exact_when_sparse_and_close_when_dense() {
        let mut h = Hll::default();
        for i in 0..100u64 {
            h.insert(Value::Int(i as i64).stable_hash(HLL_SEED));
            h.insert(Value::Int(i as i64).stable_hash(HLL_SEED));
        }
        assert_eq!(h.estimate(), 100.0);
        for n in [1_000i64, 5_000, 50_000, 500_000] {
            let mut h = Hll::default();
            for i in 0..n {
                h.insert(Value::from(format!("v{i}")).stable_hash(HLL_SEED));
            }
            let err = (h.estimate() - n as f64).abs() / n as f64;
            assert!(err < 0.03, "n {n}: estimate {} (error {err})", h.estimate());
        }
    }

    #[test]
    fn value_order_is_total_and_numeric() {
        use std::cmp::Ordering::*;
        assert_eq!(value_order(&Value::Int(2), &Value::Float(2.5)), Less);
        assert_eq!(value_order(&Value::Int(2), &Value::Float(2.0)), Less);
        assert_eq!(value_order(&Value::Null, &Value::Bool(false)), Less);
        assert_eq!(value_order(&Value::from("b"), &Value::from("a")), Greater);
        assert_eq!(value_order(&Value::Int(9), &Value::from("a")), Less);
    }

    #[test]
    fn sums_stay_ints_until_a_float_or_an_overflow() {
        let mut s = Acc::new(AggKind::Sum);
        s.add(&Value::Int(2));
        s.add(&Value::Null);
        s.add(&Value::Int(3));
        assert_eq!(s.result(), Value::Int(5));
        s.add(&Value::Int(i64::MAX));
        assert!(matches!(s.result(), Value::Float(_)));
        let mut m = Acc::new(AggKind::Max);
        m.add(&Value::Int(2));
        m.add(&Value::Float(1.5));
        assert_eq!(m.result(), Value::Float(2.0));
        let mut m = Acc::new(AggKind::Min);
        assert_eq!(m.result(), Value::Null);
        m.add(&Value::Float(f64::NAN));
        m.add(&Value::Int(4));
        // NaN is skipped altogether: only ints were counted.
        assert_eq!(m.result(), Value::Int(4));
    }
}
