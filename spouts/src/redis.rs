//! `redis`: applies one Redis command per record — sorted-set, hash, string or list updates,
//! for counters and leaderboards — in batches sent as one `MULTI`/`EXEC` transaction, and acks
//! each input only once the server has replied to the `EXEC` holding it.
//!
//! ```text
//!            ┌──────────────────────────── redis (BatchSink) ────────────────────────────┐
//! input ───► │ encode: key template + member + value fields -> one command (ZADD, ...)   │
//!            │   │ a missing field / a value of the wrong type ────────────────────────────► error: (reason, record)
//!            │   ▼                                                                       │
//!            │ pipeline: MULTI, cmd, cmd, ..., [PEXPIRE key ttl per distinct key], EXEC  │
//!            │   │ EXEC replied ─► commands the server refused (WRONGTYPE, not an        │
//!            │   │               integer) ───────────────────────────────────────────────► error: (reason, record)
//!            │   │               every input acked                                       │
//!            │   └ connection refused / lost / timed out ─► Retry (the connection        │──► fail ─► spouts replay
//!            │                   manager reconnects)                                     │
//!            └───────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! A batch is written when it is full (`batch.max_records` records or `batch.max_bytes` bytes),
//! as soon as no more input is waiting for the sink (its task's input ran dry), when its oldest
//! record has waited `batch.interval`, and at the end of input. Under load the sink's queue is
//! never empty and batches fill; under a light trickle they are small, written one per pause in
//! the input. See [`crate::connector::sink`].
//!
//! Options (with the shared `batch` and `retry` tables of [`crate::connector::sink`]):
//!
//! ```toml
//! [bolts.board]
//! kind = "redis"
//! url = "redis://127.0.0.1:6379/0"   # redis://[user:password@]host:port/db; rediss:// for TLS
//! # tls = { ca = "ca.pem", cert = "client.pem", key = "client.key" }   # rediss://: the CA (unset:
//! #                                  # the system's roots) and an optional client certificate
//! command = "zadd"                   # zadd | zincrby | hset | hincrby | set | incrby | rpush
//! key = "leaderboard:{region}"       # key template: {field} is that field's value; {{ and }} are braces
//! member = "word"                    # zadd/zincrby: the member; hset/hincrby: the hash field
//! value = "count"                    # zadd: score; zincrby/hincrby/incrby: increment; hset/set: value
//! ttl = "1h"                         # optional: PEXPIRE on every key written
//! timeout = "5s"                     # connecting, and waiting for each reply
//! batch = { max_records = 500, interval = "1s" }
//! retry = { attempts = 5, backoff = "100ms" }
//! ```
//!
//! Commands, per record (`K` = the rendered key, `M` = the `member` field, `V` = the `value` field):
//!
//! | command | sent | `member` | `value` |
//! | --- | --- | --- | --- |
//! | `zadd` | `ZADD K V M` | required | required: int or float (the score) |
//! | `zincrby` | `ZINCRBY K V M` | required | required: int or float |
//! | `hset` | `HSET K M V` | required | required: any scalar, lists/maps as JSON |
//! | `hincrby` | `HINCRBY K M V` | required | required: int |
//! | `set` | `SET K V` | not allowed | required: any scalar, lists/maps as JSON |
//! | `incrby` | `INCRBY K V` | not allowed | required: int |
//! | `rpush` | `RPUSH K <the whole record as a JSON object>` | not allowed | not allowed |
//!
//! Semantics:
//!
//! - Members, hash fields and key parts: strings as they are, bytes as they are (not in keys),
//!   ints, floats and bools in text form; a missing field, a `Null`, or a list/map where a
//!   scalar is needed sends the record to the `error` stream at encode time (its input is acked).
//! - A batch is one `MULTI`/`EXEC`: the server applies all of its commands together, and the
//!   inputs are acked once `EXEC`'s reply is in. Redis does not roll a transaction back: a
//!   command refused while executing (`WRONGTYPE` — the key holds another type —, `ERR value is
//!   not an integer`) fails alone; its record goes to the `error` stream with the server's
//!   message, the other commands take effect.
//! - With `ttl`, each distinct key of the batch gets one `PEXPIRE` after its commands, in the
//!   same transaction.
//! - A refused or lost connection, a timeout, or a server that is loading, read-only or refuses
//!   the login is retried ([`WriteError::Retry`]) on a fresh connection.
//! - Idempotence: `zadd`, `hset` and `set` write absolute values, so a batch written again (after
//!   a lost reply, or a replay) leaves the same state. `zincrby`, `hincrby` and `incrby` are not
//!   idempotent: a batch whose `EXEC` was applied but whose reply was lost is applied again on
//!   retry, so counts can be too high (at-least-once). `rpush` appends duplicates in that case.
//!
//! - Under `guarantee = "exactly_once"`: every batch received before a checkpoint's barrier is
//!   committed (`EXEC` answered) before the checkpoint is taken, or the checkpoint is refused
//!   ([`crate::connector::sink`], "Exactly-once"); the writes are still **at-least-once**:
//!   batches written after the last completed checkpoint are written again when a run resumes
//!   from it. `zadd`, `hset` and `set` of absolute values then end in the exact state;
//!   `*incrby` and `rpush` apply those batches twice.
//!
//! Known limits: no Redis Cluster (one server, its `db`); a whole batch goes to one
//! server connection, so very large batches delay other clients of that server while `EXEC`
//! runs. Each command is built as a `redis::Cmd` (two small allocations per record); `rpush`
//! also builds the record's JSON.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use smol_str::SmolStr;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{BoxError, TaskContext, Tuple, Value};

