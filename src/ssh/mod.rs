//! The SSH front end: a russh server facing users, a russh client per session facing the
//! target, and the channel relays between them.
//!
//! `ssh -p 2222 web-1@proxy CMD` authenticates alice by her public key ([`auth`]); the SSH
//! user name names the target. Every session channel ([`channel`]) and every `direct-tcpip`
//! forward ([`forward`]) is decided by the Gate before anything of it reaches the target, and
//! on the `sftp` subsystem every operation is decided again on its own ([`sftp`]); the
//! target connection ([`upstream`]) is opened on the first channel that is allowed and checks
//! the target's pinned host key.
//!
//! Invariants:
//! - Nothing reaches a target without a [`crate::gate::Permit`]: the only code that opens a
//!   target channel runs after [`trail::decide`] resolved to one.
//! - Bounded memory: writes wait for the peer's SSH window; what users send waits in an
//!   [`inbox`] held down by their window, what targets send in russh's bounded channel queue
//!   (`channel_buffer_size` packets), and a relay task never reads ahead of its writer, so a
//!   slow reader slows its writer.
//!   Input that arrives while a command is held is kept up to [`channel::HELD_INPUT_CAP`].
//!   Recordings are limited per session (`audit.recording_limit_bytes`); a session that
//!   reaches the limit, or whose recording the store refuses, is ended, never continued
//!   unrecorded ([`record`]).
//! - A hold lasts no longer than its client ([`hold`]): it ends when the channel closes or
//!   the connection ends, whatever was queued, and expires at its hold_timeout whether or
//!   not the client could be told it is held.
//! - No panics on network input: everything from a peer is handled as a `Result`.
//! - Shutdown ([`crate::lifecycle`]): `Draining` stops accepting; `Force` disconnects every
//!   session.

mod auth;
mod channel;
mod forward;
mod handler;
mod hold;
mod hostkey;
mod inbox;
mod record;
mod sftp;
mod trail;
mod upstream;

pub use hostkey::{HostKeyError, load_or_create_host_key};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use russh::keys::PrivateKey;
use russh::server::{Config as ServerConfig, Handle};
use russh::{MethodKind, MethodSet, SshId};
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, warn};

use crate::app::AppState;
use crate::gate::SessionCtx;
use crate::lifecycle::{Admission, FrontEnd, Phase, Shutdown};

/// After a session's recording stopped, how long its client has to read why before it is
/// disconnected.
const RECORDING_STOP_GRACE: Duration = Duration::from_secs(1);
/// Messages russh queues per channel before it stops reading the connection.
const CHANNEL_BUFFER: usize = 32;

pub struct SshServer {
    app: Arc<AppState>,
    config: Arc<ServerConfig>,
    upstream: upstream::Connector,
    shutdown: Shutdown,
}

impl SshServer {
    pub fn new(app: Arc<AppState>, host_key: PrivateKey, shutdown: Shutdown) -> Arc<Self> {
        let config = ServerConfig {
            server_id: SshId::Standard(
                format!("SSH-2.0-jitgate_{}", env!("CARGO_PKG_VERSION")).into(),
            ),
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            // A rejected key costs the client this long; the initial "none" probe of every
            // OpenSSH client reveals nothing, so it is answered at once.
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            keys: vec![host_key],
            channel_buffer_size: CHANNEL_BUFFER,
            inactivity_timeout: None,
            keepalive_interval: Some(Duration::from_secs(60)),
            keepalive_max: 3,
            max_auth_attempts: 6,
            nodelay: true,
            ..ServerConfig::default()
        };
        Arc::new(SshServer {
            app,
            config: Arc::new(config),
            upstream: upstream::Connector::new(CHANNEL_BUFFER),
            shutdown,
        })
    }

    async fn session(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, admission: Admission) {
        let startup = self.app.config().server.startup_timeout;
        let connection: Arc<OnceLock<Arc<Conn>>> = Arc::new(OnceLock::new());
        let handler = handler::ConnHandler::new(self.clone(), peer, connection.clone(), admission);
        let running = match tokio::time::timeout(
            startup,
            russh::server::run_stream(self.config.clone(), tcp, handler),
        )
        .await
        {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                debug!(%peer, "ssh handshake failed: {e}");
                return;
            }
            Err(_) => {
                debug!(%peer, "ssh handshake timed out");
                return;
            }
        };
        let handle = running.handle();
        let force = self.shutdown.clone().reached_owned(Phase::Force);
        tokio::pin!(running, force);
        let auth_deadline = tokio::time::sleep(startup);
        tokio::pin!(auth_deadline);
        let mut deadline_armed = true;
        let mut forced = false;
        loop {
            tokio::select! {
                r = &mut running => {
                    if let Err(e) = r {
                        debug!(%peer, "ssh session ended with an error: {e}");
                    }
                    break;
                }
                _ = &mut auth_deadline, if deadline_armed => {
                    deadline_armed = false;
                    if connection.get().is_none() {
                        info!(%peer, "ssh authentication timed out");
                        disconnect(&handle, "authentication timed out").await;
                    }
                }
                _ = &mut force, if !forced => {
                    forced = true;
                    if let Some(c) = connection.get() {
                        c.set_end_reason("jitgate is shutting down");
                    }
                    disconnect(&handle, "jitgate is shutting down").await;
                }
            }
        }
        if let Some(conn) = connection.get() {
            // Every hold of the session ends now (see `Conn::gone`).
            conn.gone.cancel();
            conn.finish().await;
        }
    }
}

