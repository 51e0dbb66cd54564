//! The `record` field of an `error` stream tuple: the rejected input as a map of field name to
//! value. (The sinks in `topo-spouts` build the same with `topo_spouts::connector::sink::record`; its
//! natural home, shared by both, is `topo_runtime::Tuple`.)

use std::collections::BTreeMap;

use smol_str::SmolStr;
use topo_runtime::{Tuple, Value};

/// The input as a [`Value::Map`] of field name to value.
pub(crate) fn record(input: &Tuple) -> Value {
    let map: BTreeMap<SmolStr, Value> = input
        .fields()
        .iter()
        .cloned()
        .zip(input.values().iter().cloned())
        .collect();
    Value::from(map)
}
