//! Tests for SQL classification: the basic table of statement kinds here; evasion attempts,
//! look-alikes, session statements, table lists and hostile inputs in `evasion.rs`; the
//! queries psql and pgbench really send in `psql.rs`; the catalogues' and shapes' own
//! tests in `catalog.rs` and `shape.rs`.

use std::collections::HashSet;

use super::{SqlAnalysis, SqlOptions, analyze_sql};
use crate::policy::Class;
use crate::policy::test_support::{A, C, D, P, R, U, W, assert_classes};

mod catalog;
mod evasion;
mod psql;
mod server_grammar;
mod shape;

/// The analysis with `my_trusted_fn` and `app.safe_fn` trusted.
fn classify(text: &str) -> SqlAnalysis {
    let trusted: HashSet<String> = ["my_trusted_fn".to_string(), "app.safe_fn".to_string()].into();
    analyze_sql(
        text,
        &SqlOptions {
            trusted_functions: &trusted,
        },
    )
}

/// Fails listing every case whose class is not the one wanted.
fn check(cases: &[(&str, Class)]) {
    assert_classes(cases.iter().copied(), |text| classify(text).classification);
}

#[rustfmt::skip]
const BASIC: &[(&str, Class)] = &[
    // reads
    ("SELECT 1", R),
    ("select * from accounts", R),
    ("SELECT a, b FROM t WHERE a = 1 ORDER BY b DESC LIMIT 10 OFFSET 5", R),
    ("SELECT count(*) FROM t GROUP BY x HAVING count(*) > 1", R),
    ("SELECT * FROM a JOIN b ON a.id = b.a_id LEFT JOIN c USING (id)", R),
    ("SELECT * FROM t1 NATURAL JOIN t2 CROSS JOIN t3", R),
    ("SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b", R),
    ("VALUES (1, 'a'), (2, 'b')", R),
    ("SELECT 1 UNION SELECT 2 EXCEPT SELECT 3 INTERSECT SELECT 4", R),
    ("SELECT 1 UNION TABLE t", R),
    ("WITH x AS (SELECT 1) SELECT * FROM x", R),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 5) SELECT * FROM r", R),
    ("SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE EXISTS (SELECT 1 FROM v))", R),
    ("SELECT * FROM t WHERE x = ANY($1) AND y = ANY (ARRAY[1,2])", R),
    ("SELECT $1::int, $2::text", R),
    ("SELECT * FROM t TABLESAMPLE SYSTEM (10)", R),
    ("SELECT * FROM ONLY t", R),
    ("SELECT * FROM generate_series(1, 10) AS g(i)", R),
    ("SELECT * FROM unnest(ARRAY[1,2,3]) WITH ORDINALITY AS u(x, n)", R),
    ("SELECT x FROM t, LATERAL (SELECT 1) s", R),
    ("SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t", R),
    ("SELECT count(*) FILTER (WHERE a > 1) FROM t", R),
    ("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY a) FROM t", R),
    ("SELECT x FROM t GROUP BY GROUPING SETS ((a), (b), ())", R),
    ("SELECT CASE WHEN a THEN 1 WHEN b THEN 2 ELSE 3 END FROM t", R),
    ("SELECT '{1,2}'::int[], a[1], a[1:2], (a).b, (t.*)::text FROM t", R),
    ("SELECT interval '1 day', date '2020-01-01', timestamp with time zone '2020-01-01'", R),
    ("SELECT current_user, session_user, current_date, current_timestamp, localtime", R),
    ("SELECT EXTRACT(year FROM now()), SUBSTRING('abc' FROM 2), TRIM(' x '), POSITION('a' IN 'b')", R),
    ("SELECT OVERLAY('abc' PLACING 'x' FROM 2), CAST(1 AS text), 1::numeric(10,2)", R),
    ("SELECT a @> b, a <@ b, a && b, a ~* 'x', a !~ 'y', j -> 'k', j ->> 'k', j #> '{a}', j ? 'k'", R),
    ("SELECT a ~~ 'x%', a !~~ 'y%', a ILIKE 'z' ESCAPE '!', a SIMILAR TO 'q'", R),
    ("SELECT x IS DISTINCT FROM y, x IS NOT NULL, x IS TRUE, x BETWEEN 1 AND 2 FROM t", R),
    ("SELECT ROW(1, 2), ARRAY(SELECT 1), EXISTS(SELECT 1)", R),
    ("SELECT coalesce(a, b), nullif(a, 0), greatest(1, 2), least(3, 4) FROM t", R),
    ("SELECT json_build_object('a', 1), jsonb_agg(x), to_jsonb(t) FROM t", R),
    ("SELECT md5(x), sha256(x::bytea), encode(x, 'hex'), gen_random_uuid() FROM t", R),
    ("SELECT currval('s'), lastval()", R),
    ("SELECT pg_catalog.lower('X'), pg_catalog.now()", R),
    ("SELECT random(), pg_sleep(0.1)", R),
    ("SELECT my_trusted_fn(1)", R),
    ("SELECT app.safe_fn(1)", R),
    ("SELECT public.my_trusted_fn(1)", U),
    ("", R),
    ("   ", R),
    (";;", R),
    ("-- just a comment", R),
    ("/* only a comment */ ;", R),
    // writes
    ("INSERT INTO t VALUES (1)", W),
    ("insert into t (a, b) select a, b from u", W),
    ("INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v", W),
    ("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING RETURNING *", W),
    ("UPDATE t SET a = 1 WHERE id = 2", W),
    ("UPDATE t SET a = u.a FROM u WHERE t.id = u.id", W),
    ("DELETE FROM t WHERE id = 1", W),
    ("DELETE FROM t USING u WHERE t.id = u.id RETURNING t.*", W),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", W),
    ("MERGE INTO t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)", W),
    ("COPY t FROM STDIN", W),
    ("COPY t (a, b) FROM STDIN WITH (FORMAT csv)", W),
    ("SELECT * INTO new_t FROM t", W),
    ("SELECT * FROM t FOR UPDATE", W),
    ("SELECT * FROM t FOR SHARE SKIP LOCKED", W),
    ("SELECT 1 FROM t FOR UPDATE OF t NOWAIT", W),
    ("SELECT 1 FROM t FOR NO KEY UPDATE", U), // sqlparser 0.64 cannot parse it: fails closed
    ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", W),
    ("WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM u", W),
    ("WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM i", W),
    ("WITH d AS (SELECT 1) DELETE FROM t USING d", W),
    ("WITH x AS (SELECT 1), y AS (DELETE FROM t RETURNING 1) SELECT * FROM x", W),
    ("SELECT nextval('seq')", W),
    ("SELECT txid_current()", W),
    ("SELECT pg_current_xact_id()", W),
    ("SELECT txid_current_if_assigned(), pg_current_xact_id_if_assigned()", R),
    ("SELECT setval('seq', 42)", W),
    ("SELECT pg_notify('ch', 'x')", W),
    ("NOTIFY ch, 'payload'", W),
    ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", W),
    ("LOCK t", W),
    ("SELECT pg_advisory_lock(1)", W),
    ("SELECT pg_try_advisory_xact_lock(1)", W),
    ("REFRESH MATERIALIZED VIEW v", W),
    ("REFRESH MATERIALIZED VIEW CONCURRENTLY v", W),
    // ddl
    ("CREATE TABLE t (id int PRIMARY KEY, v text)", D),
    ("CREATE TEMP TABLE tt AS SELECT 1", D),
    ("CREATE TABLE t2 (LIKE t INCLUDING ALL)", U), // not parsed by sqlparser 0.64
    ("CREATE UNLOGGED TABLE IF NOT EXISTS u (a int)", D),
    ("CREATE TABLE t (id serial, c int DEFAULT nextval('s'))", D),
    ("ALTER TABLE t ADD COLUMN c int", D),
    ("ALTER TABLE t DROP COLUMN c", D),
    ("ALTER TABLE t RENAME TO u", D),
    ("ALTER TABLE t OWNER TO bob", D),
    ("ALTER TABLE t ADD COLUMN c int DEFAULT nextval('s')", D),
    ("DROP TABLE t", D),
    ("DROP TABLE IF EXISTS a, s.b CASCADE", D),
    ("DROP VIEW v", D),
    ("DROP INDEX i", D),
    ("DROP SCHEMA s CASCADE", D),
    ("CREATE INDEX CONCURRENTLY i ON t (a)", D),
    ("CREATE UNIQUE INDEX i ON t (lower(a))", D),
    ("CREATE VIEW v AS SELECT 1", D),
    ("CREATE MATERIALIZED VIEW mv AS SELECT * FROM t", D),
    ("CREATE SCHEMA s", D),
    ("CREATE DATABASE d", D),
    ("CREATE SEQUENCE s START 1", D),
    ("CREATE TYPE mood AS ENUM ('sad', 'ok')", D),
    ("CREATE DOMAIN posint AS int CHECK (VALUE > 0)", D),
    ("CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", D),
    ("TRUNCATE t", D),
    ("TRUNCATE TABLE a, b RESTART IDENTITY CASCADE", D),
    ("COMMENT ON TABLE t IS 'x'", D),
    ("COMMENT ON COLUMN t.c IS 'x'", D),
    ("DROP FUNCTION f(int)", D),
    ("DROP TRIGGER tr ON t", D),
    ("DROP EXTENSION hstore", D),
    // privilege
    ("GRANT SELECT ON t TO bob", P),
    ("GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO bob", P),
    ("REVOKE SELECT ON t FROM bob", P),
    ("GRANT admin TO bob", P),
    ("REVOKE admin FROM bob", P),
    ("CREATE ROLE bob LOGIN PASSWORD 'x'", P),
    ("CREATE USER bob", P),
    ("ALTER ROLE bob SUPERUSER", P),
    ("ALTER USER bob WITH PASSWORD 'y'", P),
    ("DROP ROLE bob", P),
    ("DROP USER IF EXISTS bob", P),
    ("SET ROLE admin", P),
    ("SET role = 'admin'", P),
    ("SET LOCAL ROLE admin", P),
    ("RESET ROLE", P),
    ("SET SESSION AUTHORIZATION bob", P),
    ("RESET SESSION AUTHORIZATION", P),
    ("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO bob", P),
    ("CREATE POLICY p ON t USING (true)", P),
    ("DROP POLICY p ON t", P),
    // admin
    ("VACUUM t", A),
    ("VACUUM", A),
    ("VACUUM FULL t", A),
    ("ANALYZE t", A),
    ("ANALYZE", A),
    ("SELECT pg_terminate_backend(123)", A),
    ("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE state = 'idle'", A),
    ("SELECT pg_reload_conf()", A),
    ("SELECT pg_rotate_logfile()", A),
    ("SELECT pg_read_file('/etc/passwd')", A),
    ("SELECT pg_read_binary_file('/etc/passwd')", A),
    ("SELECT * FROM pg_ls_dir('.')", A),
    ("SELECT lo_import('/etc/passwd')", A),
    ("SELECT lo_export(123, '/tmp/x')", A),
    ("SELECT lo_unlink(123)", A),
    ("SELECT set_config('search_path', 'public', false)", A),
    ("SELECT pg_catalog.set_config('log_statement', 'none', false)", A),
    ("SELECT pg_stat_reset()", A),
    ("SELECT pg_create_logical_replication_slot('s', 'pgoutput')", A),
    ("SELECT pg_switch_wal()", A),
    ("COPY t FROM '/etc/passwd'", A),
    ("COPY t TO '/tmp/out.csv'", A),
    ("COPY (SELECT 1) TO '/tmp/x'", A),
    ("SET log_statement = 'none'", A),
    ("SET session_replication_role = replica", A),
    ("SET app.tenant_id = '42'", A),
    ("RESET log_min_duration_statement", A),
    ("CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw", A),
    // code
    ("CALL p(1)", C),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$", C),
    ("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$", C),
    ("CREATE EXTENSION dblink", C),
    ("LOAD 'auto_explain'", C),
    ("COPY t TO PROGRAM 'rm -rf /'", C),
    ("COPY t FROM PROGRAM 'curl http://x'", C),
    ("SELECT dblink('host=x', 'DELETE FROM t')", C),
    ("SELECT * FROM dblink('dbname=x', 'select 1') AS t(a int)", C),
    ("SELECT dblink_exec('DROP TABLE t')", C),
    ("SELECT query_to_xml('DELETE FROM t RETURNING 1', true, false, '')", C),
    ("SELECT ts_stat('SELECT v FROM t')", C),
    ("CREATE RULE r AS ON SELECT TO t DO INSTEAD DELETE FROM u", C),
    // unknown: unparseable or unrecognised
    ("DO $$ BEGIN PERFORM 1; END $$", U),
    ("ALTER SYSTEM SET work_mem = '1MB'", U),
    ("CHECKPOINT", U),
    ("REINDEX TABLE t", U),
    ("CLUSTER t", U),
    ("MOVE NEXT FROM c", U),
    ("SECURITY LABEL ON TABLE t IS 'x'", U),
    ("IMPORT FOREIGN SCHEMA s FROM SERVER x INTO y", U),
    ("SELEC 1", U),
    ("SELECT * FROM", U),
    ("SELECT 'unterminated", U),
    ("SELECT $$unterminated", U),
    ("SELECT 1; garbage here", U),
    ("SELECT my_func(1)", U),
    ("SELECT public.lower('x')", U),
    ("SELECT myschema.now()", U),
    ("SELECT \"LOWER\"('x')", U),
    ("SELECT a ||| b", U),
    ("SELECT a OPERATOR(public.+) b", U),
    ("SELECT * FROM my_srf(1)", U),
    ("USE db", U),
    ("SHOW TABLES", U),
    ("DESCRIBE t", U),
    ("EXECUTE p", U),
    ("PREPARE TRANSACTION 'x'", U),
    ("VACUUM (FULL, ANALYZE) t", U),
    ("SELECT * FROM t; DO $$ BEGIN END $$", U),
    ("TABLE t", U),
];

#[test]
fn basic_classes() {
    check(BASIC);
}

/// Every statement of the SQL test corpus with the class it must get.
pub(super) fn corpus() -> Vec<(String, Class)> {
    let tables = [
        BASIC,
        evasion::EVASION,
        evasion::SESSION,
        server_grammar::JUDGED,
    ];
    let mut out: Vec<(String, Class)> = tables
        .iter()
        .flat_map(|t| t.iter().map(|(text, class)| (text.to_string(), *class)))
        .collect();
    out.extend(psql::cases());
    out
}

#[test]
fn enough_cases() {
    let total = BASIC.len() + evasion::EVASION.len() + evasion::SESSION.len() + psql::cases().len();
    assert!(total >= 300, "only {total} SQL cases");
}
