//! The audit event of one decision: a `statement` event for PostgreSQL, a `command` event
//! for SSH, naming the rule, and the request or grant behind it when there is one.

use super::{Action, SessionCtx};
use crate::audit::{EventKind, Text};
use crate::lifecycle::Protocol;
use crate::policy::{Classification, Decision};

/// What was decided about one action, and why: built with [`Decided::new`], then
/// [`Decided::request`] and [`Decided::grant`] where they apply.
pub(super) struct Decided<'a> {
    decision: Decision,
    rule: Option<&'a str>,
    request: Option<&'a str>,
    grant: Option<&'a str>,
}

impl<'a> Decided<'a> {
    /// `rule` is copied into the event (a short name inside it, see `Text`), so the writer
    /// thread, which drops the event, does not also write the shared name's reference count.
    /// (The Permit still holds one reference, on the session's own thread.)
    pub fn new(decision: Decision, rule: Option<&'a str>) -> Decided<'a> {
        Decided {
            decision,
            rule,
            request: None,
            grant: None,
        }
    }

    /// The approval request that held (or allowed) the action.
    pub fn request(self, id: &'a str) -> Decided<'a> {
        Decided {
            request: Some(id),
            ..self
        }
    }

    /// The grant that allowed the action.
    pub fn grant(self, id: &'a str) -> Decided<'a> {
        Decided {
            grant: Some(id),
            ..self
        }
    }

    /// The event for `a`, as session `s` sent it; `c` supplies the tables.
    pub fn event(self, s: &SessionCtx, a: &Action<'_>, c: &Classification) -> EventKind {
        let (decision, rule, request, grant) = (
            self.decision,
            self.rule.map(Text::from),
            self.request.map(Text::from),
            self.grant.map(Text::from),
        );
        match s.protocol {
            Protocol::Ssh => EventKind::Command {
                command: Text::from(a.statement),
                class: a.class,
                decision,
                rule,
                request,
                grant,
            },
            Protocol::Postgres => EventKind::Statement {
                text: Text::from(a.statement),
                class: a.class,
                tables: c.tables.clone(),
                decision,
                rule,
                request,
                grant,
                params: a.params.map(<[_]>::to_vec),
            },
        }
    }
}
