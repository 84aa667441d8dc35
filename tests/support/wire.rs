//! The Postgres wire protocol by hand, for bad input and exact checks of what the proxy sends.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use postgres_protocol::authentication::sasl::{ChannelBinding, SCRAM_SHA_256, ScramSha256};

pub const PROTOCOL_3_0: u32 = 196_608;
pub const SSL_REQUEST: u32 = 80_877_103;
pub const GSSENC_REQUEST: u32 = 80_877_104;
pub const CANCEL_REQUEST: u32 = 80_877_102;

/// A StartupMessage with `params` (user, database, application_name…).
pub fn startup_packet(params: &[(&str, &str)]) -> Vec<u8> {
    startup_packet_version(PROTOCOL_3_0, params)
}

/// A StartupMessage asking for protocol `version` (major << 16 | minor).
pub fn startup_packet_version(version: u32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = version.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// An 8-byte request with a special code (SSLRequest, GSSENCRequest).
pub fn special_request(code: u32) -> Vec<u8> {
    let mut packet = 8u32.to_be_bytes().to_vec();
    packet.extend_from_slice(&code.to_be_bytes());
    packet
}

/// A CancelRequest for a backend key.
pub fn cancel_request(pid: u32, key: u32) -> Vec<u8> {
    let mut packet = 16u32.to_be_bytes().to_vec();
    for n in [CANCEL_REQUEST, pid, key] {
        packet.extend_from_slice(&n.to_be_bytes());
    }
    packet
}

/// A tagged frontend message.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// A simple Query message.
pub fn query_message(sql: &str) -> Vec<u8> {
    let mut body = sql.as_bytes().to_vec();
    body.push(0);
    message(b'Q', &body)
}

/// Connects to `addr` with read/write timeouts.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// One backend message: `Ok(None)` on a clean end of stream.
pub fn read_message(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut tag = [0u8; 1];
    if r.read(&mut tag)? == 0 {
        return Ok(None);
    }
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if !(4..=1 << 30).contains(&len) {
        return Err(std::io::Error::new(ErrorKind::InvalidData, "bad length"));
    }
    let mut body = vec![0; len - 4];
    r.read_exact(&mut body)?;
    Ok(Some((tag[0], body)))
}

/// One message from an async stream within `timeout` (panics when it passes); `None` at a
/// clean end of stream or a reset.
pub async fn read_message_async<S: tokio::io::AsyncRead + Unpin>(
    s: &mut S,
    timeout: Duration,
) -> Option<(u8, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let read = async {
        let tag = s.read_u8().await.ok()?;
        let len = s.read_u32().await.ok()? as usize;
        assert!((4..=1 << 30).contains(&len), "bad length {len}");
        let mut body = vec![0; len - 4];
        s.read_exact(&mut body).await.ok()?;
        Some((tag, body))
    };
    tokio::time::timeout(timeout, read)
        .await
        .unwrap_or_else(|_| panic!("no message within {timeout:?}"))
}

/// Reads messages until one with tag `until` (returned last); panics on EOF or timeout.
pub fn read_until(r: &mut impl Read, until: u8) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        match read_message(r) {
            Ok(Some(m)) => {
                let done = m.0 == until;
                out.push(m);
                if done {
                    return out;
                }
            }
            Ok(None) => panic!(
                "connection closed before '{}': {}",
                until as char,
                summary(&out)
            ),
            Err(e) => panic!(
                "reading until '{}': {e}; got {}",
                until as char,
                summary(&out)
            ),
        }
    }
}

/// Reads until the peer closes (a reset counts as closed); panics if it is still open after
/// `timeout`. Returns the complete messages received before the close.
pub fn read_until_closed(s: &mut TcpStream, timeout: Duration) -> Vec<(u8, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "connection still open after {timeout:?}; received {}",
            summary(&parse_messages(&raw))
        );
        s.set_read_timeout(Some(left.min(Duration::from_millis(500))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break, // reset, broken pipe: closed
        }
    }
    parse_messages(&raw)
}

