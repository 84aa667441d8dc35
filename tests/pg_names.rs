//! Statement and portal names as PostgreSQL keys them: the server cuts a name at 63 bytes
//! (NAMEDATALEN − 1), so two names sharing their first 63 bytes are one statement or portal.
//! Through jitgate (reads pass, writes wait for an approval nobody gives) a colliding name
//! must never make a write look like a read; every check of the outcome reads the database
//! directly.

#[path = "support/api.rs"]
mod api;
mod support;

use std::io::Write;

use api::Fixture;
use support::wire::extended::{bind, close, execute, parse, sync};
use support::wire::{RawSession, first_error, read_until, summary};
use support::{ALICE, ALICE_PASSWORD, APP_TARGET};

type Msgs = Vec<(u8, Vec<u8>)>;

fn login(fx: &Fixture) -> RawSession {
    RawSession::login(fx.env.jg.pg_addr(), ALICE, APP_TARGET, ALICE_PASSWORD, &[])
        .unwrap_or_else(|e| panic!("raw login as alice: {e:?}"))
}

/// Sends `msgs` and a Sync; reads up to ReadyForQuery.
fn round(s: &mut RawSession, msgs: &[Vec<u8>]) -> Msgs {
    let mut out: Vec<u8> = msgs.concat();
    out.extend_from_slice(&sync());
    s.stream.write_all(&out).expect("send");
    read_until(&mut s.stream, b'Z')
}

fn code(msgs: &Msgs) -> Option<String> {
    first_error(msgs).map(|f| f.code().to_string())
}

fn held(msgs: &Msgs) -> bool {
    msgs.iter()
        .any(|(t, b)| *t == b'N' && String::from_utf8_lossy(b).contains("held for approval"))
}

/// `prefix` repeated to 63 bytes, then `tail`.
fn long(prefix: u8, tail: &str) -> Vec<u8> {
    let mut v = vec![prefix; 63];
    v.extend_from_slice(tail.as_bytes());
    v
}

fn count(fx: &Fixture, id: i32) -> String {
    fx.sql(&format!("SELECT count(*) FROM t WHERE id = {id};"))
}

#[test]
fn statement_names_sharing_63_bytes_are_one_statement() {
    let fx = Fixture::new("1s", 10);
    let mut s = login(&fx);
    let (a, b, c) = (long(b's', "A"), long(b's', "B"), long(b's', "C"));

    let r = round(&mut s, &[parse(&a, "SELECT 1")]);
    assert_eq!(code(&r), None, "{}", summary(&r));
    // The server takes B for A: the name exists.
    let r = round(&mut s, &[parse(&b, "INSERT INTO t VALUES (100)")]);
    assert_eq!(code(&r).as_deref(), Some("42P05"), "{}", summary(&r));
    let r = round(&mut s, &[bind(b"", &a), execute(b"")]);
    assert_eq!(code(&r), None, "SELECT 1 runs: {}", summary(&r));
    assert_eq!(count(&fx, 100), "0");

    // Closed under a third spelling, re-prepared under a fourth as an INSERT: executing the
    // first spelling runs the INSERT, so it must be held.
    let r = round(&mut s, &[close(b'S', &c)]);
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = round(&mut s, &[parse(&b, "INSERT INTO t VALUES (100)")]);
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = round(&mut s, &[bind(b"", &a), execute(b"")]);
    assert!(held(&r), "the INSERT must be held: {}", summary(&r));
    assert_eq!(code(&r).as_deref(), Some("57014"), "{}", summary(&r));
    assert_eq!(count(&fx, 100), "0", "INSERT ran without approval");

    // The server cuts at byte 63 even inside a character: 62 bytes + "é" (C3 A9) and
    // 62 bytes + "è" (C3 A8) are one name.
    let e1 = [vec![b'x'; 62], "é".as_bytes().to_vec()].concat();
    let e2 = [vec![b'x'; 62], "è".as_bytes().to_vec()].concat();
    let r = round(&mut s, &[parse(&e1, "SELECT 1")]);
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = round(&mut s, &[parse(&e2, "SELECT 1")]);
    assert_eq!(code(&r).as_deref(), Some("42P05"), "{}", summary(&r));
    let r = round(
        &mut s,
        &[
            close(b'S', &e2),
            parse(&e2, "INSERT INTO t VALUES (101)"),
            bind(b"", &e1),
            execute(b""),
        ],
    );
    assert!(held(&r), "the INSERT must be held: {}", summary(&r));
    assert_eq!(count(&fx, 101), "0", "INSERT ran without approval");
    s.close();
}

