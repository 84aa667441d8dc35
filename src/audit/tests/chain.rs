//! The hash chain against tampering, and pruning that keeps it verifiable.

use super::{
    TempDir, end_ev, fill, kept_30_days, open, request_view, start_ev, started, stmt, verify_retry,
};
use crate::audit::chain::{self, Link};
use crate::audit::keys;
use crate::audit::segment::{self, Location};
use crate::audit::*;
use crate::request::State;

#[tokio::test]
async fn an_intact_store_verifies_offline_with_the_right_count() {
    let d = TempDir::new("intact");
    let a = started(&d.0);
    fill(&a, 10).await;
    fill(&a, 5).await;
    a.record_durable("s2", stmt("SELECT 99")).await.unwrap();
    assert_eq!(a.verify().unwrap(), 16);
    drop(a);
    assert_eq!(verify_retry(&d.0).unwrap(), 16);
}

// ---- tampering: edit the stored blocks the way someone with the files would ----

type Owned = (Vec<u8>, [u8; 32]);

/// Rewrite the block holding `seq` through `f` (which gets owned `(record, hash)` pairs): the
/// edited block is appended to its segment file and its location pointed at it, as someone
/// with the files could (an edit in place is in `tests::segment`).
fn tamper(a: &Audit, seq: u64, f: impl FnOnce(&mut Vec<Owned>)) {
    let db = &a.inner.store.db;
    let (k, loc) = db
        .range(keys::located(0)..keys::located(seq + 1))
        .next_back()
        .unwrap()
        .unwrap();
    let loc = Location::decode(&loc).unwrap();
    let v = a.inner.store.segments.reader().read(&loc).unwrap();
    let raw = chain::unpack(&v).unwrap();
    let b = chain::decode(&raw).unwrap();
    let mut evs: Vec<Owned> = b
        .events
        .iter()
        .map(|e| (e.record.to_vec(), e.hash))
        .collect();
    let prev = b.prev;
    f(&mut evs);
    let edited = chain::encode_raw(&prev, &evs);
    let path = a.inner.store.segments.path(loc.segment);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    let offset = file.metadata().unwrap().len();
    let mut frame = Vec::new();
    let at = segment::push_frame(&mut frame, &edited);
    std::io::Write::write_all(&mut file, &frame).unwrap();
    let moved = Location {
        segment: loc.segment,
        offset: offset + at,
        len: edited.len() as u32,
    };
    db.insert(k, moved.encode().to_vec()).unwrap();
}

fn replace(hay: &mut Vec<u8>, from: &[u8], to: &[u8]) {
    let i = hay.windows(from.len()).position(|w| w == from).unwrap();
    hay.splice(i..i + from.len(), to.iter().copied());
}

