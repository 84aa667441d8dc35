//! Protocol version negotiation as PostgreSQL does it, with PostgreSQL 15 itself as the oracle:
//! the same startup packet goes to the cluster directly and to jitgate, and the answers must be
//! the same bytes (NegotiateProtocolVersion) or the same FATAL (a major version other than 3).
//! After negotiating down to 3.0 the session works; libpq 18 (psycopg's wheel) with
//! `max_protocol_version=3.2` connects through jitgate as it does directly.

mod support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use support::cluster::role_password;
use support::drivers::python_packages;
use support::wire::{self, Fields, RawSession};
use support::{ALICE, ALICE_PASSWORD, APP_TARGET, Env, output_text, run_timeout};

const PROTOCOL_3_0: u32 = 3 << 16;
const PROTOCOL_3_2: u32 = (3 << 16) | 2;

/// A NegotiateProtocolVersion body: the version offered and the options not recognised.
fn negotiation(body: &[u8]) -> (u32, Vec<String>) {
    let version = u32::from_be_bytes(body[0..4].try_into().expect("version"));
    let count = u32::from_be_bytes(body[4..8].try_into().expect("count")) as usize;
    let names: Vec<String> = body[8..]
        .split(|b| *b == 0)
        .take(count)
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(names.len(), count, "truncated option list: {body:?}");
    (version, names)
}

type Case = (
    u32,
    &'static [(&'static str, &'static str)],
    Option<&'static [&'static str]>,
);

fn cluster_addr(env: &Env) -> SocketAddr {
    env.cluster.addr().parse().expect("cluster address")
}

#[test]
fn newer_minor_versions_and_pq_options_are_negotiated_down_to_3_0() {
    let env = Env::new();
    // (version asked, extra startup parameters, the `_pq_.` names listed back if negotiated)
    let cases: [Case; 4] = [
        (
            PROTOCOL_3_2,
            &[("_pq_.something", "1")],
            Some(&["_pq_.something"]),
        ),
        (PROTOCOL_3_2, &[], Some(&[])),
        (
            PROTOCOL_3_0,
            &[("_pq_.a", "x"), ("application_name", "pv"), ("_pq_.b", "")],
            Some(&["_pq_.a", "_pq_.b"]),
        ),
        (PROTOCOL_3_0, &[], None),
    ];
    for (version, extra, expected) in cases {
        let what = format!("version {:#x} with {extra:?}", version);
        let direct = RawSession::login_version(
            cluster_addr(&env),
            version,
            "app",
            &env.db,
            role_password("app"),
            extra,
        )
        .unwrap_or_else(|e| panic!("{what}: PostgreSQL refused: {e:?}"));
        let mut through = RawSession::login_version(
            env.jg.pg_addr(),
            version,
            ALICE,
            APP_TARGET,
            ALICE_PASSWORD,
            extra,
        )
        .unwrap_or_else(|e| panic!("{what}: jitgate refused: {e:?}\n{}", env.jg.log_tail(20)));
        let expected = expected.map(|names| {
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            (PROTOCOL_3_0, names)
        });
        assert_eq!(
            direct.negotiated.as_deref().map(negotiation),
            expected,
            "{what}: PostgreSQL's own answer is not what this test expects"
        );
        assert_eq!(
            through.negotiated, direct.negotiated,
            "{what}: jitgate's NegotiateProtocolVersion differs from PostgreSQL's"
        );
        // The session then runs at 3.0 (the target never saw a 3.2 request or a _pq_ option:
        // it would have answered jitgate with a NegotiateProtocolVersion of its own, which
        // jitgate's upstream start-up does not accept).
        let rows = RawSession::first_column(&through.query("select 'at 3.0'"));
        assert_eq!(rows, vec![Some("at 3.0".to_string())], "{what}");
        through.close();
        direct.close();
    }
    env.assert_still_serving();
}

/// Every byte a server sends to a startup packet asking for protocol `version`, up to its
/// close.
fn refusal(addr: SocketAddr, version: u32, user: &str, database: &str) -> Vec<u8> {
    let mut s = wire::connect(addr);
    s.write_all(&wire::startup_packet_version(
        version,
        &[("user", user), ("database", database)],
    ))
    .expect("send startup");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw); // a reset after the message counts as the close
    raw
}

