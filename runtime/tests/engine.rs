//! End-to-end tests of the runtime: real topologies on a real tokio runtime, watched through the
//! public API only (metrics, the testing harness, shared counters in the test's own components).
//! They build only the runtime: every component is written in the test (no connectors).
//!
//! One test binary (fast to link, one place to look); each module is one concern, each test is
//! named after the guarantee it guards:
//!
//! - `groupings`: every emitted tuple reaches exactly the tasks its grouping names.
//! - `acking`: XOR tree tracking, fails, timeouts, multi-anchoring, acking off, replays.
//! - `checkpoints`: state written by a user's components survives a stop and a resume (with
//!   another parallelism); unwritable checkpoints do not stop processing; unusable checkpoints
//!   are refused with the reason.
//! - `flow`: max spout pending and backpressure bound what is in flight.
//! - `failures`: a panicking component is replaced, and the trees it held are failed.
//! - `lifecycle`: graceful stop drains queues and calls close/cleanup; ticks.
//! - `validation`: the builder reports every problem at once, with exact messages.
//! - `word_count`: the word-count example's topology counts exactly (that its topology file is
//!   the same topology is checked in the workspace's `tests/word_count.rs`, with the connectors).
//! - `regressions`: one test per bug found.
//!
//! Every wait is bounded (`TopologyHandle::wait_until` with a timeout, or `util::wait_blocking`
//! from the test thread). No test sleeps hoping something has happened: where a test must show
//! that something has *not* happened yet (a tree still pending), it waits for a later probe that
//! is ordered after it instead. The one fixed window is the regression test that counts how
//! often an idle spout is polled.

#[path = "engine/util.rs"]
mod util;

#[path = "engine/acking.rs"]
mod acking;
#[path = "engine/checkpoints.rs"]
mod checkpoints;
#[path = "engine/failures.rs"]
mod failures;
#[path = "engine/flow.rs"]
mod flow;
#[path = "engine/groupings.rs"]
mod groupings;
#[path = "engine/lifecycle.rs"]
mod lifecycle;
#[path = "engine/regressions.rs"]
mod regressions;
#[path = "engine/validation.rs"]
mod validation;
#[path = "engine/word_count.rs"]
mod word_count;
