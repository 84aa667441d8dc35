//! Requests, approvals and grants.
//!
//! A request moves `pending → approved | denied | expired | cancelled`, once. Exactly one
//! waiter (the held session) sleeps on a oneshot channel and is woken by the transition, so a
//! decision reaches the session without polling and 1,000 held statements cost 1,000 small
//! map entries. The lock is a plain mutex held for map operations only, never across an await.
//!
//! Invariants: the requester never counts as an approver; only the rule's approvers count;
//! `approvals_required` distinct approvers are needed; one denial ends the request; a grant
//! never outlives its `expires_at` nor the rule's `max_grant`, covers by default only the
//! approved statement's shape, and holds only while today's rule, approvers and `max_grant`
//! still allow it (the Gate checks [`Grant::valid_under`] on every use).
//!
//! Audit (once [`Approvals::set_audit`] has been called): nothing here writes to disk; every
//! record goes through the audit writer's bounded queue. Chain events (`request_created`,
//! `request_impact`, `request_decided`, `grant_created`, `grant_revoked`) are queued with
//! [`Audit::record`]; a decision's events are queued under the lock BEFORE the held session is
//! woken, and the session (`gate::wait`) waits for the disk (`Audit::flush`, or the durable
//! write of its held event) before its statement may go upstream, so an approved statement
//! never runs ahead of its approval on disk. Each change's current view goes to [`Audit::put_request`], which
//! costs a copy: encoding and sled happen on the writer's thread.
//!
//! Layout: this file opens, reads and lists requests and holds the shared state; `decide`
//! moves a request out of `pending` (approve, deny, expire, cancel); `grants` keeps the live
//! grants. The request types themselves are in [`crate::request`], re-exported here.

mod decide;
mod events;
mod grants;
pub(crate) mod shared;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, oneshot};

pub(crate) use decide::{Step, apply_approval, apply_denial, candidate};
pub use events::Event;
pub use grants::{Candidate, Grant, GrantScope, ScopeKind};
pub(crate) use shared::SharedState;
pub use shared::{Answer, Decider, StateUnavailable};
// The shared request types live in a leaf module the audit trail imports too.
pub use crate::request::{ApprovalRecord, Impact, RequestView, State};

use crate::audit::{Audit, EventKind, Text};
use crate::config::User;
use crate::policy::Class;
use crate::policy::rules::Approver;

/// What a held session learns.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Approved {
        by: Vec<String>,
        grant: Option<String>,
    },
    Denied {
        by: String,
        reason: String,
    },
    Expired,
    Cancelled {
        reason: String,
    },
}