use crate::connector::sink::{
    BatchOptions, BatchSink, BatchWriter, RetryOptions, WriteError, record,
};
use crate::connector::tls::TlsOptions;

/// The command applied per record.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RedisCommand {
    /// `ZADD key score member`: a sorted set's absolute score.
    #[default]
    Zadd,
    /// `ZINCRBY key increment member`.
    Zincrby,
    /// `HSET key field value`.
    Hset,
    /// `HINCRBY key field increment`.
    Hincrby,
    /// `SET key value`.
    Set,
    /// `INCRBY key increment`.
    Incrby,
    /// `RPUSH key json`: the record as a JSON object appended to a list.
    Rpush,
}

impl RedisCommand {
    fn name(self) -> &'static str {
        match self {
            RedisCommand::Zadd => "zadd",
            RedisCommand::Zincrby => "zincrby",
            RedisCommand::Hset => "hset",
            RedisCommand::Hincrby => "hincrby",
            RedisCommand::Set => "set",
            RedisCommand::Incrby => "incrby",
            RedisCommand::Rpush => "rpush",
        }
    }

    fn needs_member(self) -> bool {
        matches!(
            self,
            RedisCommand::Zadd | RedisCommand::Zincrby | RedisCommand::Hset | RedisCommand::Hincrby
        )
    }

    fn needs_value(self) -> bool {
        self != RedisCommand::Rpush
    }
}

/// Options of the `redis` sink; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = redis_required)]
pub struct RedisOptions {
    /// The server: `redis://[user:password@]host:port/db`, or `rediss://...` for TLS (required).
    pub url: String,
    /// TLS of a `rediss://` server: `ca` (PEM; unset = the system's roots), `cert` and `key` (a
    /// client certificate, for servers that ask for one).
    pub tls: TlsOptions,
    /// The command applied per record.
    pub command: RedisCommand,
    /// The key template, e.g. `"leaderboard:{region}"` (required).
    pub key: String,
    /// zadd/zincrby: the member field; hset/hincrby: the hash-field field.
    pub member: Option<String>,
    /// The score / increment / value field.
    pub value: Option<String>,
    /// If set, `PEXPIRE` every key written with this time to live.
    #[serde(with = "humantime_serde::option")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub ttl: Option<Duration>,
    /// Bound on connecting and on waiting for each reply.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub timeout: Duration,
    /// When to write a batch.
    pub batch: BatchOptions,
    /// How to retry a failed write.
    pub retry: RetryOptions,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            url: String::new(),
            command: RedisCommand::Zadd,
            key: String::new(),
            member: None,
            value: None,
            ttl: None,
            tls: TlsOptions::default(),
            timeout: Duration::from_secs(5),
            batch: BatchOptions::default(),
            retry: RetryOptions::default(),
        }
    }
}

