//! The sandbox of the bash oracle, shared by `tests/ssh_bash_oracle.rs` and the fuzz
//! target `fuzz/fuzz_targets/classify_shell_oracle.rs`: runs a command under the real bash
//! as `nobody` in a read-only mount and PID namespace traced by `strace -f`, and lists what
//! the trace shows a read must not do (see the test's module docs for the rules).

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jitgate::policy::shell::classify_shell;

/// How long one command may run before the sandbox is torn down.
const RUN_FOR: Duration = Duration::from_secs(4);

const TRACED: &str = "open,openat,openat2,creat,unlink,unlinkat,rename,renameat,renameat2,\
mkdir,mkdirat,rmdir,chmod,fchmod,fchmodat,chown,fchown,lchown,fchownat,truncate,ftruncate,\
link,linkat,symlink,symlinkat,mknod,mknodat,utime,utimes,utimensat,futimesat,execve,execveat,\
kill,tkill,tgkill,mount,umount2";

/// Programs a listed program runs by itself (shell-script front ends).
const HELPERS: &[(&str, &str)] = &[("zcat", "gzip")];

/// Sets up the read-only namespace (run as root inside `unshare`), then runs the command
/// as nobody under strace. `$1` trace directory, `$2` working directory, `$3` command.
const SANDBOX: &str = r#"
set -u
mount --bind "$1" "$1" || exit 90
findmnt -rn -o TARGET | sort -u | while read -r m; do
    [ "$m" = "$1" ] && continue
    mount -o remount,bind,ro "$m" 2>/dev/null || true
done
cd "$2" || exit 91
exec timeout -s TERM "$4" strace -f -qq -s 256 -o "$1/trace" -e trace="$5" \
    setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent LANG=C.UTF-8 PAGER=cat \
    SYSTEMD_PAGER=cat /bin/bash -c "$3" </dev/null >/dev/null 2>&1
"#;

pub struct Sandbox {
    pub root: PathBuf,
    work: PathBuf,
}

impl Sandbox {
    pub fn new(name: &str) -> Sandbox {
        let root =
            std::env::temp_dir().join(format!("jitgate-oracle-{}-{name}", std::process::id()));
        let work = root.join("work");
        std::fs::create_dir_all(&work).expect("create the oracle's directories");
        for (name, body) in [
            ("file", "b 2\na 1\nc 3\n"),
            ("a", "a\n"),
            ("b", "b\n"),
            ("list", "a\nb\n"),
            ("file.json", "{\"name\":\"x\"}\n"),
            ("log", "line\n"),
        ] {
            std::fs::write(work.join(name), body).expect("write a fixture");
        }
        run_ok("chmod", &["-R", "a+rX", path_str(&work)]);
        Sandbox { root, work }
    }

    /// Runs `command` in the sandbox; returns the strace lines.
    pub fn run(&self, index: usize, command: &str) -> String {
        let trace_dir = self.root.join(format!("t{index}"));
        std::fs::create_dir_all(&trace_dir).expect("create a trace directory");
        let seconds = RUN_FOR.as_secs().to_string();
        let mut child = Command::new("unshare")
            .args(["--mount", "--pid", "--fork", "--kill-child=SIGKILL", "--"])
            .args(["bash", "-c", SANDBOX, "sandbox"])
            .args([path_str(&trace_dir), path_str(&self.work), command])
            .args([seconds.as_str(), TRACED])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start unshare");
        let deadline = Instant::now() + RUN_FOR + Duration::from_secs(6);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the sandbox") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut stderr);
        }
        if let Some(code) = status.and_then(|s| s.code())
            && (code == 90 || code == 91)
        {
            panic!("the sandbox could not be set up for {command:?} ({code}): {stderr}");
        }
        let trace = std::fs::read_to_string(trace_dir.join("trace"))
            .unwrap_or_else(|e| panic!("no strace output for {command:?} ({e}); stderr: {stderr}"));
        let _ = std::fs::remove_dir_all(&trace_dir);
        trace
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn run_ok(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?}: {status}");
}

