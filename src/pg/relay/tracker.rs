//! What each prepared statement and portal of a session would run, so an Execute can be
//! classified without re-reading its text; and the one queue of what the session sent
//! upstream and still awaits an answer for, in wire order.
//!
//! The proxy cannot know whether upstream accepted a Parse, Bind or Close until the matching
//! completion arrives, and after an error PostgreSQL silently discards everything up to Sync.
//! A name that looked harmless in flight must never shadow a sensitive statement the server
//! still holds under that name, so:
//! - effects are queued in wire order and applied only when upstream confirms them
//!   (ParseComplete, BindComplete, CloseComplete, an Execute's CommandComplete, a Query's
//!   ReadyForQuery without error);
//! - an error drops the queued effects up to the next Sync, exactly as the server does;
//! - a look-up gives what the server will have when the message that looks runs: the
//!   latest queued change of that name, else the confirmed entry; a name with no entry at
//!   all is `unknown`;
//! - that is exact only while the latest change is in the *same* segment (no Sync, Query or
//!   FunctionCall after it): if it fails, the server skips the looking message too. A change
//!   in an earlier segment may fail and leave the old definition in place (a re-Parse of an
//!   existing name fails with 42P05 and the server keeps the old statement), so
//!   [`Tracker::stmt_pending`] / [`Tracker::portal_pending`] say the relay must wait for the
//!   server's answer before it looks (and before it forwards what looked);
//! - SQL `DEALLOCATE` (and a `PREPARE` in a failed statement) makes the name `unknown`;
//! - when the server's answers no longer match the queue, every name is forgotten
//!   (`unknown`, fail closed) until it is prepared again.
//!
//! Prepared statements created by SQL `PREPARE` share the protocol's namespace, as in
//! PostgreSQL, whether the PREPARE comes in a simple Query or in an executed portal. Every
//! name is a [`Name`]: the bytes the server keys it by, never text. Portals die at the end
//! of a transaction; a simple Query destroys the unnamed statement and portal.
//!
//! The same queue says which statement a CommandComplete or ErrorResponse is the result of
//! (for the audit trail, with its duration and the statement's audit record, which the
//! result joins when it can): the oldest simple Query, Execute, FunctionCall, Sync or
//! CopyEnd still queued. How each answer pops the queue:
//!
//! | from the server | pops |
//! | --- | --- |
//! | ParseComplete, BindComplete, CloseComplete | the oldest entry but Executes, if it is that Parse, Bind or Close; anything else is a lost track |
//! | CommandComplete, ErrorResponse | the result of the oldest Query/Execute/FunctionCall/Sync/CopyEnd; an Execute is popped by it |
//! | EmptyQueryResponse, PortalSuspended | that oldest entry, if it is an Execute |
//! | ErrorResponse (also) | the Parse/Bind/Close/CopyEnd entries up to the next Query, FunctionCall or Sync |
//! | ReadyForQuery | everything up to and including the first Query, FunctionCall or Sync (a Query's effects, and its dropping of the unnamed statement and portal, apply here, in wire order; an Execute still queued was skipped, and nothing of it applies) |
//! | CopyInResponse | the Syncs up to the first CopyEnd, and that CopyEnd (the server ignores Sync until the copy ends) |

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

pub use super::name::Name;
pub use super::prepared::{Origin, Stmt};
use crate::audit::StatementHandle;

/// When a statement went upstream, and its audit record, which its result may join
/// ([`crate::audit::Audit::record_result_in`]).
#[derive(Clone)]
pub struct Sent {
    pub at: Instant,
    pub statement: StatementHandle,
}

impl From<Instant> for Sent {
    /// A statement whose result joins nothing (recorded on its own).
    fn from(at: Instant) -> Sent {
        Sent {
            at,
            statement: StatementHandle::default(),
        }
    }
}

/// What running a statement does to the prepared-statement names, in text order.
#[derive(Debug, Clone)]
pub enum Effect {
    /// SQL `PREPARE name`.
    Prepare(Name, Arc<Stmt>),
    /// SQL `DEALLOCATE name`; `None`: `DEALLOCATE ALL` / `DISCARD ALL`.
    Deallocate(Option<Name>),
}

