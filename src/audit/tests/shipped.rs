//! The stored events as they leave the process, and the checks of a copy of them.

use super::{TempDir, end_ev, fill, start_ev, started, stmt};
use crate::audit::{ShippedChain, ShippedRow, StoredEvent, event_record, kind_of};

fn row(e: &StoredEvent) -> ShippedRow<'_> {
    ShippedRow {
        seq: e.seq,
        at_us: e.at_us,
        session: &e.session,
        kind: &e.kind,
        record: &e.record,
        hash: &e.hash,
        prev_hash: &e.prev_hash,
    }
}

/// Check `rows` as one shipped chain from the genesis, ending at the last row.
fn check_all(events: &[StoredEvent]) -> Result<u64, crate::audit::Broken> {
    let mut chain = ShippedChain::after(0, &[0; 32])?;
    for e in events {
        chain.check(&row(e))?;
    }
    let last = events.last().expect("events");
    chain.finish(last.seq, &last.hash)
}

#[tokio::test]
async fn stored_events_come_in_chain_order_and_verify_as_a_copy() {
    let d = TempDir::new("shipped-order");
    let a = started(&d.0);
    a.record("s1", start_ev("alice", "app-db")).unwrap();
    fill(&a, 5).await;
    // A second commit, so the events span two blocks.
    a.record("s1", end_ev()).unwrap();
    a.flush().await.unwrap();
    assert_eq!(a.head_seq().unwrap(), 7);

    let all = a.stored_after(0, 1000, 1 << 20).unwrap();
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>());
    assert_eq!(all[0].kind, "session_start");
    assert_eq!(all[1].kind, "statement");
    assert_eq!(all[6].kind, "session_end");
    assert!(all.iter().all(|e| e.session == "s1"));
    assert_eq!(all[0].prev_hash, [0; 32]);
    assert_eq!(check_all(&all).unwrap(), 7);

    // The readers' view of a shipped record is the local store's.
    let local = a.events("s1");
    let copied: Vec<_> = all
        .iter()
        .map(|e| event_record(&e.record, &e.hash).expect("a record"))
        .collect();
    assert_eq!(local.len(), copied.len());
    assert_eq!(local[2].hash, copied[2].hash);
    assert_eq!(local[2].fields, copied[2].fields);

    // Resuming after an event continues exactly there, linked to it, within the bounds.
    let rest = a.stored_after(4, 2, 1 << 20).unwrap();
    assert_eq!(rest.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![5, 6]);
    assert_eq!(rest[0].prev_hash, all[3].hash);
    let one = a.stored_after(4, 100, 1).unwrap();
    assert_eq!(one.len(), 1, "past max_bytes after the first event");
    assert!(a.stored_after(7, 100, 1 << 20).unwrap().is_empty());
}

#[tokio::test]
async fn an_edited_copy_is_named_by_event() {
    let d = TempDir::new("shipped-tamper");
    let a = started(&d.0);
    for i in 0..4 {
        a.record("s1", stmt(&format!("SELECT {i} FROM t"))).unwrap();
    }
    a.flush().await.unwrap();
    let all = a.stored_after(0, 100, 1 << 20).unwrap();

    // The record's bytes.
    let mut edited = all.clone();
    let n = edited[2].record.len();
    edited[2].record[n - 3] ^= 1;
    let e = check_all(&edited).unwrap_err();
    assert_eq!(e.seq, 3, "{e}");

    // A column that no longer says what the record says.
    let mut edited = all.clone();
    edited[1].session = "s2".into();
    let e = check_all(&edited).unwrap_err();
    assert_eq!(e.seq, 2, "{e}");
    assert!(e.reason.contains("session column"), "{e}");

    // A row removed in the middle, and one removed at the end.
    let mut gap = all.clone();
    gap.remove(1);
    assert_eq!(check_all(&gap).unwrap_err().seq, 2);
    let mut chain = ShippedChain::after(0, &[0; 32]).unwrap();
    for e in &all[..3] {
        chain.check(&row(e)).unwrap();
    }
    let e = chain.finish(4, &all[3].hash).unwrap_err();
    assert_eq!(e.seq, 4, "{e}");
}

#[test]
fn the_kind_is_read_from_the_canonical_prefix() {
    assert_eq!(kind_of(br#"{"kind":"statement","text":"x"}"#), "statement");
    assert_eq!(kind_of(br#"{"text":"x","kind":"statement"}"#), "");
    assert_eq!(kind_of(b"garbage"), "");
}
