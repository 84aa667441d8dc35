//! Time-limited grants: an approver's "let this user do this kind of thing on this target,
//! on these tables, for N minutes". Expired grants are dropped lazily on every look-up, so
//! nothing needs a timer.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::{new_id, unix_secs};
use crate::policy::Class;

/// What a grant covers: the same user, target and class, and only tables among its own.
#[derive(Clone, Debug, Serialize)]
pub struct GrantScope {
    pub user: String,
    pub target: String,
    pub class: Class,
    pub tables: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
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
}

#[derive(Default)]
pub(super) struct Grants {
    by_id: HashMap<String, Grant>,
}

impl Grants {
    pub fn add(&mut self, scope: GrantScope, ttl: Duration, request: &str, by: String) -> &Grant {
        let now = SystemTime::now();
        let g = Grant {
            id: new_id("g"),
            scope,
            request: request.to_string(),
            approved_by: by,
            created_at: unix_secs(now),
            expires_at: unix_secs(now + ttl),
            expires: Some(now + ttl),
        };
        let id = g.id.clone();
        self.by_id.entry(id).or_insert(g)
    }

    fn prune(&mut self, now: SystemTime) {
        self.by_id.retain(|_, g| g.expires.is_some_and(|e| e > now));
    }

    pub fn find(
        &mut self,
        user: &str,
        target: &str,
        class: Class,
        tables: &[String],
        now: SystemTime,
    ) -> Option<Grant> {
        self.prune(now);
        self.by_id
            .values()
            .find(|g| {
                g.scope.user == user
                    && g.scope.target == target
                    && g.scope.class == class
                    && tables.iter().all(|t| g.scope.tables.contains(t))
            })
            .cloned()
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
}
