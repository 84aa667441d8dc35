//! Recording and reading back: events in order with their fields, caps and redaction,
//! durable writes, the queue, recordings and export.

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{TempDir, end_ev, open, result, start_ev, started, stmt};
use crate::audit::encode::hex;
use crate::audit::*;
use crate::request::State;

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
async fn nothing_is_dropped_a_session_over_its_backlog_waits_for_the_writer() {
    let d = TempDir::new("queue");
    let a = open(
        &d.0,
        AuditOptions {
            queue_capacity: 6,
            session_backlog: 4,
            ..Default::default()
        },
    );
    let (flooder, quiet) = (a.backlog(), a.backlog());
    for i in 0..4 {
        a.record_in(&flooder, "s1", stmt(&format!("SELECT {i}")))
            .unwrap();
    }
    // The flooding session is over its own bound; the quiet one still has room.
    assert_eq!(flooder.len(), 4);
    assert!(!a.has_room(&flooder));
    assert!(a.has_room(&quiet));
    // Past the bound, events are still queued, never refused or dropped.
    for i in 4..10 {
        a.record_in(&flooder, "s1", stmt(&format!("SELECT {i}")))
            .unwrap();
    }
    a.record("upkeep", stmt("SELECT 'no session'")).unwrap();
    // Now the whole queue is over its bound: every session waits.
    assert!(!a.has_room(&quiet));
    assert!(a.events("s1").is_empty(), "nothing is written before start");
    let waiting = tokio::spawn({
        let (a, flooder) = (a.clone(), flooder.clone());
        async move { a.room(&flooder).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(
        !waiting.is_finished(),
        "room before the writer took anything"
    );
    a.start();
    tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
        .await
        .expect("room once the writer has taken the events")
        .unwrap();
    assert!(flooder.is_empty() && a.has_room(&quiet));
    a.flush().await.unwrap();
    let texts: Vec<String> = a
        .events("s1")
        .iter()
        .map(|e| e.str("text").unwrap_or_default().to_string())
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("SELECT {i}")).collect();
    assert_eq!(texts, expected, "every event, in order");
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
    a.record_at(1_000_000_000_000_000, "s1".into(), stmt("SELECT old"), None)
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