impl FrontEnd for SshServer {
    /// A connection over the unauthenticated limits is closed at once; one over
    /// `max_connections` is disconnected once it has authenticated.
    async fn connection(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, admission: Admission) {
        if admission.admitted() {
            self.session(tcp, peer, admission).await;
        }
    }
}

async fn disconnect(handle: &Handle, why: &str) {
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, why.into(), "en".into())
        .await;
}

/// One authenticated user session: who, the target connection (opened on first use), the
/// recording budget and the byte counters.
pub(crate) struct Conn {
    app: Arc<AppState>,
    ctx: SessionCtx,
    handle: Handle,
    server: Arc<SshServer>,
    upstream: OnceCell<Result<Arc<upstream::Upstream>, Arc<upstream::UpstreamError>>>,
    recorder: Arc<record::Recorder>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    end_reason: Mutex<Option<String>>,
    active: prometheus::IntGauge,
    /// Cancelled when the client connection has ended.
    gone: CancellationToken,
}

impl Conn {
    fn new(
        server: Arc<SshServer>,
        ctx: SessionCtx,
        handle: Handle,
        peer: SocketAddr,
        application: &str,
    ) -> Arc<Conn> {
        let app = server.app.clone();
        app.session_start(&ctx, &peer.to_string(), Some(application), &[]);
        let active = app.metrics.active_sessions.with_label_values(&["ssh"]);
        active.inc();
        let recorder = Arc::new(record::Recorder::new(app.clone(), &ctx, Instant::now()));
        info!(
            session = %ctx.id,
            user = %ctx.user.name,
            target = %ctx.target.name,
            client = %peer,
            "ssh session started"
        );
        // A reload that removes the user disconnects the session (and with it every channel).
        if let Some(mut ended) = app.sessions.ended(&ctx.id) {
            let handle = handle.clone();
            tokio::spawn(async move {
                // Err: the session ended first and was forgotten.
                if ended.wait_for(Option::is_some).await.is_ok() {
                    disconnect(&handle, "your jitgate user was removed").await;
                }
            });
        }
        Arc::new(Conn {
            app,
            ctx,
            handle,
            server,
            upstream: OnceCell::new(),
            recorder,
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            end_reason: Mutex::new(None),
            active,
            gone: CancellationToken::new(),
        })
    }

    /// Resolves when sessions must close (`Force`).
    fn forced(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.server.shutdown.clone().reached_owned(Phase::Force)
    }

    /// Resolves when the client connection has ended: whatever the session still holds is
    /// withdrawn then.
    fn gone(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.gone.clone().cancelled_owned()
    }

    fn is_gone(&self) -> bool {
        self.gone.is_cancelled()
    }

    fn draining(&self) -> bool {
        self.server.shutdown.phase() >= Phase::Draining
    }

    /// The target connection, opened by the first caller; every later caller gets the same
    /// connection or the same error.
    async fn upstream(&self) -> Result<Arc<upstream::Upstream>, Arc<upstream::UpstreamError>> {
        let target = self.ctx.target.clone();
        let timeout = self.app.config().server.startup_timeout;
        let span = tracing::info_span!("upstream", target = %target.name);
        self.upstream
            .get_or_init(|| {
                async {
                    let r = self
                        .server
                        .upstream
                        .connect(&target, timeout)
                        .await
                        .map(Arc::new)
                        .map_err(Arc::new);
                    if let Err(e) = &r {
                        warn!("target connection failed: {e}");
                        self.app
                            .metrics
                            .upstream_connect_failures
                            .with_label_values(&["ssh", &target.name])
                            .inc();
                    }
                    r
                }
                .instrument(span)
            })
            .await
            .clone()
    }

    fn set_end_reason(&self, why: &str) {
        let mut r = self.end_reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some(why.to_string());
        }
    }

    /// End the whole session (after a fatal target error was shown to the user): `why` goes
    /// to the audit trail, `told` to the client.
    /// The target cannot be used (unreachable, wrong host key): remember why for the audit
    /// trail, and disconnect a client that keeps the connection open anyway after a grace
    /// period (the refused channel has told it).
    fn refused(&self, why: &str) {
        self.set_end_reason(why);
        let handle = self.handle.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            disconnect(&handle, "session refused").await;
        });
    }

    /// The session's recording stopped (see [`record::Stop`]): the channel that found it has
    /// told its user; every other channel and new channel is refused by the recorder. The
    /// client is disconnected after a short grace so that message arrives first.
    fn recording_stopped(&self, stop: &record::Stop) {
        self.set_end_reason(&stop.audit_reason());
        let handle = self.handle.clone();
        let gone = self.gone();
        let message = stop.user_message();
        tokio::spawn(async move {
            tokio::select! {
                _ = gone => {}
                _ = tokio::time::sleep(RECORDING_STOP_GRACE) => disconnect(&handle, &message).await,
            }
        });
    }

    fn count_in(&self, n: usize) {
        self.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn count_out(&self, n: usize) {
        self.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    async fn finish(&self) {
        if let Some(Ok(up)) = self.upstream.get() {
            up.close().await;
        }
        let reason = self
            .end_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "client closed".into());
        let (bi, bo) = (
            self.bytes_in.load(Ordering::Relaxed),
            self.bytes_out.load(Ordering::Relaxed),
        );
        self.app.session_end(&self.ctx, &reason, bi, bo);
        self.active.dec();
        info!(session = %self.ctx.id, bytes_in = bi, bytes_out = bo, %reason, "ssh session ended");
    }
}
