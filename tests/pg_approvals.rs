//! Just-in-time approvals seen by real clients: a statement held inside a live session, the
//! notice, approval, denial, timeout, impact preview, multi-statement strings and webhooks.

#[path = "support/api.rs"]
mod api;
mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use api::{
    BOB_TOKEN, Fixture, POLL, WRITE_RULE, affected, failure, finish, held_id, held_notice, poll,
    wait_for_pending,
};
use support::proc::wait_child;
use support::send_signal;
use support::webhooks::webhook_receiver;
use support::{ALICE, ALICE_PASSWORD, jitgate_cmd, output_text, psql_cmd, run_timeout};
use tokio_postgres::SimpleQueryMessage;

/// A psql process whose stderr is read line by line while it runs (the hold notice arrives
/// long before psql exits).
struct PsqlRun {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
    stdout: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl PsqlRun {
    fn spawn(fx: &Fixture, args: &[&str]) -> PsqlRun {
        let mut child = psql_cmd(&fx.env.alice(), ALICE_PASSWORD)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn psql");
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut out = child.stdout.take().expect("stdout");
        let stdout = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        PsqlRun {
            child,
            lines,
            stderr: Vec::new(),
            stdout: Some(stdout),
        }
    }

    /// Waits for a stderr line containing `needle` while psql is still running.
    fn wait_stderr(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(POLL) {
                Ok(line) => {
                    self.stderr.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "psql printed no line with {needle:?} ({e}); stderr so far:\n{}",
                    self.stderr.join("\n")
                ),
            }
        }
    }

    /// Waits for psql to exit: its status, stdout and the whole of stderr.
    fn finish(mut self) -> (ExitStatus, String, String) {
        let status = wait_child(&mut self.child, POLL).unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("psql still running; stderr:\n{}", self.stderr.join("\n"))
        });
        self.stderr.extend(self.lines.iter());
        let stdout =
            String::from_utf8_lossy(&self.stdout.take().unwrap().join().unwrap()).into_owned();
        (status, stdout, self.stderr.join("\n"))
    }
}

impl Drop for PsqlRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn psql_delete_is_held_then_approved() {
    let fx = Fixture::new("20s", 10);
    let mut psql = PsqlRun::spawn(&fx, &["-c", "DELETE FROM t WHERE id = 3"]);
    let line = psql.wait_stderr("held for approval");
    let id = held_id(&line).unwrap_or_else(|| panic!("no request id in {line:?}"));
    assert_eq!(line, format!("NOTICE:  {}", held_notice(&id, WRITE_RULE)));

    let req = wait_for_pending(&fx.bob, ALICE);
    assert_eq!(req["id"], id.as_str(), "{req}");
    assert_eq!(req["class"], "write", "{req}");
    assert_eq!(req["rule"], WRITE_RULE, "{req}");
    assert_eq!(req["target"], "app-db", "{req}");
    assert_eq!(req["statement"], "DELETE FROM t WHERE id = 3", "{req}");
    assert_eq!(req["tables"], serde_json::json!(["public.t"]), "{req}");
    assert_eq!(fx.row("t", 3), Some(0), "the held DELETE already ran");

    let decided = fx.bob.approve_ok(&id, "looks fine", None);
    assert_eq!(decided["state"], "approved", "{decided}");
    let (status, stdout, stderr) = psql.finish();
    assert!(status.success(), "psql failed: {status}\n{stderr}");
    assert_eq!(stdout.trim(), "DELETE 1", "stderr:\n{stderr}");
    assert_eq!(fx.row("t", 3), None, "the approved DELETE did not run");
    let after = fx.bob.request(&id);
    assert_eq!(after["state"], "approved", "{after}");
    assert_eq!(after["approvals"][0]["by"], "bob", "{after}");
    fx.env.assert_still_serving();
}

