//! `file`: tails files like `tail -F` and watches directories for new files (Spark's
//! `textFileStream`), with glob patterns; a per-file checkpoint of the acked lines lets a
//! restarted process resume without loss.
//!
//! ```text
//!  every poll_interval, and at once on a change event (`watch`, inotify: see the `watch` module):
//!  glob `paths` (minus `exclude`) ─► stat ─► (device, inode)
//!        │  hash(device, inode) % parallelism == this task?  new file: open, start at its
//!        │  checkpoint (if its fingerprint matches), else at 0 (or the end, `start_at = "end"`)
//!        ▼
//!  open files, read in turn: 64 KiB reads ─► split at `\n` (max_line_bytes) ─► line / oversize / bad UTF-8
//!        │                                                   ▲ at EOF: size < position? truncated: from 0
//!        ▼                                                   │
//!   spout ──emit (line[, path, offset]) msg id n──► bolts    pending: n ─► (file, start, end, values)
//!         └─emit_to "error" (reason, raw), unanchored         │ fail: emitted again from memory
//!                                                             ▼ ack
//!        acked-prefix tracker per file (out-of-order acks kept until the gap closes)
//!                                                             │ its end: one atomic store per ack
//!                                                             ▼
//!        writer task: every checkpoint_interval (if changed) and at close
//!        ─► <state_dir>/task-<index>.json   (temporary file, fsynced, renamed, dir fsynced)
//! ```
//!
//! # Options
//! ```toml
//! [spouts.logs]
//! kind = "file"
//! paths = ["/var/log/app/*.log"]  # globs (`*`, `?`, `[a-z]`, `**`); a directory means its files
//! exclude = ["**/*.gz"]           # globs of paths to leave alone
//! start_at = "beginning"          # or "end": where a file found at start-up without checkpoint begins
//! poll_interval = "250ms"         # how often the globs are expanded and files checked for growth
//! watch = true                    # also wake on the file system's change events (inotify): appends read at once
//! checkpoint_interval = "1s"      # how often acked offsets are written (and at close)
//! # state_dir = "/var/lib/topo/logs"  # default: $TOPO_STATE_DIR (or .topo/state)/<topology>/<component>
//! max_line_bytes = 1048576        # longer lines go to the `error` stream
//! encoding = "lossy"              # "strict": bad UTF-8 to `error`; "bytes": a Bytes value
//! field = "line"
//! include_path = false            # true: add fields `path` (text) and `offset` (int, the line's first byte)
//! until_eof = false               # true: read the files found at start-up to their end, then end
//! rotate_wait = "5s"              # a file renamed away (rotated) or deleted is still followed this long
//! ```
//!
//! # Output
//! The `default` stream carries (`line`), or (`line`, `path`, `offset`) with `include_path`:
//! the path the file had when it was last found, and the byte offset of the line's start. A line
//! ends at `\n`; a `\r` before it is dropped. A last line without `\n` is held until it is
//! completed, and emitted as it is only once the file is finished (`until_eof`, or the file was
//! renamed away or deleted `rotate_wait` ago and read to its end). The `error` stream carries (`reason`, `raw`): a
//! line longer than `max_line_bytes` (the rest of it is skipped) or, with `encoding = "strict"`, a
//! line that is not UTF-8; `raw` is its first KiB (lossy). Error tuples carry no message id: they
//! count as handled at once, so the checkpoint moves past them. Each is counted
//! ([`FileCounters`]) and logged with `tracing::warn!` at most once a second.
//!
//! # Files, rotation, truncation
//! A file is known by its device and inode, so a rename does not make it a new file. Rotation by
//! rename (`app.log` → `app.log.1`, new `app.log`): the open old file is read to its end, the new
//! one from its start. A file no glob matches any more (renamed away, deleted) is still followed
//! for `rotate_wait` (5 s; the lines a writer appends until it reopens its log are read, as
//! Fluent Bit's `Rotate_Wait` does), then read to its end and released once every line of it is
//! acked; its checkpoint is then dropped. Truncation
//! (`copytruncate`) is noticed when a file is smaller than the read position: it is read again
//! from 0, with a warning and a count; lines written after the last read and before the
//! truncation are lost, as with any tail. Each file is read by one task: the one whose index is
//! the hash of (device, inode) modulo the parallelism. A file is opened only if the open file is
//! the one the glob's listing found there: a path renamed away and replaced between the listing
//! and the open (a rotation under way) is left for the next scan, so the new file is never read
//! as the old one (which would read it twice and leave the old one's tail unread).
//!
//! # Checkpoints and delivery guarantee
//! Every emitted line has a message id standing for (file, first byte, end). A file's
//! checkpoint is the end of its longest acked prefix: a line acked before earlier ones is held
//! in a map of acked ranges until the gap closes. Emitted lines are kept in memory until acked
//! and emitted again on fail or timeout (at most `max_spout_pending` per task). The new lines
//! of one call (up to 256, and up to a sixteenth of `max_spout_pending`) share one tuple tree
//! (`SpoutCollector::emit_shared`): the acker and the task track one tree per call instead of
//! one per line; if any of its tuples fails or the tree times out, all of its lines are emitted
//! again, each in a tree of its own. A task of its
//! own writes the checkpoints every `checkpoint_interval` when they changed (also while the
//! spout is held back at `max_spout_pending`) and the spout writes them once more at close, per
//! task to `<state_dir>/task-<i>.json`
//! (written to a fresh temporary file, fsynced, renamed over the old one, directory fsynced: a
//! crash leaves the old or the new checkpoint, never a torn one — a whole-file replace is enough
//! because each task owns its file and rewrites it whole, as Vector does with its
//! `checkpoints.json`). With each offset is stored a fingerprint (hash of the file's first up to
//! 256 bytes): after a restart, a checkpoint is used only if the file at that device and inode
//! still starts with the same bytes (an inode reused by another file starts at 0). At open a
//! task reads the checkpoint files of every task (the newest entry of a file wins), so a
//! change of parallelism keeps the offsets.
//!
//! **At-least-once across restarts**: after a crash (even `SIGKILL`) or a spout restart, each
//! file is read again from its checkpoint, so a line is lost only if its file was truncated or
//! deleted before it was read. Lines acked after the last checkpoint write are read again: the
//! duplicates are bounded by the lines acked in one `checkpoint_interval` plus those in flight
//! (`max_spout_pending`). A clean stop writes the checkpoint after the last ack. Proven by a soak
//! (`tests/soak_file.rs`): 100,000 lines appended while `topo run` (2 tasks) reads them into the
//! durable `file` sink, the log rotated by rename 4 times and the process killed with `SIGKILL` 10
//! times at random points, lose nothing; every duplicate is a line the checkpoints left to read
//! again.
//!
//! # Ending
//! With `until_eof = true` the spout reads the files matching at start-up (not later ones) to
//! their end and is exhausted once every line is acked, so `topo run --until-idle` ends.
//! Otherwise it follows the files forever.
//!
//! # Known limits
//! - Appends and new files are seen at the spout's next call (within a millisecond when idle)
//!   through the file system's change events (`watch = true`, the default), else within
//!   `poll_interval`. A file system that reports no events (NFS, some FUSE and container
//!   mounts) is polled only; so is every directory when the watches cannot be set up (the
//!   limit `fs.inotify.max_user_watches`, a warning says so).
//! - Files are read on the spout's task with ordinary (blocking) reads of at most 64 KiB per
//!   file per call; on local disks these take microseconds, on a stalled network file system
//!   they hold a runtime worker thread.
//! - A file truncated and written past the read position again between two polls is taken for
//!   a file that grew (as by `tail -F`).
//! - Unix only (device and inode numbers). Compressed files are not decompressed.
//! - A partial last line emitted at the end of a finished file and completed later (a writer
//!   still appending to a renamed file more than `rotate_wait` after the rename) comes out as
//!   two lines; lines appended after the file was released are not read.
//! - Rotated files must stay matched by `paths` (e.g. `app.log*`) for their un-acked lines to be
//!   read again after a crash; a file renamed out of the globs is released `rotate_wait` after
//!   the rename, once read and acked.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    BoxError, OutputDeclarer, Restore, Snapshot, Spout, SpoutCollector, TaskContext, Value, Values,
    values,
};

