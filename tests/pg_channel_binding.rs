//! SCRAM channel binding (`SCRAM-SHA-256-PLUS`, `tls-server-end-point`) between clients and
//! jitgate (jitgate to targets: tests/pg_upstream_channel_binding.rs).
//!
//! psql with `channel_binding=require` connects over TLS and cannot without it;
//! `channel_binding=disable` connects; a hand-made client that binds to another certificate,
//! or says `y` while PLUS was offered, gets the wrong-password FATAL and the target never sees
//! a backend; an exchange binds to the certificate its own handshake served even when a
//! reload renews it half-way.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

use support::wire::{self, Fields, RawSession};

/// One backend message within [`TIMEOUT`]; `None` at a clean end of stream.
async fn read_message<S: AsyncRead + Unpin>(s: &mut S) -> Option<(u8, Vec<u8>)> {
    wire::read_message_async(s, TIMEOUT).await
}
use support::{
    ALICE, ALICE_PASSWORD, APP_TARGET, Env, TestCa, output_text, psql, psql_query, wait_until,
};

const PLUS: &str = "SCRAM-SHA-256-PLUS";
const TIMEOUT: Duration = Duration::from_secs(20);

// ---- a hand-made client over TLS ---------------------------------------------------------

fn auth_code(body: &[u8]) -> u32 {
    u32::from_be_bytes(body[0..4].try_into().expect("auth code"))
}

/// SSLRequest and a TLS handshake verified against `ca`; the stream and the certificate the
/// server presented.
async fn tls_connect(
    addr: SocketAddr,
    ca: &std::path::Path,
) -> (tokio_rustls::client::TlsStream<TcpStream>, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&wire::special_request(wire::SSL_REQUEST))
        .await
        .expect("SSLRequest");
    assert_eq!(tcp.read_u8().await.expect("answer"), b'S');
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).expect("CA file") {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").expect("server name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let leaf = tls.get_ref().1.peer_certificates().expect("a certificate")[0].to_vec();
    (tls, leaf)
}

/// Sends the startup packet (`application_name` = `app`); returns the SASL mechanisms offered.
async fn start<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, app: &str) -> Vec<String> {
    let packet = wire::startup_packet(&[
        ("user", ALICE),
        ("database", APP_TARGET),
        ("application_name", app),
    ]);
    s.write_all(&packet).await.expect("startup");
    let (tag, body) = read_message(s).await.expect("an answer to the start-up");
    assert_eq!((tag, auth_code(&body)), (b'R', 10), "AuthenticationSASL");
    body[4..]
        .split(|b| *b == 0)
        .filter(|m| !m.is_empty())
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect()
}

/// The SCRAM exchange with `mechanism` and the client's `binding`, then the rest of the
/// start-up: `Ok` at ReadyForQuery, or the ErrorResponse (after which the server must close,
/// having sent no AuthenticationOk).
async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    mechanism: &str,
    binding: ChannelBinding,
    password: &str,
) -> Result<(), Fields> {
    let mut scram = ScramSha256::new(password.as_bytes(), binding);
    let mut initial = mechanism.as_bytes().to_vec();
    initial.push(0);
    initial.extend_from_slice(&(scram.message().len() as i32).to_be_bytes());
    initial.extend_from_slice(scram.message());
    s.write_all(&wire::message(b'p', &initial))
        .await
        .expect("SASLInitialResponse");
    let mut authenticated = false;
    loop {
        let Some((tag, body)) = read_message(s).await else {
            panic!("closed without an answer");
        };
        match (tag, authenticated) {
            (b'E', _) => {
                assert!(!authenticated, "an error after AuthenticationOk");
                let rest = read_message(s).await;
                assert!(rest.is_none(), "still open after the FATAL: {rest:?}");
                return Err(Fields::parse(&body));
            }
            (b'R', false) => match auth_code(&body) {
                11 => {
                    scram.update(&body[4..]).expect("server-first-message");
                    s.write_all(&wire::message(b'p', scram.message()))
                        .await
                        .expect("SASLResponse");
                }
                12 => scram.finish(&body[4..]).expect("the server's signature"),
                0 => authenticated = true,
                other => panic!("unexpected authentication request {other}"),
            },
            (b'Z', true) => return Ok(()),
            (b'S' | b'K' | b'N', true) => {}
            (other, _) => panic!("unexpected message '{}'", other as char),
        }
    }
}

