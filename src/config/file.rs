//! The configuration file exactly as written: every section is `deny_unknown_fields`, so a
//! misspelt key is an error, never silently ignored.

use std::path::PathBuf;

use serde::Deserialize;

use crate::policy::rules::{PolicySpec, RuleSpec};

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub server: ServerSection,
    #[serde(default)]
    pub users: Vec<UserSection>,
    #[serde(default)]
    pub targets: Vec<TargetSection>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
    #[serde(default)]
    pub webhooks: Vec<WebhookSection>,
    #[serde(default)]
    pub policy: PolicySpec,
    #[serde(default)]
    pub audit: AuditSection,
    #[serde(default)]
    pub api: ApiSection,
    /// Absent: one process with its state in memory, exactly as before clustering existed.
    pub cluster: Option<ClusterSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    pub postgres_listen: Option<String>,
    pub ssh_listen: Option<String>,
    pub api_listen: String,
    pub data_dir: PathBuf,
    pub ssh_host_key: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_connections: Option<usize>,
    pub max_unauthenticated: Option<usize>,
    pub max_unauthenticated_per_source: Option<usize>,
    pub max_message_bytes: Option<usize>,
    pub message_memory_bytes: Option<usize>,
    pub startup_timeout: Option<String>,
    pub drain_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSection {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub password: Option<String>,
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    pub api_token_sha256: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    pub name: String,
    pub kind: String,
    pub address: String,
    pub database: Option<String>,
    pub user: String,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
    pub tls: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub host_key: Option<String>,
    /// Let the target ask for the password in clear text or as MD5 (default: refused).
    #[serde(default)]
    pub allow_weak_auth: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    pub url: String,
    pub timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSection {
    /// `false` records nothing (benchmarks only; a warning is logged at start).
    pub enabled: Option<bool>,
    #[serde(default)]
    pub redact_parameters: bool,
    pub on_failure: Option<String>,
    pub retention_days: Option<u32>,
    /// Bytes an SSH session may record (input and output of all its channels) before it is
    /// ended.
    pub recording_limit_bytes: Option<usize>,
}

/// `[api]`: who may read what through the control API.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// `"user:NAME"` or `"group:NAME"`: who may read everything (every request, grant,
    /// session, event and recording, the export and the chain check).
    #[serde(default)]
    pub auditors: Vec<String>,
}

/// `[cluster]`: run as one of several replicas sharing requests, grants and audit through a
/// PostgreSQL database.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// This replica's name, unique among the replicas (audit trail, API, heartbeat row).
    pub node: String,
    /// libpq keyword/value connection string of the state database, without a password.
    pub state_url: String,
    pub state_password_file: Option<PathBuf>,
    pub state_password_env: Option<String>,
    /// `disable`, `prefer` (default) or `require`, as a target's `tls`.
    pub state_tls: Option<String>,
    pub state_ca_file: Option<PathBuf>,
    /// A replica silent this long is lost: its pending requests are cancelled (default 15s).
    pub node_timeout: Option<String>,
    /// How often this replica writes its heartbeat row (default 3s).
    pub heartbeat_interval: Option<String>,
}