/// One piece of a key template.
#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Field(SmolStr),
}

/// Parses `"a:{f}:b"`; `{{` and `}}` are literal braces.
fn parse_template(t: &str) -> Result<Vec<Part>, String> {
    let bad = |why: &str| format!("option `key` = {t:?}: {why}");
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') => return Err(bad("`{` inside a `{field}`")),
                        Some(c) => name.push(c),
                        None => return Err(bad("a `{` is not closed (write `{{` for a brace)")),
                    }
                }
                let name = name.trim();
                if name.is_empty() {
                    return Err(bad("`{}` names no field"));
                }
                if !text.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut text)));
                }
                parts.push(Part::Field(name.into()));
            }
            '}' => return Err(bad("a `}` without its `{` (write `}}` for a brace)")),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// The validated settings of a `redis` sink; each task makes its bolt with [`RedisSink::bolt`].
#[derive(Clone)]
pub struct RedisSink {
    shared: Arc<RedisShared>,
    batch: BatchOptions,
    retry: RetryOptions,
}

struct RedisShared {
    client: redis::Client,
    target: String,
    command: RedisCommand,
    key: Vec<Part>,
    member: Option<SmolStr>,
    value: Option<SmolStr>,
    ttl_ms: Option<u64>,
    timeout: Duration,
}

/// Shows the server and the command, never the URL's password.
impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("target", &self.shared.target)
            .field("command", &self.shared.command)
            .field("key", &self.shared.key)
            .field("batch", &self.batch)
            .field("retry", &self.retry)
            .finish()
    }
}

impl RedisSink {
    /// Checks the options; the error names the option and the value.
    pub fn new(options: RedisOptions) -> Result<RedisSink, String> {
        options.batch.check()?;
        options.retry.check_sink("retry")?;
        if options.url.is_empty() {
            return Err("option `url` is required (e.g. \"redis://127.0.0.1:6379/0\")".into());
        }
        let not_redis = |e: redis::RedisError| {
            format!(
                "option `url` = {:?}: not a Redis URL: {e}",
                crate::connector::redact(&options.url)
            )
        };
        let client = if options.url.starts_with("rediss://") {
            let files = options.tls.load("tls")?;
            // The client builds its TLS configuration with the process's crypto provider.
            crate::connector::tls::provider();
            redis::Client::build_with_tls(
                options.url.as_str(),
                redis::TlsCertificates {
                    client_tls: files.client_pem.map(|(client_cert, client_key)| {
                        redis::ClientTlsConfig {
                            client_cert,
                            client_key,
                        }
                    }),
                    root_cert: files.ca_pem,
                },
            )
            .map_err(not_redis)?
        } else if options.tls.is_set() {
            return Err(format!(
                "option `tls` is for a TLS server, and `url` = {:?} is plain: write `rediss://`",
                crate::connector::redact(&options.url)
            ));
        } else {
            redis::Client::open(options.url.as_str()).map_err(not_redis)?
        };
        let info = client.get_connection_info();
        let target = format!("{}/{}", info.addr, info.redis.db);
        if options.key.is_empty() {
            return Err(
                "option `key` is required (a key or a template such as \"board:{region}\")".into(),
            );
        }
        let key = parse_template(&options.key)?;
        let command = options.command;
        let name = command.name();
        match (&options.member, command.needs_member()) {
            (None, true) => {
                return Err(format!(
                    "option `member` is required with command = \"{name}\" (the field holding the {})",
                    if matches!(command, RedisCommand::Zadd | RedisCommand::Zincrby) {
                        "sorted-set member"
                    } else {
                        "hash field"
                    }
                ));
            }
            (Some(m), false) => {
                return Err(format!(
                    "option `member` = {m:?} is not used by command = \"{name}\""
                ));
            }
            (Some(m), true) if m.is_empty() => {
                return Err("option `member` must name a field".into());
            }
            _ => {}
        }
        match (&options.value, command.needs_value()) {
            (None, true) => {
                return Err(format!(
                    "option `value` is required with command = \"{name}\" (the field holding the {})",
                    match command {
                        RedisCommand::Zadd => "score",
                        RedisCommand::Zincrby | RedisCommand::Hincrby | RedisCommand::Incrby =>
                            "increment",
                        _ => "value",
                    }
                ));
            }
            (Some(v), false) => {
                return Err(format!(
                    "option `value` = {v:?} is not used by command = \"{name}\" (it pushes the whole record as JSON)"
                ));
            }
            (Some(v), true) if v.is_empty() => {
                return Err("option `value` must name a field".into());
            }
            _ => {}
        }
        let ttl_ms = match options.ttl {
            Some(t) if t.as_millis() == 0 => {
                return Err(format!(
                    "option `ttl` ({}) must be at least 1ms",
                    humantime::format_duration(t)
                ));
            }
            Some(t) => Some(u64::try_from(t.as_millis()).map_err(|_| {
                format!(
                    "option `ttl` ({}) is too long",
                    humantime::format_duration(t)
                )
            })?),
            None => None,
        };
        if options.timeout.is_zero() {
            return Err("option `timeout` must be longer than 0s".into());
        }
        Ok(RedisSink {
            shared: Arc::new(RedisShared {
                client,
                target,
                command,
                key,
                member: options.member.map(SmolStr::from),
                value: options.value.map(SmolStr::from),
                ttl_ms,
                timeout: options.timeout,
            }),
            batch: options.batch,
            retry: options.retry,
        })
    }

