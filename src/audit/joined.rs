//! A statement and its result as one event.
//!
//! A front end that knows which result belongs to which statement records the statement with
//! [`Audit::record_statement_in`], keeps the [`StatementHandle`] it gets, and records the
//! result with [`Audit::record_result_in`] and that handle. If the writer has not yet taken
//! the statement into a commit when the result arrives (the usual case for a routine
//! statement: results come back well within `commit_interval`), the result is stored inside
//! the statement's event as `"result": {command_tag, rows, sqlstate, message, duration_us}`
//! and costs no event, no queue slot and no send. Otherwise it is an ordinary `result` event,
//! exactly as [`Audit::record_in`] would record it.
//!
//! Invariants:
//! - **Exactly once.** A result is either joined to its statement's event or recorded on its
//!   own, never both and never neither: the handle's slot moves `Open → Joined(result)` (the
//!   front end) and `Open`/`Joined → Sealed` (the writer, when it encodes the statement,
//!   taking the joined result out), each under the slot's mutex, held for that change only.
//!   A result that finds the slot sealed is recorded on its own.
//! - **Same place in the chain.** A joined result is hashed with its statement's event, at the
//!   statement's seq; its timing is its `duration_us`.
//! - A statement that must be on disk before it runs ([`Audit::record_durable`]) has no
//!   handle: it is committed before its result can exist.
//! - **Written.** Once the commit holding a statement's event is on disk, the writer marks its
//!   slot ([`StatementHandle::written`]); the front end then knows, without asking the
//!   writer, that this event and every earlier event it sent are on disk (one queue, taken
//!   in order).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::event::{EventKind, Text};
use super::writer::Msg;
use super::{Audit, AuditError, Backlog, lock, now_us};

/// Where a statement's result may wait for the writer, and whether its event is on disk.
#[derive(Default)]
pub struct ResultSlot {
    slot: Mutex<Slot>,
    written: AtomicBool,
}

/// `Open` (neither field set), `Joined` (a result waits: the writer stores it inside the
/// statement's event) or `Sealed` (the writer has encoded the statement: a later result is
/// an event of its own). The result is kept in place, not boxed: one allocation less per
/// statement.
#[derive(Default)]
struct Slot {
    result: Option<EventKind>,
    sealed: bool,
}

impl ResultSlot {
    /// The writer takes the statement: the result waiting, if any; later ones stay out.
    pub fn seal(&self) -> Option<EventKind> {
        let mut slot = lock(&self.slot);
        slot.sealed = true;
        slot.result.take()
    }

    /// The writer: the commit holding the statement's event is on disk.
    pub fn mark_written(&self) {
        self.written.store(true, Ordering::Release);
    }

    /// Leave `result` for the writer; gives it back if the statement is already taken.
    fn join(&self, result: EventKind) -> Option<EventKind> {
        let mut slot = lock(&self.slot);
        if slot.sealed || slot.result.is_some() {
            return Some(result);
        }
        slot.result = Some(result);
        None
    }
}

/// A statement recorded with [`Audit::record_statement_in`]; pass it to
/// [`Audit::record_result_in`] with the statement's result. Cheap to keep (an `Arc`). The
/// default joins nothing: a result given with it is an event of its own.
#[derive(Clone, Default)]
pub struct StatementHandle(Option<Arc<ResultSlot>>);

impl StatementHandle {
    /// Whether the statement's event is on disk, and with it every event its session sent
    /// before it. False for the default handle (nothing known).
    pub fn written(&self) -> bool {
        self.0
            .as_ref()
            .is_some_and(|s| s.written.load(Ordering::Acquire))
    }
}

impl std::fmt::Debug for StatementHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "StatementHandle(joinable)"
        } else {
            "StatementHandle(none)"
        })
    }
}

impl Audit {
    /// Record a session's routine statement (as [`Audit::record_in`]) and get a handle its
    /// result can join.
    pub fn record_statement_in(
        &self,
        backlog: &Backlog,
        session: impl Into<Text>,
        ev: EventKind,
    ) -> Result<StatementHandle, AuditError> {
        if !self.inner.opts.enabled {
            return Ok(StatementHandle(None));
        }
        if self.inner.shared.failed() {
            return Err(self.inner.shared.error());
        }
        let slot = Arc::new(ResultSlot::default());
        self.send(Msg {
            at_us: now_us(),
            session: session.into(),
            ev: Some(ev),
            done: None,
            backlog: Some(backlog.0.clone()),
            result: Some(slot.clone()),
        })?;
        Ok(StatementHandle(Some(slot)))
    }

    /// Record the result of the statement behind `statement`: inside that statement's event
    /// if the writer has not taken it yet, else as an event of its own (as
    /// [`Audit::record_in`]). Only `EventKind::Result` joins; anything else is recorded on its
    /// own.
    pub fn record_result_in(
        &self,
        backlog: &Backlog,
        session: impl Into<Text>,
        statement: &StatementHandle,
        result: EventKind,
    ) -> Result<(), AuditError> {
        if !self.inner.opts.enabled {
            return Ok(());
        }
        if self.inner.shared.failed() {
            return Err(self.inner.shared.error());
        }
        let left = match (&statement.0, &result) {
            (Some(slot), EventKind::Result { .. }) => slot.join(result),
            _ => Some(result),
        };
        match left {
            None => Ok(()),
            Some(r) => self.record_in(backlog, session, r),
        }
    }
}
