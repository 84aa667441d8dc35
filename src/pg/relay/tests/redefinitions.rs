//! Redefinitions in flight: which look-ups are exact at once and which must wait for the
//! server's answer (see `tracker.rs`).

use super::Step::*;
use super::{Step, run};
use crate::policy::Class::{Read, Write};

/// Redefinitions in flight (issue 12, findings 10 and 11): a message naming a statement
/// whose latest change is behind a Sync must wait for the server's answer, and a failed
/// re-Parse leaves the old statement.
#[test]
fn redefinitions_in_flight() {
    let scenarios: &[(&str, &[Step])] = &[
        (
            "a failed re-Parse in an earlier segment keeps the old statement",
            &[
                Parse("p", Write),
                Sync,
                ParseComplete,
                Ready(b'I'),
                StmtPending("p", false),
                // Fails upstream with 42P05: the server keeps the write.
                Parse("p", Read),
                // In the same segment a Bind would be skipped if it fails: no wait.
                StmtPending("p", false),
                Stmt("p", Some(Read)),
                Sync,
                // Behind a Sync, a Bind would run whatever the server kept: wait.
                StmtPending("p", true),
                Error(None),
                StmtPending("p", false),
                Stmt("p", Some(Write)),
                Ready(b'I'),
                Stmt("p", Some(Write)),
                // Succeeds this time.
                Close(b'S', "p"),
                Parse("p", Read),
                Sync,
                StmtPending("p", true),
                CloseComplete,
                StmtPending("p", true),
                ParseComplete,
                StmtPending("p", false),
                Stmt("p", Some(Read)),
                Ready(b'I'),
            ],
        ),
        (
            "a Bind behind a Sync waits for its answer",
            &[
                Parse("s", Write),
                Bind("p", "s"),
                PortalPending("p", false),
                Sync,
                PortalPending("p", true),
                ParseComplete,
                PortalPending("p", true),
                BindComplete,
                PortalPending("p", false),
                Portal("p", Some(Write)),
                Ready(b'T'),
            ],
        ),
        (
            "SQL PREPARE and DEALLOCATE run through a portal",
            &[
                ExecutePrepare(1, "x", Write),
                StmtPending("x", false),
                Stmt("x", Some(Write)),
                Sync,
                StmtPending("x", true),
                CommandComplete(Some(1)),
                StmtPending("x", false),
                Stmt("x", Some(Write)),
                Ready(b'I'),
                // A PREPARE that fails (the name exists): what the server kept is unknown.
                ExecutePrepare(2, "x", Read),
                Sync,
                Error(Some(2)),
                Stmt("x", None),
                Ready(b'I'),
                Query(3, &[("x", Read)]),
                CommandComplete(Some(3)),
                Ready(b'I'),
                ExecuteDeallocate(4, "x"),
                Stmt("x", None),
                Sync,
                StmtPending("x", true),
                CommandComplete(Some(4)),
                Stmt("x", None),
                Ready(b'I'),
                // Skipped after an earlier error: nothing of it happens.
                Query(5, &[("y", Read)]),
                CommandComplete(Some(5)),
                Ready(b'I'),
                Parse("bad", Read),
                ExecuteDeallocate(6, "y"),
                Sync,
                // The Parse's error, recorded as the Execute's result.
                Error(Some(6)),
                Ready(b'I'),
                Stmt("y", Some(Read)),
                Busy(false),
            ],
        ),
        (
            "simple Queries: PREPARE, DEALLOCATE and the unnamed statement",
            &[
                Parse("", Write),
                Sync,
                ParseComplete,
                Ready(b'I'),
                Query(1, &[("x", Write)]),
                // A Query ends its own segment: anything it changes is awaited.
                StmtPending("x", true),
                StmtPending("", true),
                Stmt("", None),
                Stmt("x", Some(Write)),
                // A Parse after it decides the unnamed statement again.
                Parse("", Read),
                StmtPending("", false),
                Stmt("", Some(Read)),
                CommandComplete(Some(1)),
                Ready(b'I'),
                ParseComplete,
                Stmt("", Some(Read)),
                Stmt("x", Some(Write)),
                Deallocate(2, Some("x")),
                StmtPending("x", true),
                Error(Some(2)),
                Ready(b'I'),
                // Failed or not, a DEALLOCATEd name is unknown.
                StmtPending("x", false),
                Stmt("x", None),
                Query(3, &[("z", Read)]),
                Error(Some(3)),
                Ready(b'I'),
                // PREPARE is not transactional: in a failed query it may or may not have run.
                Stmt("z", None),
                Busy(false),
            ],
        ),
    ];
    for (name, steps) in scenarios {
        run(name, steps);
    }
}
