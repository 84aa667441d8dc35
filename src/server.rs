//! `jitgate serve`: bind every listener, run until SIGTERM/SIGINT, then drain.
//!
//! Shutdown: stop accepting; sessions that are idle outside a transaction close at once with
//! FATAL 57P01; busy ones may finish until `drain_timeout`, then get FATAL 57P01 too; held
//! requests are cancelled.
//!
//! Operations: SIGHUP reloads the config file ([`crate::reload`]); the service manager hears
//! `READY=1` once every listener is bound and `STOPPING=1` when shutdown begins
//! ([`crate::notify`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::app::AppState;
use crate::config::Config;
use crate::lifecycle::{
    FrontEnd, Listener, Phase, Protocol, SessionThreads, Shutdown, ShutdownSignal,
};

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot bind {0}: {1}")]
    Bind(std::net::SocketAddr, std::io::Error),
    #[error("cannot create data_dir {0}: {1}")]
    DataDir(String, std::io::Error),
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    HostKey(#[from] crate::ssh::HostKeyError),
    #[error("audit trail: {0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("cluster: {0}")]
    Cluster(#[from] crate::cluster::StateError),
}

async fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Bind(addr, e))
}

/// Runs every listener `config` names; `config_path` is the file SIGHUP re-reads.
pub async fn serve(config: Config, config_path: std::path::PathBuf) -> Result<(), ServeError> {
    std::fs::create_dir_all(&config.server.data_dir)
        .map_err(|e| ServeError::DataDir(config.server.data_dir.display().to_string(), e))?;
    let (tls, certs) = match &config.server.tls {
        Some(t) => {
            let (tls, certs) = crate::tls::reloadable_server_config(&t.cert, &t.key)?;
            (Some(tls), Some(certs))
        }
        None => (None, None),
    };
    let drain_timeout = config.server.drain_timeout;
    let pg_listen = config.server.postgres_listen;
    let api_listen = config.server.api_listen;
    let ssh_listen = config.server.ssh_listen;
    let ssh_host_key = match ssh_listen {
        Some(_) => Some(crate::ssh::load_or_create_host_key(
            &config.server.ssh_host_key,
        )?),
        None => None,
    };

    warn_downgradable_targets(&config);
    let audit = open_audit(&config)?;
    // What the clean-up of a crash recorded is on disk before anything is served.
    audit.flush().await?;
    let limits = config.server.limits();
    let cluster = config.cluster.clone();
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let history = audit_history(&config, &audit)?;
    let app = AppState::new(Arc::new(config), audit.clone(), history, metrics);
    // With [cluster], requests and grants are shared through the state database from the
    // first session on.
    let membership = match &cluster {
        Some(c) => Some(crate::cluster::start(c, &app.approvals).await?),
        None => None,
    };
    // Once the schema is migrated (by `start`): this node's trail ships from now on.
    let shipping = match &cluster {
        Some(c) => Some(crate::cluster::shipping::spawn(
            audit.clone(),
            crate::cluster::Connector::new(c)?,
            c.node.clone(),
            app.metrics.cluster_shipping_lag.clone(),
        )),
        None => None,
    };
    spawn_retention(audit.clone());
    crate::webhook::spawn(app.clone());
    let shutdown = ShutdownSignal::new();
    let ready = Arc::new(AtomicBool::new(false));

    let api_listener = bind(api_listen).await?;
    let mut listeners = Vec::new();
    // PostgreSQL sessions run on a thread per core, each session wholly on one (see
    // `lifecycle::threads`); SSH sessions, the API and the background work on this runtime.
    let pg_threads = match pg_listen {
        Some(_) => Some(Arc::new(SessionThreads::per_core("jitgate-pg")?)),
        None => None,
    };
    if let (Some(addr), Some(threads)) = (pg_listen, &pg_threads) {
        let acceptor = tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let server = crate::pg::PgServer::new(app.clone(), acceptor, shutdown.subscribe());
        let listener = Listener::new(Protocol::Postgres, limits, app.metrics.connections.clone())
            .with_threads(threads.clone());
        listeners.push(listen(addr, listener, server, &shutdown).await?);
        info!("postgres sessions run on {} threads", threads.len());
    }
    if let (Some(addr), Some(key)) = (ssh_listen, ssh_host_key) {
        let server = crate::ssh::SshServer::new(app.clone(), key, shutdown.subscribe());
        let listener = Listener::new(Protocol::Ssh, limits, app.metrics.connections.clone());
        listeners.push(listen(addr, listener, server, &shutdown).await?);
    }

    let api = crate::api::Api {
        app: app.clone(),
        ready: ready.clone(),
        console: Default::default(),
    };
    let mut api_shutdown = shutdown.subscribe();
    let api_task = tokio::spawn(async move {
        let r = axum::serve(api_listener, crate::api::router(api))
            .with_graceful_shutdown(async move {
                api_shutdown.reached(Phase::Force).await;
            })
            .await;
        if let Err(e) = r {
            warn!("API server stopped: {e}");
        }
    });
    info!("API listening on {api_listen}");
    ready.store(true, Ordering::Release);

    // --- operations: keep these last, after every listener is bound ---------------------
    crate::reload::spawn(crate::reload::Reloader {
        app: app.clone(),
        path: config_path,
        certs,
    })?;
    crate::notify::notify_ready();
    // -------------------------------------------------------------------------------------

    wait_for_signal().await;
    crate::notify::notify_stopping();
    info!("shutting down: no new connections; draining sessions for up to {drain_timeout:?}");
    shutdown.advance(Phase::Draining);
    let cancelled = app.approvals.cancel_all("jitgate is shutting down");
    if cancelled > 0 {
        info!("cancelled {cancelled} pending requests");
    }
    if let Some(m) = &membership {
        m.stop("jitgate is shutting down").await;
    }
    let drained = || futures_util::future::join_all(listeners.iter().map(|(l, _)| l.drained()));
    if tokio::time::timeout(drain_timeout, drained())
        .await
        .is_err()
    {
        let busy: usize = listeners.iter().map(|(l, _)| l.active()).sum();
        info!("drain_timeout reached with {busy} sessions open: closing them");
    }
    shutdown.advance(Phase::Force);
    let _ = tokio::time::timeout(Duration::from_secs(3), drained()).await;
    for (_, accepting) in &listeners {
        accepting.abort();
    }
    if let Some(threads) = pg_threads {
        // Every session has ended or was given up on above.
        let _ = tokio::task::spawn_blocking(move || threads.stop(Duration::from_secs(3))).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(3), api_task).await;
    match tokio::time::timeout(Duration::from_secs(10), audit.flush()).await {
        Ok(Ok(n)) => {
            info!("audit trail flushed ({n} events in the chain)");
            if let Some(s) = &shipping
                && !s.wait_shipped(n, Duration::from_secs(5)).await
            {
                warn!(
                    "audit trail: events after {} not shipped yet; they ship when this node starts again",
                    s.shipped()
                );
            }
        }
        Ok(Err(e)) => warn!("audit trail: final flush failed: {e}"),
        Err(_) => warn!("audit trail: final flush timed out"),
    }
    info!("stopped");
    Ok(())
}

