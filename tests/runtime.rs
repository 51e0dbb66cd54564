//! End-to-end tests of the runtime: real topologies on a real tokio runtime, watched through the
//! public API only (metrics, the testing harness, shared counters in the test's own components).
//!
//! One test binary (fast to link, one place to look); each module is one concern, each test is
//! named after the guarantee it guards:
//!
//! - `groupings`: every emitted tuple reaches exactly the tasks its grouping names.
//! - `acking`: XOR tree tracking, fails, timeouts, multi-anchoring, acking off, replays.
//! - `flow`: max spout pending and backpressure bound what is in flight.
//! - `failures`: a panicking component is replaced, and the trees it held are failed.
//! - `lifecycle`: graceful stop drains queues and calls close/cleanup; ticks.
//! - `validation`: the builder reports every problem at once, with exact messages.
//! - `word_count`: the word-count example's topology counts exactly, and its topology file is
//!   the same topology.
//! - `regressions`: one test per bug found.
//!
//! Every wait is bounded (`TopologyHandle::wait_until` with a timeout, or `util::wait_blocking`
//! from the test thread). No test sleeps hoping something has happened: where a test must show
//! that something has *not* happened yet (a tree still pending), it waits for a later probe that
//! is ordered after it instead. The one fixed window is the regression test that counts how
//! often an idle spout is polled.

#[path = "runtime/util.rs"]
mod util;

#[path = "runtime/acking.rs"]
mod acking;
#[path = "runtime/failures.rs"]
mod failures;
#[path = "runtime/flow.rs"]
mod flow;
#[path = "runtime/groupings.rs"]
mod groupings;
#[path = "runtime/lifecycle.rs"]
mod lifecycle;
#[path = "runtime/regressions.rs"]
mod regressions;
#[path = "runtime/validation.rs"]
mod validation;
#[path = "runtime/word_count.rs"]
mod word_count;

/// The word-count example itself, for its `topology` function.
#[path = "../examples/word_count.rs"]
#[allow(dead_code)]
mod word_count_example;
