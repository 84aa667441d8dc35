//! What the session prepared: a statement's text, its analysis and class, and the Bind values
//! of a portal of a write (for the impact preview).
//!
//! Invariants:
//! - a [`Stmt`] is immutable once made; a portal of anything but a write shares its
//!   statement's `Arc`;
//! - [`Stmt::origin`] says how its analysis is made again, so the relay judges a statement
//!   under the target's catalog in force when it runs (`resolve.rs`), never lower than the
//!   class it was prepared with.

use std::sync::Arc;

use crate::pg::impact::Parameters;
use crate::policy::Class;
use crate::policy::sql::SqlAnalysis;

/// A statement the session prepared (or a portal bound to one).
#[derive(Debug)]
pub struct Stmt {
    /// The text the client sent (for SQL `PREPARE`, the whole query that prepared it).
    pub text: Arc<str>,
    pub analysis: Arc<SqlAnalysis>,
    /// Its class by itself: `unknown` for text that was not UTF-8; an `EXECUTE name` in it
    /// is resolved when it runs, not here.
    pub class: Class,
    /// The parameter types its Parse declared and, for a portal of a write, the values its
    /// Bind gave: what the impact preview plans it with.
    pub parameters: Parameters,
    /// Where `analysis` came from, so it is made again under the target's catalog in force
    /// when the statement runs (`resolve.rs`, `Relay::in_force`).
    pub origin: Origin,
}

/// What a prepared statement's analysis is the analysis of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Origin {
    /// Its own `text`, from a protocol Parse.
    #[default]
    Parse,
    /// The statement SQL `PREPARE name` in `text` prepares.
    SqlPrepare(String),
}

impl Stmt {
    /// What a portal bound to `stmt` runs. Only a write keeps the Bind's values (`after_names`:
    /// the Bind after its portal and statement names), for the impact preview; any other
    /// portal shares its statement.
    pub(super) fn bound(stmt: Arc<Stmt>, after_names: &[u8]) -> Arc<Stmt> {
        if stmt.class != Class::Write {
            return stmt;
        }
        Arc::new(Stmt {
            text: stmt.text.clone(),
            analysis: stmt.analysis.clone(),
            class: stmt.class,
            parameters: stmt.parameters.bind(after_names),
            origin: stmt.origin.clone(),
        })
    }
}
