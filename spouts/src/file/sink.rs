//! `file`: writes records to files as JSON lines or CSV, in batches, with rotation and optional
//! gzip, and acks each input only once its batch is on disk (fsync) — like a Firehose delivery
//! stream to a directory.
//!
//! ```text
//!                 ┌──────────────── file (BatchSink<FileWriter>) ────────────────┐
//! input ────────► │ encode: JSON object / CSV row ──► pending batch (held inputs)│
//!                 │   │ no such field, other columns         │ full, dry or old   │
//!                 │   ▼                                      ▼                    │
//!   error ◄────── │ (reason, record)     blocking thread: [gzip member] append to │
//!                 │                      <name>.part, sync_data ──ok──► ack held  │
//!                 │                        │ error: retry with back-off, then fail│
//!                 │                        ▼                                      │
//!                 │   <name>.part ── rename at max_bytes / max_age / close ──► <name>
//!                 └──────────────────────────────────────────────────────────────┘
//! ```
//!
//! A batch is written when it is full (`batch.max_records` records or `batch.max_bytes` bytes),
//! as soon as no more input is waiting for the sink (its task's input ran dry), when its oldest
//! record has waited `batch.interval`, and at the end of input. Under load the sink's queue is
//! never empty and batches fill; under a light trickle they are small, written one per pause in
//! the input. See [`crate::connector::sink`].
//!
//! Options:
//!
//! ```toml
//! [bolt.archive]
//! kind = "file"
//! dir = "out/logs"            # created if missing
//! prefix = "access"           # file names: <prefix>-<task index>-<yyyymmddThhmmss>-<seq>.jsonl[.gz]
//! format = "jsonl"            # "jsonl" (one JSON object per record) | "csv" (header line per file)
//! fields = ["ts", "path"]     # the fields written, in order; default: every field of each record
//! gzip = false                # each batch is one gzip member
//! rotate = { max_bytes = 134217728, max_age = "1h" }   # a new file when either is reached
//! batch = { max_records = 10000, max_bytes = 1048576, interval = "1s" }
//! retry = { attempts = 5, backoff = "100ms", max_backoff = "10s" }
//! ```
//!
//! # Files
//! Each task writes its own files, named `<prefix>-<task index>-<UTC time the file was
//! opened, yyyymmddThhmmss>-<seq>` plus `.jsonl` or `.csv`, plus `.gz` with `gzip`. The file
//! being written carries a further `.part` suffix; it is renamed to its final name when it reaches
//! `rotate.max_bytes` (its size on disk, compressed if gzip) or `rotate.max_age` (checked before
//! each write and while idle), and when the task ends. Readers of the directory that skip `.part`
//! files only ever see complete files. A name already taken (a file left by an earlier run) is
//! never overwritten: the sequence number moves on.
//!
//! # Records
//! - `jsonl`: one JSON object per line, keyed by field name, values in their natural JSON shape
//!   (bytes as an array of numbers, lists and maps nested).
//! - `csv`: RFC 4180 rows (a field with `,`, `"`, CR or LF is quoted, `"` doubled), a header
//!   line at the top of every file. Null is empty, text and UTF-8 bytes as they are, numbers and
//!   booleans as written in JSON, lists and maps as JSON text. The columns are `fields`, or, when
//!   unset, the fields of the first record; a later record with other fields goes to the `error`
//!   stream.
//! - With `fields`, a record lacking one of them goes to the `error` stream as
//!   `(reason, record)` (both formats) and its input is acked: replaying it would not help.
//!
//! # Durability
//! A batch write appends the batch's records (one complete gzip member with `gzip`) to the
//! `.part` file, then `sync_data`s it, on a blocking thread; only then are the batch's inputs
//! acked. A new file's directory entry is synced too, so an acked record survives a crash. A
//! failed write (disk full, directory gone, no permission) truncates the file back to where the
//! batch started and is retried with back-off; if every try fails, the inputs are failed and
//! their spouts replay them. Concatenated gzip members are one valid gzip stream (`gzip -dc`,
//! `zcat`, flate2's `MultiGzDecoder`), so every acked record can be read even from a file that
//! was never renamed.
//!
//! # Recovery
//! When a task opens, `.part` files left in `dir` by an earlier process with the same prefix and
//! task index are renamed to their final names (empty ones are removed), so nothing written is
//! left hidden.
//!
//! # Exactly-once: files published per checkpoint
//! Under `guarantee = "exactly_once"` (the run takes checkpoints and tracks no input) the sink
//! commits in two phases, and each record appears **exactly once in the published files**, across
//! crashes and restarts:
//!
//! ```text
//!  batch ─► <dir>/.pending/<name>  (appended, fsynced; closed at every checkpoint barrier and at
//!           │                       rotation; the snapshot lists the closed files of each
//!           │                       checkpoint not yet published)
//!           └─ checkpoint N completes ─► rename into <dir>/<name> every file of checkpoints ≤ N,
//!                                        fsync <dir> and <dir>/.pending
//! ```
//!
//! - Names: as above, `<prefix>-<task index>-<yyyymmddThhmmss>-<seq>.<jsonl|csv>[.gz]`; a file
//!   is written in `<dir>/.pending/` under its final name and moved into `<dir>` as it is.
//!   No `.part` files are used. A name is never taken twice (neither pending nor published).
//! - A file is closed at each checkpoint's barrier (so every file holds at most one checkpoint
//!   interval of one task's records; raise `checkpoint_interval` for fewer, larger files), and
//!   by `rotate` as usual. It is published when the checkpoint covering it completes, so output
//!   becomes visible one checkpoint later.
//! - **Readers read the regular files directly in `dir`** and nothing under `.pending/`: every
//!   published file is complete (no torn tail) and final (never appended to or renamed again).
//! - Restore from checkpoint N: the files N lists are published (a rename already done before a
//!   crash is skipped: publishing is idempotent), then every other pending file of the task is
//!   removed: those records came after N and the spouts send them again. With another
//!   parallelism, task `k` takes over the pending files of old tasks `t` with `t % parallelism
//!   == k`. A run started without a checkpoint (`--fresh`) removes the task's pending files of
//!   earlier runs at its first write.
//! - Records written after the last checkpoint when the input ends stay pending (no checkpoint
//!   covers them); a stop takes a last checkpoint (a savepoint) first, so normally none are.
//! - Resuming from an older checkpoint than the newest (`--from-checkpoint`) replays records
//!   whose files were already published: those appear twice.
//!
//! Without exactly-once (`at_least_once`, even with checkpoints taken for a stateful bolt),
//! the sink writes `.part` files and acks after each fsync as described above.
//!
//! # Known limits
//! - A process killed in the middle of a write can leave a torn tail (part of a line, or part of a
//!   gzip member) at the end of a recovered file. Acked records are never in a torn tail — the ack
//!   follows the fsync — but a reader must tolerate a broken last line or member.
//! - At-least-once (without exactly-once): records whose write was retried after a crash, or
//!   failed and replayed, can appear twice.
//! - A sink task waits for each batch's fsync before it takes more input, so one task writes at
//!   most `batch.max_records` records per fsync; raise the batch or the parallelism for more.
//!   A batch fills only as far as the topology lets records be pending: with `max_spout_pending`
//!   below `batch.max_records` (per sink task), a batch is written each time the sink's input
//!   runs dry (the spouts wait for its acks), not when it is full.
//! - The directory is created when the task opens; if it disappears later, writes fail (and
//!   are retried) until it is back.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{BoxError, CheckpointId, Restore, Snapshot, TaskContext, Tuple, clock};

