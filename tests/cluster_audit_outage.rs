//! Issue 17, the audit halves of proofs 4 and 5, against real processes: a PostgreSQL 15 for
//! the target, another for the state database, two jitgate replicas with `[cluster]`.
//!
//! - proof 4: A is SIGKILLed with events not yet shipped; after A restarts, its shipped trail
//!   and B's verify as one history, and every local event of A is in PostgreSQL;
//! - a replica whose store was wiped does not ship under its old node name;
//! - proof 5: the state database's server is stopped while the replicas serve reads; the
//!   events of that interval are kept locally (the lag metric shows them) and appear in
//!   PostgreSQL once it is started again.

#[path = "support/api.rs"]
mod api;
#[path = "cluster_audit/replicas.rs"]
mod replicas;
mod support;

use api::{AUDITOR_TOKEN, poll};
use replicas::{ALICE_TOKEN, Replicas, api, local_trail, shipping_lag, stop};
use serde_json::Value;
use support::{ALICE_PASSWORD, APP_TARGET, pg_connect};

/// The session `id` as B's API shows it to the auditor, once `ready` holds for it.
fn session_on(b: &support::Jitgate, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
    poll(&format!("session {id} as B shows it"), || {
        let (status, v) = api(b, AUDITOR_TOKEN).get(&format!("/v1/sessions/{id}"));
        if status == 200 && ready(&v) {
            Ok(v)
        } else {
            Err(format!("{status} {v}"))
        }
    })
}

/// The statement texts of session `id` through B's API.
fn statements_on(b: &support::Jitgate, id: &str) -> Vec<String> {
    let events = api(b, AUDITOR_TOKEN).get_ok(&format!("/v1/sessions/{id}/events"));
    events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["kind"] == "statement")
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect()
}