use super::watch::Seen;
pub use crate::connector::acked::AckedPrefix;
use crate::connector::counters;
use crate::connector::encoding::decode_line;
use crate::connector::encoding::raw_prefix;
use crate::connector::state::state_dir;
use crate::connector::warn::lock;
use crate::connector::{ERROR_STREAM, SOURCE_ERROR_FIELDS};
use crate::socket::{Encoding, check_max_line_bytes};

/// The size of one read.
const CHUNK: usize = 64 * 1024;

/// How many tuples `next_tuple` emits at most per call.
const EMIT_PER_CALL: usize = 256;

/// The shortest time between two scans asked for by change events (files created, renamed or
/// removed): a directory where files come and go all the time costs at most this many globs.
const MIN_EVENT_SCAN_GAP: Duration = Duration::from_millis(10);

/// How many leading bytes of a file its fingerprint covers.
const FINGERPRINT_BYTES: u64 = 256;

/// Where a file found at start-up without a checkpoint begins.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// At its first byte.
    #[default]
    Beginning,
    /// At its end: only lines appended later are read.
    End,
}

/// Options of the `file` spout.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = file_required)]
pub struct FileOptions {
    /// Glob patterns of the files to read (required); a pattern matching a directory means the
    /// files in it.
    pub paths: Vec<String>,
    /// Glob patterns of paths not to read.
    pub exclude: Vec<String>,
    /// Where a file found at start-up without a checkpoint begins (files found later begin at 0).
    pub start_at: StartAt,
    /// How often the globs are expanded and open files checked for new data (also with `watch`,
    /// which makes most changes seen at once).
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub poll_interval: Duration,
    /// Wake on the file system's change events (inotify on Linux): appends and new files are
    /// read at once instead of at the next poll. Polling goes on beside it, for file systems
    /// that report nothing (NFS, some FUSE and container mounts).
    pub watch: bool,
    /// How often acked offsets are written to the state directory.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub checkpoint_interval: Duration,
    /// Where checkpoints are kept; default `$TOPO_STATE_DIR/<topology>/<component>`, with
    /// `TOPO_STATE_DIR` defaulting to `.topo/state` under the working directory.
    pub state_dir: Option<PathBuf>,
    /// The longest line accepted, in bytes (without the `\n`).
    pub max_line_bytes: usize,
    /// How bytes become a value.
    pub encoding: Encoding,
    /// The name of the line field.
    pub field: String,
    /// Add the fields `path` and `offset` (the byte offset of the line's start).
    pub include_path: bool,
    /// Read the files found at start-up to their end, then end (exhausted once all is acked).
    pub until_eof: bool,
    /// How long a file no glob matches any more (renamed away by a rotation, deleted) is still
    /// followed before it is finished: a writer appends to it until it reopens its log, and
    /// those lines are read too. Then it is read to its end and released once acked.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub rotate_wait: Duration,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            paths: Vec::new(),
            exclude: Vec::new(),
            start_at: StartAt::Beginning,
            poll_interval: Duration::from_millis(250),
            watch: true,
            checkpoint_interval: Duration::from_secs(1),
            state_dir: None,
            max_line_bytes: 1 << 20,
            encoding: Encoding::Lossy,
            field: "line".to_string(),
            include_path: false,
            until_eof: false,
            rotate_wait: Duration::from_secs(5),
        }
    }
}

counters! {
    /// Counts of what the spout saw, shared by every task of a spout (and its clones).
pub struct FileCounters {
        /// Lines read and emitted (replays not counted).
        lines,
        /// Lines longer than `max_line_bytes`, sent to the `error` stream.
        oversize,
        /// Lines that were not UTF-8 (`encoding = "strict"`), sent to the `error` stream.
        invalid_utf8,
        /// Files opened for reading.
        files_opened,
        /// Files released after they were renamed away or deleted and read to their end.
        files_released,
        /// Files found truncated and read again from their start.
        truncations,
        /// Checkpoint files written.
        checkpoints,
        /// Checkpoint writes that failed (retried at the next interval).
        checkpoint_errors,
        ;
        /// One warning a second at most.
        warn: crate::connector::warn::WarnLimit,
    }
}

impl FileCounters {
    /// True at most once a second: whether a warning may be logged now.
    fn may_warn(&self) -> bool {
        self.warn.allow()
    }
}

/// A file's identity: device and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// The task that reads this file.
    fn owner(self, parallelism: usize) -> usize {
        let mut key = [0u8; 16];
        key[..8].copy_from_slice(&self.dev.to_le_bytes());
        key[8..].copy_from_slice(&self.ino.to_le_bytes());
        (xxhash_rust::xxh3::xxh3_64(&key) % parallelism.max(1) as u64) as usize
    }
}

/// Opens `path`, where a listing found the file `id`, with its metadata; `Ok(None)` when the
/// path names another file by now, or none (the one listed was renamed away, and maybe
/// replaced, since).
fn open_as(path: &Path, id: FileId) -> io::Result<Option<(File, std::fs::Metadata)>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    Ok((FileId::of(&meta) == id).then_some((file, meta)))
}

