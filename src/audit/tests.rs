//! Tests against the real sled store in a temporary directory: recording and reading back.
//! The chain's tests are in `tests_chain.rs`, failure and crashes in `tests_durability.rs`;
//! the helpers here serve all three.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::encode::hex;
use super::*;
use crate::policy::Class;
use crate::request::{Impact, RequestView, State};

/// A directory removed when the test ends.
pub(super) struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "jitgate-audit-{name}-{}-{}",
            std::process::id(),
            super::now_us()
        ));
        let _ = std::fs::remove_dir_all(&p);
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// sled may hold its lock for a moment after the last handle drops: retry.
pub(super) fn open(dir: &Path, opts: AuditOptions) -> Audit {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match Audit::open(dir, opts.clone()) {
            Ok(a) => return a,
            Err(AuditError::Locked(_)) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("open: {e}"),
        }
    }
}

pub(super) fn started(dir: &Path) -> Audit {
    let a = open(dir, AuditOptions::default());
    a.start();
    a
}

pub(super) fn verify_retry(dir: &Path) -> Result<u64, VerifyError> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        match verify(dir) {
            Err(VerifyError::Store(AuditError::Locked(_))) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(20))
            }
            r => return r,
        }
    }
}

pub(super) fn stmt(text: &str) -> EventKind {
    EventKind::Statement {
        text: Text::from(text.to_string()),
        class: Class::Read,
        tables: Arc::from(vec!["public.t".to_string()]),
        decision: Decision::Allow,
        rule: Some(Text::from_static("reads pass")),
        request: None,
        grant: None,
    }
}

pub(super) fn result(tag: &'static str, rows: u64) -> EventKind {
    EventKind::Result {
        command_tag: Some(Text::from_static(tag)),
        rows: Some(rows),
        sqlstate: None,
        message: None,
        duration_us: 42,
    }
}

pub(super) fn start_ev(user: &'static str, target: &'static str) -> EventKind {
    EventKind::SessionStart {
        protocol: "postgres".into(),
        user: user.into(),
        target: target.into(),
        client: "127.0.0.1:5555".into(),
        application: Some("psql".into()),
    }
}

pub(super) fn end_ev() -> EventKind {
    EventKind::SessionEnd {
        reason: "client closed".into(),
        bytes_in: 100,
        bytes_out: 2000,
    }
}

/// `n` statements in session "s1", one commit (so one block).
pub(super) async fn fill(a: &Audit, n: usize) {
    for i in 0..n {
        a.record("s1", stmt(&format!("SELECT {i}"))).unwrap();
    }
    a.flush().await.unwrap();
}

