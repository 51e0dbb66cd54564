//! `socket`: lines of text over TCP, as a client (like Spark's `socketTextStream`) or as a server
//! accepting many clients.
//!
//! ```text
//!  client mode:  host:port ◄── connect (reconnect with backoff) ──┐
//!  server mode:  listen on address ◄── client, client, ... ───────┤
//!                                                                 ▼
//!        one reader task per connection: FramedRead (newline, max_line_bytes)
//!                                                                 │ line / oversize / bad UTF-8
//!                                                                 ▼
//!                     bounded channel (a full channel stops reading: the peer feels backpressure)
//!                                                                 │ next_tuple drains ≤ 64
//!                                                                 ▼
//!   spout ──emit (line[, peer]) msg id n──► bolts        pending: n ─► record (replayed on fail)
//!         └─emit_to "error" (reason, raw), unanchored
//! ```
//!
//! # Options
//! ```toml
//! [spouts.lines]
//! kind = "socket"
//! mode = "client"                 # connect to `address`; or "server": listen on it
//! address = "127.0.0.1:9999"
//! max_line_bytes = 1048576        # longer lines go to the `error` stream
//! encoding = "lossy"              # "strict": bad UTF-8 to `error`; "bytes": a Bytes value
//! field = "line"
//! reconnect = { backoff = "100ms", max_backoff = "10s", attempts = 0 }   # client mode; 0 = forever
//! # until_eof = true              # client mode: end when the first connection closes
//! # max_clients = 256             # server mode
//! # tls = { ca = "ca.pem", cert = "client.pem", key = "client.key" }   # client mode over TLS
//! # tls_cert = "server.pem"  tls_key = "server.key"   # server mode over TLS
//! # tls_client_ca = "clients-ca.pem"                  # server mode: require client certificates
//! ```
//!
//! # TLS
//! In client mode, `tls` connects over TLS: the server's certificate must be signed by `tls.ca`
//! (unset, as in `tls = {}`: the system's certificate authorities) and issued for the host of
//! `address`; `tls.cert` and `tls.key` are presented to a server that asks for a client
//! certificate. In server mode, `tls_cert` and `tls_key` make every connection TLS, and
//! `tls_client_ca` makes each client present a certificate signed by it. A handshake has 10 s.
//! A client whose handshake fails (an untrusted certificate, a plain-text peer) is refused and
//! counted (`tls_refused`), with a warning naming the component and the peer; in client mode a
//! failed handshake counts as a failed connection attempt (`reconnect`).
//!
//! # Output
//! The `default` stream carries (`line`) in client mode and (`line`, `peer`) in server mode,
//! `peer` being the client's address (`"127.0.0.1:53422"`). A line ends at `\n`; a `\r` before it
//! is dropped, and a last line without `\n` is emitted when the connection closes. The `error`
//! stream carries (`reason`, `raw`): a line longer than `max_line_bytes` (the rest of it, up to
//! the next `\n`, is skipped) or, with `encoding = "strict"`, a line that is not UTF-8; `raw` is
//! its first KiB (invalid UTF-8 replaced by U+FFFD). Error tuples carry no message id. Each is
//! also counted ([`LineCounters`]) and logged with `tracing::warn!` at most once a second.
//!
//! # Delivery guarantee
//! A socket cannot be re-read, so the spout keeps every emitted line in memory until it is
//! acked, and emits it again (same message id) when it fails or times out: **at-least-once while
//! the process lives**, bounded by `max_spout_pending`. Lines that were read but not yet acked
//! when the process ends (or crashes) are lost, as are lines the peer sent while no connection
//! was open. A spout task that restarts after an error starts afresh: its pending lines are
//! lost too (the runtime fails them to the new instance, which does not know them).
//!
//! # Reconnection (client mode)
//! A failed connect, or a connection the server closes, is retried after `reconnect.backoff`,
//! doubling up to `reconnect.max_backoff`; a successful connection resets the wait. With
//! `until_eof = true` the spout does not reconnect once a connection has ended, and with
//! `reconnect.attempts = n` it gives up after `n` failed connection attempts in a row (an error
//! is logged); either way the spout is then exhausted once every line is acked (so
//! `topo run --until-idle` ends). Otherwise a client spout is never exhausted, nor is a server.
//!
//! # Known limits
//! - Server mode listens from the first task only (one port cannot be bound twice); its other
//!   tasks emit nothing. In client mode every task opens its own connection.
//! - When `max_clients` connections are open, further clients wait in the listen backlog until
//!   one closes.
//! - No UDP. In server mode over TLS, the `peer` field is the client's address, not the name
//!   in its certificate.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::connector::counters;
pub use crate::connector::encoding::Encoding;
use crate::connector::encoding::decode_line;
use crate::connector::encoding::{RAW_PREFIX, raw_prefix};
use crate::connector::retry::RetryOptions;
use crate::connector::{ERROR_STREAM, SOURCE_ERROR_FIELDS};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use tokio::io::AsyncRead;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Decoder, FramedRead};
use tokio_util::sync::{CancellationToken, DropGuard};
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{
    BoxError, OutputDeclarer, Spout, SpoutCollector, TaskContext, Value, Values, values,
};