    /// Connects once and sends `PING`, as each task connects when it starts; the error says why
    /// the server cannot be reached.
    pub async fn check(&self) -> Result<(), BoxError> {
        let mut bolt = self.bolt_writer();
        bolt.connect().await?;
        let Some(conn) = bolt.conn.as_mut() else {
            return Err("redis: not connected".into());
        };
        redis::cmd("PING")
            .query_async::<String>(conn)
            .await
            .map_err(|e| format!("redis ({}): PING failed: {e}", self.shared.target))?;
        Ok(())
    }

    fn bolt_writer(&self) -> RedisWriter {
        let mut pipe = redis::pipe();
        pipe.atomic();
        RedisWriter {
            shared: self.shared.clone(),
            conn: None,
            pipe,
            commands: 0,
            key: String::new(),
            ttl_keys: HashSet::default(),
            rejected: Vec::new(),
        }
    }

    /// A sink bolt for one task (not yet connected; it connects in `prepare`).
    pub fn bolt(&self) -> BatchSink<RedisWriter> {
        BatchSink::new(self.bolt_writer(), self.batch.clone(), self.retry.clone())
    }
}

/// The `redis` sink's [`BatchWriter`]; see the [module docs](self).
pub struct RedisWriter {
    shared: Arc<RedisShared>,
    conn: Option<ConnectionManager>,
    /// The pending batch: `MULTI`, one command per record, then (at write) the `PEXPIRE`s.
    pipe: redis::Pipeline,
    /// Record commands in `pipe` (the `PEXPIRE`s come after them).
    commands: usize,
    /// Scratch for rendering a key.
    key: String,
    /// With `ttl`: the distinct keys of the pending batch.
    ttl_keys: HashSet<Box<str>, foldhash::fast::RandomState>,
    rejected: Vec<(usize, String)>,
}