pub use crate::connector::records::FileFormat;
use crate::connector::records::{RecordEncoder, check_fields};
use crate::connector::sink::exactly_once;
use crate::connector::sink::{
    BatchDefaults, BatchOptions, BatchSink, BatchWriter, RetryOptions, WriteError,
};

/// When the `file` sink starts a new file.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RotateOptions {
    /// Close the file once its size on disk reaches this many bytes. Default 128 MiB.
    pub max_bytes: u64,
    /// Close the file once it has been open this long. Default 1 h.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub max_age: Duration,
}

impl Default for RotateOptions {
    fn default() -> Self {
        RotateOptions {
            max_bytes: 128 << 20,
            max_age: Duration::from_secs(3600),
        }
    }
}

/// Options of the `file` sink (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkOptions {
    /// The directory the files are written to; created if missing. Required.
    pub dir: PathBuf,
    /// The start of every file name. Default `part`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// `jsonl` (default) or `csv`.
    #[serde(default)]
    pub format: FileFormat,
    /// The fields written, in order. Empty (default): every field of each record (for `csv`:
    /// the fields of the first record).
    #[serde(default)]
    pub fields: Vec<String>,
    /// Compress the files with gzip, one member per batch. Default false.
    #[serde(default)]
    pub gzip: bool,
    /// When a new file is started.
    #[serde(default)]
    pub rotate: RotateOptions,
    /// When a batch is written; `max_records` defaults to 10,000 here (a batch costs an fsync).
    #[serde(default)]
    pub batch: BatchOptions<FileBatch>,
    /// How a failed write is retried.
    #[serde(default)]
    pub retry: RetryOptions,
}