/// How many records `next_tuple` emits at most per call.
const DRAIN_PER_CALL: usize = 64;

/// Capacity of the channel between the reader tasks and the spout.
const CHANNEL_CAPACITY: usize = 1024;

/// Whether the `socket` spout connects or listens.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SocketMode {
    /// Connect to `address` and read its lines; reconnect when the connection ends.
    #[default]
    Client,
    /// Listen on `address`; read the lines of every client.
    Server,
}

/// The former name of the socket and MQTT `reconnect` options, now the one [`RetryOptions`] of
/// every connector (`attempts`: failed connection attempts in a row after which the client
/// gives up and the spout ends; unset or 0 = retry forever).
pub type ReconnectOptions = RetryOptions;

/// Options of the `socket` spout.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = socket_required)]
pub struct SocketOptions {
    /// Connect (client) or listen (server).
    pub mode: SocketMode,
    /// `host:port` to connect to, or to listen on (required).
    pub address: String,
    /// The longest line accepted, in bytes (without the `\n`).
    pub max_line_bytes: usize,
    /// How bytes become a value.
    pub encoding: Encoding,
    /// The name of the line field.
    pub field: String,
    /// Client mode: waits between connection attempts.
    pub reconnect: ReconnectOptions,
    /// Server mode: the most clients read at once.
    pub max_clients: usize,
    /// Client mode: end (no reconnection) when the first connection closes.
    pub until_eof: bool,
    /// Client mode: connect over TLS, verifying the server with `ca` (unset: the system's
    /// roots) and presenting `cert` and `key` when asked for a client certificate.
    #[cfg(feature = "tls")]
    pub tls: Option<crate::connector::tls::TlsOptions>,
    /// Server mode: serve TLS with this certificate (PEM, with its chain); needs `tls_key`.
    #[cfg(feature = "tls")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Server mode: the private key (PEM) of `tls_cert`.
    #[cfg(feature = "tls")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Server mode, with `tls_cert`: clients must present a certificate signed by one of these
    /// authorities (PEM).
    #[cfg(feature = "tls")]
    pub tls_client_ca: Option<std::path::PathBuf>,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            mode: SocketMode::Client,
            address: String::new(),
            max_line_bytes: 1 << 20,
            encoding: Encoding::Lossy,
            field: "line".to_string(),
            reconnect: ReconnectOptions::default(),
            max_clients: 256,
            until_eof: false,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            tls_cert: None,
            #[cfg(feature = "tls")]
            tls_key: None,
            #[cfg(feature = "tls")]
            tls_client_ca: None,
        }
    }
}

counters! {
    /// Counts of what the readers saw, shared by every task of a spout (and its clones).
pub struct LineCounters {
        /// Lines read and passed to the spout (replays not counted).
        lines,
        /// Lines longer than `max_line_bytes`, sent to the `error` stream.
        oversize,
        /// Lines that were not UTF-8 (`encoding = "strict"`), sent to the `error` stream.
        invalid_utf8,
        /// Connections established (client) or accepted (server); over TLS, once the handshake
        /// succeeded.
        connections,
        /// TLS handshakes that failed (an untrusted certificate, a plain-text peer, no answer
        /// within 10 s).
        tls_refused,
        ;
        /// One warning a second at most.
        warn: crate::connector::warn::WarnLimit,
    }
}

