//! What the server will run, decided when it runs (issue 12, findings 10 and 11): an SQL
//! `EXECUTE name` is looked up when its Execute or Query arrives, not at Parse, and a Bind
//! behind a re-Parse the server refuses binds what the server kept. Through jitgate (reads
//! pass, writes wait for an SRE, DDL for two), every check of the outcome reads the
//! database directly, and the request must show the statement that would run.

#[path = "support/api.rs"]
mod api;
mod support;

use std::io::Write;

use api::{Fixture, held_id};
use support::wire::extended::{bind, execute, parse, sync};
use support::wire::{Fields, RawSession, first_error, read_message, read_until, summary};
use support::{ALICE, ALICE_PASSWORD, APP_TARGET};

type Msgs = Vec<(u8, Vec<u8>)>;

fn login(fx: &Fixture) -> RawSession {
    RawSession::login(fx.env.jg.pg_addr(), ALICE, APP_TARGET, ALICE_PASSWORD, &[])
        .unwrap_or_else(|e| panic!("raw login as alice: {e:?}"))
}

fn code(msgs: &Msgs) -> Option<String> {
    first_error(msgs).map(|f| f.code().to_string())
}

/// Sends `msgs` and a Sync; reads up to ReadyForQuery; asserts no error.
fn round_ok(s: &mut RawSession, msgs: &[Vec<u8>]) {
    let mut out: Vec<u8> = msgs.concat();
    out.extend_from_slice(&sync());
    s.stream.write_all(&out).expect("send");
    let r = read_until(&mut s.stream, b'Z');
    assert_eq!(code(&r), None, "{}", summary(&r));
}

fn query_ok(s: &mut RawSession, sql: &str) {
    let r = s.query(sql);
    assert_eq!(code(&r), None, "{sql}: {}", summary(&r));
}

/// Sends `bytes`; reads until the hold notice and returns its request id, or panics at the
/// `ready`-th ReadyForQuery without one.
fn send_until_held(s: &mut RawSession, bytes: &[u8], ready: usize) -> String {
    s.stream.write_all(bytes).expect("send");
    let mut seen: Msgs = Vec::new();
    loop {
        let m = read_message(&mut s.stream)
            .unwrap_or_else(|e| panic!("reading: {e}; got {}", summary(&seen)))
            .unwrap_or_else(|| panic!("closed; got {}", summary(&seen)));
        if m.0 == b'N'
            && let Some(id) = held_id(&String::from_utf8_lossy(&m.1))
        {
            return id;
        }
        seen.push(m);
        let readies = seen.iter().filter(|(t, _)| *t == b'Z').count();
        assert!(readies < ready, "nothing was held: {}", summary(&seen));
    }
}

/// Denies request `id` as bob and reads the refusal up to its ReadyForQuery. The hold notice
/// may have overtaken the answer to an earlier Sync of the pipeline (a notice can come at any
/// time), so that answer may still be ahead of the refusal.
fn deny(fx: &Fixture, s: &mut RawSession, id: &str) {
    fx.bob.deny_ok(id, "not this");
    let mut r = read_until(&mut s.stream, b'Z');
    if first_error(&r).is_none_or(|f| f.code() != "42501") {
        r.extend(read_until(&mut s.stream, b'Z'));
    }
    let codes: Vec<String> = r
        .iter()
        .filter(|(t, _)| *t == b'E')
        .map(|(_, b)| Fields::parse(b).code().to_string())
        .collect();
    assert_eq!(
        codes.last().map(String::as_str),
        Some("42501"),
        "{}",
        summary(&r)
    );
}

fn rows(fx: &Fixture) -> String {
    fx.sql("SELECT count(*) FROM t;")
}

#[test]
fn execute_is_resolved_when_it_runs() {
    let fx = Fixture::new("60s", 10);
    let mut s = login(&fx);
    // q1 and q2 run p, which is a SELECT when they are parsed.
    round_ok(
        &mut s,
        &[
            parse(b"p", "SELECT 1"),
            parse(b"q1", "EXECUTE p"),
            parse(b"q2", "EXPLAIN ANALYZE EXECUTE p"),
        ],
    );
    query_ok(&mut s, "BEGIN");
    // A portal of q1, bound while p is still the SELECT.
    round_ok(&mut s, &[bind(b"c", b"q1")]);
    // p becomes a DELETE (protocol Parse is never gated).
    query_ok(&mut s, "DEALLOCATE p");
    round_ok(&mut s, &[parse(b"p", "DELETE FROM t WHERE id > 5")]);

    let runs = |what: &str, bytes: Vec<u8>, s: &mut RawSession| {
        let id = send_until_held(s, &bytes, 1);
        let r = fx.bob.request(&id);
        let shown = r["statement"].as_str().unwrap_or_default().to_string();
        assert!(
            shown.contains("DELETE FROM t WHERE id > 5"),
            "{what}: the approver must see the DELETE that runs, not {shown:?}"
        );
        assert_eq!(r["class"], "write", "{what}: {r}");
        deny(&fx, s, &id);
        assert_eq!(rows(&fx), "10", "{what}: the DELETE ran");
    };
    runs(
        "the portal bound before",
        [execute(b"c"), sync()].concat(),
        &mut s,
    );
    query_ok(&mut s, "ROLLBACK");
    runs(
        "a statement that runs EXECUTE",
        [bind(b"", b"q1"), execute(b""), sync()].concat(),
        &mut s,
    );
    runs(
        "EXPLAIN ANALYZE EXECUTE",
        [bind(b"", b"q2"), execute(b""), sync()].concat(),
        &mut s,
    );
    runs(
        "a simple Query",
        support::wire::query_message("EXECUTE p"),
        &mut s,
    );
    assert_eq!(rows(&fx), "10");
    s.close();
}

