//! What each prepared statement and portal of a session would run, so an Execute can be
//! classified without re-reading its text; and the one queue of what the session sent
//! upstream and still awaits an answer for, in wire order.
//!
//! The proxy cannot know whether upstream accepted a Parse, Bind or Close until the matching
//! completion arrives, and after an error PostgreSQL silently discards everything up to Sync.
//! A name that looked harmless in flight must never shadow a sensitive statement the server
//! still holds under that name, so:
//! - effects are queued in wire order and applied only when upstream confirms them
//!   (ParseComplete, BindComplete, CloseComplete, or a Query's ReadyForQuery without error);
//! - an error drops the queued effects up to the next Sync, exactly as the server does;
//! - a look-up takes the most sensitive of the confirmed entry and every queued one, and a
//!   name with no entry at all is `unknown`;
//! - when the server's answers no longer match the queue, every name is forgotten
//!   (`unknown`, fail closed) until it is prepared again.
//!
//! Prepared statements created by SQL `PREPARE` share the protocol's namespace, as in
//! PostgreSQL. Every name is a [`Name`]: the bytes the server keys it by, never text. Portals die at the end of a transaction; a simple Query destroys the unnamed
//! statement and portal.
//!
//! The same queue says which statement a CommandComplete or ErrorResponse is the result of
//! (for the audit trail, with its duration): the oldest simple Query, Execute,
//! FunctionCall, Sync or CopyEnd still queued. How each answer pops the queue:
//!
//! | from the server | pops |
//! | --- | --- |
//! | ParseComplete, BindComplete, CloseComplete | the oldest entry but Executes, if it is that Parse, Bind or Close; anything else is a lost track |
//! | CommandComplete, ErrorResponse | the result of the oldest Query/Execute/FunctionCall/Sync/CopyEnd; an Execute is popped by it |
//! | EmptyQueryResponse, PortalSuspended | that oldest entry, if it is an Execute |
//! | ErrorResponse (also) | the Parse/Bind/Close/CopyEnd entries up to the next Query, FunctionCall or Sync |
//! | ReadyForQuery | everything up to and including the first Query, FunctionCall or Sync |
//! | CopyInResponse | the Syncs up to the first CopyEnd, and that CopyEnd (the server ignores Sync until the copy ends) |

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use crate::policy::Class;
use crate::policy::sql::{self, SqlAnalysis};

/// A statement or portal name exactly as PostgreSQL keys it: bytes, at most
/// [`sql::NAME_MAX_BYTES`] (NAMEDATALEN − 1) of them.
///
/// The server keeps prepared statements and portals in hash tables whose keys are copied
/// with `strlcpy` into NAMEDATALEN bytes and compared with `strncmp` over 63 bytes
/// (`string_compare` in dynahash.c): a name from Parse, Bind, Execute, Close or Describe is
/// cut at byte 63, even in the middle of a character, and two names sharing their first 63
/// bytes are the same statement. A name from SQL (`PREPARE`, `EXECUTE`, `DEALLOCATE`) is an
/// identifier the lexer already cut at a character boundary (see
/// [`sql::truncate_identifier`]); the hash table then keys it by its bytes as well.
///
/// The bytes are the client's: exact when client_encoding is UTF8 (the upstream encoding)
/// or SQL_ASCII, which PostgreSQL passes through unconverted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Name(Box<[u8]>);

impl Name {
    /// A name from a protocol message (Parse, Bind, Execute, Close, Describe): its first 63
    /// bytes.
    pub fn wire(bytes: &[u8]) -> Name {
        Name(bytes[..bytes.len().min(sql::NAME_MAX_BYTES)].into())
    }

    /// A name from SQL text (already case-folded unless quoted): truncated as the lexer
    /// truncates identifiers.
    pub fn sql(ident: &str) -> Name {
        Name(sql::truncate_identifier(ident).as_bytes().into())
    }

    /// The unnamed statement or portal.
    pub fn unnamed() -> Name {
        Name::default()
    }
}

/// A statement the session prepared (or a portal bound to one).
#[derive(Debug)]
pub struct Stmt {
    pub text: Arc<str>,
    pub analysis: Arc<SqlAnalysis>,
    pub class: Class,
}

