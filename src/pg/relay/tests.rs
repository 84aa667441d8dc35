//! The queue of what awaits the server, scenario by scenario, without sockets: what the
//! client sends, what the server answers, and what the tracker must then say (names,
//! which statement a result belongs to, whether anything is still awaited).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::policy::sql::SqlAnalysis;
use crate::policy::{Class, Classification};

use super::tracker::{Effect, Name, Stmt, Tracker};

mod copy;
mod redefinitions;

fn stmt(name: &str, class: Class) -> Arc<Stmt> {
    Arc::new(Stmt {
        text: Arc::from(format!("-- {name}").as_str()),
        analysis: Arc::new(SqlAnalysis {
            classification: Classification::bare(class, "test"),
            base_class: class,
            effects: Vec::new(),
        }),
        class,
        parameters: Default::default(),
        origin: Default::default(),
    })
}

/// One step of a scenario: what the client sends, what the server answers, what must hold.
/// Statements that record results are numbered; a result names the number it belongs to
/// (`None`: recorded without a statement, duration 0).
#[derive(Debug, Clone, Copy)]
pub(super) enum Step {
    // Client → server.
    Parse(&'static str, Class),
    Bind(&'static str, &'static str),
    Close(u8, &'static str),
    Execute(u32),
    /// An Execute of a portal whose statement is SQL `PREPARE name` of this class.
    ExecutePrepare(u32, &'static str, Class),
    /// An Execute of a portal whose statement is SQL `DEALLOCATE name`.
    ExecuteDeallocate(u32, &'static str),
    Query(u32, &'static [(&'static str, Class)]),
    Deallocate(u32, Option<&'static str>),
    FunctionCall,
    RefusedQuery,
    Sync,
    CopyDone,
    // Server → client.
    ParseComplete,
    BindComplete,
    CloseComplete,
    CommandComplete(Option<u32>),
    Error(Option<u32>),
    /// The ErrorResponse of a refused statement (rewritten, so no result recorded).
    RefusalError,
    EmptyQuery,
    PortalSuspended,
    CopyInResponse,
    Ready(u8),
    // Checks.
    Stmt(&'static str, Option<Class>),
    Portal(&'static str, Option<Class>),
    /// A message naming this statement must wait for the server's answer.
    StmtPending(&'static str, bool),
    PortalPending(&'static str, bool),
    Busy(bool),
    InFlight(bool),
    CopyIn(bool),
}

use Class::{Read, Write};
use Step::*;

fn wire(n: &str) -> Name {
    Name::wire(n.as_bytes())
}

/// Drive the tracker the way the relay does, checking as told.
pub(super) fn run(name: &str, steps: &[Step]) {
    let base = Instant::now();
    let at = |n: u32| base + Duration::from_millis(u64::from(n));
    let mut t = Tracker::default();
    for (i, step) in steps.iter().enumerate() {
        let what = format!("{name}, step {i} ({step:?})");
        match *step {
            Parse(n, c) => t.parse(wire(n), stmt(n, c)),
            Bind(p, s) => t.bind(wire(p), &wire(s), &[0, 0, 0, 0, 0, 0]),
            Close(k, n) => t.close(k, wire(n)),
            Execute(n) => t.execute(at(n).into(), Vec::new()),
            ExecutePrepare(n, name, c) => t.execute(
                at(n).into(),
                vec![Effect::Prepare(Name::sql(name), stmt(name, c))],
            ),
            ExecuteDeallocate(n, name) => t.execute(
                at(n).into(),
                vec![Effect::Deallocate(Some(Name::sql(name)))],
            ),
            Query(n, prepares) => {
                let prepares = prepares
                    .iter()
                    .map(|(name, c)| Effect::Prepare(Name::sql(name), stmt(name, *c)))
                    .collect();
                t.query(prepares, at(n).into());
            }
            Deallocate(n, name) => {
                t.query(vec![Effect::Deallocate(name.map(Name::sql))], at(n).into())
            }
            FunctionCall => t.function_call(),
            RefusedQuery => t.refused(),
            Sync => t.sync(),
            CopyDone => t.copy_end(),
            ParseComplete => t.parse_complete(),
            BindComplete => t.bind_complete(),
            CloseComplete => t.close_complete(),
            CommandComplete(n) => assert_eq!(t.result(true).map(|s| s.at), n.map(at), "{what}"),
            Error(n) => {
                // The relay records the result first; the error then drops what the server
                // skips.
                assert_eq!(t.result(false).map(|s| s.at), n.map(at), "{what}");
                t.error();
            }
            RefusalError => t.error(),
            EmptyQuery | PortalSuspended => t.portal_done(),
            CopyInResponse => t.copy_in_started(),
            Ready(s) => t.ready(s),
            Stmt(n, c) => assert_eq!(t.stmt(&wire(n)).map(|s| s.class), c, "{what}"),
            Portal(n, c) => assert_eq!(t.portal(&wire(n)).map(|s| s.class), c, "{what}"),
            StmtPending(n, b) => assert_eq!(t.stmt_pending(&wire(n)), b, "{what}"),
            PortalPending(n, b) => assert_eq!(t.portal_pending(&wire(n)), b, "{what}"),
            Busy(b) => assert_eq!(t.busy(), b, "{what}"),
            InFlight(b) => assert_eq!(t.in_flight(), b, "{what}"),
            CopyIn(b) => assert_eq!(t.copy_in(), b, "{what}"),
        }
    }
}

#[test]
fn queue_scenarios() {
    let scenarios: &[(&str, &[Step])] = &[
        (
            "Parse/Bind/Execute/Sync succeed",
            &[
                Parse("s1", Write),
                Stmt("s1", Some(Write)),
                Bind("p1", "s1"),
                Portal("p1", Some(Write)),
                Execute(1),
                Sync,
                Busy(true),
                InFlight(true),
                ParseComplete,
                BindComplete,
                Busy(true),
                CommandComplete(Some(1)),
                Ready(b'T'),
                Stmt("s1", Some(Write)),
                Portal("p1", Some(Write)),
                Busy(false),
                InFlight(false),
                Bind("p2", "s1"),
                Execute(2),
                Sync,
                BindComplete,
                CommandComplete(Some(2)),
                Ready(b'I'),
                Stmt("s1", Some(Write)),
                // Portals end with the transaction.
                Portal("p1", None),
                Portal("p2", None),
                Busy(false),
                InFlight(false),
            ],
        ),
        (
            "Parse, Bind, Execute and Flush, no Sync yet",
            &[
                Parse("s1", Read),
                Bind("", "s1"),
                Execute(1),
                ParseComplete,
                BindComplete,
                // Only the Execute awaits the server: not counted as busy.
                Busy(false),
                InFlight(true),
                CommandComplete(Some(1)),
                InFlight(false),
            ],
        ),
        (
            "an error at Parse in a pipeline",
            &[
                Parse("s0", Read),
                Sync,
                ParseComplete,
                Ready(b'I'),
                Stmt("s0", Some(Read)),
                // The pipeline: a Parse that fails, then statements the server skips.
                Parse("s0", Write),
                Bind("p1", "s0"),
                Execute(1),
                Parse("s2", Read),
                Bind("p2", "s2"),
                Execute(2),
                Sync,
                // Queued in this segment: the latest change is what a message here sees.
                Stmt("s0", Some(Write)),
                Portal("p1", Some(Write)),
                Stmt("s2", Some(Read)),
                // The Parse's error is recorded as the result of the first Execute.
                Error(Some(1)),
                Stmt("s0", Some(Read)),
                Portal("p1", None),
                Stmt("s2", None),
                Portal("p2", None),
                Busy(true),
                Ready(b'I'),
                Busy(false),
                InFlight(false),
                Stmt("s0", Some(Read)),
                Stmt("s2", None),
            ],
        ),
        (
            "an error at Sync (a deferred constraint at the implicit commit)",
            &[
                Parse("", Write),
                Bind("", ""),
                Execute(1),
                Sync,
                ParseComplete,
                BindComplete,
                CommandComplete(Some(1)),
                Error(None),
                Busy(true),
                Ready(b'I'),
                Busy(false),
                InFlight(false),
                Stmt("", Some(Write)),
            ],
        ),
        (
            "simple Query with PREPARE, then an error",
            &[
                Query(1, &[("q", Write)]),
                Stmt("q", Some(Write)),
                // PREPARE's CommandComplete, then the next statement in the string fails.
                CommandComplete(Some(1)),
                Error(Some(1)),
                Busy(true),
                Ready(b'I'),
                Busy(false),
                InFlight(false),
                // Not confirmed: unknown.
                Stmt("q", None),
                Query(2, &[("r", Read)]),
                CommandComplete(Some(2)),
                Ready(b'I'),
                Stmt("r", Some(Read)),
                Deallocate(3, Some("r")),
                // Forgotten at once.
                Stmt("r", None),
                CommandComplete(Some(3)),
                Ready(b'I'),
                Stmt("r", None),
            ],
        ),
        (
            "a simple Query destroys the unnamed statement and portal",
            &[
                Parse("", Read),
                Bind("", ""),
                Sync,
                ParseComplete,
                BindComplete,
                Ready(b'T'),
                Stmt("", Some(Read)),
                Portal("", Some(Read)),
                Query(1, &[]),
                Stmt("", None),
                Portal("", None),
                CommandComplete(Some(1)),
                Ready(b'T'),
            ],
        ),
        (
            "Close of a statement and of a portal",
            &[
                Parse("s", Write),
                Bind("p", "s"),
                Sync,
                ParseComplete,
                BindComplete,
                Ready(b'T'),
                Close(b'P', "p"),
                // A message after it in the same segment finds it closed (if the Close
                // fails, the server skips that message too).
                Portal("p", None),
                PortalPending("p", false),
                Close(b'S', "s"),
                Sync,
                // After a Sync only the server's answer says: wait for it.
                PortalPending("p", true),
                StmtPending("s", true),
                CloseComplete,
                Portal("p", None),
                PortalPending("p", false),
                StmtPending("s", true),
                CloseComplete,
                Stmt("s", None),
                StmtPending("s", false),
                Ready(b'T'),
                Busy(false),
            ],
        ),
        (
            "unknown names and a lost track",
            &[
                Bind("p", "nosuch"),
                Portal("p", None),
                Sync,
                Error(None),
                Ready(b'I'),
                Portal("p", None),
                Busy(false),
                Parse("s", Read),
                Sync,
                ParseComplete,
                Ready(b'I'),
                Stmt("s", Some(Read)),
                // A ParseComplete that answers nothing: forget every name.
                ParseComplete,
                Stmt("s", None),
            ],
        ),
        (
            "Execute ended by EmptyQueryResponse or PortalSuspended",
            &[
                Parse("", Read),
                Bind("", ""),
                Execute(1),
                Execute(2),
                Sync,
                ParseComplete,
                BindComplete,
                PortalSuspended,
                CommandComplete(Some(2)),
                Ready(b'I'),
                InFlight(false),
                Parse("", Read),
                Bind("", ""),
                Execute(3),
                Execute(4),
                Sync,
                ParseComplete,
                BindComplete,
                EmptyQuery,
                CommandComplete(Some(4)),
                Ready(b'I'),
                InFlight(false),
                Busy(false),
            ],
        ),
        (
            "FunctionCall",
            &[
                Parse("", Read),
                Sync,
                ParseComplete,
                Ready(b'I'),
                FunctionCall,
                // Like a simple Query, it forgets the unnamed statement.
                Stmt("", None),
                Busy(true),
                InFlight(true),
                Ready(b'I'),
                Busy(false),
                InFlight(false),
                FunctionCall,
                Error(None),
                Ready(b'I'),
                Busy(false),
                InFlight(false),
            ],
        ),
        (
            "a refused simple Query",
            &[
                Parse("", Read),
                Sync,
                ParseComplete,
                Ready(b'I'),
                RefusedQuery,
                Stmt("", None),
                Busy(true),
                InFlight(true),
                RefusalError,
                Ready(b'I'),
                Busy(false),
                InFlight(false),
                // Pipelined behind a Query, and in front of one.
                Query(1, &[]),
                RefusedQuery,
                Query(2, &[("x", Read)]),
                CommandComplete(Some(1)),
                Ready(b'T'),
                RefusalError,
                // Nothing of the refused Query's: results go to no statement.
                CommandComplete(None),
                Ready(b'E'),
                CommandComplete(Some(2)),
                Ready(b'T'),
                Stmt("x", Some(Read)),
                Busy(false),
                InFlight(false),
            ],
        ),
    ];
    for (name, steps) in scenarios {
        run(name, steps);
    }
}

/// 63 bytes, then a distinguishing letter: the server takes all three for one name.
const LONG_A: &str = "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssA";
const LONG_B: &str = "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssB";
const LONG_63: &str = "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss";

#[test]
fn names_sharing_63_bytes_are_one_name() {
    assert_eq!((LONG_A.len(), LONG_63.len()), (64, 63));
    run(
        "long statement names",
        &[
            Parse(LONG_A, Read),
            Sync,
            ParseComplete,
            Ready(b'I'),
            Stmt(LONG_B, Some(Read)),
            // The server refuses this Parse (the name exists): until it says so, the
            // look-up takes the worse of the two.
            Parse(LONG_B, Write),
            Stmt(LONG_A, Some(Write)),
            Stmt(LONG_63, Some(Write)),
            Bind(LONG_B, LONG_A),
            Portal(LONG_A, Some(Write)),
            Sync,
            Error(None),
            Ready(b'I'),
            Stmt(LONG_A, Some(Read)),
            Portal(LONG_B, None),
            // Closed under another spelling: gone.
            Close(b'S', LONG_63),
            Sync,
            CloseComplete,
            Ready(b'I'),
            Stmt(LONG_A, None),
        ],
    );
}
