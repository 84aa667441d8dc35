//! Where the API and the CLI read audit history from: this process's own sled trail (one
//! jitgate, as always) or the trail every replica ships to the state database (cluster mode,
//! [`super::history_pg`]). The readers — sessions, events, recordings, export and verify —
//! call [`History`] and do not know which; who may see what is decided by the caller
//! (`api::visibility`), identically for both.
//!
//! Invariants:
//! - **Single-node mode is unchanged.** [`History::Local`] calls the same store reads as
//!   before, on a blocking thread.
//! - **Any replica, any session.** [`History::Cluster`] reads only the state database, so
//!   every replica answers the same for every session, wherever it ran. An event read from
//!   there carries `"node"`, the replica that recorded it, because its `seq` counts in that
//!   node's chain.
//! - **Reads fail loudly.** A state database that cannot be reached is an error naming the
//!   state store, never an empty answer.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::history_pg::ClusterHistory;
use crate::audit::{
    Audit, Broken, EventRecord, Recordings, SessionFilter, SessionRecord, VerifyError,
};

/// Events per item of [`History::export`].
pub const EXPORT_BATCH: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{0}")]
    State(#[from] super::StateError),
    #[error("the state store (PostgreSQL) failed: {0}")]
    Database(#[from] tokio_postgres::Error),
    #[error("reading the audit store failed: {0}")]
    Local(String),
}

/// The audit history readers see.
#[derive(Clone)]
pub enum History {
    /// This process's sled trail.
    Local(Audit),
    /// Every replica's shipped trail in the state database.
    Cluster(Arc<ClusterHistory>),
}

/// Run a read of the local store off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, HistoryError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| HistoryError::Local(e.to_string()))
}

/// One node's shipped chain, walked.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeChain {
    pub node: String,
    /// Events checked (up to the break, if any).
    pub events: u64,
    pub broken: Option<Broken>,
}

/// What `audit verify` found.
#[derive(Debug)]
pub enum Verification {
    /// The local chain: events, or why it did not verify.
    Local(Result<u64, VerifyError>),
    /// Each node's shipped chain, by node name.
    Cluster(Vec<NodeChain>),
}

impl Verification {
    pub fn ok(&self) -> bool {
        match self {
            Verification::Local(r) => r.is_ok(),
            Verification::Cluster(nodes) => nodes.iter().all(|n| n.broken.is_none()),
        }
    }

    /// Events checked in all.
    pub fn events(&self) -> u64 {
        match self {
            Verification::Local(r) => *r.as_ref().unwrap_or(&0),
            Verification::Cluster(nodes) => nodes.iter().map(|n| n.events).sum(),
        }
    }

    /// What is broken, one line per broken chain (`node NAME: broken link at event N: …` in
    /// cluster mode); `None` when everything verifies.
    pub fn error(&self) -> Option<String> {
        match self {
            Verification::Local(r) => r.as_ref().err().map(|e| e.to_string()),
            Verification::Cluster(nodes) => {
                let broken: Vec<String> = nodes
                    .iter()
                    .filter_map(|n| Some(format!("node {}: {}", n.node, n.broken.as_ref()?)))
                    .collect();
                (!broken.is_empty()).then(|| broken.join("; "))
            }
        }
    }

    /// The API's answer: `{"ok", "events" | "error"}`, plus `"nodes"` in cluster mode.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({ "ok": self.ok() });
        match self.error() {
            None => v["events"] = self.events().into(),
            Some(e) => v["error"] = e.into(),
        }
        if let Verification::Cluster(nodes) = self {
            v["nodes"] = nodes
                .iter()
                .map(|n| {
                    let mut o = serde_json::json!({
                        "node": n.node, "ok": n.broken.is_none(), "events": n.events,
                    });
                    if let Some(b) = &n.broken {
                        o["seq"] = b.seq.into();
                        o["error"] = b.to_string().into();
                    }
                    o
                })
                .collect();
        }
        v
    }
}

