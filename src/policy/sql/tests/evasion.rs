//! Evasion attempts, look-alikes that must stay `read`, session statements (SET, BEGIN,
//! cursors, PREPARE/EXECUTE, EXPLAIN, COPY), table lists and hostile inputs.

use super::{check, classify};
use crate::policy::Class;
use crate::policy::sql::{SqlEffect, resolve_class};
use crate::policy::test_support::{A, C, D, R, U, W};

#[rustfmt::skip]
pub(super) const EVASION: &[(&str, Class)] = &[
    // comments hiding keywords
    ("SELECT 1 -- ; DELETE FROM t", R),
    ("SELECT /* ; DELETE FROM t */ 1", R),
    ("SELECT /* nested /* ; DROP TABLE t */ still comment */ 1", R),
    ("/* SELECT */ DELETE FROM t", W),
    ("-- SELECT\nDELETE FROM t", W),
    ("SELECT 1 /* comment */; DELETE /* x */ FROM t", W),
    ("DEL/**/ETE FROM t", U),
    ("SELECT 1;--\nDROP TABLE t", D),
    // odd casing and quoted identifiers
    ("dElEtE fRoM t", W),
    ("SeLeCt * FrOm T", R),
    ("SELECT \"DELETE\" FROM \"Weird Table\"", R),
    ("SELECT 1 AS \"drop table x\"", R),
    ("SELECT \"pg_terminate_backend\"(1)", A),
    ("SELECT PG_TERMINATE_BACKEND(1)", A),
    ("SELECT Pg_Catalog.Pg_Terminate_Backend(1)", A),
    ("SELECT \"pg_catalog\".\"pg_read_file\"('x')", A),
    ("SELECT \"NextVal\"('s')", U),
    ("SELECT NEXTVAL('s')", W),
    ("UPDATE \"T\" SET \"A\" = 1", W),
    // dollar quoting and E'' strings
    ("SELECT $$DELETE FROM t$$", R),
    ("SELECT $tag$ ; DROP TABLE t; $tag$", R),
    ("SELECT $a$ $b$ ; $b$ $a$", R),
    ("SELECT E'\\'; DELETE FROM t; --'", R),
    ("SELECT E'it''s'; DELETE FROM t", W),
    ("SELECT 'it''s; DROP TABLE t'", R),
    ("SELECT U&'d\\0061t'", R),
    ("SELECT $$x$$; DELETE FROM t", W),
    ("SELECT E'\\x27; DROP TABLE t; --'", R),
    // semicolons inside strings versus real ones
    ("SELECT 'a;b'", R),
    ("SELECT 'a'; SELECT 'b'", R),
    ("SELECT ';'; DELETE FROM t", W),
    ("SELECT 1;DELETE FROM t", W),
    ("SELECT 1;;;DELETE FROM t;;", W),
    ("SELECT \"a;b\" FROM t", R),
    // nested parentheses and CTEs
    ("SELECT ((((((1))))))", R),
    ("SELECT * FROM (SELECT * FROM (SELECT * FROM (SELECT 1) a) b) c", R),
    ("SELECT * FROM (SELECT nextval('s')) x", W),
    ("SELECT (SELECT (SELECT pg_terminate_backend(1)))", A),
    ("WITH a AS (WITH b AS (DELETE FROM t RETURNING 1) SELECT * FROM b) SELECT * FROM a", W),
    ("WITH a AS (SELECT 1) SELECT * FROM a WHERE EXISTS (WITH b AS (UPDATE t SET x = 1 RETURNING 1) SELECT 1 FROM b)", W),
    ("SELECT 1 UNION ALL (SELECT 2 UNION ALL (SELECT pg_reload_conf()::int))", A),
    // functions in unusual positions
    ("SELECT * FROM t ORDER BY pg_terminate_backend(1)", A),
    ("SELECT * FROM t GROUP BY nextval('s')", W),
    ("SELECT * FROM t WHERE id = (SELECT lo_import('/etc/shadow'))", A),
    ("SELECT * FROM t HAVING count(*) > pg_cancel_backend(1)::int", A),
    ("SELECT * FROM t LIMIT (SELECT setval('s', 1))", W),
    ("SELECT * FROM t OFFSET pg_reload_conf()::int", A),
    ("VALUES (pg_terminate_backend(1))", A),
    ("INSERT INTO t VALUES (pg_read_file('/etc/passwd'))", A),
    ("SELECT * FROM t JOIN u ON pg_terminate_backend(u.pid)", A),
    ("SELECT CASE WHEN false THEN pg_reload_conf() END", A),
    ("SELECT coalesce(null, pg_terminate_backend(1))", A),
    ("SELECT ARRAY[pg_terminate_backend(1)]", A),
    ("SELECT (pg_terminate_backend(1))::text COLLATE \"C\"", A),
    ("SELECT count(*) FILTER (WHERE pg_terminate_backend(1)) FROM t", A),
    ("SELECT row_number() OVER (ORDER BY pg_reload_conf()) FROM t", A),
    ("SELECT string_agg(x, ',' ORDER BY nextval('s')) FROM t", W),
    ("SELECT * FROM LATERAL pg_ls_dir('/')", A),
    ("SELECT * FROM pg_catalog.pg_read_file('/etc/passwd') AS f", A),
    ("SELECT * FROM t WHERE x IN (1, 2, set_config('a.b', 'c', false))", A),
    ("SELECT 1 WHERE 1 = ANY (SELECT pg_terminate_backend(1)::int)", A),
    ("SELECT my_func(1) FROM t", U),
    ("SELECT (SELECT my_func(1))", U),
    ("CREATE VIEW v AS SELECT pg_read_file('x')", A),
    ("CREATE TABLE t (v text DEFAULT pg_read_file('/etc/passwd'))", A),
    ("UPDATE t SET a = dblink_exec('x')", C),
    ("DELETE FROM t WHERE id = my_func()", U),
    ("SELECT EXTRACT(epoch FROM pg_postmaster_start_time())", R),
    ("SELECT 1 FROM t WHERE (a, b) = (SELECT 1, pg_terminate_backend(2))", A),
    // look-alikes that must stay read
    ("SELECT 'DELETE FROM t'", R),
    ("SELECT 'pg_terminate_backend(1)'", R),
    ("SELECT * FROM t WHERE note = 'DROP TABLE users; --'", R),
    ("SELECT * FROM deleted_rows", R),
    ("SELECT update_count, insert_ts FROM audit_log", R),
    ("SELECT * FROM t WHERE name LIKE '%GRANT%'", R),
    ("SELECT 'set role admin'", R),
    ("SELECT droplet FROM drops", R),
    ("SELECT \"nextval\" FROM t", R),
    ("SELECT t.\"lo_import\" FROM t", R),
    ("SELECT 1 -- pg_terminate_backend(1)", R),
    ("SELECT /* VACUUM FULL */ 1", R),
    ("SELECT $$COPY t TO PROGRAM 'x'$$", R),
    ("SELECT 'EXECUTE p'", R),
    ("WITH delete_me AS (SELECT 1) SELECT * FROM delete_me", R),
];

