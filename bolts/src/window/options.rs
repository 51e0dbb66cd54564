//! The options of the `window` bolt, as read from a topology file: [`WindowOptions`] and its
//! parts. [`Window::new`](super::Window::new) checks them.

use serde::{Deserialize, Serialize};

/// A window's length or slide as written: a duration (`"10s"`) or a count of tuples (`100`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Extent {
    /// A count of tuples.
    Count(i64),
    /// A duration in humantime form (`"10s"`, `"1m 30s"`, `"500ms"`).
    Duration(String),
}

impl<'de> Deserialize<'de> for Extent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Extent;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a duration such as \"10s\" or a count of tuples such as 100")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Extent, E> {
                Ok(Extent::Count(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Extent, E> {
                Ok(Extent::Count(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Extent, E> {
                Ok(Extent::Duration(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Extent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Extent::Count(n) => s.serialize_i64(*n),
            Extent::Duration(d) => s.serialize_str(d),
        }
    }
}

impl schemars::JsonSchema for Extent {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Extent".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let duration = topo_dsl::schema::duration(g);
        schemars::json_schema!({
            "x-topo-type": "duration | integer",
            "anyOf": [duration, { "type": "integer", "minimum": 1 }]
        })
    }
}

/// Which clock places tuples in windows.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TimeMode {
    /// The bolt's clock when the tuple arrives.
    #[default]
    Processing,
    /// A timestamp field of the tuple, with watermarks.
    Event,
}

/// How a windowed bolt (`window`, `join`) acks its inputs and anchors its results; see the
/// [module docs](super) and the [`join`](crate::join) docs.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Anchoring {
    /// `hold` where it is safe (processing-time windows whose length + slide is at most half
    /// the message timeout), `receipt` otherwise.
    #[default]
    Auto,
    /// Hold each input until the last window containing it fires; anchor results to inputs.
    Hold,
    /// Ack each input at once; results unanchored.
    Receipt,
}

/// One aggregate of the `aggregates` option: `{ fn = "sum", field = "bytes", as = "bytes" }`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AggregateOptions {
    /// The function: `count`, `sum`, `min`, `max`, `avg`, `count_distinct`,
    /// `approx_count_distinct` or `top_k`.
    #[serde(rename = "fn")]
    #[schemars(extend("enum" = ["count", "sum", "min", "max", "avg", "count_distinct", "approx_count_distinct", "top_k"]))]
    pub function: String,
    /// The aggregated input field; required for every function but `count`.
    #[serde(default)]
    pub field: Option<String>,
    /// `top_k`: how many values (at least 1).
    #[serde(default)]
    pub k: Option<i64>,
    /// The output field.
    #[serde(rename = "as")]
    pub name: String,
}

impl AggregateOptions {
    /// An aggregate `function` of `field` (None for `count`) named `name`.
    pub fn new(function: &str, field: Option<&str>, name: &str) -> AggregateOptions {
        AggregateOptions {
            function: function.into(),
            field: field.map(Into::into),
            k: None,
            name: name.into(),
        }
    }
}

/// Options of the `window` bolt; see the [module docs](super).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = window_required)]
pub struct WindowOptions {
    /// The window length: a duration (`"1m"`) or a count of tuples (`100`).
    pub length: Option<Extent>,
    /// How often a window starts, of the same kind as `length` and at most it; unset = tumbling
    /// (slide = length).
    pub slide: Option<Extent>,
    /// `processing`: the arrival clock; `event`: the `timestamp` field, with watermarks
    /// (duration windows only).
    pub time: TimeMode,
    /// Event time: the field with epoch milliseconds (int) or RFC 3339 text; required with
    /// `time = "event"`.
    pub timestamp: Option<String>,
    /// Event time: the allowed out-of-orderness; the watermark is the slowest upstream task's
    /// latest timestamp minus lag, over every task of the input components. Unset = `"0s"`.
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub lag: Option<String>,
    /// Event time: an upstream task that sent nothing for this long (processing time, checked
    /// on ticks) no longer holds the watermark back, until it sends again and its timestamps
    /// reach the watermark (Flink's `withIdleness`). Unset = `"30s"`; `"off"`: the watermark
    /// waits for every upstream task, however long.
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub idle_timeout: Option<String>,
    /// Fields whose distinct combinations get their own results.
    pub group_by: Vec<String>,
    /// The aggregates, at least one: `{ fn, field, k, as }`, `field` for all but `count`, `k`
    /// for `top_k`, `as` the output field.
    pub aggregates: Vec<AggregateOptions>,
    /// `hold` inputs until their last window fires (results anchored), or ack on `receipt`
    /// (results unanchored); `auto` holds only processing-time duration windows within half the
    /// message timeout.
    pub anchoring: Anchoring,
}

/// `length` and `aggregates` have serde defaults (so a missing one is reported by
/// [`Window::new`](super::Window::new)), but are required.
fn window_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["length", "aggregates"]);
}