pub(super) fn request_view(id: &str, state: State) -> RequestView {
    RequestView {
        id: id.into(),
        state,
        user: "alice".into(),
        target: "app-db".into(),
        protocol: "postgres".into(),
        class: Class::Write,
        statement: "UPDATE t SET x = 1".into(),
        tables: vec!["public.t".into()],
        rule: "writes need one SRE".into(),
        source: "127.0.0.1".into(),
        session: "s9".into(),
        created_at: 1_700_000_000,
        expires_at: 1_700_000_300,
        approvals: vec![],
        approvals_required: 1,
        decided_by: None,
        reason: None,
        grant: None,
        impact: Impact::default(),
    }
}
#[tokio::test]
async fn session_events_come_back_in_order_with_their_fields() {
    let d = TempDir::new("roundtrip");
    let a = started(&d.0);
    a.record("s1", start_ev("alice", "app-db")).unwrap();
    a.record("s2", start_ev("bob", "web-1")).unwrap();
    a.record("s1", stmt("SELECT 1")).unwrap();
    a.record("s2", stmt("SELECT 2")).unwrap();
    a.record("s1", result("SELECT 1", 1)).unwrap();
    a.record(
        "s1",
        EventKind::Parse {
            statement_name: "".into(),
            text: "SELECT $1".into(),
        },
    )
    .unwrap();
    a.record(
        "s1",
        EventKind::RequestDecided {
            request: "r1".into(),
            state: State::Approved,
            by: Some("carol".into()),
            reason: Some("ok".into()),
        },
    )
    .unwrap();
    a.record(
        "s1",
        EventKind::Result {
            command_tag: None,
            rows: None,
            sqlstate: Some("42P01".into()),
            message: Some("relation \"nope\" does not exist".into()),
            duration_us: 7,
        },
    )
    .unwrap();
    a.record("s1", end_ev()).unwrap();
    a.flush().await.unwrap();

    let ev = a.events("s1");
    let kinds: Vec<&str> = ev.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            "session_start",
            "statement",
            "result",
            "parse",
            "request_decided",
            "result",
            "session_end"
        ]
    );
    assert!(ev.windows(2).all(|w| w[0].seq < w[1].seq));
    // One chain across sessions: s1 and s2 interleave in one numbering.
    let s2: Vec<u64> = a.events("s2").iter().map(|e| e.seq).collect();
    assert_eq!(s2, [2, 4]);
    assert_eq!(ev[0].seq, 1);
    assert_eq!(ev[1].str("text"), Some("SELECT 1"));
    assert_eq!(ev[1].u64("text_len"), Some(8));
    assert_eq!(
        ev[1].get("text_sha256"),
        None,
        "kept only when the text is cut"
    );
    assert_eq!(ev[1].str("class"), Some("read"));
    assert_eq!(ev[1].str("decision"), Some("allow"));
    assert_eq!(ev[1].str("rule"), Some("reads pass"));
    assert_eq!(ev[1].get("tables"), Some(&serde_json::json!(["public.t"])));
    assert_eq!(ev[2].str("command_tag"), Some("SELECT 1"));
    assert_eq!(ev[2].u64("rows"), Some(1));
    assert_eq!(ev[4].str("by"), Some("carol"));
    assert_eq!(ev[4].str("state"), Some("approved"));
    assert_eq!(ev[5].str("sqlstate"), Some("42P01"));
    assert_eq!(ev[5].get("command_tag"), None);

    // The JSON the API and export show.
    let j = serde_json::to_value(&ev[1]).unwrap();
    assert_eq!(j["seq"], 3);
    assert_eq!(j["session"], "s1");
    assert_eq!(j["kind"], "statement");
    assert!(j["at"].as_f64().unwrap() > 1.7e9);
    assert_eq!(j["hash"].as_str().unwrap().len(), 64);

    let s = a.session("s1").unwrap();
    assert_eq!((s.user.as_str(), s.target.as_str()), ("alice", "app-db"));
    assert_eq!(s.application.as_deref(), Some("psql"));
    assert_eq!(s.end_reason.as_deref(), Some("client closed"));
    assert_eq!((s.bytes_in, s.bytes_out), (100, 2000));
    assert!(s.ended_at.unwrap() >= s.started_at);
    assert_eq!(a.session("s2").unwrap().ended_at, None);

    let all = a.sessions(&SessionFilter::default());
    assert_eq!(all.len(), 2);
    let bob = a.sessions(&SessionFilter {
        user: Some("bob".into()),
        ..Default::default()
    });
    assert_eq!(bob.len(), 1);
    assert_eq!(bob[0].id, "s2");
    let web = a.sessions(&SessionFilter {
        target: Some("app-db".into()),
        ..Default::default()
    });
    assert_eq!(web[0].id, "s1");
    let future = SessionFilter {
        since: Some(u64::MAX / 2_000_000),
        ..Default::default()
    };
    // s2 never ended, so it is still "running" at any later time; s1 ended.
    assert_eq!(
        a.sessions(&future)
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["s2"]
    );
    assert_eq!(a.verify().unwrap(), 9);
}

