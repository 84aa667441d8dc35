//! tokio-postgres through the proxy: prepared statements with binary parameters, transactions,
//! pipelining, cancel, notices and LISTEN/NOTIFY, the real backend pid, startup parameters,
//! big rows. Also proves
//! the cluster fixture itself by connecting to it directly.

mod support;

use std::time::Duration;

use futures_util::future::try_join_all;
use support::clients::sqlstate;
use support::cluster::role_password;
use support::wire::RawSession;
use support::{
    ALICE, ALICE_PASSWORD, APP_TARGET, Env, PgCluster, PgTarget, pg_connect,
    pg_connect_with_messages,
};
use tokio_postgres::types::Type;
use tokio_postgres::{AsyncMessage, NoTls, SimpleQueryMessage};

const T: Duration = Duration::from_secs(30);

async fn one_value(client: &tokio_postgres::Client, sql: &str) -> String {
    let rows = client.simple_query(sql).await.expect(sql);
    rows.iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("NULL").to_string()),
            _ => None,
        })
        .expect("a row")
}

#[tokio::test(flavor = "multi_thread")]
async fn fixture_direct_scram_md5_and_cleartext_roles() {
    let cluster = PgCluster::shared();
    for role in ["app", "app_md5", "app_plain"] {
        let (client, _conn) = pg_connect(&cluster.conninfo(role, "app"))
            .await
            .unwrap_or_else(|e| panic!("direct connection as {role}: {e}"));
        assert_eq!(one_value(&client, "select current_user").await, role);
    }
    let stored = cluster.superuser_psql(
        "select rolname || ' ' || case when rolpassword like 'SCRAM-SHA-256$%' then 'scram' \
         when rolpassword like 'md5%' then 'md5' end from pg_authid \
         where rolname in ('app', 'app_md5') order by 1;",
    );
    assert_eq!(stored, "app scram\napp_md5 md5");
    // A wrong password is refused directly, so the proxy tests below mean something.
    let wrong = cluster
        .conninfo("app", "app")
        .replace(role_password("app"), "wrong");
    let Err(err) = pg_connect(&wrong).await else {
        panic!("wrong password accepted");
    };
    assert_eq!(sqlstate(&err).as_deref(), Some("28P01"));
}

