//! Rules: who may do which class of thing where, and when. Text → class happens in
//! [`super::sql`] / [`super::shell`]; this module turns a [`Classification`] plus a
//! [`Subject`] into `allow | review | deny`.
//!
//! Matching semantics (every condition must hold; an absent condition matches everything):
//! - `targets`: globs on target names (absent = `["*"]`).
//! - `users` / `groups`: the subject is named in `users` **or** belongs to one of `groups`
//!   (when both are given, either suffices; when one is given, it must hold).
//! - `source`: CIDRs (a bare address is a /32 or /128); an IPv4-mapped IPv6 source also
//!   matches as IPv4.
//! - `hours`: UTC windows (grammar in `hours.rs`); a string of comma-separated windows
//!   or a list of such strings.
//! - `classes`: class names (`read`, `write`, …, `shell`, `file_transfer`, `port_forward`).
//! - `tables`: case-insensitive globs on `schema.table`; `commands`: globs on program names.
//!   For an `allow` rule EVERY table (resp. program) of the statement must match and there
//!   must be at least one: an allow rule never lets through more than it names. For
//!   `review` / `deny` rules ANY match suffices.
//! - `paths`: absolute globs on the files an SFTP operation acts on (`/var/log/**`), same
//!   all/any semantics. `*` stops at `/`, `**` crosses it. Paths are matched as the client
//!   named them after lexical clean-up (no symlinks resolved, a relative path stays relative
//!   and so never matches an absolute glob): narrow `allow` rules by path hold, `deny` rules
//!   by path are a convenience, not a fence.
//! - First match wins; no match is `deny` with reason "no rule matched".
//!
//! Defaults: `approvals_required = 1`, `hold_timeout = "5m"`, `max_grant = "1h"`;
//! `max_grant` may not exceed [`MAX_GRANT_CEILING`] (24h).
//!
//! Validation ([`compile`]) reports every problem, one line each, prefixed with
//! `rules[i] "name": `: unknown users, groups, targets (a target glob matching no target),
//! approvers, bad CIDRs, hour windows, durations, class names and globs, empty lists, a
//! table glob without a schema, a review rule without an approver who exists or with
//! `approvals_required = 0`, `max_grant` over the ceiling, duplicate rule names. A config
//! with any problem compiles to no rules at all.
//!
//! Files: `hours.rs` (hour windows: grammar, UTC arithmetic), `compile.rs` (validation,
//! [`RuleSpec`] → [`Rule`]), this file (the config types, [`evaluate`] and matching), and
//! `tests/` (the unit tests).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use globset::GlobSet;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::policy::{Class, Classification, Decision};
use hours::Window;

mod compile;
mod hours;
pub use compile::compile;

/// The longest grant a rule may allow.
pub const MAX_GRANT_CEILING: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_HOLD: Duration = Duration::from_secs(5 * 60);
const DEFAULT_GRANT: Duration = Duration::from_secs(3600);

/// One `[[rules]]` table, exactly as written in the config.
#[derive(Deserialize, Serialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    pub name: String,
    pub targets: Option<Vec<String>>,
    pub users: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub source: Option<Vec<String>>,
    pub hours: Option<Hours>,
    pub classes: Option<Vec<String>>,
    pub tables: Option<Vec<String>>,
    pub commands: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub action: Decision,
    #[serde(default)]
    pub approvers: Vec<String>,
    pub approvals_required: Option<u32>,
    pub hold_timeout: Option<String>,
    pub max_grant: Option<String>,
}

/// `hours = "Mon-Fri 08:00-18:00"` or `hours = ["Mon 08:00-12:00", "Fri 13:00-17:00"]`.
#[derive(Deserialize, Serialize, Clone, Debug)]
#[serde(untagged)]
pub enum Hours {
    One(String),
    Many(Vec<String>),
}

/// The `[policy]` table.
#[derive(Deserialize, Serialize, Clone, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Functions (besides the pure built-ins) that may appear in a `read` statement.
    #[serde(default)]
    pub trusted_functions: Vec<String>,
}

/// Who may approve: `user:NAME` or `group:NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Approver {
    User(String),
    Group(String),
}