/// Everything needed to open a request.
pub struct NewRequest {
    /// The id to use (the Gate picks it so the held statement's audit event can name it
    /// before the request exists); `None` makes a new one.
    pub id: Option<String>,
    pub user: String,
    pub target: String,
    pub protocol: &'static str,
    pub class: Class,
    pub statement: String,
    pub tables: Vec<String>,
    /// The functions it calls (a grant's scope depends on them).
    pub functions: Vec<String>,
    pub rule: String,
    pub source: String,
    pub session: String,
    /// The statement runs a prepared statement by name: a grant may only repeat it exactly.
    pub runs_prepared: bool,
    pub approvers: Vec<Approver>,
    pub approvals_required: u32,
    pub hold_timeout: Duration,
    pub max_grant: Duration,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecideError {
    #[error("no such request")]
    NotFound,
    #[error("the request is no longer pending (it is {0})")]
    NotPending(&'static str),
    #[error("you cannot approve your own request")]
    OwnRequest,
    #[error("you are not an approver for this request's rule")]
    NotApprover,
    #[error("you have already approved this request")]
    AlreadyApproved,
    #[error("grant_secs {0} is over the rule's max_grant of {1} seconds")]
    GrantTooLong(u64, u64),
    #[error("grant_secs must be at least 1")]
    GrantZero,
    #[error("scope \"tables\" cannot be granted for this request: {0}")]
    ScopeTooWide(&'static str),
    #[error("{0}")]
    StateStore(StateUnavailable),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RevokeError {
    #[error("no such live grant")]
    NotFound,
    #[error("only the grantee or an approver of the grant's rule may revoke it")]
    NotAllowed,
    #[error("{0}")]
    StateStore(StateUnavailable),
}

/// A request with what deciding it needs. The state store keeps the same fields.
pub(crate) struct Entry {
    pub(crate) view: RequestView,
    pub(crate) functions: Vec<String>,
    /// The scope each approval asked for, in the order of `view.approvals`.
    pub(crate) scopes: Vec<ScopeKind>,
    pub(crate) runs_prepared: bool,
    pub(crate) approvers: Vec<Approver>,
    pub(crate) max_grant: Duration,
    /// Opened by a session of this process: its changes go to this process's audit trail
    /// and wake its waiter. Other replicas' requests (cluster mode) are a mirror only.
    pub(crate) owned: bool,
    waiter: Option<oneshot::Sender<Outcome>>,
}

#[derive(Default)]
struct Inner {
    requests: HashMap<String, Entry>,
    /// Decided request ids, oldest first, for bounded retention in memory.
    decided: std::collections::VecDeque<String>,
    grants: grants::Grants,
}

impl Inner {
    /// `id` is decided: remember it, and forget the oldest decided beyond [`KEEP_DECIDED`].
    fn retire(&mut self, id: &str) {
        self.decided.push_back(id.to_string());
        while self.decided.len() > KEEP_DECIDED {
            if let Some(old) = self.decided.pop_front() {
                self.requests.remove(&old);
            }
        }
    }
}

/// How many decided requests stay in memory (the audit trail keeps them all).
const KEEP_DECIDED: usize = 10_000;

pub struct Approvals {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Event>,
    /// The request events this replica announces to the outside (webhooks): each change once
    /// across replicas (see [`Approvals::subscribe_announcements`]).
    announcements: broadcast::Sender<Event>,
    /// The audit trail, once the server has opened it. Decisions are recorded in it before
    /// the held session learns them, so a flush the session waits on covers its approval.
    audit: OnceLock<Audit>,
    /// The state shared with other replicas (`[cluster]`), once connected; unset for a
    /// single jitgate.
    shared: OnceLock<Arc<dyn SharedState>>,
}

pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut r: u64 = rand::random();
    let mut s = String::with_capacity(prefix.len() + 10);
    s.push_str(prefix);
    for _ in 0..10 {
        s.push(ALPHABET[(r & 31) as usize] as char);
        r >>= 5;
    }
    s
}

impl Default for Approvals {
    fn default() -> Self {
        Self::new()
    }
}

impl Approvals {
    pub fn new() -> Self {
        Approvals {
            inner: Mutex::new(Inner::default()),
            events: broadcast::channel(4096).0,
            announcements: broadcast::channel(4096).0,
            audit: OnceLock::new(),
            shared: OnceLock::new(),
        }
    }

    /// Record requests, decisions and grants in `audit` from now on (set once).
    pub fn set_audit(&self, audit: Audit) {
        let _ = self.audit.set(audit);
    }

    fn audit_event(&self, session: &str, ev: EventKind) {
        if let Some(a) = self.audit.get() {
            // A full queue or a failed store is counted and reported by the audit module;
            // the Gate refuses sensitive actions while the store is failed.
            let _ = a.record(Text::from(session), ev);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the whole proxy, so keep serving.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, e: Event) {
        if let (Some(a), Event::Created(r) | Event::Decided(r)) = (self.audit.get(), &e) {
            // The current view, handed over under the lock: concurrent changes reach the
            // writer in the order they happened, so a stored request never goes back to
            // `pending`. `put_request` copies the view into the writer's slot and at most
            // sends one wake-up; encoding and sled happen on the writer's thread.
            // Another replica's request is in its own trail, not in this one.
            let inner = self.lock();
            match inner.requests.get(&r.id) {
                Some(cur) if cur.owned => a.put_request(&cur.view),
                Some(_) => {}
                None => a.put_request(r),
            }
        }
        if self.announces(&e) {
            let _ = self.announcements.send(e.clone());
        }
        let _ = self.events.send(e);
    }

    /// Open a request in a single jitgate; the receiver resolves when it is decided, expires
    /// or is cancelled. See [`Self::open`] for what may fail with shared state.
    pub fn create(&self, n: NewRequest) -> (RequestView, oneshot::Receiver<Outcome>) {
        let (view, rx, _) = self.start(n);
        self.emit(Event::Created(view.clone()));
        (view, rx)
    }

    /// Open a request; with shared state, it is committed in the state store before this
    /// returns (so before the user is told it is held), or refused when it cannot be.
    pub fn open(
        &self,
        n: NewRequest,
    ) -> Result<(RequestView, oneshot::Receiver<Outcome>), StateUnavailable> {
        let (view, rx, shared) = self.start(n);
        if let Some(shared) = shared {
            let stored = self.lock().requests.get(&view.id).map(Entry::copy);
            if let Err(e) = stored.map(|s| shared.insert(s)).unwrap_or(Ok(())) {
                // Nothing was committed: the request ends here, and its trail says why.
                self.lock().requests.remove(&view.id);
                self.audit_event(
                    &view.session,
                    EventKind::RequestDecided {
                        request: Text::from(&view.id),
                        state: State::Cancelled,
                        by: None,
                        reason: Some(Text::from(&e.to_string())),
                    },
                );
                return Err(e);
            }
        }
        self.emit(Event::Created(view.clone()));
        Ok((view, rx))
    }

    /// The request in memory, owned, not yet announced.
    #[allow(clippy::type_complexity)]
    fn start(
        &self,
        n: NewRequest,
    ) -> (
        RequestView,
        oneshot::Receiver<Outcome>,
        Option<Arc<dyn SharedState>>,
    ) {
        let shared = self.shared.get().cloned();
        let now = SystemTime::now();
        let (tx, rx) = oneshot::channel();
        let view = RequestView {
            id: n.id.unwrap_or_else(|| new_id("r")),
            state: State::Pending,
            user: n.user,
            target: n.target,
            protocol: n.protocol.to_string(),
            class: n.class,
            statement: n.statement,
            tables: n.tables,
            rule: n.rule,
            source: n.source,
            session: n.session,
            node: shared.as_ref().map(|s| s.node().to_string()),
            created_at: unix_secs(now),
            expires_at: unix_secs(now + n.hold_timeout),
            approvals: Vec::new(),
            approvals_required: n.approvals_required.max(1),
            decided_by: None,
            reason: None,
            grant: None,
            impact: Impact::default(),
        };
        self.audit_event(
            &view.session,
            EventKind::RequestCreated {
                request: Text::from(&view.id),
                class: view.class,
                statement: Text::from(&view.statement),
                rule: Text::from(&view.rule),
            },
        );
        self.lock().requests.insert(
            view.id.clone(),
            Entry {
                view: view.clone(),
                functions: n.functions,
                scopes: Vec::new(),
                runs_prepared: n.runs_prepared,
                approvers: n.approvers,
                max_grant: n.max_grant,
                owned: true,
                waiter: Some(tx),
            },
        );
        (view, rx, shared)
    }

    /// The impact preview of request `id` (shared with the other replicas, if any). While the
    /// request is pending here, the preview goes into its session's trail (`request_impact`)
    /// before approvers can see it, so a replay shows what the decision was taken knowing. A
    /// preview that arrives after the decision is dropped: nobody saw it.
    pub fn set_impact(&self, id: &str, impact: Impact) {
        if let Some(shared) = self.shared.get() {
            shared.set_impact(id, &impact);
        }
        let mut inner = self.lock();
        let Some(e) = inner.requests.get_mut(id) else {
            return;
        };
        if e.owned && e.view.state == State::Pending {
            self.audit_event(
                &e.view.session,
                EventKind::RequestImpact {
                    request: Text::from(id),
                    estimated_rows: impact.estimated_rows,
                    error: impact.error.as_deref().map(Text::from),
                },
            );
        }
        e.view.impact = impact;
    }

    pub fn get(&self, id: &str) -> Option<RequestView> {
        self.lock().requests.get(id).map(|e| e.view.clone())
    }

    pub fn list(&self, state: Option<State>) -> Vec<RequestView> {
        let mut v: Vec<RequestView> = self
            .lock()
            .requests
            .values()
            .filter(|e| state.is_none_or(|s| e.view.state == s))
            .map(|e| e.view.clone())
            .collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        v
    }

    /// A live grant covering this statement that `valid` (the policy of now, see
    /// [`Grant::valid_under`]) accepts, if any.
    /// With shared state, the cached grants count only while the cache is known to be
    /// current (fail closed): otherwise none does.
    pub fn find_grant(&self, c: &Candidate<'_>, valid: impl Fn(&Grant) -> bool) -> Option<Grant> {
        if self.shared.get().is_some_and(|s| !s.current()) {
            return None;
        }
        self.lock().grants.find(c, SystemTime::now(), valid)
    }

    pub fn grants(&self) -> Vec<Grant> {
        self.lock().grants.live(SystemTime::now())
    }

    /// Revoke grant `id` for `who`: its grantee or an approver of its rule.
    pub fn revoke_by(&self, id: &str, who: &User) -> Result<Grant, RevokeError> {
        self.revoke_if(id, |g| g.revocable_by(who))
    }

    /// Revoke grant `id`, whoever asks.
    pub fn revoke(&self, id: &str) -> Option<Grant> {
        self.revoke_if(id, |_| true).ok()
    }

    /// Revoke grant `id` if `allowed` says so; the check and the removal hold one lock, so
    /// nothing can change the grant between them.
    fn revoke_if(&self, id: &str, allowed: impl Fn(&Grant) -> bool) -> Result<Grant, RevokeError> {
        let (g, session) = {
            let mut inner = self.lock();
            let g = inner.grants.get(id).ok_or(RevokeError::NotFound)?;
            if !allowed(g) {
                return Err(RevokeError::NotAllowed);
            }
            let g = inner.grants.revoke(id).ok_or(RevokeError::NotFound)?;
            let session = inner
                .requests
                .get(&g.request)
                .map(|e| e.view.session.clone())
                .unwrap_or_default();
            (g, session)
        };
        self.revoked(&session, &g);
        Ok(g)
    }

    /// A revoked grant's `grant_revoked` event (in the trail of the session that asked for
    /// it) and its announcement.
    pub(crate) fn revoked(&self, session: &str, g: &Grant) {
        self.audit_event(
            session,
            EventKind::GrantRevoked {
                grant: Text::from(&g.id),
            },
        );
        self.emit(Event::GrantRevoked(g.clone()));
    }

    /// Revoke every grant whose grantee `gone` says no longer exists (after a reload); each
    /// gets its `grant_revoked` event. Returns how many.
    pub fn revoke_grants_of(&self, gone: impl Fn(&str) -> bool) -> usize {
        let revoked: Vec<(Grant, String)> = {
            let mut inner = self.lock();
            let grants = inner.grants.remove_where(|g| gone(&g.scope.user));
            grants
                .into_iter()
                .map(|g| {
                    let session = inner
                        .requests
                        .get(&g.request)
                        .map(|e| e.view.session.clone())
                        .unwrap_or_default();
                    (g, session)
                })
                .collect()
        };
        for (g, session) in &revoked {
            self.revoked(session, g);
        }
        revoked.len()
    }

    /// Whether shared state is in use and usable now (`None` for a single jitgate).
    pub fn shared_state_current(&self) -> Option<bool> {
        self.shared.get().map(|s| s.current())
    }

    /// Requests held by this process's sessions, still pending (another replica's requests
    /// are counted there: the sum over replicas is the cluster's).
    pub fn pending_count(&self) -> usize {
        self.lock()
            .requests
            .values()
            .filter(|e| e.owned && e.view.state == State::Pending)
            .count()
    }
}

/// Shared handle.
pub type SharedApprovals = Arc<Approvals>;

#[cfg(test)]
mod tests;
