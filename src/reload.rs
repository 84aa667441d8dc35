//! Live configuration reload on SIGHUP (`systemctl reload jitgate`).
//!
//! The file given to `serve --config` is read and validated again. A config with any problem is
//! rejected whole: an ERROR line lists every problem and the running config stays. A good one
//! replaces the Gate's config in one swap, so:
//! - users, targets, rules and webhooks apply to what starts after the swap: new logins, new
//!   statements (in old sessions too: rules are looked up per statement), new webhook events;
//! - live sessions keep the user and target they authenticated with, and held requests keep
//!   their approvers, approvals_required and hold_timeout, except that a user the new config
//!   no longer has loses everything at once: their live sessions end (Postgres: FATAL 57P01;
//!   SSH: disconnected) and their grants are revoked (`grant_revoked` events);
//! - grants are re-checked against the rules in force on every use (see
//!   [`crate::approval::Grant::valid_under`]), so a stricter rule ends them without a
//!   revoke;
//! - settings that were consumed at start-up cannot change live (see [`keep_static`]): the
//!   running value is kept and a WARN line names each one, until the next restart;
//! - the TLS certificate and key are re-read (from the new paths, if they moved), so a renewed
//!   certificate is served to new handshakes without a restart.
//!
//! The service manager hears `RELOADING=1` before and `READY=1` after, whatever the outcome.

use std::path::PathBuf;
use std::sync::Arc;

use tracing::{error, info, warn};

use crate::app::AppState;
use crate::config::Config;
use crate::tls::CertStore;

/// What a reload needs besides the Gate.
pub struct Reloader {
    pub app: Arc<AppState>,
    /// The file given to `serve --config`.
    pub path: PathBuf,
    /// The listeners' certificate, when TLS is on.
    pub certs: Option<Arc<CertStore>>,
}

/// Installs the SIGHUP handler now (so a reload right after start-up cannot kill the process
/// with SIGHUP's default action) and reloads on every SIGHUP until the runtime stops.
pub fn spawn(r: Reloader) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            crate::notify::notify_reloading();
            let status = match r.reload() {
                Ok(()) => "serving (configuration reloaded)",
                Err(_) => "serving (configuration reload failed; previous configuration kept)",
            };
            crate::notify::notify_reloaded(status);
        }
    });
    Ok(())
}

/// Why a reload was rejected; the running config stays.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{}", .0.0.join("; "))]
    Config(#[from] crate::config::ConfigErrors),
    #[error("server.tls_cert/tls_key: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

impl Reloader {
    /// One reload, logged and counted. `Err` when the new config was rejected.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let path = self.path.display();
        let result = self.try_reload();
        let label = match &result {
            Ok(kept) => {
                if !kept.is_empty() {
                    warn!(
                        config = %path,
                        "these settings cannot change without a restart; keeping the running values: {}",
                        kept.join(", ")
                    );
                }
                let c = self.app.config();
                info!(
                    config = %path,
                    users = c.users.len(),
                    targets = c.targets.len(),
                    rules = c.rules.len(),
                    webhooks = c.webhooks.len(),
                    "config reloaded"
                );
                "ok"
            }
            Err(e) => {
                error!(config = %path, "config reload failed, keeping the running config: {e}");
                "error"
            }
        };
        self.app
            .metrics
            .config_reloads
            .with_label_values(&[label])
            .inc();
        result.map(|_| ())
    }

    /// Read, validate, carry over what cannot change, swap. Returns the settings kept.
    fn try_reload(&self) -> Result<Vec<String>, ReloadError> {
        let mut new = Config::load(&self.path)?;
        let kept = keep_static(&self.app.config(), &mut new);
        // Load the certificate before anything is swapped, so a bad one rejects the reload.
        let cert = match (&self.certs, &new.server.tls) {
            (Some(store), Some(files)) => Some((store, CertStore::load(&files.cert, &files.key)?)),
            _ => None,
        };
        if let Some((store, cert)) = cert {
            store.install(cert);
        }
        let (ended, revoked) = self.app.reload(Arc::new(new));
        if ended + revoked > 0 {
            warn!(
                sessions = ended,
                grants = revoked,
                "users removed by the reload: their live sessions were ended and their grants revoked"
            );
        }
        Ok(kept)
    }
}

