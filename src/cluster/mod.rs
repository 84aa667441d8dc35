//! Several jitgate replicas as one: requests, approvals, grants and node liveness shared
//! through a PostgreSQL database (the `[cluster]` section; without it none of this runs and
//! jitgate keeps its state in memory).
//!
//! Invariants:
//! - The state database's schema is jitgate's own and versioned ([`schema`]): every replica
//!   migrates it on start, under one advisory lock, in one transaction.
//! - Every change of shared state sends a NOTIFY ([`schema::CHANNEL`]); replicas learn of
//!   changes from it, never by polling the hot path.
//! - Fail closed: what needs the state database (opening a request, deciding one, using a
//!   grant) is refused with an error naming the state store while it cannot be reached.
//!   Reads never touch it.
//!
//! - `connect`: connections to the state database (tokio-postgres, TLS as for targets).
//! - `schema`: the versioned migrations.
//! - `pool`: a few connections for transactions and one-off calls.
//! - `store`: the rows of requests, approvals and grants, and the atomic changes.
//! - `shared`: [`Shared`], the state store as [`crate::approval`] sees it.
//! - `listen`: LISTEN, resync and the mirror kept current by notifications.
//! - `liveness`: heartbeats, lost nodes, a clean stop.
//! - `shipping`: each replica's audit trail copied to the state database, in order.
//! - `history`: where the API and CLI read audit history from (the local store, or in
//!   cluster mode every replica's shipped trail, `history_pg`).

pub mod connect;
pub mod history;
mod history_pg;
mod listen;
mod liveness;
mod pool;
mod retention;
pub mod schema;
mod shared;
pub mod shipping;
mod store;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

pub use connect::Connector;
pub use history::{History, HistoryError};
pub use history_pg::ClusterHistory;
pub use shared::Shared;

use crate::approval::Approvals;
use crate::config::Cluster;

/// How long start-up waits for the first resync of the mirror.
const FIRST_SYNC: Duration = Duration::from_secs(15);

/// What can go wrong with the state database.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the state store (PostgreSQL) is unreachable: {0}")]
    Unreachable(String),
    #[error("the state store (PostgreSQL) failed: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("state store TLS: {0}")]
    Tls(String),
    #[error("state store schema: {0}")]
    Schema(String),
}

/// Connect to the state database of `cluster` and bring its schema up to date.
pub async fn prepare(
    cluster: &crate::config::Cluster,
) -> Result<(Connector, tokio_postgres::Client), StateError> {
    let connector = Connector::new(cluster)?;
    let mut client = connector.client().await?;
    let applied = schema::migrate(&mut client).await?;
    if !applied.is_empty() {
        tracing::info!(versions = ?applied, "state database schema migrated");
    }
    Ok((connector, client))
}

/// This replica's membership of the cluster, from [`start`] to [`Membership::stop`].
pub struct Membership {
    shared: Arc<Shared>,
}

/// Join the cluster: connect, migrate, register this node (ending what its previous run left
/// pending), share `approvals` through the state store, and wait for the first resync; then
/// heartbeat in the background. Fails if the state database cannot be reached now.
pub async fn start(
    cluster: &Cluster,
    approvals: &Arc<Approvals>,
) -> Result<Membership, StateError> {
    let (connector, client) = prepare(cluster).await?;
    let shared = Arc::new(Shared {
        node: cluster.node.clone(),
        pool: pool::Pool::new(connector, client),
        current: AtomicBool::new(false),
        approvals: Arc::downgrade(approvals),
        runtime: tokio::runtime::Handle::current(),
    });
    liveness::register(&shared).await?;
    approvals.set_shared(shared.clone());
    let (synced, first) = tokio::sync::oneshot::channel();
    tokio::spawn(listen::run(shared.clone(), Some(synced)));
    match tokio::time::timeout(FIRST_SYNC, first).await {
        Ok(Ok(())) => {}
        _ => {
            return Err(StateError::Unreachable(
                "could not listen for changes and resync".into(),
            ));
        }
    }
    tokio::spawn(liveness::run(
        shared.clone(),
        cluster.heartbeat_interval,
        cluster.node_timeout,
    ));
    tracing::info!(node = %cluster.node, "joined the cluster");
    Ok(Membership { shared })
}

impl Membership {
    /// A clean stop: this node's pending requests end with `reason` (never another's).
    pub async fn stop(&self, reason: &str) {
        match liveness::stop(&self.shared, reason).await {
            Ok(n) if n > 0 => tracing::info!("cancelled {n} pending requests in the state store"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not end this node's requests in the state store")
            }
        }
    }
}
