//! The target's password never leaves jitgate in a reusable form by default: a server (or a
//! machine in the middle of a `tls = "prefer"` link) that answers `N` to SSLRequest and asks
//! for a cleartext or MD5 password gets nothing; the client is told why.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use support::{ALICE, ALICE_PASSWORD, Env, PgCluster, PgTarget, pg_connect};

const SECRET: &str = "target-secret-3141";

/// A fake PostgreSQL server for one connection: refuses TLS, asks for the password with
/// authentication request `kind` (3 cleartext, 5 MD5), and returns every byte the proxy sent
/// after that request until it hung up.
fn fake_upstream(kind: i32) -> (String, std::thread::JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let serve = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let read_packet = |s: &mut std::net::TcpStream| {
            let mut len = [0u8; 4];
            s.read_exact(&mut len).expect("length");
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
            s.read_exact(&mut body).expect("body");
            body
        };
        let first = read_packet(&mut s);
        if first.starts_with(&80877103u32.to_be_bytes()) {
            s.write_all(b"N").expect("refuse TLS");
            read_packet(&mut s);
        }
        let mut request = vec![b'R', 0, 0, 0, if kind == 5 { 12 } else { 8 }];
        request.extend_from_slice(&kind.to_be_bytes());
        if kind == 5 {
            request.extend_from_slice(&[1, 2, 3, 4]);
        }
        s.write_all(&request).expect("auth request");
        let mut after = Vec::new();
        let _ = s.read_to_end(&mut after);
        after
    });
    (addr, serve)
}

#[tokio::test(flavor = "multi_thread")]
async fn cleartext_and_md5_requests_get_no_password() {
    let (clear_addr, clear) = fake_upstream(3);
    let (md5_addr, md5) = fake_upstream(5);
    let env = Env::with(|b| {
        let cluster = PgCluster::shared();
        let fake = |name: &str, address: &str| {
            let mut t = PgTarget::on_cluster(name, cluster, "app", "app").tls("prefer");
            t.address = address.into();
            t.password = Some(SECRET.into());
            t
        };
        b.target(fake("clear-db", &clear_addr))
            .target(fake("md5-db", &md5_addr))
    });
    for (target, server) in [("clear-db", clear), ("md5-db", md5)] {
        let conninfo = format!(
            "{} password={ALICE_PASSWORD}",
            env.jg.conninfo(ALICE, target)
        );
        let err = match pg_connect(&conninfo).await {
            Ok(_) => panic!("{target}: the connection must fail"),
            Err(e) => format!("{e:?}"),
        };
        assert!(err.contains("allow_weak_auth"), "{target}: {err}");
        let sent = server.join().expect("fake server");
        let text = String::from_utf8_lossy(&sent);
        assert!(
            !text.contains(SECRET) && !sent.contains(&b'p'),
            "{target}: the proxy answered the password request: {text:?}"
        );
    }
    env.assert_still_serving();
}