impl History {
    /// Sessions matching `f`, oldest first (with `limit`, the most recent ones).
    pub async fn sessions(&self, f: SessionFilter) -> Result<Vec<SessionRecord>, HistoryError> {
        match self {
            History::Local(a) => {
                let a = a.clone();
                blocking(move || a.sessions(&f)).await
            }
            History::Cluster(c) => c.sessions(&f).await,
        }
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRecord>, HistoryError> {
        match self {
            History::Local(a) => {
                let (a, id) = (a.clone(), id.to_string());
                blocking(move || a.session(&id)).await
            }
            History::Cluster(c) => c.session(id).await,
        }
    }

    /// The events of one session, in order (in cluster mode: each node's in its chain order,
    /// merged by time).
    pub async fn events(&self, id: &str) -> Result<Vec<EventRecord>, HistoryError> {
        match self {
            History::Local(a) => {
                let (a, id) = (a.clone(), id.to_string());
                blocking(move || a.events(&id)).await
            }
            History::Cluster(c) => c.events(id).await,
        }
    }

    /// The session's record and its recordings (SSH: one asciicast per channel).
    pub async fn recordings(
        &self,
        id: &str,
    ) -> Result<(Option<SessionRecord>, Recordings), HistoryError> {
        match self {
            History::Local(a) => {
                let (a, id) = (a.clone(), id.to_string());
                blocking(move || (a.session(&id), a.recordings(&id))).await
            }
            History::Cluster(c) => {
                let session = c.session(id).await?;
                let events = c.events(id).await?;
                Ok((session.clone(), Recordings::new(session, events)))
            }
        }
    }

    /// Every event at or after `since_unix_secs`, in batches of up to [`EXPORT_BATCH`], in
    /// chain order (cluster mode: by time, then node and seq). A read that fails ends the
    /// stream with its error. Stops when the receiver is dropped.
    pub fn export(
        &self,
        since_unix_secs: u64,
    ) -> mpsc::Receiver<Result<Vec<EventRecord>, HistoryError>> {
        let (tx, rx) = mpsc::channel(4);
        match self {
            History::Local(a) => {
                let a = a.clone();
                tokio::task::spawn_blocking(move || {
                    let mut batch = Vec::with_capacity(EXPORT_BATCH);
                    for ev in a.export(since_unix_secs) {
                        batch.push(ev);
                        if batch.len() >= EXPORT_BATCH
                            && tx.blocking_send(Ok(std::mem::take(&mut batch))).is_err()
                        {
                            return;
                        }
                    }
                    if !batch.is_empty() {
                        let _ = tx.blocking_send(Ok(batch));
                    }
                });
            }
            History::Cluster(c) => {
                let c = c.clone();
                tokio::spawn(async move { c.export(since_unix_secs, tx).await });
            }
        }
        rx
    }

    /// Walk the chain (cluster mode: every node's shipped chain).
    pub async fn verify(&self) -> Result<Verification, HistoryError> {
        match self {
            History::Local(a) => {
                let a = a.clone();
                Ok(Verification::Local(blocking(move || a.verify()).await?))
            }
            History::Cluster(c) => Ok(Verification::Cluster(c.verify().await?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_jitgate_answers_verify_as_before() {
        assert_eq!(
            Verification::Local(Ok(7)).to_json(),
            json!({"ok": true, "events": 7})
        );
        let broken = Broken {
            seq: 3,
            reason: "its hash does not match".into(),
        };
        let v = Verification::Local(Err(VerifyError::Broken(broken)));
        assert_eq!(
            v.to_json(),
            json!({"ok": false, "error": "broken link at event 3: its hash does not match"})
        );
    }

    #[test]
    fn a_cluster_verify_names_each_broken_node_and_event() {
        let v = Verification::Cluster(vec![
            NodeChain {
                node: "jg-a".into(),
                events: 2,
                broken: Some(Broken {
                    seq: 3,
                    reason: "its hash does not match".into(),
                }),
            },
            NodeChain {
                node: "jg-b".into(),
                events: 5,
                broken: None,
            },
        ]);
        assert!(!v.ok());
        assert_eq!(
            v.to_json(),
            json!({
                "ok": false,
                "error": "node jg-a: broken link at event 3: its hash does not match",
                "nodes": [
                    {"node": "jg-a", "ok": false, "events": 2, "seq": 3,
                     "error": "broken link at event 3: its hash does not match"},
                    {"node": "jg-b", "ok": true, "events": 5},
                ],
            })
        );
        let fine = Verification::Cluster(vec![NodeChain {
            node: "jg-b".into(),
            events: 5,
            broken: None,
        }]);
        assert_eq!(fine.to_json()["events"], 5);
        assert_eq!(fine.error(), None);
    }
}
