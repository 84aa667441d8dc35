//! Interactive SSH through jitgate: `ssh -tt` shells (allowed and held), terminal size and
//! window changes (driven with tmux), environment allow-list, and the session's recording
//! and audit events read back from the store after jitgate stops.

#[path = "support/api.rs"]
mod api;
mod support;

use std::process::Command;
use std::time::Duration;

use api::{Api, held_id};
use serde_json::Value;
use support::proc::{output_text, run_timeout, wait_until};
use support::ssh_master::Master;
use support::sshd::{BOB_TOKEN, SshEnv, ssh_client_opts};

const T: Duration = Duration::from_secs(120);
const SHELLS_OK: &str = "name = \"shells ok\"\nclasses = [\"shell\"]\naction = \"allow\"";

#[test]
fn shell_runs_and_its_recording_replays_the_same_output() {
    let mut env = SshEnv::builder().rule_first(SHELLS_OK).start();
    let out = run_timeout(
        env.ssh().arg("-tt"),
        Some(b"echo jg-$((40 + 2))\nexit 7\n"),
        T,
    );
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}\n{}",
        output_text(&out),
        env.logs()
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("jg-42"), "{}", output_text(&out));

    // While jitgate runs, the recording comes through the API (`jitgate replay --format cast`).
    let cli = |args: &[&str]| {
        run_timeout(
            support::jitgate_cmd()
                .args(args)
                .env("JITGATE_URL", env.jg.api_url())
                .env("JITGATE_TOKEN", BOB_TOKEN),
            None,
            T,
        )
    };
    let id: String = wait_until("the ssh session to end in the audit trail", T, || {
        let o = cli(&["sessions", "--json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v.as_array()?
            .iter()
            .find(|s| s["protocol"] == "ssh" && s["ended_at"].is_number())
            .and_then(|s| s["id"].as_str().map(str::to_string))
    });
    let api_cast = cli(&["replay", &id, "--format", "cast"]);
    assert!(api_cast.status.success(), "{}", output_text(&api_cast));
    let api_cast = String::from_utf8(api_cast.stdout).unwrap();

    let audit = env.stopped_store();
    let sessions = audit.sessions(&Default::default());
    let s = sessions
        .iter()
        .find(|s| s.protocol == "ssh")
        .unwrap_or_else(|| panic!("no ssh session in {sessions:?}"));
    assert_eq!((s.user.as_str(), s.target.as_str()), ("alice", "web-1"));
    assert!(
        s.application.as_deref().unwrap_or("").contains("OpenSSH"),
        "{s:?}"
    );
    assert!(
        s.ended_at.is_some() && s.bytes_out >= stdout.len() as u64,
        "{s:?}"
    );
    assert!(s.bytes_in > 0, "{s:?}");

    let events = audit.events(&s.id);
    let kinds: Vec<&str> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds.first(), Some(&"session_start"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"session_end"), "{kinds:?}");
    let cmd = events
        .iter()
        .find(|e| e.kind() == "command")
        .expect("command event");
    assert_eq!(cmd.str("command"), Some("<interactive shell>"));
    assert_eq!(cmd.str("class"), Some("shell"));
    assert_eq!(cmd.str("decision"), Some("allow"));
    let exit = events
        .iter()
        .find(|e| e.kind() == "exit_status")
        .expect("exit event");
    assert_eq!(exit.u64("status"), Some(7));

    // The asciicast: a header, then frames whose output is exactly what the client printed.
    let cast = audit.recording(&s.id).expect("a recording");
    assert_eq!(s.id, id);
    assert_eq!(cast, api_cast, "the API serves the stored recording");
    let mut lines = cast.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    let mut replayed = String::new();
    let mut last_t = 0.0;
    let mut input = String::new();
    for l in lines {
        let f: Value = serde_json::from_str(l).unwrap();
        let t = f[0].as_f64().unwrap();
        assert!(t >= last_t, "frames in time order");
        last_t = t;
        match f[1].as_str().unwrap() {
            "o" => replayed.push_str(f[2].as_str().unwrap()),
            "i" => input.push_str(f[2].as_str().unwrap()),
            _ => {}
        }
    }
    assert_eq!(
        replayed, stdout,
        "the replay differs from what the client saw"
    );
    assert!(input.contains("echo jg-$((40 + 2))"), "{input:?}");
}

