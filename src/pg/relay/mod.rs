//! The relay: one task per session moves frames both ways and stops every Query, Execute and
//! FunctionCall at the Gate.
//!
//! Invariant: no statement reaches the upstream without a [`crate::gate::Permit`]. The relay
//! is the only code that writes client bytes to the upstream, and it forwards a Query,
//! Execute or FunctionCall only in exchange for one (`client.rs`, `forward`).
//!
//! Frames are cut by their 5-byte header. Only the messages the proxy must understand are
//! read whole (Query, Parse, Bind, Execute, Close, FunctionCall from the client; ReadyForQuery,
//! ErrorResponse and the completion messages from the server), each bounded by
//! `max_message_bytes`; everything else (DataRow, CopyData…) streams through in pieces whatever
//! its size. Each direction has a bounded out-buffer and stops reading while it is full, so a
//! slow reader slows its writer instead of growing the proxy's memory.
//!
//! Holds and refusals keep the protocol exact. A held message is simply not forwarded until
//! the Gate gives a Permit. A refused one is replaced by a statement that fails upstream (a
//! syntax error carrying a marker): the server then itself aborts the transaction, skips to
//! Sync and sends ReadyForQuery with the right status, and the relay rewrites that one error
//! into the refusal. Savepoints, `COMMIT` turning into `ROLLBACK`, and pipelines behave exactly
//! as after any PostgreSQL error, because they are one.
//!
//! Where a statement goes, from the client's bytes to the upstream and back:
//! - `mod.rs` (here): the [`Relay`] and its select loop reads the client into
//!   `client.buf` and the server into `server.buf`, and writes `to_server` and `to_client`.
//! - `framer.rs`: one `Framer` per direction cuts those bytes into frames; the
//!   direction's rules say which frames are read whole and which stream through.
//! - `client.rs`: a whole client frame is tracked (Parse, Bind, Close) or, for Query, Execute
//!   and FunctionCall, classified and decided by the Gate: allowed ones are appended to
//!   `to_server`, refused ones replaced by a failing statement, held ones parked;
//!   `extended.rs`: Parse, Bind, Close and Execute.
//! - `hold.rs`: a parked statement (`Held`) waits for an approval or for its audit
//!   record to reach the disk; the refusals whose failures are still to be rewritten.
//! - `tracker.rs`: everything sent upstream joins the one queue of what awaits the server
//!   (and the statement and portal names it will create), in wire order; `name.rs`: names
//!   as the server keys them; `prepared.rs`: what a prepared statement or portal is.
//! - `resolve.rs`: an `EXECUTE name` is looked up when it runs; a message naming something
//!   whose redefinition the server has not answered yet is parked until it has; a prepared
//!   statement is judged under the target's catalog in force when it runs.
//! - `server.rs`: the server's answers pop that queue, confirm names, record results in
//!   the audit trail and turn the failure of a refused statement into the refusal.
//! - `txn.rs`: the transaction status, and whether a statement's audit event may reach the
//!   disk after it runs (`TxnState`).
//! - `settings.rs`: the pinned settings as the server reports them and the session's
//!   possible `search_path`s, which make the classification the Gate sees.
//!
//! # The hot path, per round trip and per frame (issue 15)
//!
//! A relayed statement costs at least four socket operations: read the client, write the
//! server, read the server, write the client. Profiles of `bench/pgbench.sh` showed that
//! jitgate's own work per statement (framing, the classification cache, the Gate, queuing
//! the audit event) is a few percent of its CPU; most of the rest is the kernel sleeping and
//! waking threads around those four operations. So the relay is built to do each of them
//! once, on one thread, and to do nothing per frame that a cache hit does not need:
//! - **One thread per session.** The PostgreSQL listener places each session on one of the
//!   server's session threads (`crate::lifecycle::SessionThreads`, a current-thread runtime
//!   per core): both sockets are registered with that thread's reactor and this task is
//!   polled there only, so a readiness event is handled where it arrives, with no
//!   cross-thread wake-up or work stealing.
//! - **One read per readiness**, into the side's buffer (`Framer::buf`, at least
//!   `MIN_SPARE` free, at most `READ_CHUNK` unless a whole frame needs more) or, when that is
//!   empty, into the thread's scratch buffer and then the side's (`read.rs`). tokio clears
//!   the readiness after a short read, so no read ends in `EAGAIN`. Everything the read
//!   brought is handled before the next write: pgbench's Parse/Bind/Describe/Execute/Sync, or
//!   a server's RowDescription/DataRow…/CommandComplete/ReadyForQuery, arrive in one read.
//! - **One write per direction per batch.** Frames are appended to `to_server` /
//!   `to_client` while a read is handled, and the select loop writes each buffer with one
//!   `write` when it is not empty, so a batch of frames is one system call.
//! - **Per frame:** the framer looks at the 5-byte header; a frame the proxy need not read
//!   is copied once into the other side's buffer (DataRow is never decoded); a whole frame
//!   is split off the read buffer without copying. For Query/Execute: the classification is
//!   a cache hit by exact text (a shared `Arc` of the analysis, no parse); the Gate matches
//!   the rules and queues the statement's audit event (a read never waits for the disk);
//!   the frame is appended to `to_server`. One `Instant::now()` pair times the decision
//!   (`jitgate_proxy_latency_seconds`); the statement's duration in the audit trail is taken
//!   from its forward to its result.
//! - **Little written to memory the session threads share**, since such a write makes the
//!   cache line bounce between cores: the Gate reads the config without a reference count
//!   (`LiveConfig::load`), the loop keeps one shutdown future across its turns rather than
//!   registering with the watch on each, and the audit room check reads a counter first.
//!   What remains shared per statement: the target-cache map's read lock, the
//!   classification cache's shard lock and hit counter, the reference counts of the target's
//!   cache, of the analysis and of the rule's name (the Permit's), and the metrics' atomics.
//! - An idle session holds no read buffer: an empty one is released and the next read goes
//!   through the thread's scratch buffer; write buffers larger than `KEEP_CAPACITY` are
//!   released when empty (memory per idle session: `bench/idle_sessions.sh`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::msg::{self, Fields};
use super::stream::{ClientStream, UpstreamStream};
use crate::app::AppState;
use crate::audit::{EventKind, Text};
use crate::gate::SessionCtx;
use crate::lifecycle::{Phase, Shutdown};
use framer::Framer;
use hold::{Held, Refusals, Waiting};
use tracker::Tracker;
use txn::TxnState;

