//! SCRAM channel binding from jitgate to targets: over TLS jitgate binds to the target's
//! certificate (`SCRAM-SHA-256-PLUS`, `tls-server-end-point`) when the target offers it.
//!
//! Against PostgreSQL 15 with a self-signed P-384 certificate (whose binding hash is SHA-384,
//! so PostgreSQL itself checks jitgate's choice of hash), and against a fake server that checks
//! the binding independently: offering only PLUS it accepts jitgate; offering only
//! SCRAM-SHA-256 over TLS it sees `y`; presenting one certificate while binding to another (the
//! server behind a machine in the middle) it refuses, and the connection fails.

mod support;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use postgres_protocol::authentication::sasl::SCRAM_SHA_256;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, pem::PemObject};

use support::proc::{os_user, write_file};
use support::wire::{self, RawSession};
use support::{
    ALICE, ALICE_PASSWORD, Env, PgTarget, TempDir, TestCa, psql, psql_query, wait_until,
};

const PLUS: &str = "SCRAM-SHA-256-PLUS";
const TIMEOUT: Duration = Duration::from_secs(20);

/// One message within [`TIMEOUT`]; `None` at a clean end of stream.
async fn read_message<S: AsyncRead + Unpin>(s: &mut S) -> Option<(u8, Vec<u8>)> {
    wire::read_message_async(s, TIMEOUT).await
}

fn end_point(cert_der: &[u8]) -> Vec<u8> {
    // rcgen's (and so the test CA's) certificates are ECDSA P-256 with SHA-256.
    Sha256::digest(cert_der).to_vec()
}

// ---- upstream side: real PostgreSQL ------------------------------------------------------

/// A self-signed ECDSA P-384 / SHA-384 certificate for 127.0.0.1 (PEM cert, PEM key).
fn self_signed_p384() -> (String, String) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("P-384 key");
    let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "jitgate channel-binding test");
    let cert = params.self_signed(&key).expect("self-signed");
    (cert.pem(), key.serialize_pem())
}

#[test]
fn upstream_binds_to_postgresql_with_a_self_signed_p384_certificate() {
    let cluster = support::PgCluster::shared();
    let db = cluster.fresh_database("app");
    let dir = TempDir::new("cb-upstream");
    let (cert, key) = self_signed_p384();
    let (cert_path, key_path) = (dir.join("p384.crt"), dir.join("p384.key"));
    write_file(&cert_path, &cert, 0o644);
    write_file(&key_path, &key, 0o600);
    if let Some((uid, gid)) = os_user("postgres") {
        for path in [dir.path(), cert_path.as_path(), key_path.as_path()] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
        }
    }
    // This binary's cluster serves the P-384 certificate from now on (no other test here
    // reaches it over TLS).
    cluster.superuser_psql(&format!(
        "ALTER SYSTEM SET ssl_cert_file = '{}';\nALTER SYSTEM SET ssl_key_file = '{}';\n\
         SELECT pg_reload_conf();",
        cert_path.display(),
        key_path.display()
    ));
    let direct = format!(
        "host=127.0.0.1 port={} user=app dbname={} sslmode=verify-full sslrootcert={} \
         channel_binding=require",
        cluster.port(),
        db,
        cert_path.display()
    );
    let password = support::cluster::role_password("app");
    wait_until("PostgreSQL to serve the P-384 certificate", TIMEOUT, || {
        psql(&direct, password, &["-c", "select 1"])
            .status
            .success()
            .then_some(())
    });
    // The binding PostgreSQL checks is the SHA-384 of the certificate, not its SHA-256.
    let der = CertificateDer::from_pem_slice(cert.as_bytes()).expect("PEM");
    assert_eq!(
        jitgate::tls::server_end_point(&der),
        Some(sha2::Sha384::digest(&der).to_vec())
    );

    let jg = support::JitgateBuilder::standard(cluster, &db)
        .target(
            PgTarget::on_cluster("p384-db", cluster, &db, "app")
                .tls("require")
                .ca_file(&cert_path),
        )
        .start();
    let sql = "select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()";
    let out = psql_query(&jg.conninfo(ALICE, "p384-db"), ALICE_PASSWORD, sql);
    assert_eq!(out, "app|t", "{}", jg.log_tail(20));
    cluster.superuser_psql(
        "ALTER SYSTEM RESET ssl_cert_file;\nALTER SYSTEM RESET ssl_key_file;\n\
         SELECT pg_reload_conf();",
    );
}

// ---- upstream side: a fake server that checks the binding --------------------------------

const FAKE_SECRET: &str = "fake-target-secret-2718";

/// What the fake server saw of jitgate's SCRAM exchange.
#[derive(Debug, Default)]
struct Seen {
    mechanism: String,
    gs2_header: String,
    /// The client-final-message's `c=` attribute.
    channel_binding: String,
    accepted: bool,
}