/// Puts the running value back into `new` for every setting that was consumed at start-up,
/// and names those whose value differed. What the program would otherwise do and what its
/// config says then never disagree.
///
/// Fixed until restart: the listener addresses, `data_dir`, `ssh_host_key`, whether TLS is on,
/// `max_connections`, the unauthenticated limits and `message_memory_bytes` (sized once), `drain_timeout`,
/// `[policy] trusted_functions` (baked into the classification cache), and a Postgres target's
/// `tls`/`ca_file` (its upstream TLS client is built once per target name).
pub fn keep_static(old: &Config, new: &mut Config) -> Vec<String> {
    let mut kept = Vec::new();
    let (o, n) = (&old.server, &mut new.server);
    macro_rules! keep {
        ($($field:ident),+) => {$(
            if o.$field != n.$field {
                kept.push(concat!("server.", stringify!($field)).to_string());
                n.$field = o.$field.clone();
            }
        )+};
    }
    keep!(
        postgres_listen,
        ssh_listen,
        api_listen,
        data_dir,
        ssh_host_key,
        max_connections,
        max_unauthenticated,
        max_unauthenticated_per_source,
        message_memory_bytes,
        drain_timeout
    );
    if o.tls.is_some() != n.tls.is_some() {
        kept.push("server.tls_cert/tls_key (TLS on or off)".into());
        n.tls = o.tls.clone();
    }
    if old.audit != new.audit {
        // The store applies its options when it opens.
        kept.push("audit".into());
        new.audit = old.audit.clone();
    }
    if old.trusted_functions != new.trusted_functions {
        kept.push("policy.trusted_functions".into());
        new.trusted_functions = old.trusted_functions.clone();
    }
    for (name, target) in new.targets.iter_mut() {
        let Some(was) = old.targets.get(name) else {
            continue;
        };
        if was.tls == target.tls && was.ca_file == target.ca_file {
            continue;
        }
        kept.push(format!("targets.{name}.tls/ca_file"));
        // A freshly loaded config is not shared yet, so the Arc is unique here.
        if let Some(t) = Arc::get_mut(target) {
            t.tls = was.tls;
            t.ca_file = was.ca_file.clone();
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(server_extra: &str, rest: &str) -> Config {
        let text = format!(
            "[server]\napi_listen = \"127.0.0.1:8080\"\ndata_dir = \"/tmp/jg-data\"\n{server_extra}\n\
             [[users]]\nname = \"alice\"\ngroups = [\"dev\"]\n\n\
             [[targets]]\nname = \"db\"\nkind = \"postgres\"\naddress = \"127.0.0.1:5432\"\n\
             database = \"app\"\nuser = \"app\"\ntls = \"disable\"\n\n{rest}"
        );
        Config::parse(&text, Path::new("/")).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn live_settings_pass_and_nothing_is_reported() {
        let old = config("", "");
        let mut new = config(
            "startup_timeout = \"5s\"\nmax_message_bytes = 4096",
            "[[users]]\nname = \"bob\"\n\n[[rules]]\nname = \"r\"\naction = \"allow\"\n\n\
             [[webhooks]]\nurl = \"http://127.0.0.1:9/hook\"",
        );
        assert!(keep_static(&old, &mut new).is_empty());
        assert!(new.users.contains_key("bob"));
        assert_eq!(new.rules.len(), 1);
        assert_eq!(new.webhooks.len(), 1);
        assert_eq!(
            new.server.startup_timeout,
            std::time::Duration::from_secs(5)
        );
        assert_eq!(new.server.max_message_bytes, 4096);
    }

    #[test]
    fn start_up_settings_keep_their_running_values_and_are_named() {
        let old = config("postgres_listen = \"127.0.0.1:6432\"", "");
        let mut new = config(
            "postgres_listen = \"127.0.0.1:7432\"\nssh_listen = \"127.0.0.1:2222\"\n\
             max_connections = 5\ndrain_timeout = \"1s\"",
            "[policy]\ntrusted_functions = [\"f\"]",
        );
        let kept = keep_static(&old, &mut new);
        assert_eq!(
            kept,
            [
                "server.postgres_listen",
                "server.ssh_listen",
                "server.max_connections",
                "server.drain_timeout",
                "policy.trusted_functions",
            ]
        );
        assert_eq!(new.server.postgres_listen, old.server.postgres_listen);
        assert_eq!(new.server.ssh_listen, None);
        assert_eq!(new.server.max_connections, old.server.max_connections);
        assert_eq!(new.server.drain_timeout, old.server.drain_timeout);
        assert!(new.trusted_functions.is_empty());
    }

    #[test]
    fn a_targets_upstream_tls_is_kept_but_the_rest_of_it_changes() {
        let old = config("", "");
        let text = "[server]\napi_listen = \"127.0.0.1:8080\"\ndata_dir = \"/tmp/jg-data\"\n\
                    [[targets]]\nname = \"db\"\nkind = \"postgres\"\naddress = \"127.0.0.1:6543\"\n\
                    database = \"other\"\nuser = \"app\"\ntls = \"require\"\n";
        let mut new = Config::parse(text, Path::new("/")).unwrap();
        let kept = keep_static(&old, &mut new);
        assert_eq!(kept, ["targets.db.tls/ca_file"]);
        let t = &new.targets["db"];
        assert_eq!(t.tls, crate::config::UpstreamTls::Disable);
        assert_eq!(
            (t.address.as_str(), t.database.as_str()),
            ("127.0.0.1:6543", "other")
        );
        assert!(new.users.is_empty());
    }
}
