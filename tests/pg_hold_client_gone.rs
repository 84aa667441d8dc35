//! A hold ends with its client (issue 12, finding 13): while a statement waits for an
//! approval, jitgate keeps reading the client, so a close or reset is noticed at once and
//! the request is cancelled; an approval that comes later is refused (409) and the held
//! statement never runs. A client that pipelines more than jitgate keeps behind a held
//! statement has its session ended and its request cancelled. Every outcome is checked on
//! the table itself.

#[path = "support/api.rs"]
mod api;
mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use api::{Fixture, held_id};
use support::wire::extended::flush;
use support::wire::{
    RawSession, first_error, query_message, read_message, read_until_closed, summary,
};
use support::{ALICE, ALICE_PASSWORD, APP_TARGET};

fn login(fx: &Fixture) -> RawSession {
    RawSession::login(fx.env.jg.pg_addr(), ALICE, APP_TARGET, ALICE_PASSWORD, &[])
        .unwrap_or_else(|e| panic!("raw login as alice: {e:?}"))
}

/// Sends an UPDATE of row 1 and reads until its hold notice; returns the request id.
fn hold_update(s: &mut RawSession) -> String {
    s.stream
        .write_all(&query_message("UPDATE t SET v = 7 WHERE id = 1"))
        .expect("send");
    loop {
        match read_message(&mut s.stream) {
            Ok(Some((b'N', body))) => {
                if let Some(id) = held_id(&String::from_utf8_lossy(&body)) {
                    return id;
                }
            }
            Ok(Some((b'Z' | b'E', body))) => panic!("not held: {}", String::from_utf8_lossy(&body)),
            Ok(Some(_)) => {}
            other => panic!("reading the hold notice: {other:?}"),
        }
    }
}

/// `n` bytes of Flush messages.
fn flushes(n: usize) -> Vec<u8> {
    flush().repeat(n / 5)
}

/// Polls request `id` until it is cancelled; returns how long that took.
fn cancelled_within(fx: &Fixture, id: &str, from: Instant) -> Duration {
    fx.bob.wait_state(id, "cancelled");
    from.elapsed()
}

#[test]
fn a_closed_client_cancels_its_hold_even_behind_megabytes_of_flush() {
    let fx = Fixture::new("60s", 10);
    let mut s = login(&fx);
    let id = hold_update(&mut s);
    // 2.5 MiB of Flush behind the held UPDATE, then the socket closes.
    let sent = s.stream.write_all(&flushes(5 << 19));
    let closed = Instant::now();
    drop(s);
    assert!(
        sent.is_ok(),
        "jitgate stopped reading a held client: {sent:?}"
    );
    let took = cancelled_within(&fx, &id, closed);
    assert!(
        took < Duration::from_secs(3),
        "cancelled only after {took:?}"
    );
    let (status, body) = fx.bob.approve(&id, "too late", None);
    assert_eq!(
        status, 409,
        "approving a request whose client is gone: {body}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        fx.row("t", 1),
        Some(0),
        "the UPDATE ran for a client that is gone"
    );
}

#[test]
fn a_reset_client_cancels_its_hold() {
    let fx = Fixture::new("60s", 10);
    let mut s = login(&fx);
    let id = hold_update(&mut s);
    // A zero linger makes the close a reset.
    let reset = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    rt.block_on(async {
        s.stream.set_nonblocking(true).expect("nonblocking");
        let t = tokio::net::TcpStream::from_std(s.stream).expect("tokio stream");
        // Deprecated because a non-zero linger blocks on drop; zero never does.
        #[allow(deprecated)]
        t.set_linger(Some(Duration::ZERO)).expect("linger 0");
    });
    let took = cancelled_within(&fx, &id, reset);
    assert!(
        took < Duration::from_secs(3),
        "cancelled only after {took:?}"
    );
    let (status, body) = fx.bob.approve(&id, "too late", None);
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        fx.row("t", 1),
        Some(0),
        "the UPDATE ran for a client that is gone"
    );
}

#[test]
fn too_much_behind_a_hold_ends_the_session_and_cancels() {
    // One whole message may be up to 4 KiB: jitgate keeps 1 MiB behind a held statement.
    let fx = Fixture::with("60s", 10, |b| b.server("max_message_bytes", "4096"));
    let mut s = login(&fx);
    let id = hold_update(&mut s);
    // More than 1 MiB: the write may fail once jitgate has closed.
    let _ = s.stream.write_all(&flushes(3 << 20));
    let msgs = read_until_closed(&mut s.stream, Duration::from_secs(10));
    let f = first_error(&msgs).unwrap_or_else(|| panic!("no error: {}", summary(&msgs)));
    assert_eq!(
        (f.severity(), f.code()),
        ("FATAL", "54000"),
        "{}",
        summary(&msgs)
    );
    let r = fx.bob.wait_state(&id, "cancelled");
    assert!(
        r["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("bytes behind"),
        "{r}"
    );
    let (status, _) = fx.bob.approve(&id, "too late", None);
    assert_eq!(status, 409);
    assert_eq!(fx.row("t", 1), Some(0), "the UPDATE ran");
}
