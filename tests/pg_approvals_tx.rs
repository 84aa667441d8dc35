//! Holds and protocol semantics: a refusal inside a transaction block aborts it exactly as a
//! PostgreSQL error would (status E, 25P02, COMMIT = ROLLBACK, savepoints), the extended
//! protocol holds at Execute and discards to Sync, and a CancelRequest or a disconnect
//! withdraws a held request.

#[path = "support/api.rs"]
mod api;
mod support;

use std::io::Write;

use api::{Fixture, WRITE_RULE, failure, finish, held_id, held_notice, wait_for_pending};
use support::wire::{
    Fields, RawSession, first_error, message, query_message, read_message, summary,
};
use support::{ALICE, ALICE_PASSWORD, APP_TARGET};
use tokio_postgres::NoTls;

type Msgs = Vec<(u8, Vec<u8>)>;

fn login(fx: &Fixture) -> RawSession {
    RawSession::login(fx.env.jg.pg_addr(), ALICE, APP_TARGET, ALICE_PASSWORD, &[])
        .unwrap_or_else(|e| panic!("raw login as alice: {e:?}"))
}

/// Transaction status of the ReadyForQuery that ends `msgs`.
fn status(msgs: &Msgs) -> char {
    match msgs.last() {
        Some((b'Z', body)) => body[0] as char,
        _ => panic!("no ReadyForQuery at the end: {}", summary(msgs)),
    }
}

/// CommandComplete tags in `msgs`.
fn tags(msgs: &Msgs) -> Vec<String> {
    msgs.iter()
        .filter(|(t, _)| *t == b'C')
        .map(|(_, b)| String::from_utf8_lossy(&b[..b.len() - 1]).into_owned())
        .collect()
}

fn error_code(msgs: &Msgs) -> String {
    first_error(msgs)
        .map(|f| f.code().to_string())
        .unwrap_or_else(|| panic!("no ErrorResponse: {}", summary(msgs)))
}

/// A simple Query that must not be held: its messages up to ReadyForQuery.
fn run(s: &mut RawSession, sql: &str) -> Msgs {
    let msgs = s.query(sql);
    assert!(
        !msgs.iter().any(|(t, _)| *t == b'N'),
        "{sql}: unexpected notice: {}",
        summary(&msgs)
    );
    msgs
}

/// Reads until the hold notice; returns the request id and what came before it.
fn read_hold(s: &mut RawSession) -> (String, Msgs) {
    let mut before = Vec::new();
    loop {
        match read_message(&mut s.stream) {
            Ok(Some((b'N', body))) => {
                let f = Fields::parse(&body);
                let id = held_id(f.message())
                    .unwrap_or_else(|| panic!("notice without a request id: {:?}", f.0));
                assert_eq!(f.message(), held_notice(&id, WRITE_RULE));
                assert_eq!(f.severity(), "NOTICE", "{:?}", f.0);
                return (id, before);
            }
            Ok(Some(m)) => {
                assert_ne!(m.0, b'Z', "finished without a hold: {}", summary(&before));
                before.push(m);
            }
            other => panic!("no hold notice: {other:?}; got {}", summary(&before)),
        }
    }
}

/// Reads the rest of a response up to ReadyForQuery.
fn read_rest(s: &mut RawSession) -> Msgs {
    support::wire::read_until(&mut s.stream, b'Z')
}

/// Sends a simple Query that will be held; returns the request id.
fn send_held(s: &mut RawSession, sql: &str) -> String {
    s.stream.write_all(&query_message(sql)).unwrap();
    read_hold(s).0
}

#[test]
fn denial_inside_a_transaction_aborts_it() {
    let fx = Fixture::new("20s", 10);
    let mut s = login(&fx);
    assert_eq!(status(&run(&mut s, "BEGIN")), 'T');
    assert_eq!(status(&run(&mut s, "INSERT INTO log VALUES (1)")), 'T');
    let id = send_held(&mut s, "DELETE FROM t WHERE id = 1");
    fx.bob.deny_ok(&id, "not in a transaction");
    let refused = read_rest(&mut s);
    let err = first_error(&refused).expect("an ErrorResponse");
    assert_eq!(err.code(), "42501", "{:?}", err.0);
    assert!(
        err.message().contains("not in a transaction"),
        "{:?}",
        err.0
    );
    assert_eq!(err.severity(), "ERROR", "{:?}", err.0);
    assert_eq!(status(&refused), 'E', "{}", summary(&refused));

    let next = run(&mut s, "SELECT 1");
    assert_eq!(error_code(&next), "25P02", "{}", summary(&next));
    assert_eq!(status(&next), 'E');
    let next = run(&mut s, "INSERT INTO log VALUES (2)");
    assert_eq!(error_code(&next), "25P02", "{}", summary(&next));
    let commit = run(&mut s, "COMMIT");
    assert_eq!(tags(&commit), ["ROLLBACK"], "{}", summary(&commit));
    assert_eq!(status(&commit), 'I');

    assert_eq!(
        fx.sql("SELECT count(*) FROM log;"),
        "0",
        "the INSERT committed"
    );
    assert_eq!(fx.row("t", 1), Some(0));
    let ok = run(&mut s, "SELECT 42");
    assert_eq!(RawSession::first_column(&ok), [Some("42".to_string())]);
    assert_eq!(status(&ok), 'I');
    s.close();
}

