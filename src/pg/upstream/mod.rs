//! The upstream side: connect to the target with the proxy's injected credentials.
//!
//! TLS modes follow libpq: `disable` never asks, `prefer` asks and falls back to plain text if
//! the server says no, `require` fails without TLS. Certificates are verified only when the
//! target has a `ca_file` (then chain and host name are checked); without one the link is
//! encrypted but unauthenticated, like libpq's `sslmode=require`.
//! Once connected, the proxy asks `SHOW search_path` (the relay resolves unqualified names
//! against it, and the server does not report it).
//! Authentication: SCRAM-SHA-256 (rust-postgres' client); MD5 and cleartext only for a
//! target with `allow_weak_auth = true`, so by default a server (or a machine in the middle
//! of a `tls = "prefer"` link) that asks for them never receives the password.
//! Channel binding as libpq's default (`channel_binding=prefer`), failing closed: over TLS,
//! when the server offers SCRAM-SHA-256-PLUS, the exchange binds to the `tls-server-end-point`
//! hash of the certificate the target presented (a machine in the middle, with a certificate
//! of its own, cannot relay the exchange); a certificate that defines no such hash then fails
//! the connection. Over TLS without PLUS offered the client-first says `y` (a server that
//! can bind sees the downgrade); without TLS, `n`, and PLUS alone is refused.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use postgres_protocol::authentication::md5_hash;
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;

use super::msg;
use super::stream::{MaybeTls, UpstreamStream};
use crate::config::{Target, UpstreamTls};
use tls::server_name;
pub use tls::{client_tls_config, tls_config};

mod tls;

/// Cap on any single message during upstream start-up.
const MAX_STARTUP_MESSAGE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot connect to {0}: {1}")]
    Connect(String, std::io::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server does not support TLS, and the target requires it")]
    TlsRefused,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("protocol violation during start-up: {0}")]
    Protocol(&'static str),
    #[error("the target rejected the proxy's credentials")]
    AuthFailed(Vec<(u8, String)>),
    #[error("the target asks for a password and none is configured")]
    NoPassword,
    #[error("unsupported authentication method {0}")]
    UnsupportedAuth(i32),
    #[error("the target offers no SASL mechanism jitgate can use: {0}")]
    UnsupportedSasl(String),
    #[error(
        "the target offers channel binding, but its certificate's signature algorithm defines \
         no tls-server-end-point hash"
    )]
    NoBindingHash,
    #[error(
        "the target asked for the password {0}; refused so that the password never leaves in a \
         reusable form (use SCRAM-SHA-256 on the target, or set allow_weak_auth = true)"
    )]
    WeakAuth(&'static str),
    #[error("the target refused the connection: {}", msg::field(.0, b'M').unwrap_or("?"))]
    Refused(Vec<(u8, String)>),
}

/// An upstream connection that has reached its first ReadyForQuery.
pub struct Upstream {
    pub stream: UpstreamStream,
    /// ParameterStatus, NoticeResponse and other frames to replay to the client, in order.
    pub startup_frames: BytesMut,
    pub pid: i32,
    pub secret: i32,
    pub status: u8,
    /// The session's `search_path` as the server has it after start-up (role and database
    /// settings, the client's parameter), `None` when it could not be read.
    pub search_path: Option<String>,
}

