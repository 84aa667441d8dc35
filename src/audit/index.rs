//! What a commit writes into sled (the index beside the segment files), and the checkpoints
//! that say how much of it is on disk.
//!
//! A sled `Batch` would make each commit's index entries atomic, but sled pays for that with
//! its own log writes: every `apply_batch` seals and writes an I/O buffer from sled's thread
//! pool, twice, and at hundreds of commits a second those writes and wake-ups cost more CPU
//! than the whole commit. So a commit's entries ([`Puts`]: the blocks' locations, session
//! records, requests) go in as single inserts, unflushed, and nothing relies on them arriving
//! together. The session index (which blocks hold a session's events) is the most numerous
//! and the least urgent: a commit leaves one entry per session per block in
//! [`PendingIndex`], readers look there as well as in sled, and the checkpoint thread puts
//! them into sled ten times a second (a third of the writer's CPU under a durable TPC-B load
//! went into sled inserts, most of them these), grouped: one sled entry per session per
//! checkpoint (per [`BLOCKS_PER_ENTRY`] blocks), keyed by its last block, its value the
//! earlier blocks' seqs ([`keys::index_blocks`]). One insert per block had cost the
//! checkpoint thread about 5 % of jitgate's CPU under that load: sled copies a leaf on each
//! insert. Then:
//! - **Checkpoints.** Every [`CHECKPOINT_EVERY`] (and when the writer stops) [`Checkpointer`]
//!   puts the pending index entries into sled, stores the head of the last commit whose
//!   inserts are all made (and the head record, [`keys::HEAD`]), and flushes sled: every
//!   insert made before it is then on disk with it.
//! - **Recovery from the checkpoint.** On open, [`super::recover`] starts from the last
//!   checkpoint, not from whatever index entries a crash left: it reads every frame after the
//!   block that ends at the checkpoint again, checks it against the chain and writes its
//!   entries again (the same keys, the same values; session records rebuilt in chain order;
//!   a session index entry only where there is none, since a grouped one there may also name
//!   blocks from before the checkpoint), so entries a crash kept or lost after the checkpoint
//!   make no difference. That is at most a tenth of a second or so of events to read.
//! - A store last written without checkpoints (by an older jitgate, with atomic batches)
//!   recovers from its head and last indexed block, as before; opening it stores a checkpoint.
//! - **Pruning.** Retention removes blocks oldest first, and with each block the entries
//!   keyed by it. A grouped entry is keyed by its last block, so it goes with the last of its
//!   blocks; until then readers skip the blocks of it that are gone, as they skip any block
//!   pruned while they read.
//!
//! Invariants: a checkpoint names only a commit whose inserts were all made before it is
//! stored (a commit's pending index entries are added before the commit's head is offered to
//! the checkpointer, and taken after it), and it is stored and flushed in one step (the
//! insert, then `flush`); the index entries of a commit are only ever written after its
//! frames are synced (see [`super::segment`]); a pending index entry stays visible to readers
//! until it is in sled.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::chain::Link;
use super::keys;
use super::store::Store;

/// How often the index is flushed with a checkpoint while the writer runs. sled holds what
/// it has not flushed in memory: at once a second its memory grew by ~8 MiB/s under a
/// durable TPC-B load (a 250 MiB sawtooth), at ten times a second about as before, for the
/// same CPU.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// Most blocks one grouped session index entry names (its value is 8 bytes per earlier
/// block: at most 2 KiB).
pub const BLOCKS_PER_ENTRY: usize = 256;

/// One commit's sled writes, applied as single inserts in order.
#[derive(Default)]
pub struct Puts(Vec<(Vec<u8>, Vec<u8>)>);

impl Puts {
    pub fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.0
            .push((key.as_ref().to_vec(), value.as_ref().to_vec()));
    }

    /// Insert every entry (unflushed).
    pub fn apply(self, db: &sled::Db) -> sled::Result<()> {
        for (k, v) in self.0 {
            db.insert(k, v)?;
        }
        Ok(())
    }
}

/// How far the index is known to be on disk: the head of a commit all of whose inserts were
/// flushed (stored under [`keys::CHECKPOINT`]). Recovery reads the segments on from the block
/// that ends there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint(pub Link);

impl Checkpoint {
    /// The last checkpoint stored, if any.
    pub fn load(db: &sled::Db) -> sled::Result<Option<Checkpoint>> {
        Ok(db
            .get(keys::CHECKPOINT)?
            .and_then(|v| Link::decode(&v))
            .map(Checkpoint))
    }

    /// Store this checkpoint (and the head record) and flush sled: it, and every insert made
    /// before, is on disk.
    pub fn save(&self, db: &sled::Db) -> sled::Result<()> {
        db.insert(keys::HEAD, &self.0.encode()[..])?;
        db.insert(keys::CHECKPOINT, &self.0.encode()[..])?;
        db.flush()?;
        Ok(())
    }
}

