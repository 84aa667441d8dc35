//! TLS on both sides of the proxy: client to proxy (SSLRequest, verify-full against the test CA,
//! 'N' without a certificate, GSSENCRequest refused), and proxy to upstream (disable, prefer,
//! require with ca_file).

mod support;

use std::io::{Read, Write};
use std::time::Duration;

use support::cluster::role_password;
use support::proc::output_text;
use support::wire::{self, read_until_closed};
use support::{
    ALICE, ALICE_PASSWORD, APP_TARGET, Env, PgCluster, PgTarget, TempDir, TestCa, psql, psql_ok,
    psql_query,
};

/// The one byte a server answers to an SSLRequest or GSSENCRequest.
fn negotiate(env: &Env, code: u32) -> (std::net::TcpStream, u8) {
    let mut s = wire::connect(env.jg.pg_addr());
    s.write_all(&wire::special_request(code)).unwrap();
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).expect("answer to the request");
    (s, answer[0])
}

#[test]
fn fixture_cluster_serves_app_tls_only_over_tls() {
    let cluster = PgCluster::shared();
    let conninfo = cluster.conninfo("app_tls", "app");
    let out = psql_query(
        &conninfo,
        role_password("app_tls"),
        "select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()",
    );
    assert_eq!(out, "app_tls|t");
    let plain = conninfo.replace(
        &format!(
            "sslmode=verify-full sslrootcert={}",
            cluster.ca_pem_path().display()
        ),
        "sslmode=disable",
    );
    let out = psql(&plain, role_password("app_tls"), &["-c", "select 1"]);
    assert!(
        !out.status.success(),
        "app_tls got in without TLS\n{}",
        output_text(&out)
    );
}

#[test]
fn client_tls_with_verify_full() {
    let env = Env::with(|b| b.proxy_tls());
    let ca = env.jg.ca_pem_path();
    for host in ["host=127.0.0.1", "host=localhost hostaddr=127.0.0.1"] {
        let conninfo = format!(
            "{host} port={} user={ALICE} dbname={APP_TARGET} sslmode=verify-full sslrootcert={}",
            env.jg.pg_port(),
            ca.display()
        );
        let out = psql_ok(
            &conninfo,
            ALICE_PASSWORD,
            &["-c", "\\conninfo", "-c", "select 'tls ok'"],
        );
        assert!(
            out.contains("SSL connection"),
            "{host}: not encrypted\n{out}"
        );
        assert!(out.contains("tls ok"), "{out}");
    }
    // A client that trusts another CA refuses the proxy's certificate.
    let dir = TempDir::new("otherca");
    TestCa::new("some other CA").write_cert(&dir.join("other.crt"));
    let conninfo = format!(
        "{} sslmode=verify-full sslrootcert={}",
        env.jg.conninfo_base(ALICE, APP_TARGET),
        dir.join("other.crt").display()
    );
    let out = psql(&conninfo, ALICE_PASSWORD, &["-c", "select 1"]);
    assert!(
        !out.status.success(),
        "untrusted certificate accepted\n{}",
        output_text(&out)
    );
    // Plaintext is still allowed, and sslmode=require works.
    assert_eq!(env.query("select 1"), "1");
    let require = format!(
        "{} sslmode=require",
        env.jg.conninfo_base(ALICE, APP_TARGET)
    );
    assert_eq!(psql_query(&require, ALICE_PASSWORD, "select 2"), "2");
    let (_s, answer) = negotiate(&env, wire::SSL_REQUEST);
    assert_eq!(answer, b'S');
}

#[test]
fn without_a_certificate_ssl_is_declined() {
    let env = Env::new();
    let (mut s, answer) = negotiate(&env, wire::SSL_REQUEST);
    assert_eq!(answer, b'N');
    // After 'N' the same connection carries on in plaintext, as libpq does.
    s.write_all(&wire::startup_packet(&[
        ("user", ALICE),
        ("database", APP_TARGET),
    ]))
    .unwrap();
    let (tag, _) = wire::read_message(&mut s)
        .unwrap()
        .expect("an answer to the start-up");
    assert_eq!(tag, b'R', "expected an authentication request");

    let base = env.jg.conninfo_base(ALICE, APP_TARGET);
    let out = psql(
        &format!("{base} sslmode=require"),
        ALICE_PASSWORD,
        &["-c", "select 1"],
    );
    assert!(
        !out.status.success(),
        "sslmode=require without TLS\n{}",
        output_text(&out)
    );
    let out = psql_ok(
        &format!("{base} sslmode=prefer"),
        ALICE_PASSWORD,
        &["-c", "\\conninfo", "-c", "select 'plain ok'"],
    );
    assert!(
        out.contains("plain ok") && !out.contains("SSL connection"),
        "{out}"
    );
}

