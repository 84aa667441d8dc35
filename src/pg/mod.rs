//! The PostgreSQL front end: what happens to a connection the accept loop
//! ([`crate::lifecycle`]) hands over: start-up, upstream connection, relay.
//!
//! Invariant: no statement reaches the upstream without a [`crate::gate::Permit`]; the relay
//! is the only code that writes client bytes to the upstream, and it does so for Query,
//! Execute and FunctionCall only in exchange for one.

pub mod cancel;
mod impact;
pub mod msg;
pub mod relay;
mod side_query;
pub mod startup;
mod startup_params;
pub mod stream;
pub mod target_catalog;
pub mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tracing::{Instrument, info, warn};

use crate::app::AppState;
use crate::gate::SessionCtx;
use crate::lifecycle::{Admission, FrontEnd, Protocol, Shutdown};
use msg::Fields;
use startup::{Authenticated, Hello};
use upstream::UpstreamError;

/// Over-limit connections still get a proper FATAL 53300, but only this many at once.
const EXCESS_HANDSHAKES: usize = 64;

pub struct PgServer {
    app: Arc<AppState>,
    tls: Option<TlsAcceptor>,
    registry: cancel::Registry,
    upstream_tls: Mutex<HashMap<String, Option<Arc<rustls::ClientConfig>>>>,
    process_secret: [u8; 32],
    excess: Arc<Semaphore>,
    shutdown: Shutdown,
}

impl PgServer {
    pub fn new(app: Arc<AppState>, tls: Option<TlsAcceptor>, shutdown: Shutdown) -> Arc<PgServer> {
        Arc::new(PgServer {
            app,
            tls,
            registry: cancel::Registry::default(),
            upstream_tls: Mutex::new(HashMap::new()),
            process_secret: rand::random(),
            excess: Arc::new(Semaphore::new(EXCESS_HANDSHAKES)),
            shutdown,
        })
    }