#[rustfmt::skip]
pub(super) const SESSION: &[(&str, Class)] = &[
    // SET / RESET / SHOW
    ("SET search_path TO public, \"$user\"", R),
    ("SET statement_timeout = '5s'", R),
    ("SET LOCAL statement_timeout = 5", R),
    ("SET lock_timeout TO DEFAULT", R),
    ("SET application_name = 'psql'", R),
    ("SET TIME ZONE 'UTC'", R),
    ("SET timezone = 'Europe/Paris'", R),
    ("SET DateStyle = ISO", R),
    ("SET datestyle TO 'ISO, MDY'", R),
    ("SET IntervalStyle = postgres", R),
    ("SET client_encoding = 'UTF8'", R),
    ("SET NAMES 'UTF8'", R),
    // pinned settings: only their pinned value (finding 3)
    ("SET client_encoding = 'utf-8'", R),
    ("SET client_encoding TO unicode", R),
    ("SET client_encoding TO DEFAULT", R),
    ("RESET client_encoding", R),
    ("SET NAMES DEFAULT", R),
    ("SET standard_conforming_strings = on", R),
    ("SET standard_conforming_strings TO 'true'", R),
    ("SET standard_conforming_strings = 1", R),
    ("SET client_encoding = 'SJIS'", U),
    ("SET client_encoding TO \"LATIN1\"", U),
    ("SET client_encoding = sql_ascii", U),
    ("SET SESSION client_encoding = 'BIG5'", U),
    ("SET LOCAL client_encoding = 'GBK'", U),
    ("SET NAMES 'SJIS'", U),
    ("SET NAMES sjis", U),
    ("SET standard_conforming_strings = off", U),
    ("SET standard_conforming_strings TO 'off'", U),
    ("SET standard_conforming_strings = false", U),
    ("SET standard_conforming_strings = 0", U),
    ("SET LOCAL standard_conforming_strings = no", U),
    ("SET standard_conforming_strings = 'nonsense'", U),
    ("SET work_mem = '1MB'; SET standard_conforming_strings = off", U),
    ("SET escape_string_warning = off", R),
    ("SET extra_float_digits = 3", R),
    ("SET work_mem = '64MB'", R),
    ("SET SESSION work_mem = '64MB'", R),
    ("SET enable_seqscan = off", R),
    ("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", R),
    ("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", R),
    ("RESET ALL", R),
    ("RESET work_mem", R),
    ("SHOW search_path", R),
    ("SHOW ALL", R),
    ("SHOW server_version", R),
    ("SET search_path = public; DELETE FROM t", W),
    // transactions
    ("BEGIN", R),
    ("BEGIN ISOLATION LEVEL SERIALIZABLE", R),
    ("START TRANSACTION READ ONLY", R),
    ("COMMIT", R),
    ("END", R),
    ("ROLLBACK", R),
    ("ABORT", R),
    ("SAVEPOINT s", R),
    ("RELEASE SAVEPOINT s", R),
    ("ROLLBACK TO SAVEPOINT s", R),
    ("BEGIN; DELETE FROM t; COMMIT", W),
    ("LISTEN ch", R),
    ("UNLISTEN ch", R),
    ("UNLISTEN *", R),
    ("DISCARD ALL", R),
    ("DISCARD PLANS", R),
    // cursors
    ("DECLARE c CURSOR FOR SELECT * FROM t", R),
    ("DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t", R),
    ("DECLARE c CURSOR FOR SELECT pg_terminate_backend(pid) FROM pg_stat_activity", A),
    ("DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE", W),
    ("FETCH 10 FROM c", R),
    ("FETCH ALL IN c", R),
    ("CLOSE c", R),
    ("CLOSE ALL", R),
    // PREPARE / EXECUTE / DEALLOCATE
    ("PREPARE p(int) AS SELECT * FROM t WHERE id = $1", R),
    ("PREPARE p AS DELETE FROM t WHERE id = $1", W),
    ("PREPARE p AS SELECT pg_terminate_backend($1)", A),
    ("DEALLOCATE p", R),
    ("DEALLOCATE ALL", R),
    ("DEALLOCATE PREPARE p", R),
    ("EXECUTE p(1)", U),
    // EXPLAIN
    ("EXPLAIN SELECT * FROM t", R),
    ("EXPLAIN DELETE FROM t", R),
    ("EXPLAIN UPDATE t SET a = 1", R),
    ("EXPLAIN (COSTS OFF) INSERT INTO t VALUES (1)", R),
    ("EXPLAIN SELECT pg_terminate_backend(1)", R),
    ("EXPLAIN SELECT my_func(1)", U),
    ("EXPLAIN ANALYZE DELETE FROM t", W),
    ("EXPLAIN ANALYZE SELECT 1", R),
    ("EXPLAIN (ANALYZE) UPDATE t SET a = 1", W),
    ("EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t", W),
    ("EXPLAIN (ANALYZE true) DELETE FROM t", W),
    ("EXPLAIN (ANALYZE on) DELETE FROM t", W),
    ("EXPLAIN (ANALYZE false) DELETE FROM t", R),
    ("EXPLAIN (ANALYZE off, VERBOSE) DELETE FROM t", R),
    ("EXPLAIN ANALYZE SELECT pg_terminate_backend(1)", A),
    ("EXPLAIN ANALYZE VERBOSE CREATE TABLE x AS SELECT 1", D),
    // COPY
    ("COPY t TO STDOUT", R),
    ("COPY t (a, b) TO STDOUT WITH (FORMAT csv, HEADER)", R),
    ("COPY (SELECT * FROM t WHERE a > 1) TO STDOUT", R),
    ("COPY (SELECT pg_read_file('/etc/passwd')) TO STDOUT", A),
    ("COPY (DELETE FROM t RETURNING *) TO STDOUT", W),
];

