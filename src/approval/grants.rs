//! Time-limited grants: an approver's "let this user run statements like the one I saw on
//! this target for N minutes". Expired grants are dropped lazily on every look-up, so
//! nothing needs a timer.
//!
//! Invariants: a grant covers only what its [`GrantScope`] says (by default the approved
//! statement's shape on the same resolved tables); and it is valid only under the policy of
//! now ([`Grant::valid_under`]): every use re-checks the rule that matches today, the users
//! who granted it and today's `max_grant`.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::{new_id, unix_secs};
use crate::config::User;
use crate::policy::Class;
use crate::policy::rules::{Approver, Rule};
use crate::policy::sql::catalog::{FunctionKind, function_kind};
use crate::policy::sql::shape::grant_shape;

/// How far a grant reaches beyond the statement the approver saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScopeKind {
    /// The approved statement with other literal values (its [shape](crate::policy::sql::shape)),
    /// on the same resolved tables. The default.
    #[default]
    Shape,
    /// Any statement of the same class whose resolved tables are all among the grant's.
    Tables,
    /// Only the identical text.
    Exact,
}

impl ScopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Shape => "shape",
            ScopeKind::Tables => "tables",
            ScopeKind::Exact => "exact",
        }
    }
}

/// What a grant covers: always the same user, target and class; then by [`ScopeKind`]:
/// - `shape`: statements of the approved statement's shape (other literal values) whose
///   resolved tables are exactly the approved statement's;
/// - `tables`: statements whose resolved tables are all among the grant's (and at least
///   one), calling no function of the dangerous catalogue (`setval('s', …)`, `nextval`,
///   `pg_notify`… name their object in a literal, which no table list can bound);
/// - `exact`: only the identical text. Forced for `unknown` and `code` statements (they
///   cannot be compared with another), for an `EXECUTE` of a prepared name (its tables are
///   not its own), and for a `shape` grant of a statement that calls a dangerous function
///   (its literals name what it changes).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct GrantScope {
    pub user: String,
    pub target: String,
    pub class: Class,
    pub tables: Vec<String>,
    pub scope: ScopeKind,
    /// The approved statement, as the approver saw it.
    pub statement: String,
    /// The approved statement's shape (for `scope = shape`).
    #[serde(skip)]
    shape: Option<String>,
}

/// A statement: the one approved, or one a grant is asked to cover.
pub struct Candidate<'a> {
    pub user: &'a str,
    pub target: &'a str,
    pub class: Class,
    /// Resolved tables, sorted and unique (as in a [`crate::policy::Classification`]).
    pub tables: &'a [String],
    pub functions: &'a [String],
    pub statement: &'a str,
    /// The statement runs a prepared statement by name (its tables are not its own).
    pub runs_prepared: bool,
}

impl Candidate<'_> {
    /// Only the identical text can be granted: see [`GrantScope`].
    fn exact_only(&self) -> bool {
        matches!(self.class, Class::Unknown | Class::Code) || self.runs_prepared
    }

    /// Calls a function of the dangerous catalogue.
    fn calls_dangerous(&self) -> bool {
        self.functions
            .iter()
            .any(|f| matches!(function_kind(f), FunctionKind::Dangerous(_)))
    }

    /// A `tables` grant may cover it.
    fn table_bounded(&self) -> bool {
        !self.exact_only() && !self.tables.is_empty() && !self.calls_dangerous()
    }
}

