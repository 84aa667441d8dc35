//! The group-commit writer: one thread that owns the chain's head.
//!
//! It sleeps until an event arrives, then gathers events for up to `commit_interval` (or
//! until a durable event or barrier asks for a commit now, or [`MAX_BATCH`] are waiting),
//! encodes and hashes them into blocks, appends the blocks to the current segment file with
//! ONE `write` and ONE `fdatasync` ([`super::segment`]), and then puts the blocks' locations
//! and session records into sled as single inserts, not flushed, and the blocks' session
//! index entries into [`super::index::PendingIndex`] (a checkpoint puts those into sled and
//! flushes everything, with the head, ten times a second; what a crash loses of them,
//! [`super::recover`] rebuilds from the segments on the next open; see [`super::index`]).
//! Only then are the durable callers answered. A commit that carries request upserts also
//! flushes sled: requests are not in the chain, so nothing could rebuild them. While it gathers, callers' sends do not
//! wake it (it parks on a timer, not on the channel), so a busy proxy pays for one wake-up
//! per commit, not per event.
//!
//! Group commit is leader/follower: the first durable caller (or barrier) to arrive ends the
//! gathering at once, the commit takes everything queued by then, and every caller that
//! arrives while it writes and syncs waits in the queue and goes, all together, into the
//! next commit, which starts as soon as this one is done. So N sessions waiting at once share
//! one `fdatasync`, and an autocommit write never waits for more than the commit in flight
//! and its own.
//!
//! Request upserts ([`super::Audit::put_request`]) wait in [`Shared::requests`], the latest
//! view per request, and every commit takes them all: they are encoded here and inserted with the
//! commit's block locations, once its events are on disk (and then sled is flushed).
//!
//! After any sled or segment file error the store is failed for good: the batch's waiters get
//! the error, the in-memory head does not advance, and every later event is refused.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::AuditError;
use super::chain::{BlockWriter, Link};
use super::encode::Canonical;
use super::event::{EventKind, SessionRecord, Text};
use super::index::{CHECKPOINT_EVERY, Checkpoint, Checkpointer, Puts};
use super::joined::ResultSlot;
use super::keys;
use super::segment::{self, Appender, Location};
use super::session_record::SessionChange;
use super::store::Store;
use super::texts;
use crate::request::RequestView;

/// Most messages committed at once.
pub const MAX_BATCH: usize = 8192;
/// A block is closed once it passes this size (sled stores values over ~128 KiB as separate
/// blob files, which costs an extra file per write).
pub const BLOCK_TARGET: usize = 64 * 1024;

pub struct Msg {
    pub at_us: u64,
    pub session: Text,
    /// `None`: a barrier (answered with the last seq once everything before it is on disk).
    pub ev: Option<EventKind>,
    pub done: Option<oneshot::Sender<Result<u64, AuditError>>>,
    /// The backlog of the session that recorded it, if it counts in one.
    pub backlog: Option<Arc<AtomicU64>>,
    /// A statement's slot its result may join ([`super::joined`]).
    pub result: Option<Arc<ResultSlot>>,
}

/// State shared by the callers and the writer.
#[derive(Default)]
pub struct Shared {
    failed: AtomicBool,
    failure: OnceLock<Arc<str>>,
    /// Test hook: the next commit fails as if sled had returned an I/O error.
    pub fault: AtomicBool,
    pub writer: OnceLock<std::thread::Thread>,
    pub events: AtomicU64,
    /// The last committed event (the writer's head once its commit is done). Locked only to
    /// copy it.
    pub head: Mutex<Link>,
    pub commits: AtomicU64,
    pub last_commit_us: AtomicU64,
    pub max_commit_us: AtomicU64,
    /// Events queued and not yet taken by the writer.
    pub queued: AtomicU64,
    /// Notified each time the writer takes a batch (sessions waiting for room recheck).
    pub taken: tokio::sync::Notify,
    /// Commit (encode, write, flush) durations, for `/metrics`.
    pub commit_seconds: OnceLock<prometheus::Histogram>,
    /// Request upserts for the next commit: the latest view of each request, by id. A newer
    /// view replaces one not yet written, so nothing is dropped and a stored request never
    /// goes back to an older state; at most one entry per request changed since the last
    /// commit. Locked for a map operation only, never across I/O or encoding.
    pub requests: Mutex<HashMap<String, RequestView>>,
}