/// A scalar argument borrowed from the record.
enum Arg<'a> {
    Str(&'a str),
    Bytes(&'a [u8]),
    Int(i64),
    Float(f64),
    Bool(bool),
    Owned(String),
}

impl redis::ToRedisArgs for Arg<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        match self {
            Arg::Str(s) => s.write_redis_args(out),
            Arg::Bytes(b) => b.write_redis_args(out),
            Arg::Int(i) => i.write_redis_args(out),
            Arg::Float(f) => f.write_redis_args(out),
            Arg::Bool(b) => out.write_arg(if *b { b"true" } else { b"false" }),
            Arg::Owned(s) => s.write_redis_args(out),
        }
    }
}

impl Arg<'_> {
    fn len(&self) -> usize {
        match self {
            Arg::Str(s) => s.len(),
            Arg::Bytes(b) => b.len(),
            Arg::Owned(s) => s.len(),
            Arg::Int(_) | Arg::Float(_) => 8,
            Arg::Bool(_) => 5,
        }
    }
}

fn field<'t>(input: &'t Tuple, name: &str, role: &str) -> Result<&'t Value, String> {
    match input.field(name) {
        Ok(v) if v.is_null() => Err(format!("field `{name}` ({role}) is null")),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("the record has no field `{name}` ({role})")),
    }
}

/// A scalar for a member, hash field or value; lists and maps as JSON if `json`.
fn scalar<'t>(v: &'t Value, name: &str, role: &str, json: bool) -> Result<Arg<'t>, String> {
    Ok(match v {
        Value::Str(s) => Arg::Str(s.as_str()),
        Value::Bytes(b) => Arg::Bytes(b),
        Value::Int(i) => Arg::Int(*i),
        Value::Float(f) => Arg::Float(*f),
        Value::Bool(b) => Arg::Bool(*b),
        Value::List(_) | Value::Map(_) if json => Arg::Owned(
            serde_json::to_string(v).map_err(|e| format!("field `{name}` ({role}): {e}"))?,
        ),
        _ => {
            return Err(format!(
                "field `{name}` ({role}) must be a string or number, got {}",
                v.type_name()
            ));
        }
    })
}

impl RedisWriter {
    /// Renders the key template for `input` into `self.key`.
    fn render_key(&mut self, input: &Tuple) -> Result<(), String> {
        use std::fmt::Write;
        self.key.clear();
        for part in &self.shared.key {
            match part {
                Part::Text(t) => self.key.push_str(t),
                Part::Field(name) => {
                    // `write!` to a `String` cannot fail.
                    let _ = match field(input, name, "key template")? {
                        Value::Str(s) => {
                            self.key.push_str(s);
                            Ok(())
                        }
                        Value::Int(i) => write!(self.key, "{i}"),
                        Value::Float(f) => write!(self.key, "{f}"),
                        Value::Bool(b) => write!(self.key, "{b}"),
                        other => {
                            return Err(format!(
                                "field `{name}` (key template) must be a string or number, got {}",
                                other.type_name()
                            ));
                        }
                    };
                }
            }
        }
        Ok(())
    }

    /// Connects (the manager reconnects by itself after that).
    async fn connect(&mut self) -> Result<(), BoxError> {
        let s = &self.shared;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(s.timeout)
            .set_response_timeout(s.timeout)
            // No retries inside the manager: the sink retries with its own back-off.
            .set_number_of_retries(0);
        let manager = tokio::time::timeout(
            s.timeout + Duration::from_secs(1),
            ConnectionManager::new_with_config(s.client.clone(), config),
        )
        .await
        .map_err(|_| {
            format!(
                "cannot connect to Redis at {}: no answer within {}",
                s.target,
                humantime::format_duration(s.timeout)
            )
        })?
        .map_err(|e| {
            // A TLS server drops a plain client's first bytes: say what that usually means.
            let tls = matches!(
                s.client.get_connection_info().addr,
                redis::ConnectionAddr::TcpTls { .. }
            );
            let hint = if !tls && e.kind() == redis::ErrorKind::IoError {
                " (if the server speaks TLS, write `rediss://` in `url`)"
            } else {
                ""
            };
            format!("cannot connect to Redis at {}: {e}{hint}", s.target)
        })?;
        self.conn = Some(manager);
        Ok(())
    }

    /// Records pending in the batch.
    pub fn pending(&self) -> usize {
        self.commands
    }

