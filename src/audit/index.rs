//! What a commit writes into sled (the index beside the segment files), and the checkpoints
//! that say how much of it is on disk.
//!
//! A sled `Batch` would make each commit's index entries atomic, but sled pays for that with
//! its own log writes: every `apply_batch` seals and writes an I/O buffer from sled's thread
//! pool, twice, and at hundreds of commits a second those writes and wake-ups cost more CPU
//! than the whole commit. So a commit's entries ([`Puts`]) go in as single inserts, unflushed,
//! and nothing relies on them arriving together. Instead:
//! - **Checkpoints.** Every [`CHECKPOINT_EVERY`] (and when the writer stops) [`Checkpointer`] stores
//!   the head of the last commit whose inserts are all made, and flushes sled: every insert
//!   made before it is then on disk with it.
//! - **Recovery from the checkpoint.** On open, [`super::recover`] starts from the last
//!   checkpoint, not from whatever index entries a crash left: it reads every frame after the
//!   block that ends at the checkpoint again, checks it against the chain and writes its
//!   entries again (the same keys, the same values; session records rebuilt in chain order),
//!   so entries a crash kept or lost after the checkpoint make no difference. That is at most
//!   a tenth of a second or so of events to read.
//! - A store last written without checkpoints (by an older jitgate, with atomic batches)
//!   recovers from its head and last indexed block, as before; opening it stores a checkpoint.
//!
//! Invariants: a checkpoint names only a commit whose inserts were all made before it is
//! stored, and it is stored and flushed in one step (the insert, then `flush`); the index
//! entries of a commit are only ever written after its frames are synced (see
//! [`super::segment`]).

use std::sync::{Condvar, Mutex};
use std::time::Duration;

use super::chain::Link;
use super::keys;

/// How often the index is flushed with a checkpoint while the writer runs. sled holds what
/// it has not flushed in memory: at once a second its memory grew by ~8 MiB/s under a
/// durable TPC-B load (a 250 MiB sawtooth), at ten times a second about as before, for the
/// same CPU.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

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

    /// Store this checkpoint and flush sled: it, and every insert made before, is on disk.
    pub fn save(&self, db: &sled::Db) -> sled::Result<()> {
        db.insert(keys::CHECKPOINT, &self.0.encode()[..])?;
        db.flush()?;
        Ok(())
    }
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

    /// Until [`Checkpointer::stop`]: every `every`, store the latest point if it moved.
    /// Returns the first error (the caller fails the store).
    pub fn run(&self, db: &sled::Db, every: Duration) -> sled::Result<()> {
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
            latest.save(db)?;
            state = super::lock(&self.state);
            state.saved = latest;
        }
    }

    /// The latest point, stored now (when the writer stops).
    pub fn save_latest(&self, db: &sled::Db) -> sled::Result<()> {
        let latest = super::lock(&self.state).latest;
        latest.save(db)?;
        super::lock(&self.state).saved = latest;
        Ok(())
    }
}