/// Open a TCP connection to the target, and TLS as its mode says.
async fn open(
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<UpstreamStream, UpstreamError> {
    let mut tcp = TcpStream::connect(&target.address)
        .await
        .map_err(|e| UpstreamError::Connect(target.address.clone(), e))?;
    let _ = tcp.set_nodelay(true);
    let Some(tls) = tls else {
        return Ok(MaybeTls::Plain(tcp));
    };
    let mut req = BytesMut::with_capacity(8);
    req.put_i32(8);
    req.put_i32(msg::SSL_REQUEST_CODE);
    tcp.write_all(&req).await?;
    match tcp.read_u8().await? {
        b'S' => {
            let name = server_name(&target.address)?;
            let stream = TlsConnector::from(tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| UpstreamError::Tls(e.to_string()))?;
            Ok(MaybeTls::Tls(Box::new(stream)))
        }
        b'N' if target.tls == UpstreamTls::Prefer => Ok(MaybeTls::Plain(tcp)),
        b'N' => Err(UpstreamError::TlsRefused),
        _ => Err(UpstreamError::Protocol("bad answer to SSLRequest")),
    }
}

async fn read_message(s: &mut UpstreamStream) -> Result<(u8, BytesMut), UpstreamError> {
    let tag = s.read_u8().await?;
    let len = s.read_i32().await?;
    if !(4..=MAX_STARTUP_MESSAGE as i32).contains(&len) {
        return Err(UpstreamError::Protocol("bad message length"));
    }
    let mut body = BytesMut::zeroed(len as usize - 4);
    s.read_exact(&mut body).await?;
    Ok((tag, body))
}

async fn write(s: &mut UpstreamStream, out: &BytesMut) -> Result<(), UpstreamError> {
    s.write_all(out).await?;
    s.flush().await?;
    Ok(())
}

/// Connect, authenticate as the target's role, and read up to the first ReadyForQuery.
pub async fn connect(
    target: &Target,
    tls: Option<&Arc<rustls::ClientConfig>>,
    params: &[(String, String)],
) -> Result<Upstream, UpstreamError> {
    let mut stream = open(target, tls).await?;
    let mut body = BytesMut::new();
    body.put_i32(msg::PROTOCOL_3_0);
    for (k, v) in [
        ("user", target.user.as_str()),
        ("database", target.database.as_str()),
    ]
    .into_iter()
    .chain(params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    {
        body.put_slice(k.as_bytes());
        body.put_u8(0);
        body.put_slice(v.as_bytes());
        body.put_u8(0);
    }
    body.put_u8(0);
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_i32(body.len() as i32 + 4);
    out.put_slice(&body);
    write(&mut stream, &out).await?;

    let link = channel_binding(&stream);
    authenticate(&mut stream, target, &link).await?;

    let mut up = Upstream {
        stream,
        startup_frames: BytesMut::new(),
        pid: 0,
        secret: 0,
        status: b'I',
        search_path: None,
    };
    loop {
        let (tag, body) = read_message(&mut up.stream).await?;
        match tag {
            b'K' => {
                up.pid = msg::i32_at(&body, 0).ok_or(UpstreamError::Protocol("short K"))?;
                up.secret = msg::i32_at(&body, 4).ok_or(UpstreamError::Protocol("short K"))?;
            }
            b'Z' => {
                up.status = body.first().copied().unwrap_or(b'I');
                up.search_path = show_search_path(&mut up).await?;
                return Ok(up);
            }
            b'E' => {
                return Err(UpstreamError::Refused(
                    msg::fields(&body).unwrap_or_default(),
                ));
            }
            b'S' | b'N' => msg::frame(&mut up.startup_frames, tag, &body),
            _ => {
                return Err(UpstreamError::Protocol(
                    "unexpected message during start-up",
                ));
            }
        }
    }
}

/// `SHOW search_path` before the client's first statement: ParameterStatus does not report
/// it, and `ALTER ROLE … SET search_path` or `ALTER DATABASE … SET` may have changed it.
/// `None` if the server answers anything but one value.
async fn show_search_path(up: &mut Upstream) -> Result<Option<String>, UpstreamError> {
    let mut out = BytesMut::new();
    msg::frame(&mut out, b'Q', b"SHOW search_path\0");
    write(&mut up.stream, &out).await?;
    let mut value = None;
    let mut failed = false;
    loop {
        let (tag, body) = read_message(&mut up.stream).await?;
        match tag {
            b'D' => {
                // Int16 column count 1, Int32 length, the bytes.
                let len = msg::i32_at(&body, 2).and_then(|n| usize::try_from(n).ok());
                value = len
                    .and_then(|n| body.get(6..6 + n))
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .map(str::to_string);
            }
            b'E' => failed = true,
            b'S' | b'N' => msg::frame(&mut up.startup_frames, tag, &body),
            b'Z' => {
                up.status = body.first().copied().unwrap_or(b'I');
                return Ok(value.filter(|_| !failed));
            }
            _ => {}
        }
    }
}

/// What an upstream connection can bind a SCRAM exchange to.
enum Link {
    Plain,
    /// The `tls-server-end-point` data of the target's certificate, `None` if its signature
    /// algorithm defines none.
    Tls(Option<Vec<u8>>),
}

fn channel_binding(stream: &UpstreamStream) -> Link {
    match stream {
        MaybeTls::Plain(_) => Link::Plain,
        MaybeTls::Tls(tls) => Link::Tls(
            tls.get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|leaf| crate::tls::server_end_point(leaf)),
        ),
    }
}

/// The SASL mechanism and gs2 channel-binding choice for the mechanisms a target offers.
fn choose_mechanism(
    offered: &[&str],
    link: &Link,
) -> Result<(&'static str, ChannelBinding), UpstreamError> {
    let plus = offered.contains(&crate::scram::MECHANISM_PLUS);
    let plain = offered.contains(&crate::scram::MECHANISM);
    match link {
        Link::Tls(Some(hash)) if plus => Ok((
            crate::scram::MECHANISM_PLUS,
            ChannelBinding::tls_server_end_point(hash.clone()),
        )),
        Link::Tls(None) if plus => Err(UpstreamError::NoBindingHash),
        Link::Tls(_) if plain => Ok((crate::scram::MECHANISM, ChannelBinding::unrequested())),
        Link::Plain if plain => Ok((crate::scram::MECHANISM, ChannelBinding::unsupported())),
        _ => Err(UpstreamError::UnsupportedSasl(offered.join(", "))),
    }
}

async fn authenticate(
    stream: &mut UpstreamStream,
    target: &Target,
    link: &Link,
) -> Result<(), UpstreamError> {
    let password = || target.password.as_ref().ok_or(UpstreamError::NoPassword);
    let mut scram: Option<ScramSha256> = None;
    let mut out = BytesMut::new();
    loop {
        let (tag, body) = read_message(stream).await?;
        if tag == b'E' {
            let fields = msg::fields(&body).unwrap_or_default();
            let code = msg::field(&fields, b'C').unwrap_or("");
            return Err(if code.starts_with("28") {
                // The client is told only that the proxy's credentials failed; the operator
                // sees why (a channel-binding mismatch reads differently from a bad password).
                tracing::warn!(
                    target_message = msg::field(&fields, b'M').unwrap_or("?"),
                    "the target refused the proxy's authentication"
                );
                UpstreamError::AuthFailed(fields)
            } else {
                UpstreamError::Refused(fields)
            });
        }
        if tag != b'R' {
            return Err(UpstreamError::Protocol(
                "expected an authentication request",
            ));
        }
        let kind = msg::i32_at(&body, 0).ok_or(UpstreamError::Protocol("short R"))?;
        out.clear();
        match kind {
            0 => return Ok(()),
            3 if !target.allow_weak_auth => return Err(UpstreamError::WeakAuth("in clear text")),
            5 if !target.allow_weak_auth => return Err(UpstreamError::WeakAuth("as MD5")),
            3 => {
                let mut b = password()?.expose().as_bytes().to_vec();
                b.push(0);
                msg::frame(&mut out, b'p', &b);
            }
            5 => {
                let salt: [u8; 4] = body
                    .get(4..8)
                    .and_then(|s| s.try_into().ok())
                    .ok_or(UpstreamError::Protocol("short MD5 salt"))?;
                let hash = md5_hash(
                    target.user.as_bytes(),
                    password()?.expose().as_bytes(),
                    salt,
                );
                let mut b = hash.into_bytes();
                b.push(0);
                msg::frame(&mut out, b'p', &b);
            }
            10 => {
                let mechanisms: Vec<&str> = body[4..]
                    .split(|&c| c == 0)
                    .filter(|m| !m.is_empty())
                    .filter_map(|m| std::str::from_utf8(m).ok())
                    .collect();
                let (mechanism, channel_binding) = choose_mechanism(&mechanisms, link)?;
                let client = ScramSha256::new(password()?.expose().as_bytes(), channel_binding);
                let first = client.message();
                let mut b = BytesMut::new();
                b.put_slice(mechanism.as_bytes());
                b.put_u8(0);
                b.put_i32(first.len() as i32);
                b.put_slice(first);
                msg::frame(&mut out, b'p', &b);
                scram = Some(client);
            }
            11 => {
                let mut client = scram
                    .take()
                    .ok_or(UpstreamError::Protocol("SASL out of order"))?;
                let server_first = body[4..].to_vec();
                // PBKDF2 over the password takes milliseconds: keep it off the async workers.
                let client = tokio::task::spawn_blocking(move || {
                    client.update(&server_first).map(|()| client)
                })
                .await
                .map_err(|_| UpstreamError::Protocol("SCRAM worker failed"))?
                .map_err(|_| UpstreamError::Protocol("bad SCRAM server-first"))?;
                msg::frame(&mut out, b'p', client.message());
                scram = Some(client);
            }
            12 => {
                let mut client = scram
                    .take()
                    .ok_or(UpstreamError::Protocol("SASL out of order"))?;
                client
                    .finish(&body[4..])
                    .map_err(|_| UpstreamError::Protocol("SCRAM server signature mismatch"))?;
                continue;
            }
            other => return Err(UpstreamError::UnsupportedAuth(other)),
        }
        write(stream, &out).await?;
    }
}

/// Send a CancelRequest for an upstream backend (plain TCP, as libpq does before PG 17).
pub async fn cancel(address: &str, pid: i32, secret: i32) -> std::io::Result<()> {
    let mut tcp = TcpStream::connect(address).await?;
    let mut b = BytesMut::with_capacity(16);
    b.put_i32(16);
    b.put_i32(msg::CANCEL_REQUEST_CODE);
    b.put_i32(pid);
    b.put_i32(secret);
    tcp.write_all(&b).await?;
    // PostgreSQL closes the connection when done; waiting for that keeps cancels ordered.
    let mut sink = [0u8; 1];
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut sink)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scram::{MECHANISM, MECHANISM_PLUS};

    /// The mechanism chosen and the gs2 header it puts in front of the client-first-message.
    fn header(offered: &[&str], link: &Link) -> Option<(&'static str, String)> {
        let (mechanism, binding) = choose_mechanism(offered, link).ok()?;
        let first = String::from_utf8(ScramSha256::new(b"pw", binding).message().to_vec()).ok()?;
        Some((mechanism, first[..first.find(",n=")? + 1].to_string()))
    }

    #[test]
    fn binds_over_tls_when_offered_and_says_y_when_not() {
        let (tls, both) = (Link::Tls(Some(vec![1; 32])), [MECHANISM_PLUS, MECHANISM]);
        let bound = Some((MECHANISM_PLUS, "p=tls-server-end-point,,".to_string()));
        assert_eq!(header(&both, &tls), bound);
        assert_eq!(header(&[MECHANISM_PLUS], &tls), bound);
        assert_eq!(header(&[MECHANISM], &tls), Some((MECHANISM, "y,,".into())));
        assert_eq!(header(&both, &Link::Plain), Some((MECHANISM, "n,,".into())));
        // Fail closed: PLUS offered but no hash to bind with; PLUS alone without TLS.
        for (offered, link) in [
            (&both[..], Link::Tls(None)),
            (&[MECHANISM_PLUS], Link::Plain),
            (&["SCRAM-SHA-1"], tls),
            (&[], Link::Plain),
        ] {
            assert_eq!(header(offered, &link), None, "{offered:?}");
        }
    }
}
