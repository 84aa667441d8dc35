//! [`Shared`]: the state store as the approvals see it ([`crate::approval::SharedState`]).
//!
//! Invariants: every call is bounded by [`OPERATION_TIMEOUT`] (a state store that hangs is an
//! unreachable one); while the notifications' connection is down or not yet resynced,
//! `current` is false, so new requests are refused at once and cached grants count for
//! nothing; a result the store returns is applied to this replica's mirror at once (the
//! NOTIFY that follows finds nothing new).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::pool::Pool;
use super::{StateError, store};
use crate::approval::{
    Answer, Approvals, DecideError, Decider, Entry, RequestView, SharedState, State,
    StateUnavailable,
};

/// The longest any one call to the state store may take.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest a session waits for its request to be committed.
pub const INSERT_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Shared {
    pub(super) node: String,
    pub(super) pool: Arc<Pool>,
    pub(super) current: AtomicBool,
    pub(super) approvals: Weak<Approvals>,
    /// The main runtime, where calls from a session thread run.
    pub(super) runtime: tokio::runtime::Handle,
}

fn unavailable(e: StateError) -> StateUnavailable {
    match e {
        StateError::Unreachable(m) => StateUnavailable(m),
        other => StateUnavailable(other.to_string()),
    }
}

/// `f` within `limit`, its failure as the state store's.
pub(super) async fn bounded<T>(
    limit: Duration,
    f: impl Future<Output = Result<T, StateError>>,
) -> Result<T, StateError> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(StateError::Unreachable(format!(
            "no answer within {}s",
            limit.as_secs()
        ))),
    }
}

impl Shared {
    pub(super) fn set_current(&self, current: bool) {
        self.current.store(current, Ordering::Release);
    }

    fn approvals(&self) -> Option<Arc<Approvals>> {
        self.approvals.upgrade()
    }
}

impl SharedState for Shared {
    fn node(&self) -> &str {
        &self.node
    }

    fn current(&self) -> bool {
        self.current.load(Ordering::Acquire)
    }

    fn insert(&self, request: Entry) -> Result<(), StateUnavailable> {
        if !self.current() {
            return Err(StateUnavailable("not connected (reconnecting)".into()));
        }
        let pool = self.pool.clone();
        // The Gate decides synchronously, and the user may be told the statement is held
        // only once its request is committed: the INSERT runs on the main runtime, and this
        // thread waits for its answer (bounded). On a worker of the main runtime the wait
        // hands the worker's other tasks over first (`block_in_place`); on a session thread
        // (a current-thread runtime, `lifecycle::threads`) it stalls that thread's sessions
        // for one INSERT, which only a held statement pays.
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let inserted = bounded(INSERT_TIMEOUT, async move {
                let mut c = pool.get().await?;
                store::insert(c.client()?, &request).await
            })
            .await;
            let _ = answer.send(inserted);
        });
        let wait = || answered.recv_timeout(INSERT_TIMEOUT + Duration::from_millis(500));
        let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
        let received = match flavor {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(wait),
            _ => wait(),
        };
        match received {
            Ok(inserted) => inserted.map_err(unavailable),
            Err(_) => Err(StateUnavailable(format!(
                "no answer within {}s",
                INSERT_TIMEOUT.as_secs()
            ))),
        }
    }

    fn decide(
        &self,
        id: String,
        who: Decider,
        answer: Answer,
    ) -> crate::approval::shared::Pending<Result<RequestView, DecideError>> {
        let pool = self.pool.clone();
        let approvals = self.approvals();
        Box::pin(async move {
            let result = tokio::time::timeout(OPERATION_TIMEOUT, async {
                let mut c = pool.get().await?;
                store::decide(c.client()?, &id, &who, &answer).await
            })
            .await;
            let (entry, grant) = match result {
                Ok(Ok(done)) => done,
                Ok(Err(store::DecideFailure::Rules(e))) => return Err(e),
                Ok(Err(store::DecideFailure::Store(e))) => {
                    return Err(DecideError::StateStore(unavailable(e)));
                }
                Err(_) => {
                    return Err(DecideError::StateStore(StateUnavailable(format!(
                        "no answer within {}s",
                        OPERATION_TIMEOUT.as_secs()
                    ))));
                }
            };
            let view = entry.view.clone();
            if let Some(a) = approvals {
                a.apply(entry, grant);
            }
            Ok(view)
        })
    }

    fn close(&self, id: &str, state: State, reason: &str) {
        let Some(approvals) = self.approvals() else {
            return;
        };
        // On the main runtime, never on a session thread's (`lifecycle::threads`): a
        // connection the pool opens there would be driven by a thread that may be waiting,
        // blocked, for an INSERT through that very connection (`insert`).
        let (id, reason, pool) = (id.to_string(), reason.to_string(), self.pool.clone());
        self.runtime.spawn(async move {
            let stored = bounded(OPERATION_TIMEOUT, async {
                let mut c = pool.get().await?;
                store::close(c.client()?, &id, state, &reason).await
            })
            .await;
            match stored {
                Ok(Some((entry, grant))) if entry.view.state != State::Pending => {
                    approvals.apply(entry, grant)
                }
                Ok(_) => {
                    approvals.close_here(&id, state, &reason);
                }
                Err(e) => {
                    // Fail closed: the session learns its request ended; the store's row
                    // is ended by the node's next start or by another replica.
                    tracing::warn!(request = %id, error = %e, "closing a request in the state store failed");
                    approvals.close_here(&id, state, &reason);
                }
            }
        });
    }

    fn set_impact(&self, id: &str, impact: &crate::request::Impact) {
        // On the main runtime, for the reason `close` gives.
        let (id, impact, pool) = (id.to_string(), impact.clone(), self.pool.clone());
        self.runtime.spawn(async move {
            let stored = bounded(OPERATION_TIMEOUT, async {
                let mut c = pool.get().await?;
                store::set_impact(c.client()?, &id, &impact).await
            })
            .await;
            if let Err(e) = stored {
                tracing::debug!(request = %id, error = %e, "storing an impact preview failed");
            }
        });
    }

    fn revoke(
        &self,
        id: String,
        by: String,
    ) -> crate::approval::shared::Pending<Result<bool, StateUnavailable>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            bounded(OPERATION_TIMEOUT, async {
                let mut c = pool.get().await?;
                store::revoke(c.client()?, &id, &by).await
            })
            .await
            .map_err(unavailable)
        })
    }
}
