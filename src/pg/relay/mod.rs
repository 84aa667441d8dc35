//! The relay: one task per session moves frames both ways and stops every Query, Execute and
//! FunctionCall at the Gate.
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

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::sync::watch;

use super::msg::{self, Fields};
use super::stream::{ClientStream, UpstreamStream};
use crate::gate::{Commit, Gate, Hold, Permit, Refusal, SessionCtx};
use tracker::Tracker;

/// Read in chunks of this size; whole messages may need more.
const READ_CHUNK: usize = 64 * 1024;
/// Make sure a read has at least this much room (BytesMut alone would grow by 64 bytes).
const MIN_SPARE: usize = 2 * 1024;
/// An empty buffer larger than this is released, so idle sessions stay small.
const KEEP_CAPACITY: usize = 32 * 1024;
/// Stop reading a side while the buffer towards the other side holds this much.
const OUT_CAP: usize = 256 * 1024;
/// While a statement is held, keep reading the client (to notice a disconnect) up to this.
const HELD_READ_CAP: usize = 1 << 20;
mod client;
mod server;
mod tracker;

pub(super) const REFUSAL_MARKER: &str = "jitgate_refused_";

fn spare(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < MIN_SPARE {
        buf.reserve(4 * MIN_SPARE);
    }
}

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

/// Shutdown phases broadcast to sessions.
pub const RUNNING: u8 = 0;
pub const DRAINING: u8 = 1;
pub const FORCE: u8 = 2;

/// What a held frame was, so it can be forwarded or refused correctly later.
pub(super) enum HeldKind {
    Query(Arc<crate::policy::sql::SqlAnalysis>),
    Execute,
    FunctionCall,
}

/// What a held frame waits for.
pub(super) enum Waiting {
    /// An approval (the client was told).
    Approval(Hold),
    /// A grant's audit record reaching disk.
    Audit(Commit),
}

impl Waiting {
    pub fn cancel(&self, reason: &str) {
        if let Waiting::Approval(h) = self {
            h.cancel(reason);
        }
    }
}

impl std::future::Future for Waiting {
    type Output = Result<Permit, Refusal>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.get_mut() {
            Waiting::Approval(h) => std::pin::Pin::new(h).poll(cx),
            Waiting::Audit(c) => std::pin::Pin::new(c).poll(cx),
        }
    }
}

pub(super) struct Held {
    pub hold: Waiting,
    pub frame: BytesMut,
    pub kind: HeldKind,
}

