//! The layout of the sled tree: one prefix per kind of record, big-endian sequence numbers
//! so that key order is chain order.

/// A block stored in sled itself (stores written before the segment files).
pub const BLOCK: &[u8] = b"b";
/// A block in a segment file: its [`super::segment::Location`].
pub const LOCATED: &[u8] = b"l";
pub const SESSION: &[u8] = b"s";
pub const REQUEST: &[u8] = b"r";
pub const HEAD: &[u8] = b"m:head";
pub const ANCHOR: &[u8] = b"m:anchor";
/// How far the index is known to be on disk ([`super::index::Checkpoint`]).
pub const CHECKPOINT: &[u8] = b"m:checkpoint";

pub fn block(seq: u64) -> [u8; 9] {
    let mut k = [b'b'; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

pub fn located(seq: u64) -> [u8; 9] {
    let mut k = [b'l'; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The first seq of a block's key (`b` or `l`).
pub fn block_seq(k: &[u8]) -> Option<u64> {
    match k {
        [b'b' | b'l', rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

fn clip(s: &[u8]) -> &[u8] {
    &s[..s.len().min(u16::MAX as usize)]
}

pub fn index_prefix(session: &[u8]) -> Vec<u8> {
    let s = clip(session);
    let mut k = Vec::with_capacity(3 + s.len() + 8);
    k.push(b'x');
    k.extend_from_slice(&(s.len() as u16).to_be_bytes());
    k.extend_from_slice(s);
    k
}

pub fn index(session: &[u8], block_seq: u64) -> Vec<u8> {
    let mut k = index_prefix(session);
    k.extend_from_slice(&block_seq.to_be_bytes());
    k
}

/// The block a session index key names (for a grouped entry, its last block).
pub fn index_block_seq(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(
        k.get(k.len().checked_sub(8)?..)?.try_into().ok()?,
    ))
}

/// Every block a session index entry names, in chain order: the blocks its value lists (a
/// checkpoint's grouped entry, [`super::index`]: big-endian seqs, each before the key's),
/// then the key's own. An empty value (what recovery writes, and all an older jitgate wrote)
/// names the key's block only.
pub fn index_blocks<'a>(k: &[u8], v: &'a [u8]) -> impl Iterator<Item = u64> + 'a {
    v.chunks_exact(8)
        .filter_map(|c| c.try_into().ok().map(u64::from_be_bytes))
        .chain(index_block_seq(k))
}

pub fn session(id: &[u8]) -> Vec<u8> {
    [SESSION, id].concat()
}

pub fn request(id: &[u8]) -> Vec<u8> {
    [REQUEST, id].concat()
}