/// The `file` sink's batch defaults: 10,000 records (1 MiB, 1 s). A batch costs one fsync
/// (about a millisecond on a local disk) and a task takes no input while it waits for it, so at
/// the other sinks' 500 records a task wrote at most about 500,000 records/s; now `max_bytes`
/// usually cuts a batch first.
#[derive(Clone, Debug, PartialEq, schemars::JsonSchema)]
pub struct FileBatch;

impl BatchDefaults for FileBatch {
    const MAX_RECORDS: usize = 10_000;
}

fn default_prefix() -> String {
    "part".into()
}

impl FileSinkOptions {
    /// Options writing JSON lines to `dir`, everything else at its default.
    pub fn new(dir: impl Into<PathBuf>) -> FileSinkOptions {
        FileSinkOptions {
            dir: dir.into(),
            prefix: default_prefix(),
            format: FileFormat::default(),
            fields: Vec::new(),
            gzip: false,
            rotate: RotateOptions::default(),
            batch: BatchOptions::default(),
            retry: RetryOptions::default(),
        }
    }
}

/// The [`BatchWriter`] of the `file` sink: encodes records into a batch buffer and appends
/// batches to the current file. Wrap it with [`FileWriter::into_sink`].
pub struct FileWriter {
    opts: Arc<FileSinkOptions>,
    /// Encodes records (JSON lines or CSV).
    records: RecordEncoder,
    /// Encoded records of the pending batch.
    buf: Vec<u8>,
    /// The file side; `None` only while a write runs on the blocking thread.
    disk: Option<Disk>,
}

impl Clone for FileWriter {
    /// A writer with the same options and nothing pending or open (one per task).
    fn clone(&self) -> FileWriter {
        FileWriter::from_checked(self.opts.clone())
    }
}

impl FileWriter {
    /// A writer with these options, or what is wrong with them (naming the option and value).
    pub fn new(opts: FileSinkOptions) -> Result<FileWriter, String> {
        opts.batch.check()?;
        opts.retry.check_sink("retry")?;
        if opts.dir.as_os_str().is_empty() {
            return Err("option `dir` must name a directory, got \"\"".into());
        }
        if opts.prefix.is_empty()
            || opts
                .prefix
                .chars()
                .any(|c| c == '/' || c == '\\' || c == '\0')
        {
            return Err(format!(
                "option `prefix` must be a non-empty file name part without `/`, `\\` or NUL, got {:?}",
                opts.prefix
            ));
        }
        check_fields(&opts.fields)?;
        if opts.rotate.max_bytes == 0 {
            return Err("option `rotate.max_bytes` must be at least 1, got 0".into());
        }
        if opts.rotate.max_age.is_zero() {
            return Err("option `rotate.max_age` must be longer than 0s".into());
        }
        Ok(FileWriter::from_checked(Arc::new(opts)))
    }