    fn clear(&mut self) {
        self.pipe.clear();
        self.pipe.atomic();
        self.commands = 0;
        self.ttl_keys.clear();
    }
}

/// Whether a Redis error means "try again later" rather than "these records are refused".
fn refused(e: &redis::RedisError) -> bool {
    matches!(
        e.kind(),
        redis::ErrorKind::TypeError | redis::ErrorKind::ExecAbortError
    ) || e.code() == Some("WRONGTYPE")
}

impl BatchWriter for RedisWriter {
    async fn open(&mut self, _ctx: &TaskContext) -> Result<(), BoxError> {
        self.connect().await
    }

    fn encode(&mut self, input: &Tuple) -> Result<usize, String> {
        self.render_key(input)?;
        let RedisWriter {
            shared,
            pipe,
            key,
            ttl_keys,
            commands,
            ..
        } = self;
        let s: &RedisShared = shared;
        let member = match &s.member {
            Some(name) => {
                let role = if matches!(s.command, RedisCommand::Zadd | RedisCommand::Zincrby) {
                    "member"
                } else {
                    "hash field"
                };
                let v = field(input, name, role)?;
                Some(scalar(v, name, role, false)?)
            }
            None => None,
        };
        let value = match &s.value {
            Some(name) => {
                let v = field(input, name, "value")?;
                Some(match s.command {
                    RedisCommand::Zadd | RedisCommand::Zincrby => match v {
                        Value::Int(i) => Arg::Int(*i),
                        Value::Float(f) if f.is_finite() => Arg::Float(*f),
                        other => {
                            return Err(format!(
                                "field `{name}` (score) must be a finite number, got {} {other}",
                                other.type_name()
                            ));
                        }
                    },
                    RedisCommand::Hincrby | RedisCommand::Incrby => match v {
                        Value::Int(i) => Arg::Int(*i),
                        other => {
                            return Err(format!(
                                "field `{name}` (increment) must be an int, got {} {other}",
                                other.type_name()
                            ));
                        }
                    },
                    _ => scalar(v, name, "value", true)?,
                })
            }
            None => None,
        };
        let key = key.as_str();
        let mut size = key.len() + 16;
        // `needs_member`/`needs_value` were checked in `RedisSink::new`, so the options give
        // exactly the fields each command uses.
        match (s.command, member, value) {
            (RedisCommand::Zadd, Some(m), Some(v)) => {
                size += m.len() + v.len();
                pipe.cmd("ZADD").arg(key).arg(v).arg(m);
            }
            (RedisCommand::Zincrby, Some(m), Some(v)) => {
                size += m.len() + v.len();
                pipe.cmd("ZINCRBY").arg(key).arg(v).arg(m);
            }
            (RedisCommand::Hset, Some(m), Some(v)) => {
                size += m.len() + v.len();
                pipe.cmd("HSET").arg(key).arg(m).arg(v);
            }
            (RedisCommand::Hincrby, Some(m), Some(v)) => {
                size += m.len() + v.len();
                pipe.cmd("HINCRBY").arg(key).arg(m).arg(v);
            }
            (RedisCommand::Set, None, Some(v)) => {
                size += v.len();
                pipe.cmd("SET").arg(key).arg(v);
            }
            (RedisCommand::Incrby, None, Some(v)) => {
                size += v.len();
                pipe.cmd("INCRBY").arg(key).arg(v);
            }
            (RedisCommand::Rpush, None, None) => {
                let json = serde_json::to_string(&record(input))
                    .map_err(|e| format!("the record is not encodable as JSON: {e}"))?;
                size += json.len();
                pipe.cmd("RPUSH").arg(key).arg(json);
            }
            (c, _, _) => {
                return Err(format!(
                    "command {} was configured without its fields",
                    c.name()
                ));
            }
        }
        if s.ttl_ms.is_some() && !ttl_keys.contains(key) {
            ttl_keys.insert(key.into());
        }
        *commands += 1;
        Ok(size)
    }

