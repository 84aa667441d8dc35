//! A reload that removes a user ends that user's live SSH sessions at once (issue 12,
//! finding 12): a running `sleep 60` is disconnected long before it would end, and the
//! session's audit record says why.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use support::proc::{wait_child, wait_until};
use support::sshd::SshEnvBuilder;

#[test]
fn removing_a_user_disconnects_their_ssh_session() {
    let env = SshEnvBuilder::default().start();
    let mut long = env
        .ssh()
        .arg("sleep 60")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ssh");
    wait_until("alice's ssh session", Duration::from_secs(60), || {
        (env.active_ssh_sessions()? >= 1).then_some(())
    });
    let path = env.jg.config_path();
    let config = std::fs::read_to_string(path).expect("read the config");
    let start = config
        .find("[[users]]\nname = \"alice\"")
        .expect("alice's table");
    let end = start + config[start..].find("\n\n").expect("end of alice's table") + 2;
    std::fs::write(path, format!("{}{}", &config[..start], &config[end..])).expect("write");
    let removed = Instant::now();
    env.jg.kill("HUP");
    let status = wait_child(&mut long, Duration::from_secs(30))
        .expect("the session of the removed user ends");
    assert!(!status.success());
    assert!(
        removed.elapsed() < Duration::from_secs(30),
        "ended by the reload, not by the command"
    );
    wait_until("no ssh session", Duration::from_secs(30), || {
        (env.active_ssh_sessions()? == 0).then_some(())
    });
    assert!(
        env.jg.log().contains("their live sessions were ended"),
        "{}",
        env.jg.log_tail(20)
    );
}
