//! Bad input at the Postgres listener: failed logins, malformed packets, bad lengths, an
//! oversize Query, too many connections. Each gets the right error and a closed connection,
//! and the proxy keeps serving everyone else.

mod support;

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use support::clients::sqlstate;
use support::cluster::role_password;
use support::proc::{output_text, pseudo_random_bytes};
use support::wire::{self, Fields, RawSession, first_error, read_until_closed};
use support::{ALICE, ALICE_PASSWORD, APP_TARGET, Env, PgCluster, pg_connect, psql};

const CLOSE_WITHIN: Duration = Duration::from_secs(10);

fn login(
    env: &Env,
    user: &str,
    target: &str,
    password: &str,
) -> Result<RawSession, wire::LoginRefused> {
    RawSession::login(env.jg.pg_addr(), user, target, password, &[])
}

/// The error of something that must fail.
fn refused<T, E>(result: Result<T, E>, what: &str) -> E {
    match result {
        Ok(_) => panic!("{what} was accepted"),
        Err(e) => e,
    }
}

/// The message with the user's name blanked, so refusals for different users compare equal.
fn without_user(fields: &Fields, user: &str) -> Fields {
    let mut f = fields.clone();
    if let Some(m) = f.0.get_mut(&'M') {
        *m = m.replace(&format!("\"{user}\""), "\"USER\"");
    }
    f
}

#[test]
fn wrong_password_and_unknown_user_are_refused_identically() {
    let env = Env::new();
    let ok = login(&env, ALICE, APP_TARGET, ALICE_PASSWORD).expect("alice's own password");
    assert_eq!(
        ok.auth, "SCRAM-SHA-256",
        "clients authenticate to the proxy by SCRAM"
    );
    ok.close();
    let wrong = refused(
        login(&env, ALICE, APP_TARGET, "not-her-password"),
        "wrong password",
    );
    let unknown = refused(
        login(&env, "mallory", APP_TARGET, "whatever"),
        "unknown user",
    );
    for (refusal, user) in [(&wrong, ALICE), (&unknown, "mallory")] {
        assert_eq!(refusal.fields.severity(), "FATAL", "{refusal:?}");
        assert_eq!(refusal.fields.code(), "28P01", "{refusal:?}");
        assert_eq!(
            refusal.fields.message(),
            format!("password authentication failed for user \"{user}\"")
        );
    }
    // Same stage of the SCRAM exchange, same fields: nothing tells the two apart.
    assert_eq!(wrong.stage, unknown.stage);
    assert_eq!(
        without_user(&wrong.fields, ALICE),
        without_user(&unknown.fields, "mallory")
    );

    let out = psql(&env.alice(), "not-her-password", &["-c", "select 1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("FATAL:  password authentication failed for user \"alice\""),
        "{}",
        output_text(&out)
    );
    env.assert_still_serving();
}

