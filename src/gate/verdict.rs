//! What a [`super::Verdict`] carries: the [`Permit`] that a front end must hand over to
//! forward anything, a [`Refusal`], or a [`Commit`] to await.
//!
//! Invariant: a `Permit` is built only inside the `gate` module (its [`Seal`] is private to
//! it), so "nothing reaches upstream undecided" is a property of the types.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::audit::StatementHandle;
use crate::policy::Class;

/// Proof that the Gate allowed one action. Only the `gate` module can make one: its seal
/// is not visible outside it.
#[derive(Debug)]
pub struct Permit {
    pub class: Class,
    pub rule: Option<Arc<str>>,
    pub request: Option<String>,
    pub grant: Option<String>,
    /// The statement's audit record, for its result to join
    /// ([`crate::audit::Audit::record_result_in`]): set for a routine Postgres statement,
    /// empty (the result is an event of its own) for what was on disk before it ran.
    pub statement: StatementHandle,
    pub(super) _seal: Seal,
}

/// What makes a [`Permit`] impossible to build outside the `gate` module.
#[derive(Debug)]
pub(super) struct Seal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Policy or an approver said no.
    Denied,
    /// Nobody decided within the rule's hold_timeout.
    TimedOut,
    /// The client withdrew it (cancel, disconnect) or the proxy is shutting down.
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
    pub rule: Option<Arc<str>>,
    pub request: Option<String>,
}

pub(super) type Waiting = Pin<Box<dyn Future<Output = Result<Permit, Refusal>> + Send>>;

/// An action allowed by a grant, waiting for its audit event to reach disk.
pub struct Commit {
    pub(super) fut: Waiting,
}

impl Future for Commit {
    type Output = Result<Permit, Refusal>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.fut.as_mut().poll(cx)
    }
}

pub(super) fn audit_refusal(
    e: &crate::audit::AuditError,
    rule: Option<Arc<str>>,
    request: Option<String>,
) -> Refusal {
    Refusal {
        kind: RefusalKind::Denied,
        message: format!(
            "jitgate: refused because the audit trail cannot record it ({e}); \
             ask an operator to check jitgate's data_dir"
        ),
        rule,
        request,
    }
}
