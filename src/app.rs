//! The wiring of one running jitgate: the config in force, the [`Gate`], the classifier
//! cache, approvals, the audit trail and metrics, made once at start by [`AppState::new`].
//!
//! Front ends and the API hold an `Arc<AppState>` and take what they need from it; the Gate
//! holds only what deciding needs (the config, approvals, the audit trail and its counters).
//! Invariant: there is one of each piece per process, and the config is swapped whole on
//! reload, so every reader sees one consistent version.

use std::sync::Arc;

use crate::approval::Approvals;
use crate::audit::{Audit, EventKind, Text};
use crate::cluster::History;
use crate::config::{Config, LiveConfig};
use crate::gate::{Gate, SessionCtx};
use crate::lifecycle::LiveSessions;
use crate::lifecycle::MessageBudget;
use crate::metrics::Metrics;
use crate::policy::cache::TargetCaches;

/// Entries of each target's classifier cache.
const CACHE_ENTRIES: usize = 10_000;

pub struct AppState {
    config: Arc<LiveConfig>,
    pub gate: Gate,
    /// One classifier cache per target.
    pub cache: TargetCaches,
    pub approvals: Arc<Approvals>,
    pub audit: Audit,
    /// Where the API reads audit history: `audit` itself, or in cluster mode every replica's
    /// shipped trail.
    pub history: History,
    pub metrics: Arc<Metrics>,
    /// Memory for incomplete large messages, shared by every Postgres session.
    pub message_budget: MessageBudget,
    /// Sessions in progress, by user: a reload that removes a user ends theirs.
    pub sessions: LiveSessions,
    /// This replica's `[cluster] node`, named in every session's start event.
    node: Option<Text>,
}

/// Why a session of a user the config no longer has is ended (its audit record says so).
pub const USER_REMOVED: &str =
    "jitgate ended the session: its user was removed from the configuration";

impl AppState {
    /// Wire the pieces around an opened (and started) audit trail; `history` is what the API
    /// reads it through (`History::Local(audit)` for one jitgate).
    pub fn new(
        config: Arc<Config>,
        audit: Audit,
        history: History,
        metrics: Arc<Metrics>,
    ) -> Arc<AppState> {
        let approvals = Arc::new(Approvals::new());
        approvals.set_audit(audit.clone());
        audit.observe_commits(metrics.audit_commit.clone());
        let node = config.cluster.as_ref().map(|c| Text::from(&c.node));
        let cache = TargetCaches::new(CACHE_ENTRIES, config.trusted_functions.clone());
        let message_budget = MessageBudget::new(config.server.message_memory_bytes);
        let config = Arc::new(LiveConfig::new(config));
        let gate = Gate::new(
            config.clone(),
            approvals.clone(),
            metrics.clone(),
            audit.clone(),
        );
        Arc::new(AppState {
            config,
            gate,
            cache,
            approvals,
            audit,
            history,
            metrics,
            message_budget,
            sessions: LiveSessions::default(),
            node,
        })
    }

    /// The config in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config.get()
    }

    /// Put a config in force (see [`Self::reload`]).
    fn set_config(&self, config: Arc<Config>) {
        self.config.set(config);
    }

    /// Put a reloaded config in force, then end what it no longer allows: the live sessions
    /// and the grants of users it removed. Returns (sessions ended, grants revoked).
    pub fn reload(&self, config: Arc<Config>) -> (usize, usize) {
        self.set_config(config.clone());
        let gone = |user: &str| !config.users.contains_key(user);
        let ended = self.sessions.end_where(gone, USER_REMOVED);
        let revoked = self.approvals.revoke_grants_of(gone);
        self.cache
            .retain(|target| config.targets.contains_key(target));
        (ended, revoked)
    }

    /// Record a session's start (`client` is `ip:port`; `parameters` are the Postgres
    /// start-up parameters forwarded to the target) and register it, so a reload can end it.
    /// A session whose user a reload removed meanwhile is ended at once.
    pub fn session_start(
        &self,
        s: &SessionCtx,
        client: &str,
        application: Option<&str>,
        parameters: &[(String, String)],
    ) {
        self.sessions.register(&s.id, &s.user.name);
        // Registered first, checked second: a reload in between is seen by one of the two.
        if !self.config().users.contains_key(&s.user.name) {
            self.sessions.end_where(|u| u == s.user.name, USER_REMOVED);
        }
        self.record(
            s,
            EventKind::SessionStart {
                protocol: Text::from_static(s.protocol.as_str()),
                user: Text::from(&s.user.name),
                target: Text::from(&s.target.name),
                client: Text::from(client),
                application: application.map(Text::from),
                parameters: Arc::from(parameters),
                node: self.node.clone(),
            },
        );
    }

    /// Record a session's end and forget it; bytes are counted from the client's point of
    /// view. A session ended by a reload records that reason instead of `reason`.
    pub fn session_end(&self, s: &SessionCtx, reason: &str, bytes_in: u64, bytes_out: u64) {
        let ended = self.sessions.forget(&s.id);
        self.record(
            s,
            EventKind::SessionEnd {
                reason: Text::from(ended.as_deref().unwrap_or(reason)),
                bytes_in,
                bytes_out,
            },
        );
    }

    /// Record one event in a session.
    pub fn record(&self, s: &SessionCtx, event: EventKind) {
        let _ = self.audit.record_in(&s.backlog, Text::from(&s.id), event);
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
}
