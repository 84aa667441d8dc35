//! Implementations of the subcommands. Each returns the process exit code: 0 success,
//! 1 a negative result (bad config, failed verification, an API error), 2 a usage or
//! environment error (unreadable file, API unreachable).

pub mod audit;
pub mod client;
pub mod replay;
mod show;

use std::io::{BufRead, Read, Write};
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use serde_json::json;

use crate::config::{Config, TargetKind};
use crate::policy::rules::{self, Subject};
use crate::policy::{Classification, shell, sql};

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub fn serve(path: &Path) -> ExitCode {
    init_tracing();
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jitgate: bad config {}: {}", path.display(), e.0.join("; "));
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jitgate: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(crate::server::serve(config, path.to_path_buf())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jitgate: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn check_config(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(_) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            for p in e.0 {
                println!("{p}");
            }
            ExitCode::from(1)
        }
    }
}

pub fn hash_password() -> ExitCode {
    let mut pw = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut pw) {
        eprintln!("jitgate: cannot read the password from stdin: {e}");
        return ExitCode::from(2);
    }
    let pw = pw.strip_suffix('\n').unwrap_or(&pw);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    if pw.is_empty() {
        eprintln!(
            "jitgate: empty password (pipe it on stdin: printf '%s' PASSWORD | jitgate hash-password)"
        );
        return ExitCode::from(2);
    }
    println!("{}", crate::scram::hash_password(pw));
    ExitCode::SUCCESS
}

pub fn classify(
    path: &Path,
    target: &str,
    user: &str,
    source: IpAddr,
    from_stdin: bool,
    input: Option<&str>,
) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("jitgate: bad config {}: {}", path.display(), e.0.join("; "));
            return ExitCode::from(2);
        }
    };
    let Some(t) = config.target(target) else {
        eprintln!("jitgate: no target {target:?} in {}", path.display());
        return ExitCode::from(2);
    };
    let Some(u) = config.user(user) else {
        eprintln!("jitgate: no user {user:?} in {}", path.display());
        return ExitCode::from(2);
    };
    let cache =
        crate::policy::cache::ClassifierCache::new(10_000, config.trusted_functions.clone());
    let one = |text: &str| -> serde_json::Value {
        let c: Classification = match t.kind {
            TargetKind::Postgres => {
                let a = cache.analyze(text);
                let mut c = a.classification.clone();
                // A dry run has no session: an EXECUTE of a name is unknown.
                c.class = sql::resolve_class(&a, &|_| None);
                c
            }
            TargetKind::Ssh => shell::classify_shell(text),
        };
        let subject = Subject {
            user: &u.name,
            groups: &u.groups,
            target: &t.name,
            source,
            now: SystemTime::now(),
        };
        let e = rules::evaluate(&config.rules, &subject, &c);
        json!({
            "decision": e.action.as_str(),
            "class": c.class.as_str(),
            "rule": e.rule.map(|r| &*r.name).unwrap_or(""),
            "tables": c.tables,
            "reason": e.reason(&c),
        })
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if from_stdin {
        for (n, line) in std::io::stdin().lock().lines().enumerate() {
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("jitgate: reading stdin: {e}");
                    return ExitCode::from(2);
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            let text: String = match serde_json::from_str(&line) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("jitgate: line {}: not a JSON string: {e}", n + 1);
                    return ExitCode::from(2);
                }
            };
            if writeln!(out, "{}", one(&text)).is_err() {
                return ExitCode::from(2);
            }
        }
    } else {
        let Some(text) = input else {
            eprintln!("jitgate: give a statement or command, or --stdin");
            return ExitCode::from(2);
        };
        if writeln!(out, "{}", one(text)).is_err() {
            return ExitCode::from(2);
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}
