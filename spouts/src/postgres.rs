//! `postgres`: writes records to a PostgreSQL table in batches (plain inserts or upserts) and
//! acks each input only once the transaction holding it is committed.
//!
//! ```text
//!            ┌──────────────────────── postgres (BatchSink) ───────────────────────────┐
//! input ───► │ encode: field -> column buffer (typed by the column's type)             │
//!            │   │ a value that cannot go to its column ─────────────────────────────────► error: (reason, record)
//!            │   ▼ upsert: a key already in the batch replaces that row (last wins)    │
//!            │ column arrays ─► INSERT INTO t (c..) SELECT * FROM UNNEST($1::..[], ..) │
//!            │                  [ON CONFLICT (key) DO UPDATE SET c = EXCLUDED.c]       │
//!            │   │ committed ─────────────────────────────────────────────► ack inputs │
//!            │   │ connection lost / server down / serialization failure / lock wait   │
//!            │   │   timeout ─► Retry (reconnect, re-check the table, re-prepare)      │──► fail ─► spouts replay
//!            │   └ SQLSTATE class 21/22/23 (bad value, not null, check, unique) ─►     │
//!            │       the batch again row by row: good rows committed, bad rows ──────────► error: (reason, record)
//!            └─────────────────────────────────────────────────────────────────────────┘
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
//! [bolts.store]
//! kind = "postgres"
//! url = "postgres://postgres@127.0.0.1:5432/test"  # libpq-style URL or key=value string
//! sslmode = "verify-full"            # disable | prefer (default) | require | verify-ca | verify-full
//! tls = { ca = "root.pem" }          # the server's CA (unset: the system's roots); cert, key: a
//!                                    # client certificate
//! table = "word_counts"              # or "schema.table"; each part quoted as an identifier
//! columns = ["word", "count"]        # tuple field -> column of the same name
//! # columns = { word = "token", count = "n" }      # or column = "field"
//! mode = "upsert"                    # "insert" (default) | "upsert"
//! key = ["word"]                     # upsert: the conflict target
//! application_name = "topo-words"    # default "topo/<component>/<task index>"
//! timeout = "10s"                    # statement_timeout of the sink's session; also bounds
//!                                    # connecting and each write as seen from here
//! batch = { max_records = 500, interval = "1s" }
//! retry = { attempts = 5, backoff = "100ms" }
//! commits_table = "topo_sink_commits"  # exactly-once: each task's last committed checkpoint
//! ```
//!
//! Semantics:
//!
//! - At `open` (and after every reconnection) the sink reads the table's columns from
//!   `information_schema.columns` (of the named schema, or of `current_schema()` for an unqualified
//!   name); a missing table or column is an error naming it (and listing the columns there are).
//!   It then prepares one statement per connection: a multi-row `INSERT ... SELECT * FROM
//!   UNNEST(...)` with one typed array parameter per column, so a batch of any size is one
//!   statement, values are always bind parameters, and the statement is parsed once.
//! - A batch is that one statement in its own transaction, committed before the inputs are acked.
//! - Values to columns, by the column's type: integer columns (`int2`, `int4`, `int8`) take ints
//!   (sent as `int8`, range-checked by the server); `float4`/`float8` take ints and floats;
//!   `bool` takes bools; `bytea` takes bytes and strings (their UTF-8); `text`, `varchar`,
//!   `char`, `name` take strings, and ints, floats and bools in their text form, lists and maps as
//!   JSON; `json`/`jsonb` take any value as its JSON form (a string becomes a JSON string — parse
//!   it first to store an object); every other type (`numeric`, `timestamptz`, `uuid`, `date`,
//!   enums, ...) takes the value's text form and the server casts it. `Null` is SQL `NULL` in any
//!   column. A value the column cannot take (a string for an `int8`, say) is refused at encode
//!   time: the record goes to the `error` stream, its input is acked.
//! - `mode = "upsert"` adds `ON CONFLICT (key) DO UPDATE SET` every non-key column `=
//!   EXCLUDED.column` (`DO NOTHING` when every column is a key column); the key needs a unique
//!   index or constraint (else opening fails with the server's message). Within one batch, a
//!   record whose key is already pending replaces that pending row (the last record per key
//!   wins), so PostgreSQL never sees a key twice in one statement; all those inputs are acked
//!   when the row is committed.
//! - Errors: a lost connection, a refused connection, a terminated backend, a serialization
//!   failure, a deadlock, a lock wait longer than `timeout`, a missing table (renamed away for a
//!   while) are retried ([`WriteError::Retry`], with a fresh connection when the old one is
//!   unusable). A data error (SQLSTATE class 21, 22 or 23: a value out of range or malformed, a
//!   not-null, check, unique or foreign-key violation) makes the sink write the batch again row
//!   by row, each row in its own transaction: the good rows are committed, each bad row's inputs
//!   go to the `error` stream with the server's message and SQLSTATE. If the connection is lost
//!   during that, the retry resumes at the row where it stopped.
//!
//! Exactly-once (`guarantee = "exactly_once"`): each checkpoint's rows are committed in one
//! transaction together with that checkpoint's id, so a replay is skipped, not written twice
//! (Flink's two-phase-commit sinks; Kafka Streams' offsets-with-results):
//!
//! ```text
//!  batches written ──► held in memory (no statement yet)
//!  barrier N ──► snapshot: the held batches become epoch N, and every epoch not yet
//!                committed goes into checkpoint N (this task's part)
//!  checkpoint N complete ──► one transaction per epoch ≤ N, oldest first:
//!      INSERT INTO topo_sink_commits (topology, component, task, run, checkpoint_id)
//!        ... ON CONFLICT (topology, component, task, run)
//!            DO UPDATE SET checkpoint_id = N WHERE checkpoint_id < N
//!      -- 0 rows: this epoch was committed before (a crash after the commit) → ROLLBACK, skip
//!      the epoch's batches (the insert / upsert statement, one per batch)
//!      COMMIT
//!  resume from checkpoint K ──► the epochs in K are committed the same way at the first idle
//!      moment: those committed before the crash are skipped by their commits row
//! ```
//!
//! - `commits_table` (default `topo_sink_commits`, in the schema of `table` when that is
//!   qualified) is created at open when missing (`CREATE TABLE ... PRIMARY KEY (topology,
//!   component, task, run)`; a user without `CREATE` privilege creates it beforehand with those
//!   columns: `topology text, component text, task integer, run text, checkpoint_id bigint,
//!   committed_at timestamptz DEFAULT now()`). It holds one row per task and run (`run` is random
//!   per task start), the newest checkpoint that run committed; rows of old runs can be deleted
//!   once no checkpoint that holds their rows is kept (`topo checkpoints list`).
//! - Rows appear in the table when their checkpoint completes: about `checkpoint_interval`
//!   after they arrive (1 s by default), never before. A reader sees whole checkpoints.
//! - The held rows are written into each checkpoint, so a checkpoint's size includes about one
//!   `checkpoint_interval` of the sink's input.
//! - A commit that fails (server down) is retried at the next batch and at each tick; meanwhile
//!   new batches are not taken (the sink's retry slows its input down, and checkpoints fail
//!   while a batch waits), so what is held stays about one checkpoint interval of rows. Rows
//!   also wait in memory while checkpoints fail for another reason (an unwritable checkpoint
//!   directory), until one completes.
//! - A row the server refuses at commit (a constraint violation) is left out under a savepoint
//!   and goes to the `error` stream (reason, record of the columns' values by field name) once,
//!   at that commit; the other rows of its checkpoint are committed.
//! - With another parallelism, a task commits the epochs of the old tasks it takes over (old
//!   index modulo the parallelism), each under its old (task, run).
//! - Under `at_least_once` the sink writes each batch as it comes, acked after its commit (above).
//!
//! Known limits:
//!
//! - At-least-once: a batch whose commit succeeded but whose reply was lost is written again
//!   (`insert` then duplicates rows; `upsert` of absolute values is idempotent). Exactly-once
//!   has no such case: the commits row is in the same transaction.
//! - Array-typed columns are refused at open. The column types are read at open and checked at
//!   every reconnection: a column type changed under a running sink makes its writes fail
//!   (retried, then replayed) until its tasks are restarted.
//! - A batch holding a bad row costs one statement per row (the row-by-row pass); with upsert,
//!   the inputs merged into a refused row (same key, same batch) all go to `error`.
//! - TLS as libpq's `sslmode` (the option, else the URL's, else `prefer`): `prefer` and
//!   `require` encrypt without authenticating the server unless `tls.ca` is given (then its chain
//!   is verified), `verify-ca` verifies the chain, `verify-full` the chain and the host name.
//!   A client certificate (`tls.cert`, `tls.key`) is sent when the server asks for one.
//! - A table name containing a `.` cannot be given (the first `.` separates the schema).