/// A fake PostgreSQL server for one connection over TLS, presenting `presented`; it offers
/// `mechanisms` and checks the SCRAM exchange (jitgate's server code, with the binding data
/// of `bound_to`); on success it answers every query with one row.
async fn fake_upstream(
    listener: TcpListener,
    presented: support::LeafFiles,
    mechanisms: &'static [&'static str],
    bound_to: Vec<u8>,
) -> Seen {
    let (mut tcp, _) = listener.accept().await.expect("accept");
    let mut request = [0u8; 8];
    tcp.read_exact(&mut request).await.expect("SSLRequest");
    assert_eq!(request[4..], wire::SSL_REQUEST.to_be_bytes());
    tcp.write_all(b"S").await.expect("S");
    let config = jitgate::tls::server_config(&presented.cert, &presented.key).expect("TLS");
    let mut s = tokio_rustls::TlsAcceptor::from(config)
        .accept(tcp)
        .await
        .expect("TLS handshake");
    let len = s.read_u32().await.expect("startup length") as usize;
    let mut startup = vec![0; len - 4];
    s.read_exact(&mut startup).await.expect("startup");
    assert_eq!(startup[..4], wire::PROTOCOL_3_0.to_be_bytes());

    let mut body = 10u32.to_be_bytes().to_vec();
    for m in mechanisms {
        body.extend_from_slice(m.as_bytes());
        body.push(0);
    }
    body.push(0);
    s.write_all(&wire::message(b'R', &body)).await.expect("R10");
    let initial = password_message(&mut s).await;
    let nul = initial.iter().position(|b| *b == 0).expect("mechanism");
    let mut seen = Seen {
        mechanism: String::from_utf8_lossy(&initial[..nul]).into_owned(),
        ..Seen::default()
    };
    let first = &initial[nul + 5..];
    let first_text = String::from_utf8_lossy(first);
    seen.gs2_header = first_text[..first_text.find("n=").expect("client-first")].to_string();

    let verifier = jitgate::scram::Verifier::parse(&jitgate::scram::hash_password(FAKE_SECRET))
        .expect("verifier");
    // A server that does not offer PLUS cannot bind (and must then accept "y").
    let binding = match mechanisms.contains(&PLUS) {
        true => jitgate::scram::ChannelBinding::TlsServerEndPoint(end_point(&bound_to)),
        false => jitgate::scram::ChannelBinding::Unavailable,
    };
    let fail = |message: &str| {
        let mut e = Vec::new();
        for (code, value) in [(b'S', "FATAL"), (b'C', "28000"), (b'M', message)] {
            e.push(code);
            e.extend_from_slice(value.as_bytes());
            e.push(0);
        }
        e.push(0);
        wire::message(b'E', &e)
    };
    let started = jitgate::scram::Exchange::start(verifier, &seen.mechanism, first, &binding);
    let Ok((exchange, server_first)) = started else {
        let _ = s
            .write_all(&fail("SCRAM channel binding negotiation error"))
            .await;
        return seen;
    };
    let mut body = 11u32.to_be_bytes().to_vec();
    body.extend_from_slice(server_first.as_bytes());
    s.write_all(&wire::message(b'R', &body)).await.expect("R11");
    let client_final = password_message(&mut s).await;
    let final_text = String::from_utf8_lossy(&client_final).into_owned();
    seen.channel_binding = final_text
        .split(',')
        .find_map(|a| a.strip_prefix("c="))
        .unwrap_or_default()
        .to_string();
    let Ok(server_final) = exchange.finish(&client_final) else {
        let _ = s
            .write_all(&fail("SCRAM channel binding check failed"))
            .await;
        return seen;
    };
    seen.accepted = true;
    let mut out = Vec::new();
    let mut body = 12u32.to_be_bytes().to_vec();
    body.extend_from_slice(server_final.as_bytes());
    out.extend(wire::message(b'R', &body));
    out.extend(wire::message(b'R', &0u32.to_be_bytes()));
    out.extend(wire::message(b'K', &[0, 0, 0x10, 0x92, 0, 0, 0, 1]));
    out.extend(wire::message(b'Z', b"I"));
    s.write_all(&out).await.expect("start-up answer");
    // Every query: one text column, one row ("public" for SHOW search_path).
    while let Some((tag, body)) = read_message(&mut s).await {
        if tag != b'Q' {
            break;
        }
        let value: &[u8] = if body.starts_with(b"SHOW search_path") {
            b"public"
        } else {
            b"from the fake"
        };
        let mut row_description = vec![0, 1];
        row_description.extend_from_slice(b"v\0");
        row_description.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 25, 0xff, 0xff]);
        row_description.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0]);
        let mut row = vec![0, 1];
        row.extend_from_slice(&(value.len() as u32).to_be_bytes());
        row.extend_from_slice(value);
        let mut out = wire::message(b'T', &row_description);
        out.extend(wire::message(b'D', &row));
        out.extend(wire::message(b'C', b"SELECT 1\0"));
        out.extend(wire::message(b'Z', b"I"));
        if s.write_all(&out).await.is_err() {
            break;
        }
    }
    seen
}

