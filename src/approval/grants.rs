//! Time-limited grants: an approver's "let this user do this kind of thing on this target,
//! on these tables, for N minutes". Expired grants are dropped lazily on every look-up, so
//! nothing needs a timer.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{new_id, unix_secs};
use crate::config::User;
use crate::policy::Class;
use crate::policy::rules::Approver;

/// What a grant covers: the same user, target and class, and then either
/// - statements whose tables are all among the grant's (and non-empty), when the approved
///   statement named tables and was neither `unknown`, `code` nor an `EXECUTE` of a prepared
///   name; or
/// - only the identical statement text, otherwise (`exact`). A table-less write such as
///   `setval('seq', …)` names its object in a literal, and an `unknown` statement cannot be
///   compared with another at all, so nothing wider can be granted safely.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct GrantScope {
    pub user: String,
    pub target: String,
    pub class: Class,
    pub tables: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
}

/// The statement a grant is asked to cover.
pub struct Candidate<'a> {
    pub user: &'a str,
    pub target: &'a str,
    pub class: Class,
    pub tables: &'a [String],
    pub statement: &'a str,
    /// The statement runs a prepared statement by name (its tables are not its own).
    pub runs_prepared: bool,
}

impl GrantScope {
    /// Build the scope a grant from this approved request gets.
    pub fn for_request(
        user: &str,
        target: &str,
        class: Class,
        tables: &[String],
        statement: &str,
        runs_prepared: bool,
    ) -> GrantScope {
        let wide =
            !tables.is_empty() && !matches!(class, Class::Unknown | Class::Code) && !runs_prepared;
        GrantScope {
            user: user.to_string(),
            target: target.to_string(),
            class,
            tables: tables.to_vec(),
            exact: (!wide).then(|| statement.to_string()),
        }
    }

    pub fn covers(&self, c: &Candidate<'_>) -> bool {
        if self.user != c.user || self.target != c.target || self.class != c.class {
            return false;
        }
        match &self.exact {
            Some(text) => text == c.statement,
            None => {
                !c.runs_prepared
                    && !c.tables.is_empty()
                    && c.tables.iter().all(|t| self.tables.contains(t))
            }
        }
    }
}

/// A live grant: statements its scope covers pass without a new request until `expires_at`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Grant {
    pub id: String,
    #[serde(flatten)]
    pub scope: GrantScope,
    pub request: String,
    pub approved_by: String,
    pub created_at: u64,
    pub expires_at: u64,
    #[serde(skip)]
    pub expires: Option<SystemTime>,
    /// Who could approve the request the grant came from: they, and the grantee, may revoke it.
    #[serde(skip)]
    pub approvers: Vec<Approver>,
}

impl Grant {
    /// Whether `who` may revoke this grant: its grantee, or an approver of its rule.
    pub fn revocable_by(&self, who: &User) -> bool {
        self.scope.user == who.name
            || self
                .approvers
                .iter()
                .any(|a| a.matches(&who.name, &who.groups))
    }
}

#[derive(Default)]
pub(super) struct Grants {
    by_id: HashMap<String, Grant>,
}

impl Grants {
    pub fn add(
        &mut self,
        scope: GrantScope,
        ttl: Duration,
        request: &str,
        by: String,
        approvers: Vec<Approver>,
    ) -> &Grant {
        let now = SystemTime::now();
        let g = Grant {
            id: new_id("g"),
            scope,
            request: request.to_string(),
            approved_by: by,
            created_at: unix_secs(now),
            expires_at: unix_secs(now + ttl),
            expires: Some(now + ttl),
            approvers,
        };
        let id = g.id.clone();
        self.by_id.entry(id).or_insert(g)
    }

    fn prune(&mut self, now: SystemTime) {
        self.by_id.retain(|_, g| g.expires.is_some_and(|e| e > now));
    }

    pub fn find(&mut self, c: &Candidate<'_>, now: SystemTime) -> Option<Grant> {
        self.prune(now);
        self.by_id.values().find(|g| g.scope.covers(c)).cloned()
    }

    pub fn live(&mut self, now: SystemTime) -> Vec<Grant> {
        self.prune(now);
        let mut v: Vec<Grant> = self.by_id.values().cloned().collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        v
    }

    pub fn revoke(&mut self, id: &str) -> Option<Grant> {
        self.prune(SystemTime::now());
        self.by_id.remove(id)
    }

    /// A live grant, without removing it.
    pub fn get(&mut self, id: &str) -> Option<&Grant> {
        self.prune(SystemTime::now());
        self.by_id.get(id)
    }
}