/// Bind `addr` and accept connections for `server` on a task of their own.
async fn listen<F: FrontEnd>(
    addr: std::net::SocketAddr,
    listener: Listener,
    server: Arc<F>,
    shutdown: &ShutdownSignal,
) -> Result<(Arc<Listener>, tokio::task::JoinHandle<()>), ServeError> {
    let socket = bind(addr).await?;
    let protocol = listener.protocol();
    let listener = Arc::new(listener);
    let accepting = {
        let (listener, shutdown): (_, Shutdown) = (listener.clone(), shutdown.subscribe());
        tokio::spawn(async move { listener.serve(socket, server, shutdown).await })
    };
    info!("{protocol} listening on {addr}");
    Ok((listener, accepting))
}

/// `tls = "prefer"` falls back to plain text when the server (or a machine in the middle)
/// answers no: say so at start for every such target.
fn warn_downgradable_targets(config: &Config) {
    for t in config.targets.values() {
        if t.kind == crate::config::TargetKind::Postgres
            && t.tls == crate::config::UpstreamTls::Prefer
        {
            warn!(
                target = %t.name,
                "tls = \"prefer\" can be downgraded to plain text by anyone on the path; \
                 use tls = \"require\" with ca_file"
            );
        }
    }
}

/// Open the store, close what a crash left open (pending requests become `cancelled`,
/// sessions without an end get one), and start the writer.
fn open_audit(config: &Config) -> Result<crate::audit::Audit, ServeError> {
    let audit = crate::audit::Audit::open(
        &config.server.data_dir.join("audit"),
        crate::audit::AuditOptions::from(&config.audit),
    )?;
    let requests = audit.close_stale_requests();
    let sessions = audit.close_stale_sessions();
    if requests + sessions > 0 {
        info!(
            "audit trail: closed {requests} requests and {sessions} sessions left open by the last run"
        );
    }
    if !config.audit.enabled {
        warn!("[audit] enabled = false: NOTHING is recorded in the audit trail (benchmarks only)");
    }
    audit.start();
    Ok(audit)
}

/// Where the API reads audit history: this store, or in cluster mode every replica's trail
/// shipped to the state database.
fn audit_history(
    config: &Config,
    audit: &crate::audit::Audit,
) -> Result<crate::cluster::History, ServeError> {
    Ok(match &config.cluster {
        None => crate::cluster::History::Local(audit.clone()),
        Some(c) => crate::cluster::History::Cluster(Arc::new(crate::cluster::ClusterHistory::new(
            crate::cluster::Connector::new(c)?,
        ))),
    })
}

/// Prune sessions older than `retention_days`, at start and then hourly.
fn spawn_retention(audit: crate::audit::Audit) {
    if audit.options().retention_days.is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let a = audit.clone();
            let now = crate::approval::unix_secs(std::time::SystemTime::now());
            match tokio::task::spawn_blocking(move || a.prune(now)).await {
                Ok(0) | Err(_) => {}
                Ok(n) => info!("audit trail: pruned {n} sessions past retention_days"),
            }
        }
    });
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            warn!("cannot install signal handlers; running until killed");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}