    async fn accepted(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr, mut admission: Admission) {
        let over_limit = !admission.admitted();
        let _excess = match over_limit {
            false => None,
            true => match self.excess.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => return, // flood: just close
            },
        };
        let config = self.app.config();
        let hello = tokio::time::timeout(
            config.server.startup_timeout,
            startup::handshake(
                tcp,
                self.tls.as_ref(),
                &config,
                &self.process_secret,
                over_limit,
            ),
        )
        .await;
        let hello = match hello {
            Err(_) => {
                info!(%peer, "start-up timed out");
                return;
            }
            Ok(Err(e)) => {
                info!(%peer, "start-up failed: {e}");
                return;
            }
            Ok(Ok(h)) => h,
        };
        match hello {
            Hello::Cancel { pid, secret } => self.registry.cancel(pid, secret).await,
            Hello::Session(mut auth) => {
                // Only an authenticated user takes a session slot.
                let Some(slot) = admission.authenticated() else {
                    startup::refuse(
                        &mut auth.stream,
                        Fields::new("FATAL", "53300", "sorry, too many clients already"),
                    )
                    .await;
                    return;
                };
                let ctx = SessionCtx {
                    id: crate::approval::new_id("s").into(),
                    user: auth.user.clone(),
                    target: auth.target.clone(),
                    source: peer.ip(),
                    protocol: Protocol::Postgres,
                    backlog: self.app.audit.backlog(),
                };
                let span = tracing::info_span!(
                    "session",
                    id = %ctx.id,
                    user = %ctx.user.name,
                    target = %ctx.target.name,
                    client = %peer
                );
                let active = self
                    .app
                    .metrics
                    .active_sessions
                    .with_label_values(&["postgres"]);
                active.inc();
                self.session(*auth, ctx, peer).instrument(span).await;
                active.dec();
                drop(slot);
            }
        }
    }

    fn upstream_tls(
        &self,
        target: &crate::config::Target,
    ) -> Result<Option<Arc<rustls::ClientConfig>>, UpstreamError> {
        let mut cache = self.upstream_tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(&target.name) {
            return Ok(c.clone());
        }
        let c = upstream::tls_config(target)?;
        cache.insert(target.name.clone(), c.clone());
        Ok(c)
    }

    async fn session(&self, auth: Authenticated, ctx: SessionCtx, peer: std::net::SocketAddr) {
        let app = (!auth.application_name.is_empty()).then(|| auth.application_name.clone());
        self.app
            .session_start(&ctx, &peer.to_string(), app.as_deref(), &auth.params);
        let audit_ctx = ctx.clone();
        let (reason, bytes_in, bytes_out) = match self.relay_session(auth, ctx).await {
            Some(e) => (end_reason(&e.end), e.bytes_in, e.bytes_out),
            None => ("the target could not be reached".to_string(), 0, 0),
        };
        self.app
            .session_end(&audit_ctx, &reason, bytes_in, bytes_out);
    }

    /// Connect upstream and relay; `None` when the session never reached the target.
    async fn relay_session(
        &self,
        mut auth: Authenticated,
        ctx: SessionCtx,
    ) -> Option<relay::Ended> {
        let config = self.app.config();
        // The session's start goes to disk while the upstream connects: it is there before
        // the client may send its first statement. A failed store is the Gate's concern
        // (`on_failure`), statement by statement.
        let start_on_disk = tokio::spawn({
            let audit = self.app.audit.clone();
            async move { audit.flush().await }
        });
        let target = auth.target.clone();
        let tls = self.upstream_tls(&target);
        let tls_for_relay = tls.as_ref().ok().cloned().flatten();
        let connected = match tls {
            Ok(tls) => tokio::time::timeout(
                config.server.startup_timeout,
                upstream::connect(&target, tls.as_ref(), &auth.params),
            )
            .await
            .unwrap_or_else(|_| {
                Err(UpstreamError::Connect(
                    target.address.clone(),
                    std::io::ErrorKind::TimedOut.into(),
                ))
            }),
            Err(e) => Err(e),
        };
        let up = match connected {
            Ok(up) => up,
            Err(e) => {
                warn!("upstream connection failed: {e}");
                self.app
                    .metrics
                    .upstream_connect_failures
                    .with_label_values(&["postgres", &target.name])
                    .inc();
                let f = match &e {
                    UpstreamError::Refused(fields) => Fields::new(
                        "FATAL",
                        leak_free_code(msg::field(fields, b'C')),
                        format!(
                            "jitgate: target \"{}\" refused the connection: {}",
                            target.name,
                            msg::field(fields, b'M').unwrap_or("?")
                        ),
                    ),
                    _ => Fields::new(
                        "FATAL",
                        "08006",
                        format!("jitgate: cannot connect to target \"{}\"", target.name),
                    )
                    .detail(e.to_string()),
                };
                startup::refuse(&mut auth.stream, f).await;
                return None;
            }
        };
        info!(application_name = %crate::escape::terminal(&auth.application_name), "session started");
        // The target's own functions, operators and types, before its first statement.
        target_catalog::first_use(&self.app, &target, tls_for_relay.clone()).await;
        let _ = start_on_disk.await;
        let key = self.registry.register(&target.address, up.pid, up.secret);
        let mut hello = BytesMut::with_capacity(512);
        msg::auth_ok(&mut hello);
        hello.extend_from_slice(&up.startup_frames);
        msg::backend_key_data(&mut hello, key.pid, key.secret);
        msg::ready_for_query(&mut hello, up.status);
        if auth.stream.write_all(&hello).await.is_err() || auth.stream.flush().await.is_err() {
            return None;
        }
        // This session's shutdown also comes when a reload removes its user.
        let shutdown = self.app.sessions.shutdown(&ctx.id, self.shutdown.clone());
        let relay = relay::Relay::new(
            self.app.clone(),
            ctx,
            config.server.max_message_bytes,
            up.status,
            up.pid,
            up.secret,
            tls_for_relay,
        )
        .with_settings(up.search_path.as_deref(), &up.startup_frames);
        let ended = relay.run(auth.stream, up.stream, &key, shutdown).await;
        info!(end = ?ended.end, "session ended");
        Some(ended)
    }
}

fn end_reason(e: &relay::End) -> String {
    match e {
        relay::End::ClientClosed => "the client closed the connection".into(),
        relay::End::ClientTerminated => "the client terminated the session".into(),
        relay::End::UpstreamClosed => "the target closed the connection".into(),
        relay::End::Shutdown => "jitgate shut down".into(),
        relay::End::ProtocolError(m) => format!("protocol error: {m}"),
        relay::End::Io(e) => format!("i/o error: {e}"),
    }
}

/// Pass the target's SQLSTATE through, except authentication failures: those are the proxy's
/// credentials, not the user's, and must not read like the user's password was wrong.
fn leak_free_code(code: Option<&str>) -> &'static str {
    match code {
        Some("53300") => "53300",
        Some("3D000") => "3D000",
        Some("57P03") => "57P03",
        _ => "08006",
    }
}

impl FrontEnd for PgServer {
    /// A connection over the unauthenticated limits still sends its startup packet to be
    /// told 53300 (as PostgreSQL does); one over `max_connections` is told so once it has
    /// authenticated.
    fn connection(
        self: Arc<Self>,
        tcp: TcpStream,
        peer: SocketAddr,
        admission: Admission,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.accepted(tcp, peer, admission)
    }
}
