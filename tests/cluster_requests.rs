//! Proofs 1–3 of running replicas as one: a write held on replica A and approved through B's
//! API runs on A; a grant given through A passes on B and a revoke through B stops it on A;
//! concurrent approvals and denials on two replicas decide a request exactly once. Every
//! outcome is checked on the target table and in the state database, not only in jitgate's
//! answers.

#[path = "support/api.rs"]
mod api;
#[path = "support/replicas.rs"]
mod replicas;
mod support;

use std::time::{Duration, Instant};

use api::{DDL_RULE, WRITE_RULE, failure, finish, held_id, held_notice, poll, wait_for_pending};
use replicas::Replicas;
use support::ALICE;

const A: usize = 0;
const B: usize = 1;

/// `jitgate_pending_requests` of one replica.
fn pending_requests(fx: &api::Fixture) -> u64 {
    fx.env
        .jg
        .metric("jitgate_pending_requests")
        .map(|v| v as u64)
        .expect("jitgate_pending_requests in /metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_on_a_approved_through_b_runs_on_a() {
    let r = Replicas::start(2, "60s", "6s");
    let (a, b) = (r.node(A), r.node(B));
    // B's event stream, open before anything happens on A.
    let mut stream = api::RequestStream::open(b.env.jg.api_addr(), api::BOB_TOKEN);
    let mut s = a.alice_session().await;
    let h = s.spawn_simple("UPDATE t SET v = 41 WHERE id = 1");
    let notice = s.notice().await;
    let id = held_id(&notice).expect("a hold notice");
    assert_eq!(notice, held_notice(&id, WRITE_RULE));
    // Committed before the notice: the row is there now.
    assert_eq!(
        r.state_sql(&format!(
            "SELECT node || ' ' || state FROM jitgate_requests WHERE id = '{id}';"
        )),
        "jg-a pending"
    );
    // B's API shows A's request, with the node holding it.
    let seen = wait_for_pending(&b.bob, ALICE);
    assert_eq!(seen["id"], id.as_str());
    assert_eq!(seen["node"], "jg-a");
    // A's impact preview (the planner's row estimate) reaches B's view too.
    poll(
        "B's view of the request to carry A's impact preview",
        || {
            let v = b.bob.request(&id);
            match v["impact"]["estimated_rows"].as_f64() {
                Some(rows) if rows >= 1.0 => Ok(()),
                _ => Err(v.to_string()),
            }
        },
    );
    assert_eq!(a.row("t", 1), Some(0), "nothing ran yet");
    // Each replica's gauge counts what its own sessions hold: summed, the cluster's.
    assert_eq!(pending_requests(a), 1);
    assert_eq!(pending_requests(b), 0);
    assert!(stream.read_until(&id).contains("\"state\":\"pending\""));
    let approved = b.bob.approve_ok(&id, "ok from b", None);
    assert_eq!(approved["state"], "approved");
    let done = finish(h).await.expect("the approved write runs on A");
    assert_eq!(api::affected(&done), Some(1));
    assert_eq!(a.row("t", 1), Some(41), "the target has the write");
    stream.read_until("\"state\":\"approved\"");
    assert_eq!(a.bob.wait_state(&id, "approved")["decided_by"], "bob");
    // A's trail names the node in the session's start event.
    let session = seen["session"].as_str().expect("session id");
    let events = a.bob.get_ok(&format!("/v1/sessions/{session}/events"));
    let start = events
        .as_array()
        .and_then(|e| e.iter().find(|e| e["kind"] == "session_start"))
        .unwrap_or_else(|| panic!("no session_start in {events}"));
    assert_eq!(start["node"], "jg-a", "{start}");
    assert_eq!(
        r.state_sql(&format!(
            "SELECT state || ' ' || (SELECT count(*) FROM jitgate_approvals WHERE request = id) \
             FROM jitgate_requests WHERE id = '{id}';"
        )),
        "approved 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_from_a_passes_on_b_and_a_revoke_on_b_stops_it_on_a() {
    let r = Replicas::start(2, "60s", "6s");
    let (a, b) = (r.node(A), r.node(B));
    let mut on_a = a.alice_session().await;
    let h = on_a.spawn_simple("UPDATE t SET v = 1 WHERE id = 2");
    let id = held_id(&on_a.notice().await).expect("held on A");
    let approved = a.bob.approve_ok(&id, "for ten minutes", Some(600));
    let grant = approved["grant"].as_str().expect("a grant").to_string();
    finish(h).await.expect("the approved write runs");
    // The grant reaches B (notification, then the cache) within 100 ms of the approval; the
    // first statement after it passes without a hold.
    let on_b = b.alice_session().await;
    let started = Instant::now();
    let done = tokio::time::timeout(
        Duration::from_secs(10),
        on_b.client.simple_query("UPDATE t SET v = 2 WHERE id = 2"),
    )
    .await
    .expect("the granted write is not held on B")
    .expect("the granted write passes on B");
    assert_eq!(api::affected(&done), Some(1));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(a.row("t", 2), Some(2), "B's write reached the target");
    assert!(b.bob.pending(Some(ALICE)).is_empty(), "no request on B");
    // Revoked through B: A stops honouring it within 1 s.
    let (status, body) = b.bob.delete(&format!("/v1/grants/{grant}"));
    assert_eq!(status, 200, "{body}");
    let revoked_at = Instant::now();
    assert_eq!(
        r.state_sql(&format!(
            "SELECT revoked_by FROM jitgate_grants WHERE id = '{grant}';"
        )),
        "bob"
    );
    poll("A's cache to drop the revoked grant", || {
        match a.bob.grants().iter().any(|g| g["id"] == grant.as_str()) {
            false => Ok(()),
            true => Err("still listed on A".into()),
        }
    });
    assert!(
        revoked_at.elapsed() < Duration::from_secs(1),
        "the revoke took {:?} to reach A",
        revoked_at.elapsed()
    );
    let h = on_a.spawn_simple("UPDATE t SET v = 3 WHERE id = 2");
    let held = held_id(&on_a.notice().await).expect("held again on A after the revoke");
    assert_eq!(wait_for_pending(&b.bob, ALICE)["id"], held.as_str());
    b.bob.deny_ok(&held, "grant revoked");
    let (code, _) = failure(finish(h).await);
    assert_eq!(code, "42501");
    assert_eq!(
        a.row("t", 2),
        Some(2),
        "the write after the revoke never ran"
    );
}

/// Runs `f(0)` and `f(1)` on two threads released at the same instant.
fn at_once<T: Send>(f: impl Fn(usize) -> T + Sync) -> (T, T) {
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        let run = |i| {
            let (f, barrier) = (&f, &barrier);
            scope.spawn(move || {
                barrier.wait();
                f(i)
            })
        };
        let (x, y) = (run(0), run(1));
        (
            x.join().expect("first racer"),
            y.join().expect("second racer"),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_two_approvals_racing_on_two_replicas_decide_once() {
    let r = Replicas::start(2, "60s", "6s");
    let (a, b) = (r.node(A), r.node(B));
    for round in 0..5 {
        let mut s = a.alice_session().await;
        let table = format!("raced_{round}");
        let h = s.spawn_simple(&format!("CREATE TABLE {table} (i int)"));
        let notice = s.notice().await;
        let id = held_id(&notice).expect("ddl held");
        assert_eq!(notice, held_notice(&id, DDL_RULE));
        wait_for_pending(&b.carol, ALICE);
        let (bob, carol) = at_once(|i| match i {
            0 => a.bob.approve(&id, "bob on a", None),
            _ => b.carol.approve(&id, "carol on b", None),
        });
        assert_eq!((bob.0, carol.0), (200, 200), "{bob:?} {carol:?}");
        // Exactly one of the two answers completed the request.
        let states = [bob.1["state"].clone(), carol.1["state"].clone()];
        assert_eq!(
            states.iter().filter(|s| *s == "approved").count(),
            1,
            "round {round}: {states:?}"
        );
        finish(h).await.expect("the approved ddl runs once");
        let view = a.bob.wait_state(&id, "approved");
        let by: Vec<&str> = view["approvals"]
            .as_array()
            .expect("approvals")
            .iter()
            .map(|x| x["by"].as_str().unwrap_or_default())
            .collect();
        assert_eq!(by.len(), 2, "{view}");
        assert!(by.contains(&"bob") && by.contains(&"carol"), "{view}");
        assert_eq!(
            r.state_sql(&format!(
                "SELECT state || ' ' || (SELECT string_agg(approver, ',' ORDER BY approver) \
                 FROM jitgate_approvals WHERE request = id) FROM jitgate_requests WHERE id = '{id}';"
            )),
            "approved bob,carol"
        );
        assert_eq!(
            a.sql(&format!(
                "SELECT count(*) FROM pg_tables WHERE tablename = '{table}';"
            )),
            "1"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_and_approve_racing_on_two_replicas_have_one_outcome() {
    let r = Replicas::start(2, "60s", "6s");
    let (a, b) = (r.node(A), r.node(B));
    for round in 0..4 {
        let mut s = a.alice_session().await;
        let h = s.spawn_simple(&format!("UPDATE t SET v = {} WHERE id = 3", 100 + round));
        let id = held_id(&s.notice().await).expect("held");
        wait_for_pending(&b.carol, ALICE);
        let before = a.row("t", 3);
        let (approve, deny) = at_once(|i| match i {
            0 => a.bob.approve(&id, "go", None),
            _ => b.carol.deny(&id, "stop"),
        });
        let codes = (approve.0, deny.0);
        assert!(
            codes == (200, 409) || codes == (409, 200),
            "round {round}: exactly one decision wins: {approve:?} {deny:?}"
        );
        let result = finish(h).await;
        let stored = r.state_sql(&format!(
            "SELECT state FROM jitgate_requests WHERE id = '{id}';"
        ));
        if approve.0 == 200 {
            assert_eq!(stored, "approved");
            result.expect("approved: the write runs");
            assert_eq!(a.row("t", 3), Some(100 + round));
        } else {
            assert_eq!(stored, "denied");
            assert_eq!(failure(result).0, "42501");
            assert_eq!(a.row("t", 3), before, "denied: the target is unchanged");
        }
        assert_eq!(b.bob.wait_state(&id, &stored)["state"], stored.as_str());
    }
}

/// Many writes held at once on A, in waves, each approved through B: every one is held (its
/// request committed in the state store), none refused, and each runs on A. Holds on A's
/// session threads and the impact previews they start share the state store's connections
/// (`cluster::shared`: both run on the main runtime, never on a session thread that may be
/// waiting for a request's INSERT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_of_concurrent_holds_are_all_held_and_run() {
    let r = Replicas::start(2, "60s", "6s");
    let (a, b) = (r.node(A), r.node(B));
    for wave in 1..=3 {
        let mut sessions = Vec::new();
        for table in ["t", "t2"] {
            for id in 1..=10 {
                sessions.push((table, id, a.alice_session().await));
            }
        }
        // All sent before any notice is read, so the holds overlap.
        let mut running = Vec::new();
        for (table, id, s) in sessions {
            let h = s.spawn_simple(&format!("UPDATE {table} SET v = {wave} WHERE id = {id}"));
            running.push((table, id, h, s));
        }
        let mut held = Vec::new();
        for (table, id, h, mut s) in running {
            let notice = s.notice().await;
            let request = held_id(&notice)
                .unwrap_or_else(|| panic!("wave {wave}, {table} row {id}: no hold but {notice}"));
            held.push((table, id, request, h, s));
        }
        for (_, _, request, _, _) in &held {
            assert_eq!(b.bob.approve_ok(request, "wave", None)["state"], "approved");
        }
        for (table, id, _, h, _s) in held {
            let done = finish(h).await.expect("an approved write runs on A");
            assert_eq!(api::affected(&done), Some(1));
            assert_eq!(
                a.row(table, id),
                Some(wave),
                "{table} row {id} after wave {wave}"
            );
        }
    }
    assert_eq!(
        r.state_sql("SELECT state || ' ' || count(*) FROM jitgate_requests GROUP BY state;"),
        "approved 60"
    );
}
