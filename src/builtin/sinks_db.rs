//! The database sinks: `postgres` and `redis`.

use topo_dsl::registry::{OptionDoc, Registry};
#[cfg(feature = "postgres")]
use topo_spouts::{PostgresOptions, PostgresSink};
#[cfg(feature = "redis")]
use topo_spouts::{RedisOptions, RedisSink};

use super::{Checked, TryFromOptions};

#[cfg(feature = "postgres")]
impl TryFromOptions<PostgresOptions> for PostgresSink {
    fn try_from_options(options: PostgresOptions) -> Result<Self, String> {
        PostgresSink::new(options)
    }
}

#[cfg(feature = "redis")]
impl TryFromOptions<RedisOptions> for RedisSink {
    fn try_from_options(options: RedisOptions) -> Result<Self, String> {
        RedisSink::new(options)
    }
}

/// The options every batching sink shares.
fn batch_and_retry_docs() -> [OptionDoc; 2] {
    [
        OptionDoc::new(
            "batch",
            "{ max_records, max_bytes, interval }",
            "{ 500, 1048576, \"1s\" }",
            "write when this many records, this many encoded bytes, or the oldest this old",
        ),
        OptionDoc::new(
            "retry",
            "{ attempts, backoff, max_backoff }",
            "{ 5, \"100ms\", \"10s\" }",
            "tries of a failed write (back-off doubling up to max_backoff) before its inputs are failed for replay",
        ),
    ]
}

/// Registers `postgres` and `redis`.
pub(super) fn register(r: &mut Registry) {
    #[cfg(feature = "postgres")]
    let mut docs = vec![
        OptionDoc::new(
            "url",
            "string",
            "",
            "postgres:// URL or libpq key=value string (required)",
        ),
        OptionDoc::new(
            "table",
            "string",
            "",
            "the table, optionally schema.table (required)",
        ),
        OptionDoc::new(
            "columns",
            "list of strings | { column = \"field\" }",
            "",
            "columns written, each from the field of the same name or the field given (required)",
        ),
        OptionDoc::new(
            "mode",
            "insert | upsert",
            "insert",
            "plain INSERT, or INSERT ... ON CONFLICT (key) DO UPDATE",
        ),
        OptionDoc::new(
            "key",
            "list of strings",
            "[]",
            "upsert: the conflict target columns (last record per key in a batch wins)",
        ),
        OptionDoc::new(
            "application_name",
            "string",
            "\"topo/<component>/<task>\"",
            "the sessions' application_name",
        ),
        OptionDoc::new(
            "timeout",
            "duration",
            "\"10s\"",
            "statement_timeout, and the bound on connecting and on each write",
        ),
    ];
    #[cfg(feature = "postgres")]
    docs.extend(batch_and_retry_docs());
    #[cfg(feature = "postgres")]
    r.register_bolt::<Checked<PostgresSink, PostgresOptions>, _>(
        "postgres",
        "writes batches to a PostgreSQL table (insert or upsert, one transaction each), acks after the commit; bad rows to the `error` stream (reason, record)",
        docs,
        |c: &Checked<PostgresSink, PostgresOptions>| c.0.bolt(),
    );
    #[cfg(feature = "redis")]
    let mut docs = vec![
        OptionDoc::new(
            "url",
            "string",
            "",
            "redis://[user:password@]host:port/db (required)",
        ),
        OptionDoc::new(
            "command",
            "zadd | zincrby | hset | hincrby | set | incrby | rpush",
            "zadd",
            "the command per record (rpush: the record as JSON)",
        ),
        OptionDoc::new(
            "key",
            "key template",
            "",
            "the key; {field} is replaced by that field's value (required)",
        ),
        OptionDoc::new(
            "member",
            "string",
            "",
            "zadd/zincrby: the member field; hset/hincrby: the hash-field field",
        ),
        OptionDoc::new(
            "value",
            "string",
            "",
            "the score / increment / value field (all but rpush)",
        ),
        OptionDoc::new(
            "ttl",
            "duration",
            "",
            "PEXPIRE every key written with this time to live",
        ),
        OptionDoc::new(
            "timeout",
            "duration",
            "\"5s\"",
            "bound on connecting and on each reply",
        ),
    ];
    #[cfg(feature = "redis")]
    docs.extend(batch_and_retry_docs());
    #[cfg(feature = "redis")]
    r.register_bolt::<Checked<RedisSink, RedisOptions>, _>(
        "redis",
        "applies one Redis command per record (sorted sets, hashes, strings, lists) in MULTI/EXEC batches, acks after the reply; refused commands to the `error` stream",
        docs,
        |c: &Checked<RedisSink, RedisOptions>| c.0.bolt(),
    );
}
