//! What each prepared statement and portal of a session would run, so an Execute can be
//! classified without re-reading its text.
//!
//! The proxy cannot know whether upstream accepted a Parse, Bind or Close until the matching
//! completion arrives, and after an error PostgreSQL silently discards everything up to Sync.
//! A name that looked harmless in flight must never shadow a sensitive statement the server
//! still holds under that name, so:
//! - effects are queued in wire order and applied only when upstream confirms them
//!   (ParseComplete, BindComplete, CloseComplete, or a Query's ReadyForQuery without error);
//! - an error drops the queued effects up to the next Sync, exactly as the server does;
//! - a look-up takes the most sensitive of the confirmed entry and every queued one, and a
//!   name with no entry at all is `unknown`.
//!
//! Prepared statements created by SQL `PREPARE` share the protocol's namespace, as in
//! PostgreSQL. Portals die at the end of a transaction; a simple Query destroys the unnamed
//! statement and portal.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::policy::Class;
use crate::policy::sql::SqlAnalysis;

/// A statement the session prepared (or a portal bound to one).
#[derive(Debug)]
pub struct Stmt {
    pub text: Arc<str>,
    pub analysis: Arc<SqlAnalysis>,
    pub class: Class,
}

enum Pending {
    Parse(String, Arc<Stmt>),
    /// `None`: bound to a statement the proxy does not know.
    Bind(String, Option<Arc<Stmt>>),
    Close(u8, String),
    /// A simple Query or FunctionCall: ends with ReadyForQuery.
    Query {
        prepares: Vec<(String, Arc<Stmt>)>,
        errored: bool,
    },
    Sync,
    /// The client ended a COPY FROM STDIN (CopyDone or CopyFail).
    CopyEnd,
}

impl Pending {
    fn is_marker(&self) -> bool {
        matches!(self, Pending::Query { .. } | Pending::Sync)
    }
}

#[derive(Default)]
pub struct Tracker {
    stmts: HashMap<String, Arc<Stmt>>,
    portals: HashMap<String, Arc<Stmt>>,
    pending: VecDeque<Pending>,
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
    pub fn stmt(&self, name: &str) -> Option<Arc<Stmt>> {
        let mut best = self.stmts.get(name).cloned();
        for p in &self.pending {
            match p {
                Pending::Parse(n, s) if n == name => best = most_sensitive(best, s),
                Pending::Query { prepares, .. } => {
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
    pub fn portal(&self, name: &str) -> Option<Arc<Stmt>> {
        let mut best = self.portals.get(name).cloned();
        for p in &self.pending {
            if let Pending::Bind(n, s) = p
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

    pub fn parse(&mut self, name: &str, stmt: Arc<Stmt>) {
        self.pending
            .push_back(Pending::Parse(name.to_string(), stmt));
    }

    pub fn bind(&mut self, portal: &str, stmt: &str) {
        let s = self.stmt(stmt);
        self.pending.push_back(Pending::Bind(portal.to_string(), s));
    }

    pub fn close(&mut self, kind: u8, name: &str) {
        self.pending
            .push_back(Pending::Close(kind, name.to_string()));
    }

    /// A simple Query (or FunctionCall) goes upstream. SQL-level DEALLOCATE is applied at once
    /// (forgetting a name only makes it `unknown`); PREPAREs wait for success.
    pub fn query(&mut self, prepares: Vec<(String, Arc<Stmt>)>, deallocates: &[Option<String>]) {
        self.stmts.remove("");
        self.portals.remove("");
        for d in deallocates {
            match d {
                Some(n) => {
                    self.stmts.remove(n);
                }
                None => self.stmts.clear(),
            }
        }
        self.pending.push_back(Pending::Query {
            prepares,
            errored: false,
        });
    }

    pub fn sync(&mut self) {
        if !self.copy_in {
            self.pending.push_back(Pending::Sync);
        }
    }

    /// The client sent CopyDone or CopyFail.
    pub fn copy_end(&mut self) {
        if self.copy_in {
            self.copy_in = false;
        } else {
            self.pending.push_back(Pending::CopyEnd);
        }
    }

    /// CopyInResponse: every Sync the client sent after the COPY's Execute and before its
    /// CopyDone/CopyFail is ignored by the server, so no ReadyForQuery will answer it.
    pub fn copy_in_started(&mut self) {
        let mut i = 0;
        while i < self.pending.len() {
            match self.pending[i] {
                Pending::Sync => {
                    self.pending.remove(i);
                }
                Pending::CopyEnd => {
                    self.pending.remove(i);
                    return;
                }
                _ => i += 1,
            }
        }
        self.copy_in = true;
    }

    /// In copy-in mode (the server ignores Sync until CopyDone/CopyFail).
    pub fn copy_in(&self) -> bool {
        self.copy_in
    }

    /// Is anything still waiting for a ReadyForQuery?
    pub fn busy(&self) -> bool {
        !self.pending.is_empty()
    }

    fn pop_front_if(&mut self, f: impl Fn(&Pending) -> bool) -> Option<Pending> {
        if self.pending.front().is_some_and(f) {
            self.pending.pop_front()
        } else {
            None
        }
    }

    pub fn parse_complete(&mut self) {
        match self.pop_front_if(|p| matches!(p, Pending::Parse(..))) {
            Some(Pending::Parse(n, s)) => {
                self.stmts.insert(n, s);
            }
            _ => self.lost_track(),
        }
    }

    pub fn bind_complete(&mut self) {
        match self.pop_front_if(|p| matches!(p, Pending::Bind(..))) {
            Some(Pending::Bind(n, Some(s))) => {
                self.portals.insert(n, s);
            }
            Some(Pending::Bind(n, None)) => {
                self.portals.remove(&n);
            }
            _ => self.lost_track(),
        }
    }

    pub fn close_complete(&mut self) {
        match self.pop_front_if(|p| matches!(p, Pending::Close(..))) {
            Some(Pending::Close(b'S', n)) => {
                self.stmts.remove(&n);
            }
            Some(Pending::Close(_, n)) => {
                self.portals.remove(&n);
            }
            _ => self.lost_track(),
        }
    }

    /// An ErrorResponse: the server skips to the next Sync.
    pub fn error(&mut self) {
        // An error ends copy-in mode on the server's side.
        self.copy_in = false;
        match self.pending.front_mut() {
            Some(Pending::Query { errored, .. }) => *errored = true,
            _ => {
                while self.pending.front().is_some_and(|p| !p.is_marker()) {
                    self.pending.pop_front();
                }
            }
        }
    }

    /// ReadyForQuery with transaction status `status`.
    pub fn ready(&mut self, status: u8) {
        while let Some(p) = self.pending.pop_front() {
            match p {
                Pending::Query { prepares, errored } => {
                    if !errored {
                        for (n, s) in prepares {
                            self.stmts.insert(n, s);
                        }
                    }
                    break;
                }
                Pending::Sync => break,
                _ => {}
            }
        }
        if status == b'I' {
            self.portals.clear();
        }
    }

    /// The server's answers no longer match what we sent: forget everything, so every
    /// name is `unknown` (fail closed) until it is prepared again.
    fn lost_track(&mut self) {
        tracing::warn!("statement tracking lost sync with the server; forgetting all names");
        self.stmts.clear();
        self.portals.clear();
        self.pending.retain(|p| p.is_marker());
    }
}
