//! SFTP decided per operation, through jitgate to the real sshd, with OpenSSH's own `scp`
//! (which speaks SFTP) and `sftp -b`: downloads pass under the fixture's read rule; an
//! upload is held with its path in the request, written once approved, and leaves nothing
//! on the target when denied; rules match SFTP paths with globs.

#[path = "support/api.rs"]
mod api;
mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use api::Api;
use serde_json::Value;
use support::proc::{output_text, pseudo_random_bytes, write_file};
use support::sshd::{BOB_TOKEN, SshEnv, TARGET, TARGET_USER, ssh_client_opts};

const T: Duration = Duration::from_secs(120);

fn remote_path(tag: &str) -> String {
    format!("/home/{TARGET_USER}/jg-sftp-{tag}-{}", std::process::id())
}

/// A file on the target, owned by the target user.
fn target_file(path: &str, data: &[u8]) {
    std::fs::write(path, data).expect("write target file");
    let (uid, gid) = support::proc::os_user(TARGET_USER).expect("target user");
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
}

/// Modern `scp` (SFTP mode, the default of OpenSSH 9) through jitgate.
fn scp(env: &SshEnv, from: &str, to: &str) -> Command {
    let mut c = Command::new("scp");
    c.arg("-P").arg(env.jg.ssh_port().to_string());
    c.args(ssh_client_opts(&env.keys.alice));
    c.arg(from).arg(to);
    c
}

fn sftp(env: &SshEnv, dir: &Path, batch: &str) -> Command {
    let b = dir.join("batch");
    write_file(&b, batch, 0o644);
    let mut c = Command::new("sftp");
    c.arg("-P").arg(env.jg.ssh_port().to_string());
    c.args(ssh_client_opts(&env.keys.alice));
    c.arg("-b").arg(&b);
    c.arg(format!("{TARGET}@127.0.0.1"));
    c
}

/// Runs `cmd`; each request it raises is shown to `decide` (the request as the API shows
/// it), which approves (`true`) or denies it. Returns the output and the requests seen.
fn run_deciding(
    bob: &Api,
    mut cmd: Command,
    decide: impl Fn(&Value) -> bool,
) -> (Output, Vec<Value>) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let deadline = Instant::now() + T;
    let mut seen: Vec<Value> = Vec::new();
    loop {
        if let Ok(out) = finished.recv_timeout(Duration::from_millis(50)) {
            return (out.expect("wait"), seen);
        }
        assert!(Instant::now() < deadline, "timed out; requests: {seen:?}");
        for r in bob.pending(Some("alice")) {
            let id = r["id"].as_str().expect("id").to_string();
            if seen.iter().any(|s| s["id"] == id.as_str()) {
                continue;
            }
            if decide(&r) {
                bob.approve_ok(&id, "ok", None);
            } else {
                bob.deny_ok(&id, "not that file");
            }
            seen.push(r);
        }
    }
}

