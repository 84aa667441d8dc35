//! The seam between the approvals of this process and state shared with other replicas
//! (`[cluster]`, implemented in [`crate::cluster`]).
//!
//! Without shared state nothing here runs and [`Approvals`] keeps everything in memory. With
//! it, the state store is the one arbiter: a request is committed there before it is
//! announced ([`Approvals::open`]); approvals, denials, closes and revokes are atomic changes
//! there, and each replica's memory is a mirror the store's notifications keep current
//! ([`Approvals::apply`], [`Approvals::put_grant`], [`Approvals::drop_grant`]).
//!
//! Invariants: a mirror only moves forward (a request that is no longer pending here is never
//! changed again), so notifications may arrive twice or out of order; only the replica that
//! owns a request (opened it for one of its sessions) records its changes in its audit trail
//! and wakes its waiter; the cached grants count only while the store says the cache is
//! current ([`SharedState::current`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{
    Approvals, DecideError, Entry, Event, Grant, Outcome, RequestView, RevokeError, ScopeKind,
    State,
};
use std::time::Duration;

use crate::audit::{EventKind, Text};
use crate::config::User;
use crate::policy::rules::Approver;

/// The state store could not be reached or failed; what needed it is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the state store (PostgreSQL) is unreachable: {0}")]
pub struct StateUnavailable(pub String);

/// Who decides: a user's name and groups, owned (a decision may travel to the state store).
#[derive(Debug, Clone)]
pub struct Decider {
    pub name: String,
    pub groups: Vec<String>,
}

impl From<&User> for Decider {
    fn from(u: &User) -> Decider {
        Decider {
            name: u.name.clone(),
            groups: u.groups.clone(),
        }
    }
}

/// An approver's answer.
#[derive(Debug, Clone)]
pub enum Answer {
    Approve {
        reason: String,
        grant_secs: Option<u64>,
        scope: ScopeKind,
    },
    Deny {
        reason: String,
    },
}

pub(crate) type Pending<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Where requests and grants are shared with other replicas.
pub(crate) trait SharedState: Send + Sync {
    /// This replica's node name.
    fn node(&self) -> &str;
    /// Connected, listening and resynced: the cached grants may be used.
    fn current(&self) -> bool;
    /// Commit a new request in the store before returning (blocks this thread, bounded).
    fn insert(&self, request: Entry) -> Result<(), StateUnavailable>;
    /// Decide a request atomically in the store; the result is applied here too.
    fn decide(
        &self,
        id: String,
        who: Decider,
        decision: Answer,
    ) -> Pending<Result<RequestView, DecideError>>;
    /// End one of this replica's pending requests in the store (in the background); the
    /// outcome reaches its waiter through [`Approvals::apply`], or
    /// [`Approvals::close_here`] when the store cannot be reached.
    fn close(&self, id: &str, state: State, reason: &str);
    /// Store a request's impact preview (in the background; best effort: the preview is
    /// advice for the approver, never a decision).
    fn set_impact(&self, id: &str, impact: &crate::request::Impact);
    /// Revoke a live grant in the store: `Ok(false)` if it was no longer live there.
    fn revoke(&self, id: String, by: String) -> Pending<Result<bool, StateUnavailable>>;
}

impl Approvals {
    /// Share requests and grants through `shared` from now on (set once, before serving).
    pub(crate) fn set_shared(&self, shared: Arc<dyn SharedState>) {
        let _ = self.shared.set(shared);
    }

    /// Approve or deny `id` as `who`: in the state store when there is one, else here.
    pub async fn decide(
        &self,
        id: &str,
        who: &User,
        decision: Answer,
    ) -> Result<RequestView, DecideError> {
        if let Some(shared) = self.shared.get().cloned() {
            return shared
                .decide(id.to_string(), Decider::from(who), decision)
                .await;
        }
        match decision {
            Answer::Approve {
                reason,
                grant_secs,
                scope,
            } => self.approve(id, who, &reason, grant_secs, scope),
            Answer::Deny { reason } => self.deny(id, who, &reason),
        }
    }

    /// Revoke grant `id` as `who` (its grantee or an approver of its rule): in the state
    /// store first when there is one.
    pub async fn revoke_as(&self, id: &str, who: &User) -> Result<Grant, RevokeError> {
        let Some(shared) = self.shared.get().cloned() else {
            return self.revoke_by(id, who);
        };
        let (grant, session) = {
            let mut inner = self.lock();
            let g = inner.grants.get(id).ok_or(RevokeError::NotFound)?.clone();
            if !g.revocable_by(who) {
                return Err(RevokeError::NotAllowed);
            }
            let session = inner
                .requests
                .get(&g.request)
                .map(|e| e.view.session.clone())
                .unwrap_or_default();
            (g, session)
        };
        match shared.revoke(id.to_string(), who.name.clone()).await {
            Ok(true) => {
                // The store's notification may have dropped it from the cache already.
                self.drop_grant(id);
                self.revoked(&session, &grant);
                Ok(grant)
            }
            Ok(false) => {
                self.drop_grant(id);
                Err(RevokeError::NotFound)
            }
            Err(e) => Err(RevokeError::StateStore(e)),
        }
    }

