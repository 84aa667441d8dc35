//! SFTP v3 on the wire (draft-ietf-secsh-filexfer-02, as OpenSSH speaks it): packets are
//! `uint32 length, byte type, …`, every request but INIT carries a `uint32 id` next.
//!
//! Invariants: nothing here panics on any input; a packet is at most [`MAX_PACKET`] bytes
//! (OpenSSH's own limit), so a [`Framer`] holds at most one partial packet plus one chunk;
//! a field that runs past its packet is [`PacketError::Truncated`].

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The longest packet body accepted (OpenSSH's `SFTP_MAX_MSG_LENGTH`).
pub const MAX_PACKET: usize = 256 * 1024;

pub const INIT: u8 = 1;
pub const VERSION: u8 = 2;
pub const OPEN: u8 = 3;
pub const CLOSE: u8 = 4;
pub const READ: u8 = 5;
pub const WRITE: u8 = 6;
pub const LSTAT: u8 = 7;
pub const FSTAT: u8 = 8;
pub const SETSTAT: u8 = 9;
pub const FSETSTAT: u8 = 10;
pub const OPENDIR: u8 = 11;
pub const READDIR: u8 = 12;
pub const REMOVE: u8 = 13;
pub const MKDIR: u8 = 14;
pub const RMDIR: u8 = 15;
pub const REALPATH: u8 = 16;
pub const STAT: u8 = 17;
pub const RENAME: u8 = 18;
pub const READLINK: u8 = 19;
pub const SYMLINK: u8 = 20;
pub const STATUS: u8 = 101;
pub const HANDLE: u8 = 102;
pub const EXTENDED: u8 = 200;

/// `SSH_FX_PERMISSION_DENIED`.
pub const FX_PERMISSION_DENIED: u32 = 3;

/// The protocol version jitgate reads.
pub const SUPPORTED_VERSION: u32 = 3;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PacketError {
    #[error("sftp packet of {0} bytes is over the limit of {MAX_PACKET}")]
    TooLong(usize),
    #[error("empty sftp packet")]
    Empty,
    #[error("sftp packet ends inside a field")]
    Truncated,
    #[error("sftp version {0} is not supported (only 3)")]
    Version(u32),
}

/// Cuts a byte stream into whole packets.
#[derive(Default)]
pub struct Framer {
    buf: BytesMut,
}

impl Framer {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole packet, length prefix included; `None` until one is complete.
    pub fn next_packet(&mut self) -> Result<Option<Bytes>, PacketError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len == 0 {
            return Err(PacketError::Empty);
        }
        if len > MAX_PACKET {
            return Err(PacketError::TooLong(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        Ok(Some(self.buf.split_to(4 + len).freeze()))
    }
}

/// Reads the fields of one packet body in order.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(body: &'a [u8]) -> Reader<'a> {
        Reader { rest: body }
    }

    pub fn byte(&mut self) -> Result<u8, PacketError> {
        let (&b, rest) = self.rest.split_first().ok_or(PacketError::Truncated)?;
        self.rest = rest;
        Ok(b)
    }

    pub fn u32(&mut self) -> Result<u32, PacketError> {
        if self.rest.len() < 4 {
            return Err(PacketError::Truncated);
        }
        Ok(self.rest.get_u32())
    }

    pub fn u64(&mut self) -> Result<u64, PacketError> {
        if self.rest.len() < 8 {
            return Err(PacketError::Truncated);
        }
        Ok(self.rest.get_u64())
    }

    pub fn string(&mut self) -> Result<&'a [u8], PacketError> {
        let len = usize::try_from(self.u32()?).map_err(|_| PacketError::Truncated)?;
        if self.rest.len() < len {
            return Err(PacketError::Truncated);
        }
        let (s, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(s)
    }
}

/// A packet's type and the reader positioned after it; the packet must carry its length
/// prefix (as [`Framer::next_packet`] returns it).
pub fn open(packet: &[u8]) -> Result<(u8, Reader<'_>), PacketError> {
    let body = packet.get(4..).ok_or(PacketError::Truncated)?;
    let mut r = Reader::new(body);
    let kind = r.byte()?;
    Ok((kind, r))
}

/// `SSH_FXP_STATUS` answering request `id`.
pub fn status(id: u32, code: u32, message: &str) -> Bytes {
    let mut body = BytesMut::new();
    body.put_u8(STATUS);
    body.put_u32(id);
    body.put_u32(code);
    put_string(&mut body, message.as_bytes());
    put_string(&mut body, b"en");
    let mut out = BytesMut::with_capacity(4 + body.len());
    out.put_u32(u32::try_from(body.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(&body);
    out.freeze()
}

fn put_string(out: &mut BytesMut, s: &[u8]) {
    out.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(body: &[u8]) -> Vec<u8> {
        let mut p = (body.len() as u32).to_be_bytes().to_vec();
        p.extend_from_slice(body);
        p
    }

    #[test]
    fn framer_cuts_whole_packets_across_chunks() {
        let mut stream = packet(&[OPEN, 0, 0, 0, 7]);
        stream.extend(packet(&[CLOSE, 0, 0, 0, 8, 0, 0, 0, 0]));
        let mut f = Framer::default();
        let mut got = Vec::new();
        for b in &stream {
            f.push(&[*b]);
            while let Some(p) = f.next_packet().expect("valid") {
                got.push(p);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].as_ref(), &stream[..9]);
        assert_eq!(got[1].as_ref(), &stream[9..]);
    }

    #[test]
    fn oversized_and_empty_packets_are_errors() {
        let mut f = Framer::default();
        f.push(&((MAX_PACKET + 1) as u32).to_be_bytes());
        assert_eq!(f.next_packet(), Err(PacketError::TooLong(MAX_PACKET + 1)));
        let mut f = Framer::default();
        f.push(&[0xff, 0xff, 0xff, 0xff]);
        assert!(f.next_packet().is_err());
        let mut f = Framer::default();
        f.push(&[0, 0, 0, 0]);
        assert_eq!(f.next_packet(), Err(PacketError::Empty));
    }

    #[test]
    fn reader_refuses_fields_past_the_end() {
        let mut r = Reader::new(&[0, 0, 0, 9, b'a']);
        assert_eq!(r.string(), Err(PacketError::Truncated));
        let mut r = Reader::new(&[0, 0, 1]);
        assert_eq!(r.u32(), Err(PacketError::Truncated));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(r.string(), Err(PacketError::Truncated));
        assert_eq!(Reader::new(&[1, 2]).u64(), Err(PacketError::Truncated));
        assert!(open(&[0, 0]).is_err());
        assert!(open(&[0, 0, 0, 1]).is_err());
    }

    #[test]
    fn status_round_trips() {
        let p = status(42, FX_PERMISSION_DENIED, "no");
        let (kind, mut r) = open(&p).expect("packet");
        assert_eq!(kind, STATUS);
        assert_eq!(r.u32(), Ok(42));
        assert_eq!(r.u32(), Ok(FX_PERMISSION_DENIED));
        assert_eq!(r.string(), Ok(&b"no"[..]));
        assert_eq!(r.string(), Ok(&b"en"[..]));
        let len = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
        assert_eq!(len + 4, p.len());
    }
}