/// The id of the one session B's API lists, once it lists one.
fn only_session(b: &support::Jitgate) -> String {
    poll("the one session in B's list", || {
        let (status, v) = api(b, AUDITOR_TOKEN).get("/v1/sessions");
        match v.as_array().map(Vec::as_slice) {
            Some([one]) if status == 200 => Ok(one["id"].as_str().unwrap_or("").to_string()),
            _ => Err(format!("{status} {v}")),
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_replica_ships_what_it_had_not_and_b_verifies_one_history() {
    let r = Replicas::with_state_server();
    let mut a = r.start("jg-a");
    let b = r.start("jg-b");
    let conninfo = format!(
        "{} password={ALICE_PASSWORD}",
        a.conninfo(support::ALICE, APP_TARGET)
    );
    let (client, _conn) = pg_connect(&conninfo).await.expect("alice connects to A");
    client
        .simple_query("SELECT 'before the outage'")
        .await
        .expect("a read");
    let id = only_session(&b);
    poll("the first read shipped", || {
        let texts = statements_on(&b, &id);
        match texts.iter().any(|t| t == "SELECT 'before the outage'") {
            true => Ok(()),
            false => Err(format!("{texts:?}")),
        }
    });

    // Events A cannot ship: the state database is away while alice reads, then A dies.
    r.stop_state_server();
    for i in 0..5 {
        client
            .simple_query(&format!("SELECT 'while away {i}'"))
            .await
            .expect("reads keep flowing while the state database is away");
    }
    poll(
        "A's lag to show the unshipped events",
        || match shipping_lag(&a) {
            n if n >= 5 => Ok(()),
            n => Err(format!("lag {n}")),
        },
    );
    a.kill("KILL");
    a.wait_exit(api::POLL).expect("A is gone");
    r.start_state_server();
    // As if A's last acknowledged batch had not committed: it ships events 2.. again, and
    // the rows already there are kept once.
    r.state_sql(
        "UPDATE jitgate_audit_heads SET head_seq = 1, head_hash = (SELECT hash \
         FROM jitgate_audit_events WHERE node = 'jg-a' AND seq = 1) WHERE node = 'jg-a';",
    );
    let before_restart = r.shipped("jg-a");
    assert!(before_restart.len() >= 2, "{before_restart:?}");

    // A starts again on its own store: it ends the session it lost and ships everything.
    let mut a = r.start("jg-a");
    let s = session_on(&b, &id, |s| s["ended_at"].is_f64());
    assert_eq!(s["end_reason"], "jitgate restarted", "{s}");
    let texts = statements_on(&b, &id);
    for i in 0..5 {
        let t = format!("SELECT 'while away {i}'");
        assert!(
            texts.contains(&t),
            "{t} was shipped after the restart: {texts:?}"
        );
    }
    let verified = api(&b, AUDITOR_TOKEN).get_ok("/v1/audit/verify");
    assert_eq!(verified["ok"], true, "{verified}");
    assert!(
        a.log().contains("resuming after event 1"),
        "{}",
        a.log_tail(20)
    );

    // Nothing lost: A's own trail, read offline once it stops, is exactly what was shipped.
    stop(&mut a);
    let local = local_trail(&r.data_dir("jg-a"));
    assert!(local.len() >= 8, "{local:?}");
    assert_eq!(
        r.shipped("jg-a"),
        local,
        "every local event of A is in PostgreSQL"
    );
    let verified = api(&b, AUDITOR_TOKEN).get_ok("/v1/audit/verify");
    let node_a = verified["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == "jg-a"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        node_a["events"].as_u64(),
        Some(local.len() as u64),
        "{verified}"
    );
    assert_eq!(node_a["ok"], true, "{verified}");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_a_state_database_outage_ship_when_it_is_back() {
    let r = Replicas::with_state_server();
    let mut a = r.start("jg-a");
    let b = r.start("jg-b");
    poll(
        "A's first contact with the state database",
        || match shipping_lag(&a) {
            0 => Ok(()),
            n => Err(format!("lag {n}")),
        },
    );

    r.stop_state_server();
    let out = support::psql_query(
        &a.conninfo(support::ALICE, APP_TARGET),
        ALICE_PASSWORD,
        "SELECT 'during the outage'",
    );
    assert_eq!(out, "during the outage", "reads keep flowing");
    poll("A's lag to count the session", || match shipping_lag(&a) {
        n if n >= 3 => Ok(()),
        n => Err(format!("lag {n}")),
    });
    let (status, health) = a.http_get("http", "/healthz").expect("GET /healthz");
    let health: Value = serde_json::from_str(&health).expect("healthz is JSON");
    assert_eq!(status, 200, "{health}");
    assert!(
        health["shipping_lag_events"]
            .as_u64()
            .is_some_and(|n| n >= 3),
        "{health}"
    );
    // B cannot read the shared history meanwhile, and says what is missing.
    let (status, v) = api(&b, ALICE_TOKEN).get("/v1/sessions");
    assert_eq!(status, 503, "{v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("state store"),
        "{v}"
    );
    let probe = r
        .state_pg
        .psql_cmd(&r.state_db)
        .args(["-c", "select 1"])
        .output()
        .expect("run psql");
    assert!(
        !probe.status.success(),
        "the state database's server was down the whole time"
    );

    r.start_state_server();
    let id = only_session(&b);
    let s = session_on(&b, &id, |s| s["ended_at"].is_f64());
    assert_eq!(s["user"], "alice", "{s}");
    assert!(
        statements_on(&b, &id).contains(&"SELECT 'during the outage'".to_string()),
        "the outage's statement reached PostgreSQL"
    );
    poll("A's lag back to 0", || match shipping_lag(&a) {
        0 => Ok(()),
        n => Err(format!("lag {n}")),
    });
    stop(&mut a);
    assert_eq!(
        r.shipped("jg-a"),
        local_trail(&r.data_dir("jg-a")),
        "every local event of A is in PostgreSQL"
    );
}

#[test]
fn a_wiped_store_does_not_ship_under_its_old_node_name() {
    let r = Replicas::new();
    let mut a = r.start("jg-a");
    let b = r.start("jg-b");
    let conninfo = a.conninfo(support::ALICE, APP_TARGET);
    support::psql_query(&conninfo, ALICE_PASSWORD, "SELECT 'first life'");
    let id = only_session(&b);
    session_on(&b, &id, |s| s["ended_at"].is_f64());
    stop(&mut a);
    let shipped = r.shipped("jg-a");

    std::fs::remove_dir_all(r.data_dir("jg-a")).expect("wipe A's data_dir");
    let a = r.start("jg-a");
    let conninfo = a.conninfo(support::ALICE, APP_TARGET);
    support::psql_query(&conninfo, ALICE_PASSWORD, "SELECT 'second life'");
    poll("A to refuse to ship", || {
        if a.log().contains("does not continue the chain") {
            Ok(())
        } else {
            Err(a.log_tail(10))
        }
    });
    assert_eq!(
        r.shipped("jg-a"),
        shipped,
        "nothing of the new store was mixed in"
    );
    let verified = api(&b, AUDITOR_TOKEN).get_ok("/v1/audit/verify");
    assert_eq!(verified["ok"], true, "{verified}");
    poll(
        "the new store's events counted as not shipped",
        || match shipping_lag(&a) {
            0 => Err("lag 0".to_string()),
            _ => Ok(()),
        },
    );
}