use std::collections::{HashMap, VecDeque};
use std::error::Error as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;
use smol_str::{SmolStr, format_smolstr};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;
use topo_dsl::{FromOptions, Kind};
use topo_runtime::{BoxError, CheckpointId, Restore, Snapshot, TaskContext, Tuple, Value};

use crate::connector::sink::{
    BatchOptions, BatchSink, BatchWriter, RetryOptions, WriteError, exactly_once,
};
use crate::connector::tls::{TlsOptions, Verify};

/// How each batch is written.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PostgresMode {
    /// Plain `INSERT`.
    #[default]
    Insert,
    /// `INSERT ... ON CONFLICT (key) DO UPDATE`.
    Upsert,
}

/// Which tuple field goes to which column.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum PostgresColumns {
    /// Each name is both the column and the tuple field.
    Same(Vec<String>),
    /// Column name -> tuple field.
    Mapped(IndexMap<String, String>),
}

impl Default for PostgresColumns {
    fn default() -> Self {
        PostgresColumns::Same(Vec::new())
    }
}

/// TLS of the sink's connections, as libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PostgresSslMode {
    /// Plain connections only.
    Disable,
    /// TLS when the server offers it, else plain; the server is not authenticated (unless `tls.ca`
    /// is given: then its chain is verified).
    Prefer,
    /// TLS or no connection; the server is not authenticated (unless `tls.ca` is given: then its
    /// chain is verified).
    Require,
    /// TLS, the server's chain verified against `tls.ca` (or the system's roots), any host name.
    VerifyCa,
    /// TLS, the server's chain verified and its certificate issued for the host connected to.
    VerifyFull,
}

/// Options of the `postgres` sink; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(transform = postgres_required)]
pub struct PostgresOptions {
    /// Connection string: a `postgres://` URL or libpq `key=value` pairs (required).
    pub url: String,
    /// TLS: `disable`, `prefer`, `require`, `verify-ca` or `verify-full` (libpq's meanings); unset =
    /// the URL's `sslmode`, else `prefer`.
    pub sslmode: Option<PostgresSslMode>,
    /// TLS files: `ca` (PEM; unset = the system's roots), `cert` and `key` (a client
    /// certificate, for servers that ask for one or authenticate by it).
    pub tls: TlsOptions,
    /// The table, optionally `schema.table` (required).
    pub table: String,
    /// The columns written and the fields they come from (required, at least one).
    pub columns: PostgresColumns,
    /// `insert` or `upsert`.
    pub mode: PostgresMode,
    /// Upsert: the conflict target columns (required with `upsert`, not allowed with `insert`).
    pub key: Vec<String>,
    /// The session's `application_name`; default `topo/<component>/<task index>`.
    pub application_name: Option<String>,
    /// The session's `statement_timeout`, and the bound on connecting and on each write.
    #[serde(with = "humantime_serde")]
    #[schemars(schema_with = "topo_dsl::schema::duration")]
    pub timeout: Duration,
    /// Exactly-once: the table recording each task's last committed checkpoint (created if
    /// missing), optionally `schema.table`; unqualified, it goes to the schema of `table`.
    pub commits_table: String,
    /// When to write a batch.
    pub batch: BatchOptions,
    /// How to retry a failed write.
    pub retry: RetryOptions,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            url: String::new(),
            sslmode: None,
            tls: TlsOptions::default(),
            table: String::new(),
            columns: PostgresColumns::default(),
            mode: PostgresMode::Insert,
            key: Vec::new(),
            application_name: None,
            timeout: Duration::from_secs(10),
            commits_table: DEFAULT_COMMITS_TABLE.to_string(),
            batch: BatchOptions::default(),
            retry: RetryOptions::default(),
        }
    }
}

/// The validated settings of a `postgres` sink; each task makes its bolt with
/// [`PostgresSink::bolt`].
#[derive(Clone, Debug)]
pub struct PostgresSink {
    shared: Arc<Shared>,
    batch: BatchOptions,
    retry: RetryOptions,
}

/// What every task of one sink shares.
#[derive(Debug)]
struct Shared {
    config: tokio_postgres::Config,
    /// The TLS connector; `None` = plain (`sslmode = "disable"`).
    tls: Option<Tls>,
    /// `host:port/dbname`, for error messages (no password).
    target: String,
    schema: Option<String>,
    table: String,
    /// The quoted (schema.)table for SQL.
    quoted_table: String,
    /// (column, field), in order.
    columns: Vec<(String, SmolStr)>,
    /// Positions in `columns` of the upsert key (empty for insert).
    key: Vec<usize>,
    mode: PostgresMode,
    application_name: Option<String>,
    timeout: Duration,
    /// Exactly-once: the quoted (schema.)table of commits.
    quoted_commits: String,
}

/// The TLS connector of a sink's connections.
#[derive(Clone)]
struct Tls(MakeRustlsConnect);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

