//! The client's side of connection start-up: SSL/GSS negotiation, the startup packet, protocol
//! version negotiation, and SCRAM-SHA-256(-PLUS) authentication against the user's verifier.
//!
//! Invariants: nothing is read past a packet's declared length before TLS starts (so bytes a
//! client pipelines after SSLRequest cannot be injected into the TLS session); every length is
//! bounded before any allocation; a wrong password and an unknown user produce byte-identical
//! failures; only the start-up parameters `startup_params.rs` allows are forwarded (anything
//! else is FATAL 42501 naming it, before authentication).
//!
//! Protocol versions as PostgreSQL 15–18 handle them: major 3 only (anything else is FATAL
//! 0A000); a minor above 0 or any `_pq_.` option gets NegotiateProtocolVersion (3.0 and the
//! options not recognised, which is all of them) and the session goes on at 3.0; `_pq_.`
//! options are never forwarded upstream, where jitgate always speaks 3.0.
//! Channel binding: over TLS, SCRAM-SHA-256-PLUS is offered with the `tls-server-end-point`
//! data of the certificate this connection's handshake served ([`crate::tls`]), so a reload
//! that renews the certificate never changes what an exchange in progress binds to.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::msg::{self, Fields};
use super::stream::{ClientStream, MaybeTls};
use crate::config::{Config, Target, TargetKind, User};
use crate::scram::{ChannelBinding, Exchange, Verifier};

/// PostgreSQL's own cap on a startup packet (MAX_STARTUP_PACKET_LENGTH).
const MAX_STARTUP_PACKET: usize = 10_000;
/// Authentication messages are small; PostgreSQL caps SASL messages similarly.
const MAX_AUTH_MESSAGE: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid startup packet: {0}")]
    Protocol(&'static str),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// Already reported to the client with an ErrorResponse.
    #[error("{0}")]
    Refused(String),
}

/// What a new connection turned out to be.
pub enum Hello {
    /// An authenticated user who asked for a known Postgres target.
    Session(Box<Authenticated>),
    /// A CancelRequest: route it and close.
    Cancel { pid: i32, secret: i32 },
}

pub struct Authenticated {
    pub stream: ClientStream,
    pub user: Arc<User>,
    pub target: Arc<Target>,
    /// Startup parameters to forward upstream (without user and database), vetted by
    /// [`super::startup_params::vet`]: `client_encoding=UTF8` first.
    pub params: Vec<(String, String)>,
    pub application_name: String,
}

async fn read_packet<S: AsyncRead + Unpin>(s: &mut S) -> Result<BytesMut, StartupError> {
    let len = s.read_i32().await?;
    if !(8..=MAX_STARTUP_PACKET as i32).contains(&len) {
        return Err(StartupError::Protocol("bad length"));
    }
    let mut buf = BytesMut::zeroed(len as usize - 4);
    s.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn send<S: AsyncWrite + Unpin>(s: &mut S, out: &BytesMut) -> Result<(), StartupError> {
    s.write_all(out).await?;
    s.flush().await?;
    Ok(())
}

/// Send a FATAL error, then report `Refused`.
pub async fn refuse<S: AsyncWrite + Unpin>(s: &mut S, f: Fields) -> StartupError {
    let text = f.message.clone();
    let mut out = BytesMut::new();
    msg::error(&mut out, f);
    let _ = send(s, &out).await;
    let _ = s.shutdown().await;
    StartupError::Refused(text)
}

/// Run the start-up sequence on a freshly accepted socket.
pub async fn handshake(
    mut tcp: TcpStream,
    tls: Option<&TlsAcceptor>,
    config: &Config,
    process_secret: &[u8; 32],
    over_limit: bool,
) -> Result<Hello, StartupError> {
    let ctx = Ctx {
        config,
        process_secret,
        over_limit,
    };
    let mut packet = read_packet(&mut tcp).await?;
    let mut gss_tried = false;
    // SSLRequest and GSSENCRequest may each come once, before the startup packet.
    loop {
        match msg::i32_at(&packet, 0) {
            Some(msg::SSL_REQUEST_CODE) if packet.len() == 4 => match tls {
                Some(acceptor) => {
                    tcp.write_all(b"S").await?;
                    let (tls_stream, certificate) =
                        crate::tls::accept_telling_certificate(acceptor, tcp)
                            .await
                            .map_err(StartupError::Tls)?;
                    let binding = certificate
                        .and_then(|c| crate::tls::server_end_point(&c))
                        .map_or(
                            ChannelBinding::Unavailable,
                            ChannelBinding::TlsServerEndPoint,
                        );
                    let mut stream = MaybeTls::Tls(Box::new(tls_stream));
                    let packet = read_packet(&mut stream).await?;
                    return startup(stream, packet, &ctx, binding).await;
                }
                None => {
                    tcp.write_all(b"N").await?;
                    packet = read_packet(&mut tcp).await?;
                    if msg::i32_at(&packet, 0) == Some(msg::SSL_REQUEST_CODE) {
                        return Err(StartupError::Protocol("SSLRequest sent twice"));
                    }
                }
            },
            Some(msg::GSSENC_REQUEST_CODE) if packet.len() == 4 && !gss_tried => {
                gss_tried = true;
                tcp.write_all(b"N").await?;
                packet = read_packet(&mut tcp).await?;
            }
            _ => {
                let plain = MaybeTls::Plain(tcp);
                return startup(plain, packet, &ctx, ChannelBinding::Unavailable).await;
            }
        }
    }
}

struct Ctx<'a> {
    config: &'a Config,
    process_secret: &'a [u8; 32],
    over_limit: bool,
}

