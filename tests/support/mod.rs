//! Shared support for jitgate's integration tests: real servers, real clients, free loopback ports.
//!
//! Every integration test file starts with `mod support;` and uses what it needs from here:
//! - [`proc`]: free ports, temp dirs, polling, running commands with a timeout, signals, and a
//!   watchdog that stops a helper server when the test process dies (statics are never dropped);
//! - [`certs`]: one in-process test CA (rcgen) that signs every server certificate;
//! - [`cluster`]: a throwaway PostgreSQL 15 cluster shared by one test binary;
//! - [`jitgate`]: the real `jitgate` binary with a generated config, killed on drop;
//! - [`clients`]: `psql`, `pgbench` and tokio-postgres helpers;
//! - [`drivers`]: asyncpg, psycopg 3 and node-postgres (pip/npm into the target dir) and the
//!   commands that run the client scripts in tests/drivers/;
//! - [`http`]: a tiny blocking HTTP/1.1 client for the control API;
//! - [`webhooks`]: a loopback receiver that keeps what jitgate posts;
//! - [`wire`]: the raw Postgres wire protocol, for bad input and exact error checks;
//! - [`sshd`]: a throwaway OpenSSH server and jitgate's SSH side; [`ssh_master`]: one SSH
//!   connection shared by several `ssh` clients (ControlMaster).
//!
//! Each test file uses a different subset, so unused items are expected here.
#![allow(dead_code)]

pub mod certs;
pub mod clients;
pub mod cluster;
pub mod drivers;
pub mod http;
pub mod jitgate;
pub mod proc;
pub mod ssh_master;
pub mod sshd;
pub mod webhooks;
pub mod wire;

// Re-exports for the test files; each file uses some of them.
#[allow(unused_imports)]
pub use certs::{LeafFiles, TestCa};
#[allow(unused_imports)]
pub use clients::{
    pg_connect, pg_connect_with_messages, pgbench, psql, psql_cmd, psql_ok, psql_query,
};
#[allow(unused_imports)]
pub use cluster::{PgCluster, PgTarget};
#[allow(unused_imports)]
pub use jitgate::{Jitgate, JitgateBuilder, hash_password, jitgate_cmd};
#[allow(unused_imports)]
pub use proc::{
    TempDir, free_port, output_text, process_alive, run_timeout, send_signal, wait_until,
};

use std::time::Duration;

/// The jitgate user most tests connect as, and her password (what psql sends).
pub const ALICE: &str = "alice";
pub const ALICE_PASSWORD: &str = "alice-pw-7Qx";

/// Name of the target that [`Env::new`] configures.
pub const APP_TARGET: &str = "app-db";

/// Long enough for anything on a busy shared machine; a hang fails instead of blocking CI.
pub const LONG: Duration = Duration::from_secs(60);

/// The usual fixture: the shared cluster, a fresh database owned by `app`, and a jitgate that lets
/// alice reach it as target `app-db` (upstream role `app`, SCRAM, no TLS) with an allow-all rule.
pub struct Env {
    pub cluster: &'static PgCluster,
    pub db: String,
    pub jg: Jitgate,
}

impl Env {
    pub fn new() -> Env {
        Env::with(|b| b)
    }

    /// Like [`Env::new`], letting the test adjust the builder (extra server keys, targets, TLS…).
    pub fn with(adjust: impl FnOnce(JitgateBuilder) -> JitgateBuilder) -> Env {
        let cluster = PgCluster::shared();
        let db = cluster.fresh_database("app");
        let jg = adjust(JitgateBuilder::standard(cluster, &db)).start();
        Env { cluster, db, jg }
    }

    /// libpq connection string for alice to `app-db` through the proxy (no password inside).
    pub fn alice(&self) -> String {
        self.jg.conninfo(ALICE, APP_TARGET)
    }

    /// `psql -At -c SQL` as alice through the proxy; asserts success, returns trimmed stdout.
    pub fn query(&self, sql: &str) -> String {
        psql_query(&self.alice(), ALICE_PASSWORD, sql)
    }

    /// tokio-postgres connection string for alice through the proxy (password included).
    pub fn alice_tokio(&self) -> String {
        format!("{} password={ALICE_PASSWORD}", self.alice())
    }

    /// Asserts that the proxy process is alive and still serves a normal psql session.
    pub fn assert_still_serving(&self) {
        assert!(
            self.jg.is_running(),
            "jitgate died\n{}",
            self.jg.log_tail(60)
        );
        assert_eq!(
            self.query("select 40 + 2"),
            "42",
            "proxy no longer serves psql"
        );
    }
}
