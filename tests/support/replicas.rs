//! Several jitgate replicas as one (`[cluster]`): the approvals fixture's config (see
//! [`crate::api::Fixture`]) started N times with a `[cluster]` section each, sharing one
//! target database and one state database on the test cluster.
//!
//! Include it after the API support: `mod support;`, `#[path = "support/api.rs"] mod api;`,
//! `#[path = "support/replicas.rs"] mod replicas;`. Each replica keeps its `data_dir` across
//! restarts ([`Replicas::restart`]), as a real node does.
#![allow(dead_code)]

use std::path::PathBuf;

use crate::api::Fixture;
use crate::support::cluster::role_password;
use crate::support::{JitgateBuilder, PgCluster, TempDir};

/// Where the replicas' state database password is, in each process's environment.
const STATE_PASSWORD_ENV: &str = "JITGATE_TEST_STATE_PASSWORD";

pub struct Replicas {
    /// The running replicas, by index (`None` while one is stopped); node names `jg-a`, `jg-b`…
    pub nodes: Vec<Option<Fixture>>,
    /// The target database (tables `t`, `t2`, `log`).
    pub db: String,
    /// The state database the replicas share, and the PostgreSQL that serves it.
    pub state_db: String,
    state_pg: &'static PgCluster,
    builder: JitgateBuilder,
    data: TempDir,
}

/// The node name of replica `i`.
pub fn node_name(i: usize) -> String {
    format!("jg-{}", (b'a' + i as u8) as char)
}

impl Replicas {
    /// `n` replicas of the approvals fixture with writes held for `hold_timeout`; nodes are
    /// lost after `node_timeout` of silence (heartbeat every third of it).
    pub fn start(n: usize, hold_timeout: &str, node_timeout: &str) -> Replicas {
        Replicas::start_on(PgCluster::shared(), n, hold_timeout, node_timeout, "")
    }

    /// Like [`Replicas::start`], with `toml` (tables such as `[[webhooks]]`) in every
    /// replica's config.
    pub fn start_with_toml(
        n: usize,
        hold_timeout: &str,
        node_timeout: &str,
        toml: &str,
    ) -> Replicas {
        Replicas::start_on(PgCluster::shared(), n, hold_timeout, node_timeout, toml)
    }

    /// Like [`Replicas::start`], with the state database on a PostgreSQL server of its own
    /// (the target stays on the shared one), which [`Self::stop_state_server`] stops for real.
    pub fn start_with_state_server(n: usize, hold_timeout: &str, node_timeout: &str) -> Replicas {
        Replicas::start_on(PgCluster::own(), n, hold_timeout, node_timeout, "")
    }

    fn start_on(
        state_pg: &'static PgCluster,
        n: usize,
        hold_timeout: &str,
        node_timeout: &str,
        toml: &str,
    ) -> Replicas {
        let (db, builder) = Fixture::builder(hold_timeout, 10, &["group:sre"]);
        let builder = match toml {
            "" => builder,
            toml => builder.raw_toml(toml),
        };
        let state_db = state_pg.fresh_database("app");
        let mut r = Replicas {
            nodes: Vec::new(),
            db,
            state_db,
            state_pg,
            builder: builder.env(STATE_PASSWORD_ENV, role_password("app")),
            data: TempDir::new("replicas"),
        };
        let node_timeout_ms = humantime_ms(node_timeout);
        r.builder = r.builder.clone().raw_toml(&format!(
            "[cluster]\nstate_url = \"host=127.0.0.1 port={port} dbname={state} user=app\"\n\
             state_password_env = \"{STATE_PASSWORD_ENV}\"\nstate_tls = \"disable\"\n\
             node_timeout = \"{node_timeout_ms}ms\"\nheartbeat_interval = \"{}ms\"\n",
            node_timeout_ms / 3,
            port = state_pg.port(),
            state = r.state_db,
        ));
        for i in 0..n {
            let fx = r.launch(i);
            r.nodes.push(Some(fx));
        }
        r
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        let dir = self.data.join(&node_name(i));
        std::fs::create_dir_all(&dir).expect("mkdir replica data_dir");
        dir
    }

    fn launch(&self, i: usize) -> Fixture {
        // Appended last, so inside the `[cluster]` table the builder opened before.
        let builder = self
            .builder
            .clone()
            .data_dir(&self.data_dir(i))
            .raw_toml(&format!("node = \"{}\"", node_name(i)));
        Fixture::around(builder.start(), self.db.clone())
    }

    /// Replica `i`, running.
    pub fn node(&self, i: usize) -> &Fixture {
        self.nodes[i]
            .as_ref()
            .unwrap_or_else(|| panic!("replica {} is stopped", node_name(i)))
    }

    /// Start replica `i` again (same node name and data_dir) after it stopped or was killed.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i] = None;
        let fx = self.launch(i);
        self.nodes[i] = Some(fx);
    }

    /// A superuser query in the state database; trimmed output.
    pub fn state_sql(&self, sql: &str) -> String {
        self.state_pg.superuser_psql_db(&self.state_db, sql)
    }

    /// Stops the state database's server (fast shutdown: its sessions end, nothing new is
    /// accepted) while the target's keeps serving; [`Self::start_state_server`] starts it again.
    pub fn stop_state_server(&self) {
        self.state_pg.stop_server();
    }

    pub fn start_state_server(&self) {
        self.state_pg.start_server();
    }
}

/// `"3s"`, `"1500ms"` as milliseconds.
fn humantime_ms(s: &str) -> u64 {
    if let Some(ms) = s.strip_suffix("ms") {
        return ms.parse().expect("a number of ms");
    }
    let secs: u64 = s
        .strip_suffix('s')
        .and_then(|v| v.parse().ok())
        .expect("node_timeout as Ns or Nms");
    secs * 1000
}