async fn password_message<S: AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let (tag, body) = read_message(s).await.expect("a password message");
    assert_eq!(tag, b'p');
    body
}

fn cert_der(files: &support::LeafFiles) -> Vec<u8> {
    CertificateDer::from_pem_file(&files.cert)
        .expect("certificate")
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn upstream_binding_is_checked_by_a_server_that_offers_only_plus() {
    let dir = TempDir::new("cb-fake");
    let ca = TestCa::shared();
    let ca_path = dir.join("ca.crt");
    ca.write_cert(&ca_path);
    let real = ca.write_localhost_leaf(dir.path(), "real");
    let intercepting = ca.write_localhost_leaf(dir.path(), "intercepting");
    let expected_binding = |presented: &support::LeafFiles| {
        let mut data = b"p=tls-server-end-point,,".to_vec();
        data.extend(end_point(&cert_der(presented)));
        B64.encode(data)
    };

    let listen = || async {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let a = l.local_addr().expect("addr").to_string();
        (l, a)
    };
    let (plus_only, plus_addr) = listen().await;
    let (plain_only, plain_addr) = listen().await;
    let (middle, middle_addr) = listen().await;
    let fakes = [
        // Presents its certificate and binds to it, offering only PLUS.
        tokio::spawn(fake_upstream(
            plus_only,
            real.clone(),
            &[PLUS],
            cert_der(&real),
        )),
        // Offers only SCRAM-SHA-256 over TLS: jitgate must say "y".
        tokio::spawn(fake_upstream(
            plain_only,
            real.clone(),
            &[SCRAM_SHA_256],
            cert_der(&real),
        )),
        // Presents one certificate and binds to another: what the real server behind a
        // machine in the middle would see.
        tokio::spawn(fake_upstream(
            middle,
            intercepting.clone(),
            &[PLUS, SCRAM_SHA_256],
            cert_der(&real),
        )),
    ];
    let env = Env::with(|b| {
        let cluster = support::PgCluster::shared();
        let fake = |name: &str, address: &str| {
            let mut t = PgTarget::on_cluster(name, cluster, "app", "app").tls("require");
            t.address = address.into();
            t.password = Some(FAKE_SECRET.into());
            t
        };
        b.target(fake("fake-plus", &plus_addr).ca_file(&ca_path))
            .target(fake("fake-plain", &plain_addr).ca_file(&ca_path))
            // No ca_file: encrypted, unauthenticated; the binding is what stops a middleman.
            .target(fake("fake-middle", &middle_addr))
    });

    let pg_addr = env.jg.pg_addr();
    let login = move |target: &'static str| {
        tokio::task::spawn_blocking(move || {
            RawSession::login(pg_addr, ALICE, target, ALICE_PASSWORD, &[]).map(|mut s| {
                let rows = RawSession::first_column(&s.query("select 1"));
                s.close();
                rows
            })
        })
    };
    let from_the_fake = vec![Some("from the fake".to_string())];
    assert_eq!(
        login("fake-plus").await.expect("login task"),
        Ok(from_the_fake.clone()),
        "{}",
        env.jg.log_tail(20)
    );
    assert_eq!(
        login("fake-plain").await.expect("login task"),
        Ok(from_the_fake)
    );
    let refused = login("fake-middle")
        .await
        .expect("login task")
        .expect_err("the middleman's exchange must fail");
    assert_eq!(refused.fields.code(), "08006", "{refused:?}");
    assert!(
        refused
            .fields
            .message()
            .contains("cannot connect to target \"fake-middle\""),
        "{refused:?}"
    );

    let [plus, plain, middle] = fakes;
    let plus = plus.await.expect("fake");
    assert_eq!(plus.mechanism, PLUS);
    assert_eq!(plus.gs2_header, "p=tls-server-end-point,,");
    assert_eq!(plus.channel_binding, expected_binding(&real));
    assert!(plus.accepted);
    let plain = plain.await.expect("fake");
    assert_eq!(
        (plain.mechanism.as_str(), plain.gs2_header.as_str()),
        (SCRAM_SHA_256, "y,,")
    );
    assert!(plain.accepted);
    let middle = middle.await.expect("fake");
    assert_eq!(middle.mechanism, PLUS);
    // jitgate bound to the certificate it was shown, so the server behind refused.
    assert_eq!(middle.channel_binding, expected_binding(&intercepting));
    assert!(!middle.accepted);
    wait_until("the refusal in jitgate's log", TIMEOUT, || {
        env.jg
            .log()
            .contains("SCRAM channel binding check failed")
            .then_some(())
    });
    env.assert_still_serving();
}