/// One file's entry in a checkpoint file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Saved {
    dev: u64,
    ino: u64,
    /// The path the file had when the checkpoint was written (for people reading the file).
    path: String,
    /// Every line before this byte is acked.
    offset: u64,
    /// How many leading bytes `fingerprint` covers.
    fingerprint_len: u64,
    /// xxh3 of the first `fingerprint_len` bytes.
    fingerprint: u64,
}

/// A task's checkpoint file.
#[derive(Debug, Serialize, Deserialize)]
struct CheckpointFile {
    version: u32,
    /// When it was written (ms since the epoch): the newest entry of a file wins.
    written_ms: u64,
    files: Vec<Saved>,
}

/// What the checkpoint writer sees of an open file: its acked offset, published on each ack with
/// one atomic store, and its fingerprint and path, which change rarely.
#[derive(Debug)]
struct Entry {
    id: FileId,
    committed: AtomicU64,
    /// (fingerprint length, fingerprint, path).
    meta: Mutex<(u64, u64, String)>,
}

impl Entry {
    fn new(id: FileId, committed: u64, fp_len: u64, fp: u64, path: &Path) -> Arc<Entry> {
        Arc::new(Entry {
            id,
            committed: AtomicU64::new(committed),
            meta: Mutex::new((fp_len, fp, path.to_string_lossy().into_owned())),
        })
    }
}

/// The open files of a task, as the checkpoint writer sees them.
type Entries = Arc<Mutex<HashMap<FileId, Arc<Entry>>>>;

/// The maps a task touches per line (pending lines, the files they come from): a fast hash,
/// as their keys are the spout's own ids.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What a file yielded.
enum Rec {
    /// A line `[start, end)`, without its `\n` (and `\r`): a value, or (reason, raw) when it is
    /// not UTF-8 in strict mode.
    Line {
        start: u64,
        end: u64,
        value: Result<Value, (String, String)>,
    },
    /// A line longer than `max_line_bytes` begins; `end` is known when it was read whole.
    Oversize {
        start: u64,
        end: Option<u64>,
        raw: String,
    },
    /// The end of an oversize line was skipped to: `[start, end)` is handled.
    Skipped { start: u64, end: u64 },
}

/// An open file this task reads.
struct Watched {
    id: FileId,
    file: File,
    path: PathBuf,
    /// `path` as the change events name it (absolute), see [`super::watch::event_path`].
    event_path: PathBuf,
    path_value: Value,
    /// File offset of `buf[0]`.
    buf_off: u64,
    buf: Vec<u8>,
    /// Index in `buf` of the first byte not yet turned into a record.
    pos: usize,
    /// Inside an oversize line that began at this offset: skip to its `\n`.
    skipping: Option<u64>,
    /// Bumped on truncation: acks of lines read before are not counted.
    generation: u64,
    tracker: AckedPrefix,
    /// Lines emitted and not yet acked (any generation).
    in_flight: usize,
    /// How many leading bytes the fingerprint in `entry` covers.
    fp_len: u64,
    /// What the checkpoint writer reads.
    entry: Arc<Entry>,
    /// Read to the end; not read again until the next poll.
    at_eof: bool,
    /// The last read found the end: check for truncation.
    hit_eof: bool,
    /// No glob has matched the file for `rotate_wait` (or `until_eof`): its last partial line is
    /// emitted at the end, and it is released once acked.
    finished: bool,
    /// Since when no glob matches the file (it is still followed until `rotate_wait` passed).
    gone_since: Option<Instant>,
    /// Its partial last line was emitted (or it had none) after `finished`.
    drained: bool,
}

impl Watched {
    /// The next record, or `None` at the end of the data read so far and of the file.
    fn next_record(&mut self, max: usize, encoding: Encoding) -> io::Result<Option<Rec>> {
        loop {
            let rest = &self.buf[self.pos..];
            if let Some(i) = memchr::memchr(b'\n', rest) {
                let start = self.buf_off + self.pos as u64;
                let end = start + i as u64 + 1;
                let mut line = &rest[..i];
                self.pos += i + 1;
                if let Some(s) = self.skipping.take() {
                    return Ok(Some(Rec::Skipped { start: s, end }));
                }
                if line.len() > max {
                    let raw = raw_prefix(line);
                    return Ok(Some(Rec::Oversize {
                        start,
                        end: Some(end),
                        raw,
                    }));
                }
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let value = to_value(line, encoding);
                return Ok(Some(Rec::Line { start, end, value }));
            }
            // No `\n` in what is buffered.
            if self.skipping.is_some() {
                self.buf_off += self.buf.len() as u64;
                self.buf.clear();
                self.pos = 0;
            } else if rest.len() > max {
                let start = self.buf_off + self.pos as u64;
                let raw = raw_prefix(rest);
                self.skipping = Some(start);
                self.buf_off += self.buf.len() as u64;
                self.buf.clear();
                self.pos = 0;
                return Ok(Some(Rec::Oversize {
                    start,
                    end: None,
                    raw,
                }));
            } else if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.buf_off += self.pos as u64;
                self.pos = 0;
            }
            if self.at_eof {
                return Ok(None);
            }
            let len = self.buf.len();
            self.buf.resize(len + CHUNK, 0);
            let n = match self.file.read(&mut self.buf[len..]) {
                Ok(n) => n,
                Err(e) => {
                    self.buf.truncate(len);
                    return Err(e);
                }
            };
            self.buf.truncate(len + n);
            if self.fp_len < FINGERPRINT_BYTES && n > 0 {
                self.refresh_fingerprint();
            }
            if n == 0 {
                self.at_eof = true;
                self.hit_eof = true;
                return Ok(None);
            }
        }
    }

    /// The offset after the last byte read.
    fn read_end(&self) -> u64 {
        self.buf_off + self.buf.len() as u64
    }

    /// Whether the file became smaller than what was read (copytruncate).
    fn truncated(&self) -> io::Result<bool> {
        Ok(self.file.metadata()?.len() < self.read_end())
    }

    /// `[start, end)` is acked or handled: the prefix may move, and the writer sees it.
    fn ack(&mut self, start: u64, end: u64) {
        self.tracker.ack(start, end);
        self.entry
            .committed
            .store(self.tracker.committed(), Relaxed);
    }

    /// Starts over at offset 0 after a truncation, with a new checkpoint entry.
    fn restart_at_zero(&mut self, generation: u64, entries: &Entries) -> io::Result<()> {
        use std::io::Seek;
        self.file.seek(io::SeekFrom::Start(0))?;
        self.buf.clear();
        self.buf_off = 0;
        self.pos = 0;
        self.skipping = None;
        self.generation = generation;
        self.tracker = AckedPrefix::new(0);
        self.at_eof = false;
        self.fp_len = 0;
        // A new entry, swapped in whole: the writer never pairs the old offset with the new
        // fingerprint.
        self.entry = Entry::new(self.id, 0, 0, 0, &self.path);
        lock(entries).insert(self.id, self.entry.clone());
        Ok(())
    }

    /// Extends the fingerprint while the file is shorter than [`FINGERPRINT_BYTES`]; called
    /// after each read, before the lines read can be acked.
    fn refresh_fingerprint(&mut self) {
        let want = self.read_end().min(FINGERPRINT_BYTES);
        if want > self.fp_len
            && let Ok(Some(fp)) = fingerprint(&self.file, want)
        {
            self.fp_len = want;
            let mut meta = lock(&self.entry.meta);
            meta.0 = want;
            meta.1 = fp;
        }
    }

    /// Released: finished, read to its end since the last poll, its last line out, every line
    /// acked.
    fn releasable(&self) -> bool {
        self.finished && self.drained && self.at_eof && self.in_flight == 0
    }
}

