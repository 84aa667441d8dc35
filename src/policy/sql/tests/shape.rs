//! Statement shapes, and the property the cache relies on.

use std::collections::HashSet;

use crate::policy::sql::shape::shape;
use crate::policy::sql::{SqlOptions, analyze_sql};

#[test]
fn literals_are_blanked_and_everything_else_kept() {
    let a = shape("SELECT abalance FROM pgbench_accounts WHERE aid = 4711;").unwrap();
    let b = shape("select abalance from pgbench_accounts where aid = 12;").unwrap();
    assert_ne!(a, b, "keywords keep their spelling; only literals go");
    assert_eq!(
        shape("SELECT a FROM t WHERE x = 'one' AND y = 2").unwrap(),
        shape("SELECT a FROM t WHERE x = 'two'   AND y = 99 -- note").unwrap()
    );
    assert_ne!(shape("SELECT 'x' FROM t"), shape("SELECT \"x\" FROM t"));
    assert_ne!(shape("SELECT 1 FROM t"), shape("SELECT 1 FROM u"));
    assert_ne!(shape("SELECT E'a' FROM t"), shape("SELECT 'a' FROM t"));
    assert_eq!(shape("SELECT a FROM t"), None, "no literal: no shape");
    assert_eq!(shape("SELECT 'unterminated"), None);
    // A pinned setting's value decides its class: never one shape for 'UTF8' and 'SJIS'.
    for pinned in [
        "SET client_encoding = 'UTF8'",
        "SET NAMES 'UTF8'",
        "set Standard_Conforming_Strings = 'on'",
        "SET work_mem = 1; SET client_encoding TO 'utf8'",
    ] {
        assert_eq!(shape(pinned), None, "{pinned}");
    }
}

/// The property the cache relies on: texts of one shape classify identically.
#[test]
fn same_shape_same_classification() {
    let trusted = HashSet::new();
    let opts = SqlOptions {
        trusted_functions: &trusted,
    };
    let pairs = [
        (
            "SELECT * FROM t WHERE id = 1",
            "SELECT * FROM t WHERE id = 2",
        ),
        (
            "UPDATE t SET v = 'a' WHERE id = 1",
            "UPDATE t SET v = 'b' WHERE id = 9",
        ),
        ("SELECT setval('a', 1)", "SELECT setval('pg_authid', 99)"),
        ("SELECT nextval('s')", "SELECT nextval('t')"),
        ("COPY t FROM '/tmp/a'", "COPY t FROM '/etc/passwd'"),
        ("SET search_path = 'a'", "SET search_path = 'b'"),
        ("DO $$ BEGIN END $$", "DO $$ BEGIN PERFORM 1; END $$"),
        (
            "SELECT pg_read_file('/etc/hosts')",
            "SELECT pg_read_file('/etc/shadow')",
        ),
        ("SELECT 'x'::regclass", "SELECT 'pg_class'::regclass"),
        (
            "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
            "INSERT INTO t VALUES (3, 'c'), (4, 'd')",
        ),
        (
            "SELECT set_config('a', 'b', false)",
            "SELECT set_config('role', 'x', false)",
        ),
        (
            "SELECT now() - interval '1 day'",
            "SELECT now() - interval '2 hours'",
        ),
        ("SELECT E'\\x41'", "SELECT E'\\\\'"),
    ];
    for (a, b) in pairs {
        assert_eq!(shape(a), shape(b), "{a} / {b} should share a shape");
        let (x, y) = (analyze_sql(a, &opts), analyze_sql(b, &opts));
        assert_eq!(x.classification.class, y.classification.class, "{a} / {b}");
        assert_eq!(
            x.classification.tables, y.classification.tables,
            "{a} / {b}"
        );
        assert_eq!(
            x.classification.functions, y.classification.functions,
            "{a} / {b}"
        );
        assert_eq!(x.effects, y.effects, "{a} / {b}");
    }
}
