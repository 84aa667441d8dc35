//! Session state that changes how the server reads a statement (client_encoding,
//! standard_conforming_strings) or resolves its names (search_path), through jitgate with
//! the approvals fixture (reads pass, writes wait for an SRE who never acts, no rule for
//! `unknown`). Each attack of findings 3, 4 and 7 is tried as a hostile client would; every
//! check of the outcome reads the database directly (the rows are still there).

#[path = "support/api.rs"]
mod api;
mod support;

use api::{Fixture, WRITE_RULE, poll, wait_for_pending};
use serde_json::Value;
use support::wire::{LoginRefused, RawSession, first_error, query_message, read_until, summary};
use support::{ALICE, ALICE_PASSWORD, APP_TARGET};

use std::io::Write;

type Msgs = Vec<(u8, Vec<u8>)>;

fn login(fx: &Fixture, extra: &[(&str, &str)]) -> Result<RawSession, LoginRefused> {
    RawSession::login(
        fx.env.jg.pg_addr(),
        ALICE,
        APP_TARGET,
        ALICE_PASSWORD,
        extra,
    )
}

fn alice(fx: &Fixture) -> RawSession {
    login(fx, &[]).unwrap_or_else(|e| panic!("raw login as alice: {e:?}"))
}

fn code(msgs: &Msgs) -> Option<String> {
    first_error(msgs).map(|f| f.code().to_string())
}

fn message(msgs: &Msgs) -> String {
    first_error(msgs)
        .map(|f| f.message().to_string())
        .unwrap_or_default()
}

/// A Query of raw bytes (not necessarily UTF-8), read up to ReadyForQuery.
fn raw_query(s: &mut RawSession, sql: &[u8]) -> Msgs {
    let mut body = sql.to_vec();
    body.push(0);
    s.stream
        .write_all(&support::wire::message(b'Q', &body))
        .expect("send Query");
    read_until(&mut s.stream, b'Z')
}

fn rows(fx: &Fixture, table: &str) -> String {
    fx.sql(&format!("SELECT count(*) FROM {table};"))
}

/// A refused statement: denied (42501, no rule for `unknown`) with `setting` named.
fn assert_refused_naming(r: &Msgs, setting: &str) {
    assert_eq!(code(r).as_deref(), Some("42501"), "{}", summary(r));
    assert!(
        message(r).contains(setting),
        "the refusal names {setting}: {}",
        message(r)
    );
}

