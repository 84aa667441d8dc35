//! Requests kept beside the chain and what a restart closes: request upserts, pending
//! requests cancelled and open sessions ended at start-up.

use std::time::{Duration, Instant};

use super::{TempDir, end_ev, kept_30_days, open, request_view, start_ev, started, stmt};
use crate::audit::*;
use crate::request::State;

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
    // The queue is over its bound: the upserts wait in the writer's slot all the same.
    a.put_request(&request_view("r1", State::Pending));
    a.put_request(&request_view("r1", State::Approved));
    a.put_request(&request_view("r2", State::Pending));
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
async fn retention_keeps_what_has_not_reached_the_state_database() {
    let d = TempDir::new("keep-after");
    let (a, now, old) = kept_30_days(&d.0, AuditOptions::default());
    // Three old blocks of one event each, events 1, 2 and 3.
    for (i, ev) in [start_ev("alice", "app-db"), stmt("SELECT 1"), end_ev()]
        .into_iter()
        .enumerate()
    {
        a.record_at(old + i as u64, Text::from_static("old"), ev, None)
            .unwrap();
        a.flush().await.unwrap();
    }
    // The three blocks' index entries as one grouped entry, keyed by block 3.
    assert_eq!(super::regrouped(&a, b"old").await, vec![1, 2, 3]);
    let prefix = crate::audit::keys::index_prefix(b"old");
    assert_eq!(a.inner.store.db.scan_prefix(&prefix).count(), 1);
    a.keep_after(0);
    assert_eq!(a.prune(now), 0, "nothing shipped yet: nothing goes");
    assert_eq!(a.events("old").len(), 3);
    a.keep_after(2);
    a.prune(now);
    let kept: Vec<u64> = a.events("old").iter().map(|e| e.seq).collect();
    assert_eq!(kept, vec![3], "events 1 and 2 shipped and went, 3 stays");
    assert_eq!(
        a.inner.store.db.scan_prefix(&prefix).count(),
        1,
        "the grouped entry stays with its last block"
    );
    assert_eq!(a.verify().unwrap(), 1);
    a.keep_after(3);
    assert_eq!(a.prune(now), 1, "all shipped: the ended session goes");
    assert!(a.events("old").is_empty());
    assert_eq!(a.inner.store.db.scan_prefix(&prefix).count(), 0);
}
