//! Replicas for the cluster audit tests: one state database on the shared test cluster, a
//! target database, and `jitgate serve` processes with a `[cluster]` section pointing at that
//! state database, each with its own `data_dir` kept across restarts.
//!
//! Users: alice (password, SSH key and API token; runs the sessions), audrey (API token; the
//! auditor). One rule allows everything: these tests are about the trail, not approvals. With
//! [`Replicas::with_ssh`], every replica also listens for SSH and reaches the test sshd as
//! target `web-1`.
//!
//! Each test file uses a different subset, so unused items are expected here.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Output;

use serde_json::Value;

use crate::api::{AUDITOR_TOKEN, Api, POLL, sha256_hex};
use crate::support::jitgate::toml_str;
use crate::support::proc::write_file;
use crate::support::sshd::{Keys, Sshd, TARGET, TARGET_USER, public_key};
use crate::support::{
    ALICE, ALICE_PASSWORD, APP_TARGET, Jitgate, JitgateBuilder, PgCluster, PgTarget, TempDir,
    jitgate_cmd, run_timeout,
};

pub const ALICE_TOKEN: &str = "alice-cluster-token";

/// The databases and directories replicas share.
pub struct Replicas {
    /// The PostgreSQL of the target database.
    pub pg: &'static PgCluster,
    /// The state database (owned by role `app`), and the PostgreSQL that serves it.
    pub state_db: String,
    pub state_pg: &'static PgCluster,
    /// The target database alice reaches as `app-db`.
    pub target_db: String,
    dir: TempDir,
    ssh: Option<Sshd>,
    /// `[audit] retention_days` of replicas started from now on.
    retention_days: Option<u32>,
}

impl Replicas {
    pub fn new() -> Replicas {
        Replicas::with_state_on(PgCluster::shared())
    }

    /// Like [`Replicas::new`], with the state database on a PostgreSQL server of its own (the
    /// target stays on the shared one), which [`Self::stop_state_server`] stops for real.
    pub fn with_state_server() -> Replicas {
        Replicas::with_state_on(PgCluster::own())
    }

    fn with_state_on(state_pg: &'static PgCluster) -> Replicas {
        let pg = PgCluster::shared();
        let state_db = state_pg.fresh_database("app");
        let target_db = pg.fresh_database("app");
        Replicas {
            pg,
            state_db,
            state_pg,
            target_db,
            dir: TempDir::new("cluster-audit"),
            ssh: None,
            retention_days: None,
        }
    }

    /// Replicas started from now on also serve SSH to the test sshd (target `web-1`).
    pub fn with_ssh(mut self) -> Replicas {
        let keys = Keys::shared();
        self.ssh = Some(Sshd::start(&[public_key(&keys.target)]));
        self
    }

    /// Replicas started from now on keep `days` of audit trail (`[audit] retention_days`).
    pub fn with_retention_days(mut self, days: u32) -> Replicas {
        self.retention_days = Some(days);
        self
    }

    /// The `[[users]]` key line and `[[targets]]` table of the SSH target, if any.
    fn ssh_toml(&self) -> (String, String) {
        let Some(sshd) = &self.ssh else {
            return (String::new(), String::new());
        };
        let keys = Keys::shared();
        (
            format!("ssh_keys = [{}]\n", toml_str(&public_key(&keys.alice))),
            format!(
                "\n[[targets]]\nname = {}\nkind = \"ssh\"\naddress = {}\nuser = {}\n\
                 key_file = {}\nhost_key = {}\n",
                toml_str(TARGET),
                toml_str(&sshd.addr()),
                toml_str(TARGET_USER),
                toml_str(&keys.target.display().to_string()),
                toml_str(&sshd.host_key),
            ),
        )
    }

    /// The `data_dir` of replica `node` (the same at every start).
    pub fn data_dir(&self, node: &str) -> PathBuf {
        self.dir.join(node)
    }