/// One message sent upstream whose answer is still to come.
enum Awaiting {
    /// Answered by ParseComplete.
    Parse(Name, Arc<Stmt>),
    /// Answered by BindComplete. `None`: bound to a statement the proxy does not know.
    Bind(Name, Option<Arc<Stmt>>),
    /// Answered by CloseComplete; `b'S'` a statement, `b'P'` a portal.
    Close(u8, Name),
    /// A simple Query: every CommandComplete/ErrorResponse until its ReadyForQuery is a
    /// result of it; its PREPAREs take effect at that ReadyForQuery unless it failed.
    Query {
        prepares: Vec<(Name, Arc<Stmt>)>,
        errored: bool,
        started: Instant,
    },
    /// A refused simple Query or FunctionCall, replaced upstream by a Query that fails:
    /// ends at ReadyForQuery and is the result of nothing.
    Refused,
    /// An Execute: ends with its CommandComplete, ErrorResponse, EmptyQueryResponse or
    /// PortalSuspended.
    Execute(Instant),
    /// A FunctionCall: ends at ReadyForQuery.
    FunctionCall,
    /// A Sync: ends at ReadyForQuery.
    Sync,
    /// CopyDone/CopyFail sent before the server said copy-in started (see
    /// [`Tracker::copy_in_started`]).
    CopyEnd,
}

impl Awaiting {
    /// Ends at ReadyForQuery, and the server's skipping after an error stops here.
    fn is_marker(&self) -> bool {
        matches!(
            self,
            Awaiting::Query { .. } | Awaiting::Refused | Awaiting::FunctionCall | Awaiting::Sync
        )
    }

    /// Only changes names: never the statement a result belongs to.
    fn is_name_effect(&self) -> bool {
        matches!(
            self,
            Awaiting::Parse(..) | Awaiting::Bind(..) | Awaiting::Close(..)
        )
    }
}

#[derive(Default)]
pub struct Tracker {
    stmts: HashMap<Name, Arc<Stmt>>,
    portals: HashMap<Name, Arc<Stmt>>,
    awaiting: VecDeque<Awaiting>,
    /// The server is in copy-in mode and the client has not ended the copy yet: the server
    /// ignores Sync (and Flush) until then.
    copy_in: bool,
}

fn most_sensitive(a: Option<Arc<Stmt>>, b: &Arc<Stmt>) -> Option<Arc<Stmt>> {
    match a {
        Some(a) if a.class >= b.class => Some(a),
        _ => Some(b.clone()),
    }
}

impl Tracker {
    /// The statement `name` may refer to; `None` means unknown.
    pub fn stmt(&self, name: &Name) -> Option<Arc<Stmt>> {
        let mut best = self.stmts.get(name).cloned();
        for a in &self.awaiting {
            match a {
                Awaiting::Parse(n, s) if n == name => best = most_sensitive(best, s),
                Awaiting::Query { prepares, .. } => {
                    for (_, s) in prepares.iter().filter(|(n, _)| n == name) {
                        best = most_sensitive(best, s);
                    }
                }
                _ => {}
            }
        }
        best
    }

    /// The statement portal `name` would run; `None` means unknown.
    pub fn portal(&self, name: &Name) -> Option<Arc<Stmt>> {
        let mut best = self.portals.get(name).cloned();
        for a in &self.awaiting {
            if let Awaiting::Bind(n, s) = a
                && n == name
            {
                match s {
                    None => return None,
                    Some(s) => best = most_sensitive(best, s),
                }
            }
        }
        best
    }

    pub fn parse(&mut self, name: Name, stmt: Arc<Stmt>) {
        self.awaiting.push_back(Awaiting::Parse(name, stmt));
    }

    pub fn bind(&mut self, portal: Name, stmt: &Name) {
        let s = self.stmt(stmt);
        self.awaiting.push_back(Awaiting::Bind(portal, s));
    }

    pub fn close(&mut self, kind: u8, name: Name) {
        self.awaiting.push_back(Awaiting::Close(kind, name));
    }

    pub fn execute(&mut self, started: Instant) {
        self.awaiting.push_back(Awaiting::Execute(started));
    }

    /// A simple Query goes upstream. SQL-level DEALLOCATE is applied at once (forgetting a
    /// name only makes it `unknown`); PREPAREs wait for success.
    pub fn query(
        &mut self,
        prepares: Vec<(Name, Arc<Stmt>)>,
        deallocates: &[Option<Name>],
        started: Instant,
    ) {
        self.drop_unnamed();
        for d in deallocates {
            match d {
                Some(n) => {
                    self.stmts.remove(n);
                }
                None => self.stmts.clear(),
            }
        }
        self.awaiting.push_back(Awaiting::Query {
            prepares,
            errored: false,
            started,
        });
    }