    fn from_checked(opts: Arc<FileSinkOptions>) -> FileWriter {
        FileWriter {
            records: RecordEncoder::new(opts.format, &opts.fields),
            buf: Vec::new(),
            disk: Some(Disk {
                dir: opts.dir.clone(),
                task: 0,
                seq: 0,
                file: None,
                gz: Vec::new(),
                two_phase: None,
            }),
            opts,
        }
    }

    /// The options.
    pub fn options(&self) -> &FileSinkOptions {
        &self.opts
    }

    /// The sink: this writer inside a [`BatchSink`] with the options' batch and retry settings.
    pub fn into_sink(self) -> BatchSink<FileWriter> {
        let batch = self.opts.batch.clone();
        let retry = self.opts.retry.clone();
        BatchSink::new(self, batch, retry)
    }

    /// The path of the file being written (with its `.part` suffix), if one is open.
    pub fn current_file(&self) -> Option<&Path> {
        self.disk.as_ref()?.file.as_ref().map(|f| f.part.as_path())
    }
}

impl BatchWriter for FileWriter {
    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        let task = ctx.task_index();
        let opts = self.opts.clone();
        if let Some(disk) = self.disk.as_mut() {
            disk.task = task;
            disk.two_phase = exactly_once(ctx).then(|| TwoPhase {
                pending_dir: opts.dir.join(PENDING_DIR),
                prefix: opts.prefix.clone(),
                parallelism: ctx.parallelism(),
                sealed: Vec::new(),
                epochs: VecDeque::new(),
                cleaned: false,
            });
        }
        let dir = self.opts.dir.clone();
        tokio::task::spawn_blocking(move || recover(&opts, task))
            .await
            .map_err(|e| format!("recovering files: {e}"))?
            .map_err(|e| format!("opening directory {}: {e}", dir.display()).into())
    }

    fn encode(&mut self, input: &Tuple) -> Result<usize, String> {
        self.records.encode(&mut self.buf, input)
    }

    async fn write(&mut self) -> Result<(), WriteError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(mut disk) = self.disk.take() else {
            return Err(WriteError::Retry("the file state is unavailable".into()));
        };
        let buf = std::mem::take(&mut self.buf);
        let opts = self.opts.clone();
        let header = self.records.header().clone();
        let now = Instant::now();
        let wall = clock::now_millis();
        let joined = tokio::task::spawn_blocking(move || {
            let r = disk.write_batch(&opts, &header, &buf, now, wall);
            (disk, buf, r)
        })
        .await;
        match joined {
            Ok((disk, mut buf, r)) => {
                self.disk = Some(disk);
                if r.is_ok() {
                    buf.clear();
                }
                self.buf = buf;
                r.map_err(|e| WriteError::Retry(e.into()))
            }
            // A panic on the blocking thread is the bolt's panic: the runtime fails the held
            // inputs and starts a fresh instance.
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(WriteError::Retry(e.into())),
        }
    }

    fn discard(&mut self) {
        self.buf.clear();
    }

    async fn idle(&mut self) -> Result<(), BoxError> {
        let max_age = self.opts.rotate.max_age;
        let now = Instant::now();
        let due = self
            .disk
            .as_ref()
            .and_then(|d| d.file.as_ref())
            .is_some_and(|f| now.duration_since(f.opened) >= max_age);
        if due {
            self.close_file().await?;
        }
        Ok(())
    }

    async fn close(&mut self) {
        if let Err(e) = self.close_file().await {
            tracing::warn!(error = %e, "closing the current file");
        }
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        let Some(disk) = self.disk.as_mut() else {
            return Err("the file state is unavailable".into());
        };
        if disk.two_phase.is_none() {
            return Ok(());
        }
        // Every record before the barrier is in a synced pending file: close the current one,
        // so the files of this checkpoint are complete and none is written to again.
        disk.rotate()
            .map_err(|e| format!("closing the pending file at checkpoint: {e}"))?;
        let task = disk.task;
        let Some(tp) = disk.two_phase.as_mut() else {
            return Ok(());
        };
        let id = snap.checkpoint_id();
        if !tp.sealed.is_empty() {
            tp.epochs.push_back((id, std::mem::take(&mut tp.sealed)));
        }
        snap.put(
            PENDING_PART,
            &PendingFiles {
                task: task as u64,
                epochs: tp.epochs.iter().cloned().collect(),
            },
        );
        Ok(())
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        let Some(disk) = self.disk.as_mut() else {
            return Ok(());
        };
        let task = disk.task;
        let dir = disk.dir.clone();
        let Some(tp) = disk.two_phase.as_mut() else {
            return Ok(());
        };
        // Every old task's list: with another parallelism, this task takes over the files of
        // the old tasks it owns (task index modulo the parallelism).
        let mut publish = Vec::new();
        for p in from.get_all::<PendingFiles>(PENDING_PART)? {
            if tp.owns(p.task as usize, task) {
                publish.extend(p.epochs.into_iter().flat_map(|(_, files)| files));
            }
        }
        publish_files(&dir, &tp.pending_dir, &publish).map_err(|e| {
            format!(
                "publishing the files of checkpoint {} in {}: {e}",
                from.checkpoint_id(),
                dir.display()
            )
        })?;
        tp.remove_stale(task).map_err(|e| {
            format!(
                "removing files written after checkpoint {}: {e}",
                from.checkpoint_id()
            )
        })?;
        tp.cleaned = true;
        Ok(())
    }

    async fn checkpoint_complete(&mut self, id: CheckpointId) -> Result<(), BoxError> {
        let Some(tp) = self.disk.as_mut().and_then(|d| d.two_phase.as_mut()) else {
            return Ok(());
        };
        let mut files = Vec::new();
        let mut n = 0;
        while tp.epochs.front().is_some_and(|(c, _)| *c <= id) {
            if let Some((_, f)) = tp.epochs.pop_front() {
                files.extend(f);
            }
            n += 1;
        }
        if files.is_empty() {
            return Ok(());
        }
        let (dir, pending) = (self.opts.dir.clone(), tp.pending_dir.clone());
        let list = files.clone();
        let done = tokio::task::spawn_blocking(move || publish_files(&dir, &pending, &list))
            .await
            .map_err(|e| format!("publishing files: {e}"))?;
        if let Err(e) = done {
            // Tried again at the next completed checkpoint (or at a restore).
            if let Some(tp) = self.disk.as_mut().and_then(|d| d.two_phase.as_mut()) {
                tp.epochs.push_front((id, files));
            }
            return Err(format!(
                "publishing the files of checkpoint {id} ({n} checkpoints) in {}: {e}",
                self.opts.dir.display()
            )
            .into());
        }
        Ok(())
    }
}

