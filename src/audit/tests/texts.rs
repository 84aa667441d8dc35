//! Statement texts stored once per session: what is stored, and that every reader gets the
//! events back whole.

use std::sync::Arc;

use super::{TempDir, end_ev, open, start_ev, started, stmt, verify_retry};
use crate::audit::chain;
use crate::audit::*;

const LONG: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";

/// Every event as stored: (session, JSON), in chain order.
pub(super) fn stored(a: &Audit) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for kv in a.inner.store.blocks() {
        let (_, v) = kv.expect("a block");
        let raw = chain::unpack(&v).expect("a block that unpacks");
        let b = chain::decode(&raw).expect("a block that decodes");
        for e in b.events {
            out.push((
                String::from_utf8_lossy(e.session).into_owned(),
                serde_json::from_slice(e.json).expect("JSON"),
            ));
        }
    }
    out
}

fn parse(name: &'static str, text: &str) -> EventKind {
    EventKind::Parse {
        statement_name: Text::from_static(name),
        text: Text::from(text.to_string()),
    }
}

#[tokio::test]
async fn a_repeated_text_is_stored_once_per_session_and_read_back_whole() {
    let d = TempDir::new("texts");
    let a = started(&d.0);
    a.record("s1", parse("p", LONG)).unwrap();
    a.record("s1", stmt(LONG)).unwrap();
    a.flush().await.unwrap();
    // Another commit: the reference reaches back across commits (and blocks).
    a.record("s1", stmt(LONG)).unwrap();
    a.record("s2", stmt(LONG)).unwrap();
    a.record("s1", stmt("SELECT 1")).unwrap();
    a.record("s1", stmt("SELECT 1")).unwrap();
    a.flush().await.unwrap();

    let raw = stored(&a);
    let texts: Vec<(&str, Option<&str>, bool)> = raw
        .iter()
        .map(|(s, v)| (s.as_str(), v["text"].as_str(), v.get("text_ref").is_some()))
        .collect();
    assert_eq!(
        texts,
        [
            ("s1", Some(LONG), false),
            ("s1", None, true),
            ("s1", None, true),
            ("s2", Some(LONG), false),
            // Too short for a reference to be smaller.
            ("s1", Some("SELECT 1"), false),
            ("s1", Some("SELECT 1"), false),
        ]
    );
    assert!(raw[1].1.get("text_len").is_none(), "{:?}", raw[1]);
    assert!(
        raw[1].1.to_string().len() < raw[3].1.to_string().len(),
        "a reference is smaller than the text"
    );

    // Readers see every event whole.
    for e in a.events("s1").iter().take(3) {
        assert_eq!(e.str("text"), Some(LONG), "{e:?}");
        assert_eq!(e.u64("text_len"), Some(LONG.len() as u64));
        assert!(e.get("text_ref").is_none());
    }
    let exported: Vec<EventRecord> = a.export(0).collect();
    assert_eq!(exported.len(), 6);
    assert!(exported.iter().all(|e| e.get("text").is_some()));
    assert_eq!(
        exported[..4]
            .iter()
            .filter(|e| e.str("text") == Some(LONG))
            .count(),
        4
    );
    // The reference event reads exactly as the same event stored whole.
    let (by_ref, whole) = (&exported[2].fields, &exported[3].fields);
    assert_eq!(by_ref, whole);
    assert_eq!(a.verify().unwrap(), 6);
    drop(a);
    assert_eq!(verify_retry(&d.0).unwrap(), 6);
}

#[tokio::test]
async fn a_cut_text_is_referenced_by_the_hash_of_the_full_text() {
    let d = TempDir::new("texts-cut");
    let a = started(&d.0);
    let huge = format!("SELECT '{}'", "é".repeat(TEXT_CAP));
    a.record("s1", stmt(&huge)).unwrap();
    a.record("s1", stmt(&huge)).unwrap();
    a.flush().await.unwrap();
    let raw = stored(&a);
    assert!(raw[1].1.get("text_ref").is_some(), "{}", raw[1].1);
    let sha = raw[0].1["text_sha256"].as_str().unwrap();
    assert_eq!(&sha[..32], raw[1].1["text_ref"].as_str().unwrap());
    let ev = a.events("s1");
    assert_eq!(ev[0].fields, ev[1].fields);
    assert_eq!(ev[1].u64("text_len"), Some(huge.len() as u64));
    assert_eq!(ev[1].str("text_sha256"), Some(sha));
}