    /// A FunctionCall goes upstream (treated like a simple Query: the unnamed statement and
    /// portal are forgotten).
    pub fn function_call(&mut self) {
        self.drop_unnamed();
        self.awaiting.push_back(Awaiting::FunctionCall);
    }

    /// The failing Query that stands for a refused simple Query or FunctionCall goes
    /// upstream.
    pub fn refused(&mut self) {
        self.drop_unnamed();
        self.awaiting.push_back(Awaiting::Refused);
    }

    fn drop_unnamed(&mut self) {
        self.stmts.remove(&Name::unnamed());
        self.portals.remove(&Name::unnamed());
    }

    pub fn sync(&mut self) {
        if !self.copy_in {
            self.awaiting.push_back(Awaiting::Sync);
        }
    }

    /// The client sent CopyDone or CopyFail.
    pub fn copy_end(&mut self) {
        if self.copy_in {
            self.copy_in = false;
        } else {
            self.awaiting.push_back(Awaiting::CopyEnd);
        }
    }

    /// CopyInResponse: every Sync the client sent after the COPY's Execute and before its
    /// CopyDone/CopyFail is ignored by the server, so no ReadyForQuery will answer it.
    pub fn copy_in_started(&mut self) {
        let mut i = 0;
        while i < self.awaiting.len() {
            match self.awaiting[i] {
                Awaiting::Sync => {
                    self.awaiting.remove(i);
                }
                Awaiting::CopyEnd => {
                    self.awaiting.remove(i);
                    return;
                }
                _ => i += 1,
            }
        }
        self.copy_in = true;
    }

    /// In copy-in mode (the server ignores Sync until CopyDone/CopyFail).
    #[cfg(test)]
    pub fn copy_in(&self) -> bool {
        self.copy_in
    }

    /// Is anything still waiting for a ReadyForQuery? An Execute alone does not count (the
    /// statement maps never waited for one).
    pub fn busy(&self) -> bool {
        self.awaiting
            .iter()
            .any(|a| !matches!(a, Awaiting::Execute(_)))
    }

    /// Is a statement, Sync or CopyEnd still unanswered (not only Parse, Bind or Close)?
    pub fn in_flight(&self) -> bool {
        self.awaiting.iter().any(|a| !a.is_name_effect())
    }

    /// The oldest entry a completion or an error answers: Executes are answered by their
    /// own results, never by these.
    fn oldest_but_executes(&self) -> Option<usize> {
        self.awaiting
            .iter()
            .position(|a| !matches!(a, Awaiting::Execute(_)))
    }

    /// Pop the oldest entry but Executes if `f` accepts it.
    fn pop_completed(&mut self, f: impl Fn(&Awaiting) -> bool) -> Option<Awaiting> {
        let i = self.oldest_but_executes()?;
        if f(&self.awaiting[i]) {
            self.awaiting.remove(i)
        } else {
            None
        }
    }

    pub fn parse_complete(&mut self) {
        match self.pop_completed(|a| matches!(a, Awaiting::Parse(..))) {
            Some(Awaiting::Parse(n, s)) => {
                self.stmts.insert(n, s);
            }
            _ => self.lost_track(),
        }
    }

    pub fn bind_complete(&mut self) {
        match self.pop_completed(|a| matches!(a, Awaiting::Bind(..))) {
            Some(Awaiting::Bind(n, Some(s))) => {
                self.portals.insert(n, s);
            }
            Some(Awaiting::Bind(n, None)) => {
                self.portals.remove(&n);
            }
            _ => self.lost_track(),
        }
    }

    pub fn close_complete(&mut self) {
        match self.pop_completed(|a| matches!(a, Awaiting::Close(..))) {
            Some(Awaiting::Close(b'S', n)) => {
                self.stmts.remove(&n);
            }
            Some(Awaiting::Close(_, n)) => {
                self.portals.remove(&n);
            }
            _ => self.lost_track(),
        }
    }

    /// A CommandComplete or ErrorResponse: when the statement it is the result of started
    /// (`None`: no statement, or one that is not timed). The result ends an Execute.
    pub fn result(&mut self) -> Option<Instant> {
        let i = self.awaiting.iter().position(|a| !a.is_name_effect())?;
        match self.awaiting[i] {
            Awaiting::Query { started, .. } => Some(started),
            Awaiting::Execute(started) => {
                self.awaiting.remove(i);
                Some(started)
            }
            _ => None,
        }
    }