mod client;
mod ending;
mod extended;
mod folded;
mod framer;
mod hold;
mod name;
mod prepared;
mod read;
mod resolve;
mod server;
mod settings;
#[cfg(test)]
mod tests;
mod tracker;
mod txn;

/// Read in chunks of this size; whole messages may need more.
const READ_CHUNK: usize = 64 * 1024;
/// Make sure a read has at least this much room (BytesMut alone would grow by 64 bytes).
const MIN_SPARE: usize = 2 * 1024;
/// An empty buffer larger than this is released, so idle sessions stay small.
const KEEP_CAPACITY: usize = 32 * 1024;
/// Stop reading a side while the buffer towards the other side holds this much.
const OUT_CAP: usize = 256 * 1024;
/// While a statement waits for an approval, the client is read on (so a close or reset is
/// noticed at once and the request cancelled) into its buffer, up to this or one whole
/// message of `max_message_bytes`, whichever is larger: PostgreSQL handles pipelined
/// messages after the held one, so they are kept, not dropped. A client that sends more than
/// that behind a held statement is ended with an error and its request cancelled, rather
/// than left unread (a close nobody reads is a close nobody notices). A wait for the disk
/// only reads up to the same bound.
const HELD_READ_CAP: usize = 1 << 20;

/// Why a session ended.
#[derive(Debug)]
pub enum End {
    ClientClosed,
    ClientTerminated,
    UpstreamClosed,
    Shutdown,
    ProtocolError(String),
    Io(std::io::Error),
}

impl From<std::io::Error> for End {
    fn from(e: std::io::Error) -> Self {
        End::Io(e)
    }
}

/// The upstream server process this session talks to.
struct Upstream {
    /// Its backend key, to cancel what runs there when the client leaves mid-statement.
    pid: i32,
    secret: i32,
    /// For the impact preview's own upstream connection.
    tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
}

pub struct Relay {
    app: Arc<AppState>,
    ctx: SessionCtx,
    /// The session id, for audit events.
    sid: Arc<str>,
    latency: prometheus::Histogram,
    upstream: Upstream,
    /// Bytes from the client, cut into frames.
    client: Framer,
    /// Bytes for the server.
    to_server: BytesMut,
    /// Bytes from the server, cut into frames.
    server: Framer,
    /// Bytes for the client.
    to_client: BytesMut,
    /// Proxy-made messages for the client waiting for the server stream to reach a frame
    /// boundary.
    injected: BytesMut,
    /// What awaits the server, and the names of prepared statements and portals.
    tracker: Tracker,
    txn: TxnState,
    /// Pinned settings as the server reports them, and the possible `search_path`s.
    settings: settings::SessionSettings,
    /// The statement waiting for an approval or for the disk; nothing the client sent after
    /// it is handled until it is resolved.
    held: Option<Held>,
    /// A client frame that names a statement or portal whose redefinition the server has
    /// not answered yet: handled (again) once it has; nothing after it is handled before.
    parked: Option<(u8, BytesMut)>,
    /// Parse and Bind events held back for the statement event of the next Execute.
    folded: folded::Folded,
    /// A refused extended-protocol message failed upstream: drop the client's messages up
    /// to Sync, as the server skips them.
    discard_until_sync: bool,
    refusals: Refusals,
    /// The client sent Terminate.
    terminated: bool,
    /// A statement that may change the schema was forwarded and its transaction has not
    /// ended: the target's catalog snapshot is re-read when it does (or the session ends).
    schema_change: Option<crate::pg::target_catalog::SchemaChange>,
    /// Shutdown began: end the session as soon as it is idle.
    draining: bool,
    /// The server sent a FATAL or PANIC error, or a stream that cannot be framed.
    upstream_fatal: bool,
    /// Bytes read from the client and from the server.
    bytes_in: u64,
    bytes_out: u64,
}