#[tokio::test]
async fn export_since_after_the_definition_still_resolves() {
    let d = TempDir::new("texts-since");
    let a = open(&d.0, AuditOptions::default());
    a.start();
    let t0 = super::super::now_us() - 120 * 1_000_000;
    let rec =
        |at: u64, s: &'static str, ev| a.record_at(at, Text::from_static(s), ev, None).unwrap();
    rec(t0, "s1", start_ev("alice", "app-db"));
    rec(t0 + 1, "s1", stmt(LONG));
    a.flush().await.unwrap();
    rec(t0 + 60_000_000, "s1", stmt(LONG));
    rec(t0 + 60_000_001, "s1", end_ev());
    a.flush().await.unwrap();
    assert!(stored(&a)[2].1.get("text_ref").is_some());
    let since = (t0 + 30_000_000) / 1_000_000 + 1;
    let exported: Vec<EventRecord> = a.export(since).collect();
    assert_eq!(exported.len(), 2);
    assert_eq!(exported[0].str("text"), Some(LONG), "{:?}", exported[0]);
}

#[tokio::test]
async fn a_text_is_stored_again_once_its_definition_is_an_hour_old_or_its_session_ended() {
    let d = TempDir::new("texts-window");
    let a = open(&d.0, AuditOptions::default());
    a.start();
    let t0 = super::super::now_us() - 2 * 3_600 * 1_000_000;
    let rec =
        |at: u64, s: &'static str, ev| a.record_at(at, Text::from_static(s), ev, None).unwrap();
    rec(t0, "s1", stmt(LONG));
    rec(t0 + 3_600 * 1_000_000 - 1, "s1", stmt(LONG));
    rec(t0 + 3_600 * 1_000_000, "s1", stmt(LONG));
    rec(t0 + 3_600 * 1_000_001, "s1", end_ev());
    // The same id again (a restart's clean-up, a reused id): no reference to the old one.
    rec(t0 + 3_600 * 1_000_002, "s1", stmt(LONG));
    a.flush().await.unwrap();
    let refs: Vec<bool> = stored(&a)
        .iter()
        .map(|(_, v)| v.get("text_ref").is_some())
        .collect();
    assert_eq!(refs, [false, true, false, false, false]);
    assert!(
        a.events("s1")
            .iter()
            .filter(|e| e.kind() == "statement")
            .all(|e| e.str("text") == Some(LONG))
    );
    assert_eq!(a.verify().unwrap(), 5);
}

#[tokio::test]
async fn a_joined_result_and_a_referenced_text_in_one_event() {
    let d = TempDir::new("texts-joined");
    let a = open(&d.0, AuditOptions::default());
    let backlog = a.backlog();
    let session: Arc<str> = Arc::from("s1");
    for _ in 0..2 {
        let h = a
            .record_statement_in(&backlog, &session, stmt(LONG))
            .unwrap();
        a.record_result_in(&backlog, &session, &h, super::result("SELECT 1", 1))
            .unwrap();
    }
    a.start();
    a.flush().await.unwrap();
    let raw = stored(&a);
    assert_eq!(raw.len(), 2);
    assert!(raw[1].1.get("text_ref").is_some());
    let ev = a.events("s1");
    assert_eq!(ev[0].fields, ev[1].fields);
    assert_eq!(ev[1].get("result").unwrap()["command_tag"], "SELECT 1");
}

#[tokio::test]
async fn only_a_sessions_latest_definitions_are_referenced() {
    let d = TempDir::new("texts-ring");
    let a = started(&d.0);
    let text = |i: usize| format!("SELECT * FROM pgbench_accounts WHERE aid = {i:08}");
    let n = crate::audit::texts::PER_SESSION;
    // Text 0, then n others, then text 0 again (no longer among the latest n) and text n (is).
    for i in 0..=n {
        a.record("s1", stmt(&text(i))).unwrap();
    }
    a.record("s1", stmt(&text(0))).unwrap();
    a.record("s1", stmt(&text(n))).unwrap();
    a.flush().await.unwrap();
    let raw = stored(&a);
    assert_eq!(raw.len(), n + 3);
    assert!(raw[..=n].iter().all(|(_, v)| v.get("text").is_some()));
    assert!(raw[n + 1].1.get("text").is_some(), "{}", raw[n + 1].1);
    assert!(raw[n + 2].1.get("text_ref").is_some(), "{}", raw[n + 2].1);
    let ev = a.events("s1");
    assert_eq!(ev[n + 1].str("text"), Some(text(0).as_str()));
    assert_eq!(ev[n + 2].str("text"), Some(text(n).as_str()));
    assert_eq!(a.verify().unwrap(), n as u64 + 3);
}