#[test]
fn savepoint_recovers_from_a_denial() {
    let fx = Fixture::new("20s", 10);
    let mut s = login(&fx);
    run(&mut s, "BEGIN");
    run(&mut s, "INSERT INTO log VALUES (7)");
    assert_eq!(status(&run(&mut s, "SAVEPOINT before_delete")), 'T');
    let id = send_held(&mut s, "DELETE FROM t WHERE id = 2");
    fx.bob.deny_ok(&id, "no");
    let refused = read_rest(&mut s);
    assert_eq!(error_code(&refused), "42501");
    assert_eq!(status(&refused), 'E');
    assert_eq!(error_code(&run(&mut s, "SELECT 1")), "25P02");
    let back = run(&mut s, "ROLLBACK TO SAVEPOINT before_delete");
    assert_eq!(tags(&back), ["ROLLBACK"], "{}", summary(&back));
    assert_eq!(status(&back), 'T');
    run(&mut s, "INSERT INTO log VALUES (8)");
    let commit = run(&mut s, "COMMIT");
    assert_eq!(tags(&commit), ["COMMIT"], "{}", summary(&commit));
    assert_eq!(status(&commit), 'I');
    assert_eq!(
        fx.sql("SELECT string_agg(n::text, ',' ORDER BY n) FROM log;"),
        "7,8"
    );
    assert_eq!(fx.row("t", 2), Some(0));
    s.close();
}

#[test]
fn approval_inside_a_transaction_runs_in_it() {
    let fx = Fixture::new("20s", 10);
    let mut s = login(&fx);
    run(&mut s, "BEGIN");
    run(&mut s, "INSERT INTO log VALUES (3)");
    let id = send_held(&mut s, "DELETE FROM t WHERE id = 3");
    fx.bob.approve_ok(&id, "ok", None);
    let done = read_rest(&mut s);
    assert_eq!(tags(&done), ["DELETE 1"], "{}", summary(&done));
    assert_eq!(status(&done), 'T');
    // Not visible outside until COMMIT: the DELETE ran inside the client's transaction.
    assert_eq!(fx.row("t", 3), Some(0));
    let commit = run(&mut s, "COMMIT");
    assert_eq!(tags(&commit), ["COMMIT"]);
    assert_eq!(fx.row("t", 3), None);
    assert_eq!(fx.sql("SELECT count(*) FROM log;"), "1");
    s.close();
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(name.as_bytes());
    b.push(0);
    b.extend_from_slice(sql.as_bytes());
    b.push(0);
    b.extend_from_slice(&0i16.to_be_bytes());
    message(b'P', &b)
}

/// Bind the unnamed portal to statement `stmt` with one text parameter.
fn bind(stmt: &str, param: &str) -> Vec<u8> {
    let mut b = vec![0u8];
    b.extend_from_slice(stmt.as_bytes());
    b.push(0);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&(param.len() as i32).to_be_bytes());
    b.extend_from_slice(param.as_bytes());
    b.extend_from_slice(&0i16.to_be_bytes());
    message(b'B', &b)
}

fn execute() -> Vec<u8> {
    message(b'E', &[0, 0, 0, 0, 0])
}

