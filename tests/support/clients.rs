//! Real clients: psql, pgbench, tokio-postgres.

use std::process::{Command, Output};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::proc::{output_text, require_tool, run_timeout};

/// `psql -X -v ON_ERROR_STOP=1 CONNINFO` with `PGPASSWORD` and a clean libpq environment; add
/// arguments, then run it (or spawn it, to signal it).
pub fn psql_cmd(conninfo: &str, password: &str) -> Command {
    require_tool("psql");
    let mut cmd = clean_libpq_cmd("psql", password);
    cmd.args(["-X", "-v", "ON_ERROR_STOP=1", "-d", conninfo]);
    cmd
}

/// A command with every `PG*` variable removed except `PGPASSWORD` and a connect timeout.
pub fn clean_libpq_cmd(program: &str, password: &str) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            cmd.env_remove(k);
        }
    }
    cmd.env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .env("PGPASSFILE", "/dev/null")
        .env("HOME", "/nonexistent");
    cmd
}

/// Runs psql with `args` (60 s limit); returns what happened, success or not.
pub fn psql(conninfo: &str, password: &str, args: &[&str]) -> Output {
    run_timeout(
        psql_cmd(conninfo, password).args(args),
        None,
        Duration::from_secs(60),
    )
}

/// Runs psql with `args` and a script on stdin (`-f -` is added).
pub fn psql_script(conninfo: &str, password: &str, args: &[&str], script: &str) -> Output {
    run_timeout(
        psql_cmd(conninfo, password).args(args).args(["-f", "-"]),
        Some(script.as_bytes()),
        Duration::from_secs(60),
    )
}

/// Like [`psql`], asserting success; returns stdout.
pub fn psql_ok(conninfo: &str, password: &str, args: &[&str]) -> String {
    let out = psql(conninfo, password, args);
    assert!(
        out.status.success(),
        "psql {args:?} on {conninfo} failed\n{}",
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `psql -At -c SQL`, asserting success; returns trimmed stdout.
pub fn psql_query(conninfo: &str, password: &str, sql: &str) -> String {
    psql_ok(conninfo, password, &["-A", "-t", "-c", sql])
        .trim()
        .to_string()
}

/// pgbench against `conninfo` (host/port/user/dbname passed as libpq keywords), 5 min limit.
pub fn pgbench(conninfo: &str, password: &str, args: &[&str]) -> Output {
    require_tool("pgbench");
    let mut cmd = clean_libpq_cmd("pgbench", password);
    for kv in conninfo.split_whitespace() {
        let (k, v) = kv.split_once('=').expect("key=value conninfo");
        let var = match k {
            "host" => "PGHOST",
            "port" => "PGPORT",
            "user" => "PGUSER",
            "dbname" => "PGDATABASE",
            "sslmode" => "PGSSLMODE",
            "sslrootcert" => "PGSSLROOTCERT",
            "application_name" => "PGAPPNAME",
            other => panic!("pgbench helper: unsupported conninfo key {other}"),
        };
        cmd.env(var, v);
    }
    run_timeout(cmd.args(args), None, Duration::from_secs(300))
}

/// The number in pgbench's `LABEL: N` line (e.g. "number of failed transactions").
pub fn pgbench_figure(output: &str, label: &str) -> Option<u64> {
    output.lines().find_map(|l| {
        let rest = l.trim().strip_prefix(label)?.strip_prefix(':')?;
        rest.split_whitespace()
            .next()?
            .split('/')
            .next()?
            .parse()
            .ok()
    })
}

/// tokio-postgres, no TLS: the client, with its connection driven on a task.
pub async fn pg_connect(
    conninfo: &str,
) -> Result<
    (
        Client,
        tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    ),
    tokio_postgres::Error,
> {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await?;
    Ok((client, tokio::spawn(connection)))
}

/// tokio-postgres, no TLS, with notices and notifications forwarded to a channel; the channel
/// closes when the connection ends (an `Err` item carries the reason).
pub async fn pg_connect_with_messages(
    conninfo: &str,
) -> Result<
    (
        Client,
        mpsc::UnboundedReceiver<Result<AsyncMessage, tokio_postgres::Error>>,
    ),
    tokio_postgres::Error,
> {
    let (client, mut connection) = tokio_postgres::connect(conninfo, NoTls).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(m) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            let stop = m.is_err();
            if tx.send(m).is_err() || stop {
                break;
            }
        }
    });
    Ok((client, rx))
}

/// The SQLSTATE of a tokio-postgres error, if the server sent one.
pub fn sqlstate(e: &tokio_postgres::Error) -> Option<String> {
    e.code().map(|c| c.code().to_string())
}
