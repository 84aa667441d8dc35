//! The hash chain and the block format events are stored in.
//!
//! One chain covers the whole store: event `n` (numbered from 1, without gaps) has
//! `hash(n) = SHA-256(hash(n-1) ‖ record(n))`, where `record(n)` is the exact stored bytes
//! `seq (u64 BE) ‖ at (unix µs, u64 BE) ‖ session length (u16 BE) ‖ session ‖ JSON length
//! (u32 BE) ‖ JSON`. `hash(0)` is [`GENESIS`], or after pruning the anchor's hash. Because the
//! seq, time, session and content are all inside the hashed bytes, editing, deleting,
//! inserting or reordering any event changes some link, and [`super::walk`] names the first
//! one. It also resolves each statement's `text_ref` against its session's earlier texts
//! ([`super::texts`]): a definition edited and re-hashed together with every later event
//! still leaves its references naming nothing.
//!
//! A block (one sled value; a group commit writes one or more) is
//! `1 ‖ prev hash (32) ‖ count (u32 BE) ‖ count × (record ‖ hash (32))`, stored under the
//! seq of its first event, as such or (what the writer does) LZ4-compressed as
//! `2 ‖ raw length (u32 LE) ‖ LZ4 block`. Compression is storage only: hashes cover the raw
//! records. It cuts what sled copies and rewrites by ~3× (sled rewrites whole tree nodes, so
//! its cost grows with the bytes stored, and that dominated the writer's CPU). The store's head (last seq and hash) is recorded
//! with each checkpoint and held by the writer, so removing events at the end is detected
//! too (see [`super::walk`]).

use std::borrow::Cow;
use std::fmt;

use sha2::{Digest, Sha256};

pub const GENESIS: [u8; 32] = [0; 32];
const VERSION: u8 = 1;
const VERSION_LZ4: u8 = 2;
/// Largest raw block [`unpack`] accepts (a tampered length must not allocate gigabytes).
const MAX_RAW: usize = 64 << 20;

/// The first broken link of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub seq: u64,
    pub reason: String,
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "broken link at event {}: {}", self.seq, self.reason)
    }
}

impl std::error::Error for Broken {}

/// Builds one block, hashing each event as it goes.
pub struct BlockWriter {
    buf: Vec<u8>,
    count: u32,
    pub first_seq: u64,
    pub last_seq: u64,
    pub last_hash: [u8; 32],
}