async fn startup(
    mut stream: ClientStream,
    packet: BytesMut,
    ctx: &Ctx<'_>,
    binding: ChannelBinding,
) -> Result<Hello, StartupError> {
    let (config, process_secret) = (ctx.config, ctx.process_secret);
    let code = msg::i32_at(&packet, 0).ok_or(StartupError::Protocol("short"))?;
    if code == msg::CANCEL_REQUEST_CODE {
        let (Some(pid), Some(secret)) = (msg::i32_at(&packet, 4), msg::i32_at(&packet, 8)) else {
            return Err(StartupError::Protocol("short CancelRequest"));
        };
        return Ok(Hello::Cancel { pid, secret });
    }
    let major = code >> 16;
    let minor = code & 0xffff;
    if major < 3 && code != 0 {
        // PostgreSQL answers 1.x and 2.x in their own format: the text alone, no length (0.0
        // it takes for "not known yet", and answers in 3.0's).
        let text =
            format!("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0");
        let mut out = BytesMut::new();
        msg::error_before_3_0(&mut out, &text);
        let _ = send(&mut stream, &out).await;
        let _ = stream.shutdown().await;
        return Err(StartupError::Refused(text));
    }
    if major != 3 {
        return Err(refuse(
            &mut stream,
            Fields::new(
                "FATAL",
                "0A000",
                format!(
                    "unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0"
                ),
            ),
        )
        .await);
    }
    let Some(params) = msg::startup_params(&packet[4..]) else {
        return Err(refuse(
            &mut stream,
            Fields::new("FATAL", "08P01", "invalid startup packet layout"),
        )
        .await);
    };
    let mut user_name = None;
    let mut database = None;
    let mut application_name = String::new();
    let mut settings = Vec::new();
    let mut unsupported = Vec::new();
    for (k, v) in params {
        match k.as_str() {
            "user" => user_name = Some(v),
            "database" => database = Some(v),
            "replication" if v != "false" && v != "off" && v != "0" && v != "no" => {
                return Err(refuse(
                    &mut stream,
                    Fields::new(
                        "FATAL",
                        "0A000",
                        "jitgate: replication connections are not supported",
                    ),
                )
                .await);
            }
            "replication" => {}
            k if k.starts_with("_pq_.") => unsupported.push(k.to_string()),
            _ => {
                if k == "application_name" {
                    application_name = v.clone();
                }
                settings.push((k, v));
            }
        }
    }
    // As PostgreSQL's ProcessStartupPacket: right after the parameters, before any check of
    // them, so a client that asked for more learns what it got even when refused next.
    if minor > 0 || !unsupported.is_empty() {
        let mut out = BytesMut::new();
        msg::negotiate_protocol_version(&mut out, &unsupported);
        send(&mut stream, &out).await?;
    }
    let forward = match super::startup_params::vet(&settings) {
        Ok(f) => f,
        Err(refused) => {
            tracing::info!(parameter = %refused.name, "start-up parameter refused");
            return Err(refuse(&mut stream, Fields::new("FATAL", "42501", refused.why)).await);
        }
    };
    let Some(user_name) = user_name.filter(|u| !u.is_empty()) else {
        return Err(refuse(
            &mut stream,
            Fields::new(
                "FATAL",
                "28000",
                "no PostgreSQL user name specified in startup packet",
            ),
        )
        .await);
    };
    let database = database
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| user_name.clone());
    if ctx.over_limit {
        // As PostgreSQL: refused right after the startup packet, before authentication.
        return Err(refuse(
            &mut stream,
            Fields::new("FATAL", "53300", "sorry, too many clients already"),
        )
        .await);
    }

    let user = config.user(&user_name).cloned();
    let verifier = user
        .as_ref()
        .and_then(|u| u.password.clone())
        .unwrap_or_else(|| Verifier::mock(&user_name, process_secret));
    let known = user.is_some();
    authenticate(&mut stream, &user_name, verifier, known, &binding).await?;
    let Some(user) = user else {
        // authenticate() cannot succeed against a mock verifier.
        return Err(StartupError::Refused("unknown user".into()));
    };
    let target = config
        .target(&database)
        .filter(|t| t.kind == TargetKind::Postgres)
        .cloned();
    let Some(target) = target else {
        return Err(refuse(
            &mut stream,
            Fields::new(
                "FATAL",
                "3D000",
                format!("database \"{database}\" does not exist"),
            ),
        )
        .await);
    };
    Ok(Hello::Session(Box::new(Authenticated {
        stream,
        user,
        target,
        params: forward,
        application_name,
    })))
}

