//! Tests for SQL classification: the basic table of statement kinds here; evasion attempts,
//! look-alikes, session statements, table lists and hostile inputs in `evasion.rs`; the
//! queries psql and pgbench really send in `psql.rs`; the catalogues' and shapes' own
//! tests in `catalog.rs` and `shape.rs`.

use std::collections::HashSet;

use super::{SqlAnalysis, SqlOptions, analyze_sql};
use crate::policy::Class;
use crate::policy::test_support::{A, C, D, P, R, U, W, assert_classes};

mod catalog;
/// The SQL test corpus as text files, read here and by the read-only oracle against real
/// PostgreSQL (`tests/pg_read_only_oracle.rs`, which `include!`s `corpus.rs`: so that file
/// uses only `std` and has no inner doc comment; its format is described at its top).
mod corpus;
mod evasion;
mod psql;
mod server_grammar;
mod shape;
mod target;

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

/// The cases of the corpus file `name` (see `corpus.rs`) with their classes.
fn cases_of(name: &str) -> Vec<(String, Class)> {
    let (_, contents) = corpus::CORPUS_FILES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no corpus file {name}"));
    with_classes(corpus::corpus_cases(contents))
}

fn with_classes(cases: Vec<(&str, String)>) -> Vec<(String, Class)> {
    cases
        .into_iter()
        .map(|(class, text)| {
            let class =
                Class::parse(class).unwrap_or_else(|| panic!("class {class:?} of {text:?}"));
            (text, class)
        })
        .collect()
}

/// Fails listing every case of the corpus file `name` whose class is not the one wanted.
fn check_file(name: &str) {
    let cases = cases_of(name);
    assert!(!cases.is_empty(), "corpus file {name} is empty");
    assert_classes(
        cases.iter().map(|(text, class)| (text.as_str(), *class)),
        |text| classify(text).classification,
    );
}

#[test]
fn basic_classes() {
    check_file("basic");
}

/// Every statement of the SQL test corpus with the class it must get.
pub(super) fn corpus() -> Vec<(String, Class)> {
    with_classes(corpus::all_cases())
}

#[test]
fn enough_cases() {
    let cases = corpus();
    assert!(cases.len() >= 300, "only {} SQL cases", cases.len());
    for class in [R, W, D, P, A, C, U] {
        assert!(
            cases.iter().any(|(_, c)| *c == class),
            "no {class} case in the corpus"
        );
    }
}