pub struct Relay {
    pub(super) gate: Arc<Gate>,
    pub(super) ctx: SessionCtx,
    pub(super) max_message: usize,
    pub(super) tracker: Tracker,
    pub(super) cin: BytesMut,
    pub(super) c_pass: usize,
    pub(super) c_want: usize,
    pub(super) sout: BytesMut,
    pub(super) sin: BytesMut,
    pub(super) s_pass: usize,
    pub(super) s_want: usize,
    pub(super) cout: BytesMut,
    pub(super) status: u8,
    pub(super) held: Option<Held>,
    pub(super) discard_until_sync: bool,
    pub(super) refusals: Vec<(u64, Refusal)>,
    pub(super) refusal_seq: u64,
    pub(super) terminated: bool,
    pub(super) draining: bool,
    pub(super) upstream_fatal: bool,
    pub(super) upstream_pid: i32,
    pub(super) upstream_secret: i32,
    /// Proxy-made messages waiting for the server stream to reach a frame boundary.
    pub(super) inject_pending: BytesMut,
    pub(super) latency: prometheus::Histogram,
    /// For the impact preview's own upstream connection.
    pub(super) upstream_tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    pub(super) sid: Arc<str>,
    /// Bytes read from the client and from the server.
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
    /// A statement that may change data ran with its audit event not yet on disk (it was
    /// deferrable): the next statement that may commit waits for a flush first.
    pub(super) dirty: bool,
    /// Something that may end the transaction was sent since the last ReadyForQuery.
    pub(super) may_commit: bool,
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
        gate: Arc<Gate>,
        ctx: SessionCtx,
        max_message: usize,
        status: u8,
        upstream_pid: i32,
        upstream_secret: i32,
        upstream_tls: Option<Arc<tokio_rustls::rustls::ClientConfig>>,
    ) -> Relay {
        Relay {
            latency: gate.metrics.proxy_latency.with_label_values(&["postgres"]),
            sid: Arc::from(ctx.id.as_str()),
            bytes_in: 0,
            bytes_out: 0,
            dirty: false,
            may_commit: false,
            gate,
            ctx,
            max_message,
            tracker: Tracker::default(),
            cin: BytesMut::new(),
            c_pass: 0,
            c_want: 0,
            sout: BytesMut::new(),
            sin: BytesMut::new(),
            s_pass: 0,
            s_want: 0,
            cout: BytesMut::new(),
            status,
            held: None,
            discard_until_sync: false,
            refusals: Vec::new(),
            refusal_seq: 0,
            terminated: false,
            draining: false,
            upstream_fatal: false,
            upstream_pid,
            upstream_secret,
            inject_pending: BytesMut::new(),
            upstream_tls,
        }
    }

    /// Idle: nothing in flight, not in a transaction, nothing held.
    fn idle(&self) -> bool {
        self.status == b'I'
            && !self.tracker.busy()
            && self.held.is_none()
            && self.cin.is_empty()
            && self.sout.is_empty()
            && self.c_pass == 0
    }

    pub async fn run(
        mut self,
        client: ClientStream,
        upstream: UpstreamStream,
        key: &super::cancel::Key<'_>,
        mut shutdown: watch::Receiver<u8>,
    ) -> Ended {
        let (mut cr, mut cw) = tokio::io::split(client);
        let (mut ur, mut uw) = tokio::io::split(upstream);
        let mut cancelled = key.cancelled.clone();
        let mut client_eof = false;
        let mut was_holding = false;
        let end = loop {
            if self.held.is_none()
                && let Err(Fatal(f)) = self.process_client()
            {
                msg::error(&mut self.cout, f);
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
            if self.terminated && self.sout.is_empty() {
                break End::ClientTerminated;
            }
            if self.draining && self.idle() {
                break End::Shutdown;
            }
            if client_eof && self.held.is_none() {
                break End::ClientClosed;
            }
            let c_room = !client_eof
                && if self.held.is_some() {
                    self.cin.len() < HELD_READ_CAP
                } else {
                    self.cin.len() < READ_CHUNK.max(self.c_want) && self.sout.len() < OUT_CAP
                };
            let s_room = self.sin.len() < READ_CHUNK.max(self.s_want) && self.cout.len() < OUT_CAP;
            let holding = self.held.is_some();
            if approval && !was_holding {
                // A cancel that raced the end of an earlier hold must not withdraw this one.
                cancelled.borrow_and_update();
            }
            was_holding = approval;
            for buf in [&mut self.cin, &mut self.sin, &mut self.cout, &mut self.sout] {
                if buf.is_empty() && buf.capacity() > KEEP_CAPACITY {
                    *buf = BytesMut::new();
                }
            }
            if c_room {
                spare(&mut self.cin);
            }
            if s_room {
                spare(&mut self.sin);
            }
            tokio::select! {
                biased;
                r = uw.write_all_buf(&mut self.sout), if !self.sout.is_empty() => {
                    if let Err(e) = r { break End::Io(e); }
                    if let Err(e) = uw.flush().await { break End::Io(e); }
                }
                r = cw.write_all_buf(&mut self.cout), if !self.cout.is_empty() => {
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
                r = cr.read_buf(&mut self.cin), if c_room => {
                    match r {
                        Ok(0) | Err(_) => {
                            client_eof = true;
                            // Dropping the hold withdraws its request.
                            self.held = None;
                        }
                        Ok(n) => self.bytes_in += n as u64,
                    }
                }
                r = ur.read_buf(&mut self.sin), if s_room => {
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
                r = shutdown.changed() => {
                    if r.is_err() {
                        break End::Shutdown;
                    }
                    let phase = *shutdown.borrow_and_update();
                    if phase >= DRAINING {
                        self.draining = true;
                        if let Some(h) = &self.held {
                            h.hold.cancel("jitgate is shutting down");
                        }
                    }
                    if phase >= FORCE {
                        break End::Shutdown;
                    }
                }
            }
        };
        self.finish(&end, &mut cw, &mut uw, client_eof).await;
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

    /// Last words to both sides.
    async fn finish(
        &mut self,
        end: &End,
        cw: &mut WriteHalf<ClientStream>,
        uw: &mut WriteHalf<UpstreamStream>,
        client_eof: bool,
    ) {
        if matches!(end, End::Shutdown) && self.s_pass == 0 {
            msg::error(
                &mut self.cout,
                Fields::new(
                    "FATAL",
                    "57P01",
                    "terminating connection due to administrator command",
                )
                .detail("jitgate is shutting down"),
            );
        }
        if !client_eof {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                cw.write_all_buf(&mut self.cout).await?;
                cw.shutdown().await
            })
            .await;
        }
        if !matches!(end, End::UpstreamClosed | End::ClientTerminated) {
            if self.tracker.busy() {
                // The client left mid-statement: stop the server's work, not only the socket.
                if let Err(e) = super::upstream::cancel(
                    &self.ctx.target.address,
                    self.upstream_pid,
                    self.upstream_secret,
                )
                .await
                {
                    tracing::debug!("cancel on client loss failed: {e}");
                }
            }
            let mut bye = BytesMut::new();
            msg::frame(&mut bye, b'X', &[]);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                uw.write_all(&bye).await?;
                uw.shutdown().await
            })
            .await;
        }
    }

    pub(super) fn upstream_lost(&mut self) {
        // Only add our own error between whole frames; mid-frame the client just sees EOF.
        if self.s_pass == 0 && !self.upstream_fatal {
            {
                msg::error(
                    &mut self.cout,
                    Fields::new(
                        "FATAL",
                        "08006",
                        format!(
                            "jitgate: lost the connection to target \"{}\"",
                            self.ctx.target.name
                        ),
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
