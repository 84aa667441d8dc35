//! Audit history read from the state database: what every replica shipped
//! ([`super::shipping`]), for [`super::history::History::Cluster`].
//!
//! Invariants:
//! - Events are rebuilt from the shipped records (the hashed bytes), never from the query
//!   columns, so a reader sees exactly what the chain covers; referenced statement texts are
//!   put back per node, in that node's chain order, as the local store does.
//! - Every read is bounded in memory by what it returns: export and verify page through the
//!   rows ([`PAGE`] at a time, keyset order) instead of loading a whole trail.
//! - The connection is made on first use and again after it breaks; no lock is held while
//!   connecting or querying.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_postgres::{Client, Row};

use super::Connector;
use super::history::{EXPORT_BATCH, HistoryError, NodeChain};
use crate::audit::{
    Broken, EventRecord, SessionFilter, SessionRecord, ShippedChain, ShippedRow, TextResolver,
    event_record,
};

/// Rows per query when paging through a trail.
const PAGE: i64 = 2_000;

/// Reads of the shipped trail, on a connection of their own.
pub struct ClusterHistory {
    connector: Connector,
    client: Mutex<Option<Arc<Client>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn u64_of(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const SESSION_COLUMNS: &str = "id, protocol, user_name, target, client, application, started_at, \
                               ended_at, end_reason, bytes_in, bytes_out";

fn session_record(r: &Row) -> SessionRecord {
    SessionRecord {
        id: r.get(0),
        protocol: r.get(1),
        user: r.get(2),
        target: r.get(3),
        client: r.get(4),
        application: r.get(5),
        started_at: r.get(6),
        ended_at: r.get(7),
        end_reason: r.get(8),
        bytes_in: u64_of(r.get(9)),
        bytes_out: u64_of(r.get(10)),
    }
}

/// A shipped event as readers get it, with the node that recorded it.
fn shipped_event(node: &str, record: &[u8], hash: &[u8]) -> Option<EventRecord> {
    let mut e = event_record(record, hash)?;
    e.fields.insert("node".into(), node.into());
    Some(e)
}

impl ClusterHistory {
    pub fn new(connector: Connector) -> ClusterHistory {
        ClusterHistory {
            connector,
            client: Mutex::new(None),
        }
    }

    async fn client(&self) -> Result<Arc<Client>, HistoryError> {
        if let Some(c) = lock(&self.client).as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let c = Arc::new(self.connector.client().await?);
        *lock(&self.client) = Some(c.clone());
        Ok(c)
    }

    pub async fn sessions(&self, f: &SessionFilter) -> Result<Vec<SessionRecord>, HistoryError> {
        let limit = f.limit.map(|n| i64::try_from(n).unwrap_or(i64::MAX));
        let since = f.since.map(|s| s as f64);
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM jitgate_audit_sessions
                     WHERE ($1::text IS NULL OR user_name = $1)
                       AND ($2::text IS NULL OR target = $2)
                       AND ($3::float8 IS NULL OR started_at >= $3 OR ended_at IS NULL
                            OR ended_at >= $3)
                     ORDER BY started_at DESC, id DESC LIMIT $4"
                ),
                &[&f.user, &f.target, &since, &limit],
            )
            .await?;
        let mut out: Vec<SessionRecord> = rows.iter().map(session_record).collect();
        out.reverse();
        Ok(out)
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRecord>, HistoryError> {
        let row = self
            .client()
            .await?
            .query_opt(
                &format!("SELECT {SESSION_COLUMNS} FROM jitgate_audit_sessions WHERE id = $1"),
                &[&id],
            )
            .await?;
        Ok(row.as_ref().map(session_record))
    }

    /// A session's events: each node's in its chain order with texts put back, merged by
    /// time (a node's own order is kept).
    pub async fn events(&self, id: &str) -> Result<Vec<EventRecord>, HistoryError> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT node, record, hash FROM jitgate_audit_events
                 WHERE session = $1 ORDER BY node, seq",
                &[&id],
            )
            .await?;
        let mut by_node: BTreeMap<String, Vec<EventRecord>> = BTreeMap::new();
        let mut texts = TextResolver::default();
        let mut current = String::new();
        for r in &rows {
            let node: String = r.get(0);
            if node != current {
                texts = TextResolver::default();
                current.clone_from(&node);
            }
            let Some(mut e) = shipped_event(&node, r.get(1), r.get(2)) else {
                continue;
            };
            texts.read(id, &mut e.fields);
            by_node.entry(node).or_default().push(e);
        }
        Ok(merge_by_time(by_node.into_values().collect()))
    }

    /// Page through every event at or after `since`, by (time, node, seq), into `tx`.
    pub async fn export(
        &self,
        since_unix_secs: u64,
        tx: mpsc::Sender<Result<Vec<EventRecord>, HistoryError>>,
    ) {
        if let Err(e) = self.export_pages(since_unix_secs, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn export_pages(
        &self,
        since_unix_secs: u64,
        tx: &mpsc::Sender<Result<Vec<EventRecord>, HistoryError>>,
    ) -> Result<(), HistoryError> {
        let client = self.client().await?;
        let mut cursor: (i64, String, i64) = (
            i64_of(since_unix_secs.saturating_mul(1_000_000)),
            String::new(),
            -1,
        );
        let mut texts: HashMap<String, TextResolver> = HashMap::new();
        let mut looked_back: HashSet<(String, String)> = HashSet::new();
        loop {
            let rows = client
                .query(
                    "SELECT at_us, node, seq, session, record, hash FROM jitgate_audit_events
                     WHERE (at_us, node, seq) > ($1, $2, $3)
                     ORDER BY at_us, node, seq LIMIT $4",
                    &[&cursor.0, &cursor.1, &cursor.2, &(EXPORT_BATCH as i64)],
                )
                .await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            cursor = (last.get(0), last.get(1), last.get(2));
            let mut batch = Vec::with_capacity(rows.len());
            for r in &rows {
                let node: String = r.get(1);
                let session: String = r.get(3);
                let Some(mut e) = shipped_event(&node, r.get(4), r.get(5)) else {
                    continue;
                };
                let resolver = texts.entry(node.clone()).or_default();
                if !resolver.read(&session, &mut e.fields)
                    && looked_back.insert((node.clone(), session.clone()))
                {
                    // Its definition came before `since`: read the session's earlier events.
                    let earlier = client
                        .query(
                            "SELECT record, hash FROM jitgate_audit_events
                             WHERE node = $1 AND session = $2 AND seq < $3 ORDER BY seq",
                            &[&node, &session, &r.get::<_, i64>(2)],
                        )
                        .await?;
                    for er in &earlier {
                        if let Some(mut before) = event_record(er.get(0), er.get(1)) {
                            resolver.read(&session, &mut before.fields);
                        }
                    }
                    resolver.read(&session, &mut e.fields);
                }
                batch.push(e);
            }
            if tx.send(Ok(batch)).await.is_err() {
                return Ok(());
            }
        }
    }

    /// Walk every node's shipped chain from its anchor to its head.
    pub async fn verify(&self) -> Result<Vec<NodeChain>, HistoryError> {
        let client = self.client().await?;
        let heads = client
            .query(
                "SELECT node, anchor_seq, anchor_hash, head_seq, head_hash
                 FROM jitgate_audit_heads ORDER BY node",
                &[],
            )
            .await?;
        // Nodes with events, found by a skip scan of the primary key.
        let with_events: Vec<String> = client
            .query(
                "WITH RECURSIVE n AS (
                     (SELECT node FROM jitgate_audit_events ORDER BY node LIMIT 1)
                     UNION ALL
                     SELECT (SELECT e.node FROM jitgate_audit_events e
                             WHERE e.node > n.node ORDER BY e.node LIMIT 1)
                     FROM n WHERE n.node IS NOT NULL
                 )
                 SELECT node FROM n WHERE node IS NOT NULL",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut out = Vec::new();
        for h in &heads {
            let node: String = h.get(0);
            let anchor = (u64_of(h.get(1)), h.get::<_, Vec<u8>>(2));
            let head = (u64_of(h.get(3)), h.get::<_, Vec<u8>>(4));
            out.push(walk_node(&client, node, anchor, head).await?);
        }
        for node in with_events {
            if !out.iter().any(|n| n.node == node) {
                out.push(NodeChain {
                    node,
                    events: 0,
                    broken: Some(Broken {
                        seq: 0,
                        reason: "its events were shipped but its head record is missing".into(),
                    }),
                });
            }
        }
        out.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(out)
    }
}

/// Walk one node's rows in seq order, a page at a time.
async fn walk_node(
    client: &Client,
    node: String,
    anchor: (u64, Vec<u8>),
    head: (u64, Vec<u8>),
) -> Result<NodeChain, HistoryError> {
    let result = |events: u64, broken: Option<Broken>| NodeChain {
        node: node.clone(),
        events,
        broken,
    };
    let mut chain = match ShippedChain::after(anchor.0, &anchor.1) {
        Ok(c) => c,
        Err(b) => return Ok(result(0, Some(b))),
    };
    let mut after = i64_of(anchor.0);
    let mut walked = 0u64;
    loop {
        let rows = client
            .query(
                "SELECT seq, at_us, session, kind, record, hash, prev_hash
                 FROM jitgate_audit_events WHERE node = $1 AND seq > $2
                 ORDER BY seq LIMIT $3",
                &[&node, &after, &PAGE],
            )
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.get(0);
        for r in &rows {
            let row = ShippedRow {
                seq: u64_of(r.get(0)),
                at_us: u64_of(r.get(1)),
                session: r.get(2),
                kind: r.get(3),
                record: r.get(4),
                hash: r.get(5),
                prev_hash: r.get(6),
            };
            if let Err(b) = chain.check(&row) {
                return Ok(result(walked, Some(b)));
            }
            walked += 1;
        }
    }
    Ok(match chain.finish(head.0, &head.1) {
        Ok(n) => result(n, None),
        Err(b) => result(walked, Some(b)),
    })
}

/// Merge lists each in its own order into one ordered by time, keeping each list's order
/// (a list's next event is taken when it is the earliest of the lists' next events).
fn merge_by_time(lists: Vec<Vec<EventRecord>>) -> Vec<EventRecord> {
    if lists.len() <= 1 {
        return lists.into_iter().next().unwrap_or_default();
    }
    let total = lists.iter().map(Vec::len).sum();
    let mut iters: Vec<std::iter::Peekable<std::vec::IntoIter<EventRecord>>> = lists
        .into_iter()
        .map(|l| l.into_iter().peekable())
        .collect();
    let mut out = Vec::with_capacity(total);
    loop {
        let next = iters
            .iter_mut()
            .enumerate()
            .filter_map(|(i, it)| it.peek().map(|e| (i, e.at)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(i, _)| i);
        let Some(i) = next else { break };
        if let Some(e) = iters[i].next() {
            out.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, at: f64, node: &str) -> EventRecord {
        let mut fields = serde_json::Map::new();
        fields.insert("node".into(), node.into());
        EventRecord {
            seq,
            at,
            session: "s1".into(),
            fields,
            hash: String::new(),
        }
    }

    #[test]
    fn merging_by_time_keeps_each_nodes_order() {
        // Node a's events 2 and 3 are out of time order (clocks): a's order is kept.
        let a = vec![ev(1, 1.0, "a"), ev(2, 3.0, "a"), ev(3, 2.5, "a")];
        let b = vec![ev(7, 2.0, "b"), ev(8, 4.0, "b")];
        let merged: Vec<(String, u64)> = merge_by_time(vec![a, b])
            .iter()
            .map(|e| (e.str("node").unwrap_or("").to_string(), e.seq))
            .collect();
        let want = [("a", 1), ("b", 7), ("a", 2), ("a", 3), ("b", 8)];
        assert_eq!(
            merged,
            want.iter()
                .map(|(n, s)| (n.to_string(), *s))
                .collect::<Vec<_>>()
        );
    }
}
