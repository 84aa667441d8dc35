//! From the file to the validated [`Config`]: addresses and durations parsed, secrets loaded
//! and wrapped, rules compiled. Every problem found is collected, never only the first.

use super::target::validate_target;
use super::*;

pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Durations are written like `30s`, `5m`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| format!("bad duration {s:?}: {e}"))
}

pub(super) fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

pub(super) fn listen_addr(
    errs: &mut Vec<String>,
    key: &str,
    v: &Option<String>,
) -> Option<SocketAddr> {
    let v = v.as_ref()?;
    match v.parse::<SocketAddr>() {
        Ok(a) => Some(a),
        Err(_) => {
            errs.push(format!(
                "server.{key}: bad address {v:?} (want IP:PORT, e.g. 127.0.0.1:6432)"
            ));
            None
        }
    }
}

pub(super) fn duration_or(
    errs: &mut Vec<String>,
    key: &str,
    v: &Option<String>,
    d: Duration,
) -> Duration {
    match v {
        None => d,
        Some(s) => parse_duration(s).unwrap_or_else(|e| {
            errs.push(format!("{key}: {e}"));
            d
        }),
    }
}

pub(super) fn validate(file: ConfigFile, base: &Path) -> Result<Config, ConfigErrors> {
    let mut errs = Vec::new();
    let server = validate_server(&file.server, base, &mut errs);

    let mut users = BTreeMap::new();
    for (i, u) in file.users.iter().enumerate() {
        if let Some(user) = validate_user(i, u, &mut errs)
            && users.insert(u.name.clone(), Arc::new(user)).is_some()
        {
            errs.push(format!("users[{i}]: duplicate user {:?}", u.name));
        }
    }

    let mut targets = BTreeMap::new();
    for (i, t) in file.targets.iter().enumerate() {
        if let Some(target) = validate_target(i, t, base, &mut errs)
            && targets.insert(t.name.clone(), Arc::new(target)).is_some()
        {
            errs.push(format!("targets[{i}]: duplicate target {:?}", t.name));
        }
    }

    let target_names: Vec<String> = targets.keys().cloned().collect();
    let mut groups: Vec<String> = file
        .users
        .iter()
        .flat_map(|u| u.groups.iter().cloned())
        .collect();
    groups.sort();
    groups.dedup();
    let user_names: Vec<String> = file.users.iter().map(|u| u.name.clone()).collect();
    let known = Known {
        targets: &target_names,
        groups: &groups,
        users: &user_names,
    };
    let rules = rules::compile(&file.rules, &known).unwrap_or_else(|mut e| {
        errs.append(&mut e);
        Vec::new()
    });

    let api = ApiAccess {
        auditors: principals(&mut errs, "api.auditors", &file.api.auditors, &known),
    };

    let mut webhooks = Vec::new();
    for (i, w) in file.webhooks.iter().enumerate() {
        if !w.url.starts_with("http://") && !w.url.starts_with("https://") {
            errs.push(format!(
                "webhooks[{i}]: url must start with http:// or https://"
            ));
        }
        let timeout = duration_or(
            &mut errs,
            &format!("webhooks[{i}].timeout"),
            &w.timeout,
            Duration::from_secs(5),
        );
        webhooks.push(Webhook {
            url: w.url.clone(),
            timeout,
        });
    }

    let on_failure = match file.audit.on_failure.as_deref() {
        None | Some("refuse-sensitive") => OnAuditFailure::RefuseSensitive,
        Some("refuse-all") => OnAuditFailure::RefuseAll,
        Some(other) => {
            errs.push(format!(
                "audit.on_failure: {other:?} is not one of \"refuse-all\", \"refuse-sensitive\""
            ));
            OnAuditFailure::RefuseSensitive
        }
    };

    let recording_limit_bytes = file
        .audit
        .recording_limit_bytes
        .unwrap_or(DEFAULT_RECORDING_LIMIT_BYTES);
    if recording_limit_bytes < MIN_RECORDING_LIMIT_BYTES {
        errs.push(format!(
            "audit.recording_limit_bytes: {recording_limit_bytes} is below the minimum of {MIN_RECORDING_LIMIT_BYTES}"
        ));
    }

    let cluster = file
        .cluster
        .as_ref()
        .and_then(|c| super::cluster::validate_cluster(c, base, &mut errs));

    if !errs.is_empty() {
        return Err(ConfigErrors(errs));
    }
    let Some(server) = server else {
        return Err(ConfigErrors(vec!["server: invalid".into()]));
    };
    Ok(Config {
        server,
        users,
        targets,
        rules,
        trusted_functions: file
            .policy
            .trusted_functions
            .iter()
            .map(|f| f.to_lowercase())
            .collect(),
        webhooks,
        audit: Audit {
            enabled: file.audit.enabled.unwrap_or(true),
            redact_parameters: file.audit.redact_parameters,
            on_failure,
            retention_days: file.audit.retention_days,
            recording_limit_bytes,
        },
        api,
        cluster,
    })
}

