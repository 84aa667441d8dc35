//! The Gate: every statement and command passes here before it may reach a target.
//!
//! `Gate::check` classifies nothing itself (front ends hand it the classification they got
//! from the policy cache), matches the rules, consults live grants, and returns a [`Verdict`].
//! A grant is consulted only when the rule that matches today says `review`, and counts only
//! if it is valid under that rule, today's users and today's `max_grant`
//! ([`crate::approval::Grant::valid_under`]): a grant never outlives the policy that made it.
//! A [`Permit`] can only be constructed in this module, and the relays forward a statement
//! only in exchange for one: "nothing reaches upstream undecided" is a property of the types.
//!
//! The allow path is synchronous and allocation-light; only a review creates a request and a
//! future to await. Dropping a [`Hold`] before it resolves cancels its request, so a client
//! that disconnects withdraws what it asked for.
//!
//! Audit: `check` records the decision (a `statement` event for Postgres, `command` for SSH)
//! itself, so no front end can forget it. No record, no action: a statement allowed by an
//! approval or a grant, and any allowed statement that is not a `read`, is forwarded only
//! once the events that authorise it are on disk (the [`Hold`] and [`Commit`] futures end
//! with a durable write). Reads are queued for the group commit and never wait; their
//! [`Permit`] carries the statement's audit record, so the relay can join the result to it
//! (one event instead of two). While the store is failed, `[audit] on_failure` decides what
//! is refused.
//!
//! With shared state (`[cluster]`), a hold commits its request in the state store before the
//! verdict is returned (so before the user is told); when the store cannot be reached the
//! statement is refused with an error naming it, and cached grants count for nothing until
//! the cache is current again ([`crate::approval::Approvals::find_grant`]). Reads never touch
//! the store.
//!
//! [`Gate::check_opening`] decides a channel whose actions are each decided later (the SFTP
//! subsystem): only a deny refuses it, it is never held.
//!
//! - `verdict`: [`Permit`] (sealed), [`Refusal`], [`Commit`].
//! - `hold`: [`Hold`] and the wait for a request's outcome.
//! - `record`: the audit event of a decision.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

mod hold;
mod record;
mod verdict;

pub use hold::Hold;
use hold::wait;
use record::Decided;
pub use verdict::{Commit, Permit, Refusal, RefusalKind};
use verdict::{Seal, audit_refusal};

use crate::approval::{Approvals, Candidate, NewRequest};
use crate::audit::{Audit, EventKind, StatementHandle, Text};
use crate::config::{LiveConfig, Target, User};
use crate::lifecycle::Protocol;
use crate::metrics::Metrics;
use crate::policy::rules::{self, Subject};
use crate::policy::{Class, Classification, Decision};

/// A session's id, shared by everything that names the session (each audit event takes a
/// reference count, not a copy).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(Arc<str>);

impl SessionId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id itself, shared.
    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }
}

impl std::ops::Deref for SessionId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for SessionId {
    fn from(id: String) -> SessionId {
        SessionId(Arc::from(id))
    }
}

impl From<&SessionId> for Text {
    fn from(id: &SessionId) -> Text {
        Text::from(&id.0)
    }
}

/// Who is acting, from where, on what. One per client session.
#[derive(Debug, Clone)]
pub struct SessionCtx {
    pub id: SessionId,
    pub user: Arc<User>,
    pub target: Arc<Target>,
    pub source: IpAddr,
    pub protocol: Protocol,
    /// The session's audit events waiting for the writer: its front end stops reading the
    /// client while [`crate::audit::Audit::has_room`] says no.
    pub backlog: crate::audit::Backlog,
}

/// One statement or command to decide.
pub struct Action<'a> {
    /// Shared, so its audit event holds the text without copying it.
    pub statement: &'a Arc<str>,
    pub classification: &'a Classification,
    /// The class after session context (e.g. EXECUTE of a prepared statement); usually
    /// `classification.class`.
    pub class: Class,
    /// The statement runs a prepared statement by name (SQL `EXECUTE`), so its tables are
    /// not in `classification`: a grant may cover it only as an exact repeat.
    pub runs_prepared: bool,
    /// The statement runs inside an open transaction block and cannot end it, so whatever it
    /// changes commits only with a later statement: its audit event need not be on disk
    /// before it runs, only before that later statement (the front end's job, see
    /// [`Gate::after_flush`]). `false` is always safe.
    pub deferrable: bool,
    /// The values bound for this statement (a PostgreSQL Execute), recorded in its event.
    pub params: Option<&'a [Option<bytes::Bytes>]>,
}

/// The Gate's answer about one action.
pub enum Verdict {
    /// Go at once.
    Allow(Permit),
    /// Refused; `message` is what the user is told.
    Deny(Refusal),
    /// Held for approval: tell the user, then await it.
    Hold(Hold),
    /// Allowed by a live grant once its audit record is on disk: await it, tell nobody.
    Commit(Commit),
}

