//! File transfer and port forwarding through jitgate: legacy scp (`scp -O`, whose `scp -t`
//! and `scp -f` commands are class `file_transfer`) and the sftp subsystem (opened as class
//! `file_transfer`, each operation then decided as `read` or `write` on its path, see
//! tests/ssh_sftp.rs), `ssh -L` (class `port_forward`), each allowed and refused by policy;
//! remote forwarding (`-R`) always refused.

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::proc::{free_port, output_text, pseudo_random_bytes, run_timeout, write_file};
use support::sshd::{SshEnv, TARGET, TARGET_USER, ssh_client_opts};

const T: Duration = Duration::from_secs(120);
const FILES_OK: &str = "name = \"files ok\"\nclasses = [\"file_transfer\"]\naction = \"allow\"";
/// SFTP writes are decided per operation: this one lets them into the target user's home.
const HOME_WRITES_OK: &str = "name = \"home writes ok\"\nclasses = [\"write\"]\npaths = [\"/home/jgtarget/*\"]\naction = \"allow\"";
const FILES_NO: &str = "name = \"no files\"\nclasses = [\"file_transfer\"]\naction = \"deny\"";
const FORWARDS_OK: &str =
    "name = \"forwards ok\"\nclasses = [\"port_forward\"]\naction = \"allow\"";

fn remote_path(tag: &str) -> String {
    format!("/home/{TARGET_USER}/jg-{tag}-{}", std::process::id())
}

fn sftp(env: &SshEnv, batch: &str) -> std::process::Output {
    let dir = support::TempDir::new("sftp");
    let b = dir.join("batch");
    write_file(&b, batch, 0o644);
    let mut c = Command::new("sftp");
    c.arg("-P").arg(env.jg.ssh_port().to_string());
    c.args(ssh_client_opts(&env.keys.alice));
    c.arg("-b").arg(&b);
    c.arg(format!("{TARGET}@127.0.0.1"));
    run_timeout(&mut c, None, T)
}

fn scp(env: &SshEnv, from: &str, to: &str) -> std::process::Output {
    let mut c = Command::new("scp");
    c.arg("-O").arg("-P").arg(env.jg.ssh_port().to_string());
    c.args(ssh_client_opts(&env.keys.alice));
    c.arg(from).arg(to);
    run_timeout(&mut c, None, T)
}

#[test]
fn sftp_and_scp_work_when_policy_allows_file_transfer() {
    let env = SshEnv::builder()
        .rule_first(FILES_OK)
        .rule_first(HOME_WRITES_OK)
        .start();
    let dir = support::TempDir::new("xfer");
    let data = pseudo_random_bytes(7, 3 << 20);
    let local = dir.join("up");
    std::fs::write(&local, &data).unwrap();

    let remote = remote_path("sftp");
    let back = dir.join("back");
    let out = sftp(
        &env,
        &format!(
            "put {} {remote}\nget {remote} {}\nrm {remote}\n",
            local.display(),
            back.display()
        ),
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        env.logs()
    );
    assert!(
        std::fs::read(&back).unwrap() == data,
        "sftp round trip differs"
    );
    assert!(!Path::new(&remote).exists());

    let remote = remote_path("scp");
    let out = scp(
        &env,
        &local.display().to_string(),
        &format!("{TARGET}@127.0.0.1:{remote}"),
    );
    assert!(
        out.status.success(),
        "scp -t: {}\n{}",
        output_text(&out),
        env.logs()
    );
    assert!(
        std::fs::read(&remote).unwrap() == data,
        "scp upload differs"
    );
    let back2 = dir.join("back2");
    let out = scp(
        &env,
        &format!("{TARGET}@127.0.0.1:{remote}"),
        &back2.display().to_string(),
    );
    assert!(out.status.success(), "scp -f: {}", output_text(&out));
    assert!(
        std::fs::read(&back2).unwrap() == data,
        "scp download differs"
    );
    let _ = std::fs::remove_file(&remote);
}

#[test]
fn file_transfer_is_refused_when_policy_denies_it() {
    let env = SshEnv::builder().rule_first(FILES_NO).start();
    let dir = support::TempDir::new("xfer-no");
    let local = dir.join("up");
    std::fs::write(&local, "secret").unwrap();
    let remote = remote_path("denied");
    let out = sftp(&env, &format!("put {} {remote}\n", local.display()));
    assert!(!out.status.success(), "{}", output_text(&out));
    let out = scp(
        &env,
        &local.display().to_string(),
        &format!("{TARGET}@127.0.0.1:{remote}"),
    );
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no files"),
        "the refusal names the rule: {}",
        output_text(&out)
    );
    assert!(!Path::new(&remote).exists(), "nothing reached the target");
}

/// `ssh -N -L PORT:127.0.0.1:SSHD_PORT`; returns the child and the local port once bound.
fn forward(env: &SshEnv) -> (std::process::Child, u16) {
    let port = free_port();
    let mut c = Command::new("ssh");
    c.arg("-p").arg(env.jg.ssh_port().to_string());
    // INFO: ssh logs a refused channel open (with its reason) at that level.
    let opts = ssh_client_opts(&env.keys.alice).into_iter().map(|o| {
        if o == "LogLevel=ERROR" {
            "LogLevel=INFO".into()
        } else {
            o
        }
    });
    c.args(opts);
    c.args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"]);
    c.arg(format!("{port}:127.0.0.1:{}", env.sshd.port));
    c.arg(format!("{TARGET}@127.0.0.1"));
    let child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "ssh -L did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

/// What comes out of the tunnel first (up to 64 bytes, 10 s).
fn banner(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn local_forwarding_is_denied_by_default_and_works_when_allowed() {
    let env = SshEnv::new();
    let (mut child, port) = forward(&env);
    assert_eq!(banner(port), "", "a denied forward carries nothing");
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no port forwarding"),
        "ssh shows the refusal: {stderr}"
    );

    let env = SshEnv::builder().rule_first(FORWARDS_OK).start();
    let (mut child, port) = forward(&env);
    let b = banner(port);
    assert!(b.starts_with("SSH-2.0-OpenSSH"), "{b:?}\n{}", env.logs());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn remote_forwarding_and_agent_forwarding_are_refused() {
    let env = SshEnv::builder()
        .rule_first("name = \"all\"\naction = \"allow\"")
        .start();
    let out = run_timeout(
        env.ssh()
            .args(["-o", "ExitOnForwardFailure=yes", "-R", "0:127.0.0.1:22"])
            .arg("true"),
        None,
        T,
    );
    assert_eq!(out.status.code(), Some(255), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("forwarding failed"),
        "{}",
        output_text(&out)
    );
}