/// A list of `"user:NAME"` / `"group:NAME"`, each naming a user or group of this config (as a
/// rule's `approvers` must); every entry that does not is reported under `at`.
pub(super) fn principals(
    errs: &mut Vec<String>,
    at: &str,
    list: &[String],
    known: &Known<'_>,
) -> Vec<Approver> {
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        let parsed = match p.split_once(':') {
            Some(("user", n)) if !n.is_empty() => Some((Approver::User(n.into()), known.users)),
            Some(("group", n)) if !n.is_empty() => Some((Approver::Group(n.into()), known.groups)),
            _ => None,
        };
        match parsed {
            Some((principal, names)) => {
                let (Approver::User(name) | Approver::Group(name)) = &principal;
                if names.contains(name) {
                    out.push(principal);
                } else {
                    errs.push(format!("{at}[{i}]: {p:?} names no known user or group"));
                }
            }
            None => errs.push(format!(
                "{at}[{i}]: {p:?} is not \"user:NAME\" or \"group:NAME\""
            )),
        }
    }
    out
}

pub(super) fn validate_server(
    s: &ServerSection,
    base: &Path,
    errs: &mut Vec<String>,
) -> Option<Server> {
    let postgres_listen = listen_addr(errs, "postgres_listen", &s.postgres_listen);
    let ssh_listen = listen_addr(errs, "ssh_listen", &s.ssh_listen);
    let api_listen = listen_addr(errs, "api_listen", &Some(s.api_listen.clone()));
    let tls = match (&s.tls_cert, &s.tls_key) {
        (Some(c), Some(k)) => {
            let (cert, key) = (resolve(base, c), resolve(base, k));
            for (what, p) in [("tls_cert", &cert), ("tls_key", &key)] {
                if let Err(e) = std::fs::metadata(p) {
                    errs.push(format!("server.{what}: cannot read {}: {e}", p.display()));
                }
            }
            Some(TlsFiles { cert, key })
        }
        (None, None) => None,
        _ => {
            errs.push("server: tls_cert and tls_key must be set together".into());
            None
        }
    };
    let max_message_bytes = s.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES);
    if !(1024..=1 << 30).contains(&max_message_bytes) {
        errs.push("server.max_message_bytes: must be between 1024 and 1073741824".into());
    }
    let message_memory_bytes = s
        .message_memory_bytes
        .unwrap_or(DEFAULT_MESSAGE_MEMORY_BYTES);
    if message_memory_bytes < max_message_bytes {
        errs.push(
            "server.message_memory_bytes: must be at least max_message_bytes (one whole message must fit)"
                .into(),
        );
    }
    let max_connections = s.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS);
    let max_unauthenticated = s.max_unauthenticated.unwrap_or(DEFAULT_MAX_UNAUTHENTICATED);
    let max_unauthenticated_per_source = s
        .max_unauthenticated_per_source
        .unwrap_or(DEFAULT_MAX_UNAUTHENTICATED_PER_SOURCE);
    for (key, value) in [
        ("max_connections", max_connections),
        ("max_unauthenticated", max_unauthenticated),
        (
            "max_unauthenticated_per_source",
            max_unauthenticated_per_source,
        ),
    ] {
        if value == 0 {
            errs.push(format!("server.{key}: must be at least 1"));
        }
    }
    let startup_timeout = duration_or(
        errs,
        "server.startup_timeout",
        &s.startup_timeout,
        Duration::from_secs(30),
    );
    let drain_timeout = duration_or(
        errs,
        "server.drain_timeout",
        &s.drain_timeout,
        Duration::from_secs(30),
    );
    let data_dir = resolve(base, &s.data_dir);
    let ssh_host_key = s
        .ssh_host_key
        .as_ref()
        .map(|p| resolve(base, p))
        .unwrap_or_else(|| data_dir.join("ssh_host_ed25519_key"));
    Some(Server {
        postgres_listen,
        ssh_listen,
        api_listen: api_listen?,
        data_dir,
        ssh_host_key,
        tls,
        max_connections,
        max_unauthenticated,
        max_unauthenticated_per_source,
        max_message_bytes,
        message_memory_bytes,
        startup_timeout,
        drain_timeout,
    })
}

