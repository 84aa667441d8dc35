//! SCRAM channel binding (`SCRAM-SHA-256-PLUS`, `tls-server-end-point`) on both sides.
//!
//! Client side: psql with `channel_binding=require` connects over TLS and cannot without it;
//! `channel_binding=disable` connects; a hand-made client that binds to another certificate,
//! or says `y` while PLUS was offered, gets the wrong-password FATAL and the target never sees
//! a backend; an exchange binds to the certificate its own handshake served even when a
//! reload renews it half-way.
//! Upstream side: against PostgreSQL 15 with a self-signed P-384 certificate (whose binding
//! hash is SHA-384, so PostgreSQL itself checks jitgate's choice of hash), and against a fake
//! server that offers only PLUS and checks the binding independently: it accepts jitgate, and
//! a fake presenting one certificate while binding to another (a machine in the middle) makes
//! the connection fail.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};
use sha2::{Digest, Sha256, Sha384};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};

use support::proc::{os_user, write_file};
use support::wire::{self, Fields, RawSession};
use support::{
    ALICE, ALICE_PASSWORD, APP_TARGET, Env, PgTarget, TempDir, TestCa, output_text, psql,
    psql_query, wait_until,
};

const PLUS: &str = "SCRAM-SHA-256-PLUS";
const TIMEOUT: Duration = Duration::from_secs(20);

// ---- a hand-made client over TLS ---------------------------------------------------------

/// Reads one backend message; `None` at a clean end of stream.
async fn read_message<S: AsyncRead + Unpin>(s: &mut S) -> Option<(u8, Vec<u8>)> {
    let read = async {
        let tag = s.read_u8().await.ok()?;
        let len = s.read_u32().await.ok()? as usize;
        assert!((4..1 << 20).contains(&len), "bad length {len}");
        let mut body = vec![0; len - 4];
        s.read_exact(&mut body).await.ok()?;
        Some((tag, body))
    };
    tokio::time::timeout(TIMEOUT, read)
        .await
        .expect("the server answers in time")
}

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
    let sha384 = Sha384::digest(CertificateDer::from_pem_slice(cert.as_bytes()).expect("PEM"));
    assert_eq!(sha384.len(), 48);

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
