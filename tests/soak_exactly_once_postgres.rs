//! Exactly-once rows in PostgreSQL across SIGKILLs: a `file` spout over a file of N distinct
//! lines feeds the `postgres` sink (`mode = "insert"`, no unique key, so a row written twice
//! would stay twice) with `guarantee = "exactly_once"`. Each checkpoint's rows are committed
//! with the checkpoint's id in the commits table, in one transaction, when it completes. The run
//! is killed with SIGKILL at seeded points of the rows committed (each time only after it
//! completed a checkpoint of its own), started again on the same state directory with another
//! sink parallelism (2, 3, 1, ...), and a last run reads to the end (`--until-idle`). The table,
//! read by the test's own connection, must hold every line exactly once.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`). Seed: printed;
//! `TOPO_SOAK_SEED=<seed> cargo test -p topo --test soak_exactly_once_postgres` reproduces the
//! kill points.

use std::path::Path;
use std::time::Duration;

use tokio_postgres::{Client, NoTls};
use topo_test_support::soak::{Soak, Tally, write_lines};

/// Distinct lines in the input file.
const N: usize = 50_000;
/// SIGKILLs during the run.
const KILLS: usize = 12;
/// The longest the whole soak may take.
const BUDGET: Duration = Duration::from_secs(90);
const URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn topology(dir: &Path, table: &str) -> String {
    format!(
        r#"
name = "soak-eo-postgres"

[config]
guarantee = "exactly_once"
checkpoint_interval = "50ms"

[spouts.lines]
kind = "file"
paths = ["{dir}/in.txt"]
poll_interval = "10ms"

[bolts.out]
kind = "postgres"
url = "{URL}"
table = "{table}"
columns = ["line"]
commits_table = "{table}_commits"
parallelism = 2
batch = {{ max_records = 300, interval = "10ms" }}
inputs = [{{ from = "lines" }}]
"#,
        dir = dir.display()
    )
}

/// The test's own connection, on a runtime of its own.
struct Db {
    rt: tokio::runtime::Runtime,
    client: Client,
}

impl Db {
    fn connect() -> Db {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let client = rt.block_on(async {
            match tokio::time::timeout(Duration::from_secs(10), tokio_postgres::connect(URL, NoTls))
                .await
            {
                Ok(Ok((client, connection))) => {
                    tokio::spawn(connection);
                    client
                }
                Ok(Err(e)) => {
                    panic!("PostgreSQL at 127.0.0.1:5432 (database `test`) is not reachable: {e}")
                }
                Err(_) => panic!("PostgreSQL at 127.0.0.1:5432 does not answer"),
            }
        });
        Db { rt, client }
    }

    fn exec(&self, sql: &str) {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    }

    fn lines(&self, table: &str) -> Vec<String> {
        self.rt
            .block_on(self.client.query(&format!("SELECT line FROM {table}"), &[]))
            .unwrap_or_else(|e| panic!("reading {table}: {e:?}"))
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    fn count(&self, table: &str) -> usize {
        let n: i64 = self
            .rt
            .block_on(
                self.client
                    .query_one(&format!("SELECT count(*) FROM {table}"), &[]),
            )
            .unwrap_or_else(|e| panic!("counting {table}: {e:?}"))
            .get(0);
        n as usize
    }
}

#[test]
fn the_table_holds_each_record_exactly_once_after_kills_and_rescaling() {
    let test = "soak_exactly_once_postgres";
    let db = Db::connect();
    let table = format!("topo_soak_eo_{}", std::process::id());
    db.exec(&format!(
        "DROP TABLE IF EXISTS {table}, {table}_commits; CREATE TABLE {table} (line text NOT NULL)"
    ));
    let mut soak = Soak::new(
        test,
        Path::new(env!("CARGO_BIN_EXE_topo")),
        BUDGET,
        KILLS,
        N,
        |dir| topology(dir, &table),
    )
    .env(
        "RUST_LOG",
        &std::env::var("TOPO_SOAK_LOG").unwrap_or_else(|_| "warn".into()),
    );
    let input: Vec<String> = (0..N).map(|i| format!("record-{i:06}")).collect();
    write_lines(&soak.dir().join("in.txt"), &input);
    println!("kill points (rows committed): {:?}", soak.kill_points());
    let parallelism = ["2", "3", "1"];
    let set = |run: usize| format!("bolts.out.parallelism={}", parallelism[run % 3]);
    let run = soak.kill_after_own_checkpoints(
        "soak-eo-postgres",
        |run| vec!["--set".into(), set(run)],
        || db.count(&table),
        |_, _, _| {},
    );
    soak.run_to_end(&[
        "--until-idle",
        "--set",
        "spouts.lines.until_eof=true",
        "--set",
        &set(run),
    ]);
    let tally = Tally::of(&input, db.lines(&table));
    let runs: usize = {
        let n: i64 = db
            .rt
            .block_on(db.client.query_one(
                &format!("SELECT count(DISTINCT run) FROM {table}_commits"),
                &[],
            ))
            .expect("reading the commits table")
            .get(0);
        n as usize
    };
    soak.summary(
        format_args!("exactly-once postgres sink, {runs} runs committed"),
        &tally,
        "none allowed",
        0,
    );
    let context = soak.context("exactly-once postgres sink");
    db.exec(&format!("DROP TABLE IF EXISTS {table}, {table}_commits"));
    assert_eq!(soak.killed(), KILLS, "{context}");
    tally.assert_nothing_lost(&context);
    tally.assert_duplicates_within(0, "(exactly once)", &context);
    assert!(
        tally.unexpected.is_empty(),
        "{:?}\n{context}",
        tally.unexpected
    );
}
