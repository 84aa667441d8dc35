//! Shipping this replica's audit trail to the state database, so that any replica serves any
//! session's history ([`super::history`]).
//!
//! Each replica keeps its own sled trail and hash chain exactly as a single jitgate does: an
//! event is on local disk before its action, whatever the state database is doing. One task
//! per replica ([`spawn`]) copies the committed events, in chain order, into
//! `jitgate_audit_events`.
//!
//! Invariants:
//! - **Never on the hot path.** The shipper only reads the local store (committed events,
//!   [`crate::audit::Audit::stored_after`]) from a blocking thread and talks to PostgreSQL on
//!   its own connection; nothing a session does waits for it, and a slow or absent state
//!   database only grows the lag (`jitgate_cluster_shipping_lag_events`).
//! - **Nothing lost, nothing twice.** Events are shipped in order, in batches of at most
//!   [`BATCH_EVENTS`] events or [`BATCH_BYTES`] of records, each batch in ONE transaction with
//!   the node's shipped head (`jitgate_audit_heads`). After a restart or an outage the shipper
//!   resumes after that head, reading the local store, so what was recorded while the database
//!   was down ships when it is back. A batch whose commit was lost in transit is shipped
//!   again and its rows are skipped (`ON CONFLICT (node, seq) DO NOTHING`): at least once,
//!   deduplicated by `(node, seq)`. Local retention never drops an event that has not shipped
//!   ([`crate::audit::Audit::keep_after`], raised as the head moves): an outage longer than
//!   `retention_days` keeps its events on disk until they are in PostgreSQL.
//! - **What ships verifies.** A row holds the record exactly as hashed, its hash and the
//!   previous hash; the other columns (session, kind, time) are for queries and are checked
//!   against the record by `audit verify` ([`crate::audit::ShippedChain`]). The head row
//!   also keeps the node's anchor (where its shipped chain starts: 0 unless its store was
//!   pruned before it joined a cluster), so removing rows at either end shows.
//! - **One shipper per node name.** The shipper holds a session advisory lock on the node's
//!   name while it ships; a second process configured with the same `node` waits and says so.
//!   A local store that does not continue the shipped chain (its event at the shipped head has
//!   another hash, or it ends before that head: a wiped `data_dir` under an old node name) is
//!   not shipped: mixing two chains under one name would make both unverifiable.
//! - Session records (`jitgate_audit_sessions`) are derived from the shipped `session_start`
//!   and `session_end` events in the same transaction, as the local store derives its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio_postgres::Client;
use tracing::{info, warn};

use super::Connector;
use crate::audit::{Audit, StoredEvent};

/// Most events in one shipped batch.
pub const BATCH_EVENTS: usize = 2_000;
/// A batch closes once its records pass this many bytes.
pub const BATCH_BYTES: usize = 4 << 20;
/// How often an idle shipper looks for new local events.
const POLL: Duration = Duration::from_millis(100);
/// Retry delays after an error: doubling from the first to the last.
/// How often the shipped trail is pruned (and once after each connection).
const PRUNE_EVERY: Duration = Duration::from_secs(3_600);
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_LAST: Duration = Duration::from_secs(5);