    async fn write(&mut self) -> Result<(), WriteError> {
        if self.commands == 0 {
            self.clear();
            return Ok(());
        }
        let s = self.shared.clone();
        if self.conn.is_none() {
            self.connect().await.map_err(WriteError::Retry)?;
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(WriteError::Retry(
                format!("redis ({}): not connected", s.target).into(),
            ));
        };
        // On a retry the PEXPIREs are already in the pipeline.
        if let Some(ttl) = s.ttl_ms
            && self.pipe.len() == self.commands
        {
            for k in &self.ttl_keys {
                self.pipe.cmd("PEXPIRE").arg(&**k).arg(ttl).ignore();
            }
        }
        let n = self.pipe.len();
        // Replies: OK to MULTI, QUEUED per command, then EXEC's array: skip to that.
        let reply = tokio::time::timeout(
            s.timeout + Duration::from_secs(1),
            conn.req_packed_commands(&self.pipe, n + 1, 1),
        )
        .await;
        let mut reply = match reply {
            Err(_) => {
                self.conn = None;
                return Err(WriteError::Retry(
                    format!(
                        "redis ({}): no reply within {}",
                        s.target,
                        humantime::format_duration(s.timeout)
                    )
                    .into(),
                ));
            }
            Ok(Err(e)) if refused(&e) => {
                return Err(WriteError::Reject(format!("redis: {e}")));
            }
            Ok(Err(e)) => {
                // The manager reconnects by itself only after I/O errors; a failed login, say,
                // would stay its answer. A fresh manager on the next try covers every case.
                self.conn = None;
                return Err(WriteError::Retry(
                    format!("redis ({}): {e}", s.target).into(),
                ));
            }
            Ok(Ok(reply)) => reply,
        };
        match reply.pop() {
            Some(redis::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate().take(self.commands) {
                    if let redis::Value::ServerError(e) = item {
                        let reason = match e.details() {
                            Some(d) => format!("redis: {} {d}", e.code()),
                            None => format!("redis: {}", e.code()),
                        };
                        self.rejected.push((i, reason));
                    }
                }
                self.clear();
                Ok(())
            }
            Some(redis::Value::ServerError(e)) => {
                let reason = format!("redis: {} {}", e.code(), e.details().unwrap_or(""));
                match e.code() {
                    "EXECABORT" | "WRONGTYPE" => Err(WriteError::Reject(reason)),
                    _ => Err(WriteError::Retry(reason.into())),
                }
            }
            other => Err(WriteError::Retry(
                format!("redis ({}): unexpected reply to EXEC: {other:?}", s.target).into(),
            )),
        }
    }

    fn discard(&mut self) {
        self.clear();
    }

    fn take_rejected(&mut self, into: &mut Vec<(usize, String)>) {
        into.append(&mut self.rejected);
    }

    async fn close(&mut self) {
        self.conn = None;
    }
}

/// The `redis` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::bolt(
            "redis",
            "applies one Redis command per record (sorted sets, hashes, strings, lists) in MULTI/EXEC batches, acks after the reply; refused commands to the `error` stream",
            RedisSink::bolt,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components redis`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.board]
kind = "redis"
url = "redis://127.0.0.1:6379/0"   # TLS: rediss://user:${REDIS_PASSWORD}@host:6379/0
# tls = { ca = "redis-ca.pem" }   # with rediss://: the CA (unset: the system's roots), cert, key
command = "zadd"          # zincrby, hset, hincrby, set, incrby, rpush
key = "leaderboard:{region}"   # {field} takes the tuple's value
member = "word"
value = "count"
ttl = "1d"
inputs = [{ from = "counts", grouping = { fields = ["word"] } }]
"#;

impl FromOptions for RedisSink {
    type Options = RedisOptions;
    fn from_options(options: RedisOptions) -> Result<Self, String> {
        RedisSink::new(options)
    }
}

/// `url`, `key` have serde defaults (so a missing one is reported by the component's own check, with the
/// expected form), but are required.
fn redis_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["url", "key"]);
}