/// The TLS of a sink's connections: `sslmode` (the option, else the URL's, else `prefer`) set on
/// `config` as tokio-postgres knows it (disable, prefer, require), and the connector checking the
/// server as the mode says. `None` = plain connections.
fn postgres_tls(
    config: &mut tokio_postgres::Config,
    sslmode: Option<PostgresSslMode>,
    files: &TlsOptions,
) -> Result<Option<Tls>, String> {
    use tokio_postgres::config::SslMode;
    let mode = sslmode.unwrap_or(match config.get_ssl_mode() {
        SslMode::Disable => PostgresSslMode::Disable,
        SslMode::Require => PostgresSslMode::Require,
        _ => PostgresSslMode::Prefer,
    });
    if mode == PostgresSslMode::Disable {
        if files.is_set() {
            return Err(
                "option `tls` is given, and `sslmode` is \"disable\": no TLS is used (set sslmode to \"verify-full\", or drop `tls`)"
                    .into(),
            );
        }
        config.ssl_mode(SslMode::Disable);
        return Ok(None);
    }
    let loaded = files.load("tls")?;
    let verify = match mode {
        PostgresSslMode::VerifyFull => Verify::Full,
        PostgresSslMode::VerifyCa => Verify::ChainOnly,
        // As libpq with a root certificate file: the chain is verified when a CA is given.
        _ if files.ca.is_some() => Verify::ChainOnly,
        _ => Verify::Nothing,
    };
    config.ssl_mode(match mode {
        PostgresSslMode::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    let client = loaded.client_config(verify)?;
    Ok(Some(Tls(MakeRustlsConnect::new(client))))
}

/// Quotes a name as an SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PostgresSink {
    /// Checks the options; the error names the option and the value.
    pub fn new(options: PostgresOptions) -> Result<PostgresSink, String> {
        options.batch.check()?;
        options.retry.check_sink("retry")?;
        if options.url.is_empty() {
            return Err(
                "option `url` is required (e.g. \"postgres://postgres@127.0.0.1:5432/test\")"
                    .into(),
            );
        }
        let mut config: tokio_postgres::Config = options.url.parse().map_err(|e| {
            let mut why = format!("option `url`: not a PostgreSQL connection string: {e}");
            if options.url.contains("sslmode=verify") {
                why.push_str(
                    " (give verify-ca or verify-full as the option `sslmode`, not in the URL)",
                );
            }
            why
        })?;
        let tls = postgres_tls(&mut config, options.sslmode, &options.tls)?;
        if options.table.is_empty() {
            return Err("option `table` is required".into());
        }
        let (schema, table) = match options.table.split_once('.') {
            Some((s, t)) if !s.is_empty() && !t.is_empty() => (Some(s.to_string()), t.to_string()),
            Some(_) => {
                return Err(format!(
                    "option `table` = {:?}: expected `table` or `schema.table`",
                    options.table
                ));
            }
            None => (None, options.table.clone()),
        };
        let quoted_table = match &schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&table)),
            None => quote_ident(&table),
        };
        let columns: Vec<(String, SmolStr)> = match &options.columns {
            PostgresColumns::Same(names) => {
                names.iter().map(|n| (n.clone(), SmolStr::new(n))).collect()
            }
            PostgresColumns::Mapped(map) => map
                .iter()
                .map(|(c, f)| (c.clone(), SmolStr::new(f)))
                .collect(),
        };
        if columns.is_empty() {
            return Err("option `columns` must name at least one column".into());
        }
        for (i, (c, f)) in columns.iter().enumerate() {
            if c.is_empty() || f.is_empty() {
                return Err("option `columns`: a column or field name is empty".into());
            }
            if columns[..i].iter().any(|(o, _)| o == c) {
                return Err(format!("option `columns`: column {c:?} is given twice"));
            }
        }
        let mut key = Vec::new();
        match options.mode {
            PostgresMode::Insert if !options.key.is_empty() => {
                return Err(format!(
                    "option `key` = {:?} is only used with mode = \"upsert\" (mode is \"insert\")",
                    options.key
                ));
            }
            PostgresMode::Insert => {}
            PostgresMode::Upsert => {
                if options.key.is_empty() {
                    return Err(
                        "option `key` is required with mode = \"upsert\" (the conflict target columns)"
                            .into(),
                    );
                }
                for k in &options.key {
                    let Some(i) = columns.iter().position(|(c, _)| c == k) else {
                        return Err(format!(
                            "option `key`: {k:?} is not one of the `columns` ({})",
                            columns
                                .iter()
                                .map(|(c, _)| c.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    };
                    if key.contains(&i) {
                        return Err(format!("option `key`: {k:?} is given twice"));
                    }
                    key.push(i);
                }
            }
        }
        if options.timeout.is_zero() {
            return Err("option `timeout` must be longer than 0s".into());
        }
        if options.timeout.as_millis() > i32::MAX as u128 {
            return Err(format!(
                "option `timeout` ({}) is too long for PostgreSQL's statement_timeout",
                humantime::format_duration(options.timeout)
            ));
        }
        let quoted_commits = match options.commits_table.split_once('.') {
            Some((s, t)) if !s.is_empty() && !t.is_empty() => {
                format!("{}.{}", quote_ident(s), quote_ident(t))
            }
            None if !options.commits_table.is_empty() => match &schema {
                Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&options.commits_table)),
                None => quote_ident(&options.commits_table),
            },
            _ => {
                return Err(format!(
                    "option `commits_table` = {:?}: expected `table` or `schema.table`",
                    options.commits_table
                ));
            }
        };
        let target = describe(&config);
        Ok(PostgresSink {
            shared: Arc::new(Shared {
                config,
                tls,
                target,
                schema,
                table,
                quoted_table,
                columns,
                key,
                mode: options.mode,
                application_name: options.application_name,
                timeout: options.timeout,
                quoted_commits,
            }),
            batch: options.batch,
            retry: options.retry,
        })
    }

    /// Connects once, checks the table and its columns, and prepares the statement, as each task
    /// does when it starts; the error says what is missing or why the server cannot be reached.
    pub async fn check(&self) -> Result<(), BoxError> {
        let mut writer = PostgresWriter::new(self.shared.clone());
        writer.application_name = self
            .shared
            .application_name
            .clone()
            .unwrap_or_else(|| "topo/check".into());
        writer.connect().await.map(drop)
    }

    /// A sink bolt for one task (not yet connected; it connects in `prepare`).
    pub fn bolt(&self) -> BatchSink<PostgresWriter> {
        BatchSink::new(
            PostgresWriter::new(self.shared.clone()),
            self.batch.clone(),
            self.retry.clone(),
        )
    }
}

/// `host:port/dbname` of a connection config, without credentials.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

/// How a column's values are sent: the array type of its parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wire {
    Int,
    Float,
    Bool,
    Bytea,
    /// Text columns: strings as they are, scalars in text form, lists/maps as JSON.
    Text,
    /// `json`/`jsonb`: every value as JSON.
    Json,
    /// Any other type: the text form, cast by the server.
    Cast,
}

impl Wire {
    fn of(udt: &str) -> Wire {
        match udt {
            "int2" | "int4" | "int8" => Wire::Int,
            "float4" | "float8" => Wire::Float,
            "bool" => Wire::Bool,
            "bytea" => Wire::Bytea,
            "text" | "varchar" | "bpchar" | "name" => Wire::Text,
            "json" | "jsonb" => Wire::Json,
            _ => Wire::Cast,
        }
    }

    fn sql_array(self) -> &'static str {
        match self {
            Wire::Int => "int8[]",
            Wire::Float => "float8[]",
            Wire::Bool => "bool[]",
            Wire::Bytea => "bytea[]",
            Wire::Text | Wire::Json | Wire::Cast => "text[]",
        }
    }
}

/// Text sent as a parameter without copying it into a `String`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PgText(SmolStr);

impl ToSql for PgText {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        <&str as ToSql>::to_sql(&self.0.as_str(), ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        <&str as ToSql>::accepts(ty)
    }

    to_sql_checked!();
}

/// Bytes sent as a `bytea` parameter without copying them.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PgBytes(bytes::Bytes);

impl ToSql for PgBytes {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.put_slice(&self.0);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::BYTEA
    }

    to_sql_checked!();
}

/// One column's pending values (also as kept in a checkpoint, exactly-once).
#[derive(Debug, Serialize, Deserialize)]
enum ColumnBuf {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Bytea(Vec<Option<PgBytes>>),
    Text(Vec<Option<PgText>>),
}

/// A value converted for its column.
enum Cell {
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Bytea(Option<PgBytes>),
    Text(Option<PgText>),
}

impl ColumnBuf {
    fn new(wire: Wire) -> ColumnBuf {
        match wire {
            Wire::Int => ColumnBuf::Int(Vec::new()),
            Wire::Float => ColumnBuf::Float(Vec::new()),
            Wire::Bool => ColumnBuf::Bool(Vec::new()),
            Wire::Bytea => ColumnBuf::Bytea(Vec::new()),
            Wire::Text | Wire::Json | Wire::Cast => ColumnBuf::Text(Vec::new()),
        }
    }

