//! What SQL analysis takes and gives: the config's [`SqlOptions`] in, a context-free
//! [`SqlAnalysis`] out, with the [`SqlEffect`]s a text has on the session's prepared
//! statements.
//!
//! Invariant: an analysis depends on the text and the options only, never on the session,
//! so it can be cached by text; what the session adds is resolved afterwards
//! ([`super::resolve_class`]).

use std::collections::HashSet;

use crate::policy::{Class, Classification};

/// Options that come from the config.
pub struct SqlOptions<'a> {
    /// Function names (lower-case; `name` or `schema.name`) the operator declared pure.
    pub trusted_functions: &'a HashSet<String>,
}

/// Context-free analysis of one query string (possibly several statements).
#[derive(Clone, Debug)]
pub struct SqlAnalysis {
    pub classification: Classification,
    /// The class of everything except what `EXECUTE` runs. Equal to
    /// `classification.class` when the text has no `EXECUTE`.
    pub base_class: Class,
    /// `PREPARE` / `DEALLOCATE` / `EXECUTE` references, in text order.
    pub effects: Vec<SqlEffect>,
}

/// What a statement does to the session's prepared statements. Names are as the server
/// keys them: folded unless quoted, truncated by [`super::truncate_identifier`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlEffect {
    Prepare {
        name: String,
        class: Class,
    },
    /// `None` = `DEALLOCATE ALL` (also `DISCARD ALL`).
    Deallocate {
        name: Option<String>,
    },
    Execute {
        name: String,
    },
}

impl SqlAnalysis {
    /// Whether the text runs a prepared statement by name.
    pub fn has_execute(&self) -> bool {
        self.effects
            .iter()
            .any(|e| matches!(e, SqlEffect::Execute { .. }))
    }
}
