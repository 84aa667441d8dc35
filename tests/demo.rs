//! The README's quick start, walked the way a newcomer would: a clean checkout (`git clone` of
//! this repository's HEAD), `bash proxy-config/demo.sh`, then the commands it prints: alice's
//! psql DELETE is held, bob approves it with the CLI, and `jitgate replay` shows it.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{TempDir, free_port, output_text, run_timeout, send_signal};

const BUILD: Duration = Duration::from_secs(1200);
const STEP: Duration = Duration::from_secs(60);

/// The demo script running, its stdout read line by line.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Demo {
    fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(e) => panic!(
                    "the demo printed no line with {needle:?} ({e}); it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        send_signal(self.child.id(), "INT");
        let _ = support::proc::wait_child(&mut self.child, Duration::from_secs(30));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A clean checkout of HEAD, as a newcomer's `git clone` would give.
fn clean_checkout(dir: &Path) -> PathBuf {
    let clone = dir.join("jitgate");
    let o = run_timeout(
        Command::new("git")
            .args(["clone", "--quiet", "--no-hardlinks"])
            .arg(repo_root())
            .arg(&clone),
        None,
        STEP,
    );
    assert!(o.status.success(), "git clone: {}", output_text(&o));
    clone
}

#[test]
fn the_quick_start_holds_a_delete_approves_it_and_replays_it() {
    let dir = TempDir::new("demo");
    let clone = clean_checkout(dir.path());
    let (pg, jg_pg, api) = (free_port(), free_port(), free_port());
    let (sshd, jg_ssh) = (free_port(), free_port());
    // Builds go to a directory kept between runs, so only the first one is slow.
    let target_dir = repo_root().join("target").join("demo-checkout");
    let mut child = Command::new("bash")
        .arg(clone.join("proxy-config/demo.sh"))
        .env("PG_PORT", pg.to_string())
        .env("JITGATE_PG", jg_pg.to_string())
        .env("JITGATE_API", api.to_string())
        .env("SSHD_PORT", sshd.to_string())
        .env("JITGATE_SSH", jg_ssh.to_string())
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("bash proxy-config/demo.sh");
    let (tx, lines) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut demo = Demo {
        child,
        lines,
        seen: Vec::new(),
    };
    demo.wait_line("jitgate is up", BUILD);
    // The commands exactly as the demo printed them.
    let psql_line = demo.wait_line("PGPASSWORD=alice psql", STEP);
    let conninfo = psql_line
        .split('"')
        .nth(1)
        .unwrap_or_else(|| panic!("no conninfo in {psql_line:?}"))
        .to_string();
    let ssh_line = demo.wait_line("SSH=\"ssh ", STEP);
    let ssh: Vec<String> = ssh_line
        .split('"')
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let export = demo.wait_line("export JITGATE_URL=", STEP);
    let mut env = Vec::new();
    for kv in export
        .trim()
        .trim_start_matches("export ")
        .split_whitespace()
    {
        let (k, v) = kv.split_once('=').unwrap();
        env.push((k.to_string(), v.to_string()));
    }
    let requests = demo.wait_line("requests --state pending", STEP);
    let jg_bin = PathBuf::from(requests.split_whitespace().next().unwrap());
    assert!(jg_bin.exists(), "the demo's jitgate {jg_bin:?} is missing");
    let jitgate = |args: &[&str]| {
        let mut c = Command::new(&jg_bin);
        c.args(args);
        for (k, v) in &env {
            c.env(k, v);
        }
        run_timeout(&mut c, None, STEP)
    };

    // Over SSH, a read runs at once on the target.
    let up = run_timeout(
        Command::new(&ssh[0]).args(&ssh[1..]).args([
            "-o",
            "BatchMode=yes",
            "web-1@127.0.0.1",
            "uptime",
        ]),
        None,
        STEP,
    );
    assert!(
        up.status.success() && String::from_utf8_lossy(&up.stdout).contains("load average"),
        "{}",
        output_text(&up)
    );

    // Terminal 1: alice reads, then her DELETE is held.
    let read = run_timeout(
        Command::new("psql")
            .args([
                "-X",
                "-At",
                "-c",
                "select count(*) from accounts",
                &conninfo,
            ])
            .env("PGPASSWORD", "alice"),
        None,
        STEP,
    );
    assert_eq!(
        String::from_utf8_lossy(&read.stdout).trim(),
        "100",
        "{}",
        output_text(&read)
    );
    let mut delete = Command::new("psql")
        .args(["-X", "-c", "delete from accounts where id = 1", &conninfo])
        .env("PGPASSWORD", "alice")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("psql");

    // Terminal 2: bob finds it and approves it with the CLI.
    let deadline = Instant::now() + STEP;
    let id = loop {
        let o = jitgate(&["requests", "--state", "pending", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        if let Some(id) = v[0]["id"].as_str() {
            assert!(
                v[0]["statement"]
                    .as_str()
                    .unwrap()
                    .contains("delete from accounts")
            );
            break id.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no pending request: {}",
            output_text(&o)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let ok = jitgate(&["approve", &id, "--reason", "ticket 42"]);
    assert!(ok.status.success(), "{}", output_text(&ok));
    let done = support::proc::wait_child(&mut delete, STEP).expect("psql finished");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut delete.stdout.take().unwrap(), &mut out).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut delete.stderr.take().unwrap(), &mut err).unwrap();
    assert!(done.success() && out.contains("DELETE 1"), "{out}\n{err}");
    assert!(
        err.contains(&format!("held for approval, request {id}")),
        "{err}"
    );

    // Afterwards: the session and its replay. The session's end is recorded with the next
    // group commit after psql leaves, so the list is read again until it is there.
    let deadline = Instant::now() + STEP;
    loop {
        let sessions = jitgate(&["sessions", "--json"]);
        let list: serde_json::Value =
            serde_json::from_slice(&sessions.stdout).expect("sessions JSON");
        let newest_ended = list.as_array().and_then(|l| {
            l.iter()
                .rev()
                .find(|s| s["user"] == "alice" && s["ended_at"].is_number())
                .and_then(|s| s["id"].as_str().map(str::to_string))
        });
        let text = match &newest_ended {
            Some(id) => {
                let r = jitgate(&["replay", id]);
                String::from_utf8_lossy(&r.stdout).into_owned()
            }
            None => String::new(),
        };
        if text.contains("-> DELETE 1") {
            assert!(
                text.contains(&format!("request {id} approved by bob: \"ticket 42\"")),
                "{text}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ended session of alice replays the DELETE 1; sessions: {list}\nlast replay: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let v = jitgate(&["audit", "verify"]);
    assert!(
        String::from_utf8_lossy(&v.stdout).starts_with("ok "),
        "{}",
        output_text(&v)
    );

    // Ctrl-C stops everything and removes the demo's files.
    const PREFIX: &str = "/tmp/jitgate-demo.";
    let tmp = demo.seen.iter().find_map(|l| {
        let at = l.find(PREFIX)?;
        Some(l[at..].chars().take(PREFIX.len() + 6).collect::<String>())
    });
    send_signal(demo.child.id(), "INT");
    assert!(
        support::proc::wait_child(&mut demo.child, Duration::from_secs(30)).is_some(),
        "the demo did not stop on Ctrl-C"
    );
    if let Some(tmp) = tmp {
        assert!(!Path::new(&tmp).exists(), "{tmp} is still there");
    }
}
