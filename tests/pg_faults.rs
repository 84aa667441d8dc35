//! Faults and lifecycle: an upstream backend killed mid-session, a client killed mid-query, an
//! unreachable upstream, and SIGTERM/SIGINT draining.

mod support;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use support::clients::sqlstate;
use support::proc::{free_port, output_text};
use support::wire::{self, RawSession, first_error, read_until_closed};
use support::{
    ALICE, ALICE_PASSWORD, APP_TARGET, Env, PgCluster, PgTarget, pg_connect, psql, psql_cmd,
    send_signal, wait_until,
};

const T: Duration = Duration::from_secs(15);

/// Terminates the one upstream backend whose application_name is `app`.
fn terminate_backend(cluster: &PgCluster, app: &str) {
    let pids = wait_until(&format!("the backend of {app}"), T, || {
        let pids = cluster.backends_named(app);
        (!pids.is_empty()).then_some(pids)
    });
    assert_eq!(pids.len(), 1, "one upstream backend per session: {pids:?}");
    let out = cluster.superuser_psql(&format!("select pg_terminate_backend({});", pids[0]));
    assert_eq!(out, "t");
}

/// A clean end for a proxied session: an admin-shutdown error or a closed connection.
fn assert_clean_end(err: &tokio_postgres::Error) {
    let code = sqlstate(err);
    assert!(
        code.as_deref() == Some("57P01") || err.is_closed() || code.is_none(),
        "unexpected error after the upstream died: {err}"
    );
}

#[test]
fn upstream_killed_while_idle() {
    let env = Env::new();
    let app = "victim-idle";
    let mut bystander = RawSession::login(env.jg.pg_addr(), ALICE, APP_TARGET, ALICE_PASSWORD, &[])
        .expect("bystander login");
    let mut victim = RawSession::login(
        env.jg.pg_addr(),
        ALICE,
        APP_TARGET,
        ALICE_PASSWORD,
        &[("application_name", app)],
    )
    .expect("victim login");
    assert_eq!(
        RawSession::first_column(&victim.query("select 1")),
        [Some("1".into())]
    );
    terminate_backend(env.cluster, app);
    // Postgres tells an idle client FATAL 57P01; the proxy passes it on, then closes.
    let messages = read_until_closed(&mut victim.stream, T);
    if let Some(e) = first_error(&messages) {
        assert_eq!((e.severity(), e.code()), ("FATAL", "57P01"), "{e:?}");
    }
    let rows = RawSession::first_column(&bystander.query("select 'unharmed'"));
    assert_eq!(rows, [Some("unharmed".into())]);
    env.assert_still_serving();
}

#[test]
fn upstream_killed_mid_query() {
    let env = Env::new();
    let app = "victim-busy";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (client, conn) = rt
        .block_on(pg_connect(&format!(
            "{} application_name={app}",
            env.alice_tokio()
        )))
        .expect("connect");
    let query = rt.spawn(async move {
        let result = client.simple_query("select pg_sleep(30)").await.map(|_| ());
        (result, client)
    });
    env.cluster.wait_active(app);
    terminate_backend(env.cluster, app);
    let (result, client) = rt
        .block_on(async { tokio::time::timeout(T, query).await })
        .expect("query still running after its backend died")
        .unwrap();
    assert_clean_end(&result.expect_err("pg_sleep finished despite its backend dying"));
    // The session is over; the connection ends rather than hanging.
    let next =
        rt.block_on(async { tokio::time::timeout(T, client.simple_query("select 1")).await });
    assert!(
        matches!(next, Ok(Err(_))),
        "session still usable after its backend died"
    );
    rt.block_on(async { tokio::time::timeout(T, conn).await })
        .expect("client connection not closed")
        .unwrap()
        .ok();
    env.assert_still_serving();
}

#[test]
fn client_killed_mid_query_frees_its_backend() {
    let env = Env::new();
    let app = "victim-client";
    let mut child = psql_cmd(
        &format!("{} application_name={app}", env.alice()),
        ALICE_PASSWORD,
    )
    .args(["-c", "select pg_sleep(60)"])
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn psql");
    env.cluster.wait_active(app);
    send_signal(child.id(), "KILL");
    let _ = child.wait();
    wait_until(
        "the upstream backend of a killed client to go away",
        Duration::from_secs(10),
        || env.cluster.backends_named(app).is_empty().then_some(()),
    );
    env.assert_still_serving();
}

#[test]
fn unreachable_upstream_gives_an_error() {
    let cluster = PgCluster::shared();
    let env = Env::with(|b| {
        let mut dead = PgTarget::on_cluster("dead-db", cluster, "app", "app");
        dead.address = format!("127.0.0.1:{}", free_port());
        b.target(dead)
    });
    let out = psql(
        &env.jg.conninfo(ALICE, "dead-db"),
        ALICE_PASSWORD,
        &["-c", "select 1"],
    );
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FATAL"),
        "{}",
        output_text(&out)
    );
    env.assert_still_serving();
}

/// True when a new connection to the proxy is refused or ended before authentication starts.
fn new_connections_refused(env: &Env) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(env.jg.pg_addr()) else {
        return true;
    };
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let startup = wire::startup_packet(&[("user", ALICE), ("database", APP_TARGET)]);
    if s.write_all(&startup).is_err() {
        return true;
    }
    let mut tag = [0u8; 1];
    !matches!(s.read(&mut tag), Ok(1) if tag[0] == b'R')
}

#[test]
fn sigterm_drains_then_ends_sessions_with_57p01() {
    let mut env = Env::with(|b| b.server_str("drain_timeout", "3s"));
    let mut session =
        RawSession::login(env.jg.pg_addr(), ALICE, APP_TARGET, ALICE_PASSWORD, &[]).expect("login");
    let begin = session.query("begin");
    assert_eq!(
        begin.last().map(|(_, b)| b[0]),
        Some(b'T'),
        "not in a transaction"
    );
    env.jg.kill("TERM");
    // Draining: the open transaction can go on for now.
    let rows = RawSession::first_column(&session.query("select 'still draining'"));
    assert_eq!(rows, [Some("still draining".into())]);
    wait_until("new connections to be refused", T, || {
        new_connections_refused(&env).then_some(())
    });
    // At the drain timeout the session is ended as Postgres would end it.
    let messages = read_until_closed(&mut session.stream, Duration::from_secs(30));
    let error = first_error(&messages).expect("no ErrorResponse at the end of the drain");
    assert_eq!(
        (error.severity(), error.code()),
        ("FATAL", "57P01"),
        "{error:?}"
    );
    let status = env
        .jg
        .wait_exit(T)
        .expect("jitgate still running after the drain");
    assert!(
        status.success(),
        "exit status {status}\n{}",
        env.jg.log_tail(40)
    );
}

#[test]
fn sigint_with_no_sessions_exits_cleanly() {
    let mut env = Env::with(|b| b.server_str("drain_timeout", "30s"));
    assert_eq!(env.query("select 1"), "1");
    env.jg.kill("INT");
    let status = env
        .jg
        .wait_exit(T)
        .expect("jitgate still running after SIGINT");
    assert!(
        status.success(),
        "exit status {status}\n{}",
        env.jg.log_tail(40)
    );
    assert!(new_connections_refused(&env));
}