#[tokio::test]
async fn long_statements_are_capped_with_length_and_hash_of_the_full_text() {
    let d = TempDir::new("cap");
    let a = started(&d.0);
    let long = format!("SELECT '{}'", "é".repeat(10_000)); // 20,010 bytes, multi-byte chars
    a.record("s1", stmt(&long)).unwrap();
    a.flush().await.unwrap();
    let e = &a.events("s1")[0];
    let kept = e.str("text").unwrap();
    assert!(
        kept.len() <= TEXT_CAP && kept.len() > TEXT_CAP - 4,
        "{}",
        kept.len()
    );
    assert!(long.starts_with(kept), "cut on a character boundary");
    assert_eq!(e.u64("text_len"), Some(long.len() as u64));
    assert_eq!(
        e.str("text_sha256"),
        Some(hex(&Sha256::digest(long.as_bytes())).as_str())
    );
}

fn bind(params: Vec<Option<Bytes>>) -> EventKind {
    EventKind::Bind {
        portal: "".into(),
        statement_name: "s0".into(),
        params,
    }
}

#[tokio::test]
async fn bind_parameters_are_capped_or_redacted() {
    let params = || {
        vec![
            Some(Bytes::from_static(b"42")),
            None,
            Some(Bytes::from_static(&[0, 0, 0, 7])),
            Some(Bytes::from(vec![b'x'; 5000])),
        ]
    };
    let d = TempDir::new("bind");
    let a = started(&d.0);
    a.record("s1", bind(params())).unwrap();
    a.flush().await.unwrap();
    let p = a.events("s1")[0].get("params").unwrap().clone();
    assert_eq!(p[0], serde_json::json!({"len": 2, "text": "42"}));
    assert_eq!(p[1], serde_json::Value::Null);
    assert_eq!(p[2], serde_json::json!({"len": 4, "base64": "AAAABw=="}));
    assert_eq!(p[3]["len"], 5000);
    assert_eq!(p[3]["text"].as_str().unwrap().len(), PARAM_CAP);
    drop(a);

    let d = TempDir::new("bind-redacted");
    let a = open(
        &d.0,
        AuditOptions {
            redact_parameters: true,
            ..Default::default()
        },
    );
    a.start();
    a.record("s1", bind(params())).unwrap();
    a.flush().await.unwrap();
    let p = a.events("s1")[0].get("params").unwrap().clone();
    assert_eq!(
        p,
        serde_json::json!([{"len": 2}, null, {"len": 4}, {"len": 5000}])
    );
}

#[tokio::test]
async fn bind_parameter_bytes_are_budgeted_per_bind() {
    let d = TempDir::new("budget");
    let a = started(&d.0);
    let many: Vec<Option<Bytes>> = (0..40)
        .map(|_| Some(Bytes::from(vec![b'v'; 1000])))
        .collect();
    a.record("s1", bind(many)).unwrap();
    a.flush().await.unwrap();
    let p = a.events("s1")[0].get("params").unwrap().clone();
    let kept: usize = p
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.get("text").and_then(|t| t.as_str()).map_or(0, str::len))
        .sum();
    assert_eq!(kept, PARAMS_BUDGET);
    assert_eq!(p[39], serde_json::json!({"len": 1000}));
}

#[tokio::test]
async fn durable_events_get_consecutive_seqs_and_are_committed() {
    let d = TempDir::new("durable");
    let a = started(&d.0);
    a.record("s1", stmt("SELECT 1")).unwrap();
    let s = a
        .record_durable("s1", stmt("UPDATE t SET x = 1"))
        .await
        .unwrap();
    assert_eq!(s, 2);
    // Resolved means committed: visible without any further flush.
    assert_eq!(a.events("s1").len(), 2);
    let s = a
        .record_durable("s2", stmt("UPDATE t SET x = 2"))
        .await
        .unwrap();
    assert_eq!(s, 3);
    assert!(a.stats().commits >= 2);
    assert_eq!(a.stats().events, 3);
}

