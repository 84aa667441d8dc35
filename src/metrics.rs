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
use crate::policy::{Class, Decision};

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
    audit_healthy: IntGauge,
    /// Times a session stopped reading its client until the audit writer caught up.
    pub audit_waits: IntCounterVec,
    /// Cluster mode: local audit events not yet known to be in the state database.
    pub cluster_shipping_lag: IntGauge,
}

/// Makes metric families and registers each in one registry. Names and label sets are
/// constants of this file, so making one cannot fail at run time; registration only fails on
/// a duplicate name, a programming error that is logged.
struct Families(Registry);

impl Families {
    fn register<T: prometheus::core::Collector + Clone + 'static>(&self, c: T) -> T {
        if let Err(e) = self.0.register(Box::new(c.clone())) {
            tracing::error!("metric registration failed: {e}");
        }
        c
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.register(IntCounter::new(name, help).unwrap_or_else(|_| unreachable!()))
    }

    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let family = IntCounterVec::new(Opts::new(name, help), labels);
        self.register(family.unwrap_or_else(|_| unreachable!()))
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.register(IntGauge::new(name, help).unwrap_or_else(|_| unreachable!()))
    }

    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        let family = IntGaugeVec::new(Opts::new(name, help), labels);
        self.register(family.unwrap_or_else(|_| unreachable!()))
    }

    fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> Histogram {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.register(Histogram::with_opts(opts).unwrap_or_else(|_| unreachable!()))
    }

    fn histograms(&self, name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.register(HistogramVec::new(opts, labels).unwrap_or_else(|_| unreachable!()))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let f = Families(Registry::new());
        let statements_vec = f.counters(
            "jitgate_statements_total",
            "Statements and commands decided, by class and decision.",
            &["protocol", "class", "decision"],
        );
        let mut statements = Vec::new();
        for p in Protocol::ALL.map(Protocol::as_str) {
            for c in Class::ALL {
                for d in Decision::ALL.map(Decision::as_str) {
                    statements.push(statements_vec.with_label_values(&[p, c.as_str(), d]));
                }
            }
        }
        let config_reloads = f.counters(
            "jitgate_config_reloads_total",
            "Configuration reloads (SIGHUP) by result.",
            &["result"],
        );
        for result in ["ok", "error"] {
            config_reloads.with_label_values(&[result]);
        }
        let audit_waits = f.counters(
            "jitgate_audit_backpressure_waits_total",
            "Times a session stopped reading its client until the audit writer caught up.",
            &["protocol"],
        );
        for p in Protocol::ALL.map(Protocol::as_str) {
            audit_waits.with_label_values(&[p]);
        }
        Metrics {
            connections: f.counters(
                "jitgate_connections_total",
                "Client connections by outcome.",
                &["protocol", "result"],
            ),
            active_sessions: f.gauges(
                "jitgate_active_sessions",
                "Sessions currently open.",
                &["protocol"],
            ),
            statements,
            requests: f.counters(
                "jitgate_requests_total",
                "Approval requests by the state they reached (pending = created).",
                &["state"],
            ),
            pending_requests: f.gauge(
                "jitgate_pending_requests",
                "Requests waiting for a decision.",
            ),
            approval_wait: f.histogram(
                "jitgate_approval_wait_seconds",
                "Time from a hold to its outcome.",
                &[1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0],
            ),
            proxy_latency: f.histograms(
                "jitgate_proxy_latency_seconds",
                "Time the proxy spends deciding a statement before forwarding it.",
                &[1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 5e-4, 1e-3, 1e-2],
                &["protocol"],
            ),
            upstream_connect_failures: f.counters(
                "jitgate_upstream_connect_failures_total",
                "Failed connections to targets.",
                &["protocol", "target"],
            ),
            live_grants: f.gauge("jitgate_live_grants", "Grants currently in force."),
            cache_hits: f.counter(
                "jitgate_classification_cache_hits_total",
                "Statements whose classification came from the cache.",
            ),
            cache_misses: f.counter(
                "jitgate_classification_cache_misses_total",
                "Statements parsed and classified anew.",
            ),
            config_reloads,
            audit_commit: f.histogram(
                "jitgate_audit_flush_seconds",
                "Audit group commits: encode, hash, write and flush to disk.",
                &[
                    1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.5,
                ],
            ),
            audit_queue: f.gauge(
                "jitgate_audit_queue_depth",
                "Audit events waiting for the writer.",
            ),
            audit_events: f.counter(
                "jitgate_audit_events_total",
                "Audit events committed to disk.",
            ),
            audit_waits,
            audit_healthy: f.gauge(
                "jitgate_audit_healthy",
                "1 while the audit store accepts writes, 0 once it has failed.",
            ),
            cluster_shipping_lag: f.gauge(
                "jitgate_cluster_shipping_lag_events",
                "Cluster mode: audit events committed locally and not yet shipped to the state database.",
            ),
            registry: f.0,
        }
    }

    /// Bring the audit store's figures up to date; called at scrape.
    pub fn sync_audit(&self, s: &crate::audit::AuditStats, healthy: bool) {
        self.audit_queue.set(s.queued as i64);
        self.audit_events
            .inc_by(s.events.saturating_sub(self.audit_events.get()));
        self.audit_healthy.set(i64::from(healthy));
    }

    /// Count one decided statement.
    pub fn statement(&self, protocol: Protocol, class: Class, d: Decision) {
        let p = usize::from(protocol == Protocol::Ssh);
        let c = Class::ALL.iter().position(|x| *x == class).unwrap_or(6);
        if let Some(counter) = self
            .statements
            .get((p * Class::ALL.len() + c) * Decision::ALL.len() + d as usize)
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
