//! The real `jitgate` binary, configured per test and killed on drop.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::certs::TestCa;
use super::cluster::{PgCluster, PgTarget};
use super::proc::{
    TempDir, file_tail, free_port, output_text, process_alive, run_timeout, send_signal,
    start_watchdog, wait_child, write_file,
};
use super::{ALICE, ALICE_PASSWORD, APP_TARGET};

/// `jitgate` with nothing else set.
pub fn jitgate_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jitgate"));
    cmd.env_remove("JITGATE_URL").env_remove("JITGATE_TOKEN");
    cmd
}

/// `jitgate hash-password` with `password` on stdin: the verifier it prints (cached per password).
pub fn hash_password(password: &str) -> String {
    static CACHE: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(password) {
        return v.clone();
    }
    let out = run_timeout(
        jitgate_cmd().arg("hash-password"),
        Some(format!("{password}\n").as_bytes()),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "jitgate hash-password failed\n{}",
        output_text(&out)
    );
    // The verifier is the last line printed (a prompt, if any, comes before it).
    let stdout = String::from_utf8_lossy(&out.stdout);
    let verifier = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string();
    assert!(
        verifier.starts_with("SCRAM-SHA-256$"),
        "hash-password printed no SCRAM verifier\n{}",
        output_text(&out)
    );
    cache
        .lock()
        .unwrap()
        .insert(password.to_string(), verifier.clone());
    verifier
}

