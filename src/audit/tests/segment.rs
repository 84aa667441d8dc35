//! The segment files: a torn tail after a crash, blocks sled had not indexed yet, rotation
//! and retention, an edit in place, and stores written before the segment files.

use super::{TempDir, end_ev, fill, kept_30_days, open, start_ev, started, stmt, verify_retry};
use crate::audit::chain::{self, BlockWriter, GENESIS, Link};
use crate::audit::encode::Canonical;
use crate::audit::keys;
use crate::audit::segment::{self, Location};
use crate::audit::store::Store;
use crate::audit::*;

/// The store's segment files: (id, length), in order.
fn segment_files(dir: &std::path::Path) -> Vec<(u64, u64)> {
    let segments = segment::Segments::new(dir);
    segments
        .list()
        .expect("the segment directory lists")
        .into_iter()
        .map(|id| {
            let len = std::fs::metadata(segments.path(id))
                .expect("a segment file")
                .len();
            (id, len)
        })
        .collect()
}

/// sled may hold its lock for a moment after the last handle drops: retry.
fn store_retry(dir: &std::path::Path) -> Store {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(dir) {
            Ok(s) => return s,
            Err(AuditError::Locked(_)) if std::time::Instant::now() < until => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("open: {e}"),
        }
    }
}

/// Where the frames of segment `id` end (the zero-filled rest follows).
fn data_end(dir: &std::path::Path, id: u64) -> u64 {
    let bytes = std::fs::read(segment::Segments::new(dir).path(id)).expect("the segment reads");
    let mut at = 0usize;
    while let Some(header) = bytes.get(at..at + 4) {
        let len = u32::from_be_bytes(header.try_into().expect("4 bytes")) as usize;
        if len == 0 {
            break;
        }
        at += 4 + len;
    }
    at as u64
}