impl BlockWriter {
    /// A block starting at `first_seq`, built in `buf` (cleared; pass the buffer a previous
    /// block gave back to avoid allocating).
    pub fn new(first_seq: u64, prev: [u8; 32], mut buf: Vec<u8>) -> BlockWriter {
        buf.clear();
        buf.push(VERSION);
        buf.extend_from_slice(&prev);
        buf.extend_from_slice(&0u32.to_be_bytes());
        BlockWriter {
            buf,
            count: 0,
            first_seq,
            last_seq: first_seq - 1,
            last_hash: prev,
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Append event `last_seq + 1`; `json` writes its canonical JSON. On a JSON error the
    /// block is left as it was.
    pub fn push(
        &mut self,
        at_us: u64,
        session: &[u8],
        json: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> Result<u64, serde_json::Error> {
        let seq = self.last_seq + 1;
        let start = self.buf.len();
        let session = &session[..session.len().min(u16::MAX as usize)];
        self.buf.extend_from_slice(&seq.to_be_bytes());
        self.buf.extend_from_slice(&at_us.to_be_bytes());
        self.buf
            .extend_from_slice(&(session.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(session);
        let len_at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        if let Err(e) = json(&mut self.buf) {
            self.buf.truncate(start);
            return Err(e);
        }
        let json_len = (self.buf.len() - len_at - 4) as u32;
        self.buf[len_at..len_at + 4].copy_from_slice(&json_len.to_be_bytes());
        let hash = link(&self.last_hash, &self.buf[start..]);
        self.buf.extend_from_slice(&hash);
        self.count += 1;
        self.last_seq = seq;
        self.last_hash = hash;
        Ok(seq)
    }

    /// Compress the block into `packed` (grown as needed, never shrunk); returns how many of
    /// its bytes are the stored block, and the raw buffer for reuse.
    pub fn finish_into(
        mut self,
        packed: &mut Vec<u8>,
        table: &mut lz4_flex::block::CompressTable,
    ) -> (usize, Vec<u8>) {
        self.buf[33..37].copy_from_slice(&self.count.to_be_bytes());
        let need = 5 + lz4_flex::block::get_maximum_output_size(self.buf.len());
        if packed.len() < need {
            packed.resize(need, 0);
        }
        packed[0] = VERSION_LZ4;
        packed[1..5].copy_from_slice(&(self.buf.len() as u32).to_le_bytes());
        let n = match lz4_flex::block::compress_into_with_table(&self.buf, &mut packed[5..], table)
        {
            Ok(n) => 5 + n,
            // Cannot happen with a buffer of the maximum output size; store it raw then.
            Err(_) => {
                packed.clear();
                packed.extend_from_slice(&self.buf);
                packed.len()
            }
        };
        (n, self.buf)
    }

    /// The block as stored (allocating; the writer uses [`BlockWriter::finish_into`]).
    #[cfg(test)]
    pub fn finish(self) -> Vec<u8> {
        let mut packed = Vec::new();
        let (n, _) = self.finish_into(&mut packed, &mut lz4_flex::block::CompressTable::large());
        packed.truncate(n);
        packed
    }
}

/// The raw block from what is stored (decompressing if needed); `None` if it is neither.
pub fn unpack(stored: &[u8]) -> Option<Cow<'_, [u8]>> {
    match *stored.first()? {
        VERSION => Some(Cow::Borrowed(stored)),
        VERSION_LZ4 => {
            let len = u32::from_le_bytes(stored.get(1..5)?.try_into().ok()?) as usize;
            if len > MAX_RAW {
                return None;
            }
            lz4_flex::decompress_size_prepended(&stored[1..])
                .ok()
                .map(Cow::Owned)
        }
        _ => None,
    }
}

pub fn link(prev: &[u8; 32], record: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(record);
    h.finalize().into()
}

/// One event as stored in a block.
#[derive(Clone, Debug)]
pub struct RawEvent<'a> {
    pub seq: u64,
    pub at_us: u64,
    pub session: &'a [u8],
    pub json: &'a [u8],
    /// The hashed bytes.
    pub record: &'a [u8],
    pub hash: [u8; 32],
}

pub struct Block<'a> {
    pub prev: [u8; 32],
    pub events: Vec<RawEvent<'a>>,
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// One record's fields: `seq ‖ at ‖ session (u16 length) ‖ JSON (u32 length)`.
    #[allow(clippy::type_complexity)]
    fn record(&mut self) -> Option<(u64, u64, &'a [u8], &'a [u8])> {
        let seq = self.u64()?;
        let at_us = self.u64()?;
        let slen = self.u16()? as usize;
        let session = self.take(slen)?;
        let jlen = self.u32()? as usize;
        let json = self.take(jlen)?;
        Some((seq, at_us, session, json))
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.b.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }
    fn hash(&mut self) -> Option<[u8; 32]> {
        self.take(32)?.try_into().ok()
    }
}

/// Decode a block; `None` if it is not exactly one well-formed block.
pub fn decode(b: &[u8]) -> Option<Block<'_>> {
    let mut r = Reader { b, at: 0 };
    if r.take(1)? != [VERSION] {
        return None;
    }
    let prev = r.hash()?;
    let count = r.u32()? as usize;
    let mut events = Vec::with_capacity(count.min(b.len() / 56));
    for _ in 0..count {
        let start = r.at;
        let (seq, at_us, session, json) = r.record()?;
        let record = &b[start..r.at];
        let hash = r.hash()?;
        events.push(RawEvent {
            seq,
            at_us,
            session,
            json,
            record,
            hash,
        });
    }
    (r.at == b.len()).then_some(Block { prev, events })
}

/// Encode `(record, hash)` pairs as a block (for tests that tamper with the store).
#[cfg(test)]
pub fn encode_raw(prev: &[u8; 32], events: &[(Vec<u8>, [u8; 32])]) -> Vec<u8> {
    let mut buf = vec![VERSION];
    buf.extend_from_slice(prev);
    buf.extend_from_slice(&(events.len() as u32).to_be_bytes());
    for (record, hash) in events {
        buf.extend_from_slice(record);
        buf.extend_from_slice(hash);
    }
    buf
}

/// A point in the chain: an event's seq and hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub seq: u64,
    pub hash: [u8; 32],
}

impl Default for Link {
    /// The genesis, before the first event.
    fn default() -> Link {
        Link::START
    }
}

impl Link {
    pub const START: Link = Link {
        seq: 0,
        hash: GENESIS,
    };

    pub fn encode(&self) -> [u8; 40] {
        let mut b = [0; 40];
        b[..8].copy_from_slice(&self.seq.to_be_bytes());
        b[8..].copy_from_slice(&self.hash);
        b
    }

    pub fn decode(b: &[u8]) -> Option<Link> {
        let b: &[u8; 40] = b.try_into().ok()?;
        Some(Link {
            seq: u64::from_be_bytes(b[..8].try_into().ok()?),
            hash: b[8..].try_into().ok()?,
        })
    }
}

pub fn broken(seq: u64, reason: impl Into<String>) -> Broken {
    Broken {
        seq,
        reason: reason.into(),
    }
}

/// One stored record (`seq ‖ at ‖ session ‖ JSON`, as hashed) with its hash, as an event;
/// `None` unless the bytes are exactly one record.
pub fn parse_record(record: &[u8], hash: [u8; 32]) -> Option<RawEvent<'_>> {
    let mut r = Reader { b: record, at: 0 };
    let (seq, at_us, session, json) = r.record()?;
    (r.at == record.len()).then_some(RawEvent {
        seq,
        at_us,
        session,
        json,
        record,
        hash,
    })
}