#[test]
fn evasion_attempts_and_look_alikes() {
    check(EVASION);
}

#[test]
fn session_statements() {
    check(SESSION);
}

#[test]
fn every_statement_counts() {
    let a = classify("SELECT 1; SELECT pg_terminate_backend(1); DELETE FROM t");
    assert_eq!(a.classification.class, A);
    assert!(
        a.classification.reason.contains("pg_terminate_backend"),
        "{}",
        a.classification.reason
    );
    let a = classify("GRANT SELECT ON t TO bob; CALL p()");
    assert_eq!(a.classification.class, C);
}

#[test]
fn tables_are_schema_qualified() {
    for (text, want) in [
        ("SELECT * FROM accounts", vec!["public.accounts"]),
        (
            "SELECT * FROM Accounts a JOIN billing.Invoices i ON true",
            vec!["billing.invoices", "public.accounts"],
        ),
        ("SELECT * FROM \"MixedCase\"", vec!["public.MixedCase"]),
        ("SELECT * FROM app.public.t", vec!["public.t"]),
        (
            "SELECT * FROM pg_class, pg_catalog.pg_namespace",
            vec!["pg_catalog.pg_class", "pg_catalog.pg_namespace"],
        ),
        (
            "SELECT * FROM pg_stat_activity",
            vec!["pg_catalog.pg_stat_activity"],
        ),
        (
            "SELECT * FROM information_schema.tables",
            vec!["information_schema.tables"],
        ),
        (
            "SELECT (SELECT max(x) FROM inner_t) FROM outer_t",
            vec!["public.inner_t", "public.outer_t"],
        ),
        (
            "SELECT * FROM t WHERE id IN (SELECT id FROM u)",
            vec!["public.t", "public.u"],
        ),
        (
            "SELECT * FROM t ORDER BY (SELECT 1 FROM o LIMIT 1)",
            vec!["public.o", "public.t"],
        ),
        (
            "WITH x AS (SELECT * FROM src) SELECT * FROM x",
            vec!["public.src"],
        ),
        (
            "WITH RECURSIVE r AS (SELECT 1 UNION SELECT * FROM r) SELECT * FROM r",
            vec![],
        ),
        (
            "WITH a AS (SELECT * FROM secrets), secrets AS (SELECT 1) SELECT * FROM a",
            vec!["public.secrets"],
        ),
        (
            "WITH t AS (SELECT 1) INSERT INTO t SELECT * FROM t",
            vec!["public.t"],
        ),
        ("WITH t AS (SELECT 1) DELETE FROM t", vec!["public.t"]),
        (
            "WITH d AS (DELETE FROM orders RETURNING *) INSERT INTO archive SELECT * FROM d",
            vec!["public.archive", "public.orders"],
        ),
        (
            "INSERT INTO t SELECT * FROM u",
            vec!["public.t", "public.u"],
        ),
        (
            "UPDATE t SET a = b.a FROM b WHERE t.id = b.id",
            vec!["public.b", "public.t"],
        ),
        ("DELETE FROM t USING u", vec!["public.t", "public.u"]),
        (
            "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE",
            vec!["public.s", "public.t"],
        ),
        ("COPY accounts TO STDOUT", vec!["public.accounts"]),
        ("COPY s.accounts FROM STDIN", vec!["s.accounts"]),
        ("DROP TABLE a, s.b", vec!["public.a", "s.b"]),
        ("TRUNCATE a, b", vec!["public.a", "public.b"]),
        ("GRANT SELECT ON accounts TO bob", vec!["public.accounts"]),
        ("LOCK TABLE accounts", vec!["public.accounts"]),
        ("VACUUM accounts", vec!["public.accounts"]),
        (
            "SELECT * INTO backup FROM accounts",
            vec!["public.accounts", "public.backup"],
        ),
        ("SELECT * FROM generate_series(1, 3)", vec![]),
        ("SELECT 1 UNION TABLE secret", vec!["public.secret"]),
        ("EXPLAIN DELETE FROM t", vec!["public.t"]),
        ("CREATE INDEX i ON t (a)", vec!["public.t"]),
        ("ALTER TABLE t ADD COLUMN c int", vec!["public.t"]),
        (
            "SELECT 1; SELECT * FROM b; SELECT * FROM a; SELECT * FROM b",
            vec!["public.a", "public.b"],
        ),
    ] {
        let got = classify(text).classification.tables;
        assert_eq!(got, want, "{text}");
    }
}

