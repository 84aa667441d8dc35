//! The Gate: every statement and command passes here before it may reach a target.
//!
//! `Gate::check` classifies nothing itself (front ends hand it the classification they got
//! from the policy cache), matches the rules, consults live grants, and returns a [`Verdict`].
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
//! with a durable write). Reads are queued for the group commit and never wait. While the store is failed, `[audit] on_failure` decides
//! what is refused.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use crate::approval::{Approvals, Candidate, NewRequest, Outcome, State};
use crate::audit::{Audit, Decision as AuditDecision, EventKind, Text};
use crate::config::{Config, Target, User};
use crate::lifecycle::Protocol;
use crate::metrics::{Decision, Metrics};
use crate::policy::cache::ClassifierCache;
use crate::policy::rules::{self, Action as RuleAction, Subject};
use crate::policy::{Class, Classification};

/// Who is acting, from where, on what. One per client session.
#[derive(Debug, Clone)]
pub struct SessionCtx {
    pub id: String,
    pub user: Arc<User>,
    pub target: Arc<Target>,
    pub source: IpAddr,
    pub protocol: Protocol,
}

/// One statement or command to decide.
pub struct Action<'a> {
    pub statement: &'a str,
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
}

/// Proof that the Gate allowed one action. Only this module can make one.
#[derive(Debug)]
pub struct Permit {
    pub class: Class,
    pub rule: Option<String>,
    pub request: Option<String>,
    pub grant: Option<String>,
    _seal: Seal,
}

#[derive(Debug)]
struct Seal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// Policy or an approver said no.
    Denied,
    /// Nobody decided within the rule's hold_timeout.
    TimedOut,
    /// The client withdrew it (cancel, disconnect) or the proxy is shutting down.
    Cancelled,
}

#[derive(Debug, Clone)]
pub struct Refusal {
    pub kind: RefusalKind,
    pub message: String,
    pub rule: Option<String>,
    pub request: Option<String>,
}

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

type Waiting = Pin<Box<dyn Future<Output = Result<Permit, Refusal>> + Send>>;

/// An action allowed by a grant, waiting for its audit event to reach disk.
pub struct Commit {
    fut: Waiting,
}

impl Future for Commit {
    type Output = Result<Permit, Refusal>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.fut.as_mut().poll(cx)
    }
}

/// Shared state behind the Gate.
pub struct Gate {
    config: RwLock<Arc<Config>>,
    pub cache: ClassifierCache,
    pub approvals: Arc<Approvals>,
    pub metrics: Arc<Metrics>,
    audit: Audit,
}

/// A held action waiting for its request's outcome.
pub struct Hold {
    pub request: String,
    pub rule: String,
    approvals: Arc<Approvals>,
    fut: Waiting,
    done: bool,
}

impl Hold {
    /// Withdraw the request (client cancel). The next poll resolves to a `Cancelled` refusal
    /// unless a decision won the race.
    pub fn cancel(&self, reason: &str) {
        self.approvals
            .close(&self.request, State::Cancelled, reason);
    }
}

impl Future for Hold {
    type Output = Result<Permit, Refusal>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let r = self.fut.as_mut().poll(cx);
        if r.is_ready() {
            self.done = true;
        }
        r
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.done {
            self.approvals
                .close(&self.request, State::Cancelled, "the client went away");
        }
    }
}

impl Gate {
    pub fn new(
        config: Arc<Config>,
        approvals: Arc<Approvals>,
        metrics: Arc<Metrics>,
        audit: Audit,
    ) -> Gate {
        let cache = ClassifierCache::new(10_000, config.trusted_functions.clone());
        approvals.set_audit(audit.clone());
        audit.observe_commits(metrics.audit_commit.clone());
        Gate {
            config: RwLock::new(config),
            cache,
            approvals,
            metrics,
            audit,
        }
    }

    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Record a session's start (`client` is `ip:port`).
    pub fn session_start(&self, s: &SessionCtx, client: &str, application: Option<&str>) {
        let _ = self.audit.record(
            Text::from(&s.id),
            EventKind::SessionStart {
                protocol: Text::from_static(s.protocol.as_str()),
                user: Text::from(&s.user.name),
                target: Text::from(&s.target.name),
                client: Text::from(client),
                application: application.map(Text::from),
            },
        );
    }

    /// Record a session's end; bytes are counted from the client's point of view.
    pub fn session_end(&self, s: &SessionCtx, reason: &str, bytes_in: u64, bytes_out: u64) {
        let _ = self.audit.record(
            Text::from(&s.id),
            EventKind::SessionEnd {
                reason: Text::from(reason),
                bytes_in,
                bytes_out,
            },
        );
    }

