//! The options of the `window` bolt, as read from a topology file: [`WindowOptions`] and its
//! parts. [`Window::new`](super::Window::new) checks them.

use serde::Deserialize;

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

/// Which clock places tuples in windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
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
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateOptions {
    /// The function: `count`, `sum`, `min`, `max`, `avg`, `count_distinct`,
    /// `approx_count_distinct` or `top_k`.
    #[serde(rename = "fn")]
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
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WindowOptions {
    /// The window length: a duration (`"1m"`) or a count of tuples (`100`). Required.
    pub length: Option<Extent>,
    /// How often a window starts, of the same kind as `length` and at most it; unset = tumbling.
    pub slide: Option<Extent>,
    /// `processing` (default) or `event`.
    pub time: TimeMode,
    /// Event time: the field with the timestamp (epoch ms int, or RFC 3339 text).
    pub timestamp: Option<String>,
    /// Event time: the allowed out-of-orderness (`"5s"`); default `"0s"`.
    pub lag: Option<String>,
    /// Fields whose distinct combinations get their own results.
    pub group_by: Vec<String>,
    /// The aggregates, at least one.
    pub aggregates: Vec<AggregateOptions>,
    /// `auto` (default), `hold` or `receipt`.
    pub anchoring: Anchoring,
}
