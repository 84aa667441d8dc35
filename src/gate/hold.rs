//! A statement held for approval: the [`Hold`] a front end awaits, and the wait behind it.
//!
//! Invariants: dropping a `Hold` before it resolves cancels its request, so a client that
//! disconnects withdraws what it asked for; an approval yields a [`Permit`] only once the
//! decision is on disk; every outcome is counted in the metrics. The hold_timeout runs from
//! the request's creation, not from the first poll, so nothing a front end does before it
//! awaits the hold (such as telling a slow client) can stretch it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::verdict::{Permit, Refusal, RefusalKind, Seal, Waiting, audit_refusal};
use crate::approval::{Approvals, Outcome, State};
use crate::audit::Audit;
use crate::metrics::Metrics;
use crate::policy::Class;

/// A held action waiting for its request's outcome.
pub struct Hold {
    pub request: String,
    pub rule: Arc<str>,
    pub(super) approvals: Arc<Approvals>,
    pub(super) fut: Waiting,
    pub(super) done: bool,
}

impl Hold {
    /// Withdraw the request (client cancel). The next poll resolves to a `Cancelled` refusal
    /// unless a decision won the race.
    pub fn cancel(&self, reason: &str) {
        self.approvals
            .close(&self.request, State::Cancelled, reason);
    }
}

impl Future for Hold {
    type Output = Result<Permit, Refusal>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let r = self.fut.as_mut().poll(cx);
        if r.is_ready() {
            self.done = true;
        }
        r
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.done {
            self.approvals
                .close(&self.request, State::Cancelled, "the client went away");
        }
    }
}

pub(super) async fn wait(
    (approvals, audit, metrics): (Arc<Approvals>, Audit, Arc<Metrics>),
    id: String,
    rule: Arc<str>,
    class: Class,
    deadline: tokio::time::Instant,
    mut rx: tokio::sync::oneshot::Receiver<Outcome>,
) -> Result<Permit, Refusal> {
    let started = std::time::Instant::now();
    let outcome = tokio::select! {
        o = &mut rx => o.ok(),
        _ = tokio::time::sleep_until(deadline) => {
            approvals.close(&id, State::Expired, "hold_timeout reached");
            // Whoever won the race (expiry or a decision a moment earlier) sent the outcome.
            rx.await.ok()
        }
    };
    metrics
        .approval_wait
        .observe(started.elapsed().as_secs_f64());
    let state = match &outcome {
        Some(Outcome::Approved { .. }) => "approved",
        Some(Outcome::Denied { .. }) => "denied",
        Some(Outcome::Expired) => "expired",
        _ => "cancelled",
    };
    metrics.requests.with_label_values(&[state]).inc();
    tracing::info!(request = %id, outcome = state, "hold resolved");
    let refuse = |kind, message: String| {
        Err(Refusal {
            kind,
            message,
            rule: Some(rule.clone()),
            request: Some(id.clone()),
        })
    };
    match outcome {
        Some(Outcome::Approved { grant, .. }) => {
            // The request and its approval were queued for the audit before this session was
            // woken; this flush puts them on disk before the statement may go upstream.
            if let Err(e) = audit.flush().await {
                return Err(audit_refusal(&e, Some(rule), Some(id)));
            }
            Ok(Permit {
                class,
                rule: Some(rule.clone()),
                request: Some(id.clone()),
                grant,
                // On disk before it runs: its result is an event of its own.
                statement: Default::default(),
                _seal: Seal,
            })
        }
        Some(Outcome::Denied { by, reason }) => refuse(
            RefusalKind::Denied,
            format!("jitgate: request {id} denied by {by}: {reason}"),
        ),
        Some(Outcome::Expired) => refuse(
            RefusalKind::TimedOut,
            format!("jitgate: request {id} timed out waiting for approval"),
        ),
        Some(Outcome::Cancelled { reason }) => refuse(
            RefusalKind::Cancelled,
            format!("jitgate: request {id} cancelled: {reason}"),
        ),
        None => refuse(
            RefusalKind::Cancelled,
            format!("jitgate: request {id} cancelled"),
        ),
    }
}
