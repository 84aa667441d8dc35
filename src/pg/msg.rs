//! The few wire messages the proxy builds or reads.
//!
//! Outgoing messages are encoded with pgwire's codec. Incoming ones are read here with
//! bounds-checked slicing only: every function returns `None` on malformed input and never
//! panics, whatever the bytes (pgwire's decoders index without checks on some paths, so the
//! network never reaches them).

use bytes::{BufMut, BytesMut};
use pgwire::messages::Message;
use pgwire::messages::response::{ErrorResponse, NoticeResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus, SecretKey};

pub const SSL_REQUEST_CODE: i32 = 80877103;
pub const GSSENC_REQUEST_CODE: i32 = 80877104;
pub const CANCEL_REQUEST_CODE: i32 = 80877102;
pub const PROTOCOL_3_0: i32 = 196608;

/// An error or notice field list, in the order PostgreSQL sends them.
pub struct Fields {
    pub severity: &'static str,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl Fields {
    pub fn new(severity: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Fields {
            severity,
            code,
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }

    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = Some(h.into());
        self
    }

    fn into_vec(self) -> Vec<(u8, String)> {
        // Keep the whole message well under pgwire's 1 MiB backend limit.
        let clip = |s: String| crate::policy::clip(s.replace('\0', ""), 64 * 1024);
        let mut v = vec![
            (b'S', self.severity.to_string()),
            (b'V', self.severity.to_string()),
            (b'C', self.code.to_string()),
            (b'M', clip(self.message)),
        ];
        if let Some(d) = self.detail {
            v.push((b'D', clip(d)));
        }
        if let Some(h) = self.hint {
            v.push((b'H', clip(h)));
        }
        v
    }
}

fn encode<M: Message>(m: &M, out: &mut BytesMut) {
    // Encoding only fails for messages over pgwire's size limits, which Fields::into_vec
    // and the callers' own bounds rule out.
    if let Err(e) = m.encode(out) {
        tracing::error!("cannot encode a protocol message: {e}");
    }
}

pub fn error(out: &mut BytesMut, f: Fields) {
    encode(&ErrorResponse::new(f.into_vec()), out);
}

pub fn notice(out: &mut BytesMut, f: Fields) {
    encode(&NoticeResponse::new(f.into_vec()), out);
}

pub fn ready_for_query(out: &mut BytesMut, status: u8) {
    let status = match status {
        b'T' => TransactionStatus::Transaction,
        b'E' => TransactionStatus::Error,
        _ => TransactionStatus::Idle,
    };
    encode(&ReadyForQuery::new(status), out);
}

pub fn auth_ok(out: &mut BytesMut) {
    encode(&Authentication::Ok, out);
}

pub fn auth_sasl(out: &mut BytesMut, mechanisms: &[&str]) {
    encode(
        &Authentication::SASL(mechanisms.iter().map(|m| m.to_string()).collect()),
        out,
    );
}

pub fn auth_sasl_continue(out: &mut BytesMut, data: &[u8]) {
    encode(
        &Authentication::SASLContinue(bytes::Bytes::copy_from_slice(data)),
        out,
    );
}

pub fn auth_sasl_final(out: &mut BytesMut, data: &[u8]) {
    encode(
        &Authentication::SASLFinal(bytes::Bytes::copy_from_slice(data)),
        out,
    );
}

pub fn parameter_status(out: &mut BytesMut, name: &str, value: &str) {
    encode(&ParameterStatus::new(name.into(), value.into()), out);
}

pub fn backend_key_data(out: &mut BytesMut, pid: i32, secret: i32) {
    encode(&BackendKeyData::new(pid, SecretKey::I32(secret)), out);
}

/// NegotiateProtocolVersion: we speak 3.0 and none of the `_pq_` options. The version field is
/// the whole version code (major << 16 | minor), as PostgreSQL sends it and libpq reads it.
/// Callers bound `unsupported` (it comes from a startup packet of at most 10,000 bytes).
pub fn negotiate_protocol_version(out: &mut BytesMut, unsupported: &[String]) {
    let len = 4 + 4 + 4 + unsupported.iter().map(|s| s.len() + 1).sum::<usize>();
    out.put_u8(b'v');
    out.put_i32(len as i32);
    out.put_i32(PROTOCOL_3_0);
    out.put_i32(unsupported.len() as i32);
    for s in unsupported {
        out.put_slice(s.as_bytes());
        out.put_u8(0);
    }
}