fn statements(requests: &[Value]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r["statement"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn scp_download_passes_and_upload_is_held_with_its_path() {
    let env = SshEnv::new();
    let bob = Api::new(env.jg.api_addr(), BOB_TOKEN);
    let dir = support::TempDir::new("scp-sftp");
    let data = pseudo_random_bytes(11, 1 << 20);

    // A download under the read rule: no request at all.
    let remote = remote_path("down");
    target_file(&remote, &data);
    let local = dir.join("down");
    let (out, seen) = run_deciding(
        &bob,
        scp(
            &env,
            &format!("{TARGET}@127.0.0.1:{remote}"),
            &local.display().to_string(),
        ),
        |_| false,
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        env.logs()
    );
    assert!(seen.is_empty(), "a download holds nothing: {seen:?}");
    assert!(std::fs::read(&local).expect("downloaded") == data);
    let _ = std::fs::remove_file(&remote);

    // An upload, approved: held with its path, then written.
    let remote = remote_path("up");
    let (out, seen) = run_deciding(
        &bob,
        scp(
            &env,
            &local.display().to_string(),
            &format!("{TARGET}@127.0.0.1:{remote}"),
        ),
        |_| true,
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        env.logs()
    );
    let held = statements(&seen);
    assert!(
        held.contains(&format!("sftp open-write {remote}")),
        "the request names the path: {held:?}"
    );
    assert!(
        seen.iter().all(|r| r["class"] == "write"),
        "held as writes: {seen:?}"
    );
    assert!(std::fs::read(&remote).expect("uploaded") == data);
    let _ = std::fs::remove_file(&remote);

    // An upload, denied: scp fails and nothing reaches the target.
    let (out, seen) = run_deciding(
        &bob,
        scp(
            &env,
            &local.display().to_string(),
            &format!("{TARGET}@127.0.0.1:{remote}"),
        ),
        |_| false,
    );
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(!seen.is_empty(), "the upload was held");
    assert!(
        !Path::new(&remote).exists(),
        "a denied upload left {remote} on the target"
    );
}

#[test]
fn sftp_batch_uploads_are_held_per_operation_and_downloads_pass() {
    let env = SshEnv::new();
    let bob = Api::new(env.jg.api_addr(), BOB_TOKEN);
    let dir = support::TempDir::new("sftp-batch");
    let data = pseudo_random_bytes(12, 300_000);
    let local = dir.join("up");
    std::fs::write(&local, &data).expect("local file");
    let remote = remote_path("batch");
    let back = dir.join("back");

    // put (held, approved), get (a read: passes), rm (held, approved).
    let (out, seen) = run_deciding(
        &bob,
        sftp(
            &env,
            dir.path(),
            &format!(
                "put {} {remote}\nget {remote} {}\nrm {remote}\n",
                local.display(),
                back.display()
            ),
        ),
        |_| true,
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        env.logs()
    );
    let held = statements(&seen);
    assert!(
        held.contains(&format!("sftp open-write {remote}"))
            && held.contains(&format!("sftp remove {remote}")),
        "{held:?}"
    );
    assert!(
        !held.iter().any(|s| s.contains("open-read")),
        "the get was not held: {held:?}"
    );
    assert!(
        std::fs::read(&back).expect("got") == data,
        "round trip differs"
    );
    assert!(!Path::new(&remote).exists(), "the approved rm ran");

    // The request's session shows the operation in the audit trail.
    let session = seen[0]["session"].as_str().expect("session").to_string();
    let events = bob.get_ok(&format!("/v1/sessions/{session}/events"));
    assert!(
        events
            .to_string()
            .contains(&format!("sftp open-write {remote}")),
        "audit trail: {events}"
    );

    // A denied put leaves nothing, and the next operation of the batch is not run.
    let (out, seen) = run_deciding(
        &bob,
        sftp(
            &env,
            dir.path(),
            &format!("put {} {remote}\n", local.display()),
        ),
        |_| false,
    );
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ermission denied"),
        "sftp shows a permission error: {}",
        output_text(&out)
    );
    assert_eq!(statements(&seen), [format!("sftp open-write {remote}")]);
    assert!(!Path::new(&remote).exists(), "a denied put left a file");
}

#[test]
fn rules_match_sftp_paths_with_globs() {
    let drop_box = format!("/tmp/jg-sftp-drop-{}", std::process::id());
    std::fs::create_dir_all(&drop_box).expect("drop box");
    let (uid, gid) = support::proc::os_user(TARGET_USER).expect("target user");
    std::os::unix::fs::chown(&drop_box, Some(uid), Some(gid)).expect("chown");
    let secret = remote_path("secret");
    target_file(&secret, b"keep out");
    let env = SshEnv::builder()
        .rule_first("name = \"no secrets\"\npaths = [\"/home/*/jg-sftp-secret-*\"]\naction = \"deny\"")
        .rule_first(&format!(
            "name = \"drop box\"\nclasses = [\"write\"]\npaths = [\"{drop_box}/*\"]\naction = \"allow\""
        ))
        .start();
    let bob = Api::new(env.jg.api_addr(), BOB_TOKEN);
    let dir = support::TempDir::new("sftp-globs");
    let local = dir.join("f");
    std::fs::write(&local, "dropped").expect("local");

    // Allowed by path: no request, the file is there.
    let (out, seen) = run_deciding(
        &bob,
        sftp(
            &env,
            dir.path(),
            &format!("put {} {drop_box}/f\n", local.display()),
        ),
        |_| false,
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        env.logs()
    );
    assert!(seen.is_empty(), "{seen:?}");
    assert_eq!(
        std::fs::read_to_string(format!("{drop_box}/f"))
            .ok()
            .as_deref(),
        Some("dropped")
    );
    // `*` stops at `/`: a subdirectory of the drop box is not in it.
    let (out, seen) = run_deciding(
        &bob,
        sftp(&env, dir.path(), &format!("mkdir {drop_box}/a/b/\n")),
        |_| false,
    );
    assert!(!out.status.success(), "{}", output_text(&out));
    assert_eq!(statements(&seen), [format!("sftp mkdir {drop_box}/a/b")]);

    // Denied by path: a read refused at once, nothing downloaded.
    let back = dir.join("secret");
    let (out, seen) = run_deciding(
        &bob,
        sftp(
            &env,
            dir.path(),
            &format!("get {secret} {}\n", back.display()),
        ),
        |_| true,
    );
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(seen.is_empty(), "a deny rule holds nothing: {seen:?}");
    assert!(!back.exists(), "the secret was downloaded");
    let _ = std::fs::remove_file(&secret);
    let _ = std::fs::remove_dir_all(&drop_box);
}

#[test]
fn a_held_operation_is_withdrawn_when_the_client_leaves() {
    let env = SshEnv::new();
    let bob = Api::new(env.jg.api_addr(), BOB_TOKEN);
    let dir = support::TempDir::new("sftp-leave");
    let local = dir.join("f");
    std::fs::write(&local, "never").expect("local");
    let remote = remote_path("leave");
    let mut cmd = sftp(
        &env,
        dir.path(),
        &format!("put {} {remote}\n", local.display()),
    );
    // sftp runs ssh as its child: its own process group, so both can go at once (as a
    // Ctrl-C at a terminal does).
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sftp");
    let request = api::wait_for_pending(&bob, "alice");
    let id = request["id"].as_str().expect("id").to_string();
    assert_eq!(request["statement"], format!("sftp open-write {remote}"));
    let killed = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status()
        .expect("kill");
    assert!(killed.success());
    let _ = child.wait();
    bob.wait_state(&id, "cancelled");
    let (status, body) = bob.approve(&id, "too late", None);
    assert_ne!(status, 200, "{body}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !Path::new(&remote).exists(),
        "the withdrawn put wrote {remote}"
    );
}

#[test]
fn a_packet_over_the_limit_closes_the_channel() {
    let env = SshEnv::new();
    // SSH_FXP_INIT version 3, then a packet that claims 16 MiB.
    let mut stream = vec![0, 0, 0, 5, 1, 0, 0, 0, 3];
    stream.extend([0x01, 0, 0, 0, 3]);
    stream.extend(vec![0u8; 4096]);
    let out = support::proc::run_timeout(env.ssh().args(["-s", "sftp"]), Some(&stream), T);
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sftp protocol error"),
        "{}\n{}",
        output_text(&out),
        env.logs()
    );
}
