//! The audit store's options (from `[audit]`), its errors and its counters for `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use crate::config::OnAuditFailure;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditError {
    #[error(
        "the audit store at {0} is in use by another process (is `jitgate serve` running? use the API instead)"
    )]
    Locked(String),
    #[error("cannot open the audit store at {dir}: {reason}")]
    Open { dir: String, reason: String },
    #[error("the audit store has failed: {0}")]
    Failed(Arc<str>),
}

#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// `false`: record nothing (for benchmarks); every call succeeds at once.
    pub enabled: bool,
    pub redact_parameters: bool,
    pub on_failure: OnAuditFailure,
    pub retention_days: Option<u32>,
    /// How long the writer gathers routine events before a commit.
    pub commit_interval: Duration,
    /// Events waiting for the writer above which every session waits at its next statement
    /// boundary (see [`super::Audit::has_room`]).
    pub queue_capacity: usize,
    /// Events of one session waiting for the writer above which that session waits.
    pub session_backlog: usize,
    /// A segment file this long gets no more blocks: the next commit starts a new one
    /// (retention removes whole segments).
    pub segment_bytes: u64,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            enabled: true,
            redact_parameters: false,
            on_failure: OnAuditFailure::RefuseSensitive,
            retention_days: None,
            commit_interval: Duration::from_millis(20),
            queue_capacity: 65_536,
            session_backlog: 4_096,
            segment_bytes: 64 << 20,
        }
    }
}

impl From<&crate::config::Audit> for AuditOptions {
    fn from(c: &crate::config::Audit) -> Self {
        AuditOptions {
            enabled: c.enabled,
            redact_parameters: c.redact_parameters,
            on_failure: c.on_failure,
            retention_days: c.retention_days,
            ..AuditOptions::default()
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditStats {
    /// Events committed since start.
    pub events: u64,
    /// Commits (each one sled batch and one flush).
    pub commits: u64,
    /// Duration of the last commit (encode, hash, write, flush), µs.
    pub last_commit_us: u64,
    pub max_commit_us: u64,
    /// Events waiting for the writer.
    pub queued: u64,
}
