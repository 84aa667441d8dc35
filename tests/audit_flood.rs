//! The audit trail loses nothing under load: pipelined floods of reads from several sessions
//! while held writes are approved. Every statement and result of every session is in the
//! chain, every approval's request, decision and result too, the chain verifies, and a
//! session that is not flooding is served meanwhile. (The full-size flood is in
//! `bench/audit.sh`.)

#[path = "support/api.rs"]
mod api;
#[path = "support/events.rs"]
mod events;
mod support;

use std::io::{BufReader, Write};

use api::{Fixture, finish, poll};
use serde_json::Value;
use support::wire::{RawSession, query_message, read_message};
use support::{ALICE, ALICE_PASSWORD, APP_TARGET};

const FLOODERS: usize = 4;
const QUERIES: usize = 20_000;
const HELD_WRITES: i32 = 4;

/// Sends `QUERIES` simple queries in one pipeline and reads every answer; the number of
/// ReadyForQuery messages seen.
fn flood(session: RawSession) -> usize {
    let mut writer = session.stream.try_clone().expect("clone the socket");
    let sender = std::thread::spawn(move || {
        let one = query_message("SELECT 1");
        let all: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * QUERIES)
            .collect();
        writer.write_all(&all).expect("send the pipeline");
    });
    let mut reader = BufReader::with_capacity(64 * 1024, &session.stream);
    let mut ready = 0;
    while ready < QUERIES {
        match read_message(&mut reader).expect("read an answer") {
            Some((b'Z', _)) => ready += 1,
            Some((b'E', body)) => panic!("an error: {}", String::from_utf8_lossy(&body)),
            Some(_) => {}
            None => break,
        }
    }
    sender.join().expect("the sender");
    session.close();
    ready
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["kind"] == kind).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn floods_lose_no_event_and_approvals_are_all_in_the_chain() {
    let fx = Fixture::new("60s", 10);
    let addr = fx.env.jg.pg_addr();
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| {
            let session =
                RawSession::login(addr, ALICE, APP_TARGET, ALICE_PASSWORD, &[]).expect("login");
            std::thread::spawn(move || flood(session))
        })
        .collect();

    // Meanwhile a session that does not flood has its writes held and approved.
    let mut quiet = fx.alice_session().await;
    let mut requests = Vec::new();
    for id in 1..=HELD_WRITES {
        let h = quiet.spawn_simple(&format!("UPDATE t SET v = v + 1 WHERE id = {id}"));
        let request = api::held_id(&quiet.notice().await).expect("a held request");
        fx.bob.approve_ok(&request, "during the flood", None);
        finish(h).await.expect("the approved UPDATE");
        requests.push(request);
    }
    let served = RawSession::first_column(
        &RawSession::login(addr, ALICE, APP_TARGET, ALICE_PASSWORD, &[])
            .expect("a login during the flood")
            .query("select 'served'"),
    );
    assert_eq!(served, [Some("served".to_string())]);
    for f in flooders {
        assert_eq!(
            f.join().expect("a flooder"),
            QUERIES,
            "every answer arrived"
        );
    }
    drop(quiet);
    assert_eq!(
        fx.sql(&format!(
            "SELECT count(*) FROM t WHERE v = 1 AND id <= {HELD_WRITES}"
        )),
        HELD_WRITES.to_string()
    );

    let sessions = poll("every session to end in the audit trail", || {
        let list = fx.bob.get_ok(&format!("/v1/sessions?user={ALICE}"));
        let list = list.as_array().cloned().unwrap_or_default();
        let ended = list.iter().filter(|s| s.get("ended_at").is_some()).count();
        if list.len() == FLOODERS + 2 && ended == list.len() {
            Ok(list)
        } else {
            Err(format!("{ended} of {} ended", list.len()))
        }
    });
    let mut flooded = 0;
    let mut decided = Vec::new();
    let mut joined_results = 0;
    for s in &sessions {
        let id = s["id"].as_str().expect("a session id");
        let stored = fx.bob.get_ok(&format!("/v1/sessions/{id}/events"));
        let stored = stored.as_array().cloned().unwrap_or_default();
        // Each result once: inside its statement's event or after it on its own.
        joined_results += events::joined(&stored);
        let events = events::with_results(&stored);
        assert_eq!(count(&events, "session_start"), 1, "{id}");
        assert_eq!(count(&events, "session_end"), 1, "{id}");
        if count(&events, "statement") >= QUERIES {
            flooded += 1;
            assert_eq!(count(&events, "statement"), QUERIES, "{id}: statements");
            assert_eq!(count(&events, "result"), QUERIES, "{id}: results");
        }
        for e in events.iter().filter(|e| e["kind"] == "request_decided") {
            assert_eq!(e["state"], "approved", "{e}");
            decided.push(e["request"].as_str().unwrap_or_default().to_string());
            let mut after = events.iter().skip_while(|x| x != &e).skip(1);
            let result = after
                .find(|x| x["kind"] == "result")
                .expect("the approved statement's result");
            assert_eq!(result["command_tag"], "UPDATE 1", "{result}");
        }
    }
    assert_eq!(flooded, FLOODERS);
    // Results that arrive before the writer takes their statement join it: with this many,
    // some do (none would mean the relay does not hand the statement's record on).
    assert!(joined_results > 0, "no result joined its statement");
    decided.sort();
    requests.sort();
    assert_eq!(decided, requests, "every approval is in the chain");
    let verified = fx.bob.get_ok("/v1/audit/verify");
    assert_eq!(verified["ok"], true, "{verified}");
}
