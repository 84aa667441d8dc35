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
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| StateUnavailable("no runtime to reach it from".into()))?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err(StateUnavailable(
                "it needs the multi-threaded runtime".into(),
            ));
        }
        let pool = self.pool.clone();
        // The Gate decides synchronously, and the user may be told the statement is held
        // only once its request is committed: wait here, on a thread handed over to
        // blocking, for one INSERT (bounded).
        tokio::task::block_in_place(|| {
            handle.block_on(bounded(INSERT_TIMEOUT, async move {
                let mut c = pool.get().await?;
                store::insert(c.client()?, &request).await
            }))
        })
        .map_err(unavailable)
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
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime to reach the store from: end it here (fail closed); the store's row
            // is ended at the next resync, this node's next start, or by another replica.
            approvals.close_here(id, state, reason);
            return;
        };
        let (id, reason, pool) = (id.to_string(), reason.to_string(), self.pool.clone());
        handle.spawn(async move {
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
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (id, impact, pool) = (id.to_string(), impact.clone(), self.pool.clone());
        handle.spawn(async move {
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