fn broken_at(a: &Audit) -> u64 {
    match a.verify() {
        Err(VerifyError::Broken(b)) => {
            assert!(
                b.to_string()
                    .starts_with(&format!("broken link at event {}: ", b.seq))
            );
            b.seq
        }
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[tokio::test]
async fn changing_one_event_breaks_its_link() {
    let d = TempDir::new("t-edit");
    let a = started(&d.0);
    fill(&a, 10).await;
    tamper(&a, 5, |evs| {
        replace(&mut evs[4].0, b"SELECT 4", b"SELECT 9")
    });
    assert_eq!(broken_at(&a), 5);
}

#[tokio::test]
async fn changing_one_event_and_its_hash_breaks_the_next_link() {
    let d = TempDir::new("t-edit-rehash");
    let a = started(&d.0);
    fill(&a, 10).await;
    tamper(&a, 5, |evs| {
        replace(&mut evs[4].0, b"SELECT 4", b"SELECT 9");
        evs[4].1 = chain::link(&evs[3].1, &evs[4].0);
    });
    assert_eq!(broken_at(&a), 6);
}

#[tokio::test]
async fn deleting_one_event_is_named() {
    let d = TempDir::new("t-delete");
    let a = started(&d.0);
    fill(&a, 10).await;
    tamper(&a, 7, |evs| {
        evs.remove(6);
    });
    let e = a.verify().unwrap_err().to_string();
    assert_eq!(broken_at(&a), 7);
    assert!(e.contains("event 7 is missing"), "{e}");
}

#[tokio::test]
async fn swapping_two_events_is_named() {
    let d = TempDir::new("t-swap");
    let a = started(&d.0);
    fill(&a, 10).await;
    tamper(&a, 3, |evs| evs.swap(2, 3));
    assert_eq!(broken_at(&a), 3);
}

#[tokio::test]
async fn swapping_two_events_with_their_seqs_renumbered_is_named() {
    let d = TempDir::new("t-swap-renumber");
    let a = started(&d.0);
    fill(&a, 10).await;
    tamper(&a, 3, |evs| {
        evs.swap(2, 3);
        evs[2].0[..8].copy_from_slice(&3u64.to_be_bytes());
        evs[3].0[..8].copy_from_slice(&4u64.to_be_bytes());
    });
    assert_eq!(broken_at(&a), 3);
}

#[tokio::test]
async fn inserting_one_event_is_named() {
    let d = TempDir::new("t-insert");
    let a = started(&d.0);
    fill(&a, 10).await;
    tamper(&a, 5, |evs| {
        // A well-formed forged event 6, correctly linked to event 5, slipped in before the
        // real event 6.
        let mut forged = evs[5].0.clone();
        replace(&mut forged, b"SELECT 5", b"DROP  x;");
        let hash = chain::link(&evs[4].1, &forged);
        evs.insert(5, (forged, hash));
    });
    assert_eq!(broken_at(&a), 7);
}

#[tokio::test]
async fn removing_a_whole_block_or_the_last_one_is_named() {
    let d = TempDir::new("t-block");
    let a = started(&d.0);
    fill(&a, 3).await; // 1..=3
    fill(&a, 3).await; // 4..=6
    fill(&a, 3).await; // 7..=9
    assert_eq!(a.verify().unwrap(), 9);
    let db = &a.inner.store.db;
    let middle = db.remove(keys::located(4)).unwrap().unwrap();
    assert_eq!(broken_at(&a), 4);
    db.insert(keys::located(4), middle).unwrap();
    assert_eq!(a.verify().unwrap(), 9);
    db.remove(keys::located(7)).unwrap().unwrap();
    let e = a.verify().unwrap_err().to_string();
    assert_eq!(broken_at(&a), 7);
    assert!(e.contains("removed"), "{e}");
}

#[tokio::test]
async fn pruning_keeps_the_rest_verifiable() {
    let d = TempDir::new("prune");
    let (a, now, old) = kept_30_days(&d.0, AuditOptions::default());
    let rec =
        |at: u64, s: &'static str, ev| a.record_at(at, Text::from_static(s), ev, None).unwrap();
    rec(old, "old", start_ev("alice", "app-db"));
    rec(old + 1, "long", start_ev("bob", "app-db"));
    rec(old + 2, "old", stmt("SELECT 1"));
    rec(old + 3, "old", end_ev());
    a.flush().await.unwrap();
    rec(old + 4, "long", stmt("SELECT 2"));
    a.flush().await.unwrap();
    a.put_request(&request_view("r-old", State::Denied));
    a.record("new", start_ev("carol", "app-db")).unwrap();
    a.record("long", stmt("SELECT 3")).unwrap();
    a.record("new", stmt("SELECT 4")).unwrap();
    a.flush().await.unwrap();
    assert_eq!(a.verify().unwrap(), 8);

    assert_eq!(a.prune(now), 1, "only the ended old session goes");
    assert_eq!(a.session("old"), None);
    assert!(a.events("old").is_empty());
    assert!(a.session("long").is_some(), "a session still running stays");
    assert_eq!(
        a.events("long").len(),
        1,
        "its pruned events are gone, the rest stays"
    );
    assert_eq!(a.events("new").len(), 2);
    assert!(
        a.requests().is_empty(),
        "decided requests older than the cutoff go"
    );
    assert_eq!(a.verify().unwrap(), 3);
    assert_eq!(a.prune(now), 0);

    // The chain continues after pruning and across a reopen.
    a.record("new", end_ev()).unwrap();
    a.flush().await.unwrap();
    drop(a);
    assert_eq!(verify_retry(&d.0).unwrap(), 4);
    let a = open(&d.0, AuditOptions::default());
    a.start();
    assert_eq!(a.record_durable("new", stmt("SELECT 5")).await.unwrap(), 10);
    assert_eq!(a.verify().unwrap(), 5);
    // Tampering with the anchor breaks the first remaining link.
    a.inner
        .store
        .db
        .insert(
            keys::ANCHOR,
            Link {
                seq: 5,
                hash: [1; 32],
            }
            .encode()
            .to_vec(),
        )
        .unwrap();
    assert_eq!(broken_at(&a), 6);
}

// ---- texts stored once per session: the definition is evidence like any event ----

const LONG: &str = "SELECT abalance FROM pgbench_accounts WHERE aid = $1";

/// s1 stores LONG whole (event 1), then references it (events 2 and 3).
async fn referenced(a: &Audit) {
    for _ in 0..3 {
        a.record("s1", stmt(LONG)).unwrap();
    }
    a.flush().await.unwrap();
    let raw = super::texts::stored(a);
    assert!(raw[1].1.get("text_ref").is_some(), "{:?}", raw[1]);
}

#[tokio::test]
async fn editing_a_referenced_text_breaks_its_link() {
    let d = TempDir::new("t-text");
    let a = started(&d.0);
    referenced(&a).await;
    assert_eq!(a.verify().unwrap(), 3);
    tamper(&a, 1, |evs| {
        replace(&mut evs[0].0, b"abalance", b"bbalance")
    });
    assert_eq!(broken_at(&a), 1);
}

#[tokio::test]
async fn editing_a_referenced_text_and_rehashing_everything_leaves_its_references_naming_nothing() {
    let d = TempDir::new("t-text-rehash");
    let a = started(&d.0);
    referenced(&a).await;
    let mut head = Link::START;
    tamper(&a, 1, |evs| {
        replace(&mut evs[0].0, b"abalance", b"bbalance");
        let mut prev = chain::GENESIS;
        for (record, hash) in evs.iter_mut() {
            *hash = chain::link(&prev, record);
            prev = *hash;
        }
        head = Link { seq: 3, hash: prev };
    });
    a.inner
        .store
        .db
        .insert(keys::HEAD, head.encode().to_vec())
        .unwrap();
    let e = a.verify().unwrap_err().to_string();
    assert_eq!(broken_at(&a), 2);
    assert!(e.contains("text_ref"), "{e}");
    // Readers show what is stored: the edited text, and references that resolve to nothing.
    let ev = a.events("s1");
    assert!(ev[0].str("text").unwrap().contains("bbalance"));
    assert!(ev[1].get("text").is_none() && ev[1].get("text_ref").is_some());
}