impl Approver {
    /// Whether the user `name`, a member of `groups`, is this approver.
    pub fn matches(&self, name: &str, groups: &[String]) -> bool {
        match self {
            Approver::User(u) => u == name,
            Approver::Group(g) => groups.iter().any(|member_of| member_of == g),
        }
    }
}

impl std::fmt::Display for Approver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Approver::User(u) => write!(f, "user:{u}"),
            Approver::Group(g) => write!(f, "group:{g}"),
        }
    }
}

impl Serialize for Approver {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A compiled, validated rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Shared: every decision names its rule, and naming it costs a reference count.
    pub name: Arc<str>,
    /// Position in the config's `rules` list.
    pub index: usize,
    targets: GlobSet,
    users: Option<Vec<String>>,
    groups: Option<Vec<String>>,
    source: Option<Vec<IpNet>>,
    hours: Option<Vec<Window>>,
    classes: Option<Vec<Class>>,
    tables: Option<GlobSet>,
    commands: Option<GlobSet>,
    paths: Option<GlobSet>,
    pub action: Decision,
    pub approvers: Vec<Approver>,
    pub approvals_required: u32,
    pub hold_timeout: Duration,
    pub max_grant: Duration,
}

/// What validation knows about the rest of the config.
pub struct Known<'a> {
    pub targets: &'a [String],
    pub groups: &'a [String],
    pub users: &'a [String],
}

/// Who asks, from where, when.
pub struct Subject<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub target: &'a str,
    pub source: IpAddr,
    pub now: SystemTime,
}

#[derive(Debug)]
pub struct Evaluation<'a> {
    pub action: Decision,
    pub rule: Option<&'a Rule>,
}

impl Evaluation<'_> {
    /// Why, for people: the rule and the classification's reason (`c`, the classification
    /// evaluated). Built only when asked, so an allowed statement costs no string.
    pub fn reason(&self, c: &Classification) -> String {
        match self.rule {
            Some(rule) => format!(
                "rule \"{}\" ({}): {}",
                rule.name,
                rule.action.as_str(),
                c.reason
            ),
            None => "no rule matched".into(),
        }
    }
}

/// First match wins; no match is `Deny` with reason "no rule matched".
pub fn evaluate<'a>(rules: &'a [Rule], subject: &Subject, c: &Classification) -> Evaluation<'a> {
    for rule in rules {
        if rule.matches(subject, c) {
            return Evaluation {
                action: rule.action,
                rule: Some(rule),
            };
        }
    }
    Evaluation {
        action: Decision::Deny,
        rule: None,
    }
}

impl Rule {
    /// Whether every condition of the rule holds.
    pub fn matches(&self, s: &Subject, c: &Classification) -> bool {
        let who = match (&self.users, &self.groups) {
            (None, None) => true,
            (u, g) => {
                u.as_ref().is_some_and(|u| u.iter().any(|n| n == s.user))
                    || g.as_ref()
                        .is_some_and(|g| g.iter().any(|n| s.groups.contains(n)))
            }
        };
        who && self.targets.is_match(s.target)
            && self
                .source
                .as_ref()
                .is_none_or(|nets| source_in(nets, s.source))
            && self
                .hours
                .as_ref()
                .is_none_or(|w| hours::any_contains(w, s.now))
            && self.classes.as_ref().is_none_or(|cl| cl.contains(&c.class))
            && self.names_match(self.tables.as_ref(), &c.tables)
            && self.names_match(self.commands.as_ref(), &c.commands)
            && self.names_match(self.paths.as_ref(), &c.paths)
    }

    fn names_match(&self, globs: Option<&GlobSet>, names: &[String]) -> bool {
        let Some(g) = globs else { return true };
        match self.action {
            Decision::Allow => !names.is_empty() && names.iter().all(|n| g.is_match(n)),
            Decision::Review | Decision::Deny => names.iter().any(|n| g.is_match(n)),
        }
    }
}

fn source_in(nets: &[IpNet], ip: IpAddr) -> bool {
    let mapped = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    nets.iter()
        .any(|n| n.contains(&ip) || mapped.is_some_and(|m| n.contains(&m)))
}

#[cfg(test)]
mod tests;
