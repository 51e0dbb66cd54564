//! `stdin`: the lines of standard input, so that `cat access.log | topo run t.toml --until-idle`
//! processes a file and ends.
//!
//! ```text
//!  standard input ─► reader thread (64 KiB chunks) ─► FramedRead (newline, max_line_bytes)
//!                                                          │ line / oversize / bad UTF-8
//!                                                          ▼
//!                                  bounded channel (full: stdin is not read further)
//!                                                          │ next_tuple drains ≤ 64
//!                                                          ▼
//!   spout ──emit (line) msg id n──► bolts            pending: n ─► record (replayed on fail)
//!         └─emit_to "error" (reason, raw), unanchored
//! ```
//!
//! # Options
//! ```toml
//! [spouts.lines]
//! kind = "stdin"
//! max_line_bytes = 1048576        # longer lines go to the `error` stream
//! encoding = "lossy"              # "strict": bad UTF-8 to `error`; "bytes": a Bytes value
//! field = "line"
//! ```
//!
//! # Output
//! The `default` stream carries (`line`). A line ends at `\n`; a `\r` before it is dropped; a
//! last line without `\n` is emitted at the end of input. The `error` stream carries
//! (`reason`, `raw`) for a line longer than `max_line_bytes` (the rest of it is skipped) or, with
//! `encoding = "strict"`, a line that is not UTF-8; `raw` is its first KiB. Error tuples carry no
//! message id; each is counted ([`LineCounters`]) and logged at most once a second.
//!
//! # End of input
//! After the end of input the spout is exhausted once every line it emitted is acked, so
//! `topo run --until-idle` stops by itself when the whole input is processed.
//!
//! # Delivery guarantee
//! Standard input cannot be re-read: each emitted line is kept in memory until acked and emitted
//! again when it fails or times out — **at-least-once while the process lives**, bounded by
//! `max_spout_pending`. A crash loses the lines read but not yet acked.
//!
//! # Known limits
//! - Only the first task reads (standard input is one stream); other tasks emit nothing.
//! - If the spout task restarts after an error, the lines it had pending and a partial line in
//!   its buffer are lost; reading goes on where the previous instance stopped.
//! - The reader thread blocks on standard input; at the end of the process it is simply left.

use std::io::Read;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use tokio_util::io::StreamReader;
use tokio_util::sync::{CancellationToken, DropGuard};
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{BoxError, OutputDeclarer, Spout, SpoutCollector, TaskContext};

use crate::connector::{ERROR_STREAM, SOURCE_ERROR_FIELDS};
use crate::socket::{
    Encoding, LineCounters, LineFormat, LineQueue, ReadStop, check_max_line_bytes, read_lines,
};

/// Size of one read from standard input.
const CHUNK: usize = 64 * 1024;

/// Options of the `stdin` spout.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StdinOptions {
    /// The longest line accepted, in bytes (without the `\n`).
    pub max_line_bytes: usize,
    /// How bytes become a value.
    pub encoding: Encoding,
    /// The name of the line field.
    pub field: String,
}

impl Default for StdinOptions {
    fn default() -> Self {
        StdinOptions {
            max_line_bytes: 1 << 20,
            encoding: Encoding::Lossy,
            field: "line".to_string(),
        }
    }
}

/// The `stdin` spout (see the module docs). Cloning gives a fresh, unopened spout with the same
/// options that shares the counters.
pub struct StdinSpout {
    opts: Arc<StdinOptions>,
    format: LineFormat,
    counters: Arc<LineCounters>,
    queue: Option<LineQueue>,
    /// This task does not read (not the first task): it is exhausted at once.
    idle_task: bool,
    stop: Option<DropGuard>,
}

impl Clone for StdinSpout {
    fn clone(&self) -> Self {
        StdinSpout {
            opts: self.opts.clone(),
            format: self.format.clone(),
            counters: self.counters.clone(),
            queue: None,
            idle_task: false,
            stop: None,
        }
    }
}