#[tokio::test(flavor = "multi_thread")]
async fn prepared_statements_with_binary_parameters() {
    let env = Env::new();
    let (client, _conn) = pg_connect(&env.alice_tokio()).await.expect("connect");
    client
        .batch_execute(
            "create table t (id int4 primary key, big int8, name text, data bytea, \
             ratio float8, ok bool)",
        )
        .await
        .unwrap();
    let insert = client
        .prepare_typed(
            "insert into t values ($1, $2, $3, $4, $5, $6)",
            &[
                Type::INT4,
                Type::INT8,
                Type::TEXT,
                Type::BYTEA,
                Type::FLOAT8,
                Type::BOOL,
            ],
        )
        .await
        .unwrap();
    let blob: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    type Row<'a> = (
        i32,
        Option<i64>,
        Option<&'a str>,
        Option<&'a [u8]>,
        Option<f64>,
        Option<bool>,
    );
    let rows: Vec<Row> = vec![
        (
            1,
            Some(i64::MAX),
            Some("héllo wörld"),
            Some(&blob[..]),
            Some(-1.5e300),
            Some(true),
        ),
        (
            2,
            Some(i64::MIN),
            Some(""),
            Some(&[][..]),
            Some(0.1),
            Some(false),
        ),
        (3, None, None, None, None, None),
    ];
    for r in &rows {
        let n = client
            .execute(&insert, &[&r.0, &r.1, &r.2, &r.3, &r.4, &r.5])
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    let select = client
        .prepare("select id, big, name, data, ratio, ok from t where id = $1")
        .await
        .unwrap();
    for r in &rows {
        let row = client.query_one(&select, &[&r.0]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), r.0);
        assert_eq!(row.get::<_, Option<i64>>(1), r.1);
        assert_eq!(row.get::<_, Option<&str>>(2), r.2);
        assert_eq!(row.get::<_, Option<&[u8]>>(3), r.3);
        assert_eq!(row.get::<_, Option<f64>>(4), r.4);
        assert_eq!(row.get::<_, Option<bool>>(5), r.5);
    }
    // A statement prepared once runs many times; an unknown-type error keeps the session usable.
    let count: i64 = client
        .query_one(
            "select count(*) from t where big is null or big > $1",
            &[&0i64],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
    let err = client
        .query("select * from t where id = $1", &[&"not an int"])
        .await
        .expect_err("wrong parameter type");
    assert!(
        sqlstate(&err).is_none(),
        "client-side type error expected: {err}"
    );
    let err = client
        .query("select 1 / $1::int4", &[&0i32])
        .await
        .expect_err("division by zero");
    assert_eq!(sqlstate(&err).as_deref(), Some("22012"));
    assert_eq!(one_value(&client, "select 7").await, "7");
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_commit_and_rollback() {
    let env = Env::new();
    let (mut a, _c1) = pg_connect(&env.alice_tokio()).await.expect("connect a");
    let (b, _c2) = pg_connect(&env.alice_tokio()).await.expect("connect b");
    a.batch_execute("create table k (v int)").await.unwrap();

    let tx = a.transaction().await.unwrap();
    tx.execute("insert into k values (1)", &[]).await.unwrap();
    let seen: i64 = b
        .query_one("select count(*) from k", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 0, "uncommitted row visible to another session");
    tx.commit().await.unwrap();
    let seen: i64 = b
        .query_one("select count(*) from k", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 1, "committed row not visible");

    let tx = a.transaction().await.unwrap();
    tx.execute("insert into k values (2)", &[]).await.unwrap();
    tx.rollback().await.unwrap();
    let sum: i64 = b
        .query_one("select sum(v) from k", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, 1, "rolled-back row visible");

    // An error aborts the transaction exactly as Postgres does.
    let tx = a.transaction().await.unwrap();
    tx.execute("insert into k values (3)", &[]).await.unwrap();
    let err = tx
        .execute("insert into nope values (1)", &[])
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("42P01"));
    let err = tx.execute("select 1", &[]).await.unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("25P02"));
    tx.rollback().await.unwrap();
    let sum: i64 = a
        .query_one("select sum(v) from k", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn pipelined_queries_resolve_in_order() {
    let env = Env::new();
    let (client, _conn) = pg_connect(&env.alice_tokio()).await.expect("connect");
    let stmt = client
        .prepare("select $1::int8 * 2, pg_backend_pid()")
        .await
        .unwrap();
    // All of these are written before the first answer is read.
    let queries = (0..200i64).map(|i| {
        let client = &client;
        let stmt = &stmt;
        async move {
            let row = client.query_one(stmt, &[&i]).await?;
            Ok::<_, tokio_postgres::Error>((i, row.get::<_, i64>(0), row.get::<_, i32>(1)))
        }
    });
    let results = try_join_all(queries).await.expect("pipelined batch");
    assert_eq!(results.len(), 200);
    for (i, doubled, _) in &results {
        assert_eq!(*doubled, i * 2);
    }
    let pids: std::collections::BTreeSet<i32> = results.iter().map(|r| r.2).collect();
    assert_eq!(pids.len(), 1, "one upstream backend per client session");

    // Mixed statement kinds in one pipeline, with an error in the middle.
    let (a, b, c) = tokio::join!(
        client.query_one("select 'a'::text", &[]),
        client.query_one("select 1/0", &[]),
        client.query_one("select $1::text || 'c'", &[&"c"]),
    );
    assert_eq!(a.unwrap().get::<_, &str>(0), "a");
    assert_eq!(sqlstate(&b.unwrap_err()).as_deref(), Some("22012"));
    assert_eq!(c.unwrap().get::<_, &str>(0), "cc");
}

/// Runs `pg_sleep(30)` as `app` over `conninfo`, cancels it with the client's cancel token,
/// and expects 57014 soon after.
async fn assert_cancel_token_cancels(conninfo: &str, app: &'static str) {
    let conninfo = format!("{conninfo} application_name={app}");
    let (client, _conn) = pg_connect(&conninfo).await.expect("connect");
    let token = client.cancel_token();
    let sleeper = tokio::spawn(async move { client.simple_query("select pg_sleep(30)").await });
    let cluster = PgCluster::shared();
    tokio::task::spawn_blocking(move || cluster.wait_active(app))
        .await
        .unwrap();
    // The cancel goes to the address the client connected to, with the key it was handed.
    token.cancel_query(NoTls).await.expect("send cancel");
    let result = tokio::time::timeout(T, sleeper)
        .await
        .expect("query still running after cancel")
        .unwrap();
    let err = result.expect_err("pg_sleep was not cancelled");
    assert_eq!(sqlstate(&err).as_deref(), Some("57014"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fixture_cancel_token_against_postgres() {
    let conninfo = PgCluster::shared().conninfo("app", "app");
    assert_cancel_token_cancels(&conninfo, "cancel-direct").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_token_cancels_pg_sleep() {
    let env = Env::new();
    assert_cancel_token_cancels(&env.alice_tokio(), "cancel-token-test").await;
    let (client, _conn) = pg_connect(&env.alice_tokio()).await.expect("connect");
    assert_eq!(
        one_value(&client, "select 'after cancel'").await,
        "after cancel"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn notices_and_listen_notify() {
    let env = Env::new();
    let (listener, mut messages) = pg_connect_with_messages(&env.alice_tokio())
        .await
        .expect("connect listener");
    let (notifier, _conn) = pg_connect(&env.alice_tokio())
        .await
        .expect("connect notifier");

    listener
        .batch_execute("DO $$ BEGIN RAISE NOTICE 'hi from %', 'plpgsql'; END $$")
        .await
        .unwrap();
    match tokio::time::timeout(T, messages.recv())
        .await
        .expect("notice")
    {
        Some(Ok(AsyncMessage::Notice(n))) => {
            assert_eq!(n.message(), "hi from plpgsql");
            assert_eq!(n.severity(), "NOTICE");
        }
        other => panic!("expected a notice, got {other:?}"),
    }

    listener.batch_execute("LISTEN jobs").await.unwrap();
    notifier
        .batch_execute("NOTIFY jobs, 'payload-1'; SELECT pg_notify('jobs', 'payload-2')")
        .await
        .unwrap();
    let listener_pid = one_value(&listener, "select pg_backend_pid()").await;
    let mut got = Vec::new();
    while got.len() < 2 {
        match tokio::time::timeout(T, messages.recv())
            .await
            .expect("notification")
        {
            Some(Ok(AsyncMessage::Notification(n))) => {
                assert_eq!(n.channel(), "jobs");
                assert_ne!(
                    n.process_id().to_string(),
                    listener_pid,
                    "sender is the notifier"
                );
                got.push(n.payload().to_string());
            }
            other => panic!("expected a notification, got {other:?}"),
        }
    }
    assert_eq!(got, ["payload-1", "payload-2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn startup_parameters_are_forwarded() {
    let env = Env::new();
    let conninfo = format!(
        "{} application_name=fwd-test options='-c statement_timeout=4321 -c search_path=pg_catalog'",
        env.alice_tokio()
    );
    let (client, _conn) = pg_connect(&conninfo).await.expect("connect");
    assert_eq!(
        one_value(&client, "show application_name").await,
        "fwd-test"
    );
    assert_eq!(one_value(&client, "show statement_timeout").await, "4321ms");
    assert_eq!(one_value(&client, "show search_path").await, "pg_catalog");
    assert_eq!(one_value(&client, "select current_user").await, "app");
    assert_eq!(
        one_value(&client, "select current_database()").await,
        env.db
    );
    assert_eq!(one_value(&client, "show client_encoding").await, "UTF8");
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_md5_cleartext_and_password_env() {
    let env = Env::with(|b| {
        let cluster = PgCluster::shared();
        let weak = |mut t: PgTarget| {
            t.extra.push("allow_weak_auth = true".into());
            t
        };
        b.target(weak(PgTarget::on_cluster(
            "md5-db", cluster, "app", "app_md5",
        )))
        .target(weak(PgTarget::on_cluster(
            "plain-db",
            cluster,
            "app",
            "app_plain",
        )))
        .target(
            PgTarget::on_cluster("env-db", cluster, "app", "app")
                .password_env("JITGATE_TEST_APP_PASSWORD"),
        )
    });
    for (target, role) in [
        ("app-db", "app"),
        ("md5-db", "app_md5"),
        ("plain-db", "app_plain"),
        ("env-db", "app"),
    ] {
        let conninfo = format!(
            "{} password={ALICE_PASSWORD}",
            env.jg.conninfo(ALICE, target)
        );
        let (client, _conn) = pg_connect(&conninfo)
            .await
            .unwrap_or_else(|e| panic!("through the proxy to {target}: {e}"));
        assert_eq!(
            one_value(&client, "select current_user").await,
            role,
            "{target}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn large_rows_stream_past_max_message_bytes() {
    let env = Env::with(|b| b.server("max_message_bytes", "1048576"));
    let (client, _conn) = pg_connect(&env.alice_tokio()).await.expect("connect");
    // A 4 MiB DataRow and 200k small rows: results are never limited by max_message_bytes.
    let row = client
        .query_one("select repeat('x', 4 * 1024 * 1024) as big", &[])
        .await
        .expect("big row");
    assert_eq!(row.get::<_, &str>(0).len(), 4 * 1024 * 1024);
    let rows = client
        .query("select g from generate_series(1, 200000) g", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 200_000);
    assert_eq!(rows[199_999].get::<_, i32>(0), 200_000);
    env.assert_still_serving();
}

/// The client's BackendKeyData names its real upstream backend, so its own notifications and
/// `pg_backend_pid()` agree with it, as they would directly.
#[test]
fn clients_see_their_real_backend_pid() {
    let env = Env::new();
    let mut session =
        RawSession::login(env.jg.pg_addr(), ALICE, APP_TARGET, ALICE_PASSWORD, &[]).expect("login");
    let pid = session.backend_pid;
    let reported = RawSession::first_column(&session.query("select pg_backend_pid()"));
    assert_eq!(reported, [Some(pid.to_string())]);
    let seen = PgCluster::shared().superuser_psql(&format!(
        "select count(*) from pg_stat_activity where pid = {pid} and usename = 'app'"
    ));
    assert_eq!(seen.trim(), "1", "the pid is the upstream backend's");
    let messages = session.query("LISTEN own; NOTIFY own, 'mine'");
    let notification = messages
        .iter()
        .find(|(tag, _)| *tag == b'A')
        .map(|(_, body)| body.clone())
        .expect("a NotificationResponse");
    let sender = u32::from_be_bytes(notification[0..4].try_into().expect("a pid"));
    assert_eq!(sender, pid, "the client recognises its own notification");
    session.close();
}

#[tokio::test(flavor = "multi_thread")]
async fn terminating_its_own_backend_ends_the_session_with_57p01() {
    let env = Env::new();
    let (client, _conn) = pg_connect(&env.alice_tokio()).await.expect("connect");
    let e = client
        .simple_query("select pg_terminate_backend(pg_backend_pid())")
        .await
        .expect_err("the session's own backend is terminated");
    assert_eq!(sqlstate(&e).as_deref(), Some("57P01"), "{e}");
    assert!(client.is_closed() || client.simple_query("select 1").await.is_err());
}