    fn clear(&mut self) {
        match self {
            ColumnBuf::Int(v) => v.clear(),
            ColumnBuf::Float(v) => v.clear(),
            ColumnBuf::Bool(v) => v.clear(),
            ColumnBuf::Bytea(v) => v.clear(),
            ColumnBuf::Text(v) => v.clear(),
        }
    }

    /// Appends `cell` (`row = None`) or replaces row `row` with it. The cell was made for this
    /// column's wire type, so the variants match.
    fn put(&mut self, row: Option<usize>, cell: Cell) {
        fn put<T>(v: &mut Vec<T>, row: Option<usize>, x: T) {
            match row.and_then(|r| v.get_mut(r)) {
                Some(slot) => *slot = x,
                None => v.push(x),
            }
        }
        match (self, cell) {
            (ColumnBuf::Int(v), Cell::Int(x)) => put(v, row, x),
            (ColumnBuf::Float(v), Cell::Float(x)) => put(v, row, x),
            (ColumnBuf::Bool(v), Cell::Bool(x)) => put(v, row, x),
            (ColumnBuf::Bytea(v), Cell::Bytea(x)) => put(v, row, x),
            (ColumnBuf::Text(v), Cell::Text(x)) => put(v, row, x),
            // Cells are made by `convert` from the same `Wire` as the buffer.
            _ => debug_assert!(false, "cell and column buffer of different types"),
        }
    }

    fn slice(&self, rows: std::ops::Range<usize>) -> ColumnSlice<'_> {
        ColumnSlice { buf: self, rows }
    }

    /// Whether this buffer holds the values of a column sent as `wire`.
    fn fits(&self, wire: Wire) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(&ColumnBuf::new(wire))
    }

    /// Row `row`'s value, as a [`Value`] (for the `error` stream).
    fn value(&self, row: usize) -> Value {
        match self {
            ColumnBuf::Int(v) => v
                .get(row)
                .copied()
                .flatten()
                .map_or(Value::Null, Value::Int),
            ColumnBuf::Float(v) => v
                .get(row)
                .copied()
                .flatten()
                .map_or(Value::Null, Value::Float),
            ColumnBuf::Bool(v) => v
                .get(row)
                .copied()
                .flatten()
                .map_or(Value::Null, Value::Bool),
            ColumnBuf::Bytea(v) => match v.get(row) {
                Some(Some(b)) => Value::Bytes(Box::new(b.0.clone())),
                _ => Value::Null,
            },
            ColumnBuf::Text(v) => match v.get(row) {
                Some(Some(t)) => Value::Str(t.0.clone()),
                _ => Value::Null,
            },
        }
    }
}

/// Some rows of a column, sent as one array parameter.
#[derive(Debug)]
struct ColumnSlice<'a> {
    buf: &'a ColumnBuf,
    rows: std::ops::Range<usize>,
}

impl ToSql for ColumnSlice<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        // Every column buffer holds one value per pending row, and `rows` lies within them.
        let r = self.rows.clone();
        match self.buf {
            ColumnBuf::Int(v) => <&[Option<i64>] as ToSql>::to_sql(&&v[r], ty, out),
            ColumnBuf::Float(v) => <&[Option<f64>] as ToSql>::to_sql(&&v[r], ty, out),
            ColumnBuf::Bool(v) => <&[Option<bool>] as ToSql>::to_sql(&&v[r], ty, out),
            ColumnBuf::Bytea(v) => <&[Option<PgBytes>] as ToSql>::to_sql(&&v[r], ty, out),
            ColumnBuf::Text(v) => <&[Option<PgText>] as ToSql>::to_sql(&&v[r], ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(
            *ty,
            Type::INT8_ARRAY
                | Type::FLOAT8_ARRAY
                | Type::BOOL_ARRAY
                | Type::BYTEA_ARRAY
                | Type::TEXT_ARRAY
        )
    }

    to_sql_checked!();
}

/// Converts `v` for a column sent as `wire`; `Err` says why it cannot go there.
fn convert(v: &Value, wire: Wire, column: &str, udt: &str) -> Result<Cell, String> {
    let refuse = || {
        format!(
            "column `{column}` ({udt}) cannot take a {} value: {v}",
            v.type_name()
        )
    };
    if v.is_null() {
        return Ok(match wire {
            Wire::Int => Cell::Int(None),
            Wire::Float => Cell::Float(None),
            Wire::Bool => Cell::Bool(None),
            Wire::Bytea => Cell::Bytea(None),
            Wire::Text | Wire::Json | Wire::Cast => Cell::Text(None),
        });
    }
    Ok(match wire {
        Wire::Int => match v {
            Value::Int(i) => Cell::Int(Some(*i)),
            _ => return Err(refuse()),
        },
        Wire::Float => match v {
            Value::Int(i) => Cell::Float(Some(*i as f64)),
            Value::Float(f) => Cell::Float(Some(*f)),
            _ => return Err(refuse()),
        },
        Wire::Bool => match v {
            Value::Bool(b) => Cell::Bool(Some(*b)),
            _ => return Err(refuse()),
        },
        Wire::Bytea => match v {
            Value::Bytes(b) => Cell::Bytea(Some(PgBytes((**b).clone()))),
            Value::Str(s) => {
                Cell::Bytea(Some(PgBytes(bytes::Bytes::copy_from_slice(s.as_bytes()))))
            }
            _ => return Err(refuse()),
        },
        Wire::Json => Cell::Text(Some(PgText(json(v).map_err(|e| {
            format!("column `{column}` ({udt}): value not encodable as JSON: {e}")
        })?))),
        Wire::Text | Wire::Cast => Cell::Text(Some(PgText(match v {
            Value::Str(s) => s.clone(),
            Value::Int(i) => format_smolstr!("{i}"),
            Value::Float(f) => format_smolstr!("{f}"),
            Value::Bool(b) => format_smolstr!("{b}"),
            Value::List(_) | Value::Map(_) => json(v).map_err(|e| {
                format!("column `{column}` ({udt}): value not encodable as JSON: {e}")
            })?,
            _ => return Err(refuse()),
        }))),
    })
}

fn json(v: &Value) -> Result<SmolStr, serde_json::Error> {
    serde_json::to_string(v).map(SmolStr::from)
}

/// A column as found in the table.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ColumnType {
    wire: Wire,
    udt: String,
}

/// An open connection, its prepared statement, and the types it was prepared for.
struct Conn {
    client: Client,
    insert: Statement,
    types: Vec<ColumnType>,
    /// Exactly-once: records a checkpoint's commit in the commits table.
    marker: Option<Statement>,
}

/// What a failed statement means for the batch.
enum Failure {
    /// The data: write the rows one by one, refuse the bad ones.
    Data(String),
    /// The destination: try again later; `reconnect` if the connection may be unusable.
    Retry { reason: String, reconnect: bool },
}

fn classify(e: &tokio_postgres::Error, target: &str) -> Failure {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let mut reason = format!("postgres: {} (SQLSTATE {code})", db.message());
        if let Some(detail) = db.detail() {
            reason.push_str(": ");
            reason.push_str(detail);
        }
        return match &code[..2.min(code.len())] {
            "21" | "22" | "23" => Failure::Data(reason),
            _ => Failure::Retry {
                reason,
                // Serialization failures, deadlocks, cancelled statements and lock timeouts leave
                // the session usable.
                reconnect: !matches!(code, "40001" | "40P01" | "57014" | "55P03")
                    && !code.starts_with("53"),
            },
        };
    }
    Failure::Retry {
        reason: format!("postgres ({target}): {}", error_text(e)),
        reconnect: true,
    }
}

