//! A minimal blocking HTTP/1.1 client for the control API (plain or TLS with the test CA).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::certs::TestCa;

/// A response: status code and body (chunked encoding undone).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// `GET path`: (status, body).
pub fn get(addr: SocketAddr, scheme: &str, path: &str) -> std::io::Result<(u16, String)> {
    request(addr, scheme, "GET", path, &[], None).map(|r| (r.status, r.body))
}

/// One request with `Connection: close`; `scheme` is `http` or `https` (trusting the test CA).
pub fn request(
    addr: SocketAddr,
    scheme: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> std::io::Result<Response> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(10)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or(""));
    let mut raw = Vec::new();
    if scheme == "https" {
        let mut tls = tls_client(&TestCa::shared().cert_der, tcp)?;
        tls.write_all(req.as_bytes())?;
        read_all(&mut tls, &mut raw)?;
    } else {
        let mut tcp = tcp;
        tcp.write_all(req.as_bytes())?;
        read_all(&mut tcp, &mut raw)?;
    }
    parse(&raw)
}

fn read_all(r: &mut impl Read, raw: &mut Vec<u8>) -> std::io::Result<()> {
    match r.read_to_end(raw) {
        Ok(_) => Ok(()),
        // A TLS peer that closes without close_notify still sent a whole response.
        Err(_) if raw.starts_with(b"HTTP/") => Ok(()),
        Err(e) => Err(e),
    }
}

fn parse(raw: &[u8]) -> std::io::Result<Response> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let mut status_line = lines.next().ok_or_else(bad)?.split_whitespace();
    if !status_line.next().is_some_and(|p| p.starts_with("HTTP/1.")) {
        return Err(bad());
    }
    let status = status_line
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(bad)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        let mut out = Vec::new();
        loop {
            let line_end = body.windows(2).position(|w| w == b"\r\n").ok_or_else(bad)?;
            let size_text = String::from_utf8_lossy(&body[..line_end]);
            let size_text = size_text.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| bad())?;
            body = &body[line_end + 2..];
            if size == 0 || body.len() < size {
                break;
            }
            out.extend_from_slice(&body[..size]);
            body = body.get(size + 2..).unwrap_or(&[]);
        }
        out
    } else {
        body.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// A blocking TLS client stream that trusts `ca_der` and expects the name 127.0.0.1.
pub fn tls_client(
    ca_der: &[u8],
    tcp: TcpStream,
) -> std::io::Result<
    tokio_rustls::rustls::StreamOwned<tokio_rustls::rustls::ClientConnection, TcpStream>,
> {
    use tokio_rustls::rustls::{self, pki_types};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(pki_types::CertificateDer::from(ca_der.to_vec()))
        .map_err(std::io::Error::other)?;
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name.to_owned())
        .map_err(std::io::Error::other)?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}