impl LineCounters {
    /// True at most once a second: whether a warning may be logged now.
    pub(crate) fn may_warn(&self) -> bool {
        self.warn.allow()
    }
}

/// What a reader hands to the spout.
pub(crate) enum Item {
    /// A line's output values.
    Line(Values),
    /// A bad line: (`reason`, `raw`).
    Error(Values),
}

/// How a reader turns bytes into items.
#[derive(Clone, Debug)]
pub(crate) struct LineFormat {
    pub(crate) max_line_bytes: usize,
    pub(crate) encoding: Encoding,
    /// The reason of an oversize line, made once.
    pub(crate) oversize_reason: SmolStr,
}

impl LineFormat {
    pub(crate) fn new(max_line_bytes: usize, encoding: Encoding) -> LineFormat {
        LineFormat {
            max_line_bytes,
            encoding,
            oversize_reason: SmolStr::from(format!(
                "line longer than max_line_bytes = {max_line_bytes}"
            )),
        }
    }
}

/// A frame of the line decoder: a line, or the head of a line that was too long.
enum Frame {
    Line(Bytes),
    Oversize(Bytes),
}

/// Newline framing with a maximum length ([`AnyDelimiterCodec`]) that reports an oversize line
/// as a frame, so the stream goes on after it.
struct LineDecoder(AnyDelimiterCodec);

impl LineDecoder {
    fn map(
        r: Result<Option<Bytes>, AnyDelimiterCodecError>,
        buf: &BytesMut,
    ) -> io::Result<Option<Frame>> {
        match r {
            Ok(line) => Ok(line.map(Frame::Line)),
            // On this error the codec has not consumed the line yet: `buf` starts with it (and
            // may hold the next lines too, after its end).
            Err(AnyDelimiterCodecError::MaxChunkLengthExceeded) => {
                let head = &buf[..buf.len().min(RAW_PREFIX)];
                let end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
                Ok(Some(Frame::Oversize(Bytes::copy_from_slice(&head[..end]))))
            }
            Err(AnyDelimiterCodecError::Io(e)) => Err(e),
        }
    }
}