/// A short description of backend messages for assertion output: tags and sizes, with the
/// fields of errors and notices spelled out.
pub fn summary(messages: &[(u8, Vec<u8>)]) -> String {
    let parts: Vec<String> = messages
        .iter()
        .map(|(tag, body)| match tag {
            b'E' | b'N' => format!("{}{:?}", *tag as char, Fields::parse(body).0),
            _ => format!("{}({} bytes)", *tag as char, body.len()),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Splits raw bytes into complete tagged messages (an incomplete tail is dropped).
pub fn parse_messages(mut raw: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while raw.len() >= 5 {
        let len = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]) as usize;
        if len < 4 || raw.len() < 1 + len {
            break;
        }
        out.push((raw[0], raw[5..1 + len].to_vec()));
        raw = &raw[1 + len..];
    }
    out
}

/// The fields of an ErrorResponse or NoticeResponse body, by field code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fields(pub BTreeMap<char, String>);

impl Fields {
    pub fn parse(body: &[u8]) -> Fields {
        let mut map = BTreeMap::new();
        for field in body.split(|b| *b == 0) {
            if let Some((&code, value)) = field.split_first() {
                map.insert(code as char, String::from_utf8_lossy(value).into_owned());
            }
        }
        Fields(map)
    }

    /// SQLSTATE.
    pub fn code(&self) -> &str {
        self.0.get(&'C').map(String::as_str).unwrap_or("")
    }

    /// Non-localised severity (V), else S.
    pub fn severity(&self) -> &str {
        self.0
            .get(&'V')
            .or_else(|| self.0.get(&'S'))
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.0.get(&'M').map(String::as_str).unwrap_or("")
    }
}

/// The first ErrorResponse among `messages`.
pub fn first_error(messages: &[(u8, Vec<u8>)]) -> Option<Fields> {
    messages
        .iter()
        .find(|(t, _)| *t == b'E')
        .map(|(_, b)| Fields::parse(b))
}

/// A session logged in by hand (SCRAM-SHA-256), for sending exactly the bytes a test wants.
pub struct RawSession {
    pub stream: TcpStream,
    /// How the server authenticated us: `SCRAM-SHA-256`, `md5`, `password` or `trust`.
    pub auth: &'static str,
    pub backend_pid: u32,
    pub secret_key: u32,
    pub parameters: Vec<(String, String)>,
    /// The body of the NegotiateProtocolVersion the server sent before authenticating, if any.
    pub negotiated: Option<Vec<u8>>,
}

/// Why a raw login failed: the stage it got to, and the ErrorResponse.
#[derive(Debug, PartialEq, Eq)]
pub struct LoginRefused {
    pub stage: &'static str,
    pub fields: Fields,
}

impl RawSession {
    /// Starts up as `user` on `database` and answers whatever the server asks (SCRAM-SHA-256,
    /// MD5, cleartext) with `password`.
    pub fn login(
        addr: SocketAddr,
        user: &str,
        database: &str,
        password: &str,
        extra: &[(&str, &str)],
    ) -> Result<RawSession, LoginRefused> {
        Self::login_version(addr, PROTOCOL_3_0, user, database, password, extra)
    }

    /// Like [`RawSession::login`], asking for protocol `version`; a NegotiateProtocolVersion
    /// before authentication is kept in `negotiated`.
    pub fn login_version(
        addr: SocketAddr,
        version: u32,
        user: &str,
        database: &str,
        password: &str,
        extra: &[(&str, &str)],
    ) -> Result<RawSession, LoginRefused> {
        let mut s = connect(addr);
        let mut params = vec![("user", user), ("database", database)];
        params.extend_from_slice(extra);
        s.write_all(&startup_packet_version(version, &params))
            .expect("send startup");
        let refused = |stage, body: &[u8]| LoginRefused {
            stage,
            fields: Fields::parse(body),
        };
        let (mut tag, mut body) = expect_message(&mut s, "startup");
        let mut negotiated = None;
        if tag == b'v' {
            negotiated = Some(body);
            (tag, body) = expect_message(&mut s, "startup");
        }
        let auth = match (tag, auth_code(&body)) {
            (b'E', _) => return Err(refused("startup", &body)),
            (b'R', Some(0)) => "trust",
            (b'R', Some(3)) => {
                let mut pw = password.as_bytes().to_vec();
                pw.push(0);
                s.write_all(&message(b'p', &pw)).expect("send password");
                "password"
            }
            (b'R', Some(5)) => {
                let salt: [u8; 4] = body[4..8].try_into().unwrap();
                let hash = postgres_protocol::authentication::md5_hash(
                    user.as_bytes(),
                    password.as_bytes(),
                    salt,
                );
                let mut pw = hash.into_bytes();
                pw.push(0);
                s.write_all(&message(b'p', &pw)).expect("send md5 password");
                "md5"
            }
            (b'R', Some(10)) => {
                scram_exchange(&mut s, &body, password)?;
                SCRAM_SHA_256
            }
            other => panic!("unexpected answer to the start-up: {other:?} {body:?}"),
        };
        let mut session = RawSession {
            stream: s,
            auth,
            backend_pid: 0,
            secret_key: 0,
            parameters: Vec::new(),
            negotiated,
        };
        loop {
            let (tag, body) = expect_message(&mut session.stream, "after-auth");
            match tag {
                b'R' => assert_eq!(auth_code(&body), Some(0), "expected AuthenticationOk"),
                b'S' => {
                    let mut parts = body.split(|b| *b == 0);
                    let k = String::from_utf8_lossy(parts.next().unwrap_or(b"")).into_owned();
                    let v = String::from_utf8_lossy(parts.next().unwrap_or(b"")).into_owned();
                    session.parameters.push((k, v));
                }
                b'K' => {
                    session.backend_pid = u32::from_be_bytes(body[0..4].try_into().unwrap());
                    session.secret_key = u32::from_be_bytes(body[4..8].try_into().unwrap());
                }
                b'N' => {}
                b'Z' => return Ok(session),
                b'E' => return Err(refused("after-auth", &body)),
                other => panic!("unexpected message '{}' during start-up", other as char),
            }
        }
    }

    /// Sends a simple Query and reads up to ReadyForQuery (panics if the connection ends).
    pub fn query(&mut self, sql: &str) -> Vec<(u8, Vec<u8>)> {
        self.stream
            .write_all(&query_message(sql))
            .expect("send Query");
        read_until(&mut self.stream, b'Z')
    }

    /// The text of column 0 of every DataRow in `messages`.
    pub fn first_column(messages: &[(u8, Vec<u8>)]) -> Vec<Option<String>> {
        messages
            .iter()
            .filter(|(t, _)| *t == b'D')
            .map(|(_, b)| {
                let len = i32::from_be_bytes(b[2..6].try_into().unwrap());
                (len >= 0).then(|| String::from_utf8_lossy(&b[6..6 + len as usize]).into_owned())
            })
            .collect()
    }

    pub fn close(mut self) {
        let _ = self.stream.write_all(&message(b'X', &[]));
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// The SCRAM-SHA-256 exchange after AuthenticationSASL (`sasl` is its body).
fn scram_exchange(s: &mut TcpStream, sasl: &[u8], password: &str) -> Result<(), LoginRefused> {
    let refused = |stage, body: &[u8]| LoginRefused {
        stage,
        fields: Fields::parse(body),
    };
    assert!(
        sasl[4..]
            .split(|b| *b == 0)
            .any(|m| m == SCRAM_SHA_256.as_bytes()),
        "SCRAM-SHA-256 not offered: {sasl:?}"
    );
    let mut scram = ScramSha256::new(password.as_bytes(), ChannelBinding::unsupported());
    let mut initial = SCRAM_SHA_256.as_bytes().to_vec();
    initial.push(0);
    initial.extend_from_slice(&(scram.message().len() as i32).to_be_bytes());
    initial.extend_from_slice(scram.message());
    s.write_all(&message(b'p', &initial))
        .expect("send SASLInitialResponse");
    let (tag, body) = expect_message(s, "sasl-continue");
    match (tag, auth_code(&body)) {
        (b'E', _) => return Err(refused("sasl-continue", &body)),
        (b'R', Some(11)) => {}
        other => panic!("expected AuthenticationSASLContinue, got {other:?}"),
    }
    scram.update(&body[4..]).expect("server-first-message");
    s.write_all(&message(b'p', scram.message()))
        .expect("send SASLResponse");
    let (tag, body) = expect_message(s, "sasl-final");
    match (tag, auth_code(&body)) {
        (b'E', _) => Err(refused("sasl-final", &body)),
        (b'R', Some(12)) => {
            scram.finish(&body[4..]).expect("server signature");
            Ok(())
        }
        other => panic!("expected AuthenticationSASLFinal, got {other:?}"),
    }
}

fn expect_message(s: &mut TcpStream, stage: &str) -> (u8, Vec<u8>) {
    match read_message(s) {
        Ok(Some(m)) => m,
        Ok(None) => panic!("connection closed at stage {stage}"),
        Err(e) => panic!("reading at stage {stage}: {e}"),
    }
}

fn auth_code(body: &[u8]) -> Option<u32> {
    body.get(0..4)
        .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
}

/// Extended-protocol frames, built byte for byte (no parameters, text results).
pub mod extended {
    use super::message;

    fn cstr(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(b);
        out.push(0);
    }

    /// Parse `name` = `sql`, no parameter types.
    pub fn parse(name: &[u8], sql: &str) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, name);
        cstr(&mut b, sql.as_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        message(b'P', &b)
    }

    /// Bind `portal` to statement `stmt`, no parameters.
    pub fn bind(portal: &[u8], stmt: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, portal);
        cstr(&mut b, stmt);
        b.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        message(b'B', &b)
    }

    /// Execute `portal`, all rows.
    pub fn execute(portal: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        cstr(&mut b, portal);
        b.extend_from_slice(&0i32.to_be_bytes());
        message(b'E', &b)
    }

    /// Close a statement (`b'S'`) or portal (`b'P'`).
    pub fn close(kind: u8, name: &[u8]) -> Vec<u8> {
        let mut b = vec![kind];
        cstr(&mut b, name);
        message(b'C', &b)
    }

    pub fn sync() -> Vec<u8> {
        message(b'S', &[])
    }

    pub fn flush() -> Vec<u8> {
        message(b'H', &[])
    }
}
