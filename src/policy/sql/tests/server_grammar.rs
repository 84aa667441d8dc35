//! PostgreSQL's grammar as the second judge: texts sqlparser reads as `read` that the
//! server's grammar does not (findings 1 and 2 of issue 12 among them), texts both read
//! alike, and the names both trees give.

use super::{check_file, classify};
use crate::policy::Class;
use crate::policy::test_support::{R, U};

#[test]
fn the_server_grammar_confirms_or_overrules_reads() {
    check_file("server_grammar");
}

#[test]
fn a_disagreement_says_which_parser_said_what() {
    let a = classify("EXPLAIN (ANALYSE) DELETE FROM accounts");
    assert_eq!(a.base_class, U);
    let why = a.classification.reason;
    assert!(
        why.starts_with("sqlparser: read; PostgreSQL grammar: ")
            && why.contains("DeleteStmt inside EXPLAIN ANALYZE"),
        "{why}"
    );
    let a = classify("SELECT 1; SELECT 2; SELEC 3");
    assert_eq!(a.classification.class, U);
}

#[test]
fn a_prepared_read_the_server_disagrees_with_is_unknown() {
    let a = classify("PREPARE p AS SELECT 1; EXPLAIN (ANALYSE) DELETE FROM t");
    assert_eq!(a.classification.class, U);
    assert!(
        a.effects.iter().all(|e| !matches!(
            e,
            crate::policy::sql::SqlEffect::Prepare {
                class: Class::Read,
                ..
            }
        )),
        "{:?}",
        a.effects
    );
}

/// Every read of the corpus: PostgreSQL's tree names every table sqlparser names (it names
/// more only where a CTE shadows a table: it does not scope CTEs) and no function sqlparser
/// missed (SQL-syntax calls the grammar spells as `pg_catalog` functions aside).
#[test]
fn both_trees_name_the_same_tables_and_functions() {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    let trusted = ["my_trusted_fn".to_string(), "app.safe_fn".to_string()].into();
    let opts = crate::policy::sql::SqlOptions {
        trusted_functions: &trusted,
    };
    let mut failures = Vec::new();
    let mut compared = 0;
    for (text, _) in super::corpus() {
        let ours = classify(&text);
        if ours.base_class != R {
            continue;
        }
        let Ok(statements) = Parser::parse_sql(&PostgreSqlDialect {}, &text) else {
            continue;
        };
        let view = match crate::policy::sql::server_grammar::confirm_read(&text, &statements, &opts)
        {
            Ok(v) => v,
            Err(why) => {
                failures.push(format!("{text:?}: judge disagrees: {why}"));
                continue;
            }
        };
        compared += 1;
        let theirs: Vec<&String> = view.tables.iter().collect();
        let missing: Vec<_> = ours
            .classification
            .tables
            .iter()
            .filter(|t| !view.tables.contains(*t))
            .collect();
        let extra: Vec<_> = theirs
            .iter()
            .filter(|t| !ours.classification.tables.contains(t))
            .filter(|t| {
                let bare = t.strip_prefix("public.").unwrap_or(t);
                !text.to_lowercase().contains(&format!("{bare} as ("))
                    && !text.to_lowercase().contains(&format!("{bare}("))
            })
            .collect();
        let unseen_functions: Vec<_> = view
            .functions
            .iter()
            .filter(|f| !ours.classification.functions.contains(f))
            .filter(|f| !super::super::server_grammar::is_grammar_function(f))
            .collect();
        if !missing.is_empty() || !extra.is_empty() || !unseen_functions.is_empty() {
            failures.push(format!(
                "{text:?}: tables sqlparser only {missing:?}, PostgreSQL only {extra:?}; \
                 functions PostgreSQL only {unseen_functions:?}"
            ));
        }
    }
    assert!(compared > 150, "only {compared} reads compared");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