/// A client-side error with its cause ("error connecting to server: Connection refused").
fn error_text(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    if let Some(source) = e.source() {
        let s = source.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
    }
    text
}

/// The default of `commits_table`.
pub const DEFAULT_COMMITS_TABLE: &str = "topo_sink_commits";

/// The name of the sink's part in a checkpoint (exactly-once): the batches of each checkpoint
/// not yet committed.
const PENDING_PART: &str = "pending_commits";

/// Creates the commits table if it is missing and prepares the statement recording a commit.
async fn prepare_commits(client: &Client, s: &Shared) -> Result<Statement, BoxError> {
    let t = &s.quoted_commits;
    let fail = |what: &str, e: tokio_postgres::Error| -> BoxError {
        format!(
            "postgres ({}): cannot {what} the commits table {t} (exactly-once; create it beforehand \
             or name another with `commits_table`, see `topo components postgres`): {}",
            s.target,
            match classify(&e, &s.target) {
                Failure::Data(r) | Failure::Retry { reason: r, .. } => r,
            }
        )
        .into()
    };
    let exists: bool = client
        .query_one("SELECT to_regclass($1::text) IS NOT NULL", &[t])
        .await
        .map_err(|e| fail("look for", e))?
        .get(0);
    if !exists {
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {t} (topology text NOT NULL, component text NOT NULL, \
             task integer NOT NULL, run text NOT NULL, checkpoint_id bigint NOT NULL, \
             committed_at timestamptz NOT NULL DEFAULT now(), \
             PRIMARY KEY (topology, component, task, run))"
        );
        if let Err(e) = client.batch_execute(&create).await {
            // Tasks opening at the same time race to create it; the loser is told it exists.
            let raced = e
                .as_db_error()
                .is_some_and(|d| matches!(d.code().code(), "42P07" | "23505"));
            if !raced {
                return Err(fail("create", e));
            }
        }
    }
    let sql = format!(
        "INSERT INTO {t} AS c (topology, component, task, run, checkpoint_id) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (topology, component, task, run) DO UPDATE \
         SET checkpoint_id = EXCLUDED.checkpoint_id, committed_at = now() \
         WHERE c.checkpoint_id < EXCLUDED.checkpoint_id"
    );
    client
        .prepare_typed(
            &sql,
            &[Type::TEXT, Type::TEXT, Type::INT4, Type::TEXT, Type::INT8],
        )
        .await
        .map_err(|e| fail("use", e))
}

/// One batch held for its checkpoint (exactly-once): its rows, column by column.
#[derive(Debug, Serialize, Deserialize)]
struct Batch {
    rows: usize,
    cols: Vec<ColumnBuf>,
}

/// The batches of one task between two checkpoints, committed together when the later one
/// completes, with the commit recorded under (`task`, `run`) as `checkpoint`.
#[derive(Debug, Serialize, Deserialize)]
struct Epoch {
    checkpoint: CheckpointId,
    task: u32,
    run: String,
    batches: Vec<Batch>,
}

/// The transactional side of a sink under exactly-once; see the module docs, "Exactly-once".
#[derive(Debug)]
struct TwoPhase {
    topology: String,
    component: String,
    task: u32,
    parallelism: usize,
    /// Random per task start: tells this run's commits from an earlier run's, whose checkpoint
    /// ids may be the same (a run started `--fresh`).
    run: String,
    /// Batches written since the last snapshot.
    open: Vec<Batch>,
    /// Epochs in a checkpoint and not yet committed, oldest first.
    sealed: VecDeque<Epoch>,
    /// The newest checkpoint known complete.
    completed: CheckpointId,
    /// Rows the server refused in the last commits: (reason, record), for the `error` stream.
    refused: Vec<(String, Value)>,
}

/// Runs one statement with the sink's bound: the session's `statement_timeout` bounds it on the
/// server, this here too (a network that stopped answering), with a margin so the server's
/// cleaner error wins when both apply.
async fn within<T>(
    s: &Shared,
    statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Failure> {
    let limit = s.timeout + Duration::from_secs(1);
    match tokio::time::timeout(limit, statement).await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(classify(&e, &s.target)),
        Err(_) => Err(Failure::Retry {
            reason: format!(
                "postgres ({}): no answer within {}",
                s.target,
                humantime::format_duration(limit)
            ),
            reconnect: true,
        }),
    }
}

/// Runs the insert statement on rows `rows` of `batch` inside transaction `tx`.
async fn insert_rows(
    tx: &tokio_postgres::Transaction<'_>,
    s: &Shared,
    insert: &Statement,
    batch: &Batch,
    rows: std::ops::Range<usize>,
) -> Result<(), Failure> {
    let slices: Vec<ColumnSlice<'_>> = batch.cols.iter().map(|c| c.slice(rows.clone())).collect();
    let params: Vec<&(dyn ToSql + Sync)> =
        slices.iter().map(|s| s as &(dyn ToSql + Sync)).collect();
    within(s, tx.execute(insert, &params)).await.map(drop)
}

/// Row `row` of `batch` as the record it came from: field name -> value.
fn batch_record(s: &Shared, batch: &Batch, row: usize) -> Value {
    let map: std::collections::BTreeMap<SmolStr, Value> = s
        .columns
        .iter()
        .zip(&batch.cols)
        .map(|((_, field), col)| (field.clone(), col.value(row)))
        .collect();
    Value::from(map)
}

/// Commits `epoch` in one transaction: first its row in the commits table, then every batch.
/// `Ok(false)`: the commits table shows it committed already (before a crash, or by the run
/// that took the checkpoint), so nothing is written again. Rows the server refuses (a data
/// error) are left out, each with its savepoint, and added to `refused`.
async fn commit_epoch(
    conn: &mut Conn,
    s: &Shared,
    tp: &TwoPhase,
    epoch: &Epoch,
    refused: &mut Vec<(String, Value)>,
) -> Result<bool, Failure> {
    for b in &epoch.batches {
        if b.cols.len() != conn.types.len()
            || b.cols.iter().zip(&conn.types).any(|(c, t)| !c.fits(t.wire))
        {
            return Err(Failure::Retry {
                reason: format!(
                    "postgres ({}): the columns of `{}` changed since checkpoint {} held rows for them; \
                     they cannot be written (restore the column types, or resume without that checkpoint)",
                    s.target, s.table, epoch.checkpoint
                ),
                reconnect: false,
            });
        }
    }
    let Some(marker) = conn.marker.clone() else {
        return Err(Failure::Retry {
            reason: "postgres: the commits table is not prepared".into(),
            reconnect: true,
        });
    };
    let task = epoch.task as i32;
    let id = i64::try_from(epoch.checkpoint).unwrap_or(i64::MAX);
    // First the whole epoch as one statement per batch; after a data error, again with each
    // row under a savepoint, the refused rows left out.
    for row_by_row in [false, true] {
        let mut tx = within(s, conn.client.transaction()).await?;
        let marked = within(
            s,
            tx.execute(
                &marker,
                &[&tp.topology, &tp.component, &task, &epoch.run, &id],
            ),
        )
        .await?;
        if marked == 0 {
            within(s, tx.rollback()).await?;
            return Ok(false);
        }
        let mut failed = None;
        let mut left_out = Vec::new();
        for b in &epoch.batches {
            if !row_by_row {
                match insert_rows(&tx, s, &conn.insert, b, 0..b.rows).await {
                    Ok(()) => continue,
                    Err(Failure::Data(reason)) => {
                        failed = Some(reason);
                        break;
                    }
                    Err(f) => return Err(f),
                }
            }
            for r in 0..b.rows {
                let sp = within(s, tx.savepoint("topo_row")).await?;
                match insert_rows(&sp, s, &conn.insert, b, r..r + 1).await {
                    Ok(()) => within(s, sp.commit()).await?,
                    Err(Failure::Data(reason)) => {
                        within(s, sp.rollback()).await?;
                        left_out.push((reason, batch_record(s, b, r)));
                    }
                    Err(f) => return Err(f),
                }
            }
        }
        if let Some(reason) = failed {
            tracing::debug!(
                table = %s.table,
                checkpoint = epoch.checkpoint,
                %reason,
                "postgres commit refused a row; writing the checkpoint's rows one by one"
            );
            within(s, tx.rollback()).await?;
            continue;
        }
        within(s, tx.commit()).await?;
        refused.append(&mut left_out);
        return Ok(true);
    }
    Ok(true)
}