#[test]
fn functions_are_listed() {
    let a = classify("SELECT lower(x), pg_catalog.upper(y), app.safe_fn(1), count(*) FROM t");
    assert_eq!(
        a.classification.functions,
        vec!["app.safe_fn", "count", "lower", "upper"]
    );
    assert_eq!(a.classification.class, R);
}

#[test]
fn prepared_statements_resolve_through_the_session() {
    let none = |_: &str| None;
    let session = |n: &str| match n {
        "del" => Some(W),
        "sel" => Some(R),
        _ => None,
    };
    let a = classify("EXECUTE sel");
    assert_eq!(
        a.classification.class, U,
        "without a session EXECUTE is unknown"
    );
    assert_eq!(a.base_class, R);
    assert!(a.has_execute());
    assert_eq!(resolve_class(&a, &session), R);
    assert_eq!(resolve_class(&classify("EXECUTE del(1)"), &session), W);
    assert_eq!(resolve_class(&classify("EXECUTE other"), &session), U);
    assert_eq!(
        resolve_class(&classify("EXECUTE SEL"), &session),
        R,
        "names fold to lower case"
    );
    assert_eq!(resolve_class(&classify("EXECUTE \"SEL\""), &session), U);
    assert_eq!(
        resolve_class(&classify("PREPARE q AS DELETE FROM t; EXECUTE q"), &none),
        W
    );
    assert_eq!(
        resolve_class(&classify("PREPARE q AS SELECT 1; EXECUTE q"), &none),
        R
    );
    assert_eq!(
        resolve_class(&classify("DEALLOCATE sel; EXECUTE sel"), &session),
        U
    );
    assert_eq!(
        resolve_class(&classify("DEALLOCATE ALL; EXECUTE sel"), &session),
        U
    );
    assert_eq!(resolve_class(&classify("SELECT 1"), &session), R);
    assert_eq!(
        resolve_class(&classify("EXPLAIN ANALYZE EXECUTE del"), &session),
        W
    );
    assert_eq!(resolve_class(&classify("EXPLAIN EXECUTE del"), &session), R);
    assert_eq!(
        classify("PREPARE Big AS DELETE FROM t; DEALLOCATE x; DISCARD ALL").effects,
        vec![
            SqlEffect::Prepare {
                name: "big".into(),
                class: W
            },
            SqlEffect::Deallocate {
                name: Some("x".into())
            },
            SqlEffect::Deallocate { name: None },
        ]
    );
}