#[test]
fn a_failed_reparse_shows_the_statement_the_server_kept() {
    let fx = Fixture::new("60s", 10);
    let mut s = login(&fx);
    round_ok(&mut s, &[parse(b"p", "DELETE FROM t WHERE id > 5")]);
    // One pipeline: the re-Parse fails (42P05, the server keeps the DELETE), then p runs.
    let pipeline = [
        parse(b"p", "CREATE TABLE sneaky (a int)"),
        sync(),
        bind(b"", b"p"),
        execute(b""),
        sync(),
    ]
    .concat();
    let id = send_until_held(&mut s, &pipeline, 2);
    let r = fx.bob.request(&id);
    assert_eq!(r["statement"], "DELETE FROM t WHERE id > 5", "{r}");
    assert_eq!(r["class"], "write", "{r}");
    // The audit trail records the statement that would run, not the refused text.
    let session = r["session"].as_str().unwrap_or_default();
    api::poll("the held statement in the audit trail", || {
        let events = fx.bob.get_ok(&format!("/v1/sessions/{session}/events"));
        let last = events
            .as_array()
            .and_then(|a| a.iter().rfind(|e| e["kind"] == "statement"))
            .map(|e| e["text"].clone());
        match last {
            Some(t) if t == "DELETE FROM t WHERE id > 5" => Ok(()),
            other => Err(format!("last statement event: {other:?}")),
        }
    });
    deny(&fx, &mut s, &id);
    assert_eq!(rows(&fx), "10", "the DELETE ran");

    // The same through SQL EXECUTE in a simple Query behind the failing re-Parse.
    let pipeline = [
        parse(b"p", "SELECT 1"),
        sync(),
        support::wire::query_message("EXECUTE p"),
    ]
    .concat();
    let id = send_until_held(&mut s, &pipeline, 2);
    let shown = fx.bob.request(&id)["statement"].clone();
    assert!(
        shown
            .as_str()
            .unwrap_or_default()
            .contains("DELETE FROM t WHERE id > 5"),
        "{shown}"
    );
    deny(&fx, &mut s, &id);
    assert_eq!(rows(&fx), "10", "the DELETE ran");
    s.close();
}

#[test]
fn a_grant_on_the_refused_text_does_not_cover_what_runs() {
    let fx = Fixture::with("60s", 10, |b| {
        b.rule(
            "name = \"unknown needs an SRE\"\nclasses = [\"unknown\"]\naction = \"review\"\n\
             approvers = [\"group:sre\"]\nmax_grant = \"30m\"",
        )
    });
    let mut s = login(&fx);
    // An exact-text grant on CHECKPOINT (it names no table).
    let id = send_until_held(&mut s, &support::wire::query_message("CHECKPOINT"), 1);
    fx.bob.approve_ok(&id, "fine", Some(600));
    read_until(&mut s.stream, b'Z');
    assert_eq!(fx.bob.grants().len(), 1, "a grant: {:?}", fx.bob.grants());

    round_ok(&mut s, &[parse(b"p", "CREATE TABLE sneaky (a int)")]);
    let pipeline = [
        parse(b"p", "CHECKPOINT"),
        sync(),
        bind(b"", b"p"),
        execute(b""),
        sync(),
    ]
    .concat();
    let id = send_until_held(&mut s, &pipeline, 2);
    let r = fx.bob.request(&id);
    assert_eq!(r["statement"], "CREATE TABLE sneaky (a int)", "{r}");
    fx.bob.deny_ok(&id, "no");
    read_until(&mut s.stream, b'Z');
    assert_eq!(
        fx.sql("SELECT to_regclass('public.sneaky') IS NULL;"),
        "t",
        "CREATE TABLE ran without its approvals"
    );
    s.close();
}

#[test]
fn a_grant_for_an_execute_covers_only_the_statement_it_ran() {
    let fx = Fixture::new("60s", 10);
    let mut s = login(&fx);
    query_ok(&mut s, "PREPARE p AS SELECT 1");
    // p becomes an UPDATE of one row over the extended protocol (not gated), and its
    // EXECUTE is approved with a grant: the grant is for that exact text.
    query_ok(&mut s, "DEALLOCATE p");
    round_ok(&mut s, &[parse(b"p", "UPDATE t SET v = 1 WHERE id = 1")]);
    let id = send_until_held(&mut s, &support::wire::query_message("EXECUTE p"), 1);
    let shown = fx.bob.request(&id)["statement"].clone();
    assert!(
        shown
            .as_str()
            .unwrap_or_default()
            .contains("UPDATE t SET v = 1 WHERE id = 1"),
        "{shown}"
    );
    fx.bob.approve_ok(&id, "one row", Some(600));
    let r = read_until(&mut s.stream, b'Z');
    assert_eq!(code(&r), None, "{}", summary(&r));
    assert_eq!(fx.row("t", 1), Some(1));

    // The same words, another statement behind them.
    query_ok(&mut s, "DEALLOCATE p");
    round_ok(&mut s, &[parse(b"p", "DELETE FROM t WHERE id > 5")]);
    let id = send_until_held(&mut s, &support::wire::query_message("EXECUTE p"), 1);
    deny(&fx, &mut s, &id);
    assert_eq!(rows(&fx), "10", "the grant ran the DELETE");
    s.close();
}