impl Decoder for LineDecoder {
    type Item = Frame;
    type Error = io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Frame>> {
        let r = self.0.decode(buf);
        Self::map(r, buf)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> io::Result<Option<Frame>> {
        let r = self.0.decode_eof(buf);
        Self::map(r, buf)
    }
}

/// Why a reader stopped before the end of its input.
pub(crate) enum ReadStop {
    /// The spout is gone.
    Closed,
    /// The input failed.
    Io(io::Error),
}

/// Reads lines from `input` until its end, sending an item per line (with `peer` appended when
/// given) into `tx`. Waits when `tx` is full.
pub(crate) async fn read_lines<R: AsyncRead + Unpin>(
    input: R,
    format: &LineFormat,
    peer: Option<&Value>,
    tx: &flume::Sender<Item>,
    counters: &LineCounters,
    source: &str,
) -> Result<(), ReadStop> {
    let codec = AnyDelimiterCodec::new_with_max_length(
        b"\n".to_vec(),
        b"\n".to_vec(),
        format.max_line_bytes,
    );
    let mut frames = FramedRead::new(input, LineDecoder(codec));
    while let Some(frame) = frames.next().await {
        let item = match frame.map_err(ReadStop::Io)? {
            Frame::Line(mut line) => {
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                match to_value(line, format.encoding) {
                    Ok(v) => {
                        counters.lines.fetch_add(1, Relaxed);
                        let mut values = values![v];
                        if let Some(p) = peer {
                            values.push(p.clone());
                        }
                        Item::Line(values)
                    }
                    Err((reason, raw)) => {
                        counters.invalid_utf8.fetch_add(1, Relaxed);
                        if counters.may_warn() {
                            tracing::warn!(source, %reason, "line sent to the `error` stream");
                        }
                        Item::Error(values![reason, raw])
                    }
                }
            }
            Frame::Oversize(head) => {
                counters.oversize.fetch_add(1, Relaxed);
                if counters.may_warn() {
                    tracing::warn!(
                        source,
                        max_line_bytes = format.max_line_bytes,
                        "line longer than max_line_bytes sent to the `error` stream"
                    );
                }
                Item::Error(values![
                    format.oversize_reason.clone(),
                    String::from_utf8_lossy(&head).into_owned()
                ])
            }
        };
        tx.send_async(item).await.map_err(|_| ReadStop::Closed)?;
    }
    Ok(())
}

/// A line's value, or (`reason`, `raw`) when it is not UTF-8 in strict mode.
fn to_value(line: Bytes, encoding: Encoding) -> Result<Value, (String, String)> {
    decode_line(encoding, &line).map_err(|e| (e.line_reason(), raw_prefix(&line)))
}

/// The spout side of the readers: drains the channel, numbers the lines, and keeps each until
/// it is acked so that a failed one is emitted again.
pub(crate) struct LineQueue {
    rx: flume::Receiver<Item>,
    /// Emitted, not yet acked.
    pending: HashMap<u64, Values>,
    /// Failed, to be emitted again, oldest first.
    replay: VecDeque<u64>,
    next_id: u64,
    max_pending: usize,
    /// Every reader has ended and the channel is empty.
    ended: bool,
}

impl LineQueue {
    pub(crate) fn new(rx: flume::Receiver<Item>, ctx: &TaskContext) -> LineQueue {
        LineQueue {
            rx,
            pending: HashMap::new(),
            replay: VecDeque::new(),
            // A random start: the ids the runtime fails to a restarted instance (its
            // predecessor's pending lines) then name none of this instance's lines.
            next_id: fastrand::u64(..u64::MAX / 2),
            max_pending: ctx.config().max_spout_pending.unwrap_or(usize::MAX),
            ended: false,
        }
    }

    /// Emits replays first, then new lines, up to [`DRAIN_PER_CALL`] and `max_spout_pending`.
    pub(crate) fn emit(&mut self, out: &mut SpoutCollector<'_, u64>) {
        let mut n = 0;
        while n < DRAIN_PER_CALL && out.pending() < self.max_pending {
            let Some(id) = self.replay.pop_front() else {
                break;
            };
            if let Some(values) = self.pending.get(&id) {
                out.emit(values.clone(), id);
                n += 1;
            }
        }
        while n < DRAIN_PER_CALL && out.pending() < self.max_pending {
            match self.rx.try_recv() {
                Ok(Item::Line(values)) => {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.pending.insert(id, values.clone());
                    out.emit(values, id);
                }
                Ok(Item::Error(values)) => out.emit_to(ERROR_STREAM, values, None),
                Err(flume::TryRecvError::Empty) => break,
                Err(flume::TryRecvError::Disconnected) => {
                    self.ended = true;
                    break;
                }
            }
            n += 1;
        }
    }

    pub(crate) fn ack(&mut self, id: u64) {
        self.pending.remove(&id);
    }

    pub(crate) fn fail(&mut self, id: u64) {
        if self.pending.contains_key(&id) {
            self.replay.push_back(id);
        }
    }

    /// The input has ended and every line is acked.
    pub(crate) fn is_done(&self) -> bool {
        self.ended && self.pending.is_empty()
    }
}

/// State shared by a spout and its clones (every task of a topology-file component).
struct Shared {
    counters: LineCounters,
    local_addr: OnceLock<SocketAddr>,
    /// How connections are secured.
    tls: Tls,
}

/// The `socket` spout (see the module docs). Cloning gives a fresh, unopened spout with the same
/// options that shares the counters and the bound address.
pub struct SocketSpout {
    opts: Arc<SocketOptions>,
    format: LineFormat,
    shared: Arc<Shared>,
    queue: Option<LineQueue>,
    /// Stops the reader tasks when the spout is closed or dropped.
    stop: Option<DropGuard>,
}

impl Clone for SocketSpout {
    fn clone(&self) -> Self {
        SocketSpout {
            opts: self.opts.clone(),
            format: self.format.clone(),
            shared: self.shared.clone(),
            queue: None,
            stop: None,
        }
    }
}

/// Checks a `host:port` option.
pub(crate) fn check_address(address: &str) -> Result<(), String> {
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!(
            "option `address` = {address:?}: expected \"host:port\" (e.g. \"127.0.0.1:9999\")"
        )),
    }
}