#[test]
fn hostile_inputs_fail_closed_without_overflowing() {
    // The default test thread stack is 2 MiB; run explicitly on one that size.
    let run = || {
        let deep = format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert_eq!(classify(&deep).classification.class, U);
        let just_over_limit = format!("SELECT {}1{}", "(".repeat(60), ")".repeat(60));
        assert_eq!(
            classify(&just_over_limit).classification.class,
            U,
            "parser recursion limit"
        );
        let chain = format!("SELECT 1{}", "+1".repeat(200_000));
        assert_eq!(classify(&chain).classification.class, U);
        let ors = format!(
            "SELECT * FROM t WHERE {}",
            vec!["a = 1"; 50_000].join(" OR ")
        );
        assert_eq!(classify(&ors).classification.class, U);
        let unions = format!("SELECT 1{}", ", 1 UNION SELECT 1".repeat(20_000));
        assert_eq!(classify(&unions).classification.class, U);
        let casts = format!("SELECT 1{}", "::int".repeat(100_000));
        assert_eq!(classify(&casts).classification.class, U);
        let subscripts = format!("SELECT a{}", "[1]".repeat(100_000));
        assert_eq!(classify(&subscripts).classification.class, U);
        let nots = format!("SELECT {}true", "NOT ".repeat(100_000));
        assert_eq!(classify(&nots).classification.class, U);
        let minus = format!("SELECT {}1", "-".repeat(100_000));
        assert_ne!(classify(&minus).classification.class, W);
        // Large but flat inputs are classified normally.
        let values = format!(
            "INSERT INTO t VALUES {}",
            vec!["(1, 'x')"; 100_000].join(", ")
        );
        assert_eq!(classify(&values).classification.class, W);
        let in_list = format!(
            "SELECT * FROM t WHERE id IN ({})",
            vec!["1"; 200_000].join(",")
        );
        assert_eq!(classify(&in_list).classification.class, R);
        let many = "SELECT 1;".repeat(100_000);
        assert_eq!(classify(&many).classification.class, R);
        let long_string = format!("SELECT '{}'", "x".repeat(1 << 20));
        assert_eq!(classify(&long_string).classification.class, R);
        let hidden = format!("SELECT 1;{}DELETE FROM t", " ".repeat(1 << 20));
        assert_eq!(classify(&hidden).classification.class, W);
        let moderate = format!("SELECT * FROM t WHERE {}", vec!["a = 1"; 200].join(" AND "));
        assert_eq!(classify(&moderate).classification.class, R);
    };
    let t = std::thread::Builder::new().stack_size(2 << 20).spawn(run);
    assert!(t.is_ok_and(|t| t.join().is_ok()));
}

#[test]
fn never_panics_on_odd_bytes() {
    for s in [
        "\0",
        "\u{feff}SELECT 1",
        "SELECT '\u{1F600}'",
        "$",
        "$$",
        "E'\\",
        "U&'\\",
        "\"",
        "/*",
        "--",
        "::",
        "[",
        "(((",
        ")))",
        "SELECT 1e999999999",
        "SELECT $99999999999999999999",
    ] {
        let a = classify(s);
        assert!(
            a.classification.class == R || a.classification.class == U,
            "{s:?}: {:?}",
            a.classification
        );
    }
}
