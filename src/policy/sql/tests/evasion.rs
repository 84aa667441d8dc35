//! Evasion attempts, look-alikes that must stay `read`, session statements (SET, BEGIN,
//! cursors, PREPARE/EXECUTE, EXPLAIN, COPY), table lists and hostile inputs.

use super::{check_file, classify};
use crate::policy::sql::{SqlEffect, resolve_class};
use crate::policy::test_support::{A, C, R, U, W};

#[test]
fn evasion_attempts_and_look_alikes() {
    check_file("evasion");
}

#[test]
fn session_statements() {
    check_file("session");
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
        assert_eq!(*got, *want, "{text}");
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