    /// Bring the mirror of one request up to what the state store says (`stored`, with its
    /// grant if it was approved with one). Only forward: see the module doc.
    pub(crate) fn apply(&self, stored: Entry, grant: Option<Grant>) {
        let mut inner = self.lock();
        let id = stored.view.id.clone();
        let Some(e) = inner.requests.get_mut(&id) else {
            let view = stored.view.clone();
            let decided = view.state != State::Pending;
            inner.requests.insert(id.clone(), stored);
            if decided {
                inner.retire(&id);
            }
            drop(inner);
            if let Some(g) = grant {
                self.put_grant(g);
            }
            self.emit(match decided {
                true => Event::Decided(view),
                false => Event::Created(view),
            });
            return;
        };
        if e.view.state != State::Pending {
            return;
        }
        if stored.view.state == State::Pending {
            let impact_known =
                stored.view.impact.estimated_rows.is_some() || stored.view.impact.error.is_some();
            let news = stored.view.approvals.len() > e.view.approvals.len()
                || (impact_known
                    && e.view.impact.estimated_rows.is_none()
                    && e.view.impact.error.is_none());
            if !news {
                return;
            }
            if stored.view.approvals.len() > e.view.approvals.len() {
                e.view.approvals = stored.view.approvals;
                e.scopes = stored.scopes;
            }
            if impact_known {
                e.view.impact = stored.view.impact;
            }
            let view = e.view.clone();
            drop(inner);
            self.emit(Event::Decided(view));
            return;
        }
        e.view.approvals = stored.view.approvals;
        e.scopes = stored.scopes;
        e.view.decided_by = stored.view.decided_by;
        e.view.reason = stored.view.reason.clone();
        let reason = stored.view.reason.unwrap_or_default();
        let state = stored.view.state;
        if state == State::Approved {
            let by = e.view.approvals.iter().map(|a| a.by.clone()).collect();
            if let Some(g) = &grant {
                inner.grants.insert(g.clone());
            }
            self.complete(inner, &id, by, grant);
            return;
        }
        let outcome = match state {
            State::Denied => Outcome::Denied {
                by: e.view.decided_by.clone().unwrap_or_default(),
                reason,
            },
            State::Expired => Outcome::Expired,
            _ => Outcome::Cancelled { reason },
        };
        let view = self.finish(&mut inner, &id, state, outcome, None);
        drop(inner);
        self.emit(Event::Decided(view));
    }

    /// A grant the state store holds (made here or on another replica) joins the cache.
    pub(crate) fn put_grant(&self, g: Grant) {
        self.lock().grants.insert(g);
    }

    /// A grant the state store no longer holds as live leaves the cache.
    pub(crate) fn drop_grant(&self, id: &str) -> Option<Grant> {
        self.lock().grants.revoke(id)
    }

    /// Replace the cached grants with the state store's live ones (after a resync).
    pub(crate) fn replace_grants(&self, grants: Vec<Grant>) {
        let mut inner = self.lock();
        inner.grants.remove_where(|_| true);
        for g in grants {
            inner.grants.insert(g);
        }
    }

    /// This replica ended a request in the state store that no session here waits on (its
    /// replica was lost, or it is a leftover of this node's previous run): the change is
    /// recorded in this replica's trail, and the mirror follows.
    pub(crate) fn record_foreign_close(&self, stored: Entry) {
        let waited_on_here = {
            let inner = self.lock();
            inner
                .requests
                .get(&stored.view.id)
                .is_some_and(|e| e.owned && e.view.state == State::Pending)
        };
        if waited_on_here {
            // This replica's own request: closing it records it (see `finish`).
            self.apply(stored, None);
            return;
        }
        self.audit_event(
            &stored.view.session,
            EventKind::RequestDecided {
                request: Text::from(&stored.view.id),
                state: stored.view.state,
                by: None,
                reason: stored.view.reason.as_deref().map(Text::from),
            },
        );
        let view = stored.view.clone();
        self.apply(stored, None);
        // Its own replica is gone: this one speaks for it.
        let closed = Event::Decided(view);
        if !self.announces(&closed) {
            let _ = self.announcements.send(closed);
        }
    }
}

impl Entry {
    /// The same request without its waiter.
    pub(crate) fn copy(&self) -> Entry {
        Entry {
            view: self.view.clone(),
            functions: self.functions.clone(),
            scopes: self.scopes.clone(),
            runs_prepared: self.runs_prepared,
            approvers: self.approvers.clone(),
            max_grant: self.max_grant,
            owned: self.owned,
            waiter: None,
        }
    }

    /// A request as another replica (or the state store) has it: nobody waits on it here.
    pub(crate) fn mirror(
        view: RequestView,
        functions: Vec<String>,
        scopes: Vec<ScopeKind>,
        runs_prepared: bool,
        approvers: Vec<Approver>,
        max_grant: Duration,
    ) -> Entry {
        Entry {
            view,
            functions,
            scopes,
            runs_prepared,
            approvers,
            max_grant,
            owned: false,
            waiter: None,
        }
    }
}