/// Checks `max_line_bytes`.
pub(crate) fn check_max_line_bytes(n: usize) -> Result<(), String> {
    if n == 0 || n > 1 << 30 {
        return Err(format!(
            "option `max_line_bytes` = {n}: expected from 1 to 1073741824 (1 GiB)"
        ));
    }
    Ok(())
}

impl SocketSpout {
    /// A socket spout with these options, or what is wrong with them.
    pub fn new(opts: SocketOptions) -> Result<SocketSpout, String> {
        check_address(&opts.address)?;
        check_max_line_bytes(opts.max_line_bytes)?;
        if opts.field.is_empty() {
            return Err("option `field` is empty: expected a field name".to_string());
        }
        opts.reconnect.check_reconnect("reconnect")?;
        match opts.mode {
            SocketMode::Server => {
                if opts.field == "peer" {
                    return Err("option `field` = \"peer\": server mode already has a `peer` field; choose another name".to_string());
                }
                if opts.max_clients == 0 {
                    return Err("option `max_clients` = 0: expected at least 1".to_string());
                }
                if opts.until_eof {
                    return Err("option `until_eof` = true: only for mode = \"client\" (a server has no single end)".to_string());
                }
            }
            SocketMode::Client => {}
        }
        let tls = Tls::new(&opts)?;
        Ok(SocketSpout {
            format: LineFormat::new(opts.max_line_bytes, opts.encoding),
            opts: Arc::new(opts),
            shared: Arc::new(Shared {
                counters: LineCounters::default(),
                local_addr: OnceLock::new(),
                tls,
            }),
            queue: None,
            stop: None,
        })
    }

    /// What the readers have seen so far, over every task of this spout and its clones.
    pub fn counters(&self) -> &LineCounters {
        &self.shared.counters
    }

    /// Server mode: the address listened on, once the first task is open (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr.get().copied()
    }
}

impl Spout for SocketSpout {
    type MessageId = u64;

    fn declare_outputs(&self, out: &mut OutputDeclarer) {
        match self.opts.mode {
            SocketMode::Client => out.declare([self.opts.field.as_str()]),
            SocketMode::Server => out.declare([self.opts.field.as_str(), "peer"]),
        };
        out.declare_stream(ERROR_STREAM, SOURCE_ERROR_FIELDS);
    }

    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        let (tx, rx) = flume::bounded(CHANNEL_CAPACITY);
        self.queue = Some(LineQueue::new(rx, ctx));
        let cancel = CancellationToken::new();
        let source = SmolStr::from(ctx.component_id());
        match self.opts.mode {
            SocketMode::Client => {
                crate::connector::warn::spawn(run_client(
                    self.opts.clone(),
                    self.format.clone(),
                    self.shared.clone(),
                    tx,
                    cancel.clone(),
                    source,
                ));
            }
            SocketMode::Server if ctx.task_index() == 0 => {
                let listener = TcpListener::bind(self.opts.address.as_str())
                    .await
                    .map_err(|e| format!("cannot listen on {:?}: {e}", self.opts.address))?;
                let addr = listener.local_addr()?;
                tracing::info!(component = %source, %addr, "listening for lines");
                let _ = self.shared.local_addr.set(addr);
                crate::connector::warn::spawn(run_server(
                    listener,
                    self.opts.max_clients,
                    self.format.clone(),
                    self.shared.clone(),
                    tx,
                    cancel.clone(),
                    source,
                ));
            }
            SocketMode::Server => {
                tracing::info!(
                    component = %source,
                    task_index = ctx.task_index(),
                    "server mode listens from the first task only; this task emits nothing"
                );
                // Keep `tx` alive so the task is not taken for ended.
                let stop = cancel.clone();
                crate::connector::warn::spawn(async move {
                    stop.cancelled().await;
                    drop(tx);
                });
            }
        }
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
        // A client's reader ends only with `until_eof` or `reconnect.attempts`; a server's never.
        self.opts.mode == SocketMode::Client && self.queue.as_ref().is_some_and(LineQueue::is_done)
    }

    async fn close(&mut self) {
        // Dropping the guard cancels the token: readers and the listener stop.
        self.stop = None;
    }
}