/// What deciding needs: the rules in force, live grants and requests, the audit trail and
/// the decision counters. The rest of the wiring is [`crate::app::AppState`]'s.
pub struct Gate {
    config: Arc<LiveConfig>,
    approvals: Arc<Approvals>,
    metrics: Arc<Metrics>,
    audit: Audit,
}

impl Gate {
    pub fn new(
        config: Arc<LiveConfig>,
        approvals: Arc<Approvals>,
        metrics: Arc<Metrics>,
        audit: Audit,
    ) -> Gate {
        Gate {
            config,
            approvals,
            metrics,
            audit,
        }
    }

    /// Record one event in a session.
    fn record(&self, s: &SessionCtx, event: EventKind) {
        let _ = self.audit.record_in(&s.backlog, Text::from(&s.id), event);
    }

    /// Record an allowed statement that need not be on disk before it runs, with a handle
    /// its result can join (Postgres: the relay matches results to statements; an SSH
    /// command's exit status is an event of its own).
    fn record_statement(&self, s: &SessionCtx, event: EventKind) -> StatementHandle {
        let session = Text::from(&s.id);
        match event {
            EventKind::Statement { .. } => self
                .audit
                .record_statement_in(&s.backlog, session, event)
                .unwrap_or_default(),
            other => {
                let _ = self.audit.record_in(&s.backlog, session, other);
                StatementHandle::default()
            }
        }
    }

    pub fn check(&self, s: &SessionCtx, a: Action<'_>) -> Verdict {
        let config = self.config.load();
        let resolved;
        let classification = if a.class == a.classification.class {
            a.classification
        } else {
            resolved = Classification {
                class: a.class,
                ..a.classification.clone()
            };
            &resolved
        };
        let subject = subject(s);
        let eval = rules::evaluate(&config.rules, &subject, classification);
        let rule_name = eval.rule.map(|r| r.name.clone());
        self.metrics.statement(s.protocol, a.class, eval.action);
        let sensitive = a.class != Class::Read || eval.action != Decision::Allow;
        if eval.action != Decision::Deny
            && let Some(e) = self.audit.refusal(sensitive)
        {
            self.record(
                s,
                Decided::new(Decision::Deny, rule_name.as_deref()).event(s, &a, classification),
            );
            return Verdict::Deny(audit_refusal(&e, rule_name, None));
        }
        match eval.action {
            Decision::Allow => {
                let ev = Decided::new(Decision::Allow, rule_name.as_deref()).event(
                    s,
                    &a,
                    classification,
                );
                let mut permit = Permit {
                    class: a.class,
                    rule: rule_name,
                    request: None,
                    grant: None,
                    statement: StatementHandle::default(),
                    _seal: Seal,
                };
                if sensitive && !a.deferrable {
                    // Anything that may change something is on disk before it runs.
                    self.durable(s, ev, permit)
                } else {
                    // Deferred to the transaction's commit point (sensitive) or routine: the
                    // audit never drops it, and its result may join its event.
                    permit.statement = self.record_statement(s, ev);
                    Verdict::Allow(permit)
                }
            }
            Decision::Deny => {
                self.record(
                    s,
                    Decided::new(Decision::Deny, rule_name.as_deref()).event(s, &a, classification),
                );
                Verdict::Deny(Refusal {
                    kind: RefusalKind::Denied,
                    message: match &rule_name {
                        Some(r) => format!("jitgate: denied by rule \"{r}\""),
                        // The class's reason says what to change (e.g. a pinned setting).
                        None => format!(
                            "jitgate: denied: {} for this {} statement: {}",
                            eval.reason(classification),
                            a.class,
                            classification.reason
                        ),
                    },
                    rule: rule_name,
                    request: None,
                })
            }
            Decision::Review => {
                let Some(rule) = eval.rule else {
                    return Verdict::Deny(Refusal {
                        kind: RefusalKind::Denied,
                        message: "jitgate: denied: review without a rule".into(),
                        rule: None,
                        request: None,
                    });
                };
                let candidate = Candidate {
                    user: &s.user.name,
                    target: &s.target.name,
                    class: a.class,
                    tables: &classification.tables,
                    functions: &classification.functions,
                    statement: &a.statement[..],
                    runs_prepared: a.runs_prepared,
                };
                // A grant holds only under the policy of now: today's rule, users and
                // max_grant (see `Grant::valid_under`).
                let valid =
                    |g: &crate::approval::Grant| g.valid_under(rule, &config.users, subject.now);
                if let Some(g) = self.approvals.find_grant(&candidate, valid) {
                    return self.commit(s, &a, classification, rule, g);
                }
                self.hold(s, &a, classification, rule)
            }
        }
    }

    /// A channel that does nothing by itself but carries actions that are each decided on
    /// their own (the SFTP subsystem, whose operations go through [`Gate::check`]): refused
    /// when the rules deny `a`, otherwise allowed once its event is on disk. Never held: a
    /// `review` rule holds each later action, not the opening.
    pub fn check_opening(&self, s: &SessionCtx, a: Action<'_>) -> Verdict {
        let config = self.config.load();
        let eval = rules::evaluate(&config.rules, &subject(s), a.classification);
        if eval.action == Decision::Deny {
            return self.check(s, a);
        }
        self.metrics.statement(s.protocol, a.class, Decision::Allow);
        let rule = eval.rule.map(|r| r.name.clone());
        let ev = Decided::new(Decision::Allow, rule.as_deref()).event(s, &a, a.classification);
        let permit = Permit {
            class: a.class,
            rule,
            request: None,
            grant: None,
            statement: StatementHandle::default(),
            _seal: Seal,
        };
        self.durable(s, ev, permit)
    }

