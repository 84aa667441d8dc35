//! `jitgate serve` speaks systemd's readiness protocol: `READY=1` only once every listener
//! accepts connections, `RELOADING=1`/`READY=1` around a SIGHUP reload, `STOPPING=1` on SIGTERM.
//! The test plays the service manager: it binds the `NOTIFY_SOCKET` datagram socket itself.

mod support;

use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::jitgate::check_config;
use support::proc::{output_text, start_watchdog, wait_child};
use support::{
    ALICE, ALICE_PASSWORD, APP_TARGET, JitgateBuilder, PgTarget, TempDir, free_port, jitgate_cmd,
    send_signal,
};

/// A valid config whose target is never dialled (no Postgres needed here).
fn builder() -> JitgateBuilder {
    JitgateBuilder::new()
        .user(ALICE, &["dev"], ALICE_PASSWORD)
        .target(PgTarget {
            name: APP_TARGET.into(),
            address: "127.0.0.1:5432".into(),
            database: "app".into(),
            user: "app".into(),
            password: Some("not-used".into()),
            password_env: None,
            tls: "disable".into(),
            ca_file: None,
            extra: Vec::new(),
        })
        .allow_all()
}

/// The service manager's end of `NOTIFY_SOCKET`.
struct Manager {
    sock: UnixDatagram,
}

impl Manager {
    /// The next message, or `None` after `timeout`.
    fn recv(&self, timeout: Duration) -> Option<String> {
        self.sock.set_read_timeout(Some(timeout)).unwrap();
        let mut buf = [0u8; 4096];
        match self.sock.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("recv on NOTIFY_SOCKET: {e}"),
        }
    }

    /// The next message, which must hold every `KEY=VALUE` of `want` on a line of its own.
    fn expect(&self, want: &[&str], child: &mut Served) -> String {
        let msg = self.recv(Duration::from_secs(20)).unwrap_or_else(|| {
            panic!(
                "no {want:?} on NOTIFY_SOCKET within 20 s\n{}",
                child.log_tail()
            )
        });
        let lines: Vec<&str> = msg.lines().collect();
        for w in want {
            assert!(lines.contains(w), "expected {w} in {msg:?}");
        }
        msg
    }
}

/// `jitgate serve` started by hand (the support builder waits for /healthz, which is exactly
/// what this test must not do), SIGKILLed on drop.
struct Served {
    child: Child,
    log: std::path::PathBuf,
}

impl Served {
    fn log_tail(&self) -> String {
        format!(
            "--- jitgate log ---\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
}

#[test]
fn ready_only_when_listening_reloading_around_sighup_stopping_on_sigterm() {
    let dir = TempDir::new("notify");
    let (pg_port, api_port) = (free_port(), free_port());
    let config = builder().write_config(dir.path(), pg_port, api_port);
    let out = check_config(&config);
    assert!(out.status.success(), "{}", output_text(&out));
    let sock_path = dir.join("notify.sock");
    let manager = Manager {
        sock: UnixDatagram::bind(&sock_path).expect("bind NOTIFY_SOCKET"),
    };
    let log = dir.join("jitgate.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let child = jitgate_cmd()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .expect("spawn jitgate serve");
    start_watchdog(child.id(), "KILL", None);
    let mut served = Served { child, log };
    let pid = served.child.id();

    let started = Instant::now();
    let ready = manager.expect(&["READY=1"], &mut served);
    // At the moment READY=1 arrives, both listeners must already take connections.
    let pg = SocketAddr::from(([127, 0, 0, 1], pg_port));
    let api = SocketAddr::from(([127, 0, 0, 1], api_port));
    assert!(
        accepts(pg),
        "READY=1 sent but Postgres port refuses\n{}",
        served.log_tail()
    );
    assert!(
        accepts(api),
        "READY=1 sent but API port refuses\n{}",
        served.log_tail()
    );
    eprintln!("READY=1 after {:?}: {ready:?}", started.elapsed());
    assert!(
        manager.recv(Duration::from_millis(300)).is_none(),
        "READY=1 must be sent once"
    );

    send_signal(pid, "HUP");
    manager.expect(&["RELOADING=1"], &mut served);
    let after = manager.expect(&["READY=1"], &mut served);
    assert!(after.contains("reloaded"), "{after:?}");

    send_signal(pid, "TERM");
    manager.expect(&["STOPPING=1"], &mut served);
    let status = wait_child(&mut served.child, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("jitgate did not exit on SIGTERM\n{}", served.log_tail()));
    assert!(status.success(), "exit {status}\n{}", served.log_tail());
}

#[test]
fn without_notify_socket_serve_runs_as_before() {
    // No NOTIFY_SOCKET: nothing is sent and nothing is logged about it; SIGHUP still reloads.
    let jg = builder().start();
    jg.kill("HUP");
    support::wait_until(
        "config reloaded in the log",
        Duration::from_secs(20),
        || jg.log().contains("config reloaded").then_some(()),
    );
    assert!(!jg.log().contains("NOTIFY_SOCKET"), "{}", jg.log_tail(20));
    assert!(jg.is_running());
}