#[test]
fn unknown_target_is_a_missing_database() {
    let env = Env::new();
    let r = refused(
        login(&env, ALICE, "no-such-target", ALICE_PASSWORD),
        "unknown target",
    );
    assert_eq!(r.fields.severity(), "FATAL");
    assert_eq!(r.fields.code(), "3D000");
    assert_eq!(
        r.fields.message(),
        "database \"no-such-target\" does not exist"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let conninfo = format!(
        "{} password={ALICE_PASSWORD}",
        env.jg.conninfo(ALICE, "nope")
    );
    let err = refused(rt.block_on(pg_connect(&conninfo)), "unknown target");
    assert_eq!(sqlstate(&err).as_deref(), Some("3D000"), "{err}");
    env.assert_still_serving();
}

/// How a malformed start-up case ends the client's side.
#[derive(Clone, Copy, PartialEq)]
enum Then {
    /// Nothing more: the bytes alone must get the connection closed.
    Wait,
    /// Half-close: the proxy sees end-of-stream mid-packet.
    HalfClose,
    /// Nothing more, and only the start-up timeout can end it (Postgres waits 60 s here).
    TimeoutOnly,
}

fn malformed_startup_cases() -> Vec<(String, Vec<u8>, Then)> {
    let mut cases: Vec<(String, Vec<u8>, Then)> = Vec::new();
    for seed in 1..=4u64 {
        let mut bytes = pseudo_random_bytes(seed, 1024);
        bytes[0] |= 0x40; // a length far beyond any start-up packet
        cases.push((format!("random bytes #{seed}"), bytes, Then::Wait));
        // Unconstrained random bytes: whatever they parse as, the start-up timeout ends them.
        let bytes = pseudo_random_bytes(seed * 77, 300);
        cases.push((format!("raw random #{seed}"), bytes, Then::TimeoutOnly));
    }
    let full = wire::startup_packet(&[("user", ALICE), ("database", APP_TARGET)]);
    let half = full[..full.len() / 2].to_vec();
    let fixed: [(&str, Vec<u8>, Then); 12] = [
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            Then::Wait,
        ),
        ("zero length", vec![0, 0, 0, 0], Then::Wait),
        (
            "zero length, more bytes",
            vec![0, 0, 0, 0, 0, 3, 0, 0, 0],
            Then::Wait,
        ),
        ("length 4", vec![0, 0, 0, 4], Then::Wait),
        ("length 2^31", vec![0x80, 0, 0, 0, 0, 3, 0, 0], Then::Wait),
        (
            "length 2^31-1",
            vec![0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0],
            Then::Wait,
        ),
        ("length 2^32-1", vec![0xff; 8], Then::Wait),
        (
            "unknown protocol",
            vec![0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78],
            Then::Wait,
        ),
        (
            "truncated start-up, half-closed",
            half.clone(),
            Then::HalfClose,
        ),
        ("truncated start-up, left open", half, Then::TimeoutOnly),
        ("length header only", full[..4].to_vec(), Then::TimeoutOnly),
        ("nothing at all", Vec::new(), Then::TimeoutOnly),
    ];
    cases.extend(fixed.into_iter().map(|(w, b, t)| (w.to_string(), b, t)));
    cases
}

/// Sends `bytes` as the first thing on a new connection to `addr` and asserts the server closes
/// it, with at most a protocol-violation error.
fn assert_dropped(addr: SocketAddr, what: &str, bytes: &[u8], then: Then) {
    let mut s = wire::connect(addr);
    let _ = s.write_all(bytes);
    if then == Then::HalfClose {
        let _ = s.shutdown(Shutdown::Write);
    }
    let messages = read_until_closed(&mut s, CLOSE_WITHIN);
    if let Some(e) = first_error(&messages) {
        assert!(
            ["08P01", "0A000"].contains(&e.code()),
            "{what}: unexpected error {e:?}"
        );
    }
    assert!(
        messages.iter().all(|(t, _)| *t == b'E'),
        "{what}: the server answered more than an error: {}",
        wire::summary(&messages)
    );
}

fn run_cases(addr: SocketAddr, cases: &[(String, Vec<u8>, Then)]) {
    std::thread::scope(|scope| {
        for (what, bytes, then) in cases {
            scope.spawn(move || assert_dropped(addr, what, bytes, *then));
        }
    });
}

#[test]
fn fixture_postgres_itself_drops_malformed_startup_packets() {
    // The same expectations hold for a real server: the test asks of the proxy what Postgres does.
    let cluster = PgCluster::shared();
    let addr: SocketAddr = cluster.addr().parse().unwrap();
    let mut cases = malformed_startup_cases();
    cases.retain(|c| c.2 != Then::TimeoutOnly);
    run_cases(addr, &cases);
    // And the raw SCRAM client used below works against it.
    let mut s = RawSession::login(addr, "app", "app", role_password("app"), &[]).expect("login");
    assert_eq!(
        RawSession::first_column(&s.query("select 'raw'")),
        [Some("raw".into())]
    );
    let r = refused(
        RawSession::login(addr, "app", "app", "wrong", &[]),
        "wrong password",
    );
    assert_eq!((r.stage, r.fields.code()), ("sasl-final", "28P01"));
}

#[test]
fn malformed_startup_packets_are_dropped() {
    let env = Env::with(|b| b.server_str("startup_timeout", "2s"));
    run_cases(env.jg.pg_addr(), &malformed_startup_cases());
    env.assert_still_serving();
}

