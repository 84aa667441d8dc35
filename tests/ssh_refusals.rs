//! Who may not get in, and what may not break jitgate: wrong keys, unknown targets, a target
//! whose host key does not match the pin, an RSA target key, garbage on the SSH port, idle
//! sockets that never authenticate, and 50 concurrent sessions mixing exec and shell.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use jitgate::audit::{Audit, AuditOptions};
use support::proc::{output_text, pseudo_random_bytes, run_timeout};
use support::sshd::{Keys, SshEnv, SshEnvBuilder, public_key};

const T: Duration = Duration::from_secs(120);

#[test]
fn wrong_key_and_unknown_target_get_the_same_refusal() {
    let env = SshEnv::new();
    let wrong = run_timeout(
        env.ssh_as(&env.keys.mallory, "web-1").arg("uptime"),
        None,
        T,
    );
    let unknown = run_timeout(
        env.ssh_as(&env.keys.alice, "no-such-target").arg("uptime"),
        None,
        T,
    );
    for out in [&wrong, &unknown] {
        assert_eq!(out.status.code(), Some(255), "{}", output_text(out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Permission denied (publickey)"),
            "{}",
            output_text(out)
        );
    }
    // Nothing tells the two apart (ssh names the user it tried; nothing else differs).
    assert_eq!(
        String::from_utf8_lossy(&wrong.stderr),
        String::from_utf8_lossy(&unknown.stderr).replace("no-such-target", "web-1")
    );
}

#[test]
fn target_host_key_mismatch_refuses_the_session() {
    // Pin some other key: the real target is an impostor now.
    let pinned = public_key(&Keys::shared().mallory)
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let mut env = SshEnvBuilder {
        pinned_host_key: Some(pinned),
        ..Default::default()
    }
    .start();
    let out = run_timeout(env.ssh().arg("uptime"), None, T);
    assert_eq!(out.status.code(), Some(255), "{}", output_text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not match the pinned key"),
        "{}",
        output_text(&out)
    );
    assert!(out.stdout.is_empty());
    assert!(
        !stderr.contains("SHA256:"),
        "no fingerprints for users: {stderr}"
    );

    env.jg.kill("TERM");
    env.jg
        .wait_exit(Duration::from_secs(30))
        .expect("jitgate stops");
    let audit = Audit::open(&env.jg.data_dir().join("audit"), AuditOptions::default()).unwrap();
    let s = audit.sessions(&Default::default());
    let reason = s[0].end_reason.clone().unwrap_or_default();
    assert!(reason.contains("host key mismatch"), "{reason}");
}

#[test]
fn rsa_target_keys_work() {
    let env = SshEnvBuilder {
        rsa_target_key: true,
        ..Default::default()
    }
    .start();
    let out = run_timeout(env.ssh().arg("echo rsa-ok"), None, T);
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        env.logs()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "rsa-ok");
}

/// Sends `bytes`, then reads until the server closes (or 20 s pass); true if it closed.
fn closes_after(port: u16, bytes: &[u8]) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(bytes);
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn garbage_on_the_ssh_port_is_closed_without_harm() {
    let env = SshEnv::new();
    let port = env.jg.ssh_port();
    for seed in 1..6u64 {
        assert!(
            closes_after(port, &pseudo_random_bytes(seed, 4096)),
            "seed {seed}"
        );
    }
    let mut hello = b"SSH-2.0-garbage\r\n".to_vec();
    hello.extend(pseudo_random_bytes(99, 70_000));
    assert!(closes_after(port, &hello));
    let mut huge_len = b"SSH-2.0-garbage\r\n".to_vec();
    huge_len.extend([0xff, 0xff, 0xff, 0xf0, 4, 20]);
    huge_len.extend(pseudo_random_bytes(5, 64));
    assert!(closes_after(port, &huge_len));
    assert!(env.jg.is_running(), "{}", env.logs());
    let out = run_timeout(env.ssh().arg("echo still-here"), None, T);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "still-here",
        "{}",
        output_text(&out)
    );
    assert!(!env.jg.log().contains("panicked"), "{}", env.logs());
}

#[test]
fn fifty_concurrent_sessions_mixing_exec_and_shell() {
    let env = SshEnv::builder()
        .rule_first("name = \"shells ok\"\nclasses = [\"shell\"]\naction = \"allow\"")
        .start();
    let results: Vec<(usize, std::process::Output)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let env = &env;
                s.spawn(move || {
                    let out = if i % 2 == 0 {
                        run_timeout(env.ssh().arg(format!("echo exec-{i}")), None, T)
                    } else {
                        let input = format!("echo shell-$(({i} * 1))\nexit\n");
                        run_timeout(env.ssh().arg("-tt"), Some(input.as_bytes()), T)
                    };
                    (i, out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, out) in &results {
        let want = if i % 2 == 0 {
            format!("exec-{i}")
        } else {
            format!("shell-{i}")
        };
        assert!(out.status.success(), "session {i}: {}", output_text(out));
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&want),
            "session {i}: {}",
            output_text(out)
        );
    }
    // Every session ended: the gauge is back to zero.
    support::proc::wait_until("active ssh sessions back to 0", T, || {
        let (_, m) = env.jg.http_get("http", "/metrics").ok()?;
        m.lines()
            .any(|l| l.starts_with("jitgate_active_sessions{protocol=\"ssh\"} 0"))
            .then_some(())
    });
}

#[test]
fn idle_sockets_never_take_the_session_slot() {
    let env = SshEnv::builder().server("max_connections", "1").start();
    let port = env.jg.ssh_port();
    let idle: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connect"))
        .collect();
    let out = run_timeout(env.ssh().arg("echo slot-free"), None, T);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "slot-free",
        "{}",
        output_text(&out)
    );
    drop(idle);
}