#[test]
fn other_major_versions_are_refused_as_postgresql_refuses_them() {
    let env = Env::new();
    // Below 3.0 PostgreSQL answers in the old format (no length word): byte for byte the same.
    for version in [2 << 16, (1 << 16) | 7, 5] {
        let direct = refusal(cluster_addr(&env), version, "app", &env.db);
        let through = refusal(env.jg.pg_addr(), version, ALICE, APP_TARGET);
        assert!(
            direct.starts_with(b"EFATAL:  unsupported frontend protocol"),
            "{}",
            String::from_utf8_lossy(&direct)
        );
        assert_eq!(
            String::from_utf8_lossy(&through),
            String::from_utf8_lossy(&direct),
            "version {version:#x}"
        );
    }
    // Above 3, an ErrorResponse: the same severity, SQLSTATE and message (PostgreSQL adds its
    // source file and line).
    for version in [(4 << 16) | 1, 1234 << 16, 0] {
        let fields = |raw: &[u8]| -> Fields {
            let messages = wire::parse_messages(raw);
            assert_eq!(messages.len(), 1, "{}", wire::summary(&messages));
            wire::first_error(&messages).expect("an ErrorResponse")
        };
        let direct = fields(&refusal(cluster_addr(&env), version, "app", &env.db));
        let through = fields(&refusal(env.jg.pg_addr(), version, ALICE, APP_TARGET));
        assert_eq!(
            (direct.severity(), direct.code()),
            ("FATAL", "0A000"),
            "{direct:?}"
        );
        assert_eq!(
            (through.severity(), through.code(), through.message()),
            (direct.severity(), direct.code(), direct.message()),
            "version {version:#x}"
        );
    }
    env.assert_still_serving();
}

/// psycopg (libpq from its wheel) connecting with `conninfo`; prints libpq's version, the
/// protocol the connection runs at (PQfullProtocolVersion), and a query's answer.
fn psycopg(conninfo: &str) -> std::process::Output {
    let script = "import sys, psycopg\n\
                  print(psycopg.pq.version())\n\
                  with psycopg.connect(sys.argv[1]) as conn:\n\
                  \x20   print(conn.pgconn.full_protocol_version)\n\
                  \x20   print(conn.execute(\"select 'negotiated'\").fetchone()[0])\n";
    let mut cmd = Command::new("python3");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PYTHONPATH", python_packages())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONNOUSERSITE", "1")
        .args(["-c", script, conninfo]);
    run_timeout(&mut cmd, None, Duration::from_secs(60))
}

#[test]
fn libpq_18_with_max_protocol_version_3_2_connects_at_3_0() {
    let env = Env::new();
    let direct = format!(
        "{} max_protocol_version=3.2",
        env.cluster.conninfo("app", &env.db)
    );
    let through = format!("{} max_protocol_version=3.2", env.alice_tokio());
    for (what, conninfo) in [("PostgreSQL", direct.as_str()), ("jitgate", &through)] {
        let out = psycopg(conninfo);
        assert!(
            out.status.success(),
            "{what}: psycopg failed\n{}\n{}",
            output_text(&out),
            env.jg.log_tail(20)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = stdout.lines().collect();
        let libpq: u32 = lines[0].parse().expect("libpq version");
        assert!(
            libpq >= 180_000,
            "psycopg's wheel bundles libpq {libpq}: max_protocol_version needs libpq 18"
        );
        assert_eq!(&lines[1..], ["30000", "negotiated"], "{what}: {stdout}");
    }
    // Asking for at least 3.2 fails on the client side, for both, with the same reason.
    let mut reasons = Vec::new();
    for conninfo in [&direct, &through] {
        let out = psycopg(&conninfo.replace("max_protocol_version", "min_protocol_version"));
        assert!(!out.status.success(), "{}", output_text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let reason = stderr
            .lines()
            .find(|l| l.contains("protocol version"))
            .unwrap_or_else(|| panic!("no reason given: {stderr}"))
            .rsplit_once(": ")
            .map_or(String::new(), |(_, r)| r.to_string());
        reasons.push(reason);
    }
    assert_eq!(reasons[0], reasons[1]);
    env.assert_still_serving();
}
