//! The audit trail seen from outside: a real psql session and a tokio-postgres session
//! (extended protocol, parameters redacted and not) come back complete and in order through
//! the API and `jitgate replay`; `jitgate audit verify` and `export` offline; a SIGKILL during
//! pgbench with a held statement; a shutdown with a held statement. (A store whose disk fills
//! up: `audit_full_disk.rs`.)

#[path = "support/api.rs"]
mod api;
#[path = "support/events.rs"]
mod events;
mod support;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use api::{Api, BOB_TOKEN, CAROL_TOKEN, Fixture, POLL, WRITE_RULE, finish, poll, wait_for_pending};
use events::{joined, with_results};
use serde_json::Value;
use support::proc::wait_child;
use support::{ALICE, ALICE_PASSWORD, jitgate_cmd, output_text, psql_cmd, run_timeout};

/// The events without parse/bind noise, as `kind` strings.
fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn cli(jg_api: &str, token: &str, args: &[&str]) -> std::process::Output {
    run_timeout(
        jitgate_cmd()
            .args(args)
            .env("JITGATE_URL", jg_api)
            .env("JITGATE_TOKEN", token),
        None,
        Duration::from_secs(60),
    )
}

/// `jitgate ARGS --data-dir DATA` on a stopped jitgate's store; its stdout, once it succeeded.
fn offline(args: &[&str], data: &std::path::Path, timeout: Duration) -> String {
    let o = run_timeout(
        jitgate_cmd().args(args).arg("--data-dir").arg(data),
        None,
        timeout,
    );
    assert!(o.status.success(), "{}", output_text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The events `jitgate audit export ARGS` prints for a stopped store, one JSON object a line.
fn exported(args: &[&str], data: &std::path::Path, timeout: Duration) -> Vec<Value> {
    let mut all = vec!["audit", "export"];
    all.extend_from_slice(args);
    offline(&all, data, timeout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn a_psql_session_comes_back_complete_and_in_order() {
    let fx = Fixture::new("60s", 5);
    let script = "SELECT count(*) FROM t;\n\
                  UPDATE t SET v = 1 WHERE id = 1;\n\
                  UPDATE t SET v = 2 WHERE id = 2;\n\
                  SELECT 1/0;\n";
    let mut child = psql_cmd(&fx.env.alice(), ALICE_PASSWORD)
        .args(["-v", "ON_ERROR_STOP=0", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let first = wait_for_pending(&fx.bob, ALICE);
    let first_id = first["id"].as_str().unwrap().to_string();
    assert!(first["statement"].as_str().unwrap().contains("id = 1"));
    fx.bob.approve_ok(&first_id, "ticket 42", None);
    let second = poll("the second write to be held", || {
        fx.bob
            .pending(Some(ALICE))
            .into_iter()
            .find(|r| r["id"] != first_id.as_str())
            .ok_or("not yet".to_string())
    });
    let second_id = second["id"].as_str().unwrap().to_string();
    fx.carol.deny_ok(&second_id, "not during the freeze");
    let out = child.wait_with_output().expect("psql output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not during the freeze"), "{stderr}");

    let (session, stored) = fx.bob.ended_session(ALICE);
    // The read's and the failed SELECT's results may each be inside their statement's event
    // (routine statements); the approved UPDATE's never is (on disk before it ran).
    let events = with_results(&stored);
    assert!(joined(&stored) <= 2, "{stored:#?}");
    assert_eq!(events.len(), stored.len() + joined(&stored));
    assert_eq!(session["protocol"], "postgres");
    assert!(
        stderr.contains("division by zero"),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(session["target"], "app-db");
    assert_eq!(session["application"], "psql");
    let k = kinds(&events);
    assert_eq!(
        k,
        [
            "session_start",
            "statement",
            "result",
            "statement",
            "request_created",
            "request_decided",
            "result",
            "statement",
            "request_created",
            "request_decided",
            "statement",
            "result",
            "session_end"
        ],
        "{events:#?}"
    );
    // Sequence numbers increase and the chain hashes are all there.
    let seqs: Vec<u64> = stored.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(
        stored
            .iter()
            .all(|e| e["hash"].as_str().unwrap().len() == 64)
    );

    let read = &events[1];
    assert_eq!(read["text"], "SELECT count(*) FROM t;");
    assert_eq!(read["class"], "read");
    assert_eq!(read["decision"], "allow");
    assert_eq!(read["rule"], "reads pass");
    assert_eq!(read["tables"], serde_json::json!(["public.t"]));
    assert_eq!(events[2]["command_tag"], "SELECT 1");
    assert_eq!(events[2]["rows"], 1);

    let held = &events[3];
    assert_eq!(held["decision"], "held");
    assert_eq!(held["class"], "write");
    assert_eq!(held["request"], first_id.as_str());
    assert_eq!(held["rule"], WRITE_RULE);
    assert_eq!(events[5]["state"], "approved");
    assert_eq!(events[5]["by"], "bob");
    assert_eq!(events[5]["reason"], "ticket 42");
    assert_eq!(events[6]["command_tag"], "UPDATE 1");
    assert_eq!(events[6]["rows"], 1);

    assert_eq!(events[7]["request"], second_id.as_str());
    assert_eq!(events[9]["state"], "denied");
    assert_eq!(events[9]["by"], "carol");
    assert_eq!(events[9]["reason"], "not during the freeze");

    assert_eq!(events[10]["text"], "SELECT 1/0;");
    assert_eq!(events[11]["sqlstate"], "22012");
    assert!(events[11].get("command_tag").is_none());
    assert!(events[12]["bytes_in"].as_u64().unwrap() > 0);
    assert!(events[12]["bytes_out"].as_u64().unwrap() > 0);

    // The same through `jitgate replay`, as text and as JSON.
    let id = session["id"].as_str().unwrap();
    let url = fx.env.jg.api_url();
    let text = cli(&url, BOB_TOKEN, &["replay", id]);
    assert!(text.status.success(), "{}", output_text(&text));
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        "SELECT count(*) FROM t;  [read allow (rule \"reads pass\")]",
        &format!("[write held {first_id} (rule \"{WRITE_RULE}\")]"),
        &format!("request {first_id} approved by bob: \"ticket 42\""),
        "-> SELECT 1",
        "-> UPDATE 1",
        &format!("request {second_id} denied by carol: \"not during the freeze\""),
        "-> ERROR 22012: division by zero",
        "session end:",
    ] {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
    let json = cli(&url, CAROL_TOKEN, &["replay", id, "--format", "json"]);
    assert!(json.status.success(), "{}", output_text(&json));
    let v: Value = serde_json::from_slice(&json.stdout).expect("replay JSON");
    assert_eq!(v["events"].as_array().unwrap(), &stored);
    assert_eq!(v["session"]["id"], id);

    // A query string axum cannot parse still gets the API's JSON error body.
    let (code, body) = fx.bob.get("/v1/sessions?limit=many");
    assert_eq!(code, 400, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{body}"
    );

    let list = cli(&url, BOB_TOKEN, &["sessions", "--user", ALICE]);
    assert!(String::from_utf8_lossy(&list.stdout).contains(id));

    // Offline, once jitgate has stopped: verify and export read the data dir directly.
    let mut jg = fx.env.jg;
    jg.kill("TERM");
    assert!(jg.wait_exit(Duration::from_secs(30)).is_some());
    let data = jg.dir().join("data");
    let out = offline(&["audit", "verify"], &data, Duration::from_secs(60));
    assert!(out.starts_with("ok "), "{out}");
    let n: usize = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(n >= stored.len(), "{out}");
    let lines = exported(
        &["--since", "1h", "--format", "jsonl"],
        &data,
        Duration::from_secs(60),
    );
    assert_eq!(lines.len(), n);
    assert!(lines.iter().any(|l| l["reason"] == "not during the freeze"));
    let r = offline(&["replay", id], &data, Duration::from_secs(60));
    assert!(r.contains("-> UPDATE 1"), "{r}");
    // A joined result's line comes right under its statement, as a `result` event's does.
    let lines: Vec<&str> = r.lines().collect();
    let read = lines
        .iter()
        .position(|l| l.contains("SELECT count(*) FROM t;"))
        .expect("the read in the replay");
    assert!(lines[read + 1].contains("-> SELECT 1"), "{r}");
    let failed = lines
        .iter()
        .position(|l| l.contains("SELECT 1/0;"))
        .expect("the failed read in the replay");
    assert!(lines[failed + 1].contains("-> ERROR 22012"), "{r}");
}

/// A restarted `jitgate serve`, killed when dropped (so a failed assertion leaves no process).
struct Restarted(std::process::Child);

impl Drop for Restarted {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `jitgate serve` on an existing config, waited for until healthy (its log in `log`).
fn restart(config: &std::path::Path, api: &Api, log: &std::path::Path) -> Restarted {
    let out = std::fs::File::create(log).expect("log file");
    let mut child = Restarted(
        jitgate_cmd()
            .args(["serve", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("restart jitgate"),
    );
    let deadline = std::time::Instant::now() + POLL;
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!(
                "the restarted jitgate exited ({status}):\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if std::net::TcpStream::connect(api.addr).is_ok() && api.get("/healthz").0 == 200 {
            return child;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "jitgate did not come back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_pgbench_keeps_the_chain_and_every_write_that_ran() {
    let fx = Fixture::new("120s", 5);
    let dir = support::TempDir::new("audit-crash");
    let script = dir.path().join("insert.sql");
    std::fs::write(
        &script,
        // Writes inside a transaction block: recorded at once, flushed only by the barrier
        // before the COMMIT goes upstream (autocommit writes are durable one by one, and
        // would flush these too).
        "\\set a random(1, 2000000000)\n\\set b random(1, 2000000000)\n\
         SELECT v FROM t WHERE id = 1;\n\
         BEGIN;\nINSERT INTO log VALUES (:a);\nINSERT INTO log VALUES (:b);\nCOMMIT;\n",
    )
    .unwrap();
    // A statement held for approval when the proxy dies.
    let s = fx.alice_session().await;
    let held = s.spawn_simple("UPDATE t SET v = 9 WHERE id = 5");
    let pending = wait_for_pending(&fx.bob, ALICE);
    let held_id = pending["id"].as_str().unwrap().to_string();

    let mut bench = support::clients::clean_libpq_cmd("pgbench", ALICE_PASSWORD)
        .args(["-n", "-M", "simple", "-c", "4", "-T", "60", "-f"])
        .arg(&script)
        .arg(format!(
            "{} sslmode=disable",
            fx.env.jg.conninfo_base(ALICE, "app-db")
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("pgbench");
    poll("pgbench to write through the proxy", || {
        let n: u64 = fx.sql("SELECT count(*) FROM log;").parse().unwrap();
        (n > 300).then_some(()).ok_or(format!("{n} rows"))
    });
    let mut jg = fx.env.jg;
    jg.kill("KILL");
    assert!(jg.wait_exit(Duration::from_secs(10)).is_some());
    let _ = wait_child(&mut bench, Duration::from_secs(30));
    let _ = bench.kill();
    assert!(
        finish(held).await.is_err(),
        "the held statement must not have run"
    );
    assert_eq!(
        fx.env
            .cluster
            .superuser_psql_db(&fx.env.db, "SELECT v FROM t WHERE id = 5;"),
        "0"
    );

    let data = jg.dir().join("data");
    let out = offline(&["audit", "verify"], &data, Duration::from_secs(60));
    assert!(out.starts_with("ok "), "{out}");
    let chain = exported(&[], &data, Duration::from_secs(120));
    let recorded: std::collections::HashSet<String> = chain
        .iter()
        .filter(|v| v["kind"] == "statement")
        .filter_map(|v| {
            let t = v["text"].as_str()?;
            let rest = t.strip_prefix("INSERT INTO log VALUES (")?;
            Some(rest.split(')').next()?.to_string())
        })
        .collect();
    let rows = fx
        .env
        .cluster
        .superuser_psql_db(&fx.env.db, "SELECT n FROM log;");
    let mut n_rows = 0;
    for n in rows.lines() {
        n_rows += 1;
        assert!(
            recorded.contains(n.trim()),
            "row {n} reached the database but its INSERT is not in the audit trail"
        );
    }
    assert!(n_rows > 300);

    // After a restart the request that was pending is cancelled, with an event.
    let _restarted = restart(jg.config_path(), &fx.bob, &dir.path().join("restart.log"));
    let r = fx.bob.get_ok(&format!("/v1/requests/{held_id}"));
    assert_eq!(r["state"], "cancelled", "{r}");
    assert_eq!(r["reason"], "jitgate restarted");
    let session = r["session"].as_str().unwrap();
    let events = fx.bob.get_ok(&format!("/v1/sessions/{session}/events"));
    let events = events.as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "request_decided" && e["state"] == "cancelled"),
        "{events:#?}"
    );
    assert!(events.last().unwrap()["kind"] == "session_end");

    // The session index is whole after the crash and the recovery: each session's events as
    // the API reads them (through the index) are the ones the export found walking the chain.
    let last = chain
        .iter()
        .filter_map(|v| v["seq"].as_u64())
        .max()
        .unwrap();
    let mut walked: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
    for v in &chain {
        walked
            .entry(v["session"].as_str().unwrap())
            .or_default()
            .push(v["seq"].as_u64().unwrap());
    }
    assert!(walked.len() >= 5, "the pgbench sessions and alice's");
    for (session, seqs) in &walked {
        let read = fx.bob.get_ok(&format!("/v1/sessions/{session}/events"));
        let read: Vec<u64> = read
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["seq"].as_u64())
            .filter(|&seq| seq <= last)
            .collect();
        assert_eq!(&read, seqs, "session {session} as read through the index");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cancels_held_requests_audits_them_and_tells_the_client() {
    let fx = Fixture::new("120s", 5);
    let s = fx.alice_session().await;
    let held = s.spawn_simple("UPDATE t SET v = 3 WHERE id = 3");
    let r = wait_for_pending(&fx.bob, ALICE);
    let id = r["id"].as_str().unwrap().to_string();
    let mut jg = fx.env.jg;
    jg.kill("TERM");
    let err = finish(held)
        .await
        .expect_err("a held statement cannot run at shutdown");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "57014");
    let detail = db.detail().unwrap_or("");
    assert!(
        detail.contains(&id) && detail.contains("shutting down"),
        "{db:?}"
    );
    assert!(jg.wait_exit(Duration::from_secs(60)).is_some());
    assert_eq!(
        fx.env
            .cluster
            .superuser_psql_db(&fx.env.db, "SELECT v FROM t WHERE id = 3;"),
        "0"
    );
    let decided: Vec<Value> = exported(&[], &jg.dir().join("data"), Duration::from_secs(60))
        .into_iter()
        .filter(|v| v["kind"] == "request_decided" && v["request"] == id.as_str())
        .collect();
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(decided[0]["state"], "cancelled");
    assert!(
        decided[0]["reason"]
            .as_str()
            .unwrap()
            .contains("shutting down"),
        "{decided:?}"
    );
}