#[tokio::test]
async fn events_queue_until_start_and_a_full_queue_is_counted_not_waited_on() {
    let d = TempDir::new("queue");
    let a = open(
        &d.0,
        AuditOptions {
            queue_capacity: 4,
            ..Default::default()
        },
    );
    for i in 0..4 {
        a.record("s1", stmt(&format!("SELECT {i}"))).unwrap();
    }
    assert!(matches!(
        a.record("s1", stmt("SELECT 5")),
        Err(AuditError::QueueFull)
    ));
    assert_eq!(a.stats().dropped, 1);
    assert!(a.events("s1").is_empty(), "nothing is written before start");
    a.start();
    a.flush().await.unwrap();
    assert_eq!(a.events("s1").len(), 4);
    assert!(a.healthy());
}
#[test]
fn verify_of_a_missing_store_says_so_and_a_second_handle_is_refused_clearly() {
    let d = TempDir::new("missing");
    let e = verify(&d.0).unwrap_err();
    assert!(e.to_string().contains("no audit store"), "{e}");

    let a = open(&d.0, AuditOptions::default());
    let Err(e) = Audit::open(&d.0, AuditOptions::default()) else {
        panic!("a second handle on the same store opened");
    };
    assert!(matches!(e, AuditError::Locked(_)));
    assert_eq!(
        e.to_string(),
        format!(
            "the audit store at {} is in use by another process (is `jitgate serve` running? use the API instead)",
            d.0.display()
        )
    );
    drop(a);
}
// ---- requests, sessions at restart, retention, recordings, export ----

#[tokio::test]
async fn pending_requests_are_cancelled_at_restart_with_an_event() {
    let d = TempDir::new("requests");
    let a = started(&d.0);
    a.put_request(&request_view("r1", State::Pending));
    a.put_request(&request_view("r2", State::Approved));
    let mut r1 = request_view("r1", State::Pending);
    r1.approvals_required = 2; // an upsert replaces
    a.put_request(&r1);
    a.flush().await.unwrap();
    drop(a);

    let a = started(&d.0);
    assert_eq!(a.requests().len(), 2);
    assert_eq!(a.close_stale_requests(), 1);
    a.flush().await.unwrap();
    let reqs = a.requests();
    let r1 = reqs.iter().find(|r| r["id"] == "r1").unwrap();
    assert_eq!(r1["state"], "cancelled");
    assert_eq!(r1["reason"], "jitgate restarted");
    assert_eq!(r1["approvals_required"], 2);
    assert_eq!(
        reqs.iter().find(|r| r["id"] == "r2").unwrap()["state"],
        "approved"
    );
    let ev = a.events("s9");
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].kind(), "request_decided");
    assert_eq!(ev[0].str("state"), Some("cancelled"));
    assert_eq!(ev[0].str("request"), Some("r1"));
    assert_eq!(a.close_stale_requests(), 0);
}

#[tokio::test]
async fn request_upserts_are_written_by_the_writer_never_dropped_latest_first() {
    let d = TempDir::new("requests-queue");
    let a = open(
        &d.0,
        AuditOptions {
            queue_capacity: 2,
            ..Default::default()
        },
    );
    a.record("s1", stmt("SELECT 1")).unwrap();
    a.record("s1", stmt("SELECT 2")).unwrap();
    // The queue is full: the upserts wait in the writer's slot all the same.
    a.put_request(&request_view("r1", State::Pending));
    a.put_request(&request_view("r1", State::Approved));
    a.put_request(&request_view("r2", State::Pending));
    assert_eq!(a.stats().dropped, 0);
    assert!(a.requests().is_empty(), "nothing is written before start");
    a.start();
    a.flush().await.unwrap();
    let reqs = a.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs.iter().find(|r| r["id"] == "r1").unwrap()["state"],
        "approved"
    );
    assert_eq!(a.events("s1").len(), 2);

    // On an idle store an upsert wakes the writer by itself.
    a.put_request(&request_view("r3", State::Denied));
    let until = Instant::now() + Duration::from_secs(10);
    while a.request("r3").is_none() {
        assert!(Instant::now() < until, "the upsert was never written");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(a.request("r3").unwrap()["state"], "denied");
}