/// The `postgres` sink's [`BatchWriter`]; see the [module docs](self).
pub struct PostgresWriter {
    shared: Arc<Shared>,
    application_name: String,
    conn: Option<Conn>,
    /// Column types at the first open; the buffers are typed by them.
    types: Vec<ColumnType>,
    cols: Vec<ColumnBuf>,
    rows: usize,
    /// For each encoded input (in order), the row holding it.
    input_row: Vec<u32>,
    /// Upsert: hash of a row's key -> rows with that hash.
    by_key: HashMap<u64, SmallVec<[u32; 2]>, foldhash::fast::RandomState>,
    /// Upsert: the key values of each row, `key.len()` per row.
    keys: Vec<Value>,
    /// Row-by-row mode after a data error: the next row to write, and the refused rows so far.
    row_by_row: Option<usize>,
    refused_rows: Vec<(u32, String)>,
    /// Refused inputs of the last written batch, by input index.
    rejected: Vec<(usize, String)>,
    cells: Vec<Cell>,
    /// Exactly-once: batches held per checkpoint, committed when it completes.
    two_phase: Option<TwoPhase>,
}

impl PostgresWriter {
    fn new(shared: Arc<Shared>) -> PostgresWriter {
        PostgresWriter {
            shared,
            application_name: String::new(),
            conn: None,
            types: Vec::new(),
            cols: Vec::new(),
            rows: 0,
            input_row: Vec::new(),
            by_key: HashMap::default(),
            keys: Vec::new(),
            row_by_row: None,
            refused_rows: Vec::new(),
            rejected: Vec::new(),
            cells: Vec::new(),
            two_phase: None,
        }
    }

    /// Records pending in the batch (after upsert de-duplication: rows).
    pub fn pending_rows(&self) -> usize {
        self.rows
    }

    /// The `application_name` of this writer's sessions (set at open).
    pub fn application_name(&self) -> &str {
        &self.application_name
    }

