//! What a statement will run, decided when it runs: every SQL `EXECUTE name` in it (also
//! inside `EXPLAIN ANALYZE`, and in a Parse'd statement run through a portal) is looked up
//! in the tracker when its Execute or simple Query reaches the relay, never at Parse, as
//! PostgreSQL itself looks the name up only when the statement executes.
//!
//! Invariants:
//! - a name whose redefinition the server has not answered yet is not looked up: the
//!   message waits ([`Resolution::Wait`]) until the server has answered, so the answer can
//!   never differ from what was looked up (see `tracker.rs`);
//! - what the approver sees and the audit trail records is the text the client sent,
//!   followed by the text of every prepared statement it runs, each on its own line and
//!   quoted so no statement text can pass for another's;
//! - an unknown name, a statement that is not UTF-8, or `EXECUTE`s nested deeper than
//!   [`MAX_EXECUTE_DEPTH`] make the class `unknown`.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::Relay;
use super::tracker::{Effect, Name, Origin, Stmt};
use crate::policy::Class;
use crate::policy::sql::{self, SqlAnalysis, SqlEffect};

/// A protocol statement `EXECUTE a` whose `a` is itself `EXECUTE b`… is followed this deep.
pub(super) const MAX_EXECUTE_DEPTH: usize = 4;

/// A statement resolved against the session's prepared statements.
pub(super) enum Resolution {
    /// Its class now, and its text with what it runs (`None`: it runs no prepared
    /// statement, the text is the client's).
    Ready { class: Class, shown: Option<String> },
    /// A name it runs awaits the server's answer to a redefinition.
    Wait,
}

/// The class of a text by itself, before any `EXECUTE` in it is resolved: `unknown` if it
/// was not UTF-8; the classification's class if it runs no prepared statement (it is
/// `unknown` while one is unresolved); otherwise the class of everything but the `EXECUTE`s.
pub(super) fn own_class(analysis: &SqlAnalysis, utf8: bool) -> Class {
    if !utf8 {
        Class::Unknown
    } else if analysis.has_execute() {
        analysis.base_class
    } else {
        analysis.classification.class
    }
}

impl Relay {
    /// Resolve `analysis` of `text` (whose own class is `class`) against the tracker now.
    pub(super) fn resolve_runs(
        &self,
        analysis: &SqlAnalysis,
        class: Class,
        text: &str,
    ) -> Resolution {
        if !analysis.has_execute() {
            return Resolution::Ready { class, shown: None };
        }
        let runs = RefCell::new(Vec::new());
        let wait = Cell::new(false);
        let class = self.run_class(analysis, class, 0, &runs, &wait);
        if wait.get() {
            return Resolution::Wait;
        }
        let mut shown = text.to_string();
        for (name, text) in runs.into_inner() {
            shown.push_str(&format!("\n-- EXECUTE {name:?} runs: {text:?}"));
        }
        Resolution::Ready {
            class,
            shown: Some(shown),
        }
    }

    /// `s` as the target's catalog in force now judges it. A function, operator or type
    /// created on the target after the statement was prepared (an approved `CREATE FUNCTION
    /// public.lower(integer)` between Parse and Execute) changes what its names run, so its
    /// analysis is made again, from the cache (a hit unless the catalog changed), and its
    /// class is never lowered: the greater of the class it was prepared with and the new one.
    pub(super) fn in_force(&self, s: Arc<Stmt>) -> Arc<Stmt> {
        let fresh = self.app.cache.analyze(&self.ctx.target.name, &s.text);
        let (analysis, class) = match &s.origin {
            Origin::Parse if Arc::ptr_eq(&fresh, &s.analysis) => return s,
            Origin::Parse => {
                let class = s.class.max(own_class(&fresh, true));
                (fresh, class)
            }
            Origin::SqlPrepare(name) => {
                let now = fresh
                    .effects
                    .iter()
                    .find_map(|e| match e {
                        SqlEffect::Prepare { name: n, class } if n == name => Some(*class),
                        _ => None,
                    })
                    .unwrap_or(Class::Unknown);
                if now <= s.class {
                    return s;
                }
                let mut analysis = (*s.analysis).clone();
                analysis.classification.class = now;
                analysis.base_class = now;
                (Arc::new(analysis), now)
            }
        };
        Arc::new(Stmt {
            text: s.text.clone(),
            analysis,
            class,
            parameters: s.parameters.clone(),
            origin: s.origin.clone(),
        })
    }

    fn run_class(
        &self,
        analysis: &SqlAnalysis,
        class: Class,
        depth: usize,
        runs: &RefCell<Vec<(String, Arc<str>)>>,
        wait: &Cell<bool>,
    ) -> Class {
        if class == Class::Unknown || !analysis.has_execute() {
            return class;
        }
        if depth >= MAX_EXECUTE_DEPTH {
            return Class::Unknown;
        }
        sql::resolve_class(analysis, &|name| {
            let key = Name::sql(name);
            if self.tracker.stmt_pending(&key) {
                wait.set(true);
                return Some(Class::Unknown);
            }
            let s = self.in_force(self.tracker.stmt(&key)?);
            runs.borrow_mut().push((name.to_string(), s.text.clone()));
            Some(self.run_class(&s.analysis, s.class, depth + 1, runs, wait))
        })
    }
}

/// What running `analysis` (of `text`) does to prepared-statement names. A statement SQL
/// `PREPARE` creates is shown as the whole text that prepared it, with the class of what it
/// prepared (`unknown` unless the text is `trusted`: UTF-8, not itself `unknown`) and no
/// effects of its own (PostgreSQL cannot PREPARE an EXECUTE).
pub(super) fn effects(analysis: &SqlAnalysis, text: &Arc<str>, trusted: bool) -> Vec<Effect> {
    analysis
        .effects
        .iter()
        .filter_map(|e| match e {
            SqlEffect::Prepare { name, class } => {
                let class = if trusted { class } else { &Class::Unknown };
                let mut classification = analysis.classification.clone();
                classification.class = *class;
                let prepared = SqlAnalysis {
                    classification,
                    base_class: *class,
                    effects: Vec::new(),
                };
                Some(Effect::Prepare(
                    Name::sql(name),
                    Arc::new(Stmt {
                        text: text.clone(),
                        analysis: Arc::new(prepared),
                        class: *class,
                        parameters: Default::default(),
                        origin: Origin::SqlPrepare(name.clone()),
                    }),
                ))
            }
            SqlEffect::Deallocate { name } => {
                Some(Effect::Deallocate(name.as_deref().map(Name::sql)))
            }
            SqlEffect::Execute { .. } => None,
        })
        .collect()
}