#[tokio::test]
async fn sessions_open_at_a_crash_are_closed_at_restart() {
    let d = TempDir::new("stale-sessions");
    let a = started(&d.0);
    a.record("s1", start_ev("alice", "app-db")).unwrap();
    a.record("s2", start_ev("bob", "app-db")).unwrap();
    a.record("s2", end_ev()).unwrap();
    a.flush().await.unwrap();
    assert_eq!(a.close_stale_sessions(), 1);
    a.flush().await.unwrap();
    assert_eq!(
        a.session("s1").unwrap().end_reason.as_deref(),
        Some("jitgate restarted")
    );
    assert_eq!(
        a.session("s2").unwrap().end_reason.as_deref(),
        Some("client closed")
    );
}
#[tokio::test]
async fn an_ssh_session_plays_back_as_asciicast_v2() {
    let d = TempDir::new("cast");
    let a = started(&d.0);
    a.record("ssh1", start_ev("alice", "web-1")).unwrap();
    let frame = |t: f64, stream: char, data: &'static str| EventKind::Recording {
        channel: 0,
        t,
        stream,
        data: data.into(),
    };
    a.record("ssh1", frame(0.0, 'r', "120x40")).unwrap();
    a.record("ssh1", frame(0.1, 'o', "$ ")).unwrap();
    a.record("ssh1", frame(1.5, 'i', "ls\r")).unwrap();
    a.record(
        "ssh1",
        EventKind::Recording {
            channel: 0,
            t: 1.6,
            stream: 'o',
            data: Bytes::from_static(b"a\xffb\r\n").into(),
        },
    )
    .unwrap();
    a.record("ssh1", EventKind::ExitStatus { status: 0 })
        .unwrap();
    a.record("pg1", stmt("SELECT 1")).unwrap();
    a.flush().await.unwrap();

    let cast = a.recording("ssh1").unwrap();
    let lines: Vec<serde_json::Value> = cast
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["version"], 2);
    assert_eq!(
        (lines[0]["width"].clone(), lines[0]["height"].clone()),
        (120.into(), 40.into())
    );
    assert!(lines[0]["timestamp"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(lines[1], serde_json::json!([0.0, "r", "120x40"]));
    assert_eq!(lines[2], serde_json::json!([0.1, "o", "$ "]));
    assert_eq!(lines[3], serde_json::json!([1.5, "i", "ls\r"]));
    assert_eq!(lines[4], serde_json::json!([1.6, "o", "a\u{fffd}b\r\n"]));
    assert_eq!(lines.len(), 5);
    assert_eq!(a.recording("pg1"), None);
}

#[tokio::test]
async fn export_lists_every_event_since_a_time_in_chain_order() {
    let d = TempDir::new("export");
    let a = started(&d.0);
    a.record_at(1_000_000_000_000_000, "s1".into(), stmt("SELECT old"))
        .unwrap();
    a.flush().await.unwrap();
    a.record("s1", stmt("SELECT 1")).unwrap();
    a.record("s2", stmt("SELECT 2")).unwrap();
    a.record("s1", result("SELECT 1", 1)).unwrap();
    a.flush().await.unwrap();
    let all: Vec<u64> = a.export(0).map(|e| e.seq).collect();
    assert_eq!(all, [1, 2, 3, 4]);
    let recent: Vec<EventRecord> = a.export(1_500_000_000).collect();
    assert_eq!(recent.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3, 4]);
    let line = serde_json::to_string(&recent[1]).unwrap();
    assert!(line.starts_with(r#"{"seq":3,"at":"#), "{line}");
    assert!(
        line.contains(r#""session":"s2","kind":"statement","#),
        "{line}"
    );
}