    /// Connects, reads the table's column types and prepares the statement.
    async fn connect(&self) -> Result<Conn, BoxError> {
        let s = &self.shared;
        let mut config = s.config.clone();
        config.application_name(&self.application_name);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(s.timeout);
        }
        let connecting = async {
            match &s.tls {
                None => config
                    .connect(NoTls)
                    .await
                    .map(|(c, conn)| (c, futures_util::FutureExt::boxed(conn))),
                Some(tls) => {
                    let (c, conn) = config.connect(tls.0.clone()).await?;
                    Ok((c, futures_util::FutureExt::boxed(conn)))
                }
            }
        };
        let (client, connection) = match tokio::time::timeout(s.timeout, connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                let reason = match e.as_db_error() {
                    Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
                    None => error_text(&e),
                };
                return Err(
                    format!("cannot connect to PostgreSQL at {}: {reason}", s.target).into(),
                );
            }
            Err(_) => {
                return Err(format!(
                    "cannot connect to PostgreSQL at {}: no answer within {}",
                    s.target,
                    humantime::format_duration(s.timeout)
                )
                .into());
            }
        };
        let target = s.target.clone();
        tokio::spawn(tracing::Instrument::in_current_span(async move {
            if let Err(e) = connection.await {
                tracing::debug!(target = %target, error = %e, "postgres connection ended");
            }
        }));
        let fail = |e: tokio_postgres::Error| -> BoxError {
            match classify(&e, &s.target) {
                Failure::Data(r) | Failure::Retry { reason: r, .. } => r.into(),
            }
        };
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}",
                s.timeout.as_millis()
            ))
            .await
            .map_err(fail)?;
        let rows = client
            .query(
                "SELECT column_name::text, data_type::text, udt_schema::text, udt_name::text \
                 FROM information_schema.columns \
                 WHERE table_schema::text = COALESCE($1::text, current_schema()::text) \
                 AND table_name::text = $2::text ORDER BY ordinal_position",
                &[&s.schema, &s.table],
            )
            .await
            .map_err(fail)?;
        let where_ = match &s.schema {
            Some(schema) => format!("schema `{schema}`"),
            None => "the current schema".to_string(),
        };
        // `Row::get` panics only on a wrong index or type: the query selects four `text`
        // columns, read below as `&str` by index 0..=3.
        if rows.is_empty() {
            return Err(format!(
                "postgres ({}): table `{}` does not exist in {where_} (or its columns are not visible to this user)",
                s.target, s.table
            )
            .into());
        }
        let mut types = Vec::with_capacity(s.columns.len());
        let mut cast = Vec::with_capacity(s.columns.len());
        for (column, _) in &s.columns {
            let Some(row) = rows.iter().find(|r| r.get::<_, &str>(0) == column) else {
                let have: Vec<&str> = rows.iter().map(|r| r.get::<_, &str>(0)).collect();
                return Err(format!(
                    "postgres ({}): table `{}` has no column `{column}` (its columns: {})",
                    s.target,
                    s.table,
                    have.join(", ")
                )
                .into());
            };
            let data_type: &str = row.get(1);
            let udt_schema: &str = row.get(2);
            let udt: &str = row.get(3);
            if data_type == "ARRAY" {
                return Err(format!(
                    "postgres ({}): column `{column}` of table `{}` has an array type ({udt}), which this sink does not write",
                    s.target, s.table
                )
                .into());
            }
            types.push(ColumnType {
                wire: Wire::of(udt),
                udt: udt.to_string(),
            });
            cast.push(format!("{}.{}", quote_ident(udt_schema), quote_ident(udt)));
        }
        let sql = insert_sql(s, &types, &cast);
        let insert = client.prepare(&sql).await.map_err(|e| -> BoxError {
            format!(
                "postgres ({}): cannot prepare `{sql}`: {}",
                s.target,
                match classify(&e, &s.target) {
                    Failure::Data(r) | Failure::Retry { reason: r, .. } => r,
                }
            )
            .into()
        })?;
        // Planning happens at the first execution: plan the statement now (EXPLAIN, so nothing
        // runs and no trigger fires), so a conflict target without a unique index is reported
        // at open rather than at the first batch.
        let empty: Vec<ColumnBuf> = types.iter().map(|t| ColumnBuf::new(t.wire)).collect();
        let slices: Vec<ColumnSlice<'_>> = empty.iter().map(|c| c.slice(0..0)).collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            slices.iter().map(|s| s as &(dyn ToSql + Sync)).collect();
        client
            .query(&format!("EXPLAIN {sql}"), &params)
            .await
            .map_err(|e| -> BoxError {
                format!(
                    "postgres ({}): cannot plan `{sql}`: {}",
                    s.target,
                    match classify(&e, &s.target) {
                        Failure::Data(r) | Failure::Retry { reason: r, .. } => r,
                    }
                )
                .into()
            })?;
        let marker = match &self.two_phase {
            Some(_) => Some(prepare_commits(&client, s).await?),
            None => None,
        };
        Ok(Conn {
            client,
            insert,
            types,
            marker,
        })
    }

    /// Connects if there is no connection; checks the table still has the types the pending
    /// batch was encoded for.
    async fn connection(&mut self) -> Result<(), WriteError> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let conn = self.connect().await.map_err(WriteError::Retry)?;
            if conn.types != self.types {
                return Err(WriteError::Retry(
                    format!(
                        "postgres ({}): the column types of `{}` changed while the sink ran; restart it",
                        self.shared.target, self.shared.table
                    )
                    .into(),
                ));
            }
            self.conn = Some(conn);
        }
        Ok(())
    }

    /// Runs the prepared statement on rows `rows` of the batch.
    async fn execute(&mut self, rows: std::ops::Range<usize>) -> Result<(), Failure> {
        let Some(conn) = &self.conn else {
            return Err(Failure::Retry {
                reason: "postgres: not connected".into(),
                reconnect: true,
            });
        };
        let slices: Vec<ColumnSlice<'_>> =
            self.cols.iter().map(|c| c.slice(rows.clone())).collect();
        let params: Vec<&(dyn ToSql + Sync)> =
            slices.iter().map(|s| s as &(dyn ToSql + Sync)).collect();
        // The session's statement_timeout bounds the statement on the server; this bounds it
        // here too (a network that stopped answering), with a margin so the server's cleaner
        // error wins when both apply.
        let limit = self.shared.timeout + Duration::from_secs(1);
        match tokio::time::timeout(limit, conn.client.execute(&conn.insert, &params)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(classify(&e, &self.shared.target)),
            Err(_) => Err(Failure::Retry {
                reason: format!(
                    "postgres ({}): no answer within {}",
                    self.shared.target,
                    humantime::format_duration(limit)
                ),
                reconnect: true,
            }),
        }
    }

    /// Exactly-once: commits, oldest first, every epoch whose checkpoint completed.
    async fn commit_due(&mut self) -> Result<(), WriteError> {
        loop {
            let due = self.two_phase.as_ref().is_some_and(|tp| {
                tp.sealed
                    .front()
                    .is_some_and(|e| e.checkpoint <= tp.completed)
            });
            if !due {
                return Ok(());
            }
            self.connection().await?;
            let (Some(conn), Some(tp)) = (self.conn.as_mut(), self.two_phase.as_ref()) else {
                return Ok(());
            };
            let Some(epoch) = tp.sealed.front() else {
                return Ok(());
            };
            let mut refused = Vec::new();
            match commit_epoch(conn, &self.shared, tp, epoch, &mut refused).await {
                Ok(written) => {
                    if let Some(tp) = self.two_phase.as_mut() {
                        if let Some(e) = tp.sealed.pop_front() {
                            let rows: usize = e.batches.iter().map(|b| b.rows).sum();
                            if written {
                                tracing::debug!(
                                    checkpoint = e.checkpoint,
                                    rows,
                                    "postgres: committed"
                                );
                            } else {
                                tracing::info!(
                                    table = %self.shared.table,
                                    checkpoint = e.checkpoint,
                                    rows,
                                    "postgres: the rows of this checkpoint were committed before; not written again"
                                );
                            }
                        }
                        tp.refused.append(&mut refused);
                    }
                }
                Err(Failure::Retry { reason, reconnect }) => {
                    return Err(self.retry(reason, reconnect));
                }
                Err(Failure::Data(reason)) => return Err(WriteError::Retry(reason.into())),
            }
        }
    }

    fn retry(&mut self, reason: String, reconnect: bool) -> WriteError {
        if reconnect {
            self.conn = None;
        }
        WriteError::Retry(reason.into())
    }

    /// Writes rows `from..` one per statement; refused rows are remembered.
    async fn write_rows(&mut self, from: usize) -> Result<(), WriteError> {
        for r in from..self.rows {
            match self.execute(r..r + 1).await {
                Ok(()) => {}
                Err(Failure::Data(reason)) => self.refused_rows.push((r as u32, reason)),
                Err(Failure::Retry { reason, reconnect }) => {
                    self.row_by_row = Some(r);
                    return Err(self.retry(reason, reconnect));
                }
            }
        }
        for (input, &row) in self.input_row.iter().enumerate() {
            if let Some((_, reason)) = self.refused_rows.iter().find(|(r, _)| *r == row) {
                self.rejected.push((input, reason.clone()));
            }
        }
        self.clear();
        Ok(())
    }

    fn clear(&mut self) {
        for c in &mut self.cols {
            c.clear();
        }
        self.rows = 0;
        self.input_row.clear();
        self.by_key.clear();
        self.keys.clear();
        self.row_by_row = None;
        self.refused_rows.clear();
    }

    /// The row already pending with this record's key, if any (upsert).
    fn find_key(&self, input: &Tuple, hash: u64) -> Result<Option<u32>, String> {
        let Some(candidates) = self.by_key.get(&hash) else {
            return Ok(None);
        };
        let k = self.shared.key.len();
        for &row in candidates {
            let stored = &self.keys[row as usize * k..(row as usize + 1) * k];
            let mut same = true;
            for (j, &c) in self.shared.key.iter().enumerate() {
                if field(input, &self.shared.columns[c].1)? != &stored[j] {
                    same = false;
                    break;
                }
            }
            if same {
                return Ok(Some(row));
            }
        }
        Ok(None)
    }
}

fn field<'t>(input: &'t Tuple, name: &str) -> Result<&'t Value, String> {
    input
        .field(name)
        .map_err(|_| format!("the record has no field `{name}`"))
}

/// `INSERT INTO t (c, ..) SELECT * FROM UNNEST($1::wire[]::type[], ..) [ON CONFLICT ..]`.
fn insert_sql(s: &Shared, types: &[ColumnType], cast: &[String]) -> String {
    let cols: Vec<String> = s.columns.iter().map(|(c, _)| quote_ident(c)).collect();
    let params: Vec<String> = types
        .iter()
        .zip(cast)
        .enumerate()
        .map(|(i, (t, cast))| format!("${}::{}::{cast}[]", i + 1, t.wire.sql_array()))
        .collect();
    let mut sql = format!(
        "INSERT INTO {} ({}) SELECT * FROM UNNEST({})",
        s.quoted_table,
        cols.join(", "),
        params.join(", ")
    );
    if s.mode == PostgresMode::Upsert {
        let key: Vec<&str> = s.key.iter().map(|&i| cols[i].as_str()).collect();
        let set: Vec<String> = cols
            .iter()
            .enumerate()
            .filter(|(i, _)| !s.key.contains(i))
            .map(|(_, c)| format!("{c} = EXCLUDED.{c}"))
            .collect();
        sql.push_str(&format!(" ON CONFLICT ({}) DO ", key.join(", ")));
        if set.is_empty() {
            sql.push_str("NOTHING");
        } else {
            sql.push_str("UPDATE SET ");
            sql.push_str(&set.join(", "));
        }
    }
    sql
}