/// A simple query's first column, over any stream.
async fn query<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S, sql: &str) -> Vec<String> {
    s.write_all(&wire::query_message(sql)).await.expect("Query");
    let mut rows = Vec::new();
    loop {
        let (tag, body) = read_message(s).await.expect("query answer");
        match tag {
            b'D' => rows.push(
                RawSession::first_column(&[(tag, body)])[0]
                    .clone()
                    .expect("value"),
            ),
            b'E' => panic!("query failed: {:?}", Fields::parse(&body)),
            b'Z' => return rows,
            _ => {}
        }
    }
}

fn end_point(cert_der: &[u8]) -> Vec<u8> {
    // rcgen's (and so the test CA's) certificates are ECDSA P-256 with SHA-256.
    Sha256::digest(cert_der).to_vec()
}

// ---- client side -------------------------------------------------------------------------

#[test]
fn psql_channel_binding_require_and_disable() {
    let env = Env::with(|b| b.proxy_tls());
    let base = format!(
        "{} sslmode=verify-full sslrootcert={}",
        env.jg.conninfo_base(ALICE, APP_TARGET),
        env.jg.ca_pem_path().display()
    );
    for mode in ["require", "prefer", "disable"] {
        let conninfo = format!("{base} channel_binding={mode}");
        let sql = format!("select 'bound {mode}', count(*) from pg_stat_ssl where ssl");
        let out = psql_query(&conninfo, ALICE_PASSWORD, &sql);
        assert!(out.starts_with(&format!("bound {mode}|")), "{out}");
    }
    // Without TLS nothing can be bound: libpq refuses to go on (PLUS is not offered).
    let plain = format!(
        "{} channel_binding=require",
        env.jg.conninfo(ALICE, APP_TARGET)
    );
    let out = psql(&plain, ALICE_PASSWORD, &["-c", "select 1"]);
    assert!(!out.status.success(), "{}", output_text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("channel binding"),
        "{}",
        output_text(&out)
    );
    env.assert_still_serving();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_binding_to_another_certificate_is_a_wrong_password() {
    let env = Env::with(|b| b.proxy_tls());
    let ca = env.jg.ca_pem_path();
    let addr = env.jg.pg_addr();

    // Plain TCP: only SCRAM-SHA-256 is offered, and PLUS is refused.
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(start(&mut tcp, "cb-plain").await, [SCRAM_SHA_256]);
    let plus_in_clear = authenticate(
        &mut tcp,
        PLUS,
        ChannelBinding::tls_server_end_point(vec![0; 32]),
        ALICE_PASSWORD,
    )
    .await;

    // Over TLS: PLUS first, then SCRAM-SHA-256, as PostgreSQL lists them.
    let (mut tls, leaf) = tls_connect(addr, &ca).await;
    assert_eq!(start(&mut tls, "cb-right").await, [PLUS, SCRAM_SHA_256]);
    let bound = ChannelBinding::tls_server_end_point(end_point(&leaf));
    authenticate(&mut tls, PLUS, bound, ALICE_PASSWORD)
        .await
        .expect("bound to the certificate served");
    assert_eq!(query(&mut tls, "select 'bound'").await, ["bound"]);

    // The certificate of another server (a machine in the middle would bind to its own).
    let (other_pem, _) = TestCa::shared().leaf(&["127.0.0.1"]);
    let other = CertificateDer::from_pem_slice(other_pem.as_bytes()).expect("PEM");
    let (mut tls, _) = tls_connect(addr, &ca).await;
    start(&mut tls, "cb-mismatch").await;
    let other_binding = ChannelBinding::tls_server_end_point(end_point(&other));
    let mismatch = authenticate(&mut tls, PLUS, other_binding, ALICE_PASSWORD).await;

    // "y": the client could bind and believes the server cannot; it was offered PLUS.
    let (mut tls, _) = tls_connect(addr, &ca).await;
    start(&mut tls, "cb-downgrade").await;
    let downgrade = authenticate(
        &mut tls,
        SCRAM_SHA_256,
        ChannelBinding::unrequested(),
        ALICE_PASSWORD,
    )
    .await;

    // "n" over TLS is the client's choice, as with channel_binding=disable.
    let (mut tls, _) = tls_connect(addr, &ca).await;
    start(&mut tls, "cb-declined").await;
    authenticate(
        &mut tls,
        SCRAM_SHA_256,
        ChannelBinding::unsupported(),
        ALICE_PASSWORD,
    )
    .await
    .expect("'n' over TLS");

    // What a wrong password gets, for comparison.
    let (mut tls, leaf) = tls_connect(addr, &ca).await;
    start(&mut tls, "cb-wrong-password").await;
    let bound = ChannelBinding::tls_server_end_point(end_point(&leaf));
    let wrong_password = authenticate(&mut tls, PLUS, bound, "not her password")
        .await
        .expect_err("a wrong password fails");
    assert_eq!(wrong_password.code(), "28P01");
    for (what, refused) in [
        ("another certificate's hash", mismatch),
        ("y while PLUS was offered", downgrade),
        ("PLUS without TLS", plus_in_clear),
    ] {
        let refused = refused.expect_err(what);
        assert_eq!(
            refused, wrong_password,
            "{what}: not a plain wrong password"
        );
    }
    // The target never saw a backend for the refused exchanges.
    for app in [
        "cb-plain",
        "cb-mismatch",
        "cb-downgrade",
        "cb-wrong-password",
    ] {
        assert_eq!(env.cluster.backends_named(app), Vec::<u32>::new(), "{app}");
    }
    env.assert_still_serving();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exchange_binds_to_the_certificate_its_handshake_served() {
    let env = Env::with(|b| b.proxy_tls());
    let ca = env.jg.ca_pem_path();
    let addr = env.jg.pg_addr();
    let (mut before, old_leaf) = tls_connect(addr, &ca).await;
    assert_eq!(start(&mut before, "cb-before").await, [PLUS, SCRAM_SHA_256]);

    // Renew the certificate in place and reload while that exchange waits.
    TestCa::shared().write_localhost_leaf(env.jg.dir(), "proxy");
    env.jg.kill("HUP");
    let new_leaf = wait_until("the renewed certificate to be served", TIMEOUT, || {
        let leaf = tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current()
                .block_on(tls_connect(addr, &ca))
                .1
        });
        (leaf != old_leaf).then_some(leaf)
    });

    let old = ChannelBinding::tls_server_end_point(end_point(&old_leaf));
    authenticate(&mut before, PLUS, old, ALICE_PASSWORD)
        .await
        .expect("bound to the certificate of its own handshake");
    assert_eq!(query(&mut before, "select 'old cert'").await, ["old cert"]);

    let (mut after, leaf) = tls_connect(addr, &ca).await;
    assert_eq!(leaf, new_leaf);
    start(&mut after, "cb-after").await;
    let stale = ChannelBinding::tls_server_end_point(end_point(&old_leaf));
    let refused = authenticate(&mut after, PLUS, stale, ALICE_PASSWORD).await;
    assert_eq!(
        refused.expect_err("bound to a replaced certificate").code(),
        "28P01"
    );

    let conninfo = format!(
        "{} sslmode=verify-full sslrootcert={} channel_binding=require",
        env.jg.conninfo_base(ALICE, APP_TARGET),
        ca.display()
    );
    assert_eq!(
        psql_query(&conninfo, ALICE_PASSWORD, "select 'renewed'"),
        "renewed"
    );
}