/// The xxh3 of the first `len` bytes of `file`, or `None` if it is shorter.
fn fingerprint(file: &File, len: u64) -> io::Result<Option<u64>> {
    let mut head = vec![0u8; len as usize];
    let mut got = 0;
    while got < head.len() {
        let n = file.read_at(&mut head[got..], got as u64)?;
        if n == 0 {
            return Ok(None);
        }
        got += n;
    }
    Ok(Some(xxhash_rust::xxh3::xxh3_64(&head)))
}

/// A line's value, or (`reason`, `raw`) when it is not UTF-8 in strict mode.
fn to_value(line: &[u8], encoding: Encoding) -> Result<Value, (String, String)> {
    decode_line(encoding, line).map_err(|e| (e.line_reason(), raw_prefix(line)))
}

/// A line emitted and not yet acked.
struct Pending {
    file: FileId,
    generation: u64,
    start: u64,
    end: u64,
    values: Values,
}

/// The spout's state on one task, made by `open`.
struct TaskState {
    component: SmolStr,
    task_index: usize,
    parallelism: usize,
    state_file: PathBuf,
    /// Checkpoints read at open, by file.
    saved: HashMap<FileId, Saved>,
    files: FastMap<FileId, Watched>,
    /// Read order (round robin).
    order: Vec<FileId>,
    cursor: usize,
    pending: FastMap<u64, Pending>,
    replay: VecDeque<u64>,
    next_id: u64,
    next_generation: u64,
    max_pending: usize,
    last_scan: Option<Instant>,
    /// The open files as the checkpoint writer sees them.
    entries: Entries,
    /// The checkpoint writer task.
    writer: Option<JoinHandle<()>>,
    /// Stops the writer when the spout is closed or dropped.
    stop: Option<DropGuard>,
    /// `until_eof`: the start-up scan is done; no more files are added.
    scanned_once: bool,
    /// `saved` comes from a restored checkpoint: a file it does not know is read from 0.
    restored: bool,
    /// The topology takes checkpoints: the offsets file is written when one completes.
    checkpointed: bool,
    /// The offsets of the checkpoints taken and not yet complete, oldest first.
    at_checkpoints: crate::connector::state::PendingPositions<Vec<Saved>>,
    /// The last write of a completed checkpoint's offsets.
    last_save: Option<JoinHandle<()>>,
    /// The change events of the watched directories (`watch`); `None`: polling only.
    watch: Option<super::watch::FileWatch>,
    /// A change event asked for a scan, not done yet (scans are at least
    /// [`MIN_EVENT_SCAN_GAP`] apart).
    rescan_due: bool,
}

/// State shared by a spout and its clones (every task of a topology-file component).
#[derive(Debug, Default)]
struct Shared {
    counters: FileCounters,
}

/// The `file` spout (see the module docs). Cloning gives a fresh, unopened spout with the same
/// options that shares the counters.
pub struct FileSpout {
    opts: Arc<FileOptions>,
    exclude: Arc<Vec<glob::Pattern>>,
    oversize_reason: SmolStr,
    shared: Arc<Shared>,
    state: Option<TaskState>,
}

impl Clone for FileSpout {
    fn clone(&self) -> Self {
        FileSpout {
            opts: self.opts.clone(),
            exclude: self.exclude.clone(),
            oversize_reason: self.oversize_reason.clone(),
            shared: self.shared.clone(),
            state: None,
        }
    }
}

/// Compiles a glob option's patterns, naming the bad one.
fn compile(option: &str, patterns: &[String]) -> Result<Vec<glob::Pattern>, String> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| {
            glob::Pattern::new(p).map_err(|e| {
                format!(
                    "option `{option}[{i}]` = {p:?}: not a glob pattern ({} at character {})",
                    e.msg, e.pos
                )
            })
        })
        .collect()
}

impl FileSpout {
    /// A file spout with these options, or what is wrong with them.
    pub fn new(opts: FileOptions) -> Result<FileSpout, String> {
        if opts.paths.is_empty() {
            return Err(
                "option `paths` is empty: expected at least one glob, e.g. [\"/var/log/app/*.log\"]"
                    .to_string(),
            );
        }
        compile("paths", &opts.paths)?;
        for (i, p) in opts.paths.iter().enumerate() {
            if p.is_empty() {
                return Err(format!("option `paths[{i}]` is empty: expected a glob"));
            }
        }
        let exclude = compile("exclude", &opts.exclude)?;
        check_max_line_bytes(opts.max_line_bytes)?;
        if opts.field.is_empty() {
            return Err("option `field` is empty: expected a field name".to_string());
        }
        if opts.include_path && (opts.field == "path" || opts.field == "offset") {
            return Err(format!(
                "option `field` = {:?}: `include_path` already adds `path` and `offset`; choose another name",
                opts.field
            ));
        }
        for (name, d) in [
            ("poll_interval", opts.poll_interval),
            ("checkpoint_interval", opts.checkpoint_interval),
        ] {
            if d.is_zero() {
                return Err(format!("option `{name}` = \"0s\": expected more than zero"));
            }
        }
        if let Some(dir) = &opts.state_dir
            && dir.as_os_str().is_empty()
        {
            return Err("option `state_dir` is empty: expected a directory".to_string());
        }
        Ok(FileSpout {
            oversize_reason: SmolStr::from(format!(
                "line longer than max_line_bytes = {}",
                opts.max_line_bytes
            )),
            opts: Arc::new(opts),
            exclude: Arc::new(exclude),
            shared: Arc::default(),
            state: None,
        })
    }

    /// What the spout has seen so far, over every task of this spout and its clones.
    pub fn counters(&self) -> &FileCounters {
        &self.shared.counters
    }

    /// The state directory of a component: `state_dir` if set, else
    /// `$TOPO_STATE_DIR/<topology>/<component>` (`TOPO_STATE_DIR` defaulting to `.topo/state`).
    pub fn state_dir_for(&self, topology: &str, component: &str) -> PathBuf {
        state_dir(self.opts.state_dir.as_deref(), topology, component)
    }

