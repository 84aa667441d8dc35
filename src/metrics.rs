//! Prometheus metrics: one registry, handles passed to whoever counts.
//!
//! Names carry the `jitgate_` prefix, counters end in `_total`, durations are `_seconds`
//! histograms. Labels are low-cardinality and never user input: protocol, target (from the
//! config), class, decision, state, result. Hot-path counters are resolved once at start, so
//! counting a statement is one atomic add.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::lifecycle::Protocol;
use crate::policy::Class;

const DECISIONS: [&str; 3] = ["allow", "review", "deny"];

pub struct Metrics {
    pub registry: Registry,
    pub connections: IntCounterVec,
    pub active_sessions: IntGaugeVec,
    statements: Vec<IntCounter>,
    pub requests: IntCounterVec,
    pub pending_requests: IntGauge,
    pub approval_wait: Histogram,
    pub proxy_latency: HistogramVec,
    pub upstream_connect_failures: IntCounterVec,
    pub live_grants: IntGauge,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    /// SIGHUP reloads by result (`ok` | `error`).
    pub config_reloads: IntCounterVec,
    pub audit_commit: Histogram,
    audit_queue: IntGauge,
    audit_events: IntCounter,
    audit_dropped: IntCounter,
    audit_healthy: IntGauge,
}

#[derive(Clone, Copy)]
pub enum Decision {
    Allow = 0,
    Review = 1,
    Deny = 2,
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: T) -> T {
    // Registration only fails on duplicate names, which would be a programming error here.
    if let Err(e) = r.register(Box::new(c.clone())) {
        tracing::error!("metric registration failed: {e}");
    }
    c
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let connections = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "jitgate_connections_total",
                    "Client connections by outcome.",
                ),
                &["protocol", "result"],
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let active_sessions = reg(
            &r,
            IntGaugeVec::new(
                Opts::new("jitgate_active_sessions", "Sessions currently open."),
                &["protocol"],
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let statements_vec = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "jitgate_statements_total",
                    "Statements and commands decided, by class and decision.",
                ),
                &["protocol", "class", "decision"],
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let mut statements = Vec::new();
        for p in Protocol::ALL.map(Protocol::as_str) {
            for c in Class::ALL {
                for d in DECISIONS {
                    statements.push(statements_vec.with_label_values(&[p, c.as_str(), d]));
                }
            }
        }
        let requests = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "jitgate_requests_total",
                    "Approval requests by the state they reached (pending = created).",
                ),
                &["state"],
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let pending_requests = reg(
            &r,
            IntGauge::new(
                "jitgate_pending_requests",
                "Requests waiting for a decision.",
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let approval_wait = reg(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "jitgate_approval_wait_seconds",
                    "Time from a hold to its outcome.",
                )
                .buckets(vec![
                    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
                ]),
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let proxy_latency = reg(
            &r,
            HistogramVec::new(
                HistogramOpts::new(
                    "jitgate_proxy_latency_seconds",
                    "Time the proxy spends deciding a statement before forwarding it.",
                )
                .buckets(vec![
                    1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 5e-4, 1e-3, 1e-2,
                ]),
                &["protocol"],
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let upstream_connect_failures = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "jitgate_upstream_connect_failures_total",
                    "Failed connections to targets.",
                ),
                &["protocol", "target"],
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let live_grants = reg(
            &r,
            IntGauge::new("jitgate_live_grants", "Grants currently in force.")
                .unwrap_or_else(|_| unreachable!()),
        );
        let cache_hits = reg(
            &r,
            IntCounter::new(
                "jitgate_classification_cache_hits_total",
                "Statements whose classification came from the cache.",
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let cache_misses = reg(
            &r,
            IntCounter::new(
                "jitgate_classification_cache_misses_total",
                "Statements parsed and classified anew.",
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let config_reloads = reg(
            &r,
            IntCounterVec::new(
                Opts::new(
                    "jitgate_config_reloads_total",
                    "Configuration reloads (SIGHUP) by result.",
                ),
                &["result"],
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        for result in ["ok", "error"] {
            config_reloads.with_label_values(&[result]);
        }
        let audit_commit = reg(
            &r,
            Histogram::with_opts(
                HistogramOpts::new(
                    "jitgate_audit_flush_seconds",
                    "Audit group commits: encode, hash, write and flush to disk.",
                )
                .buckets(vec![
                    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.5,
                ]),
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let audit_queue = reg(
            &r,
            IntGauge::new(
                "jitgate_audit_queue_depth",
                "Audit events waiting for the writer.",
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let audit_events = reg(
            &r,
            IntCounter::new(
                "jitgate_audit_events_total",
                "Audit events committed to disk.",
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let audit_dropped = reg(
            &r,
            IntCounter::new(
                "jitgate_audit_dropped_events_total",
                "Routine audit events dropped because the queue was full.",
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let audit_healthy = reg(
            &r,
            IntGauge::new(
                "jitgate_audit_healthy",
                "1 while the audit store accepts writes, 0 once it has failed.",
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        Metrics {
            registry: r,
            connections,
            active_sessions,
            statements,
            requests,
            pending_requests,
            approval_wait,
            proxy_latency,
            upstream_connect_failures,
            live_grants,
            cache_hits,
            cache_misses,
            config_reloads,
            audit_commit,
            audit_queue,
            audit_events,
            audit_dropped,
            audit_healthy,
        }
    }

    /// Bring the audit store's figures up to date; called at scrape.
    pub fn sync_audit(&self, s: &crate::audit::AuditStats, healthy: bool) {
        self.audit_queue.set(s.queued as i64);
        self.audit_events
            .inc_by(s.events.saturating_sub(self.audit_events.get()));
        self.audit_dropped
            .inc_by(s.dropped.saturating_sub(self.audit_dropped.get()));
        self.audit_healthy.set(i64::from(healthy));
    }

    /// Count one decided statement.
    pub fn statement(&self, protocol: Protocol, class: Class, d: Decision) {
        let p = usize::from(protocol == Protocol::Ssh);
        let c = Class::ALL.iter().position(|x| *x == class).unwrap_or(6);
        if let Some(counter) = self
            .statements
            .get((p * Class::ALL.len() + c) * 3 + d as usize)
        {
            counter.inc();
        }
    }

    /// Bring counters kept elsewhere (the cache's own atomics) up to date; called at scrape.
    pub fn sync_cache(&self, hits: u64, misses: u64) {
        self.cache_hits
            .inc_by(hits.saturating_sub(self.cache_hits.get()));
        self.cache_misses
            .inc_by(misses.saturating_sub(self.cache_misses.get()));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!("metrics encoding failed: {e}");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