    /// EmptyQueryResponse or PortalSuspended: the end of an Execute.
    pub fn portal_done(&mut self) {
        if let Some(i) = self.awaiting.iter().position(|a| !a.is_name_effect())
            && matches!(self.awaiting[i], Awaiting::Execute(_))
        {
            self.awaiting.remove(i);
        }
    }

    /// An ErrorResponse (after [`Tracker::result`], if it is one): the server skips to the
    /// next Sync.
    pub fn error(&mut self) {
        // An error ends copy-in mode on the server's side.
        self.copy_in = false;
        let Some(i) = self.oldest_but_executes() else {
            return;
        };
        match &mut self.awaiting[i] {
            Awaiting::Query { errored, .. } => *errored = true,
            a if a.is_marker() => {}
            _ => {
                // Executes stay: ReadyForQuery pops them.
                let mut j = i;
                while j < self.awaiting.len() && !self.awaiting[j].is_marker() {
                    if matches!(self.awaiting[j], Awaiting::Execute(_)) {
                        j += 1;
                    } else {
                        self.awaiting.remove(j);
                    }
                }
            }
        }
    }

    /// ReadyForQuery with transaction status `status`.
    pub fn ready(&mut self, status: u8) {
        while let Some(a) = self.awaiting.pop_front() {
            match a {
                Awaiting::Query {
                    prepares, errored, ..
                } => {
                    if !errored {
                        for (n, s) in prepares {
                            self.stmts.insert(n, s);
                        }
                    }
                    break;
                }
                a if a.is_marker() => break,
                _ => {}
            }
        }
        if status == b'I' {
            self.portals.clear();
        }
    }

    /// The server's answers no longer match what we sent: forget everything, so every
    /// name is `unknown` (fail closed) until it is prepared again. What ends at
    /// ReadyForQuery stays, and so do the Executes (each ends with its own result).
    fn lost_track(&mut self) {
        tracing::warn!("statement tracking lost sync with the server; forgetting all names");
        self.stmts.clear();
        self.portals.clear();
        self.awaiting
            .retain(|a| a.is_marker() || matches!(a, Awaiting::Execute(_)));
    }
}

#[cfg(test)]
mod name_tests {
    use super::Name;

    #[test]
    fn wire_names_are_their_first_63_bytes() {
        let a = format!("{}A", "s".repeat(63));
        let b = format!("{}B", "s".repeat(63));
        assert_eq!(Name::wire(a.as_bytes()), Name::wire(b.as_bytes()));
        assert_eq!(
            Name::wire(a.as_bytes()),
            Name::wire("s".repeat(63).as_bytes())
        );
        let c = format!("{}A", "s".repeat(62));
        assert_ne!(Name::wire(c.as_bytes()), Name::wire(a.as_bytes()));
        assert_eq!(Name::wire(b""), Name::unnamed());
    }

    #[test]
    fn wire_names_are_cut_by_bytes_even_inside_a_character() {
        // 62 bytes then "é" (C3 A9) and "è" (C3 A8): the server keeps 62 bytes and C3.
        let e1 = format!("{}é", "s".repeat(62));
        let e2 = format!("{}è", "s".repeat(62));
        assert_eq!(Name::wire(e1.as_bytes()), Name::wire(e2.as_bytes()));
        assert_ne!(
            Name::wire(e1.as_bytes()),
            Name::wire("s".repeat(62).as_bytes())
        );
    }

    #[test]
    fn wire_names_compare_bytes_not_lossy_text() {
        // Two LATIN1 names that decode lossily to the same text.
        assert_ne!(Name::wire(b"n\xe9"), Name::wire(b"n\xe8"));
    }

    #[test]
    fn sql_names_are_cut_on_a_character_boundary() {
        let a = format!("{}a", "s".repeat(63));
        assert_eq!(Name::sql(&a), Name::wire("s".repeat(63).as_bytes()));
        assert_eq!(Name::sql(&a), Name::wire(a.as_bytes()));
        // "é" would straddle bytes 63 and 64: the lexer drops it whole.
        let e = format!("{}éx", "s".repeat(62));
        assert_eq!(Name::sql(&e), Name::wire("s".repeat(62).as_bytes()));
        // A 3-byte character at bytes 62..65.
        let k = format!("{}€", "s".repeat(61));
        assert_eq!(Name::sql(&k), Name::wire("s".repeat(61).as_bytes()));
        let fits = format!("{}€", "s".repeat(60));
        assert_eq!(Name::sql(&fits), Name::wire(fits.as_bytes()));
    }
}