/// How a session ended and what it moved.
pub struct Ended {
    pub end: End,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// A fatal protocol problem: tell the client, then close.
pub(super) struct Fatal(pub Fields);

impl Relay {
    pub fn new(
        app: Arc<AppState>,
        ctx: SessionCtx,
        max_message: usize,
        status: u8,
        upstream_pid: i32,
        upstream_secret: i32,
        upstream_tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> Relay {
        let budget = app.message_budget.clone();
        let target_user = ctx.target.user.clone();
        Relay {
            latency: app.metrics.proxy_latency.with_label_values(&["postgres"]),
            sid: ctx.id.shared(),
            app,
            ctx,
            upstream: Upstream {
                pid: upstream_pid,
                secret: upstream_secret,
                tls: upstream_tls,
            },
            client: Framer::with_budget(max_message, budget),
            to_server: BytesMut::new(),
            server: Framer::new(max_message),
            to_client: BytesMut::new(),
            injected: BytesMut::new(),
            tracker: Tracker::default(),
            txn: TxnState::new(status),
            // PostgreSQL's default until `with_settings` gives the server's.
            settings: settings::SessionSettings::new(
                &target_user,
                Some(settings::DEFAULT_SEARCH_PATH),
                &[],
            ),
            held: None,
            parked: None,
            folded: Default::default(),
            discard_until_sync: false,
            refusals: Refusals::default(),
            terminated: false,
            schema_change: None,
            draining: false,
            upstream_fatal: false,
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// Record one of the session's audit events, counted in its backlog (a failed store is
    /// the Gate's concern, statement by statement).
    fn record(&self, ev: EventKind) {
        let _ = self
            .app
            .audit
            .record_in(&self.ctx.backlog, Text::from(&self.sid), ev);
    }

    /// Record the Parse and Bind events held back (see [`folded`]).
    fn record_folded(&mut self) {
        for ev in self.folded.take() {
            self.record(ev);
        }
    }

    /// Idle: nothing in flight, not in a transaction, nothing held.
    fn idle(&self) -> bool {
        self.txn.idle()
            && !self.tracker.busy()
            && self.held.is_none()
            && self.parked.is_none()
            && self.client.buf.is_empty()
            && self.to_server.is_empty()
            && self.client.at_boundary()
    }

    pub async fn run(
        mut self,
        client: ClientStream,
        upstream: UpstreamStream,
        key: &super::cancel::Key<'_>,
        shutdown: Shutdown,
    ) -> Ended {
        let (mut cr, mut cw) = tokio::io::split(client);
        let (mut ur, mut uw) = tokio::io::split(upstream);
        let mut cancelled = key.cancelled.clone();
        let mut client_eof = false;
        let mut was_holding = false;
        let audit_waits = self
            .app
            .metrics
            .audit_waits
            .with_label_values(&["postgres"]);
        let (audit, backlog) = (self.app.audit.clone(), self.ctx.backlog.clone());
        let mut audit_was_room = true;
        // Kept across turns (see `Shutdown::next_owned`); `shutdown` stays for the end reason.
        let mut phase_change = std::pin::pin!(shutdown.clone().next_owned());
        let end = loop {
            if self.held.is_none()
                && let Err(Fatal(f)) = self.process_client()
            {
                msg::error(&mut self.to_client, f);
                break End::ProtocolError("client protocol violation".into());
            }
            // Only an approval wait is "holding" for cancels: during an audit wait a cancel
            // goes upstream to whatever runs there.
            let approval = matches!(
                self.held,
                Some(Held {
                    hold: Waiting::Approval(_),
                    ..
                })
            );
            key.holding.store(approval, Ordering::Release);
            if self.terminated && self.to_server.is_empty() {
                break End::ClientTerminated;
            }
            if self.draining && self.idle() {
                break End::Shutdown;
            }
            if client_eof && self.held.is_none() {
                break End::ClientClosed;
            }
            let held_cap = HELD_READ_CAP.max(self.client.max_message + 5);
            if approval && self.client.buf.len() >= held_cap {
                self.overrun(held_cap);
                break End::ProtocolError("too much pipelined behind a held statement".into());
            }
            // An approval wait reads on (bounded just above); a wait for the disk is short
            // and ends without the client, so it only reads up to the cap.
            // Behind the audit writer, the client's next statements wait unread (a hold reads
            // on: its statement is already recorded and its client must be watched).
            let audit_room = audit.has_room(&backlog);
            if !audit_room && audit_was_room {
                audit_waits.inc();
            }
            audit_was_room = audit_room;
            let c_room = !client_eof
                && if approval {
                    true
                } else if self.held.is_some() {
                    self.client.buf.len() < held_cap
                } else {
                    audit_room
                        && self.client.buf.len() < READ_CHUNK.max(self.client.want)
                        && self.to_server.len() < OUT_CAP
                };
            let s_room = self.server.buf.len() < READ_CHUNK.max(self.server.want)
                && self.to_client.len() < OUT_CAP;
            let holding = self.held.is_some();
            if approval && !was_holding {
                // A cancel that raced the end of an earlier hold must not withdraw this one.
                cancelled.borrow_and_update();
            }
            was_holding = approval;
            // An empty read buffer is let go (the next read comes through the thread's
            // scratch buffer, see `read`), and an empty write buffer once it is large.
            for buf in [&mut self.client.buf, &mut self.server.buf] {
                if buf.is_empty() && buf.capacity() > 0 {
                    *buf = BytesMut::new();
                }
            }
            for buf in [&mut self.to_client, &mut self.to_server] {
                if buf.is_empty() && buf.capacity() > KEEP_CAPACITY {
                    *buf = BytesMut::new();
                }
            }
            tokio::select! {
                biased;
                r = uw.write_all_buf(&mut self.to_server), if !self.to_server.is_empty() => {
                    if let Err(e) = r { break End::Io(e); }
                    if let Err(e) = uw.flush().await { break End::Io(e); }
                }
                r = cw.write_all_buf(&mut self.to_client), if !self.to_client.is_empty() => {
                    if let Err(e) = r { break End::Io(e); }
                    if let Err(e) = cw.flush().await { break End::Io(e); }
                }
                r = async { match self.held.as_mut() { Some(h) => (&mut h.hold).await, None => std::future::pending().await } }, if holding => {
                    self.resolve(r);
                }
                _ = cancelled.changed(), if approval => {
                    if let Some(h) = &self.held {
                        h.hold.cancel("cancelled by the client");
                    }
                }
                r = read::read_some(&mut cr, &mut self.client.buf), if c_room => {
                    match r {
                        Ok(0) | Err(_) => {
                            client_eof = true;
                            // Withdraw the request at once; dropping the hold would too.
                            if let Some(h) = self.held.take() {
                                h.hold.cancel("the client went away");
                            }
                        }
                        Ok(n) => self.bytes_in += n as u64,
                    }
                }
                r = read::read_some(&mut ur, &mut self.server.buf), if s_room => {
                    match r {
                        Ok(0) | Err(_) => {
                            self.upstream_lost();
                            break End::UpstreamClosed;
                        }
                        Ok(n) => {
                            self.bytes_out += n as u64;
                            self.process_server();
                        }
                    }
                }
                _ = audit.room(&backlog), if !audit_room && !client_eof => {}
                (phase, watch) = &mut phase_change => {
                    phase_change.set(watch.next_owned());
                    if phase >= Phase::Draining {
                        self.draining = true;
                        if let Some(h) = &self.held {
                            h.hold.cancel("jitgate is shutting down");
                        }
                    }
                    if phase >= Phase::Force {
                        break End::Shutdown;
                    }
                }
            }
        };
        self.record_folded();
        let why = shutdown.ended_reason();
        self.finish(&end, why.as_deref(), &mut cw, &mut uw, client_eof)
            .await;
        if matches!(end, End::ProtocolError(_)) && !client_eof {
            // The client may still be sending the rest of what we refused. Closing with
            // unread input makes the kernel send a reset, which can destroy our error
            // message in flight, so read and discard for a moment first (as PostgreSQL does).
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                let mut sink = vec![0u8; 64 * 1024];
                while let Ok(n) = cr.read(&mut sink).await {
                    if n == 0 {
                        break;
                    }
                }
            })
            .await;
        }
        let _ = &mut ur;
        Ended {
            end,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
        }
    }
}
