//! Deciding requests: approvals, denials, expiry and cancellation.
//!
//! Every decision goes through `Approvals::finish`, under the approvals lock, in this order:
//! the request's state changes; its `request_decided` event (and `grant_created`, for an
//! approval with a grant) is queued for the audit writer (`Approvals::audit_event`, that is
//! [`crate::audit::Audit::record`]: a non-blocking send on its bounded queue); only then is the
//! held session woken. The session waits for the disk before it forwards anything (see
//! [`super`]), so the records that authorise a statement are ahead of it. Then, with the lock
//! released, `Approvals::emit` broadcasts the change and hands the request's current view to
//! the audit store.
//!
//! A request is decided once: `check_decider` refuses anything but a pending request, and
//! [`Approvals::close`] does nothing to one that is no longer pending.

use std::time::{Duration, SystemTime};

use std::sync::MutexGuard;

use super::{
    Approvals, Candidate, DecideError, Decider, Entry, Event, Grant, GrantScope, Impact, Inner,
    Outcome, RequestView, ScopeKind, State, unix_secs,
};
use crate::audit::{EventKind, Text};
use crate::config::User;
use crate::policy::Class;
use crate::request::ApprovalRecord;

impl Approvals {
    /// Move a pending request to a final state and wake its waiter.
    pub(super) fn finish(
        &self,
        inner: &mut Inner,
        id: &str,
        state: State,
        outcome: Outcome,
        grant: Option<&Grant>,
    ) -> RequestView {
        let mut view = None;
        if let Some(e) = inner.requests.get_mut(id) {
            e.view.state = state;
            // Audit first: the session flushes the trail before it acts on the outcome. A
            // mirrored request (another replica's) is in that replica's trail.
            if e.owned {
                self.audit_event(
                    &e.view.session,
                    EventKind::RequestDecided {
                        request: Text::from(id),
                        state,
                        by: e.view.decided_by.as_deref().map(Text::from),
                        reason: e.view.reason.as_deref().map(Text::from),
                    },
                );
            }
            if let (Some(g), true) = (grant, e.owned) {
                self.audit_event(
                    &e.view.session,
                    EventKind::GrantCreated {
                        grant: Text::from(&g.id),
                        request: Text::from(id),
                        expires_at: g.expires_at,
                    },
                );
            }
            if let Some(w) = e.waiter.take() {
                let _ = w.send(outcome);
            }
            view = Some(e.view.clone());
        }
        inner.retire(id);
        view.unwrap_or_else(|| unreachable_view(id))
    }

    pub fn approve(
        &self,
        id: &str,
        approver: &User,
        reason: &str,
        grant_secs: Option<u64>,
        scope: ScopeKind,
    ) -> Result<RequestView, DecideError> {
        let mut inner = self.lock();
        let e = inner.requests.get_mut(id).ok_or(DecideError::NotFound)?;
        let now = unix_secs(SystemTime::now());
        let step = apply_approval(e, &Decider::from(approver), reason, grant_secs, scope, now)?;
        let Step::Complete { by, grant } = step else {
            let view = e.view.clone();
            drop(inner);
            self.emit(Event::Decided(view.clone()));
            return Ok(view);
        };
        let approvers = e.approvers.clone();
        let grant = grant.map(|(scope, ttl)| {
            inner
                .grants
                .add(scope, ttl, id, by.clone(), approvers)
                .clone()
        });
        Ok(self.complete(inner, id, by, grant))
    }

    /// Approve `id` (its view already says who and why) with `grant`, wake its waiter, and
    /// tell the listeners.
    pub(super) fn complete(
        &self,
        mut inner: MutexGuard<'_, Inner>,
        id: &str,
        by: Vec<String>,
        grant: Option<Grant>,
    ) -> RequestView {
        if let (Some(g), Some(e)) = (&grant, inner.requests.get_mut(id)) {
            e.view.grant = Some(g.id.clone());
        }
        let outcome = Outcome::Approved {
            by,
            grant: grant.as_ref().map(|g| g.id.clone()),
        };
        let view = self.finish(&mut inner, id, State::Approved, outcome, grant.as_ref());
        drop(inner);
        if let Some(g) = grant {
            self.emit(Event::GrantCreated(g));
        }
        self.emit(Event::Decided(view.clone()));
        view
    }

    pub fn deny(
        &self,
        id: &str,
        approver: &User,
        reason: &str,
    ) -> Result<RequestView, DecideError> {
        let mut inner = self.lock();
        let e = inner.requests.get_mut(id).ok_or(DecideError::NotFound)?;
        apply_denial(e, &Decider::from(approver), reason)?;
        let outcome = Outcome::Denied {
            by: approver.name.clone(),
            reason: reason.to_string(),
        };
        let view = self.finish(&mut inner, id, State::Denied, outcome, None);
        drop(inner);
        self.emit(Event::Decided(view.clone()));
        Ok(view)
    }

    /// End a pending request without a decision. Returns false if it was no longer pending.
    /// With shared state the state store decides (a decision on another replica may have won):
    /// the outcome reaches the waiter when it has, or at once if the store cannot be reached.
    pub fn close(&self, id: &str, state: State, reason: &str) -> bool {
        if let Some(shared) = self.shared.get() {
            let pending = {
                let inner = self.lock();
                inner
                    .requests
                    .get(id)
                    .is_some_and(|e| e.owned && e.view.state == State::Pending)
            };
            if pending {
                shared.close(id, state, reason);
            }
            return pending;
        }
        self.close_here(id, state, reason)
    }

