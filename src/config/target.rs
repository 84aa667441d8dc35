//! A `[[targets]]` entry, validated: its kind, its `host:port`, the credentials jitgate
//! injects (from a file or the environment, never inline) and its TLS settings.
//!
//! Invariant: a target that fails any check is not built; every problem is added to `errs`
//! with the entry's index and name, so one run reports them all.

use super::validate::{resolve, secret_from};
use super::*;

pub(super) fn validate_target(
    i: usize,
    t: &TargetSection,
    base: &Path,
    errs: &mut Vec<String>,
) -> Option<Target> {
    let at = format!("targets[{i}] {:?}", t.name);
    if t.name.is_empty() {
        errs.push(format!("targets[{i}]: name is empty"));
    }
    let kind = match t.kind.as_str() {
        "postgres" => TargetKind::Postgres,
        "ssh" => TargetKind::Ssh,
        other => {
            errs.push(format!(
                "{at}: kind {other:?} is not \"postgres\" or \"ssh\""
            ));
            return None;
        }
    };
    if !valid_host_port(&t.address) {
        errs.push(format!(
            "{at}: bad address {:?} (want HOST:PORT)",
            t.address
        ));
    }
    let password = secret_from(
        base,
        (t.password_file.as_deref(), t.password_env.as_deref()),
        (&at, "password_file", "password_env"),
        errs,
    );
    let tls = match t.tls.as_deref() {
        None if kind == TargetKind::Postgres => UpstreamTls::Prefer,
        None => UpstreamTls::Disable,
        Some("disable") => UpstreamTls::Disable,
        Some("prefer") => UpstreamTls::Prefer,
        Some("require") => UpstreamTls::Require,
        Some(o) => {
            errs.push(format!(
                "{at}: tls {o:?} is not one of disable, prefer, require"
            ));
            UpstreamTls::Disable
        }
    };
    let ca_file = t.ca_file.as_ref().map(|p| resolve(base, p));
    if let Some(ca) = &ca_file
        && let Err(e) = std::fs::read(ca)
    {
        errs.push(format!("{at}: ca_file: cannot read {}: {e}", ca.display()));
    }
    let key_file = t.key_file.as_ref().map(|p| resolve(base, p));
    match kind {
        TargetKind::Postgres => {
            if t.database.is_none() {
                errs.push(format!("{at}: database is required for a postgres target"));
            }
            for (k, set) in [
                ("key_file", t.key_file.is_some()),
                ("host_key", t.host_key.is_some()),
            ] {
                if set {
                    errs.push(format!("{at}: {k} applies to ssh targets only"));
                }
            }
        }
        TargetKind::Ssh => {
            match &key_file {
                None => errs.push(format!("{at}: key_file is required for an ssh target")),
                Some(k) => {
                    if let Err(e) = russh::keys::load_secret_key(k, None) {
                        errs.push(format!("{at}: key_file: cannot load {}: {e}", k.display()));
                    }
                }
            }
            match &t.host_key {
                None => errs.push(format!(
                    "{at}: host_key is required for an ssh target (the target's pinned public key)"
                )),
                Some(h) => {
                    if let Err(e) = russh::keys::PublicKey::from_openssh(h) {
                        errs.push(format!("{at}: host_key: not an OpenSSH public key: {e}"));
                    }
                }
            }
        }
    }
    Some(Target {
        name: t.name.clone(),
        kind,
        address: t.address.clone(),
        database: t.database.clone().unwrap_or_default(),
        user: t.user.clone(),
        password,
        tls,
        ca_file,
        key_file,
        host_key: t.host_key.clone(),
        allow_weak_auth: t.allow_weak_auth,
    })
}

pub(super) fn valid_host_port(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    match s.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && port.parse::<u16>().is_ok_and(|p| p > 0)
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        }
        None => false,
    }
}
