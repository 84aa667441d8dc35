//! COPY in both directions, as the queue of what awaits the server sees it: Syncs and
//! CopyDone in every order a client may send them, a COPY that fails, and a CopyDone with no
//! COPY at all.

use super::Step::*;
use super::{Step, run};
use crate::policy::Class::{Read, Write};

#[test]
fn copy_scenarios() {
    let scenarios: &[(&str, &[Step])] = &[
        (
            "copy-in with Syncs before CopyDone",
            &[
                Parse("c", Write),
                Bind("", "c"),
                Execute(1),
                Sync,
                ParseComplete,
                BindComplete,
                CopyInResponse,
                CopyIn(true),
                // The server ignores Sync in copy-in mode; no ReadyForQuery answers it.
                Sync,
                CopyDone,
                CopyIn(false),
                Sync,
                CommandComplete(Some(1)),
                Busy(true),
                Ready(b'I'),
                Busy(false),
                InFlight(false),
            ],
        ),
        (
            "copy-in by simple Query",
            &[
                Query(1, &[]),
                CopyInResponse,
                CopyIn(true),
                CopyDone,
                CopyIn(false),
                CommandComplete(Some(1)),
                Ready(b'I'),
                Busy(false),
                InFlight(false),
            ],
        ),
        (
            "copy-in that fails: an error ends copy-in mode",
            &[
                Query(1, &[]),
                CopyInResponse,
                CopyIn(true),
                Error(Some(1)),
                CopyIn(false),
                Ready(b'I'),
                Busy(false),
                InFlight(false),
            ],
        ),
        (
            "copy-out",
            &[
                Query(1, &[]),
                // CopyOutResponse, CopyData and CopyDone stream through.
                CommandComplete(Some(1)),
                Ready(b'I'),
                Parse("", Read),
                Bind("", ""),
                Execute(2),
                Sync,
                ParseComplete,
                BindComplete,
                CommandComplete(Some(2)),
                Ready(b'I'),
                Busy(false),
                InFlight(false),
            ],
        ),
        (
            "CopyDone sent before CopyInResponse",
            &[
                Query(1, &[]),
                CopyDone,
                CopyIn(false),
                Busy(true),
                CopyInResponse,
                CopyIn(false),
                CommandComplete(Some(1)),
                Ready(b'I'),
                Busy(false),
                InFlight(false),
                // Extended, with a Sync before and after the CopyDone.
                Parse("", Write),
                Bind("", ""),
                Execute(2),
                Sync,
                CopyDone,
                Sync,
                ParseComplete,
                BindComplete,
                CopyInResponse,
                CopyIn(false),
                CommandComplete(Some(2)),
                Ready(b'I'),
                Busy(false),
                InFlight(false),
            ],
        ),
        (
            "CopyDone before CopyInResponse, and the COPY fails",
            &[
                Parse("", Write),
                Bind("", ""),
                Execute(1),
                CopyDone,
                Sync,
                ParseComplete,
                BindComplete,
                // The server skips the CopyDone with everything else up to Sync.
                Error(Some(1)),
                CopyIn(false),
                Busy(true),
                InFlight(true),
                Ready(b'I'),
                Busy(false),
                InFlight(false),
            ],
        ),
        (
            "a CopyDone outside COPY, then an extended query (a confused client)",
            &[
                CopyDone,
                Busy(true),
                Parse("s", Read),
                Bind("p", "s"),
                Execute(1),
                Sync,
                // The stray CopyDone is where the ParseComplete is expected: a lost track.
                ParseComplete,
                Stmt("s", None),
                BindComplete,
                Portal("p", None),
                // The Execute keeps its own result (before the single queue, the forgotten
                // CopyEnd still stood in front of it in the in-flight queue: duration 0).
                CommandComplete(Some(1)),
                Ready(b'I'),
                Busy(false),
                InFlight(false),
            ],
        ),
    ];
    for (name, steps) in scenarios {
        run(name, steps);
    }
}