pub(super) fn validate_user(i: usize, u: &UserSection, errs: &mut Vec<String>) -> Option<User> {
    let at = format!("users[{i}] {:?}", u.name);
    if u.name.is_empty() {
        errs.push(format!("users[{i}]: name is empty"));
    }
    let password = match &u.password {
        None => None,
        Some(p) => match Verifier::parse(p) {
            Ok(v) => Some(v),
            Err(e) => {
                errs.push(format!(
                    "{at}: password: {e} (make one with `jitgate hash-password`)"
                ));
                None
            }
        },
    };
    for (k, key) in u.ssh_keys.iter().enumerate() {
        if let Err(e) = russh::keys::PublicKey::from_openssh(key) {
            errs.push(format!(
                "{at}: ssh_keys[{k}]: not an OpenSSH public key: {e}"
            ));
        }
    }
    let api_token_sha256 = match &u.api_token_sha256 {
        None => None,
        Some(h) => match decode_hex32(h) {
            Some(b) => Some(b),
            None => {
                errs.push(format!(
                    "{at}: api_token_sha256 must be 64 hex characters (sha256sum of the token)"
                ));
                None
            }
        },
    };
    Some(User {
        name: u.name.clone(),
        groups: u.groups.clone(),
        password,
        ssh_keys: u.ssh_keys.clone(),
        api_token_sha256,
    })
}

/// A password read from a file (a trailing newline dropped) or an environment variable, one
/// of the two at most; a problem goes to `errs` under `at` and the two keys' names.
pub(super) fn secret_from(
    base: &Path,
    (file, env): (Option<&Path>, Option<&str>),
    (at, file_key, env_key): (&str, &str, &str),
    errs: &mut Vec<String>,
) -> Option<Secret<String>> {
    match (file, env) {
        (Some(_), Some(_)) => {
            errs.push(format!("{at}: set {file_key} or {env_key}, not both"));
            None
        }
        (Some(f), None) => {
            let p = resolve(base, f);
            match std::fs::read_to_string(&p) {
                Ok(s) => Some(Secret::new(s.trim_end_matches(['\n', '\r']).to_string())),
                Err(e) => {
                    errs.push(format!(
                        "{at}: {file_key}: cannot read {}: {e}",
                        p.display()
                    ));
                    None
                }
            }
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(s) => Some(Secret::new(s)),
            Err(_) => {
                errs.push(format!("{at}: {env_key}: variable {var} is not set"));
                None
            }
        },
        (None, None) => None,
    }
}

pub fn decode_hex32(h: &str) -> Option<[u8; 32]> {
    let h = h.trim();
    if h.len() != 64 || !h.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&h[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}
