//! Which start-up parameters a client may pass to the target.
//!
//! A start-up parameter is a setting applied before the first statement, with no statement
//! for the Gate to see. So only settings that a `SET` of the same value would make `read`
//! pass ([`crate::policy::sql::catalog::harmless_setting`]: one list for both), and the
//! pinned ones only at their pinned value; anything else refuses the connection with FATAL
//! 42501 naming the parameter. `options` is read as PostgreSQL reads it
//! (`pg_split_opts`, then `-c name=value` / `--name=value`), and each setting in it is
//! vetted the same way; another switch (`-d 5`, `-B …`) is refused.
//!
//! Invariants: `user`, `database` and `replication` never reach this list (start-up handles
//! them); `client_encoding` always goes upstream as `UTF8` (also when the client asked for
//! none, or for `SQL_ASCII`, which is what libpq's `auto` gives in a C locale: the bytes
//! are the same ones as UTF-8's); what is forwarded is exactly what the audit trail records.

use crate::policy::sql::catalog::{
    Pinned, harmless_setting, is_sql_ascii_encoding, pinned_setting,
};

/// A parameter the proxy refuses: its name as the client spelt it, and why.
#[derive(Debug, PartialEq, Eq)]
pub struct RefusedParam {
    pub name: String,
    pub why: String,
}

/// The settings to forward upstream, `client_encoding=UTF8` first, then those of `options`,
/// then the other parameters, each group in the client's order.
pub fn vet(params: &[(String, String)]) -> Result<Vec<(String, String)>, RefusedParam> {
    let mut forward = vec![(
        "client_encoding".to_string(),
        Pinned::ClientEncoding.value().to_string(),
    )];
    // PostgreSQL applies `options` first, then the other parameters in order, so a
    // parameter given both ways takes the parameter's value: forwarded in that order.
    for (_, value) in params.iter().filter(|(n, _)| n == "options") {
        for (n, v) in split_options(value)? {
            forward.extend(vet_setting(&n, &v, "in options")?);
        }
    }
    for (name, value) in params.iter().filter(|(n, _)| n != "options") {
        forward.extend(vet_setting(name, value, "")?);
    }
    Ok(forward)
}

/// One setting: `Ok(None)` when it is dropped (client_encoding, sent once by the proxy).
fn vet_setting(
    name: &str,
    value: &str,
    place: &str,
) -> Result<Option<(String, String)>, RefusedParam> {
    // GUC names are case-insensitive.
    let key = name.to_ascii_lowercase();
    let refused = |why: String| RefusedParam {
        name: name.to_string(),
        why,
    };
    if !harmless_setting(&key) {
        return Err(refused(format!(
            "jitgate: start-up parameter \"{name}\"{} is not allowed (only session settings \
             that a SET could change without review may be given at start-up)",
            spaced(place)
        )));
    }
    match pinned_setting(&key) {
        Some(Pinned::ClientEncoding)
            if Pinned::ClientEncoding.holds(value) || is_sql_ascii_encoding(value) =>
        {
            Ok(None)
        }
        Some(p) if !p.holds(value) => Err(refused(format!(
            "jitgate: start-up parameter \"{name}\"{} may only be {} (the proxy reads SQL \
             with that value), not \"{value}\"",
            spaced(place),
            p.value()
        ))),
        _ => Ok(Some((name.to_string(), value.to_string()))),
    }
}

fn spaced(place: &str) -> String {
    if place.is_empty() {
        String::new()
    } else {
        format!(" {place}")
    }
}

/// The `name=value` settings of an `options` string, as PostgreSQL's `pg_split_opts` and
/// `process_postgres_switches` read it: words split on whitespace, a backslash takes the
/// next character literally; `-c name=value`, `-cname=value` and `--name=value` set
/// `name` (dashes in it read as underscores). Any other switch is refused.
pub fn split_options(options: &str) -> Result<Vec<(String, String)>, RefusedParam> {
    let words = split_words(options);
    let mut out = Vec::new();
    let mut it = words.iter();
    let refused = |word: &str, why: &str| RefusedParam {
        name: "options".into(),
        why: format!("jitgate: start-up option \"{word}\" is not allowed: {why}"),
    };
    while let Some(word) = it.next() {
        let setting = if let Some(long) = word.strip_prefix("--") {
            long.to_string()
        } else if word == "-c" {
            match it.next() {
                Some(next) => next.clone(),
                None => return Err(refused(word, "-c needs name=value")),
            }
        } else if let Some(rest) = word.strip_prefix("-c") {
            rest.to_string()
        } else {
            return Err(refused(word, "only -c name=value and --name=value pass"));
        };
        let Some((name, value)) = setting.split_once('=') else {
            return Err(refused(&setting, "a setting needs name=value"));
        };
        out.push((name.replace('-', "_"), value.to_string()));
    }
    Ok(out)
}

