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
//! - `shipping`: each replica's audit trail copied to the state database, in order.
//! - `history`: where the API and CLI read audit history from (the local store, or in
//!   cluster mode every replica's shipped trail, `history_pg`).

pub mod connect;
pub mod history;
mod history_pg;
pub mod schema;
pub mod shipping;

pub use connect::Connector;
pub use history::{History, HistoryError};
pub use history_pg::ClusterHistory;

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
