//! The service manager's readiness protocol (`sd_notify`), spoken with std alone.
//!
//! systemd starts a `Type=notify` service with `NOTIFY_SOCKET` naming a Unix datagram socket
//! (a path, or `@name` in the abstract namespace); the service sends newline-separated
//! `KEY=VALUE` lines to it. jitgate sends `READY=1` once every listener is bound, `RELOADING=1`
//! then `READY=1` around a config reload, and `STOPPING=1` when shutdown begins.
//!
//! Without `NOTIFY_SOCKET` every call is a no-op, so `jitgate serve` behaves the same outside
//! systemd. A failed send is logged and otherwise ignored: readiness reporting must never take
//! the proxy down.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use tracing::{debug, warn};

/// Sends `state` (e.g. `"READY=1\nSTATUS=serving"`) to `$NOTIFY_SOCKET`, if it is set.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    match send(&path, state) {
        Ok(()) => debug!(socket = %path, "sd_notify: {}", state.replace('\n', " ")),
        Err(e) => warn!(socket = %path, "cannot notify the service manager: {e}"),
    }
}

fn send(path: &str, state: &str) -> io::Result<()> {
    let addr = match path.strip_prefix('@') {
        Some(name) => abstract_addr(name)?,
        None if path.starts_with('/') => SocketAddr::from_pathname(path)?,
        None => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "NOTIFY_SOCKET is neither an absolute path nor @abstract",
            ));
        }
    };
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to NOTIFY_SOCKET",
        ));
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn abstract_addr(name: &str) -> io::Result<SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name.as_bytes())
}

#[cfg(not(target_os = "linux"))]
fn abstract_addr(_name: &str) -> io::Result<SocketAddr> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names exist on Linux only",
    ))
}

/// Every listener is bound: the service manager may start what depends on jitgate.
/// Call it last in start-up, after the final bind.
pub fn notify_ready() {
    notify("READY=1\nSTATUS=serving");
}

/// A config reload has begun; [`notify_reloaded`] ends it.
pub fn notify_reloading() {
    notify("RELOADING=1\nSTATUS=reloading the configuration");
}

/// A config reload has ended (whether or not the new config was taken).
pub fn notify_reloaded(status: &str) {
    notify(&format!("READY=1\nSTATUS={status}"));
}

/// Shutdown has begun.
pub fn notify_stopping() {
    notify("STOPPING=1\nSTATUS=draining sessions");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("jg-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("jitgate-notify-test-{}", std::process::id());
        let rx = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(&name).unwrap()).unwrap();
        send(&format!("@{name}"), "STOPPING=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }

    #[test]
    fn a_relative_path_is_refused() {
        assert!(send("relative.sock", "READY=1").is_err());
    }
}
