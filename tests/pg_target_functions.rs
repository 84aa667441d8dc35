//! Functions, operators and casts as the target resolves them (issue 12, finding 6), against
//! a real PostgreSQL through jitgate (reads pass, writes and code wait for an SRE, anything
//! else is refused). A catalogued pure name is not pure on a target where someone defined
//! the same name outside `pg_catalog`: each attack below is refused, the table still holds
//! every row, and the same statement run directly by the superuser proves the user object
//! really deletes them.

#[path = "support/api.rs"]
mod api;
mod support;

use std::time::{Duration, Instant};

use api::{Fixture, Session, failure, finish, poll};
use support::ALICE;

const ROWS: u32 = 10;

/// Code (CREATE FUNCTION) waits for one SRE, like writes.
fn fixture() -> Fixture {
    Fixture::with("30s", ROWS, |b| {
        b.rule(
            "name = \"code needs an SRE\"\nclasses = [\"code\"]\naction = \"review\"\n\
             approvers = [\"group:sre\"]",
        )
    })
}

fn rows(fx: &Fixture) -> String {
    fx.sql("SELECT count(*) FROM t;")
}

/// `sql` through jitgate as alice fails as refused by the policy (42501), and `t` keeps
/// every row.
async fn refused(fx: &Fixture, s: &Session, sql: &str) {
    let r = s.client.simple_query(sql).await;
    let (code, message) = failure(r);
    assert_eq!(code, "42501", "{sql}: {message}");
    assert_eq!(rows(fx), ROWS.to_string(), "{sql} changed the table");
}

/// As the superuser, straight to the database: the user object is real and deletes rows.
fn proven_harmful(fx: &Fixture, sql: &str) {
    fx.sql(sql);
    assert_eq!(rows(fx), "0", "{sql} was expected to empty the table");
}

