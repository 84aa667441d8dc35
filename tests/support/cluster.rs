//! A throwaway PostgreSQL 15 cluster, one per test binary, stopped when the test process dies.
//!
//! A test that must stop and start a server for real (the cluster's state database going down)
//! takes a cluster of its own with [`PgCluster::own`]: stopping the shared one would stop every
//! other test of the binary.

use std::os::unix::fs::chown;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::certs::TestCa;
use super::proc::{
    TempDir, file_tail, free_port, is_root, os_user, output_text, require_tool, run_timeout,
    send_signal, start_watchdog, wait_until, write_file,
};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Roles the cluster has, with their passwords. Tests reach them directly or as target creds.
pub const ROLES: &[(&str, &str)] = &[
    ("postgres", "pg-super-8Kd"),
    ("app", "app-secret-3Fh"),         // SCRAM, owns database `app`
    ("app_md5", "md5-secret-9Lw"),     // stored as md5, pg_hba method md5
    ("app_plain", "plain-secret-2Zr"), // pg_hba method password (cleartext)
    ("app_tls", "tls-secret-5Vb"),     // pg_hba hostssl only
];

/// A running cluster. Get the one shared by this test binary with [`PgCluster::shared`].
pub struct PgCluster {
    dir: PathBuf,
    port: u16,
    /// The running postmaster (0 while stopped) and its process, reaped when it stops.
    pid: AtomicU32,
    postmaster: Mutex<Option<Child>>,
    /// The `postgres` OS user's uid and gid when the tests run as root.
    ids: Option<(u32, u32)>,
    /// Made by [`PgCluster::own`]: the only kind a test may stop.
    own: bool,
    db_counter: AtomicUsize,
}

