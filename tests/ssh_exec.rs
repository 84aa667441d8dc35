//! SSH exec through jitgate with the real OpenSSH client and a real target sshd: allowed
//! commands, exit codes, stdout/stderr, stdin and EOF, bulk data, held commands approved,
//! denied and timed out.

#[path = "support/api.rs"]
mod api;
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use api::{Api, held_id};
use support::proc::{output_text, run_timeout};
use support::sshd::{BOB_TOKEN, SshEnv, TARGET_USER};

const T: Duration = Duration::from_secs(120);

fn run(env: &SshEnv, cmd: &str, stdin: Option<&[u8]>) -> Output {
    run_timeout(env.ssh().arg(cmd), stdin, T)
}

#[test]
fn allowed_commands_run_with_their_output_and_exit_codes() {
    let env = SshEnv::new();
    let out = run(&env, "uptime", None);
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        env.logs()
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("load average"),
        "{}",
        output_text(&out)
    );

    let out = run(&env, "exit 3", None);
    assert_eq!(out.status.code(), Some(3), "{}", output_text(&out));

    let out = run(&env, "ls /nonexistent-jitgate", None);
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(out.stdout.is_empty(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No such file"),
        "stderr must come through as stderr: {}",
        output_text(&out)
    );

    let out = run(&env, "whoami", None);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), TARGET_USER);

    // stdin, EOF and the output after it.
    let out = run(&env, "cat", Some(b"hi\n"));
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(out.stdout, b"hi\n");

    // No stdin at all: EOF at once.
    let out = run_timeout(env.ssh().arg("-n").arg("cat"), None, T);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        output_text(&out)
    );
}

#[test]
fn bulk_stdin_arrives_intact() {
    let env = SshEnv::new();
    let dir = support::TempDir::new("bulk");
    let file = dir.join("sent");
    let mut ssh = env.ssh();
    ssh.arg("sha256sum");
    // head | tee FILE | ssh … sha256sum, then sha256sum FILE locally.
    let mut args: Vec<String> = ssh
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    args.insert(0, "ssh".into());
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = format!(
        "head -c 100M /dev/urandom | tee {} | {}",
        file.display(),
        quoted.join(" ")
    );
    let started = std::time::Instant::now();
    let out = run_timeout(
        std::process::Command::new("sh").arg("-c").arg(&script),
        None,
        T,
    );
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        env.logs()
    );
    let remote = String::from_utf8_lossy(&out.stdout);
    let local = run_timeout(std::process::Command::new("sha256sum").arg(&file), None, T);
    let local = String::from_utf8_lossy(&local.stdout);
    let hash = |s: &str| s.split_whitespace().next().unwrap_or("").to_string();
    assert_eq!(hash(&remote), hash(&local), "hash through jitgate differs");
    assert_eq!(hash(&local).len(), 64);
    eprintln!("100 MiB through jitgate to sha256sum in {took:?}");
}

#[test]
fn bulk_both_ways_through_cat() {
    // Input and output at once: both windows matter.
    let env = SshEnv::new();
    let data = support::proc::pseudo_random_bytes(42, 24 << 20);
    let out = run(&env, "cat", Some(&data));
    assert!(out.status.success(), "{}", env.logs());
    assert_eq!(out.stdout.len(), data.len());
    assert!(out.stdout == data, "cat output differs from its input");
}

/// An ssh child whose stderr is read line by line while it runs.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(mut cmd: std::process::Command) -> Running {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssh");
        let err = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn wait_line(&mut self, needle: &str) -> String {
        loop {
            match self.lines.recv_timeout(T) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(e) => panic!("no stderr line with {needle:?} ({e}): {:?}", self.seen),
            }
        }
    }

    fn finish(mut self) -> (Option<i32>, String, String) {
        let status = support::proc::wait_child(&mut self.child, T).expect("ssh did not exit");
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut o, &mut out);
        }
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(l);
        }
        (status.code(), out, self.seen.join("\n"))
    }
}

