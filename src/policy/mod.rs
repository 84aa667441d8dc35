//! Policy: the pure, I/O-free heart of every decision.
//!
//! Text → [`Class`] (plus tables, functions and programs) → rule → allow | review | deny.
//!
//! Invariants:
//! - Classification fails closed: whatever cannot be proven harmless is never
//!   [`Class::Read`]; doubt is `unknown`.
//! - Pure: a classification depends only on the text and the config (the cache only
//!   memoises it); rule evaluation only on the rules, the request and the clock value it is
//!   given.
//! - No I/O, and no input can make it panic or overflow the stack (inputs are bounded
//!   before parsing; see [`sql`] and [`shell`]).
//!
//! Sub-modules (`sql`, `shell` and `rules` do not use each other; all use this file's
//! types):
//! - [`sql`]: SQL text → [`sql::SqlAnalysis`] (sqlparser, `PostgreSqlDialect`, Visitor);
//!   [`sql::resolve_class`] adds what the session prepared. Also holds the reviewed
//!   function / setting / relation lists SQL relies on ([`sql::catalog`]) and statement
//!   shapes ([`sql::shape`]).
//! - [`shell`]: an SSH exec string → [`Classification`] (brush-parser).
//! - [`rules`]: config rules, their validation ([`rules::compile`]), hour windows, and
//!   first-match evaluation.
//! - [`cache`]: a bounded LRU of SQL analyses keyed by text and by shape, with hit/miss
//!   counters.
//! - this file: [`Class`], [`Classification`], and the running maximum (`Worst`) and
//!   message clipping the classifiers share.
//! - `test_support.rs` (tests only): the case-table helpers the SQL and shell tests share.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What kind of action a statement or command is. Ordered by sensitivity for the SQL and
/// exec classes: a list of statements takes the greatest class among its parts.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Read,
    Write,
    Ddl,
    Privilege,
    Admin,
    Code,
    Unknown,
    Shell,
    FileTransfer,
    PortForward,
}

impl Class {
    pub const ALL: [Class; 10] = [
        Class::Read,
        Class::Write,
        Class::Ddl,
        Class::Privilege,
        Class::Admin,
        Class::Code,
        Class::Unknown,
        Class::Shell,
        Class::FileTransfer,
        Class::PortForward,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "read",
            Class::Write => "write",
            Class::Ddl => "ddl",
            Class::Privilege => "privilege",
            Class::Admin => "admin",
            Class::Code => "code",
            Class::Unknown => "unknown",
            Class::Shell => "shell",
            Class::FileTransfer => "file_transfer",
            Class::PortForward => "port_forward",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

pub mod cache;
pub mod rules;
pub mod shell;
pub mod sql;

#[cfg(test)]
mod test_support;

/// What is decided about an action: by the rules (`action = "allow" | "review" | "deny"` in
/// the config), counted in the metrics, and recorded in the audit trail (where a statement
/// sent for review is recorded as `held`, and its outcome follows as a request event). The
/// one decision type of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Review,
    #[default]
    Deny,
}

impl Decision {
    pub const ALL: [Decision; 3] = [Decision::Allow, Decision::Review, Decision::Deny];

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Review => "review",
            Decision::Deny => "deny",
        }
    }
}

/// What the classifier found out about one SQL string or one shell command.
///
/// Invariants: `tables`, `functions` and `commands` are sorted and free of duplicates;
/// `reason` is one human-readable line naming what decided `class`.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Classification {
    pub class: Class,
    /// Relations touched, `schema.table`: lower-cased unless quoted in the text, `public.`
    /// when unqualified (`pg_catalog.` for well-known system catalogs), a database prefix
    /// dropped. Shared: every statement's audit event names them.
    pub tables: Arc<[String]>,
    /// SQL functions called: lower-cased unless quoted, a `pg_catalog.` prefix dropped,
    /// any other schema kept (`myschema.f`).
    pub functions: Vec<String>,
    /// Programs run (shell): the base name of every program found, including the ones run
    /// by wrappers (`env`, `sudo`, `sh -c`, …) and inside command substitutions.
    pub commands: Vec<String>,
    /// Files and directories acted on (SFTP): as the client named them, `.`, `..` and
    /// repeated slashes resolved lexically; a relative path is relative to the target
    /// user's home and stays relative.
    pub paths: Vec<String>,
    pub reason: String,
}

impl Classification {
    /// A classification with no tables, functions or commands.
    pub fn bare(class: Class, reason: impl Into<String>) -> Classification {
        Classification {
            class,
            tables: Arc::default(),
            functions: Vec::new(),
            commands: Vec::new(),
            paths: Vec::new(),
            reason: reason.into(),
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn char_prefix(s: &str, max: usize) -> &str {
    let mut cut = s.len().min(max);
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// Shortens a human-readable message to at most `max` bytes, on a character boundary.
pub fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        s.truncate(char_prefix(&s, max).len());
        s.push('…');
    }
    s
}

/// The running maximum of a class, with the reason of the first part that reached it.
#[derive(Clone, Debug)]
pub(crate) struct Worst {
    pub class: Class,
    pub reason: String,
    /// Whether `reason` came from a part (not the default).
    noted: bool,
}

impl Worst {
    pub fn new(default_reason: &str) -> Worst {
        Worst {
            class: Class::Read,
            reason: default_reason.to_string(),
            noted: false,
        }
    }

    /// Raises the class when `class` is more sensitive (or notes the first reason for the
    /// current class); the reason is only built then.
    pub fn raise(&mut self, class: Class, reason: impl FnOnce() -> String) {
        if class > self.class || (class == self.class && !self.noted) {
            self.class = class;
            self.reason = reason();
            self.noted = true;
        }
    }

    pub fn merge(&mut self, other: Worst) {
        if other.noted && (other.class > self.class || (other.class == self.class && !self.noted)) {
            *self = other;
        }
    }
}
