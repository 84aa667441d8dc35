//! `[audit] retention_days` applies to a replica's shipped trail in the state database too:
//! rows past it go, the node's anchor moves to the last row removed, and what remains still
//! verifies and reads through the other replica. Against real processes: one PostgreSQL 15
//! (state and target), two jitgate replicas.
//!
//! Rows are made old by moving their time back in the state database (the records keep
//! theirs; the rows that would then disagree with their records are the ones removed).

#[path = "support/api.rs"]
mod api;
#[path = "cluster_audit/replicas.rs"]
mod replicas;
mod support;

use api::{AUDITOR_TOKEN, poll};
use replicas::{Replicas, api, shipping_lag, stop};
use support::{ALICE, ALICE_PASSWORD, APP_TARGET};

/// Seconds per day, in µs.
const DAY_US: i64 = 86_400 * 1_000_000;

#[test]
fn retention_removes_old_shipped_rows_and_what_remains_verifies() {
    let r = Replicas::new().with_retention_days(1);
    let mut a = r.start("jg-a");
    let b = r.start("jg-b");
    for what in ["old 1", "old 2", "new"] {
        let sql = format!("SELECT '{what}'");
        let out = support::psql_query(&a.conninfo(ALICE, APP_TARGET), ALICE_PASSWORD, &sql);
        assert_eq!(out, what);
    }
    // All three sessions ended and shipped.
    poll("A's three sessions to ship", || {
        let ended = r.state_sql(
            "SELECT count(*) FROM jitgate_audit_sessions WHERE node = 'jg-a' \
             AND ended_at IS NOT NULL;",
        );
        match (ended.as_str(), shipping_lag(&a)) {
            ("3", 0) => Ok(()),
            (n, lag) => Err(format!("{n} ended, lag {lag}")),
        }
    });
    stop(&mut a);
    // The first two sessions' rows become three days old.
    let new_session = r.state_sql(
        "SELECT id FROM jitgate_audit_sessions WHERE node = 'jg-a' ORDER BY started_at DESC LIMIT 1;",
    );
    let last_old = r.state_sql(&format!(
        "SELECT max(seq) FROM jitgate_audit_events WHERE node = 'jg-a' AND seq < \
         (SELECT min(seq) FROM jitgate_audit_events WHERE session = '{new_session}');"
    ));
    let last_old: i64 = last_old.parse().expect("a seq");
    let head: i64 = r
        .state_sql("SELECT head_seq FROM jitgate_audit_heads WHERE node = 'jg-a';")
        .parse()
        .expect("head seq");
    r.state_sql(&format!(
        "UPDATE jitgate_audit_events SET at_us = at_us - {} WHERE node = 'jg-a' AND seq <= {last_old};\n\
         UPDATE jitgate_audit_sessions SET started_at = started_at - 259200, \
         ended_at = ended_at - 259200 WHERE node = 'jg-a' AND id <> '{new_session}';",
        3 * DAY_US
    ));

    // A starts again: its shipper prunes once connected.
    let a = r.start("jg-a");
    poll("A's old shipped rows to go", || {
        let left = r.state_sql(
            "SELECT coalesce(min(seq), 0) || ' ' || count(*) FROM jitgate_audit_events \
             WHERE node = 'jg-a';",
        );
        match left == format!("{} {}", last_old + 1, head - last_old) {
            true => Ok(()),
            false => Err(left),
        }
    });
    assert_eq!(
        r.state_sql("SELECT anchor_seq FROM jitgate_audit_heads WHERE node = 'jg-a';"),
        last_old.to_string(),
        "the anchor moved to the last row removed"
    );
    assert_eq!(
        r.state_sql("SELECT count(*) FROM jitgate_audit_sessions WHERE node = 'jg-a';"),
        "1",
        "the two old sessions' records went with their rows"
    );
    // What remains verifies, and reads, through B.
    let (status, verified) = api(&b, AUDITOR_TOKEN).get("/v1/audit/verify");
    assert_eq!(status, 200, "{verified}");
    let node_a = verified["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["node"] == "jg-a"))
        .unwrap_or_else(|| panic!("no node jg-a in {verified}"));
    assert_eq!(node_a["ok"], true, "{verified}");
    let (status, sessions) = api(&b, AUDITOR_TOKEN).get("/v1/sessions");
    assert_eq!(status, 200, "{sessions}");
    let ids: Vec<&str> = sessions
        .as_array()
        .map(|l| l.iter().filter_map(|s| s["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(ids.contains(&new_session.as_str()), "{sessions}");
    assert!(
        ids.iter().all(|id| *id == new_session),
        "A's old sessions are gone from the shared history: {sessions}"
    );
    drop(a);
}