/// `jitgate check-config --config PATH`.
pub fn check_config(path: &Path) -> Output {
    run_timeout(
        jitgate_cmd().arg("check-config").arg("--config").arg(path),
        None,
        Duration::from_secs(60),
    )
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds a jitgate config and starts the binary on free ports.
#[derive(Clone, Debug, Default)]
pub struct JitgateBuilder {
    users: Vec<(String, Vec<String>, String)>,
    targets: Vec<PgTarget>,
    rules: Vec<String>,
    server: Vec<String>,
    raw: Vec<String>,
    proxy_tls: bool,
    env: Vec<(String, String)>,
    data_dir: Option<PathBuf>,
    ssh_listen: bool,
}

impl JitgateBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// alice (group dev) → target `app-db` = `database` on the cluster as role `app`; allow all.
    pub fn standard(cluster: &PgCluster, database: &str) -> Self {
        Self::new()
            .user(ALICE, &["dev"], ALICE_PASSWORD)
            .target(PgTarget::on_cluster(APP_TARGET, cluster, database, "app"))
            .allow_all()
    }

    /// A `[[users]]` entry with a password (hashed with `jitgate hash-password`).
    pub fn user(mut self, name: &str, groups: &[&str], password: &str) -> Self {
        let groups = groups.iter().map(|g| g.to_string()).collect();
        self.users.push((name.into(), groups, password.into()));
        self
    }

    pub fn target(mut self, target: PgTarget) -> Self {
        self.targets.push(target);
        self
    }

    /// A `[[rules]]` entry: the lines after the header, e.g. `name = "x"\naction = "deny"`.
    pub fn rule(mut self, body: &str) -> Self {
        self.rules.push(body.to_string());
        self
    }

    /// The rule the relay tests use: everything is allowed.
    pub fn allow_all(self) -> Self {
        self.rule("name = \"allow everything\"\ntargets = [\"*\"]\naction = \"allow\"")
    }

    /// An extra `[server]` line with a raw TOML value: `.server("max_connections", "2")`.
    pub fn server(mut self, key: &str, raw_value: &str) -> Self {
        self.server.push(format!("{key} = {raw_value}"));
        self
    }

    /// An extra `[server]` line with a string value: `.server_str("drain_timeout", "2s")`.
    pub fn server_str(self, key: &str, value: &str) -> Self {
        self.server(key, &toml_str(value))
    }

    /// Serve TLS to clients with a certificate for 127.0.0.1/localhost from the test CA.
    pub fn proxy_tls(mut self) -> Self {
        self.proxy_tls = true;
        self
    }

    /// Raw TOML appended at the end (more tables: webhooks, ssh targets…).
    pub fn raw_toml(mut self, text: &str) -> Self {
        self.raw.push(text.to_string());
        self
    }

    /// Use this `data_dir` instead of one in the config's temp dir.
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_path_buf());
        self
    }

    /// Also listen for SSH (`ssh_listen` on a free port; see [`Jitgate::ssh_port`]).
    pub fn ssh_listen(mut self) -> Self {
        self.ssh_listen = true;
        self
    }

    /// An environment variable for the jitgate process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Writes the config (and the files it names) into `dir`; returns its path.
    pub fn write_config(&self, dir: &Path, pg_port: u16, api_port: u16) -> PathBuf {
        let mut t = String::new();
        let data_dir = self.data_dir.clone().unwrap_or_else(|| dir.join("data"));
        std::fs::create_dir_all(&data_dir).expect("mkdir data_dir");
        writeln!(t, "[server]").unwrap();
        writeln!(t, "postgres_listen = \"127.0.0.1:{pg_port}\"").unwrap();
        writeln!(t, "api_listen = \"127.0.0.1:{api_port}\"").unwrap();
        writeln!(
            t,
            "data_dir = {}",
            toml_str(&data_dir.display().to_string())
        )
        .unwrap();
        let host_key = dir.join("ssh_host_key").display().to_string();
        writeln!(t, "ssh_host_key = {}", toml_str(&host_key)).unwrap();
        if self.proxy_tls {
            let ca = TestCa::shared();
            let leaf = ca.write_localhost_leaf(dir, "proxy");
            ca.write_cert(&dir.join("ca.crt"));
            writeln!(
                t,
                "tls_cert = {}",
                toml_str(&leaf.cert.display().to_string())
            )
            .unwrap();
            writeln!(t, "tls_key = {}", toml_str(&leaf.key.display().to_string())).unwrap();
        }
        for line in &self.server {
            writeln!(t, "{line}").unwrap();
        }
        for (name, groups, password) in &self.users {
            let groups: Vec<String> = groups.iter().map(|g| toml_str(g)).collect();
            writeln!(t, "\n[[users]]\nname = {}", toml_str(name)).unwrap();
            writeln!(t, "groups = [{}]", groups.join(", ")).unwrap();
            writeln!(t, "password = {}", toml_str(&hash_password(password))).unwrap();
        }
        for target in &self.targets {
            writeln!(t, "\n[[targets]]\nname = {}", toml_str(&target.name)).unwrap();
            writeln!(
                t,
                "kind = \"postgres\"\naddress = {}",
                toml_str(&target.address)
            )
            .unwrap();
            writeln!(t, "database = {}", toml_str(&target.database)).unwrap();
            writeln!(t, "user = {}", toml_str(&target.user)).unwrap();
            if let Some(var) = &target.password_env {
                writeln!(t, "password_env = {}", toml_str(var)).unwrap();
            } else if let Some(password) = &target.password {
                let file = dir.join(format!("{}.password", target.name));
                write_file(&file, password, 0o600);
                writeln!(
                    t,
                    "password_file = {}",
                    toml_str(&file.display().to_string())
                )
                .unwrap();
            }
            writeln!(t, "tls = {}", toml_str(&target.tls)).unwrap();
            if let Some(ca) = &target.ca_file {
                writeln!(t, "ca_file = {}", toml_str(&ca.display().to_string())).unwrap();
            }
            for line in &target.extra {
                writeln!(t, "{line}").unwrap();
            }
        }
        for rule in &self.rules {
            writeln!(t, "\n[[rules]]\n{rule}").unwrap();
        }
        for raw in &self.raw {
            writeln!(t, "\n{raw}").unwrap();
        }
        let path = dir.join("jitgate.toml");
        write_file(&path, t, 0o600);
        path
    }

    /// Starts jitgate and waits for `GET /healthz` = 200 (20 s), retrying on a port clash.
    pub fn start(self) -> Jitgate {
        let mut last_error = String::new();
        for _attempt in 0..3 {
            match self.try_start() {
                Ok(jg) => return jg,
                Err((e, port_clash)) if port_clash => last_error = e,
                Err((e, _)) => panic!("{e}"),
            }
        }
        panic!("{last_error}")
    }

    fn try_start(&self) -> Result<Jitgate, (String, bool)> {
        let dir = TempDir::new("jg");
        let (pg_port, api_port) = (free_port(), free_port());
        let mut with_ssh = self.clone();
        let ssh_port = self.ssh_listen.then(free_port);
        if let Some(p) = ssh_port {
            with_ssh = with_ssh.server_str("ssh_listen", &format!("127.0.0.1:{p}"));
        }
        let config = with_ssh.write_config(dir.path(), pg_port, api_port);
        let log_path = dir.join("jitgate.log");
        let log = std::fs::File::create(&log_path).expect("create jitgate.log");
        let mut cmd = jitgate_cmd();
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        for target in &self.targets {
            if let (Some(var), Some(pw)) = (&target.password_env, &target.password) {
                cmd.env(var, pw);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn jitgate serve");
        start_watchdog(child.id(), "KILL", None);
        let mut jg = Jitgate {
            child,
            pg_port,
            api_port,
            ssh_port,
            ca_path: self.proxy_tls.then(|| dir.join("ca.crt")),
            config,
            log_path,
            api_scheme: Mutex::new(if self.proxy_tls { "https" } else { "http" }),
            exit_status: None,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = jg.child.try_wait().expect("try_wait jitgate") {
                jg.exit_status = Some(status);
                let tail = jg.log_tail(40);
                let clash = tail.contains("in use");
                return Err((
                    format!("jitgate exited before /healthz answered ({status})\n{tail}"),
                    clash,
                ));
            }
            if jg.healthz() == Some(200) {
                return Ok(jg);
            }
            if Instant::now() >= deadline {
                return Err((
                    format!(
                        "jitgate did not answer 200 on /healthz within 20 s\n{}",
                        jg.log_tail(40)
                    ),
                    false,
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A running `jitgate serve`; SIGKILLed and its temp dir removed on drop.
pub struct Jitgate {
    child: Child,
    pg_port: u16,
    api_port: u16,
    ssh_port: Option<u16>,
    ca_path: Option<PathBuf>,
    config: PathBuf,
    log_path: PathBuf,
    api_scheme: Mutex<&'static str>,
    exit_status: Option<ExitStatus>,
    dir: TempDir,
}

impl Jitgate {
    pub fn pg_port(&self) -> u16 {
        self.pg_port
    }

    /// The SSH listener's port (with [`JitgateBuilder::ssh_listen`]).
    pub fn ssh_port(&self) -> u16 {
        self.ssh_port
            .expect("jitgate was started without ssh_listen()")
    }

    /// The audit store's directory (`data_dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn pg_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.pg_port))
    }

    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.api_port))
    }

    /// `http://127.0.0.1:PORT` (or https when the API answered over TLS).
    pub fn api_url(&self) -> String {
        format!(
            "{}://127.0.0.1:{}",
            self.api_scheme.lock().unwrap(),
            self.api_port
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The CA that signed the proxy's certificate (with [`JitgateBuilder::proxy_tls`]).
    pub fn ca_pem_path(&self) -> PathBuf {
        self.ca_path
            .clone()
            .expect("jitgate was started without proxy_tls()")
    }

    /// Everything jitgate printed so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        format!(
            "--- jitgate log (tail) ---\n{}",
            file_tail(&self.log_path, lines)
        )
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`…).
    pub fn kill(&self, signal: &str) {
        send_signal(self.pid(), signal);
    }

    /// True while the process runs (a zombie counts as dead).
    pub fn is_running(&self) -> bool {
        self.exit_status.is_none() && process_alive(self.pid())
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit_status.is_none() {
            self.exit_status = wait_child(&mut self.child, timeout);
        }
        self.exit_status
    }

    /// libpq connection string through the proxy, without password or sslmode.
    pub fn conninfo_base(&self, user: &str, target: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} dbname={target}",
            self.pg_port
        )
    }

    /// libpq connection string through the proxy, plaintext (`sslmode=disable`), no password.
    pub fn conninfo(&self, user: &str, target: &str) -> String {
        format!("{} sslmode=disable", self.conninfo_base(user, target))
    }

    /// Status code of `GET /healthz`, trying the API's scheme, then the other one.
    pub fn healthz(&self) -> Option<u16> {
        let first = *self.api_scheme.lock().unwrap();
        let schemes: &[&'static str] = match (self.ca_path.is_some(), first) {
            (false, _) => &["http"],
            (true, "https") => &["https", "http"],
            (true, _) => &["http", "https"],
        };
        for &scheme in schemes {
            if let Ok((status, _)) = self.http_get(scheme, "/healthz") {
                *self.api_scheme.lock().unwrap() = scheme;
                return Some(status);
            }
        }
        None
    }

    /// A minimal HTTP/1.1 GET on the API (`scheme` http or https): (status, body).
    pub fn http_get(&self, scheme: &str, path: &str) -> std::io::Result<(u16, String)> {
        super::http::get(self.api_addr(), scheme, path)
    }

    /// One sample of `GET /metrics`: `series` is the name with its labels as exposed
    /// (`jitgate_active_sessions{protocol="ssh"}`). `None` while jitgate does not answer or
    /// has no such sample.
    pub fn metric(&self, series: &str) -> Option<f64> {
        let (status, body) = self.http_get("http", "/metrics").ok()?;
        if status != 200 {
            return None;
        }
        body.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    }
}

impl Drop for Jitgate {
    fn drop(&mut self) {
        if self.exit_status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "jitgate (config {}):\n{}",
                self.config.display(),
                self.log_tail(80)
            );
        }
    }
}
