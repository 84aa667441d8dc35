//! The extended protocol in the audit trail: the values a driver binds are recorded (or
//! redacted) with the statement that ran them, and a Parse or Bind that no Execute ran right
//! after keeps an event of its own, in the order the client sent them. And what `jitgate
//! replay` shows of what users typed: escaped, never a forged line or a terminal sequence.

#[path = "support/api.rs"]
mod api;
#[path = "support/events.rs"]
mod events;
mod support;

use std::io::Write;
use std::time::Duration;

use api::{BOB_TOKEN, Fixture, finish, wait_for_pending};
use events::with_results;
use serde_json::Value;
use support::wire::extended::{bind, execute, parse, sync};
use support::wire::{RawSession, first_error, read_until, summary};
use support::{ALICE, ALICE_PASSWORD, APP_TARGET, jitgate_cmd, output_text, run_timeout};

async fn extended_session_events(redact: bool) -> Vec<Value> {
    let fx = Fixture::with("60s", 5, |b| {
        b.raw_toml(&format!("[audit]\nredact_parameters = {redact}"))
    });
    {
        let s = fx.alice_session().await;
        let rows = s
            .client
            .query(
                "SELECT v, $1::text FROM t WHERE id = $2",
                &[&"sesame", &3i32],
            )
            .await
            .expect("select with parameters");
        assert_eq!(rows.len(), 1);
        let c = s.client.clone();
        let upd = tokio::spawn(async move {
            c.execute("UPDATE t SET v = $1 WHERE id = $2", &[&7i32, &4i32])
                .await
        });
        let r = wait_for_pending(&fx.bob, ALICE);
        fx.bob.approve_ok(r["id"].as_str().unwrap(), "ok", None);
        assert_eq!(finish(upd).await.expect("approved update"), 1);
    }
    let (session, events) = fx.bob.ended_session(ALICE);
    // `jitgate replay` shows the values under their statement, as a Bind's line.
    let out = run_timeout(
        jitgate_cmd()
            .args(["replay", session["id"].as_str().unwrap()])
            .env("JITGATE_URL", fx.env.jg.api_url())
            .env("JITGATE_TOKEN", BOB_TOKEN),
        None,
        std::time::Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let replay = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = replay.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("SELECT v, $1::text") && l.contains("[read allow"))
        .unwrap_or_else(|| panic!("the statement in the replay: {replay}"));
    let shown = match redact {
        false => "  bind $1='sesame' $2=<4 bytes, binary>",
        true => "  bind $1=<6 bytes> $2=<4 bytes>",
    };
    assert!(lines[at + 1].ends_with(shown), "{replay}");
    with_results(&events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_protocol_parameters_are_recorded_or_redacted() {
    for redact in [false, true] {
        let events = extended_session_events(redact).await;
        let parse = events
            .iter()
            .find(|e| e["kind"] == "parse" && e["text"].as_str().unwrap().contains("$1::text"))
            .unwrap_or_else(|| panic!("no parse event: {events:#?}"));
        assert!(
            parse["text"]
                .as_str()
                .unwrap()
                .starts_with("SELECT v, $1::text")
        );
        // The Bind came right before its Execute: its values are in the statement's event.
        let bind = events
            .iter()
            .find(|e| {
                e["kind"] == "statement"
                    && e["text"].as_str().unwrap().contains("$1::text")
                    && e["params"].as_array().is_some_and(|p| p.len() == 2)
            })
            .unwrap_or_else(|| panic!("no statement with the bound values: {events:#?}"));
        assert!(!events.iter().any(|e| e["kind"] == "bind"), "{events:#?}");
        let p0 = &bind["params"][0];
        assert_eq!(p0["len"], 6, "{bind}");
        if redact {
            assert!(
                p0.get("text").is_none() && p0.get("base64").is_none(),
                "{bind}"
            );
            assert!(!serde_json::to_string(&events).unwrap().contains("sesame"));
        } else {
            assert_eq!(p0["text"], "sesame", "{bind}");
            // tokio-postgres sends the int4 in binary.
            assert_eq!(bind["params"][1]["len"], 4);
            assert!(bind["params"][1].get("base64").is_some(), "{bind}");
        }
        // Statement at Execute, with its result.
        let sel = events
            .iter()
            .position(|e| {
                e["kind"] == "statement" && e["text"].as_str().unwrap().contains("$1::text")
            })
            .expect("select statement");
        assert_eq!(events[sel]["decision"], "allow");
        let res = events[sel..]
            .iter()
            .find(|e| e["kind"] == "result")
            .unwrap();
        assert_eq!(res["command_tag"], "SELECT 1");
        let upd = events
            .iter()
            .position(|e| e["kind"] == "statement" && e["decision"] == "held")
            .expect("held update");
        let after: Vec<&str> = events[upd..]
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .filter(|k| *k != "parse" && *k != "bind")
            .take(4)
            .collect();
        assert_eq!(
            after,
            ["statement", "request_created", "request_decided", "result"],
            "{events:#?}"
        );
        let res = events[upd..]
            .iter()
            .find(|e| e["kind"] == "result")
            .unwrap();
        assert_eq!(res["command_tag"], "UPDATE 1");
        assert_eq!(res["rows"], 1);
    }
}

/// Sends `msgs` and a Sync through a raw session; reads up to ReadyForQuery; asserts no error.
fn round_ok(s: &mut RawSession, msgs: &[Vec<u8>]) {
    let mut out: Vec<u8> = msgs.concat();
    out.extend_from_slice(&sync());
    s.stream.write_all(&out).expect("send");
    let r = read_until(&mut s.stream, b'Z');
    assert_eq!(
        first_error(&r).map(|f| f.code().to_string()),
        None,
        "{}",
        summary(&r)
    );
}

#[test]
fn a_parse_or_bind_that_no_execute_runs_keeps_its_own_event() {
    let fx = Fixture::new("60s", 5);
    let mut s = RawSession::login(fx.env.jg.pg_addr(), ALICE, APP_TARGET, ALICE_PASSWORD, &[])
        .unwrap_or_else(|e| panic!("raw login as alice: {e:?}"));
    // Parse, Bind, Execute of the unnamed statement: one statement event.
    round_ok(
        &mut s,
        &[parse(b"", "SELECT 1 AS one"), bind(b"", b""), execute(b"")],
    );
    // A Parse that nothing runs (a driver asking for parameter types).
    round_ok(&mut s, &[parse(b"", "SELECT 2 AS two")]);
    // A portal bound and not run before the Sync.
    round_ok(&mut s, &[parse(b"", "SELECT 3 AS three"), bind(b"p1", b"")]);
    // A named statement: its Parse is recorded at once, its Bind folds into the Execute.
    round_ok(
        &mut s,
        &[
            parse(b"s1", "SELECT 4 AS four"),
            bind(b"", b"s1"),
            execute(b""),
        ],
    );
    // Another portal's Execute runs after a Bind it does not fold.
    round_ok(
        &mut s,
        &[
            parse(b"", "SELECT 5 AS five"),
            bind(b"p2", b""),
            bind(b"p3", b"s1"),
            execute(b"p2"),
        ],
    );
    s.close();
    let (_, events) = fx.bob.ended_session(ALICE);
    let trail: Vec<String> = events
        .iter()
        .filter_map(|e| {
            let text = e["text"].as_str().unwrap_or("");
            match e["kind"].as_str()? {
                "statement" => Some(format!(
                    "statement {text} params={}",
                    e.get("params").map_or("-".into(), Value::to_string)
                )),
                "parse" => Some(format!("parse {}={text}", e["statement_name"].as_str()?)),
                "bind" => Some(format!(
                    "bind {}<-{}",
                    e["portal"].as_str()?,
                    e["statement_name"].as_str()?
                )),
                _ => None,
            }
        })
        .collect();
    assert_eq!(
        trail,
        [
            "statement SELECT 1 AS one params=[]",
            "parse =SELECT 2 AS two",
            "parse =SELECT 3 AS three",
            "bind p1<-",
            "parse s1=SELECT 4 AS four",
            "statement SELECT 4 AS four params=[]",
            "parse =SELECT 5 AS five",
            "bind p2<-",
            "bind p3<-s1",
            "statement SELECT 5 AS five params=-",
        ],
        "{events:#?}"
    );
}

/// What a user typed cannot forge a line of `jitgate replay` or send escape sequences to the
/// auditor's terminal: a newline in application_name, an escape in a statement.
#[tokio::test(flavor = "multi_thread")]
async fn replay_escapes_what_users_typed() {
    let fx = Fixture::with("60s", 5, |b| b);
    let mut config: tokio_postgres::Config = fx.env.alice_tokio().parse().expect("conninfo");
    config.application_name("app\n    +0.000s  DROP TABLE t  [read allow]");
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("connect through jitgate");
    let running = tokio::spawn(connection);
    client
        .simple_query("SELECT 1 /* \u{1b}[2J\u{202e} */")
        .await
        .expect("a read");
    drop(client);
    let _ = running.await;
    let (session, _) = fx.bob.ended_session(ALICE);
    let id = session["id"].as_str().unwrap();
    let out = run_timeout(
        jitgate_cmd()
            .args(["replay", id])
            .env("JITGATE_URL", fx.env.jg.api_url())
            .env("JITGATE_TOKEN", BOB_TOKEN),
        None,
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("(app\\n    +0.000s  DROP TABLE t  [read allow])"),
        "{text}"
    );
    assert!(
        !text
            .lines()
            .any(|l| l.trim_start().starts_with("+0.000s  DROP")),
        "{text}"
    );
    assert!(text.contains("\\x1b[2J\\u{202e}"), "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text}"
    );
}