/// Version 2 of the state schema: the shipped audit trail.
pub const SCHEMA_V2: &str = r#"
CREATE TABLE jitgate_audit_events (
    node text NOT NULL,
    seq bigint NOT NULL,
    session text NOT NULL,
    kind text NOT NULL,
    at_us bigint NOT NULL,
    hash bytea NOT NULL,
    prev_hash bytea NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE INDEX jitgate_audit_events_session ON jitgate_audit_events (session, node, seq);
CREATE INDEX jitgate_audit_events_at ON jitgate_audit_events (at_us, node, seq);

CREATE TABLE jitgate_audit_heads (
    node text PRIMARY KEY,
    anchor_seq bigint NOT NULL,
    anchor_hash bytea NOT NULL,
    head_seq bigint NOT NULL,
    head_hash bytea NOT NULL,
    shipped_at timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE TABLE jitgate_audit_sessions (
    id text PRIMARY KEY,
    node text NOT NULL,
    protocol text NOT NULL,
    user_name text NOT NULL,
    target text NOT NULL,
    client text NOT NULL,
    application text,
    started_at double precision NOT NULL,
    ended_at double precision,
    end_reason text,
    bytes_in bigint NOT NULL DEFAULT 0,
    bytes_out bigint NOT NULL DEFAULT 0
);
CREATE INDEX jitgate_audit_sessions_started ON jitgate_audit_sessions (started_at, id);
"#;

/// What the shipper has done, for the metric and `/healthz`.
#[derive(Default)]
pub struct ShippingStatus {
    /// The last seq known to be in the state database (0 until the first contact).
    shipped: AtomicU64,
    /// The local store's last committed seq when last looked at.
    local: AtomicU64,
}

impl ShippingStatus {
    /// Local events not yet known to be in the state database.
    pub fn lag_events(&self) -> u64 {
        self.local
            .load(Ordering::Relaxed)
            .saturating_sub(self.shipped.load(Ordering::Relaxed))
    }

    /// The last seq known to be shipped.
    pub fn shipped(&self) -> u64 {
        self.shipped.load(Ordering::Relaxed)
    }

    /// Wait until event `seq` has shipped, for at most `timeout` (at shutdown: what a replica
    /// that never comes back recorded last still reaches the others). Whether it did.
    pub async fn wait_shipped(&self, seq: u64, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.shipped() < seq {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL / 2).await;
        }
        true
    }
}

#[derive(Debug, thiserror::Error)]
enum ShipError {
    #[error("{0}")]
    State(#[from] super::StateError),
    #[error("the state database: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("the local audit store: {0}")]
    Local(#[from] crate::audit::AuditError),
    #[error("another process is shipping as node {0:?} (is `node` unique per replica?)")]
    NodeTaken(String),
    #[error(
        "the local audit store does not continue the chain shipped as node {node:?}: {why}; \
         not shipping (give this replica a new node name, or remove that node's rows)"
    )]
    Diverged { node: String, why: String },
    #[error("reading the local store stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Start shipping `audit` as `node`; runs until the process ends. `lag` is set to the
/// shipping lag in events as it changes.
pub fn spawn(
    audit: Audit,
    connector: Connector,
    node: String,
    lag: prometheus::IntGauge,
) -> Arc<ShippingStatus> {
    let status = Arc::new(ShippingStatus::default());
    // Nothing is pruned locally before it is known to be in the state database.
    audit.keep_after(0);
    let shipper = Shipper {
        audit,
        connector,
        node,
        status: status.clone(),
        lag,
    };
    tokio::spawn(shipper.run());
    status
}

struct Shipper {
    audit: Audit,
    connector: Connector,
    node: String,
    status: Arc<ShippingStatus>,
    lag: prometheus::IntGauge,
}

impl Shipper {
    async fn run(self) {
        let mut delay = RETRY_FIRST;
        let mut last_error = String::new();
        loop {
            let Err(e) = self.ship_while_connected(&mut delay).await;
            let why = e.to_string();
            if why != last_error {
                warn!(node = %self.node, "audit shipping paused: {why}; retrying");
                last_error = why;
            }
            let long = matches!(e, ShipError::Diverged { .. } | ShipError::NodeTaken(_));
            let until = tokio::time::Instant::now() + if long { RETRY_LAST * 6 } else { delay };
            // The lag keeps counting what is recorded meanwhile.
            loop {
                self.report();
                let now = tokio::time::Instant::now();
                if now >= until {
                    break;
                }
                tokio::time::sleep((until - now).min(POLL * 5)).await;
            }
            delay = (delay * 2).min(RETRY_LAST);
        }
    }

    /// Events up to `seq` are in the state database: the lag counts from there, and local
    /// retention may drop them.
    fn mark_shipped(&self, seq: u64) {
        self.status.shipped.store(seq, Ordering::Relaxed);
        self.audit.keep_after(seq);
    }

    /// Look at the local head and publish the lag.
    fn report(&self) {
        if let Ok(head) = self.audit.head_seq() {
            self.status.local.store(head, Ordering::Relaxed);
        }
        self.lag
            .set(i64::try_from(self.status.lag_events()).unwrap_or(i64::MAX));
    }

    /// Connect, resume after the shipped head and ship until something fails.
    async fn ship_while_connected(
        &self,
        delay: &mut Duration,
    ) -> Result<std::convert::Infallible, ShipError> {
        let mut client = self.connector.client().await?;
        let locked: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext('jitgate audit shipping'), hashtext($1))",
                &[&self.node],
            )
            .await?
            .get(0);
        if !locked {
            return Err(ShipError::NodeTaken(self.node.clone()));
        }
        let mut shipped = self.resume(&client).await?;
        info!(node = %self.node, shipped, "audit shipping: connected, resuming after event {shipped}");
        *delay = RETRY_FIRST;
        let mut pruned_at: Option<std::time::Instant> = None;
        loop {
            self.report();
            if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                pruned_at = Some(std::time::Instant::now());
                self.prune_shipped(&mut client).await;
            }
            if self.status.local.load(Ordering::Relaxed) <= shipped {
                tokio::time::sleep(POLL).await;
                continue;
            }
            let audit = self.audit.clone();
            let batch = tokio::task::spawn_blocking(move || {
                audit.stored_after(shipped, BATCH_EVENTS, BATCH_BYTES)
            })
            .await??;
            let Some(last) = batch.last() else {
                tokio::time::sleep(POLL).await;
                continue;
            };
            let last = last.seq;
            if let Some(first) = batch.first()
                && first.seq != shipped + 1
            {
                warn!(
                    node = %self.node,
                    "audit shipping: events {} to {} were pruned locally before they shipped",
                    shipped + 1,
                    first.seq - 1
                );
            }
            ship(&mut client, &self.node, &batch).await?;
            shipped = last;
            self.mark_shipped(shipped);
        }
    }

    /// Apply `retention_days` to this node's shipped rows ([`super::retention`]); a failure
    /// is logged and tried again at the next round, shipping goes on.
    async fn prune_shipped(&self, client: &mut Client) {
        let now = crate::approval::unix_secs(std::time::SystemTime::now());
        let Some(cutoff_us) = self.audit.retention_cutoff_us(now) else {
            return;
        };
        match super::retention::prune_shipped(client, &self.node, cutoff_us).await {
            Ok(0) => {}
            Ok(n) => info!(node = %self.node, "audit retention: {n} shipped events removed"),
            Err(e) => warn!(node = %self.node, "audit retention of the shipped trail failed: {e}"),
        }
    }

    /// The shipped head of this node, after checking the local store continues it.
    async fn resume(&self, client: &Client) -> Result<u64, ShipError> {
        let row = client
            .query_opt(
                "SELECT head_seq, head_hash FROM jitgate_audit_heads WHERE node = $1",
                &[&self.node],
            )
            .await?;
        let Some(row) = row else {
            self.status.shipped.store(0, Ordering::Relaxed);
            return Ok(0);
        };
        let head_seq = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        let head_hash: Vec<u8> = row.get(1);
        let audit = self.audit.clone();
        let (local_head, at_head) = tokio::task::spawn_blocking(move || {
            let local_head = audit.head_seq()?;
            let at_head = audit.stored_after(head_seq.saturating_sub(1), 1, 1)?;
            Ok::<_, crate::audit::AuditError>((local_head, at_head))
        })
        .await??;
        let diverged = |why: String| ShipError::Diverged {
            node: self.node.clone(),
            why,
        };
        if local_head < head_seq {
            return Err(diverged(format!(
                "it ends at event {local_head} but events up to {head_seq} were shipped"
            )));
        }
        if let Some(e) = at_head.first()
            && e.seq == head_seq
            && e.hash[..] != head_hash[..]
        {
            return Err(diverged(format!(
                "its event {head_seq} has another hash than the one shipped"
            )));
        }
        self.mark_shipped(head_seq);
        Ok(head_seq)
    }
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Ship one batch (in chain order, non-empty) in one transaction.
async fn ship(client: &mut Client, node: &str, batch: &[StoredEvent]) -> Result<(), ShipError> {
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
        return Ok(());
    };
    let seqs: Vec<i64> = batch.iter().map(|e| i64_of(e.seq)).collect();
    let sessions: Vec<&str> = batch.iter().map(|e| e.session.as_str()).collect();
    let kinds: Vec<&str> = batch.iter().map(|e| e.kind.as_str()).collect();
    let times: Vec<i64> = batch.iter().map(|e| i64_of(e.at_us)).collect();
    let hashes: Vec<&[u8]> = batch.iter().map(|e| &e.hash[..]).collect();
    let prevs: Vec<&[u8]> = batch.iter().map(|e| &e.prev_hash[..]).collect();
    let records: Vec<&[u8]> = batch.iter().map(|e| &e.record[..]).collect();

    let tx = client.transaction().await?;
    tx.execute(
        "INSERT INTO jitgate_audit_events
             (node, seq, session, kind, at_us, hash, prev_hash, record)
         SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[],
                                  $6::bytea[], $7::bytea[], $8::bytea[])
         ON CONFLICT (node, seq) DO NOTHING",
        &[
            &node, &seqs, &sessions, &kinds, &times, &hashes, &prevs, &records,
        ],
    )
    .await?;
    for e in batch {
        match e.kind.as_str() {
            "session_start" => session_start(&tx, node, e).await?,
            "session_end" => session_end(&tx, node, e).await?,
            _ => {}
        }
    }
    tx.execute(
        "INSERT INTO jitgate_audit_heads (node, anchor_seq, anchor_hash, head_seq, head_hash)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (node) DO UPDATE
             SET head_seq = EXCLUDED.head_seq, head_hash = EXCLUDED.head_hash,
                 shipped_at = clock_timestamp()
             WHERE jitgate_audit_heads.head_seq < EXCLUDED.head_seq",
        &[
            &node,
            &i64_of(first.seq - 1),
            &&first.prev_hash[..],
            &i64_of(last.seq),
            &&last.hash[..],
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The fields of an event's JSON (empty when unreadable: the columns then keep defaults).
fn fields(e: &StoredEvent) -> serde_json::Map<String, serde_json::Value> {
    match serde_json::from_slice(e.json()) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    }
}

fn text<'a>(f: &'a serde_json::Map<String, serde_json::Value>, key: &str) -> &'a str {
    f.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