#[test]
fn standard_conforming_strings_stays_on() {
    let fx = Fixture::new("1s", 10);
    let mut s = alice(&fx);
    for set in [
        "SET standard_conforming_strings = off",
        "SET standard_conforming_strings TO false",
        "SET LOCAL standard_conforming_strings = 'of'",
    ] {
        let r = s.query(set);
        assert_refused_naming(&r, "standard_conforming_strings");
    }
    let r = s.query("SET standard_conforming_strings = on");
    assert_eq!(
        code(&r),
        None,
        "the pinned value is harmless: {}",
        summary(&r)
    );
    // With the setting still on, this is one SELECT of a string to the server too.
    let r = s.query(r"SELECT 'a\' , ' ; DELETE FROM t; -- '");
    assert_eq!(code(&r), None, "{}", summary(&r));
    // Standard strings: 'a\' is the string a\, then a second column.
    assert_eq!(RawSession::first_column(&r), [Some(r"a\".to_string())]);
    assert_eq!(rows(&fx, "t"), "10", "the DELETE hidden in the string ran");
    s.close();
}

#[test]
fn client_encoding_stays_utf8() {
    let fx = Fixture::new("1s", 10);
    let mut s = alice(&fx);
    for set in [
        "SET client_encoding = 'SJIS'",
        "SET client_encoding TO sjis",
        "SET NAMES 'SJIS'",
        "SET client_encoding = 'LATIN1'",
    ] {
        let r = s.query(set);
        assert_eq!(code(&r).as_deref(), Some("42501"), "{set}: {}", summary(&r));
        assert!(message(&r).contains("client_encoding"), "{}", message(&r));
    }
    let r = s.query("SHOW client_encoding");
    assert_eq!(RawSession::first_column(&r), [Some("UTF8".to_string())]);
    let r = s.query("SET client_encoding = 'utf-8'");
    assert_eq!(
        code(&r),
        None,
        "the pinned value is harmless: {}",
        summary(&r)
    );
    // In SJIS, C3 81 5C would be "テ" then a two-byte character that swallows the
    // backslash; in UTF-8 it is "Á\": one string, one SELECT.
    let mut attack = b"SELECT E'".to_vec();
    attack.extend_from_slice(&[0xC3, 0x81, b'\\']);
    attack.extend_from_slice(b"' ; INSERT INTO t VALUES (999); --'");
    let r = raw_query(&mut s, &attack);
    assert_eq!(code(&r), None, "{}", summary(&r));
    assert_eq!(
        fx.sql("SELECT count(*) FROM t WHERE id = 999;"),
        "0",
        "INSERT ran"
    );
    assert_eq!(rows(&fx, "t"), "10");
    s.close();
}

#[test]
fn start_up_parameters_that_change_identity_or_lexing_are_refused() {
    let fx = Fixture::new("1s", 10);
    for (extra, name) in [
        (
            ("options", "-c standard_conforming_strings=off"),
            "standard_conforming_strings",
        ),
        (("options", "-c role=ops"), "role"),
        (("options", "--role=ops"), "role"),
        (("options", "-c statement_timeout=5 -c role=ops"), "role"),
        (("options", "-d 5"), "-d"),
        (("role", "ops"), "role"),
        (("client_encoding", "SJIS"), "client_encoding"),
        (
            ("standard_conforming_strings", "off"),
            "standard_conforming_strings",
        ),
        (
            ("session_authorization", "postgres"),
            "session_authorization",
        ),
    ] {
        let refused = match login(&fx, &[extra]) {
            Ok(s) => {
                s.close();
                panic!("{extra:?} was accepted");
            }
            Err(e) => e,
        };
        assert_eq!(refused.fields.severity(), "FATAL", "{extra:?}");
        assert_eq!(refused.fields.code(), "42501", "{extra:?}");
        assert!(
            refused.fields.message().contains(name),
            "{extra:?}: {}",
            refused.fields.message()
        );
    }
    // What drivers send passes; client_encoding is UTF8 upstream whatever the spelling
    // (SQL_ASCII is what libpq's "auto" gives in a C locale).
    for enc in ["utf-8", "UNICODE", "SQL_ASCII"] {
        let mut s = login(
            &fx,
            &[
                ("client_encoding", enc),
                ("DateStyle", "ISO"),
                ("TimeZone", "UTC"),
                ("extra_float_digits", "3"),
                (
                    "options",
                    r"-c statement_timeout=4321 -c application_name=a\ b",
                ),
            ],
        )
        .unwrap_or_else(|e| panic!("{enc}: {e:?}"));
        assert!(
            s.parameters
                .contains(&("client_encoding".to_string(), "UTF8".to_string())),
            "{:?}",
            s.parameters
        );
        let r = s.query("SHOW statement_timeout");
        assert_eq!(RawSession::first_column(&r), [Some("4321ms".to_string())]);
        let r = s.query("SHOW application_name");
        assert_eq!(RawSession::first_column(&r), [Some("a b".to_string())]);
        s.close();
    }
    // What was forwarded is in the session's audit record.
    let start = poll("a session_start with parameters", || {
        let list = fx.bob.get_ok(&format!("/v1/sessions?user={ALICE}"));
        for s in list.as_array().cloned().unwrap_or_default() {
            let id = s["id"].as_str().unwrap_or_default().to_string();
            let events = fx.bob.get_ok(&format!("/v1/sessions/{id}/events"));
            if let Some(e) = events
                .as_array()
                .and_then(|e| e.iter().find(|e| e["kind"] == "session_start"))
                .filter(|e| e.get("parameters").is_some())
            {
                return Ok(e.clone());
            }
        }
        Err("none yet".to_string())
    });
    let p = &start["parameters"];
    assert_eq!(p["client_encoding"], "UTF8", "{start}");
    assert_eq!(p["statement_timeout"], "4321", "{start}");
    assert_eq!(p["DateStyle"], "ISO", "{start}");
}

#[test]
fn a_role_setting_that_turns_strings_nonstandard_makes_every_statement_unknown() {
    let fx = Fixture::new("1s", 10);
    // As a DBA would, directly on the server, for this database only (the role is shared).
    fx.sql(&format!(
        "ALTER ROLE app IN DATABASE \"{}\" SET standard_conforming_strings = off;",
        fx.env.db
    ));
    let mut s = alice(&fx);
    assert!(
        s.parameters
            .contains(&("standard_conforming_strings".into(), "off".into())),
        "{:?}",
        s.parameters
    );
    for sql in [
        "SELECT 1",
        r"SELECT 'a\' , ' ; DELETE FROM t; -- '",
        "SHOW standard_conforming_strings",
    ] {
        let r = s.query(sql);
        assert_refused_naming(&r, "standard_conforming_strings");
    }
    assert_eq!(rows(&fx, "t"), "10");
    // Not even the way back is read while the proxy may misread it: reconnecting is.
    let r = s.query("SET standard_conforming_strings = on");
    assert_refused_naming(&r, "standard_conforming_strings");
    s.close();
}

#[test]
fn an_approved_change_of_a_pinned_setting_taints_the_session() {
    let fx = Fixture::with("30s", 10, |b| {
        b.rule(
            "name = \"the rest needs an SRE\"\nclasses = [\"unknown\", \"admin\"]\naction = \"review\"\n\
             approvers = [\"group:sre\"]",
        )
    });
    let mut s = alice(&fx);
    s.stream
        .write_all(&query_message("SET standard_conforming_strings = off"))
        .expect("send");
    let req = wait_for_pending(&fx.bob, ALICE);
    let id = req["id"].as_str().expect("id").to_string();
    fx.bob.approve_ok(&id, "testing the watch", None);
    let r = read_until(&mut s.stream, b'Z');
    assert_eq!(code(&r), None, "{}", summary(&r));
    // The server now reads backslashes in plain strings: every statement is unknown.
    s.stream
        .write_all(&query_message(r"SELECT 'a\' , ' ; DELETE FROM t; -- '"))
        .expect("send");
    let req = wait_for_pending(&fx.bob, ALICE);
    assert_eq!(req["class"], "unknown", "{req}");
    let id = req["id"].as_str().expect("id").to_string();
    fx.bob.deny_ok(&id, "no");
    let r = read_until(&mut s.stream, b'Z');
    assert_eq!(code(&r).as_deref(), Some("42501"), "{}", summary(&r));
    assert_eq!(rows(&fx, "t"), "10");
    s.close();

    // Pipelined: the attack is read by the proxy right after the approved SET goes out,
    // before the server has said what it changed. It must not pass as a read.
    let mut s = alice(&fx);
    let mut both = query_message("SELECT set_config('standard_conforming_strings', 'off', false)");
    both.extend_from_slice(&query_message(r"SELECT 'a\' , ' ; DELETE FROM t; -- '"));
    s.stream.write_all(&both).expect("send");
    let req = wait_for_pending(&fx.bob, ALICE);
    assert!(
        req["statement"]
            .as_str()
            .unwrap_or_default()
            .contains("set_config"),
        "{req}"
    );
    fx.bob
        .approve_ok(req["id"].as_str().expect("id"), "testing the race", None);
    let r = read_until(&mut s.stream, b'Z');
    assert_eq!(code(&r), None, "{}", summary(&r));
    let req = wait_for_pending(&fx.bob, ALICE);
    assert_eq!(req["class"], "unknown", "{req}");
    fx.bob.deny_ok(req["id"].as_str().expect("id"), "no");
    let r = read_until(&mut s.stream, b'Z');
    assert_eq!(code(&r).as_deref(), Some("42501"), "{}", summary(&r));
    assert_eq!(rows(&fx, "t"), "10");
    s.close();
}

fn pending_tables(req: &Value) -> Vec<String> {
    req["tables"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn unqualified_names_follow_the_session_search_path() {
    let fx = Fixture::new("30s", 10);
    fx.sql(
        "CREATE SCHEMA secret AUTHORIZATION app;\n\
         CREATE TABLE secret.t (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);\n\
         CREATE TABLE secret.log (n int);\n\
         INSERT INTO secret.t SELECT g FROM generate_series(1, 5) g;\n\
         INSERT INTO secret.log SELECT g FROM generate_series(1, 5) g;\n\
         ALTER TABLE secret.t OWNER TO app; ALTER TABLE secret.log OWNER TO app;",
    );
    let mut s = alice(&fx);
    let r = s.query("SET search_path = secret");
    assert_eq!(code(&r), None, "{}", summary(&r));

    // "log writes pass" names public.log: it must not cover a log that may be secret.log.
    s.stream
        .write_all(&query_message("DELETE FROM log"))
        .expect("send");
    let req = wait_for_pending(&fx.bob, ALICE);
    assert_eq!(req["rule"], WRITE_RULE, "{req}");
    assert!(
        pending_tables(&req).contains(&"secret.log".to_string()),
        "{req}"
    );
    fx.bob
        .deny_ok(req["id"].as_str().expect("id"), "not that one");
    let r = read_until(&mut s.stream, b'Z');
    assert_eq!(code(&r).as_deref(), Some("42501"), "{}", summary(&r));
    assert_eq!(rows(&fx, "secret.log"), "5");

    // The approver sees the table the server will touch.
    s.stream
        .write_all(&query_message("DELETE FROM t"))
        .expect("send");
    let req = wait_for_pending(&fx.bob, ALICE);
    assert!(
        pending_tables(&req).contains(&"secret.t".to_string()),
        "{req}"
    );
    fx.bob.deny_ok(req["id"].as_str().expect("id"), "no");
    let r = read_until(&mut s.stream, b'Z');
    assert_eq!(code(&r).as_deref(), Some("42501"), "{}", summary(&r));
    assert_eq!(rows(&fx, "secret.t"), "5");
    assert_eq!(rows(&fx, "public.t"), "10");

    // Back to the default path (a lone RESET, confirmed idle): public.log passes again.
    let r = s.query("RESET search_path");
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = s.query("INSERT INTO log VALUES (1)");
    assert_eq!(code(&r), None, "{}", summary(&r));
    assert_eq!(rows(&fx, "public.log"), "1");

    // SET LOCAL inside a transaction: the log write is held while it may be secret.log.
    let r = s.query("BEGIN");
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = s.query("SET LOCAL search_path = secret");
    assert_eq!(code(&r), None, "{}", summary(&r));
    s.stream
        .write_all(&query_message("DELETE FROM log"))
        .expect("send");
    let req = wait_for_pending(&fx.bob, ALICE);
    assert!(
        pending_tables(&req).contains(&"secret.log".to_string()),
        "{req}"
    );
    fx.bob.deny_ok(req["id"].as_str().expect("id"), "no");
    let r = read_until(&mut s.stream, b'Z');
    assert_eq!(code(&r).as_deref(), Some("42501"), "{}", summary(&r));
    let r = s.query("ROLLBACK");
    assert_eq!(code(&r), None, "{}", summary(&r));
    assert_eq!(rows(&fx, "secret.log"), "5");
    // The transaction ended: SET LOCAL is gone, and so is secret.log from the names.
    let r = s.query("INSERT INTO log VALUES (2)");
    assert_eq!(code(&r), None, "{}", summary(&r));
    assert_eq!(rows(&fx, "public.log"), "2");
    s.close();
}

/// psql sends `client_encoding` from the locale (libpq's `auto`) unless PGCLIENTENCODING
/// says otherwise: in a C locale that is SQL_ASCII, in a UTF-8 one UTF8. Both connect and
/// get UTF8; an encoding other than UTF8 is refused at start-up, naming the parameter.
#[test]
fn psql_connects_with_the_encoding_of_its_locale() {
    let fx = Fixture::new("1s", 10);
    let conninfo = fx.env.alice();
    for (locale, encoding) in [
        ("C", None),
        ("C.UTF-8", None),
        ("C", Some("UTF8")),
        ("C", Some("utf-8")),
    ] {
        let mut cmd = support::psql_cmd(&conninfo, ALICE_PASSWORD);
        cmd.env("LC_ALL", locale).env("LANG", locale);
        if let Some(e) = encoding {
            cmd.env("PGCLIENTENCODING", e);
        }
        cmd.args([
            "-At",
            "-c",
            "SHOW client_encoding",
            "-c",
            "SELECT count(*) FROM t",
        ]);
        let out = support::run_timeout(&mut cmd, None, std::time::Duration::from_secs(60));
        let text = support::output_text(&out);
        assert!(out.status.success(), "{locale} {encoding:?}: {text}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "UTF8\n10",
            "{locale} {encoding:?}: {text}"
        );
    }
    let mut cmd = support::psql_cmd(&conninfo, ALICE_PASSWORD);
    cmd.env("PGCLIENTENCODING", "LATIN1")
        .args(["-At", "-c", "SELECT 1"]);
    let out = support::run_timeout(&mut cmd, None, std::time::Duration::from_secs(60));
    let text = support::output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("client_encoding") && text.contains("UTF8"),
        "{text}"
    );
}

/// The path a session starts with is the server's: a role's setting counts.
#[test]
fn a_role_search_path_is_the_starting_path() {
    let fx = Fixture::new("30s", 10);
    fx.sql(
        "CREATE SCHEMA secret AUTHORIZATION app;\n\
         CREATE TABLE secret.log (n int);\n\
         INSERT INTO secret.log SELECT g FROM generate_series(1, 5) g;\n\
         ALTER TABLE secret.log OWNER TO app;",
    );
    fx.sql(&format!(
        "ALTER ROLE app IN DATABASE \"{}\" SET search_path = secret;",
        fx.env.db
    ));
    let mut s = alice(&fx);
    s.stream
        .write_all(&query_message("DELETE FROM log"))
        .expect("send");
    let req = wait_for_pending(&fx.bob, ALICE);
    assert_eq!(req["rule"], WRITE_RULE, "{req}");
    assert_eq!(pending_tables(&req), ["public.log", "secret.log"], "{req}");
    fx.bob.deny_ok(req["id"].as_str().expect("id"), "no");
    let r = read_until(&mut s.stream, b'Z');
    assert_eq!(code(&r).as_deref(), Some("42501"), "{}", summary(&r));
    assert_eq!(rows(&fx, "secret.log"), "5");
    // The client's own first statement is the first one the server sees from it.
    let r = s.query("SELECT count(*) FROM secret.log");
    assert_eq!(RawSession::first_column(&r), [Some("5".to_string())]);
    s.close();
}