/// A FATAL error as PostgreSQL sends it to a client that asked for a protocol older than 3.0
/// (it refuses those, in their format): `E`, then `FATAL:  <text>` and a newline as a C string,
/// with no length word.
pub fn error_before_3_0(out: &mut BytesMut, text: &str) {
    out.put_u8(b'E');
    out.put_slice(b"FATAL:  ");
    out.put_slice(text.replace('\0', "").as_bytes());
    out.put_slice(b"\n\0");
}

/// A frontend message with a one-byte tag: tag, length (without the tag), body.
pub fn frame(out: &mut BytesMut, tag: u8, body: &[u8]) {
    out.put_u8(tag);
    out.put_i32((body.len() + 4) as i32);
    out.put_slice(body);
}

/// Split a NUL-terminated string off the front of `b`.
pub fn cstr(b: &[u8]) -> Option<(&str, &[u8])> {
    let nul = b.iter().position(|&c| c == 0)?;
    let s = std::str::from_utf8(&b[..nul]).ok()?;
    Some((s, &b[nul + 1..]))
}

pub fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    let s = b.get(at..at + 4)?;
    Some(i32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The parameter values of a whole Bind frame (zero-copy slices; `None` is NULL). A frame
/// too malformed to read gives what could be read: the server rejects it anyway.
pub fn bind_params(frame: bytes::Bytes) -> Vec<Option<bytes::Bytes>> {
    let mut out = Vec::new();
    let cstr_end = |from: usize| {
        frame
            .get(from..)?
            .iter()
            .position(|&c| c == 0)
            .map(|n| from + n + 1)
    };
    let Some(at) = cstr_end(5).and_then(cstr_end) else {
        return out;
    };
    let Some(nformats) = i16_at(&frame, at) else {
        return out;
    };
    let mut at = at + 2 + 2 * nformats.max(0) as usize;
    let Some(n) = i16_at(&frame, at) else {
        return out;
    };
    at += 2;
    for _ in 0..n.max(0) {
        let Some(len) = i32_at(&frame, at) else {
            break;
        };
        at += 4;
        if len < 0 {
            out.push(None);
            continue;
        }
        let end = at + len as usize;
        if end > frame.len() {
            break;
        }
        out.push(Some(frame.slice(at..end)));
        at = end;
    }
    out
}

pub fn i16_at(b: &[u8], at: usize) -> Option<i16> {
    let s = b.get(at..at + 2)?;
    Some(i16::from_be_bytes([s[0], s[1]]))
}

/// Startup-packet parameters: pairs of C strings ending with an empty one.
pub fn startup_params(mut b: &[u8]) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    loop {
        let (k, rest) = cstr(b)?;
        if k.is_empty() {
            return Some(out);
        }
        let (v, rest) = cstr(rest)?;
        out.push((k.to_string(), v.to_string()));
        b = rest;
    }
}

/// The fields of an ErrorResponse or NoticeResponse body.
pub fn fields(mut b: &[u8]) -> Option<Vec<(u8, String)>> {
    let mut out = Vec::new();
    loop {
        let (&code, rest) = b.split_first()?;
        if code == 0 {
            return Some(out);
        }
        let nul = rest.iter().position(|&c| c == 0)?;
        out.push((code, String::from_utf8_lossy(&rest[..nul]).into_owned()));
        b = &rest[nul + 1..];
    }
}

pub fn field(fields: &[(u8, String)], code: u8) -> Option<&str> {
    fields
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_never_panic_on_short_input() {
        assert!(cstr(b"abc").is_none());
        assert_eq!(cstr(b"a\0b").map(|(s, r)| (s, r.len())), Some(("a", 1)));
        assert!(i32_at(b"abc", 0).is_none());
        assert!(i16_at(b"a", 0).is_none());
        assert!(startup_params(b"user\0").is_none());
        assert_eq!(startup_params(b"user\0a\0\0").unwrap().len(), 1);
        assert!(fields(b"Sx").is_none());
        assert_eq!(fields(b"SERROR\0C42501\0\0").unwrap().len(), 2);
    }

    #[test]
    fn error_round_trip() {
        let mut out = BytesMut::new();
        error(&mut out, Fields::new("ERROR", "42501", "no").detail("why"));
        assert_eq!(out[0], b'E');
        let f = fields(&out[5..]).unwrap();
        assert_eq!(field(&f, b'C'), Some("42501"));
        assert_eq!(field(&f, b'D'), Some("why"));
    }
}
