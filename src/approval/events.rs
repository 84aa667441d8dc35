//! What listeners hear about requests and grants: every change on [`Approvals::subscribe`]
//! (the API's event stream), and the changes this replica announces to the outside on
//! [`Approvals::subscribe_announcements`] (webhooks), each once across replicas.

use super::{Approvals, Grant, RequestView, State};

/// A change every listener (API stream, webhooks, audit) hears about.
#[derive(Clone, Debug)]
pub enum Event {
    Created(RequestView),
    Decided(RequestView),
    GrantCreated(Grant),
    GrantRevoked(Grant),
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::Created(_) => "request.created",
            Event::Decided(r) => match r.state {
                State::Approved => "request.approved",
                State::Denied => "request.denied",
                State::Expired => "request.expired",
                State::Cancelled => "request.cancelled",
                State::Pending => "request.updated",
            },
            Event::GrantCreated(_) => "grant.created",
            Event::GrantRevoked(_) => "grant.revoked",
        }
    }
}

impl Approvals {
    /// Every change, as it happens here or lands from the state store.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Request events as the outside should hear them: each creation and decision once
    /// whatever the number of replicas. Every replica sees every request (its mirror and
    /// [`Approvals::subscribe`] follow the state store), but only the replica holding the
    /// request's session announces its changes (it hears the decisions made through other
    /// replicas as they land), and a request closed because its replica was lost is
    /// announced by the replica that closed it. A single jitgate announces everything.
    pub fn subscribe_announcements(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.announcements.subscribe()
    }

    /// Whether `e` is this replica's to announce (see [`Self::subscribe_announcements`]).
    pub(super) fn announces(&self, e: &Event) -> bool {
        match e {
            Event::Created(r) | Event::Decided(r) => match (self.shared.get(), &r.node) {
                (Some(shared), Some(node)) => shared.node() == node,
                _ => true,
            },
            Event::GrantCreated(_) | Event::GrantRevoked(_) => false,
        }
    }
}