impl GrantScope {
    /// The scope a grant from the approved statement `c` gets when `asked` is wanted;
    /// `Err` (why) when `tables` is asked and the statement cannot be bounded by its tables.
    pub fn for_request(c: &Candidate<'_>, asked: ScopeKind) -> Result<GrantScope, &'static str> {
        let shape = grant_shape(c.statement);
        let scope = if c.exact_only() {
            if asked == ScopeKind::Tables {
                return Err(
                    "its class (unknown, code) or EXECUTE of a prepared name allows only the exact text",
                );
            }
            ScopeKind::Exact
        } else {
            match asked {
                ScopeKind::Tables if !c.table_bounded() => {
                    return Err(
                        "it names no table, or calls a function that changes an object named in a literal",
                    );
                }
                ScopeKind::Shape if shape.is_none() || c.calls_dangerous() => ScopeKind::Exact,
                other => other,
            }
        };
        Ok(GrantScope {
            user: c.user.to_string(),
            target: c.target.to_string(),
            class: c.class,
            tables: c.tables.to_vec(),
            scope,
            statement: c.statement.to_string(),
            shape: shape.filter(|_| scope == ScopeKind::Shape),
        })
    }

    /// Whether the grant covers `c`; `shape` is `c`'s shape, computed at most once by the
    /// caller across grants.
    fn covers_with(&self, c: &Candidate<'_>, shape: &OnceCell<Option<String>>) -> bool {
        if self.user != c.user || self.target != c.target || self.class != c.class {
            return false;
        }
        match self.scope {
            ScopeKind::Exact => self.statement == c.statement,
            ScopeKind::Shape => {
                !c.runs_prepared
                    && self.tables == c.tables
                    && self.shape.is_some()
                    && *shape.get_or_init(|| grant_shape(c.statement)) == self.shape
            }
            ScopeKind::Tables => {
                c.table_bounded() && c.tables.iter().all(|t| self.tables.contains(t))
            }
        }
    }

    pub fn covers(&self, c: &Candidate<'_>) -> bool {
        self.covers_with(c, &OnceCell::new())
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
    pub created: SystemTime,
    #[serde(skip)]
    pub expires: Option<SystemTime>,
    /// The users whose approvals made the grant.
    #[serde(skip)]
    pub granted_by: Vec<String>,
    /// Who could approve the request the grant came from: they, and the grantee, may revoke it.
    #[serde(skip)]
    pub approvers: Vec<Approver>,
}

impl Grant {
    /// A grant as the state store keeps it: made at `created`, ending at `expires`.
    pub fn restore(
        id: String,
        scope: GrantScope,
        request: String,
        granted_by: Vec<String>,
        approvers: Vec<Approver>,
        created: SystemTime,
        expires: SystemTime,
    ) -> Grant {
        Grant {
            id,
            scope,
            request,
            approved_by: granted_by.join(","),
            created_at: unix_secs(created),
            expires_at: unix_secs(expires),
            created,
            expires: Some(expires),
            granted_by,
            approvers,
        }
    }

    /// Whether the grant still holds under today's policy: `rule` is the rule that matches
    /// the statement now (a `review` rule), `users` today's users. It holds only while the
    /// grantee exists, the users who granted it are still approvers of `rule` and enough of
    /// them for its `approvals_required`, and `rule`'s `max_grant` from the grant's creation
    /// has not passed.
    pub fn valid_under(
        &self,
        rule: &Rule,
        users: &BTreeMap<String, Arc<User>>,
        now: SystemTime,
    ) -> bool {
        self.holds(
            &rule.approvers,
            rule.approvals_required,
            rule.max_grant,
            users,
            now,
        )
    }

    /// [`Self::valid_under`] with the rule's parts.
    pub(super) fn holds(
        &self,
        approvers: &[Approver],
        approvals_required: u32,
        max_grant: Duration,
        users: &BTreeMap<String, Arc<User>>,
        now: SystemTime,
    ) -> bool {
        if !users.contains_key(&self.scope.user) {
            return false;
        }
        let still_approvers = self
            .granted_by
            .iter()
            .filter_map(|name| users.get(name))
            .filter(|u| u.name != self.scope.user)
            .filter(|u| approvers.iter().any(|a| a.matches(&u.name, &u.groups)))
            .count();
        still_approvers >= approvals_required.max(1) as usize && self.created + max_grant > now
    }

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
        granted_by: Vec<String>,
        approvers: Vec<Approver>,
    ) -> &Grant {
        let now = SystemTime::now();
        let g = Grant {
            id: new_id("g"),
            scope,
            request: request.to_string(),
            approved_by: granted_by.join(","),
            created_at: unix_secs(now),
            expires_at: unix_secs(now + ttl),
            created: now,
            expires: Some(now + ttl),
            granted_by,
            approvers,
        };
        let id = g.id.clone();
        self.by_id.entry(id).or_insert(g)
    }

    /// A grant made elsewhere (the state store), under its own id.
    pub fn insert(&mut self, g: Grant) {
        self.by_id.insert(g.id.clone(), g);
    }

    fn prune(&mut self, now: SystemTime) {
        self.by_id.retain(|_, g| g.expires.is_some_and(|e| e > now));
    }

    /// A live grant that covers `c` and that `valid` accepts.
    pub fn find(
        &mut self,
        c: &Candidate<'_>,
        now: SystemTime,
        valid: impl Fn(&Grant) -> bool,
    ) -> Option<Grant> {
        self.prune(now);
        let shape = OnceCell::new();
        self.by_id
            .values()
            .find(|g| g.scope.covers_with(c, &shape) && valid(g))
            .cloned()
    }

    /// Remove every grant `which` selects; returns them.
    pub fn remove_where(&mut self, which: impl Fn(&Grant) -> bool) -> Vec<Grant> {
        let ids: Vec<String> = self
            .by_id
            .values()
            .filter(|g| which(g))
            .map(|g| g.id.clone())
            .collect();
        ids.iter().filter_map(|id| self.by_id.remove(id)).collect()
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