/// Logs in with `login`, then sends each malformed frame and asserts the session is closed,
/// at most with a protocol-violation (or message-too-large) error.
fn assert_bad_frames_dropped(login: impl Fn() -> RawSession) {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("zero length", vec![b'Q', 0, 0, 0, 0]),
        ("length 3", vec![b'Q', 0, 0, 0, 3]),
        ("length 2^31", vec![b'Q', 0x80, 0, 0, 0, b's', b'e', b'l']),
        ("length 2^32-1", vec![b'P', 0xff, 0xff, 0xff, 0xff, 0]),
        ("unknown message type", wire::message(b'z', b"junk")),
    ];
    for (what, bytes) in cases {
        let mut session = login();
        let rows = RawSession::first_column(&session.query("select 'ok'"));
        assert_eq!(rows, [Some("ok".to_string())]);
        let _ = session.stream.write_all(&bytes);
        let messages = read_until_closed(&mut session.stream, CLOSE_WITHIN);
        if let Some(e) = first_error(&messages) {
            // 54000 when the length alone exceeds max_message_bytes.
            assert!(["08P01", "54000"].contains(&e.code()), "{what}: {e:?}");
        }
    }
}

#[test]
fn fixture_postgres_itself_drops_bad_frames() {
    let cluster = PgCluster::shared();
    let addr: SocketAddr = cluster.addr().parse().unwrap();
    assert_bad_frames_dropped(|| {
        RawSession::login(addr, "app", "app", role_password("app"), &[]).expect("login")
    });
}

#[test]
fn bad_frames_after_login_close_the_session() {
    let env = Env::new();
    assert_bad_frames_dropped(|| login(&env, ALICE, APP_TARGET, ALICE_PASSWORD).expect("login"));
    env.assert_still_serving();
}

#[test]
fn oversize_query_gets_54000_and_the_connection_closes() {
    let env = Env::with(|b| b.server("max_message_bytes", "1048576"));
    // Just under the limit passes.
    let near = format!("select length('{}')", "x".repeat(1_000_000));
    let mut session = login(&env, ALICE, APP_TARGET, ALICE_PASSWORD).expect("login");
    let rows = RawSession::first_column(&session.query(&near));
    assert_eq!(rows, [Some("1000000".to_string())]);

    // 2 MiB: written by one thread while this one reads what comes back.
    let big = wire::query_message(&format!("select '{}'", "y".repeat(2 << 20)));
    let mut writer = session.stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&big);
    });
    let messages = read_until_closed(&mut session.stream, Duration::from_secs(20));
    let _ = sender.join();
    let error = first_error(&messages).expect("no ErrorResponse for an oversize Query");
    assert_eq!(error.code(), "54000", "{error:?}");

    // The same through a driver, for Query and for Parse.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let huge = format!("select '{}'", "z".repeat(2 << 20));
        let (client, conn) = pg_connect(&env.alice_tokio()).await.expect("connect");
        let err = refused(client.simple_query(&huge).await, "oversize Query");
        assert_eq!(sqlstate(&err).as_deref(), Some("54000"), "{err}");
        let _ = tokio::time::timeout(CLOSE_WITHIN, conn)
            .await
            .expect("connection not closed");
        let (client, conn) = pg_connect(&env.alice_tokio()).await.expect("connect");
        let err = refused(client.prepare(&huge).await, "oversize Parse");
        assert_eq!(sqlstate(&err).as_deref(), Some("54000"), "{err}");
        let _ = tokio::time::timeout(CLOSE_WITHIN, conn)
            .await
            .expect("connection not closed");
    });
    env.assert_still_serving();
}

#[test]
fn over_max_connections_gets_53300() {
    let env = Env::with(|b| b.server("max_connections", "3"));
    let mut sessions: Vec<RawSession> = (0..3)
        .map(|i| {
            login(&env, ALICE, APP_TARGET, ALICE_PASSWORD)
                .unwrap_or_else(|e| panic!("session {i} within the limit refused: {e:?}"))
        })
        .collect();
    // Refused before or after authentication (Postgres refuses before), but refused.
    let error = refused(
        login(&env, ALICE, APP_TARGET, ALICE_PASSWORD),
        "a session over max_connections",
    )
    .fields;
    assert_eq!(
        (error.severity(), error.code()),
        ("FATAL", "53300"),
        "{error:?}"
    );
    // The sessions inside the limit are unharmed, and a freed slot is usable again.
    let rows = RawSession::first_column(&sessions[0].query("select 'still'"));
    assert_eq!(rows, [Some("still".to_string())]);
    sessions.pop().unwrap().close();
    let again = support::wait_until("a freed connection slot", Duration::from_secs(10), || {
        login(&env, ALICE, APP_TARGET, ALICE_PASSWORD).ok()
    });
    again.close();
}