impl StdinSpout {
    /// A stdin spout with these options, or what is wrong with them.
    pub fn new(opts: StdinOptions) -> Result<StdinSpout, String> {
        check_max_line_bytes(opts.max_line_bytes)?;
        if opts.field.is_empty() {
            return Err("option `field` is empty: expected a field name".to_string());
        }
        Ok(StdinSpout {
            format: LineFormat::new(opts.max_line_bytes, opts.encoding),
            opts: Arc::new(opts),
            counters: Arc::default(),
            queue: None,
            idle_task: false,
            stop: None,
        })
    }

    /// What the reader has seen so far.
    pub fn counters(&self) -> &LineCounters {
        &self.counters
    }
}

/// The chunks of standard input, read by one thread for the whole process (a restarted spout
/// goes on from where the previous one stopped). The channel ends at end of input.
fn stdin_chunks() -> flume::Receiver<std::io::Result<Bytes>> {
    static CHUNKS: OnceLock<flume::Receiver<std::io::Result<Bytes>>> = OnceLock::new();
    CHUNKS
        .get_or_init(|| {
            let (tx, rx) = flume::bounded(4);
            let spawned = std::thread::Builder::new()
                .name("topo-stdin".into())
                .spawn(move || {
                    let mut input = std::io::stdin().lock();
                    let mut buf = vec![0u8; CHUNK];
                    loop {
                        let chunk = match input.read(&mut buf) {
                            Ok(0) => return,
                            Ok(n) => Ok(Bytes::copy_from_slice(&buf[..n])),
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(e) => Err(e),
                        };
                        let failed = chunk.is_err();
                        if tx.send(chunk).is_err() || failed {
                            return;
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start the standard input reader: {e}");
            }
            rx
        })
        .clone()
}

impl Spout for StdinSpout {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        out.declare([self.opts.field.as_str()]);
        out.declare_stream(ERROR_STREAM, SOURCE_ERROR_FIELDS);
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        if ctx.task_index() > 0 {
            self.idle_task = true;
            return Ok(());
        }
        let (tx, rx) = flume::bounded(1024);
        self.queue = Some(LineQueue::new(rx, ctx));
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let (format, counters) = (self.format.clone(), self.counters.clone());
        let source = SmolStr::from(ctx.component_id());
        crate::connector::warn::spawn(async move {
            let input = StreamReader::new(stdin_chunks().into_stream());
            tokio::select! {
                _ = stop.cancelled() => {}
                r = read_lines(input, &format, None, &tx, &counters, &source) => match r {
                    Ok(()) => tracing::info!(component = %source, lines = counters.lines(), "end of standard input"),
                    Err(ReadStop::Io(e)) => tracing::error!(component = %source, "cannot read standard input: {e}"),
                    Err(ReadStop::Closed) => {}
                },
            }
            // Dropping `tx` tells the spout the input has ended.
        });
        self.stop = Some(cancel.drop_guard());
        Ok(())
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        if let Some(q) = &mut self.queue {
            q.emit(out);
        }
        Ok(())
    }

    fn ack(&mut self, id: u64) {
        if let Some(q) = &mut self.queue {
            q.ack(id);
        }
    }

    fn fail(&mut self, id: u64) {
        if let Some(q) = &mut self.queue {
            q.fail(id);
        }
    }

    fn is_exhausted(&self) -> bool {
        self.idle_task || self.queue.as_ref().is_some_and(LineQueue::is_done)
    }

    async fn close(&mut self) {
        self.stop = None;
    }
}

/// The `stdin` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::spout(
            "stdin",
            "lines of standard input; exhausted at end of input once every line is acked (`topo run --until-idle` ends); bad lines to `error`",
            StdinSpout::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components stdin`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[spouts.lines]
kind = "stdin"            # `cat access.log | topo run t.toml --until-idle` ends at end of input
max_line_bytes = 1048576
encoding = "lossy"
field = "line"
"#;

impl FromOptions for StdinSpout {
    type Options = StdinOptions;
    fn from_options(options: StdinOptions) -> Result<Self, String> {
        StdinSpout::new(options)
    }
}