impl Effect {
    /// What this effect makes of `name`: `Some(Some(s))` defined as `s`, `Some(None)` gone.
    fn on(&self, name: &Name) -> Option<Option<Arc<Stmt>>> {
        match self {
            Effect::Prepare(n, s) if n == name => Some(Some(s.clone())),
            Effect::Deallocate(None) => Some(None),
            Effect::Deallocate(Some(n)) if n == name => Some(None),
            _ => None,
        }
    }
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
    /// result of it; its effects apply at that ReadyForQuery (a PREPARE only without error).
    Query {
        effects: Vec<Effect>,
        errored: bool,
        sent: Sent,
    },
    /// A refused simple Query or FunctionCall, replaced upstream by a Query that fails:
    /// ends at ReadyForQuery and is the result of nothing.
    Refused,
    /// An Execute: ends with its CommandComplete, ErrorResponse, EmptyQueryResponse or
    /// PortalSuspended; its effects apply with its result (a PREPARE only without error).
    Execute { sent: Sent, effects: Vec<Effect> },
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

    fn is_execute(&self) -> bool {
        matches!(self, Awaiting::Execute { .. })
    }

    /// A simple Query (or what stands for one) destroys the unnamed statement and portal.
    fn drops_unnamed(&self) -> bool {
        matches!(
            self,
            Awaiting::Query { .. } | Awaiting::Refused | Awaiting::FunctionCall
        )
    }

    /// What this message makes of statement `name`, if anything.
    fn stmt_change(&self, name: &Name) -> Option<Option<Arc<Stmt>>> {
        match self {
            Awaiting::Parse(n, s) if n == name => Some(Some(s.clone())),
            Awaiting::Close(b'S', n) if n == name => Some(None),
            Awaiting::Query { effects, .. } | Awaiting::Execute { effects, .. } => {
                let own = effects.iter().rev().find_map(|e| e.on(name));
                own.or_else(|| (self.drops_unnamed() && *name == Name::unnamed()).then_some(None))
            }
            a if a.drops_unnamed() && *name == Name::unnamed() => Some(None),
            _ => None,
        }
    }

