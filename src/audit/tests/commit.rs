//! Fewer events and fewer flushes: a statement and its result as one event, and one group
//! commit for all the durable writers waiting at once.

use std::sync::Arc;

use super::{TempDir, open, result, started, stmt, verify_retry};
use crate::audit::*;

#[tokio::test]
async fn a_result_that_arrives_before_the_commit_is_stored_inside_its_statement() {
    let d = TempDir::new("joined");
    // Not started: the writer cannot take the statement before its result arrives.
    let a = open(&d.0, AuditOptions::default());
    let backlog = a.backlog();
    let h = a
        .record_statement_in(&backlog, "s1", stmt("SELECT 1"))
        .unwrap();
    a.record_result_in(&backlog, "s1", &h, result("SELECT 1", 1))
        .unwrap();
    assert_eq!(backlog.len(), 1, "the joined result took no queue slot");
    a.start();
    a.flush().await.unwrap();

    let ev = a.events("s1");
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].kind(), "statement");
    assert_eq!(ev[0].str("text"), Some("SELECT 1"));
    assert_eq!(
        ev[0].get("result"),
        Some(&serde_json::json!({"command_tag": "SELECT 1", "rows": 1, "duration_us": 42}))
    );
    assert_eq!(a.stats().events, 1);
    drop(a);
    assert_eq!(verify_retry(&d.0).unwrap(), 1);
}

#[tokio::test]
async fn a_statement_handle_says_once_its_event_is_on_disk() {
    let d = TempDir::new("written");
    // Not started: nothing can be written yet.
    let a = open(&d.0, AuditOptions::default());
    let backlog = a.backlog();
    let first = a
        .record_statement_in(&backlog, "s1", stmt("UPDATE t SET v = 1"))
        .unwrap();
    let second = a
        .record_statement_in(&backlog, "s1", stmt("UPDATE t SET v = 2"))
        .unwrap();
    assert!(!first.written() && !second.written());
    assert!(!StatementHandle::default().written(), "nothing known");
    a.start();
    a.flush().await.unwrap();
    assert!(first.written() && second.written());
    // A failed commit writes nothing.
    let third = a
        .record_statement_in(&backlog, "s1", stmt("UPDATE t SET v = 3"))
        .unwrap();
    a.inject_failure();
    assert!(a.flush().await.is_err());
    assert!(!third.written());
}

#[tokio::test]
async fn a_result_after_the_commit_is_an_event_of_its_own_exactly_once() {
    let d = TempDir::new("sealed");
    let a = started(&d.0);
    let backlog = a.backlog();
    let h = a
        .record_statement_in(&backlog, "s1", stmt("SELECT 1"))
        .unwrap();
    a.flush().await.unwrap();
    a.record_result_in(&backlog, "s1", &h, result("SELECT 1", 1))
        .unwrap();
    // A second result for the same handle (a caller's mistake) is kept too, never lost.
    a.record_result_in(&backlog, "s1", &h, result("SELECT 1", 1))
        .unwrap();
    a.flush().await.unwrap();

    let kinds: Vec<String> = a.events("s1").iter().map(|e| e.kind().into()).collect();
    assert_eq!(kinds, ["statement", "result", "result"]);
    assert!(a.events("s1")[0].get("result").is_none());
}

#[tokio::test]
async fn results_race_the_writer_and_each_is_stored_exactly_once() {
    let d = TempDir::new("race");
    let a = started(&d.0);
    let n = 2_000u64;
    let producer = {
        let a = a.clone();
        std::thread::spawn(move || {
            let backlog = a.backlog();
            let session: Arc<str> = Arc::from("s1");
            for i in 0..n {
                let h = a
                    .record_statement_in(&backlog, &session, stmt(&format!("SELECT {i}")))
                    .unwrap();
                if i % 7 == 0 {
                    std::thread::yield_now();
                }
                a.record_result_in(&backlog, &session, &h, result("SELECT 1", i))
                    .unwrap();
            }
        })
    };
    producer.join().unwrap();
    a.flush().await.unwrap();
    let ev = a.events("s1");
    let statements = ev.iter().filter(|e| e.kind() == "statement").count() as u64;
    let joined = ev.iter().filter(|e| e.get("result").is_some()).count() as u64;
    let alone = ev.iter().filter(|e| e.kind() == "result").count() as u64;
    assert_eq!(statements, n);
    assert_eq!(
        joined + alone,
        n,
        "every result once: {joined} joined, {alone} alone"
    );
    // Each result's rows say which statement it belongs to: a joined one sits in its own.
    for e in ev.iter().filter(|e| e.get("result").is_some()) {
        let i = e.str("text").unwrap().trim_start_matches("SELECT ");
        assert_eq!(e.get("result").unwrap()["rows"].to_string(), i);
    }
    assert_eq!(a.verify().unwrap(), statements + alone);
}

#[tokio::test]
async fn results_of_a_disabled_or_failed_store() {
    let d = TempDir::new("joined-off");
    let a = open(
        &d.0,
        AuditOptions {
            enabled: false,
            ..Default::default()
        },
    );
    let b = a.backlog();
    let h = a.record_statement_in(&b, "s1", stmt("SELECT 1")).unwrap();
    assert!(
        a.record_result_in(&b, "s1", &h, result("SELECT 1", 1))
            .is_ok()
    );

    let d = TempDir::new("joined-failed");
    let a = started(&d.0);
    a.inject_failure();
    assert!(a.flush().await.is_err());
    assert!(a.record_statement_in(&b, "s1", stmt("SELECT 1")).is_err());
    assert!(
        a.record_result_in(&b, "s1", &StatementHandle::default(), result("SELECT 1", 1))
            .is_err()
    );
}

/// The group commit: durable writers that wait at the same time share one flush instead of
/// queueing for one each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_durable_writers_share_commits() {
    let d = TempDir::new("group");
    let a = started(&d.0);
    let (writers, rounds) = (32u64, 10u64);
    let before = a.stats().commits;
    let barrier = Arc::new(tokio::sync::Barrier::new(writers as usize));
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (a, barrier) = (a.clone(), barrier.clone());
            tokio::spawn(async move {
                for r in 0..rounds {
                    barrier.wait().await;
                    a.record_durable(
                        format!("w{w}"),
                        stmt(&format!("UPDATE t SET x = {r} WHERE id = {w}")),
                    )
                    .await
                    .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let commits = a.stats().commits - before;
    let durable = writers * rounds;
    assert_eq!(a.stats().events, durable);
    // One flush per writer would be `durable` commits; sharing makes it about 2 per round
    // (the first arrival's commit, then everyone who queued behind it).
    assert!(
        commits * 4 <= durable,
        "{commits} commits for {durable} durable writes by {writers} concurrent writers"
    );
}