/// `pg_split_opts`: whitespace separates words; a backslash makes the next character part
/// of the word (so `\ ` is a space inside a value, `\\` a backslash).
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return words;
        }
        let mut word = String::new();
        while let Some(c) = chars.next() {
            match c {
                c if c.is_ascii_whitespace() => break,
                '\\' => {
                    if let Some(next) = chars.next() {
                        word.push(next);
                    }
                }
                c => word.push(c),
            }
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn refused_name(params: &[(&str, &str)]) -> String {
        vet(&p(params)).expect_err("must be refused").name
    }

    #[test]
    fn what_drivers_send_passes_and_client_encoding_is_always_utf8() {
        // psql (C locale: auto = SQL_ASCII), pgbench, JDBC, asyncpg, node-pg, tokio-postgres.
        for params in [
            p(&[
                ("application_name", "psql"),
                ("client_encoding", "SQL_ASCII"),
            ]),
            p(&[("application_name", "pgbench")]),
            p(&[
                ("client_encoding", "UTF8"),
                ("DateStyle", "ISO"),
                ("TimeZone", "Europe/Paris"),
                ("extra_float_digits", "2"),
                ("application_name", "PostgreSQL JDBC Driver"),
            ]),
            p(&[("client_encoding", "utf-8")]),
            p(&[
                ("client_encoding", "UNICODE"),
                ("statement_timeout", "5000"),
            ]),
            p(&[
                ("IntervalStyle", "iso_8601"),
                ("search_path", "app, public"),
            ]),
        ] {
            let f = vet(&params).unwrap_or_else(|e| panic!("{params:?}: {e:?}"));
            assert_eq!(f[0], ("client_encoding".into(), "UTF8".into()));
            assert_eq!(
                f.iter().filter(|(k, _)| k == "client_encoding").count(),
                1,
                "{f:?}"
            );
            for (k, v) in &params {
                if k != "client_encoding" {
                    assert!(f.contains(&(k.clone(), v.clone())), "{k} dropped: {f:?}");
                }
            }
        }
    }

    #[test]
    fn identity_lexing_and_unknown_settings_are_refused_by_name() {
        assert_eq!(refused_name(&[("role", "ops")]), "role");
        assert_eq!(refused_name(&[("ROLE", "ops")]), "ROLE");
        assert_eq!(
            refused_name(&[("session_authorization", "x")]),
            "session_authorization"
        );
        assert_eq!(
            refused_name(&[("client_encoding", "SJIS")]),
            "client_encoding"
        );
        assert_eq!(
            refused_name(&[("client_encoding", "LATIN1")]),
            "client_encoding"
        );
        assert_eq!(
            refused_name(&[("standard_conforming_strings", "off")]),
            "standard_conforming_strings"
        );
        assert_eq!(
            refused_name(&[("session_preload_libraries", "x")]),
            "session_preload_libraries"
        );
        assert_eq!(refused_name(&[("log_statement", "none")]), "log_statement");
        assert_eq!(refused_name(&[("no_such_thing", "1")]), "no_such_thing");
        assert!(vet(&p(&[("standard_conforming_strings", "on")])).is_ok());
    }

    #[test]
    fn options_are_read_as_postgres_reads_them() {
        let ok = |o: &str| split_options(o).unwrap_or_else(|e| panic!("{o}: {e:?}"));
        assert_eq!(
            ok("-c statement_timeout=4321 -c search_path=pg_catalog"),
            p(&[("statement_timeout", "4321"), ("search_path", "pg_catalog")])
        );
        assert_eq!(ok("-cwork_mem=1MB"), p(&[("work_mem", "1MB")]));
        assert_eq!(ok("--work-mem=1MB"), p(&[("work_mem", "1MB")]));
        assert_eq!(
            ok(r"-c application_name=a\ b\\c"),
            p(&[("application_name", r"a b\c")])
        );
        assert_eq!(ok("  "), p(&[]));
        for bad in ["-d 5", "-B 100", "-c", "-c role", "--role", "-e", "x=1"] {
            assert!(split_options(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_inside_options_are_vetted_like_parameters() {
        for (options, name) in [
            ("-c role=ops", "role"),
            (
                "-c standard_conforming_strings=off",
                "standard_conforming_strings",
            ),
            (
                "--standard-conforming-strings=off",
                "standard_conforming_strings",
            ),
            ("-c client_encoding=SJIS", "client_encoding"),
            ("-c work_mem=1MB -c role=ops", "role"),
        ] {
            let e = vet(&p(&[("options", options)])).expect_err(options);
            assert_eq!(e.name, name, "{options}");
        }
        // A backslash-escaped space keeps `-c role=ops` inside work_mem's value: one
        // setting, which the server then rejects as a bad work_mem, not a role change.
        assert_eq!(
            split_options(r"-c work_mem=1MB\ -c\ role=ops").unwrap(),
            p(&[("work_mem", "1MB -c role=ops")])
        );
        let f = vet(&p(&[(
            "options",
            "-c statement_timeout=5 --lock-timeout=3",
        )]))
        .unwrap();
        assert!(f.contains(&("statement_timeout".into(), "5".into())));
        assert!(f.contains(&("lock_timeout".into(), "3".into())));
    }
}
