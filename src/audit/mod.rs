//! The audit trail: sessions, events, requests and grants, under one hash chain. The chain's
//! blocks are in append-only segment files of our own ([`segment`]); sled holds the indexes
//! (block locations, sessions, requests, the head).
//!
//! This is the only module that touches the store; everything else goes through [`Audit`].
//!
//! Invariants:
//! - **One chain.** Every event of the store, whatever its session, is numbered `1, 2, 3, …`
//!   in commit order and carries `SHA-256(previous hash ‖ its stored bytes)` ([`chain`]).
//!   [`verify`] walks it offline and names the first broken link; pruning moves an anchor
//!   (seq and hash of the last pruned event) so what is left still verifies.
//! - **Lossless and cheap for the caller.** [`Audit::record`] stamps the time, wraps the event
//!   and does one non-blocking send: no encoding, hashing, locking or I/O on the relay's
//!   thread, and no event is ever dropped. The queue has no fixed capacity (a full queue would
//!   have to drop); it is bounded by **admission** instead: a session's events count in its
//!   [`Backlog`] until the writer takes them, and a session whose backlog is over
//!   `session_backlog`, or any session while the whole queue is over `queue_capacity`, is not
//!   [`Audit::has_room`]: its front end stops reading the client at the next statement
//!   boundary and waits ([`Audit::room`]). So the queue holds at most `queue_capacity` plus,
//!   per session, `session_backlog` and what one read of the client can produce; a flooding
//!   session slows itself first. [`Audit::put_request`] is as cheap: it leaves the request's
//!   view for the writer's next commit (the latest view per request) and at most sends one
//!   wake-up.
//! - **A statement and its result, one event.** A front end that records a statement with
//!   [`Audit::record_statement_in`] and its result with [`Audit::record_result_in`] gets one
//!   event (the result as the statement's `"result"`) when the result arrives before the writer
//!   takes the statement, else two; never neither, never both ([`joined`]).
//! - **Texts once per session.** A `statement` or `parse` text its session stored a moment
//!   before is stored as `"text_ref"` (a hash of it); [`Audit::events`] and [`Audit::export`]
//!   put the text back, so readers see every event whole, and [`verify`] checks every
//!   reference resolves ([`texts`]). The session id is not in an event's JSON: it is in the
//!   record header, hashed with it (see [`chain`]), and the front ends hand it over as a
//!   shared `Arc<str>`.
//! - **Group commit.** One writer thread gathers events for up to `commit_interval`, encodes
//!   and hashes them into blocks (LZ4-compressed, ~64 KiB of events each), appends them to
//!   the current segment file with one `write` and one `fdatasync`, then puts their locations
//!   and session records into sled, unflushed, and leaves their session index entries and the
//!   chain head to the checkpoint thread, ten times a second ([`writer`], [`index`]). Every durable caller waiting shares that one `fdatasync`; callers arriving
//!   during it share the next. After a crash a commit is either entirely there or not at all:
//!   on open, [`recover`] indexes synced blocks sled had not yet stored and cuts off a torn
//!   tail, and the chain continues from the last event on disk.
//! - **No record, no action.** [`Audit::record_durable`] resolves only after the commit holding
//!   its event has been flushed to disk; a durable event cuts the gathering window short.
//! - **Failure is sticky.** After any sled or segment file error, a durable write that has
//!   not reached the disk within 30 s (a hung disk), or the test hook
//!   [`Audit::inject_failure`], the store is failed until restart: `record`/`record_durable` return
//!   [`AuditError::Failed`], [`Audit::healthy`] is false, the error is logged once. The
//!   caller applies `on_failure`.
//! - **Older stores.** A store written before the segment files keeps its blocks in sled
//!   (`b` keys); they are read, verified and pruned as before, and new blocks go to segments
//!   after them, in the same chain. Nothing is converted.
//! - **One process.** sled locks its directory; a second process gets [`AuditError::Locked`]
//!   with a message telling the user to go through the API.
//! - Reads (`sessions`, `events`, `export`, …) see what has been committed, flushed or not;
//!   an event is visible at most `commit_interval` (plus a commit) after `record`.
//! - The chain is the evidence. Session records, the per-session index and requests are
//!   derived or mutable state kept beside it for fast reads; they are not hashed.
//!
//! Layout: [`event`] (what callers build and readers get), [`encode`] (the canonical JSON),
//! [`joined`] (results joined to their statements), [`texts`] (texts stored once per session),
//! [`chain`] (blocks, hashes), [`walk`] (verify), [`segment`] (the files blocks are appended to),
//! [`writer`] (group commit), [`durable`] (waiting for the disk), [`recover`] (opening after a
//! crash), `session_record` (session records from SessionStart / SessionEnd), [`store`] (reads),
//! `keys` (the tree's layout), [`upkeep`] (requests, restart clean-up, retention), [`recording`]
//! (asciicast per channel), [`shipped`] (the stored events as they leave the process, and the
//! checks of a copy), `options` (options, errors and counters).