#[test]
fn pipeline_with_two_executes_denial_discards_to_sync() {
    let fx = Fixture::new("20s", 10);
    let mut s = login(&fx);
    let mut out = parse("del", "DELETE FROM t WHERE id = $1");
    out.extend(bind("del", "1"));
    out.extend(execute());
    out.extend(bind("del", "2"));
    out.extend(execute());
    out.extend(message(b'S', &[]));
    s.stream.write_all(&out).unwrap();

    // The server sends nothing before Sync (it does not flush ParseComplete early); the
    // notices come from the proxy.
    let (first, mut all) = read_hold(&mut s);
    fx.bob.approve_ok(&first, "first ok", None);
    let (second, between) = read_hold(&mut s);
    assert_ne!(first, second);
    all.extend(between);
    fx.bob.deny_ok(&second, "second not ok");
    all.extend(read_rest(&mut s));
    let sequence: String = all.iter().map(|m| m.0 as char).collect();
    assert_eq!(sequence, "12C2EZ", "{}", summary(&all));
    assert_eq!(tags(&all), ["DELETE 1"], "{}", summary(&all));
    let err = first_error(&all).expect("ErrorResponse");
    assert_eq!(err.code(), "42501", "{}", summary(&all));
    assert!(err.message().contains("second not ok"), "{:?}", err.0);
    assert_eq!(status(&all), 'I', "{}", summary(&all));
    // Up to Sync it was one implicit transaction: the error rolled back the first DELETE too.
    assert_eq!(fx.row("t", 1), Some(0));
    assert_eq!(fx.row("t", 2), Some(0));
    assert!(fx.bob.pending(Some(ALICE)).is_empty());

    // The session and its named statement still work.
    let mut out = bind("del", "3");
    out.extend(execute());
    out.extend(message(b'S', &[]));
    s.stream.write_all(&out).unwrap();
    let (third, _) = read_hold(&mut s);
    fx.bob.approve_ok(&third, "ok", None);
    let rest = read_rest(&mut s);
    assert_eq!(tags(&rest), ["DELETE 1"], "{}", summary(&rest));
    assert_eq!(status(&rest), 'I');
    assert_eq!(fx.row("t", 3), None);
    let ok = run(&mut s, "SELECT 42");
    assert_eq!(RawSession::first_column(&ok), [Some("42".to_string())]);
    s.close();
}

