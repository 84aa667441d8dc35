//! Real OpenSSH for the SSH tests: a throwaway `sshd` as the target, keys made with
//! `ssh-keygen`, the OS user it logs in as, and `ssh` client commands through jitgate.
//!
//! The target sshd runs as root (CI does) on a free 127.0.0.1 port with its own host key, an
//! `AuthorizedKeysFile` in its temp dir, `StrictModes no` and no password logins. It logs in
//! as [`TARGET_USER`], created once with `useradd -m` and unlocked with `usermod -p '*'`
//! (sshd refuses key logins to a locked account without PAM).

use std::fmt::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::jitgate::{Jitgate, JitgateBuilder, toml_str};
use super::proc::{
    TempDir, file_tail, free_port, is_root, output_text, require_tool, run_timeout, start_watchdog,
    write_file,
};

/// The OS user the target sshd logs in as.
pub const TARGET_USER: &str = "jgtarget";
/// The ssh target every fixture configures.
pub const TARGET: &str = "web-1";
pub const BOB_TOKEN: &str = "bob-ssh-token";

/// Key pairs made once per test binary.
pub struct Keys {
    pub dir: PathBuf,
    /// alice's key (configured in jitgate).
    pub alice: PathBuf,
    /// A key nobody configured.
    pub mallory: PathBuf,
    /// jitgate's key for the target (ed25519).
    pub target: PathBuf,
    /// jitgate's key for the target (RSA).
    pub target_rsa: PathBuf,
    /// The key the bench/other tests use to log in directly to the target.
    pub direct: PathBuf,
}

/// `ssh-keygen -t KIND -N '' -f PATH`; returns the public key line.
pub fn keygen(path: &Path, kind: &str) -> String {
    let out = run_timeout(
        Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", "", "-C", "jitgate-test", "-f"])
            .arg(path),
        None,
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "ssh-keygen: {}", output_text(&out));
    public_key(path)
}

/// The `.pub` line of a key made by [`keygen`].
pub fn public_key(path: &Path) -> String {
    let p = PathBuf::from(format!("{}.pub", path.display()));
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

impl Keys {
    pub fn shared() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| {
            require_tool("ssh-keygen");
            let dir = TempDir::new("sshkeys").into_path();
            let k = |name: &str, kind: &str| {
                let p = dir.join(name);
                keygen(&p, kind);
                p
            };
            Keys {
                alice: k("alice", "ed25519"),
                mallory: k("mallory", "ed25519"),
                target: k("target", "ed25519"),
                target_rsa: k("target_rsa", "rsa"),
                direct: k("direct", "ed25519"),
                dir,
            }
        })
    }
}

/// Creates [`TARGET_USER`] if missing (once per process).
pub fn ensure_target_user() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        assert!(
            is_root(),
            "the SSH tests run as root (they create an OS user and run sshd)"
        );
        let exists = Command::new("id")
            .arg(TARGET_USER)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !exists {
            let out = run_timeout(
                Command::new("useradd").args(["-m", "-s", "/bin/bash", TARGET_USER]),
                None,
                Duration::from_secs(60),
            );
            // 9: created meanwhile by another test binary.
            assert!(
                out.status.success() || out.status.code() == Some(9),
                "useradd: {}",
                output_text(&out)
            );
        }
        let out = run_timeout(
            Command::new("usermod").args(["-p", "*", TARGET_USER]),
            None,
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "usermod: {}", output_text(&out));
    });
}

/// A running target sshd; killed on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    /// The sshd's host public key line (`ssh-ed25519 AAAA…`), for pinning.
    pub host_key: String,
    dir: TempDir,
}

