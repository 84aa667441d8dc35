//! Names as the target resolves them (issue 12, finding 6): a read that calls a function,
//! operator or cast the target also defines outside `pg_catalog` is not read.

use std::collections::HashSet;
use std::sync::Arc;

use crate::policy::Class;
use crate::policy::sql::analyze_sql_on;
use crate::policy::sql::{SqlAnalysis, SqlEffect, SqlOptions, TargetCatalog, TargetObjects};
use crate::policy::test_support::{R, U};

fn on(catalog: &TargetCatalog, text: &str) -> SqlAnalysis {
    let trusted: HashSet<String> = ["my_trusted_fn".to_string()].into();
    analyze_sql_on(
        text,
        &SqlOptions {
            trusted_functions: &trusted,
        },
        catalog,
    )
}

fn names(list: &[&str]) -> HashSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn known(objects: TargetObjects) -> TargetCatalog {
    TargetCatalog::Known(Arc::new(objects))
}

fn assert_cases(catalog: &TargetCatalog, cases: &[(&str, Class)]) {
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(text, want)| {
            let a = on(catalog, text);
            (a.classification.class != *want).then(|| {
                format!(
                    "{text}: {} not {want} ({})",
                    a.classification.class, a.classification.reason
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_function_the_target_also_defines_is_not_read() {
    let catalog = known(TargetObjects {
        functions: names(&["lower", "evil", "my_trusted_fn"]),
        ..Default::default()
    });
    assert_cases(
        &catalog,
        &[
            ("SELECT lower(1)", U),
            ("SELECT LOWER('x')", U),
            ("SELECT * FROM lower('x')", U),
            ("SELECT 1 FROM t WHERE lower(t.a) = 'x'", U),
            ("SELECT (SELECT lower(a) FROM t)", U),
            ("SELECT t.evil FROM t", U),
            ("SELECT (t).evil FROM t", U),
            ("PREPARE p AS SELECT lower('x')", U),
            ("SELECT pg_catalog.lower('x')", R),
            ("SELECT upper('x')", R),
            ("SELECT t.a FROM t", R),
            ("SELECT my_trusted_fn(1)", R),
        ],
    );
    let a = on(&catalog, "SELECT lower(1)");
    assert!(
        a.classification.reason.contains("lower"),
        "{}",
        a.classification.reason
    );
    let a = on(&catalog, "PREPARE p AS SELECT lower('x')");
    assert!(
        a.effects
            .iter()
            .all(|e| !matches!(e, SqlEffect::Prepare { class: R, .. })),
        "{:?}",
        a.effects
    );
}

#[test]
fn an_operator_the_target_also_defines_is_not_read() {
    let eq = known(TargetObjects {
        operators: names(&["="]),
        ..Default::default()
    });
    assert_cases(
        &eq,
        &[
            ("SELECT 1 WHERE 1 = 1", U),
            ("SELECT 1 IN (1, 2)", U),
            ("SELECT 1 WHERE 1 IN (SELECT 1)", U),
            ("SELECT 1 = ANY(ARRAY[1])", U),
            ("SELECT NULLIF(1, 2)", U),
            ("SELECT 1 IS DISTINCT FROM 2", U),
            ("SELECT CASE 1 WHEN 1 THEN 'a' END", U),
            ("SELECT * FROM t JOIN u USING (id)", U),
            ("SELECT 1 OPERATOR(pg_catalog.=) 1", R),
            ("SELECT 1 + 1", R),
            ("SELECT a FROM t ORDER BY a", R),
        ],
    );
    let comparisons = known(TargetObjects {
        operators: names(&["<="]),
        ..Default::default()
    });
    assert_cases(
        &comparisons,
        &[
            ("SELECT 2 BETWEEN 1 AND 3", U),
            ("SELECT a FROM t ORDER BY a USING <=", U),
            ("SELECT 2 > 1", R),
        ],
    );
    let like = known(TargetObjects {
        operators: names(&["~~"]),
        ..Default::default()
    });
    assert_cases(
        &like,
        &[("SELECT 'a' LIKE 'b'", U), ("SELECT 'a' = 'b'", R)],
    );
}

#[test]
fn a_cast_to_a_user_type_or_a_user_cast_is_not_read() {
    let domain = known(TargetObjects {
        types: names(&["d"]),
        ..Default::default()
    });
    assert_cases(
        &domain,
        &[
            ("SELECT 1::d", U),
            ("SELECT CAST(1 AS d)", U),
            ("SELECT d '1'", U),
            ("SELECT d(1)", U),
            ("SELECT '{1}'::d[]", U),
            ("SELECT 1::public.d", U),
            ("SELECT 1::int", R),
            ("SELECT '1'::text", R),
            ("SELECT 1", R),
        ],
    );
    let explicit = known(TargetObjects {
        user_casts: true,
        ..Default::default()
    });
    assert_cases(
        &explicit,
        &[
            ("SELECT 1::text", U),
            ("SELECT lower('x')", R),
            ("SELECT 1 = 1", R),
        ],
    );
    let implicit = known(TargetObjects {
        user_casts: true,
        user_implicit_casts: true,
        ..Default::default()
    });
    assert_cases(
        &implicit,
        &[
            ("SELECT lower('x')", U),
            ("SELECT 1 = 1", U),
            ("SELECT 1", R),
        ],
    );
}

#[test]
fn without_a_snapshot_only_reads_that_resolve_no_name_are_read() {
    let none = TargetCatalog::Unavailable("connection refused".into());
    assert_cases(
        &none,
        &[
            ("SELECT now()", U),
            ("SELECT 1 + 1", U),
            ("SELECT 1::text", U),
            ("SELECT t.a FROM t", U),
            ("SELECT 1", R),
            ("SELECT a FROM t", R),
            ("BEGIN", R),
            ("SHOW search_path", R),
        ],
    );
    let a = on(&none, "SELECT now()");
    assert!(
        a.classification.reason.contains("connection refused"),
        "{}",
        a.classification.reason
    );
}

#[test]
fn an_empty_snapshot_changes_no_verdict_of_the_corpus() {
    let empty = known(TargetObjects::default());
    let changed: Vec<String> = super::corpus()
        .into_iter()
        .filter_map(|(text, _)| {
            let alone = super::classify(&text).classification.class;
            let on_target = on(&empty, &text).classification.class;
            // `classify` also trusts app.safe_fn; this file trusts fewer names.
            (alone != on_target && !text.contains("safe_fn"))
                .then(|| format!("{text}: {alone} / {on_target}"))
        })
        .collect();
    assert!(changed.is_empty(), "{}", changed.join("\n"));
}