    fn warn_io(&self, what: &str, path: &Path, e: &io::Error) {
        warn_io(&self.shared.counters, what, path, e);
    }

    /// Expands the globs: every matching regular file, with its identity, once each.
    fn matching_files(&self) -> Vec<(PathBuf, std::fs::Metadata)> {
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        for pattern in &self.opts.paths {
            let paths = match glob::glob(pattern) {
                Ok(p) => p,
                // Checked in `new`.
                Err(_) => continue,
            };
            for entry in paths {
                let path = match entry {
                    Ok(p) => p,
                    Err(e) => {
                        self.warn_io("cannot read", e.path(), e.error());
                        continue;
                    }
                };
                if path.is_dir() {
                    match std::fs::read_dir(&path) {
                        Ok(dir) => {
                            let mut inner: Vec<PathBuf> =
                                dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
                            inner.sort();
                            for p in inner {
                                self.consider(p, &mut seen, &mut found);
                            }
                        }
                        Err(e) => self.warn_io("cannot list directory", &path, &e),
                    }
                } else {
                    self.consider(path, &mut seen, &mut found);
                }
            }
        }
        found
    }

    /// The change events of the directories to read, when `watch` is on (not with `until_eof`,
    /// which reads what is there); `None` with a warning when the system has no watcher to give.
    fn watch(&self) -> Option<super::watch::FileWatch> {
        if !self.opts.watch || self.opts.until_eof {
            return None;
        }
        match super::watch::FileWatch::new() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    "cannot watch for file changes ({e}); polling every {}",
                    humantime::format_duration(self.opts.poll_interval)
                );
                None
            }
        }
    }

    fn consider(
        &self,
        path: PathBuf,
        seen: &mut HashSet<FileId>,
        found: &mut Vec<(PathBuf, std::fs::Metadata)>,
    ) {
        if self.exclude.iter().any(|p| p.matches_path(&path)) {
            return;
        }
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            // Gone between the listing and now: found at the next scan, or not.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                self.warn_io("cannot stat", &path, &e);
                return;
            }
        };
        if meta.is_file() && seen.insert(FileId::of(&meta)) {
            found.push((path, meta));
        }
    }

    /// Expands the globs, opens this task's new files, marks the vanished ones finished, and
    /// releases those done.
    fn scan(&mut self) {
        let found = self.matching_files();
        let Some(st) = self.state.as_mut() else {
            return;
        };
        if let Some(watch) = st.watch.as_mut() {
            let failed = watch.update(&self.opts.paths, found.iter().map(|(p, _)| p.as_path()));
            for (dir, e) in failed {
                if self.shared.counters.may_warn() {
                    tracing::warn!(component = %st.component, dir = %dir.display(), "cannot watch for changes ({e}); polling it every {}", humantime::format_duration(self.opts.poll_interval));
                }
            }
        }
        let first = st.last_scan.is_none();
        st.last_scan = Some(Instant::now());
        st.rescan_due = false;
        let mut present = HashSet::new();
        for (path, meta) in found {
            let id = FileId::of(&meta);
            if id.owner(st.parallelism) != st.task_index {
                continue;
            }
            present.insert(id);
            if let Some(w) = st.files.get_mut(&id) {
                if w.finished && !self.opts.until_eof {
                    // Matched again (renamed back): followed again.
                    w.finished = false;
                    w.drained = false;
                }
                w.gone_since = None;
                if w.path != path {
                    w.path_value = Value::from(path.to_string_lossy().into_owned());
                    lock(&w.entry.meta).2 = path.to_string_lossy().into_owned();
                    w.event_path = super::watch::event_path(&path);
                    w.path = path;
                }
                continue;
            }
            if self.opts.until_eof && st.scanned_once {
                continue;
            }
            let (file, meta) = match open_as(&path, id) {
                Ok(Some(opened)) => opened,
                // Renamed away (and maybe replaced) since the listing, as a rotation does: the
                // next scan finds each file under its own identity. Reading the new file as the
                // old one would read it twice and lose the rest of the old one.
                Ok(None) => {
                    st.rescan_due = true;
                    continue;
                }
                Err(e) => {
                    if self.shared.counters.may_warn() {
                        tracing::warn!(path = %path.display(), "cannot open: {e}");
                    }
                    continue;
                }
            };
            let size = meta.len();
            let start = match st.saved.get(&id) {
                Some(s) => {
                    let same = s.fingerprint_len == 0
                        || fingerprint(&file, s.fingerprint_len).ok().flatten()
                            == Some(s.fingerprint);
                    if !same {
                        tracing::info!(component = %st.component, path = %path.display(), "a checkpointed inode holds another file now; reading it from the start");
                        0
                    } else if s.offset > size {
                        st_truncation_warning(&self.shared.counters, &st.component, &path);
                        0
                    } else {
                        s.offset
                    }
                }
                None if first && !st.restored && self.opts.start_at == StartAt::End => size,
                None => 0,
            };
            let mut file = file;
            if start > 0 {
                use std::io::Seek;
                if let Err(e) = file.seek(io::SeekFrom::Start(start)) {
                    warn_io(&self.shared.counters, "cannot seek", &path, &e);
                    continue;
                }
            }
            let fp_len = size.min(FINGERPRINT_BYTES);
            let fp = fingerprint(&file, fp_len).ok().flatten();
            let fp_len = if fp.is_some() { fp_len } else { 0 };
            let entry = Entry::new(id, start, fp_len, fp.unwrap_or(0), &path);
            lock(&st.entries).insert(id, entry.clone());
            tracing::debug!(component = %st.component, path = %path.display(), offset = start, "following file");
            self.shared.counters.files_opened.fetch_add(1, Relaxed);
            st.next_generation += 1;
            st.files.insert(
                id,
                Watched {
                    id,
                    file,
                    path_value: Value::from(path.to_string_lossy().into_owned()),
                    event_path: super::watch::event_path(&path),
                    path,
                    buf_off: start,
                    buf: Vec::new(),
                    pos: 0,
                    skipping: None,
                    generation: st.next_generation,
                    tracker: AckedPrefix::new(start),
                    in_flight: 0,
                    fp_len,
                    entry,
                    at_eof: false,
                    hit_eof: false,
                    finished: self.opts.until_eof,
                    gone_since: None,
                    drained: false,
                },
            );
            st.order.push(id);
        }
        st.scanned_once = true;
        let mut released = false;
        if !self.opts.until_eof {
            let rotate_wait = self.opts.rotate_wait;
            let counters = &self.shared.counters;
            let component = &st.component;
            let mut entries = lock(&st.entries);
            st.files.retain(|id, w| {
                let done = w.releasable() && !present.contains(id);
                if done {
                    entries.remove(id);
                    tracing::debug!(component = %component, path = %w.path.display(), "released file");
                    counters.files_released.fetch_add(1, Relaxed);
                    released = true;
                }
                !done
            });
            let now = Instant::now();
            for w in st.files.values_mut() {
                w.at_eof = false;
                if present.contains(&w.id) {
                    w.gone_since = None;
                } else if now.duration_since(*w.gone_since.get_or_insert(now)) >= rotate_wait {
                    w.finished = true;
                }
            }
        }
        if released {
            let files = &st.files;
            st.order.retain(|id| files.contains_key(id));
            st.cursor = 0;
        }
    }

    /// Emits failed lines again, then new lines, round robin over the files.
    fn emit(&mut self, out: &mut SpoutCollector<'_, u64>) {
        let max = self.opts.max_line_bytes;
        let encoding = self.opts.encoding;
        let include_path = self.opts.include_path;
        let counters = &self.shared.counters;
        let Some(st) = self.state.as_mut() else {
            return;
        };
        let mut n = 0;
        while n < EMIT_PER_CALL && out.pending() < st.max_pending {
            let Some(id) = st.replay.pop_front() else {
                break;
            };
            if let Some(p) = st.pending.get(&id) {
                out.emit(p.values.clone(), id);
                n += 1;
            }
        }
        let files = st.order.len();
        let mut idle = 0;
        while n < EMIT_PER_CALL && out.pending() < st.max_pending && idle < files {
            st.cursor %= files;
            let fid = st.order[st.cursor];
            let Some(w) = st.files.get_mut(&fid) else {
                st.cursor += 1;
                idle += 1;
                continue;
            };
            let mut emitted_here = false;
            while n < EMIT_PER_CALL && out.pending() < st.max_pending {
                let rec = match w.next_record(max, encoding) {
                    Ok(r) => r,
                    Err(e) => {
                        if counters.may_warn() {
                            tracing::warn!(component = %st.component, path = %w.path.display(), "cannot read: {e}");
                        }
                        w.at_eof = true;
                        None
                    }
                };
                let Some(rec) = rec else {
                    if std::mem::take(&mut w.hit_eof) && !w.finished {
                        match w.truncated() {
                            Ok(true) => {
                                st_truncation_warning(counters, &st.component, &w.path);
                                st.next_generation += 1;
                                if w.restart_at_zero(st.next_generation, &st.entries).is_ok() {
                                    continue;
                                }
                            }
                            Ok(false) => {}
                            Err(e) => {
                                if counters.may_warn() {
                                    tracing::warn!(component = %st.component, path = %w.path.display(), "cannot stat: {e}");
                                }
                            }
                        }
                    }
                    if w.at_eof && w.finished && !w.drained {
                        // The file will not grow: its partial last line is a line.
                        let start = w.buf_off + w.pos as u64;
                        let end = w.read_end();
                        if let Some(s) = w.skipping.take() {
                            w.ack(s, end);
                        } else if end > start {
                            let rest = &w.buf[w.pos..];
                            let rec = if rest.len() > max {
                                Rec::Oversize {
                                    start,
                                    end: Some(end),
                                    raw: raw_prefix(rest),
                                }
                            } else {
                                Rec::Line {
                                    start,
                                    end,
                                    value: to_value(rest, encoding),
                                }
                            };
                            w.buf.clear();
                            w.buf_off = end;
                            w.pos = 0;
                            n += handle_record(
                                rec,
                                w,
                                st.next_id,
                                &mut st.pending,
                                out,
                                counters,
                                &self.oversize_reason,
                                include_path,
                                &st.component,
                            );
                            st.next_id += 1;
                        }
                        w.drained = true;
                    }
                    break;
                };
                n += handle_record(
                    rec,
                    w,
                    st.next_id,
                    &mut st.pending,
                    out,
                    counters,
                    &self.oversize_reason,
                    include_path,
                    &st.component,
                );
                st.next_id += 1;
                emitted_here = true;
            }
            if emitted_here {
                idle = 0;
            } else {
                idle += 1;
            }
            st.cursor += 1;
        }
    }
}