#[test]
fn psql_denied_gets_42501_with_the_reason() {
    let fx = Fixture::new("20s", 10);
    let mut psql = PsqlRun::spawn(
        &fx,
        &[
            "-v",
            "VERBOSITY=verbose",
            "-c",
            "DELETE FROM t WHERE id = 4",
        ],
    );
    let id = held_id(&psql.wait_stderr("held for approval")).expect("request id");
    let req = wait_for_pending(&fx.bob, ALICE);
    assert_eq!(req["id"], id.as_str());
    let denied = fx.bob.deny_ok(&id, "use the migration pipeline");
    assert_eq!(denied["state"], "denied", "{denied}");
    let (status, _, stderr) = psql.finish();
    assert!(!status.success(), "psql succeeded after a denial\n{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("ERROR:"))
        .unwrap_or_else(|| panic!("no ERROR line:\n{stderr}"));
    assert!(error.starts_with("ERROR:  42501: "), "{error}");
    assert!(error.contains("use the migration pipeline"), "{error}");
    assert!(error.contains(&id), "{error}");
    assert_eq!(fx.row("t", 4), Some(0), "the denied DELETE ran");
    let after = fx.bob.request(&id);
    assert_eq!(after["state"], "denied", "{after}");
    assert_eq!(after["reason"], "use the migration pipeline", "{after}");
    fx.env.assert_still_serving();
}

#[tokio::test(flavor = "multi_thread")]
async fn hold_timeout_gives_57014_and_expires_the_request() {
    let fx = Fixture::new("2s", 10);
    let mut s = fx.alice_session().await;
    let h = s.spawn_simple("DELETE FROM t WHERE id = 5");
    let id = held_id(&s.notice().await).expect("request id");
    let (code, msg) = failure(finish(h).await);
    assert_eq!(code, "57014", "{msg}");
    assert!(msg.contains(&id), "{msg}");
    assert_eq!(fx.bob.wait_state(&id, "expired")["state"], "expired");
    assert_eq!(fx.row("t", 5), Some(0));
    // Deciding it now is too late.
    api::assert_error("approve expired", &fx.bob.approve(&id, "late", None), 409);

    // Inside a transaction a timeout aborts it like any error.
    s.client.batch_execute("BEGIN").await.unwrap();
    s.client
        .batch_execute("INSERT INTO log VALUES (5)")
        .await
        .unwrap();
    let h = s.spawn_simple("DELETE FROM t WHERE id = 6");
    let id2 = held_id(&s.notice().await).expect("request id");
    assert_eq!(failure(finish(h).await).0, "57014");
    assert_eq!(fx.bob.request(&id2)["state"], "expired");
    let (code, msg) = failure(s.client.simple_query("SELECT 1").await);
    assert_eq!(code, "25P02", "{msg}");
    s.client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(s.value("SELECT 40 + 2").await, "42");
    assert_eq!(fx.sql("SELECT count(*) FROM log;"), "0");
    assert_eq!(fx.row("t", 6), Some(0));

    // Extended protocol: the Execute times out; the connection is usable after Sync.
    let del = s
        .client
        .prepare("DELETE FROM t WHERE id = $1")
        .await
        .unwrap();
    let c = s.client.clone();
    let h = tokio::spawn(async move { c.execute(&del, &[&7i32]).await });
    let id3 = held_id(&s.notice().await).expect("request id");
    assert_eq!(failure(finish(h).await).0, "57014");
    assert_eq!(fx.bob.request(&id3)["state"], "expired");
    let row = s
        .client
        .query_one("SELECT $1::int", &[&7i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 7);
    assert_eq!(fx.row("t", 7), Some(0));
}

#[test]
fn psql_ctrl_c_withdraws_the_request() {
    let fx = Fixture::new("20s", 10);
    let mut psql = PsqlRun::spawn(&fx, &["-c", "DELETE FROM t WHERE id = 8"]);
    let id = held_id(&psql.wait_stderr("held for approval")).expect("request id");
    wait_for_pending(&fx.bob, ALICE);
    send_signal(psql.child.id(), "INT");
    let (status, _, stderr) = psql.finish();
    assert!(!status.success(), "psql succeeded after Ctrl-C\n{stderr}");
    assert!(stderr.contains("canceling statement"), "{stderr}");
    assert_eq!(fx.bob.wait_state(&id, "cancelled")["state"], "cancelled");
    assert_eq!(fx.row("t", 8), Some(0));
    fx.env.assert_still_serving();
}

#[tokio::test(flavor = "multi_thread")]
async fn multi_statement_query_is_one_request_and_never_runs_partially() {
    let fx = Fixture::new("20s", 10);
    let mut s = fx.alice_session().await;
    // The INSERT alone would pass ("log writes pass"); the string is held as a whole.
    let sql = "INSERT INTO log VALUES (99); DELETE FROM t WHERE id = 1";
    let h = s.spawn_simple(sql);
    let id = held_id(&s.notice().await).expect("request id");
    let req = wait_for_pending(&fx.bob, ALICE);
    assert_eq!(req["id"], id.as_str());
    assert_eq!(req["class"], "write", "{req}");
    assert_eq!(req["statement"], sql, "{req}");
    assert_eq!(fx.bob.pending(Some(ALICE)).len(), 1);
    assert_eq!(
        fx.sql("SELECT count(*) FROM log;"),
        "0",
        "part of the held string ran"
    );
    fx.bob.deny_ok(&id, "no");
    assert_eq!(failure(finish(h).await).0, "42501");
    assert_eq!(fx.sql("SELECT count(*) FROM log;"), "0");
    assert_eq!(fx.row("t", 1), Some(0));

    let h = s.spawn_simple("SELECT 1; DELETE FROM t WHERE id = 2");
    let id = held_id(&s.notice().await).expect("request id");
    let req = fx.bob.request(&id);
    assert_eq!(req["class"], "write", "{req}");
    fx.bob.approve_ok(&id, "ok", None);
    let msgs = finish(h).await.expect("approved multi-statement query");
    let row = msgs.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    assert_eq!(row.as_deref(), Some("1"));
    assert_eq!(affected(&msgs), Some(1));
    assert_eq!(fx.row("t", 2), None);
    let all = fx.bob.get_ok("/v1/requests");
    assert_eq!(all.as_array().map(Vec::len), Some(2), "{all}");
}

#[tokio::test(flavor = "multi_thread")]
async fn held_write_shows_the_planner_estimate() {
    let fx = Fixture::new("20s", 1000);
    let mut s = fx.alice_session().await;
    let h = s.spawn_simple("DELETE FROM t WHERE id < 50");
    let id = held_id(&s.notice().await).expect("request id");
    let rows = poll("impact.estimated_rows on the held DELETE", || {
        let r = fx.bob.request(&id);
        match r["impact"]["estimated_rows"].as_f64() {
            Some(n) => Ok(n),
            None => Err(format!("request: {r}")),
        }
    });
    assert!(rows > 0.0 && rows <= 1000.0, "estimate {rows}");
    // EXPLAIN ran nothing, and the client is still held.
    assert_eq!(fx.sql("SELECT count(*) FROM t;"), "1000");
    assert_eq!(fx.bob.request(&id)["state"], "pending");
    fx.bob.deny_ok(&id, "too many rows");
    assert_eq!(failure(finish(h).await).0, "42501");
    assert_eq!(fx.sql("SELECT count(*) FROM t;"), "1000");
    // The trail says what the approver was shown, before the decision it informed.
    let session = fx.bob.request(&id)["session"]
        .as_str()
        .expect("the request's session")
        .to_string();
    let stored = fx.bob.get_ok(&format!("/v1/sessions/{session}/events"));
    let requests: Vec<&serde_json::Value> = stored
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["request"] == id.as_str())
        .filter(|e| {
            e["kind"]
                .as_str()
                .is_some_and(|k| k.starts_with("request_"))
        })
        .collect();
    let kinds: Vec<&str> = requests.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["request_created", "request_impact", "request_decided"],
        "{stored}"
    );
    assert_eq!(
        requests[1]["estimated_rows"].as_f64(),
        Some(rows),
        "{stored}"
    );
    let replay = run_timeout(
        jitgate_cmd()
            .args(["replay", &session])
            .env("JITGATE_URL", fx.env.jg.api_url())
            .env("JITGATE_TOKEN", BOB_TOKEN),
        None,
        Duration::from_secs(60),
    );
    let text = output_text(&replay);
    assert!(
        text.contains(&format!(
            "request {id}: the planner estimates {rows:.0} rows"
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_sees_creation_and_every_decision() {
    let (url, bodies) = webhook_receiver();
    let fx = Fixture::with("20s", 10, |b| {
        b.raw_toml(&format!("[[webhooks]]\nurl = \"{url}\""))
    });
    let mut s = fx.alice_session().await;
    let h = s.spawn_simple("DELETE FROM t WHERE id = 1");
    let approved = held_id(&s.notice().await).expect("request id");
    fx.bob.approve_ok(&approved, "ok", None);
    finish(h).await.expect("approved DELETE");
    // What a user typed can neither mention @here nor forge a link in the chat line.
    let h =
        s.spawn_simple("DELETE FROM t WHERE id = 2 /* <!here> <https://evil.example|Approve> */");
    let denied = held_id(&s.notice().await).expect("request id");
    fx.bob.deny_ok(&denied, "not today");
    assert_eq!(failure(finish(h).await).0, "42501");

    let expected = [
        (approved.as_str(), "request.created"),
        (approved.as_str(), "request.approved"),
        (denied.as_str(), "request.created"),
        (denied.as_str(), "request.denied"),
    ];
    poll("webhook deliveries", || {
        let got = bodies.lock().unwrap().clone();
        let seen = |id: &str, ev: &str| {
            got.iter()
                .any(|b| b["event"] == ev && b["request"]["id"] == id)
        };
        if expected.iter().all(|(id, ev)| seen(id, ev)) {
            Ok(())
        } else {
            Err(format!("received: {got:?}"))
        }
    });
    for b in bodies.lock().unwrap().iter() {
        let text = b["text"].as_str().unwrap_or_default();
        let id = b["request"]["id"].as_str().unwrap_or_default();
        assert!(!id.is_empty() && text.contains(id), "webhook body: {b}");
        assert_eq!(b["request"]["user"], ALICE, "{b}");
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
    }
    let created = bodies
        .lock()
        .unwrap()
        .iter()
        .find(|b| b["event"] == "request.created" && b["request"]["id"] == denied.as_str())
        .cloned()
        .unwrap();
    assert!(
        created["text"]
            .as_str()
            .unwrap()
            .contains("&lt;!here&gt; &lt;https://evil.example|Approve&gt;"),
        "{created}"
    );
    let denial = bodies
        .lock()
        .unwrap()
        .iter()
        .find(|b| b["event"] == "request.denied")
        .cloned()
        .unwrap();
    assert!(
        denial["text"].as_str().unwrap().contains("not today"),
        "{denial}"
    );
}