impl PgCluster {
    /// The cluster of this test binary, started on first use.
    pub fn shared() -> &'static PgCluster {
        static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
        let started = CLUSTER.get_or_init(|| {
            std::panic::catch_unwind(PgCluster::start).map_err(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into())
            })
        });
        match started {
            Ok(c) => c,
            Err(e) => panic!("the test PostgreSQL cluster could not start: {e}"),
        }
    }

    /// A cluster of this test alone (same roles as the shared one), for tests that stop it.
    /// It lives until the test process ends.
    pub fn own() -> &'static PgCluster {
        Box::leak(Box::new(PgCluster {
            own: true,
            ..PgCluster::start()
        }))
    }

    fn start() -> PgCluster {
        for tool in ["initdb", "postgres"] {
            require_tool(&format!("{PG_BIN}/{tool}"));
        }
        require_tool("psql");
        let dir = TempDir::new("pg").into_path();
        let as_postgres = is_root();
        let ids = if as_postgres {
            let ids = os_user("postgres").expect(
                "OS user `postgres` is missing (tests/run.sh creates it; postgres refuses root)",
            );
            chown(&dir, Some(ids.0), Some(ids.1)).expect("chown cluster dir");
            Some(ids)
        } else {
            None
        };
        let data = dir.join("data");
        let out = run_timeout(
            as_owner(&format!("{PG_BIN}/initdb"), &dir, ids)
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
                .args(["--locale=C", "--no-sync"]),
            None,
            Duration::from_secs(180),
        );
        assert!(out.status.success(), "initdb failed\n{}", output_text(&out));

        let ca = TestCa::shared();
        let leaf = ca.write_localhost_leaf(&dir, "server");
        ca.write_cert(&dir.join("root.crt"));
        if let Some((uid, gid)) = ids {
            for f in [&leaf.cert, &leaf.key, &dir.join("root.crt")] {
                chown(f, Some(uid), Some(gid)).expect("chown cert");
            }
        }
        let port = free_port();
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\n\
             unix_socket_directories = '{dir}'\n\
             password_encryption = 'scram-sha-256'\nmax_connections = 300\n\
             ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n\
             logging_collector = off\nlog_min_messages = warning\n",
            dir = dir.display(),
            cert = leaf.cert.display(),
            key = leaf.key.display(),
        );
        let conf_path = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("read postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&conf_path, text).expect("write postgresql.conf");
        let hba = "local all postgres trust\n\
                   host all app_md5 127.0.0.1/32 md5\n\
                   host all app_plain 127.0.0.1/32 password\n\
                   hostssl all app_tls 127.0.0.1/32 scram-sha-256\n\
                   hostnossl all app_tls 127.0.0.1/32 reject\n\
                   host all all 127.0.0.1/32 scram-sha-256\n";
        write_file(&data.join("pg_hba.conf"), hba, 0o600);
        if let Some((uid, gid)) = ids {
            chown(data.join("pg_hba.conf"), Some(uid), Some(gid)).expect("chown hba");
        }

        let cluster = PgCluster {
            dir,
            port,
            pid: AtomicU32::new(0),
            postmaster: Mutex::new(None),
            ids,
            own: false,
            db_counter: AtomicUsize::new(0),
        };
        cluster.start_server();
        let pw = |role: &str| role_password(role);
        let setup = format!(
            "ALTER ROLE postgres PASSWORD '{}';\n\
             CREATE ROLE app LOGIN PASSWORD '{}';\n\
             CREATE DATABASE app OWNER app;\n\
             SET password_encryption = 'md5';\n\
             CREATE ROLE app_md5 LOGIN PASSWORD '{}';\n\
             RESET password_encryption;\n\
             CREATE ROLE app_plain LOGIN PASSWORD '{}';\n\
             CREATE ROLE app_tls LOGIN PASSWORD '{}';\n",
            pw("postgres"),
            pw("app"),
            pw("app_md5"),
            pw("app_plain"),
            pw("app_tls"),
        );
        cluster.superuser_psql(&setup);
        cluster
    }

    /// Starts the postmaster (again) on the same data directory and port; returns once it
    /// accepts connections.
    pub fn start_server(&self) {
        let mut postmaster = self.postmaster.lock().expect("postmaster lock");
        assert!(postmaster.is_none(), "postgres is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("postgres.log"))
            .expect("postgres.log");
        let mut child = as_owner(&format!("{PG_BIN}/postgres"), &self.dir, self.ids)
            .arg("-D")
            .arg(self.dir.join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn postgres");
        let pid = child.id();
        start_watchdog(pid, "INT", Some(&self.dir));
        wait_until("postgres to accept connections", LONG_START, || {
            if let Some(status) = child.try_wait().expect("try_wait postgres") {
                panic!(
                    "postgres exited during start-up ({status})\n{}",
                    self.log_tail(40)
                );
            }
            let out = self.psql_cmd("postgres").arg("-c").arg("select 1").output();
            out.ok().filter(|o| o.status.success()).map(|_| ())
        });
        self.pid.store(pid, Ordering::Relaxed);
        *postmaster = Some(child);
    }

    /// Stops the postmaster as `pg_ctl stop -m fast` does (SIGINT: sessions are ended, nothing
    /// new is accepted) and waits until it has exited. [`Self::start_server`] brings it back.
    pub fn stop_server(&self) {
        assert!(
            self.own,
            "only a cluster of the test's own (PgCluster::own) may be stopped: stopping the \
             shared one would stop every other test of the binary"
        );
        let mut postmaster = self.postmaster.lock().expect("postmaster lock");
        let mut child = postmaster.take().expect("postgres is running");
        send_signal(child.id(), "INT");
        let status = child.wait().expect("wait for postgres");
        assert!(status.success(), "postgres stopped with {status}");
        self.pid.store(0, Ordering::Relaxed);
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as a target's `address`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The postmaster's pid.
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::Relaxed)
    }

    /// The CA certificate that signed the server's certificate (for `sslrootcert`/`ca_file`).
    pub fn ca_pem_path(&self) -> PathBuf {
        self.dir.join("root.crt")
    }

    /// Directory of the unix socket (the superuser connects there without a password).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_tail(&self, lines: usize) -> String {
        file_tail(&self.dir.join("postgres.log"), lines)
    }

    /// `psql` as superuser over the unix socket, `-X -A -t -v ON_ERROR_STOP=1`.
    pub fn psql_cmd(&self, db: &str) -> Command {
        let mut cmd = Command::new("psql");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db]);
        cmd
    }

    /// Runs `sql` (one or more statements, each on its own as a script) as superuser in
    /// database `postgres`; panics on error; returns trimmed stdout.
    pub fn superuser_psql(&self, sql: &str) -> String {
        self.superuser_psql_db("postgres", sql)
    }

    /// Like [`PgCluster::superuser_psql`] in database `db`.
    pub fn superuser_psql_db(&self, db: &str, sql: &str) -> String {
        let out = run_timeout(
            self.psql_cmd(db).args(["-f", "-"]),
            Some(sql.as_bytes()),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "superuser psql failed on:\n{sql}\n{}\n--- postgres log ---\n{}",
            output_text(&out),
            self.log_tail(20)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    pub fn create_database(&self, name: &str, owner: &str) {
        self.superuser_psql(&format!("CREATE DATABASE \"{name}\" OWNER \"{owner}\";"));
    }

    /// A new, uniquely named database owned by `owner`; every test takes its own.
    pub fn fresh_database(&self, owner: &str) -> String {
        let n = self.db_counter.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{n}");
        self.create_database(&name, owner);
        name
    }

    /// A direct libpq connection string for `role` (password included); TLS verified against
    /// the test CA for `app_tls` (its only way in), plaintext otherwise.
    pub fn conninfo(&self, role: &str, db: &str) -> String {
        let ssl = if role == "app_tls" {
            format!(
                "sslmode=verify-full sslrootcert={}",
                self.ca_pem_path().display()
            )
        } else {
            "sslmode=disable".to_string()
        };
        format!(
            "host=127.0.0.1 port={} user={role} dbname={db} password={} {ssl}",
            self.port,
            role_password(role)
        )
    }

    /// Pids of the backends whose application_name is `app_name`.
    pub fn backends_named(&self, app_name: &str) -> Vec<u32> {
        let out = self.superuser_psql(&format!(
            "SELECT pid FROM pg_stat_activity WHERE application_name = '{app_name}';"
        ));
        out.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// The `state` of the backends whose application_name is `app_name`.
    pub fn backend_states(&self, app_name: &str) -> Vec<String> {
        let out = self.superuser_psql(&format!(
            "SELECT coalesce(state, '') FROM pg_stat_activity WHERE application_name = '{app_name}';"
        ));
        out.lines().map(|l| l.trim().to_string()).collect()
    }

    /// Waits until a backend named `app_name` is running a statement (state `active`).
    pub fn wait_active(&self, app_name: &str) {
        wait_until(
            &format!("an active backend with application_name {app_name}"),
            Duration::from_secs(20),
            || {
                self.backend_states(app_name)
                    .iter()
                    .any(|s| s == "active")
                    .then_some(())
            },
        );
    }
}

/// `program` run as the cluster's owner (`ids`, when the tests run as root) in `dir`.
fn as_owner(program: &str, dir: &Path, ids: Option<(u32, u32)>) -> Command {
    let mut cmd = Command::new(program);
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
    }
    cmd.env("HOME", dir).current_dir(dir);
    cmd
}

const LONG_START: Duration = Duration::from_secs(60);

/// The password of one of the cluster's roles ([`ROLES`]).
pub fn role_password(role: &str) -> &'static str {
    ROLES
        .iter()
        .find(|(r, _)| *r == role)
        .map(|(_, p)| *p)
        .unwrap_or_else(|| panic!("no test role {role}"))
}

/// A `[[targets]]` entry of kind postgres.
#[derive(Clone, Debug)]
pub struct PgTarget {
    pub name: String,
    pub address: String,
    pub database: String,
    pub user: String,
    /// Written to a `password_file` (unless `password_env` is set).
    pub password: Option<String>,
    /// Use `password_env = VAR`, with VAR=password in jitgate's environment.
    pub password_env: Option<String>,
    pub tls: String,
    pub ca_file: Option<PathBuf>,
    /// Extra raw `key = value` lines.
    pub extra: Vec<String>,
}

impl PgTarget {
    /// Target `name` reaching `database` on the shared cluster as `role`, no TLS.
    pub fn on_cluster(name: &str, cluster: &PgCluster, database: &str, role: &str) -> PgTarget {
        PgTarget {
            name: name.into(),
            address: cluster.addr(),
            database: database.into(),
            user: role.into(),
            password: Some(role_password(role).into()),
            password_env: None,
            tls: "disable".into(),
            ca_file: None,
            extra: Vec::new(),
        }
    }

    pub fn tls(mut self, mode: &str) -> Self {
        self.tls = mode.into();
        self
    }

    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    pub fn password_env(mut self, var: &str) -> Self {
        self.password_env = Some(var.into());
        self
    }
}