#[test]
fn held_shell_starts_after_approval() {
    let env = SshEnv::new();
    let bob = Api::new(env.jg.api_addr(), BOB_TOKEN);
    let mut child = env
        .ssh()
        .arg("-tt")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pending = api::wait_for_pending(&bob, "alice");
    assert_eq!(pending["class"], "shell");
    assert_eq!(pending["statement"], "<interactive shell>");
    let id = pending["id"].as_str().unwrap().to_string();
    bob.approve_ok(&id, "ok", None);
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"echo approved-$((6 * 7))\nexit\n")
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(held_id(&stderr).as_deref(), Some(id.as_str()), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("approved-42"),
        "{}",
        output_text(&out)
    );
}

#[test]
fn environment_is_filtered_to_the_allow_list() {
    let env = SshEnv::new();
    let out = run_timeout(
        env.ssh()
            .env("LANG", "C.UTF-8")
            .env("JG_SECRET", "leak")
            .args(["-o", "SendEnv=LANG JG_SECRET"])
            .arg("echo \"$LANG/$JG_SECRET\""),
        None,
        T,
    );
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "C.UTF-8/");
    // The target would have taken it: directly it arrives.
    let direct = run_timeout(
        env.ssh_direct()
            .env("JG_SECRET", "leak")
            .args(["-o", "SendEnv=JG_SECRET"])
            .arg("echo \"$JG_SECRET\""),
        None,
        T,
    );
    assert_eq!(String::from_utf8_lossy(&direct.stdout).trim(), "leak");
}

fn tmux(socket: &str, args: &[&str]) -> String {
    let out = run_timeout(
        Command::new("tmux").arg("-L").arg(socket).args(args),
        None,
        T,
    );
    assert!(out.status.success(), "tmux {args:?}: {}", output_text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn terminal_size_and_window_changes_reach_the_target() {
    support::proc::require_tool("tmux");
    let env = SshEnv::builder().rule_first(SHELLS_OK).start();
    let socket = format!("jg{}", std::process::id());
    let mut cmd = vec![
        "ssh".to_string(),
        "-p".into(),
        env.jg.ssh_port().to_string(),
    ];
    cmd.extend(ssh_client_opts(&env.keys.alice));
    cmd.push("-tt".into());
    cmd.push("web-1@127.0.0.1".into());
    let line = cmd
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            "100",
            "-y",
            "30",
            &line,
        ],
    );
    let pane = |socket: &str| tmux(socket, &["capture-pane", "-p", "-t", "t"]);
    let send = |socket: &str, keys: &str| {
        tmux(socket, &["send-keys", "-t", "t", keys, "Enter"]);
    };
    wait_until("a prompt", T, || {
        let p = pane(&socket);
        p.contains('$').then_some(())
    });
    send(&socket, "stty size");
    wait_until("the first size", T, || {
        pane(&socket).contains("30 100").then_some(())
    });
    tmux(
        &socket,
        &["resize-window", "-t", "t", "-x", "120", "-y", "40"],
    );
    std::thread::sleep(Duration::from_millis(300));
    send(&socket, "clear; stty size");
    let seen = std::cell::RefCell::new(String::new());
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until("the new size", Duration::from_secs(30), || {
            let p = pane(&socket);
            *seen.borrow_mut() = p.clone();
            p.contains("40 120").then_some(())
        })
    }));
    send(&socket, "exit");
    let _ = Command::new("tmux")
        .args(["-L", &socket, "kill-server"])
        .stderr(std::process::Stdio::null())
        .status();
    assert!(ok.is_ok(), "pane:\n{}\n{}", seen.borrow(), env.logs());
}

/// A multiplexed client whose stdin has ended closes its channel as soon as the target's EOF
/// reaches it; the exit status still arrives first.
#[test]
fn a_multiplexed_shell_with_ended_stdin_gets_its_exit_status() {
    let env = SshEnv::builder().rule_first(SHELLS_OK).start();
    let master = Master::start(&env);
    for round in 0..12 {
        let out = run_timeout(
            master.client().arg("-tt"),
            Some(format!("echo round-{round}\nexit 3\n").as_bytes()),
            T,
        );
        assert_eq!(
            out.status.code(),
            Some(3),
            "round {round}: {}\n{}",
            output_text(&out),
            env.logs()
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("round-{round}")));
    }
}
