//! The `throttle` kind: inputs passed on unchanged at a bounded rate per task (see
//! [`topo_bolts::throttle`]).

use topo_bolts::{Throttle, ThrottleOptions};
use topo_dsl::registry::{OptionDoc, Registry};

use super::{Checked, TryFromOptions};

impl TryFromOptions<ThrottleOptions> for Throttle {
    fn try_from_options(options: ThrottleOptions) -> Result<Self, String> {
        Throttle::new(options)
    }
}

/// Printed by `topo components throttle`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.to_api]
kind = "throttle"
rate = 300                # tuples per second per task; the excess waits (upstream sees backpressure)
burst = 50                # a rested task passes this many at once; default = rate
parallelism = 1           # the limit is per task: 2 tasks pass up to 600/s together
inputs = [{ from = "counts" }]
"#;

/// Registers the `throttle` kind and its example; its options are checked when the topology
/// file is loaded.
pub(super) fn register(r: &mut Registry) {
    r.register_bolt::<Checked<Throttle, ThrottleOptions>, Throttle>(
        "throttle",
        "passes every input on unchanged (same fields, anchored, then acked) at most `rate` tuples per second per task; the excess is held, not dropped, so backpressure reaches upstream — for sinks in front of rate-limited APIs",
        vec![
            OptionDoc::new(
                "rate",
                "number",
                "",
                "tuples per second per task, above 0; fractions allowed (0.5 = one every 2 s) (required)",
            ),
            OptionDoc::new(
                "burst",
                "number",
                "rate (at least 1)",
                "the token bucket's size: how many tuples a task that has rested passes at once",
            ),
        ],
        |c: &Checked<Throttle, ThrottleOptions>| c.0.clone(),
    );
    r.example("throttle", EXAMPLE);
}