impl BatchWriter for PostgresWriter {
    async fn open(&mut self, ctx: &TaskContext) -> Result<(), BoxError> {
        self.application_name = match &self.shared.application_name {
            Some(n) => n.clone(),
            None => format!("topo/{}/{}", ctx.component_id(), ctx.task_index()),
        };
        if exactly_once(ctx) {
            self.two_phase = Some(TwoPhase {
                topology: ctx.topology().to_string(),
                component: ctx.component_id().to_string(),
                task: ctx.task_index() as u32,
                parallelism: ctx.parallelism().max(1),
                run: format!("{:016x}", fastrand::u64(..)),
                open: Vec::new(),
                sealed: VecDeque::new(),
                completed: 0,
                refused: Vec::new(),
            });
        }
        let conn = self.connect().await?;
        self.types = conn.types.clone();
        self.cols = self.types.iter().map(|t| ColumnBuf::new(t.wire)).collect();
        self.conn = Some(conn);
        Ok(())
    }

    fn encode(&mut self, input: &Tuple) -> Result<usize, String> {
        let s = &self.shared;
        self.cells.clear();
        let mut size = 0;
        for ((column, name), t) in s.columns.iter().zip(&self.types) {
            let v = field(input, name)?;
            let cell = convert(v, t.wire, column, &t.udt)?;
            size += match &cell {
                Cell::Int(_) | Cell::Float(_) => 8,
                Cell::Bool(_) => 1,
                Cell::Bytea(b) => b.as_ref().map_or(0, |b| b.0.len()),
                Cell::Text(t) => t.as_ref().map_or(0, |t| t.0.len()),
            } + 4;
            self.cells.push(cell);
        }
        let mut row = None;
        if !s.key.is_empty() {
            let mut hash = 0x70_6f_73_74_67_72_65_73u64;
            for &c in &s.key {
                hash = field(input, &s.columns[c].1)?.stable_hash(hash);
            }
            row = self.find_key(input, hash)?;
            if row.is_none() {
                let r = self.rows as u32;
                self.by_key.entry(hash).or_default().push(r);
                for &c in &s.key {
                    self.keys.push(field(input, &s.columns[c].1)?.clone());
                }
            }
        }
        let target = row.map(|r| r as usize);
        for (buf, cell) in self.cols.iter_mut().zip(self.cells.drain(..)) {
            buf.put(target, cell);
        }
        match row {
            Some(r) => self.input_row.push(r),
            None => {
                self.input_row.push(self.rows as u32);
                self.rows += 1;
            }
        }
        Ok(size)
    }

    async fn write(&mut self) -> Result<(), WriteError> {
        if self.two_phase.is_some() {
            // Exactly-once: the batch waits for its checkpoint. First the epochs whose
            // checkpoint completed and whose commit failed: while they cannot be committed,
            // this batch is not taken (the sink retries it), so input slows instead of piling up.
            self.commit_due().await?;
            if self.rows > 0 {
                let fresh = self.types.iter().map(|t| ColumnBuf::new(t.wire)).collect();
                let cols = std::mem::replace(&mut self.cols, fresh);
                if let Some(tp) = self.two_phase.as_mut() {
                    tp.open.push(Batch {
                        rows: self.rows,
                        cols,
                    });
                }
            }
            self.clear();
            return Ok(());
        }
        if self.rows == 0 {
            self.clear();
            return Ok(());
        }
        self.connection().await?;
        if let Some(from) = self.row_by_row {
            return self.write_rows(from).await;
        }
        match self.execute(0..self.rows).await {
            Ok(()) => {
                self.clear();
                Ok(())
            }
            Err(Failure::Data(reason)) => {
                tracing::debug!(
                    table = %self.shared.table,
                    rows = self.rows,
                    %reason,
                    "postgres batch refused; writing its rows one by one"
                );
                self.row_by_row = Some(0);
                self.write_rows(0).await
            }
            Err(Failure::Retry { reason, reconnect }) => Err(self.retry(reason, reconnect)),
        }
    }

    fn discard(&mut self) {
        self.clear();
    }

    fn take_rejected(&mut self, into: &mut Vec<(usize, String)>) {
        into.append(&mut self.rejected);
    }

    async fn idle(&mut self) -> Result<(), BoxError> {
        // Commits a restored checkpoint's rows, and retries a commit that failed.
        self.commit_due().await.map_err(WriteError::into_error)
    }

    async fn close(&mut self) {
        self.conn = None;
    }

    fn snapshot(&mut self, snap: &mut Snapshot) -> Result<(), BoxError> {
        let Some(tp) = self.two_phase.as_mut() else {
            return Ok(());
        };
        if !tp.open.is_empty() {
            tp.sealed.push_back(Epoch {
                checkpoint: snap.checkpoint_id(),
                task: tp.task,
                run: tp.run.clone(),
                batches: std::mem::take(&mut tp.open),
            });
        }
        snap.put(PENDING_PART, &(u64::from(tp.task), &tp.sealed));
        Ok(())
    }

    fn restore(&mut self, from: &Restore) -> Result<(), BoxError> {
        let Some(tp) = self.two_phase.as_mut() else {
            return Ok(());
        };
        // With another parallelism, this task takes the epochs of the old tasks it owns (old
        // index modulo the parallelism); each keeps its own (task, run) in the commits table.
        for (task, epochs) in from.get_all::<(u64, Vec<Epoch>)>(PENDING_PART)? {
            if task % tp.parallelism as u64 == u64::from(tp.task) {
                tp.sealed.extend(epochs);
            }
        }
        tp.sealed.make_contiguous().sort_by_key(|e| e.checkpoint);
        // The checkpoint resumed from is complete: its rows are committed at the first idle
        // moment (or before the first batch).
        tp.completed = tp.completed.max(from.checkpoint_id());
        Ok(())
    }

    async fn checkpoint_complete(&mut self, id: CheckpointId) -> Result<(), BoxError> {
        let Some(tp) = self.two_phase.as_mut() else {
            return Ok(());
        };
        tp.completed = tp.completed.max(id);
        // A failure is logged; the rows stay and are committed at the next write or idle moment.
        self.commit_due().await.map_err(WriteError::into_error)
    }

    fn take_refused(&mut self, into: &mut Vec<(String, Value)>) {
        if let Some(tp) = self.two_phase.as_mut() {
            into.append(&mut tp.refused);
        }
    }
}

/// The `postgres` kind, for the registry.
pub fn kinds() -> Vec<Kind> {
    vec![
        Kind::bolt(
            "postgres",
            "writes batches to a PostgreSQL table (insert or upsert, one transaction each), acks after the commit; bad rows to the `error` stream (reason, record)",
            PostgresSink::bolt,
        )
        .with_example(EXAMPLE),
    ]
}

/// Printed by `topo components postgres`; built by the test of every kind's example.
const EXAMPLE: &str = r#"
[bolts.store]
kind = "postgres"
url = "postgres://postgres@127.0.0.1:5432/test"
# sslmode = "verify-full"   # disable, prefer (the default), require, verify-ca, verify-full
# tls = { ca = "rds-ca.pem" }   # the server's CA; cert, key for a client certificate
table = "word_counts"     # must exist: CREATE TABLE word_counts (word text PRIMARY KEY, count bigint)
columns = ["word", "count"]
mode = "upsert"           # or "insert"
key = ["word"]
batch = { max_records = 500, interval = "1s" }      # one transaction per batch, acked after commit
retry = { attempts = 5, backoff = "100ms", max_backoff = "10s" }
inputs = [{ from = "counts", grouping = { fields = ["word"] } }]
"#;

impl FromOptions for PostgresSink {
    type Options = PostgresOptions;
    fn from_options(options: PostgresOptions) -> Result<Self, String> {
        PostgresSink::new(options)
    }
}

/// `url`, `table`, `columns` have serde defaults (so a missing one is reported by the component's own check, with the
/// expected form), but are required.
fn postgres_required(schema: &mut schemars::Schema) {
    topo_dsl::schema::require(schema, &["url", "table", "columns"]);
}