#[test]
fn idle_sockets_never_take_the_slots_of_users_who_log_in() {
    let env = Env::with(|b| {
        b.server("max_connections", "4")
            .server("max_unauthenticated_per_source", "8")
    });
    // Sockets that connect and say nothing hold places among the unauthenticated only.
    let mut idle: Vec<std::net::TcpStream> = (0..6)
        .map(|_| std::net::TcpStream::connect(env.jg.pg_addr()).expect("connect"))
        .collect();
    let mut sessions: Vec<RawSession> = (0..3)
        .map(|i| {
            login(&env, ALICE, APP_TARGET, ALICE_PASSWORD)
                .unwrap_or_else(|e| panic!("login {i} beside six idle sockets refused: {e:?}"))
        })
        .collect();
    // Sessions no longer count among the unauthenticated: two more idle sockets fill the
    // source's eight places, and the next connection from it is refused before it logs in.
    for _ in 0..2 {
        idle.push(std::net::TcpStream::connect(env.jg.pg_addr()).expect("connect"));
    }
    let error = refused(
        login(&env, ALICE, APP_TARGET, ALICE_PASSWORD),
        "a login over max_unauthenticated_per_source",
    );
    assert_eq!(error.stage, "startup", "{error:?}");
    assert_eq!(
        (error.fields.severity(), error.fields.code()),
        ("FATAL", "53300"),
        "{error:?}"
    );
    let rows = RawSession::first_column(&sessions[0].query("select 'still'"));
    assert_eq!(rows, [Some("still".to_string())]);
    // The idle sockets go: the fourth session slot is free for a user.
    drop(idle);
    let fourth = support::wait_until(
        "a free unauthenticated place",
        Duration::from_secs(10),
        || login(&env, ALICE, APP_TARGET, ALICE_PASSWORD).ok(),
    );
    sessions.push(fourth);
    let error = refused(
        login(&env, ALICE, APP_TARGET, ALICE_PASSWORD),
        "a fifth session over max_connections",
    )
    .fields;
    assert_eq!((error.severity(), error.code()), ("FATAL", "53300"));
    for s in sessions {
        s.close();
    }
}

/// A Query of `len` bytes of text: a comment padding `SELECT 'done'`.
fn big_query(len: usize) -> Vec<u8> {
    let mut sql = String::from("SELECT 'done' -- ");
    sql.extend(std::iter::repeat_n('x', len - sql.len()));
    wire::query_message(&sql)
}

#[test]
fn incomplete_large_messages_share_one_memory_budget() {
    let env = Env::with(|b| {
        b.server("max_message_bytes", "2097152")
            .server("message_memory_bytes", "3145728")
    });
    // A starts a 2 MiB Query and stops halfway: it holds 2 MiB of the 3 MiB budget.
    let mut a = login(&env, ALICE, APP_TARGET, ALICE_PASSWORD).expect("login a");
    let a_query = big_query((2 << 20) - 64);
    let half = a_query.len() / 2;
    a.stream.write_all(&a_query[..half]).expect("first half");
    std::thread::sleep(Duration::from_millis(300));
    // B's 2 MiB Query does not fit: 53200, and B's connection closes.
    let mut b = login(&env, ALICE, APP_TARGET, ALICE_PASSWORD).expect("login b");
    let _ = b.stream.write_all(&big_query((2 << 20) - 64));
    let answer = read_until_closed(&mut b.stream, CLOSE_WITHIN);
    let error = first_error(&answer).expect("an error for b");
    assert_eq!(
        (error.severity(), error.code()),
        ("FATAL", "53200"),
        "{error:?}"
    );
    // A finishes its message and is served; then the budget is free again for anyone.
    a.stream.write_all(&a_query[half..]).expect("second half");
    let rows = RawSession::first_column(&wire::read_until(&mut a.stream, b'Z'));
    assert_eq!(rows, [Some("done".to_string())]);
    let mut c = login(&env, ALICE, APP_TARGET, ALICE_PASSWORD).expect("login c");
    c.stream
        .write_all(&big_query((2 << 20) - 64))
        .expect("send");
    let rows = RawSession::first_column(&wire::read_until(&mut c.stream, b'Z'));
    assert_eq!(rows, [Some("done".to_string())]);
    a.close();
    c.close();
}
