//! Holds end with the client and always expire, through the real sshd: a held exec whose
//! client sent more than 1 MiB of stdin and then disconnected is cancelled at once and a
//! later approval runs nothing; a channel that grants no window still expires at its
//! hold_timeout; a held `-L` forward whose session ended is cancelled and the target never
//! connects. Each checks the target (no file written, no connection made).

#[path = "support/api.rs"]
mod api;
mod support;

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use api::{Api, wait_for_pending};
use support::proc::free_port;
use support::sshd::{BOB_TOKEN, SshEnv, TARGET, ssh_client_opts};

/// How soon a request must be cancelled once its client is gone.
const PROMPTLY: Duration = Duration::from_secs(10);

fn marker(tag: &str) -> String {
    let path = format!("/tmp/jg-holds-{tag}-{}", std::process::id());
    let _ = std::fs::remove_file(&path);
    path
}

/// The API refuses to approve `id` (it is no longer pending).
fn approval_fails(bob: &Api, id: &str) {
    let (status, body) = bob.approve(id, "too late", None);
    assert_ne!(status, 200, "approving an ended request must fail: {body}");
}

#[test]
fn held_exec_with_over_a_mebibyte_of_stdin_is_cancelled_when_the_client_leaves() {
    let env = SshEnv::new();
    let bob = Api::new(env.jg.api_addr(), BOB_TOKEN);
    let path = marker("stdin");
    let mut child = env
        .ssh()
        .arg(format!("cat > {path}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ssh");
    let mut stdin = child.stdin.take().expect("stdin");
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        // Until ssh is killed (the write fails) or 8 MiB went.
        for _ in 0..128 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
            counter.fetch_add(chunk.len(), Ordering::SeqCst);
        }
    });
    let request = wait_for_pending(&bob, "alice");
    let id = request["id"].as_str().expect("id").to_string();
    assert_eq!(request["statement"], format!("cat > {path}"));
    api::poll("more than 2 MiB of stdin to be sent", || {
        let n = sent.load(Ordering::SeqCst);
        if n > 2 << 20 {
            Ok(())
        } else {
            Err(format!("{n} bytes sent"))
        }
    });
    let _ = child.kill();
    let _ = child.wait();
    let left = Instant::now();
    let r = bob.wait_state(&id, "cancelled");
    assert!(
        left.elapsed() < PROMPTLY,
        "cancelled only after {:?}: {r}",
        left.elapsed()
    );
    approval_fails(&bob, &id);
    std::thread::sleep(Duration::from_secs(1));
    assert!(!Path::new(&path).exists(), "the withdrawn command ran");
}

#[test]
fn a_channel_that_grants_no_window_still_expires_at_its_hold_timeout() {
    let env = SshEnv::builder().hold_timeout("2s").start();
    let bob = Api::new(env.jg.api_addr(), BOB_TOKEN);
    let path = marker("window");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let key = env.keys.alice.clone();
    let port = env.jg.ssh_port();
    let command = format!("touch {path}");
    // The client stays connected, with a channel of window 0, for the whole test.
    let client = runtime.spawn(async move { zero_window_exec(port, &key, &command).await });
    let request = wait_for_pending(&bob, "alice");
    let id = request["id"].as_str().expect("id").to_string();
    let created = Instant::now();
    let r = bob.wait_state(&id, "expired");
    assert!(
        created.elapsed() < Duration::from_secs(15),
        "expired only after {:?}: {r}",
        created.elapsed()
    );
    approval_fails(&bob, &id);
    std::thread::sleep(Duration::from_secs(1));
    assert!(!Path::new(&path).exists(), "the expired command ran");
    assert!(
        !client.is_finished(),
        "the client stayed connected throughout"
    );
    client.abort();
}

/// A russh client: alice's key, one session channel opened with an initial window of 0
/// (so jitgate can send it nothing), `command` on it, then silence.
async fn zero_window_exec(port: u16, key: &Path, command: &str) {
    struct AnyHost;
    impl russh::client::Handler for AnyHost {
        type Error = russh::Error;
        async fn check_server_key(
            &mut self,
            _key: &russh::keys::PublicKeyOrCertificate,
        ) -> Result<bool, Self::Error> {
            Ok(true)
        }
    }
    let config = russh::client::Config {
        window_size: 0,
        inactivity_timeout: None,
        ..Default::default()
    };
    let key = russh::keys::load_secret_key(key, None).expect("alice's key");
    let mut session = russh::client::connect(Arc::new(config), ("127.0.0.1", port), AnyHost)
        .await
        .expect("connect to jitgate");
    let auth = session
        .authenticate_publickey(
            TARGET,
            russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key), None),
        )
        .await
        .expect("authenticate");
    assert!(auth.success(), "alice's key was refused");
    let channel = session
        .channel_open_session()
        .await
        .expect("open a session channel");
    channel.exec(false, command).await.expect("exec");
    std::future::pending::<()>().await;
}

#[test]
fn a_held_forward_is_cancelled_when_its_session_ends_and_the_target_never_connects() {
    let env = SshEnv::builder()
        .rule_first(
            "name = \"forwards need an SRE\"\nclasses = [\"port_forward\"]\naction = \"review\"\n\
             approvers = [\"group:sre\"]",
        )
        .start();
    let bob = Api::new(env.jg.api_addr(), BOB_TOKEN);
    // Where the forward leads: a listener the target would connect to once approved.
    let destination = TcpListener::bind("127.0.0.1:0").expect("bind");
    destination.set_nonblocking(true).expect("nonblocking");
    let destination_port = destination.local_addr().expect("addr").port();
    let local = free_port();
    let mut ssh = Command::new("ssh");
    ssh.arg("-p").arg(env.jg.ssh_port().to_string());
    ssh.args(ssh_client_opts(&env.keys.alice));
    ssh.args(["-N", "-L"]);
    ssh.arg(format!("{local}:127.0.0.1:{destination_port}"));
    ssh.arg(format!("{TARGET}@127.0.0.1"));
    let mut child = ssh
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ssh -L");
    let user_side = api::poll("ssh -L to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", local)).map_err(|e| e.to_string())
    });
    let request = wait_for_pending(&bob, "alice");
    let id = request["id"].as_str().expect("id").to_string();
    assert_eq!(
        request["statement"],
        format!("direct-tcpip 127.0.0.1:{destination_port}")
    );
    let _ = child.kill();
    let _ = child.wait();
    let left = Instant::now();
    let r = bob.wait_state(&id, "cancelled");
    assert!(
        left.elapsed() < PROMPTLY,
        "cancelled only after {:?}: {r}",
        left.elapsed()
    );
    approval_fails(&bob, &id);
    drop(user_side);
    let watch = Instant::now() + Duration::from_secs(2);
    while Instant::now() < watch {
        if let Ok((_, from)) = destination.accept() {
            panic!("the target connected ({from}) for a forward whose session ended");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
