//! Shutdown with SSH sessions open: SIGTERM stops accepting, lets running commands finish
//! within `drain_timeout`, then disconnects what is left.

mod support;

use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::proc::{output_text, wait_child, wait_until};
use support::sshd::SshEnvBuilder;

#[test]
fn sigterm_drains_running_commands_then_disconnects_the_rest() {
    let mut env = SshEnvBuilder {
        drain_timeout: Some("4s".into()),
        ..Default::default()
    }
    .start();
    let short = env
        .ssh()
        .arg("sleep 1; echo finished")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut long = env
        .ssh()
        .arg("sleep 60")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("two ssh sessions", Duration::from_secs(60), || {
        (env.active_ssh_sessions()? >= 2).then_some(())
    });
    // A session counts as active once authenticated, before its command is allowed: wait
    // until both commands run, or the drain rightly ends a session that runs nothing yet.
    wait_until("both commands allowed", Duration::from_secs(60), || {
        let log = env.jg.log();
        (log.contains("sleep 1; echo finished") && log.contains("sleep 60")).then_some(())
    });
    let port = env.jg.ssh_port();
    let started = Instant::now();
    env.jg.kill("TERM");
    wait_until("the listener to close", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port))
            .is_err()
            .then_some(())
    });
    let out = short.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "finished");
    let status = wait_child(&mut long, Duration::from_secs(30)).expect("the long session ends");
    assert!(!status.success());
    assert!(
        env.jg.wait_exit(Duration::from_secs(30)).is_some(),
        "jitgate stops"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(took >= Duration::from_secs(3), "the drain waited: {took:?}");
}