/// The directory under `dir` holding the files written but not yet covered by a completed
/// checkpoint (exactly-once).
pub const PENDING_DIR: &str = ".pending";

/// The name of the sink's part in a checkpoint.
const PENDING_PART: &str = "pending_files";

/// What a task's snapshot records: its index and the pending files of each checkpoint not yet
/// published.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PendingFiles {
    task: u64,
    epochs: Vec<(CheckpointId, Vec<String>)>,
}

/// The two-phase side of a task's files (exactly-once).
struct TwoPhase {
    pending_dir: PathBuf,
    prefix: String,
    parallelism: usize,
    /// Files closed since the last snapshot (names in `pending_dir`).
    sealed: Vec<String>,
    /// Files of each checkpoint taken but not known complete, oldest first.
    epochs: VecDeque<(CheckpointId, Vec<String>)>,
    /// Pending files of earlier runs were published or removed (a restore or the first write).
    cleaned: bool,
}

impl TwoPhase {
    /// Whether task `me` handles the pending files of (old) task `task`.
    fn owns(&self, task: usize, me: usize) -> bool {
        task % self.parallelism.max(1) == me
    }

    /// Removes the pending files of the tasks `me` owns: written after the checkpoint this run
    /// resumes from (or by an earlier run when this one starts fresh). They are written again.
    fn remove_stale(&self, me: usize) -> io::Result<()> {
        std::fs::create_dir_all(&self.pending_dir)?;
        let start = format!("{}-", self.prefix);
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.pending_dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(&start) else {
                continue;
            };
            let Some((task, rest)) = rest.split_once('-') else {
                continue;
            };
            let Ok(task) = task.parse::<usize>() else {
                continue;
            };
            if !is_stamp_seq_ext(rest) || !self.owns(task, me) {
                continue;
            }
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
        if removed > 0 {
            tracing::info!(
                dir = %self.pending_dir.display(),
                files = removed,
                "removed pending files not covered by a completed checkpoint"
            );
            File::open(&self.pending_dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Moves each pending file into `dir` under its own name, then syncs both directories. A file
/// already moved (a publish cut short by a crash) is skipped: publishing is idempotent.
fn publish_files(dir: &Path, pending: &Path, names: &[String]) -> io::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name.as_str()) {
            continue;
        }
        let from = pending.join(name);
        let to = dir.join(name);
        match (from.exists(), to.exists()) {
            (true, false) => std::fs::rename(&from, &to)?,
            // Moved, but the removal of the old entry was not yet durable: the same file.
            (true, true) => std::fs::remove_file(&from)?,
            (false, true) => {}
            (false, false) => {
                tracing::warn!(
                    file = %to.display(),
                    "a file of a completed checkpoint is neither pending nor published (moved away?)"
                );
            }
        }
    }
    File::open(dir)?.sync_all()?;
    File::open(pending)?.sync_all()?;
    Ok(())
}

impl FileWriter {
    /// Closes and renames the current file (on a blocking thread).
    async fn close_file(&mut self) -> Result<(), BoxError> {
        let Some(mut disk) = self.disk.take() else {
            return Ok(());
        };
        let joined = tokio::task::spawn_blocking(move || {
            let r = disk.rotate();
            (disk, r)
        })
        .await;
        match joined {
            Ok((disk, r)) => {
                self.disk = Some(disk);
                r.map_err(Into::into)
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The file being written.
struct OpenFile {
    file: File,
    part: PathBuf,
    done: PathBuf,
    len: u64,
    opened: Instant,
    /// A failed write could not be cut off (two-phase only).
    torn: bool,
}

/// The file side of a writer; moved to a blocking thread for each write.
struct Disk {
    dir: PathBuf,
    task: usize,
    seq: u64,
    file: Option<OpenFile>,
    /// Reused buffer of a batch's gzip member.
    gz: Vec<u8>,
    /// Exactly-once: files are written in the pending directory and published when a
    /// checkpoint completes.
    two_phase: Option<TwoPhase>,
}

impl Disk {
    /// Appends one batch durably: rotates by age, opens a file if none, appends, syncs, rotates
    /// by size. On error the file is as it was before the call.
    fn write_batch(
        &mut self,
        opts: &FileSinkOptions,
        header: &[u8],
        data: &[u8],
        now: Instant,
        wall_ms: i64,
    ) -> io::Result<()> {
        if self
            .file
            .as_ref()
            .is_some_and(|f| now.duration_since(f.opened) >= opts.rotate.max_age)
        {
            self.rotate()?;
        }
        if let Some(tp) = self.two_phase.as_mut()
            && !tp.cleaned
        {
            // A run that did not restore: pending files of an earlier run are not covered by
            // any checkpoint it resumes from.
            tp.remove_stale(self.task)?;
            tp.cleaned = true;
        }
        if self.file.is_none() {
            self.file = Some(self.create(opts, now, wall_ms)?);
        }
        let Disk { file, gz, .. } = self;
        let Some(f) = file.as_mut() else {
            return Err(io::Error::other("no file open"));
        };
        let header = if f.len == 0 { header } else { &[][..] };
        let start = f.len;
        if f.torn {
            // An earlier failed write could not be cut off: cut it now, before appending.
            f.file.set_len(start)?;
            f.torn = false;
        }
        let written = if opts.gzip {
            gz.clear();
            let mut enc = GzEncoder::new(&mut *gz, Compression::default());
            enc.write_all(header)?;
            enc.write_all(data)?;
            enc.finish()?;
            append(&mut f.file, &[gz.as_slice()])
        } else {
            append(&mut f.file, &[header, data])
        };
        match written {
            Ok(n) => f.len += n,
            Err(e) => {
                // Cut a partly written batch off, so a retry does not follow a torn record.
                if f.file.set_len(start).is_err() {
                    if self.two_phase.is_some() {
                        // Its earlier batches are pending: keep it, cut before the next write.
                        f.torn = true;
                    } else {
                        // The file cannot be repaired: leave it (recovery renames it) and
                        // start a new one at the next write.
                        self.file = None;
                    }
                }
                return Err(e);
            }
        }
        if f.len >= opts.rotate.max_bytes
            && let Err(e) = self.rotate()
        {
            if self.two_phase.is_some() {
                // The batch is durable in the file, which stays open: it is closed at the next
                // snapshot (or fails it).
                tracing::warn!(error = %e, "closing a full pending file");
                return Ok(());
            }
            // The batch is durable; the file stays `.part` until recovery renames it.
            tracing::warn!(error = %e, "renaming a full file");
            self.file = None;
        }
        Ok(())
    }

    /// Creates a new `.part` file under a name not yet taken.
    fn create(
        &mut self,
        opts: &FileSinkOptions,
        now: Instant,
        wall_ms: i64,
    ) -> io::Result<OpenFile> {
        let stamp = chrono::DateTime::from_timestamp_millis(wall_ms)
            .unwrap_or_default()
            .format("%Y%m%dT%H%M%S");
        let ext = opts.format.extension();
        let gz = if opts.gzip { ".gz" } else { "" };
        for _ in 0..10_000 {
            let seq = self.seq;
            self.seq += 1;
            let name = format!("{}-{}-{stamp}-{seq}.{ext}{gz}", opts.prefix, self.task);
            let done = self.dir.join(&name);
            let (part, parent) = match &self.two_phase {
                Some(tp) => (tp.pending_dir.join(&name), tp.pending_dir.clone()),
                None => (self.dir.join(format!("{name}.part")), self.dir.clone()),
            };
            if done.exists() {
                continue;
            }
            match OpenOptions::new().append(true).create_new(true).open(&part) {
                Ok(file) => {
                    // Make the new directory entry durable, so synced data cannot vanish with it.
                    File::open(&parent)?.sync_all()?;
                    return Ok(OpenFile {
                        file,
                        part,
                        done,
                        len: 0,
                        opened: now,
                        torn: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "no free file name in {}",
            self.dir.display()
        )))
    }

    /// Closes the current file and gives it its final name.
    fn rotate(&mut self) -> io::Result<()> {
        if let Some(tp) = self.two_phase.as_mut() {
            // Closed and kept pending until a checkpoint covering it completes.
            if let Some(f) = self.file.take() {
                if f.torn
                    && let Err(e) = f.file.set_len(f.len)
                {
                    self.file = Some(f);
                    return Err(e);
                }
                drop(f.file);
                if f.len == 0 {
                    std::fs::remove_file(&f.part)?;
                } else if let Some(name) = f.part.file_name().and_then(|n| n.to_str()) {
                    tp.sealed.push(name.to_string());
                }
            }
            return Ok(());
        }
        if let Some(f) = self.file.take() {
            drop(f.file);
            if f.len == 0 {
                std::fs::remove_file(&f.part)?;
            } else {
                std::fs::rename(&f.part, &f.done)?;
            }
        }
        Ok(())
    }
}

/// Appends every slice, then syncs the data; the number of bytes appended.
fn append(file: &mut File, parts: &[&[u8]]) -> io::Result<u64> {
    let mut n = 0;
    for p in parts {
        file.write_all(p)?;
        n += p.len() as u64;
    }
    file.sync_data()?;
    Ok(n)
}

/// Renames this task's `.part` files left by an earlier process (removes empty ones).
fn recover(opts: &FileSinkOptions, task: usize) -> io::Result<()> {
    std::fs::create_dir_all(&opts.dir)?;
    let start = format!("{}-{task}-", opts.prefix);
    for entry in std::fs::read_dir(&opts.dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(&start) else {
            continue;
        };
        let Some(done) = name.strip_suffix(".part") else {
            continue;
        };
        if !rest.strip_suffix(".part").is_some_and(is_stamp_seq_ext) {
            continue;
        }
        let part = entry.path();
        if entry.metadata()?.len() == 0 {
            std::fs::remove_file(&part)?;
            continue;
        }
        let target = opts.dir.join(done);
        if target.exists() {
            continue;
        }
        tracing::info!(file = %part.display(), "renaming a file left unfinished by an earlier run");
        std::fs::rename(&part, &target)?;
    }
    Ok(())
}

/// Whether `s` is `yyyymmddThhmmss-<seq>.<jsonl|csv>[.gz]`.
fn is_stamp_seq_ext(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 17 || b[8] != b'T' || b[15] != b'-' {
        return false;
    }
    if !b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit) {
        return false;
    }
    let rest = &s[16..];
    let Some(dot) = rest.find('.') else {
        return false;
    };
    let (seq, ext) = rest.split_at(dot);
    !seq.is_empty()
        && seq.bytes().all(|c| c.is_ascii_digit())
        && matches!(ext, ".jsonl" | ".csv" | ".jsonl.gz" | ".csv.gz")
}

/// The `file` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::bolt(
            "file",
            "writes records to JSON-lines or CSV files in batches, acking after fsync; rotation by size and age, optional gzip; records lacking a field to the `error` stream",
            |w: &FileWriter| w.clone().into_sink(),
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components file`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.archive]
kind = "file"
dir = "out/logs"          # files <prefix>-<task>-<UTC time>-<seq>.jsonl.gz; ".part" while written
                          # (exactly_once: written in out/logs/.pending/, moved in per checkpoint)
prefix = "access"
format = "jsonl"          # or "csv" (a header line per file)
gzip = true               # one gzip member per batch: every acked record is readable
rotate = { max_bytes = 134217728, max_age = "1h" }
batch = { max_records = 10000, interval = "1s" }      # appended and fsynced, then acked
inputs = [{ from = "server_errors" }]
"#;

impl FromOptions for FileWriter {
    type Options = FileSinkOptions;
    fn from_options(options: FileSinkOptions) -> Result<Self, String> {
        FileWriter::new(options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_table_that_leaves_max_records_out_gets_the_file_sinks_default() {
        let opts: FileSinkOptions =
            toml::from_str("dir = \"out\"\nbatch = { interval = \"2s\" }").unwrap();
        assert_eq!(opts.batch.max_records, 10_000);
        assert_eq!(opts.batch.interval, Duration::from_secs(2));
        assert_eq!(FileSinkOptions::new("out").batch.max_records, 10_000);
        let other: crate::connector::sink::BatchOptions =
            toml::from_str("interval = \"2s\"").unwrap();
        assert_eq!(other.max_records, 500, "the other sinks' default");
        let set: FileSinkOptions =
            toml::from_str("dir = \"out\"\nbatch = { max_records = 7 }").unwrap();
        assert_eq!(set.batch.limits().max_records, 7);
    }

    #[test]
    fn file_name_pattern() {
        assert!(is_stamp_seq_ext("20261124T171500-0.jsonl"));
        assert!(is_stamp_seq_ext("20261124T171500-12.csv.gz"));
        assert!(!is_stamp_seq_ext("20261124T171500-.jsonl"));
        assert!(!is_stamp_seq_ext("0-20261124T171500-1.jsonl"));
        assert!(!is_stamp_seq_ext("20261124T171500-1.txt"));
    }
}