mod chain;
mod durable;
mod encode;
mod event;
mod index;
mod joined;
mod keys;
mod options;
mod recording;
mod recover;
mod segment;
mod session_record;
mod shipped;
mod store;
mod texts;
mod upkeep;
mod walk;
mod writer;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod bench_size;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

pub use chain::Broken;
pub use event::{
    EventKind, EventRecord, PARAM_CAP, PARAMS_BUDGET, SessionFilter, SessionRecord, TEXT_CAP, Text,
};
pub use joined::StatementHandle;
pub use options::{AuditError, AuditOptions, AuditStats};
pub use recording::{ChannelRecording, Recordings};
pub use shipped::{ShippedChain, ShippedRow, StoredEvent, TextResolver, event_record, kind_of};

use crate::config::OnAuditFailure;
use store::Store;
use writer::{Msg, Shared, Writer};

/// A session's events queued and not yet taken by the writer. Cloning shares the count.
#[derive(Clone, Debug, Default)]
pub struct Backlog(Arc<AtomicU64>);

impl Backlog {
    /// Events of this session waiting for the writer.
    pub fn len(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The audit store. Cloning is cheap (an `Arc`).
#[derive(Clone)]
pub struct Audit {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    opts: AuditOptions,
    shared: Arc<Shared>,
    tx: Option<Sender<Msg>>,
    /// The writer before `start`.
    pending: Mutex<Option<Writer>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Retention keeps every event after this seq (`u64::MAX`: no such floor); see
    /// [`Audit::keep_after`].
    keep_after: std::sync::atomic::AtomicU64,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Audit {
    /// Open (create) the store in `dir`. One handle per process; a store held by another
    /// process gives [`AuditError::Locked`].
    pub fn open(dir: &Path, opts: AuditOptions) -> Result<Audit, AuditError> {
        let store = Store::open(dir)?;
        let open_error = |reason: String| AuditError::Open {
            dir: dir.display().to_string(),
            reason,
        };
        let recovered = recover::recover(&store).map_err(open_error)?;
        let appender = segment::Appender::open(
            store.segments.clone(),
            opts.segment_bytes,
            recovered.last_segment,
        )
        .map_err(|e| open_error(e.to_string()))?;
        // No fixed capacity: admission bounds the queue (see the module's invariants).
        let (tx, rx) = std::sync::mpsc::channel();
        let shared = Arc::new(Shared::default());
        *lock(&shared.head) = recovered.head;
        let writer = Writer {
            store: store.clone(),
            shared: shared.clone(),
            rx,
            head: recovered.head,
            interval: opts.commit_interval,
            redact_parameters: opts.redact_parameters,
            raw: Vec::new(),
            packed: Vec::new(),
            table: lz4_flex::block::CompressTable::large(),
            texts: Default::default(),
            appender,
            frames: Vec::new(),
            checkpoints: Arc::new(index::Checkpointer::new(index::Checkpoint(recovered.head))),
        };
        Ok(Audit {
            inner: Arc::new(Inner {
                store,
                opts,
                shared,
                tx: Some(tx),
                pending: Mutex::new(Some(writer)),
                thread: Mutex::new(None),
                keep_after: std::sync::atomic::AtomicU64::new(u64::MAX),
            }),
        })
    }

    pub fn options(&self) -> &AuditOptions {
        &self.inner.opts
    }

    /// Start the group-commit writer (a dedicated thread; no runtime needed). Until then
    /// events queue. Calling it again does nothing.
    pub fn start(&self) {
        let Some(w) = lock(&self.inner.pending).take() else {
            return;
        };
        let shared = self.inner.shared.clone();
        let spawned = std::thread::Builder::new()
            .name("jitgate-audit".into())
            .spawn(move || {
                let _ = shared.writer.set(std::thread::current());
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.run()));
                if ran.is_err() {
                    shared.fail("the audit writer panicked".into());
                }
            });
        match spawned {
            Ok(h) => *lock(&self.inner.thread) = Some(h),
            Err(e) => self
                .inner
                .shared
                .fail(format!("cannot start the audit writer: {e}")),
        }
    }

    fn send(&self, msg: Msg) -> Result<(), AuditError> {
        let Some(tx) = &self.inner.tx else {
            return Err(self.inner.shared.error());
        };
        // Counted before the send so the writer's decrement never comes first.
        self.inner.shared.queued.fetch_add(1, Ordering::Relaxed);
        if let Some(backlog) = &msg.backlog {
            backlog.fetch_add(1, Ordering::Relaxed);
        }
        match tx.send(msg) {
            Ok(()) => Ok(()),
            Err(std::sync::mpsc::SendError(m)) => {
                self.inner.shared.queued.fetch_sub(1, Ordering::Relaxed);
                if let Some(backlog) = &m.backlog {
                    backlog.fetch_sub(1, Ordering::Relaxed);
                }
                self.inner
                    .shared
                    .fail("the audit writer has stopped".into());
                Err(self.inner.shared.error())
            }
        }
    }

    /// Record an event that belongs to no session's backlog (requests decided through the
    /// API, upkeep): committed within `commit_interval`, never waits, never dropped.
    /// `session` may be an `Arc<str>` (no copy) or anything else [`Text`] converts from.
    pub fn record(&self, session: impl Into<Text>, ev: EventKind) -> Result<(), AuditError> {
        self.record_at(now_us(), session.into(), ev, None)
    }

    /// Record a session's event, counted in its `backlog` until the writer takes it.
    pub fn record_in(
        &self,
        backlog: &Backlog,
        session: impl Into<Text>,
        ev: EventKind,
    ) -> Result<(), AuditError> {
        self.record_at(now_us(), session.into(), ev, Some(backlog))
    }

    fn record_at(
        &self,
        at_us: u64,
        session: Text,
        ev: EventKind,
        backlog: Option<&Backlog>,
    ) -> Result<(), AuditError> {
        if !self.inner.opts.enabled {
            return Ok(());
        }
        if self.inner.shared.failed() {
            return Err(self.inner.shared.error());
        }
        self.send(Msg {
            at_us,
            session,
            ev: Some(ev),
            done: None,
            backlog: backlog.map(|b| b.0.clone()),
            result: None,
        })
    }

    /// A new session's backlog.
    pub fn backlog(&self) -> Backlog {
        Backlog::default()
    }

    /// Whether the session with this backlog may read its client's next statement: its own
    /// backlog and the whole queue are under their bounds (a failed or disabled store always
    /// has room: its events are refused or not kept).
    pub fn has_room(&self, backlog: &Backlog) -> bool {
        let shared = &self.inner.shared;
        !self.inner.opts.enabled
            || shared.failed()
            || (backlog.0.load(Ordering::Relaxed) < self.inner.opts.session_backlog as u64
                && shared.queued.load(Ordering::Relaxed) < self.inner.opts.queue_capacity as u64)
    }

    /// Resolves once [`Self::has_room`] is true for `backlog`.
    pub async fn room(&self, backlog: &Backlog) {
        loop {
            // The usual answer, without touching the Notify's waiter list (a lock).
            if self.has_room(backlog) {
                return;
            }
            let taken = self.inner.shared.taken.notified();
            tokio::pin!(taken);
            // Registered before the check, so a batch taken in between still wakes us.
            taken.as_mut().enable();
            if self.has_room(backlog) {
                return;
            }
            self.inner.shared.wake_writer();
            taken.await;
        }
    }

    pub fn healthy(&self) -> bool {
        !self.inner.shared.failed()
    }

    /// What `on_failure` says about an action, given the store's health: `Some(error)` when
    /// the store has failed and the action must be refused (every action with
    /// `refuse-all`, only sensitive ones with `refuse-sensitive`), else `None`.
    pub fn refusal(&self, sensitive: bool) -> Option<AuditError> {
        if !self.inner.shared.failed() {
            return None;
        }
        match self.inner.opts.on_failure {
            OnAuditFailure::RefuseAll => Some(self.inner.shared.error()),
            OnAuditFailure::RefuseSensitive if sensitive => Some(self.inner.shared.error()),
            OnAuditFailure::RefuseSensitive => None,
        }
    }

    pub fn stats(&self) -> AuditStats {
        let s = &self.inner.shared;
        AuditStats {
            events: s.events.load(Ordering::Relaxed),
            commits: s.commits.load(Ordering::Relaxed),
            last_commit_us: s.last_commit_us.load(Ordering::Relaxed),
            max_commit_us: s.max_commit_us.load(Ordering::Relaxed),
            queued: s.queued.load(Ordering::Relaxed),
        }
    }

    /// Observe every commit's duration in `h` from now on (set once).
    pub fn observe_commits(&self, h: prometheus::Histogram) {
        let _ = self.inner.shared.commit_seconds.set(h);
    }

    /// Test hook (integration tests wire it to something they can trigger): from the next
    /// commit on, the store fails exactly as if sled had returned an I/O error. As root,
    /// `chmod` cannot make the store unwritable, so this is how failure is exercised.
    #[doc(hidden)]
    pub fn inject_failure(&self) {
        self.inner.shared.fault.store(true, Ordering::Relaxed);
        self.inner.shared.wake_writer();
    }

    /// Sessions matching `f`, oldest first (with `limit`, the most recent ones).
    pub fn sessions(&self, f: &SessionFilter) -> Vec<SessionRecord> {
        self.inner.store.sessions(f)
    }

    pub fn session(&self, id: &str) -> Option<SessionRecord> {
        self.inner.store.session(id)
    }

    /// The events of one session, in order.
    pub fn events(&self, session: &str) -> Vec<EventRecord> {
        self.inner.store.events(session)
    }

    /// Every event at or after `since_unix_secs`, in chain order, read lazily block by block.
    pub fn export(&self, since_unix_secs: u64) -> impl Iterator<Item = EventRecord> + Send + use<> {
        self.inner
            .store
            .export(since_unix_secs.saturating_mul(1_000_000))
    }

    /// An SSH session's recordings, one asciicast v2 per channel.
    pub fn recordings(&self, session: &str) -> Recordings {
        Recordings::new(self.session(session), self.events(session))
    }

    /// The asciicast v2 text of an SSH session's recording, if it recorded exactly one
    /// channel (else see [`Self::recordings`]).
    pub fn recording(&self, session: &str) -> Option<String> {
        self.recordings(session).only()
    }

    /// Walk the chain of this open store (what [`verify`] does offline).
    pub fn verify(&self) -> Result<u64, VerifyError> {
        // The chain up to the last commit as of now: commits made while it walks are left
        // for the next verify.
        let head = *lock(&self.inner.shared.head);
        let blocks = self
            .inner
            .store
            .blocks()
            .take_while(move |b| b.as_ref().map_or(true, |(seq, _)| *seq <= head.seq));
        walk::walk(&self.inner.store.db, blocks, Some(head)).map_err(VerifyError::Broken)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for Inner {
    /// Drain the queue into the store: the writer sees the channel close, commits what is
    /// left and stops; a writer never started runs here, once.
    fn drop(&mut self) {
        self.tx = None;
        if let Some(w) = lock(&self.pending).take() {
            w.run();
        }
        if let Some(h) = lock(&self.thread).take() {
            let _ = h.join();
        }
    }
}

/// Why [`verify`] did not say ok.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Broken(Broken),
    #[error("{0}")]
    Store(AuditError),
}

/// Walk the whole chain of the store in `dir` offline (from the anchor, if pruned):
/// `Ok(events)` or the first broken link. Needs the store not to be open elsewhere. Opens it
/// as `serve` would: after a crash, blocks on disk but not yet indexed are indexed, and a
/// torn tail is cut off ([`recover`]), so the walk covers every acknowledged event.
pub fn verify(dir: &Path) -> Result<u64, VerifyError> {
    if !dir.join("db").exists() {
        return Err(VerifyError::Store(AuditError::Open {
            dir: dir.display().to_string(),
            reason: "no audit store there".into(),
        }));
    }
    let store = Store::open(dir).map_err(VerifyError::Store)?;
    recover::recover(&store).map_err(|reason| {
        VerifyError::Store(AuditError::Open {
            dir: dir.display().to_string(),
            reason,
        })
    })?;
    let head = walk::recorded_head(&store.db).map_err(VerifyError::Broken)?;
    walk::walk(&store.db, store.blocks(), head).map_err(VerifyError::Broken)
}
