//! `[cluster]`, validated: this replica's node name and how to reach the state database.
//!
//! Invariants: the node name is a short identifier (it is written into audit events, the API
//! and the heartbeat table); the password never sits in `state_url` (it would print with the
//! config), it comes from `state_password_file` or `state_password_env`; the heartbeat is at
//! most a third of `node_timeout`, so one late heartbeat never makes a live replica look lost.

use super::validate::{duration_or, resolve, secret_from};
use super::*;

/// Default of `node_timeout`.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(15);
/// Default of `heartbeat_interval`.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);

/// `[cluster]`, validated.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub node: String,
    /// The connection settings of `state_url`, without TLS mode or password (see below).
    pub state: tokio_postgres::Config,
    pub state_password: Option<Secret<String>>,
    pub state_tls: UpstreamTls,
    pub state_ca_file: Option<PathBuf>,
    pub node_timeout: Duration,
    pub heartbeat_interval: Duration,
}

/// A node name: 1 to 63 of `[A-Za-z0-9_.-]`.
pub fn valid_node_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub(super) fn validate_cluster(
    c: &ClusterSection,
    base: &Path,
    errs: &mut Vec<String>,
) -> Option<Cluster> {
    let before = errs.len();
    if !valid_node_name(&c.node) {
        errs.push(format!(
            "cluster.node: {:?} must be 1 to 63 letters, digits, '_', '.' or '-'",
            c.node
        ));
    }
    let state = match c.state_url.parse::<tokio_postgres::Config>() {
        Ok(state) => {
            if state.get_password().is_some() {
                errs.push(
                    "cluster.state_url: holds a password; put it in state_password_file or state_password_env"
                        .into(),
                );
            }
            if state.get_hosts().is_empty() {
                errs.push("cluster.state_url: names no host (add host=...)".into());
            }
            if state.get_user().is_none() {
                errs.push("cluster.state_url: names no user (add user=...)".into());
            }
            Some(state)
        }
        Err(e) => {
            errs.push(format!(
                "cluster.state_url: not a libpq keyword/value string: {e}"
            ));
            None
        }
    };
    let state_password = secret_from(
        base,
        (
            c.state_password_file.as_deref(),
            c.state_password_env.as_deref(),
        ),
        ("cluster", "state_password_file", "state_password_env"),
        errs,
    );
    let state_tls = match c.state_tls.as_deref() {
        None | Some("prefer") => UpstreamTls::Prefer,
        Some("disable") => UpstreamTls::Disable,
        Some("require") => UpstreamTls::Require,
        Some(o) => {
            errs.push(format!(
                "cluster.state_tls: {o:?} is not one of disable, prefer, require"
            ));
            UpstreamTls::Prefer
        }
    };
    let state_ca_file = c.state_ca_file.as_ref().map(|p| resolve(base, p));
    if let Some(ca) = &state_ca_file {
        if let Err(e) = std::fs::read(ca) {
            errs.push(format!(
                "cluster.state_ca_file: cannot read {}: {e}",
                ca.display()
            ));
        }
        if state_tls == UpstreamTls::Disable {
            errs.push("cluster.state_ca_file: set, but state_tls is \"disable\"".into());
        }
    }
    let node_timeout = duration_or(
        errs,
        "cluster.node_timeout",
        &c.node_timeout,
        DEFAULT_NODE_TIMEOUT,
    );
    let heartbeat_interval = duration_or(
        errs,
        "cluster.heartbeat_interval",
        &c.heartbeat_interval,
        DEFAULT_HEARTBEAT_INTERVAL,
    );
    if heartbeat_interval < Duration::from_millis(100) {
        errs.push("cluster.heartbeat_interval: must be at least 100ms".into());
    }
    if heartbeat_interval * 3 > node_timeout {
        errs.push(format!(
            "cluster.node_timeout: {} must be at least three heartbeat_interval ({})",
            humantime::format_duration(node_timeout),
            humantime::format_duration(heartbeat_interval)
        ));
    }
    if errs.len() > before {
        return None;
    }
    Some(Cluster {
        node: c.node.clone(),
        state: state?,
        state_password,
        state_tls,
        state_ca_file,
        node_timeout,
        heartbeat_interval,
    })
}