/// The TLS side of a socket spout's connections: none, a client's or a server's.
#[derive(Clone)]
enum Tls {
    /// Plain TCP.
    Plain,
    /// Client mode over TLS: the configuration and the name the server's certificate must hold.
    #[cfg(feature = "tls")]
    Client {
        connector: tokio_rustls::TlsConnector,
        name: rustls::pki_types::ServerName<'static>,
    },
    /// Server mode over TLS.
    #[cfg(feature = "tls")]
    Server(tokio_rustls::TlsAcceptor),
}

/// A connection's bytes, read plain or through TLS.
type Input = Box<dyn AsyncRead + Send + Unpin>;

impl Tls {
    /// The TLS of `opts` (`tls` in client mode; `tls_cert`, `tls_key`, `tls_client_ca` in server
    /// mode), with every file read and checked now.
    fn new(opts: &SocketOptions) -> Result<Tls, String> {
        #[cfg(feature = "tls")]
        {
            use crate::connector::tls;
            match opts.mode {
                SocketMode::Client => {
                    if opts.tls_cert.is_some()
                        || opts.tls_key.is_some()
                        || opts.tls_client_ca.is_some()
                    {
                        return Err("options `tls_cert`, `tls_key` and `tls_client_ca` are for mode = \"server\"; a client takes `tls = { ca = ..., cert = ..., key = ... }`".to_string());
                    }
                    if let Some(options) = &opts.tls {
                        let config = options.load("tls")?.client_config(tls::Verify::Full)?;
                        let host = host_of(&opts.address);
                        let name = rustls::pki_types::ServerName::try_from(host.to_string())
                            .map_err(|e| {
                                format!(
                                    "option `address` = {:?}: {host:?} is not a host name or address a certificate can be checked against ({e})",
                                    opts.address
                                )
                            })?;
                        return Ok(Tls::Client {
                            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
                            name,
                        });
                    }
                }
                SocketMode::Server => {
                    if opts.tls.is_some() {
                        return Err("option `tls` is for mode = \"client\"; a server takes `tls_cert` and `tls_key` (and `tls_client_ca` to require client certificates)".to_string());
                    }
                    let config = tls::server_options(
                        opts.tls_cert.as_deref(),
                        opts.tls_key.as_deref(),
                        opts.tls_client_ca.as_deref(),
                        &[],
                    )?;
                    if let Some(config) = config {
                        return Ok(Tls::Server(tokio_rustls::TlsAcceptor::from(Arc::new(
                            config,
                        ))));
                    }
                }
            }
        }
        #[cfg(not(feature = "tls"))]
        let _ = opts;
        Ok(Tls::Plain)
    }

    /// `tcp` as a connection's input: as it is, or once its TLS handshake is done (within
    /// 10 s); the error says why the handshake failed.
    async fn secure(&self, tcp: TcpStream) -> Result<Input, String> {
        match self {
            Tls::Plain => Ok(Box::new(tcp)),
            #[cfg(feature = "tls")]
            Tls::Client { connector, name } => {
                handshake(connector.connect(name.clone(), tcp)).await
            }
            #[cfg(feature = "tls")]
            Tls::Server(acceptor) => handshake(acceptor.accept(tcp)).await,
        }
    }

    /// A read error, with what it usually means over TLS.
    fn explain(&self, e: &io::Error) -> String {
        match self {
            Tls::Plain => e.to_string(),
            #[cfg(feature = "tls")]
            _ => crate::connector::tls::explain(e),
        }
    }
}

