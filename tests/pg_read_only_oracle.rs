//! The server as the test oracle: every statement of the SQL test corpus that jitgate
//! classifies `read` runs against a real PostgreSQL 15 inside `BEGIN READ ONLY … ROLLBACK`
//! on a fresh connection whose every transaction is read-only
//! (`default_transaction_read_only = on`, so a `COMMIT` in the text does not escape it). A SQLSTATE 25006 (read-only transaction) means
//! the classifier called a write `read`: the test fails naming the statement. Other errors
//! (a column the fixtures lack) are listed and must stay few.

mod support;

use std::collections::HashSet;

use jitgate::policy::Class;
use jitgate::policy::sql::{SqlOptions, analyze_sql};
use support::PgCluster;
use support::clients::{pg_connect, sqlstate};

include!("../src/policy/sql/tests/corpus.rs");

/// Tables, a sequence, a schema and the corpus's trusted functions, so that most reads run
/// to the end instead of failing on a missing name.
const FIXTURES: &str = r#"
CREATE TABLE t (id int PRIMARY KEY, a int, b int, c int, v text, x int, y int, z text,
                note text, name text, j jsonb, k text, pid int, state text, t text, q text,
                u int, droplet int, update_count int, insert_ts timestamptz,
                "a;b" int, "nextval" int, "lo_import" int);
INSERT INTO t (id, a, b, x, y, note, name, j) VALUES (1, 1, 2, 3, 4, 'n', 'm', '{"k": 1}');
CREATE TABLE accounts (id int PRIMARY KEY, balance int, owner text);
INSERT INTO accounts VALUES (1, 100, 'alice'), (2, 200, 'bob');
CREATE TABLE u (id int, a int, x int);
CREATE TABLE v (id int);
CREATE TABLE a (id int, a int, x int);
CREATE TABLE b (a_id int, a int);
CREATE TABLE c (id int);
CREATE TABLE t1 (id int); CREATE TABLE t2 (id int); CREATE TABLE t3 (k int);
CREATE TABLE o (id int);
CREATE TABLE src (id int);
CREATE TABLE secrets (id int); CREATE TABLE secret (id int);
CREATE TABLE inner_t (x int); CREATE TABLE outer_t (x int);
CREATE TABLE deleted_rows (id int);
CREATE TABLE audit_log (update_count int, insert_ts timestamptz);
CREATE TABLE drops (droplet int);
CREATE TABLE "Weird Table" ("DELETE" int);
CREATE TABLE "MixedCase" (id int);
CREATE TABLE pgbench_accounts (aid int, bid int, abalance int, filler char(84));
CREATE TABLE pgbench_branches (bid int, bbalance int, filler char(88));
CREATE TABLE pgbench_tellers (tid int, bid int, tbalance int, filler char(84));
CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, mtime timestamp);
CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
CREATE SEQUENCE s; CREATE SEQUENCE seq; SELECT nextval('s'), nextval('seq');
CREATE FUNCTION my_trusted_fn(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1';
CREATE FUNCTION f() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 1';
CREATE SCHEMA app; CREATE FUNCTION app.safe_fn(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1';
"#;

/// Run on every connection before the statement: the session state some reads refer to
/// (a sequence value for `currval`, a savepoint, a cursor, a prepared statement), then
/// every transaction read-only, then the transaction the statement runs in.
const SESSION_SETUP: &str = "SELECT nextval('s'); \
    SET default_transaction_read_only = on; \
    BEGIN READ ONLY; SAVEPOINT s; DECLARE c CURSOR FOR SELECT 1; PREPARE p AS SELECT 1";

/// Runs one text as a client would: `COPY … TO STDOUT` through the copy protocol, anything
/// else as one simple Query.
async fn run(client: &tokio_postgres::Client, text: &str) -> Result<(), tokio_postgres::Error> {
    if text.trim_start().to_ascii_uppercase().starts_with("COPY") {
        let stream = client.copy_out(text).await?;
        let mut stream = std::pin::pin!(stream);
        while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
            chunk?;
        }
        return Ok(());
    }
    client.simple_query(text).await.map(|_| ())
}

/// The corpus's reads, as jitgate classifies them (with the trusted functions the unit tests
/// use).
fn corpus_reads() -> Vec<String> {
    let trusted: HashSet<String> = ["my_trusted_fn".to_string(), "app.safe_fn".to_string()].into();
    let opts = SqlOptions {
        trusted_functions: &trusted,
    };
    all_cases()
        .into_iter()
        .map(|(_, text)| text)
        .filter(|text| analyze_sql(text, &opts).classification.class == Class::Read)
        .collect()
}

#[tokio::test]
async fn every_read_of_the_corpus_runs_in_a_read_only_transaction() {
    let cluster = PgCluster::shared();
    let db = cluster.fresh_database("postgres");
    cluster.superuser_psql_db(&db, FIXTURES);
    let conninfo = format!(
        "{} options='-c statement_timeout=10s'",
        cluster.conninfo("postgres", &db)
    );
    let reads = corpus_reads();
    assert!(
        reads.len() >= 200,
        "only {} reads in the corpus",
        reads.len()
    );

    let mut writes = Vec::new();
    let mut other = Vec::new();
    for text in &reads {
        let (client, connection) = pg_connect(&conninfo)
            .await
            .unwrap_or_else(|e| panic!("connect to the test cluster: {e}"));
        client
            .batch_execute(SESSION_SETUP)
            .await
            .unwrap_or_else(|e| panic!("session setup: {e}"));
        if let Err(e) = run(&client, text).await {
            let code = sqlstate(&e).unwrap_or_else(|| "(no SQLSTATE)".into());
            let line = format!(
                "{text:?}: {code} {}",
                e.as_db_error()
                    .map_or(String::new(), |d| d.message().to_string())
            );
            if code == "25006" {
                writes.push(line);
            } else {
                other.push(line);
            }
        }
        // Whatever state the text left, nothing of it is kept.
        let _ = client.batch_execute("ROLLBACK").await;
        drop(client);
        let _ = connection.await;
    }
    eprintln!(
        "{} reads ran; {} failed for other reasons:\n{}",
        reads.len(),
        other.len(),
        other.join("\n")
    );
    assert!(
        writes.is_empty(),
        "jitgate classified these `read`, PostgreSQL refused them in a read-only transaction \
         (25006):\n{}",
        writes.join("\n")
    );
    assert!(
        other.len() <= reads.len() / 10,
        "too many reads fail for reasons other than read-only ({}): add fixtures\n{}",
        other.len(),
        other.join("\n")
    );
}
