//! `jitgate sessions | replay | audit verify | audit export`: reading the audit trail back.
//!
//! The trail lives in sled, which one process may open at a time. So these commands go
//! through the control API while `jitgate serve` runs, and open the store directly when
//! given `--data-dir` (or `--config`, for its `data_dir`) and no server holds it. If a server
//! does hold it, they say so and use the API instead when a token is at hand.
//!
//! A `--config` with a `[cluster]` section reads the trail every replica shipped to the state
//! database instead (any replica's sessions, no local store needed), through the same
//! [`History`] the API uses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::client::{ApiClient, print_json, table};
use crate::audit::{
    Audit, AuditError, AuditOptions, EventRecord, SessionFilter, SessionRecord, VerifyError,
};
use crate::cluster::{History, HistoryError};

/// Where to read the trail from.
pub struct Where {
    pub data_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub api: ApiClient,
}

pub(super) enum Source {
    Api(ApiClient),
    /// The local store, or the state database in cluster mode, read here.
    Direct(Direct),
}

/// History read by this process, with the runtime its reads run on.
pub(super) struct Direct {
    runtime: tokio::runtime::Runtime,
    pub history: History,
}

impl Direct {
    fn new(history: impl FnOnce() -> Result<History, String>) -> Result<Direct, ExitCode> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                eprintln!("jitgate: cannot start the runtime: {e}");
                ExitCode::from(2)
            })?;
        // Made inside the runtime: a cluster history's connection needs one.
        let _in = runtime.enter();
        let history = history().map_err(|e| {
            eprintln!("jitgate: {e}");
            ExitCode::from(2)
        })?;
        drop(_in);
        Ok(Direct { runtime, history })
    }

    /// Run one read to completion.
    pub fn run<T>(&self, read: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(read)
    }

    /// A session's record and events, if there is such a session.
    pub fn session_history(
        &self,
        id: &str,
    ) -> Result<Option<(SessionRecord, Vec<EventRecord>)>, HistoryError> {
        self.run(async {
            let Some(s) = self.history.session(id).await? else {
                return Ok(None);
            };
            Ok(Some((s, self.history.events(id).await?)))
        })
    }
}

/// Where a `--config` points the readers: its state database, or its `data_dir`.
enum Configured {
    Cluster(Box<crate::config::Cluster>),
    DataDir(PathBuf),
}

/// The audit store's directory under a jitgate `data_dir` (or `dir` itself if it is one).
fn store_dir(dir: &Path) -> PathBuf {
    if dir.join("audit").join("db").exists() || !dir.join("db").exists() {
        dir.join("audit")
    } else {
        dir.to_path_buf()
    }
}

impl Where {
    /// What the user named to read directly, if anything.
    fn configured(&self) -> Result<Option<Configured>, ExitCode> {
        if let Some(d) = &self.data_dir {
            return Ok(Some(Configured::DataDir(store_dir(d))));
        }
        let Some(c) = &self.config else {
            return Ok(None);
        };
        match crate::config::Config::load(c) {
            Ok(cfg) => Ok(Some(match cfg.cluster {
                Some(cluster) => Configured::Cluster(Box::new(cluster)),
                None => Configured::DataDir(store_dir(&cfg.server.data_dir)),
            })),
            Err(e) => {
                eprintln!("jitgate: bad config {}: {}", c.display(), e.0.join("; "));
                Err(ExitCode::from(2))
            }
        }
    }

    pub(super) fn source(self) -> Result<Source, ExitCode> {
        let dir = match self.configured()? {
            None => return Ok(Source::Api(self.api)),
            Some(Configured::Cluster(cluster)) => {
                return Direct::new(|| {
                    let connector =
                        crate::cluster::Connector::new(&cluster).map_err(|e| e.to_string())?;
                    Ok(History::Cluster(std::sync::Arc::new(
                        crate::cluster::ClusterHistory::new(connector),
                    )))
                })
                .map(Source::Direct);
            }
            Some(Configured::DataDir(dir)) => dir,
        };
        if !dir.join("db").exists() {
            eprintln!(
                "jitgate: no audit store in {} (is that jitgate's data_dir?)",
                dir.display()
            );
            return Err(ExitCode::from(2));
        }
        match Audit::open(&dir, AuditOptions::default()) {
            Ok(a) => Direct::new(|| Ok(History::Local(a))).map(Source::Direct),
            Err(AuditError::Locked(_)) if self.api.token.is_some() => {
                eprintln!(
                    "jitgate: {} is held by a running jitgate; reading through the API at {}",
                    dir.display(),
                    self.api.url
                );
                Ok(Source::Api(self.api))
            }
            Err(e @ AuditError::Locked(_)) => {
                eprintln!(
                    "jitgate: {e}; set JITGATE_TOKEN (and JITGATE_URL) to read it through the API"
                );
                Err(ExitCode::from(2))
            }
            Err(e) => {
                eprintln!("jitgate: {e}");
                Err(ExitCode::from(2))
            }
        }
    }
}