async fn read_auth_message(stream: &mut ClientStream) -> Result<BytesMut, StartupError> {
    let tag = stream.read_u8().await?;
    let len = stream.read_i32().await?;
    if tag != b'p' || !(4..=MAX_AUTH_MESSAGE as i32).contains(&len) {
        return Err(StartupError::Protocol("expected a password message"));
    }
    let mut body = BytesMut::zeroed(len as usize - 4);
    stream.read_exact(&mut body).await?;
    Ok(body)
}

/// SCRAM against `verifier` (a mock one for an unknown user: `known` is false and the
/// exchange fails exactly like a wrong password).
async fn authenticate(
    stream: &mut ClientStream,
    user_name: &str,
    verifier: Verifier,
    known: bool,
    binding: &ChannelBinding,
) -> Result<(), StartupError> {
    let failed = || {
        Fields::new(
            "FATAL",
            "28P01",
            format!("password authentication failed for user \"{user_name}\""),
        )
    };
    let mut out = BytesMut::new();
    msg::auth_sasl(&mut out, binding.mechanisms());
    send(stream, &out).await?;

    // SASLInitialResponse: mechanism, then an Int32-prefixed client-first-message.
    let body = read_auth_message(stream).await?;
    let Some((mechanism, rest)) = msg::cstr(&body) else {
        return Err(refuse(stream, failed()).await);
    };
    let data_len = msg::i32_at(rest, 0).unwrap_or(-1);
    let client_first = usize::try_from(data_len)
        .ok()
        .and_then(|n| rest.get(4..4 + n));
    let started = match client_first {
        Some(first) => Exchange::start(verifier, mechanism, first, binding),
        None => Err(crate::scram::ScramError::Malformed),
    };
    let (exchange, server_first) = match started {
        Ok(started) => started,
        Err(e) => {
            tracing::info!(user = %crate::escape::terminal(user_name), "SCRAM refused: {e}");
            return Err(refuse(stream, failed()).await);
        }
    };
    out.clear();
    msg::auth_sasl_continue(&mut out, server_first.as_bytes());
    send(stream, &out).await?;

    let client_final = read_auth_message(stream).await?;
    match exchange.finish(&client_final) {
        Ok(server_final) if known => {
            out.clear();
            msg::auth_sasl_final(&mut out, server_final.as_bytes());
            send(stream, &out).await?;
            Ok(())
        }
        Ok(_) => Err(refuse(stream, failed()).await),
        Err(e) => {
            tracing::info!(user = %crate::escape::terminal(user_name), "SCRAM refused: {e}");
            Err(refuse(stream, failed()).await)
        }
    }
}