fn count(f: &serde_json::Map<String, serde_json::Value>, key: &str) -> i64 {
    i64_of(f.get(key).and_then(|v| v.as_u64()).unwrap_or(0))
}

async fn session_start(
    tx: &tokio_postgres::Transaction<'_>,
    node: &str,
    e: &StoredEvent,
) -> Result<(), tokio_postgres::Error> {
    let f = fields(e);
    let application = f.get("application").and_then(|v| v.as_str());
    tx.execute(
        "INSERT INTO jitgate_audit_sessions
             (id, node, protocol, user_name, target, client, application, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (id) DO NOTHING",
        &[
            &e.session,
            &node,
            &text(&f, "protocol"),
            &text(&f, "user"),
            &text(&f, "target"),
            &text(&f, "client"),
            &application,
            &(e.at_us as f64 / 1e6),
        ],
    )
    .await
    .map(|_| ())
}

/// A session's end; a session whose start was not shipped (pruned first) gets a record with
/// what the end says, as the local store does.
async fn session_end(
    tx: &tokio_postgres::Transaction<'_>,
    node: &str,
    e: &StoredEvent,
) -> Result<(), tokio_postgres::Error> {
    let f = fields(e);
    let at = e.at_us as f64 / 1e6;
    tx.execute(
        "INSERT INTO jitgate_audit_sessions AS s
             (id, node, protocol, user_name, target, client, started_at, ended_at, end_reason,
              bytes_in, bytes_out)
         VALUES ($1, $2, '', '', '', '', $3, $3, $4, $5, $6)
         ON CONFLICT (id) DO UPDATE
             SET ended_at = EXCLUDED.ended_at, end_reason = EXCLUDED.end_reason,
                 bytes_in = greatest(s.bytes_in, EXCLUDED.bytes_in),
                 bytes_out = greatest(s.bytes_out, EXCLUDED.bytes_out)",
        &[
            &e.session,
            &node,
            &at,
            &text(&f, "reason"),
            &count(&f, "bytes_in"),
            &count(&f, "bytes_out"),
        ],
    )
    .await
    .map(|_| ())
}
