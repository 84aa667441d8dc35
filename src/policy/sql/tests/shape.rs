//! Statement shapes, and the property the cache relies on: a verdict from the cache's
//! shape level is the verdict a cold classification gives, for every statement of the SQL
//! test corpus with its literal values mutated.

use std::collections::HashSet;

use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

use super::corpus;
use crate::policy::cache::ClassifierCache;
use crate::policy::sql::shape::{grant_shape, shape};
use crate::policy::sql::{SqlAnalysis, SqlOptions, analyze_sql};

#[test]
fn value_literals_are_blanked_and_everything_else_kept() {
    let a = shape("SELECT abalance FROM pgbench_accounts WHERE aid = 4711;").unwrap();
    let b = shape("select abalance from pgbench_accounts where aid = 12;").unwrap();
    assert_ne!(a, b, "keywords keep their spelling; only literals go");
    assert_eq!(
        shape("SELECT a FROM t WHERE x = 'one' AND y = 2"),
        shape("SELECT a FROM t WHERE x = 'two' AND y = 99")
    );
    assert_eq!(
        shape("UPDATE accounts SET balance = 1 WHERE id = 2"),
        shape("UPDATE accounts SET balance = 7 WHERE id = 3")
    );
    assert_ne!(shape("SELECT 'x' FROM t"), shape("SELECT \"x\" FROM t"));
    assert_ne!(shape("SELECT 1 FROM t"), shape("SELECT 1 FROM u"));
    assert_ne!(shape("SELECT 1 FROM t"), shape("SELECT 1 FROM t -- x"));
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
    assert_eq!(
        grant_shape("SELECT a FROM t").as_deref(),
        Some("SELECT a FROM t")
    );
    assert_eq!(
        shape("SELECT setval('s', 1), lower('a') FROM t WHERE id = 2"),
        shape("SELECT setval('s', 1), lower('b') FROM t WHERE id = 3"),
        "outside a dangerous function's arguments, values are blanked"
    );
}

/// Option values, settings and utility statements keep their literals: their values
/// change what the statement does.
#[test]
fn literals_outside_value_positions_are_kept() {
    let kept = [
        (
            "EXPLAIN (ANALYZE 0) DELETE FROM t",
            "EXPLAIN (ANALYZE 1) DELETE FROM t",
        ),
        (
            "EXPLAIN (ANALYZE '0') DELETE FROM t WHERE id = 1",
            "EXPLAIN (ANALYZE 'on') DELETE FROM t WHERE id = 1",
        ),
        ("VACUUM (FULL 0) t", "VACUUM (FULL 1) t"),
        (
            "SET standard_conforming_strings = 'on'",
            "SET standard_conforming_strings = 'off'",
        ),
        (
            "SET client_encoding = 'UTF8'",
            "SET client_encoding = 'SJIS'",
        ),
        (
            "COPY t FROM STDIN WITH (FREEZE 0)",
            "COPY t FROM STDIN WITH (FREEZE 1)",
        ),
        (
            "SELECT 1; EXPLAIN (ANALYZE 0) DELETE FROM t",
            "SELECT 2; EXPLAIN (ANALYZE 1) DELETE FROM t",
        ),
        ("SELECT 'a\\' FROM t", "SELECT 'b\\' FROM t"),
        ("SELECT E'a' FROM t", "SELECT E'b' FROM t"),
        ("SELECT x FROM t LIMIT 1e3", "SELECT x FROM t LIMIT 2e3"),
        ("SELECT 1.5.6", "SELECT 2.5.6"),
        ("SELECT 0x1F", "SELECT 0x2F"),
        (
            "SELECT setval('a', 1) FROM t",
            "SELECT setval('b', 1) FROM t",
        ),
        (
            "SELECT set_config('role', 'x', false)",
            "SELECT set_config('search_path', 'x', false)",
        ),
        (
            "SELECT nextval('a' || (1)) FROM t",
            "SELECT nextval('b' || (1)) FROM t",
        ),
    ];
    for (a, b) in kept {
        assert_ne!(grant_shape(a), grant_shape(b), "{a} / {b}");
    }
}

fn opts_analyze(text: &str) -> SqlAnalysis {
    let trusted: HashSet<String> = ["my_trusted_fn".to_string(), "app.safe_fn".to_string()].into();
    analyze_sql(
        text,
        &SqlOptions {
            trusted_functions: &trusted,
        },
    )
}

/// Everything a verdict depends on: class, tables (table rules, grants), functions and the
/// effects on prepared statements.
fn verdict_of(a: &SqlAnalysis) -> impl PartialEq + std::fmt::Debug + '_ {
    (
        a.classification.class,
        &a.classification.tables,
        &a.classification.functions,
        a.base_class,
        &a.effects,
    )
}