/// Logs an I/O problem with a path, at most once a second.
fn warn_io(counters: &FileCounters, what: &str, path: &Path, e: &io::Error) {
    if counters.may_warn() {
        tracing::warn!(path = %path.display(), "{what}: {e}");
    }
}

/// Logs (rate-limited) and counts a truncated file.
fn st_truncation_warning(counters: &FileCounters, component: &str, path: &Path) {
    counters.truncations.fetch_add(1, Relaxed);
    if counters.may_warn() {
        tracing::warn!(component, path = %path.display(), "file truncated; reading it again from the start");
    }
}

/// Emits one record; returns how many tuples were emitted (0 or 1).
#[allow(clippy::too_many_arguments)]
fn handle_record(
    rec: Rec,
    w: &mut Watched,
    id: u64,
    pending: &mut FastMap<u64, Pending>,
    out: &mut SpoutCollector<'_, u64>,
    counters: &FileCounters,
    oversize_reason: &SmolStr,
    include_path: bool,
    component: &str,
) -> usize {
    match rec {
        Rec::Line {
            start,
            end,
            value: Ok(v),
        } => {
            counters.lines.fetch_add(1, Relaxed);
            let values = if include_path {
                values![v, w.path_value.clone(), Value::Int(start as i64)]
            } else {
                values![v]
            };
            if !out.tracking() {
                // Acked once emitted (acking off, or exactly-once): no pending entry to keep.
                w.ack(start, end);
                out.emit(values, None);
                return 1;
            }
            pending.insert(
                id,
                Pending {
                    file: w.id,
                    generation: w.generation,
                    start,
                    end,
                    values: values.clone(),
                },
            );
            w.in_flight += 1;
            out.emit_shared(values, id);
            1
        }
        Rec::Line {
            start,
            end,
            value: Err((reason, raw)),
        } => {
            counters.invalid_utf8.fetch_add(1, Relaxed);
            if counters.may_warn() {
                tracing::warn!(component, path = %w.path.display(), offset = start, %reason, "line sent to the `error` stream");
            }
            w.ack(start, end);
            out.emit_to(ERROR_STREAM, values![reason, raw], None);
            1
        }
        Rec::Oversize { start, end, raw } => {
            counters.oversize.fetch_add(1, Relaxed);
            if counters.may_warn() {
                tracing::warn!(component, path = %w.path.display(), offset = start, "{oversize_reason}; sent to the `error` stream");
            }
            if let Some(end) = end {
                w.ack(start, end);
            }
            out.emit_to(ERROR_STREAM, values![oversize_reason.clone(), raw], None);
            1
        }
        Rec::Skipped { start, end } => {
            w.ack(start, end);
            0
        }
    }
}

