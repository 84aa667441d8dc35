//! Retention of a replica's shipped trail: `[audit] retention_days` applies to the copy in
//! the state database as it does to the local store.
//!
//! Each replica prunes its own node's rows only (under the shipping lock it holds), at most
//! once an hour and once after each (re)connection, with the local store's cutoff
//! ([`crate::audit::Audit::retention_cutoff_us`]). What goes is a prefix of the node's chain:
//! every row up to the last one before the first row newer than the cutoff. The node's
//! anchor moves to that row's seq and hash in the same transaction, so `audit verify` walks
//! the rest from the new anchor and still notices a row missing at either end. Session
//! records of the node that ended before the cutoff go with them.

use tokio_postgres::Client;

/// Prune node `node`'s shipped rows older than `cutoff_us`; returns how many rows went.
pub(super) async fn prune_shipped(
    client: &mut Client,
    node: &str,
    cutoff_us: u64,
) -> Result<u64, tokio_postgres::Error> {
    let cutoff = i64::try_from(cutoff_us).unwrap_or(i64::MAX);
    let tx = client.transaction().await?;
    // The end of the old prefix: the row before the first new one, or the last row if all
    // are old.
    let end = tx
        .query_opt(
            "SELECT seq, hash FROM jitgate_audit_events WHERE node = $1 AND seq = coalesce(
                 (SELECT min(seq) - 1 FROM jitgate_audit_events WHERE node = $1 AND at_us >= $2),
                 (SELECT max(seq) FROM jitgate_audit_events WHERE node = $1))",
            &[&node, &cutoff],
        )
        .await?;
    let Some(end) = end else {
        return Ok(0);
    };
    let (seq, hash): (i64, Vec<u8>) = (end.get(0), end.get(1));
    let moved = tx
        .execute(
            "UPDATE jitgate_audit_heads SET anchor_seq = $2, anchor_hash = $3
             WHERE node = $1 AND anchor_seq < $2",
            &[&node, &seq, &hash],
        )
        .await?;
    if moved == 0 {
        return Ok(0);
    }
    let gone = tx
        .execute(
            "DELETE FROM jitgate_audit_events WHERE node = $1 AND seq <= $2",
            &[&node, &seq],
        )
        .await?;
    tx.execute(
        "DELETE FROM jitgate_audit_sessions WHERE node = $1 AND ended_at < $2",
        &[&node, &(cutoff_us as f64 / 1e6)],
    )
    .await?;
    tx.commit().await?;
    Ok(gone)
}