/// Waits for a TLS handshake, at most [`crate::connector::tls::HANDSHAKE`].
#[cfg(feature = "tls")]
async fn handshake<S: AsyncRead + Send + Unpin + 'static>(
    handshake: impl Future<Output = io::Result<S>>,
) -> Result<Input, String> {
    use crate::connector::tls::{HANDSHAKE, explain};
    match tokio::time::timeout(HANDSHAKE, handshake).await {
        Ok(Ok(stream)) => Ok(Box::new(stream)),
        Ok(Err(e)) => Err(explain(&e)),
        Err(_) => Err(format!(
            "no TLS handshake within {} (does the other side speak TLS?)",
            humantime::format_duration(HANDSHAKE)
        )),
    }
}

/// The host of a `host:port` address, without the brackets of an IPv6 address.
#[cfg(feature = "tls")]
fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Client mode: connect, read until the connection ends, wait, reconnect.
async fn run_client(
    opts: Arc<SocketOptions>,
    format: LineFormat,
    shared: Arc<Shared>,
    tx: flume::Sender<Item>,
    cancel: CancellationToken,
    source: SmolStr,
) {
    let mut backoff = opts.reconnect.backoff;
    let mut failures = 0u32;
    loop {
        let conn = tokio::select! {
            _ = cancel.cancelled() => return,
            c = TcpStream::connect(opts.address.as_str()) => c,
        };
        let conn = match conn {
            Ok(stream) => tokio::select! {
                _ = cancel.cancelled() => return,
                secured = shared.tls.secure(stream) => secured.map_err(|e| {
                    shared.counters.tls_refused.fetch_add(1, Relaxed);
                    format!("TLS handshake failed: {e}")
                }),
            },
            Err(e) => Err(e.to_string()),
        };
        match conn {
            Ok(stream) => {
                shared.counters.connections.fetch_add(1, Relaxed);
                backoff = opts.reconnect.backoff;
                failures = 0;
                tracing::info!(component = %source, address = %opts.address, "connected");
                let lines_before = shared.counters.lines();
                let read = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = read_lines(stream, &format, None, &tx, &shared.counters, &source) => r,
                };
                match read {
                    Ok(()) => {
                        // A TLS server closes a plain client that never sent its hello.
                        let hint = if matches!(shared.tls, Tls::Plain)
                            && shared.counters.lines() == lines_before
                        {
                            " before sending a line (if it speaks TLS, set the option `tls`)"
                        } else {
                            ""
                        };
                        tracing::info!(component = %source, address = %opts.address, "connection closed by the server{hint}")
                    }
                    Err(ReadStop::Closed) => return,
                    Err(ReadStop::Io(e)) => {
                        tracing::warn!(component = %source, address = %opts.address, "connection lost: {}", shared.tls.explain(&e))
                    }
                }
                if opts.until_eof {
                    tracing::info!(component = %source, "until_eof: not reconnecting");
                    return;
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if opts.reconnect.exhausted(failures, 0) {
                    tracing::error!(
                        component = %source,
                        address = %opts.address,
                        attempts = failures,
                        "cannot connect, giving up: {e}"
                    );
                    return;
                }
                if shared.counters.may_warn() {
                    tracing::warn!(
                        component = %source,
                        address = %opts.address,
                        retry_in = %humantime::format_duration(backoff),
                        "cannot connect: {e}"
                    );
                }
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = opts.reconnect.next_backoff(backoff);
    }
}

/// Server mode: accept clients (at most `max_clients` at once), one reader task each.
async fn run_server(
    listener: TcpListener,
    max_clients: usize,
    format: LineFormat,
    shared: Arc<Shared>,
    tx: flume::Sender<Item>,
    cancel: CancellationToken,
    source: SmolStr,
) {
    let slots = Arc::new(Semaphore::new(max_clients));
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                // The semaphore is never closed.
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                if shared.counters.may_warn() {
                    tracing::warn!(component = %source, "cannot accept a client: {e}");
                }
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
                continue;
            }
        };
        let (format, shared, tx, cancel, source) = (
            format.clone(),
            shared.clone(),
            tx.clone(),
            cancel.clone(),
            source.clone(),
        );
        crate::connector::warn::spawn(async move {
            let _permit = permit;
            let peer_value = Value::from(peer.to_string());
            let stream = tokio::select! {
                _ = cancel.cancelled() => return,
                s = shared.tls.secure(stream) => s,
            };
            let stream = match stream {
                Ok(s) => s,
                Err(e) => {
                    shared.counters.tls_refused.fetch_add(1, Relaxed);
                    if shared.counters.may_warn() {
                        tracing::warn!(component = %source, %peer, "TLS handshake with a client failed, connection refused: {e}");
                    }
                    return;
                }
            };
            shared.counters.connections.fetch_add(1, Relaxed);
            tokio::select! {
                _ = cancel.cancelled() => {}
                r = read_lines(stream, &format, Some(&peer_value), &tx, &shared.counters, &source) => {
                    if let Err(ReadStop::Io(e)) = r {
                        tracing::debug!(component = %source, %peer, "client connection lost: {}", shared.tls.explain(&e));
                    }
                }
            }
        });
    }
}

