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

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use crate::approval::{Approvals, Candidate, NewRequest, Outcome, State};
use crate::config::{Config, Target, User};
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
    pub protocol: &'static str,
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
    Allow(Permit),
    Deny(Refusal),
    Hold(Hold),
}

/// Shared state behind the Gate.
pub struct Gate {
    config: RwLock<Arc<Config>>,
    pub cache: ClassifierCache,
    pub approvals: Arc<Approvals>,
    pub metrics: Arc<Metrics>,
    /// The audit trail, once `serve` has opened it (stand-in until main wires it in).
    audit: std::sync::OnceLock<Arc<crate::audit::Audit>>,
}

/// A held action waiting for its request's outcome.
pub struct Hold {
    pub request: String,
    pub rule: String,
    approvals: Arc<Approvals>,
    fut: Pin<Box<dyn Future<Output = Result<Permit, Refusal>> + Send>>,
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
    pub fn new(config: Arc<Config>, approvals: Arc<Approvals>, metrics: Arc<Metrics>) -> Gate {
        let cache = ClassifierCache::new(10_000, config.trusted_functions.clone());
        Gate {
            config: RwLock::new(config),
            cache,
            approvals,
            metrics,
            audit: std::sync::OnceLock::new(),
        }
    }

    /// Attach the audit trail (once; later calls are ignored).
    pub fn set_audit(&self, audit: Arc<crate::audit::Audit>) {
        let _ = self.audit.set(audit);
    }

    pub fn audit(&self) -> Option<&Arc<crate::audit::Audit>> {
        self.audit.get()
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
        match eval.action {
            RuleAction::Allow => Verdict::Allow(Permit {
                class: a.class,
                rule: rule_name,
                request: None,
                grant: None,
                _seal: Seal,
            }),
            RuleAction::Deny => Verdict::Deny(Refusal {
                kind: RefusalKind::Denied,
                message: match &rule_name {
                    Some(r) => format!("jitgate: denied by rule \"{r}\""),
                    None => format!("jitgate: denied: {}", eval.reason),
                },
                rule: rule_name,
                request: None,
            }),
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
                    return Verdict::Allow(Permit {
                        class: a.class,
                        rule: Some(rule.name.clone()),
                        request: Some(g.request.clone()),
                        grant: Some(g.id),
                        _seal: Seal,
                    });
                }
                self.hold(s, &a, classification, rule)
            }
        }
    }

    fn hold(
        &self,
        s: &SessionCtx,
        a: &Action<'_>,
        c: &Classification,
        rule: &rules::Rule,
    ) -> Verdict {
        let statement = a.statement;
        let (view, rx) = self.approvals.create(NewRequest {
            user: s.user.name.clone(),
            target: s.target.name.clone(),
            protocol: s.protocol,
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
            approvals.clone(),
            self.metrics.clone(),
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

async fn wait(
    approvals: Arc<Approvals>,
    metrics: Arc<Metrics>,
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
        Some(Outcome::Approved { grant, .. }) => Ok(Permit {
            class,
            rule: Some(rule.clone()),
            request: Some(id.clone()),
            grant,
            _seal: Seal,
        }),
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