/// Session index entries (keys from [`keys::index`]) committed and not yet in sled.
#[derive(Default)]
pub struct PendingIndex(Mutex<PendingKeys>);

#[derive(Default)]
struct PendingKeys {
    /// Added by commits since the checkpoint thread last took them.
    waiting: Vec<Vec<u8>>,
    /// Taken and being put into sled.
    applying: Arc<Vec<Vec<u8>>>,
}

impl PendingIndex {
    /// A commit's index entries (its frames are synced).
    pub fn add(&self, keys: Vec<Vec<u8>>) {
        let mut pending = super::lock(&self.0);
        if pending.waiting.is_empty() {
            pending.waiting = keys;
        } else {
            pending.waiting.extend(keys);
        }
    }

    /// The first seqs of the blocks holding events of `session` whose index entries are not
    /// (or not surely) in sled yet. Read it before sled's index: an entry leaves here only
    /// once it is there.
    pub fn blocks_of(&self, session: &[u8]) -> Vec<u64> {
        let prefix = keys::index_prefix(session);
        let pending = super::lock(&self.0);
        pending
            .waiting
            .iter()
            .chain(pending.applying.iter())
            .filter(|k| k.len() == prefix.len() + 8 && k.starts_with(&prefix))
            .filter_map(|k| keys::index_block_seq(k))
            .collect()
    }

    /// Put every waiting entry into sled (unflushed), grouped by session ([`grouped`]); they
    /// stay visible here until then.
    pub fn apply(&self, db: &sled::Db) -> sled::Result<()> {
        let keys = {
            let mut pending = super::lock(&self.0);
            let keys = Arc::new(std::mem::take(&mut pending.waiting));
            pending.applying = keys.clone();
            keys
        };
        for (k, v) in grouped(&keys) {
            db.insert(k, v)?;
        }
        super::lock(&self.0).applying = Arc::default();
        Ok(())
    }
}

/// One-block entries (keys from [`keys::index`]) as sled entries: per session, its blocks in
/// chain order in runs of at most [`BLOCKS_PER_ENTRY`], each run keyed by its last block, the
/// earlier ones in its value as big-endian seqs (read back by [`keys::index_blocks`]).
pub fn grouped(entries: &[Vec<u8>]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut by_session: BTreeMap<&[u8], Vec<u64>> = BTreeMap::new();
    for k in entries {
        if let Some(seq) = keys::index_block_seq(k) {
            by_session.entry(&k[..k.len() - 8]).or_default().push(seq);
        }
    }
    let mut out = Vec::new();
    for (prefix, mut seqs) in by_session {
        seqs.sort_unstable();
        seqs.dedup();
        for run in seqs.chunks(BLOCKS_PER_ENTRY) {
            let Some((last, earlier)) = run.split_last() else {
                continue;
            };
            let key = [prefix, &last.to_be_bytes()[..]].concat();
            let value = earlier.iter().flat_map(|s| s.to_be_bytes()).collect();
            out.push((key, value));
        }
    }
    out
}

/// The writer's latest commit point, and the thread that stores it as a checkpoint.
pub struct Checkpointer {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    latest: Checkpoint,
    saved: Checkpoint,
    stopped: bool,
}

impl Checkpointer {
    /// Starting from `at`, which recovery has just stored.
    pub fn new(at: Checkpoint) -> Checkpointer {
        Checkpointer {
            state: Mutex::new(State {
                latest: at,
                saved: at,
                stopped: false,
            }),
            wake: Condvar::new(),
        }
    }

    /// A commit's inserts are all made: the index has reached `at`.
    pub fn advance(&self, at: Checkpoint) {
        super::lock(&self.state).latest = at;
    }

    pub fn stop(&self) {
        super::lock(&self.state).stopped = true;
        self.wake.notify_all();
    }

    /// Until [`Checkpointer::stop`]: every `every`, put the pending index entries into sled
    /// and store the latest point, if it moved. Returns the first error (the caller fails the
    /// store).
    pub fn run(&self, store: &Store, every: Duration) -> sled::Result<()> {
        let mut state = super::lock(&self.state);
        loop {
            state = match self.wake.wait_timeout_while(state, every, |s| !s.stopped) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
            if state.stopped {
                return Ok(());
            }
            let latest = state.latest;
            if latest == state.saved {
                continue;
            }
            // Not held across the flush: the writer advances meanwhile.
            drop(state);
            store.pending.apply(&store.db)?;
            latest.save(&store.db)?;
            state = super::lock(&self.state);
            state.saved = latest;
        }
    }

    /// The latest point, stored now (when the writer stops).
    pub fn save_latest(&self, store: &Store) -> sled::Result<()> {
        let latest = super::lock(&self.state).latest;
        store.pending.apply(&store.db)?;
        latest.save(&store.db)?;
        super::lock(&self.state).saved = latest;
        Ok(())
    }
}