    /// What this message makes of portal `name`, if anything.
    fn portal_change(&self, name: &Name) -> Option<Option<Arc<Stmt>>> {
        match self {
            Awaiting::Bind(n, s) if n == name => Some(s.clone()),
            Awaiting::Close(b'P', n) if n == name => Some(None),
            a if a.drops_unnamed() && *name == Name::unnamed() => Some(None),
            _ => None,
        }
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

/// Apply `effects` to the confirmed statements; a PREPARE only if it `succeeded` (a failed
/// one leaves the name `unknown`: the server may keep an older statement under it).
fn apply(stmts: &mut HashMap<Name, Arc<Stmt>>, effects: Vec<Effect>, succeeded: bool) {
    for e in effects {
        match e {
            Effect::Prepare(n, s) if succeeded => {
                stmts.insert(n, s);
            }
            Effect::Prepare(n, _) | Effect::Deallocate(Some(n)) => {
                stmts.remove(&n);
            }
            Effect::Deallocate(None) => stmts.clear(),
        }
    }
}

impl Tracker {
    /// The latest queued change that `change` finds, and whether the server may still
    /// answer it with an error that does not also skip the next message (a Sync, Query or
    /// FunctionCall lies at or after it).
    fn latest<T>(&self, change: impl Fn(&Awaiting) -> Option<T>) -> Option<(T, bool)> {
        let mut closed = false;
        for a in self.awaiting.iter().rev() {
            closed |= a.is_marker();
            if let Some(c) = change(a) {
                return Some((c, closed));
            }
        }
        None
    }

    /// The statement `name` will be when the next message runs; `None` means unknown.
    pub fn stmt(&self, name: &Name) -> Option<Arc<Stmt>> {
        match self.latest(|a| a.stmt_change(name)) {
            Some((s, _)) => s,
            None => self.stmts.get(name).cloned(),
        }
    }

    /// The statement portal `name` will run; `None` means unknown.
    pub fn portal(&self, name: &Name) -> Option<Arc<Stmt>> {
        match self.latest(|a| a.portal_change(name)) {
            Some((s, _)) => s,
            None => self.portals.get(name).cloned(),
        }
    }

    /// A change of statement `name` awaits an answer that decides what it is: a message
    /// naming it must wait for that answer (see the module docs).
    pub fn stmt_pending(&self, name: &Name) -> bool {
        self.latest(|a| a.stmt_change(name))
            .is_some_and(|(_, closed)| closed)
    }

    /// Like [`Tracker::stmt_pending`], for portal `name`.
    pub fn portal_pending(&self, name: &Name) -> bool {
        self.latest(|a| a.portal_change(name))
            .is_some_and(|(_, closed)| closed)
    }

    pub fn parse(&mut self, name: Name, stmt: Arc<Stmt>) {
        self.awaiting.push_back(Awaiting::Parse(name, stmt));
    }

    /// A Bind of `portal` to `stmt`; `after_names`: the Bind after the two names.
    pub fn bind(&mut self, portal: Name, stmt: &Name, after_names: &[u8]) {
        let s = self.stmt(stmt).map(|s| Stmt::bound(s, after_names));
        self.awaiting.push_back(Awaiting::Bind(portal, s));
    }

    pub fn close(&mut self, kind: u8, name: Name) {
        self.awaiting.push_back(Awaiting::Close(kind, name));
    }

    /// An Execute goes upstream; `effects`: what the portal's statement does to names.
    pub fn execute(&mut self, sent: Sent, effects: Vec<Effect>) {
        self.awaiting.push_back(Awaiting::Execute { sent, effects });
    }

    /// A simple Query goes upstream with what it does to names.
    pub fn query(&mut self, effects: Vec<Effect>, sent: Sent) {
        self.awaiting.push_back(Awaiting::Query {
            effects,
            errored: false,
            sent,
        });
    }

    /// A FunctionCall goes upstream (treated like a simple Query: the unnamed statement and
    /// portal are forgotten).
    pub fn function_call(&mut self) {
        self.awaiting.push_back(Awaiting::FunctionCall);
    }

    /// The failing Query that stands for a refused simple Query or FunctionCall goes
    /// upstream.
    pub fn refused(&mut self) {
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
        self.awaiting.iter().any(|a| !a.is_execute())
    }

    /// Is a statement, Sync or CopyEnd still unanswered (not only Parse, Bind or Close)?
    pub fn in_flight(&self) -> bool {
        self.awaiting.iter().any(|a| !a.is_name_effect())
    }

    /// The oldest entry a completion or an error answers: Executes are answered by their
    /// own results, never by these.
    fn oldest_but_executes(&self) -> Option<usize> {
        self.awaiting.iter().position(|a| !a.is_execute())
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

    /// A CommandComplete (`succeeded`) or ErrorResponse: when the statement it is the
    /// result of went upstream, and its audit record (`None`: no statement, or one that is
    /// not timed). The result ends an Execute, and applies what it did to names. Every
    /// result of a multi-statement Query gets that Query's record: the first may join it,
    /// the others are recorded on their own.
    pub fn result(&mut self, succeeded: bool) -> Option<Sent> {
        let i = self.awaiting.iter().position(|a| !a.is_name_effect())?;
        match &self.awaiting[i] {
            Awaiting::Query { sent, .. } => Some(sent.clone()),
            Awaiting::Execute { .. } => {
                // An error while a Parse, Bind or Close before it is unanswered is theirs:
                // the Execute was skipped (its result is still where the error is recorded).
                let skipped =
                    !succeeded && self.awaiting.iter().take(i).any(|a| a.is_name_effect());
                match self.awaiting.remove(i) {
                    Some(Awaiting::Execute { sent, effects }) => {
                        if !skipped {
                            apply(&mut self.stmts, effects, succeeded);
                        }
                        Some(sent)
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// EmptyQueryResponse or PortalSuspended: the end of an Execute.
    pub fn portal_done(&mut self) {
        if let Some(i) = self.awaiting.iter().position(|a| !a.is_name_effect())
            && self.awaiting[i].is_execute()
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
                    if self.awaiting[j].is_execute() {
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
        // Executes popped here were skipped by the server: nothing of theirs happened.
        while let Some(a) = self.awaiting.pop_front() {
            if a.drops_unnamed() {
                self.drop_unnamed();
            }
            match a {
                Awaiting::Query {
                    effects, errored, ..
                } => {
                    apply(&mut self.stmts, effects, !errored);
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
        self.awaiting.retain(|a| a.is_marker() || a.is_execute());
    }
}
