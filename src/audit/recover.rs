//! Opening a store after a crash: sled's index caught up with the segment files.
//!
//! The writer syncs a commit's blocks to the segment file before it puts their index into
//! sled, and flushes sled only at checkpoints ([`super::index`]), so a crash can leave synced,
//! acknowledged blocks that sled does not index (or indexes only in part), and a torn frame
//! after them that no caller was ever told about ([`super::segment`]). [`recover`] runs on
//! every open, before the writer starts:
//! - it starts from the last checkpoint's head (a store without one, last written with
//!   atomic batches, from its head record), or the pruning anchor if that is further on (what
//!   is before it is gone on purpose), and reads the segments from the end of the indexed
//!   block that ends there;
//! - each frame from there is checked against the chain: it must start at the event after the
//!   head, link to the head's hash, and every event's hash must match its record; a frame
//!   wholly at or before the head (already indexed, or pruned) is passed over;
//! - a frame that checks out is indexed as its commit would have: its location, the session
//!   index entries, the session records its SessionStart / SessionEnd events change, and the
//!   head, in one sled batch; whatever a crash kept of those entries is written again, the
//!   same, except a session index entry that is there already, which stays as it is (a
//!   checkpoint groups a session's blocks under the key of the last one, and the group can
//!   reach back before the checkpoint; see [`super::index`]);
//! - the first frame that does not is a torn tail and is cut off (only in the last segment;
//!   see [`super::segment::scan`]);
//! - then a checkpoint at the new head is stored, sled flushed.
//!
//! So after `recover` the head is the last event on disk, the index covers every block, and
//! the writer appends right after the last good frame.

use std::collections::{HashMap, HashSet};

use super::chain::{self, Link};
use super::event::SessionRecord;
use super::index::Checkpoint;
use super::keys;
use super::segment;
use super::session_record::SessionChange;
use super::store::Store;

/// What the writer starts from: the head, and the last segment with its length, if any.
pub struct Recovered {
    pub head: Link,
    pub last_segment: Option<(u64, u64)>,
}

/// Where reading the segments starts: the head there (the last checkpoint; for a store
/// without one, its head record; the pruning anchor if that is further on), and the end of
/// the block that ends at that head, from its location in sled (flushed with the checkpoint).
fn start(store: &Store) -> sled::Result<(Link, Option<(u64, u64)>)> {
    let head = match Checkpoint::load(&store.db)? {
        Some(Checkpoint(head)) => head,
        None => store.head()?,
    };
    let head = match store.anchor()? {
        Some(anchor) if anchor.seq > head.seq => anchor,
        _ => head,
    };
    let from = store
        .location_through(head.seq)?
        .map(|at| (at.segment, at.end()));
    Ok((head, from))
}

pub fn recover(store: &Store) -> Result<Recovered, String> {
    let (mut head, from) = start(store).map_err(|e| e.to_string())?;
    let mut batch = sled::Batch::default();
    let mut sessions: HashMap<String, SessionRecord> = HashMap::new();
    let mut blocks = 0u64;
    let scanned = segment::scan(&store.segments, from, |frame| {
        let raw = chain::unpack(&frame.block).ok_or("not a stored block")?;
        let block = chain::decode(&raw).ok_or("a block that cannot be decoded")?;
        let (Some(first), Some(last)) = (block.events.first(), block.events.last()) else {
            return Err("an empty block".into());
        };
        if last.seq <= head.seq {
            return Ok(());
        }
        if first.seq != head.seq + 1 || block.prev != head.hash {
            return Err(format!(
                "a block (events {}–{}) that does not follow event {}",
                first.seq, last.seq, head.seq
            ));
        }
        let mut at = head;
        for e in &block.events {
            if e.seq != at.seq + 1 || chain::link(&at.hash, e.record) != e.hash {
                return Err(format!("event {} does not match its hash", e.seq));
            }
            at = Link {
                seq: e.seq,
                hash: e.hash,
            };
        }
        batch.insert(&keys::located(first.seq), &frame.at.encode()[..]);
        let mut seen: HashSet<&[u8]> = HashSet::new();
        for e in &block.events {
            // An entry already there stays: a checkpoint may have grouped earlier blocks,
            // from before the checkpoint recovery starts at, under this block's key.
            let entry = keys::index(e.session, first.seq);
            if seen.insert(e.session) && !matches!(store.db.contains_key(&entry), Ok(true)) {
                batch.insert(entry, &[][..]);
            }
            if let Some(change) = SessionChange::of_json(e.json) {
                let id = String::from_utf8_lossy(e.session).into_owned();
                change.apply(store, &mut sessions, id, e.at_us);
            }
        }
        head = at;
        blocks += 1;
        Ok(())
    })
    .map_err(|e| e.to_string())?;
    if blocks > 0 || store.head().map_err(|e| e.to_string())? != head {
        batch.insert(keys::HEAD, &head.encode()[..]);
    }
    for (id, s) in &sessions {
        if let Ok(v) = serde_json::to_vec(s) {
            batch.insert(keys::session(id.as_bytes()), v);
        }
    }
    store.db.apply_batch(batch).map_err(|e| e.to_string())?;
    Checkpoint(head)
        .save(&store.db)
        .map_err(|e| e.to_string())?;
    if blocks > 0 {
        tracing::info!(
            "audit store: indexed {blocks} blocks again after the last checkpoint (after a crash); the chain ends at event {}",
            head.seq
        );
    }
    Ok(Recovered {
        head,
        last_segment: scanned.last,
    })
}
