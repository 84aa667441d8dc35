//! Proofs 4 and 5 of running replicas as one (the request half; the audit shipping half is
//! tests/cluster_audit*.rs): a replica killed while it holds a request has it cancelled by
//! another within node_timeout plus a few seconds, and recorded in that replica's trail; a
//! clean stop cancels only the stopping node's requests; while the state database's server is
//! stopped (a PostgreSQL of its own, the targets stay up), reads flow, held and granted writes
//! are refused with an error naming the state store, and /healthz says so; when it is started
//! again, grants and held requests carry on.

#[path = "support/api.rs"]
mod api;
#[path = "support/replicas.rs"]
mod replicas;
mod support;

use std::time::{Duration, Instant};

use api::{BOB_TOKEN, assert_error, failure, finish, held_id, poll, wait_for_pending};
use replicas::Replicas;
use serde_json::Value;
use support::ALICE;

const A: usize = 0;
const B: usize = 1;

/// `GET /healthz` of replica `fx` as JSON.
fn health(fx: &api::Fixture) -> Value {
    let (status, body) = fx
        .env
        .jg
        .http_get("http", "/healthz")
        .expect("GET /healthz");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("healthz is JSON")
}

/// Replica `fx`'s exported audit events (JSON lines) as text, read by an auditor (`token`).
fn export(fx: &api::Fixture, token: &str) -> String {
    let auth = format!("Bearer {token}");
    let r = support::http::request(
        fx.env.jg.api_addr(),
        "http",
        "GET",
        "/v1/audit/export",
        &[("Authorization", &auth)],
        None,
    )
    .expect("GET /v1/audit/export");
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_s_requests_are_cancelled_by_another() {
    let node_timeout = Duration::from_secs(3);
    let mut r = Replicas::start(2, "60s", "3s");
    let mut s = r.node(A).alice_session().await;
    let h = s.spawn_simple("UPDATE t SET v = 9 WHERE id = 4");
    let id = held_id(&s.notice().await).expect("held on A");
    wait_for_pending(&r.node(B).bob, ALICE);
    r.node(A).env.jg.kill("KILL");
    let killed = Instant::now();
    let _ = finish(h).await; // A's client loses its connection
    let cancelled = r.node(B).bob.wait_state(&id, "cancelled");
    let took = killed.elapsed();
    assert_eq!(cancelled["reason"], "node jg-a lost");
    assert!(
        took < node_timeout + Duration::from_secs(4),
        "B cancelled A's request {took:?} after the kill"
    );
    assert_eq!(
        r.state_sql(&format!(
            "SELECT state || ' / ' || reason FROM jitgate_requests WHERE id = '{id}';"
        )),
        "cancelled / node jg-a lost"
    );
    assert_eq!(r.node(B).row("t", 4), Some(0), "the held write never ran");
    // B's own trail records the cancellation it made.
    poll("B's trail to record the cancellation", || {
        let events = export(r.node(B), BOB_TOKEN);
        match events.lines().any(|l| {
            l.contains("request_decided") && l.contains(&id) && l.contains("node jg-a lost")
        }) {
            true => Ok(()),
            false => Err(format!("not in B's export:\n{events}")),
        }
    });
    // A comes back under the same name and serves again.
    r.restart(A);
    let mut s = r.node(A).alice_session().await;
    let h = s.spawn_simple("UPDATE t SET v = 10 WHERE id = 4");
    let id = held_id(&s.notice().await).expect("held on the restarted A");
    assert_eq!(wait_for_pending(&r.node(B).bob, ALICE)["node"], "jg-a");
    r.node(B).bob.approve_ok(&id, "after the restart", None);
    finish(h).await.expect("runs on the restarted A");
    assert_eq!(r.node(B).row("t", 4), Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_cancels_only_the_stopping_node_s_requests() {
    let mut r = Replicas::start(2, "60s", "3s");
    let mut on_a = r.node(A).alice_session().await;
    let mut on_b = r.node(B).alice_session().await;
    let held_a = on_a.spawn_simple("UPDATE t SET v = 5 WHERE id = 5");
    let id_a = held_id(&on_a.notice().await).expect("held on A");
    let held_b = on_b.spawn_simple("UPDATE t SET v = 6 WHERE id = 6");
    let id_b = held_id(&on_b.notice().await).expect("held on B");
    r.node(B).env.jg.kill("TERM");
    let (code, message) = failure(finish(held_b).await);
    assert_eq!(code, "57014", "{message}");
    let stopped = r.nodes[B]
        .as_mut()
        .expect("B")
        .env
        .jg
        .wait_exit(Duration::from_secs(30));
    assert!(stopped.is_some(), "B did not stop");
    assert_eq!(
        r.state_sql(&format!(
            "SELECT string_agg(id || '=' || state, ' ' ORDER BY id = '{id_a}') FROM jitgate_requests \
             WHERE id IN ('{id_a}', '{id_b}');"
        )),
        format!("{id_b}=cancelled {id_a}=pending")
    );
    // A's request still waits and still runs when approved.
    r.node(A).bob.approve_ok(&id_a, "A was not stopped", None);
    finish(held_a).await.expect("A's write runs");
    assert_eq!(r.node(A).row("t", 5), Some(5));
    assert_eq!(r.node(A).row("t", 6), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_state_store_reads_flow_and_writes_are_refused_naming_it() {
    let r = Replicas::start_with_state_server(2, "60s", "3s");
    let (a, b) = (r.node(A), r.node(B));
    assert_eq!(health(a)["state"], "ok");
    // A grant for `UPDATE t SET v = … WHERE id = …` from before the outage.
    let mut s = a.alice_session().await;
    let h = s.spawn_simple("UPDATE t SET v = 1 WHERE id = 7");
    let id = held_id(&s.notice().await).expect("held");
    a.bob.approve_ok(&id, "grant", Some(600));
    finish(h).await.expect("approved");
    // A request held on A across the outage.
    let mut held_session = a.alice_session().await;
    let across = held_session.spawn_simple("UPDATE t2 SET v = 7 WHERE id = 1");
    let across_id = held_id(&held_session.notice().await).expect("held on A");
    wait_for_pending(&b.bob, ALICE);
    r.stop_state_server();
    for fx in [a, b] {
        poll("healthz to report the state store unreachable", || {
            let h = health(fx);
            match h["state"] == "unreachable" {
                true => Ok(()),
                false => Err(h.to_string()),
            }
        });
    }
    // Reads flow on both replicas.
    let on_b = b.alice_session().await;
    assert_eq!(s.value("SELECT v FROM t WHERE id = 7").await, "1");
    assert_eq!(on_b.value("SELECT count(*) FROM t").await, "10");
    // The granted write (A) and a write that needs a request (B) are refused, naming the store.
    for (session, sql) in [
        (&s, "UPDATE t SET v = 2 WHERE id = 7"),
        (&on_b, "UPDATE t SET v = 3 WHERE id = 8"),
    ] {
        let (code, message) = failure(session.client.simple_query(sql).await);
        assert_eq!(code, "42501", "{message}");
        assert!(
            message.contains("state store (PostgreSQL) is unreachable"),
            "{message}"
        );
    }
    assert_eq!(a.row("t", 7), Some(1));
    assert_eq!(a.row("t", 8), Some(0));
    // Longer than node_timeout: every heartbeat in the store is old when it comes back.
    std::thread::sleep(Duration::from_secs(4));
    // A revoke through the API is refused too (503), not guessed: the grant stays.
    let grant = a.bob.grants()[0]["id"]
        .as_str()
        .expect("grant id")
        .to_string();
    assert_error(
        "revoke without the state store",
        &b.bob.delete(&format!("/v1/grants/{grant}")),
        503,
    );
    r.start_state_server();
    for fx in [a, b] {
        poll("healthz to report the state store back", || {
            let h = health(fx);
            match h["state"] == "ok" {
                true => Ok(()),
                false => Err(h.to_string()),
            }
        });
    }
    // Back: the grant (still live in the store) covers the write again on B.
    let done = on_b
        .client
        .simple_query("UPDATE t SET v = 4 WHERE id = 7")
        .await
        .expect("the grant works again once resynced");
    assert_eq!(api::affected(&done), Some(1));
    assert_eq!(a.row("t", 7), Some(4));
    // Nobody took the outage for a lost node: A's request is still pending after another
    // node_timeout and more, and still runs when approved.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        r.state_sql(&format!(
            "SELECT state FROM jitgate_requests WHERE id = '{across_id}';"
        )),
        "pending"
    );
    b.bob.approve_ok(&across_id, "after the outage", None);
    finish(across)
        .await
        .expect("the request held across the outage runs");
    assert_eq!(a.row("t2", 1), Some(7));
}