/// The checkpoint of every open file, by path.
fn snapshot(entries: &Entries) -> Vec<Saved> {
    let mut files: Vec<Saved> = lock(entries)
        .values()
        .map(|e| {
            let meta = lock(&e.meta);
            Saved {
                dev: e.id.dev,
                ino: e.id.ino,
                path: meta.2.clone(),
                offset: e.committed.load(Relaxed),
                fingerprint_len: meta.0,
                fingerprint: meta.1,
            }
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// A checkpoint file's bytes.
fn encode(files: &[Saved]) -> Vec<u8> {
    let cp = CheckpointFile {
        version: 1,
        written_ms: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        files: files.to_vec(),
    };
    serde_json::to_vec_pretty(&cp).unwrap_or_default()
}

/// Writes `files` to `path` off the runtime's threads; true when written.
async fn save(path: &Path, files: &[Saved], shared: &Arc<Shared>) -> bool {
    let bytes = encode(files);
    let path = path.to_path_buf();
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || write_checkpoint(&path, &bytes, &shared.counters))
        .await
        .unwrap_or(false)
}

/// Every `interval`, writes the checkpoint if it changed, until cancelled.
async fn run_writer(
    entries: Entries,
    path: PathBuf,
    interval: Duration,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let mut last: Option<Vec<Saved>> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        let files = snapshot(&entries);
        if last.as_ref() != Some(&files) && save(&path, &files, &shared).await {
            last = Some(files);
        }
    }
}

/// Replaces `path` with `bytes`: a fresh temporary file, fsynced, renamed, directory fsynced.
fn write_checkpoint(path: &Path, bytes: &[u8], counters: &FileCounters) -> bool {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let tmp = path.with_extension(format!(
        "json.{}-{}.tmp",
        std::process::id(),
        SEQ.fetch_add(1, Relaxed)
    ));
    let result = (|| -> io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            counters.checkpoints.fetch_add(1, Relaxed);
            true
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            counters.checkpoint_errors.fetch_add(1, Relaxed);
            if counters.may_warn() {
                tracing::warn!(path = %path.display(), "cannot write the checkpoint: {e}");
            }
            false
        }
    }
}

/// Reads every task's checkpoint file in `dir`; for a file in several, the newest entry wins.
fn load_checkpoints(dir: &Path) -> Result<HashMap<FileId, Saved>, String> {
    let mut newest: HashMap<FileId, (u64, Saved)> = HashMap::new();
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot list the state directory {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list the state directory {}: {e}", dir.display()))?
            .path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !(name.starts_with("task-") && name.ends_with(".json")) {
            continue;
        }
        let text = std::fs::read(&path)
            .map_err(|e| format!("cannot read the checkpoint {}: {e}", path.display()))?;
        let cp: CheckpointFile = serde_json::from_slice(&text).map_err(|e| {
            format!(
                "checkpoint {} is not valid ({e}); fix or delete it (deleting it re-reads the files from `start_at`)",
                path.display()
            )
        })?;
        for s in cp.files {
            let id = FileId {
                dev: s.dev,
                ino: s.ino,
            };
            if newest.get(&id).is_none_or(|(t, _)| *t <= cp.written_ms) {
                newest.insert(id, (cp.written_ms, s));
            }
        }
    }
    Ok(newest.into_iter().map(|(id, (_, s))| (id, s)).collect())
}

impl Spout for FileSpout {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        if self.opts.include_path {
            out.declare([self.opts.field.as_str(), "path", "offset"]);
        } else {
            out.declare([self.opts.field.as_str()]);
        }
        out.declare_stream(ERROR_STREAM, SOURCE_ERROR_FIELDS);
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        let dir = self.state_dir_for(ctx.topology(), ctx.component_id());
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
        let saved = load_checkpoints(&dir)?;
        let state_file = dir.join(format!("task-{}.json", ctx.task_index()));
        let entries = Entries::default();
        let cancel = CancellationToken::new();
        // With topology checkpoints the offsets file follows them (written when one completes),
        // never ahead of the state that goes with it; else it follows the acks.
        let writer = (!ctx.checkpointed()).then(|| {
            crate::connector::warn::spawn(run_writer(
                entries.clone(),
                state_file.clone(),
                self.opts.checkpoint_interval,
                self.shared.clone(),
                cancel.clone(),
            ))
        });
        self.state = Some(TaskState {
            component: SmolStr::from(ctx.component_id()),
            task_index: ctx.task_index(),
            parallelism: ctx.parallelism(),
            state_file,
            saved,
            files: FastMap::default(),
            order: Vec::new(),
            cursor: 0,
            pending: FastMap::default(),
            replay: VecDeque::new(),
            // A random start: ids the runtime fails to a restarted instance (the old instance's)
            // do not name this instance's lines.
            next_id: fastrand::u64(..u64::MAX / 2),
            next_generation: 0,
            max_pending: ctx.config().max_spout_pending.unwrap_or(usize::MAX),
            last_scan: None,
            entries,
            writer,
            stop: Some(cancel.drop_guard()),
            scanned_once: false,
            restored: false,
            checkpointed: ctx.checkpointed(),
            at_checkpoints: Default::default(),
            last_save: None,
            watch: self.watch(),
            rescan_due: false,
        });
        tracing::info!(component = %ctx.component_id(), task_index = ctx.task_index(), state_dir = %dir.display(), "file spout open");
        Ok(())
    }

    async fn next_tuple(&mut self, out: &mut SpoutCollector<'_, u64>) -> Result<(), BoxError> {
        let Some(st) = self.state.as_mut() else {
            return Ok(());
        };
        if let Some(watch) = st.watch.as_mut() {
            match watch.take() {
                Seen::Nothing => {}
                Seen::Rescan => st.rescan_due = true,
                Seen::Written(paths) => {
                    // Read on from where each was left; a file of another task is not here.
                    for w in st.files.values_mut() {
                        if paths.contains(&w.event_path) {
                            w.at_eof = false;
                        }
                    }
                }
            }
        }
        // Polling, or a change event's scan (at most every MIN_EVENT_SCAN_GAP).
        let scan_due = st.last_scan.map(|t| t.elapsed()).is_none_or(|since| {
            since >= self.opts.poll_interval || (st.rescan_due && since >= MIN_EVENT_SCAN_GAP)
        });
        if scan_due {
            self.scan();
        }
        self.emit(out);
        Ok(())
    }

    fn ack(&mut self, id: u64) {
        let Some(st) = self.state.as_mut() else {
            return;
        };
        if let Some(p) = st.pending.remove(&id)
            && let Some(w) = st.files.get_mut(&p.file)
        {
            w.in_flight = w.in_flight.saturating_sub(1);
            if w.generation == p.generation {
                w.ack(p.start, p.end);
            }
        }
    }

    fn fail(&mut self, id: u64) {
        if let Some(st) = self.state.as_mut()
            && st.pending.contains_key(&id)
        {
            st.replay.push_back(id);
        }
    }

    fn rewinds(&self) -> bool {
        true
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        if let Some(st) = self.state.as_mut() {
            let files = snapshot(&st.entries);
            snap.put("files", &files);
            // A checkpoint that never completes is dropped with the ones before it.
            st.at_checkpoints.taken(snap.checkpoint_id(), files);
        }
        Ok(())
    }

    fn checkpoint_complete(&mut self, id: u64) {
        let Some(st) = self.state.as_mut() else {
            return;
        };
        if let Some(files) = st.at_checkpoints.completed(id) {
            let path = st.state_file.clone();
            let shared = self.shared.clone();
            // In order: a slow write must not land after a newer one.
            let previous = st.last_save.take();
            st.last_save = Some(crate::connector::warn::spawn(async move {
                if let Some(p) = previous {
                    let _ = p.await;
                }
                save(&path, &files, &shared).await;
            }));
        }
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        let Some(st) = self.state.as_mut() else {
            return Ok(());
        };
        // The checkpoint's offsets replace the spout's own (which may be ahead of it): every
        // line after them is read again. A file the checkpoint does not know is read from its
        // start, whatever `start_at` says: it appeared after the checkpoint.
        let mut saved = HashMap::new();
        for files in from.get_all::<Vec<Saved>>("files")? {
            for s in files {
                let id = FileId {
                    dev: s.dev,
                    ino: s.ino,
                };
                saved.entry(id).or_insert(s);
            }
        }
        st.saved = saved;
        st.restored = true;
        Ok(())
    }

    fn is_exhausted(&self) -> bool {
        self.opts.until_eof
            && self.state.as_ref().is_some_and(|st| {
                st.scanned_once
                    && st.pending.is_empty()
                    && st.files.values().all(|w| w.at_eof && w.drained)
            })
    }

    async fn close(&mut self) {
        let Some(st) = self.state.as_mut() else {
            return;
        };
        // Stop the periodic writer (and let a write under way end), then write the last state
        // (with checkpoints, the last completed one's was written when it completed).
        st.stop = None;
        if let Some(h) = st.writer.take() {
            let _ = h.await;
        }
        if let Some(h) = st.last_save.take() {
            let _ = h.await;
        }
        if !st.checkpointed {
            let files = snapshot(&st.entries);
            save(&st.state_file, &files, &self.shared).await;
        }
        self.state = None;
    }
}