/// What a trace shows that a read must not do, one line each.
pub fn violations(trace: &str, allowed: &BTreeSet<String>) -> Vec<String> {
    let mut found = Vec::new();
    let mut pids = BTreeSet::new();
    for line in trace.lines() {
        if let Some(pid) = line.split_whitespace().next() {
            pids.insert(pid.to_string());
        }
    }
    for line in trace.lines() {
        let Some((_, call)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let call = call.trim_start();
        let name = call.split('(').next().unwrap_or_default();
        let bad = match name {
            "open" | "openat" | "openat2" | "creat" => open_writes(call),
            "execve" | "execveat" => !exec_allowed(call, allowed),
            "kill" | "tkill" | "tgkill" => signals_another(call, &pids),
            "unlink" | "unlinkat" | "rename" | "renameat" | "renameat2" | "mkdir" | "mkdirat"
            | "rmdir" | "chmod" | "fchmod" | "fchmodat" | "chown" | "fchown" | "lchown"
            | "fchownat" | "truncate" | "ftruncate" | "link" | "linkat" | "symlink"
            | "symlinkat" | "mknod" | "mknodat" | "utime" | "utimes" | "utimensat"
            | "futimesat" | "mount" | "umount2" => true,
            _ => false,
        };
        if bad {
            found.push(line.to_string());
        }
    }
    found
}

fn first_string(call: &str) -> &str {
    call.split('"').nth(1).unwrap_or_default()
}

fn open_writes(call: &str) -> bool {
    let writes = ["O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC"]
        .iter()
        .any(|f| call.contains(f))
        || call.starts_with("creat(");
    let path = first_string(call);
    let harmless = matches!(
        path,
        "/dev/null" | "/dev/tty" | "/dev/stdout" | "/dev/stderr" | "/dev/fd/1" | "/dev/fd/2"
    ) || path.starts_with("/dev/pts/");
    writes && !harmless
}

fn exec_allowed(call: &str, allowed: &BTreeSet<String>) -> bool {
    let path = first_string(call);
    let base = path.rsplit('/').next().unwrap_or(path);
    // The sandbox's own chain: setpriv, env, then bash.
    matches!(base, "setpriv" | "env" | "bash") || allowed.contains(base)
}

/// A signal (other than 0, the probe) to a process or group outside the traced tree.
fn signals_another(call: &str, pids: &BTreeSet<String>) -> bool {
    // strace splits a call that another traced process interrupts:
    // `kill(28, SIGCONT <unfinished ...>`; the arguments are complete either way.
    let args = call
        .split_once('(')
        .map(|(_, a)| a)
        .and_then(|a| a.split_once(')').or_else(|| a.split_once(" <unfinished")))
        .map(|(a, _)| a)
        .unwrap_or_default();
    let parts: Vec<&str> = args.split(',').map(str::trim).collect();
    let (target, signal) = match parts.as_slice() {
        [pid, sig] => (*pid, *sig),
        [_, tid, sig] => (*tid, *sig),
        _ => return true,
    };
    // 0 is the sender's own process group (timeout ending its command); a negative pid
    // is a group led by a traced process.
    let own = target == "0" || pids.contains(target.trim_start_matches('-'));
    signal != "0" && !own
}

pub fn allowed_programs(command: &str) -> BTreeSet<String> {
    let mut allowed: BTreeSet<String> = classify_shell(command).commands.into_iter().collect();
    for (program, helper) in HELPERS {
        if allowed.contains(*program) {
            allowed.insert((*helper).to_string());
        }
    }
    allowed
}

pub fn require_root() {
    let out = Command::new("id").arg("-u").output().expect("run id");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0",
        "the bash oracle needs root for its namespaces (CI runs tests/run.sh as root)"
    );
}
