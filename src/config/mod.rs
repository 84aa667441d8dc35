//! The TOML configuration: parsed once, validated once, then shared read-only.
//!
//! Two layers: [`ConfigFile`] mirrors the file exactly (`deny_unknown_fields` everywhere), and
//! [`Config`] is the validated form the rest of the program uses (addresses parsed, durations
//! parsed, secrets loaded and wrapped in [`Secret`], rules compiled). Validation collects every
//! problem it finds instead of stopping at the first, so `check-config` can list them all.
//!
//! - `file`: the file's own shape ([`ConfigFile`] and its sections).
//! - `validate`: from [`ConfigFile`] to [`Config`], every problem reported at once.
//! - `cluster`: the `[cluster]` section (replicas sharing state through PostgreSQL).
//! - `target`: a `[[targets]]` entry.

mod cluster;
mod file;
mod target;
#[cfg(test)]
mod tests;
mod validate;

pub use cluster::{Cluster, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_NODE_TIMEOUT, valid_node_name};
pub use file::*;
use validate::one_line;
pub use validate::{decode_hex32, parse_duration};

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::policy::rules::{self, Approver, Known, Rule};
use crate::scram::Verifier;
use crate::secret::Secret;

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    pub server: Server,
    pub users: BTreeMap<String, Arc<User>>,
    pub targets: BTreeMap<String, Arc<Target>>,
    pub rules: Vec<Rule>,
    pub trusted_functions: HashSet<String>,
    pub webhooks: Vec<Webhook>,
    pub audit: Audit,
    pub api: ApiAccess,
    /// `[cluster]`: `None` runs one process with its state in memory.
    pub cluster: Option<Cluster>,
}

/// `[api]`, validated: who may read everything through the control API. Everyone else sees
/// only their own items and what they may decide (see the API's `visibility` module).
#[derive(Debug, Default)]
pub struct ApiAccess {
    /// Each names a user or a group that exists in this config.
    pub auditors: Vec<Approver>,
}

impl ApiAccess {
    /// Whether `user` is named by `auditors`, itself or through one of its groups.
    pub fn is_auditor(&self, user: &User) -> bool {
        self.auditors
            .iter()
            .any(|a| a.matches(&user.name, &user.groups))
    }
}

/// The config in force, swapped whole on reload: readers take a snapshot (`Arc<Config>`)
/// and keep it for as long as they need one consistent version.
///
/// An `ArcSwap`, not a lock: every statement's decision reads it ([`LiveConfig::load`]),
/// and a lock word or reference count written by every session thread on every statement
/// would bounce between their cores.
#[derive(Debug)]
pub struct LiveConfig(arc_swap::ArcSwap<Config>);

impl LiveConfig {
    pub fn new(config: Arc<Config>) -> LiveConfig {
        LiveConfig(arc_swap::ArcSwap::new(config))
    }

    /// A snapshot to keep.
    pub fn get(&self) -> Arc<Config> {
        self.0.load_full()
    }

    /// A snapshot for a moment (one decision): no reference count is written.
    pub fn load(&self) -> arc_swap::Guard<Arc<Config>> {
        self.0.load()
    }

    pub fn set(&self, config: Arc<Config>) {
        self.0.store(config);
    }
}

#[derive(Debug)]
pub struct Server {
    pub postgres_listen: Option<SocketAddr>,
    pub ssh_listen: Option<SocketAddr>,
    pub api_listen: SocketAddr,
    pub data_dir: PathBuf,
    pub ssh_host_key: PathBuf,
    pub tls: Option<TlsFiles>,
    pub max_connections: usize,
    /// Connections per front end still negotiating or authenticating.
    pub max_unauthenticated: usize,
    /// Of those, from one source address.
    pub max_unauthenticated_per_source: usize,
    pub max_message_bytes: usize,
    /// Incomplete large messages of all sessions together, at most.
    pub message_memory_bytes: usize,
    pub startup_timeout: Duration,
    pub drain_timeout: Duration,
}

impl Server {
    /// What each front end admits.
    pub fn limits(&self) -> crate::lifecycle::Limits {
        crate::lifecycle::Limits {
            sessions: self.max_connections,
            unauthenticated: self.max_unauthenticated,
            unauthenticated_per_source: self.max_unauthenticated_per_source,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    pub password: Option<Verifier>,
    pub ssh_keys: Vec<String>,
    pub api_token_sha256: Option<[u8; 32]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Postgres,
    Ssh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamTls {
    Disable,
    Prefer,
    Require,
}

#[derive(Debug)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    /// `host:port`, resolved at connect time.
    pub address: String,
    pub database: String,
    pub user: String,
    pub password: Option<Secret<String>>,
    pub tls: UpstreamTls,
    pub ca_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub host_key: Option<String>,
    /// The target may ask for the password in clear text or as MD5; otherwise only
    /// SCRAM-SHA-256 is answered, so the password never leaves jitgate in a reusable form.
    pub allow_weak_auth: bool,
}

#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    pub timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnAuditFailure {
    RefuseAll,
    RefuseSensitive,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Audit {
    pub enabled: bool,
    pub redact_parameters: bool,
    pub on_failure: OnAuditFailure,
    pub retention_days: Option<u32>,
    /// An SSH session that would record more than this (input and output of all its
    /// channels together) is ended: it never continues unrecorded.
    pub recording_limit_bytes: usize,
}

pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_MAX_UNAUTHENTICATED: usize = 256;
pub const DEFAULT_MAX_UNAUTHENTICATED_PER_SOURCE: usize = 64;
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;
pub const DEFAULT_MESSAGE_MEMORY_BYTES: usize = 1 << 30;
pub const DEFAULT_RECORDING_LIMIT_BYTES: usize = 256 << 20;
/// A smaller recording limit would end sessions at their first screenful.
pub const MIN_RECORDING_LIMIT_BYTES: usize = 64 << 10;

/// Every problem found, one human line each.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigErrors(pub Vec<String>);

impl Config {
    /// Read, parse and validate `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigErrors(vec![format!("cannot read {}: {e}", path.display())]))?;
        Config::parse(&text, path.parent().unwrap_or(Path::new(".")))
    }

    /// Parse and validate TOML text; relative paths are taken from `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Config, ConfigErrors> {
        let file: ConfigFile =
            toml::from_str(text).map_err(|e| ConfigErrors(vec![one_line(&e.to_string())]))?;
        validate::validate(file, base)
    }

    pub fn target(&self, name: &str) -> Option<&Arc<Target>> {
        self.targets.get(name)
    }

    pub fn user(&self, name: &str) -> Option<&Arc<User>> {
        self.users.get(name)
    }
}
