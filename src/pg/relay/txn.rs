//! The session's transaction as the relay sees it, and when a statement's audit event may
//! reach the disk after the statement runs.
//!
//! An allowed statement's audit event must be on disk before anything it changed can
//! commit. Inside an open transaction block, a statement that cannot end the block
//! ("deferrable") may run with its event recorded but not yet flushed; the block is then
//! `dirty`, and the next statement that may commit (or whose deferral is not certain) waits
//! for a flush first, unless the event of the last such statement is already on disk (a
//! commit since, another session's flush or the group commit's timer, wrote it and every
//! earlier event of the session; see [`crate::audit::StatementHandle::written`]). Deferral is only ever decided from facts that are current: the status
//! of the last ReadyForQuery, provided nothing that may end the transaction was sent since
//! (`may_commit`). `false` is always the safe answer.

use crate::audit::StatementHandle;
use crate::policy::Class;

pub(super) struct TxnState {
    /// The transaction status of the last ReadyForQuery: `I` idle, `T` in a block, `E` in a
    /// failed block.
    status: u8,
    /// The last statement that may change data and ran with its audit event not yet on
    /// disk (it was deferrable): the next statement that may commit waits for a flush first,
    /// unless this event has been written since.
    dirty: Option<StatementHandle>,
    /// Something that may end the transaction was sent since the last ReadyForQuery.
    may_commit: bool,
}

impl TxnState {
    /// After start-up, with the status of its ReadyForQuery.
    pub fn new(status: u8) -> TxnState {
        TxnState {
            status,
            dirty: None,
            may_commit: false,
        }
    }

    /// Not in a transaction block (as of the last ReadyForQuery).
    pub fn idle(&self) -> bool {
        self.status == b'I'
    }

    /// Whether a statement with this text, decided now, stays inside an open transaction
    /// block without ending it (see [`crate::gate::Action::deferrable`]). Conservative: one
    /// statement, not `COMMIT`/`END`/`PREPARE`, in a block as of the last ReadyForQuery,
    /// with nothing since that may have ended it.
    pub fn deferrable(&self, text: &str) -> bool {
        matches!(self.status, b'T' | b'E') && !self.may_commit && stays_in_transaction(text)
    }

    /// A statement was decided; unless it is deferrable, the transaction may have ended
    /// by the next ReadyForQuery.
    pub fn decided(&mut self, deferrable: bool) {
        if !deferrable {
            self.may_commit = true;
        }
    }

    /// An allowed statement must wait for earlier audit events to reach the disk first.
    pub fn needs_flush(&self, deferrable: bool) -> bool {
        !deferrable && self.dirty.as_ref().is_some_and(|h| !h.written())
    }

    /// An allowed statement of this class runs at once, its audit event (`handle`) recorded
    /// but not yet on disk: flushed before anything that may commit.
    pub fn ran(&mut self, class: Class, handle: &StatementHandle) {
        if class != Class::Read {
            self.dirty = Some(handle.clone());
        }
    }

    /// Everything recorded so far is on disk (every kind of wait ends with a flush).
    pub fn flushed(&mut self) {
        self.dirty = None;
    }

    /// ReadyForQuery with this status. `settled`: nothing was sent or waits to be sent
    /// after it, so the status is current.
    pub fn ready(&mut self, status: u8, settled: bool) {
        self.status = status;
        if settled {
            self.may_commit = false;
        }
    }
}

/// One statement that cannot end the transaction it runs in: no `;` but a trailing one, no
/// leading comment, and not `COMMIT`, `END`, `PREPARE [TRANSACTION]`, `ROLLBACK` (but
/// `ROLLBACK TO`) or `ABORT`. Anything else (or anything unclear) is `false`.
fn stays_in_transaction(text: &str) -> bool {
    let t = text.trim_start();
    let body = t.trim_end().trim_end_matches(';');
    if body.contains(';') || t.starts_with("--") || t.starts_with("/*") || body.is_empty() {
        return false;
    }
    let word: String = body
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    let rollback_to = || {
        let mut w = body.split_whitespace().skip(1);
        let next = w.next().map(str::to_ascii_uppercase);
        next.as_deref() == Some("TO")
            || (matches!(next.as_deref(), Some("WORK" | "TRANSACTION"))
                && w.next().map(str::to_ascii_uppercase).as_deref() == Some("TO"))
    };
    match word.as_str() {
        "" | "COMMIT" | "END" | "PREPARE" | "ABORT" => false,
        // ROLLBACK ends the block (what follows may autocommit); ROLLBACK TO does not.
        "ROLLBACK" => rollback_to(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::TxnState;
    use super::stays_in_transaction as stays;
    use crate::audit::StatementHandle;
    use crate::policy::Class;

    #[test]
    fn only_plain_single_statements_stay_in_the_transaction() {
        assert!(stays("UPDATE t SET v = 1 WHERE id = 2;"));
        assert!(stays("  insert into t values (1)"));
        assert!(stays("SELECT 1"));
        assert!(stays("ROLLBACK TO SAVEPOINT a"));
        assert!(stays("rollback to a;"));
        assert!(stays("ROLLBACK WORK TO a"));
        for s in [
            "COMMIT",
            "commit;",
            "ROLLBACK",
            "rollback work",
            "ABORT",
            "END",
            "end transaction",
            "PREPARE TRANSACTION 'x'",
            "UPDATE t SET v = 1; COMMIT",
            "-- c\nCOMMIT",
            "/* x */ COMMIT",
            "",
            ";",
            "(SELECT 1)",
        ] {
            assert!(!stays(s), "{s:?}");
        }
    }

    #[test]
    fn deferrable_only_inside_a_block_with_nothing_that_may_commit_since() {
        let update = "UPDATE t SET v = 1";
        let idle = TxnState::new(b'I');
        assert!(idle.idle());
        assert!(!idle.deferrable(update), "autocommit commits at once");
        for status in [b'T', b'E'] {
            let mut t = TxnState::new(status);
            assert!(!t.idle());
            assert!(t.deferrable(update));
            assert!(!t.deferrable("COMMIT"));
            // A deferrable statement keeps the status current.
            t.decided(true);
            assert!(t.deferrable(update));
            // One that may commit makes it stale until a settled ReadyForQuery.
            t.decided(false);
            assert!(!t.deferrable(update));
            t.ready(status, false);
            assert!(
                !t.deferrable(update),
                "more was sent after that ReadyForQuery"
            );
            t.ready(status, true);
            assert!(t.deferrable(update));
            t.ready(b'I', true);
            assert!(!t.deferrable(update));
        }
    }

    #[test]
    fn unflushed_changes_make_the_next_commit_wait() {
        let mut t = TxnState::new(b'T');
        assert!(!t.needs_flush(false));
        let unknown = StatementHandle::default();
        t.ran(Class::Read, &unknown);
        assert!(!t.needs_flush(false), "a read leaves nothing to flush");
        t.ran(Class::Write, &unknown);
        assert!(t.needs_flush(false));
        assert!(!t.needs_flush(true), "a deferrable statement need not wait");
        t.ready(b'I', true);
        assert!(t.needs_flush(false), "only a flush clears it");
        t.flushed();
        assert!(!t.needs_flush(false));
    }
}