#[tokio::test(flavor = "multi_thread")]
async fn prepared_delete_is_held_at_execute() {
    let fx = Fixture::new("20s", 10);
    let mut s = fx.alice_session().await;
    let del = s
        .client
        .prepare("DELETE FROM t WHERE id > $1")
        .await
        .expect("prepare passes without a hold");
    assert!(fx.bob.pending(None).is_empty(), "Parse/Describe were held");

    let (c, st) = (s.client.clone(), del.clone());
    let h = tokio::spawn(async move { c.execute(&st, &[&7i32]).await });
    let id = held_id(&s.notice().await).expect("request id");
    let req = wait_for_pending(&fx.bob, ALICE);
    assert_eq!(req["id"], id.as_str());
    assert_eq!(req["statement"], "DELETE FROM t WHERE id > $1", "{req}");
    assert_eq!(req["class"], "write", "{req}");
    fx.bob.approve_ok(&id, "ok", None);
    assert_eq!(finish(h).await.expect("approved execute"), 3);
    assert_eq!(fx.sql("SELECT count(*) FROM t;"), "7");

    let (c, st) = (s.client.clone(), del.clone());
    let h = tokio::spawn(async move { c.execute(&st, &[&0i32]).await });
    let id = held_id(&s.notice().await).expect("request id");
    fx.bob.deny_ok(&id, "everything? no");
    let (code, msg) = failure(finish(h).await);
    assert_eq!(code, "42501", "{msg}");
    assert!(msg.contains("everything? no"), "{msg}");
    assert_eq!(fx.sql("SELECT count(*) FROM t;"), "7");
    // Usable after Sync, also through the extended protocol.
    let row = s
        .client
        .query_one("SELECT $1::int + 1", &[&41i32])
        .await
        .expect("query after a denied execute");
    assert_eq!(row.get::<_, i32>(0), 42);
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_while_held_withdraws_the_request() {
    let fx = Fixture::new("20s", 10);
    let mut s = fx.alice_session().await;
    let h = s.spawn_simple("DELETE FROM t WHERE id = 1");
    let id = held_id(&s.notice().await).expect("request id");
    wait_for_pending(&fx.bob, ALICE);
    s.client
        .cancel_token()
        .cancel_query(NoTls)
        .await
        .expect("send CancelRequest");
    let (code, msg) = failure(finish(h).await);
    assert_eq!(code, "57014", "{msg}");
    assert_eq!(fx.bob.wait_state(&id, "cancelled")["state"], "cancelled");
    api::assert_error("approve cancelled", &fx.bob.approve(&id, "late", None), 409);
    assert_eq!(fx.row("t", 1), Some(0));
    assert_eq!(s.value("SELECT 40 + 2").await, "42");

    // The same at Execute of a prepared statement.
    let del = s
        .client
        .prepare("DELETE FROM t WHERE id = $1")
        .await
        .unwrap();
    let (c, st) = (s.client.clone(), del.clone());
    let h = tokio::spawn(async move { c.execute(&st, &[&2i32]).await });
    let id = held_id(&s.notice().await).expect("request id");
    s.client.cancel_token().cancel_query(NoTls).await.unwrap();
    assert_eq!(failure(finish(h).await).0, "57014");
    assert_eq!(fx.bob.wait_state(&id, "cancelled")["state"], "cancelled");
    assert_eq!(fx.row("t", 2), Some(0));
    // A later hold on the same session is not affected by the earlier cancel.
    let (c, st) = (s.client.clone(), del.clone());
    let h = tokio::spawn(async move { c.execute(&st, &[&2i32]).await });
    let id = held_id(&s.notice().await).expect("request id");
    fx.bob.approve_ok(&id, "ok", None);
    assert_eq!(finish(h).await.expect("approved"), 1);
}

#[test]
fn disconnect_while_held_withdraws_the_request() {
    let fx = Fixture::new("20s", 10);
    let mut s = login(&fx);
    let id = send_held(&mut s, "DELETE FROM t WHERE id = 4");
    drop(s);
    assert_eq!(fx.bob.wait_state(&id, "cancelled")["state"], "cancelled");
    assert_eq!(fx.row("t", 4), Some(0));
    fx.env.assert_still_serving();
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_from_stdin_is_held_until_approved() {
    use futures_util::SinkExt;
    let fx = Fixture::new("20s", 10);
    let mut s = fx.alice_session().await;
    // tokio-postgres, extended protocol: held at Execute, then the data streams through.
    let c = s.client.clone();
    let h = tokio::spawn(async move {
        let sink = c.copy_in("COPY t2 (id) FROM STDIN").await?;
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from_static(b"101\n102\n")).await?;
        sink.finish().await
    });
    let id = held_id(&s.notice().await).expect("request id");
    let req = fx.bob.request(&id);
    assert_eq!(req["class"], "write", "{req}");
    assert_eq!(req["tables"], serde_json::json!(["public.t2"]), "{req}");
    fx.bob.approve_ok(&id, "ok", None);
    assert_eq!(finish(h).await.expect("approved COPY"), 2);
    assert_eq!(s.value("SELECT count(*) FROM t2 WHERE id > 100").await, "2");

    // Simple protocol, as psql sends it. (A COPY refused at Execute cannot be shown with
    // tokio-postgres: its copy_in loses the connection even on a direct PostgreSQL error.)
    let mut raw = login(&fx);
    let id = send_held(&mut raw, "COPY t2 (id) FROM STDIN");
    fx.bob.approve_ok(&id, "ok", None);
    let (tag, _) = read_message(&mut raw.stream)
        .unwrap()
        .expect("CopyInResponse");
    assert_eq!(tag as char, 'G');
    let mut out = message(b'd', b"103\n");
    out.extend(message(b'c', &[]));
    raw.stream.write_all(&out).unwrap();
    let done = read_rest(&mut raw);
    assert_eq!(tags(&done), ["COPY 1"], "{}", summary(&done));
    assert_eq!(status(&done), 'I');

    let id = send_held(&mut raw, "COPY t2 (id) FROM STDIN");
    fx.bob.deny_ok(&id, "no bulk loads");
    let refused = read_rest(&mut raw);
    assert_eq!(error_code(&refused), "42501", "{}", summary(&refused));
    assert!(
        !refused.iter().any(|(t, _)| *t == b'G'),
        "{}",
        summary(&refused)
    );
    assert_eq!(status(&refused), 'I');
    assert_eq!(fx.sql("SELECT count(*) FROM t2 WHERE id > 100;"), "3");
    let ok = run(&mut raw, "SELECT 42");
    assert_eq!(RawSession::first_column(&ok), [Some("42".to_string())]);
    raw.close();
}

#[tokio::test(flavor = "multi_thread")]
async fn prepared_statements_survive_an_extended_copy() {
    use futures_util::SinkExt;
    let fx = Fixture::new("20s", 10);
    let s = fx.alice_session().await;
    let sel = s
        .client
        .prepare("SELECT v FROM t WHERE id = $1")
        .await
        .unwrap();
    assert_eq!(s.client.query(&sel, &[&1i32]).await.unwrap().len(), 1);
    // Allowed by "log writes pass". copy_in sends Bind, Execute, Sync, CopyData, CopyDone,
    // Sync; PostgreSQL ignores the Sync that arrives in copy-in mode.
    let sink = s.client.copy_in("COPY log (n) FROM STDIN").await.unwrap();
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"1\n")).await.unwrap();
    assert_eq!(sink.finish().await.unwrap(), 1);
    // The read-only statement prepared before the COPY is still known to be a read.
    let r = s.client.query(&sel, &[&1i32]).await;
    assert!(
        r.is_ok(),
        "a prepared SELECT was refused after an extended-protocol COPY: {:?}",
        r.err()
            .map(|e| e.as_db_error().map(|d| d.message().to_string()))
    );
    let log = fx.env.jg.log();
    assert!(
        !log.contains("lost sync"),
        "the statement tracker lost sync:\n{}",
        fx.env.jg.log_tail(10)
    );
}