/// The `file` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::spout(
            "file",
            "tails files through globs (appends, rotation, truncation, new files); per-file checkpoints of the acked lines, so a restart resumes without loss; bad lines to `error`",
            FileSpout::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components file`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[spouts.logs]
kind = "file"
paths = ["/var/log/app/*.log", "/var/log/app/*.log.1"]   # globs; keep rotated names matched
exclude = ["**/debug*"]
start_at = "beginning"    # or "end": skip what a file found at start-up already holds
poll_interval = "250ms"   # besides the change events (`watch = true`): appends read at once
checkpoint_interval = "1s"   # acked offsets per file under state_dir (default .topo/state/<topology>/<component>)
include_path = true       # fields: line, path, offset
rotate_wait = "5s"        # a file rotated out of the globs is still followed this long (late appends)
# until_eof = true        # read what is there, then end (`topo run --until-idle`)
"#;

impl FromOptions for FileSpout {
    type Options = FileOptions;
    fn from_options(options: FileOptions) -> Result<Self, String> {
        FileSpout::new(options)
    }
}

/// `paths` has a serde default (so a missing one is reported by the component's own check, with the
/// expected form), but is required.
fn file_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["paths"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(dir: &Path, content: &[u8]) -> Watched {
        let path = dir.join("f.log");
        std::fs::write(&path, content).expect("write");
        let file = File::open(&path).expect("open");
        let meta = file.metadata().expect("stat");
        let entry = Entry::new(FileId::of(&meta), 0, 0, 0, &path);
        Watched {
            id: FileId::of(&meta),
            file,
            path_value: Value::from("f.log"),
            event_path: super::super::watch::event_path(&path),
            path,
            buf_off: 0,
            buf: Vec::new(),
            pos: 0,
            skipping: None,
            generation: 0,
            tracker: AckedPrefix::new(0),
            in_flight: 0,
            fp_len: 0,
            entry,
            at_eof: false,
            hit_eof: false,
            finished: false,
            gone_since: None,
            drained: false,
        }
    }

    // Guards the rotation race of a scan: a path listed as one file and renamed away (and
    // replaced) before the open is not read as that file.
    #[test]
    fn a_path_replaced_after_the_listing_is_not_opened_as_the_file_listed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("app.log");
        std::fs::write(&path, "old\n").expect("write");
        let listed = FileId::of(&std::fs::metadata(&path).expect("stat"));
        let (_, meta) = open_as(&path, listed)
            .expect("open")
            .expect("the same file");
        assert_eq!(meta.len(), 4);

        std::fs::rename(&path, dir.path().join("app.log.1")).expect("rotate");
        assert!(open_as(&path, listed).expect("no error").is_none());
        std::fs::write(&path, "new\n").expect("write the new file");
        assert!(open_as(&path, listed).expect("open").is_none());
        let new = FileId::of(&std::fs::metadata(&path).expect("stat"));
        assert!(open_as(&path, new).expect("open").is_some());
    }

    // Guards line splitting: offsets of each line, `\r\n`, an oversize line longer than one
    // read (reported once, its range handled when its end is found), and a partial last line
    // held back.
    #[test]
    fn records_carry_their_byte_ranges() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut content = b"ab\r\nc\n".to_vec();
        content.extend(std::iter::repeat_n(b'x', 3 * CHUNK));
        content.extend(b"\nlast\npartial");
        let mut w = watched(dir.path(), &content);
        let mut recs = Vec::new();
        while let Some(r) = w.next_record(10, Encoding::Strict).expect("read") {
            recs.push(match r {
                Rec::Line { start, end, value } => {
                    format!("line {start}..{end} {}", value.expect("utf-8"))
                }
                Rec::Oversize { start, end, raw } => {
                    format!("oversize {start}..{end:?} {}", raw.len())
                }
                Rec::Skipped { start, end } => format!("skipped {start}..{end}"),
            });
        }
        let big_end = 6 + 3 * CHUNK as u64 + 1;
        assert_eq!(
            recs,
            [
                "line 0..4 ab".to_string(),
                "line 4..6 c".to_string(),
                "oversize 6..None 1024".to_string(),
                format!("skipped 6..{big_end}"),
                format!("line {big_end}..{} last", big_end + 5),
            ]
        );
        assert_eq!(&w.buf[w.pos..], b"partial", "the partial line is held");
    }
}
