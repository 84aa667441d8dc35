//! Processes, ports, temp dirs and polling.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound to :0, read, released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under /tmp, removed on drop (kept when `JITGATE_KEEP_TEST_DIRS` is set).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let n = DIR_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = PathBuf::from(format!(
            "/tmp/jitgate-{prefix}-{}-{n}-{nanos:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Keep the directory: the caller takes over its removal (e.g. a watchdog does it).
    pub fn into_path(self) -> PathBuf {
        let path = self.path.clone();
        std::mem::forget(self);
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("JITGATE_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout` naming `what`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for: {what}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `cmd` to completion with stdout/stderr captured and `stdin` fed (or /dev/null); kills
/// it and panics, showing what it printed, if it takes longer than `timeout`.
pub fn run_timeout(cmd: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {desc}: {e}"));
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        let input = input.to_vec();
        thread::spawn(move || {
            let _ = w.write_all(&input);
        });
    }
    let out = reader_thread(child.stdout.take().expect("stdout"));
    let err = reader_thread(child.stderr.take().expect("stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let status = child.wait().expect("wait");
            let output = Output {
                status,
                stdout: out.join().unwrap_or_default(),
                stderr: err.join().unwrap_or_default(),
            };
            panic!(
                "{desc} did not finish within {timeout:?}\n{}",
                output_text(&output)
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Reads `r` to its end on a thread.
pub fn reader_thread(mut r: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// A readable dump of a finished command, for assertion messages.
pub fn output_text(o: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Waits up to `timeout` for a child to exit (reaping it).
pub fn wait_child(child: &mut std::process::Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// True while `pid` exists and is neither a zombie nor dead (`kill -0` succeeds on zombies).
pub fn process_alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the last ')' (the command name may itself contain parentheses).
    match stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next())
    {
        Some('Z') | Some('X') | Some('x') | None => false,
        Some(_) => true,
    }
}

/// Sends a signal by name (`TERM`, `INT`, `KILL`…) with /usr/bin/kill.
pub fn send_signal(pid: u32, signal: &str) {
    let out = Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .output()
        .expect("run kill");
    assert!(
        out.status.success(),
        "kill -s {signal} {pid}: {}",
        output_text(&out)
    );
}

/// Starts a detached shell that waits for this test process to die (or `child` to exit on its
/// own), then sends `signal` to `child` (SIGKILL after 10 s more) and, once the test process is
/// gone, removes `cleanup_dir` (a child that exits while the test lives leaves it in place: it
/// may be started again there, and its logs stay readable).
/// It has its own process group, so a Ctrl-C aimed at the test run does not kill it first.
pub fn start_watchdog(child: u32, signal: &str, cleanup_dir: Option<&Path>) {
    const SCRIPT: &str = r#"
alive() {
    s=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    case "$s" in Z*|X*|x*|"") return 1 ;; *) return 0 ;; esac
}
while alive "$1" && alive "$2"; do sleep 0.5; done
if alive "$2"; then
    kill -s "$3" "$2" 2>/dev/null
    i=0
    while alive "$2" && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    alive "$2" && kill -s KILL "$2" 2>/dev/null
fi
if [ -n "$4" ] && ! alive "$1" && [ -z "$JITGATE_KEEP_TEST_DIRS" ]; then rm -rf "$4"; fi
"#;
    let dir = cleanup_dir
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("jitgate-test-watchdog")
        .arg(std::process::id().to_string())
        .arg(child.to_string())
        .arg(signal)
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start watchdog shell");
    // Reap it if it ends while we live (its child ended on its own).
    thread::spawn(move || {
        let _ = watchdog.wait();
    });
}

/// True when the tests run as root (CI does).
pub fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        == Some("0")
}

/// uid and gid of an OS user, from /etc/passwd.
pub fn os_user(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == name {
            Some((f[2].parse().ok()?, f[3].parse().ok()?))
        } else {
            None
        }
    })
}

/// Panics with an install hint when a required executable is missing. Tests never skip.
pub fn require_tool(path: &str) {
    let found = if path.contains('/') {
        Path::new(path).exists()
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(path).exists()))
            .unwrap_or(false)
    };
    assert!(
        found,
        "required tool `{path}` is missing: run tests/run.sh (it installs postgresql-15, \
         postgresql-client-15, pgbouncer, openssh-server, openssh-client and tmux) or install it by hand"
    );
}

/// The last `lines` lines of a text file (empty when unreadable).
pub fn file_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Writes `contents` to `path` with the given unix mode.
pub fn write_file(path: &Path, contents: impl AsRef<[u8]>, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// A small deterministic PRNG (xorshift64*) for garbage input.
pub fn pseudo_random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}
