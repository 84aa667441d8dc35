//! SSH recordings through jitgate against a real sshd: every channel of a connection is
//! recorded apart with its input and output (several channels share one connection through
//! an OpenSSH ControlMaster), a line typed at a password prompt is not recorded, reaching the
//! session's recording limit ends the session with a message and nothing typed after it runs
//! on the target, and `jitgate replay` / the API show each channel's input, output or both.

#[path = "support/api.rs"]
mod api;
mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::Api;
use serde_json::Value;
use support::proc::{output_text, run_timeout, wait_child, wait_until};
use support::ssh_master::Master;
use support::sshd::{BOB_TOKEN, SshEnv};

const T: Duration = Duration::from_secs(120);
const ALL_OK: &str = "name = \"all ok\"\nclasses = [\"read\", \"write\", \"admin\", \"unknown\", \"shell\"]\naction = \"allow\"";
const LIMIT: usize = 65_536;

/// A running ssh client whose stdin the test types into and whose output it watches.
struct Typing {
    child: Child,
    stdin: Option<ChildStdin>,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Typing {
    fn spawn(mut cmd: Command) -> Typing {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssh");
        let seen: Arc<Mutex<Vec<u8>>> = Arc::default();
        for mut r in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = r.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.lock()
                        .expect("output lock")
                        .extend_from_slice(&buf[..n]);
                }
            });
        }
        Typing {
            stdin: child.stdin.take(),
            child,
            seen,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().expect("output lock")).into_owned()
    }

    fn wait_for(&self, needle: &str) {
        wait_until(&format!("{needle:?} on the terminal"), T, || {
            self.text().contains(needle).then_some(())
        });
    }

    /// Type `text`; false when the client no longer reads.
    fn type_in(&mut self, text: &str) -> bool {
        match &mut self.stdin {
            Some(w) => w
                .write_all(text.as_bytes())
                .and_then(|()| w.flush())
                .is_ok(),
            None => false,
        }
    }

    /// Wait for the client to exit with its stdin still open, then close it.
    fn finish_open(mut self) -> (Option<i32>, String) {
        let status = wait_child(&mut self.child, T).expect("ssh did not exit");
        std::thread::sleep(Duration::from_millis(200));
        (status.code(), self.text())
    }

    fn finish(mut self) -> (Option<i32>, String) {
        self.stdin = None;
        let status = wait_child(&mut self.child, T).expect("ssh did not exit");
        std::thread::sleep(Duration::from_millis(200));
        (status.code(), self.text())
    }
}

fn cli(env: &SshEnv, args: &[&str]) -> std::process::Output {
    run_timeout(
        support::jitgate_cmd()
            .args(args)
            .env("JITGATE_URL", env.jg.api_url())
            .env("JITGATE_TOKEN", BOB_TOKEN),
        None,
        T,
    )
}