/// Write `bytes` into segment `id` at `offset`, as a crash in the middle of a commit leaves
/// them.
fn write_at(dir: &std::path::Path, id: u64, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let path = segment::Segments::new(dir).path(id);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("the segment opens");
    f.write_all_at(bytes, offset)
        .expect("the bytes are written");
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_on_open_and_the_chain_goes_on() {
    let d = TempDir::new("seg-torn");
    let a = started(&d.0);
    fill(&a, 5).await;
    fill(&a, 5).await;
    drop(a);
    let [(id, size)] = segment_files(&d.0)[..] else {
        panic!("one segment expected: {:?}", segment_files(&d.0));
    };
    let end = data_end(&d.0, id);
    assert!(size > end, "the file is zero-filled ahead of its frames");
    // A clean reopen finds the end of the frames in the zeros and leaves the file alone.
    drop(open(&d.0, AuditOptions::default()));
    assert_eq!(segment_files(&d.0), vec![(id, size)]);
    // A crash in the middle of a commit's write: a frame header announcing 500 bytes, and
    // only 20 of them.
    let mut torn = 500u32.to_be_bytes().to_vec();
    torn.extend_from_slice(&[7; 20]);
    write_at(&d.0, id, end, &torn);

    let a = open(&d.0, AuditOptions::default());
    assert_eq!(
        segment_files(&d.0),
        vec![(id, end)],
        "the torn frame is cut off on open"
    );
    a.start();
    assert_eq!(a.verify().expect("the chain verifies"), 10);
    assert_eq!(a.record_durable("s1", stmt("SELECT 10")).await.unwrap(), 11);
    assert_eq!(a.events("s1").len(), 11);
    drop(a);
    assert_eq!(verify_retry(&d.0).unwrap(), 11);
}

#[tokio::test]
async fn a_whole_frame_that_does_not_link_is_a_torn_tail_too() {
    let d = TempDir::new("seg-garbage");
    let a = started(&d.0);
    fill(&a, 4).await;
    drop(a);
    let [(id, _)] = segment_files(&d.0)[..] else {
        panic!("one segment expected");
    };
    let end = data_end(&d.0, id);
    // A complete frame whose bytes are not the next block (zeros from a torn page).
    let mut frame = Vec::new();
    segment::push_frame(&mut frame, &[0; 64]);
    write_at(&d.0, id, end, &frame);
    assert_eq!(verify_retry(&d.0).unwrap(), 4);
    assert_eq!(segment_files(&d.0), vec![(id, end)]);
}

#[tokio::test]
async fn blocks_on_disk_that_sled_lost_are_indexed_again_on_open() {
    let d = TempDir::new("seg-reindex");
    let a = started(&d.0);
    a.record_durable("s1", start_ev("alice", "app-db"))
        .await
        .unwrap();
    fill(&a, 3).await; // events 2..=4, one block
    a.record("s1", stmt("SELECT 3")).unwrap();
    a.record("s1", end_ev()).unwrap();
    a.flush().await.unwrap(); // events 5..=6, one block
    assert_eq!(a.verify().unwrap(), 6);
    let before = a.events("s1");
    let after_first = link_of(&before[0]);
    drop(a);
    // A crash after the checkpoint at event 1: sled's unflushed inserts since then are kept
    // or lost in any mix. Here block 2's location and index entry are lost, block 5's kept,
    // the head is stale and the session record says the session is still open.
    let store = store_retry(&d.0);
    let db = &store.db;
    db.insert(keys::CHECKPOINT, &after_first.encode()[..])
        .unwrap();
    db.remove(keys::located(2)).unwrap().expect("a location");
    assert_eq!(super::take_index(&store, b"s1"), vec![1, 2, 5]);
    db.insert(keys::index(b"s1", 1), &[][..]).unwrap();
    db.insert(keys::index(b"s1", 5), &[][..]).unwrap();
    db.insert(keys::HEAD, &after_first.encode()[..]).unwrap();
    let mut session = store.session("s1").expect("the session record");
    assert!(session.ended_at.is_some());
    session.ended_at = None;
    session.end_reason = None;
    db.insert(keys::session(b"s1"), serde_json::to_vec(&session).unwrap())
        .unwrap();
    db.flush().unwrap();
    drop(store);

    let a = open(&d.0, AuditOptions::default());
    a.start();
    assert_eq!(a.verify().unwrap(), 6, "every synced block is back");
    assert_eq!(a.events("s1"), before);
    let session = a.session("s1").expect("the session record");
    assert_eq!(session.end_reason.as_deref(), Some("client closed"));
    assert_eq!(a.record_durable("s1", stmt("SELECT 9")).await.unwrap(), 7);
    drop(a);
    assert_eq!(verify_retry(&d.0).unwrap(), 7);
}

/// A checkpoint groups a session's blocks under the key of the last one, and that block can
/// be after the checkpoint stored with it (commits go on while it is taken). Recovery then
/// indexes that block again: it must not overwrite the group, whose earlier blocks it does
/// not read.
#[tokio::test]
async fn recovery_keeps_a_grouped_entry_that_reaches_back_before_the_checkpoint() {
    let d = TempDir::new("seg-grouped");
    let a = started(&d.0);
    for i in 1..=3 {
        // One commit, so one block, per event.
        a.record_durable("s1", stmt(&format!("SELECT {i}")))
            .await
            .unwrap();
    }
    let before = a.events("s1");
    drop(a);
    let store = store_retry(&d.0);
    assert_eq!(super::regroup(&store, b"s1"), vec![1, 2, 3]);
    let entries: Vec<_> = store
        .db
        .scan_prefix(keys::index_prefix(b"s1"))
        .keys()
        .map(|k| keys::index_block_seq(&k.unwrap()))
        .collect();
    assert_eq!(
        entries,
        vec![Some(3)],
        "one grouped entry, keyed by block 3"
    );
    // The checkpoint stored with that group was at event 2.
    let at_second = link_of(&before[1]);
    store
        .db
        .insert(keys::CHECKPOINT, &at_second.encode()[..])
        .unwrap();
    store
        .db
        .insert(keys::HEAD, &at_second.encode()[..])
        .unwrap();
    store.db.flush().unwrap();
    drop(store);
    let a = open(&d.0, AuditOptions::default());
    assert_eq!(a.verify().unwrap(), 3);
    assert_eq!(a.events("s1"), before, "blocks 1 and 2 are still indexed");
}

#[tokio::test]
async fn a_store_without_a_checkpoint_recovers_from_its_head() {
    // Written by a jitgate before checkpoints: atomic batches, so the head record and the
    // last location agree, and a lost batch lost both.
    let d = TempDir::new("seg-no-checkpoint");
    let a = started(&d.0);
    fill(&a, 3).await;
    fill(&a, 3).await;
    let first_block_end = link_of(&a.events("s1")[2]);
    drop(a);
    let store = store_retry(&d.0);
    store.db.remove(keys::CHECKPOINT).unwrap();
    store
        .db
        .remove(keys::located(4))
        .unwrap()
        .expect("a location");
    // Such a store indexed each block on its own (no grouped entries): block 1's entry
    // survived, block 4's was lost with its location.
    assert_eq!(super::take_index(&store, b"s1"), vec![1, 4]);
    store.db.insert(keys::index(b"s1", 1), &[][..]).unwrap();
    store
        .db
        .insert(keys::HEAD, &first_block_end.encode()[..])
        .unwrap();
    store.db.flush().unwrap();
    drop(store);
    let a = open(&d.0, AuditOptions::default());
    assert_eq!(a.verify().unwrap(), 6);
    assert_eq!(a.events("s1").len(), 6);
}

/// The chain's head as it stood right after `e`.
fn link_of(e: &EventRecord) -> Link {
    let mut hash = [0u8; 32];
    for (i, b) in hash.iter_mut().enumerate() {
        *b = u8::from_str_radix(&e.hash[2 * i..2 * i + 2], 16).expect("hex");
    }
    Link { seq: e.seq, hash }
}

#[tokio::test]
async fn commits_rotate_segments_and_retention_removes_whole_ones() {
    let d = TempDir::new("seg-rotate");
    let opts = AuditOptions {
        retention_days: Some(30),
        segment_bytes: 1, // every commit starts a new segment
        ..Default::default()
    };
    let (a, now, old) = kept_30_days(&d.0, opts.clone());
    for i in 0..3 {
        a.record_at(old + i, Text::from_static("old"), stmt("SELECT 1"), None)
            .unwrap();
        a.flush().await.unwrap();
    }
    fill(&a, 2).await;
    fill(&a, 2).await;
    let files = segment_files(&d.0);
    assert_eq!(
        files.iter().map(|f| f.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 6],
        "one segment per commit, named by its first event"
    );
    assert_eq!(a.verify().unwrap(), 7);

    a.prune(now);
    assert_eq!(
        segment_files(&d.0).iter().map(|f| f.0).collect::<Vec<_>>(),
        vec![4, 6],
        "the three old segments are gone"
    );
    assert_eq!(a.verify().unwrap(), 4);
    assert!(a.events("old").is_empty());
    assert_eq!(a.events("s1").len(), 4);
    drop(a);

    let a = open(&d.0, opts);
    a.start();
    assert_eq!(a.record_durable("s1", stmt("SELECT 8")).await.unwrap(), 8);
    assert_eq!(a.verify().unwrap(), 5);
    drop(a);
    assert_eq!(verify_retry(&d.0).unwrap(), 5);
}

#[tokio::test]
async fn a_pruned_then_idle_store_reopens_without_indexing_old_frames_again() {
    let d = TempDir::new("seg-all-pruned");
    let opts = AuditOptions {
        retention_days: Some(30),
        ..Default::default()
    };
    let (a, now, old) = kept_30_days(&d.0, opts.clone());
    a.record_at(old, Text::from_static("old"), stmt("SELECT 1"), None)
        .unwrap();
    a.flush().await.unwrap();
    a.prune(now);
    assert_eq!(a.verify().unwrap(), 0, "everything pruned");
    drop(a);
    // The segment still holds the pruned block (it is the last one); reopening must pass it
    // over, not index it again.
    let a = open(&d.0, opts);
    a.start();
    assert_eq!(a.verify().unwrap(), 0);
    assert_eq!(a.record_durable("new", stmt("SELECT 2")).await.unwrap(), 2);
    assert_eq!(a.verify().unwrap(), 1);
}

#[tokio::test]
async fn an_edit_in_place_in_a_segment_file_is_named() {
    let d = TempDir::new("seg-edit");
    let a = started(&d.0);
    fill(&a, 3).await;
    fill(&a, 3).await;
    let at = Location::decode(&a.inner.store.db.get(keys::located(4)).unwrap().unwrap())
        .expect("a location");
    drop(a);
    // Rewrite block 4 in place, uncompressed and padded to its stored length, with one
    // statement changed (someone with the files, not sled, editing them).
    let stored = std::fs::read(segment::Segments::new(&d.0).path(at.segment)).unwrap();
    let block = &stored[at.offset as usize..at.end() as usize];
    let raw = chain::unpack(block).unwrap().into_owned();
    let decoded = chain::decode(&raw).unwrap();
    let mut events: Vec<(Vec<u8>, [u8; 32])> = decoded
        .events
        .iter()
        .map(|e| (e.record.to_vec(), e.hash))
        .collect();
    let i = events[1]
        .0
        .windows(8)
        .position(|w| w == b"SELECT 1")
        .unwrap();
    events[1].0[i..i + 8].copy_from_slice(b"SELECT 7");
    let edited = chain::encode_raw(&decoded.prev, &events);
    let mut segment_bytes = stored.clone();
    let mut frame = Vec::new();
    segment::push_frame(&mut frame, &edited);
    segment_bytes.splice(at.offset as usize - 4..at.end() as usize, frame);
    segment::write_raw(&segment::Segments::new(&d.0), at.segment, &segment_bytes).unwrap();
    // Its location still says the old length: fix it up as the editor would.
    let store = store_retry(&d.0);
    let moved = Location {
        len: edited.len() as u32,
        ..at
    };
    store
        .db
        .insert(keys::located(4), &moved.encode()[..])
        .unwrap();
    store.db.flush().unwrap();
    drop(store);
    match verify_retry(&d.0) {
        Err(VerifyError::Broken(b)) => assert_eq!(b.seq, 5, "{b}"),
        other => panic!("expected a broken link, got {other:?}"),
    }
}

#[tokio::test]
async fn a_store_from_before_the_segment_files_opens_verifies_and_goes_on() {
    let d = TempDir::new("seg-legacy");
    // What the previous release wrote: blocks as sled values under `b`, their session index,
    // the session record and the head, in sled only.
    {
        let store = Store::open(&d.0).unwrap();
        let mut next = Link::START;
        for (first, texts) in [
            (1u64, ["SELECT 1", "SELECT 2"]),
            (3, ["SELECT 3", "SELECT 4"]),
        ] {
            let mut block = BlockWriter::new(first, next.hash, Vec::new());
            for (i, text) in texts.iter().enumerate() {
                let ev = stmt(text);
                let canonical = Canonical {
                    ev: &ev,
                    result: None,
                    redact_parameters: false,
                    text_ref: None,
                };
                block
                    .push(1_700_000_000_000_000 + first + i as u64, b"old", |buf| {
                        serde_json::to_writer(buf, &canonical)
                    })
                    .unwrap();
            }
            next = Link {
                seq: block.last_seq,
                hash: block.last_hash,
            };
            let stored = block.finish();
            store.db.insert(keys::block(first), stored).unwrap();
            store
                .db
                .insert(keys::index(b"old", first), &[][..])
                .unwrap();
        }
        assert_ne!(next.hash, GENESIS);
        store.db.insert(keys::HEAD, &next.encode()[..]).unwrap();
        store.db.flush().unwrap();
    }
    assert_eq!(verify_retry(&d.0).unwrap(), 4, "the old store verifies");
    let a = open(&d.0, AuditOptions::default());
    a.start();
    assert_eq!(a.events("old").len(), 4);
    assert_eq!(a.record_durable("old", stmt("SELECT 5")).await.unwrap(), 5);
    assert_eq!(
        a.events("old")
            .iter()
            .map(|e| e.str("text").unwrap_or_default().to_string())
            .collect::<Vec<_>>(),
        ["SELECT 1", "SELECT 2", "SELECT 3", "SELECT 4", "SELECT 5"]
    );
    assert_eq!(a.export(0).count(), 5);
    assert_eq!(a.verify().unwrap(), 5);
    drop(a);
    assert_eq!(verify_retry(&d.0).unwrap(), 5);
    assert_eq!(segment_files(&d.0).len(), 1, "new blocks go to a segment");
}