    /// [`Self::close`] in this process only.
    pub(crate) fn close_here(&self, id: &str, state: State, reason: &str) -> bool {
        let mut inner = self.lock();
        let Some(e) = inner.requests.get_mut(id) else {
            return false;
        };
        if e.view.state != State::Pending {
            return false;
        }
        e.view.reason = Some(reason.to_string());
        let outcome = match state {
            State::Expired => Outcome::Expired,
            _ => Outcome::Cancelled {
                reason: reason.to_string(),
            },
        };
        let view = self.finish(&mut inner, id, state, outcome, None);
        drop(inner);
        self.emit(Event::Decided(view));
        true
    }

    /// Cancel every pending request of this process (shutdown); another replica's are not
    /// this one's to end.
    pub fn cancel_all(&self, reason: &str) -> usize {
        let ids: Vec<String> = {
            let inner = self.lock();
            inner
                .requests
                .values()
                .filter(|e| e.owned && e.view.state == State::Pending)
                .map(|e| e.view.id.clone())
                .collect()
        };
        ids.iter()
            .filter(|id| self.close(id, State::Cancelled, reason))
            .count()
    }
}

fn unreachable_view(id: &str) -> RequestView {
    // finish() is only called with ids looked up under the same lock.
    tracing::error!(request = id, "request vanished while being decided");
    RequestView {
        id: id.to_string(),
        state: State::Cancelled,
        user: String::new(),
        target: String::new(),
        protocol: String::new(),
        class: Class::Unknown,
        statement: String::new(),
        tables: Vec::new(),
        rule: String::new(),
        source: String::new(),
        session: String::new(),
        node: None,
        created_at: 0,
        expires_at: 0,
        approvals: Vec::new(),
        approvals_required: 1,
        decided_by: None,
        reason: None,
        grant: None,
        impact: Impact::default(),
    }
}

/// The request's statement as a grant sees it.
fn approved(e: &Entry) -> Candidate<'_> {
    Candidate {
        user: &e.view.user,
        target: &e.view.target,
        class: e.view.class,
        tables: &e.view.tables,
        functions: &e.functions,
        statement: &e.view.statement,
        runs_prepared: e.runs_prepared,
    }
}

fn check_decider(e: &Entry, who: &Decider) -> Result<(), DecideError> {
    if e.view.state != State::Pending {
        return Err(DecideError::NotPending(e.view.state.as_str()));
    }
    if e.view.user == who.name {
        return Err(DecideError::OwnRequest);
    }
    if !e
        .approvers
        .iter()
        .any(|a| a.matches(&who.name, &who.groups))
    {
        return Err(DecideError::NotApprover);
    }
    Ok(())
}

/// What one approval did to a pending request.
pub(crate) enum Step {
    /// Recorded; more approvals are needed.
    Recorded,
    /// The last approval needed: `view` now says approved by `by`, with a grant of this scope
    /// and length if every approver asked for one.
    Complete {
        by: Vec<String>,
        grant: Option<(GrantScope, Duration)>,
    },
}

/// Check one approval of `e` by `who` at `at` (unix seconds) and apply it to `e` only: the
/// same rules in memory and in the state store. On `Complete`, the caller makes the grant,
/// sets the state and wakes the waiter.
pub(crate) fn apply_approval(
    e: &mut Entry,
    who: &Decider,
    reason: &str,
    grant_secs: Option<u64>,
    scope: ScopeKind,
    at: u64,
) -> Result<Step, DecideError> {
    check_decider(e, who)?;
    if let Some(secs) = grant_secs {
        if secs == 0 {
            return Err(DecideError::GrantZero);
        }
        if secs > e.max_grant.as_secs() {
            return Err(DecideError::GrantTooLong(secs, e.max_grant.as_secs()));
        }
        // Refused now rather than narrowed silently: the approver learns what they gave.
        GrantScope::for_request(&approved(e), scope).map_err(DecideError::ScopeTooWide)?;
    }
    if e.view.approvals.iter().any(|a| a.by == who.name) {
        return Err(DecideError::AlreadyApproved);
    }
    e.view.approvals.push(ApprovalRecord {
        by: who.name.clone(),
        at,
        reason: reason.to_string(),
        grant_secs,
    });
    e.scopes.push(scope);
    if (e.view.approvals.len() as u32) < e.view.approvals_required {
        return Ok(Step::Recorded);
    }
    // Every approver must agree to a grant; the shortest one wins.
    let grant_secs = e
        .view
        .approvals
        .iter()
        .map(|a| a.grant_secs)
        .collect::<Option<Vec<u64>>>()
        .and_then(|v| v.into_iter().min());
    let by: Vec<String> = e.view.approvals.iter().map(|a| a.by.clone()).collect();
    e.view.decided_by = Some(by.join(","));
    e.view.reason = Some(reason.to_string());
    // The narrowest scope any approver asked for.
    let asked = if e.scopes.iter().all(|s| *s == ScopeKind::Tables) {
        ScopeKind::Tables
    } else if e.scopes.contains(&ScopeKind::Exact) {
        ScopeKind::Exact
    } else {
        ScopeKind::Shape
    };
    let scope = GrantScope::for_request(&approved(e), asked)
        .or_else(|_| GrantScope::for_request(&approved(e), ScopeKind::Exact));
    let grant = match (grant_secs, scope) {
        (Some(secs), Ok(scope)) => Some((scope, Duration::from_secs(secs))),
        _ => None,
    };
    Ok(Step::Complete { by, grant })
}

/// A denial of `e` by `who`: checked and applied to `e`; the caller finishes it.
pub(crate) fn apply_denial(e: &mut Entry, who: &Decider, reason: &str) -> Result<(), DecideError> {
    check_decider(e, who)?;
    e.view.decided_by = Some(who.name.clone());
    e.view.reason = Some(reason.to_string());
    Ok(())
}

/// The request's statement as a grant sees it (also what rebuilds a stored grant's scope).
pub(crate) fn candidate(e: &Entry) -> Candidate<'_> {
    approved(e)
}
