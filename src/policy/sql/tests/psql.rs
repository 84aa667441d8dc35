//! The exact texts psql 15 and pgbench send (captured from a real server with
//! `log_statement = all`, see `testdata/`): psql's meta-commands must stay `read`, and
//! pgbench's scripts get the classes their statements have (its init uses `COPY … WITH
//! (FREEZE ON)` and `VACUUM ANALYZE t`, which sqlparser 0.64 cannot parse: those fail closed).

use super::classify;
use crate::policy::Class;
use crate::policy::test_support::assert_classes;

pub(super) fn cases() -> Vec<(String, Class)> {
    super::with_classes(super::corpus::client_cases())
}

#[test]
fn psql_and_pgbench_texts() {
    let cases = cases();
    assert!(cases.len() >= 130, "{} cases", cases.len());
    assert_classes(
        cases.iter().map(|(text, want)| (text.as_str(), *want)),
        |text| classify(text).classification,
    );
}

#[test]
fn pgbench_tables() {
    let a = classify("SELECT abalance FROM pgbench_accounts WHERE aid = 9512;");
    assert_eq!(*a.classification.tables, ["public.pgbench_accounts"]);
    let a = classify(
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (10, 1, 77207, 1067, CURRENT_TIMESTAMP);",
    );
    assert_eq!(*a.classification.tables, ["public.pgbench_history"]);
    assert_eq!(a.classification.functions, vec!["current_timestamp"]);
}