    /// Allowed by grant `g`: the statement event naming the grant must reach disk first.
    fn commit(
        &self,
        s: &SessionCtx,
        a: &Action<'_>,
        c: &Classification,
        rule: &rules::Rule,
        g: crate::approval::Grant,
    ) -> Verdict {
        self.record(
            s,
            EventKind::GrantUsed {
                grant: Text::from(&g.id),
                request: Text::from(&g.request),
            },
        );
        let ev = Decided::new(Decision::Allow, Some(&rule.name))
            .request(&g.request)
            .grant(&g.id)
            .event(s, a, c);
        let permit = Permit {
            class: a.class,
            rule: Some(rule.name.clone()),
            request: Some(g.request),
            grant: Some(g.id),
            statement: StatementHandle::default(),
            _seal: Seal,
        };
        self.durable(s, ev, permit)
    }

    /// `permit`, once everything recorded so far is on disk: for a statement that may commit
    /// what earlier deferred statements of its transaction changed.
    pub fn after_flush(&self, permit: Permit) -> Verdict {
        let audit = self.audit.clone();
        once_written(async move { audit.flush().await }, permit)
    }

    /// A verdict that hands out `permit` once `ev` is on disk.
    fn durable(&self, s: &SessionCtx, ev: EventKind, permit: Permit) -> Verdict {
        let audit = self.audit.clone();
        let session = Text::from(&s.id);
        once_written(
            async move { audit.record_durable(session, ev).await },
            permit,
        )
    }

    fn hold(
        &self,
        s: &SessionCtx,
        a: &Action<'_>,
        c: &Classification,
        rule: &rules::Rule,
    ) -> Verdict {
        let statement = &a.statement[..];
        let id = crate::approval::new_id("r");
        let held = Decided::new(Decision::Review, Some(&rule.name))
            .request(&id)
            .event(s, a, c);
        let _ = self.audit.record_in(&s.backlog, Text::from(&s.id), held);
        let opened = self.approvals.open(NewRequest {
            id: Some(id),
            user: s.user.name.clone(),
            target: s.target.name.clone(),
            protocol: s.protocol.as_str(),
            class: c.class,
            statement: statement.to_string(),
            tables: c.tables.to_vec(),
            functions: c.functions.clone(),
            rule: rule.name.to_string(),
            source: s.source.to_string(),
            session: s.id.to_string(),
            runs_prepared: a.runs_prepared,
            approvers: rule.approvers.clone(),
            approvals_required: rule.approvals_required,
            hold_timeout: rule.hold_timeout,
            max_grant: rule.max_grant,
        });
        let (view, rx) = match opened {
            Ok(opened) => opened,
            // Shared state (cluster) cannot be reached: nothing can be held, so nothing runs.
            Err(e) => {
                return Verdict::Deny(Refusal {
                    kind: RefusalKind::Denied,
                    message: format!("jitgate: refused: {e}; try again once it is back"),
                    rule: Some(rule.name.clone()),
                    request: None,
                });
            }
        };
        tracing::info!(
            request = %view.id,
            session = %s.id,
            user = %s.user.name,
            target = %s.target.name,
            class = %c.class,
            rule = %rule.name,
            "statement held for approval"
        );
        let approvals = self.approvals.clone();
        let id = view.id.clone();
        let rule_name = rule.name.clone();
        let deadline = tokio::time::Instant::now() + rule.hold_timeout;
        let class = c.class;
        self.metrics.requests.with_label_values(&["pending"]).inc();
        let fut = wait(
            (approvals.clone(), self.audit.clone(), self.metrics.clone()),
            id.clone(),
            rule_name.clone(),
            class,
            deadline,
            rx,
        );
        Verdict::Hold(Hold {
            request: id,
            rule: rule_name,
            approvals,
            fut: Box::pin(fut),
            done: false,
        })
    }
}

/// The rules' view of who acts in session `s`, now.
fn subject(s: &SessionCtx) -> Subject<'_> {
    Subject {
        user: &s.user.name,
        groups: &s.user.groups,
        target: &s.target.name,
        source: s.source,
        now: SystemTime::now(),
    }
}

/// `permit` once `write` has reached the disk; refused if it fails.
fn once_written(
    write: impl Future<Output = Result<u64, crate::audit::AuditError>> + Send + 'static,
    permit: Permit,
) -> Verdict {
    Verdict::Commit(Commit {
        fut: Box::pin(async move {
            match write.await {
                Ok(_) => Ok(permit),
                Err(e) => Err(audit_refusal(&e, permit.rule, permit.request)),
            }
        }),
    })
}
