//! Everything the SSH front end asks of the Gate and tells the audit trail, in one place.
//!
//! [`decide`] (and [`decide_opening`] for the sftp subsystem) is the only call of the Gate
//! in `ssh/`: it turns a verdict into either an
//! outcome now or a future to await (after showing the held line, when there is one). The
//! Gate records the command event itself, and session start and end; the helpers here add
//! exit statuses and recordings. Recording never blocks; a recording the store refuses ends
//! the session ([`super::record`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::app::AppState;
use crate::audit::{Audit, AuditError, Backlog, EventKind, Text};
use crate::gate::{Action, Permit, Refusal, SessionCtx, Verdict};
use crate::policy::{Class, Classification};

pub(super) type Outcome = Result<Permit, Refusal>;

/// What the Gate said about one action.
pub(super) enum Pending {
    /// Decided now.
    Ready(Outcome),
    /// Decided later. `request` is the id to show the user (`None`: wait without a word).
    Later {
        request: Option<String>,
        wait: Pin<Box<dyn Future<Output = Outcome> + Send>>,
    },
}

pub(super) fn decide(
    app: &AppState,
    ctx: &SessionCtx,
    statement: &str,
    classification: &Classification,
) -> Pending {
    // The Gate records the Command event itself.
    let statement = Arc::from(statement);
    pending(app.gate.check(ctx, action(&statement, classification)))
}

/// Opening a channel whose actions are each decided later (the `sftp` subsystem): see
/// [`crate::gate::Gate::check_opening`].
pub(super) fn decide_opening(
    app: &AppState,
    ctx: &SessionCtx,
    statement: &str,
    classification: &Classification,
) -> Pending {
    let statement = Arc::from(statement);
    pending(
        app.gate
            .check_opening(ctx, action(&statement, classification)),
    )
}

fn action<'a>(statement: &'a Arc<str>, classification: &'a Classification) -> Action<'a> {
    Action {
        statement,
        classification,
        class: classification.class,
        runs_prepared: false,
        deferrable: false,
        params: None,
    }
}

fn pending(verdict: Verdict) -> Pending {
    match verdict {
        Verdict::Allow(p) => Pending::Ready(Ok(p)),
        Verdict::Deny(r) => Pending::Ready(Err(r)),
        Verdict::Hold(h) => Pending::Later {
            request: Some(h.request.clone()),
            wait: Box::pin(h),
        },
        Verdict::Commit(c) => Pending::Later {
            request: None,
            wait: Box::pin(c),
        },
    }
}

/// The held line, as the contract words it.
pub(super) fn held_line(request: &str) -> String {
    format!("jitgate: held for approval, request {request}")
}

/// A session channel's statement and classification for its start request.
pub(super) fn shell_classification() -> Classification {
    Classification::bare(Class::Shell, "interactive shell")
}

pub(super) fn subsystem_classification(name: &str) -> Classification {
    if name == "sftp" {
        Classification::bare(
            Class::FileTransfer,
            "sftp subsystem (each operation is decided on its own)",
        )
    } else {
        Classification::bare(Class::Unknown, format!("subsystem {name}"))
    }
}

pub(super) fn exit_status(app: &AppState, ctx: &SessionCtx, status: u32) {
    app.record(
        ctx,
        EventKind::ExitStatus {
            status: status as i32,
        },
    );
}

pub(super) fn recording(
    audit: &Audit,
    backlog: &Backlog,
    session: &Arc<str>,
    channel: u32,
    t: f64,
    stream: char,
    data: Text,
) -> Result<(), AuditError> {
    audit.record_in(
        backlog,
        session.clone(),
        EventKind::Recording {
            channel,
            t,
            stream,
            data,
        },
    )
}
