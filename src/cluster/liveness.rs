//! Node liveness: each replica heartbeats its row in `jitgate_nodes`; a replica silent for
//! `node_timeout` is lost, and any other replica cancels its pending requests with the reason
//! "node NAME lost" (recorded in the trail of the replica that does it).
//!
//! Invariants: times are the state database's clock (`clock_timestamp()`), never a replica's,
//! so clock skew between replicas cannot make one look lost; a request is cancelled by one
//! `UPDATE … WHERE state = 'pending'`, so when several replicas sweep at once each request is
//! cancelled (and recorded) once; a replica ends only its own pending requests when it
//! starts (leftovers of its previous run) and when it stops cleanly; a replica judges others
//! only after its own heartbeats have succeeded for `node_timeout` (after an outage of the
//! state database, everyone's heartbeat is old until they have had time to beat again).

use std::sync::Arc;
use std::time::Duration;

use super::shared::{OPERATION_TIMEOUT, Shared, bounded};
use super::{StateError, store};

/// Write this replica's heartbeat.
async fn beat(shared: &Shared) -> Result<(), StateError> {
    let mut c = shared.pool.get().await?;
    c.client()?
        .execute(
            "INSERT INTO jitgate_nodes (node) VALUES ($1) ON CONFLICT (node) DO UPDATE \
             SET heartbeat_at = clock_timestamp(), stopped_at = NULL",
            &[&shared.node],
        )
        .await?;
    Ok(())
}

/// Cancel `node`'s pending requests for `reason`, each recorded in this replica's trail.
async fn cancel_node(shared: &Shared, node: &str, reason: &str) -> Result<usize, StateError> {
    let mut c = shared.pool.get().await?;
    let cancelled = store::cancel_node(c.client()?, node, reason).await?;
    let n = cancelled.len();
    if let Some(approvals) = shared.approvals.upgrade() {
        for entry in cancelled {
            approvals.record_foreign_close(entry);
        }
    }
    Ok(n)
}

/// At start, before serving: the heartbeat row, and the end of what a previous run of this
/// node left pending.
pub(super) async fn register(shared: &Shared) -> Result<(), StateError> {
    bounded(OPERATION_TIMEOUT, beat(shared)).await?;
    let reason = format!("node {} restarted", shared.node);
    let n = bounded(
        OPERATION_TIMEOUT,
        cancel_node(shared, &shared.node, &reason),
    )
    .await?;
    if n > 0 {
        tracing::info!("cancelled {n} requests this node left pending in its previous run");
    }
    Ok(())
}

/// The nodes silent for longer than `timeout`.
async fn lost_nodes(shared: &Shared, timeout: Duration) -> Result<Vec<String>, StateError> {
    let mut c = shared.pool.get().await?;
    let millis = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    let rows = c
        .client()?
        .query(
            "SELECT node FROM jitgate_nodes WHERE node <> $1 AND stopped_at IS NULL \
             AND heartbeat_at < clock_timestamp() - $2 * interval '1 millisecond' \
             AND EXISTS (SELECT 1 FROM jitgate_requests r \
                         WHERE r.node = jitgate_nodes.node AND r.state = 'pending')",
            &[&shared.node, &(millis as f64)],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<_, String>(0).ok())
        .collect())
}

/// Heartbeat and sweep every `interval`, for the life of the process.
pub(super) async fn run(shared: Arc<Shared>, interval: Duration, timeout: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Since when this replica's heartbeats have all succeeded. After an outage of the state
    // database every heartbeat is old, the others' too: judge them only once they have had
    // node_timeout to beat again.
    let mut beating_since: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        if let Err(e) = bounded(OPERATION_TIMEOUT, beat(&shared)).await {
            tracing::debug!(error = %e, "heartbeat failed");
            beating_since = None;
            continue;
        }
        let since = *beating_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() < timeout {
            continue;
        }
        let lost = match bounded(OPERATION_TIMEOUT, lost_nodes(&shared, timeout)).await {
            Ok(lost) => lost,
            Err(e) => {
                tracing::debug!(error = %e, "looking for lost nodes failed");
                continue;
            }
        };
        for node in lost {
            let reason = format!("node {node} lost");
            match bounded(OPERATION_TIMEOUT, cancel_node(&shared, &node, &reason)).await {
                Ok(n) if n > 0 => {
                    tracing::warn!("node {node} lost: cancelled its {n} pending requests")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cancelling the requests of lost node {node} failed")
                }
            }
        }
    }
}

/// A clean stop: this node's pending requests end with `reason`, and its row says stopped.
pub(super) async fn stop(shared: &Shared, reason: &str) -> Result<usize, StateError> {
    let n = bounded(OPERATION_TIMEOUT, cancel_node(shared, &shared.node, reason)).await?;
    bounded(OPERATION_TIMEOUT, async {
        let mut c = shared.pool.get().await?;
        c.client()?
            .execute(
                "UPDATE jitgate_nodes SET stopped_at = clock_timestamp() WHERE node = $1",
                &[&shared.node],
            )
            .await?;
        Ok(())
    })
    .await?;
    Ok(n)
}