fn held(env: &SshEnv, cmd: &str) -> (Running, String) {
    let mut c = env.ssh();
    c.arg(cmd);
    let mut r = Running::spawn(c);
    let line = r.wait_line("held for approval");
    let id = held_id(&line).unwrap_or_else(|| panic!("no request id in {line:?}"));
    assert_eq!(line, format!("jitgate: held for approval, request {id}"));
    (r, id)
}

#[test]
fn held_command_runs_after_approval_and_returns_its_exit_code() {
    let env = SshEnv::new();
    let bob = Api::new(env.jg.api_addr(), BOB_TOKEN);
    let path = format!("/tmp/jitgate-held-{}", std::process::id());
    std::fs::write(&path, "x").unwrap();
    let (uid, gid) = support::proc::os_user(TARGET_USER).expect("target user");
    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).unwrap();

    let (r, id) = held(&env, &format!("rm {path}"));
    let req = bob.request(&id);
    assert_eq!(req["state"], "pending");
    assert_eq!(req["protocol"], "ssh");
    assert_eq!(req["class"], "write");
    assert_eq!(req["statement"], format!("rm {path}"));
    assert!(
        std::path::Path::new(&path).exists(),
        "nothing may run before approval"
    );
    bob.approve_ok(&id, "ok", None);
    let (code, _, stderr) = r.finish();
    assert_eq!(code, Some(0), "{stderr}\n{}", env.logs());
    assert!(!std::path::Path::new(&path).exists(), "the approved rm ran");

    // Its exit code comes back too when it fails.
    let (r, id) = held(&env, &format!("rm {path}"));
    bob.approve_ok(&id, "ok", None);
    let (code, _, stderr) = r.finish();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
}

#[test]
fn denied_and_timed_out_commands_exit_126_with_a_message() {
    let env = SshEnv::builder().hold_timeout("2s").start();
    let bob = Api::new(env.jg.api_addr(), BOB_TOKEN);
    let (r, id) = held(&env, "touch /tmp/jitgate-denied");
    bob.deny_ok(&id, "not today");
    let (code, out, stderr) = r.finish();
    assert_eq!(code, Some(126), "{stderr}");
    assert!(out.is_empty());
    assert!(
        stderr.contains("denied") && stderr.contains("not today"),
        "{stderr}"
    );
    assert!(!std::path::Path::new("/tmp/jitgate-denied").exists());

    let (r, _) = held(&env, "touch /tmp/jitgate-timeout");
    let (code, _, stderr) = r.finish();
    assert_eq!(code, Some(126), "{stderr}");
    assert!(stderr.contains("timed out"), "{stderr}");

    // A deny rule refuses at once, without a request.
    let env = SshEnv::builder()
        .rule_first("name = \"no reboots\"\ncommands = [\"reboot\"]\naction = \"deny\"")
        .start();
    let out = run(&env, "reboot", None);
    assert_eq!(out.status.code(), Some(126), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no reboots"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn closing_the_client_withdraws_the_request() {
    let env = SshEnv::new();
    let bob = Api::new(env.jg.api_addr(), BOB_TOKEN);
    let (mut r, id) = held(&env, "touch /tmp/jitgate-withdrawn");
    let _ = r.child.kill();
    let _ = r.child.wait();
    bob.wait_state(&id, "cancelled");
}

#[test]
fn exit_signals_pass_through() {
    let env = SshEnv::builder()
        .rule_first("name = \"all\"\naction = \"allow\"")
        .start();
    let direct = run_timeout(env.ssh_direct().arg("kill -KILL $$"), None, T);
    let proxied = run(&env, "kill -KILL $$", None);
    assert_eq!(
        proxied.status.code(),
        direct.status.code(),
        "direct: {}\nproxied: {}",
        output_text(&direct),
        output_text(&proxied)
    );
}