pub(super) fn api_failed(e: super::client::Failure) -> ExitCode {
    e.report()
}

/// The history could not be read (the state database is unreachable, or the store failed).
pub(super) fn unreadable(e: crate::cluster::HistoryError) -> ExitCode {
    eprintln!("jitgate: {e}");
    ExitCode::from(2)
}

pub(super) fn fmt_time(unix: f64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs_f64(unix.max(0.0)),
    )
    .to_string()
}

fn fmt_secs(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

pub struct SessionArgs {
    pub user: Option<String>,
    pub target: Option<String>,
    pub since: Option<String>,
    pub limit: usize,
}

pub fn sessions(w: Where, a: SessionArgs) -> ExitCode {
    let json_out = w.api.json;
    let list: Vec<Value> = match w.source() {
        Err(code) => return code,
        Ok(Source::Api(api)) => {
            let mut q = vec![format!("limit={}", a.limit)];
            for (k, v) in [
                ("user", &a.user),
                ("target", &a.target),
                ("since", &a.since),
            ] {
                if let Some(v) = v {
                    q.push(format!("{k}={}", urlencode(v)));
                }
            }
            match api.get(&format!("/v1/sessions?{}", q.join("&"))) {
                Ok(Value::Array(v)) => v,
                Ok(other) => vec![other],
                Err(e) => return api_failed(e),
            }
        }
        Ok(Source::Direct(direct)) => {
            let since = match a.since.as_deref().map(crate::api::parse_since).transpose() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("jitgate: --since: {e}");
                    return ExitCode::from(2);
                }
            };
            let f = SessionFilter {
                user: a.user,
                target: a.target,
                since,
                limit: Some(a.limit),
            };
            match direct.run(direct.history.sessions(f)) {
                Ok(list) => list
                    .into_iter()
                    .filter_map(|s| serde_json::to_value(s).ok())
                    .collect(),
                Err(e) => return unreadable(e),
            }
        }
    };
    if json_out {
        print_json(&Value::from(list));
        return ExitCode::SUCCESS;
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            let started = s["started_at"].as_f64().unwrap_or(0.0);
            let (dur, end) = match s["ended_at"].as_f64() {
                Some(e) => (
                    fmt_secs(e - started),
                    s["end_reason"].as_str().unwrap_or("").to_string(),
                ),
                None => ("-".into(), "(running)".into()),
            };
            vec![
                s["id"].as_str().unwrap_or("").to_string(),
                s["protocol"].as_str().unwrap_or("").to_string(),
                s["user"].as_str().unwrap_or("").to_string(),
                s["target"].as_str().unwrap_or("").to_string(),
                s["client"].as_str().unwrap_or("").to_string(),
                fmt_time(started),
                dur,
                end,
            ]
        })
        .collect();
    if rows.is_empty() {
        println!("no sessions");
    } else {
        table(
            &[
                "ID", "PROTOCOL", "USER", "TARGET", "CLIENT", "STARTED", "DURATION", "END",
            ],
            &rows,
        );
    }
    ExitCode::SUCCESS
}

pub(super) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn verify(data_dir: Option<&Path>, api: ApiClient) -> ExitCode {
    let Some(dir) = data_dir else {
        return match api.get("/v1/audit/verify") {
            Ok(v) => {
                println!("ok {} events", v["events"]);
                ExitCode::SUCCESS
            }
            Err(e) => {
                if let Some(m) = e.conflict() {
                    println!("{m}");
                    return ExitCode::from(1);
                }
                api_failed(e)
            }
        };
    };
    let dir = store_dir(dir);
    match crate::audit::verify(&dir) {
        Ok(n) => {
            println!("ok {n} events");
            ExitCode::SUCCESS
        }
        Err(VerifyError::Broken(b)) => {
            println!("{b}");
            ExitCode::from(1)
        }
        Err(VerifyError::Store(e)) => {
            eprintln!("jitgate: {e}");
            ExitCode::from(2)
        }
    }
}

pub fn export(w: Where, since: &str) -> ExitCode {
    let since_secs = match crate::api::parse_since(since) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("jitgate: --since: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let r = match w.source() {
        Err(code) => return code,
        Ok(Source::Api(api)) => match api.get_text(&format!("/v1/audit/export?since={since_secs}"))
        {
            Ok(text) => out.write_all(text.as_bytes()),
            Err(e) => return api_failed(e),
        },
        Ok(Source::Direct(direct)) => {
            let mut batches = direct.run(async { direct.history.export(since_secs) });
            let mut written = Ok(());
            while let Some(batch) = direct.run(batches.recv()) {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = out.flush();
                        return unreadable(e);
                    }
                };
                written = (|| {
                    for ev in &batch {
                        serde_json::to_writer(&mut out, ev)?;
                        out.write_all(b"\n")?;
                    }
                    Ok(())
                })();
                if written.is_err() {
                    break;
                }
            }
            written
        }
    };
    match r.and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jitgate: {e}");
            ExitCode::from(2)
        }
    }
}