/// The `socket` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::spout(
            "socket",
            "lines over TCP as a client (reconnects with backoff) or a server of many clients; unacked lines kept in memory and replayed on fail; bad lines to `error`",
            SocketSpout::clone,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components socket`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[spouts.lines]
kind = "socket"
mode = "client"           # read from `nc -lk 9999`; or "server": listen (fields line, peer)
address = "127.0.0.1:9999"
max_line_bytes = 1048576  # longer lines go to the `error` stream (reason, raw)
encoding = "lossy"        # or "strict" (bad UTF-8 to `error`) or "bytes"
reconnect = { backoff = "100ms", max_backoff = "10s", attempts = 0 }   # 0 = retry forever
# tls = { ca = "ca.pem" }   # client over TLS; + cert, key for a server asking for a client certificate
# server over TLS: tls_cert = "server.pem"  tls_key = "server.key"  tls_client_ca = "clients-ca.pem"

# bad lines, with the reason, to a sink of their own:
# [bolts.rejects]  kind = "stdout"  inputs = [{ from = "lines", stream = "error" }]
"#;

impl FromOptions for SocketSpout {
    type Options = SocketOptions;
    fn from_options(options: SocketOptions) -> Result<Self, String> {
        SocketSpout::new(options)
    }
}

/// `address` has a serde default (so a missing one is reported by the component's own check, with the
/// expected form), but is required.
fn socket_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["address"]);
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;
    use crate::connector::tls::{Identity, TlsOptions};
    use topo_test_support::tls;

    /// A client-mode `Tls` to `addr` trusting `ca`.
    fn client(addr: SocketAddr, ca: &str) -> Tls {
        Tls::new(&SocketOptions {
            address: format!("localhost:{}", addr.port()),
            tls: Some(TlsOptions {
                ca: Some(tls::file(ca)),
                ..TlsOptions::default()
            }),
            ..SocketOptions::default()
        })
        .expect("valid options")
    }

    /// The error of a client handshake with the first connection of `listener`, served by
    /// `serve`.
    async fn refused<F>(
        tls: Tls,
        listener: TcpListener,
        serve: impl FnOnce(TcpStream) -> F + Send + 'static,
    ) -> String
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            serve(tcp).await;
        });
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let e = tls.secure(tcp).await.err().expect("the handshake fails");
        server.await.expect("the server side");
        e
    }

    // Guards the words of a failed handshake: a plain-text server and a certificate of an
    // authority the client does not trust are each named for what they are.
    #[tokio::test]
    async fn failed_handshakes_say_why() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let tls_client = client(listener.local_addr().expect("addr"), "ca.crt");
        let e = refused(tls_client, listener, |mut tcp| async move {
            use tokio::io::AsyncWriteExt;
            let _ = tcp.write_all(b"plain text line\n").await;
        })
        .await;
        assert!(e.contains("does not speak TLS"), "{e}");

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let untrusting = client(listener.local_addr().expect("addr"), "other-ca.crt");
        let config = Identity::load(
            ("cert", &tls::file("server.crt")),
            ("key", &tls::file("server.key")),
        )
        .and_then(|i| i.server_config_with(None, &[]))
        .expect("a server configuration");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let e = refused(untrusting, listener, |tcp| async move {
            let _ = acceptor.accept(tcp).await;
        })
        .await;
        assert!(e.contains("not signed by an authority"), "{e}");
    }
}