/// A plpgsql function `name(args)` returning `returns` that empties `t` (owned by app, whom
/// jitgate connects as).
fn evil_function(name: &str, args: &str, returns: &str, value: &str) -> String {
    format!(
        "CREATE FUNCTION {name}({args}) RETURNS {returns} LANGUAGE plpgsql AS \
         $$ BEGIN DELETE FROM public.t; RETURN {value}; END $$;\n\
         ALTER FUNCTION {name}({args}) OWNER TO app;"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_lower_integer_is_not_the_pure_lower() {
    let fx = fixture();
    fx.sql(&evil_function("public.lower", "integer", "text", "'gone'"));
    let s = fx.alice_session().await;
    refused(&fx, &s, "SELECT lower(1)").await;
    refused(&fx, &s, "SELECT lower(id) FROM t2").await;
    // The built-in, named as such, and other pure functions still pass as reads.
    assert_eq!(s.value("SELECT pg_catalog.lower('ABC')").await, "abc");
    assert_eq!(s.value("SELECT upper('abc')").await, "ABC");
    assert_eq!(rows(&fx), ROWS.to_string());
    proven_harmful(&fx, "SELECT lower(1)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_operator_is_not_the_built_in_one() {
    let fx = fixture();
    fx.sql(&format!(
        "{}\nCREATE OPERATOR public.= (LEFTARG = integer, RIGHTARG = text, \
         FUNCTION = public.evil_eq);",
        evil_function("public.evil_eq", "integer, text", "boolean", "true")
    ));
    let s = fx.alice_session().await;
    // `id = '1'::text`: PostgreSQL finds the user's `=` (integer, text), an exact match.
    refused(&fx, &s, "SELECT count(*) FROM t2 WHERE id = '1'::text").await;
    refused(
        &fx,
        &s,
        "SELECT count(*) FROM t2 WHERE id IN (text '1', text '2')",
    )
    .await;
    assert_eq!(s.value("SELECT 1 + 1").await, "2");
    proven_harmful(&fx, "SELECT count(*) FROM t2 WHERE id = '1'::text");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cast_to_a_domain_with_a_user_check_is_not_read() {
    let fx = fixture();
    fx.sql(&format!(
        "{}\nCREATE DOMAIN public.d AS integer CHECK (public.evil_check(VALUE));",
        evil_function("public.evil_check", "integer", "boolean", "true")
    ));
    let s = fx.alice_session().await;
    refused(&fx, &s, "SELECT 1::d").await;
    refused(&fx, &s, "SELECT CAST(1 AS d)").await;
    refused(&fx, &s, "SELECT d '1'").await;
    assert_eq!(s.value("SELECT 1::int").await, "1");
    proven_harmful(&fx, "SELECT 1::d");
}

/// A function created through jitgate after the session started (approved) is caught: the
/// snapshot is read again once the CREATE's transaction ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_created_through_jitgate_later_is_caught() {
    let fx = fixture();
    let s = fx.alice_session().await;
    assert_eq!(s.value("SELECT upper('abc')").await, "ABC");
    // Prepared (protocol Parse) while `upper` is only PostgreSQL's: a read then.
    let prepared = s
        .client
        .prepare("SELECT upper($1::text)")
        .await
        .expect("prepare SELECT upper($1::text)");
    s.client
        .query(&prepared, &[&"abc"])
        .await
        .expect("the prepared read runs before the CREATE");
    let create = evil_function("public.upper", "integer", "text", "'gone'");
    // Only the CREATE (the owner is app already, as alice connects as app).
    let create = create
        .split('\n')
        .next()
        .expect("a CREATE line")
        .to_string();
    let h = s.spawn_simple(&create);
    let id = poll("the CREATE FUNCTION to be held", || {
        if let Some(r) = fx.bob.pending(Some(ALICE)).first() {
            Ok(r["id"].as_str().expect("a request id").to_string())
        } else if h.is_finished() {
            Ok(String::new())
        } else {
            Err("neither held nor finished".into())
        }
    });
    assert!(!id.is_empty(), "not held: {:?}", finish(h).await);
    fx.bob.approve_ok(&id, "ok", None);
    finish(h).await.expect("the approved CREATE FUNCTION runs");
    // Reads that resolve names pass again once the snapshot was re-read.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match s.client.simple_query("SELECT length('abc')").await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the catalog was not re-read after the CREATE: {e}"),
        }
    }
    refused(&fx, &s, "SELECT upper(1)").await;
    // The statement prepared before the CREATE is judged when it runs, under the catalog in
    // force now: its `upper` is no longer only PostgreSQL's.
    let (code, message) = failure(s.client.query(&prepared, &[&"abc"]).await);
    assert_eq!(
        code, "42501",
        "the prepared upper() after the CREATE: {message}"
    );
    assert_eq!(rows(&fx), ROWS.to_string());
    // A new session sees the same snapshot.
    let other = fx.alice_session().await;
    refused(&fx, &other, "SELECT upper(1)").await;
    proven_harmful(&fx, "SELECT upper(1)");
}

/// A protocol-level Parse that names a domain's OID as a parameter type: binding a value runs
/// the domain's CHECK, though the text is a plain `SELECT $1`.
#[test]
fn a_parameter_of_a_user_type_is_not_read() {
    use std::io::Write;
    use support::wire::{RawSession, extended, first_error, message, read_until, summary};

    let fx = fixture();
    fx.sql(&format!(
        "{}\nCREATE DOMAIN public.d AS integer CHECK (public.evil_check(VALUE));",
        evil_function("public.evil_check", "integer", "boolean", "true")
    ));
    let oid: u32 = fx
        .sql("SELECT 'public.d'::regtype::oid;")
        .parse()
        .expect("an OID");
    let mut s = RawSession::login(
        fx.env.jg.pg_addr(),
        ALICE,
        support::APP_TARGET,
        support::ALICE_PASSWORD,
        &[],
    )
    .unwrap_or_else(|e| panic!("raw login as alice: {e:?}"));
    let parse_typed = |oid: u32| {
        let mut b = b"s\0SELECT $1\0".to_vec();
        b.extend_from_slice(&1i16.to_be_bytes());
        b.extend_from_slice(&oid.to_be_bytes());
        message(b'P', &b)
    };
    // Bind "" to "s": one text parameter '1', results in text.
    let mut bind = b"\0s\0".to_vec();
    bind.extend_from_slice(&0i16.to_be_bytes());
    bind.extend_from_slice(&1i16.to_be_bytes());
    bind.extend_from_slice(&1i32.to_be_bytes());
    bind.extend_from_slice(b"1");
    bind.extend_from_slice(&0i16.to_be_bytes());
    let run = |s: &mut RawSession, oid: u32| {
        // The refused pipeline leaves "s" prepared: close it first.
        let mut out = extended::close(b'S', b"s");
        out.extend(parse_typed(oid));
        out.extend(message(b'B', &bind));
        out.extend(extended::execute(b""));
        out.extend(extended::close(b'S', b"s"));
        out.extend(extended::sync());
        s.stream.write_all(&out).expect("send the pipeline");
        read_until(&mut s.stream, b'Z')
    };
    let r = run(&mut s, oid);
    assert_eq!(
        first_error(&r).map(|f| f.code().to_string()).as_deref(),
        Some("42501"),
        "{}",
        summary(&r)
    );
    assert_eq!(rows(&fx), ROWS.to_string(), "the domain's check ran");
    // The same statement typed int4 (OID 23) is a read.
    let r = run(&mut s, 23);
    assert!(first_error(&r).is_none(), "{}", summary(&r));
    s.close();
    proven_harmful(&fx, "PREPARE p(d) AS SELECT $1; EXECUTE p('1');");
}