#[test]
fn portal_names_sharing_63_bytes_are_one_portal() {
    let fx = Fixture::new("1s", 10);
    let mut s = login(&fx);
    let (a, b, c) = (long(b'p', "A"), long(b'p', "B"), long(b'p', "C"));
    let r = round(
        &mut s,
        &[
            parse(b"sel", "SELECT 1"),
            parse(b"ins", "INSERT INTO t VALUES (102)"),
        ],
    );
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = s.query("BEGIN");
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = round(&mut s, &[bind(&a, b"sel")]);
    assert_eq!(code(&r), None, "{}", summary(&r));
    // The server takes B for A: the portal exists.
    let r = round(&mut s, &[bind(&b, b"ins")]);
    assert_eq!(code(&r).as_deref(), Some("42P03"), "{}", summary(&r));
    let r = s.query("ROLLBACK");
    assert_eq!(code(&r), None, "{}", summary(&r));

    let r = s.query("BEGIN");
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = round(&mut s, &[bind(&a, b"sel")]);
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = round(&mut s, &[close(b'P', &c), bind(&b, b"ins")]);
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = round(&mut s, &[execute(&a)]);
    assert!(held(&r), "the INSERT must be held: {}", summary(&r));
    // Whatever happened, try to keep it.
    s.query("COMMIT");
    assert_eq!(count(&fx, 102), "0", "INSERT ran without approval");
    s.close();
}

#[test]
fn sql_prepare_names_are_truncated_like_identifiers() {
    let fx = Fixture::new("1s", 10);
    let mut s = login(&fx);
    let p = |tail: &str| format!("{}{tail}", "q".repeat(63));
    let (a, b, c) = (p("a"), p("b"), p("c"));

    let r = s.query(&format!("PREPARE {a} AS SELECT 1"));
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = s.query(&format!("PREPARE {b} AS DELETE FROM t WHERE id = 1"));
    assert!(held(&r) || code(&r).is_some(), "{}", summary(&r));
    let r = s.query(&format!("EXECUTE {a}"));
    assert_eq!(code(&r), None, "SELECT 1 runs: {}", summary(&r));
    assert_eq!(count(&fx, 1), "1");

    // DEALLOCATE under one spelling, PREPARE a DELETE under another (the PREPARE itself is
    // a write: approve nothing, so prepare it over the extended protocol, not gated), then
    // EXECUTE the first spelling.
    let r = s.query(&format!("DEALLOCATE {c}"));
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = round(&mut s, &[parse(b.as_bytes(), "DELETE FROM t WHERE id = 1")]);
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = s.query(&format!("EXECUTE {a}"));
    assert!(held(&r), "the DELETE must be held: {}", summary(&r));
    assert_eq!(code(&r).as_deref(), Some("57014"), "{}", summary(&r));
    assert_eq!(count(&fx, 1), "1", "DELETE ran without approval");

    // The lexer cuts an identifier on a character boundary: 62 bytes + "é" is 62 bytes.
    let r = s.query(&format!("PREPARE \"{}é\" AS SELECT 2", "r".repeat(62)));
    assert_eq!(code(&r), None, "{}", summary(&r));
    let r = s.query(&format!("EXECUTE {}", "r".repeat(62)));
    assert_eq!(code(&r), None, "{}", summary(&r));
    assert_eq!(RawSession::first_column(&r), vec![Some("2".to_string())]);
    assert!(!held(&r), "{}", summary(&r));
    s.close();
}
