//! The catalogues' own invariants: lower-case, unique, pure and dangerous disjoint.

use std::collections::HashSet;

use crate::policy::Class;
use crate::policy::sql::catalog::*;

fn check_list(name: &str, list: &[&str]) {
    let mut seen = HashSet::new();
    for f in list {
        assert_eq!(*f, f.to_ascii_lowercase(), "{name}: {f} is not lower-case");
        assert!(!f.is_empty() && !f.contains(' '), "{name}: bad entry {f:?}");
        assert!(seen.insert(*f), "{name}: {f} appears twice");
    }
}

#[test]
fn catalogues_are_lower_case_and_unique() {
    check_list("PURE_FUNCTIONS", PURE_FUNCTIONS);
    check_list("HARMLESS_SETTINGS", HARMLESS_SETTINGS);
    check_list("CATALOG_RELATIONS", CATALOG_RELATIONS);
    let dangerous: Vec<&str> = DANGEROUS_FUNCTIONS.iter().map(|(f, _)| *f).collect();
    check_list("DANGEROUS_FUNCTIONS", &dangerous);
    let prefixes: Vec<&str> = DANGEROUS_PREFIXES.iter().map(|(f, _)| *f).collect();
    check_list("DANGEROUS_PREFIXES", &prefixes);
}

#[test]
fn pure_and_dangerous_are_disjoint() {
    for f in PURE_FUNCTIONS {
        assert_eq!(
            function_kind(f),
            FunctionKind::Pure,
            "{f} is shadowed by a dangerous entry"
        );
    }
    for (f, c) in DANGEROUS_FUNCTIONS {
        assert_eq!(function_kind(f), FunctionKind::Dangerous(*c));
    }
    for (f, _) in DANGEROUS_FUNCTIONS {
        assert!(!PURE_FUNCTIONS.contains(f));
    }
}

#[test]
fn lookups() {
    assert_eq!(
        function_kind("lo_import"),
        FunctionKind::Dangerous(Class::Admin)
    );
    assert_eq!(
        function_kind("dblink_exec"),
        FunctionKind::Dangerous(Class::Code)
    );
    assert_eq!(
        function_kind("pg_try_advisory_lock"),
        FunctionKind::Dangerous(Class::Write)
    );
    assert_eq!(function_kind("lower"), FunctionKind::Pure);
    assert_eq!(function_kind("my_func"), FunctionKind::Unlisted);
    assert!(harmless_setting("search_path"));
    assert!(!harmless_setting("session_replication_role"));
    assert!(catalog_relation("pg_class"));
    for utf8 in ["UTF8", "utf-8", "Unicode", "UTF_8", "u t f 8"] {
        assert!(Pinned::ClientEncoding.holds(utf8), "{utf8}");
    }
    for other in ["SJIS", "LATIN1", "SQL_ASCII", "utf16", "", "utf"] {
        assert!(!Pinned::ClientEncoding.holds(other), "{other}");
    }
    for on in ["on", "ON", "true", "t", "tr", "yes", "y", "1", " on "] {
        assert_eq!(parse_bool(on), Some(true), "{on}");
    }
    for off in ["off", "of", "false", "f", "no", "n", "0"] {
        assert_eq!(parse_bool(off), Some(false), "{off}");
    }
    for bad in ["o", "onn", "2", "", "truee", "yess"] {
        assert_eq!(parse_bool(bad), None, "{bad}");
    }
    assert_eq!(
        pinned_setting("client_encoding"),
        Some(Pinned::ClientEncoding)
    );
    assert_eq!(pinned_setting("search_path"), None);
    assert!(!catalog_relation("accounts"));
}
