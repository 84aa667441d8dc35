//! The notifications' connection: LISTEN on [`super::schema::CHANNEL`], resync, then apply
//! every change the store announces to this replica's mirror; reconnect with backoff.
//!
//! Invariants: the mirror is marked current only after LISTEN is in place AND a full resync
//! has been applied (so no change can fall between the two); it is marked not current the
//! moment the connection ends or a notification cannot be queued, and stays so until the
//! next resync. Notifications wait in a bounded queue; a full queue ends the connection
//! (and forces a resync) rather than dropping one.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::AsyncMessage;

use super::shared::{OPERATION_TIMEOUT, Shared, bounded};
use super::{StateError, schema, store};
use crate::approval::{SharedState, State};

/// Notifications waiting to be applied, at most.
const QUEUE: usize = 4096;
/// Notifications applied together, at most.
const BATCH: usize = 256;
/// How far back a resync mirrors decided requests.
const RECENT: Duration = Duration::from_secs(24 * 3600);
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Run for the life of the process; `synced` hears of the first resync.
pub(super) async fn run(shared: Arc<Shared>, mut synced: Option<oneshot::Sender<()>>) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut became_current = false;
        if let Err(e) = session(&shared, &mut synced, &mut became_current).await {
            tracing::warn!(error = %e, "state store notifications lost; cached grants count for nothing until resynced");
        }
        shared.set_current(false);
        if became_current {
            backoff = MIN_BACKOFF;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn session(
    shared: &Arc<Shared>,
    synced: &mut Option<oneshot::Sender<()>>,
    became_current: &mut bool,
) -> Result<(), StateError> {
    let (client, mut connection) = shared.pool.connector().connect().await?;
    let (queue, mut notifications) = mpsc::channel::<String>(QUEUE);
    // Drives the connection (query answers and notifications alike); dropping `queue` when
    // it ends closes `notifications`.
    let driver = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if queue.try_send(n.payload().to_string()).is_err() {
                        tracing::warn!("state store notifications overflowed: resyncing");
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "state store notifications connection failed");
                    return;
                }
            }
        }
    });
    let result = async {
        bounded(OPERATION_TIMEOUT, async {
            client
                .batch_execute(&format!("LISTEN {}", schema::CHANNEL))
                .await?;
            resync(shared, &client).await
        })
        .await?;
        shared.set_current(true);
        *became_current = true;
        if let Some(tx) = synced.take() {
            let _ = tx.send(());
        }
        let mut batch = Vec::with_capacity(BATCH);
        while notifications.recv_many(&mut batch, BATCH).await > 0 {
            bounded(OPERATION_TIMEOUT, apply(shared, &client, &batch)).await?;
            batch.clear();
        }
        Err(StateError::Unreachable("connection closed".into()))
    }
    .await;
    driver.abort();
    result
}

/// Mirror what the store holds now; push this replica's own closes the store missed while it
/// could not be reached.
async fn resync(shared: &Shared, client: &tokio_postgres::Client) -> Result<(), StateError> {
    let Some(approvals) = shared.approvals.upgrade() else {
        return Ok(());
    };
    let snapshot = store::snapshot(client, RECENT).await?;
    approvals.replace_grants(snapshot.iter().filter_map(|(_, g)| g.clone()).collect());
    for (entry, grant) in snapshot {
        let ours = entry.view.node.as_deref() == Some(shared.node());
        if ours && entry.view.state == State::Pending {
            let local = approvals.get(&entry.view.id);
            if let Some(local) = local.filter(|l| l.state != State::Pending) {
                let reason = local.reason.unwrap_or_default();
                store::close(client, &local.id, local.state, &reason).await?;
                continue;
            }
        }
        approvals.apply(entry, grant);
    }
    Ok(())
}

/// Notifications as they came: `r:<request>` or `g:<grant>`. The requests are read in one
/// query (a burst of holds costs one round trip, not one each), then the grants.
async fn apply(
    shared: &Shared,
    client: &tokio_postgres::Client,
    payloads: &[String],
) -> Result<(), StateError> {
    let Some(approvals) = shared.approvals.upgrade() else {
        return Ok(());
    };
    let mut requests: Vec<String> = payloads
        .iter()
        .filter_map(|p| p.strip_prefix("r:").map(str::to_string))
        .collect();
    requests.sort();
    requests.dedup();
    if !requests.is_empty() {
        for (entry, grant) in store::load_many(client, &requests).await? {
            approvals.apply(entry, grant);
        }
    }
    for id in payloads.iter().filter_map(|p| p.strip_prefix("g:")) {
        match store::grant_request(client, id).await? {
            Some((request, true)) => {
                if let Some((_, Some(grant))) = store::load(client, &request).await? {
                    approvals.put_grant(grant);
                }
            }
            _ => {
                approvals.drop_grant(id);
            }
        }
    }
    Ok(())
}