#[test]
fn gssenc_request_is_declined() {
    let env = Env::with(|b| b.proxy_tls());
    let (mut s, answer) = negotiate(&env, wire::GSSENC_REQUEST);
    assert_eq!(answer, b'N');
    // The client may go on with an SSLRequest or a plain start-up on the same connection.
    s.write_all(&wire::special_request(wire::SSL_REQUEST))
        .unwrap();
    let mut answer = [0u8; 1];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(answer[0], b'S');
    let (mut s, _) = negotiate(&env, wire::GSSENC_REQUEST);
    s.write_all(&wire::startup_packet(&[
        ("user", ALICE),
        ("database", APP_TARGET),
    ]))
    .unwrap();
    let (tag, _) = wire::read_message(&mut s)
        .unwrap()
        .expect("an answer to the start-up");
    assert_eq!(tag, b'R');
    let conninfo = format!("{} gssencmode=prefer", env.alice());
    assert_eq!(psql_query(&conninfo, ALICE_PASSWORD, "select 3"), "3");
}

#[test]
fn tls_then_garbage_is_dropped() {
    let env = Env::with(|b| b.proxy_tls().server_str("startup_timeout", "2s"));
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", support::proc::pseudo_random_bytes(7, 2048)),
        (
            "a plaintext start-up",
            wire::startup_packet(&[("user", ALICE), ("database", APP_TARGET)]),
        ),
        (
            "a TLS record header with a huge length",
            vec![0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3],
        ),
        ("nothing", Vec::new()),
    ];
    for (what, bytes) in garbage {
        eprintln!("case: TLS then {what}");
        let (mut s, answer) = negotiate(&env, wire::SSL_REQUEST);
        assert_eq!(answer, b'S');
        let _ = s.write_all(&bytes);
        // Whatever TLS alert comes back, the connection must end.
        let _ = read_until_closed(&mut s, Duration::from_secs(10));
    }
    env.assert_still_serving();
}

#[test]
fn upstream_tls_require_verifies_with_ca_file() {
    let cluster = PgCluster::shared();
    let env = Env::with(|b| {
        b.target(
            PgTarget::on_cluster("tls-db", cluster, "app", "app_tls")
                .tls("require")
                .ca_file(cluster.ca_pem_path()),
        )
        .target(PgTarget::on_cluster("prefer-db", cluster, "app", "app").tls("prefer"))
        .target(PgTarget::on_cluster(
            "plain-to-tls-only",
            cluster,
            "app",
            "app_tls",
        ))
    });
    let sql = "select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()";
    let tls_db = env.jg.conninfo(ALICE, "tls-db");
    assert_eq!(psql_query(&tls_db, ALICE_PASSWORD, sql), "app_tls|t");
    let prefer = env.jg.conninfo(ALICE, "prefer-db");
    assert_eq!(psql_query(&prefer, ALICE_PASSWORD, sql), "app|t");
    // With tls = "disable" the TLS-only role is refused upstream, and the client hears of it.
    let plain = env.jg.conninfo(ALICE, "plain-to-tls-only");
    let out = psql(&plain, ALICE_PASSWORD, &["-c", "select 1"]);
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("FATAL"),
        "{}",
        output_text(&out)
    );
    env.assert_still_serving();
}

#[test]
fn upstream_tls_require_refuses_an_unknown_ca() {
    let cluster = PgCluster::shared();
    let dir = TempDir::new("wrongca");
    let wrong_ca = dir.join("wrong-ca.crt");
    TestCa::new("not the cluster's CA").write_cert(&wrong_ca);
    let env = Env::with(|b| {
        b.target(
            PgTarget::on_cluster("tls-db", cluster, "app", "app_tls")
                .tls("require")
                .ca_file(&wrong_ca),
        )
    });
    let out = psql(
        &env.jg.conninfo(ALICE, "tls-db"),
        ALICE_PASSWORD,
        &["-c", "select 1"],
    );
    assert!(
        !out.status.success(),
        "upstream certificate not verified\n{}",
        output_text(&out)
    );
    env.assert_still_serving();
}

#[test]
fn tls_on_both_sides() {
    let cluster = PgCluster::shared();
    let env = Env::with(|b| {
        b.proxy_tls().target(
            PgTarget::on_cluster("tls-db", cluster, "app", "app_tls")
                .tls("require")
                .ca_file(cluster.ca_pem_path()),
        )
    });
    let conninfo = format!(
        "{} sslmode=verify-full sslrootcert={}",
        env.jg.conninfo_base(ALICE, "tls-db"),
        env.jg.ca_pem_path().display()
    );
    let out = psql_ok(
        &conninfo,
        ALICE_PASSWORD,
        &[
            "-A",
            "-t",
            "-c",
            "\\conninfo",
            "-c",
            "select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()",
        ],
    );
    assert!(out.contains("SSL connection"), "{out}");
    assert!(out.contains("app_tls|t"), "{out}");
}