    /// Record one event in a session.
    pub fn record(&self, s: &SessionCtx, ev: EventKind) {
        let _ = self.audit.record(Text::from(&s.id), ev);
    }

    /// The audit event for a decision on `a`.
    fn event(
        s: &SessionCtx,
        a: &Action<'_>,
        c: &Classification,
        decision: AuditDecision,
        rule: Option<&str>,
        request: Option<&str>,
        grant: Option<&str>,
    ) -> EventKind {
        if s.protocol == Protocol::Ssh {
            EventKind::Command {
                command: Text::from(a.statement),
                class: a.class,
                decision,
                rule: rule.map(Text::from),
                request: request.map(Text::from),
                grant: grant.map(Text::from),
            }
        } else {
            EventKind::Statement {
                text: Text::from(a.statement),
                class: a.class,
                tables: Arc::from(c.tables.as_slice()),
                decision,
                rule: rule.map(Text::from),
                request: request.map(Text::from),
                grant: grant.map(Text::from),
            }
        }
    }

    /// Refresh the metrics that are read rather than counted; called at scrape time.
    pub fn refresh_metrics(&self) {
        self.metrics
            .sync_cache(self.cache.hits(), self.cache.misses());
        self.metrics
            .live_grants
            .set(self.approvals.grants().len() as i64);
        self.metrics
            .pending_requests
            .set(self.approvals.pending_count() as i64);
        self.metrics
            .sync_audit(&self.audit.stats(), self.audit.healthy());
    }

    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_config(&self, c: Arc<Config>) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = c;
    }

    pub fn check(&self, s: &SessionCtx, a: Action<'_>) -> Verdict {
        let config = self.config();
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
        let subject = Subject {
            user: &s.user.name,
            groups: &s.user.groups,
            target: &s.target.name,
            source: s.source,
            now: SystemTime::now(),
        };
        let eval = rules::evaluate(&config.rules, &subject, classification);
        let rule_name = eval.rule.map(|r| r.name.clone());
        let decision = match eval.action {
            RuleAction::Allow => Decision::Allow,
            RuleAction::Review => Decision::Review,
            RuleAction::Deny => Decision::Deny,
        };
        self.metrics.statement(s.protocol, a.class, decision);
        let sensitive = a.class != Class::Read || eval.action != RuleAction::Allow;
        if eval.action != RuleAction::Deny
            && let Some(e) = self.audit.refusal(sensitive)
        {
            self.record(
                s,
                Self::event(
                    s,
                    &a,
                    classification,
                    AuditDecision::Deny,
                    rule_name.as_deref(),
                    None,
                    None,
                ),
            );
            return Verdict::Deny(audit_refusal(&e, rule_name, None));
        }
        match eval.action {
            RuleAction::Allow => {
                let ev = Self::event(
                    s,
                    &a,
                    classification,
                    AuditDecision::Allow,
                    rule_name.as_deref(),
                    None,
                    None,
                );
                let permit = Permit {
                    class: a.class,
                    rule: rule_name,
                    request: None,
                    grant: None,
                    _seal: Seal,
                };
                if sensitive && !a.deferrable {
                    // Anything that may change something is on disk before it runs.
                    self.durable(s, ev, permit)
                } else if sensitive {
                    // Deferred to the transaction's commit point, but never dropped: a full
                    // queue makes it wait for the disk instead.
                    match self.audit.record(Text::from(&s.id), ev.clone()) {
                        Err(crate::audit::AuditError::QueueFull) => self.durable(s, ev, permit),
                        _ => Verdict::Allow(permit),
                    }
                } else {
                    self.record(s, ev);
                    Verdict::Allow(permit)
                }
            }
            RuleAction::Deny => {
                self.record(
                    s,
                    Self::event(
                        s,
                        &a,
                        classification,
                        AuditDecision::Deny,
                        rule_name.as_deref(),
                        None,
                        None,
                    ),
                );
                Verdict::Deny(Refusal {
                    kind: RefusalKind::Denied,
                    message: match &rule_name {
                        Some(r) => format!("jitgate: denied by rule \"{r}\""),
                        None => format!("jitgate: denied: {}", eval.reason),
                    },
                    rule: rule_name,
                    request: None,
                })
            }
            RuleAction::Review => {
                let Some(rule) = eval.rule else {
                    return Verdict::Deny(Refusal {
                        kind: RefusalKind::Denied,
                        message: "jitgate: denied: review without a rule".into(),
                        rule: None,
                        request: None,
                    });
                };
                if let Some(g) = self.approvals.find_grant(&Candidate {
                    user: &s.user.name,
                    target: &s.target.name,
                    class: a.class,
                    tables: &classification.tables,
                    statement: a.statement,
                    runs_prepared: a.runs_prepared,
                }) {
                    return self.commit(s, &a, classification, rule, g);
                }
                self.hold(s, &a, classification, rule)
            }
        }
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
        let ev = Self::event(
            s,
            a,
            c,
            AuditDecision::Allow,
            Some(&rule.name),
            Some(&g.request),
            Some(&g.id),
        );
        let permit = Permit {
            class: a.class,
            rule: Some(rule.name.clone()),
            request: Some(g.request),
            grant: Some(g.id),
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
        let statement = a.statement;
        let id = crate::approval::new_id("r");
        let held = Self::event(
            s,
            a,
            c,
            AuditDecision::Held,
            Some(&rule.name),
            Some(&id),
            None,
        );
        // Dropped from a full queue: written durably once approved, instead of a plain flush.
        let dropped = match self.audit.record(Text::from(&s.id), held.clone()) {
            Err(crate::audit::AuditError::QueueFull) => Some((Text::from(&s.id), held)),
            _ => None,
        };
        let (view, rx) = self.approvals.create(NewRequest {
            id: Some(id),
            user: s.user.name.clone(),
            target: s.target.name.clone(),
            protocol: s.protocol.as_str(),
            class: c.class,
            statement: statement.to_string(),
            tables: c.tables.clone(),
            rule: rule.name.clone(),
            source: s.source.to_string(),
            session: s.id.clone(),
            runs_prepared: a.runs_prepared,
            approvers: rule.approvers.clone(),
            approvals_required: rule.approvals_required,
            hold_timeout: rule.hold_timeout,
            max_grant: rule.max_grant,
        });
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
        let timeout = rule.hold_timeout;
        let class = c.class;
        self.metrics.requests.with_label_values(&["pending"]).inc();
        let fut = wait(
            (approvals.clone(), self.audit.clone(), self.metrics.clone()),
            dropped,
            id.clone(),
            rule_name.clone(),
            class,
            timeout,
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

fn audit_refusal(
    e: &crate::audit::AuditError,
    rule: Option<String>,
    request: Option<String>,
) -> Refusal {
    Refusal {
        kind: RefusalKind::Denied,
        message: format!(
            "jitgate: refused because the audit trail cannot record it ({e}); \
             ask an operator to check jitgate's data_dir"
        ),
        rule,
        request,
    }
}

async fn wait(
    (approvals, audit, metrics): (Arc<Approvals>, Audit, Arc<Metrics>),
    dropped: Option<(Text, EventKind)>,
    id: String,
    rule: String,
    class: Class,
    timeout: Duration,
    mut rx: tokio::sync::oneshot::Receiver<Outcome>,
) -> Result<Permit, Refusal> {
    let started = std::time::Instant::now();
    let outcome = tokio::select! {
        o = &mut rx => o.ok(),
        _ = tokio::time::sleep(timeout) => {
            approvals.close(&id, State::Expired, "hold_timeout reached");
            // Whoever won the race (expiry or a decision a moment earlier) sent the outcome.
            rx.await.ok()
        }
    };
    metrics
        .approval_wait
        .observe(started.elapsed().as_secs_f64());
    let state = match &outcome {
        Some(Outcome::Approved { .. }) => "approved",
        Some(Outcome::Denied { .. }) => "denied",
        Some(Outcome::Expired) => "expired",
        _ => "cancelled",
    };
    metrics.requests.with_label_values(&[state]).inc();
    tracing::info!(request = %id, outcome = state, "hold resolved");
    let refuse = |kind, message: String| {
        Err(Refusal {
            kind,
            message,
            rule: Some(rule.clone()),
            request: Some(id.clone()),
        })
    };
    match outcome {
        Some(Outcome::Approved { grant, .. }) => {
            // The approval was queued for the audit before this session was woken; this
            // flush puts it on disk before the statement may go upstream.
            let written = match dropped {
                Some((session, ev)) => audit.record_durable(session, ev).await,
                None => audit.flush().await,
            };
            if let Err(e) = written {
                return Err(audit_refusal(&e, Some(rule), Some(id)));
            }
            Ok(Permit {
                class,
                rule: Some(rule.clone()),
                request: Some(id.clone()),
                grant,
                _seal: Seal,
            })
        }
        Some(Outcome::Denied { by, reason }) => refuse(
            RefusalKind::Denied,
            format!("jitgate: request {id} denied by {by}: {reason}"),
        ),
        Some(Outcome::Expired) => refuse(
            RefusalKind::TimedOut,
            format!("jitgate: request {id} timed out waiting for approval"),
        ),
        Some(Outcome::Cancelled { reason }) => refuse(
            RefusalKind::Cancelled,
            format!("jitgate: request {id} cancelled: {reason}"),
        ),
        None => refuse(
            RefusalKind::Cancelled,
            format!("jitgate: request {id} cancelled"),
        ),
    }
}
