//! 200 sessions each hold a different statement at once; decided in a shuffled order (some
//! denied), every client gets exactly its own outcome. Its own test binary, so its own cluster
//! (max_connections 300) serves nothing else meanwhile.

#[path = "support/api.rs"]
mod api;
mod support;

use std::collections::HashMap;

use api::{Fixture, Session, failure, finish, held_id, wait_for_pending_n};
use futures_util::stream::{self, StreamExt};
use support::ALICE;
use tokio_postgres::SimpleQueryMessage;

const SESSIONS: i32 = 200;

/// Deterministic shuffle (xorshift), so a failure can be replayed.
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

fn denied(i: i32) -> bool {
    i % 4 == 0
}

fn statement(i: i32) -> String {
    format!("UPDATE t SET v = {i} WHERE id = {i} RETURNING id, v")
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_holds_each_get_their_own_result() {
    // The hold timeout is not under test here: long enough for a slow, shared machine.
    let fx = Fixture::new("10m", SESSIONS as u32);
    let fx_ref = &fx;
    let mut sessions: Vec<(i32, Session)> = stream::iter(1..=SESSIONS)
        .map(|i| async move { (i, fx_ref.alice_session().await) })
        .buffer_unordered(8)
        .collect()
        .await;
    sessions.sort_by_key(|(i, _)| *i);

    let tasks: Vec<_> = sessions
        .iter()
        .map(|(i, s)| (*i, s.spawn_simple(&statement(*i))))
        .collect();
    // Each session's notice names its own request.
    let mut id_of = HashMap::new();
    for (i, s) in sessions.iter_mut() {
        let id = held_id(&s.notice().await).expect("request id in the notice");
        id_of.insert(*i, id);
    }
    let pending = wait_for_pending_n(&fx.bob, ALICE, SESSIONS as usize);
    assert_eq!(pending.len(), SESSIONS as usize);
    for r in &pending {
        let stmt = r["statement"].as_str().unwrap();
        let i = (1..=SESSIONS)
            .find(|i| statement(*i) == stmt)
            .unwrap_or_else(|| panic!("a request for a statement nobody sent: {r}"));
        assert_eq!(
            r["id"],
            id_of[&i].as_str(),
            "session {i}'s notice names another request"
        );
    }

    let mut order: Vec<i32> = (1..=SESSIONS).collect();
    shuffle(&mut order, 0x5eed_1234_abcd_0001);
    for &i in &order {
        let id = &id_of[&i];
        if denied(i) {
            fx.bob.deny_ok(id, &format!("<no for {i}>"));
        } else {
            fx.bob.approve_ok(id, &format!("<yes for {i}>"), None);
        }
    }

    for (i, h) in tasks {
        let r = finish(h).await;
        let id = &id_of[&i];
        if denied(i) {
            let (code, msg) = failure(r);
            assert_eq!(code, "42501", "session {i}: {msg}");
            assert!(
                msg.contains(id.as_str()),
                "session {i} got another's error: {msg}"
            );
            assert!(msg.contains(&format!("<no for {i}>")), "session {i}: {msg}");
        } else {
            let msgs = r.unwrap_or_else(|e| panic!("session {i}: {e}"));
            let rows: Vec<(String, String)> = msgs
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => {
                        Some((r.get(0)?.to_string(), r.get(1)?.to_string()))
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(rows, [(i.to_string(), i.to_string())], "session {i}");
        }
    }

    let approved = (1..=SESSIONS).filter(|i| !denied(*i)).count();
    assert_eq!(
        fx.sql("SELECT count(*) FROM t WHERE v = id;"),
        approved.to_string()
    );
    assert_eq!(
        fx.sql("SELECT count(*) FROM t WHERE v <> id AND v <> 0;"),
        "0"
    );
    assert_eq!(
        fx.sql("SELECT count(*) FROM t WHERE v = 0 AND id % 4 <> 0;"),
        "0"
    );
    assert!(fx.bob.pending(None).is_empty());
    // Every session is still usable.
    for (_, s) in &sessions {
        assert_eq!(s.value("SELECT 1").await, "1");
    }
}