/// The replacement values tried at every literal (and boolean word) position.
const MUTATIONS: &[&str] = &[
    "0",
    "1",
    "2",
    "-1",
    "1.5",
    "true",
    "false",
    "on",
    "off",
    "'on'",
    "'off'",
    "'true'",
    "'0'",
    "'1'",
    "''",
    "'x'",
    "'pg_authid'",
    "E'\\''",
    "$$x$$",
    "'a\\'",
];

/// `text` with the token at `index` replaced by `with`, or `None` if it is not a literal or
/// a boolean word.
fn mutants(text: &str) -> Vec<String> {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, text).tokenize() else {
        return Vec::new();
    };
    let mutable = |t: &Token| match t {
        Token::Number(..)
        | Token::SingleQuotedString(_)
        | Token::EscapedStringLiteral(_)
        | Token::NationalStringLiteral(_)
        | Token::DollarQuotedString(_) => true,
        Token::Word(w) => matches!(
            w.value.to_ascii_lowercase().as_str(),
            "true" | "false" | "on" | "off"
        ),
        _ => false,
    };
    let positions: Vec<usize> = tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| mutable(t))
        .map(|(i, _)| i)
        .collect();
    let rebuild = |replace: &dyn Fn(usize) -> Option<&'static str>| -> String {
        tokens
            .iter()
            .enumerate()
            .map(|(i, t)| match replace(i) {
                Some(m) => m.to_string(),
                None => t.to_string(),
            })
            .collect()
    };
    let mut out = Vec::new();
    // Long statements (psql's) have dozens of literals: every position gets a few values,
    // and every value is tried at every position at once.
    let per_position: &[&str] = if positions.len() > 6 {
        &["0", "1", "'on'", "off"]
    } else {
        MUTATIONS
    };
    for &p in &positions {
        for m in per_position {
            out.push(rebuild(&|i| (i == p).then_some(*m)));
        }
    }
    if !positions.is_empty() {
        for m in MUTATIONS {
            out.push(rebuild(&|i| positions.contains(&i).then_some(*m)));
        }
    }
    out
}

/// Statements of finding 2 and its relatives, besides the corpus tables.
const EXTRA: &[&str] = &[
    "EXPLAIN (ANALYZE 0) DELETE FROM accounts",
    "EXPLAIN (ANALYZE 1) DELETE FROM accounts",
    "EXPLAIN (ANALYZE off) DELETE FROM accounts WHERE id = 1",
    "EXPLAIN (ANALYZE 'on', COSTS 0) INSERT INTO accounts VALUES (1)",
    "EXPLAIN (COSTS 0, ANALYZE false) UPDATE accounts SET balance = 1 WHERE id = 2",
    "VACUUM (FULL 0, ANALYZE 1) t",
    "COPY t FROM STDIN WITH (FREEZE 0)",
    "SET standard_conforming_strings = 'on'",
    "SET standard_conforming_strings = 1",
    "SET client_encoding = 'UTF8'",
    "SELECT set_config('search_path', 'public', false)",
    "SELECT setval('s', 424242) FROM accounts",
    "UPDATE accounts SET balance = 1 WHERE id = 2",
    "SELECT 'a\\' , ' ; DELETE FROM accounts; -- '",
    "SELECT * FROM t WHERE a = 1 AND b = 'x' LIMIT 10 OFFSET 2",
];

#[test]
fn the_cache_never_changes_a_verdict() {
    let mut corpus: Vec<String> = corpus::all_cases()
        .into_iter()
        .map(|(_, t)| t)
        .chain(EXTRA.iter().map(|t| t.to_string()))
        .collect();
    corpus.sort();
    corpus.dedup();
    let trusted: HashSet<String> = ["my_trusted_fn".to_string(), "app.safe_fn".to_string()].into();
    let mut pairs = 0usize;
    let mut shape_hits = 0u64;
    let mut failures = Vec::new();
    for text in &corpus {
        let cold_original = opts_analyze(text);
        for variant in mutants(text) {
            let cold_variant = opts_analyze(&variant);
            for (first, second, cold) in [
                (text.as_str(), variant.as_str(), &cold_variant),
                (variant.as_str(), text.as_str(), &cold_original),
            ] {
                let cache = ClassifierCache::new(16, trusted.clone());
                cache.analyze(first);
                let cached = cache.analyze(second);
                shape_hits += cache.hits();
                pairs += 1;
                if verdict_of(&cached) != verdict_of(cold) && failures.len() < 20 {
                    failures.push(format!(
                        "primed with {first:?}, then {second:?}: cached {:?}, cold {:?}",
                        verdict_of(&cached),
                        verdict_of(cold)
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(pairs > 5_000, "only {pairs} pairs");
    // The cache still works: many of those were shape hits (same shape, other values).
    assert!(
        shape_hits > 1_000,
        "only {shape_hits} shape hits of {pairs}"
    );
}