impl Shared {
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn error(&self) -> AuditError {
        AuditError::Failed(
            self.failure
                .get()
                .cloned()
                .unwrap_or_else(|| Arc::from("unknown error")),
        )
    }

    /// Mark the store failed; the first reason is kept and logged, once.
    pub fn fail(&self, why: String) {
        if self.failure.set(Arc::from(why.as_str())).is_ok() {
            tracing::error!(
                "audit store failed: {why}; refusing what the audit policy requires to be recorded"
            );
        }
        self.failed.store(true, Ordering::Release);
    }

    pub fn wake_writer(&self) {
        if let Some(t) = self.writer.get() {
            t.unpark();
        }
    }
}

pub struct Writer {
    pub store: Store,
    pub shared: Arc<Shared>,
    pub rx: Receiver<Msg>,
    pub head: Link,
    pub interval: Duration,
    pub redact_parameters: bool,
    /// Reused block buffers (raw and compressed).
    pub raw: Vec<u8>,
    pub packed: Vec<u8>,
    /// Reused LZ4 hash table (allocating a fresh one per block cost more than compressing).
    pub table: lz4_flex::block::CompressTable,
    /// The statement texts each session has stored whole ([`super::texts`]).
    pub texts: texts::Defined,
    /// The segment file blocks are appended to.
    pub appender: Appender,
    /// One commit's frames (reused).
    pub frames: Vec<u8>,
    /// The commit point the checkpoint thread stores ([`super::index`]).
    pub checkpoints: Arc<Checkpointer>,
}