    /// Start replica `node` (on free ports, with its own `data_dir`).
    pub fn start(&self, node: &str) -> Jitgate {
        let password_file = self.dir.join("state.password");
        write_file(
            &password_file,
            crate::support::cluster::role_password("app"),
            0o600,
        );
        let (ssh_key, ssh_target) = self.ssh_toml();
        let users = format!(
            "[[users]]\nname = \"{ALICE}\"\ngroups = [\"dev\"]\npassword = {}\n{ssh_key}\
             api_token_sha256 = \"{}\"\n\n\
             [[users]]\nname = \"audrey\"\ngroups = [\"security\"]\napi_token_sha256 = \"{}\"\n\n\
             [api]\nauditors = [\"user:audrey\"]\n\n{audit}\
             [cluster]\nnode = {}\nstate_url = {}\nstate_password_file = {}\nstate_tls = \"disable\"\n",
            toml_str(&crate::support::hash_password(ALICE_PASSWORD)),
            sha256_hex(ALICE_TOKEN),
            sha256_hex(AUDITOR_TOKEN),
            toml_str(node),
            toml_str(&format!(
                "host=127.0.0.1 port={} dbname={} user=app",
                self.state_pg.port(),
                self.state_db
            )),
            toml_str(&password_file.display().to_string()),
            audit = self
                .retention_days
                .map(|d| format!("[audit]\nretention_days = {d}\n\n"))
                .unwrap_or_default(),
        ) + &ssh_target;
        std::fs::create_dir_all(self.data_dir(node)).expect("mkdir data_dir");
        let builder = match self.ssh {
            Some(_) => JitgateBuilder::new().ssh_listen(),
            None => JitgateBuilder::new(),
        };
        builder
            .target(PgTarget::on_cluster(
                APP_TARGET,
                self.pg,
                &self.target_db,
                "app",
            ))
            .allow_all()
            .data_dir(&self.data_dir(node))
            .raw_toml(&users)
            .start()
    }

    /// `psql -At` as superuser in the state database; trimmed output.
    pub fn state_sql(&self, sql: &str) -> String {
        self.state_pg.superuser_psql_db(&self.state_db, sql)
    }

    /// `(seq, hex hash)` of every row node `node` shipped, in seq order.
    pub fn shipped(&self, node: &str) -> Vec<(u64, String)> {
        self.state_sql(&format!(
            "SELECT seq || ' ' || encode(hash, 'hex') FROM jitgate_audit_events \
             WHERE node = '{node}' ORDER BY seq;"
        ))
        .lines()
        .map(seq_and_hash)
        .collect()
    }
}

fn seq_and_hash(line: &str) -> (u64, String) {
    let (seq, hash) = line.split_once(' ').expect("seq and hash");
    (seq.parse().expect("a seq"), hash.to_string())
}

/// The API of a replica as `token`.
pub fn api(jg: &Jitgate, token: &str) -> Api {
    Api::new(jg.api_addr(), token)
}

/// `jitgate ARGS` (the CLI) against a replica's API as the holder of `token`.
pub fn cli(jg: &Jitgate, token: &str, args: &[&str]) -> Output {
    run_timeout(
        jitgate_cmd()
            .args(args)
            .env("JITGATE_URL", jg.api_url())
            .env("JITGATE_TOKEN", token),
        None,
        POLL,
    )
}

/// `(seq, hash)` of every event in a stopped replica's own store, read offline.
pub fn local_trail(data_dir: &std::path::Path) -> Vec<(u64, String)> {
    let out = run_timeout(
        jitgate_cmd()
            .args(["audit", "export", "--data-dir"])
            .arg(data_dir),
        None,
        POLL,
    );
    assert!(
        out.status.success(),
        "jitgate audit export --data-dir: {}",
        crate::support::output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("an export line is JSON");
            (
                v["seq"].as_u64().expect("seq"),
                v["hash"].as_str().expect("hash").to_string(),
            )
        })
        .collect()
}

/// Stop a replica with SIGTERM and wait for it to exit (its store is then free to read).
pub fn stop(jg: &mut Jitgate) {
    jg.kill("TERM");
    assert!(
        jg.wait_exit(POLL).is_some(),
        "jitgate did not stop\n{}",
        jg.log_tail(30)
    );
}

impl Replicas {
    /// The state database's server stops (fast shutdown: its sessions end, nothing new is
    /// accepted) while the target's keeps serving reads; [`Self::start_state_server`] starts it.
    pub fn stop_state_server(&self) {
        self.state_pg.stop_server();
    }

    pub fn start_state_server(&self) {
        self.state_pg.start_server();
    }
}

/// A replica's `jitgate_cluster_shipping_lag_events`.
pub fn shipping_lag(jg: &Jitgate) -> u64 {
    jg.metric("jitgate_cluster_shipping_lag_events")
        .map(|v| v as u64)
        .unwrap_or_else(|| panic!("no shipping lag metric\n{}", jg.log_tail(20)))
}