/// The id of the one ssh session, once it ended.
fn ended_session(env: &SshEnv) -> Value {
    wait_until("the ssh session to end in the audit trail", T, || {
        let o = cli(env, &["sessions", "--json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v.as_array()?
            .iter()
            .find(|s| s["protocol"] == "ssh" && s["ended_at"].is_number())
            .cloned()
    })
}

/// A cast's frames of one code, concatenated.
fn cast_stream(cast: &str, code: &str) -> String {
    cast.lines()
        .skip(1)
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|f| f[1] == code)
        .map(|f| f[2].as_str().unwrap_or("").to_string())
        .collect()
}

fn channel_with(channels: &[Value], command: &str) -> u64 {
    channels
        .iter()
        .find(|c| c["command"] == command)
        .and_then(|c| c["channel"].as_u64())
        .unwrap_or_else(|| panic!("no channel {command:?} in {channels:?}"))
}

fn unique_path(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("/tmp/jg-rec-{}-{nanos}-{tag}", std::process::id())
}

#[test]
fn two_channels_of_one_connection_are_recorded_apart_with_their_input() {
    let mut env = SshEnv::builder().rule_first(ALL_OK).start();
    let master = Master::start(&env);

    let out = run_timeout(master.client().arg("cat"), Some(b"alpha-input-1\n"), T);
    assert_eq!(out.stdout, b"alpha-input-1\n", "{}", output_text(&out));
    // Typed while stdin stays open: a client whose stdin ended closes the channel as soon
    // as the target's EOF arrives, which may overtake the exit status on its way through.
    let mut shell = Typing::spawn({
        let mut c = master.client();
        c.arg("-tt");
        c
    });
    assert!(shell.type_in("echo beta-$((40 + 2))\n"));
    shell.wait_for("beta-42");
    assert!(shell.type_in("exit 3\n"));
    let (code, text) = shell.finish_open();
    assert_eq!(code, Some(3), "{text}\n{}", env.logs());
    drop(master);

    let session = ended_session(&env);
    let id = session["id"].as_str().expect("session id").to_string();
    let bob = Api::new(env.jg.api_addr(), BOB_TOKEN);
    let channels = bob.get_ok(&format!("/v1/sessions/{id}/recordings"));
    let channels = channels.as_array().expect("a list").clone();
    assert_eq!(channels.len(), 2, "{channels:?}");
    let cat = channel_with(&channels, "cat");
    let shell = channel_with(&channels, "<interactive shell>");
    assert_ne!(cat, shell);

    // The API serves each channel's own cast, and refuses to guess between them.
    let (status, _) = bob.get(&format!("/v1/sessions/{id}/recording"));
    assert_eq!(status, 409);
    let cat_cast = cli(
        &env,
        &[
            "replay",
            &id,
            "--channel",
            &cat.to_string(),
            "--format",
            "cast",
        ],
    );
    assert!(cat_cast.status.success(), "{}", output_text(&cat_cast));
    let cat_cast = String::from_utf8(cat_cast.stdout).expect("utf-8");
    let header: Value =
        serde_json::from_str(cat_cast.lines().next().expect("header")).expect("json");
    assert_eq!(header["command"], "cat");
    assert_eq!(cast_stream(&cat_cast, "i"), "alpha-input-1\n");
    assert_eq!(cast_stream(&cat_cast, "o"), "alpha-input-1\n");
    assert!(!cat_cast.contains("beta"), "{cat_cast}");

    let shell_s = shell.to_string();
    let shell_cast = cli(
        &env,
        &["replay", &id, "--channel", &shell_s, "--format", "cast"],
    );
    let shell_cast = String::from_utf8(shell_cast.stdout).expect("utf-8");
    assert!(
        cast_stream(&shell_cast, "i").contains("echo beta-$((40 + 2))\n"),
        "{shell_cast}"
    );
    assert!(
        cast_stream(&shell_cast, "o").contains("beta-42"),
        "{shell_cast}"
    );
    assert!(!shell_cast.contains("alpha"), "{shell_cast}");

    // `replay` lists the channels; `--stream` picks input, output or both (input marked).
    let listed = cli(&env, &["replay", &id]);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains(&format!("channel {cat}  cat")), "{listed}");
    assert!(
        listed.contains(&format!("channel {shell}  <interactive shell>")),
        "{listed}"
    );
    let play = |stream: &str| {
        let o = cli(
            &env,
            &[
                "replay",
                &id,
                "--channel",
                &shell_s,
                "--stream",
                stream,
                "--speed",
                "1000",
                "--idle-cap",
                "0",
            ],
        );
        assert!(o.status.success(), "{}", output_text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let typed = play("input");
    assert!(typed.contains("echo beta-$((40 + 2))\\n"), "{typed}");
    assert!(!typed.contains("beta-42"), "input only: {typed}");
    let printed = play("output");
    assert!(printed.contains("beta-42"), "{printed}");
    assert!(!printed.contains("⟦input"), "output only: {printed}");
    let both = play("both");
    assert!(both.contains("⟦input: echo beta-$((40 + 2))\\n⟧"), "{both}");
    assert!(both.contains("beta-42"), "{both}");

    // The same, read from the store after jitgate stopped.
    let audit = env.stopped_store();
    let stored = audit.recordings(&id);
    assert_eq!(stored.channels().len(), 2);
    assert_eq!(stored.cast(cat as u32).as_deref(), Some(cat_cast.as_str()));
}

#[test]
fn a_line_typed_at_a_password_prompt_is_not_recorded() {
    let mut env = SshEnv::builder().rule_first(ALL_OK).start();
    let mut shell = Typing::spawn({
        let mut c = env.ssh();
        c.arg("-tt");
        c
    });
    // The prompt is assembled by the shell, so the echoed command line does not contain it.
    assert!(shell.type_in("read -s -p \"$(printf 'Pass%s: ' word)\" pw; echo; echo got-${#pw}\n"));
    shell.wait_for("Password: ");
    assert!(shell.type_in("hunter2-secret\n"));
    shell.wait_for("got-14");
    assert!(shell.type_in("echo after-$((1 + 1))\nexit\n"));
    let (code, text) = shell.finish();
    assert_eq!(code, Some(0), "{text}");
    assert!(
        !text.contains("hunter2"),
        "the target echoed the secret: {text}"
    );

    let session = ended_session(&env);
    let id = session["id"].as_str().expect("session id").to_string();
    let audit = env.stopped_store();
    let cast = audit.recording(&id).expect("one channel's recording");
    let typed = cast_stream(&cast, "i");
    assert!(!cast.contains("hunter2"), "{cast}");
    assert!(typed.contains("[jitgate: hidden input]\n"), "{typed}");
    assert!(
        typed.contains("echo after-$((1 + 1))"),
        "what follows is recorded: {typed}"
    );
    assert!(cast_stream(&cast, "o").contains("got-14"), "{cast}");
}

#[test]
fn reaching_the_recording_limit_ends_the_session_and_nothing_typed_after_runs() {
    let mut env = SshEnv::builder()
        .rule_first(ALL_OK)
        .audit("recording_limit_bytes", &LIMIT.to_string())
        .start();
    let before = unique_path("before");
    let after = unique_path("after");
    let master = Master::start(&env);

    // An interactive shell on the connection, idle while another channel floods.
    let mut shell = Typing::spawn({
        let mut c = master.client();
        c.arg("-tt");
        c
    });
    assert!(shell.type_in("echo ready-$((1 + 1))\n"));
    shell.wait_for("ready-2");

    let flood = run_timeout(
        master
            .client()
            .arg(format!("touch {before}; head -c 300000 /dev/zero")),
        None,
        T,
    );
    let message = format!(
        "jitgate: this session reached its recording limit ({LIMIT} bytes); the session is ended"
    );
    let stderr = String::from_utf8_lossy(&flood.stderr).into_owned();
    assert_eq!(
        flood.status.code(),
        Some(255),
        "{}\n{}",
        output_text(&flood),
        env.logs()
    );
    assert!(stderr.contains(&message), "{stderr}");
    assert!(
        flood.stdout.len() < LIMIT,
        "only what was recorded reached the user"
    );
    assert!(
        Path::new(&before).exists(),
        "the flood's own command ran (control)"
    );

    // The shell's next command is never forwarded: the session is over.
    let _ = shell.type_in(&format!("touch {after}\n"));
    let (code, text) = shell.finish();
    assert_ne!(code, Some(0), "{text}");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !Path::new(&after).exists(),
        "a command typed after the limit ran on the target"
    );
    let _ = std::fs::remove_file(&before);
    drop(master);

    let session = ended_session(&env);
    assert_eq!(
        session["end_reason"],
        format!("recording limit reached ({LIMIT} bytes)"),
        "{session}"
    );
    let id = session["id"].as_str().expect("session id").to_string();
    let audit = env.stopped_store();
    let recordings = audit.recordings(&id);
    let channels: Vec<Value> = recordings
        .channels()
        .iter()
        .map(|c| serde_json::to_value(c).expect("json"))
        .collect();
    let recorded: u64 = channels
        .iter()
        .map(|c| c["input_bytes"].as_u64().unwrap_or(0) + c["output_bytes"].as_u64().unwrap_or(0))
        .sum();
    // Everything recorded fits the limit, plus the stop message itself.
    assert!(
        recorded <= (LIMIT + 2 * message.len()) as u64,
        "{channels:?}"
    );
    let flood_channel = channel_with(
        &channels,
        &format!("touch {before}; head -c 300000 /dev/zero"),
    );
    let flood_cast = recordings.cast(flood_channel as u32).expect("flood cast");
    assert!(
        cast_stream(&flood_cast, "o").ends_with(&format!("{message}\n")),
        "the stop is in the recording"
    );
    let shell_channel = channel_with(&channels, "<interactive shell>");
    let shell_cast = recordings.cast(shell_channel as u32).expect("shell cast");
    assert!(cast_stream(&shell_cast, "i").contains("echo ready-$((1 + 1))"));
    assert!(
        !cast_stream(&shell_cast, "i").contains("touch"),
        "{shell_cast}"
    );
}

#[test]
fn a_shell_that_prints_past_the_limit_is_ended_with_the_message() {
    let mut env = SshEnv::builder()
        .rule_first(ALL_OK)
        .audit("recording_limit_bytes", &LIMIT.to_string())
        .start();
    let after = unique_path("shell-after");
    let mut shell = Typing::spawn({
        let mut c = env.ssh();
        c.arg("-tt");
        c
    });
    assert!(shell.type_in("echo ready-$((1 + 1))\n"));
    shell.wait_for("ready-2");
    assert!(shell.type_in("yes | head -c 300000\n"));
    shell.wait_for("reached its recording limit");
    let _ = shell.type_in(&format!("touch {after}\n"));
    let (code, text) = shell.finish();
    assert_eq!(code, Some(255), "{text}\n{}", env.logs());
    assert!(
        text.contains(&format!(
            "\r\njitgate: this session reached its recording limit ({LIMIT} bytes); the session is ended\r\n"
        )),
        "{text}"
    );
    assert!(
        text.len() < LIMIT + 1024,
        "only what was recorded was shown"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !Path::new(&after).exists(),
        "a command typed after the limit ran on the target"
    );

    let session = ended_session(&env);
    let id = session["id"].as_str().expect("session id").to_string();
    let audit = env.stopped_store();
    let cast = audit.recording(&id).expect("the shell's recording");
    assert!(!cast_stream(&cast, "i").contains("touch"), "{cast}");
    assert!(cast_stream(&cast, "i").contains("yes | head -c 300000"));
}