impl Writer {
    /// Run until every sender is gone and the queue is drained, with the checkpoint thread
    /// beside it; then store a last checkpoint (sled flushed), so that a clean stop leaves
    /// nothing for [`super::recover`].
    pub fn run(mut self) {
        let checkpoints = self.checkpoints.clone();
        let store = self.store.clone();
        let shared = self.shared.clone();
        std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new()
                .name("jitgate-audit-checkpoint".into())
                .spawn_scoped(scope, || {
                    if let Err(e) = checkpoints.run(&store, CHECKPOINT_EVERY) {
                        shared.fail(format!("cannot store an audit checkpoint: {e}"));
                    }
                });
            if let Err(e) = spawned {
                shared.fail(format!("cannot start the audit checkpoint thread: {e}"));
            }
            self.commit_until_closed();
            checkpoints.stop();
        });
        if !self.shared.failed() {
            let _ = self.checkpoints.save_latest(&self.store);
        }
    }

    fn commit_until_closed(&mut self) {
        let mut batch: Vec<Msg> = Vec::with_capacity(1024);
        loop {
            let Ok(first) = self.rx.recv() else { return };
            let mut now_please = first.done.is_some();
            batch.push(first);
            let deadline = Instant::now() + self.interval;
            let mut open = true;
            loop {
                while batch.len() < MAX_BATCH {
                    match self.rx.try_recv() {
                        Ok(m) => {
                            now_please |= m.done.is_some();
                            batch.push(m);
                        }
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            open = false;
                            break;
                        }
                    }
                }
                let now = Instant::now();
                if now_please || !open || batch.len() >= MAX_BATCH || now >= deadline {
                    break;
                }
                std::thread::park_timeout(deadline - now);
            }
            self.commit(&mut batch);
            if !open {
                return;
            }
        }
    }

    /// Every request upsert waiting, encoded (outside the lock). A view that cannot be
    /// encoded fails the store, as writing it would have.
    fn take_requests(&self) -> Vec<(String, Vec<u8>)> {
        let views = std::mem::take(&mut *super::lock(&self.shared.requests));
        views
            .into_iter()
            .filter_map(|(id, r)| match serde_json::to_vec(&r) {
                Ok(v) => Some((id, v)),
                Err(e) => {
                    self.shared.fail(format!("cannot store request {id}: {e}"));
                    None
                }
            })
            .collect()
    }

    /// Requests are mutable state beside the chain and were always written whatever the
    /// store's health: when a commit cannot happen they still go to sled, unflushed, best
    /// effort (the store has already failed; a further error changes nothing).
    fn put_requests_anyway(&self, requests: &[(String, Vec<u8>)]) {
        if requests.is_empty() {
            return;
        }
        let mut sb = Puts::default();
        insert_requests(&mut sb, requests);
        let _ = sb.apply(&self.store.db);
    }

    fn commit(&mut self, batch: &mut Vec<Msg>) {
        let started = Instant::now();
        self.shared
            .queued
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        for m in batch.iter_mut() {
            if let Some(backlog) = m.backlog.take() {
                backlog.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.shared.taken.notify_waiters();
        let requests = self.take_requests();
        if self.shared.failed() {
            self.put_requests_anyway(&requests);
            let e = self.shared.error();
            for m in batch.drain(..) {
                if let Some(done) = m.done {
                    let _ = done.send(Err(e.clone()));
                }
            }
            return;
        }
        let mut sb = Puts::default();
        let mut results: Vec<Option<u64>> = Vec::with_capacity(batch.len());
        let mut sessions: HashMap<String, SessionRecord> = HashMap::new();
        let mut block = BlockWriter::new(
            self.head.seq + 1,
            self.head.hash,
            std::mem::take(&mut self.raw),
        );
        let mut in_block: HashSet<&[u8]> = HashSet::new();
        // The session index entries of this commit's blocks ([`super::index::PendingIndex`]).
        let mut index: Vec<Vec<u8>> = Vec::new();
        let mut head = self.head;
        let mut written = 0u64;
        // Blocks in this commit: first seq, offset in `frames`, length.
        let mut placed: Vec<(u64, u64, u32)> = Vec::new();
        let mut frames = std::mem::take(&mut self.frames);
        frames.clear();

        for m in batch.iter() {
            let Some(ev) = &m.ev else {
                results.push(Some(u64::MAX)); // a barrier: answered with the final head
                continue;
            };
            // From here on a result of this statement is an event of its own.
            let joined = m.result.as_ref().and_then(|slot| slot.seal());
            let session = m.session.as_bytes();
            // A text this session stored a moment ago is referenced, not stored again.
            let text = texts::referable(ev).map(texts::key);
            let text_ref = text.filter(|k| self.texts.may_reference(session, k, m.at_us));
            let canonical = Canonical {
                ev,
                result: joined.as_ref(),
                redact_parameters: self.redact_parameters,
                text_ref,
            };
            match block.push(m.at_us, session, |buf| {
                serde_json::to_writer(buf, &canonical)
            }) {
                Ok(seq) => {
                    results.push(Some(seq));
                    written += 1;
                }
                Err(e) => {
                    tracing::error!("audit event not encodable, skipped: {e}");
                    results.push(None);
                    continue;
                }
            }
            match (text, text_ref) {
                (Some(k), None) => self.texts.define(session, k, m.at_us),
                _ if matches!(ev, EventKind::SessionEnd { .. }) => self.texts.end(session),
                _ => {}
            }
            in_block.insert(session);
            self.session_update(&mut sessions, m, ev);
            if block.len() >= BLOCK_TARGET {
                let (first, last) = (block.last_seq + 1, block.last_hash);
                let full = std::mem::replace(&mut block, BlockWriter::new(first, last, Vec::new()));
                let raw;
                (head, raw) = close_block(
                    &mut index,
                    full,
                    &mut in_block,
                    &mut self.packed,
                    &mut self.table,
                    (&mut frames, &mut placed),
                );
                block = BlockWriter::new(first, last, raw);
            }
        }
        if !block.is_empty() {
            (head, self.raw) = close_block(
                &mut index,
                block,
                &mut in_block,
                &mut self.packed,
                &mut self.table,
                (&mut frames, &mut placed),
            );
        }
        for (id, s) in &sessions {
            if let Ok(v) = serde_json::to_vec(s) {
                sb.insert(keys::session(id.as_bytes()), v);
            }
        }
        insert_requests(&mut sb, &requests);

        let outcome = if self.shared.fault.load(Ordering::Relaxed) {
            Err("injected failure (test hook): I/O error".to_string())
        } else {
            self.write(sb, &frames, &placed, !requests.is_empty())
        };
        self.frames = frames;
        match outcome {
            Ok(_) => {
                self.head = head;
                *super::lock(&self.shared.head) = head;
                // Before the checkpoint may pass this commit (see `super::index`).
                self.store.pending.add(index);
                self.checkpoints.advance(Checkpoint(head));
                // Counted before anyone is answered, so an answered caller sees its commit.
                let us = started.elapsed().as_micros() as u64;
                self.shared.events.fetch_add(written, Ordering::Relaxed);
                self.shared.commits.fetch_add(1, Ordering::Relaxed);
                self.shared.last_commit_us.store(us, Ordering::Relaxed);
                self.shared.max_commit_us.fetch_max(us, Ordering::Relaxed);
                if let Some(h) = self.shared.commit_seconds.get() {
                    h.observe(us as f64 / 1e6);
                }
                for (m, r) in batch.drain(..).zip(results) {
                    if let Some(slot) = &m.result {
                        slot.mark_written();
                    }
                    if let Some(done) = m.done {
                        let _ = done.send(match r {
                            Some(u64::MAX) => Ok(head.seq),
                            Some(seq) => Ok(seq),
                            None => Err(AuditError::Failed(Arc::from(
                                "the event could not be encoded",
                            ))),
                        });
                    }
                }
            }
            Err(why) => {
                self.shared.fail(why);
                self.put_requests_anyway(&requests);
                let e = self.shared.error();
                for m in batch.drain(..) {
                    if let Some(done) = m.done {
                        let _ = done.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// The segment append (one write, one `fdatasync`), then the sled inserts that index it
    /// (flushed only if `flush`). The blocks' locations go in first, once the segment they
    /// land in is known.
    fn write(
        &mut self,
        sb: Puts,
        frames: &[u8],
        placed: &[(u64, u64, u32)],
        flush: bool,
    ) -> Result<(), String> {
        if let Some(&(first_seq, _, _)) = placed.first() {
            let (segment, base) = self
                .appender
                .position(first_seq)
                .map_err(|e| format!("cannot start an audit segment file: {e}"))?;
            self.appender
                .append(frames)
                .map_err(|e| format!("cannot write the audit segment file: {e}"))?;
            let mut located = Puts::default();
            for &(seq, offset, len) in placed {
                let at = Location {
                    segment,
                    offset: base + offset,
                    len,
                };
                located.insert(keys::located(seq), at.encode());
            }
            located.apply(&self.store.db).map_err(|e| e.to_string())?;
        }
        sb.apply(&self.store.db).map_err(|e| e.to_string())?;
        if flush {
            self.store.db.flush().map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Keep the session record in step with SessionStart / SessionEnd.
    fn session_update(
        &self,
        sessions: &mut HashMap<String, SessionRecord>,
        m: &Msg,
        ev: &EventKind,
    ) {
        if let Some(change) = SessionChange::of(ev) {
            let id = m.session.as_str().into_owned();
            change.apply(&self.store, sessions, id, m.at_us);
        }
    }
}

/// Put a finished block into the commit's `frames` (and its place into `placed`: first seq,
/// offset in `frames`, length) and its session index entries into `index`; returns the new
/// head and the block's buffer for reuse.
fn close_block(
    index: &mut Vec<Vec<u8>>,
    block: BlockWriter,
    in_block: &mut HashSet<&[u8]>,
    packed: &mut Vec<u8>,
    table: &mut lz4_flex::block::CompressTable,
    (frames, placed): (&mut Vec<u8>, &mut Vec<(u64, u64, u32)>),
) -> (Link, Vec<u8>) {
    let first = block.first_seq;
    let head = Link {
        seq: block.last_seq,
        hash: block.last_hash,
    };
    index.extend(in_block.drain().map(|s| keys::index(s, first)));
    let (n, raw) = block.finish_into(packed, table);
    let offset = segment::push_frame(frames, &packed[..n]);
    placed.push((first, offset, n as u32));
    (head, raw)
}

/// Add encoded request upserts to a batch.
fn insert_requests(sb: &mut Puts, requests: &[(String, Vec<u8>)]) {
    for (id, v) in requests {
        sb.insert(keys::request(id.as_bytes()), v);
    }
}
