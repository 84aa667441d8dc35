//! Waiting for the disk: an event that authorises an action, or everything recorded before
//! (a barrier), answered once the commit holding it has been flushed.
//!
//! Invariant: no wait is unbounded. A commit that has not reached the disk within
//! [`DURABLE_DEADLINE`] (a hung disk) fails the store and the waiter gets the error, as it does
//! when the writer has stopped; `on_failure` decides from then on.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::writer::Msg;
use super::{Audit, AuditError, EventKind, Text, now_us};

/// How long a durable write may take before the store counts as failed.
const DURABLE_DEADLINE: Duration = Duration::from_secs(30);

impl Audit {
    /// Record an event and resolve once it is on disk, with its seq: the event that
    /// authorises an action.
    pub async fn record_durable(
        &self,
        session: impl Into<Text>,
        ev: EventKind,
    ) -> Result<u64, AuditError> {
        self.durable(now_us(), session.into(), Some(ev)).await
    }

    /// Resolve once everything recorded before is on disk (for shutdown); returns the last
    /// seq.
    pub async fn flush(&self) -> Result<u64, AuditError> {
        self.durable(now_us(), Text::from_static(""), None).await
    }

    async fn durable(
        &self,
        at_us: u64,
        session: Text,
        ev: Option<EventKind>,
    ) -> Result<u64, AuditError> {
        if !self.inner.opts.enabled {
            return Ok(0);
        }
        if self.inner.shared.failed() {
            return Err(self.inner.shared.error());
        }
        let (done, rx) = oneshot::channel();
        self.send(Msg {
            at_us,
            session,
            ev,
            done: Some(done),
            backlog: None,
            result: None,
        })?;
        self.inner.shared.wake_writer();
        match tokio::time::timeout(DURABLE_DEADLINE, rx).await {
            Ok(r) => r.unwrap_or_else(|_| {
                Err(AuditError::Failed(Arc::from(
                    "the audit writer has stopped",
                )))
            }),
            Err(_) => {
                // A disk that hangs must not hang every session that writes: the store
                // counts as failed, and `on_failure` decides from now on.
                let why = format!(
                    "no commit reached the disk within {} s",
                    DURABLE_DEADLINE.as_secs()
                );
                self.inner.shared.fail(why);
                Err(self.inner.shared.error())
            }
        }
    }
}