impl Sshd {
    /// An sshd accepting `authorized` public key lines for [`TARGET_USER`].
    pub fn start(authorized: &[String]) -> Sshd {
        require_tool("/usr/sbin/sshd");
        ensure_target_user();
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        let dir = TempDir::new("sshd");
        let host = dir.join("host_ed25519");
        let host_key = keygen(&host, "ed25519");
        let host_key = host_key
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");
        let auth = dir.join("authorized_keys");
        write_file(&auth, authorized.join("\n") + "\n", 0o644);
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            let cfg = dir.join("sshd_config");
            let mut c = String::new();
            writeln!(c, "ListenAddress 127.0.0.1").unwrap();
            writeln!(c, "HostKey {}", host.display()).unwrap();
            writeln!(c, "PidFile {}", dir.join("sshd.pid").display()).unwrap();
            writeln!(c, "AuthorizedKeysFile {}", auth.display()).unwrap();
            for line in [
                "StrictModes no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes",
                "UsePAM no",
                "Subsystem sftp internal-sftp",
                "AllowTcpForwarding yes",
                "MaxStartups 500",
                "MaxSessions 200",
                "AcceptEnv LANG LC_* JG_SECRET",
                "PrintMotd no",
                "LogLevel ERROR",
            ] {
                writeln!(c, "{line}").unwrap();
            }
            write_file(&cfg, c, 0o644);
            let log_path = dir.join("sshd.log");
            let log = std::fs::File::create(&log_path).expect("sshd.log");
            let mut child = Command::new("/usr/sbin/sshd")
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&cfg)
                .arg("-p")
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup"))
                .stderr(log)
                .spawn()
                .expect("spawn sshd");
            start_watchdog(child.id(), "TERM", None);
            let deadline = Instant::now() + Duration::from_secs(10);
            let up = loop {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break true;
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break false;
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "sshd did not listen within 10 s\n{}",
                        file_tail(&log_path, 40)
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if up {
                return Sshd {
                    child,
                    port,
                    host_key,
                    dir,
                };
            }
            last = file_tail(&log_path, 40);
        }
        panic!("sshd failed to start:\n{last}")
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log_tail(&self) -> String {
        format!(
            "--- sshd log ---\n{}",
            file_tail(&self.dir.join("sshd.log"), 40)
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SSH fixture: a target sshd trusting jitgate's key, and a jitgate with users alice
/// (group dev, her ssh key, no password) and bob (group sre, API token [`BOB_TOKEN`]), target
/// [`TARGET`] pinned to the sshd's host key, and the rules `first` (tried first), then
/// - "reads pass": read → allow;
/// - "no port forwarding": port_forward → deny;
/// - "needs an SRE": write, admin, unknown, shell, file_transfer → review by group:sre
///   with `hold_timeout`.
pub struct SshEnv {
    pub sshd: Sshd,
    pub jg: Jitgate,
    pub keys: &'static Keys,
}

pub struct SshEnvBuilder {
    pub first: Vec<String>,
    pub hold_timeout: String,
    pub rsa_target_key: bool,
    /// Pin this host key instead of the sshd's.
    pub pinned_host_key: Option<String>,
    /// `server.drain_timeout`.
    pub drain_timeout: Option<String>,
    /// Extra `[server]` lines with raw TOML values.
    pub server: Vec<(&'static str, String)>,
    /// `[audit]` lines with raw TOML values.
    pub audit: Vec<(&'static str, String)>,
}

impl Default for SshEnvBuilder {
    fn default() -> Self {
        SshEnvBuilder {
            first: Vec::new(),
            hold_timeout: "60s".into(),
            rsa_target_key: false,
            pinned_host_key: None,
            drain_timeout: None,
            server: Vec::new(),
            audit: Vec::new(),
        }
    }
}

impl SshEnvBuilder {
    pub fn rule_first(mut self, body: &str) -> Self {
        self.first.push(body.to_string());
        self
    }

    /// An extra `[server]` line with a raw TOML value.
    pub fn server(mut self, key: &'static str, raw: &str) -> Self {
        self.server.push((key, raw.to_string()));
        self
    }

    /// An `[audit]` line with a raw TOML value.
    pub fn audit(mut self, key: &'static str, raw: &str) -> Self {
        self.audit.push((key, raw.to_string()));
        self
    }

    pub fn hold_timeout(mut self, t: &str) -> Self {
        self.hold_timeout = t.into();
        self
    }

    pub fn start(self) -> SshEnv {
        let keys = Keys::shared();
        let sshd = Sshd::start(&[
            public_key(&keys.target),
            public_key(&keys.target_rsa),
            public_key(&keys.direct),
        ]);
        let key_file = if self.rsa_target_key {
            &keys.target_rsa
        } else {
            &keys.target
        };
        let pinned = self
            .pinned_host_key
            .clone()
            .unwrap_or(sshd.host_key.clone());
        let users = format!(
            "[[users]]\nname = \"alice\"\ngroups = [\"dev\"]\nssh_keys = [{}]\n\n\
             [[users]]\nname = \"bob\"\ngroups = [\"sre\"]\napi_token_sha256 = \"{}\"\n\n\
             [api]\nauditors = [\"user:bob\"]\n\n\
             [[targets]]\nname = {}\nkind = \"ssh\"\naddress = {}\nuser = {}\nkey_file = {}\nhost_key = {}\n",
            toml_str(&public_key(&keys.alice)),
            sha256_hex(BOB_TOKEN),
            toml_str(TARGET),
            toml_str(&sshd.addr()),
            toml_str(TARGET_USER),
            toml_str(&key_file.display().to_string()),
            toml_str(&pinned),
        );
        let mut b = JitgateBuilder::new().ssh_listen().raw_toml(&users);
        if let Some(d) = &self.drain_timeout {
            b = b.server_str("drain_timeout", d);
        }
        for (key, raw) in &self.server {
            b = b.server(key, raw);
        }
        for r in &self.first {
            b = b.rule(r);
        }
        if !self.audit.is_empty() {
            let lines: Vec<String> = self
                .audit
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            b = b.raw_toml(&format!("[audit]\n{}", lines.join("\n")));
        }
        b = b
            .rule("name = \"reads pass\"\nclasses = [\"read\"]\naction = \"allow\"")
            .rule("name = \"no port forwarding\"\nclasses = [\"port_forward\"]\naction = \"deny\"")
            .rule(&format!(
                "name = \"needs an SRE\"\nclasses = [\"write\", \"admin\", \"unknown\", \"shell\", \"file_transfer\"]\n\
                 action = \"review\"\napprovers = [\"group:sre\"]\nhold_timeout = {}",
                toml_str(&self.hold_timeout)
            ));
        let jg = b.start();
        SshEnv { sshd, jg, keys }
    }
}

impl SshEnv {
    /// Stops jitgate cleanly and opens its audit store.
    pub fn stopped_store(&mut self) -> jitgate::audit::Audit {
        self.jg.kill("TERM");
        assert!(
            self.jg.wait_exit(Duration::from_secs(30)).is_some(),
            "jitgate did not stop"
        );
        jitgate::audit::Audit::open(
            &self.jg.data_dir().join("audit"),
            jitgate::audit::AuditOptions::default(),
        )
        .expect("open the audit store")
    }

    /// `jitgate_active_sessions{protocol="ssh"}` from jitgate's metrics (`None` while
    /// jitgate does not answer).
    pub fn active_ssh_sessions(&self) -> Option<u64> {
        self.jg
            .metric("jitgate_active_sessions{protocol=\"ssh\"}")
            .map(|v| v as u64)
    }

    pub fn builder() -> SshEnvBuilder {
        SshEnvBuilder::default()
    }

    pub fn new() -> SshEnv {
        SshEnvBuilder::default().start()
    }

    /// `ssh` as alice to `target` through jitgate, with `args` before the command.
    pub fn ssh_as(&self, key: &Path, target: &str) -> Command {
        ssh_client(self.jg.ssh_port(), key, target)
    }

    /// `ssh` as alice to [`TARGET`] through jitgate.
    pub fn ssh(&self) -> Command {
        self.ssh_as(&self.keys.alice, TARGET)
    }

    /// `ssh` straight to the target sshd (no jitgate), for comparisons.
    pub fn ssh_direct(&self) -> Command {
        ssh_client(self.sshd.port, &self.keys.direct, TARGET_USER)
    }

    /// Prints both logs (for assertion messages).
    pub fn logs(&self) -> String {
        format!("{}\n{}", self.jg.log_tail(60), self.sshd.log_tail())
    }
}

/// The OpenSSH client options every test uses: one key, no agent, no known_hosts, batch.
pub fn ssh_client_opts(key: &Path) -> Vec<String> {
    [
        "-i",
        &key.display().to_string(),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "IdentityAgent=none",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=20",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub fn ssh_client(port: u16, key: &Path, user: &str) -> Command {
    require_tool("ssh");
    let mut c = Command::new("ssh");
    c.arg("-p").arg(port.to_string());
    c.args(ssh_client_opts(key));
    c.arg(format!("{user}@127.0.0.1"));
    c
}
